package embedtest_test

import (
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	v1 "k8s.io/api/core/v1"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/staticpod"
)

// web is a static pod manifest whose container ignores SIGTERM: stopping
// it takes its whole grace period of 10 s, then it is killed.
const web = `apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 10
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "trap '' TERM; echo VERSION; while true; do sleep 1; done"]
`

// decode reads a manifest as a file source would read
// /etc/kubernetes/manifests/web.yaml on node n1.
func decode(t *testing.T, manifest string) *v1.Pod {
	t.Helper()
	pods, err := staticpod.Decode([]byte(manifest), staticpod.DecodeOptions{NodeName: "n1", Source: core.SourceFile,
		Location: "/etc/kubernetes/manifests/web.yaml"})
	if err != nil || len(pods) != 1 {
		t.Fatalf("decode: %d pods, %v", len(pods), err)
	}
	return pods[0]
}

// An edited static pod manifest is a new pod — its UID follows from the
// content — that replaces the old one, as under the kubelet: the old pod
// is stopped with its whole grace period, and the new one, of the same
// name, waits in ContainerCreating until the old one has terminated: two
// never run at once.
//
// The timeline, in virtual time from the edit: the old container ignores
// SIGTERM and is killed at exactly 10 s (exit code 137); its worker asks
// the PLEG for a fresh status of the pod, sees nothing runs and is done at
// that instant; the new pod starts at once, at 10 s too, and is Running in
// its status from the next relist, 11 s at the latest.
//
// The manifests are decoded and handed to the Merger here, as a
// FileSource would after reading them: a FileSource watches its directory
// with fsnotify, a goroutine blocked in a system call, and time in a
// synctest bubble never moves while one is.
func TestStaticPodEditReplacesPod(t *testing.T) {
	wall := time.Now()
	synctest.Test(t, func(t *testing.T) {
		a := startAgent(t)
		old := decode(t, strings.Replace(web, "VERSION", "v1", 1))
		a.set(old)
		time.Sleep(time.Minute)
		synctest.Wait()
		if st := a.status(old); st.Phase != v1.PodRunning || !st.ContainerStatuses[0].Ready {
			t.Fatalf("before the edit: phase %s, containers %+v", st.Phase, st.ContainerStatuses)
		}

		edited := decode(t, strings.Replace(web, "VERSION", "v2", 1))
		if edited.Name != "web-n1" || edited.Name != old.Name || edited.UID == old.UID {
			t.Fatalf("pods %s (%s) and %s (%s): want one name, two UIDs", old.Name, old.UID, edited.Name, edited.UID)
		}
		edit := time.Now()
		a.set(edited) // the merger sends REMOVE of the old pod, ADD of the new
		// check asserts, at edit+at, the states of the pods' workers
		// ("gone" once the loop forgot the pod) and whether the old and
		// new containers run.
		check := func(at time.Duration, oldState, newState string, oldRuns, newRuns bool) {
			t.Helper()
			time.Sleep(time.Until(edit.Add(at)))
			synctest.Wait()
			so, sn := workerState(a, old), workerState(a, edited)
			oldC, newC := a.instances(old.UID, "app"), a.instances(edited.UID, "app")
			oldRunning := len(oldC) == 1 && oldC[0].GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING
			newRunning := len(newC) == 1 && newC[0].GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING
			if !slices.Contains(strings.Split(oldState, "|"), so) || sn != newState || oldRunning != oldRuns || newRunning != newRuns || (!newRuns && len(newC) > 0) {
				t.Fatalf("at %v: old pod %v (container running: %v), new pod %v (containers %d, running: %v); want %v (%v), %v (%v)",
					at, so, oldRunning, sn, len(newC), newRunning, oldState, oldRuns, newState, newRuns)
			}
			t.Logf("%13v: old pod %-11v container running: %-5v  new pod %-8v container running: %v", at, so, oldRunning, sn, newRunning)
		}
		check(0, "terminating", "syncing", true, false)
		if st := a.status(edited); st.Phase != v1.PodPending || st.ContainerStatuses[0].State.Waiting == nil ||
			st.ContainerStatuses[0].State.Waiting.Reason != "ContainerCreating" {
			t.Fatalf("new pod while the old one terminates: phase %s, containers %+v", st.Phase, st.ContainerStatuses)
		}
		check(10*time.Second-time.Nanosecond, "terminating", "syncing", true, false)
		// Killed at 10 s, and the new pod started at that same instant
		// (the old pod may even be forgotten already, if the loop's
		// housekeeping falls on that instant too).
		check(10*time.Second, "terminated|gone", "syncing", false, true)
		if c := a.instances(old.UID, "app")[0]; c.GetExitCode() != 137 || !time.Unix(0, c.GetFinishedAt()).Equal(edit.Add(10*time.Second)) {
			t.Fatalf("old container: exit code %d at %v, want 137 at 10s", c.GetExitCode(), time.Unix(0, c.GetFinishedAt()).Sub(edit))
		}

		st := a.status(old)
		if term := st.ContainerStatuses[0].State.Terminated; term == nil || term.ExitCode != 137 || term.Reason != "Error" {
			t.Fatalf("old pod's last status: %+v", st.ContainerStatuses[0].State)
		}
		// The PLEG's cache, and so the status, has the new container at
		// the next relist; the loop's housekeeping (every 2 s) has
		// forgotten the old pod by then.
		check(12*time.Second, "gone", "syncing", false, true)
		st = a.status(edited)
		// Its start time is when its status was first generated: at the
		// edit, above.
		if st.Phase != v1.PodRunning || !st.ContainerStatuses[0].Ready || !st.StartTime.Time.Equal(edit) {
			t.Fatalf("new pod: phase %s, start time %v, containers %+v", st.Phase, st.StartTime, st.ContainerStatuses)
		}
	})
	t.Logf("a minute and 12 seconds of the pods' lives took %v of wall time", time.Since(wall).Round(time.Millisecond))
}

// workerState is the state of a pod's worker, "gone" once the loop
// forgot the pod.
func workerState(a *agent, pod *v1.Pod) string {
	s, ok := a.workers.State(pod.UID)
	if !ok {
		return "gone"
	}
	return s.String()
}
