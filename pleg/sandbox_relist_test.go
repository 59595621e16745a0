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
// every second, without an event stream. The tests' containers run a
// service (no sleep on the clock): the PLEG is the clock's only waiter,
// so that env.step moves time only once the PLEG waits.
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

// fresh reports whether the cache vouches for pods it has no entry of as
// of t: a full relist started after t.
func (e *env) fresh(t time.Time) bool {
	done, cancel := context.WithCancel(e.ctx)
	cancel()
	_, err := e.p.Cache().GetNewerThan(done, "uid-nobody", t)
	return err == nil
}

// While nothing changes, the relists between full ones list the
// containers alone: the sandboxes are listed once per SandboxRelistPeriod,
// and no status is read.
func TestRunListsSandboxesEverySandboxRelistPeriod(t *testing.T) {
	e := newEnv(t, false, fastContainers)
	sbID, sb := e.runSandbox("p", true)
	e.startContainer(sbID, sb, "app", "service")
	e.start()
	e.next(2)
	e.calls("ListPodSandbox", 1)
	e.calls("ListContainers", 1)
	status := e.rt.Calls("ContainerStatus")
	for k := 2; k <= 10; k++ {
		e.step(100 * time.Millisecond)
		e.calls("ListContainers", k)
	}
	e.calls("ListPodSandbox", 1)
	if n := e.rt.Calls("ContainerStatus"); n != status {
		t.Errorf("%d statuses read while nothing changed", n-status)
	}
	if e.fresh(epoch) {
		t.Error("the global time moved with relists of the containers alone")
	}
	e.step(100 * time.Millisecond) // one second after the first relist
	e.calls("ListContainers", 11)
	e.calls("ListPodSandbox", 2)
	if !e.fresh(epoch) {
		t.Error("the global time did not move with the full relist")
	}
	e.step(100 * time.Millisecond)
	e.calls("ListContainers", 12)
	e.calls("ListPodSandbox", 2)
	e.none()
}

// A container that dies is found by the next relist of the containers,
// which then lists the sandboxes too: the event comes with a status of the
// whole pod read after both lists. A sandbox that dies while its
// containers do not change waits for the next full relist.
func TestContainerRelistFindsDeath(t *testing.T) {
	e := newEnv(t, false, fastContainers)
	sbID, sb := e.runSandbox("p", true)
	cID := e.startContainer(sbID, sb, "app", "service")
	e.start()
	if got := describe(e.next(2)); got != "ContainerStarted[sandbox] ContainerStarted" {
		t.Fatalf("first relist: %s", got)
	}
	e.step(100 * time.Millisecond)
	e.calls("ListContainers", 2)
	if err := e.rt.StopContainer(e.ctx, cID, 0); err != nil {
		t.Fatal(err)
	}
	died := e.clk.Now()
	e.step(100 * time.Millisecond)
	if got := describe(e.next(1)); got != "ContainerDied(137)" {
		t.Fatalf("after one relist of the containers: %s", got)
	}
	e.calls("ListPodSandbox", 2)
	st, _ := e.p.Cache().Get("uid-p")
	if len(st.SandboxStatuses) != 1 || st.SandboxStatuses[0].GetState() != runtimeapi.PodSandboxState_SANDBOX_READY || len(st.ContainerStatuses) != 1 {
		t.Fatalf("status after the death: %v", st)
	}
	if !e.fresh(died) {
		t.Error("the relist that found the death did not move the global time")
	}

	if err := e.rt.StopPodSandbox(e.ctx, sbID); err != nil {
		t.Fatal(err)
	}
	for k := 4; k <= 12; k++ { // 300 ms to 1.1 s
		e.step(100 * time.Millisecond)
		e.calls("ListContainers", k)
	}
	e.none()
	e.calls("ListPodSandbox", 2)
	e.step(100 * time.Millisecond) // one second after the full relist that found the death
	if got := describe(e.next(1)); got != "ContainerDied[sandbox]" {
		t.Fatalf("after the full relist: %s", got)
	}
	e.calls("ListPodSandbox", 3)
}

// A new container makes the relist a full one: its sandbox is listed with
// it, so that no status shows a container without its sandbox. When the
// sandboxes cannot be listed, nothing of that relist is taken.
func TestContainerRelistTurnsFullOnNewContainers(t *testing.T) {
	e := newEnv(t, false, fastContainers)
	e.start()
	sbID, sb := e.runSandbox("p", true)
	e.startContainer(sbID, sb, "app", "service")
	e.step(100 * time.Millisecond)
	if got := describe(e.next(2)); got != "ContainerStarted[sandbox] ContainerStarted" {
		t.Fatalf("after the next relist: %s", got)
	}
	st, _ := e.p.Cache().Get("uid-p")
	if st == nil || len(st.SandboxStatuses) != 1 || len(st.ContainerStatuses) != 1 {
		t.Fatalf("status: %v", st)
	}
	e.calls("ListPodSandbox", 2)

	sb2ID, sb2 := e.runSandbox("q", true)
	e.startContainer(sb2ID, sb2, "app", "service")
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
