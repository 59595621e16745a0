package syncloop

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/runtimetest"
)

// runtimeStatus reads a pod's status from the runtime on every call: it
// is always fresh.
type runtimeStatus struct {
	t  *testing.T
	rt *runtimetest.Runtime
	// pods by UID, for statusOf.
	pods map[types.UID]*v1.Pod
}

func (s runtimeStatus) GetNewerThan(_ context.Context, uid types.UID, _ time.Time) (*core.PodStatus, error) {
	return statusOf(s.t, s.rt, s.pods[uid]), nil
}

// The whole CrashLoopBackOff sequence through the workers, the driver and
// the simulated runtime, on virtual time: a container that exits at once
// is restarted at the first sync after its exit (the workers resync every
// second here), then held back 10 s, 20 s, … up to 300 s, each restart
// exactly when its back-off ends; a run longer than 10 min resets it.
func TestCrashLoopBackOffSequenceThroughWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := simRuntime(t)
		d := newDriver(t, rt)
		pod := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "crash", Namespace: "ns", UID: "uid-crash"},
			Spec: v1.PodSpec{HostNetwork: true, RestartPolicy: v1.RestartPolicyAlways,
				Containers: []v1.Container{{Name: "app", Image: testImage, Command: []string{"sh", "-c", "exit 1"}}}},
		}
		w, err := NewWorkers(WorkersConfig{Syncer: d, Status: runtimeStatus{t: t, rt: rt, pods: map[types.UID]*v1.Pod{pod.UID: pod}},
			ResyncInterval: time.Second, Jitter: func() float64 { return 0 }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Error(err)
			}
		}()
		w.Update(Update{Type: UpdateCreate, Pod: pod})

		// gaps returns, for each attempt after the first, the time from
		// the previous attempt's exit to its start.
		gaps := func() []time.Duration {
			st := statusOf(t, rt, pod)
			byAttempt := map[uint32]*runtimeapi.ContainerStatus{}
			for _, c := range st.ContainerStatuses {
				byAttempt[c.GetMetadata().GetAttempt()] = c
			}
			var out []time.Duration
			for a := uint32(1); byAttempt[a] != nil; a++ {
				out = append(out, time.Duration(byAttempt[a].GetStartedAt()-byAttempt[a-1].GetFinishedAt()))
			}
			return out
		}
		time.Sleep(16 * time.Minute)
		want := []time.Duration{time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
			160 * time.Second, 300 * time.Second, 300 * time.Second}
		got := gaps()
		if len(got) < len(want) {
			t.Fatalf("restart gaps %v, want at least %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("restart gaps %v, want %v first", got, want)
			}
		}

		// The next instance runs 11 minutes: its exit restarts at the
		// next sync, and the back-off starts over at 10 s.
		rt.SetBehavior(runtimetest.Match{Container: "app"}, runtimetest.Behavior{Exit: &runtimetest.Exit{After: 11 * time.Minute, Code: 1}})
		n := len(got)
		for len(gaps()) == n {
			time.Sleep(time.Second) // until it starts
		}
		rt.ClearBehaviors()
		time.Sleep(12 * time.Minute)
		got = gaps()
		if len(got) < n+3 {
			t.Fatalf("restart gaps %v: want three more after %d", got, n)
		}
		if got[n] != 300*time.Second || got[n+1] > time.Second || got[n+2] != 10*time.Second || got[n+3] != 20*time.Second {
			t.Fatalf("around a run of 11 min: gaps %v, want 5m0s (the long run starts), at most 1s (its exit: restarted at the next sync), then 10s and 20s", got[n:])
		}
	})
}
