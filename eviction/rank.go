package eviction

import (
	"cmp"
	"fmt"
	"slices"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"

	"github.com/nodekit/nodekit/core"
)

// SystemCriticalPriority is the priority from which a pod is critical
// (core.SystemCriticalPriority).
const SystemCriticalPriority = core.SystemCriticalPriority

// IsCritical reports whether the kubelet never evicts pod: a static pod
// (one whose config source is a file or a URL), a mirror pod, or a pod of
// priority SystemCriticalPriority or more (core.IsCriticalPod). Critical
// pods are ranked like the others but passed over, and always admitted.
func IsCritical(pod *v1.Pod) bool { return core.IsCriticalPod(pod) }

// RankedPod is a pod in the order of eviction for a starved resource, with
// the numbers it was ranked by.
type RankedPod struct {
	// Pod is the pod ranked.
	Pod *v1.Pod
	// HasStats is false when no stats were found for the pod: such pods
	// rank first, as the kubelet ranks them.
	HasStats bool
	// Priority is the pod's priority (0 when unset).
	Priority int32
	// Usage is the pod's use of the starved resource, in bytes, inodes or
	// processes. For a filesystem it counts what the pod keeps on that
	// filesystem only: writable layers, logs and local volumes, depending
	// on where the node keeps them.
	Usage int64
	// Request is the pod's request of the starved resource (none for
	// inodes and PIDs), as the kubelet sums it: pod-level requests when
	// set, else the containers' (init containers at their peak), plus the
	// pod overhead when there is a request.
	Request int64
	// ExceedsRequest is Usage > Request. Pods that exceed their request
	// rank first for memory and disk; not looked at for PIDs.
	ExceedsRequest bool
	// AboveRequest is Usage less the request: the last ranking key, the
	// larger the earlier. For inodes, as in the kubelet, the request
	// subtracted is the pod's ephemeral-storage request in bytes. For PIDs
	// it is Usage.
	AboveRequest int64
	// Critical pods (IsCritical) are never evicted: the victim is the
	// first pod of the ranking that is not critical.
	Critical bool
}

// fsUsage names what of a pod's disk use counts against a filesystem.
type fsUsage uint8

const (
	usageRootfs       fsUsage = 1 << iota // containers' writable layers
	usageLogs                             // containers' logs
	usageLocalVolumes                     // hostPath, emptyDir on disk, configMap, gitRepo
	usageImages                           // image layers: the kubelet counts none per pod
)

// diskUsageFor is what counts against the filesystem of a disk signal, by
// the node's layout: the kubelet's buildSignalToRankFunc.
func diskUsageFor(s Signal, dedicatedImageFs, dedicatedContainerFs bool) fsUsage {
	all := usageImages | usageRootfs | usageLogs | usageLocalVolumes
	switch {
	case dedicatedImageFs && !dedicatedContainerFs:
		// Images and writable layers on the imagefs, the rest on the nodefs.
		switch s {
		case SignalNodeFsAvailable, SignalNodeFsInodesFree:
			return usageLogs | usageLocalVolumes
		default:
			return usageRootfs | usageImages
		}
	case dedicatedImageFs && dedicatedContainerFs:
		// Images alone on the imagefs; writable layers beside the rest.
		switch s {
		case SignalImageFsAvailable, SignalImageFsInodesFree:
			return usageImages
		default:
			return usageLogs | usageLocalVolumes | usageRootfs
		}
	default:
		return all
	}
}

