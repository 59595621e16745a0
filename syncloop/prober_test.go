package syncloop

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/nodekit/nodekit/core"
)

// probeStep is one scripted attempt.
type probeStep struct {
	result ProbeResult
	err    error
	// block makes the attempt wait for its ctx to end.
	block bool
}

var (
	pS = probeStep{result: ProbeSuccess}
	pF = probeStep{result: ProbeFailure}
	pE = probeStep{err: errors.New("runtime unavailable")}
)

// scriptedProber answers each attempt of a probe, keyed "<containerID>/<kind>",
// with the next step of its script; the last step repeats.
type scriptedProber struct {
	t0 time.Time

	mu        sync.Mutex
	scripts   map[string][]probeStep
	calls     map[string][]time.Duration
	podIPs    []string
	cancelled []string
}

func newScriptedProber(scripts map[string][]probeStep) *scriptedProber {
	return &scriptedProber{t0: time.Now(), scripts: scripts, calls: map[string][]time.Duration{}}
}

func probeKindOf(c *v1.Container, p *v1.Probe) ProbeKind {
	switch p {
	case c.LivenessProbe:
		return ProbeLiveness
	case c.ReadinessProbe:
		return ProbeReadiness
	case c.StartupProbe:
		return ProbeStartup
	}
	panic("probe not of the container")
}

func (f *scriptedProber) Run(ctx context.Context, c *v1.Container, p *v1.Probe, containerID, podIP string) (ProbeResult, string, error) {
	key := containerID + "/" + probeKindOf(c, p).String()
	f.mu.Lock()
	f.calls[key] = append(f.calls[key], time.Since(f.t0))
	f.podIPs = append(f.podIPs, podIP)
	script := f.scripts[key]
	if len(script) == 0 {
		f.mu.Unlock()
		return ProbeSuccess, "", nil
	}
	step := script[0]
	if len(script) > 1 {
		f.scripts[key] = script[1:]
	}
	f.mu.Unlock()
	if step.block {
		<-ctx.Done()
		f.mu.Lock()
		f.cancelled = append(f.cancelled, key)
		f.mu.Unlock()
		return ProbeFailure, "cancelled", nil
	}
	return step.result, "", step.err
}

func (f *scriptedProber) cancelledKeys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cancelled)
}

func (f *scriptedProber) probedIPs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.podIPs)
}

// callTimes returns the times of the attempts of key, in seconds since the
// prober was made.
func (f *scriptedProber) callTimes(key string) []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int
	for _, d := range f.calls[key] {
		out = append(out, int(d/time.Second))
	}
	return out
}

// probeHarness runs a ProbeManager over a scriptedProber in a synctest
// bubble.
type probeHarness struct {
	t  *testing.T
	m  *ProbeManager
	fp *scriptedProber
	t0 time.Time

	mu      sync.Mutex
	changes []string

	cancel context.CancelFunc
	done   chan error
}

func newProbeHarness(t *testing.T, fp *scriptedProber, cfg ProbeManagerConfig) *probeHarness {
	t.Helper()
	h := &probeHarness{t: t, fp: fp, t0: fp.t0, done: make(chan error, 1)}
	cfg.Runner = fp
	if cfg.Jitter == nil {
		cfg.Jitter = func() float64 { return 0 }
	}
	cfg.OnChange = func(uid types.UID, kind ProbeKind, id string, r ProbeResult) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.changes = append(h.changes, fmt.Sprintf("%ds %s %s %s", int(time.Since(h.t0)/time.Second), kind, id, r))
	}
	m, err := NewProbeManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	return h
}

func (h *probeHarness) run() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.m.Run(ctx) }()
}

func (h *probeHarness) stop() {
	h.t.Helper()
	h.cancel()
	if err := <-h.done; !errors.Is(err, context.Canceled) {
		h.t.Errorf("Run returned %v, want context.Canceled", err)
	}
}

// sleepUntil advances the bubble's time to sec seconds after the start and
// lets every goroutine settle.
func (h *probeHarness) sleepUntil(sec float64) {
	time.Sleep(time.Until(h.t0.Add(time.Duration(sec * float64(time.Second)))))
	synctest.Wait()
}

