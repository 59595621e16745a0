package statusmgr

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
	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/core"
)

// recordingSink records every write, fails while failing is set, and
// checks that no pod is written twice at once.
type recordingSink struct {
	mu       sync.Mutex
	writes   []string // "<pod>@<version>@<seconds since start>"
	failing  error
	inFlight map[types.UID]bool
	overlap  bool
	start    time.Time
	delay    time.Duration
}

func (r *recordingSink) WriteStatus(ctx context.Context, e core.PodStatusEntry) error {
	r.mu.Lock()
	if r.inFlight[e.Pod.UID] {
		r.overlap = true
	}
	r.inFlight[e.Pod.UID] = true
	r.mu.Unlock()
	if r.delay > 0 {
		time.Sleep(r.delay)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.inFlight, e.Pod.UID)
	r.writes = append(r.writes, fmt.Sprintf("%s@%d@%s", e.Pod.Name, e.Version, time.Since(r.start).Round(time.Millisecond)))
	return r.failing
}

func (r *recordingSink) take() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := strings.Join(r.writes, " ")
	r.writes = nil
	return s
}

func (r *recordingSink) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failing = err
}

func syncPod(name string) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name)},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app"}}}}
}

func phase(p v1.PodPhase) v1.PodStatus { return v1.PodStatus{Phase: p} }

// The Syncer coalesces versions, retries with back-off (a newer version
// at once), reconciles everything periodically, forgets pods that left
// the source and measures the time from change to write; the same with a
// source that can only List (no VersionSource).
func TestSyncer(t *testing.T) {
	for _, mode := range []string{"versions", "list"} {
		t.Run(mode, func(t *testing.T) { testSyncer(t, mode == "list") })
	}
}

// listOnly is a StatusSource without the VersionSource methods.
type listOnly struct{ c *Cache }

func (l listOnly) List() []core.PodStatusEntry { return l.c.List() }
func (l listOnly) Changed() <-chan struct{}    { return l.c.Changed() }

