package eviction

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// Defaults of StatsConfig, as the kubelet lays out a node.
const (
	// DefaultRootDir is the kubelet's root directory (--root-dir): its
	// filesystem is the nodefs, and it holds each pod's etc-hosts file.
	DefaultRootDir = "/var/lib/kubelet"
	// DefaultPodLogsDir is where containers' logs are kept
	// (podLogsDir): <dir>/<namespace>_<name>_<uid>/<container>/<n>.log.
	DefaultPodLogsDir = "/var/log/pods"
	// DefaultCgroupMount is where the cgroup file system is mounted: the
	// unified hierarchy on cgroup v2, one directory per controller on v1.
	DefaultCgroupMount = "/sys/fs/cgroup"
	// DefaultProcDir is where the proc file system is mounted.
	DefaultProcDir = "/proc"
)

// The cgroup drivers: how cgroup names are spelled on the cgroup file
// system (StatsConfig.CgroupDriver).
const (
	// CgroupDriverCgroupfs spells names as plain directories:
	// /kubepods/burstable/pod<uid>.
	CgroupDriverCgroupfs = "cgroupfs"
	// CgroupDriverSystemd spells names as systemd slices:
	// /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice,
	// with "-" in the pod's UID written "_".
	CgroupDriverSystemd = "systemd"
)

// ContainerStatsLister is what a StatsProvider asks the container runtime
// about containers: which of them run (ListContainers) and what each uses
// (ListContainerStats). A core.Runtime, *cri.Runtime or
// *runtimetest.Runtime has both.
//
// If the value also has ListPodSandboxStats (core.StatsLister), the
// process count of a pod without a pod cgroup is taken from its sandbox's
// stats.
type ContainerStatsLister interface {
	core.ContainerLister
	ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error)
}

// sandboxStatsLister is the optional extension of ContainerStatsLister.
type sandboxStatsLister interface {
	ListPodSandboxStats(ctx context.Context, filter *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error)
}

// StatsConfig configures a StatsProvider. Every field is optional: the
// zero value measures the node (memory, nodefs, PIDs) as the kubelet lays
// it out by default, and no pods.
type StatsConfig struct {
	// ActivePods returns the node's active pods (admitted, not terminal),
	// in the order Observations.Pods keeps them. Nil: no pods. It is called
	// once per Observe and must return soon.
	ActivePods func() []*v1.Pod
	// Runtime lists the running containers and their stats: their working
	// set, writable layer and, for pods without a pod cgroup, their
	// memory. Nil: containers are not measured.
	Runtime ContainerStatsLister
	// ImageFs reports the runtime's image and container filesystems
	// (CRI ImageFsInfo): the first of each is measured with statfs at
	// the mount point it names, on this host, and its Time is when
	// statfs ran (the runtime's own usage and timestamp are not what the
	// signals look at). Nil, a runtime without the call
	// (core.ErrUnimplemented) or one that reports no image filesystem:
	// ImageFs and ContainerFs are not measured, and are taken to be the
	// NodeFs.
	ImageFs core.ImageFsInfoer
	// PodVolumes returns the last measured usage of the volumes of the
	// pod with the UID, named as in its spec; nil when there is none. It
	// is called once per active pod and Observe, and must return soon
	// (keep the measuring apart, as volumemgr.Stats does). Nil: volumes
	// are not measured. An agent wires it to volumemgr's stats:
	//
	//	PodVolumes: func(uid types.UID) []eviction.VolumeStats {
	//		var out []eviction.VolumeStats
	//		for name, s := range volStats.PodVolumeStats(uid) { // *volumemgr.Stats
	//			out = append(out, eviction.VolumeStats{Name: name,
	//				UsedBytes: uint64(s.UsedBytes), InodesUsed: uint64(s.InodesUsed)})
	//		}
	//		return out
	//	},
	//
	// Every volume returned is in PodStats.Volumes, in the order of the
	// pod's spec; those the kubelet counts as local ephemeral storage
	// (emptyDir on disk, configMap, gitRepo) are added to
	// EphemeralStorageBytes.
	PodVolumes func(uid types.UID) []VolumeStats

	// RootDir is the kubelet's root directory: the nodefs is its
	// filesystem, and a pod's etc-hosts file is <RootDir>/pods/<uid>/etc-hosts.
	// Default DefaultRootDir.
	RootDir string
	// PodLogsDir holds the containers' logs. Default DefaultPodLogsDir.
	PodLogsDir string
	// CgroupMount is where the cgroup file system is mounted. Default
	// DefaultCgroupMount.
	CgroupMount string
	// CgroupVersion is 1 or 2; 0 detects it from the file system mounted
	// at CgroupMount (cgroup2 there is v2; anything else, such as the
	// tmpfs holding v1 hierarchies, is v1).
	CgroupVersion int
	// CgroupRoot is the cgroup the kubelet's hierarchy lives in, in
	// cgroupfs spelling whatever the driver (--cgroup-root). Default "/".
	// The pods' cgroup, whose limit is the node's allocatable memory, is
	// <CgroupRoot>/kubepods.
	CgroupRoot string
	// CgroupDriver spells cgroup names: CgroupDriverCgroupfs (the
	// default) or CgroupDriverSystemd.
	CgroupDriver string
	// ProcDir is where the proc file system is mounted (meminfo, loadavg,
	// sys/kernel/pid_max). Default DefaultProcDir; an agent in a container
	// sets the host's.
	ProcDir string

	// Clock gives the time of each measurement. Default the real clock.
	Clock clock.PassiveClock
	// Logger receives what was not measured and why, at debug level.
	// Default none.
	Logger *zap.Logger
}

