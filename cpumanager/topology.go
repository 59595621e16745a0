package cpumanager

import (
	"fmt"
	"maps"
	"slices"

	"k8s.io/utils/cpuset"

	"github.com/nodekit/nodekit/core"
)

// CPUInfo places one logical CPU (a hardware thread) in the machine.
type CPUInfo struct {
	// NUMANodeID is the NUMA node the CPU belongs to.
	NUMANodeID int
	// SocketID is the physical package (socket) the CPU belongs to.
	SocketID int
	// CoreID identifies the physical core. It is unique on the machine:
	// the lowest logical CPU ID among the core's threads, as the kubelet
	// numbers cores (the kernel's core_id repeats across sockets).
	CoreID int
	// UncoreCacheID identifies the last-level (L3) cache the CPU shares
	// with part of its NUMA node; the socket ID when the cache spans the
	// whole node or is unknown, as the kubelet falls back.
	UncoreCacheID int
}

// CPUDetails maps each logical CPU ID to its place in the machine. Its
// query methods take a CPUDetails that may be restricted (KeepOnly) to the
// CPUs still free, which is how the allocator counts free CPUs per core,
// NUMA node and socket.
type CPUDetails map[int]CPUInfo

// KeepOnly returns the details of the CPUs in cpus alone.
func (d CPUDetails) KeepOnly(cpus cpuset.CPUSet) CPUDetails {
	out := make(CPUDetails, cpus.Size())
	for cpu, info := range d {
		if cpus.Contains(cpu) {
			out[cpu] = info
		}
	}
	return out
}

// CPUs returns every CPU in d.
func (d CPUDetails) CPUs() cpuset.CPUSet {
	ids := make([]int, 0, len(d))
	for cpu := range d {
		ids = append(ids, cpu)
	}
	return cpuset.New(ids...)
}

// collect gathers f(cpu, info) over the CPUs whose info passes keep.
func (d CPUDetails) collect(keep func(CPUInfo) bool, f func(cpu int, info CPUInfo) int) cpuset.CPUSet {
	var ids []int
	for cpu, info := range d {
		if keep(info) {
			ids = append(ids, f(cpu, info))
		}
	}
	return cpuset.New(ids...)
}

func detailsAny(CPUInfo) bool { return true }

func detailsCPU(cpu int, _ CPUInfo) int          { return cpu }
func detailsCore(_ int, info CPUInfo) int        { return info.CoreID }
func detailsSocket(_ int, info CPUInfo) int      { return info.SocketID }
func detailsNUMA(_ int, info CPUInfo) int        { return info.NUMANodeID }
func detailsUncoreCache(_ int, info CPUInfo) int { return info.UncoreCacheID }

func inNUMANodes(ids []int) func(CPUInfo) bool {
	return func(i CPUInfo) bool { return slices.Contains(ids, i.NUMANodeID) }
}
func inSockets(ids []int) func(CPUInfo) bool {
	return func(i CPUInfo) bool { return slices.Contains(ids, i.SocketID) }
}
func inCores(ids []int) func(CPUInfo) bool {
	return func(i CPUInfo) bool { return slices.Contains(ids, i.CoreID) }
}
func inUncoreCaches(ids []int) func(CPUInfo) bool {
	return func(i CPUInfo) bool { return slices.Contains(ids, i.UncoreCacheID) }
}

// NUMANodes returns the NUMA node IDs of the CPUs in d.
func (d CPUDetails) NUMANodes() cpuset.CPUSet { return d.collect(detailsAny, detailsNUMA) }

// Sockets returns the socket IDs of the CPUs in d.
func (d CPUDetails) Sockets() cpuset.CPUSet { return d.collect(detailsAny, detailsSocket) }

// Cores returns the core IDs of the CPUs in d.
func (d CPUDetails) Cores() cpuset.CPUSet { return d.collect(detailsAny, detailsCore) }

// UncoreCaches returns the uncore cache IDs of the CPUs in d.
func (d CPUDetails) UncoreCaches() cpuset.CPUSet { return d.collect(detailsAny, detailsUncoreCache) }

// CPUsInNUMANodes returns the CPUs in d on the given NUMA nodes.
func (d CPUDetails) CPUsInNUMANodes(ids ...int) cpuset.CPUSet {
	return d.collect(inNUMANodes(ids), detailsCPU)
}

// CPUsInSockets returns the CPUs in d on the given sockets.
func (d CPUDetails) CPUsInSockets(ids ...int) cpuset.CPUSet {
	return d.collect(inSockets(ids), detailsCPU)
}

// CPUsInCores returns the CPUs in d on the given cores.
func (d CPUDetails) CPUsInCores(ids ...int) cpuset.CPUSet {
	return d.collect(inCores(ids), detailsCPU)
}

