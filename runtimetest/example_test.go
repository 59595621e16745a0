package runtimetest_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/runtimetest"
)

// A container whose command sleeps and fails exits when the fake clock
// reaches the end of its sleep.
func Example() {
	clk := testingclock.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	rt, err := runtimetest.New(runtimetest.Config{Clock: clk, Images: []string{"busybox"}})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	pod := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "uid-1"}}
	sandboxID, err := rt.RunPodSandbox(ctx, pod, "")
	if err != nil {
		panic(err)
	}
	id, err := rt.CreateContainer(ctx, sandboxID, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Command:  []string{"sh", "-c", "sleep 10; exit 3"},
	}, pod)
	if err != nil {
		panic(err)
	}
	if err := rt.StartContainer(ctx, id); err != nil {
		panic(err)
	}
	show := func() {
		resp, err := rt.ContainerStatus(ctx, id, false)
		if err != nil {
			panic(err)
		}
		st := resp.GetStatus()
		fmt.Printf("%s exit code %d %q\n", st.State, st.ExitCode, st.Reason)
	}
	clk.Step(9 * time.Second)
	show()
	clk.Step(time.Second)
	show()
	// Output:
	// CONTAINER_RUNNING exit code 0 ""
	// CONTAINER_EXITED exit code 3 "Error"
}

// Behaviours script containers by name, pod or image, whatever their
// command: here every attempt of the container "worker" is OOM-killed after
// 30 seconds.
func ExampleRuntime_SetBehavior() {
	clk := testingclock.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	rt, _ := runtimetest.New(runtimetest.Config{Clock: clk, Images: []string{"busybox"}})
	rt.SetBehavior(runtimetest.Match{Container: "worker"}, runtimetest.Behavior{
		Exit: &runtimetest.Exit{After: 30 * time.Second, OOMKilled: true},
	})
	ctx := context.Background()
	pod := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "batch", Namespace: "default", Uid: "uid-2"}}
	sandboxID, _ := rt.RunPodSandbox(ctx, pod, "")
	for attempt := range uint32(2) {
		id, _ := rt.CreateContainer(ctx, sandboxID, &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "worker", Attempt: attempt},
			Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		}, pod)
		_ = rt.StartContainer(ctx, id)
		clk.Step(30 * time.Second)
		resp, _ := rt.ContainerStatus(ctx, id, false)
		fmt.Printf("attempt %d: exit code %d %s\n", attempt, resp.Status.ExitCode, resp.Status.Reason)
	}
	// Output:
	// attempt 0: exit code 137 OOMKilled
	// attempt 1: exit code 137 OOMKilled
}

func ExampleRuntime_InjectFault() {
	rt, _ := runtimetest.New(runtimetest.Config{})
	ctx := context.Background()
	if err := rt.InjectFault("ListContainers", runtimetest.Fault{Err: core.ErrUnavailable, Times: 1}); err != nil {
		fmt.Println(err)
		return
	}
	_, err := rt.ListContainers(ctx, nil)
	fmt.Println(errors.Is(err, core.ErrUnavailable), err)
	_, err = rt.ListContainers(ctx, nil)
	fmt.Println(err, rt.Calls("ListContainers"))
	// Output:
	// true ListContainers: injected fault: runtime unavailable
	// <nil> 2
}

// The event stream reports sandboxes and containers alike, as containerd 2
// does.
func ExampleRuntime_GetContainerEvents() {
	rt, _ := runtimetest.New(runtimetest.Config{Images: []string{"busybox"}, Events: true})
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan *runtimeapi.ContainerEventResponse, 10)
	connected := make(chan struct{})
	done := make(chan error)
	go func() { done <- rt.GetContainerEvents(ctx, events, func() { close(connected) }) }()
	<-connected

	pod := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "uid-3"}}
	sandboxID, _ := rt.RunPodSandbox(ctx, pod, "")
	id, _ := rt.CreateContainer(ctx, sandboxID, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "once"},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Command:  []string{"true"},
	}, pod)
	_ = rt.StartContainer(ctx, id)
	for range 5 {
		ev := <-events
		what := "container"
		if ev.ContainerId == sandboxID {
			what = "sandbox"
		}
		fmt.Println(ev.ContainerEventType, what)
	}
	cancel()
	fmt.Println(<-done)
	// Output:
	// CONTAINER_CREATED_EVENT sandbox
	// CONTAINER_STARTED_EVENT sandbox
	// CONTAINER_CREATED_EVENT container
	// CONTAINER_STARTED_EVENT container
	// CONTAINER_STOPPED_EVENT container
	// context canceled
}

func ExampleDefaultExec() {
	res, took, _ := runtimetest.DefaultExec("", []string{"sh", "-c", "sleep 2; echo ready; exit 1"})
	fmt.Printf("%q exit code %d after %s\n", res.Stdout, res.ExitCode, took)
	// Output:
	// "ready\n" exit code 1 after 2s
}
