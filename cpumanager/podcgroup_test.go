package cpumanager_test

import (
	"os"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/nodekit/nodekit/cpumanager"
)

func cgWithInit(p *v1.Pod, sidecar bool, r v1.ResourceRequirements) *v1.Pod {
	c := v1.Container{Name: "init", Resources: r}
	if sidecar {
		always := v1.ContainerRestartPolicyAlways
		c.RestartPolicy = &always
	}
	p.Spec.InitContainers = append(p.Spec.InitContainers, c)
	return p
}

func cgWithOverhead(p *v1.Pod, cpu, mem string) *v1.Pod {
	p.Spec.Overhead = v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu), v1.ResourceMemory: resource.MustParse(mem)}
	return p
}

func cgWithPodLevel(p *v1.Pod, r v1.ResourceRequirements) *v1.Pod {
	p.Spec.Resources = &r
	return p
}

func cgWithHugePages(r v1.ResourceRequirements, name, q string) v1.ResourceRequirements {
	r.Requests[v1.ResourceName(name)] = resource.MustParse(q)
	r.Limits[v1.ResourceName(name)] = resource.MustParse(q)
	return r
}

func TestResourceConfigForPod(t *testing.T) {
	guaranteed := func() *v1.Pod { return cgPod(cgTestUID, cgReq("500m", "256Mi", "500m", "256Mi")) }
	tests := []struct {
		name string
		pod  *v1.Pod
		opts cpumanager.PodResourceOptions
		want string
	}{
		{"guaranteed", guaranteed(), cpumanager.PodResourceOptions{},
			"cpu.shares=512 cpu.quota=50000 cpu.period=100000 memory=268435456"},
		{"burstable with every limit", cgPod(cgTestUID, cgReq("100m", "64Mi", "200m", "128Mi"), cgReq("100m", "", "300m", "128Mi")), cpumanager.PodResourceOptions{},
			"cpu.shares=204 cpu.quota=50000 cpu.period=100000 memory=268435456"},
		{"burstable with a container without a CPU limit: no quota", cgPod(cgTestUID, cgReq("100m", "", "200m", "128Mi"), cgReq("100m", "64Mi", "", "128Mi")), cpumanager.PodResourceOptions{},
			"cpu.shares=204 memory=268435456"},
		{"burstable with a container without a memory limit: no memory limit", cgPod(cgTestUID, cgReq("100m", "", "200m", "128Mi"), cgReq("100m", "64Mi", "300m", "")), cpumanager.PodResourceOptions{},
			"cpu.shares=204 cpu.quota=50000 cpu.period=100000"},
		{"burstable with requests only", cgPod(cgTestUID, cgReq("250m", "64Mi", "", "")), cpumanager.PodResourceOptions{},
			"cpu.shares=256"},
		{"limits without requests (not defaulted by the API server) request nothing", cgPod(cgTestUID, cgReq("", "", "", "128Mi"), cgReq("", "", "300m", "")), cpumanager.PodResourceOptions{},
			"cpu.shares=2"},
		{"besteffort", cgPod(cgTestUID, cgReq("", "", "", "")), cpumanager.PodResourceOptions{},
			"cpu.shares=2"},
		{"no containers", cgPod(cgTestUID), cpumanager.PodResourceOptions{},
			"cpu.shares=2"},
		{"init container larger than the sum", cgWithInit(guaranteed(), false, cgReq("2", "1Gi", "2", "1Gi")), cpumanager.PodResourceOptions{},
			"cpu.shares=2048 cpu.quota=200000 cpu.period=100000 memory=1073741824"},
		{"init container smaller than the sum", cgWithInit(guaranteed(), false, cgReq("100m", "64Mi", "100m", "64Mi")), cpumanager.PodResourceOptions{},
			"cpu.shares=512 cpu.quota=50000 cpu.period=100000 memory=268435456"},
		{"sidecar adds up", cgWithInit(guaranteed(), true, cgReq("100m", "64Mi", "100m", "64Mi")), cpumanager.PodResourceOptions{},
			"cpu.shares=614 cpu.quota=60000 cpu.period=100000 memory=335544320"},
		{"overhead adds up", cgWithOverhead(guaranteed(), "100m", "32Mi"), cpumanager.PodResourceOptions{},
			"cpu.shares=614 cpu.quota=60000 cpu.period=100000 memory=301989888"},
		{"pod-level resources stand in for container limits", cgWithPodLevel(cgPod(cgTestUID, cgReq("", "", "", "")), cgReq("1", "512Mi", "2", "1Gi")), cpumanager.PodResourceOptions{},
			"cpu.shares=1024 cpu.quota=200000 cpu.period=100000 memory=1073741824"},
		{"CFS quota disabled", guaranteed(), cpumanager.PodResourceOptions{DisableCPUQuota: true},
			"cpu.shares=512 cpu.quota=-1 cpu.period=100000 memory=268435456"},
		{"CFS quota disabled, Burstable without CPU limits", cgPod(cgTestUID, cgReq("250m", "", "", "")), cpumanager.PodResourceOptions{DisableCPUQuota: true},
			"cpu.shares=256"},
		{"custom period", guaranteed(), cpumanager.PodResourceOptions{CPUPeriod: 50000},
			"cpu.shares=512 cpu.quota=25000 cpu.period=50000 memory=268435456"},
		{"quota at least 1ms", cgPod(cgTestUID, cgReq("5m", "64Mi", "5m", "64Mi")), cpumanager.PodResourceOptions{},
			"cpu.shares=5 cpu.quota=1000 cpu.period=100000 memory=67108864"},
		{"shares at least 2", cgPod(cgTestUID, cgReq("1m", "64Mi", "1m", "64Mi")), cpumanager.PodResourceOptions{},
			"cpu.shares=2 cpu.quota=1000 cpu.period=100000 memory=67108864"},
		{"huge pages", cgPod(cgTestUID, cgWithHugePages(cgReq("1", "1Gi", "1", "1Gi"), "hugepages-2Mi", "4Mi")), cpumanager.PodResourceOptions{},
			"cpu.shares=1024 cpu.quota=100000 cpu.period=100000 memory=1073741824 hugetlb.2MB=4194304"},
		{"pids limit", cgPod(cgTestUID, cgReq("", "", "", "")), cpumanager.PodResourceOptions{PidsLimit: 1024},
			"cpu.shares=2 pids=1024"},
		{"tiered reservation, Guaranteed: memory.min", guaranteed(), cpumanager.PodResourceOptions{MemoryQoS: true, TieredMemoryReservation: true},
			"cpu.shares=512 cpu.quota=50000 cpu.period=100000 memory=268435456 memory.min=268435456"},
		{"tiered reservation, Burstable: memory.low", cgPod(cgTestUID, cgReq("250m", "64Mi", "", "")), cpumanager.PodResourceOptions{MemoryQoS: true, TieredMemoryReservation: true},
			"cpu.shares=256 memory.low=67108864"},
		{"tiered reservation, BestEffort: nothing", cgPod(cgTestUID, cgReq("", "", "", "")), cpumanager.PodResourceOptions{MemoryQoS: true, TieredMemoryReservation: true},
			"cpu.shares=2"},
		{"tiered reservation without memory QoS (cgroup v1)", guaranteed(), cpumanager.PodResourceOptions{TieredMemoryReservation: true},
			"cpu.shares=512 cpu.quota=50000 cpu.period=100000 memory=268435456"},
		{"throttling factor without pod-level resources: no memory.high", cgPod(cgTestUID, cgReq("250m", "64Mi", "", "128Mi")), cpumanager.PodResourceOptions{MemoryQoS: true, MemoryThrottlingFactor: 0.9},
			"cpu.shares=256 memory=134217728"},
		{"throttling factor, request equal to limit: no memory.high", cgWithPodLevel(cgPod(cgTestUID, cgReq("", "", "", "")), cgReq("1", "1Gi", "1", "1Gi")), cpumanager.PodResourceOptions{MemoryQoS: true, MemoryThrottlingFactor: 0.9},
			"cpu.shares=1024 cpu.quota=100000 cpu.period=100000 memory=1073741824"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := cpumanager.ResourceConfigForPod(tt.pod, tt.opts)
			if got := rc.String(); got != tt.want {
				t.Errorf("ResourceConfigForPod = %q\nwant                   %q", got, tt.want)
			}
			if rc.HugePageLimit == nil {
				t.Error("HugePageLimit is nil: the pod's cgroup would keep the parent's huge page limits")
			}
		})
	}
}