func testSyncer(t *testing.T, listOnlySource bool) {
	synctest.Test(t, func(t *testing.T) {
		cache, _ := NewCache(CacheConfig{})
		var src StatusSource = cache
		if listOnlySource {
			src = listOnly{cache}
		}
		if _, ok := src.(VersionSource); ok == listOnlySource {
			t.Fatalf("source %T: VersionSource %v", src, ok)
		}
		sink := &recordingSink{inFlight: map[types.UID]bool{}, start: time.Now()}
		reg := prometheus.NewPedanticRegistry()
		s, err := NewSyncer(SyncerConfig{Source: src, Sink: sink, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		web, db := syncPod("web"), syncPod("db")
		// Three versions of web before the first pass: only the newest is
		// written.
		for _, p := range []v1.PodPhase{v1.PodPending, v1.PodRunning, v1.PodSucceeded} {
			if _, _, err := cache.Set(web, phase(p)); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		synctest.Wait()
		if got := sink.take(); got != "web@3@0s" {
			t.Fatalf("first pass wrote %q, want only web's newest version", got)
		}
		if s.Written(web.UID) != 3 {
			t.Fatalf("Written = %d", s.Written(web.UID))
		}

		// The sink fails: db is tried after 200 ms, 400 ms, 800 ms.
		sink.fail(errors.New("apiserver down"))
		time.Sleep(time.Second)
		if _, _, err := cache.Set(db, phase(v1.PodPending)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		if got := sink.take(); got != "db@1@1s db@1@1.2s db@1@1.6s db@1@2.4s" {
			t.Fatalf("writes under failure: %q", got)
		}
		// A newer version does not wait for the back-off.
		time.Sleep(100 * time.Millisecond)
		if _, _, err := cache.Set(db, phase(v1.PodRunning)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := sink.take(); got != "db@2@2.6s" {
			t.Fatalf("newer version during back-off: %q", got)
		}
		// The sink is back: the next retry (3.2 s after the 5th failure in
		// a row, at 5.8 s) succeeds and stops the retries.
		sink.fail(nil)
		time.Sleep(3500 * time.Millisecond)
		synctest.Wait()
		if got := sink.take(); got != "db@2@5.8s" {
			t.Fatalf("recovery: %q", got)
		}
		if s.Written(db.UID) != 2 {
			t.Fatalf("db Written = %d", s.Written(db.UID))
		}
		// The reconcile at 10 s writes both again.
		time.Sleep(4 * time.Second)
		synctest.Wait()
		if got := sink.take(); got != "web@3@10s db@2@10s" && got != "db@2@10s web@3@10s" {
			t.Fatalf("reconcile: %q", got)
		}
		// A pod gone from the source is forgotten.
		cache.Delete(web.UID)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := sink.take(); got != "db@2@20s" {
			t.Fatalf("after web left: %q", got)
		}
		if s.Written(web.UID) != 0 {
			t.Error("web not forgotten")
		}
		cancel()
		<-done
		// Two writes took their change: web at once, db 4.8 s after its first
		// change (at 1 s, written at 5.8 s).
		if n := testutil.CollectAndCount(reg, "kubelet_pod_status_sync_duration_seconds"); n != 1 {
			t.Fatalf("%d series", n)
		}
		want := `
# HELP kubelet_pod_status_sync_duration_seconds Duration in seconds to sync a pod status update. Measures time from detection of a change to pod status until the API is successfully updated for that pod, even if multiple intevening changes to pod status occur.
# TYPE kubelet_pod_status_sync_duration_seconds histogram
kubelet_pod_status_sync_duration_seconds_bucket{le="0.01"} 1
kubelet_pod_status_sync_duration_seconds_bucket{le="0.05"} 1
kubelet_pod_status_sync_duration_seconds_bucket{le="0.1"} 1
kubelet_pod_status_sync_duration_seconds_bucket{le="0.5"} 1
kubelet_pod_status_sync_duration_seconds_bucket{le="1"} 1
kubelet_pod_status_sync_duration_seconds_bucket{le="5"} 2
kubelet_pod_status_sync_duration_seconds_bucket{le="10"} 2
kubelet_pod_status_sync_duration_seconds_bucket{le="20"} 2
kubelet_pod_status_sync_duration_seconds_bucket{le="30"} 2
kubelet_pod_status_sync_duration_seconds_bucket{le="45"} 2
kubelet_pod_status_sync_duration_seconds_bucket{le="60"} 2
kubelet_pod_status_sync_duration_seconds_bucket{le="+Inf"} 2
kubelet_pod_status_sync_duration_seconds_sum 4.8
kubelet_pod_status_sync_duration_seconds_count 2
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "kubelet_pod_status_sync_duration_seconds"); err != nil {
			t.Error(err)
		}
	})
}

// Many pods are written in parallel, never one pod twice at once, and
// the back-off stops at RetryMax.
func TestSyncerParallelAndBackoffCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cache, _ := NewCache(CacheConfig{})
		sink := &recordingSink{inFlight: map[types.UID]bool{}, start: time.Now(), delay: 100 * time.Millisecond}
		s, err := NewSyncer(SyncerConfig{Source: cache, Sink: sink, Parallelism: 4, RetryMax: time.Second, ReconcilePeriod: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 8 {
			if _, _, err := cache.Set(syncPod(fmt.Sprint("p", i)), phase(v1.PodRunning)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Sync(t.Context(), false); err != nil {
			t.Fatal(err)
		}
		// 8 writes of 100 ms, 4 at once: 200 ms.
		if got := time.Since(sink.start); got != 200*time.Millisecond {
			t.Errorf("8 writes took %s, want 200ms with 4 at once", got)
		}
		if sink.overlap {
			t.Error("a pod was written twice at once")
		}
		sink.take()
		if got := s.backoff(1); got != 200*time.Millisecond {
			t.Errorf("backoff(1) = %s", got)
		}
		if got := s.backoff(10); got != time.Second {
			t.Errorf("backoff(10) = %s, want the cap", got)
		}
	})
}

func TestSyncerConfig(t *testing.T) {
	cache, _ := NewCache(CacheConfig{})
	for name, cfg := range map[string]SyncerConfig{
		"Source":          {Sink: NewMemorySink()},
		"Sink":            {Source: cache},
		"ReconcilePeriod": {Source: cache, Sink: NewMemorySink(), ReconcilePeriod: -1},
		"RetryMax":        {Source: cache, Sink: NewMemorySink(), RetryInitial: time.Second, RetryMax: time.Millisecond},
		"Parallelism":     {Source: cache, Sink: NewMemorySink(), Parallelism: -1},
	} {
		if _, err := NewSyncer(cfg); !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The in-memory sink ends up with each pod's newest status, and a
// finished pod's entry says so.
func TestMemorySink(t *testing.T) {
	cache, _ := NewCache(CacheConfig{})
	sink := NewMemorySink()
	s, err := NewSyncer(SyncerConfig{Source: cache, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	web := syncPod("web")
	cache.Set(web, phase(v1.PodRunning))
	if err := s.Sync(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if e, ok := sink.Get(web.UID); !ok || e.Status.Phase != v1.PodRunning || e.Finished {
		t.Fatalf("after Running: %+v %v", e, ok)
	}
	// Finish with an equal status still makes a version: the sink learns
	// the pod is finished.
	if v, changed, err := cache.Finish(web, phase(v1.PodRunning)); v != 2 || !changed || err != nil {
		t.Fatalf("Finish: %d %v %v", v, changed, err)
	}
	if v, changed, _ := cache.Finish(web, phase(v1.PodRunning)); v != 2 || changed {
		t.Fatalf("a second equal Finish made version %d", v)
	}
	if err := s.Sync(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if e, ok := sink.Get(web.UID); !ok || !e.Finished || e.Version != 2 {
		t.Fatalf("after Finish: %+v", e)
	}
	sink.Delete(web.UID)
	if _, ok := sink.Get(web.UID); ok {
		t.Error("Delete kept the pod")
	}
}

// countingSource counts the statuses a Syncer copies out of a Cache.
type countingSource struct {
	*Cache
	entries, lists int
}

func (c *countingSource) Entry(uid types.UID) (core.PodStatusEntry, bool) {
	c.entries++
	return c.Cache.Entry(uid)
}

func (c *countingSource) List() []core.PodStatusEntry {
	c.lists++
	return c.Cache.List()
}

// With a VersionSource, a pass after one pod's change copies that pod's
// status alone; the periodic pass of every pod lists them all.
func TestSyncerCopiesOnlyWhatItWrites(t *testing.T) {
	cache, _ := NewCache(CacheConfig{})
	src := &countingSource{Cache: cache}
	sink := NewMemorySink()
	s, err := NewSyncer(SyncerConfig{Source: src, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	pods := []*v1.Pod{syncPod("a"), syncPod("b"), syncPod("c")}
	for _, p := range pods {
		if _, _, err := cache.Set(p, phase(v1.PodPending)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if src.entries != 3 || src.lists != 0 {
		t.Fatalf("first pass: %d entries, %d lists; want 3, 0", src.entries, src.lists)
	}
	v, _, err := cache.Set(pods[1], phase(v1.PodRunning))
	if err != nil {
		t.Fatal(err)
	}
	src.entries = 0
	if err := s.Sync(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if src.entries != 1 || src.lists != 0 {
		t.Fatalf("after one change: %d entries, %d lists; want 1, 0", src.entries, src.lists)
	}
	if e, ok := sink.Get(pods[1].UID); !ok || e.Version != v || e.Status.Phase != v1.PodRunning {
		t.Fatalf("sink has %+v, %v", e, ok)
	}
	if err := s.Sync(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	if src.lists != 1 {
		t.Fatalf("periodic pass: %d lists, want 1", src.lists)
	}
}
