package cpumanager

import (
	"fmt"
	"math/bits"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/cpuset"

	"github.com/nodekit/nodekit/core"
)

// NUMAMask is a set of NUMA nodes, bit n standing for node n (nodes 0–63,
// the kubelet's limit). The zero mask stands for "no NUMA preference", the
// kubelet's nil affinity.
type NUMAMask uint64

// NewNUMAMask returns the mask of the given nodes. It fails, wrapping
// core.ErrInvalid, for a node outside 0–63.
func NewNUMAMask(nodes ...int) (NUMAMask, error) {
	var m NUMAMask
	for _, n := range nodes {
		if n < 0 || n > 63 {
			return 0, fmt.Errorf("cpumanager: NUMA node %d outside 0-63: %w", n, core.ErrInvalid)
		}
		m |= 1 << uint(n)
	}
	return m, nil
}

// IsSet reports whether node n is in the mask.
func (m NUMAMask) IsSet(n int) bool { return n >= 0 && n < 64 && m&(1<<uint(n)) != 0 }

// Count is the number of nodes in the mask.
func (m NUMAMask) Count() int { return bits.OnesCount64(uint64(m)) }

// Nodes lists the nodes in the mask, lowest first.
func (m NUMAMask) Nodes() []int {
	var out []int
	for n := 0; n < 64; n++ {
		if m.IsSet(n) {
			out = append(out, n)
		}
	}
	return out
}

// String lists the nodes as a CPU list does ("0-1,3"); "" for the zero
// mask.
func (m NUMAMask) String() string { return cpuset.New(m.Nodes()...).String() }

// TopologyHint says that a resource request can be met from a set of NUMA
// nodes, and whether that set is one the provider prefers (for CPUs: one
// of the smallest sets that could hold the request).
type TopologyHint struct {
	// NUMANodeAffinity is the set of nodes; zero means any node.
	NUMANodeAffinity NUMAMask
	// Preferred marks a hint of minimal width.
	Preferred bool
}

// String prints the hint as "{nodes preferred}".
func (h TopologyHint) String() string {
	return fmt.Sprintf("{%s %v}", h.NUMANodeAffinity, h.Preferred)
}

// HintProvider is what a topology manager asks every resource manager for
// before admitting a pod: per resource name, the NUMA placements that could
// satisfy a container's (or, for the pod scope, the whole pod's) request.
// As with the kubelet's hint providers:
//
//   - a nil map, or no entry for a resource, means no preference;
//   - an entry with an empty list means the request cannot be satisfied
//     under any placement, which a restricted or single-numa-node topology
//     policy turns into an admission failure.
//
// The CPU manager answers for "cpu". Allocator implements HintProvider.
type HintProvider interface {
	// GetTopologyHints returns the hints for one container.
	GetTopologyHints(pod *v1.Pod, container *v1.Container) map[string][]TopologyHint
	// GetPodTopologyHints returns the hints for the pod as a whole.
	GetPodTopologyHints(pod *v1.Pod) map[string][]TopologyHint
}

// AffinityStore hands the CPU manager the NUMA placement a topology
// manager chose for a container after merging every provider's hints
// (the kubelet's topologymanager.Store). The static policy takes CPUs from
// the chosen nodes first.
type AffinityStore interface {
	GetAffinity(podUID, containerName string) TopologyHint
}

// AffinityStoreFunc adapts a function to AffinityStore.
type AffinityStoreFunc func(podUID, containerName string) TopologyHint

// GetAffinity calls f.
func (f AffinityStoreFunc) GetAffinity(podUID, containerName string) TopologyHint {
	return f(podUID, containerName)
}

var _ AffinityStore = AffinityStoreFunc(nil)

// forEachNUMAMask calls f with every non-empty subset of nodes, by
// increasing size and, within a size, in lexicographic order of the node
// list, the order in which the kubelet builds hints.
func forEachNUMAMask(nodes []int, f func(NUMAMask)) {
	var walk func(rest []int, acc NUMAMask, need int)
	walk = func(rest []int, acc NUMAMask, need int) {
		if need == 0 {
			f(acc)
			return
		}
		for i, n := range rest {
			walk(rest[i+1:], acc|1<<uint(n), need-1)
		}
	}
	for size := 1; size <= len(nodes); size++ {
		walk(nodes, 0, size)
	}
}