func (h *probeHarness) takeChanges() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.changes
	h.changes = nil
	return c
}

func (h *probeHarness) checkChanges(want ...string) {
	h.t.Helper()
	if got := h.takeChanges(); !slices.Equal(got, want) {
		h.t.Errorf("OnChange calls:\n got %q\nwant %q", got, want)
	}
}

func (h *probeHarness) checkCalls(key string, want ...int) {
	h.t.Helper()
	if got := h.fp.callTimes(key); !slices.Equal(got, want) {
		h.t.Errorf("attempts of %s at %v s, want %v", key, got, want)
	}
}

func (h *probeHarness) checkResults(uid types.UID, liveness, startup map[string]ProbeResult) {
	h.t.Helper()
	l, s := h.m.Results(uid)
	if fmt.Sprint(l) != fmt.Sprint(liveness) || fmt.Sprint(s) != fmt.Sprint(startup) {
		h.t.Errorf("Results = %v %v, want %v %v", l, s, liveness, startup)
	}
}

func execProbe(period, success, failure int32) *v1.Probe {
	return &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"check"}}},
		PeriodSeconds: period, SuccessThreshold: success, FailureThreshold: failure, TimeoutSeconds: 1}
}

func probePod(uid string, cs ...v1.Container) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: types.UID(uid)}, Spec: v1.PodSpec{Containers: cs}}
}

// running is a container instance the runtime reports running since
// startedAt.
func running(id, name string, startedAt time.Time) *runtimeapi.ContainerStatus {
	return &runtimeapi.ContainerStatus{Id: id, Metadata: &runtimeapi.ContainerMetadata{Name: name},
		State: runtimeapi.ContainerState_CONTAINER_RUNNING, CreatedAt: startedAt.UnixNano(), StartedAt: startedAt.UnixNano()}
}

func exited(id, name string) *runtimeapi.ContainerStatus {
	return &runtimeapi.ContainerStatus{Id: id, Metadata: &runtimeapi.ContainerMetadata{Name: name},
		State: runtimeapi.ContainerState_CONTAINER_EXITED}
}

func readySandbox(ip string) *runtimeapi.PodSandboxStatus {
	return &runtimeapi.PodSandboxStatus{Id: "sb-" + ip, State: runtimeapi.PodSandboxState_SANDBOX_READY,
		Network: &runtimeapi.PodSandboxNetworkStatus{Ip: ip}}
}

func podStatus(pod *v1.Pod, cs ...*runtimeapi.ContainerStatus) *core.PodStatus {
	return &core.PodStatus{UID: pod.UID, Name: pod.Name, Namespace: pod.Namespace,
		SandboxStatuses: []*runtimeapi.PodSandboxStatus{readySandbox("10.0.0.1")}, ContainerStatuses: cs}
}

