package pleg_test

import (
	"context"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/pleg"
	"github.com/nodekit/nodekit/runtimetest"
)

// Relisting a simulated runtime by hand: each relist reports what changed
// since the one before.
func ExamplePLEG_Relist() {
	ctx := context.Background()
	clk := testingclock.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	rt, _ := runtimetest.New(runtimetest.Config{Clock: clk, Images: []string{"busybox"}})
	p, _ := pleg.New(pleg.Config{Runtime: rt, Clock: clk})
	events := p.Watch()
	defer events.Close()

	labels := map[string]string{core.LabelPodName: "web", core.LabelPodNamespace: "default", core.LabelPodUID: "uid-1"}
	sb := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "uid-1"},
		Labels:   labels,
	}
	sbID, _ := rt.RunPodSandbox(ctx, sb, "")
	cID, _ := rt.CreateContainer(ctx, sbID, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Command:  []string{"sh", "-c", "sleep 5; exit 2"},
		Labels:   labels,
	}, sb)
	_ = rt.StartContainer(ctx, cID)

	show := func() {
		_ = p.Relist(ctx)
		for {
			select {
			case ev := <-events.Events():
				fmt.Print(ev.Type)
				if ev.Sandbox {
					fmt.Print(" (sandbox)")
				}
				if ev.ExitCode != nil {
					fmt.Print(" exit code ", *ev.ExitCode)
				}
				fmt.Println()
			case <-time.After(100 * time.Millisecond):
				return
			}
		}
	}
	show()
	clk.Step(5 * time.Second)
	show()
	status, _ := p.Cache().Get("uid-1")
	fmt.Println(status.Namespace+"/"+status.Name, status.ContainerStatuses[0].GetReason())
	// Output:
	// ContainerStarted (sandbox)
	// ContainerStarted
	// ContainerDied exit code 2
	// default/web Error
}
