package statusmgr

import (
	"errors"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodekit/nodekit/core"
)

func cachePod(policy v1.RestartPolicy) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-web"},
		Spec: v1.PodSpec{RestartPolicy: policy, Containers: []v1.Container{{Name: "app", Image: "busybox"}}}}
}

func appState(s v1.ContainerState) v1.PodStatus {
	return v1.PodStatus{Phase: v1.PodRunning, ContainerStatuses: []v1.ContainerStatus{{Name: "app", State: s}}}
}

func TestCacheVersions(t *testing.T) {
	c, err := NewCache(CacheConfig{})
	if err != nil {
		t.Fatal(err)
	}
	pod := cachePod(v1.RestartPolicyNever)
	started := time.Date(2026, 11, 26, 12, 0, 0, 123456789, time.UTC)
	running := appState(v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: metav1.NewTime(started)}})
	if v, changed, err := c.Set(pod, running); v != 1 || !changed || err != nil {
		t.Fatalf("first Set: %d %v %v", v, changed, err)
	}
	select {
	case <-c.Changed():
	default:
		t.Fatal("no change signalled")
	}
	// Times are cut to the second, as the API stores them: a status that
	// differs only below the second is the same status.
	again := appState(v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: metav1.NewTime(started.Add(500 * time.Millisecond))}})
	if v, changed, err := c.Set(pod, again); v != 1 || changed || err != nil {
		t.Fatalf("equal Set: %d %v %v", v, changed, err)
	}
	select {
	case <-c.Changed():
		t.Fatal("a change signalled for an equal status")
	default:
	}
	got, v, ok := c.Get(pod.UID)
	if !ok || v != 1 || !got.ContainerStatuses[0].State.Running.StartedAt.Time.Equal(started.Truncate(time.Second)) {
		t.Fatalf("Get: %v %d %+v", ok, v, got.ContainerStatuses[0].State)
	}
	exited := appState(v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}})
	exited.Phase = v1.PodFailed
	if v, changed, err := c.Set(pod, exited); v != 2 || !changed || err != nil {
		t.Fatalf("exit: %d %v %v", v, changed, err)
	}
	// Under restartPolicy Never a terminated container never runs again:
	// such a status is refused and the stored one kept.
	v, changed, err := c.Set(pod, running)
	if !errors.Is(err, core.ErrInvalid) || v != 2 || changed {
		t.Fatalf("terminated → running: %d %v %v", v, changed, err)
	}
	if got, _, _ := c.Get(pod.UID); got.Phase != v1.PodFailed {
		t.Fatalf("stored phase %s after a refused status", got.Phase)
	}
	// Under Always it may.
	always := cachePod(v1.RestartPolicyAlways)
	always.UID = "uid-always"
	c.Set(always, exited)
	if _, changed, err := c.Set(always, running); !changed || err != nil {
		t.Fatalf("Always: %v %v", changed, err)
	}
	if l := c.List(); len(l) != 2 {
		t.Fatalf("List: %d entries", len(l))
	}
	c.Delete(pod.UID)
	if l := c.List(); len(l) != 1 || l[0].Pod.UID != always.UID || l[0].Version != 2 {
		t.Fatalf("List after Delete: %+v", l)
	}
	if _, _, ok := c.Get(pod.UID); ok || c.Len() != 1 {
		t.Fatalf("after Delete: %v, %d pods", ok, c.Len())
	}
	// The caller's status is not modified.
	if running.ContainerStatuses[0].State.Running.StartedAt.Nanosecond() == 0 {
		t.Fatal("Set modified its argument")
	}
}

