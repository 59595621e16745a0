package cpumanager

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/nodekit/nodekit/crispec"
)

// PIDResource is the node's process-ID capacity in NodeAllocatable's
// lists, as the kubelet names it ("pid"). It becomes pids.max of kubepods.
const PIDResource v1.ResourceName = "pid"

// UnboundedHugePages is the hugetlb limit the kubelet gives the QoS
// cgroups: 1<<62 bytes, in effect no limit.
const UnboundedHugePages int64 = 1 << 62

// NodeAllocatable describes what the kubepods cgroup may use: the node's
// capacity less what the operator reserved for the system and for the
// kubelet and the runtime.
type NodeAllocatable struct {
	// Capacity of the node: cpu, memory, hugepages-<size> and PIDResource
	// (the kernel's pid_max).
	Capacity v1.ResourceList
	// SystemReserved and KubeReserved are subtracted from Capacity
	// (--system-reserved, --kube-reserved).
	SystemReserved v1.ResourceList
	KubeReserved   v1.ResourceList
	// DisableEnforcement gives kubepods the whole capacity instead of the
	// allocatable amount: the kubelet's enforceNodeAllocatable without
	// "pods". kubepods still gets CPU shares and limits from Capacity.
	DisableEnforcement bool
	// CPUSet is written to kubepods' cpuset.cpus when set. The kubelet
	// writes every CPU of the node under the none CPU manager policy and
	// leaves it to the static policy otherwise. On cgroup v1 the kernel
	// refuses to shrink it below a child's cpuset.
	CPUSet string
}

// Allocatable is Capacity less SystemReserved and KubeReserved, never
// below zero, for every resource of Capacity.
func (na NodeAllocatable) Allocatable() v1.ResourceList {
	out := make(v1.ResourceList, len(na.Capacity))
	for name, q := range na.Capacity {
		v := q.DeepCopy()
		if r, ok := na.SystemReserved[name]; ok {
			v.Sub(r)
		}
		if r, ok := na.KubeReserved[name]; ok {
			v.Sub(r)
		}
		if v.Sign() < 0 {
			v = *resource.NewQuantity(0, v.Format)
		}
		out[name] = v
	}
	return out
}

// Resources are kubepods' values: CPU shares from the CPU, the memory
// limit, pids.max and huge page limits from Allocatable (or Capacity when
// enforcement is off), and CPUSet. Resources a list lacks are left alone.
func (na NodeAllocatable) Resources() ResourceConfig {
	list := na.Capacity
	if !na.DisableEnforcement {
		list = na.Allocatable()
	}
	rc := ResourceConfig{CPUSet: na.CPUSet}
	if list == nil {
		return rc
	}
	if q, ok := list[v1.ResourceCPU]; ok {
		rc.CPUShares = cgPtr(uint64(crispec.MilliCPUToShares(q.MilliValue())))
	}
	if q, ok := list[v1.ResourceMemory]; ok {
		rc.Memory = cgPtr(q.Value())
	}
	if q, ok := list[PIDResource]; ok {
		rc.PidsLimit = cgPtr(q.Value())
	}
	rc.HugePageLimit = HugePageLimits(list)
	return rc
}

// QOSOptions are the kubelet settings the QoS cgroups' values depend on
// besides the active pods.
type QOSOptions struct {
	// CgroupV2 says the node runs the unified hierarchy.
	CgroupV2 bool
	// MemoryQoS and TieredMemoryReservation as in PodResourceOptions.
	// Together, on cgroup v2, they protect the pods' memory requests at
	// the QoS level: kubepods gets memory.min (Guaranteed and Burstable
	// requests) and memory.low (Burstable requests), burstable memory.low.
	// Otherwise, on cgroup v2, those are reset to zero.
	MemoryQoS               bool
	TieredMemoryReservation bool
	// QOSReservedMemoryPercent (the kubelet's alpha --qos-reserved=memory=N%)
	// caps the lower QoS classes so that a share of the higher classes'
	// memory requests stays free for them: burstable's memory limit is
	// the allocatable memory less N% of the Guaranteed requests, and
	// besteffort's that less N% of the Burstable requests. Zero is off.
	QOSReservedMemoryPercent int64
	// AllocatableMemory is the node's allocatable memory in bytes, needed
	// by QOSReservedMemoryPercent; zero leaves the limits unset.
	AllocatableMemory int64
	// HugePageSizes are the huge page sizes of the node, in bytes. Every
	// QoS cgroup gets UnboundedHugePages for each.
	HugePageSizes []int64
}

