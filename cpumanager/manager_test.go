package cpumanager_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/cpuset"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/cpumanager"
	"github.com/nodekit/nodekit/runtimetest"
)

// podList is the active pods, changed by the test.
type podList struct {
	mu   sync.Mutex
	pods []*v1.Pod
}

func (l *podList) ActivePods() []*v1.Pod {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*v1.Pod(nil), l.pods...)
}

func (l *podList) set(pods ...*v1.Pod) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pods = pods
}

func (l *podList) add(p *v1.Pod) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pods = append(slices.Clip(l.pods), p)
}

func (l *podList) remove(p *v1.Pod) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pods = slices.DeleteFunc(slices.Clone(l.pods), func(q *v1.Pod) bool { return q.UID == p.UID })
}

// mgrEnv is a Manager under the static policy on a 4-CPU machine (one
// socket, four cores, one thread each) with CPU 0 reserved, over a
// simulated runtime.
type mgrEnv struct {
	rt       *runtimetest.Runtime
	pods     *podList
	m        *cpumanager.Manager
	reg      *prometheus.Registry
	sandbox  map[types.UID]string
	sbConfig map[types.UID]*runtimeapi.PodSandboxConfig
}

func newMgrEnv(t *testing.T, policy cpumanager.Policy, mod func(*cpumanager.ManagerConfig)) *mgrEnv {
	t.Helper()
	if policy == nil {
		policy = staticPolicy(t, cpumanager.TopologyDescription{Sockets: 1, NUMANodesPerSocket: 1, CoresPerNUMANode: 4, ThreadsPerCore: 1}, nil)
	}
	alloc, err := cpumanager.NewAllocator(cpumanager.AllocatorConfig{Policy: policy, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := runtimetest.New(runtimetest.Config{Images: []string{"busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	e := &mgrEnv{rt: rt, pods: &podList{}, reg: prometheus.NewRegistry(),
		sandbox: map[types.UID]string{}, sbConfig: map[types.UID]*runtimeapi.PodSandboxConfig{}}
	cfg := cpumanager.ManagerConfig{Allocator: alloc, Runtime: rt, Pods: e.pods, Registerer: e.reg}
	if mod != nil {
		mod(&cfg)
	}
	if e.m, err = cpumanager.NewManager(cfg); err != nil {
		t.Fatal(err)
	}
	return e
}

func staticPolicy(t *testing.T, desc cpumanager.TopologyDescription, options map[string]string) *cpumanager.StaticPolicy {
	t.Helper()
	topo, err := cpumanager.NewTopology(desc)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cpumanager.NewStaticPolicy(cpumanager.StaticPolicyConfig{Topology: topo, ReservedCPUs: cpuset.New(0), Options: options})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// podOf is a pod whose containers request cpu each ("" for none: the pod
// is then BestEffort); with requests equal to limits it is Guaranteed.
func podOf(name string, cpus ...string) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)}}
	for i, cpu := range cpus {
		c := v1.Container{Name: []string{"app", "side", "third"}[i], Image: "busybox"}
		if cpu != "" {
			rl := v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu), v1.ResourceMemory: resource.MustParse("64Mi")}
			c.Resources = v1.ResourceRequirements{Requests: rl, Limits: rl}
		}
		p.Spec.Containers = append(p.Spec.Containers, c)
	}
	return p
}

// start creates and starts a container of pod with the CPUs the manager
// gives it, as the driver does, and returns its ID.
func (e *mgrEnv) start(t *testing.T, pod *v1.Pod, name string) string {
	t.Helper()
	ctx := context.Background()
	uid := pod.UID
	if e.sandbox[uid] == "" {
		sb := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: string(uid)},
			Labels: map[string]string{core.LabelPodUID: string(uid), core.LabelPodName: pod.Name, core.LabelPodNamespace: pod.Namespace}}
		id, err := e.rt.RunPodSandbox(ctx, sb, "")
		if err != nil {
			t.Fatal(err)
		}
		e.sandbox[uid], e.sbConfig[uid] = id, sb
	}
	var c *v1.Container
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			c = &pod.Spec.Containers[i]
		}
	}
	cpus, _ := e.m.ContainerCPUs(pod, c)
	id, err := e.rt.CreateContainer(ctx, e.sandbox[uid], &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Labels: map[string]string{core.LabelPodUID: string(uid), core.LabelPodName: pod.Name,
			core.LabelPodNamespace: pod.Namespace, core.LabelContainerName: name},
		Linux: &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{CpusetCpus: cpus}},
	}, e.sbConfig[uid])
	if err != nil {
		t.Fatal(err)
	}
	if err := e.rt.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	return id
}

