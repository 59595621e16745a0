package crispec

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

// CPU conversion constants, as the kernel and the kubelet define them.
const (
	// MinShares and MaxShares bound cgroup v1 cpu.shares.
	MinShares = 2
	MaxShares = 262144
	// SharesPerCPU is the cpu.shares of one whole CPU.
	SharesPerCPU = 1024
	// QuotaPeriod is the default CFS period, in microseconds (100ms).
	QuotaPeriod = 100000
	// MinQuotaPeriod is the smallest CFS quota the kernel accepts, in
	// microseconds (1ms).
	MinQuotaPeriod = 1000

	milliCPUPerCPU = 1000
)

// MilliCPUToShares converts a CPU request in millicores to cgroup v1
// cpu.shares as the kubelet does: SharesPerCPU per CPU, rounded down, and
// kept within [MinShares, MaxShares]. No request (zero) gives MinShares,
// the kernel's value for "no weight", not its default of 1024.
func MilliCPUToShares(milliCPU int64) int64 {
	if milliCPU == 0 {
		return MinShares
	}
	shares := milliCPU * SharesPerCPU / milliCPUPerCPU
	return min(max(shares, MinShares), MaxShares)
}

// MilliCPUToQuota converts a CPU limit in millicores to a CFS quota for the
// given period (both in microseconds) as the kubelet does: the share of
// the period the limit allows, rounded down, and at least MinQuotaPeriod.
// No limit (zero) gives 0, which leaves the quota unset.
func MilliCPUToQuota(milliCPU, period int64) int64 {
	if milliCPU == 0 {
		return 0
	}
	return max(milliCPU*period/milliCPUPerCPU, MinQuotaPeriod)
}

// ResourceOptions are the per-container facts the cgroup settings depend
// on besides the pod spec and the node.
type ResourceOptions struct {
	// ExclusiveCPUs says the CPU manager pinned the container (or, for a
	// sandbox, a container of the pod) to exclusive CPUs. The kubelet then
	// lifts the CFS quota (cpu_quota -1) so that the pinned container is
	// never throttled.
	ExclusiveCPUs bool
}

// ContainerResources computes the Linux resources of a container as the
// kubelet sends them in CreateContainer and UpdateContainerResources:
// cpu_shares from the CPU request (or the limit, when there is no
// request), cpu_quota and cpu_period from the CPU limit, the memory limit,
// the OOM score adjustment of the pod's QoS class, huge page limits and the
// cgroup v2 settings. Pod-level limits stand in for container limits the
// container does not set.
func (t *Translator) ContainerResources(pod *v1.Pod, c *v1.Container, opts ResourceOptions) (*runtimeapi.LinuxContainerResources, error) {
	if pod == nil {
		return nil, invalidf("nil pod")
	}
	if c == nil {
		return nil, podErr(pod, invalidf("nil container"))
	}
	r, err := t.containerResources(pod, c, opts)
	if err != nil {
		return nil, containerErr(pod, c, err)
	}
	return r, nil
}

func (t *Translator) containerResources(pod *v1.Pod, c *v1.Container, opts ResourceOptions) (*runtimeapi.LinuxContainerResources, error) {
	cpuLimit := effectiveLimit(pod, c, v1.ResourceCPU)
	memoryLimit := effectiveLimit(pod, c, v1.ResourceMemory)
	// No CPU request: the API server defaults it to the limit for new
	// pods; the kubelet does the same here for pods that predate that.
	cpuRequest := cpuLimit
	if q, ok := c.Resources.Requests[v1.ResourceCPU]; ok {
		cpuRequest = q
	}
	r := t.linuxResources(cpuRequest, cpuLimit, memoryLimit, opts.ExclusiveCPUs)

	oom, err := t.oomScoreAdj(pod, c)
	if err != nil {
		return nil, err
	}
	r.OomScoreAdj = int64(oom)
	r.HugepageLimits = t.hugePageLimits(pod, c)
	t.applySwap(r, pod, c)
	if t.cfg.CgroupV2 {
		if r.Unified == nil {
			r.Unified = map[string]string{}
		}
		if t.cfg.DisableMemoryQoS {
			// The kubelet resets memory.high explicitly, so that a resize
			// clears a throttle left from when memory QoS was on.
			r.Unified["memory.high"] = "max"
		} else {
			t.applyMemoryQoS(r.Unified, pod, c)
		}
	}
	return r, nil
}

