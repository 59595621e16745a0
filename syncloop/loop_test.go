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

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/runtimetest"
)

// recordingWorkers records the updates the loop hands to the workers.
type recordingWorkers struct {
	mu      sync.Mutex
	updates []string
	states  map[types.UID]WorkerState
	forgot  []types.UID
}

func (r *recordingWorkers) Update(u Update) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates = append(r.updates, u.Type.String()+":"+u.Pod.Name)
	if r.states == nil {
		r.states = map[types.UID]WorkerState{}
	}
	if _, ok := r.states[u.Pod.UID]; !ok {
		r.states[u.Pod.UID] = Syncing
	}
}

func (r *recordingWorkers) State(uid types.UID) (WorkerState, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.states[uid]
	return s, ok
}

func (r *recordingWorkers) States() map[types.UID]WorkerState {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[types.UID]WorkerState{}
	for k, v := range r.states {
		out[k] = v
	}
	return out
}

func (r *recordingWorkers) Forget(uid types.UID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forgot = append(r.forgot, uid)
	delete(r.states, uid)
	return true
}

func (r *recordingWorkers) take() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := strings.Join(r.updates, " ")
	r.updates = nil
	return s
}

func (r *recordingWorkers) set(uid types.UID, s WorkerState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states[uid] = s
}

// cpuAdmitter admits pods while the CPU they request fits in millis.
type cpuAdmitter struct{ millis int64 }

func (a cpuAdmitter) Admit(attrs AdmitAttributes) AdmitResult {
	used := int64(0)
	for _, p := range append(attrs.OtherPods, attrs.Pod) {
		for _, c := range p.Spec.Containers {
			used += c.Resources.Requests.Cpu().MilliValue()
		}
	}
	if used > a.millis {
		return AdmitResult{Reason: "OutOfcpu", Message: fmt.Sprintf("requested %d of %d", used, a.millis)}
	}
	return AdmitResult{Admit: true}
}

type statuses struct {
	mu  sync.Mutex
	got map[string]v1.PodStatus
}

func (s *statuses) SetPodStatus(p *v1.Pod, st v1.PodStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.got == nil {
		s.got = map[string]v1.PodStatus{}
	}
	s.got[p.Name] = st
}

func cpuPod(name string, millis int64, created int) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name),
			CreationTimestamp: metav1.NewTime(time.Unix(int64(created), 0))},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app", Resources: v1.ResourceRequirements{
			Requests: v1.ResourceList{v1.ResourceCPU: *resource.NewMilliQuantity(millis, resource.DecimalSI)}}}}},
	}
}

