package pleg

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/runtimetest"
)

const image = "localhost/busybox:latest"

var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

type env struct {
	t   *testing.T
	ctx context.Context
	clk *testingclock.FakeClock
	rt  *runtimetest.Runtime
	p   *PLEG
	sub *Subscription
	reg *prometheus.Registry
}

func newEnv(t *testing.T, events bool, mutate ...func(*Config)) *env {
	t.Helper()
	clk := testingclock.NewFakeClock(epoch)
	rt, err := runtimetest.New(runtimetest.Config{Clock: clk, Images: []string{image}, Events: events})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg := Config{Runtime: rt, Clock: clk, Registerer: reg}
	for _, m := range mutate {
		m(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sub := p.Watch()
	t.Cleanup(sub.Close)
	return &env{t: t, ctx: context.Background(), clk: clk, rt: rt, p: p, sub: sub, reg: reg}
}

func (e *env) runSandbox(name string, hostNetwork bool) (string, *runtimeapi.PodSandboxConfig) {
	e.t.Helper()
	net := runtimeapi.NamespaceMode_POD
	if hostNetwork {
		net = runtimeapi.NamespaceMode_NODE
	}
	uid := "uid-" + name
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "ns", Uid: uid},
		Labels:   map[string]string{core.LabelPodName: name, core.LabelPodNamespace: "ns", core.LabelPodUID: uid},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: net, Pid: runtimeapi.NamespaceMode_CONTAINER},
		}},
	}
	id, err := e.rt.RunPodSandbox(e.ctx, cfg, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return id, cfg
}

func (e *env) startContainer(sbID string, sb *runtimeapi.PodSandboxConfig, name string, cmd ...string) string {
	e.t.Helper()
	md := sb.GetMetadata()
	id, err := e.rt.CreateContainer(e.ctx, sbID, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: image},
		Command:  cmd,
		Labels: map[string]string{core.LabelPodName: md.Name, core.LabelPodNamespace: md.Namespace,
			core.LabelPodUID: md.Uid, core.LabelContainerName: name},
		Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
		}},
	}, sb)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.rt.StartContainer(e.ctx, id); err != nil {
		e.t.Fatal(err)
	}
	return id
}

func (e *env) relist() {
	e.t.Helper()
	if err := e.p.Relist(e.ctx); err != nil {
		e.t.Fatalf("Relist: %v", err)
	}
}

// next returns the events delivered so far, waiting for at least n.
func (e *env) next(n int) []core.PodLifecycleEvent {
	e.t.Helper()
	var got []core.PodLifecycleEvent
	timeout := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case ev := <-e.sub.Events():
			got = append(got, ev)
		case <-timeout:
			e.t.Fatalf("got %d events, want %d: %s", len(got), n, describe(got))
		}
	}
	for {
		select {
		case ev := <-e.sub.Events():
			got = append(got, ev)
		default:
			return got
		}
	}
}

// none checks that nothing was delivered.
func (e *env) none() {
	e.t.Helper()
	select {
	case ev := <-e.sub.Events():
		e.t.Fatalf("unexpected event %s", describe([]core.PodLifecycleEvent{ev}))
	default:
	}
}

