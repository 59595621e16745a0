package syncloop

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

func TestEffectiveGracePeriod(t *testing.T) {
	i := func(n int64) *int64 { return &n }
	pod := func(spec, deletion *int64) *v1.Pod {
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionGracePeriodSeconds: deletion}, Spec: v1.PodSpec{TerminationGracePeriodSeconds: spec}}
	}
	for _, tc := range []struct {
		name     string
		current  int64
		pod      *v1.Pod
		override *int64
		want     int64
	}{
		{"spec default", 0, pod(nil, nil), nil, 30},
		{"spec", 0, pod(i(45), nil), nil, 45},
		{"deletion grace wins over spec", 0, pod(i(45), i(10)), nil, 10},
		{"kill override", 0, pod(i(45), nil), i(5), 5},
		{"shortest of deletion and override", 0, pod(nil, i(8)), i(12), 8},
		{"never grows", 10, pod(i(45), i(20)), nil, 10},
		{"shrinks", 10, pod(nil, nil), i(3), 3},
		{"zero becomes one", 0, pod(i(0), nil), nil, 1},
		{"negative override becomes one", 0, pod(nil, nil), i(-5), 1},
	} {
		if got := EffectiveGracePeriod(tc.current, tc.pod, tc.override); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

// fakeSyncer records calls; syncs wait at its gate while one is set.
type fakeSyncer struct {
	mu        sync.Mutex
	calls     []string
	inFlight  map[types.UID]int
	maxFlight int
	gate      chan struct{} // when set, syncs wait for it to close (or for ctx)
	terminal  bool          // SyncPod reports the pod done
	fail      int           // the next SyncPod calls that fail
	versions  []string      // label "v" of each SyncPod's pod
	graces    []int64       // grace periods of SyncTerminatingPod
	hold      time.Duration // SyncPod reports restarts held back this long
	took      time.Duration // each SyncPod takes this long
}

func (f *fakeSyncer) enter(uid types.UID, call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inFlight == nil {
		f.inFlight = map[types.UID]int{}
	}
	f.inFlight[uid]++
	f.maxFlight = max(f.maxFlight, f.inFlight[uid])
	f.calls = append(f.calls, call)
}

func (f *fakeSyncer) leave(uid types.UID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inFlight[uid]--
}

func (f *fakeSyncer) wait(ctx context.Context) error {
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate == nil {
		return nil
	}
	select {
	case <-gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeSyncer) SyncPod(ctx context.Context, pod *v1.Pod, _ *core.PodStatus) (bool, error) {
	f.enter(pod.UID, "sync")
	defer f.leave(pod.UID)
	f.mu.Lock()
	f.versions = append(f.versions, pod.Labels["v"])
	terminal := f.terminal
	fail := f.fail > 0
	if fail {
		f.fail--
	}
	f.mu.Unlock()
	if err := f.wait(ctx); err != nil {
		return false, err
	}
	time.Sleep(f.took)
	if fail {
		return false, errors.New("runtime said no")
	}
	if f.hold > 0 {
		return false, &WaitError{Wait: f.hold, Waiting: []WaitingContainer{{Name: "app", Reason: ReasonCrashLoopBackOff}}}
	}
	return terminal, nil
}

func (f *fakeSyncer) SyncTerminatingPod(ctx context.Context, pod *v1.Pod, _ *core.PodStatus, grace int64) error {
	f.enter(pod.UID, fmt.Sprintf("terminate(%d)", grace))
	defer f.leave(pod.UID)
	f.mu.Lock()
	f.graces = append(f.graces, grace)
	f.mu.Unlock()
	return f.wait(ctx)
}

func (f *fakeSyncer) SyncTerminatedPod(_ context.Context, pod *v1.Pod, _ *core.PodStatus) error {
	f.enter(pod.UID, "terminated")
	defer f.leave(pod.UID)
	return nil
}

func (f *fakeSyncer) get() (calls, versions []string, graces []int64, maxFlight int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...), append([]string(nil), f.versions...), append([]int64(nil), f.graces...), f.maxFlight
}

func (f *fakeSyncer) set(fn func(*fakeSyncer)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// freshStatus answers every status request at once.
type freshStatus struct{}

func (freshStatus) GetNewerThan(_ context.Context, uid types.UID, _ time.Time) (*core.PodStatus, error) {
	return &core.PodStatus{UID: uid}, nil
}

func testPod(version string) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-web", Labels: map[string]string{"v": version}}}
}

// runWorkers runs workers inside a synctest bubble, where time is virtual:
// time.Sleep moves it, synctest.Wait lets every worker settle.
func runWorkers(t *testing.T, f *fakeSyncer) (*Workers, func()) {
	w, err := NewWorkers(WorkersConfig{Syncer: f, Status: freshStatus{}, Jitter: func() float64 { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	return w, func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	}
}

func TestWorkerSyncsAndResyncs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeSyncer{}
		w, stop := runWorkers(t, f)
		defer stop()
		w.Update(Update{Type: UpdateCreate, Pod: testPod("1")})
		synctest.Wait()
		time.Sleep(DefaultResyncInterval - time.Second)
		synctest.Wait()
		if calls, _, _, _ := f.get(); len(calls) != 1 {
			t.Fatalf("calls before the resync interval: %v", calls)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if calls, _, _, _ := f.get(); len(calls) != 2 {
			t.Fatalf("calls after the resync interval: %v", calls)
		}
		if s, ok := w.State("uid-web"); !ok || s != Syncing {
			t.Errorf("state %v %v", s, ok)
		}
	})
}

// Updates that arrive during a sync are coalesced: the next sync sees the
// newest spec, once; syncs of a pod never overlap.
func TestWorkerCoalescesUpdates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		f := &fakeSyncer{gate: gate}
		w, stop := runWorkers(t, f)
		defer stop()
		w.Update(Update{Type: UpdateCreate, Pod: testPod("1")})
		synctest.Wait() // the first sync is held at the gate
		for v := 2; v <= 5; v++ {
			w.Update(Update{Type: UpdateUpdate, Pod: testPod(fmt.Sprint(v))})
		}
		f.set(func(f *fakeSyncer) { f.gate = nil })
		close(gate)
		synctest.Wait()
		_, versions, _, maxFlight := f.get()
		if fmt.Sprint(versions) != "[1 5]" {
			t.Errorf("synced versions %v, want [1 5]", versions)
		}
		if maxFlight != 1 {
			t.Errorf("%d syncs of one pod at once", maxFlight)
		}
	})
}

func TestWorkerRetriesAfterBackOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeSyncer{fail: 1}
		w, stop := runWorkers(t, f)
		defer stop()
		w.Update(Update{Type: UpdateCreate, Pod: testPod("1")})
		synctest.Wait()
		time.Sleep(DefaultBackOffPeriod - time.Millisecond)
		synctest.Wait()
		if calls, _, _, _ := f.get(); len(calls) != 1 {
			t.Fatalf("retried before the back-off period: %v", calls)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if calls, _, _, _ := f.get(); len(calls) != 2 {
			t.Fatalf("not retried after the back-off period: %v", calls)
		}
	})
}

// A sync whose restarts are held back runs again when the back-off ends,
// not after the resync interval nor the failure back-off.
func TestWorkerSyncsWhenBackOffEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeSyncer{hold: 40 * time.Second}
		w, stop := runWorkers(t, f)
		defer stop()
		w.Update(Update{Type: UpdateCreate, Pod: testPod("1")})
		synctest.Wait()
		time.Sleep(40*time.Second - time.Millisecond)
		synctest.Wait()
		if calls, _, _, _ := f.get(); len(calls) != 1 {
			t.Fatalf("synced before the back-off ended: %v", calls)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if calls, _, _, _ := f.get(); len(calls) != 2 {
			t.Fatalf("not synced when the back-off ended: %v", calls)
		}
	})
}

// runningAfter reports the pod's app container running from a given time.
type runningAfter struct{ at time.Time }

func (r runningAfter) GetNewerThan(_ context.Context, uid types.UID, _ time.Time) (*core.PodStatus, error) {
	st := &core.PodStatus{UID: uid}
	if !time.Now().Before(r.at) {
		st.ContainerStatuses = []*runtimeapi.ContainerStatus{{Id: "c1", Metadata: &runtimeapi.ContainerMetadata{Name: "app"}, State: runtimeapi.ContainerState_CONTAINER_RUNNING}}
	}
	return st, nil
}

