package syncloop

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
	"github.com/nodekit/nodekit/runtimetest"
)

// statusOf reads a pod's runtime status the way the PLEG caches it.
func statusOf(t *testing.T, rt *runtimetest.Runtime, pod *v1.Pod) *core.PodStatus {
	t.Helper()
	st, err := runtimetest.PodStatus(context.Background(), rt, pod.UID)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// summary renders the pod's containers, sorted: name#attempt:state(exit).
func summary(st *core.PodStatus) string {
	var parts []string
	for _, c := range st.ContainerStatuses {
		state := map[runtimeapi.ContainerState]string{
			runtimeapi.ContainerState_CONTAINER_RUNNING: "running", runtimeapi.ContainerState_CONTAINER_EXITED: "exited",
			runtimeapi.ContainerState_CONTAINER_CREATED: "created",
		}[c.GetState()]
		if c.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			state += fmt.Sprintf("(%d)", c.GetExitCode())
		}
		parts = append(parts, fmt.Sprintf("%s#%d:%s", c.GetMetadata().GetName(), c.GetMetadata().GetAttempt(), state))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func newDriver(t *testing.T, rt *runtimetest.Runtime) *Driver {
	t.Helper()
	tr, err := crispec.New(crispec.Config{PodLogsRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDriver(DriverConfig{Runtime: rt, Translator: tr})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A crashing container restarts at once the first time, then waits out a
// back-off that doubles: the driver, the plan and the back-off together.
func TestDriverCrashLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := simRuntime(t)
		d := newDriver(t, rt)
		pod := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "crash", Namespace: "ns", UID: "uid-crash"},
			Spec: v1.PodSpec{
				HostNetwork:   true,
				RestartPolicy: v1.RestartPolicyAlways,
				InitContainers: []v1.Container{
					{Name: "setup", Image: testImage, Command: []string{"sh", "-c", "exit 0"}},
				},
				Containers: []v1.Container{{Name: "app", Image: testImage, Command: []string{"sh", "-c", "sleep 5; exit 1"}}},
			},
		}
		ctx := context.Background()
		// sync syncs once and checks the containers after it and how
		// long the driver says the next restart waits (0: nothing waits).
		sync := func(want string, wait time.Duration) {
			t.Helper()
			terminal, err := d.SyncPod(ctx, pod, statusOf(t, rt, pod))
			var we *WaitError
			switch {
			case terminal:
				t.Fatal("SyncPod: terminal")
			case wait == 0 && err != nil:
				t.Fatalf("SyncPod: %v", err)
			case wait != 0 && (!errors.As(err, &we) || we.Wait != wait):
				t.Fatalf("SyncPod: %v, want a WaitError of %s", err, wait)
			}
			if got := summary(statusOf(t, rt, pod)); got != want {
				t.Fatalf("after sync:\n got %s\nwant %s", got, want)
			}
			if wait != 0 {
				w := d.Waiting(pod.UID)
				if len(w) != 1 || w[0].Name != "app" || w[0].Reason != ReasonCrashLoopBackOff || !strings.Contains(w[0].Message, "back-off 10s restarting failed container=app") {
					t.Fatalf("Waiting = %+v", w)
				}
			} else if w := d.Waiting(pod.UID); len(w) != 0 {
				t.Fatalf("Waiting = %+v, want none", w)
			}
		}
		sync("setup#0:exited(0)", 0)                               // sandbox, then the init container
		sync("app#0:running setup#0:exited(0)", 0)                 // initialized: the app starts
		time.Sleep(5 * time.Second)                                // the app crashes
		sync("app#0:exited(1) app#1:running setup#0:exited(0)", 0) // first restart: at once
		time.Sleep(5 * time.Second)
		sync("app#0:exited(1) app#1:exited(1) setup#0:exited(0)", 10*time.Second) // second: held back 10 s
		time.Sleep(9 * time.Second)
		sync("app#0:exited(1) app#1:exited(1) setup#0:exited(0)", time.Second)
		time.Sleep(time.Second)
		sync("app#0:exited(1) app#1:exited(1) app#2:running setup#0:exited(0)", 0)
	})
}

// Under restartPolicy Never a finished pod is done: the driver stops its
// sandbox and reports it terminal.
func TestDriverNeverPodCompletes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := simRuntime(t)
		d := newDriver(t, rt)
		pod := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "job", Namespace: "ns", UID: "uid-job"},
			Spec: v1.PodSpec{
				RestartPolicy: v1.RestartPolicyNever,
				Containers:    []v1.Container{{Name: "work", Image: testImage, Command: []string{"sh", "-c", "sleep 1; exit 0"}}},
			},
		}
		ctx := context.Background()
		if terminal, err := d.SyncPod(ctx, pod, statusOf(t, rt, pod)); err != nil || terminal {
			t.Fatalf("first SyncPod: terminal=%v err=%v", terminal, err)
		}
		time.Sleep(2 * time.Second)
		terminal, err := d.SyncPod(ctx, pod, statusOf(t, rt, pod))
		if err != nil || !terminal {
			t.Fatalf("SyncPod after the container finished: terminal=%v err=%v, want terminal", terminal, err)
		}
		st := statusOf(t, rt, pod)
		if got := summary(st); got != "work#0:exited(0)" {
			t.Errorf("containers: %s", got)
		}
		if st.SandboxStatuses[0].GetState() != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
			t.Errorf("sandbox of a finished pod: %s", st.SandboxStatuses[0].GetState())
		}
	})
}

// The image must be there when the pull policy is Never.
func TestDriverImageNeverPulled(t *testing.T) {
	rt := simRuntime(t)
	d := newDriver(t, rt)
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "ghost", Namespace: "ns", UID: "uid-ghost"},
		Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "main", Image: "localhost/absent:v1", ImagePullPolicy: v1.PullNever}}},
	}
	_, err := d.SyncPod(context.Background(), pod, statusOf(t, rt, pod))
	want := `pod ns/ghost container "main": image "localhost/absent:v1" is not present and imagePullPolicy is Never: not found`
	if err == nil || err.Error() != want {
		t.Errorf("SyncPod: %v\nwant %s", err, want)
	}
}
