package eviction

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// scriptedObserver returns the node as the test sets it, stamped with the
// time of the call.
type scriptedObserver struct {
	mu        sync.Mutex
	available uint64
	pods      []PodStats
	calls     int
}

func (s *scriptedObserver) set(available uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.available = available
}

func (s *scriptedObserver) Observe(context.Context) (Observations, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	now := time.Now()
	obs := Observations{Memory: MemoryStats{Time: now, AvailableBytes: s.available, WorkingSetBytes: 2*gi - s.available}}
	for _, p := range s.pods {
		p.Time = now
		obs.Pods = append(obs.Pods, p)
	}
	return obs, nil
}

// recordingEvictor records evictions; a pod is cleaned up once cleanAfter
// calls to PodCleanedUp asked for it.
type recordingEvictor struct {
	mu      sync.Mutex
	evicted []string
	asked   map[types.UID]int
	after   int
}

func (r *recordingEvictor) EvictPod(_ context.Context, e Eviction) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evicted = append(r.evicted, fmt.Sprintf("%s grace=%d %s", e.Pod.Name, e.GracePeriodSeconds, e.Reason))
	return nil
}

func (r *recordingEvictor) PodCleanedUp(uid types.UID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked[uid]++
	return r.asked[uid] > r.after
}

func (r *recordingEvictor) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.evicted...)
}

type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) Eventf(obj runtime.Object, eventtype, reason, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	name := "?"
	switch o := obj.(type) {
	case *v1.Pod:
		name = "pod/" + o.Name
	case *v1.ObjectReference:
		name = "node/" + o.Name
	}
	l.events = append(l.events, name+" "+eventtype+" "+reason+": "+fmt.Sprintf(format, args...))
}

type gcCounter struct{ n int }

func (g *gcCounter) DeleteAllUnusedContainers(context.Context) error { g.n++; return nil }

