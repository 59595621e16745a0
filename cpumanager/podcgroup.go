package cpumanager

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/nodekit/nodekit/crispec"
)

// ResourceConfig is what the kubelet writes to one cgroup. A nil pointer
// (or empty string) leaves the setting as it is; the cgroup version decides
// which file carries it.
type ResourceConfig struct {
	// CPUShares is cpu.shares on cgroup v1 and is converted to cpu.weight
	// on cgroup v2 (see CPUSharesToWeight).
	CPUShares *uint64
	// CPUQuota is the CFS quota in microseconds per CPUPeriod; -1 is no
	// quota. cpu.cfs_quota_us on v1, the first field of cpu.max on v2.
	CPUQuota *int64
	// CPUPeriod is the CFS period in microseconds: cpu.cfs_period_us on
	// v1, the second field of cpu.max on v2.
	CPUPeriod *uint64
	// CPUSet is cpuset.cpus, such as "0-3".
	CPUSet string
	// Memory is the memory limit in bytes: memory.limit_in_bytes on v1,
	// memory.max on v2.
	Memory *int64
	// PidsLimit is pids.max.
	PidsLimit *int64
	// HugePageLimit maps a huge page size in bytes to a limit in bytes.
	// nil leaves hugetlb alone; otherwise every page size of the node gets
	// a limit, zero for the sizes missing here, as the kubelet does.
	HugePageLimit map[int64]int64
	// MemoryMin, MemoryLow and MemoryHigh are memory.min, memory.low and
	// memory.high, written on cgroup v2 only (memory QoS).
	MemoryMin  *int64
	MemoryLow  *int64
	MemoryHigh *int64
}

// PodResourceOptions are the kubelet settings the pod cgroup's values
// depend on besides the pod.
type PodResourceOptions struct {
	// DisableCPUQuota lifts the CFS quota (cpu quota -1): the kubelet's
	// cpuCFSQuota: false, and always for a pod with exclusive CPUs.
	DisableCPUQuota bool
	// CPUPeriod is the CFS period in microseconds (the kubelet's
	// cpuCFSQuotaPeriod). Zero means crispec.QuotaPeriod (100ms).
	CPUPeriod uint64
	// MemoryQoS says the node runs cgroup v2 with the kubelet's MemoryQoS
	// feature on (the default on v2). Without it the options below have
	// no effect.
	MemoryQoS bool
	// TieredMemoryReservation (memoryReservationPolicy: TieredReservation)
	// protects the pod's memory request: memory.min for Guaranteed pods,
	// memory.low for Burstable ones.
	TieredMemoryReservation bool
	// MemoryThrottlingFactor, in (0, 1], sets memory.high of a pod with
	// pod-level resources and a memory limit to request + factor × (limit
	// − request), rounded down to whole pages. Zero (the kubelet's
	// default) sets none.
	MemoryThrottlingFactor float64
	// PidsLimit is the kubelet's podPidsLimit; zero or less sets none.
	PidsLimit int64
}

// ResourceConfigForPod computes the values of a pod's cgroup as the kubelet
// does when it creates it. Requests and limits are the pod's effective
// ones (the larger of the largest init container and the sum of the
// regular and sidecar containers, plus the pod overhead; pod-level
// resources when the pod sets them):
//
//   - cpu.shares from the CPU request, for every pod but BestEffort ones,
//     which get crispec.MinShares;
//   - the CFS quota and period from the CPU limit, for Guaranteed pods and
//     for Burstable pods in which every container (or the pod itself) has a
//     CPU limit;
//   - the memory limit, under the same rule with memory limits;
//   - huge page limits from the hugepages-<size> requests;
//   - pids.max from PidsLimit;
//   - on cgroup v2 with memory QoS, memory.min or memory.low and
//     memory.high as the options say.
func ResourceConfigForPod(pod *v1.Pod, opts PodResourceOptions) ResourceConfig {
	period := opts.CPUPeriod
	if period == 0 {
		period = crispec.QuotaPeriod
	}
	requests := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	limits := resourcehelper.PodLimits(pod, resourcehelper.PodResourcesOptions{})

	cpuLimitsDeclared, memoryLimitsDeclared := true, true
	for _, cs := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			if cs[i].Resources.Limits.Cpu().IsZero() {
				cpuLimitsDeclared = false
			}
			if cs[i].Resources.Limits.Memory().IsZero() {
				memoryLimitsDeclared = false
			}
		}
	}
	if resourcehelper.IsPodLevelResourcesSet(pod) {
		if !pod.Spec.Resources.Limits.Cpu().IsZero() {
			cpuLimitsDeclared = true
		}
		if !pod.Spec.Resources.Limits.Memory().IsZero() {
			memoryLimitsDeclared = true
		}
	}

	cpuRequest := cgQuantity(requests, v1.ResourceCPU)
	cpuLimit := cgQuantity(limits, v1.ResourceCPU)
	memoryLimitQ := cgQuantity(limits, v1.ResourceMemory)
	memoryLimit := memoryLimitQ.Value()
	shares := uint64(crispec.MilliCPUToShares(cpuRequest.MilliValue()))
	quota := crispec.MilliCPUToQuota(cpuLimit.MilliValue(), int64(period))
	if opts.DisableCPUQuota {
		quota = -1
	}

	var rc ResourceConfig
	class := crispec.PodQOS(pod)
	switch class {
	case v1.PodQOSGuaranteed:
		rc.CPUShares, rc.CPUQuota, rc.CPUPeriod, rc.Memory = &shares, &quota, &period, &memoryLimit
	case v1.PodQOSBurstable:
		rc.CPUShares = &shares
		if cpuLimitsDeclared {
			rc.CPUQuota, rc.CPUPeriod = &quota, &period
		}
		if memoryLimitsDeclared {
			rc.Memory = &memoryLimit
		}
	default:
		rc.CPUShares = cgPtr(uint64(crispec.MinShares))
	}
	rc.HugePageLimit = HugePageLimits(requests)
	if opts.PidsLimit > 0 {
		rc.PidsLimit = cgPtr(opts.PidsLimit)
	}

	if opts.MemoryQoS {
		memoryRequestQ := cgQuantity(requests, v1.ResourceMemory)
		memoryRequest := memoryRequestQ.Value()
		if opts.TieredMemoryReservation && memoryRequest > 0 {
			if class == v1.PodQOSGuaranteed {
				rc.MemoryMin = cgPtr(memoryRequest)
			} else {
				rc.MemoryLow = cgPtr(memoryRequest)
			}
		}
		if opts.MemoryThrottlingFactor > 0 && resourcehelper.IsPodLevelResourcesSet(pod) && memoryLimitsDeclared {
			if high, ok := podMemoryHigh(memoryRequest, memoryLimit, opts.MemoryThrottlingFactor); ok {
				rc.MemoryHigh = &high
			}
		}
	}
	return rc
}