// CPUsInUncoreCaches returns the CPUs in d sharing the given uncore caches.
func (d CPUDetails) CPUsInUncoreCaches(ids ...int) cpuset.CPUSet {
	return d.collect(inUncoreCaches(ids), detailsCPU)
}

// NUMANodesInSockets returns the NUMA nodes of the CPUs in d on the given
// sockets.
func (d CPUDetails) NUMANodesInSockets(ids ...int) cpuset.CPUSet {
	return d.collect(inSockets(ids), detailsNUMA)
}

// SocketsInNUMANodes returns the sockets of the CPUs in d on the given NUMA
// nodes.
func (d CPUDetails) SocketsInNUMANodes(ids ...int) cpuset.CPUSet {
	return d.collect(inNUMANodes(ids), detailsSocket)
}

// CoresInNUMANodes returns the cores of the CPUs in d on the given NUMA
// nodes.
func (d CPUDetails) CoresInNUMANodes(ids ...int) cpuset.CPUSet {
	return d.collect(inNUMANodes(ids), detailsCore)
}

// CoresInSockets returns the cores of the CPUs in d on the given sockets.
func (d CPUDetails) CoresInSockets(ids ...int) cpuset.CPUSet {
	return d.collect(inSockets(ids), detailsCore)
}

// UncoreCachesInNUMANodes returns the uncore caches of the CPUs in d on the
// given NUMA nodes.
func (d CPUDetails) UncoreCachesInNUMANodes(ids ...int) cpuset.CPUSet {
	return d.collect(inNUMANodes(ids), detailsUncoreCache)
}

// CoresInUncoreCaches returns the cores of the CPUs in d sharing the given
// uncore caches.
func (d CPUDetails) CoresInUncoreCaches(ids ...int) cpuset.CPUSet {
	return d.collect(inUncoreCaches(ids), detailsCore)
}

// NUMANodesInSameSocket reports whether the given NUMA nodes all exist in
// d and lie on one socket.
func (d CPUDetails) NUMANodesInSameSocket(ids []int) bool {
	known := d.NUMANodes()
	for _, id := range ids {
		if !known.Contains(id) {
			return false
		}
	}
	return d.SocketsInNUMANodes(ids...).Size() <= 1
}

// Topology is the CPU layout of a machine as the kubelet's CPU manager
// sees it: logical CPUs grouped into physical cores, uncore (L3) cache
// groups, NUMA nodes and sockets. Build one with NewTopology or
// DiscoverTopology; treat it as read-only afterwards.
type Topology struct {
	// NumCPUs is the number of logical CPUs.
	NumCPUs int
	// NumCores is the number of physical cores.
	NumCores int
	// NumUncoreCaches is the number of uncore cache groups.
	NumUncoreCaches int
	// NumSockets is the number of sockets.
	NumSockets int
	// NumNUMANodes is the number of NUMA nodes with CPUs.
	NumNUMANodes int
	// CPUDetails places every logical CPU.
	CPUDetails CPUDetails
}

// CPUs returns every logical CPU of the machine.
func (t *Topology) CPUs() cpuset.CPUSet { return t.CPUDetails.CPUs() }

// CPUsPerCore is the number of hardware threads per core (the SMT level),
// 0 for a topology without cores.
func (t *Topology) CPUsPerCore() int {
	if t.NumCores == 0 {
		return 0
	}
	return t.NumCPUs / t.NumCores
}

// CPUsPerSocket is the number of logical CPUs per socket.
func (t *Topology) CPUsPerSocket() int {
	if t.NumSockets == 0 {
		return 0
	}
	return t.NumCPUs / t.NumSockets
}

// CPUsPerUncoreCache is the number of logical CPUs per uncore cache group.
func (t *Topology) CPUsPerUncoreCache() int {
	if t.NumUncoreCaches == 0 {
		return 0
	}
	return t.NumCPUs / t.NumUncoreCaches
}

// String summarises the topology, e.g. "12 CPUs, 6 cores, 2 sockets,
// 2 NUMA nodes, 2 uncore caches".
func (t *Topology) String() string {
	return fmt.Sprintf("%d CPUs, %d cores, %d sockets, %d NUMA nodes, %d uncore caches",
		t.NumCPUs, t.NumCores, t.NumSockets, t.NumNUMANodes, t.NumUncoreCaches)
}

// UncoreCacheAligned reports whether all of cpus share one uncore cache
// (true for zero or one CPU): the kubelet counts such exclusive
// allocations in container_aligned_compute_resources_count with
// boundary "uncore_cache".
func (t *Topology) UncoreCacheAligned(cpus cpuset.CPUSet) bool {
	list := cpus.List()
	if len(list) <= 1 {
		return true
	}
	first, ok := t.CPUDetails[list[0]]
	if !ok {
		return false
	}
	for _, cpu := range list[1:] {
		info, ok := t.CPUDetails[cpu]
		if !ok || info.UncoreCacheID != first.UncoreCacheID {
			return false
		}
	}
	return true
}