// StatsProvider measures the node and its active pods and returns them as
// Observations, the way the kubelet's summary stats provider feeds its
// eviction manager:
//
//   - Memory: the root memory cgroup's working set (usage less inactive
//     file pages) against the machine's memory (MemTotal);
//   - AllocatableMemory: the working set of the pods' cgroup (kubepods)
//     against its limit, when it has one;
//   - NodeFs: statfs of RootDir; ImageFs and ContainerFs: statfs of the
//     mount points the runtime's ImageFsInfo names, and the Dedicated*
//     flags from their devices;
//   - PIDs: the smaller of kernel.pid_max and kernel.threads-max against
//     the tasks /proc/loadavg counts;
//   - Pods: each pod's cgroup, its running containers' CRI stats, its log
//     files, its volumes and its etc-hosts file.
//
// It keeps no state between calls: Observe is safe for concurrent use if
// the functions and runtime in its StatsConfig are.
type StatsProvider struct {
	cfg     StatsConfig
	log     *zap.Logger
	systemd bool
	// root is CgroupRoot as a name.
	root []string
}

// NewStatsProvider returns a StatsProvider for cfg. Relative paths, an
// unknown CgroupDriver or CgroupVersion and a CgroupRoot with ".." are
// reported in an error wrapping core.ErrInvalid.
func NewStatsProvider(cfg StatsConfig) (*StatsProvider, error) {
	if cfg.RootDir == "" {
		cfg.RootDir = DefaultRootDir
	}
	if cfg.PodLogsDir == "" {
		cfg.PodLogsDir = DefaultPodLogsDir
	}
	if cfg.CgroupMount == "" {
		cfg.CgroupMount = DefaultCgroupMount
	}
	if cfg.ProcDir == "" {
		cfg.ProcDir = DefaultProcDir
	}
	if cfg.CgroupDriver == "" {
		cfg.CgroupDriver = CgroupDriverCgroupfs
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	var errs []error
	for _, f := range []struct{ name, value string }{
		{"RootDir", cfg.RootDir}, {"PodLogsDir", cfg.PodLogsDir},
		{"CgroupMount", cfg.CgroupMount}, {"ProcDir", cfg.ProcDir},
	} {
		if !filepath.IsAbs(f.value) {
			errs = append(errs, fmt.Errorf("%s %q is not absolute", f.name, f.value))
		}
	}
	if cfg.CgroupVersion < 0 || cfg.CgroupVersion > 2 {
		errs = append(errs, fmt.Errorf("CgroupVersion %d is neither 0, 1 nor 2", cfg.CgroupVersion))
	}
	if cfg.CgroupDriver != CgroupDriverCgroupfs && cfg.CgroupDriver != CgroupDriverSystemd {
		errs = append(errs, fmt.Errorf("CgroupDriver %q is neither %q nor %q", cfg.CgroupDriver, CgroupDriverCgroupfs, CgroupDriverSystemd))
	}
	root, err := parseCgroupRoot(cfg.CgroupRoot)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("eviction: stats: %w: %w", core.ErrInvalid, errors.Join(errs...))
	}
	return &StatsProvider{
		cfg:     cfg,
		log:     cfg.Logger,
		systemd: cfg.CgroupDriver == CgroupDriverSystemd,
		root:    root,
	}, nil
}

