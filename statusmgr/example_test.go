package statusmgr_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/statusmgr"
)

// The status of a pod whose container crashes: the runtime has its last
// two runs, and the sync loop holds the next one back.
func ExampleGenerate() {
	t0 := time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC)
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-1", Generation: 1},
		Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "app", Image: "busybox"}}},
	}
	run := func(id string, attempt int, started time.Time) *runtimeapi.ContainerStatus {
		return &runtimeapi.ContainerStatus{
			Id:       id,
			Metadata: &runtimeapi.ContainerMetadata{Name: "app", Attempt: uint32(attempt)},
			State:    runtimeapi.ContainerState_CONTAINER_EXITED,
			// The labels and annotations crispec gives a container.
			Labels:      map[string]string{core.LabelContainerName: "app", core.LabelPodUID: "uid-1"},
			Annotations: map[string]string{core.AnnotationContainerRestartCount: fmt.Sprint(attempt)},
			CreatedAt:   started.UnixNano(),
			StartedAt:   started.UnixNano(),
			FinishedAt:  started.Add(2 * time.Second).UnixNano(),
			ExitCode:    1,
			Reason:      "Error",
			Image:       &runtimeapi.ImageSpec{Image: "docker.io/library/busybox:latest"},
		}
	}
	status := statusmgr.Generate(statusmgr.Input{
		Pod: pod,
		Runtime: &core.PodStatus{
			UID: "uid-1",
			IPs: []string{"10.88.0.7"},
			SandboxStatuses: []*runtimeapi.PodSandboxStatus{{
				Id: "sb1", State: runtimeapi.PodSandboxState_SANDBOX_READY,
				Network: &runtimeapi.PodSandboxNetworkStatus{Ip: "10.88.0.7"},
			}},
			ContainerStatuses: []*runtimeapi.ContainerStatus{run("c5", 5, t0.Add(3*time.Minute)), run("c4", 4, t0.Add(time.Minute))},
		},
		Waiting: []statusmgr.Waiting{{Name: "app", Reason: "CrashLoopBackOff", Message: "back-off 2m40s restarting failed container=app pod=web_default(uid-1)"}},
		HostIPs: []string{"192.168.0.5"},
		Now:     t0.Add(4 * time.Minute),
	})

	cs := status.ContainerStatuses[0]
	fmt.Println("phase:", status.Phase, status.PodIP)
	fmt.Println("state:", cs.State.Waiting.Reason)
	fmt.Println("restarts:", cs.RestartCount)
	last := cs.LastTerminationState.Terminated
	fmt.Println("last state:", last.Reason, last.ExitCode, last.FinishedAt.UTC().Format(time.TimeOnly), last.ContainerID)
	for _, c := range status.Conditions {
		fmt.Println(strings.TrimSpace(fmt.Sprintf("%s %s %s", c.Type, c.Status, c.Reason)))
	}
	// Output:
	// phase: Running 10.88.0.7
	// state: CrashLoopBackOff
	// restarts: 5
	// last state: Error 1 05:03:02 containerd://c5
	// PodReadyToStartContainers True
	// Initialized True
	// Ready False ContainersNotReady
	// ContainersReady False ContainersNotReady
	// PodScheduled True
}

// Phase alone, from container statuses: under restartPolicy Never, a
// regular container exited 0 while its sidecar runs: the pod runs until
// the sidecar is stopped; then it succeeded, whatever the sidecar's exit.
func ExamplePhase() {
	always := v1.ContainerRestartPolicyAlways
	pod := &v1.Pod{Spec: v1.PodSpec{
		RestartPolicy:  v1.RestartPolicyNever,
		InitContainers: []v1.Container{{Name: "proxy", RestartPolicy: &always}},
		Containers:     []v1.Container{{Name: "job"}},
	}}
	yes := true
	statuses := []v1.ContainerStatus{
		{Name: "proxy", Started: &yes, State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}},
		{Name: "job", State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 0}}},
	}
	fmt.Println(statusmgr.Phase(pod, statuses, false, true))
	statuses[0].State = v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 137}}
	fmt.Println(statusmgr.Phase(pod, statuses, true, true))
	// Output:
	// Running
	// Succeeded
}

// A Syncer pushes a Cache's statuses to a Sink: here the in-memory one.
// Three changes before the pass are written as one, the newest.
func ExampleSyncer() {
	cache, _ := statusmgr.NewCache(statusmgr.CacheConfig{})
	sink := statusmgr.NewMemorySink()
	syncer, _ := statusmgr.NewSyncer(statusmgr.SyncerConfig{Source: cache, Sink: sink})
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-1"}}
	for _, p := range []v1.PodPhase{v1.PodPending, v1.PodRunning} {
		cache.Set(pod, v1.PodStatus{Phase: p})
	}
	cache.Finish(pod, v1.PodStatus{Phase: v1.PodSucceeded})
	if err := syncer.Sync(context.Background(), false); err != nil {
		fmt.Println(err)
	}
	e, _ := sink.Get(pod.UID)
	fmt.Println(e.Status.Phase, "version", e.Version, "finished", e.Finished)
	// Output: Succeeded version 3 finished true
}
