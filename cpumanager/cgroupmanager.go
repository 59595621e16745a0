package cpumanager

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cgroups "github.com/containerd/cgroups/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
)

// Defaults applied by NewCgroupManager to zero fields of CgroupManagerConfig.
const (
	DefaultCgroupRoot        = "/"
	DefaultCgroupMountPoint  = "/sys/fs/cgroup"
	DefaultCPUCFSQuotaPeriod = 100 * time.Millisecond
)

// CgroupManagerConfig configures a CgroupManager. The zero value is the
// kubelet's default on a cgroupfs node, with no node allocatable limits.
type CgroupManagerConfig struct {
	// Root is the cgroup the hierarchy lives in, in cgroupfs form (the
	// kubelet's --cgroup-root). It must exist. Default DefaultCgroupRoot.
	Root string
	// Driver names the cgroups. Only cgroupfs, the default, is supported
	// here; CgroupLayout spells systemd names.
	Driver CgroupDriver
	// CgroupVersion is 1 or 2. Zero detects it with the cgroups library
	// (a hybrid host counts as 1).
	CgroupVersion int
	// MountPoint is where the hierarchies are mounted: the parent of the
	// per-controller mounts on cgroup v1, the unified mount on v2.
	// Default DefaultCgroupMountPoint.
	MountPoint string

	// NodeAllocatable sets the limits of kubepods.
	NodeAllocatable NodeAllocatable

	// DisableCPUQuota lifts the CFS quota of every pod cgroup (the
	// kubelet's cpuCFSQuota: false).
	DisableCPUQuota bool
	// CPUCFSQuotaPeriod is the CFS period, between 1ms and 1s. Default
	// DefaultCPUCFSQuotaPeriod.
	CPUCFSQuotaPeriod time.Duration
	// PodPidsLimit is the kubelet's podPidsLimit: pids.max of every pod
	// cgroup. Zero or less sets none.
	PodPidsLimit int64
	// DisableMemoryQoS turns off memory QoS on cgroup v2 (the kubelet's
	// MemoryQoS feature, on by default).
	DisableMemoryQoS bool
	// TieredMemoryReservation protects memory requests on cgroup v2 (the
	// kubelet's memoryReservationPolicy: TieredReservation); see
	// PodResourceOptions and QOSOptions.
	TieredMemoryReservation bool
	// MemoryThrottlingFactor, in [0, 1], sets memory.high of pods with
	// pod-level resources; see PodResourceOptions.
	MemoryThrottlingFactor float64
	// QOSReservedMemoryPercent, in [0, 100], reserves memory for the
	// higher QoS classes; see QOSOptions.
	QOSReservedMemoryPercent int64
	// ExclusiveCPUs reports whether the CPU manager pinned a container of
	// the pod to exclusive CPUs; the pod cgroup then has no CFS quota.
	// nil means never.
	ExclusiveCPUs func(pod *v1.Pod) bool

	// Clock times the cgroup operations for the metric. nil is the real
	// clock.
	Clock clock.PassiveClock
	// Logger gets a debug line per cgroup written or removed. nil is a
	// no-op logger.
	Logger *zap.Logger
	// Registerer gets kubelet_cgroup_manager_duration_seconds
	// (operation_type create, update, destroy). nil turns metrics off.
	Registerer prometheus.Registerer
}

// CgroupManager keeps the kubelet's cgroup hierarchy on the node: kubepods
// with the node allocatable limits, the burstable and besteffort QoS
// cgroups, and one cgroup per pod. Its methods are safe for concurrent
// use; they serialise on one lock.
type CgroupManager struct {
	cfg       CgroupManagerConfig
	layout    CgroupLayout
	backend   cgroupBackend
	pageSizes []int64
	log       *zap.Logger
	clock     clock.PassiveClock
	duration  *prometheus.HistogramVec

	mu sync.Mutex
}

