package cpumanager

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// DefaultReconcilePeriod is how often the Manager brings running
// containers' cpusets in line with the state: the kubelet's
// cpuManagerReconcilePeriod default.
const DefaultReconcilePeriod = 10 * time.Second

// ReasonUnexpectedAdmissionError is the reason of a pod refused because
// its CPUs could not be allocated for a cause other than a typed one
// (SMTAlignmentError): the kubelet's.
const ReasonUnexpectedAdmissionError = "UnexpectedAdmissionError"

// Runtime is what the Manager asks of the container runtime: the running
// containers, with the kubelet's labels naming their pod UID and container
// name, and a way to change a running container's cpuset.
type Runtime interface {
	core.ContainerLister
	core.ResourceUpdater
}

// ActivePodLister gives the pods the node admitted that have not
// terminated (syncloop's Loop.ActivePods). Their containers keep their
// CPUs; every other container's CPUs go back to the shared pool.
type ActivePodLister interface {
	ActivePods() []*v1.Pod
}

// ActivePodsFunc is an ActivePodLister made of a function.
type ActivePodsFunc func() []*v1.Pod

// ActivePods calls f.
func (f ActivePodsFunc) ActivePods() []*v1.Pod { return f() }

var _ ActivePodLister = ActivePodsFunc(nil)

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// Allocator holds the policy and the state. Required.
	Allocator *Allocator
	// Runtime runs the containers. Required.
	Runtime Runtime
	// Pods lists the active pods. Required.
	Pods ActivePodLister
	// SourcesReady reports whether every pod source has delivered its
	// pods once and the pods so delivered have all been offered to
	// admission: the kubelet marks a source seen only after its sync loop
	// handled the source's update. Until it does, no CPUs are taken back
	// from pods missing from Pods: after a restart they may just not be
	// admitted again yet, and a running pod whose CPUs went to another
	// would be moved by the next reconcile. A SourcesReady that turns true
	// as soon as the sources sent their pods (staticpod.Merger's AllReady)
	// is too early while the sync loop admits them one by one. Nil:
	// always ready.
	SourcesReady func() bool
	// ReconcilePeriod is the time between two reconciles. Default
	// DefaultReconcilePeriod; negative is an error.
	ReconcilePeriod time.Duration
	// Registerer receives the kubelet's CPU manager metrics
	// (kubelet_cpu_manager_*). Nil: none.
	Registerer prometheus.Registerer
	Clock      clock.WithTicker
	Logger     *zap.Logger
}