// The pod start duration is observed once, from the pod's config.seen
// annotation to the first sync that sees a regular container running;
// every sync is timed under its update's operation type.
func TestWorkerMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		seen := time.Now().Add(-2 * time.Second)
		w, err := NewWorkers(WorkersConfig{Syncer: &fakeSyncer{}, Status: runningAfter{at: time.Now().Add(3 * time.Second)},
			Jitter: func() float64 { return 0 }, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go w.Run(ctx)
		pod := testPod("1")
		pod.Spec.Containers = []v1.Container{{Name: "app"}}
		pod.Annotations = map[string]string{core.AnnotationConfigSeen: seen.Format(time.RFC3339Nano)}
		w.Update(Update{Type: UpdateCreate, Pod: pod})
		synctest.Wait()
		time.Sleep(3 * time.Second)
		w.Update(Update{Type: UpdateSync, Pod: pod})
		synctest.Wait()
		w.Update(Update{Type: UpdateUpdate, Pod: pod})
		synctest.Wait()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]uint64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if h := m.GetHistogram(); h != nil {
					key := mf.GetName()
					for _, l := range m.GetLabel() {
						key += "{" + l.GetValue() + "}"
					}
					got[key] = h.GetSampleCount()
					if mf.GetName() == "kubelet_pod_start_duration_seconds" && h.GetSampleSum() != 5 {
						t.Errorf("pod start duration %vs, want 5s (2 s before the first sync, 3 s until running)", h.GetSampleSum())
					}
				}
			}
		}
		wantCounts := map[string]uint64{
			"kubelet_pod_start_duration_seconds":          1,
			"kubelet_pod_worker_duration_seconds{create}": 1,
			"kubelet_pod_worker_duration_seconds{sync}":   1,
			"kubelet_pod_worker_duration_seconds{update}": 1,
			"kubelet_pod_worker_start_duration_seconds":   1,
		}
		if fmt.Sprint(got) != fmt.Sprint(wantCounts) {
			t.Errorf("histogram sample counts\n got %v\nwant %v", got, wantCounts)
		}
	})
}

// A kill interrupts a sync in flight; a shorter grace period interrupts
// the termination and restarts it; the pod ends terminated and stays so.
func TestWorkerKill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		f := &fakeSyncer{gate: gate}
		w, stop := runWorkers(t, f)
		defer stop()
		pod := testPod("1")
		pod.Spec.TerminationGracePeriodSeconds = func(n int64) *int64 { return &n }(45)
		w.Update(Update{Type: UpdateCreate, Pod: pod})
		synctest.Wait() // SyncPod held
		w.Update(Update{Type: UpdateKill, Pod: pod})
		synctest.Wait() // SyncPod interrupted, SyncTerminatingPod(45) held
		if s, _ := w.State("uid-web"); s != Terminating {
			t.Fatalf("state after kill: %v", s)
		}
		short, longer := int64(5), int64(20)
		w.Update(Update{Type: UpdateKill, Pod: pod, KillGracePeriod: &short})
		synctest.Wait() // restarted with 5
		w.Update(Update{Type: UpdateKill, Pod: pod, KillGracePeriod: &longer})
		synctest.Wait() // a longer one changes nothing
		close(gate)
		synctest.Wait()
		calls, _, _, maxFlight := f.get()
		if fmt.Sprint(calls) != "[sync terminate(45) terminate(5) terminated]" {
			t.Errorf("calls %v", calls)
		}
		if maxFlight != 1 {
			t.Errorf("%d syncs of one pod at once", maxFlight)
		}
		if s, _ := w.State("uid-web"); s != Terminated {
			t.Fatalf("state: %v, want terminated", s)
		}
		w.Update(Update{Type: UpdateCreate, Pod: testPod("2")})
		synctest.Wait()
		if calls2, _, _, _ := f.get(); len(calls2) != len(calls) {
			t.Errorf("a terminated pod was synced again: %v", calls2)
		}
		if !w.Forget("uid-web") {
			t.Error("Forget of a terminated pod failed")
		}
		if _, ok := w.State("uid-web"); ok {
			t.Error("a forgotten pod is still known")
		}
	})
}

// SyncPod saying the pod is done moves it to termination with its own
// grace period.
func TestWorkerTerminalPod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeSyncer{terminal: true}
		w, stop := runWorkers(t, f)
		defer stop()
		w.Update(Update{Type: UpdateCreate, Pod: testPod("1")})
		synctest.Wait()
		if calls, _, _, _ := f.get(); fmt.Sprint(calls) != "[sync terminate(30) terminated]" {
			t.Errorf("calls %v", calls)
		}
		if s, _ := w.State("uid-web"); s != Terminated {
			t.Errorf("state %v", s)
		}
	})
}