// cpus is the cpuset the runtime reports for a container.
func (e *mgrEnv) cpus(t *testing.T, id string) string {
	t.Helper()
	st, err := e.rt.ContainerStatus(context.Background(), id, false)
	if err != nil {
		t.Fatal(err)
	}
	return st.GetStatus().GetResources().GetLinux().GetCpusetCpus()
}

// admit admits pod as the sync loop does: the pod is among the active
// pods while it is admitted, and stays there unless refused.
func (e *mgrEnv) admit(pod *v1.Pod) cpumanager.AdmitResult {
	before := e.pods.ActivePods()
	e.pods.set(append(slices.DeleteFunc(slices.Clone(before), func(p *v1.Pod) bool { return p.UID == pod.UID }), pod)...)
	r := e.m.Admit(cpumanager.AdmitAttributes{Pod: pod})
	if !r.Admit {
		e.pods.set(before...)
	}
	return r
}

func TestManagerAdmitAllocatesAndAnswersContainerCPUs(t *testing.T) {
	e := newMgrEnv(t, nil, nil)
	g := podOf("g", "2")
	be := podOf("be", "")
	burst := podOf("burst", "500m") // Guaranteed, but not whole CPUs
	for _, p := range []*v1.Pod{g, be, burst} {
		if r := e.admit(p); !r.Admit {
			t.Fatalf("%s refused: %+v", p.Name, r)
		}
	}
	for _, tc := range []struct {
		pod           *v1.Pod
		wantCPUs      string
		wantExclusive bool
	}{
		{g, "1-2", true},
		{be, "0,3", false},
		{burst, "0,3", false},
	} {
		cpus, excl := e.m.ContainerCPUs(tc.pod, &tc.pod.Spec.Containers[0])
		if cpus != tc.wantCPUs || excl != tc.wantExclusive {
			t.Errorf("%s: ContainerCPUs = %q, %v; want %q, %v", tc.pod.Name, cpus, excl, tc.wantCPUs, tc.wantExclusive)
		}
	}
	// Admitting the pod again (a restart) keeps its CPUs.
	if r := e.admit(g); !r.Admit {
		t.Fatalf("re-admission refused: %+v", r)
	}
	if cpus, _ := e.m.ContainerCPUs(g, &g.Spec.Containers[0]); cpus != "1-2" {
		t.Errorf("after re-admission: %q", cpus)
	}
}

func TestManagerRefusesWithTheKubeletsReasons(t *testing.T) {
	t.Run("not enough CPUs", func(t *testing.T) {
		e := newMgrEnv(t, nil, nil)
		if r := e.admit(podOf("first", "2")); !r.Admit {
			t.Fatalf("first refused: %+v", r)
		}
		r := e.admit(podOf("second", "2"))
		want := cpumanager.AdmitResult{Reason: "UnexpectedAdmissionError",
			Message: "Allocate failed due to not enough cpus available to satisfy request: requested=2, available=1, which is unexpected"}
		if r != want {
			t.Errorf("got %+v\nwant %+v", r, want)
		}
	})
	t.Run("SMT alignment", func(t *testing.T) {
		p := staticPolicy(t, cpumanager.TopologyDescription{Sockets: 1, NUMANodesPerSocket: 1, CoresPerNUMANode: 4, ThreadsPerCore: 2},
			map[string]string{cpumanager.FullPCPUsOnlyOption: "true"})
		e := newMgrEnv(t, p, nil)
		r := e.admit(podOf("odd", "1"))
		want := cpumanager.AdmitResult{Reason: "SMTAlignmentError", Message: "SMT Alignment Error: requested 1 cpus not multiple cpus per core = 2"}
		if r != want {
			t.Errorf("got %+v\nwant %+v", r, want)
		}
	})
}

