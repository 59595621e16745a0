package node_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/cpuset"
	"k8s.io/utils/ptr"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/cpumanager"
	"github.com/nodekit/nodekit/eviction"
	"github.com/nodekit/nodekit/examples/node"
	"github.com/nodekit/nodekit/internal/testenv"
	"github.com/nodekit/nodekit/runtimetest"
	"github.com/nodekit/nodekit/staticpod"
	"github.com/nodekit/nodekit/syncloop"
)

// cpuPod is a host-network pod of one container "app"; with cpu set it is
// Guaranteed (requests equal limits, 64 MiB), else BestEffort.
func cpuPod(name, image, cpu string) *v1.Pod {
	c := v1.Container{Name: "app", Image: image, ImagePullPolicy: v1.PullNever,
		Command: []string{"sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"}}
	if cpu != "" {
		rl := v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu), v1.ResourceMemory: resource.MustParse("64Mi")}
		c.Resources = v1.ResourceRequirements{Requests: rl, Limits: rl}
	}
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "e2e", UID: k8stypes.UID("uid-" + name)},
		Spec:       v1.PodSpec{HostNetwork: true, TerminationGracePeriodSeconds: ptr.To[int64](5), Containers: []v1.Container{c}},
	}
}

// runningContainer returns the ID of the running container of a pod, or "".
func runningContainer(t *testing.T, rt core.ContainerLister, uid k8stypes.UID) string {
	t.Helper()
	list, err := rt.ListContainers(context.Background(), &runtimeapi.ContainerFilter{
		State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
		LabelSelector: map[string]string{core.LabelPodUID: string(uid)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		return ""
	}
	return list[0].GetId()
}

// runtimeCPUs is the cpuset the runtime reports for a container.
func runtimeCPUs(t *testing.T, rt core.ContainerStatuser, id string) string {
	t.Helper()
	st, err := rt.ContainerStatus(context.Background(), id, false)
	if err != nil {
		t.Fatal(err)
	}
	return st.GetStatus().GetResources().GetLinux().GetCpusetCpus()
}

// staticAllocator is the static policy on topo with CPU 0 reserved, its
// checkpoint in dir.
func staticAllocator(t *testing.T, topo *cpumanager.Topology, dir string) *cpumanager.Allocator {
	t.Helper()
	policy, err := cpumanager.NewStaticPolicy(cpumanager.StaticPolicyConfig{Topology: topo, ReservedCPUs: cpuset.New(0)})
	if err != nil {
		t.Fatal(err)
	}
	alloc, err := cpumanager.NewAllocator(cpumanager.AllocatorConfig{Policy: policy, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return alloc
}

// On the simulated runtime, four CPUs, CPU 0 reserved: a shared container
// shrinks as soon as a Guaranteed pod takes two CPUs, a pod asking for
// more than is left is rejected with the kubelet's reason, and the shared
// container grows back once the Guaranteed pod is gone, all well within
// the minute-long reconcile period.
func TestCPUManagerOnTheNode(t *testing.T) {
	topo, err := cpumanager.NewTopology(cpumanager.TopologyDescription{Sockets: 1, NUMANodesPerSocket: 1, CoresPerNUMANode: 4, ThreadsPerCore: 1})
	if err != nil {
		t.Fatal(err)
	}
	updates := make(chan core.PodUpdate, 4)
	rt, n := runSimNode(t, node.Config{Updates: updates, Logger: zaptest.NewLogger(t),
		Node:       func() (*v1.Node, error) { return allocatable("4"), nil },
		CPUManager: &cpumanager.ManagerConfig{Allocator: staticAllocator(t, topo, t.TempDir()), ReconcilePeriod: time.Minute}})
	send := func(op core.PodOp, p *v1.Pod) {
		updates <- core.PodUpdate{Op: op, Pods: []*v1.Pod{p}, Source: core.SourceFile}
	}
	cpusOf := func(uid k8stypes.UID) string {
		if id := runningContainer(t, rt, uid); id != "" {
			return runtimeCPUs(t, rt, id)
		}
		return "(not running)"
	}
	waitCPUs := func(uid k8stypes.UID, want string) {
		t.Helper()
		waitFor(t, 10*time.Second, string(uid)+" on CPUs "+want, func() bool { return cpusOf(uid) == want })
	}

	shared := cpuPod("shared", "busybox", "")
	send(core.OpAdd, shared)
	waitCPUs(shared.UID, "0-3")
	pinned := cpuPod("pinned", "busybox", "2")
	send(core.OpAdd, pinned)
	waitCPUs(pinned.UID, "1-2")
	waitCPUs(shared.UID, "0,3")
	if n.CPUs == nil {
		t.Fatal("no CPU manager on the node")
	}

	greedy := cpuPod("greedy", "busybox", "2")
	send(core.OpAdd, greedy)
	waitFor(t, 10*time.Second, "the greedy pod's rejection", func() bool {
		st, _, ok := n.Statuses.Get(greedy.UID)
		return ok && st.Phase == v1.PodFailed
	})
	st, _, _ := n.Statuses.Get(greedy.UID)
	if st.Reason != "UnexpectedAdmissionError" || !strings.Contains(st.Message, "not enough cpus available to satisfy request: requested=2, available=1") {
		t.Errorf("rejected pod: reason %q, message %q", st.Reason, st.Message)
	}

	send(core.OpRemove, pinned)
	waitCPUs(shared.UID, "0-3")
	if s := n.CPUs.Allocator().State(); len(s.Assignments) != 0 {
		t.Errorf("assignments left: %s", s.Assignments)
	}
}

// cpusInside reads, inside a container, its cpuset cgroup's CPUs and the
// CPUs its first process may run on.
func cpusInside(t *testing.T, e *env, id string) (cgroup, allowed string) {
	t.Helper()
	res, err := e.rt.ExecSync(context.Background(), id, []string{"sh", "-c",
		"cat /sys/fs/cgroup/cpuset/cpuset.cpus; sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/1/status"}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("exec: exit %d: %s", res.ExitCode, res.Stderr)
	}
	lines := strings.Fields(string(res.Stdout))
	if len(lines) != 2 {
		t.Fatalf("exec output %q", res.Stdout)
	}
	return lines[0], lines[1]
}

// The CPU manager on real containerd and this 2-CPU machine. The static
// policy needs at least one reserved CPU (with none, exclusive pods could
// empty the shared pool), so CPU 0 is reserved, as reservedSystemCPUs "0"
// does: it stays in the shared pool, and CPU 1 is the one CPU that can be
// given exclusively.
//
// A BestEffort pod started first runs on 0-1. A Guaranteed pod asking for
// one CPU gets CPU 1 alone, and the first pod's cpuset shrinks to 0 at
// once (the admission wakes the reconcile; its period here is a minute);
// a BestEffort pod started after it is created on 0. Once the Guaranteed
// pod is removed, its CPU returns to the shared pool and both shared
// containers grow back to 0-1. Each cpuset is checked three ways: the
// cgroup's cpuset.cpus and the allowed CPUs of the container's process,
// read inside it, and the runtime's status. The checkpoint follows.
func TestCPUManagerOnContainerd(t *testing.T) {
	topo, err := cpumanager.DiscoverTopology("/")
	if err != nil {
		t.Fatal(err)
	}
	if topo.NumCPUs < 2 {
		t.Skipf("%d CPU: exclusive CPUs need a second one", topo.NumCPUs)
	}
	e := startEnv(t, testenv.Containerd16)
	stateDir := t.TempDir()
	all := topo.CPUs().String()                              // 0-1 here
	shared := topo.CPUs().Difference(cpuset.New(1)).String() // 0 here
	a := e.start(t, func(c *node.Config) {
		c.Node = func() (*v1.Node, error) { return allocatable("2"), nil }
		c.CPUManager = &cpumanager.ManagerConfig{Allocator: staticAllocator(t, topo, stateDir), ReconcilePeriod: time.Minute}
	})
	check := func(what string, uid k8stypes.UID, want string) {
		t.Helper()
		var cg, allowed, viaRuntime string
		deadline := time.Now().Add(15 * time.Second)
		for {
			if id := runningContainer(t, e.rt, uid); id != "" {
				cg, allowed = cpusInside(t, e, id)
				viaRuntime = runtimeCPUs(t, e.rt, id)
				if cg == want && allowed == want && viaRuntime == want {
					t.Logf("%s: cpuset %s (cgroup, process and runtime agree)", what, want)
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: cgroup cpuset %q, process may run on %q, runtime says %q; want %q", what, cg, allowed, viaRuntime, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	early := cpuPod("early", testenv.BusyboxImage, "")
	a.send(core.OpAdd, early)
	check("BestEffort pod before", early.UID, all)

	pinned := cpuPod("pinned", testenv.BusyboxImage, "1")
	start := time.Now()
	a.send(core.OpAdd, pinned)
	check("Guaranteed pod", pinned.UID, "1")
	check("BestEffort pod started before, shrunk", early.UID, shared)
	t.Logf("Guaranteed pod added → shared container shrunk: %s", time.Since(start).Round(time.Millisecond))
	_, s, err := cpumanager.ReadCheckpoint(filepath.Join(stateDir, cpumanager.CheckpointFileName))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := s.CPUSet(string(pinned.UID), "app"); !ok || got.String() != "1" || s.DefaultCPUSet.String() != shared {
		t.Errorf("checkpoint: pool %s, assignments %s", s.DefaultCPUSet, s.Assignments)
	}

	late := cpuPod("late", testenv.BusyboxImage, "")
	a.send(core.OpAdd, late)
	check("BestEffort pod started after", late.UID, shared)

	start = time.Now()
	a.send(core.OpRemove, pinned)
	check("BestEffort pod started before, grown back", early.UID, all)
	check("BestEffort pod started after, grown", late.UID, all)
	t.Logf("Guaranteed pod removed → shared containers grown: %s", time.Since(start).Round(time.Millisecond))
	if _, s, err = cpumanager.ReadCheckpoint(filepath.Join(stateDir, cpumanager.CheckpointFileName)); err != nil {
		t.Fatal(err)
	}
	if len(s.Assignments) != 0 || s.DefaultCPUSet.String() != all {
		t.Errorf("checkpoint after removal: pool %s, assignments %s", s.DefaultCPUSet, s.Assignments)
	}

	a.send(core.OpRemove, early)
	a.send(core.OpRemove, late)
	waitFor(t, time.Minute, "the pods to stop", func() bool {
		return runningContainer(t, e.rt, early.UID) == "" && runningContainer(t, e.rt, late.UID) == "" && runningContainer(t, e.rt, pinned.UID) == ""
	})
}

// A restart keeps every running pod on its CPUs. Pods a, filler and b take
// 1-2, 3-4 and 5-6 of eight CPUs (CPU 0 reserved); filler leaves, so 3-4
// are free. The agent restarts and its file source gives a and b back in
// one snapshot: the sources count as ready as soon as it is sent (a
// staticpod.Merger's AllReady), while the loop still admits the pods one
// after the other. Admitting a must not take b, not admitted yet, for a
// pod gone: b keeps 5-6 in the checkpoint and in the runtime (rather than
// being moved to 3-4 while it runs). CPUs are still released after the
// restart: once a leaves, 1-2 return to the shared pool.
func TestCPUManagerKeepsCPUsAcrossARestart(t *testing.T) {
	topo, err := cpumanager.NewTopology(cpumanager.TopologyDescription{Sockets: 1, NUMANodesPerSocket: 1, CoresPerNUMANode: 8, ThreadsPerCore: 1})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := runtimetest.New(runtimetest.Config{Images: []string{"busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	stateDir, logs := t.TempDir(), t.TempDir()
	// start runs an agent on rt until stop is called.
	start := func() (n *node.Node, m *staticpod.Merger, stop func()) {
		t.Helper()
		m, err := staticpod.NewMerger(staticpod.MergerConfig{Sources: []string{core.SourceFile}})
		if err != nil {
			t.Fatal(err)
		}
		n, err = node.New(node.Config{Runtime: rt, PodLogsRoot: logs, Updates: m.Updates(), SourcesReady: m.AllReady,
			Node:       func() (*v1.Node, error) { return allocatable("8"), nil },
			CPUManager: &cpumanager.ManagerConfig{Allocator: staticAllocator(t, topo, stateDir), ReconcilePeriod: time.Minute},
			Logger:     zaptest.NewLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Run(ctx) }()
		stopped := false
		stop = func() {
			if stopped {
				return
			}
			stopped = true
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Error(err)
			}
		}
		t.Cleanup(stop)
		return n, m, stop
	}
	set := func(m *staticpod.Merger, pods ...*v1.Pod) {
		t.Helper()
		if err := m.Set(context.Background(), core.SourceFile, pods); err != nil {
			t.Fatal(err)
		}
	}
	cpusOf := func(uid k8stypes.UID) string {
		if id := runningContainer(t, rt, uid); id != "" {
			return runtimeCPUs(t, rt, id)
		}
		return "(not running)"
	}
	assigned := func(n *node.Node, uid k8stypes.UID) string {
		return n.CPUs.Allocator().ExclusiveCPUs(string(uid), "app").String()
	}
	a, filler, b := cpuPod("a", "busybox", "2"), cpuPod("filler", "busybox", "2"), cpuPod("b", "busybox", "2")

	first, m, stop := start()
	set(m, a, filler, b)
	for uid, want := range map[k8stypes.UID]string{a.UID: "1-2", filler.UID: "3-4", b.UID: "5-6"} {
		waitFor(t, 10*time.Second, string(uid)+" running on "+want, func() bool { return cpusOf(uid) == want })
	}
	set(m, a, b)
	waitFor(t, 10*time.Second, "the filler's CPUs back in the shared pool", func() bool {
		return cpusOf(filler.UID) == "(not running)" && first.CPUs.Allocator().State().DefaultCPUSet.String() == "0,3-4,7"
	})
	stop()

	second, m, _ := start()
	set(m, a, b)
	waitFor(t, 10*time.Second, "both pods admitted", func() bool { return len(second.Loop.ActivePods()) == 2 })
	set(m, b)
	waitFor(t, 10*time.Second, "a's CPUs back in the shared pool", func() bool {
		return cpusOf(a.UID) == "(not running)" && assigned(second, a.UID) == ""
	})
	if got := assigned(second, b.UID); got != "5-6" {
		t.Errorf("b was given %s after the restart, want 5-6 as before", got)
	}
	if got := cpusOf(b.UID); got != "5-6" {
		t.Errorf("b runs on %s after the restart, want 5-6 as before", got)
	}
	if got := second.CPUs.Allocator().State().DefaultCPUSet.String(); got != "0-4,7" {
		t.Errorf("shared pool %s, want 0-4,7", got)
	}
}

// pidObserver reports the node's process IDs: nearly all taken when busy.
type pidObserver struct{ busy bool }

func (o *pidObserver) Observe(context.Context) (eviction.Observations, error) {
	used := uint64(100)
	if o.busy {
		used = 990
	}
	return eviction.Observations{PIDs: eviction.PIDStats{Time: time.Now(), MaxPID: 1000, NumProcesses: used}}, nil
}

// The admission handlers run in the kubelet's order: eviction's, then the
// CPU manager's allocation, then node fit. A Guaranteed pod asking for
// four CPUs, on a node whose allocatable cpu is 2 and where three CPUs can
// be given exclusively, fails both node fit and CPU allocation: it is
// refused for the allocation, as the kubelet refuses it; under PID
// pressure it is refused by eviction.
func TestAdmissionOrderWithTheCPUManager(t *testing.T) {
	topo, err := cpumanager.NewTopology(cpumanager.TopologyDescription{Sockets: 1, NUMANodesPerSocket: 1, CoresPerNUMANode: 4, ThreadsPerCore: 1})
	if err != nil {
		t.Fatal(err)
	}
	policy, err := eviction.NewPolicy(eviction.Config{EvictionHard: map[string]string{"pid.available": "50"}})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := runtimetest.New(runtimetest.Config{Images: []string{"busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	obs := &pidObserver{}
	n, err := node.New(node.Config{Runtime: rt, PodLogsRoot: t.TempDir(), Updates: make(chan core.PodUpdate),
		Node:       func() (*v1.Node, error) { return allocatable("2"), nil },
		CPUManager: &cpumanager.ManagerConfig{Allocator: staticAllocator(t, topo, t.TempDir())},
		Eviction:   policy, EvictionObserver: obs, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	big := cpuPod("big", "busybox", "4")
	got := n.Admission.Admit(syncloop.AdmitAttributes{Pod: big})
	want := syncloop.AdmitResult{Reason: "UnexpectedAdmissionError",
		Message: "Allocate failed due to not enough cpus available to satisfy request: requested=4, available=3, which is unexpected"}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}

	obs.busy = true
	if _, _, err := n.Evictions.Synchronize(context.Background()); err != nil {
		t.Fatal(err)
	}
	got = n.Admission.Admit(syncloop.AdmitAttributes{Pod: big})
	if got.Admit || got.Reason != "Evicted" || got.Message != "The node had condition: [PIDPressure]. " {
		t.Errorf("under PID pressure: %+v", got)
	}
}