// applyMemoryQoS sets the cgroup v2 memory protection and throttling of a
// container: memory.min or memory.low from its memory request, and
// memory.high between the request and the limit.
func (t *Translator) applyMemoryQoS(unified map[string]string, pod *v1.Pod, c *v1.Container) {
	request := memoryRequest(c)
	limitQ := quantityOrZero(c.Resources.Limits, v1.ResourceMemory)
	limit := limitQ.Value()
	switch {
	case request != 0 && t.cfg.TieredMemoryReservation && PodQOS(pod) == v1.PodQOSGuaranteed:
		unified["memory.min"] = strconv.FormatInt(request, 10)
	case request != 0 && t.cfg.TieredMemoryReservation:
		unified["memory.low"] = strconv.FormatInt(request, 10)
	default:
		unified["memory.min"] = "0"
		unified["memory.low"] = "0"
	}

	factor := t.cfg.MemoryThrottlingFactor
	if factor == 0 || (request == limit && request != 0) {
		return
	}
	if limit == 0 && resourcehelper.IsPodLevelResourcesSet(pod) {
		// The pod's cgroup throttles the pod as a whole.
		if podLimit := quantityOrZero(pod.Spec.Resources.Limits, v1.ResourceMemory); !podLimit.IsZero() {
			return
		}
	}
	if limit == 0 {
		allocatable := quantityOrZero(t.cfg.NodeAllocatable, v1.ResourceMemory)
		if limit = allocatable.Value(); limit <= 0 {
			return
		}
	}
	page := float64(pageSize)
	high := int64(math.Floor(float64(request)+(float64(limit)-float64(request))*factor)/page) * pageSize
	if high != 0 && high > request {
		unified["memory.high"] = strconv.FormatInt(high, 10)
	}
}

// pageSize rounds memory.high.
var pageSize = int64(os.Getpagesize())

// effectiveLimit is the container's limit of name, or the pod-level limit
// when the container sets none (or zero) and the pod sets pod-level
// resources.
func effectiveLimit(pod *v1.Pod, c *v1.Container, name v1.ResourceName) resource.Quantity {
	q := quantityOrZero(c.Resources.Limits, name)
	if q.IsZero() && resourcehelper.IsPodLevelResourcesSet(pod) {
		return quantityOrZero(pod.Spec.Resources.Limits, name)
	}
	return q
}

// linuxResources converts a CPU request and limit and a memory limit into
// cgroup settings. A zero memory limit is no limit; a zero CPU limit is no
// quota.
func (t *Translator) linuxResources(cpuRequest, cpuLimit, memoryLimit resource.Quantity, noQuota bool) *runtimeapi.LinuxContainerResources {
	r := &runtimeapi.LinuxContainerResources{
		CpuShares: MilliCPUToShares(cpuRequest.MilliValue()),
	}
	if mem := memoryLimit.Value(); mem != 0 {
		r.MemoryLimitInBytes = mem
	}
	if !t.cfg.DisableCPUCFSQuota {
		period := t.cfg.CPUCFSQuotaPeriod.Microseconds()
		r.CpuPeriod = period
		r.CpuQuota = MilliCPUToQuota(cpuLimit.MilliValue(), period)
		if noQuota {
			r.CpuQuota = -1
		}
	}
	if t.cfg.CgroupV2 && !t.cfg.SingleProcessOOMKill {
		// Kill the whole container, not one process, on OOM.
		r.Unified = map[string]string{"memory.oom.group": "1"}
	}
	return r
}

// sandboxResources are the pod-wide resources the kubelet passes with the
// sandbox: the pod's aggregate requests and limits (pod-level resources if
// set), without overhead.
func (t *Translator) sandboxResources(pod *v1.Pod, exclusiveCPUs bool) *runtimeapi.LinuxContainerResources {
	opts := resourcehelper.PodResourcesOptions{ExcludeOverhead: true}
	requests := resourcehelper.PodRequests(pod, opts)
	limits := resourcehelper.PodLimits(pod, opts)
	cpuLimit := quantityOrZero(limits, v1.ResourceCPU)
	cpuRequest := cpuLimit
	if q, ok := requests[v1.ResourceCPU]; ok {
		cpuRequest = q
	}
	return t.linuxResources(cpuRequest, cpuLimit, quantityOrZero(limits, v1.ResourceMemory), exclusiveCPUs)
}

// overheadResources converts the pod's overhead, treated as requests equal
// to limits.
func (t *Translator) overheadResources(pod *v1.Pod) *runtimeapi.LinuxContainerResources {
	if pod.Spec.Overhead == nil {
		return &runtimeapi.LinuxContainerResources{}
	}
	cpu := quantityOrZero(pod.Spec.Overhead, v1.ResourceCPU)
	return t.linuxResources(cpu, cpu, quantityOrZero(pod.Spec.Overhead, v1.ResourceMemory), false)
}

// OOM score adjustments of the QoS classes.
const (
	guaranteedOOMScoreAdj = -997
	besteffortOOMScoreAdj = 1000
	// Burstable containers stay strictly between the two.
	minBurstableOOMScoreAdj = 1000 + guaranteedOOMScoreAdj
	maxBurstableOOMScoreAdj = besteffortOOMScoreAdj - 1
)

