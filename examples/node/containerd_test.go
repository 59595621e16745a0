package node_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/cri"
	"github.com/nodekit/nodekit/crispec"
	"github.com/nodekit/nodekit/examples/node"
	"github.com/nodekit/nodekit/internal/testenv"
	"github.com/nodekit/nodekit/staticpod"
	"github.com/nodekit/nodekit/syncloop"
)

// env is one containerd and the CRI adapter over it.
type env struct {
	cd       *testenv.Containerd
	rt       *cri.Runtime
	logsRoot string
}

func startEnv(t *testing.T, v testenv.Version) *env { return startEnvB(t, v) }

func startEnvB(t testing.TB, v testenv.Version) *env {
	t.Helper()
	cd := testenv.StartContainerd(t, testenv.Options{Version: v})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rt, err := cri.New(ctx, cri.Config{Endpoint: cd.Endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	return &env{cd: cd, rt: rt, logsRoot: t.TempDir()}
}

// agent is one running Node and the channel that feeds it pods.
type agent struct {
	*node.Node
	updates chan core.PodUpdate
	stop    func()
}

// start runs a Node over the environment's runtime until stop (or the end
// of the test). Stopping the agent leaves its pods running, as a
// restarting kubelet does.
func (e *env) start(t *testing.T, mod func(*node.Config)) *agent {
	t.Helper()
	tr, err := crispec.New(crispec.Config{PodLogsRoot: e.logsRoot})
	if err != nil {
		t.Fatal(err)
	}
	updates := make(chan core.PodUpdate, 16)
	cfg := node.Config{
		Runtime: e.rt, Updates: updates, Translator: tr, PodLogsRoot: e.logsRoot, CgroupParent: e.cd.CgroupParent,
		HostIPs: []string{"127.0.0.1"}, Logger: zaptest.NewLogger(t).Named(t.Name()),
	}
	if mod != nil {
		mod(&cfg)
	}
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("node.Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return &agent{Node: n, updates: updates, stop: stop}
}

func (a *agent) send(op core.PodOp, pods ...*v1.Pod) {
	a.updates <- core.PodUpdate{Op: op, Pods: pods, Source: core.SourceFile}
}

// hostPod is a host-network pod of busybox containers.
func hostPod(name string, containers ...v1.Container) *v1.Pod {
	for i := range containers {
		containers[i].Image = testenv.BusyboxImage
		containers[i].ImagePullPolicy = v1.PullNever
	}
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "e2e", UID: types.UID("uid-" + name)},
		Spec: v1.PodSpec{
			HostNetwork:                   true,
			TerminationGracePeriodSeconds: ptr.To[int64](5),
			Containers:                    containers,
		},
	}
}

// service runs until stopped and exits 0 on SIGTERM.
func service(name string) v1.Container {
	return v1.Container{Name: name, Command: []string{"sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"}}
}

// containers lists the pod's containers in the runtime, with their status.
func (e *env) containers(t testing.TB, uid types.UID) []*runtimeapi.ContainerStatus {
	t.Helper()
	ctx := context.Background()
	list, err := e.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{core.LabelPodUID: string(uid)}})
	if err != nil {
		t.Fatal(err)
	}
	var out []*runtimeapi.ContainerStatus
	for _, c := range list {
		st, err := e.rt.ContainerStatus(ctx, c.GetId(), false)
		if errors.Is(err, core.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, st.GetStatus())
	}
	slices.SortFunc(out, func(a, b *runtimeapi.ContainerStatus) int {
		return strings.Compare(fmt.Sprintf("%s/%05d", a.GetMetadata().GetName(), a.GetMetadata().GetAttempt()),
			fmt.Sprintf("%s/%05d", b.GetMetadata().GetName(), b.GetMetadata().GetAttempt()))
	})
	return out
}

// summary renders containers as name#attempt:state.
func summary(cs []*runtimeapi.ContainerStatus) string {
	var parts []string
	for _, c := range cs {
		s := strings.ToLower(strings.TrimPrefix(c.GetState().String(), "CONTAINER_"))
		if c.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			s += fmt.Sprintf("(%d)", c.GetExitCode())
		}
		parts = append(parts, fmt.Sprintf("%s#%d:%s", c.GetMetadata().GetName(), c.GetMetadata().GetAttempt(), s))
	}
	return strings.Join(parts, " ")
}

