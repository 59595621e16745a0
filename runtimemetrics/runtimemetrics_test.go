package runtimemetrics_test

import (
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/runtimemetrics"
	"github.com/nodekit/nodekit/runtimetest"
)

const image = "docker.io/library/busybox:latest"

// stepClock moves on by step each time it is read, so that every call
// takes exactly step.
type stepClock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.step)
	return c.now
}

func (c *stepClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// series is one metric family's samples by the value of its only label.
type series struct {
	counters map[string]float64
	counts   map[string]uint64  // histogram sample counts
	sums     map[string]float64 // histogram sums
	buckets  map[string][]float64
	cumul    map[string][]uint64
}

func gather(t *testing.T, reg *prometheus.Registry) map[string]series {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]series{}
	for _, mf := range mfs {
		s := series{counters: map[string]float64{}, counts: map[string]uint64{}, sums: map[string]float64{},
			buckets: map[string][]float64{}, cumul: map[string][]uint64{}}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != 1 {
				t.Fatalf("%s has labels %v, want one", mf.GetName(), m.GetLabel())
			}
			label := m.GetLabel()[0].GetValue()
			if h := m.GetHistogram(); h != nil {
				s.counts[label] = h.GetSampleCount()
				s.sums[label] = h.GetSampleSum()
				for _, b := range h.GetBucket() {
					s.buckets[label] = append(s.buckets[label], b.GetUpperBound())
					s.cumul[label] = append(s.cumul[label], b.GetCumulativeCount())
				}
			} else {
				s.counters[label] = m.GetCounter().GetValue()
			}
		}
		out[mf.GetName()] = s
	}
	return out
}

func newSim(t *testing.T, cfg runtimetest.Config) *runtimetest.Runtime {
	t.Helper()
	rt, err := runtimetest.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func wrap(t *testing.T, rt core.Runtime, reg prometheus.Registerer, clk *stepClock) core.Runtime {
	t.Helper()
	cfg := runtimemetrics.Config{Runtime: rt, Registerer: reg}
	if clk != nil {
		cfg.Clock = clk
	}
	w, err := runtimemetrics.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

var sandboxConfig = &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "uid-1"}}

// Every method of the port is recorded once under the kubelet's operation
// type, with the duration the injected clock gives.
func TestOperationTypes(t *testing.T) {
	sim := newSim(t, runtimetest.Config{Images: []string{"busybox"}, PullableImages: []string{"nginx"}})
	reg := prometheus.NewRegistry()
	rt := wrap(t, sim, reg, &stepClock{now: time.Unix(0, 0), step: 1500 * time.Millisecond})
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	_, err := rt.Version(ctx)
	must(err)
	_, err = rt.Status(ctx, false)
	must(err)
	sbID, err := rt.RunPodSandbox(ctx, sandboxConfig, "")
	must(err)
	_, err = rt.ListPodSandbox(ctx, nil)
	must(err)
	_, err = rt.PodSandboxStatus(ctx, sbID, false)
	must(err)
	id, err := rt.CreateContainer(ctx, sbID, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app"}, Image: &runtimeapi.ImageSpec{Image: "busybox"},
	}, sandboxConfig)
	must(err)
	must(rt.StartContainer(ctx, id))
	_, err = rt.ListContainers(ctx, nil)
	must(err)
	_, err = rt.ContainerStatus(ctx, id, false)
	must(err)
	_, err = rt.ExecSync(ctx, id, []string{"true"}, 0)
	must(err)
	must(rt.UpdateContainerResources(ctx, id, &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{CpuShares: 512}}))
	_, err = rt.ListContainerStats(ctx, nil)
	must(err)
	_, err = rt.ListPodSandboxStats(ctx, nil)
	must(err)
	_, err = rt.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: "busybox"}, false)
	must(err)
	_, err = rt.PullImage(ctx, &runtimeapi.ImageSpec{Image: "nginx"}, nil, sandboxConfig)
	must(err)
	_, err = rt.ListImages(ctx, nil)
	must(err)
	must(rt.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: "nginx"}))
	_, err = rt.ImageFsInfo(ctx)
	must(err)
	must(rt.StopContainer(ctx, id, 0))
	must(rt.RemoveContainer(ctx, id))
	must(rt.StopPodSandbox(ctx, sbID))
	must(rt.RemovePodSandbox(ctx, sbID))

	want := []string{
		"container_status", "create_container", "exec_sync", "image_fs_info", "image_status", "list_container_stats",
		"list_containers", "list_images", "list_podsandbox", "list_podsandbox_stats", "podsandbox_status", "pull_image",
		"remove_container", "remove_image", "remove_podsandbox", "run_podsandbox", "start_container", "status",
		"stop_container", "stop_podsandbox", "update_container", "version",
	}
	got := gather(t, reg)
	ops := got["kubelet_runtime_operations_total"].counters
	if names := slices.Sorted(maps.Keys(ops)); !slices.Equal(names, want) {
		t.Errorf("operation types:\n got %q\nwant %q", names, want)
	}
	dur := got["kubelet_runtime_operations_duration_seconds"]
	for _, op := range want {
		if ops[op] != 1 || dur.counts[op] != 1 || dur.sums[op] != 1.5 {
			t.Errorf("%s: %v calls, %d durations summing to %vs; want 1, 1, 1.5s", op, ops[op], dur.counts[op], dur.sums[op])
		}
	}
	if errs := got["kubelet_runtime_operations_errors_total"].counters; len(errs) != 0 {
		t.Errorf("errors counted: %v", errs)
	}
	sb := got["kubelet_run_podsandbox_duration_seconds"]
	if sb.counts[""] != 1 || sb.sums[""] != 1.5 {
		t.Errorf("run_podsandbox_duration_seconds{runtime_handler=\"\"}: %d samples, sum %v", sb.counts[""], sb.sums[""])
	}
	if want := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}; !slices.Equal(sb.buckets[""], want) {
		t.Errorf("run_podsandbox_duration_seconds buckets %v, want %v", sb.buckets[""], want)
	}
}