// podMemoryHigh is request + factor × (limit − request), rounded down to
// whole pages, when that throttles anything.
func podMemoryHigh(request, limit int64, factor float64) (int64, bool) {
	if limit == 0 || (request == limit && request != 0) {
		return 0, false
	}
	page := int64(os.Getpagesize())
	high := int64(math.Floor(float64(request)+(float64(limit)-float64(request))*factor)/float64(page)) * page
	return high, high > 0 && high > request
}

// HugePageLimits collects the hugepages-<size> entries of a resource list
// into a map from the page size in bytes to the amount in bytes. Two
// spellings of one size add up; malformed names are skipped.
func HugePageLimits(list v1.ResourceList) map[int64]int64 {
	out := map[int64]int64{}
	for name, q := range list {
		size, ok := strings.CutPrefix(string(name), v1.ResourceHugePagesPrefix)
		if !ok {
			continue
		}
		pageSize, err := resource.ParseQuantity(size)
		if err != nil || pageSize.Value() <= 0 {
			continue
		}
		out[pageSize.Value()] += q.Value()
	}
	return out
}

func cgQuantity(list v1.ResourceList, name v1.ResourceName) resource.Quantity {
	if q, ok := list[name]; ok {
		return q
	}
	return resource.Quantity{}
}

func cgPtr[T any](v T) *T { return &v }

// hugePageSizeName is the kernel's name of a page size in the hugetlb
// files: 2097152 is "2MB", 1073741824 "1GB".
func hugePageSizeName(bytes int64) string {
	units := []string{"B", "KB", "MB", "GB", "TB", "PB"}
	u := 0
	for bytes >= 1024 && bytes%1024 == 0 && u < len(units)-1 {
		bytes /= 1024
		u++
	}
	return strconv.FormatInt(bytes, 10) + units[u]
}

func (rc ResourceConfig) isEmpty() bool {
	return rc.CPUShares == nil && rc.CPUQuota == nil && rc.CPUPeriod == nil && rc.CPUSet == "" &&
		rc.Memory == nil && rc.PidsLimit == nil && rc.HugePageLimit == nil &&
		rc.MemoryMin == nil && rc.MemoryLow == nil && rc.MemoryHigh == nil
}

// String lists the values that are set, for logs and test failures:
// "cpu.shares=1024 cpu.quota=-1 memory=1073741824".
func (rc ResourceConfig) String() string {
	var parts []string
	add := func(k string, v any) { parts = append(parts, fmt.Sprintf("%s=%v", k, v)) }
	if rc.CPUShares != nil {
		add("cpu.shares", *rc.CPUShares)
	}
	if rc.CPUQuota != nil {
		add("cpu.quota", *rc.CPUQuota)
	}
	if rc.CPUPeriod != nil {
		add("cpu.period", *rc.CPUPeriod)
	}
	if rc.CPUSet != "" {
		add("cpuset", rc.CPUSet)
	}
	if rc.Memory != nil {
		add("memory", *rc.Memory)
	}
	if rc.PidsLimit != nil {
		add("pids", *rc.PidsLimit)
	}
	sizes := make([]int64, 0, len(rc.HugePageLimit))
	for s := range rc.HugePageLimit {
		sizes = append(sizes, s)
	}
	slices.Sort(sizes)
	for _, s := range sizes {
		add("hugetlb."+hugePageSizeName(s), rc.HugePageLimit[s])
	}
	if rc.MemoryMin != nil {
		add("memory.min", *rc.MemoryMin)
	}
	if rc.MemoryLow != nil {
		add("memory.low", *rc.MemoryLow)
	}
	if rc.MemoryHigh != nil {
		add("memory.high", *rc.MemoryHigh)
	}
	return strings.Join(parts, " ")
}
