package syncloop_test

import (
	"context"
	"fmt"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
	"github.com/nodekit/nodekit/syncloop"
)

// A liveness probe that succeeds once and then keeps failing, with
// failureThreshold 3: the third failure in a row makes the result Failure,
// and Plan then restarts the container.
func ExampleProbeManager() {
	clk := testingclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	start := clk.Now()

	app := v1.Container{Name: "app", Image: "nginx", LivenessProbe: &v1.Probe{
		ProbeHandler:  v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/healthz"}},
		PeriodSeconds: 10, FailureThreshold: 3, SuccessThreshold: 1,
	}}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "8d1c"},
		Spec: v1.PodSpec{Containers: []v1.Container{app}}}
	status := &core.PodStatus{
		UID: pod.UID,
		SandboxStatuses: []*runtimeapi.PodSandboxStatus{{Id: "sb1", State: runtimeapi.PodSandboxState_SANDBOX_READY,
			Network: &runtimeapi.PodSandboxNetworkStatus{Ip: "10.0.0.7"}}},
		ContainerStatuses: []*runtimeapi.ContainerStatus{{Id: "c1", Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
			State: runtimeapi.ContainerState_CONTAINER_RUNNING, StartedAt: start.UnixNano(),
			Annotations: map[string]string{core.AnnotationContainerHash: strconv.FormatUint(crispec.ContainerHash(&app), 16)}}},
	}

	// The application answers its first probe only.
	rounds := 0
	probed := make(chan struct{})
	prober := syncloop.ProberFunc(func(ctx context.Context, c *v1.Container, p *v1.Probe, containerID, podIP string) (syncloop.ProbeResult, string, error) {
		rounds++
		result := syncloop.ProbeFailure
		if rounds == 1 {
			result = syncloop.ProbeSuccess
		}
		fmt.Printf("%s: probe http://%s%s of %s: %s\n", clk.Since(start), podIP, p.HTTPGet.Path, containerID, result)
		select {
		case probed <- struct{}{}:
		case <-ctx.Done():
		}
		return result, "", nil
	})
	failed := make(chan struct{}, 1)
	m, err := syncloop.NewProbeManager(syncloop.ProbeManagerConfig{
		Runner: prober,
		Clock:  clk,
		Jitter: func() float64 { return 0 },
		OnChange: func(uid types.UID, kind syncloop.ProbeKind, containerID string, result syncloop.ProbeResult) {
			fmt.Printf("%s of %s is %s\n", kind, containerID, result)
			if result == syncloop.ProbeFailure {
				failed <- struct{}{}
			}
		},
	})
	if err != nil {
		panic(err)
	}
	m.SyncPod(pod, status)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()

	for round := range 4 {
		<-probed
		if round < 3 {
			clk.Step(10 * time.Second) // the next period
		}
	}
	<-failed
	liveness, startup := m.Results(pod.UID)
	actions := syncloop.Plan(pod, status, syncloop.PlanInput{Liveness: liveness, Startup: startup})
	fmt.Println("kill:", actions.ContainersToKill["c1"].Message)
	cancel()
	<-done
	// Output:
	// Liveness of c1 is Success
	// 0s: probe http://10.0.0.7/healthz of c1: Success
	// 10s: probe http://10.0.0.7/healthz of c1: Failure
	// 20s: probe http://10.0.0.7/healthz of c1: Failure
	// 30s: probe http://10.0.0.7/healthz of c1: Failure
	// Liveness of c1 is Failure
	// kill: Container app failed liveness probe, will be restarted
}