// Rank orders obs.Pods for eviction when the resource of signal s is
// starved, as the kubelet ranks them:
//
//   - memory (memory.available, allocatableMemory.available): pods whose
//     working set exceeds their memory request first, then by priority,
//     lowest first, then by working set above the request, largest first;
//   - disk (nodefs.*, imagefs.*, containerfs.*): likewise with the pod's
//     use of that filesystem (bytes or inodes), counting its writable
//     layers, logs and local volumes as the node's layout puts them there;
//   - PIDs: by priority, lowest first, then by processes, most first.
//
// Pods without stats rank before the others at each usage key. Pods that
// rank equal keep their order in obs.Pods. Critical pods are ranked too,
// and marked. Rank returns nil for a signal thresholds cannot be set on.
func Rank(s Signal, obs Observations) []RankedPod {
	res := s.Resource()
	if res == "" {
		return nil
	}
	type entry struct {
		RankedPod
		above resource.Quantity // exact, for comparing
	}
	entries := make([]entry, 0, len(obs.Pods))
	usage := diskUsageFor(s, obs.DedicatedImageFs, obs.DedicatedContainerFs)
	for _, ps := range obs.Pods {
		if ps.Pod == nil {
			continue
		}
		e := entry{RankedPod: RankedPod{
			Pod:      ps.Pod,
			HasStats: !ps.Time.IsZero(),
			Priority: corev1helpers.PodPriority(ps.Pod),
			Critical: IsCritical(ps.Pod),
		}}
		var used resource.Quantity
		switch res {
		case v1.ResourceMemory:
			used = *resource.NewQuantity(int64(ps.MemoryWorkingSetBytes), resource.BinarySI)
		case v1.ResourceEphemeralStorage:
			bytes, _ := podDiskUsage(ps, usage)
			used = *resource.NewQuantity(bytes, resource.BinarySI)
		case ResourceInodes:
			_, inodes := podDiskUsage(ps, usage)
			used = *resource.NewQuantity(inodes, resource.DecimalSI)
		case ResourcePIDs:
			used = *resource.NewQuantity(int64(ps.ProcessCount), resource.DecimalSI)
		}
		e.above = used.DeepCopy()
		if res != ResourcePIDs {
			req := podRequest(ps.Pod, res)
			e.Request = req.Value()
			e.ExceedsRequest = used.Cmp(req) > 0
			if res == ResourceInodes {
				req = podRequest(ps.Pod, v1.ResourceEphemeralStorage)
			}
			e.above.Sub(req)
		}
		e.Usage = used.Value()
		e.AboveRequest = e.above.Value()
		entries = append(entries, e)
	}

	// The sort moves pointers, and its comparisons allocate nothing: with
	// a thousand pods it makes some 25,000 of them.
	order := make([]*entry, len(entries))
	for i := range entries {
		order[i] = &entries[i]
	}
	// Each usage key puts pods without stats first, as the kubelet's
	// comparators do.
	exceeds := func(a, b *entry) int {
		if !a.HasStats || !b.HasStats {
			return cmpTrueFirst(!a.HasStats, !b.HasStats)
		}
		return cmpTrueFirst(a.ExceedsRequest, b.ExceedsRequest)
	}
	priority := func(a, b *entry) int { return cmp.Compare(a.Priority, b.Priority) }
	above := func(a, b *entry) int {
		if !a.HasStats || !b.HasStats {
			return cmpTrueFirst(!a.HasStats, !b.HasStats)
		}
		return b.above.Cmp(a.above)
	}
	keys := []func(a, b *entry) int{exceeds, priority, above}
	if res == ResourcePIDs {
		keys = keys[1:]
	}
	slices.SortStableFunc(order, func(a, b *entry) int {
		for _, k := range keys {
			if c := k(a, b); c != 0 {
				return c
			}
		}
		return 0
	})
	out := make([]RankedPod, len(order))
	for i, e := range order {
		out[i] = e.RankedPod
	}
	return out
}

// cmpTrueFirst orders true before false.
func cmpTrueFirst(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	default:
		return 1
	}
}

// podRequest is the pod's request of a resource as the kubelet's eviction
// manager sums it: pod-level requests replace the containers' when set,
// and the pod overhead is added to a request that is not zero.
func podRequest(pod *v1.Pod, name v1.ResourceName) resource.Quantity {
	q := resource.Quantity{Format: resource.DecimalSI}
	if name == v1.ResourceMemory || name == v1.ResourceEphemeralStorage {
		q.Format = resource.BinarySI
	}
	reqs := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{
		SkipContainerLevelResources: resourcehelper.IsPodLevelResourcesSet(pod),
		ExcludeOverhead:             true,
	})
	if r, ok := reqs[name]; ok {
		q.Add(r)
	}
	if o, ok := pod.Spec.Overhead[name]; ok && !q.IsZero() {
		q.Add(o)
	}
	return q
}

// podDiskUsage sums the pod's use of a filesystem, bytes and inodes, over
// what counts against it.
func podDiskUsage(ps PodStats, what fsUsage) (bytes, inodes int64) {
	for _, c := range ps.Containers {
		if what&usageRootfs != 0 {
			bytes += int64(c.RootfsBytes)
			inodes += int64(c.RootfsInodes)
		}
		if what&usageLogs != 0 {
			bytes += int64(c.LogsBytes)
			inodes += int64(c.LogsInodes)
		}
	}
	if what&usageLocalVolumes != 0 {
		for _, name := range localVolumeNames(ps.Pod) {
			for _, v := range ps.Volumes {
				if v.Name == name {
					bytes += int64(v.UsedBytes)
					inodes += int64(v.InodesUsed)
					break
				}
			}
		}
	}
	return bytes, inodes
}

// localVolumeNames are the pod's volumes that take space on the node's
// disk: hostPath, emptyDir on disk, configMap and gitRepo.
func localVolumeNames(pod *v1.Pod) []string {
	var names []string
	for _, v := range pod.Spec.Volumes {
		if v.HostPath != nil || v.GitRepo != nil || v.ConfigMap != nil ||
			(v.EmptyDir != nil && v.EmptyDir.Medium == v1.StorageMediumDefault) {
			names = append(names, v.Name)
		}
	}
	return names
}

// String formats the ranked pod with its numbers.
func (rp RankedPod) String() string {
	s := fmt.Sprintf("%s priority=%d", podName(rp.Pod), rp.Priority)
	if !rp.HasStats {
		s += " no-stats"
	} else {
		s += fmt.Sprintf(" usage=%d request=%d exceeds=%t above=%d", rp.Usage, rp.Request, rp.ExceedsRequest, rp.AboveRequest)
	}
	if rp.Critical {
		s += " critical"
	}
	return s
}

func podName(pod *v1.Pod) string {
	if pod == nil {
		return "<nil>"
	}
	return pod.Namespace + "/" + pod.Name
}