// Durations on the default clock: a call held 3 s lands in the kubelet's
// bucket of 3.05 s.
func TestDurationBuckets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := newSim(t, runtimetest.Config{})
		if err := sim.InjectFault("ListContainers", runtimetest.Fault{Delay: 3 * time.Second}); err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		rt := wrap(t, sim, reg, nil)
		if _, err := rt.ListContainers(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		h := gather(t, reg)["kubelet_runtime_operations_duration_seconds"]
		if h.sums["list_containers"] != 3 {
			t.Errorf("duration sum %vs, want 3s", h.sums["list_containers"])
		}
		bounds, cumul := h.buckets["list_containers"], h.cumul["list_containers"]
		if len(bounds) != 14 || bounds[0] != .005 || bounds[13] != 745.0580596923828 {
			t.Fatalf("buckets %v, want 14 from 5 ms by ×2.5", bounds)
		}
		for i, b := range bounds {
			want := uint64(0)
			if b >= 3 {
				want = 1
			}
			if cumul[i] != want {
				t.Errorf("bucket le=%v holds %d, want %d", b, cumul[i], want)
			}
		}
	})
}

func TestErrorsPassThrough(t *testing.T) {
	sim := newSim(t, runtimetest.Config{Images: []string{"busybox"}})
	reg := prometheus.NewRegistry()
	rt := wrap(t, sim, reg, nil)
	ctx := context.Background()

	if err := sim.InjectFault("ContainerStatus", runtimetest.Fault{Err: core.ErrNotFound, Times: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := rt.ContainerStatus(ctx, "nope", false)
	if !errors.Is(err, core.ErrNotFound) || err.Error() != "ContainerStatus: injected fault: not found" {
		t.Errorf("ContainerStatus error %v, want the runtime's not found", err)
	}
	if err := sim.InjectFault("RunPodSandbox", runtimetest.Fault{Err: core.ErrUnavailable, Times: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RunPodSandbox(ctx, sandboxConfig, "kata"); !errors.Is(err, core.ErrUnavailable) {
		t.Errorf("RunPodSandbox error %v, want ErrUnavailable", err)
	}
	if _, err := rt.RunPodSandbox(ctx, sandboxConfig, "kata"); err != nil {
		t.Fatal(err)
	}
	if err := rt.StopContainer(ctx, "unknown", 0); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("StopContainer of an unknown container: %v, want ErrNotFound", err)
	}

	got := gather(t, reg)
	if want := map[string]float64{"container_status": 1, "run_podsandbox": 1, "stop_container": 1}; !maps.Equal(got["kubelet_runtime_operations_errors_total"].counters, want) {
		t.Errorf("errors %v, want %v", got["kubelet_runtime_operations_errors_total"].counters, want)
	}
	if want := map[string]float64{"container_status": 1, "run_podsandbox": 2, "stop_container": 1}; !maps.Equal(got["kubelet_runtime_operations_total"].counters, want) {
		t.Errorf("operations %v, want %v", got["kubelet_runtime_operations_total"].counters, want)
	}
	if want := map[string]float64{"kata": 1}; !maps.Equal(got["kubelet_run_podsandbox_errors_total"].counters, want) {
		t.Errorf("run_podsandbox_errors_total %v, want %v", got["kubelet_run_podsandbox_errors_total"].counters, want)
	}
	if n := got["kubelet_run_podsandbox_duration_seconds"].counts["kata"]; n != 2 {
		t.Errorf("run_podsandbox_duration_seconds{kata} has %d samples, want 2", n)
	}
}

// A command that exits non-zero is an exec_sync error, as in the kubelet,
// but the caller sees the runtime's result.
func TestExecSyncNonZeroExit(t *testing.T) {
	sim := newSim(t, runtimetest.Config{Images: []string{"busybox"}})
	reg := prometheus.NewRegistry()
	rt := wrap(t, sim, reg, nil)
	ctx := context.Background()
	sbID, err := sim.RunPodSandbox(ctx, sandboxConfig, "")
	if err != nil {
		t.Fatal(err)
	}
	id, err := sim.CreateContainer(ctx, sbID, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app"}, Image: &runtimeapi.ImageSpec{Image: "busybox"},
	}, sandboxConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	res, err := rt.ExecSync(ctx, id, []string{"sh", "-c", "echo no >&2; exit 3"}, 0)
	if err != nil || res.ExitCode != 3 || string(res.Stderr) != "no\n" {
		t.Errorf("ExecSync = %+v, %v; want exit code 3 and stderr, no error", res, err)
	}
	if _, err := rt.ExecSync(ctx, id, []string{"true"}, 0); err != nil {
		t.Fatal(err)
	}
	got := gather(t, reg)
	if ops, errs := got["kubelet_runtime_operations_total"].counters["exec_sync"], got["kubelet_runtime_operations_errors_total"].counters["exec_sync"]; ops != 2 || errs != 1 {
		t.Errorf("exec_sync: %v calls, %v errors; want 2, 1", ops, errs)
	}
}

// plain has only the required methods of the runtime it embeds.
type plain struct{ core.Runtime }

// closing is a runtime with Close.
type closing struct {
	core.Runtime
	closed int
	err    error
}

func (c *closing) Close() error { c.closed++; return c.err }

// streamingClosing has both optional capabilities.
type streamingClosing struct {
	*runtimetest.Runtime
	closed int
}

func (c *streamingClosing) Close() error { c.closed++; return nil }

func TestOptionalInterfaces(t *testing.T) {
	sim := newSim(t, runtimetest.Config{})
	tests := []struct {
		name             string
		rt               core.Runtime
		streamer, closer bool
	}{
		{"required only", plain{sim}, false, false},
		{"event streamer", sim, true, false},
		{"closer", &closing{Runtime: sim}, false, true},
		{"both", &streamingClosing{Runtime: sim}, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := wrap(t, tc.rt, prometheus.NewRegistry(), nil)
			if _, ok := w.(core.EventStreamer); ok != tc.streamer {
				t.Errorf("wrapper is an EventStreamer: %v, want %v", ok, tc.streamer)
			}
			if _, ok := w.(io.Closer); ok != tc.closer {
				t.Errorf("wrapper is an io.Closer: %v, want %v", ok, tc.closer)
			}
		})
	}
}

func TestClose(t *testing.T) {
	sim := newSim(t, runtimetest.Config{})
	inner := &closing{Runtime: sim, err: core.ErrUnavailable}
	reg := prometheus.NewRegistry()
	w := wrap(t, inner, reg, nil)
	if err := w.(io.Closer).Close(); !errors.Is(err, core.ErrUnavailable) || inner.closed != 1 {
		t.Errorf("Close = %v after %d closes, want the runtime's error after 1", err, inner.closed)
	}
	got := gather(t, reg)
	if got["kubelet_runtime_operations_total"].counters["close"] != 1 || got["kubelet_runtime_operations_errors_total"].counters["close"] != 1 {
		t.Errorf("close not recorded: %v", got["kubelet_runtime_operations_total"].counters)
	}
}

func TestGetContainerEvents(t *testing.T) {
	sim := newSim(t, runtimetest.Config{Events: true})
	reg := prometheus.NewRegistry()
	w := wrap(t, sim, reg, nil)
	es := w.(core.EventStreamer)
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan *runtimeapi.ContainerEventResponse, 10)
	connected := make(chan struct{})
	done := make(chan error)
	go func() { done <- es.GetContainerEvents(ctx, ch, func() { close(connected) }) }()
	<-connected
	sbID, err := w.RunPodSandbox(context.Background(), sandboxConfig, "")
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-ch; ev.GetContainerId() != sbID || ev.GetContainerEventType() != runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT {
		t.Errorf("event %v, want the sandbox's creation", ev)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("stream ended with %v, want context.Canceled", err)
	}
	got := gather(t, reg)
	if got["kubelet_runtime_operations_total"].counters["get_container_events"] != 1 ||
		got["kubelet_runtime_operations_errors_total"].counters["get_container_events"] != 1 {
		t.Errorf("get_container_events not recorded as an ended stream: %v %v",
			got["kubelet_runtime_operations_total"].counters, got["kubelet_runtime_operations_errors_total"].counters)
	}

	// A runtime without the call says so through the wrapper.
	w = wrap(t, newSim(t, runtimetest.Config{}), prometheus.NewRegistry(), nil)
	if err := w.(core.EventStreamer).GetContainerEvents(context.Background(), ch, nil); !errors.Is(err, core.ErrUnimplemented) {
		t.Errorf("GetContainerEvents without events: %v, want ErrUnimplemented", err)
	}
}

func TestNew(t *testing.T) {
	if _, err := runtimemetrics.New(runtimemetrics.Config{}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("New without Runtime: %v, want ErrInvalid", err)
	}
	sim := newSim(t, runtimetest.Config{})
	if rt, err := runtimemetrics.New(runtimemetrics.Config{Runtime: sim}); err != nil || rt != core.Runtime(sim) {
		t.Errorf("New without Registerer = %T, %v; want the runtime itself", rt, err)
	}

	// Two wrappers on one registry share the series.
	reg := prometheus.NewRegistry()
	a, b := wrap(t, sim, reg, nil), wrap(t, newSim(t, runtimetest.Config{}), reg, nil)
	for _, rt := range []core.Runtime{a, b, b} {
		if _, err := rt.Version(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := gather(t, reg)["kubelet_runtime_operations_total"].counters["version"]; n != 3 {
		t.Errorf("version counted %v times, want 3", n)
	}

	// A different metric under the same name is an error.
	reg = prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubelet_runtime_operations_total", Help: "other"}, []string{"op"}))
	if _, err := runtimemetrics.New(runtimemetrics.Config{Runtime: sim, Registerer: reg}); err == nil {
		t.Error("New registered over a different metric of the same name")
	}
}

// The wrapper is as safe for concurrent use as the runtime (run with
// -race).
func TestConcurrentCalls(t *testing.T) {
	reg := prometheus.NewRegistry()
	rt := wrap(t, newSim(t, runtimetest.Config{}), reg, &stepClock{step: time.Millisecond})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if _, err := rt.ListPodSandbox(context.Background(), nil); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if n := gather(t, reg)["kubelet_runtime_operations_total"].counters["list_podsandbox"]; n != 800 {
		t.Errorf("list_podsandbox counted %v times, want 800", n)
	}
}
