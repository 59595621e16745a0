package core_test

import (
	"errors"
	"fmt"

	"github.com/nodekit/nodekit/core"
)

// An agent that restarts rebuilds its view from the runtime's labels.
func ExampleContainerInfoFromLabels() {
	labels := map[string]string{
		core.LabelPodName: "web", core.LabelPodNamespace: "shop",
		core.LabelPodUID: "0c6e3c41", core.LabelContainerName: "server",
	}
	annotations := map[string]string{
		core.AnnotationContainerHash:         "a763184",
		core.AnnotationContainerRestartCount: "2",
	}
	info, ok, err := core.ContainerInfoFromLabels(labels, annotations)
	fmt.Println(ok, err)
	fmt.Printf("%s/%s %s restarts=%d hash=%x\n", info.PodNamespace, info.PodName, info.ContainerName, info.RestartCount, info.Hash)
	// Output:
	// true <nil>
	// shop/web server restarts=2 hash=a763184
}

// Errors cross packages as classes.
func Example_errorClasses() {
	err := fmt.Errorf("status of container 4f2a: %w: container not found", core.ErrNotFound)
	switch {
	case errors.Is(err, core.ErrNotFound):
		fmt.Println("gone: forget it")
	case errors.Is(err, core.ErrUnavailable):
		fmt.Println("retry later")
	}
	// Output: gone: forget it
}