// A refused pod leaves no CPUs behind: those its first container got are
// released at once.
func TestManagerReleasesTheCPUsOfARefusedPod(t *testing.T) {
	e := newMgrEnv(t, nil, nil)
	pod := podOf("greedy", "2", "2") // 4 CPUs; 3 are assignable
	if r := e.admit(pod); r.Admit || r.Reason != cpumanager.ReasonUnexpectedAdmissionError {
		t.Fatalf("got %+v, want a refusal", r)
	}
	st := e.m.Allocator().State()
	if len(st.Assignments) != 0 || st.DefaultCPUSet.String() != "0-3" {
		t.Errorf("state after refusal: pool %s, assignments %s", st.DefaultCPUSet, st.Assignments)
	}
	// The CPUs are free for the next pod.
	if r := e.admit(podOf("next", "3")); !r.Admit {
		t.Errorf("next refused: %+v", r)
	}
}

func TestManagerMetrics(t *testing.T) {
	e := newMgrEnv(t, nil, nil)
	e.admit(podOf("g", "2"))
	e.admit(podOf("be", ""))
	e.admit(podOf("toomuch", "2"))
	want := `
# HELP kubelet_container_aligned_compute_resources_count Cumulative number of aligned compute resources allocated to containers by alignment type.
# TYPE kubelet_container_aligned_compute_resources_count counter
kubelet_container_aligned_compute_resources_count{boundary="physical_cpu",scope="container"} 0
kubelet_container_aligned_compute_resources_count{boundary="uncore_cache",scope="container"} 1
# HELP kubelet_container_aligned_compute_resources_failure_count Cumulative number of failures to allocate aligned compute resources to containers by alignment type.
# TYPE kubelet_container_aligned_compute_resources_failure_count counter
kubelet_container_aligned_compute_resources_failure_count{boundary="physical_cpu",scope="container"} 0
# HELP kubelet_cpu_manager_allocation_per_numa Number of CPUs allocated per NUMA node
# TYPE kubelet_cpu_manager_allocation_per_numa gauge
kubelet_cpu_manager_allocation_per_numa{numa_node="0"} 2
# HELP kubelet_cpu_manager_exclusive_cpu_allocation_count The total number of CPUs exclusively allocated to containers running on this node
# TYPE kubelet_cpu_manager_exclusive_cpu_allocation_count gauge
kubelet_cpu_manager_exclusive_cpu_allocation_count 2
# HELP kubelet_cpu_manager_pinning_errors_total The number of cpu core allocations which required pinning failed.
# TYPE kubelet_cpu_manager_pinning_errors_total counter
kubelet_cpu_manager_pinning_errors_total 1
# HELP kubelet_cpu_manager_pinning_requests_total The number of cpu core allocations which required pinning.
# TYPE kubelet_cpu_manager_pinning_requests_total counter
kubelet_cpu_manager_pinning_requests_total 2
# HELP kubelet_cpu_manager_shared_pool_size_millicores The size of the shared CPU pool for non-guaranteed QoS pods, in millicores.
# TYPE kubelet_cpu_manager_shared_pool_size_millicores gauge
kubelet_cpu_manager_shared_pool_size_millicores 1000
`
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// Under full-pcpus-only every container that qualified for exclusive CPUs
// counts as aligned to physical CPUs when it gets them (again, when
// admitted anew) and as a failure when it does not, as in the kubelet; a
// new allocation within one uncore cache (here, one core) counts as
// aligned to it. Under the none policy the alignment series are not
// reported.
func TestManagerAlignmentMetrics(t *testing.T) {
	p := staticPolicy(t, cpumanager.TopologyDescription{Sockets: 1, NUMANodesPerSocket: 1, CoresPerNUMANode: 4, ThreadsPerCore: 2, CoresPerUncoreCache: 1},
		map[string]string{cpumanager.FullPCPUsOnlyOption: "true"})
	e := newMgrEnv(t, p, nil)
	pair := podOf("pair", "2")
	for _, pod := range []*v1.Pod{pair, podOf("odd", "1"), pair, podOf("be", ""), podOf("toomuch", "6"), podOf("quad", "4")} {
		e.admit(pod)
	}
	if st := e.m.Allocator().State(); len(st.Assignments) != 2 {
		t.Fatalf("assignments: %s", st.Assignments)
	}
	want := `
# HELP kubelet_container_aligned_compute_resources_count Cumulative number of aligned compute resources allocated to containers by alignment type.
# TYPE kubelet_container_aligned_compute_resources_count counter
kubelet_container_aligned_compute_resources_count{boundary="physical_cpu",scope="container"} 3
kubelet_container_aligned_compute_resources_count{boundary="uncore_cache",scope="container"} 1
# HELP kubelet_container_aligned_compute_resources_failure_count Cumulative number of failures to allocate aligned compute resources to containers by alignment type.
# TYPE kubelet_container_aligned_compute_resources_failure_count counter
kubelet_container_aligned_compute_resources_failure_count{boundary="physical_cpu",scope="container"} 2
# HELP kubelet_cpu_manager_pinning_errors_total The number of cpu core allocations which required pinning failed.
# TYPE kubelet_cpu_manager_pinning_errors_total counter
kubelet_cpu_manager_pinning_errors_total 2
# HELP kubelet_cpu_manager_pinning_requests_total The number of cpu core allocations which required pinning.
# TYPE kubelet_cpu_manager_pinning_requests_total counter
kubelet_cpu_manager_pinning_requests_total 5
`
	names := []string{"kubelet_container_aligned_compute_resources_count", "kubelet_container_aligned_compute_resources_failure_count",
		"kubelet_cpu_manager_pinning_errors_total", "kubelet_cpu_manager_pinning_requests_total"}
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}

	none := newMgrEnv(t, &cpumanager.NonePolicy{}, nil)
	none.admit(pair)
	if n, err := testutil.GatherAndCount(none.reg, names[:2]...); err != nil || n != 0 {
		t.Errorf("under the none policy: %d alignment series (%v)", n, err)
	}
}