// Manager is the kubelet's CPU manager around an Allocator. It does three
// things:
//
//   - Admit allocates CPUs for every container of a new pod, init
//     containers first, and refuses the pod with the kubelet's reason and
//     message when it cannot (ReasonUnexpectedAdmissionError, or
//     "SMTAlignmentError" under full-pcpus-only). It is the admission
//     handler; its AdmitAttributes and AdmitResult have the shape of the
//     sync loop's, so that one converts to the other.
//   - ContainerCPUs answers, at container creation, the CPUs the
//     container runs on: its exclusive CPUs, else the shared pool.
//   - Run reconciles every ReconcilePeriod, and at once after Admit took
//     exclusive CPUs out of the shared pool or Wake was called: it returns
//     the CPUs of containers whose pod is no longer active to the shared
//     pool, then sets the cpuset of every running container of an active
//     pod whose CPUs differ from what it last set (shared containers
//     shrink when the pool shrinks and grow back when it grows).
//
// Under the none policy Admit admits everything, ContainerCPUs leaves the
// CPUs to the runtime and Run does nothing until ctx ends.
//
// Metrics, with the kubelet's names: kubelet_cpu_manager_pinning_requests_total
// and kubelet_cpu_manager_pinning_errors_total count containers that
// qualified for exclusive CPUs at admission and those whose allocation
// failed. Under the static policy with full-pcpus-only, the same
// allocations are counted in
// kubelet_container_aligned_compute_resources_count and
// kubelet_container_aligned_compute_resources_failure_count, labelled
// {scope="container",boundary="physical_cpu"}; and every new exclusive
// allocation whose CPUs share one uncore cache counts in the former with
// boundary="uncore_cache". Under the static policy these three series are
// reported from the start, at 0.
// kubelet_cpu_manager_shared_pool_size_millicores,
// kubelet_cpu_manager_exclusive_cpu_allocation_count and
// kubelet_cpu_manager_allocation_per_numa{numa_node} are read from the
// state when scraped (every NUMA node is reported, 0 included, where the
// kubelet keeps the last non-zero value of a node that was emptied).
// kubelet_cpu_manager_exclusive_cpu_allocation_count is the number of
// distinct CPUs held exclusively, where the kubelet adds the size of each
// allocation: CPUs an app container took again from its pod's init
// container count once here, twice in the kubelet's.
//
// All methods are safe for concurrent use.
type Manager struct {
	alloc        *Allocator
	rt           Runtime
	pods         ActivePodLister
	sourcesReady func() bool
	period       time.Duration
	clock        clock.WithTicker
	log          *zap.Logger
	wake         chan struct{}

	pinRequests prometheus.Counter
	pinErrors   prometheus.Counter
	// fullPCPUs: the static policy with full-pcpus-only, whose
	// allocations count as aligned to physical CPUs.
	fullPCPUs     bool
	aligned       prometheus.Counter
	alignFailures prometheus.Counter
	// topo is the static policy's machine; alignedUncore counts new
	// allocations within one uncore cache.
	topo          *Topology
	alignedUncore prometheus.Counter

	// admitMu makes each admission and each removal of stale state (with
	// its reading of the active pods) happen one after the other: a pod
	// admitted while a reconcile reads the active pods is never taken for
	// stale, and an admission sees the CPUs of pods gone since.
	admitMu sync.Mutex

	// reconcileMu serialises reconciles; applied belongs to them.
	reconcileMu sync.Mutex
	// applied is the cpuset last set on each running container, by ID.
	applied map[string]string
}