// parseCgroupRoot reads a cgroupfs path ("/", "/nodes/a") into its
// components.
func parseCgroupRoot(p string) ([]string, error) {
	var out []string
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "", ".":
		case "..":
			return nil, fmt.Errorf("CgroupRoot %q has a \"..\" component", p)
		default:
			out = append(out, c)
		}
	}
	return out, nil
}

// Names of the kubelet's cgroup hierarchy, below CgroupRoot.
const (
	kubepodsCgroup   = "kubepods"
	burstableCgroup  = "burstable"
	besteffortCgroup = "besteffort"
	podCgroupPrefix  = "pod"
)

// cgroupPath spells a cgroup name (its components below the host's cgroup
// root) as the driver does, the way the kubelet names its cgroups:
// cgroupfs joins the components ("/kubepods/burstable/pod<uid>"); systemd
// makes each a slice prefixed with its ancestors' names, "-" in a
// component escaped to "_"
// ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice").
// These are the names cpumanager's CgroupLayout gives the hierarchy it
// keeps; subsystems do not import each other, so the convention is
// written out here again.
func (p *StatsProvider) cgroupPath(name []string) string {
	if !p.systemd {
		return "/" + path.Join(name...)
	}
	if len(name) == 0 {
		return "/"
	}
	var b strings.Builder
	prefix := ""
	for _, c := range name {
		unit := prefix + strings.ReplaceAll(c, "-", "_")
		b.WriteString("/" + unit + ".slice")
		prefix = unit + "-"
	}
	return b.String()
}

// kubepods is the name of the pods' cgroup.
func (p *StatsProvider) kubepods() []string {
	return append(append([]string(nil), p.root...), kubepodsCgroup)
}

// AllocatableCgroup is the path of the pods' cgroup (<CgroupRoot>/kubepods)
// below the cgroup root of the host, in the driver's spelling: the cgroup
// AllocatableMemory is measured in, and the one a Notifier for
// allocatableMemory.available watches.
func (p *StatsProvider) AllocatableCgroup() string {
	return p.cgroupPath(p.kubepods())
}

// podCgroupCandidates are the paths the pod's cgroup may have: pod<uid>
// below the cgroup of its QoS class (kubepods itself for Guaranteed pods,
// kubepods/burstable, kubepods/besteffort), that class first.
func (p *StatsProvider) podCgroupCandidates(pod *v1.Pod, class v1.PodQOSClass) []string {
	top := p.kubepods()
	dirs := map[v1.PodQOSClass][]string{
		v1.PodQOSGuaranteed: top,
		v1.PodQOSBurstable:  append(append([]string(nil), top...), burstableCgroup),
		v1.PodQOSBestEffort: append(append([]string(nil), top...), besteffortCgroup),
	}
	order := []v1.PodQOSClass{class}
	for _, c := range []v1.PodQOSClass{v1.PodQOSGuaranteed, v1.PodQOSBurstable, v1.PodQOSBestEffort} {
		if c != class {
			order = append(order, c)
		}
	}
	out := make([]string, 0, len(order))
	for _, c := range order {
		name := append(append([]string(nil), dirs[c]...), podCgroupPrefix+string(pod.UID))
		out = append(out, p.cgroupPath(name))
	}
	return out
}