func newTestLoop(t *testing.T, w PodWorkers, adm Admitter, st PodStatusSetter) *Loop {
	t.Helper()
	l, err := NewLoop(LoopConfig{Updates: make(chan core.PodUpdate), Workers: w, Admission: adm, Status: st})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Added pods are admitted oldest first against the pods already active; a
// rejected pod gets a Failed status and never reaches the workers, and
// later updates of it are ignored.
func TestLoopAdmission(t *testing.T) {
	w := &recordingWorkers{}
	st := &statuses{}
	l := newTestLoop(t, w, cpuAdmitter{millis: 1000}, st)
	l.Handle(core.PodUpdate{Op: core.OpAdd, Pods: []*v1.Pod{cpuPod("late", 500, 3), cpuPod("early", 600, 1)}, Source: core.SourceFile})
	if got := w.take(); got != "create:early" {
		t.Fatalf("updates %q, want only the older pod created", got)
	}
	if s := st.got["late"]; s.Phase != v1.PodFailed || s.Reason != "OutOfcpu" || s.Message != "Pod was rejected: requested 1100 of 1000" {
		t.Fatalf("status of the rejected pod: %+v", s)
	}
	if !l.IsPodTerminated("uid-late") || l.IsPodDeleted("uid-late") {
		t.Fatal("a rejected pod is terminated, and still wanted")
	}
	l.Handle(core.PodUpdate{Op: core.OpUpdate, Pods: []*v1.Pod{cpuPod("late", 100, 3)}})
	if got := w.take(); got != "" {
		t.Fatalf("updates of a rejected pod reached the workers: %q", got)
	}
	// Once the first pod terminated it no longer counts.
	w.set("uid-early", Terminated)
	l.Handle(core.PodUpdate{Op: core.OpAdd, Pods: []*v1.Pod{cpuPod("next", 900, 4)}})
	if got := w.take(); got != "create:next" {
		t.Fatalf("updates %q, want next admitted", got)
	}
	if got := len(l.ActivePods()); got != 1 {
		t.Fatalf("%d active pods, want 1", got)
	}
}

func TestLoopRoutesUpdates(t *testing.T) {
	w := &recordingWorkers{}
	l := newTestLoop(t, w, nil, nil)
	web := cpuPod("web", 0, 1)
	l.Handle(core.PodUpdate{Op: core.OpAdd, Pods: []*v1.Pod{web}})
	l.Handle(core.PodUpdate{Op: core.OpAdd, Pods: []*v1.Pod{web}}) // again: an update
	l.Handle(core.PodUpdate{Op: core.OpReconcile, Pods: []*v1.Pod{web}})
	done := web.DeepCopy()
	done.Status.Phase = v1.PodFailed
	l.Handle(core.PodUpdate{Op: core.OpReconcile, Pods: []*v1.Pod{done}})
	deleting := web.DeepCopy()
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Unix(10, 0)}
	l.Handle(core.PodUpdate{Op: core.OpDelete, Pods: []*v1.Pod{deleting}})
	l.Handle(core.PodUpdate{Op: core.OpRemove, Pods: []*v1.Pod{web}})
	if got, want := w.take(), "create:web update:web update:web update:web kill:web"; got != want {
		t.Fatalf("updates\n got %s\nwant %s", got, want)
	}
	if !l.IsPodDeleted(web.UID) {
		t.Fatal("a removed pod is not deleted")
	}
	// Events of known pods wake their worker; removals and unknown pods
	// do not.
	l.Handle(core.PodUpdate{Op: core.OpAdd, Pods: []*v1.Pod{cpuPod("db", 0, 2)}})
	w.take()
	l.handleEvent(core.PodLifecycleEvent{PodUID: "uid-db", Type: core.ContainerDied})
	l.handleEvent(core.PodLifecycleEvent{PodUID: "uid-db", Type: core.ContainerRemoved})
	l.handleEvent(core.PodLifecycleEvent{PodUID: "uid-web", Type: core.ContainerDied})
	if got := w.take(); got != "sync:db" {
		t.Fatalf("updates from events: %q, want sync:db", got)
	}
}

// Housekeeping forgets the terminated workers of pods no source wants, and
// keeps those still wanted.
func TestLoopHousekeepingForgets(t *testing.T) {
	w := &recordingWorkers{}
	l := newTestLoop(t, w, nil, nil)
	l.Handle(core.PodUpdate{Op: core.OpAdd, Pods: []*v1.Pod{cpuPod("a", 0, 1), cpuPod("b", 0, 2)}})
	l.Handle(core.PodUpdate{Op: core.OpRemove, Pods: []*v1.Pod{cpuPod("a", 0, 1)}})
	w.set("uid-a", Terminated)
	w.set("uid-b", Terminated)
	if err := l.Housekeep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(w.forgot) != "[uid-a]" {
		t.Fatalf("forgot %v, want [uid-a]", w.forgot)
	}
}

func TestLoopRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &recordingWorkers{}
		updates := make(chan core.PodUpdate)
		events := make(chan core.PodLifecycleEvent)
		l, err := NewLoop(LoopConfig{Updates: updates, Events: events, Workers: w})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- l.Run(t.Context()) }()
		updates <- core.PodUpdate{Op: core.OpAdd, Pods: []*v1.Pod{cpuPod("web", 0, 1)}}
		events <- core.PodLifecycleEvent{PodUID: "uid-web", Type: core.ContainerStarted}
		close(events) // the loop carries on without events
		updates <- core.PodUpdate{Op: core.OpRemove, Pods: []*v1.Pod{cpuPod("web", 0, 1)}}
		synctest.Wait()
		if got := w.take(); got != "create:web sync:web kill:web" {
			t.Fatalf("updates %q", got)
		}
		close(updates)
		if err := <-done; err == nil || !strings.Contains(err.Error(), "closed") {
			t.Fatalf("Run after the updates closed: %v", err)
		}
	})
}