// The reconcile loop: a shared container started before a Guaranteed pod
// shrinks as soon as the pod is admitted (no waiting for the period), the
// pinned container is left alone, and once the pod is gone its CPUs return
// and the shared container grows back at the next period.
func TestManagerReconcileLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newMgrEnv(t, nil, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.m.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("Run: %v", err)
			}
		}()

		be := podOf("be", "")
		e.pods.set(be)
		if r := e.admit(be); !r.Admit {
			t.Fatal(r)
		}
		beID := e.start(t, be, "app")
		if got := e.cpus(t, beID); got != "0-3" {
			t.Fatalf("shared container created with %q", got)
		}
		calls := func() int { return e.rt.Calls("UpdateContainerResources") }
		synctest.Wait()
		time.Sleep(10 * time.Second) // a period: the new container is set once
		synctest.Wait()
		if calls() != 1 || e.cpus(t, beID) != "0-3" {
			t.Fatalf("after the first period: %d updates, cpuset %q", calls(), e.cpus(t, beID))
		}

		g := podOf("g", "2")
		e.pods.set(be, g)
		if r := e.admit(g); !r.Admit {
			t.Fatal(r)
		}
		synctest.Wait() // the admission woke the loop: no time passes
		if got := e.cpus(t, beID); got != "0,3" {
			t.Errorf("shared container after the admission: %q, want 0,3", got)
		}
		gID := e.start(t, g, "app")
		if got := e.cpus(t, gID); got != "1-2" {
			t.Errorf("pinned container created with %q", got)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		n := calls()
		time.Sleep(10 * time.Second) // nothing changed: no update
		synctest.Wait()
		if calls() != n {
			t.Errorf("%d updates in a period where nothing changed", calls()-n)
		}
		if got := e.cpus(t, gID); got != "1-2" {
			t.Errorf("pinned container: %q", got)
		}

		e.pods.set(be) // the Guaranteed pod is gone
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := e.cpus(t, beID); got != "0-3" {
			t.Errorf("shared container after the pod left: %q, want 0-3", got)
		}
		if st := e.m.Allocator().State(); len(st.Assignments) != 0 {
			t.Errorf("assignments left: %s", st.Assignments)
		}
	})
}

