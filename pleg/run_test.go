package pleg

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// start runs the PLEG until the test ends.
func (e *env) start() {
	e.t.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- e.p.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			e.t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
	e.eventually("the first relist", func() bool { ok, _ := e.p.Healthy(); return ok })
}

// eventually polls cond in real time; what it waits for is driven by the
// PLEG's goroutines, not by the fake clock.
func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// step advances the fake clock once the PLEG waits on it.
func (e *env) step(d time.Duration) {
	e.t.Helper()
	e.eventually("the PLEG to wait on its clock", e.clk.HasWaiters)
	e.clk.Step(d)
}

func TestRunRelistsEveryPeriod(t *testing.T) {
	e := newEnv(t, true, func(c *Config) { c.Events = EventsOff })
	e.start()
	if e.p.Streaming() {
		t.Fatal("streaming with Events: EventsOff")
	}
	sbID, sb := e.runSandbox("p", true)
	e.startContainer(sbID, sb, "app", "sleep", "3600")
	e.none()
	e.step(DefaultRelistPeriod)
	if got := describe(e.next(2)); got != "ContainerStarted[sandbox] ContainerStarted" {
		t.Fatalf("after one period: %s", got)
	}
}

// Without an event stream (containerd 1.6) the PLEG relists alone.
func TestRunFallsBackWithoutEventStream(t *testing.T) {
	logCore, logs := observer.New(zapcore.InfoLevel)
	e := newEnv(t, false, func(c *Config) { c.Logger = zap.New(logCore) })
	e.start()
	const fallback = "the runtime has no container event stream; relisting only"
	e.eventually("the fallback to relisting", func() bool { return logs.FilterMessage(fallback).Len() > 0 })
	if e.p.Streaming() {
		t.Fatal("streaming on a runtime without events")
	}
	if got := logs.FilterMessage(fallback).Len(); got != 1 {
		t.Errorf("the fallback was logged %d times, want once", got)
	}
	sbID, sb := e.runSandbox("p", true)
	e.startContainer(sbID, sb, "app", "sleep", "3600")
	e.step(DefaultRelistPeriod)
	if got := describe(e.next(2)); got != "ContainerStarted[sandbox] ContainerStarted" {
		t.Fatalf("after one period: %s", got)
	}
}

// With an event stream, changes arrive without waiting for a relist, and
// a broken stream is reconnected.
func TestRunFollowsEventStream(t *testing.T) {
	e := newEnv(t, true)
	e.start()
	e.eventually("the event stream", e.p.Streaming)

	sbID, sb := e.runSandbox("p", true)
	cID := e.startContainer(sbID, sb, "app", "sleep", "3600")
	// The clock never moves: only the stream can deliver these.
	evs := e.next(2)
	if got := describe(evs); got != "ContainerStarted[sandbox] ContainerStarted" {
		t.Fatalf("from the stream: %s", got)
	}
	if err := e.rt.StopContainer(e.ctx, cID, 0); err != nil {
		t.Fatal(err)
	}
	if got := describe(e.next(1)); got != "ContainerDied(137)" {
		t.Fatalf("after a stop, from the stream: %s", got)
	}

	e.rt.BreakEventStreams()
	e.eventually("the PLEG to notice the broken stream", func() bool { return !e.p.Streaming() })
	e.step(DefaultStreamRetryMin)
	e.eventually("the stream to reconnect", e.p.Streaming)
	if err := e.rt.RemoveContainer(e.ctx, cID); err != nil {
		t.Fatal(err)
	}
	if got := describe(e.next(1)); got != "ContainerRemoved" {
		t.Fatalf("after reconnecting: %s", got)
	}
	if n := testutilCount(t, e, "kubelet_evented_pleg_connection_success_count"); n != 2 {
		t.Errorf("stream connections counted: %v, want 2", n)
	}
}

func testutilCount(t *testing.T, e *env, name string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}