func managerFixture(t *testing.T, obs *scriptedObserver, ev PodEvictor, rec Recorder, wake <-chan struct{}, reg prometheus.Registerer) *Manager {
	t.Helper()
	policy, err := NewPolicy(Config{EvictionHard: map[string]string{"memory.available": "100Mi"}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(ManagerConfig{Policy: policy, Observer: obs, Evictor: ev, Recorder: rec, Wake: wake, Registerer: reg,
		Node: &v1.ObjectReference{Kind: "Node", Name: "n1", UID: "n1"}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Under memory pressure the Manager evicts the pod the kubelet would, one
// per round, records the node's and the pod's events, counts the eviction,
// waits for the pod's cleanup, and reports MemoryPressure; a dry run
// decides without acting.
func TestManagerEvicts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hog := newPod("hog", 0, []v1.Container{container("app", "memory=100Mi", "")}, nil)
		calm := newPod("calm", 0, []v1.Container{container("app", "memory=500Mi", "")}, nil)
		obs := &scriptedObserver{available: 1 * gi, pods: []PodStats{memoryUse(hog, 600*mi), memoryUse(calm, 200*mi)}}
		ev := &recordingEvictor{asked: map[types.UID]int{}, after: 2}
		rec := &eventLog{}
		reg := prometheus.NewPedanticRegistry()
		wake := make(chan struct{}, 1)
		m := managerFixture(t, obs, ev, rec, wake, reg)

		// Plenty of memory: a dry run and a round decide nothing.
		d, err := m.DryRun(t.Context())
		if err != nil || d.Starved != nil || len(d.Conditions) != 0 {
			t.Fatalf("dry run without pressure: %v %v", d, err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		synctest.Wait()
		if len(ev.list()) != 0 || len(m.Conditions()) != 0 {
			t.Fatalf("evicted without pressure: %v", ev.list())
		}

		// Memory runs short. A dry run says who would go, and evicts nothing.
		time.Sleep(time.Second) // newer stats than the last round's
		obs.set(50 * mi)
		d, _ = m.DryRun(t.Context())
		if d.Starved == nil || d.Starved.Victim == nil || d.Starved.Victim.Pod.Name != "hog" {
			t.Fatalf("dry run under pressure: %v", d)
		}
		if len(ev.list()) != 0 {
			t.Fatal("a dry run evicted")
		}
		// Woken (a memory notifier), the Manager acts at once.
		wake <- struct{}{}
		synctest.Wait()
		if got := ev.list(); len(got) != 1 || got[0] != "hog grace=1 Evicted" {
			t.Fatalf("evicted: %v", got)
		}
		if c := m.Conditions(); len(c) != 1 || c[0] != v1.NodeMemoryPressure || !m.IsUnderMemoryPressure() || m.IsUnderDiskPressure() || m.IsUnderPIDPressure() {
			t.Fatalf("conditions: %v", c)
		}
		rec.mu.Lock()
		events := strings.Join(rec.events, "\n")
		rec.mu.Unlock()
		if !strings.Contains(events, "node/n1 Warning EvictionThresholdMet") || !strings.Contains(events, "pod/hog Warning Evicted: The node was low on resource: memory.") {
			t.Fatalf("events:\n%s", events)
		}
		// It waits for the pod's cleanup, polled each second, before the
		// next round: cleaned up at the third poll.
		time.Sleep(5 * time.Second)
		synctest.Wait()
		ev.mu.Lock()
		asked := ev.asked[hog.UID]
		ev.mu.Unlock()
		if asked != 3 {
			t.Errorf("cleanup asked %d times", asked)
		}

		// Pressure lasts: the next round takes the next pod.
		obs.mu.Lock()
		obs.pods = obs.pods[1:]
		obs.mu.Unlock()
		time.Sleep(DefaultMonitoringInterval)
		synctest.Wait()
		if got := ev.list(); len(got) != 2 || !strings.HasPrefix(got[1], "calm ") {
			t.Fatalf("second round: %v", got)
		}
		cancel()
		<-done
		if n := testutil.ToFloat64(m.evictions.WithLabelValues("memory.available")); n != 2 {
			t.Errorf("kubelet_evictions = %v", n)
		}
		if n := testutil.CollectAndCount(reg, "kubelet_eviction_stats_age_seconds"); n != 1 {
			t.Errorf("stats age series: %d", n)
		}
	})
}

// Node-level reclaim comes first: when it relieves the pressure no pod is
// evicted. Without an evictor the Manager only reports.
func TestManagerReclaimsFirst(t *testing.T) {
	hog := newPod("hog", 0, []v1.Container{container("app", "", "")}, nil)
	obs := &scriptedObserver{available: 5 * gi, pods: []PodStats{memoryUse(hog, 600*mi)}}
	policy, err := NewPolicy(Config{EvictionHard: map[string]string{"nodefs.available": "1Gi"}})
	if err != nil {
		t.Fatal(err)
	}
	disk := &diskObserver{scriptedObserver: obs, available: 500 * mi}
	gc := &gcCounter{}
	ev := &recordingEvictor{asked: map[types.UID]int{}}
	m, err := NewManager(ManagerConfig{Policy: policy, Observer: disk, Evictor: ev, Containers: &reclaimingGC{gc, disk}})
	if err != nil {
		t.Fatal(err)
	}
	d, evicted, err := m.Synchronize(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if d.Starved == nil || gc.n != 1 || len(evicted) != 0 || len(ev.list()) != 0 {
		t.Fatalf("reclaim: starved=%v gc=%d evicted=%v", d.Starved, gc.n, ev.list())
	}
	// Dry run manager: decides, evicts nothing.
	dry, err := NewManager(ManagerConfig{Policy: policy, Observer: &diskObserver{scriptedObserver: obs, available: 100 * mi}})
	if err != nil {
		t.Fatal(err)
	}
	if d, evicted, err := dry.Synchronize(t.Context()); err != nil || d.Starved == nil || d.Starved.Victim == nil || len(evicted) != 0 {
		t.Fatalf("dry: %v %v %v", d, evicted, err)
	}
	if _, err := NewManager(ManagerConfig{Observer: obs}); err == nil {
		t.Error("no Policy accepted")
	}
}

// diskObserver reports the nodefs as set.
type diskObserver struct {
	*scriptedObserver
	mu        sync.Mutex
	available uint64
}

func (d *diskObserver) Observe(ctx context.Context) (Observations, error) {
	obs, err := d.scriptedObserver.Observe(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	obs.NodeFs = FsStats{Time: obs.Memory.Time, CapacityBytes: 10 * gi, AvailableBytes: d.available, Inodes: 1000, InodesFree: 900}
	return obs, err
}

// reclaimingGC frees disk space when run.
type reclaimingGC struct {
	*gcCounter
	disk *diskObserver
}

func (r *reclaimingGC) DeleteAllUnusedContainers(ctx context.Context) error {
	r.disk.mu.Lock()
	r.disk.available = 5 * gi
	r.disk.mu.Unlock()
	return r.gcCounter.DeleteAllUnusedContainers(ctx)
}
