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
	c.Delete(pod.UID)
	if _, _, ok := c.Get(pod.UID); ok || c.Len() != 1 {
		t.Fatalf("after Delete: %v, %d pods", ok, c.Len())
	}
	// The caller's status is not modified.
	if running.ContainerStatuses[0].State.Running.StartedAt.Nanosecond() == 0 {
		t.Fatal("Set modified its argument")
	}
}