// oomScoreAdj is the kubelet's OOM score adjustment for a container:
// node-critical and Guaranteed pods are killed last, BestEffort first, and
// a Burstable container in between according to the share of the node's
// memory it requests.
func (t *Translator) oomScoreAdj(pod *v1.Pod, c *v1.Container) (int, error) {
	if isNodeCriticalPod(pod) {
		return guaranteedOOMScoreAdj, nil
	}
	switch PodQOS(pod) {
	case v1.PodQOSGuaranteed:
		return guaranteedOOMScoreAdj, nil
	case v1.PodQOSBestEffort:
		return besteffortOOMScoreAdj, nil
	}
	capacity := t.cfg.MemoryCapacity
	if capacity <= 0 {
		return 0, invalidf("the pod is Burstable and the node's memory capacity is unknown (Config.MemoryCapacity is not set)")
	}

	// Pod-level memory requests not handed out to containers are shared
	// equally among them.
	var extra int64
	if resourcehelper.IsPodLevelRequestsSet(pod) {
		extra = unassignedPodMemoryPerContainer(pod)
	}
	request := memoryRequest(c) + extra
	adj := 1000 - 1000*request/capacity

	// A sidecar is killed no later than the regular container with the
	// smallest request.
	if isSidecar(pod, c) && len(pod.Spec.Containers) > 0 {
		smallest := memoryRequest(&pod.Spec.Containers[0])
		for i := 1; i < len(pod.Spec.Containers); i++ {
			smallest = min(smallest, memoryRequest(&pod.Spec.Containers[i]))
		}
		adj = min(adj, 1000-1000*(smallest+extra)/capacity)
	}

	if adj < minBurstableOOMScoreAdj {
		return minBurstableOOMScoreAdj, nil
	}
	if adj == besteffortOOMScoreAdj {
		return maxBurstableOOMScoreAdj, nil
	}
	return int(adj), nil
}

func memoryRequest(c *v1.Container) int64 {
	q := quantityOrZero(c.Resources.Requests, v1.ResourceMemory)
	return q.Value()
}

func unassignedPodMemoryPerContainer(pod *v1.Pod) int64 {
	podRequest := quantityOrZero(pod.Spec.Resources.Requests, v1.ResourceMemory)
	if podRequest.IsZero() {
		return 0
	}
	n := int64(len(pod.Spec.Containers) + len(pod.Spec.InitContainers))
	if n == 0 {
		return 0
	}
	assigned := resourcehelper.AggregateContainerRequests(pod, resourcehelper.PodResourcesOptions{})
	assignedMem := quantityOrZero(assigned, v1.ResourceMemory)
	return max(podRequest.Value()-assignedMem.Value(), 0) / n
}

// isSidecar reports whether c is a restartable init container of pod.
func isSidecar(pod *v1.Pod, c *v1.Container) bool {
	if c.RestartPolicy == nil || *c.RestartPolicy != v1.ContainerRestartPolicyAlways {
		return false
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == c.Name {
			return true
		}
	}
	return false
}

// Pod source annotations and priorities that make a pod critical.
const (
	systemNodeCritical = "system-node-critical"
)

func isNodeCriticalPod(pod *v1.Pod) bool {
	return core.IsCriticalPod(pod) && pod.Spec.PriorityClassName == systemNodeCritical
}

// PodQOS is the pod's QoS class: the one recorded in its status, else the
// one its requests and limits of cpu and memory give (pod-level resources
// when set, else every container's): Guaranteed when all have requests
// equal to limits for both, BestEffort when none has any, Burstable
// otherwise.
func PodQOS(pod *v1.Pod) v1.PodQOSClass {
	if pod.Status.QOSClass != "" {
		return pod.Status.QOSClass
	}
	if resourcehelper.IsPodLevelResourcesSet(pod) {
		return requirementsQOS(pod.Spec.Resources)
	}
	var class v1.PodQOSClass
	all := append(slices.Clip(pod.Spec.InitContainers), pod.Spec.Containers...)
	for i := range all {
		switch q := requirementsQOS(&all[i].Resources); {
		case q == v1.PodQOSBurstable:
			return q
		case class == "":
			class = q
		case class != q:
			return v1.PodQOSBurstable
		}
	}
	if class == "" {
		return v1.PodQOSBestEffort
	}
	return class
}