// QOSResources are the values of the three cgroups above the pods.
type QOSResources struct {
	// NodeAllocatable is kubepods, where Guaranteed pods live.
	NodeAllocatable ResourceConfig
	Burstable       ResourceConfig
	BestEffort      ResourceConfig
}

// QOSResourcesAtStart are the values the kubelet writes to the QoS cgroups
// when it starts, before it looks at pods: besteffort gets the minimum CPU
// shares, burstable and besteffort unbounded huge pages, and on cgroup v2
// without tiered memory reservation the memory protection is reset.
// kubepods' own values come from NodeAllocatable.Resources, to which
// NodeAllocatable here adds the memory resets.
func QOSResourcesAtStart(opts QOSOptions) QOSResources {
	var out QOSResources
	out.BestEffort.CPUShares = cgPtr(uint64(crispec.MinShares))
	out.Burstable.HugePageLimit = unboundedHugePages(opts.HugePageSizes)
	out.BestEffort.HugePageLimit = unboundedHugePages(opts.HugePageSizes)
	if opts.CgroupV2 && !(opts.MemoryQoS && opts.TieredMemoryReservation) {
		out.NodeAllocatable.MemoryMin = cgPtr(int64(0))
		out.NodeAllocatable.MemoryLow = cgPtr(int64(0))
		out.Burstable.MemoryLow = cgPtr(int64(0))
	}
	return out
}

// QOSResourcesForPods are the values the kubelet writes to the QoS cgroups
// every minute from the active pods (those admitted and not yet
// terminated):
//
//   - burstable's CPU shares from the sum of the Burstable pods' CPU
//     requests (crispec.MinShares when there are none), besteffort's
//     crispec.MinShares;
//   - unbounded huge pages on all three, kubepods included;
//   - with memory QoS and tiered reservation on cgroup v2, the memory
//     protection described at QOSOptions;
//   - with QOSReservedMemoryPercent, the memory limits described there.
func QOSResourcesForPods(activePods []*v1.Pod, opts QOSOptions) QOSResources {
	var burstableMilliCPU, guaranteedMemory, burstableMemory int64
	for _, pod := range activePods {
		if pod == nil {
			continue
		}
		class := crispec.PodQOS(pod)
		if class == v1.PodQOSBestEffort {
			continue
		}
		requests := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
		memory := cgQuantity(requests, v1.ResourceMemory)
		if class == v1.PodQOSGuaranteed {
			guaranteedMemory += memory.Value()
			continue
		}
		cpu := cgQuantity(requests, v1.ResourceCPU)
		burstableMilliCPU += cpu.MilliValue()
		burstableMemory += memory.Value()
	}

	var out QOSResources
	out.Burstable.CPUShares = cgPtr(uint64(crispec.MilliCPUToShares(burstableMilliCPU)))
	out.BestEffort.CPUShares = cgPtr(uint64(crispec.MinShares))
	// The kubelet lists kubepods among the QoS cgroups here too, so its
	// huge page limits from node allocatable give way to unbounded ones.
	out.NodeAllocatable.HugePageLimit = unboundedHugePages(opts.HugePageSizes)
	out.Burstable.HugePageLimit = unboundedHugePages(opts.HugePageSizes)
	out.BestEffort.HugePageLimit = unboundedHugePages(opts.HugePageSizes)

	if opts.CgroupV2 && opts.MemoryQoS && opts.TieredMemoryReservation {
		out.NodeAllocatable.MemoryMin = cgPtr(guaranteedMemory + burstableMemory)
		out.NodeAllocatable.MemoryLow = cgPtr(burstableMemory)
		out.Burstable.MemoryLow = cgPtr(burstableMemory)
	}

	if pct := opts.QOSReservedMemoryPercent; pct > 0 && opts.AllocatableMemory > 0 {
		burstableLimit := opts.AllocatableMemory - guaranteedMemory*pct/100
		bestEffortLimit := burstableLimit - burstableMemory*pct/100
		out.Burstable.Memory = &burstableLimit
		out.BestEffort.Memory = &bestEffortLimit
	}
	return out
}

// unboundedHugePages is nil, leaving hugetlb alone, on a node without huge
// pages.
func unboundedHugePages(sizes []int64) map[int64]int64 {
	if len(sizes) == 0 {
		return nil
	}
	out := make(map[int64]int64, len(sizes))
	for _, size := range sizes {
		out[size] = UnboundedHugePages
	}
	return out
}