func TestResourceConfigForPodMemoryHigh(t *testing.T) {
	if os.Getpagesize() != 4096 {
		t.Skipf("the expected value assumes 4KiB pages, not %d", os.Getpagesize())
	}
	pod := cgWithPodLevel(cgPod(cgTestUID, cgReq("", "", "", "")), cgReq("1", "512Mi", "2", "1Gi"))
	rc := cpumanager.ResourceConfigForPod(pod, cpumanager.PodResourceOptions{MemoryQoS: true, MemoryThrottlingFactor: 0.9})
	// 512Mi + 0.9 × 512Mi, rounded down to a page.
	want := "cpu.shares=1024 cpu.quota=200000 cpu.period=100000 memory=1073741824 memory.high=1020051456"
	if got := rc.String(); got != want {
		t.Errorf("ResourceConfigForPod = %q\nwant                   %q", got, want)
	}
}

func TestHugePageLimits(t *testing.T) {
	got := cpumanager.HugePageLimits(v1.ResourceList{
		"hugepages-2Mi":     resource.MustParse("4Mi"),
		"hugepages-2097152": resource.MustParse("2Mi"), // the same size spelt in bytes
		"hugepages-1Gi":     resource.MustParse("1Gi"),
		"hugepages-bogus":   resource.MustParse("1"),
		v1.ResourceCPU:      resource.MustParse("1"),
	})
	want := map[int64]int64{2 << 20: 6 << 20, 1 << 30: 1 << 30}
	if len(got) != len(want) {
		t.Fatalf("HugePageLimits = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("HugePageLimits[%d] = %d, want %d", k, got[k], v)
		}
	}
}