// NewCgroupManager validates cfg, detects the cgroup version when not
// given, and finds the mounted hierarchies and the node's huge page sizes.
// It creates nothing: call EnsureHierarchy.
func NewCgroupManager(cfg CgroupManagerConfig) (*CgroupManager, error) {
	if cfg.Root == "" {
		cfg.Root = DefaultCgroupRoot
	}
	if cfg.Driver == "" {
		cfg.Driver = CgroupfsDriver
	}
	if cfg.MountPoint == "" {
		cfg.MountPoint = DefaultCgroupMountPoint
	}
	if cfg.CPUCFSQuotaPeriod == 0 {
		cfg.CPUCFSQuotaPeriod = DefaultCPUCFSQuotaPeriod
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if err := validateCgroupManagerConfig(&cfg); err != nil {
		return nil, err
	}
	if cfg.CgroupVersion == 0 {
		switch cgroups.Mode() {
		case cgroups.Unified:
			cfg.CgroupVersion = 2
		case cgroups.Legacy, cgroups.Hybrid:
			cfg.CgroupVersion = 1
		default:
			return nil, errors.New("cpumanager: no cgroup hierarchy is mounted at /sys/fs/cgroup")
		}
	}

	pageSizes, err := detectHugePageSizes(hugePagesDir)
	if err != nil {
		return nil, fmt.Errorf("cpumanager: %w", err)
	}
	m := &CgroupManager{
		cfg:    cfg,
		layout: CgroupLayout{Root: cfg.Root, Driver: cfg.Driver},
		log:    cfg.Logger,
		clock:  cfg.Clock,
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Subsystem: "kubelet",
			Name:      "cgroup_manager_duration_seconds",
			Help:      "Duration in seconds for cgroup manager operations. Broken down by method.",
			Buckets:   prometheus.DefBuckets,
		}, []string{"operation_type"}),
	}
	switch cfg.CgroupVersion {
	case 1:
		b, err := newCgroupV1(cfg.MountPoint, pageSizes)
		if err != nil {
			return nil, fmt.Errorf("cpumanager: %w", err)
		}
		m.backend, m.pageSizes = b, b.pageSizes
	case 2:
		b, err := newCgroupV2(cfg.MountPoint, pageSizes)
		if err != nil {
			return nil, fmt.Errorf("cpumanager: %w", err)
		}
		m.backend, m.pageSizes = b, b.pageSizes
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(m.duration); err != nil {
			// A second manager on one registry shares the first's metric.
			var dup prometheus.AlreadyRegisteredError
			if !errors.As(err, &dup) {
				return nil, fmt.Errorf("cpumanager: register metrics: %w", err)
			}
			existing, ok := dup.ExistingCollector.(*prometheus.HistogramVec)
			if !ok {
				return nil, fmt.Errorf("cpumanager: register metrics: %w", err)
			}
			m.duration = existing
		}
	}
	return m, nil
}

func validateCgroupManagerConfig(cfg *CgroupManagerConfig) error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("cpumanager: %s: %w", fmt.Sprintf(format, args...), core.ErrInvalid)
	}
	if !strings.HasPrefix(cfg.Root, "/") || path.Clean(cfg.Root) != cfg.Root || strings.Contains(cfg.Root, "/..") {
		return invalid("Root %q is not a clean absolute cgroupfs path", cfg.Root)
	}
	switch cfg.Driver {
	case CgroupfsDriver:
	case SystemdDriver:
		return invalid("Driver %q: the manager writes cgroupfs cgroups only (CgroupLayout spells systemd names)", cfg.Driver)
	default:
		return invalid("Driver %q is neither %q nor %q", cfg.Driver, CgroupfsDriver, SystemdDriver)
	}
	if cfg.CgroupVersion != 0 && cfg.CgroupVersion != 1 && cfg.CgroupVersion != 2 {
		return invalid("CgroupVersion %d is not 1 or 2", cfg.CgroupVersion)
	}
	if !path.IsAbs(cfg.MountPoint) {
		return invalid("MountPoint %q is not absolute", cfg.MountPoint)
	}
	if cfg.CPUCFSQuotaPeriod < time.Millisecond || cfg.CPUCFSQuotaPeriod > time.Second {
		return invalid("CPUCFSQuotaPeriod %v is not between 1ms and 1s", cfg.CPUCFSQuotaPeriod)
	}
	if cfg.MemoryThrottlingFactor < 0 || cfg.MemoryThrottlingFactor > 1 {
		return invalid("MemoryThrottlingFactor %v is not in [0, 1]", cfg.MemoryThrottlingFactor)
	}
	if cfg.QOSReservedMemoryPercent < 0 || cfg.QOSReservedMemoryPercent > 100 {
		return invalid("QOSReservedMemoryPercent %d is not in [0, 100]", cfg.QOSReservedMemoryPercent)
	}
	return nil
}

