package embedtest_test

import (
	"testing"
	"testing/synctest"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodekit/nodekit/syncloop"
)

// A container that fails at once, under restartPolicy Always, crash-loops
// as under the kubelet. Its first restart comes at the first sync after
// the crash — the PLEG's next relist, 1 s later — and each later one
// waits out a back-off that starts at 10 s and doubles at every crash up
// to 5 min, counted from the previous restart. Between restarts the pod is
// Running and its container waits in CrashLoopBackOff with the current
// delay in its message, its restart count, and the last crash (exit code
// 1, reason Error) as its last state.
//
// The pod's first 16 minutes pass in milliseconds of wall time: time in
// the synctest bubble is virtual and jumps ahead whenever the agent has
// nothing to do but wait, so every restart lands at exactly the instant
// the back-off ends.
func TestCrashLoopBackOff(t *testing.T) {
	wall := time.Now()
	synctest.Test(t, func(t *testing.T) {
		a := startAgent(t)
		pod := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "crash", Namespace: "default", UID: "uid-crash"},
			Spec: v1.PodSpec{RestartPolicy: v1.RestartPolicyAlways, Containers: []v1.Container{{
				Name: "app", Image: testImage, Command: []string{"sh", "-c", "exit 1"},
			}}},
		}
		start := time.Now() // 2000-01-01 00:00:00 UTC in every bubble
		a.set(pod)

		// restarts[i] is when attempt i+1 starts, and the delay that then
		// holds back attempt i+2 (each attempt fails the instant it starts).
		restarts := []struct{ at, delay time.Duration }{
			{1 * time.Second, 10 * time.Second},    // at once: at the next relist
			{11 * time.Second, 20 * time.Second},   // 10 s after the previous restart
			{31 * time.Second, 40 * time.Second},   // 20 s
			{71 * time.Second, 80 * time.Second},   // 40 s
			{151 * time.Second, 160 * time.Second}, // 80 s
			{311 * time.Second, 300 * time.Second}, // 160 s; the next 320 s, capped at 5 min
			{611 * time.Second, 300 * time.Second}, // 5 min
			{911 * time.Second, 300 * time.Second}, // 5 min
		}
		for i, r := range restarts {
			// Midway through the back-off that follows the restart.
			time.Sleep(time.Until(start.Add(r.at + 5*time.Second)))
			synctest.Wait() // the agent has done all it does at this instant

			// In the runtime: attempts 0..i+1, each started on time.
			got := a.instances(pod.UID, "app")
			if len(got) != i+2 {
				t.Fatalf("at %v: %d attempts of the container, want %d", time.Since(start), len(got), i+2)
			}
			for j, c := range got {
				want := start
				if j > 0 {
					want = start.Add(restarts[j-1].at)
				}
				if started := time.Unix(0, c.GetStartedAt()).UTC(); !started.Equal(want) {
					t.Fatalf("attempt %d started at %v, want %v", j, started.Sub(start), want.Sub(start))
				}
			}

			// In the pod's status: what kubectl would show.
			st := a.status(pod)
			cs := st.ContainerStatuses[0]
			waiting, last := cs.State.Waiting, cs.LastTerminationState.Terminated
			wantMessage := syncloop.CrashLoopBackOffMessage(r.delay, "app", pod.Name, pod.Namespace, pod.UID)
			switch {
			case st.Phase != v1.PodRunning:
				t.Fatalf("at %v: phase %s, want Running", time.Since(start), st.Phase)
			case waiting == nil || waiting.Reason != syncloop.ReasonCrashLoopBackOff || waiting.Message != wantMessage:
				t.Fatalf("at %v: state %+v, want waiting in CrashLoopBackOff: %q", time.Since(start), cs.State, wantMessage)
			case cs.RestartCount != int32(i+1):
				t.Fatalf("at %v: restartCount %d, want %d", time.Since(start), cs.RestartCount, i+1)
			case last == nil || last.ExitCode != 1 || last.Reason != "Error" || !last.StartedAt.Time.Equal(start.Add(r.at)):
				t.Fatalf("at %v: lastState %+v, want terminated with exit code 1, reason Error, started at %v", time.Since(start), cs.LastTerminationState, r.at)
			case cs.Ready:
				t.Fatalf("at %v: the container is ready", time.Since(start))
			}
			t.Logf("%6v: attempt %d started at %v; restartCount %d, waiting: %s", time.Since(start), i+1, r.at, cs.RestartCount, waiting.Message)
		}
	})
	t.Logf("16 minutes of the pod's life took %v of wall time", time.Since(wall).Round(time.Millisecond))
}