// Before the sources are ready, a pod missing from the active pods keeps
// its CPUs: after a restart it may just not be known yet.
func TestManagerKeepsCPUsUntilSourcesAreReady(t *testing.T) {
	ready := false
	e := newMgrEnv(t, nil, func(c *cpumanager.ManagerConfig) { c.SourcesReady = func() bool { return ready } })
	g := podOf("g", "2")
	e.admit(g)
	e.pods.set() // the pod is not known (yet, or any more)
	res, err := e.m.Reconcile(context.Background())
	if err != nil || res.Released != 0 || e.m.Allocator().ExclusiveCPUs(string(g.UID), "app").IsEmpty() {
		t.Fatalf("not ready: %+v, %v; CPUs %s", res, err, e.m.Allocator().ExclusiveCPUs(string(g.UID), "app"))
	}
	ready = true
	res, err = e.m.Reconcile(context.Background())
	if err != nil || res.Released != 1 {
		t.Fatalf("ready: %+v, %v", res, err)
	}
}

// An update that fails is counted, reported and tried again at the next
// reconcile; containers of pods that are not active, and containers that
// are not running, are left alone.
func TestManagerReconcileRetriesFailedUpdates(t *testing.T) {
	e := newMgrEnv(t, nil, nil)
	be, other := podOf("be", ""), podOf("other", "")
	e.pods.set(be)
	beID := e.start(t, be, "app")
	e.start(t, other, "app") // not active: left alone
	if err := e.rt.InjectFault("UpdateContainerResources", runtimetest.Fault{Err: core.ErrUnavailable, Times: 1}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := e.m.Reconcile(ctx)
	if !errors.Is(err, core.ErrUnavailable) || res.Failed != 1 || res.Updated != 0 || !strings.Contains(err.Error(), beID) {
		t.Fatalf("first reconcile: %+v, %v", res, err)
	}
	res, err = e.m.Reconcile(ctx)
	if err != nil || res.Updated != 1 || res.Failed != 0 {
		t.Fatalf("second reconcile: %+v, %v", res, err)
	}
	if got := e.rt.Calls("UpdateContainerResources"); got != 2 {
		t.Errorf("%d updates, want 2 (only the active pod's container)", got)
	}
	if err := e.rt.StopContainer(ctx, beID, 0); err != nil {
		t.Fatal(err)
	}
	e.admit(podOf("g", "1"))
	if res, err := e.m.Reconcile(ctx); err != nil || res.Updated != 0 {
		t.Errorf("with the container stopped: %+v, %v", res, err)
	}
}

func TestManagerUnderTheNonePolicy(t *testing.T) {
	e := newMgrEnv(t, &cpumanager.NonePolicy{}, nil)
	g := podOf("g", "2")
	e.pods.set(g)
	if r := e.admit(g); !r.Admit {
		t.Fatal(r)
	}
	id := e.start(t, g, "app")
	if cpus, excl := e.m.ContainerCPUs(g, &g.Spec.Containers[0]); cpus != "" || excl {
		t.Errorf("ContainerCPUs = %q, %v; want none", cpus, excl)
	}
	if res, err := e.m.Reconcile(context.Background()); err != nil || res != (cpumanager.ReconcileResult{}) {
		t.Errorf("Reconcile: %+v, %v", res, err)
	}
	if e.rt.Calls("UpdateContainerResources") != 0 || e.cpus(t, id) != "" {
		t.Error("the none policy touched a container")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.m.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
}

func TestNewManagerValidates(t *testing.T) {
	alloc, err := cpumanager.NewAllocator(cpumanager.AllocatorConfig{Policy: &cpumanager.NonePolicy{}})
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := runtimetest.New(runtimetest.Config{})
	pods := cpumanager.ActivePodsFunc(func() []*v1.Pod { return nil })
	for _, tc := range []struct {
		name  string
		cfg   cpumanager.ManagerConfig
		field string
	}{
		{"no allocator", cpumanager.ManagerConfig{Runtime: rt, Pods: pods}, "Allocator"},
		{"no runtime", cpumanager.ManagerConfig{Allocator: alloc, Pods: pods}, "Runtime"},
		{"no pods", cpumanager.ManagerConfig{Allocator: alloc, Runtime: rt}, "Pods"},
		{"negative period", cpumanager.ManagerConfig{Allocator: alloc, Runtime: rt, Pods: pods, ReconcilePeriod: -time.Second}, "ReconcilePeriod"},
	} {
		_, err := cpumanager.NewManager(tc.cfg)
		if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if _, err := cpumanager.NewManager(cpumanager.ManagerConfig{Allocator: alloc, Runtime: rt, Pods: pods}); err != nil {
		t.Errorf("minimal config: %v", err)
	}
}

// After a restart the sync loop admits the pods again one at a time. While
// the sources are not ready (in the kubelet's sense: not every pod they
// sent has been offered to admission yet), admitting a pod takes no CPUs
// back from the pods not admitted again yet; and a pod whose assignment
// the checkpoint holds gets the same CPUs back, even with no CPU free for
// a new allocation. Once the sources are ready, the CPUs of pods gone are
// released.
func TestManagerKeepsCPUsAcrossARestart(t *testing.T) {
	dir := t.TempDir()
	desc := cpumanager.TopologyDescription{Sockets: 1, NUMANodesPerSocket: 1, CoresPerNUMANode: 8, ThreadsPerCore: 1}
	ready := func() bool { return true }
	start := func(pods *podList) *cpumanager.Manager {
		t.Helper()
		alloc, err := cpumanager.NewAllocator(cpumanager.AllocatorConfig{Policy: staticPolicy(t, desc, nil), StateDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		m, err := cpumanager.NewManager(cpumanager.ManagerConfig{Allocator: alloc, Runtime: newSimRuntime(t), Pods: pods,
			SourcesReady: func() bool { return ready() }})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	admit := func(m *cpumanager.Manager, pods *podList, p *v1.Pod) string {
		t.Helper()
		pods.set(append(pods.ActivePods(), p)...)
		if r := m.Admit(cpumanager.AdmitAttributes{Pod: p}); !r.Admit {
			t.Fatalf("%s refused: %+v", p.Name, r)
		}
		cpus, _ := m.ContainerCPUs(p, &p.Spec.Containers[0])
		return cpus
	}
	a, filler, b, c := podOf("a", "2"), podOf("filler", "2"), podOf("b", "2"), podOf("c", "3")

	pods := &podList{}
	m := start(pods)
	for _, p := range []*v1.Pod{a, filler, b} {
		admit(m, pods, p)
	}
	pods.set(a, b) // the filler is gone
	if res, err := m.Reconcile(context.Background()); err != nil || res.Released != 1 {
		t.Fatalf("filler's release: %+v %v", res, err)
	}
	before := m.Allocator().State()
	if got := before.DefaultCPUSet.String(); got != "0,3-4,7" {
		t.Fatalf("shared pool before the restart: %s", got)
	}

	// The restart: the sources sent a, c and b; the loop admits them in
	// turn.
	done := false
	ready = func() bool { return done }
	pods = &podList{}
	m = start(pods)
	if got := admit(m, pods, a); got != "1-2" {
		t.Errorf("a: %s after the restart, 1-2 before", got)
	}
	if got := admit(m, pods, c); got != "3-4,7" {
		t.Errorf("c: %s, want the free 3-4,7", got)
	}
	if got := admit(m, pods, b); got != "5-6" { // no CPU is free: b's are its own
		t.Errorf("b: %s after the restart, 5-6 before", got)
	}
	done = true
	if res, err := m.Reconcile(context.Background()); err != nil || res.Released != 0 {
		t.Errorf("reconcile with every pod admitted again: %+v %v", res, err)
	}
	pods.set(a, c) // b leaves
	if res, err := m.Reconcile(context.Background()); err != nil || res.Released != 1 ||
		m.Allocator().State().DefaultCPUSet.String() != "0,5-6" {
		t.Errorf("b's release: %+v %v, pool %s", res, err, m.Allocator().State().DefaultCPUSet)
	}
}

func newSimRuntime(t *testing.T) *runtimetest.Runtime {
	t.Helper()
	rt, err := runtimetest.New(runtimetest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// A pod whose app containers took again the CPUs of its init container and
// that is then refused leaves nothing behind: the pool is whole, no
// assignment is left, and the next pod gets the CPUs.
func TestManagerRefusalAfterInitCPUsWereReused(t *testing.T) {
	e := newMgrEnv(t, nil, nil)
	p := podOf("p", "2", "2") // 4 CPUs; 3 are assignable
	rl := v1.ResourceList{v1.ResourceCPU: resource.MustParse("3"), v1.ResourceMemory: resource.MustParse("64Mi")}
	p.Spec.InitContainers = []v1.Container{{Name: "init", Image: "busybox", Resources: v1.ResourceRequirements{Requests: rl, Limits: rl}}}
	r := e.admit(p)
	want := cpumanager.AdmitResult{Reason: cpumanager.ReasonUnexpectedAdmissionError,
		Message: "Allocate failed due to not enough cpus available to satisfy request: requested=2, available=1, which is unexpected"}
	if r != want {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}
	st := e.m.Allocator().State()
	if len(st.Assignments) != 0 || st.DefaultCPUSet.String() != "0-3" {
		t.Errorf("state after refusal: pool %s, assignments %s", st.DefaultCPUSet, st.Assignments)
	}
	next := podOf("next", "3")
	if r := e.admit(next); !r.Admit {
		t.Fatalf("next refused: %+v", r)
	}
	if cpus, _ := e.m.ContainerCPUs(next, &next.Spec.Containers[0]); cpus != "1-3" {
		t.Errorf("next got %s, want 1-3", cpus)
	}
}

// Admissions, reconciles and ContainerCPUs run at once (run with -race):
// each admitted pod gets its CPU while reconciles take back those of the
// pods that left; at the end only the active pods hold CPUs, no CPU is
// held twice, and the shared containers run on the shared pool.
func TestManagerAdmitAndReconcileConcurrently(t *testing.T) {
	p := staticPolicy(t, cpumanager.TopologyDescription{Sockets: 1, NUMANodesPerSocket: 1, CoresPerNUMANode: 8, ThreadsPerCore: 1}, nil)
	e := newMgrEnv(t, p, nil)
	var shared []string
	for _, name := range []string{"web", "db"} {
		be := podOf(name, "")
		e.pods.add(be)
		shared = append(shared, e.start(t, be, "app"))
	}
	const admitters, rounds = 4, 25
	ctx, cancel := context.WithCancel(context.Background())
	var reconciles sync.WaitGroup
	reconciles.Go(func() {
		for ctx.Err() == nil {
			if _, err := e.m.Reconcile(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("reconcile: %v", err)
			}
		}
	})
	var admissions sync.WaitGroup
	kept := make([]*v1.Pod, admitters)
	for i := range admitters {
		admissions.Go(func() {
			for j := range rounds {
				pod := podOf(fmt.Sprintf("g%d-%d", i, j), "1")
				e.pods.add(pod)
				if r := e.m.Admit(cpumanager.AdmitAttributes{Pod: pod}); !r.Admit {
					t.Errorf("%s refused: %+v", pod.Name, r)
					e.pods.remove(pod)
					continue
				}
				if cpus, excl := e.m.ContainerCPUs(pod, &pod.Spec.Containers[0]); !excl || strings.ContainsAny(cpus, ",-") {
					t.Errorf("%s runs on %q (exclusive %v), want one CPU of its own", pod.Name, cpus, excl)
				}
				if j == rounds-1 {
					kept[i] = pod
				} else {
					e.pods.remove(pod)
				}
			}
		})
	}
	admissions.Wait()
	cancel()
	reconciles.Wait()

	if _, err := e.m.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := e.m.Allocator().State()
	held := cpuset.New()
	for _, pod := range kept {
		if pod == nil {
			continue
		}
		cpus, ok := st.CPUSet(string(pod.UID), "app")
		if !ok || cpus.Size() != 1 || !cpus.Intersection(held).IsEmpty() {
			t.Errorf("%s holds %s (held by others: %s)", pod.Name, cpus, held)
		}
		held = held.Union(cpus)
	}
	if n := len(st.Assignments); n != admitters {
		t.Errorf("%d pods hold CPUs, want the %d still active: %s", n, admitters, st.Assignments)
	}
	if !st.DefaultCPUSet.Intersection(held).IsEmpty() || st.DefaultCPUSet.Union(held).Size() != 8 {
		t.Errorf("shared pool %s, exclusive %s: not a partition of the 8 CPUs", st.DefaultCPUSet, held)
	}
	for _, id := range shared {
		if got := e.cpus(t, id); got != st.DefaultCPUSet.String() {
			t.Errorf("shared container %s on %s, pool %s", id, got, st.DefaultCPUSet)
		}
	}
}
