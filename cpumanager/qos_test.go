package cpumanager_test

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/nodekit/nodekit/cpumanager"
)

func cgList(kv ...string) v1.ResourceList {
	l := v1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[v1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

func TestNodeAllocatableResources(t *testing.T) {
	capacity := cgList("cpu", "4", "memory", "8Gi", "pid", "4194304", "hugepages-2Mi", "0", "ephemeral-storage", "100Gi")
	tests := []struct {
		name string
		na   cpumanager.NodeAllocatable
		want string
	}{
		{"capacity less reserved", cpumanager.NodeAllocatable{
			Capacity:       capacity,
			SystemReserved: cgList("cpu", "500m", "memory", "1Gi"),
			KubeReserved:   cgList("cpu", "500m", "memory", "1Gi", "pid", "1000"),
		}, "cpu.shares=3072 memory=6442450944 pids=4193304 hugetlb.2MB=0"},
		{"enforcement off: capacity", cpumanager.NodeAllocatable{
			Capacity:           capacity,
			SystemReserved:     cgList("cpu", "500m", "memory", "1Gi"),
			DisableEnforcement: true,
		}, "cpu.shares=4096 memory=8589934592 pids=4194304 hugetlb.2MB=0"},
		{"reserved beyond capacity: zero", cpumanager.NodeAllocatable{
			Capacity:     cgList("cpu", "1", "memory", "1Gi"),
			KubeReserved: cgList("cpu", "2", "memory", "2Gi"),
		}, "cpu.shares=2 memory=0"},
		{"cpuset only", cpumanager.NodeAllocatable{CPUSet: "0-1"}, "cpuset=0-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.na.Resources().String(); got != tt.want {
				t.Errorf("Resources = %q\nwant        %q", got, tt.want)
			}
		})
	}
}

func TestNodeAllocatableAllocatable(t *testing.T) {
	na := cpumanager.NodeAllocatable{
		Capacity:       cgList("cpu", "2", "memory", "4Gi"),
		SystemReserved: cgList("cpu", "3"),
		KubeReserved:   cgList("memory", "1Gi", "pid", "100"),
	}
	got := na.Allocatable()
	if len(got) != 2 {
		t.Fatalf("Allocatable has %d resources, want cpu and memory only: %v", len(got), got)
	}
	if q := got[v1.ResourceCPU]; q.Sign() != 0 {
		t.Errorf("cpu = %s, want 0", q.String())
	}
	if q := got[v1.ResourceMemory]; q.Value() != 3<<30 {
		t.Errorf("memory = %s, want 3Gi", q.String())
	}
	// The inputs are untouched.
	if q := na.Capacity[v1.ResourceMemory]; q.Value() != 4<<30 {
		t.Errorf("Capacity changed to %s", q.String())
	}
}

func TestQOSResourcesForPods(t *testing.T) {
	guaranteed := cgPod("g", cgReq("1", "1Gi", "1", "1Gi"))
	burstable := cgPod("b1", cgReq("250m", "128Mi", "", ""))
	podLevel := cgWithPodLevel(cgPod("b2", cgReq("", "", "", "")), cgReq("500m", "256Mi", "", ""))
	besteffort := cgPod("be", cgReq("", "", "", ""))
	pods := []*v1.Pod{guaranteed, burstable, podLevel, besteffort, nil}
	const unbounded = "hugetlb.2MB=4611686018427387904"
	tests := []struct {
		name                    string
		pods                    []*v1.Pod
		opts                    cpumanager.QOSOptions
		top, burstable, bestEff string
	}{
		{"cgroup v1", pods, cpumanager.QOSOptions{},
			"", "cpu.shares=768", "cpu.shares=2"},
		{"no pods", nil, cpumanager.QOSOptions{},
			"", "cpu.shares=2", "cpu.shares=2"},
		{"huge pages unbounded, kubepods included", pods, cpumanager.QOSOptions{HugePageSizes: []int64{2 << 20}},
			unbounded, "cpu.shares=768 " + unbounded, "cpu.shares=2 " + unbounded},
		{"tiered memory reservation on cgroup v2", pods, cpumanager.QOSOptions{CgroupV2: true, MemoryQoS: true, TieredMemoryReservation: true},
			"memory.min=1476395008 memory.low=402653184", "cpu.shares=768 memory.low=402653184", "cpu.shares=2"},
		{"tiered memory reservation without memory QoS", pods, cpumanager.QOSOptions{CgroupV2: true, TieredMemoryReservation: true},
			"", "cpu.shares=768", "cpu.shares=2"},
		{"qos-reserved memory 50%", pods, cpumanager.QOSOptions{QOSReservedMemoryPercent: 50, AllocatableMemory: 4 << 30},
			"", "cpu.shares=768 memory=3758096384", "cpu.shares=2 memory=3556769792"},
		{"qos-reserved without allocatable memory", pods, cpumanager.QOSOptions{QOSReservedMemoryPercent: 50},
			"", "cpu.shares=768", "cpu.shares=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := cpumanager.QOSResourcesForPods(tt.pods, tt.opts)
			for _, c := range []struct{ name, got, want string }{
				{"kubepods", got.NodeAllocatable.String(), tt.top},
				{"burstable", got.Burstable.String(), tt.burstable},
				{"besteffort", got.BestEffort.String(), tt.bestEff},
			} {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
				}
			}
		})
	}
}

func TestQOSResourcesAtStart(t *testing.T) {
	const unbounded = "hugetlb.1GB=4611686018427387904"
	tests := []struct {
		name                    string
		opts                    cpumanager.QOSOptions
		top, burstable, bestEff string
	}{
		{"cgroup v1", cpumanager.QOSOptions{HugePageSizes: []int64{1 << 30}},
			"", unbounded, "cpu.shares=2 " + unbounded},
		{"cgroup v2 resets memory protection", cpumanager.QOSOptions{CgroupV2: true, MemoryQoS: true},
			"memory.min=0 memory.low=0", "memory.low=0", "cpu.shares=2"},
		{"cgroup v2 with tiered reservation keeps it", cpumanager.QOSOptions{CgroupV2: true, MemoryQoS: true, TieredMemoryReservation: true},
			"", "", "cpu.shares=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := cpumanager.QOSResourcesAtStart(tt.opts)
			for _, c := range []struct{ name, got, want string }{
				{"kubepods", got.NodeAllocatable.String(), tt.top},
				{"burstable", got.Burstable.String(), tt.burstable},
				{"besteffort", got.BestEffort.String(), tt.bestEff},
			} {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
				}
			}
		})
	}
}