// describe renders events compactly: "Type(id-prefix,exit)".
func describe(evs []core.PodLifecycleEvent) string {
	var parts []string
	for _, ev := range evs {
		s := string(ev.Type)
		if ev.Sandbox {
			s += "[sandbox]"
		}
		if ev.ExitCode != nil {
			s += fmt.Sprintf("(%d)", *ev.ExitCode)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func TestRelistLifecycle(t *testing.T) {
	e := newEnv(t, false)
	e.relist()
	e.none()

	sbID, sb := e.runSandbox("web", false)
	cID := e.startContainer(sbID, sb, "app", "sleep", "3600")
	e.relist()
	evs := e.next(2)
	if got := describe(evs); got != "ContainerStarted[sandbox] ContainerStarted" {
		t.Fatalf("after start: %s", got)
	}
	if evs[0].ContainerID != sbID || evs[1].ContainerID != cID || evs[1].PodUID != "uid-web" {
		t.Errorf("events name the wrong objects: %+v", evs)
	}
	st, err := e.p.Cache().Get("uid-web")
	if err != nil || st == nil {
		t.Fatalf("cache: %v, %v", st, err)
	}
	if st.Name != "web" || st.Namespace != "ns" || len(st.SandboxStatuses) != 1 || len(st.ContainerStatuses) != 1 || len(st.IPs) != 1 {
		t.Errorf("cached status %+v", st)
	}
	ip := st.IPs[0]

	// Nothing changed: nothing to say.
	e.relist()
	e.none()

	if err := e.rt.ExitContainer(cID, runtimetest.Exit{Code: 3}); err != nil {
		t.Fatal(err)
	}
	e.relist()
	evs = e.next(1)
	if got := describe(evs); got != "ContainerDied(3)" {
		t.Fatalf("after exit: %s", got)
	}

	if err := e.rt.RemoveContainer(e.ctx, cID); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.StopPodSandbox(e.ctx, sbID); err != nil {
		t.Fatal(err)
	}
	e.relist()
	if got := describe(e.next(2)); got != "ContainerDied[sandbox] ContainerRemoved" {
		t.Fatalf("after removal and sandbox stop: %s", got)
	}
	st, _ = e.p.Cache().Get("uid-web")
	if len(st.IPs) != 1 || st.IPs[0] != ip {
		t.Errorf("IPs after the sandbox stopped: %v, want the pod's last IP %s kept", st.IPs, ip)
	}

	if err := e.rt.RemovePodSandbox(e.ctx, sbID); err != nil {
		t.Fatal(err)
	}
	e.relist()
	if got := describe(e.next(1)); got != "ContainerRemoved[sandbox]" {
		t.Fatalf("after sandbox removal: %s", got)
	}
	if st, err := e.p.Cache().Get("uid-web"); st != nil || err != nil {
		t.Errorf("cache still has the vanished pod: %+v, %v", st, err)
	}
	if len(e.p.pods) != 0 || len(e.p.entities) != 0 {
		t.Errorf("records of a vanished pod kept: %d pods, %d entities", len(e.p.pods), len(e.p.entities))
	}
}

// Between two relists a container started and exited: both are reported,
// with the exit code. One that was running and vanished dies, then is
// removed.
func TestRelistWithinOnePeriod(t *testing.T) {
	e := newEnv(t, false)
	sbID, sb := e.runSandbox("job", true)
	e.relist()
	e.next(1)

	quick := e.startContainer(sbID, sb, "quick", "sh", "-c", "exit 7")
	e.relist()
	evs := e.next(2)
	if got := describe(evs); got != "ContainerStarted ContainerDied(7)" || evs[0].ContainerID != quick {
		t.Fatalf("container that started and died within one period: %s", got)
	}

	gone := e.startContainer(sbID, sb, "gone", "sleep", "3600")
	e.relist()
	e.next(1)
	if err := e.rt.StopContainer(e.ctx, gone, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.RemoveContainer(e.ctx, gone); err != nil {
		t.Fatal(err)
	}
	e.relist()
	evs = e.next(2)
	if got := describe(evs); got != "ContainerDied ContainerRemoved" || evs[0].ContainerID != gone {
		t.Fatalf("container that died and was removed within one period: %s", got)
	}
}

// A status that cannot be read holds the pod's events back, records the
// error in the cache, and is retried on the next relist.
func TestRelistRetriesFailedStatus(t *testing.T) {
	e := newEnv(t, false)
	sbID, sb := e.runSandbox("flaky", true)
	e.relist()
	e.next(1)
	boom := fmt.Errorf("runtime hiccup: %w", core.ErrUnavailable)
	if err := e.rt.InjectFault("ContainerStatus", runtimetest.Fault{Err: boom, Times: 1}); err != nil {
		t.Fatal(err)
	}
	e.startContainer(sbID, sb, "app", "sleep", "3600")
	e.relist()
	e.none()
	if _, err := e.p.Cache().Get("uid-flaky"); !errors.Is(err, core.ErrUnavailable) {
		t.Errorf("cache error after a failed status: %v, want the failure", err)
	}
	e.relist()
	if got := describe(e.next(1)); got != "ContainerStarted" {
		t.Fatalf("after the retry: %s", got)
	}
	if st, err := e.p.Cache().Get("uid-flaky"); err != nil || len(st.ContainerStatuses) != 1 {
		t.Errorf("cache after the retry: %+v, %v", st, err)
	}
}

func TestRelistPodAndReinspect(t *testing.T) {
	e := newEnv(t, false)
	aID, a := e.runSandbox("a", true)
	bID, b := e.runSandbox("b", true)
	e.relist()
	e.next(2)

	e.startContainer(aID, a, "app", "sleep", "3600")
	e.startContainer(bID, b, "app", "sleep", "3600")
	if err := e.p.RelistPod(e.ctx, "uid-a"); err != nil {
		t.Fatal(err)
	}
	evs := e.next(1)
	if len(evs) != 1 || evs[0].PodUID != "uid-a" || evs[0].Type != core.ContainerStarted {
		t.Fatalf("RelistPod(a): %+v", evs)
	}
	e.relist()
	if evs := e.next(1); len(evs) != 1 || evs[0].PodUID != "uid-b" {
		t.Fatalf("full relist after RelistPod(a): %+v, want only b's start", evs)
	}

	before, _ := e.p.Cache().Get("uid-a")
	e.clk.Step(time.Second)
	e.p.Reinspect("uid-a")
	e.relist()
	e.none()
	after, _ := e.p.Cache().Get("uid-a")
	if !after.ObservedAt.After(before.ObservedAt) {
		t.Errorf("Reinspect did not refresh the status: observed %v then %v", before.ObservedAt, after.ObservedAt)
	}
}

// A pod worker waits for a status newer than its last action.
func TestCacheNewerThanAfterRelist(t *testing.T) {
	e := newEnv(t, false)
	e.relist()
	acted := e.clk.Now()
	e.clk.Step(time.Millisecond)
	done := make(chan *core.PodStatus)
	go func() {
		st, err := e.p.Cache().GetNewerThan(e.ctx, "uid-w", acted)
		if err != nil {
			t.Error(err)
		}
		done <- st
	}()
	sbID, sb := e.runSandbox("w", true)
	e.startContainer(sbID, sb, "app", "sleep", "3600")
	e.relist()
	select {
	case st := <-done:
		if st == nil || len(st.ContainerStatuses) != 1 {
			t.Errorf("GetNewerThan: %+v", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("GetNewerThan did not return after a relist")
	}
}

func TestHealthy(t *testing.T) {
	e := newEnv(t, false)
	if ok, err := e.p.Healthy(); ok || err == nil || err.Error() != "pleg has yet to be successful" {
		t.Errorf("before the first relist: %v, %v", ok, err)
	}
	e.relist()
	if ok, err := e.p.Healthy(); !ok || err != nil {
		t.Errorf("after a relist: %v, %v", ok, err)
	}
	e.clk.Step(3*time.Minute + time.Second)
	ok, err := e.p.Healthy()
	if ok || err == nil || !strings.Contains(err.Error(), "pleg was last seen active 3m1s ago; threshold is 3m0s") {
		t.Errorf("after 3m1s without a relist: %v, %v", ok, err)
	}
	if err := e.rt.InjectFault("ListPodSandbox", runtimetest.Fault{Err: core.ErrUnavailable}); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Relist(e.ctx); !errors.Is(err, core.ErrUnavailable) {
		t.Errorf("relist against a failing runtime: %v", err)
	}
	if ok, _ := e.p.Healthy(); ok {
		t.Error("a failed relist made the PLEG healthy")
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, false)
	aID, a := e.runSandbox("a", true)
	e.startContainer(aID, a, "app", "sleep", "3600")
	e.startContainer(aID, a, "done", "sh", "-c", "exit 0")
	bID, _ := e.runSandbox("b", true)
	if err := e.rt.StopPodSandbox(e.ctx, bID); err != nil {
		t.Fatal(err)
	}
	e.relist()
	e.clk.Step(time.Second)
	e.relist()
	for name, want := range map[string]float64{
		"kubelet_running_pods": 1,
	} {
		if got := gauge(t, e.reg, name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for state, want := range map[string]float64{"running": 1, "exited": 1, "created": 0, "unknown": 0} {
		if got := gauge(t, e.reg, "kubelet_running_containers", map[string]string{"container_state": state}); got != want {
			t.Errorf("kubelet_running_containers{container_state=%q} = %v, want %v", state, got, want)
		}
	}
	if got := gauge(t, e.reg, "kubelet_pleg_last_seen_seconds", nil); got != float64(epoch.Add(time.Second).Unix()) {
		t.Errorf("kubelet_pleg_last_seen_seconds = %v", got)
	}
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	samples := map[string]uint64{}
	for _, mf := range mfs {
		if h := mf.GetMetric()[0].GetHistogram(); h != nil {
			samples[mf.GetName()] = h.GetSampleCount()
		}
	}
	// Two relists: two durations, one interval between them.
	if samples["kubelet_pleg_relist_duration_seconds"] != 2 || samples["kubelet_pleg_relist_interval_seconds"] != 1 {
		t.Errorf("relist histogram samples %v", samples)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s%v not found", name, labels)
	return 0
}

func TestConfigValidation(t *testing.T) {
	rt, _ := runtimetest.New(runtimetest.Config{})
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Runtime is required"},
		{Config{Runtime: rt, RelistPeriod: time.Minute, RelistThreshold: time.Second}, "RelistThreshold 1s must exceed RelistPeriod 1m0s"},
		{Config{Runtime: rt, StreamRetryMin: time.Minute, StreamRetryMax: time.Second}, "StreamRetryMax 1s is below StreamRetryMin 1m0s"},
		{Config{Runtime: rt, Events: 7}, "Events 7 is not an EventMode"},
		{Config{Runtime: rt, SandboxRelistPeriod: -time.Second}, "SandboxRelistPeriod -1s must be positive"},
	} {
		_, err := New(tc.cfg)
		if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v): %v, want core.ErrInvalid with %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := New(Config{Runtime: rt}); err != nil {
		t.Errorf("New with defaults: %v", err)
	}
}