func (e *env) sandboxes(t testing.TB, uid types.UID) []*runtimeapi.PodSandbox {
	t.Helper()
	list, err := e.rt.ListPodSandbox(context.Background(), &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{core.LabelPodUID: string(uid)}})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// waitFor polls cond every 50 ms for up to limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) waitSummary(t *testing.T, uid types.UID, limit time.Duration, want string) {
	t.Helper()
	var got string
	deadline := time.Now().Add(limit)
	for {
		got = summary(e.containers(t, uid))
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("containers of %s after %s:\n got %s\nwant %s", uid, limit, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// An agent that restarts adopts the running pods its sources still want,
// by their labels, without restarting anything; a pod no source wants any
// more is killed with its grace period.
func TestRestartAdoptsAndKillsOrphans(t *testing.T) {
	for _, v := range testenv.Versions {
		t.Run("containerd-"+string(v), func(t *testing.T) {
			t.Parallel()
			e := startEnv(t, v)
			keep := hostPod("keep", service("app"), service("side"))
			drop := hostPod("drop", service("app"))
			first := e.start(t, nil)
			first.send(core.OpAdd, keep, drop)
			e.waitSummary(t, keep.UID, time.Minute, "app#0:running side#0:running")
			e.waitSummary(t, drop.UID, time.Minute, "app#0:running")
			before := e.containers(t, keep.UID)
			sandboxes := e.sandboxes(t, keep.UID)
			first.stop()

			second := e.start(t, nil)
			second.send(core.OpAdd, keep)
			// The dropped pod is stopped gracefully (its app exits 0 on
			// SIGTERM) and its sandbox with it.
			e.waitSummary(t, drop.UID, time.Minute, "app#0:exited(0)")
			waitFor(t, 30*time.Second, "the orphan's sandbox to stop", func() bool {
				sbs := e.sandboxes(t, drop.UID)
				return len(sbs) == 1 && sbs[0].GetState() == runtimeapi.PodSandboxState_SANDBOX_NOTREADY
			})
			// Meanwhile the adopted pod went through syncs and kept its
			// containers and sandbox.
			waitFor(t, 30*time.Second, "the adopted pod's first sync", func() bool {
				s, ok := second.Workers.State(keep.UID)
				return ok && s == syncloop.Syncing && second.PLEG.Cache() != nil
			})
			time.Sleep(2 * time.Second) // a relist or two, and the syncs they wake
			after := e.containers(t, keep.UID)
			if summary(after) != "app#0:running side#0:running" {
				t.Fatalf("adopted pod: %s", summary(after))
			}
			for i := range before {
				if before[i].GetId() != after[i].GetId() {
					t.Errorf("container %s was replaced: %s → %s", before[i].GetMetadata().GetName(), before[i].GetId(), after[i].GetId())
				}
			}
			if sbs := e.sandboxes(t, keep.UID); len(sbs) != 1 || sbs[0].GetId() != sandboxes[0].GetId() {
				t.Errorf("sandboxes after the restart: %v, before %v", sbs, sandboxes)
			}

			// Removing the pod now terminates it through the new agent.
			second.send(core.OpRemove, keep)
			e.waitSummary(t, keep.UID, time.Minute, "app#0:exited(0) side#0:exited(0)")
			waitFor(t, 30*time.Second, "the pod's worker to terminate", func() bool {
				return second.Loop.IsPodDeleted(keep.UID)
			})
		})
	}
}

// A crashing container restarts at once the first time, then after
// back-offs that double; the waiting reason is CrashLoopBackOff.
func TestCrashLoopOnContainerd(t *testing.T) {
	e := startEnv(t, testenv.Containerd16)
	a := e.start(t, func(c *node.Config) {
		c.BackOff = syncloop.BackOffConfig{Initial: time.Second, Max: 4 * time.Second}
	})
	pod := hostPod("crash", v1.Container{Name: "app", Command: []string{"sh", "-c", "sleep 0.5; exit 3"}})
	a.send(core.OpAdd, pod)
	waitFor(t, 2*time.Minute, "the fifth attempt to start", func() bool {
		for _, c := range e.containers(t, pod.UID) {
			if c.GetMetadata().GetAttempt() == 4 && c.GetStartedAt() != 0 {
				return true
			}
		}
		return false
	})
	cs := e.containers(t, pod.UID)
	// Each restart waits at least its back-off after the previous exit:
	// none, then 1 s, 2 s, 4 s.
	want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second}
	var gaps []time.Duration
	for i := 1; i < len(cs) && i <= len(want); i++ {
		prev, next := cs[i-1], cs[i]
		if prev.GetExitCode() != 3 {
			t.Errorf("attempt %d exited %d (%s), want 3", prev.GetMetadata().GetAttempt(), prev.GetExitCode(), prev.GetReason())
		}
		gap := time.Duration(next.GetStartedAt() - prev.GetFinishedAt())
		gaps = append(gaps, gap)
		if gap < want[i-1] {
			t.Errorf("attempt %d started %s after attempt %d exited, want at least %s", i, gap, i-1, want[i-1])
		}
	}
	t.Logf("restart gaps: %v", gaps)
	if gaps[3] <= gaps[1] {
		t.Errorf("back-off did not grow: %v", gaps)
	}
	waitFor(t, 10*time.Second, "a CrashLoopBackOff waiting reason", func() bool {
		for _, w := range a.Driver.Waiting(pod.UID) {
			if w.Name == "app" && w.Reason == syncloop.ReasonCrashLoopBackOff {
				return true
			}
		}
		return false
	})
}

// Garbage collection on real containerd: a crash-looping container keeps
// only its newest dead instance; once the pod is removed and terminated,
// its containers, sandbox and log directory go.
func TestGarbageCollectionOnContainerd(t *testing.T) {
	e := startEnv(t, testenv.Containerd16)
	a := e.start(t, func(c *node.Config) {
		c.GCPeriod = 500 * time.Millisecond
		c.BackOff = syncloop.BackOffConfig{Initial: 200 * time.Millisecond, Max: 400 * time.Millisecond}
	})
	pod := hostPod("gc", v1.Container{Name: "app", Command: []string{"sh", "-c", "sleep 0.2; exit 1"}})
	a.send(core.OpAdd, pod)
	waitFor(t, time.Minute, "the fourth attempt", func() bool {
		for _, c := range e.containers(t, pod.UID) {
			if c.GetMetadata().GetAttempt() >= 4 {
				return true
			}
		}
		return false
	})
	waitFor(t, 10*time.Second, "old instances to be collected", func() bool {
		dead := 0
		for _, c := range e.containers(t, pod.UID) {
			if c.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
				dead++
			}
		}
		return dead <= 1
	})
	a.send(core.OpRemove, pod)
	waitFor(t, 30*time.Second, "everything of the removed pod to be collected", func() bool {
		_, err := os.Stat(crispec.PodLogDir(e.logsRoot, pod.Namespace, pod.Name, pod.UID))
		return len(e.containers(t, pod.UID)) == 0 && len(e.sandboxes(t, pod.UID)) == 0 && errors.Is(err, os.ErrNotExist)
	})
}

