package cpumanager

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/containerd/cgroups/v3/cgroup1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// cgroupV1 keeps a cgroup in every mounted v1 hierarchy, as the kubelet
// does: cpu, cpuacct, cpuset, memory, pids, hugetlb and the others it does
// not configure (freezer, devices, blkio, ...).
type cgroupV1 struct {
	mount      string
	subsystems []cgroup1.Subsystem
	// pageSizes are the node's huge page sizes when hugetlb is mounted.
	pageSizes []int64
}

var _ cgroupBackend = (*cgroupV1)(nil)

type cgroupV1Pather interface {
	cgroup1.Subsystem
	Path(string) string
}

// newCgroupV1 finds the hierarchies mounted below mount
// ("/sys/fs/cgroup/<controller>").
func newCgroupV1(mount string, pageSizes []int64) (*cgroupV1, error) {
	candidates := []cgroup1.Subsystem{
		cgroup1.NewNamed(mount, "systemd"),
		cgroup1.NewFreezer(mount),
		cgroup1.NewPids(mount),
		cgroup1.NewNetCls(mount),
		cgroup1.NewNetPrio(mount),
		cgroup1.NewPerfEvent(mount),
		cgroup1.NewCpuset(mount),
		cgroup1.NewCpu(mount),
		cgroup1.NewCpuacct(mount),
		cgroup1.NewMemory(mount),
		cgroup1.NewBlkio(mount),
		cgroup1.NewRdma(mount),
		cgroup1.NewDevices(mount),
	}
	if h, err := cgroup1.NewHugetlb(mount); err == nil {
		candidates = append(candidates, h)
	}
	b := &cgroupV1{mount: mount}
	hugetlb := false
	for _, s := range candidates {
		p, ok := s.(cgroupV1Pather)
		if !ok {
			continue
		}
		if _, err := os.Lstat(p.Path("/")); err != nil {
			continue
		}
		b.subsystems = append(b.subsystems, s)
		hugetlb = hugetlb || s.Name() == cgroup1.Hugetlb
	}
	if len(b.subsystems) == 0 {
		return nil, fmt.Errorf("no cgroup v1 hierarchy is mounted below %s", mount)
	}
	if hugetlb {
		b.pageSizes = pageSizes
	}
	return b, nil
}

func (b *cgroupV1) version() int { return 1 }

func (b *cgroupV1) hierarchy() ([]cgroup1.Subsystem, error) {
	return b.subsystems, nil
}

func (b *cgroupV1) exists(path string) (bool, error) {
	// The hierarchies whose cgroup must exist for the kubelet to call a
	// cgroup existing.
	checked := []cgroup1.Name{cgroup1.Cpu, cgroup1.Cpuacct, cgroup1.Cpuset, cgroup1.Memory, "systemd", cgroup1.Pids, cgroup1.Hugetlb}
	for _, s := range b.subsystems {
		if !slices.Contains(checked, s.Name()) {
			continue
		}
		ok, err := cgDirExists(s.(cgroupV1Pather).Path(path))
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func (b *cgroupV1) ensure(path string, rc *ResourceConfig) error {
	// New creates the cgroup in every hierarchy where it is missing and
	// writes the values in all of them, so it serves updates too (unlike
	// Update, it also writes hugetlb limits).
	_, err := cgroup1.New(cgroup1.StaticPath(path), v1LinuxResources(rc, b.pageSizes), cgroup1.WithHierarchy(b.hierarchy))
	return err
}

func (b *cgroupV1) load(path string) (cgroup1.Cgroup, error) {
	cg, err := cgroup1.Load(cgroup1.StaticPath(path), cgroup1.WithHierarchy(b.hierarchy))
	if errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return nil, nil
	}
	return cg, err
}

func (b *cgroupV1) pids(path string) ([]int, error) {
	cg, err := b.load(path)
	if cg == nil || err != nil {
		return nil, err
	}
	var pids []int
	for _, s := range cg.Subsystems() {
		if _, ok := s.(cgroupV1Pather); !ok {
			continue
		}
		procs, err := cg.Processes(s.Name(), true)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list processes of %s in %s: %w", path, s.Name(), err)
		}
		for _, p := range procs {
			pids = append(pids, p.Pid)
		}
	}
	slices.Sort(pids)
	return slices.Compact(pids), nil
}

func (b *cgroupV1) remove(path string) error {
	cg, err := b.load(path)
	if cg == nil || err != nil {
		return err
	}
	return cg.Delete()
}

func (b *cgroupV1) children(path string) ([]string, error) {
	var out []string
	for _, s := range b.subsystems {
		names, err := cgChildDirs(s.(cgroupV1Pather).Path(path))
		if err != nil {
			return nil, err
		}
		out = append(out, names...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// v1LinuxResources converts rc into what the cgroup1 controllers write.
// As the kubelet's cgroup manager does, zero CPU shares, quota and period
// and a zero memory limit are not written, and pids.max only when
// positive. pageSizes are the node's huge page sizes (none without a
// hugetlb hierarchy).
func v1LinuxResources(rc *ResourceConfig, pageSizes []int64) *specs.LinuxResources {
	r := &specs.LinuxResources{}
	cpu := &specs.LinuxCPU{Cpus: rc.CPUSet}
	if rc.CPUShares != nil && *rc.CPUShares != 0 {
		cpu.Shares = cgPtr(*rc.CPUShares)
	}
	if rc.CPUPeriod != nil && *rc.CPUPeriod != 0 {
		cpu.Period = cgPtr(*rc.CPUPeriod)
	}
	if rc.CPUQuota != nil && *rc.CPUQuota != 0 {
		cpu.Quota = cgPtr(*rc.CPUQuota)
	}
	if cpu.Shares != nil || cpu.Period != nil || cpu.Quota != nil || cpu.Cpus != "" {
		r.CPU = cpu
	}
	if rc.Memory != nil && *rc.Memory != 0 {
		r.Memory = &specs.LinuxMemory{Limit: cgPtr(*rc.Memory)}
	}
	if rc.PidsLimit != nil && *rc.PidsLimit > 0 {
		r.Pids = &specs.LinuxPids{Limit: cgPtr(*rc.PidsLimit)}
	}
	for _, l := range hugePageLimitList(rc.HugePageLimit, pageSizes) {
		r.HugepageLimits = append(r.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: l.size, Limit: l.limit})
	}
	return r
}