func TestNewWorkersValidation(t *testing.T) {
	_, err := NewWorkers(WorkersConfig{BackOffPeriod: -time.Second})
	if !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("err %v", err)
	}
	for _, want := range []string{"Syncer is required", "Status is required", "BackOffPeriod -1s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// A pod that reuses the name of a pod that has not terminated (an edited
// static pod gets a new UID) starts only once the old one terminated.
func TestWorkerSameNameWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeSyncer{}
		w, stop := runWorkers(t, f)
		defer stop()
		old := testPod("1")
		edited := testPod("2")
		edited.UID = "uid-web-2"
		w.Update(Update{Type: UpdateCreate, Pod: old})
		synctest.Wait()
		w.Update(Update{Type: UpdateCreate, Pod: edited})
		synctest.Wait()
		if _, versions, _, _ := f.get(); fmt.Sprint(versions) != "[1]" {
			t.Fatalf("synced %v while the old pod runs, want [1]", versions)
		}
		if s := w.States(); s["uid-web"] != Syncing || s["uid-web-2"] != Syncing {
			t.Fatalf("states %v", s)
		}
		w.Update(Update{Type: UpdateKill, Pod: old})
		synctest.Wait()
		calls, versions, _, _ := f.get()
		if fmt.Sprint(versions) != "[1 2]" {
			t.Fatalf("synced %v after the old pod terminated, want [1 2]", versions)
		}
		if want := "[sync terminate(30) terminated sync]"; fmt.Sprint(calls) != want {
			t.Fatalf("calls %v, want %s", calls, want)
		}
	})
}

// recordingStatus has a status observed when it was created or last
// refreshed; it records the minimum times of the statuses it hands out and
// the refreshes asked of it.
type recordingStatus struct {
	mu        sync.Mutex
	observed  time.Time
	minTimes  []time.Time
	refreshes int
}

func (r *recordingStatus) GetNewerThan(ctx context.Context, uid types.UID, minTime time.Time) (*core.PodStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.observed.After(minTime) {
		if ctx.Err() == nil {
			return nil, errors.New("recordingStatus: would block")
		}
		return nil, ctx.Err()
	}
	r.minTimes = append(r.minTimes, minTime)
	return &core.PodStatus{UID: uid}, nil
}

func (r *recordingStatus) RelistPod(context.Context, types.UID) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refreshes++
	r.observed = time.Now()
	return nil
}

// Each sync asks for a status observed after the previous sync ended (one
// observed during it may miss what it did last), and has its source
// refresh the pod first when it can.
func TestWorkerWantsStatusNewerThanLastSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeSyncer{took: 3 * time.Second}
		st := &recordingStatus{observed: time.Now()}
		w, err := NewWorkers(WorkersConfig{Syncer: f, Status: st, Jitter: func() float64 { return 0 }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { w.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		start := time.Now()
		w.Update(Update{Type: UpdateCreate, Pod: testPod("1")})
		time.Sleep(5 * time.Second)
		w.Update(Update{Type: UpdateSync, Pod: testPod("1")})
		time.Sleep(5 * time.Second)
		st.mu.Lock()
		defer st.mu.Unlock()
		// After its refresh, a status observed at the very end of the
		// sync counts (a virtual or coarse clock gives both one instant).
		if len(st.minTimes) != 2 || !st.minTimes[0].IsZero() || !st.minTimes[1].Equal(start.Add(3*time.Second-time.Nanosecond)) {
			t.Fatalf("min times %v, want [zero, start+3s-1ns]", st.minTimes)
		}
		if st.refreshes != 1 {
			t.Fatalf("%d refreshes, want 1 (before the second sync)", st.refreshes)
		}
		// A status fresh enough already is taken without a refresh.
		st.observed = time.Now().Add(time.Hour)
		st.mu.Unlock()
		w.Update(Update{Type: UpdateSync, Pod: testPod("1")})
		time.Sleep(5 * time.Second)
		st.mu.Lock()
		if st.refreshes != 1 || len(st.minTimes) != 3 {
			t.Fatalf("%d refreshes and %d syncs, want 1 and 3", st.refreshes, len(st.minTimes))
		}
	})
}