// Dropping a manifest into the watched directory starts its pod on real
// containerd at once: the file source's notification, not its 20 s
// re-read, carries it. Editing it replaces the pod (a new UID, the old one
// terminated first); removing it stops the pod.
func TestStaticPodManifestsOnContainerd(t *testing.T) {
	e := startEnv(t, testenv.Containerd16)
	dir := t.TempDir()
	m, err := staticpod.NewMerger(staticpod.MergerConfig{Sources: []string{core.SourceFile}})
	if err != nil {
		t.Fatal(err)
	}
	// The node admits only pods bound to it: the source gives them its name.
	local, err := node.LocalNode()
	if err != nil {
		t.Fatal(err)
	}
	files, err := staticpod.NewFileSource(staticpod.FileConfig{Path: dir, NodeName: local.Name})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- files.Run(ctx, m) }()
	defer func() { cancel(); <-done }()
	e.start(t, func(c *node.Config) {
		c.Updates = m.Updates()
		c.SourcesReady = m.AllReady
	})
	manifest := func(image string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: web, namespace: e2e}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: %s
    imagePullPolicy: Never
    command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
`, image)
	}
	running := func() (string, string) {
		list, err := e.rt.ListContainers(context.Background(), &runtimeapi.ContainerFilter{
			State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
			LabelSelector: map[string]string{core.LabelPodName: "web-" + strings.ToLower(local.Name)}})
		if err != nil || len(list) != 1 {
			return "", ""
		}
		return list[0].GetLabels()[core.LabelPodUID], list[0].GetId()
	}
	path := filepath.Join(dir, "web.yaml")
	start := time.Now()
	if err := os.WriteFile(path, []byte(manifest(testenv.BusyboxImage)), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the pod to run", func() bool { uid, _ := running(); return uid != "" })
	t.Logf("manifest written → container running: %s", time.Since(start).Round(time.Millisecond))
	firstUID, _ := running()

	// An edit is a new pod; the old one terminates before it starts.
	if err := os.WriteFile(path, []byte(manifest(testenv.BusyboxImage)+"    env: [{name: V, value: \"2\"}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the edited pod to run", func() bool { uid, _ := running(); return uid != "" && uid != firstUID })
	for _, c := range e.containers(t, types.UID(firstUID)) {
		if c.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED {
			t.Errorf("the old pod's container is %s", c.GetState())
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the pod to stop", func() bool { uid, _ := running(); return uid == "" })
}