// TopologyDescription describes a machine for NewTopology, either by
// shape or CPU by CPU.
//
// By shape, logical CPUs are numbered as Linux numbers them on common
// x86 servers and as the kubelet's test machines are: first one thread of
// every core, then the second thread of every core, so that the siblings
// of CPU c are c, c+cores, c+2·cores, … (cores = total physical cores).
// Cores are numbered socket by socket and, inside a socket, NUMA node by
// NUMA node; with Interleaved they are dealt round-robin over the NUMA
// nodes instead (core k on NUMA node k mod nodes, node n on socket
// n mod sockets), as on machines whose CPU numbers alternate between
// sockets. Uncore cache groups are consecutive runs of CoresPerUncoreCache
// cores within a NUMA node; with CoresPerUncoreCache zero each socket is
// one group, which is what the kubelet assumes when the L3 cache is not
// split.
type TopologyDescription struct {
	Sockets             int
	NUMANodesPerSocket  int
	CoresPerNUMANode    int
	ThreadsPerCore      int
	CoresPerUncoreCache int
	Interleaved         bool

	// CPUs, when not empty, gives every logical CPU explicitly; the
	// fields above must then be zero. Core IDs are kept as given.
	CPUs CPUDetails
}

// NewTopology builds a Topology from a description. It returns an error
// wrapping core.ErrInvalid naming the field at fault.
func NewTopology(desc TopologyDescription) (*Topology, error) {
	if len(desc.CPUs) > 0 {
		if desc.Sockets != 0 || desc.NUMANodesPerSocket != 0 || desc.CoresPerNUMANode != 0 ||
			desc.ThreadsPerCore != 0 || desc.CoresPerUncoreCache != 0 || desc.Interleaved {
			return nil, fmt.Errorf("cpumanager: topology description: CPUs excludes the shape fields: %w", core.ErrInvalid)
		}
		for cpu := range desc.CPUs {
			if cpu < 0 {
				return nil, fmt.Errorf("cpumanager: topology description: CPUs: negative CPU ID %d: %w", cpu, core.ErrInvalid)
			}
		}
		return topologyFromDetails(maps.Clone(desc.CPUs)), nil
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"Sockets", desc.Sockets},
		{"NUMANodesPerSocket", desc.NUMANodesPerSocket},
		{"CoresPerNUMANode", desc.CoresPerNUMANode},
		{"ThreadsPerCore", desc.ThreadsPerCore},
	} {
		if f.v < 1 {
			return nil, fmt.Errorf("cpumanager: topology description: %s must be at least 1, got %d: %w", f.name, f.v, core.ErrInvalid)
		}
	}
	if desc.CoresPerUncoreCache < 0 || (desc.CoresPerUncoreCache > 0 && desc.CoresPerNUMANode%desc.CoresPerUncoreCache != 0) {
		return nil, fmt.Errorf("cpumanager: topology description: CoresPerUncoreCache %d must divide CoresPerNUMANode %d: %w", desc.CoresPerUncoreCache, desc.CoresPerNUMANode, core.ErrInvalid)
	}
	nodes := desc.Sockets * desc.NUMANodesPerSocket
	cores := nodes * desc.CoresPerNUMANode
	details := make(CPUDetails, cores*desc.ThreadsPerCore)
	for k := 0; k < cores; k++ {
		// node is the core's NUMA node, pos its index within the node.
		node, pos := k/desc.CoresPerNUMANode, k%desc.CoresPerNUMANode
		socket := node / desc.NUMANodesPerSocket
		if desc.Interleaved {
			node, pos = k%nodes, k/nodes
			socket = node % desc.Sockets
		}
		uncore := socket
		if desc.CoresPerUncoreCache > 0 {
			uncore = node*(desc.CoresPerNUMANode/desc.CoresPerUncoreCache) + pos/desc.CoresPerUncoreCache
		}
		for t := 0; t < desc.ThreadsPerCore; t++ {
			details[k+t*cores] = CPUInfo{NUMANodeID: node, SocketID: socket, CoreID: k, UncoreCacheID: uncore}
		}
	}
	return topologyFromDetails(details), nil
}

// topologyFromDetails counts what the details hold.
func topologyFromDetails(d CPUDetails) *Topology {
	return &Topology{
		NumCPUs:         len(d),
		NumCores:        d.Cores().Size(),
		NumUncoreCaches: d.UncoreCaches().Size(),
		NumSockets:      d.Sockets().Size(),
		NumNUMANodes:    d.NUMANodes().Size(),
		CPUDetails:      d,
	}
}