// NewManager checks cfg and returns a Manager. Nothing runs until Run.
// Errors wrap core.ErrInvalid and name the field.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.SourcesReady == nil {
		cfg.SourcesReady = func() bool { return true }
	}
	if cfg.ReconcilePeriod == 0 {
		cfg.ReconcilePeriod = DefaultReconcilePeriod
	}
	switch {
	case cfg.Allocator == nil:
		return nil, fmt.Errorf("cpumanager: manager: Allocator is required: %w", core.ErrInvalid)
	case cfg.Runtime == nil:
		return nil, fmt.Errorf("cpumanager: manager: Runtime is required: %w", core.ErrInvalid)
	case cfg.Pods == nil:
		return nil, fmt.Errorf("cpumanager: manager: Pods is required: %w", core.ErrInvalid)
	case cfg.ReconcilePeriod < 0:
		return nil, fmt.Errorf("cpumanager: manager: ReconcilePeriod %s must not be negative: %w", cfg.ReconcilePeriod, core.ErrInvalid)
	}
	m := &Manager{
		alloc: cfg.Allocator, rt: cfg.Runtime, pods: cfg.Pods, sourcesReady: cfg.SourcesReady,
		period: cfg.ReconcilePeriod, clock: cfg.Clock, log: cfg.Logger,
		wake:    make(chan struct{}, 1),
		applied: map[string]string{},
		pinRequests: prometheus.NewCounter(prometheus.CounterOpts{Subsystem: "kubelet", Name: "cpu_manager_pinning_requests_total",
			Help: "The number of cpu core allocations which required pinning."}),
		pinErrors: prometheus.NewCounter(prometheus.CounterOpts{Subsystem: "kubelet", Name: "cpu_manager_pinning_errors_total",
			Help: "The number of cpu core allocations which required pinning failed."}),
	}
	alignLabels := []string{"scope", "boundary"}
	aligned := prometheus.NewCounterVec(prometheus.CounterOpts{Subsystem: "kubelet", Name: "container_aligned_compute_resources_count",
		Help: "Cumulative number of aligned compute resources allocated to containers by alignment type."}, alignLabels)
	alignFailures := prometheus.NewCounterVec(prometheus.CounterOpts{Subsystem: "kubelet", Name: "container_aligned_compute_resources_failure_count",
		Help: "Cumulative number of failures to allocate aligned compute resources to containers by alignment type."}, alignLabels)
	if m.alloc.pins() {
		// Under the static policy the series exist from the start, as
		// the kubelet's.
		m.aligned = aligned.WithLabelValues("container", "physical_cpu")
		m.alignFailures = alignFailures.WithLabelValues("container", "physical_cpu")
		m.alignedUncore = aligned.WithLabelValues("container", "uncore_cache")
		opts, ok := m.alloc.policy.(interface{ Options() StaticPolicyOptions })
		m.fullPCPUs = ok && opts.Options().FullPhysicalCPUsOnly
		if tp, ok := m.alloc.policy.(interface{ Topology() *Topology }); ok {
			m.topo = tp.Topology()
		}
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{m.pinRequests, m.pinErrors, aligned, alignFailures, newStateCollector(m.alloc)} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("cpumanager: manager: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Allocator returns the allocator the Manager drives.
func (m *Manager) Allocator() *Allocator { return m.alloc }

// AdmitAttributes is what admission looks at: the sync loop's shape.
type AdmitAttributes struct {
	// Pod asks to be admitted.
	Pod *v1.Pod
	// OtherPods are the pods already admitted; the Manager does not look
	// at them (it asks ManagerConfig.Pods).
	OtherPods []*v1.Pod
}

// AdmitResult is the outcome of admission: the sync loop's shape.
type AdmitResult struct {
	// Admit is true when the pod may run.
	Admit bool
	// Reason is "SMTAlignmentError" or ReasonUnexpectedAdmissionError
	// when the pod is refused.
	Reason string
	// Message says why, in the kubelet's words.
	Message string
}

// Admit allocates CPUs for each container of a.Pod, init containers first,
// as the kubelet's resource-allocating admission handler does. Stale
// state is removed first (once the sources are ready), so that the CPUs
// of pods gone since the last reconcile can be given again.
//
// When a container cannot get its CPUs the pod is refused: a typed error
// (SMTAlignmentError) gives its type as the reason and its text as the
// message; any other gives ReasonUnexpectedAdmissionError and "Allocate
// failed due to <cause>, which is unexpected". The CPUs the pod's other
// containers got in this call are then released at once (the kubelet
// leaves them to the next removal of stale state). A pod admitted again,
// as after a restart, keeps the CPUs the checkpoint holds for it.
//
// When the pod took exclusive CPUs, the shared pool shrank: a reconcile
// is triggered so that the shared containers leave those CPUs.
func (m *Manager) Admit(a AdmitAttributes) AdmitResult {
	pod := a.Pod
	if pod == nil {
		return AdmitResult{Reason: ReasonUnexpectedAdmissionError, Message: "no pod to admit"}
	}
	if !m.alloc.pins() {
		return AdmitResult{Admit: true}
	}
	m.admitMu.Lock()
	defer m.admitMu.Unlock()
	if m.sourcesReady() {
		active := append(slices.Clip(m.pods.ActivePods()), pod)
		if n, err := m.alloc.RemoveStaleContainers(active); err != nil {
			m.log.Warn("could not remove stale CPU assignments", zap.Error(err))
		} else if n > 0 {
			m.log.Info("CPUs of containers no longer active returned to the shared pool", zap.Int("containers", n))
		}
	}
	uid := string(pod.UID)
	var added []string
	for _, list := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			c := &list[i]
			had := !m.alloc.ExclusiveCPUs(uid, c.Name).IsEmpty()
			pinning := GuaranteedCPUs(pod, c) > 0 && !podLevelResources(pod)
			if pinning {
				m.pinRequests.Inc()
			}
			cset, err := m.alloc.Allocate(pod, c)
			if err != nil {
				if pinning {
					m.pinErrors.Inc()
					if m.fullPCPUs {
						m.alignFailures.Inc()
					}
				}
				m.release(uid, added)
				return admitError(err)
			}
			if pinning && m.fullPCPUs {
				m.aligned.Inc()
			}
			if !had && !cset.IsEmpty() {
				added = append(added, c.Name)
				if m.topo != nil && m.topo.UncoreCacheAligned(cset) {
					m.alignedUncore.Inc()
				}
			}
		}
	}
	if len(added) > 0 {
		m.Wake()
	}
	return AdmitResult{Admit: true}
}