// Layout names the cgroups this manager keeps.
func (m *CgroupManager) Layout() CgroupLayout { return m.layout }

// CgroupParent is the pod's cgroup as LinuxPodSandboxConfig.CgroupParent
// carries it.
func (m *CgroupManager) CgroupParent(pod *v1.Pod) string { return m.layout.CgroupParent(pod) }

// Version is the cgroup version in use, 1 or 2.
func (m *CgroupManager) Version() int { return m.backend.version() }

// PodResourceOptions are the options ResourceConfigForPod gets for pod from
// the configuration.
func (m *CgroupManager) PodResourceOptions(pod *v1.Pod) PodResourceOptions {
	return PodResourceOptions{
		DisableCPUQuota:         m.cfg.DisableCPUQuota || (m.cfg.ExclusiveCPUs != nil && m.cfg.ExclusiveCPUs(pod)),
		CPUPeriod:               uint64(m.cfg.CPUCFSQuotaPeriod.Microseconds()),
		MemoryQoS:               m.memoryQoS(),
		TieredMemoryReservation: m.cfg.TieredMemoryReservation,
		MemoryThrottlingFactor:  m.cfg.MemoryThrottlingFactor,
		PidsLimit:               m.cfg.PodPidsLimit,
	}
}

// QOSOptions are the options of the QoS computations from the
// configuration and the node.
func (m *CgroupManager) QOSOptions() QOSOptions {
	allocatable := m.cfg.NodeAllocatable.Allocatable()[v1.ResourceMemory]
	return QOSOptions{
		CgroupV2:                 m.backend.version() == 2,
		MemoryQoS:                m.memoryQoS(),
		TieredMemoryReservation:  m.cfg.TieredMemoryReservation,
		QOSReservedMemoryPercent: m.cfg.QOSReservedMemoryPercent,
		AllocatableMemory:        allocatable.Value(),
		HugePageSizes:            slices.Clone(m.pageSizes),
	}
}

func (m *CgroupManager) memoryQoS() bool {
	return m.backend.version() == 2 && !m.cfg.DisableMemoryQoS
}

// EnsureHierarchy creates kubepods, kubepods/burstable and
// kubepods/besteffort below the root, or updates them: kubepods gets the
// node allocatable limits, the QoS cgroups the values the kubelet writes
// when it starts (QOSResourcesAtStart). It is idempotent. The root must
// exist (an error matching core.ErrNotFound otherwise). Call UpdateQOS
// afterwards, and whenever the active pods change, for burstable's shares.
func (m *CgroupManager) EnsureHierarchy(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if root := ParseCgroupfsName(m.cfg.Root); len(root) > 0 {
		ok, err := m.backend.exists(m.layout.Name(root))
		if err != nil {
			return fmt.Errorf("cpumanager: check the cgroup root %s: %w", m.cfg.Root, err)
		}
		if !ok {
			return fmt.Errorf("cpumanager: the cgroup root %s does not exist: %w", m.cfg.Root, core.ErrNotFound)
		}
	}
	start := QOSResourcesAtStart(m.QOSOptions())
	top := m.cfg.NodeAllocatable.Resources()
	if start.NodeAllocatable.MemoryMin != nil {
		top.MemoryMin, top.MemoryLow = start.NodeAllocatable.MemoryMin, start.NodeAllocatable.MemoryLow
	}
	steps := []struct {
		name CgroupName
		rc   ResourceConfig
	}{
		{m.layout.NodeAllocatable(), top},
		{m.layout.QOSCgroup(v1.PodQOSBurstable), start.Burstable},
		{m.layout.QOSCgroup(v1.PodQOSBestEffort), start.BestEffort},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := m.write(s.name, s.rc, false); err != nil {
			return err
		}
	}
	return nil
}

// UpdateQOS writes the QoS cgroups' values for the active pods (those
// admitted and not yet terminated), as the kubelet does every minute:
// QOSResourcesForPods. The hierarchy must exist (an error matching
// core.ErrNotFound otherwise). Every cgroup is tried; the errors are
// joined.
func (m *CgroupManager) UpdateQOS(ctx context.Context, activePods []*v1.Pod) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := m.requireExists(m.layout.NodeAllocatable()); err != nil {
		return err
	}
	q := QOSResourcesForPods(activePods, m.QOSOptions())
	var errs []error
	for _, s := range []struct {
		name CgroupName
		rc   ResourceConfig
	}{
		{m.layout.NodeAllocatable(), q.NodeAllocatable},
		{m.layout.QOSCgroup(v1.PodQOSBurstable), q.Burstable},
		{m.layout.QOSCgroup(v1.PodQOSBestEffort), q.BestEffort},
	} {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		errs = append(errs, m.write(s.name, s.rc, true))
	}
	return errors.Join(errs...)
}