func TestProbeLivenessFailureThreshold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fp := newScriptedProber(map[string][]probeStep{"c1/Liveness": {pS, pF, pF, pS, pF, pF, pF, pS}})
		reg := prometheus.NewPedanticRegistry()
		h := newProbeHarness(t, fp, ProbeManagerConfig{Registerer: reg})
		pod := probePod("u1", v1.Container{Name: "app", LivenessProbe: execProbe(10, 1, 3)})
		h.run()
		h.m.SyncPod(pod, podStatus(pod, running("c1", "app", time.Now())))
		synctest.Wait()
		h.checkResults("u1", map[string]ProbeResult{"c1": ProbeSuccess}, map[string]ProbeResult{})

		// Two failures in a row are below the threshold of 3; the third
		// run of failures reaches it.
		h.sleepUntil(55)
		h.checkResults("u1", map[string]ProbeResult{"c1": ProbeSuccess}, map[string]ProbeResult{})
		h.sleepUntil(65)
		h.checkResults("u1", map[string]ProbeResult{"c1": ProbeFailure}, map[string]ProbeResult{})
		h.checkChanges("0s Liveness c1 Success", "60s Liveness c1 Failure")
		if !h.m.Ready("u1", "c1") || !h.m.Started("u1", "c1") {
			t.Error("a container without readiness and startup probes is ready and started while it runs")
		}

		// The failed instance is probed no more.
		h.sleepUntil(200)
		h.checkCalls("c1/Liveness", 0, 10, 20, 30, 40, 50, 60)

		labels := map[string]string{"probe_type": "Liveness", "container": "app", "pod": "web", "namespace": "ns", "pod_uid": "u1"}
		labels["result"] = "successful"
		s := probeValue(t, reg, "prober_probe_total", labels)
		labels["result"] = "failed"
		f := probeValue(t, reg, "prober_probe_total", labels)
		if s != 2 || f != 5 {
			t.Errorf("prober_probe_total successful %v failed %v, want 2 and 5", s, f)
		}
		d := probeValue(t, reg, "prober_probe_duration_seconds", map[string]string{"probe_type": "Liveness", "container": "app", "pod": "web", "namespace": "ns"})
		if n := d; n != 2 {
			t.Errorf("prober_probe_duration_seconds observed %v rounds, want the 2 successful", n)
		}
		if n := seriesCount(t, reg, "prober_probe_total"); n != 2 {
			t.Errorf("%d prober_probe_total series, want 2", n)
		}

		h.m.RemovePod("u1")
		if n := seriesCount(t, reg, "prober_probe_total", "prober_probe_duration_seconds"); n != 0 {
			t.Errorf("%d probe series left after RemovePod", n)
		}
		h.checkResults("u1", map[string]ProbeResult{}, map[string]ProbeResult{})
		h.stop()
	})
}

// probeValue returns the value of the series of family name with exactly
// labels: a counter's value, or a histogram's number of observations.
func probeValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

// seriesCount counts the series of the families names.
func seriesCount(t *testing.T, reg prometheus.Gatherer, names ...string) int {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		if slices.Contains(names, f.GetName()) {
			n += len(f.GetMetric())
		}
	}
	return n
}

func TestProbeReadinessThresholds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fp := newScriptedProber(map[string][]probeStep{"c1/Readiness": {pS, pS, pF, pS, pF, pF}})
		h := newProbeHarness(t, fp, ProbeManagerConfig{})
		pod := probePod("u1", v1.Container{Name: "app", ReadinessProbe: execProbe(10, 2, 2)})
		h.run()
		h.m.SyncPod(pod, podStatus(pod, running("c1", "app", time.Now())))
		for _, step := range []struct {
			at    float64
			ready bool
		}{{5, false}, {15, true}, {25, true}, {45, true}, {55, false}, {95, false}} {
			h.sleepUntil(step.at)
			if got := h.m.Ready("u1", "c1"); got != step.ready {
				t.Errorf("at %vs Ready = %v, want %v", step.at, got, step.ready)
			}
		}
		h.checkChanges("0s Readiness c1 Failure", "10s Readiness c1 Success", "50s Readiness c1 Failure")
		// A readiness probe goes on after failing.
		h.checkCalls("c1/Readiness", 0, 10, 20, 30, 40, 50, 60, 70, 80, 90)
		// Readiness results are not for Plan.
		h.checkResults("u1", map[string]ProbeResult{}, map[string]ProbeResult{})
		h.stop()
	})
}

func TestProbeInitialDelay(t *testing.T) {
	for _, tc := range []struct {
		name       string
		startedAgo time.Duration
		want       []int
	}{
		// Rounds at 30, 40 and 50 s after the manager's start: the
		// container started at 30 s, its delay ends at 55 s.
		{"just started", 0, []int{60, 70}},
		// It started 25 s ago: the delay is over.
		{"started earlier", 25 * time.Second, []int{30, 40, 50, 60, 70}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fp := newScriptedProber(nil)
				h := newProbeHarness(t, fp, ProbeManagerConfig{})
				h.run()
				h.sleepUntil(30)
				p := execProbe(10, 1, 3)
				p.InitialDelaySeconds = 25
				pod := probePod("u1", v1.Container{Name: "app", LivenessProbe: p})
				h.m.SyncPod(pod, podStatus(pod, running("c1", "app", time.Now().Add(-tc.startedAgo))))
				h.sleepUntil(75)
				h.checkCalls("c1/Liveness", tc.want...)
				h.stop()
			})
		})
	}
}