// release gives back the CPUs of containers allocated by a failed Admit.
func (m *Manager) release(podUID string, names []string) {
	for _, name := range names {
		if _, err := m.alloc.RemoveContainer(podUID, name); err != nil {
			m.log.Warn("could not release the CPUs of a refused pod", zap.String("podUID", podUID),
				zap.String("container", name), zap.Error(err))
		}
	}
}

// admitError is the refusal for an allocation error, in the kubelet's
// words.
func admitError(err error) AdmitResult {
	var typed interface{ Type() string }
	if errors.As(err, &typed) {
		return AdmitResult{Reason: typed.Type(), Message: err.Error()}
	}
	cause := err
	var ae *allocationError
	if errors.As(err, &ae) {
		cause = ae.err
	}
	return AdmitResult{Reason: ReasonUnexpectedAdmissionError,
		Message: fmt.Sprintf("Allocate failed due to %v, which is unexpected", cause)}
}

// ContainerCPUs returns the CPUs a container must be created with: its
// exclusive CPUs (exclusive true), else the shared pool as it is now. It
// returns "" under the none policy, leaving the CPUs to the runtime. It
// has the shape of syncloop's CPUAssigner.
func (m *Manager) ContainerCPUs(pod *v1.Pod, c *v1.Container) (cpus string, exclusive bool) {
	if !m.alloc.pins() {
		return "", false
	}
	cset, exclusive := m.alloc.containerCPUs(string(pod.UID), c.Name)
	return cset.String(), exclusive
}