// Observe measures the node and its active pods now. It returns the
// Observations with every section that could be measured; a section that
// could not has a zero Time. What is missing by the node's layout (no
// kubepods cgroup, a kubepods cgroup without a limit, no image filesystem
// reported, a runtime without ImageFsInfo, a pod without cgroup or log
// directory) is not an error; every failure to measure what should be
// there (the root cgroup, /proc, the nodefs, the runtime's answers, a
// file that cannot be read) is, and the failures are returned joined,
// with the partial Observations. The node's memory, nodefs and PIDs are
// always there, so an Observations with none of them measured always
// comes with an error. If ctx ends, its error is among them.
func (p *StatsProvider) Observe(ctx context.Context) (Observations, error) {
	var obs Observations
	var errs []error
	fail := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	version, err := p.cgroupVersion()
	fail(err)
	if err == nil {
		obs.Memory, err = p.nodeMemory(version)
		fail(err)
		obs.AllocatableMemory, err = p.allocatableMemory(version)
		fail(err)
	}

	nodeFs, rootDev, err := statFilesystem(p.cfg.RootDir)
	rootKnown := err == nil
	if err != nil {
		fail(fmt.Errorf("eviction: stats: nodefs: %w", err))
	} else {
		nodeFs.Time = p.cfg.Clock.Now()
		obs.NodeFs = nodeFs
	}
	fail(p.imageFs(ctx, &obs, rootDev, rootKnown))

	obs.PIDs, err = p.pids()
	fail(err)

	pods, podErrs := p.pods(ctx, version)
	obs.Pods = pods
	errs = append(errs, podErrs...)

	err = errors.Join(errs...)
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = errors.Join(err, ctxErr)
	}
	return obs, err
}

// cgroupVersion is the configured cgroup version, or the one detected.
func (p *StatsProvider) cgroupVersion() (int, error) {
	if p.cfg.CgroupVersion != 0 {
		return p.cfg.CgroupVersion, nil
	}
	v, err := detectCgroupVersion(p.cfg.CgroupMount)
	if err != nil {
		return 0, fmt.Errorf("eviction: stats: cgroup version at %s: %w", p.cfg.CgroupMount, err)
	}
	return v, nil
}

// memoryStats makes the MemoryStats of a cgroup read as m, against
// capacity: its limit, or the machine's memory for the root cgroup.
func (p *StatsProvider) memoryStats(m cgroupMemory, capacity uint64) MemoryStats {
	ws := m.workingSet()
	return MemoryStats{
		Time:            p.cfg.Clock.Now(),
		WorkingSetBytes: ws,
		AvailableBytes:  capacity - min(capacity, ws),
	}
}

// nodeMemory measures memory.available: the root cgroup's working set
// against the machine's memory.
func (p *StatsProvider) nodeMemory(version int) (MemoryStats, error) {
	info, err := readMeminfo(filepath.Join(p.cfg.ProcDir, "meminfo"))
	if err != nil {
		return MemoryStats{}, fmt.Errorf("eviction: stats: node memory: %w", err)
	}
	capacity, ok := info["MemTotal"]
	if !ok {
		return MemoryStats{}, fmt.Errorf("eviction: stats: node memory: no MemTotal in %s", filepath.Join(p.cfg.ProcDir, "meminfo"))
	}
	m, found, err := readCgroupMemory(p.cfg.CgroupMount, version, "/")
	if err != nil {
		return MemoryStats{}, fmt.Errorf("eviction: stats: node memory: root cgroup: %w", err)
	}
	if !found {
		if version == 1 {
			return MemoryStats{}, fmt.Errorf("eviction: stats: node memory: no memory cgroup hierarchy at %s", filepath.Join(p.cfg.CgroupMount, "memory"))
		}
		// A unified hierarchy whose root has no memory.stat: what the
		// kernel reports for the whole machine stands for it.
		m = meminfoMemory(info)
	}
	return p.memoryStats(m, capacity), nil
}

// allocatableMemory measures allocatableMemory.available: the working set
// of the pods' cgroup against its limit. Without the cgroup, or without a
// limit, it is not measured.
func (p *StatsProvider) allocatableMemory(version int) (MemoryStats, error) {
	cg := p.AllocatableCgroup()
	m, found, err := readCgroupMemory(p.cfg.CgroupMount, version, cg)
	if err != nil {
		return MemoryStats{}, fmt.Errorf("eviction: stats: allocatable memory: cgroup %s: %w", cg, err)
	}
	if !found {
		p.log.Debug("allocatable memory not measured: no pods cgroup", zap.String("cgroup", cg))
		return MemoryStats{}, nil
	}
	if unlimited(m.limit) {
		p.log.Debug("allocatable memory not measured: the pods cgroup has no memory limit", zap.String("cgroup", cg))
		return MemoryStats{}, nil
	}
	return p.memoryStats(m, m.limit), nil
}

