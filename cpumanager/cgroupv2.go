package cpumanager

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup2"
)

// cgroupV2 keeps a cgroup in the unified hierarchy and enables, in every
// ancestor, each controller the kubelet uses that the root offers.
type cgroupV2 struct {
	mount string
	// controllers are the kubelet's controllers (cpu, cpuset, memory,
	// hugetlb, pids) that the root cgroup offers, sorted.
	controllers []string
	pageSizes   []int64
}

var _ cgroupBackend = (*cgroupV2)(nil)

// newCgroupV2 reads the controllers the root of the unified hierarchy at
// mount offers.
func newCgroupV2(mount string, pageSizes []int64) (*cgroupV2, error) {
	root, err := cgroup2.Load("/", cgroup2.WithMountpoint(mount))
	if err != nil {
		return nil, err
	}
	offered, err := root.Controllers()
	if err != nil {
		return nil, fmt.Errorf("read the controllers of the cgroup v2 root %s: %w", mount, err)
	}
	b := &cgroupV2{mount: mount}
	// The controllers the kubelet uses on cgroup v2.
	for _, c := range []string{"cpu", "cpuset", "hugetlb", "memory", "pids"} {
		if slices.Contains(offered, c) {
			b.controllers = append(b.controllers, c)
		}
	}
	if slices.Contains(b.controllers, "hugetlb") {
		b.pageSizes = pageSizes
	}
	return b, nil
}

func (b *cgroupV2) version() int { return 2 }

func (b *cgroupV2) manager(path string) (*cgroup2.Manager, error) {
	return cgroup2.Load(cgPathOrRoot(path), cgroup2.WithMountpoint(b.mount))
}

// exists looks at the directory only: ensure enables the controllers in
// the ancestors whether the cgroup is new or not.
func (b *cgroupV2) exists(path string) (bool, error) {
	return cgDirExists(joinCgroupPath(b.mount, path))
}

func (b *cgroupV2) ensure(path string, rc *ResourceConfig) error {
	// Create the directory, enable the controllers in every ancestor,
	// then write the values.
	m, err := cgroup2.NewManager(b.mount, cgPathOrRoot(path), &cgroup2.Resources{})
	if err != nil {
		return err
	}
	if len(b.controllers) > 0 {
		if err := m.ToggleControllers(b.controllers, cgroup2.Enable); err != nil {
			return err
		}
	}
	return m.Update(v2Resources(rc, b.controllers, b.pageSizes))
}

func (b *cgroupV2) pids(path string) ([]int, error) {
	ok, err := cgDirExists(joinCgroupPath(b.mount, path))
	if err != nil || !ok {
		return nil, err
	}
	m, err := b.manager(path)
	if err != nil {
		return nil, err
	}
	procs, err := m.Procs(true)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pids := make([]int, len(procs))
	for i, p := range procs {
		pids[i] = int(p)
	}
	slices.Sort(pids)
	return slices.Compact(pids), nil
}

func (b *cgroupV2) remove(path string) error {
	ok, err := cgDirExists(joinCgroupPath(b.mount, path))
	if err != nil || !ok {
		return err
	}
	m, err := b.manager(path)
	if err != nil {
		return err
	}
	return m.Delete()
}

func (b *cgroupV2) children(path string) ([]string, error) {
	return cgChildDirs(joinCgroupPath(b.mount, path))
}

// CPUSharesToWeight converts cgroup v1 cpu.shares, in [2, 262144], to
// cgroup v2 cpu.weight, in [1, 10000], linearly, as the kubelet does for
// its own cgroups: 2 is 1, 1024 is 39, 262144 is 10000.
func CPUSharesToWeight(shares uint64) uint64 {
	switch {
	case shares >= 262144:
		return 10000
	case shares <= 2:
		return 1
	}
	return 1 + ((shares-2)*9999)/262142
}

// v2Resources converts rc into what the cgroup2 package writes, for the
// controllers the node offers (others are left out): cpu.weight from the
// shares, cpu.max ("max" for no quota, as the kubelet's zero or -1),
// cpuset.cpus, memory.max, memory.min, memory.low, memory.high, pids.max
// and hugetlb.<size>.max. pageSizes are the node's huge page sizes.
func v2Resources(rc *ResourceConfig, controllers []string, pageSizes []int64) *cgroup2.Resources {
	r := &cgroup2.Resources{}
	has := func(c string) bool { return slices.Contains(controllers, c) }
	if has("cpu") {
		var cpu cgroup2.CPU
		if rc.CPUShares != nil && *rc.CPUShares != 0 {
			cpu.Weight = cgPtr(CPUSharesToWeight(*rc.CPUShares))
		}
		cpu.Max = v2CPUMax(rc.CPUQuota, rc.CPUPeriod)
		if cpu.Weight != nil || cpu.Max != "" {
			r.CPU = &cpu
		}
	}
	if has("cpuset") && rc.CPUSet != "" {
		if r.CPU == nil {
			r.CPU = &cgroup2.CPU{}
		}
		r.CPU.Cpus = rc.CPUSet
	}
	if has("memory") {
		var mem cgroup2.Memory
		if rc.Memory != nil && *rc.Memory != 0 {
			mem.Max = cgPtr(*rc.Memory)
		}
		mem.Min, mem.Low, mem.High = rc.MemoryMin, rc.MemoryLow, rc.MemoryHigh
		if mem != (cgroup2.Memory{}) {
			r.Memory = &mem
		}
	}
	if has("pids") && rc.PidsLimit != nil && *rc.PidsLimit > 0 {
		r.Pids = &cgroup2.Pids{Max: *rc.PidsLimit}
	}
	if has("hugetlb") {
		if limits := hugePageLimitList(rc.HugePageLimit, pageSizes); len(limits) > 0 {
			tlb := make(cgroup2.HugeTlb, len(limits))
			for i, l := range limits {
				tlb[i] = cgroup2.HugeTlbEntry{HugePageSize: l.size, Limit: l.limit}
			}
			r.HugeTlb = &tlb
		}
	}
	return r
}

// v2CPUMax is cpu.max: "<quota> <period>", with "max" for no quota; empty
// when neither is set. Without a period only the quota is written.
func v2CPUMax(quota *int64, period *uint64) cgroup2.CPUMax {
	q := int64(0)
	if quota != nil {
		q = *quota
	}
	p := uint64(0)
	if period != nil {
		p = *period
	}
	if q == 0 && p == 0 {
		return ""
	}
	s := "max"
	if q > 0 {
		s = strconv.FormatInt(q, 10)
	}
	if p != 0 {
		s += " " + strconv.FormatUint(p, 10)
	}
	return cgroup2.CPUMax(s)
}

// cgPathOrRoot makes a cgroupfs path acceptable to cgroup2, which wants
// it absolute.
func cgPathOrRoot(path string) string {
	if !strings.HasPrefix(path, "/") {
		return "/" + path
	}
	return path
}