// EnsurePod creates the pod's cgroup in the cgroup of its QoS class, or
// updates it, with ResourceConfigForPod's values. Its QoS cgroup must
// exist (an error matching core.ErrNotFound otherwise: call
// EnsureHierarchy). Shrinking a pod below what its containers' cgroups
// hold can fail: shrink the containers first.
func (m *CgroupManager) EnsurePod(ctx context.Context, pod *v1.Pod) error {
	if pod == nil || pod.UID == "" {
		return fmt.Errorf("cpumanager: ensure a pod cgroup: a pod with a UID is needed: %w", core.ErrInvalid)
	}
	rc := ResourceConfigForPod(pod, m.PodResourceOptions(pod))
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	name := m.layout.PodCgroupName(pod)
	if err := m.requireExists(name[:len(name)-1]); err != nil {
		return fmt.Errorf("%w (pod %s/%s)", err, pod.Namespace, pod.Name)
	}
	return m.write(name, rc, false)
}

// PodCgroup is a pod cgroup found on the node.
type PodCgroup struct {
	UID      types.UID
	QOSClass v1.PodQOSClass
	Name     CgroupName
	// Path is the cgroup in the driver's spelling ("/kubepods/pod<uid>").
	Path string
}

// CgroupNotEmptyError says a cgroup, or one below it, still holds
// processes, so it was not removed.
type CgroupNotEmptyError struct {
	// Cgroup is the cgroup's path in the driver's spelling.
	Cgroup string
	// PIDs are the processes found in it and its descendants, in every
	// hierarchy.
	PIDs []int
}

func (e *CgroupNotEmptyError) Error() string {
	pids := make([]string, len(e.PIDs))
	for i, p := range e.PIDs {
		pids[i] = strconv.Itoa(p)
	}
	return fmt.Sprintf("cgroup %s still holds processes %s", e.Cgroup, strings.Join(pids, ", "))
}

// ListPodCgroups lists the pod cgroups below the three QoS cgroups, in any
// hierarchy, sorted by UID and path.
func (m *CgroupManager) ListPodCgroups(ctx context.Context) ([]PodCgroup, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return m.listPodCgroups()
}