func TestProbeStartupGatesLivenessAndReadiness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fp := newScriptedProber(map[string][]probeStep{"c1/Startup": {pF, pS}})
		h := newProbeHarness(t, fp, ProbeManagerConfig{})
		pod := probePod("u1", v1.Container{Name: "app",
			StartupProbe:   execProbe(10, 1, 3),
			LivenessProbe:  execProbe(7, 1, 3),
			ReadinessProbe: execProbe(30, 1, 3)})
		h.run()
		h.m.SyncPod(pod, podStatus(pod, running("c1", "app", time.Now())))

		h.sleepUntil(5)
		if h.m.Started("u1", "c1") || h.m.Ready("u1", "c1") {
			t.Error("started or ready before the startup probe succeeded")
		}
		h.checkResults("u1", map[string]ProbeResult{"c1": ProbeSuccess}, map[string]ProbeResult{"c1": ProbeUnknown})

		h.sleepUntil(12)
		if !h.m.Started("u1", "c1") || !h.m.Ready("u1", "c1") {
			t.Error("not started and ready after the startup and readiness probes succeeded")
		}
		h.checkResults("u1", map[string]ProbeResult{"c1": ProbeSuccess}, map[string]ProbeResult{"c1": ProbeSuccess})

		h.sleepUntil(75)
		// The startup probe stops after its success; the readiness probe
		// runs at once then, and its period counts from there; liveness
		// waits for its next tick.
		h.checkCalls("c1/Startup", 0, 10)
		h.checkCalls("c1/Readiness", 10, 40, 70)
		h.checkCalls("c1/Liveness", 14, 21, 28, 35, 42, 49, 56, 63, 70)
		h.checkChanges("0s Liveness c1 Success", "0s Readiness c1 Failure", "0s Startup c1 Unknown",
			"10s Startup c1 Success", "10s Readiness c1 Success")
		h.stop()
	})
}

func TestProbeStartupFailureHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fp := newScriptedProber(map[string][]probeStep{"c1/Startup": {pF}})
		h := newProbeHarness(t, fp, ProbeManagerConfig{})
		pod := probePod("u1", v1.Container{Name: "app", StartupProbe: execProbe(10, 1, 2), LivenessProbe: execProbe(10, 1, 1)})
		h.run()
		h.m.SyncPod(pod, podStatus(pod, running("c1", "app", time.Now())))
		h.sleepUntil(100)
		h.checkCalls("c1/Startup", 0, 10)
		h.checkCalls("c1/Liveness")
		h.checkResults("u1", map[string]ProbeResult{"c1": ProbeSuccess}, map[string]ProbeResult{"c1": ProbeFailure})
		h.checkChanges("0s Liveness c1 Success", "0s Startup c1 Unknown", "10s Startup c1 Failure")
		if h.m.Started("u1", "c1") {
			t.Error("started after its startup probe failed")
		}
		h.stop()
	})
}

func TestProbeNewInstanceGetsFreshWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fp := newScriptedProber(map[string][]probeStep{"c1/Liveness": {pF}, "c2/Liveness": {pS, pF}})
		h := newProbeHarness(t, fp, ProbeManagerConfig{})
		pod := probePod("u1", v1.Container{Name: "app", LivenessProbe: execProbe(10, 1, 1)})
		h.run()
		h.m.SyncPod(pod, podStatus(pod, running("c1", "app", time.Now())))
		h.sleepUntil(5)
		h.checkResults("u1", map[string]ProbeResult{"c1": ProbeFailure}, map[string]ProbeResult{})

		// The old instance still runs while the new one starts: only the
		// newest instance of a name is probed.
		h.sleepUntil(25)
		h.m.SyncPod(pod, podStatus(pod, running("c2", "app", time.Now()), running("c1", "app", time.Now().Add(-time.Minute))))
		synctest.Wait()
		h.checkResults("u1", map[string]ProbeResult{"c2": ProbeSuccess}, map[string]ProbeResult{})
		if h.m.Ready("u1", "c1") || !h.m.Ready("u1", "c2") {
			t.Error("the replaced instance is ready, or the new one is not")
		}
		h.sleepUntil(40)
		h.m.SyncPod(pod, podStatus(pod, running("c2", "app", time.Now().Add(-15*time.Second)), exited("c1", "app")))
		h.sleepUntil(100)
		h.checkCalls("c1/Liveness", 0)
		h.checkCalls("c2/Liveness", 25, 35)
		h.checkResults("u1", map[string]ProbeResult{"c2": ProbeFailure}, map[string]ProbeResult{})
		h.checkChanges("0s Liveness c1 Success", "0s Liveness c1 Failure", "25s Liveness c2 Success", "35s Liveness c2 Failure")

		// Once it is gone from the status, its results go too.
		h.m.SyncPod(pod, podStatus(pod, exited("c2", "app")))
		h.checkResults("u1", map[string]ProbeResult{}, map[string]ProbeResult{})
		if h.m.Ready("u1", "c2") || h.m.Started("u1", "c2") {
			t.Error("an exited container is ready or started")
		}
		h.stop()
	})
}

func TestProbeRemovePodStopsWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fp := newScriptedProber(map[string][]probeStep{"c1/Readiness": {pS, {block: true}}})
		h := newProbeHarness(t, fp, ProbeManagerConfig{})
		pod := probePod("u1", v1.Container{Name: "app", LivenessProbe: execProbe(10, 1, 3), ReadinessProbe: execProbe(10, 1, 3)})
		st := podStatus(pod, running("c1", "app", time.Now()))
		// Syncs before Run are remembered; syncing again adds no worker.
		h.m.SyncPod(pod, st)
		h.m.SyncPod(pod, st)
		h.sleepUntil(3)
		h.checkCalls("c1/Liveness")
		h.run()
		h.sleepUntil(15)
		h.m.SyncPod(pod, st)
		h.checkCalls("c1/Liveness", 3, 13)
		h.checkCalls("c1/Readiness", 3, 13)
		if !h.m.Ready("u1", "c1") {
			t.Error("not ready after its readiness probe succeeded")
		}

		// The second readiness attempt is in flight: RemovePod cancels it.
		h.m.RemovePod("u1")
		synctest.Wait()
		if fp.cancelledKeys() == nil {
			t.Error("the attempt in flight was not cancelled")
		}
		if h.m.Ready("u1", "c1") {
			t.Error("a removed pod's container is ready")
		}
		h.sleepUntil(100)
		h.checkCalls("c1/Liveness", 3, 13)
		h.checkCalls("c1/Readiness", 3, 13)
		h.checkResults("u1", map[string]ProbeResult{}, map[string]ProbeResult{})
		h.stop()
	})
}

func TestProbeRunnerErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		unknown := probeStep{result: ProbeUnknown}
		fp := newScriptedProber(map[string][]probeStep{"c1/Liveness": {pE, pE, pS, pE, pE, pE, unknown}})
		reg := prometheus.NewPedanticRegistry()
		h := newProbeHarness(t, fp, ProbeManagerConfig{Registerer: reg})
		pod := probePod("u1", v1.Container{Name: "app", LivenessProbe: execProbe(10, 1, 1)})
		h.run()
		h.m.SyncPod(pod, podStatus(pod, running("c1", "app", time.Now())))
		h.sleepUntil(15)
		// An attempt that errors is repeated, up to 3 times a round; a
		// round whose attempts all err counts for nothing.
		h.checkCalls("c1/Liveness", 0, 0, 0, 10, 10, 10)
		h.checkResults("u1", map[string]ProbeResult{"c1": ProbeSuccess}, map[string]ProbeResult{})
		// Unknown without an error is a failure.
		h.sleepUntil(25)
		h.checkResults("u1", map[string]ProbeResult{"c1": ProbeFailure}, map[string]ProbeResult{})
		labels := map[string]string{"probe_type": "Liveness", "container": "app", "pod": "web", "namespace": "ns", "pod_uid": "u1"}
		for _, result := range []string{"successful", "failed"} {
			labels["result"] = result
			if v := probeValue(t, reg, "prober_probe_total", labels); v != 1 {
				t.Errorf("prober_probe_total %s = %v, want 1", result, v)
			}
		}
		if n := seriesCount(t, reg, "prober_probe_total"); n != 2 {
			t.Errorf("%d prober_probe_total series, want 2", n)
		}
		h.stop()
	})
}

func TestProbeFirstRoundJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fp := newScriptedProber(nil)
		h := newProbeHarness(t, fp, ProbeManagerConfig{Jitter: func() float64 { return 0.5 }})
		h.run()
		// The manager was just created: an agent restart. The first round
		// waits a random part of the period.
		a := probePod("a", v1.Container{Name: "app", LivenessProbe: execProbe(10, 1, 3)})
		h.m.SyncPod(a, podStatus(a, running("a1", "app", time.Now())))
		h.sleepUntil(12)
		// Later, a new container is probed at once.
		b := probePod("b", v1.Container{Name: "app", LivenessProbe: execProbe(10, 1, 3)})
		h.m.SyncPod(b, podStatus(b, running("b1", "app", time.Now())))
		h.sleepUntil(30)
		h.checkCalls("a1/Liveness", 5, 15, 25)
		h.checkCalls("b1/Liveness", 12, 22)
		h.stop()
	})
}

func TestProbeDeletedPodShutsDownQuietly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fp := newScriptedProber(map[string][]probeStep{"c1/Liveness": {pF}, "s1/Startup": {pF}})
		h := newProbeHarness(t, fp, ProbeManagerConfig{})
		pod := probePod("u1",
			v1.Container{Name: "app", LivenessProbe: execProbe(10, 1, 3), ReadinessProbe: execProbe(10, 1, 3)},
			v1.Container{Name: "slow", StartupProbe: execProbe(10, 1, 10)})
		h.run()
		st := podStatus(pod, running("c1", "app", time.Now()), running("s1", "slow", time.Now()))
		h.m.SyncPod(pod, st)
		h.sleepUntil(15)
		h.takeChanges()

		deleted := pod.DeepCopy()
		deleted.DeletionTimestamp = &metav1.Time{Time: time.Now()}
		h.m.SyncPod(deleted, st)
		h.checkResults("u1", map[string]ProbeResult{"c1": ProbeSuccess}, map[string]ProbeResult{"s1": ProbeSuccess})
		h.checkChanges("15s Startup s1 Success")
		h.sleepUntil(45)
		h.checkCalls("c1/Liveness", 0, 10)
		h.checkCalls("s1/Startup", 0, 10)
		h.checkCalls("c1/Readiness", 0, 10, 20, 30, 40)
		h.stop()
	})
}

