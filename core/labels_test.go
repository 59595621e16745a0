package core_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nodekit/nodekit/core"
)

func TestSandboxInfoFromLabels(t *testing.T) {
	info, ok := core.SandboxInfoFromLabels(map[string]string{
		core.LabelPodName: "web", core.LabelPodNamespace: "shop", core.LabelPodUID: "u1", "app": "web",
	})
	if !ok || info.PodName != "web" || info.PodNamespace != "shop" || info.PodUID != "u1" {
		t.Errorf("info %+v ok=%v", info, ok)
	}
	if len(info.Labels) != 1 || info.Labels["app"] != "web" {
		t.Errorf("pod labels %v, want only app=web", info.Labels)
	}
	if _, ok := core.SandboxInfoFromLabels(map[string]string{core.LabelPodName: "x"}); ok {
		t.Error("a sandbox without a pod UID label was taken for a pod's")
	}
}

func TestContainerInfoFromLabels(t *testing.T) {
	labels := map[string]string{
		core.LabelPodName: "web", core.LabelPodNamespace: "shop", core.LabelPodUID: "u1", core.LabelContainerName: "app",
	}
	info, ok, err := core.ContainerInfoFromLabels(labels, map[string]string{
		core.AnnotationContainerHash:                     "a763184",
		core.AnnotationContainerRestartCount:             "3",
		core.AnnotationContainerTerminationMessagePath:   "/dev/termination-log",
		core.AnnotationContainerTerminationMessagePolicy: "FallbackToLogsOnError",
		core.AnnotationPodTerminationGracePeriod:         "30",
		core.AnnotationContainerPreStopHandler:           `{"exec":{"command":["sh","-c","sleep 1"]}}`,
		core.AnnotationContainerPorts:                    `[{"name":"http","containerPort":8080,"protocol":"TCP"}]`,
	})
	if err != nil || !ok {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	if info.ContainerName != "app" || info.PodUID != "u1" || info.Hash != 0xa763184 || info.RestartCount != 3 ||
		info.TerminationMessagePolicy != "FallbackToLogsOnError" || info.PodTerminationGracePeriod == nil ||
		*info.PodTerminationGracePeriod != 30 || info.PodDeletionGracePeriod != nil {
		t.Errorf("info %+v", info)
	}
	if info.PreStopHandler == nil || info.PreStopHandler.Exec == nil || len(info.PreStopHandler.Exec.Command) != 3 {
		t.Errorf("preStop handler %+v", info.PreStopHandler)
	}
	if len(info.Ports) != 1 || info.Ports[0].ContainerPort != 8080 {
		t.Errorf("ports %+v", info.Ports)
	}

	if _, ok, err := core.ContainerInfoFromLabels(map[string]string{core.LabelContainerName: "x"}, nil); ok || err != nil {
		t.Errorf("a container without a pod UID: ok=%v err=%v, want not a pod's", ok, err)
	}
}

// Malformed annotations are named, all of them, and the rest is still read.
func TestContainerInfoFromLabelsMalformed(t *testing.T) {
	labels := map[string]string{core.LabelPodName: "web", core.LabelPodNamespace: "shop", core.LabelPodUID: "u1", core.LabelContainerName: "app"}
	info, ok, err := core.ContainerInfoFromLabels(labels, map[string]string{
		core.AnnotationContainerHash:             "not-hex",
		core.AnnotationContainerRestartCount:     "2",
		core.AnnotationPodDeletionGracePeriod:    "soon",
		core.AnnotationPodTerminationGracePeriod: "later",
		core.AnnotationContainerPorts:            "[",
	})
	if !ok || !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("ok=%v err=%v, want core.ErrInvalid", ok, err)
	}
	msg := err.Error()
	wantOrder := []string{`container "app" of pod shop/web`, core.AnnotationContainerHash, core.AnnotationPodDeletionGracePeriod,
		core.AnnotationPodTerminationGracePeriod, core.AnnotationContainerPorts}
	last := -1
	for _, w := range wantOrder {
		i := strings.Index(msg, w)
		if i < 0 || i < last {
			t.Fatalf("error %q does not name %q in order", msg, w)
		}
		last = i
	}
	if info.RestartCount != 2 || info.ContainerName != "app" {
		t.Errorf("the well-formed fields were lost: %+v", info)
	}
}