func (m *CgroupManager) listPodCgroups() ([]PodCgroup, error) {
	var out []PodCgroup
	for _, class := range []v1.PodQOSClass{v1.PodQOSGuaranteed, v1.PodQOSBurstable, v1.PodQOSBestEffort} {
		parent := m.layout.QOSCgroup(class)
		names, err := m.backend.children(m.layout.Name(parent))
		if err != nil {
			return nil, fmt.Errorf("cpumanager: list the pod cgroups in %s: %w", m.layout.Name(parent), err)
		}
		for _, n := range names {
			uid, ok := podUIDFromComponent(n)
			if !ok {
				continue
			}
			name := parent.Child(n)
			out = append(out, PodCgroup{UID: uid, QOSClass: class, Name: name, Path: m.layout.Name(name)})
		}
	}
	slices.SortFunc(out, func(a, b PodCgroup) int {
		if c := strings.Compare(string(a.UID), string(b.UID)); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	return out, nil
}

// DestroyPod removes the cgroup of the pod with this UID, whatever its QoS
// class, when it holds no process. It kills nothing: if processes remain
// (the runtime has not stopped every container, or something escaped),
// the error is a *CgroupNotEmptyError naming the cgroup and the PIDs, and
// nothing is removed. No cgroup for the UID is not an error.
func (m *CgroupManager) DestroyPod(ctx context.Context, uid types.UID) error {
	if uid == "" {
		return fmt.Errorf("cpumanager: destroy a pod cgroup: empty UID: %w", core.ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	all, err := m.listPodCgroups()
	if err != nil {
		return err
	}
	for _, pc := range all {
		if pc.UID != uid {
			continue
		}
		if err := m.destroy(pc); err != nil {
			return fmt.Errorf("cpumanager: destroy the cgroup of pod %s: %w", uid, err)
		}
	}
	return nil
}

// OrphanReport says what CleanupOrphans did.
type OrphanReport struct {
	// Removed are the cgroups of pods not active that were removed.
	Removed []PodCgroup
	// NotEmpty are the cgroups of pods not active that still hold
	// processes; their CPU shares were lowered to the minimum.
	NotEmpty []OrphanedPodCgroup
}

// OrphanedPodCgroup is a pod cgroup left in place with the processes in it.
type OrphanedPodCgroup struct {
	PodCgroup
	PIDs []int
}

// CleanupOrphans removes the cgroups of pods for which active returns
// false, when they hold no process. Those that still hold processes are
// reported and get the minimum CPU shares, as the kubelet does while it
// waits. Pass as active every pod that may still run or whose volumes are
// still mounted. Errors of single cgroups are joined; the others are
// still tried.
func (m *CgroupManager) CleanupOrphans(ctx context.Context, active func(types.UID) bool) (OrphanReport, error) {
	var report OrphanReport
	if active == nil {
		return report, fmt.Errorf("cpumanager: clean up pod cgroups: nil active func: %w", core.ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return report, err
	}
	all, err := m.listPodCgroups()
	if err != nil {
		return report, err
	}
	var errs []error
	for _, pc := range all {
		if active(pc.UID) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return report, errors.Join(append(errs, err)...)
		}
		err := m.destroy(pc)
		var busy *CgroupNotEmptyError
		switch {
		case err == nil:
			report.Removed = append(report.Removed, pc)
		case errors.As(err, &busy):
			report.NotEmpty = append(report.NotEmpty, OrphanedPodCgroup{PodCgroup: pc, PIDs: busy.PIDs})
			reduce := ResourceConfig{CPUShares: cgPtr(uint64(crispec.MinShares))}
			if err := m.write(pc.Name, reduce, true); err != nil {
				errs = append(errs, err)
			}
		default:
			errs = append(errs, fmt.Errorf("cpumanager: remove the orphaned cgroup of pod %s: %w", pc.UID, err))
		}
	}
	return report, errors.Join(errs...)
}

// destroy removes a pod cgroup that holds no process.
func (m *CgroupManager) destroy(pc PodCgroup) error {
	p := m.layout.Name(pc.Name)
	pids, err := m.backend.pids(p)
	if err != nil {
		return fmt.Errorf("list the processes of cgroup %s: %w", p, err)
	}
	if len(pids) > 0 {
		return &CgroupNotEmptyError{Cgroup: p, PIDs: pids}
	}
	start := m.clock.Now()
	err = m.backend.remove(p)
	m.duration.WithLabelValues("destroy").Observe(m.clock.Since(start).Seconds())
	if err != nil {
		return fmt.Errorf("remove cgroup %s: %w", p, err)
	}
	m.log.Debug("removed cgroup", zap.String("cgroup", p))
	return nil
}

// requireExists fails with core.ErrNotFound when the cgroup is missing.
func (m *CgroupManager) requireExists(name CgroupName) error {
	p := m.layout.Name(name)
	ok, err := m.backend.exists(p)
	if err != nil {
		return fmt.Errorf("cpumanager: check cgroup %s: %w", p, err)
	}
	if !ok {
		return fmt.Errorf("cpumanager: cgroup %s does not exist (call EnsureHierarchy first): %w", p, core.ErrNotFound)
	}
	return nil
}

// write creates or updates a cgroup. With skipEmpty, a config that sets
// nothing writes nothing.
func (m *CgroupManager) write(name CgroupName, rc ResourceConfig, skipEmpty bool) error {
	if skipEmpty && rc.isEmpty() {
		return nil
	}
	p := m.layout.Name(name)
	existed, err := m.backend.exists(p)
	if err != nil {
		return fmt.Errorf("cpumanager: check cgroup %s: %w", p, err)
	}
	op := "update"
	if !existed {
		op = "create"
	}
	start := m.clock.Now()
	err = m.backend.ensure(p, &rc)
	m.duration.WithLabelValues(op).Observe(m.clock.Since(start).Seconds())
	if err != nil {
		return fmt.Errorf("cpumanager: %s cgroup %s: %w", op, p, err)
	}
	m.log.Debug(op+"d cgroup", zap.String("cgroup", p), zap.Stringer("values", rc))
	return nil
}