func TestProbeAdoptedContainers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fp := newScriptedProber(map[string][]probeStep{"c1/Readiness": {pF}, "c2/Startup": {pF}})
		h := newProbeHarness(t, fp, ProbeManagerConfig{})
		spec := v1.Container{Name: "app", StartupProbe: execProbe(10, 1, 3), LivenessProbe: execProbe(10, 1, 3), ReadinessProbe: execProbe(10, 1, 3)}
		// The pod was ready and its container started before the agent
		// restarted.
		ready := probePod("u1", spec)
		ready.Status.Conditions = []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue}}
		ready.Status.ContainerStatuses = []v1.ContainerStatus{{Name: "app", Started: ptr.To(true)}}
		// This one had not started.
		pending := probePod("u2", spec)
		pending.Status.Conditions = []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue}}
		// This one was not ready.
		notReady := probePod("u3", v1.Container{Name: "app", ReadinessProbe: execProbe(10, 1, 3)})
		fp.scripts["c3/Readiness"] = []probeStep{pF}
		h.run()
		before := time.Now().Add(-time.Hour)
		h.m.SyncPod(ready, podStatus(ready, running("c1", "app", before)))
		h.m.SyncPod(pending, podStatus(pending, running("c2", "app", before)))
		h.m.SyncPod(notReady, podStatus(notReady, running("c3", "app", before)))
		synctest.Wait()
		if !h.m.Started("u3", "c3") || h.m.Ready("u3", "c3") {
			t.Error("an adopted container of a pod that was not ready is ready, or not started")
		}
		if !h.m.Started("u1", "c1") || !h.m.Ready("u1", "c1") {
			t.Error("an adopted container loses its started and ready state")
		}
		if h.m.Started("u2", "c2") || h.m.Ready("u2", "c2") {
			t.Error("an adopted container that had not started is started or ready")
		}
		// No initial values: only what the probes decided since.
		h.checkResults("u1", map[string]ProbeResult{"c1": ProbeSuccess}, map[string]ProbeResult{"c1": ProbeSuccess})
		h.checkResults("u2", map[string]ProbeResult{}, map[string]ProbeResult{})
		// Until its probe decides.
		h.sleepUntil(25)
		if h.m.Ready("u1", "c1") {
			t.Error("ready after its readiness probe failed 3 times")
		}
		h.checkCalls("c1/Startup")
		h.checkCalls("c2/Startup", 0, 10, 20)
		got := h.takeChanges()
		slices.Sort(got)
		if want := []string{"0s Liveness c1 Success", "0s Startup c1 Success", "20s Readiness c1 Failure", "20s Readiness c3 Failure", "20s Startup c2 Failure"}; !slices.Equal(got, want) {
			t.Errorf("OnChange calls %q, want %q", got, want)
		}
		h.stop()
	})
}

func TestProbeScope(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fp := newScriptedProber(nil)
		h := newProbeHarness(t, fp, ProbeManagerConfig{})
		p := execProbe(10, 1, 3)
		pod := probePod("u1", v1.Container{Name: "app", ReadinessProbe: p})
		pod.Spec.InitContainers = []v1.Container{
			{Name: "setup", ReadinessProbe: p},
			{Name: "proxy", RestartPolicy: ptr.To(v1.ContainerRestartPolicyAlways), ReadinessProbe: p},
		}
		pod.Spec.EphemeralContainers = []v1.EphemeralContainer{{EphemeralContainerCommon: v1.EphemeralContainerCommon{Name: "debug", ReadinessProbe: p}}}
		st := podStatus(pod, running("a", "app", time.Now()), running("s", "setup", time.Now()),
			running("p", "proxy", time.Now()), running("d", "debug", time.Now()))
		// The pod's IP is its newest ready sandbox's.
		notReady := readySandbox("10.0.0.9")
		notReady.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
		st.SandboxStatuses = []*runtimeapi.PodSandboxStatus{notReady, readySandbox("10.0.0.2"), readySandbox("10.0.0.1")}
		h.run()
		h.m.SyncPod(pod, st)
		h.sleepUntil(5)
		h.checkCalls("a/Readiness", 0)
		h.checkCalls("p/Readiness", 0)
		h.checkCalls("s/Readiness")
		h.checkCalls("d/Readiness")
		if got := fp.probedIPs(); !slices.Equal(got, []string{"10.0.0.2", "10.0.0.2"}) {
			t.Errorf("probed pod IPs %v, want 10.0.0.2", got)
		}
		if h.m.Ready("u1", "s") || h.m.Ready("u1", "d") {
			t.Error("an init or ephemeral container counts as ready")
		}
		h.stop()
	})
}

func TestProbeHostNetworkPodIP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fp := newScriptedProber(nil)
		h := newProbeHarness(t, fp, ProbeManagerConfig{NodeIP: "192.168.1.5"})
		pod := probePod("u1", v1.Container{Name: "app", ReadinessProbe: execProbe(10, 1, 3)})
		pod.Spec.HostNetwork = true
		st := podStatus(pod, running("a", "app", time.Now()))
		st.SandboxStatuses[0].Network = nil
		h.run()
		h.m.SyncPod(pod, st)
		h.sleepUntil(5)
		if got := fp.probedIPs(); !slices.Equal(got, []string{"192.168.1.5"}) {
			t.Errorf("probed pod IPs %v, want the node's", got)
		}
		h.stop()
	})
}