func TestNewLoopValidation(t *testing.T) {
	_, err := NewLoop(LoopConfig{HousekeepingInterval: -time.Second})
	if !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("err %v, want ErrInvalid", err)
	}
	for _, want := range []string{"Updates is required", "Workers is required", "HousekeepingInterval"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// Once every source is ready, housekeeping hands each runtime pod that no
// source wants to the workers to kill, once; a pod a source wants is left
// alone.
func TestLoopKillsOrphans(t *testing.T) {
	rt := simRuntime(t)
	orphan := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orphan", Namespace: "ns", UID: "uid-orphan"},
		Spec: v1.PodSpec{HostNetwork: true, Containers: []v1.Container{{Name: "app", Image: testImage}}}}
	kept := orphan.DeepCopy()
	kept.Name, kept.UID = "kept", "uid-kept"
	runRaw(t, rt, orphan)
	runRaw(t, rt, kept)
	w := &recordingWorkers{}
	ready := false
	l, err := NewLoop(LoopConfig{Updates: make(chan core.PodUpdate), Workers: w, Runtime: rt, SourcesReady: func() bool { return ready }})
	if err != nil {
		t.Fatal(err)
	}
	l.Handle(core.PodUpdate{Op: core.OpAdd, Pods: []*v1.Pod{kept}})
	w.take()
	ctx := context.Background()
	if err := l.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.take(); got != "" {
		t.Fatalf("killed %q before the sources were ready", got)
	}
	ready = true
	for range 2 {
		if err := l.Housekeep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.take(); got != "kill:orphan" {
		t.Fatalf("updates %q, want one kill of the orphan", got)
	}
	// A runtime that fails to list is an error of the round.
	if err := rt.InjectFault("ListPodSandbox", runtimetest.Fault{Err: core.ErrUnavailable}); err != nil {
		t.Fatal(err)
	}
	if err := l.Housekeep(ctx); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("Housekeep with the runtime down: %v", err)
	}
}

// At a restart the sources may count as ready while the update with their
// pods still waits to be handled: the loop's SourcesReady waits for it,
// and housekeeping kills nothing the update holds.
func TestLoopSourcesReadyWaitsForPendingUpdates(t *testing.T) {
	rt := simRuntime(t)
	running := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "running", Namespace: "ns", UID: "uid-running"},
		Spec: v1.PodSpec{HostNetwork: true, Containers: []v1.Container{{Name: "app", Image: testImage}}}}
	orphan := running.DeepCopy()
	orphan.Name, orphan.UID = "orphan", "uid-orphan"
	runRaw(t, rt, running)
	runRaw(t, rt, orphan)
	updates := make(chan core.PodUpdate, 1)
	updates <- core.PodUpdate{Op: core.OpAdd, Pods: []*v1.Pod{running}}
	w := &recordingWorkers{}
	l, err := NewLoop(LoopConfig{Updates: updates, Workers: w, Runtime: rt, SourcesReady: func() bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := l.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	if l.SourcesReady() {
		t.Fatal("SourcesReady with the sources' update still waiting")
	}
	if got := w.take(); got != "" {
		t.Fatalf("housekeeping with an update waiting: %q, want nothing", got)
	}
	l.Handle(<-updates)
	w.take()
	if err := l.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	if !l.SourcesReady() {
		t.Fatal("not SourcesReady once the update was handled")
	}
	if got := w.take(); got != "kill:orphan" {
		t.Fatalf("updates %q, want one kill of the orphan alone", got)
	}
}