// A readiness flip updates the container and the two readiness conditions
// of the cached status at once; a transition time moves only with its
// condition's status.
func TestCacheSetContainerReadiness(t *testing.T) {
	c, _ := NewCache(CacheConfig{})
	pod := cachePod(v1.RestartPolicyAlways)
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	cond := func(typ v1.PodConditionType, st v1.ConditionStatus) v1.PodCondition {
		return v1.PodCondition{Type: typ, Status: st, LastTransitionTime: metav1.NewTime(t0)}
	}
	status := appState(v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: metav1.NewTime(t0)}})
	status.ContainerStatuses[0].ContainerID = "containerd://abc"
	status.Conditions = []v1.PodCondition{cond(v1.PodScheduled, v1.ConditionTrue), cond(v1.ContainersReady, v1.ConditionFalse), cond(v1.PodReady, v1.ConditionFalse)}
	if _, _, err := c.Set(pod, status); err != nil {
		t.Fatal(err)
	}
	if _, changed := c.SetContainerReadiness(pod.UID, "nope", true, t0); changed {
		t.Fatal("an unknown container changed the status")
	}
	t1 := t0.Add(7 * time.Second)
	v, changed := c.SetContainerReadiness(pod.UID, "abc", true, t1)
	if v != 2 || !changed {
		t.Fatalf("ready: version %d changed %v", v, changed)
	}
	got, _, _ := c.Get(pod.UID)
	if !got.ContainerStatuses[0].Ready {
		t.Fatal("container not ready")
	}
	for _, want := range []struct {
		typ v1.PodConditionType
		st  v1.ConditionStatus
		at  time.Time
	}{{v1.PodScheduled, v1.ConditionTrue, t0}, {v1.ContainersReady, v1.ConditionTrue, t1}, {v1.PodReady, v1.ConditionTrue, t1}} {
		c := findCondition(got.Conditions, want.typ)
		if c == nil || c.Status != want.st || !c.LastTransitionTime.Time.Equal(want.at) {
			t.Errorf("condition %s: %+v, want %s since %s", want.typ, c, want.st, want.at)
		}
	}
	if _, changed := c.SetContainerReadiness(pod.UID, "abc", true, t1.Add(time.Second)); changed {
		t.Error("the same readiness again changed the status")
	}
	// Not ready again: False, with the container named.
	c.SetContainerReadiness(pod.UID, "abc", false, t1.Add(3*time.Second))
	got, _, _ = c.Get(pod.UID)
	if r := findCondition(got.Conditions, v1.PodReady); r.Status != v1.ConditionFalse || r.Message != "containers with unready status: [app]" ||
		!r.LastTransitionTime.Time.Equal(t1.Add(3*time.Second)) {
		t.Errorf("Ready after unready: %+v", r)
	}
	// A container that does not run cannot become ready.
	stopped := appState(v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 0}})
	stopped.ContainerStatuses[0].ContainerID = "containerd://abc"
	c.Set(pod, stopped)
	if _, changed := c.SetContainerReadiness(pod.UID, "abc", true, t1); changed {
		t.Error("an exited container became ready")
	}
}

// A startup probe's change sets the instance's started flag at once, a
// new version; the same value again, or an unknown instance, changes
// nothing.
func TestCacheSetContainerStartup(t *testing.T) {
	c, _ := NewCache(CacheConfig{})
	pod := cachePod(v1.RestartPolicyAlways)
	st := appState(v1.ContainerState{Running: &v1.ContainerStateRunning{}})
	st.ContainerStatuses[0].ContainerID = "containerd://c1"
	st.ContainerStatuses[0].Started = new(false)
	if _, _, err := c.Set(pod, st); err != nil {
		t.Fatal(err)
	}
	<-c.Changed()
	if v, ok := c.SetContainerStartup(pod.UID, "c1", true); v != 2 || !ok {
		t.Fatalf("startup: %d %v", v, ok)
	}
	got, _, _ := c.Get(pod.UID)
	if s := got.ContainerStatuses[0].Started; s == nil || !*s {
		t.Fatalf("started = %v", s)
	}
	select {
	case <-c.Changed():
	default:
		t.Error("no change signalled")
	}
	if v, ok := c.SetContainerStartup(pod.UID, "c1", true); v != 2 || ok {
		t.Errorf("same value: %d %v", v, ok)
	}
	if _, ok := c.SetContainerStartup(pod.UID, "other", false); ok {
		t.Error("an unknown instance changed")
	}
	if _, ok := c.SetContainerStartup("nobody", "c1", false); ok {
		t.Error("an unknown pod changed")
	}
}