func TestNewProbeManagerValidation(t *testing.T) {
	if _, err := NewProbeManager(ProbeManagerConfig{}); !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "Runner") {
		t.Errorf("no Runner: %v, want ErrInvalid naming Runner", err)
	}
	reg := prometheus.NewRegistry()
	if _, err := NewProbeManager(ProbeManagerConfig{Runner: &ProbeRunner{}, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewProbeManager(ProbeManagerConfig{Runner: &ProbeRunner{}, Registerer: reg}); err == nil {
		t.Error("registering the metrics twice did not fail")
	}
	synctest.Test(t, func(t *testing.T) {
		m, err := NewProbeManager(ProbeManagerConfig{Runner: &ProbeRunner{}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		synctest.Wait()
		if err := m.Run(ctx); err == nil {
			t.Error("a second Run did not fail")
		}
		cancel()
		<-done
	})
}

func TestProbeKindString(t *testing.T) {
	for k, want := range map[ProbeKind]string{ProbeLiveness: "Liveness", ProbeReadiness: "Readiness", ProbeStartup: "Startup", 7: "ProbeKind(7)"} {
		if got := k.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(k), got, want)
		}
	}
}

// TestProbeManagerHTTP runs a readiness probe through ProbeRunner against
// a real server, on a fake clock.
func TestProbeManagerHTTP(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" || !healthy.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	fc := testingclock.NewFakeClock(time.Now())
	m, err := NewProbeManager(ProbeManagerConfig{Runner: &ProbeRunner{}, Clock: fc, Jitter: func() float64 { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	pod := probePod("u1", v1.Container{Name: "app", ReadinessProbe: &v1.Probe{
		ProbeHandler:  v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Host: "127.0.0.1", Port: intstr.FromInt(port), Path: "/ready"}},
		PeriodSeconds: 5, TimeoutSeconds: 5, SuccessThreshold: 1, FailureThreshold: 1}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	m.SyncPod(pod, podStatus(pod, running("c1", "app", fc.Now())))

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("ready", func() bool { return m.Ready("u1", "c1") })
	healthy.Store(false)
	waitFor("the worker to wait for its period", fc.HasWaiters)
	fc.Step(5 * time.Second)
	waitFor("not ready", func() bool { return !m.Ready("u1", "c1") })
}

// TestProbeManagerExec runs an exec liveness probe through ProbeRunner in
// the simulated runtime: the command outlives the probe's timeout.
func TestProbeManagerExec(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := simRuntime(t)
		probe := &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"sh", "-c", "sleep 5"}}},
			PeriodSeconds: 10, TimeoutSeconds: 2, SuccessThreshold: 1, FailureThreshold: 2}
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-web"}, Spec: v1.PodSpec{HostNetwork: true,
			Containers: []v1.Container{{Name: "app", Image: testImage, Command: []string{"sleep", "3600"}, LivenessProbe: probe}}}}
		t0 := time.Now()
		status := runRaw(t, rt, pod)
		id := status.ContainerStatuses[0].GetId()
		m, err := NewProbeManager(ProbeManagerConfig{Runner: &ProbeRunner{Exec: rt}, Jitter: func() float64 { return 0 }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		m.SyncPod(pod, status)
		at := func(sec int) map[string]ProbeResult {
			time.Sleep(time.Until(t0.Add(time.Duration(sec) * time.Second)))
			synctest.Wait()
			l, _ := m.Results(pod.UID)
			return l
		}
		// The first attempt times out at 2 s, the second at 12 s.
		if l := at(11); l[id] != ProbeSuccess {
			t.Errorf("at 11 s liveness %v, want Success after one failure", l[id])
		}
		if l := at(13); l[id] != ProbeFailure {
			t.Errorf("at 13 s liveness %v, want Failure after two", l[id])
		}
		cancel()
		<-done
	})
}
