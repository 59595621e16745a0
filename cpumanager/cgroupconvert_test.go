package cpumanager

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestCPUSharesToWeight(t *testing.T) {
	for _, tt := range []struct{ shares, weight uint64 }{
		{0, 1}, {2, 1}, {3, 1}, {512, 20}, {1024, 39}, {2048, 79}, {102400, 3906}, {262143, 9999}, {262144, 10000}, {1 << 20, 10000},
	} {
		if got := CPUSharesToWeight(tt.shares); got != tt.weight {
			t.Errorf("CPUSharesToWeight(%d) = %d, want %d", tt.shares, got, tt.weight)
		}
	}
}

func TestHugePageSizeName(t *testing.T) {
	for _, tt := range []struct {
		bytes int64
		name  string
	}{
		{2 << 20, "2MB"}, {1 << 30, "1GB"}, {64 << 10, "64KB"}, {1000, "1000B"}, {32 << 20, "32MB"}, {16 << 30, "16GB"},
	} {
		if got := hugePageSizeName(tt.bytes); got != tt.name {
			t.Errorf("hugePageSizeName(%d) = %q, want %q", tt.bytes, got, tt.name)
		}
	}
}

func TestDetectHugePageSizes(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"hugepages-2048kB", "hugepages-1048576kB", "hugepages-xkB", "other"} {
		if err := os.Mkdir(filepath.Join(dir, n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got, err := detectHugePageSizes(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{2 << 20, 1 << 30}; !slices.Equal(got, want) {
		t.Errorf("detectHugePageSizes = %v, want %v", got, want)
	}
	got, err = detectHugePageSizes(filepath.Join(dir, "missing"))
	if err != nil || got != nil {
		t.Errorf("detectHugePageSizes(missing) = %v, %v; want none", got, err)
	}
}

func TestV2CPUMax(t *testing.T) {
	q := func(v int64) *int64 { return &v }
	p := func(v uint64) *uint64 { return &v }
	for _, tt := range []struct {
		quota  *int64
		period *uint64
		want   cgroup2.CPUMax
	}{
		{nil, nil, ""},
		{q(50000), p(100000), "50000 100000"},
		{q(-1), p(100000), "max 100000"},
		{q(0), p(50000), "max 50000"},
		{q(20000), nil, "20000"},
	} {
		if got := v2CPUMax(tt.quota, tt.period); got != tt.want {
			t.Errorf("v2CPUMax(%v, %v) = %q, want %q", tt.quota, tt.period, got, tt.want)
		}
	}
}

// The values the cgroup2 package is given, per controller, for what
// ResourceConfigForPod and the QoS computations produce.
func TestV2Resources(t *testing.T) {
	all := []string{"cpu", "cpuset", "hugetlb", "memory", "pids"}
	pageSizes := []int64{2 << 20, 1 << 30}
	guaranteed := ResourceConfig{
		CPUShares: cgPtr(uint64(512)), CPUQuota: cgPtr(int64(50000)), CPUPeriod: cgPtr(uint64(100000)),
		Memory: cgPtr(int64(256 << 20)), PidsLimit: cgPtr(int64(1024)),
		HugePageLimit: map[int64]int64{2 << 20: 4 << 20},
		MemoryMin:     cgPtr(int64(256 << 20)),
	}
	r := v2Resources(&guaranteed, all, pageSizes)
	if r.CPU == nil || r.CPU.Weight == nil || *r.CPU.Weight != 20 || r.CPU.Max != "50000 100000" || r.CPU.Cpus != "" {
		t.Errorf("CPU = %+v, want weight 20, max 50000 100000", r.CPU)
	}
	if r.Memory == nil || *r.Memory.Max != 256<<20 || *r.Memory.Min != 256<<20 || r.Memory.Low != nil || r.Memory.High != nil {
		t.Errorf("Memory = %+v, want max and min 256Mi", r.Memory)
	}
	if r.Pids == nil || r.Pids.Max != 1024 {
		t.Errorf("Pids = %+v, want 1024", r.Pids)
	}
	wantTLB := cgroup2.HugeTlb{{HugePageSize: "2MB", Limit: 4 << 20}, {HugePageSize: "1GB", Limit: 0}}
	if r.HugeTlb == nil || !slices.Equal(*r.HugeTlb, wantTLB) {
		t.Errorf("HugeTlb = %v, want %v", r.HugeTlb, wantTLB)
	}
	if got := r.EnabledControllers(); !slices.Equal(got, []string{"cpu", "memory", "pids", "hugetlb"}) {
		t.Errorf("EnabledControllers = %v", got)
	}

	// No quota: cpu.max "max <period>".
	noQuota := ResourceConfig{CPUShares: cgPtr(uint64(2)), CPUQuota: cgPtr(int64(-1)), CPUPeriod: cgPtr(uint64(100000))}
	if r := v2Resources(&noQuota, all, pageSizes); r.CPU == nil || *r.CPU.Weight != 1 || r.CPU.Max != "max 100000" {
		t.Errorf("no quota: CPU = %+v", r.CPU)
	}

	// A node without the memory and hugetlb controllers gets no memory or
	// hugetlb values; a BestEffort-like config no memory at all.
	r = v2Resources(&guaranteed, []string{"cpu", "pids"}, pageSizes)
	if r.Memory != nil || r.HugeTlb != nil || r.CPU == nil || r.Pids == nil {
		t.Errorf("cpu and pids only: %+v", r)
	}
	be := ResourceConfig{CPUShares: cgPtr(uint64(2))}
	if r := v2Resources(&be, all, pageSizes); r.Memory != nil || r.Pids != nil || r.HugeTlb != nil {
		t.Errorf("shares only: %+v", r)
	}

	// kubepods: cpuset, and the memory protection resets.
	top := ResourceConfig{CPUSet: "0-1", MemoryMin: cgPtr(int64(0)), MemoryLow: cgPtr(int64(0))}
	r = v2Resources(&top, all, pageSizes)
	if r.CPU == nil || r.CPU.Cpus != "0-1" || r.CPU.Weight != nil || r.CPU.Max != "" {
		t.Errorf("cpuset: CPU = %+v", r.CPU)
	}
	if r.Memory == nil || *r.Memory.Min != 0 || *r.Memory.Low != 0 || r.Memory.Max != nil {
		t.Errorf("resets: Memory = %+v", r.Memory)
	}
	if r := v2Resources(&top, []string{"cpu", "memory"}, nil); r.CPU != nil {
		t.Errorf("cpuset without the cpuset controller: CPU = %+v", r.CPU)
	}
}

func TestV1LinuxResources(t *testing.T) {
	pageSizes := []int64{2 << 20}
	guaranteed := ResourceConfig{
		CPUShares: cgPtr(uint64(512)), CPUQuota: cgPtr(int64(50000)), CPUPeriod: cgPtr(uint64(100000)),
		Memory: cgPtr(int64(256 << 20)), PidsLimit: cgPtr(int64(1024)),
		HugePageLimit: map[int64]int64{1 << 30: 1 << 30},
		MemoryMin:     cgPtr(int64(1)), MemoryHigh: cgPtr(int64(1)),
	}
	r := v1LinuxResources(&guaranteed, pageSizes)
	if r.CPU == nil || *r.CPU.Shares != 512 || *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 {
		t.Errorf("CPU = %+v", r.CPU)
	}
	if r.Memory == nil || *r.Memory.Limit != 256<<20 || r.Memory.Reservation != nil || r.Memory.Swap != nil {
		t.Errorf("Memory = %+v, want the limit only (memory.min and memory.high are cgroup v2)", r.Memory)
	}
	if r.Pids == nil || *r.Pids.Limit != 1024 {
		t.Errorf("Pids = %+v", r.Pids)
	}
	// The node has 2MB pages only: it gets 0; 1GB has no file to write.
	if want := []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 0}}; !slices.Equal(r.HugepageLimits, want) {
		t.Errorf("HugepageLimits = %v, want %v", r.HugepageLimits, want)
	}

	// Zero values are not written, -1 is.
	zero := ResourceConfig{CPUShares: cgPtr(uint64(0)), CPUQuota: cgPtr(int64(0)), CPUPeriod: cgPtr(uint64(0)), Memory: cgPtr(int64(0)), PidsLimit: cgPtr(int64(0))}
	if r := v1LinuxResources(&zero, pageSizes); r.CPU != nil || r.Memory != nil || r.Pids != nil || r.HugepageLimits != nil {
		t.Errorf("zeros: %+v", r)
	}
	noQuota := ResourceConfig{CPUQuota: cgPtr(int64(-1)), CPUPeriod: cgPtr(uint64(100000))}
	if r := v1LinuxResources(&noQuota, nil); r.CPU == nil || *r.CPU.Quota != -1 {
		t.Errorf("no quota: CPU = %+v", r.CPU)
	}
	if r := v1LinuxResources(&ResourceConfig{CPUSet: "0"}, nil); r.CPU == nil || r.CPU.Cpus != "0" || r.CPU.Shares != nil {
		t.Errorf("cpuset: CPU = %+v", r.CPU)
	}
}