// runtimeTruth is what a runtime runs of one pod, and a status source
// that caches snapshots of it: a snapshot is taken at each RelistPod only,
// so the cached status may lag behind the truth.
type runtimeTruth struct {
	mu        sync.Mutex
	truth     *core.PodStatus
	cached    *core.PodStatus
	observed  time.Time
	refreshes int
	// stubborn containers ignore StopContainer.
	stubborn map[string]bool
}

func newRuntimeTruth(containers ...string) *runtimeTruth {
	st := &core.PodStatus{UID: "uid-web", SandboxStatuses: []*runtimeapi.PodSandboxStatus{{Id: "sb1", State: runtimeapi.PodSandboxState_SANDBOX_READY}}}
	for _, id := range containers {
		st.ContainerStatuses = append(st.ContainerStatuses, &runtimeapi.ContainerStatus{Id: id, Metadata: &runtimeapi.ContainerMetadata{Name: id}, State: runtimeapi.ContainerState_CONTAINER_RUNNING})
	}
	r := &runtimeTruth{truth: st, stubborn: map[string]bool{}}
	r.snapshotLocked()
	return r
}

func (r *runtimeTruth) snapshotLocked() {
	c := &core.PodStatus{UID: r.truth.UID}
	for _, sb := range r.truth.SandboxStatuses {
		c.SandboxStatuses = append(c.SandboxStatuses, &runtimeapi.PodSandboxStatus{Id: sb.Id, State: sb.State})
	}
	for _, cs := range r.truth.ContainerStatuses {
		c.ContainerStatuses = append(c.ContainerStatuses, &runtimeapi.ContainerStatus{Id: cs.Id, Metadata: cs.Metadata, State: cs.State})
	}
	r.cached, r.observed = c, time.Now()
}

func (r *runtimeTruth) GetNewerThan(ctx context.Context, _ types.UID, minTime time.Time) (*core.PodStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.observed.After(minTime) {
		if ctx.Err() == nil {
			return nil, errors.New("runtimeTruth: would block")
		}
		return nil, ctx.Err()
	}
	return r.cached, nil
}

func (r *runtimeTruth) RelistPod(context.Context, types.UID) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refreshes++
	r.snapshotLocked()
	return nil
}

// start adds a running container to the truth, not to the cache.
func (r *runtimeTruth) start(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.truth.ContainerStatuses = append(r.truth.ContainerStatuses, &runtimeapi.ContainerStatus{Id: id, Metadata: &runtimeapi.ContainerMetadata{Name: id}, State: runtimeapi.ContainerState_CONTAINER_RUNNING})
}

func (r *runtimeTruth) running() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, cs := range r.truth.ContainerStatuses {
		if cs.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			out = append(out, cs.Id)
		}
	}
	for _, sb := range r.truth.SandboxStatuses {
		if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			out = append(out, sb.Id)
		}
	}
	return out
}

// truthSyncer acts on a runtimeTruth as the driver acts on a runtime: a
// termination stops what the status it is given shows running, and
// nothing else.
type truthSyncer struct {
	rt *runtimeTruth
	// onSync runs at each SyncPod.
	onSync func()

	mu    sync.Mutex
	calls []string
}

func (s *truthSyncer) record(call string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rt.mu.Lock()
	refreshes := s.rt.refreshes
	s.rt.mu.Unlock()
	s.calls = append(s.calls, fmt.Sprintf("%s@%d", call, refreshes))
}

func (s *truthSyncer) get() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

func (s *truthSyncer) SyncPod(context.Context, *v1.Pod, *core.PodStatus) (bool, error) {
	s.record("sync")
	if s.onSync != nil {
		s.onSync()
	}
	return false, nil
}

func (s *truthSyncer) SyncTerminatingPod(_ context.Context, _ *v1.Pod, status *core.PodStatus, _ int64) error {
	var shown []string
	r := s.rt
	r.mu.Lock()
	for _, cs := range status.ContainerStatuses {
		if cs.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		shown = append(shown, cs.GetId())
		for _, t := range r.truth.ContainerStatuses {
			if t.Id == cs.GetId() && !r.stubborn[t.Id] {
				t.State = runtimeapi.ContainerState_CONTAINER_EXITED
			}
		}
	}
	for _, sb := range status.SandboxStatuses {
		for _, t := range r.truth.SandboxStatuses {
			if t.Id == sb.GetId() {
				t.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
			}
		}
	}
	r.mu.Unlock()
	s.record(fmt.Sprintf("terminate%v", shown))
	return nil
}