// requirementsQOS classifies one set of requests and limits over cpu and
// memory: Guaranteed when both are set with requests equal to limits,
// BestEffort when neither is set, Burstable otherwise.
func requirementsQOS(r *v1.ResourceRequirements) v1.PodQOSClass {
	if len(r.Requests) == 0 && len(r.Limits) == 0 {
		return v1.PodQOSBestEffort
	}
	var class v1.PodQOSClass
	for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory} {
		req, lim := quantityOrZero(r.Requests, name), quantityOrZero(r.Limits, name)
		q := v1.PodQOSGuaranteed
		switch {
		case !req.Equal(lim):
			return v1.PodQOSBurstable
		case req.IsZero():
			q = v1.PodQOSBestEffort
		}
		if class != "" && class != q {
			return v1.PodQOSBurstable
		}
		class = q
	}
	return class
}

// hugePageUnits name page sizes: 2MB is 2*1024*1024 bytes.
var hugePageUnits = []string{"B", "KB", "MB", "GB", "TB", "PB"}

func isHugePages(name v1.ResourceName) bool {
	return strings.HasPrefix(string(name), v1.ResourceHugePagesPrefix)
}

// hugePageSizeName converts a hugepages-<size> resource name into the
// kernel's name of the page size ("hugepages-2Mi" → "2MB").
func hugePageSizeName(name v1.ResourceName) (string, error) {
	q, err := resource.ParseQuantity(strings.TrimPrefix(string(name), v1.ResourceHugePagesPrefix))
	if err != nil {
		return "", err
	}
	size := q.Value()
	unit := 0
	for size%1024 == 0 && unit < len(hugePageUnits)-1 {
		size /= 1024
		unit++
	}
	if size > 1024 && unit < len(hugePageUnits)-1 {
		return "", errors.New("page size is not a whole number of units")
	}
	return strconv.FormatInt(size, 10) + hugePageUnits[unit], nil
}

// hugePageLimits gives every page size of the node a limit: the
// container's hugepages-<size> limit, else the pod-level one, else zero.
func (t *Translator) hugePageLimits(pod *v1.Pod, c *v1.Container) []*runtimeapi.HugepageLimit {
	if len(t.cfg.HugePageSizes) == 0 {
		return nil
	}
	want := map[string]uint64{}
	collect := func(limits v1.ResourceList) {
		// Sorted, so that two spellings of one size resolve the same way
		// every time.
		names := make([]string, 0, len(limits))
		for name := range limits {
			if isHugePages(name) {
				names = append(names, string(name))
			}
		}
		slices.Sort(names)
		for _, name := range names {
			size, err := hugePageSizeName(v1.ResourceName(name))
			if err != nil {
				continue // the kubelet skips malformed names too
			}
			q := limits[v1.ResourceName(name)]
			want[size] = uint64(q.Value())
		}
	}
	if resourcehelper.IsPodLevelResourcesSet(pod) {
		collect(pod.Spec.Resources.Limits)
	}
	collect(c.Resources.Limits)

	out := make([]*runtimeapi.HugepageLimit, len(t.cfg.HugePageSizes))
	for i, size := range t.cfg.HugePageSizes {
		out[i] = &runtimeapi.HugepageLimit{PageSize: size, Limit: want[size]}
	}
	return out
}

// applySwap sets the container's swap limit when the node has a swap
// controller: none at all, except Burstable containers under LimitedSwap.
func (t *Translator) applySwap(r *runtimeapi.LinuxContainerResources, pod *v1.Pod, c *v1.Container) {
	if !t.cfg.SwapController {
		return
	}
	if !t.cfg.CgroupV2 {
		// cgroup v1: memory+swap equal to memory leaves no swap beyond
		// the limit.
		r.MemorySwapLimitInBytes = r.MemoryLimitInBytes
		return
	}
	swap := int64(0)
	if t.limitedSwapAllowed(pod, c) {
		request := memoryRequest(c)
		if capacity := t.cfg.MemoryCapacity; capacity > 0 && request <= capacity {
			swap = int64(float64(request) / float64(capacity) * float64(t.cfg.SwapCapacity))
		}
	}
	if r.Unified == nil {
		r.Unified = map[string]string{}
	}
	r.Unified["memory.swap.max"] = fmt.Sprintf("%d", swap)
}

// limitedSwapAllowed: under LimitedSwap, only Burstable, non-critical
// containers whose memory request is set and differs from the limit swap.
func (t *Translator) limitedSwapAllowed(pod *v1.Pod, c *v1.Container) bool {
	if !t.cfg.LimitedSwap || core.IsCriticalPod(pod) || PodQOS(pod) != v1.PodQOSBurstable {
		return false
	}
	req := quantityOrZero(c.Resources.Requests, v1.ResourceMemory)
	lim := quantityOrZero(c.Resources.Limits, v1.ResourceMemory)
	if req.IsZero() && lim.IsZero() {
		return false
	}
	return req.Cmp(lim) != 0
}