// Wake asks Run to reconcile at once, without waiting for the period: call
// it when the shared pool may have changed (a pod was removed). Calls made
// while a reconcile is pending are merged into it.
func (m *Manager) Wake() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Run reconciles at once, then every ReconcilePeriod and whenever woken,
// until ctx ends; it returns ctx's error. A failed reconcile is logged and
// retried at the next one. Under the none policy it only waits for ctx.
func (m *Manager) Run(ctx context.Context) error {
	if !m.alloc.pins() {
		<-ctx.Done()
		return ctx.Err()
	}
	m.log.Info("CPU manager reconciling", zap.String("policy", m.alloc.policy.Name()), zap.Duration("reconcilePeriod", m.period))
	t := m.clock.NewTicker(m.period)
	defer t.Stop()
	for {
		if _, err := m.Reconcile(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("CPU manager reconcile failed", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C():
		case <-m.wake:
		}
	}
}

// ReconcileResult says what one reconcile did.
type ReconcileResult struct {
	// Released counts the containers whose exclusive CPUs went back to
	// the shared pool because their pod is no longer active.
	Released int
	// Updated counts the running containers whose cpuset was set.
	Updated int
	// Failed counts the running containers whose cpuset could not be
	// set; the next reconcile tries again.
	Failed int
}

// Reconcile does one reconcile, as the kubelet's reconcileState: once the
// sources are ready it releases the CPUs of containers whose pod is no
// longer active, then, for each running container of an active pod
// (found by its pod UID and container name labels), sets its cpuset with
// UpdateContainerResources (Linux CpusetCpus only) when the CPUs it should
// run on differ from those last set on it. A container not yet seen is
// set once, since what it was created with is not known. The error joins
// the failures of listing and of each update; the rest is still done.
// Under the none policy it does nothing.
func (m *Manager) Reconcile(ctx context.Context) (ReconcileResult, error) {
	var res ReconcileResult
	if !m.alloc.pins() {
		return res, nil
	}
	m.reconcileMu.Lock()
	defer m.reconcileMu.Unlock()
	var errs []error

	m.admitMu.Lock()
	active := m.pods.ActivePods()
	if m.sourcesReady() {
		n, err := m.alloc.RemoveStaleContainers(active)
		if err != nil {
			errs = append(errs, fmt.Errorf("remove stale state: %w", err))
		}
		res.Released = n
	}
	m.admitMu.Unlock()
	if res.Released > 0 {
		m.log.Info("CPUs of containers no longer active returned to the shared pool", zap.Int("containers", res.Released))
	}

	names := make(map[string]map[string]bool, len(active))
	for _, p := range active {
		set := map[string]bool{}
		for _, list := range [][]v1.Container{p.Spec.InitContainers, p.Spec.Containers} {
			for i := range list {
				set[list[i].Name] = true
			}
		}
		names[string(p.UID)] = set
	}
	running, err := m.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
	if err != nil {
		errs = append(errs, fmt.Errorf("list running containers: %w", err))
		return res, fmt.Errorf("cpumanager: reconcile: %w", errors.Join(errs...))
	}
	seen := make(map[string]bool, len(running))
	for _, c := range running {
		id, labels := c.GetId(), c.GetLabels()
		uid, name := labels[core.LabelPodUID], labels[core.LabelContainerName]
		if !names[uid][name] {
			continue
		}
		seen[id] = true
		want := m.alloc.CPUSet(uid, name)
		if want.IsEmpty() {
			continue
		}
		cpus := want.String()
		if m.applied[id] == cpus {
			continue
		}
		err := m.rt.UpdateContainerResources(ctx, id, &runtimeapi.ContainerResources{
			Linux: &runtimeapi.LinuxContainerResources{CpusetCpus: cpus}})
		switch {
		case errors.Is(err, core.ErrNotFound):
			// Gone since the list: nothing to update.
			delete(seen, id)
			continue
		case err != nil:
			res.Failed++
			errs = append(errs, fmt.Errorf("pod %s container %q (%s): set cpuset %s: %w", uid, name, id, cpus, err))
			continue
		}
		m.applied[id] = cpus
		res.Updated++
		m.log.Info("container cpuset updated", zap.String("pod", labels[core.LabelPodNamespace]+"/"+labels[core.LabelPodName]),
			zap.String("podUID", uid), zap.String("container", name), zap.String("containerID", id), zap.String("cpus", cpus))
	}
	for id := range m.applied {
		if !seen[id] {
			delete(m.applied, id)
		}
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("cpumanager: reconcile: %w", errors.Join(errs...))
	}
	return res, nil
}

// stateCollector reports the gauges of the kubelet's CPU manager from the
// allocator's state when scraped.
type stateCollector struct {
	a                                   *Allocator
	sharedPool, exclusiveCount, perNUMA *prometheus.Desc
}

func newStateCollector(a *Allocator) *stateCollector {
	return &stateCollector{
		a: a,
		sharedPool: prometheus.NewDesc("kubelet_cpu_manager_shared_pool_size_millicores",
			"The size of the shared CPU pool for non-guaranteed QoS pods, in millicores.", nil, nil),
		exclusiveCount: prometheus.NewDesc("kubelet_cpu_manager_exclusive_cpu_allocation_count",
			"The total number of CPUs exclusively allocated to containers running on this node", nil, nil),
		perNUMA: prometheus.NewDesc("kubelet_cpu_manager_allocation_per_numa",
			"Number of CPUs allocated per NUMA node", []string{"numa_node"}, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.sharedPool
	ch <- c.exclusiveCount
	ch <- c.perNUMA
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.a.Stats()
	ch <- prometheus.MustNewConstMetric(c.sharedPool, prometheus.GaugeValue, float64(st.SharedPoolCPUs*1000))
	ch <- prometheus.MustNewConstMetric(c.exclusiveCount, prometheus.GaugeValue, float64(st.ExclusiveCPUs))
	tp, ok := c.a.policy.(interface{ Topology() *Topology })
	if !ok {
		return
	}
	for _, node := range tp.Topology().CPUDetails.NUMANodes().List() {
		ch <- prometheus.MustNewConstMetric(c.perNUMA, prometheus.GaugeValue, float64(st.ExclusiveCPUsPerNUMA[node]), strconv.Itoa(node))
	}
}