// unlimited reports whether a memory limit is no limit: above 2^62 bytes,
// as the kubelet rounds the kernel's page-aligned maximum.
func unlimited(limit uint64) bool { return limit == 0 || limit > 1<<62 }

// imageFs measures the runtime's image and container filesystems into obs
// and works out the Dedicated* flags, as the kubelet's HasDedicatedImageFs
// and HasDedicatedContainerFs: images are on a dedicated filesystem when
// their mount point is on another device than RootDir (or when container
// writable layers are split from them); writable layers are split when the
// runtime reports a container filesystem on another device than the image
// filesystem.
func (p *StatsProvider) imageFs(ctx context.Context, obs *Observations, rootDev uint64, rootKnown bool) error {
	if p.cfg.ImageFs == nil {
		return nil
	}
	resp, err := p.cfg.ImageFs.ImageFsInfo(ctx)
	if errors.Is(err, core.ErrUnimplemented) {
		p.log.Debug("image filesystem not measured: the runtime has no ImageFsInfo", zap.Error(err))
		return nil
	}
	if err != nil {
		return fmt.Errorf("eviction: stats: image filesystem: %w", err)
	}
	images := resp.GetImageFilesystems()
	if len(images) == 0 {
		p.log.Debug("image filesystem not measured: the runtime reports none")
		return nil
	}
	// As the kubelet, only the first of each is looked at.
	imgMount := images[0].GetFsId().GetMountpoint()
	if imgMount == "" {
		return errors.New("eviction: stats: image filesystem: the runtime reports no mount point")
	}
	img, imgDev, err := statFilesystem(imgMount)
	if err != nil {
		return fmt.Errorf("eviction: stats: image filesystem: %w", err)
	}
	img.Time = p.cfg.Clock.Now()
	obs.ImageFs = img
	if containers := resp.GetContainerFilesystems(); len(containers) > 0 {
		ctrMount := containers[0].GetFsId().GetMountpoint()
		if ctrMount == "" {
			return errors.New("eviction: stats: container filesystem: the runtime reports no mount point")
		}
		ctr, ctrDev, err := statFilesystem(ctrMount)
		if err != nil {
			return fmt.Errorf("eviction: stats: container filesystem: %w", err)
		}
		ctr.Time = p.cfg.Clock.Now()
		obs.ContainerFs = ctr
		obs.DedicatedContainerFs = ctrDev != imgDev
	}
	obs.DedicatedImageFs = (rootKnown && imgDev != rootDev) || obs.DedicatedContainerFs
	return nil
}

// pids measures pid.available as the kubelet's pidlimit: the node's limit
// is the smaller of kernel.pid_max and kernel.threads-max, and the tasks
// in use are the total of /proc/loadavg's fourth field (sysinfo's process
// count when loadavg cannot be read).
func (p *StatsProvider) pids() (PIDStats, error) {
	var maxPID uint64
	var found bool
	for _, name := range []string{"pid_max", "threads-max"} {
		v, err := readUintFile(filepath.Join(p.cfg.ProcDir, "sys", "kernel", name))
		if err != nil {
			p.log.Debug("cannot read a task limit", zap.String("file", name), zap.Error(err))
			continue
		}
		if !found || v < maxPID {
			maxPID, found = v, true
		}
	}
	if !found {
		return PIDStats{}, fmt.Errorf("eviction: stats: pids: neither kernel.pid_max nor kernel.threads-max can be read below %s", p.cfg.ProcDir)
	}
	n, err := readLoadavgTasks(filepath.Join(p.cfg.ProcDir, "loadavg"))
	if err != nil {
		p.log.Debug("cannot read the tasks from loadavg, asking sysinfo", zap.Error(err))
		var serr error
		if n, serr = sysinfoProcs(); serr != nil {
			return PIDStats{}, fmt.Errorf("eviction: stats: pids: %w", errors.Join(err, serr))
		}
	}
	return PIDStats{Time: p.cfg.Clock.Now(), MaxPID: maxPID, NumProcesses: n}, nil
}
