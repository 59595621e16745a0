package pleg

import (
	"context"
	"fmt"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/runtimetest"
)

// fastContainers relists the containers every 100 ms and the sandboxes
// every second, without an event stream.
func fastContainers(c *Config) {
	c.Events = EventsOff
	c.RelistPeriod = 100 * time.Millisecond
	c.SandboxRelistPeriod = time.Second
}

// calls waits until the runtime was asked method want times and checks it
// is not asked more.
func (e *env) calls(method string, want int) {
	e.t.Helper()
	e.eventually(method+" calls", func() bool { return e.rt.Calls(method) >= want })
	if got := e.rt.Calls(method); got != want {
		e.t.Fatalf("%d %s calls, want %d", got, method, want)
	}
}

// Between full relists, every RelistPeriod, only the containers are
// listed: the sandboxes once per SandboxRelistPeriod.
func TestRunListsSandboxesEverySandboxRelistPeriod(t *testing.T) {
	e := newEnv(t, false, fastContainers)
	e.start()
	e.calls("ListPodSandbox", 1)
	e.calls("ListContainers", 1)
	for k := 2; k <= 10; k++ {
		e.step(100 * time.Millisecond)
		e.calls("ListContainers", k)
	}
	e.calls("ListPodSandbox", 1)
	e.step(100 * time.Millisecond) // one second after the first relist
	e.calls("ListContainers", 11)
	e.calls("ListPodSandbox", 2)
	e.step(100 * time.Millisecond)
	e.calls("ListContainers", 12)
	e.calls("ListPodSandbox", 2)
}

// A container that dies is found by the next relist of the containers,
// with a fresh status of its whole pod, its sandbox included; a sandbox
// that dies waits for the next full relist, and the cache's global time
// moves with full relists only.
func TestContainerRelistFindsDeath(t *testing.T) {
	e := newEnv(t, false, fastContainers)
	sbID, sb := e.runSandbox("p", true)
	cID := e.startContainer(sbID, sb, "app", "sleep", "3600")
	e.start()
	if got := describe(e.next(2)); got != "ContainerStarted[sandbox] ContainerStarted" {
		t.Fatalf("first relist: %s", got)
	}
	if err := e.rt.StopContainer(e.ctx, cID, 0); err != nil {
		t.Fatal(err)
	}
	e.step(100 * time.Millisecond)
	if got := describe(e.next(1)); got != "ContainerDied(137)" {
		t.Fatalf("after one relist of the containers: %s", got)
	}
	st, _ := e.p.Cache().Get("uid-p")
	if len(st.SandboxStatuses) != 1 || st.SandboxStatuses[0].GetState() != runtimeapi.PodSandboxState_SANDBOX_READY || len(st.ContainerStatuses) != 1 {
		t.Fatalf("status after the death: %v", st)
	}
	e.calls("ListPodSandbox", 1)

	// Only full relists vouch for pods the runtime does not have.
	done, cancel := context.WithCancel(e.ctx)
	cancel()
	since := e.clk.Now()
	if _, err := e.p.Cache().GetNewerThan(done, "uid-gone", since); err == nil {
		t.Fatal("a status newer than the last relist of the containers, before any full relist")
	}

	if err := e.rt.StopPodSandbox(e.ctx, sbID); err != nil {
		t.Fatal(err)
	}
	for range 8 {
		e.step(100 * time.Millisecond)
		e.calls("ListContainers", e.rt.Calls("ListContainers"))
	}
	e.none()
	e.step(100 * time.Millisecond) // the full relist, one second after the first
	if got := describe(e.next(1)); got != "ContainerDied[sandbox]" {
		t.Fatalf("after the full relist: %s", got)
	}
	if _, err := e.p.Cache().GetNewerThan(done, "uid-gone", since); err != nil {
		t.Fatalf("after a full relist: %v", err)
	}
}

// A container new to the PLEG makes the relist a full one: its sandbox is
// listed with it, so that no status shows a container without its
// sandbox, and the cache's global time moves.
func TestContainerRelistTurnsFullOnNewContainers(t *testing.T) {
	e := newEnv(t, false, fastContainers)
	e.start()
	sbID, sb := e.runSandbox("p", true)
	e.startContainer(sbID, sb, "app", "sleep", "3600")
	e.step(100 * time.Millisecond)
	if got := describe(e.next(2)); got != "ContainerStarted[sandbox] ContainerStarted" {
		t.Fatalf("after the next relist: %s", got)
	}
	st, _ := e.p.Cache().Get("uid-p")
	if st == nil || len(st.SandboxStatuses) != 1 || len(st.ContainerStatuses) != 1 {
		t.Fatalf("status: %v", st)
	}
	e.calls("ListPodSandbox", 2)
	done, cancel := context.WithCancel(e.ctx)
	cancel()
	if _, err := e.p.Cache().GetNewerThan(done, "uid-gone", epoch); err != nil {
		t.Fatalf("the global time did not move with the full relist: %v", err)
	}

	// When the sandboxes cannot be listed, nothing of the relist is
	// taken: the pod waits for the next one.
	sb2ID, sb2 := e.runSandbox("q", true)
	e.startContainer(sb2ID, sb2, "app", "sleep", "3600")
	if err := e.rt.InjectFault("ListPodSandbox", runtimetest.Fault{Err: fmt.Errorf("injected: %w", core.ErrUnavailable), Times: 1}); err != nil {
		t.Fatal(err)
	}
	e.step(100 * time.Millisecond)
	e.calls("ListPodSandbox", 3)
	e.none()
	if st, _ := e.p.Cache().Get("uid-q"); st != nil {
		t.Fatalf("a status from a failed relist: %v", st)
	}
	e.step(100 * time.Millisecond)
	if got := describe(e.next(2)); got != "ContainerStarted[sandbox] ContainerStarted" {
		t.Fatalf("after the next relist: %s", got)
	}
	if st, _ := e.p.Cache().Get("uid-q"); st == nil || len(st.SandboxStatuses) != 1 {
		t.Fatalf("status: %v", st)
	}
}
