package runtimetest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/runtimetest"
)

// subscribe opens an event stream that lasts as long as the test.
func (e *env) subscribe() <-chan *runtimeapi.ContainerEventResponse {
	e.t.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	ch := make(chan *runtimeapi.ContainerEventResponse, 100)
	connected := make(chan struct{})
	done := async(func() error { return e.rt.GetContainerEvents(ctx, ch, func() { close(connected) }) })
	e.t.Cleanup(func() {
		cancel()
		if err := e.result(done); !errors.Is(err, context.Canceled) {
			e.t.Errorf("GetContainerEvents after its context ended: %v, want context.Canceled", err)
		}
	})
	select {
	case <-connected:
	case err := <-done:
		e.t.Fatalf("GetContainerEvents: %v", err)
	}
	return ch
}

func (e *env) next(ch <-chan *runtimeapi.ContainerEventResponse) *runtimeapi.ContainerEventResponse {
	e.t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(10 * time.Second):
		e.t.Fatal("no event")
		return nil
	}
}

// expect reads events and checks their IDs and types, given as pairs:
// expect(ch, id, "CREATED", id, "STARTED").
func (e *env) expect(ch <-chan *runtimeapi.ContainerEventResponse, pairs ...string) {
	e.t.Helper()
	for i := 0; i < len(pairs); i += 2 {
		ev := e.next(ch)
		want := "CONTAINER_" + pairs[i+1] + "_EVENT"
		if ev.ContainerId != pairs[i] || ev.ContainerEventType.String() != want {
			e.t.Fatalf("event %d: %s of %.12s, want %s of %.12s", i/2, ev.ContainerEventType, ev.ContainerId, want, pairs[i])
		}
	}
}

func (e *env) skip(ch <-chan *runtimeapi.ContainerEventResponse, n int) {
	e.t.Helper()
	for range n {
		e.next(ch)
	}
}

func (e *env) noEvent(ch <-chan *runtimeapi.ContainerEventResponse) {
	e.t.Helper()
	select {
	case ev := <-ch:
		e.t.Fatalf("unexpected event %s of %.12s", ev.ContainerEventType, ev.ContainerId)
	default:
	}
}

func TestEventsFollowTheLifecycle(t *testing.T) {
	e := newEnv(t, runtimetest.Config{Events: true})
	events := e.subscribe()
	sbID, sb := e.runSandbox("web")
	e.expect(events, sbID, "CREATED", sbID, "STARTED")

	id := e.create(sbID, sb, containerConfig("app", "sh", "-c", "sleep 10; exit 3"))
	ev := e.next(events)
	if ev.ContainerId != id || ev.ContainerEventType != runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT {
		t.Fatalf("event %v", ev)
	}
	if ev.CreatedAt != epoch.UnixNano() || ev.PodSandboxStatus.GetId() != sbID ||
		len(ev.ContainersStatuses) != 1 || ev.ContainersStatuses[0].State != runtimeapi.ContainerState_CONTAINER_CREATED {
		t.Errorf("created event carries %+v", ev)
	}
	if err := e.rt.StartContainer(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	e.expect(events, id, "STARTED")

	// The exit is an event when the clock reaches it, without any call.
	e.clk.Step(10 * time.Second)
	ev = e.next(events)
	if ev.ContainerId != id || ev.ContainerEventType != runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT {
		t.Fatalf("event %s, want the container's stop", ev.ContainerEventType)
	}
	if st := ev.ContainersStatuses[0]; ev.CreatedAt != epoch.Add(10*time.Second).UnixNano() || st.ExitCode != 3 || st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("stopped event at %d carries %+v", ev.CreatedAt, st)
	}
	if err := e.rt.RemoveContainer(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	ev = e.next(events)
	if ev.ContainerEventType != runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT || len(ev.ContainersStatuses) != 0 || ev.PodSandboxStatus.GetId() != sbID {
		t.Errorf("deleted event %+v", ev)
	}
	if err := e.rt.StopPodSandbox(e.ctx, sbID); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.RemovePodSandbox(e.ctx, sbID); err != nil {
		t.Fatal(err)
	}
	e.expect(events, sbID, "STOPPED", sbID, "DELETED")
	e.noEvent(events)
}

func TestEventsGoToEverySubscriber(t *testing.T) {
	e := newEnv(t, runtimetest.Config{Events: true})
	one, two := e.subscribe(), e.subscribe()
	sbID, _ := e.runSandbox("web")
	a, b := e.next(one), e.next(two)
	if a.ContainerId != sbID || b.ContainerId != sbID {
		t.Fatalf("events of %s and %s, want %s", a.ContainerId, b.ContainerId, sbID)
	}
	a.PodSandboxStatus.Labels["app"] = "mutated"
	if b.PodSandboxStatus.Labels["app"] != "web" {
		t.Error("subscribers share an event")
	}
}

func TestSlowSubscriberIsDropped(t *testing.T) {
	e := newEnv(t, runtimetest.Config{Events: true, EventBuffer: 2})
	ch := make(chan *runtimeapi.ContainerEventResponse) // never read
	connected := make(chan struct{})
	done := async(func() error { return e.rt.GetContainerEvents(e.ctx, ch, func() { close(connected) }) })
	<-connected
	// Four events: one waits to be sent on ch, two fill the buffer, the
	// last overflows it. The runtime does not block.
	e.runSandbox("one")
	e.runSandbox("two")
	if err := e.result(done); !errors.Is(err, core.ErrUnavailable) {
		t.Errorf("stream of a stalled consumer: %v, want core.ErrUnavailable", err)
	}
}

func TestBreakEventStreams(t *testing.T) {
	e := newEnv(t, runtimetest.Config{Events: true})
	ch := make(chan *runtimeapi.ContainerEventResponse, 10)
	connected := make(chan struct{})
	done := async(func() error { return e.rt.GetContainerEvents(e.ctx, ch, func() { close(connected) }) })
	<-connected
	e.rt.BreakEventStreams()
	if err := e.result(done); !errors.Is(err, core.ErrUnavailable) {
		t.Errorf("broken stream: %v, want core.ErrUnavailable", err)
	}
	// A new subscription works.
	events := e.subscribe()
	sbID, _ := e.runSandbox("web")
	e.expect(events, sbID, "CREATED")
}

func TestEventStreamFaults(t *testing.T) {
	e := newEnv(t, runtimetest.Config{Events: true})
	if err := e.rt.InjectFault("GetContainerEvents", runtimetest.Fault{Err: core.ErrUnavailable, Times: 1}); err != nil {
		t.Fatal(err)
	}
	called := false
	err := e.rt.GetContainerEvents(e.ctx, make(chan *runtimeapi.ContainerEventResponse), func() { called = true })
	if !errors.Is(err, core.ErrUnavailable) || called {
		t.Errorf("injected failure: %v (connected %v), want core.ErrUnavailable before connecting", err, called)
	}
	if !strings.Contains(err.Error(), "GetContainerEvents") {
		t.Errorf("error %q does not name the call", err)
	}
}
