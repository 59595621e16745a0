package runtimetest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/runtimetest"
)

func TestInjectedErrors(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	boom := errors.New("boom")
	if err := e.rt.InjectFault("ListContainers", runtimetest.Fault{Err: boom, Times: 2}); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.InjectFault("ListContainers", runtimetest.Fault{Err: core.ErrUnavailable, Times: 1}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{boom, boom, core.ErrUnavailable, nil, nil} {
		if _, err := e.rt.ListContainers(e.ctx, nil); !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Errorf("call %d: %v, want %v", i, err, want)
		}
	}
	if n := e.rt.Calls("ListContainers"); n != 5 {
		t.Errorf("Calls: %d, want 5", n)
	}

	if err := e.rt.InjectFault("CreateContainer", runtimetest.Fault{Err: core.ErrUnavailable}); err != nil {
		t.Fatal(err)
	}
	sbID, sb := e.runSandbox("web")
	for range 3 {
		if _, err := e.rt.CreateContainer(e.ctx, sbID, containerConfig("app"), sb); !errors.Is(err, core.ErrUnavailable) {
			t.Errorf("persistent fault: %v", err)
		}
	}
	e.rt.ClearFaults()
	e.create(sbID, sb, containerConfig("app"))
}

func TestFaultForAllMethods(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	if err := e.rt.InjectFault(runtimetest.AllMethods, runtimetest.Fault{Err: core.ErrUnavailable}); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.InjectFault("Version", runtimetest.Fault{Err: core.ErrTimeout, Times: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.Version(e.ctx); !errors.Is(err, core.ErrTimeout) {
		t.Errorf("a method's own fault comes first: %v", err)
	}
	if _, err := e.rt.Version(e.ctx); !errors.Is(err, core.ErrUnavailable) {
		t.Errorf("then the fault of all methods: %v", err)
	}
	if _, err := e.rt.ImageFsInfo(e.ctx); !errors.Is(err, core.ErrUnavailable) {
		t.Errorf("ImageFsInfo: %v", err)
	}
}

func TestInjectedDelay(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	if err := e.rt.InjectFault("RunPodSandbox", runtimetest.Fault{Delay: 3 * time.Second, Times: 2}); err != nil {
		t.Fatal(err)
	}
	done := async(func() error { _, err := e.rt.RunPodSandbox(e.ctx, sandboxConfig("web", true), ""); return err })
	e.waitWaiters(1)
	e.clk.Step(3*time.Second - time.Millisecond)
	e.pending(done)
	e.clk.Step(time.Millisecond)
	if err := e.result(done); err != nil {
		t.Fatal(err)
	}
	list, _ := e.rt.ListPodSandbox(e.ctx, nil)
	if len(list) != 1 || list[0].CreatedAt != epoch.Add(3*time.Second).UnixNano() {
		t.Errorf("the sandbox was made before the delay ended: %v", list)
	}

	ctx, cancel := context.WithCancel(e.ctx)
	done = async(func() error { _, err := e.rt.RunPodSandbox(ctx, sandboxConfig("other", true), ""); return err })
	e.waitWaiters(1)
	cancel()
	if err := e.result(done); !errors.Is(err, context.Canceled) {
		t.Errorf("delayed call whose context ended: %v", err)
	}
	if list, _ := e.rt.ListPodSandbox(e.ctx, nil); len(list) != 1 {
		t.Errorf("%d sandboxes, want the call abandoned", len(list))
	}

	ctx, cancel = context.WithTimeout(e.ctx, -time.Second)
	defer cancel()
	if _, err := e.rt.Version(ctx); !errors.Is(err, core.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("call with an expired context: %v, want core.ErrTimeout", err)
	}
}

func TestInjectFaultRejectsUnknownMethods(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	err := e.rt.InjectFault("ListContainer", runtimetest.Fault{Err: core.ErrUnavailable})
	if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), `"ListContainer"`) {
		t.Fatalf("InjectFault of an unknown method: %v, want core.ErrInvalid naming it", err)
	}
	if _, err := e.rt.ListContainers(context.Background(), nil); err != nil {
		t.Errorf("a rejected fault was applied: %v", err)
	}
}