func (s *truthSyncer) SyncTerminatedPod(_ context.Context, _ *v1.Pod, status *core.PodStatus) error {
	s.record("terminated")
	for _, cs := range status.ContainerStatuses {
		if cs.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
			return fmt.Errorf("container %s is still running", cs.GetId())
		}
	}
	return nil
}

func runTruthWorkers(t *testing.T, s *truthSyncer) (*Workers, func()) {
	w, err := NewWorkers(WorkersConfig{Syncer: s, Status: s.rt, Jitter: func() float64 { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	return w, func() { cancel(); <-done }
}

// A kill stops what the status at hand shows at once, without refreshing
// the pod first (calls are tagged with the refreshes made before them);
// the status observed after the stops, one refresh, confirms the pod
// terminated.
func TestWorkerKillStartsFromStatusAtHand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newRuntimeTruth("app")
		s := &truthSyncer{rt: rt}
		w, stop := runTruthWorkers(t, s)
		defer stop()
		w.Update(Update{Type: UpdateCreate, Pod: testPod("1")})
		synctest.Wait()
		time.Sleep(time.Second) // the status at hand is older than the sync
		w.Update(Update{Type: UpdateKill, Pod: testPod("1")})
		synctest.Wait()
		if got, want := fmt.Sprint(s.get()), "[sync@0 terminate[app]@0 terminated@1]"; got != want {
			t.Errorf("calls %s, want %s", got, want)
		}
		if st, _ := w.State("uid-web"); st != Terminated {
			t.Errorf("state %v, want terminated", st)
		}
		if r := rt.running(); len(r) != 0 {
			t.Errorf("still running: %v", r)
		}
	})
}

// What the status at hand missed (a container the last sync started) is
// seen after the first pass, and stopped by a second one at once, from
// the status that showed it: no back-off, no further refresh before it.
func TestWorkerKillStopsWhatTheStatusAtHandMissed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newRuntimeTruth("app")
		s := &truthSyncer{rt: rt, onSync: func() { rt.start("sidecar") }}
		w, stop := runTruthWorkers(t, s)
		defer stop()
		w.Update(Update{Type: UpdateCreate, Pod: testPod("1")})
		synctest.Wait()
		start := time.Now()
		w.Update(Update{Type: UpdateKill, Pod: testPod("1")})
		synctest.Wait()
		if got, want := fmt.Sprint(s.get()), "[sync@0 terminate[app]@0 terminate[sidecar]@1 terminated@2]"; got != want {
			t.Errorf("calls %s, want %s", got, want)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("terminated after %s, want at once", d)
		}
		if r := rt.running(); len(r) != 0 {
			t.Errorf("still running: %v", r)
		}
		if st, _ := w.State("uid-web"); st != Terminated {
			t.Errorf("state %v, want terminated", st)
		}
	})
}

// A container that keeps running after a pass made from a fresh status is
// retried after the back-off period, not in a tight loop.
func TestWorkerKillBacksOffWhenAContainerKeepsRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newRuntimeTruth("app")
		rt.stubborn["app"] = true
		s := &truthSyncer{rt: rt}
		w, stop := runTruthWorkers(t, s)
		defer stop()
		w.Update(Update{Type: UpdateCreate, Pod: testPod("1")})
		synctest.Wait()
		w.Update(Update{Type: UpdateKill, Pod: testPod("1")})
		synctest.Wait()
		want := "[sync@0 terminate[app]@0 terminate[app]@1 terminated@2]"
		if got := fmt.Sprint(s.get()); got != want {
			t.Fatalf("calls %s, want %s", got, want)
		}
		time.Sleep(DefaultBackOffPeriod - time.Millisecond)
		synctest.Wait()
		if got := fmt.Sprint(s.get()); got != want {
			t.Fatalf("retried before the back-off period: %s", got)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if got := s.get(); len(got) != 6 || got[4] != "terminate[app]@3" {
			t.Errorf("after the back-off period: %v, want another pass from a fresh status", got)
		}
		if st, _ := w.State("uid-web"); st != Terminating {
			t.Errorf("state %v, want terminating", st)
		}
	})
}
