package cpumanager

import (
	"fmt"
	"maps"
	"math"
	"slices"

	"k8s.io/utils/cpuset"
)

// This file holds the kubelet's topology-aware best-fit CPU picking
// (takeByTopology): whole NUMA nodes and sockets first, then whole uncore
// caches (when preferred), whole cores, and single threads last, always
// taking from the most used (fewest free CPUs) groups first so that free
// groups stay whole. takeByTopologyNUMADistributed is the
// distribute-cpus-across-numa variant. Both are deterministic: ties are
// broken by ascending ID.

// cpuSorting says how single threads are ordered when whole groups no
// longer fit the remaining request.
type cpuSorting int

const (
	// sortPacked fills one core after another (threads of a core
	// together): the default.
	sortPacked cpuSorting = iota
	// sortSpread walks CPUs in ID order within each socket, which puts
	// consecutive picks on different cores (distribute-cpus-across-cores).
	sortSpread
)

// accumulator gathers CPUs for one request.
type accumulator struct {
	// topo is the whole machine, never changed; it tells how big a free
	// NUMA node, socket or core is.
	topo *Topology
	// free holds the CPUs still available to this request; a CPU leaves
	// it when taken.
	free CPUDetails
	// need counts the CPUs still to take.
	need   int
	result cpuset.CPUSet
	// numaFirst: NUMA nodes are at least as big as sockets (one or more
	// sockets per node), so whole nodes are taken before whole sockets
	// and nodes order everything below them; else sockets come first.
	numaFirst bool
	sorting   cpuSorting
}

func newAccumulator(topo *Topology, available cpuset.CPUSet, n int, sorting cpuSorting) *accumulator {
	return &accumulator{
		topo:      topo,
		free:      topo.CPUDetails.KeepOnly(available),
		need:      n,
		result:    cpuset.New(),
		numaFirst: topo.NumSockets >= topo.NumNUMANodes,
		sorting:   sorting,
	}
}

// sortByFree orders ids by how many free CPUs each holds, fewest first,
// then by ID.
func (a *accumulator) sortByFree(ids []int, cpusIn func(...int) cpuset.CPUSet) {
	size := make(map[int]int, len(ids))
	for _, id := range ids {
		size[id] = cpusIn(id).Size()
	}
	slices.SortFunc(ids, func(x, y int) int {
		if size[x] != size[y] {
			return size[x] - size[y]
		}
		return x - y
	})
}

// sortedNUMANodes lists the NUMA nodes with free CPUs in taking order.
// When sockets are the upper level, nodes are grouped by their socket's
// order first.
func (a *accumulator) sortedNUMANodes() []int {
	if a.numaFirst {
		nodes := a.free.NUMANodes().List()
		a.sortByFree(nodes, a.free.CPUsInNUMANodes)
		return nodes
	}
	var out []int
	for _, socket := range a.sortedSockets() {
		nodes := a.free.NUMANodesInSockets(socket).List()
		a.sortByFree(nodes, a.free.CPUsInNUMANodes)
		out = append(out, nodes...)
	}
	return out
}

// sortedSockets lists the sockets with free CPUs in taking order.
func (a *accumulator) sortedSockets() []int {
	if !a.numaFirst {
		sockets := a.free.Sockets().List()
		a.sortByFree(sockets, a.free.CPUsInSockets)
		return sockets
	}
	var out []int
	for _, node := range a.sortedNUMANodes() {
		sockets := a.free.SocketsInNUMANodes(node).List()
		a.sortByFree(sockets, a.free.CPUsInSockets)
		out = append(out, sockets...)
	}
	return out
}

// sortedCores lists the cores with free CPUs in taking order, grouped by
// the lower of the two levels (sockets under NUMA nodes, or the reverse).
func (a *accumulator) sortedCores() []int {
	var out []int
	if a.numaFirst {
		for _, socket := range a.sortedSockets() {
			cores := a.free.CoresInSockets(socket).List()
			a.sortByFree(cores, a.free.CPUsInCores)
			out = append(out, cores...)
		}
		return out
	}
	for _, node := range a.sortedNUMANodes() {
		cores := a.free.CoresInNUMANodes(node).List()
		a.sortByFree(cores, a.free.CPUsInCores)
		out = append(out, cores...)
	}
	return out
}

// sortedUncoreCaches lists the uncore caches with free CPUs, grouped by
// NUMA node in taking order.
func (a *accumulator) sortedUncoreCaches() []int {
	var out []int
	for _, node := range a.sortedNUMANodes() {
		caches := a.free.UncoreCachesInNUMANodes(node).List()
		a.sortByFree(caches, a.free.CPUsInUncoreCaches)
		out = append(out, caches...)
	}
	return out
}

// sortedCPUs lists the free CPUs in the order single threads are taken.
func (a *accumulator) sortedCPUs() []int {
	var out []int
	if a.sorting == sortSpread {
		for _, socket := range a.sortedSockets() {
			out = append(out, a.free.CPUsInSockets(socket).List()...)
		}
		return out
	}
	for _, c := range a.sortedCores() {
		out = append(out, a.free.CPUsInCores(c).List()...)
	}
	return out
}

func (a *accumulator) take(cpus cpuset.CPUSet) {
	a.result = a.result.Union(cpus)
	a.free = a.free.KeepOnly(a.free.CPUs().Difference(a.result))
	a.need -= cpus.Size()
}

func (a *accumulator) needsAtLeast(n int) bool { return a.need >= n }
func (a *accumulator) satisfied() bool         { return a.need < 1 }
func (a *accumulator) failed() bool            { return a.need > len(a.free) }

func (a *accumulator) takeFullNUMANodes() {
	for _, node := range a.sortedNUMANodes() {
		whole := a.topo.CPUDetails.CPUsInNUMANodes(node)
		if a.free.CPUsInNUMANodes(node).Size() != whole.Size() || !a.needsAtLeast(whole.Size()) {
			continue
		}
		a.take(whole)
	}
}

func (a *accumulator) takeFullSockets() {
	for _, socket := range a.sortedSockets() {
		if a.free.CPUsInSockets(socket).Size() != a.topo.CPUsPerSocket() {
			continue
		}
		whole := a.topo.CPUDetails.CPUsInSockets(socket)
		if !a.needsAtLeast(whole.Size()) {
			continue
		}
		a.take(whole)
	}
}

func (a *accumulator) takeFullUpperLevel() {
	if a.numaFirst {
		a.takeFullNUMANodes()
	} else {
		a.takeFullSockets()
	}
}

func (a *accumulator) takeFullLowerLevel() {
	if a.numaFirst {
		a.takeFullSockets()
	} else {
		a.takeFullNUMANodes()
	}
}

func (a *accumulator) takeFullUncoreCaches() {
	for _, cache := range a.sortedUncoreCaches() {
		whole := a.topo.CPUDetails.CPUsInUncoreCaches(cache)
		if a.free.CPUsInUncoreCaches(cache).Size() != whole.Size() || !a.needsAtLeast(whole.Size()) {
			continue
		}
		a.take(whole)
	}
}

// takePartialUncoreCache takes the rest of the request from one uncore
// cache if its free cores can hold it all.
func (a *accumulator) takePartialUncoreCache(cache int) {
	perCore := a.topo.CPUsPerCore()
	coresNeeded := (a.need + perCore - 1) / perCore
	cores := a.free.CoresInUncoreCaches(cache)
	if cores.Size() > coresNeeded {
		cores = cpuset.New(cores.List()[:coresNeeded]...)
	}
	cpus := a.free.CPUsInCores(cores.UnsortedList()...)
	// An odd request on SMT leaves one thread of the last core.
	if a.need%2 != 0 && perCore > 1 {
		list := cpus.List()
		if len(list) > a.need {
			list = list[:len(list)-1]
		}
		cpus = cpuset.New(list...)
	}
	if cpus.Size() == a.need {
		a.take(cpus)
	}
}

func (a *accumulator) takeUncoreCaches() {
	perCache := a.topo.CPUsPerUncoreCache()
	for _, cache := range a.sortedUncoreCaches() {
		if a.needsAtLeast(perCache) {
			a.takeFullUncoreCaches()
		}
		if a.satisfied() {
			return
		}
		a.takePartialUncoreCache(cache)
		if a.satisfied() {
			return
		}
	}
}

func (a *accumulator) takeFullCores() {
	perCore := a.topo.CPUsPerCore()
	for _, c := range a.sortedCores() {
		if a.free.CPUsInCores(c).Size() != perCore {
			continue
		}
		whole := a.topo.CPUDetails.CPUsInCores(c)
		if !a.needsAtLeast(whole.Size()) {
			continue
		}
		a.take(whole)
	}
}

func (a *accumulator) takeRemainingCPUs() {
	for _, cpu := range a.sortedCPUs() {
		a.take(cpuset.New(cpu))
		if a.satisfied() {
			return
		}
	}
}

// numaNodesNeeded bounds how many NUMA nodes a request of groups of
// groupSize CPUs can span: at least enough to hold it if nodes were
// evenly filled, at most one group per node.
func (a *accumulator) numaNodesNeeded(groupSize int) (lo, hi int) {
	nodes := a.topo.CPUDetails.NUMANodes().Size()
	groups := (a.topo.CPUDetails.CPUs().Size()-1)/groupSize + 1
	groupsPerNode := (groups-1)/nodes + 1
	groupsNeeded := (a.need-1)/groupSize + 1
	lo = (groupsNeeded-1)/groupsPerNode + 1
	hi = min(groupsNeeded, a.free.NUMANodes().Size())
	return lo, hi
}

// forEachCombination calls f with every k-element subset of ids, in
// lexicographic order of positions, until f returns false.
//
// Each subset is built by appending to its prefix, so subsets of four or
// more elements share storage with their siblings: a subset kept past the
// call to f is rewritten by the later ones. The kubelet's search keeps its
// best NUMA combination this way, and takeByTopologyNUMADistributed does
// the same so that it picks the same CPUs.
func forEachCombination(ids []int, k int, f func([]int) bool) {
	if k < 1 {
		return
	}
	var walk func(k, start int, acc []int) bool
	walk = func(k, start int, acc []int) bool {
		if k == 0 {
			return f(acc)
		}
		for i := start; i <= len(ids)-k; i++ {
			if !walk(k-1, i+1, append(acc, ids[i])) {
				return false
			}
		}
		return true
	}
	walk(k, 0, []int{})
}

// takeByTopologyNUMAPacked picks n CPUs from available: whole NUMA nodes
// and sockets (the upper of the two levels first), then, with
// preferUncore, whole or partial uncore caches, then whole cores (unless
// spreading), then single threads.
func takeByTopologyNUMAPacked(topo *Topology, available cpuset.CPUSet, n int, sorting cpuSorting, preferUncore bool) (cpuset.CPUSet, error) {
	a := newAccumulator(topo, available, n, sorting)
	if a.satisfied() {
		return a.result, nil
	}
	if a.failed() {
		return cpuset.New(), fmt.Errorf("not enough cpus available to satisfy request: requested=%d, available=%d", n, available.Size())
	}
	a.takeFullUpperLevel()
	if a.satisfied() {
		return a.result, nil
	}
	a.takeFullLowerLevel()
	if a.satisfied() {
		return a.result, nil
	}
	if preferUncore {
		a.takeUncoreCaches()
		if a.satisfied() {
			return a.result, nil
		}
	}
	if sorting != sortSpread {
		a.takeFullCores()
		if a.satisfied() {
			return a.result, nil
		}
	}
	a.takeRemainingCPUs()
	if a.satisfied() {
		return a.result, nil
	}
	return cpuset.New(), fmt.Errorf("failed to allocate cpus")
}

// balance is the spread (population standard deviation, rounded to three
// decimals) of the free CPU counts per NUMA node: lower is more even.
func balance(free map[int]int) float64 {
	if len(free) == 0 {
		return math.NaN()
	}
	var sum float64
	for _, v := range free {
		sum += float64(v)
	}
	mean := math.Round(sum/float64(len(free))*1000) / 1000
	var sq float64
	for _, v := range free {
		sq += (float64(v) - mean) * (float64(v) - mean)
	}
	return math.Round(math.Sqrt(sq/float64(len(free)))*1000) / 1000
}

// takeByTopologyNUMADistributed picks n CPUs spreading them evenly over
// the fewest NUMA nodes that can hold them, in groups of groupSize CPUs
// (a whole core with full-pcpus-only). For each node count k, from the
// least to the most that could work, it tries every k-node combination,
// splits n evenly over it, hands any remainder group by group to the
// subset of those nodes that leaves the free CPUs most even across the
// machine, and keeps the most even combination (with alignBySocket,
// combinations within one socket win first). If no combination works, or
// n is not a multiple of groupSize, it falls back to the packed picking.
func takeByTopologyNUMADistributed(topo *Topology, available cpuset.CPUSet, n, groupSize int, sorting cpuSorting, alignBySocket bool) (cpuset.CPUSet, error) {
	if n%groupSize != 0 {
		return takeByTopologyNUMAPacked(topo, available, n, sorting, false)
	}
	a := newAccumulator(topo, available, n, sorting)
	if a.satisfied() {
		return a.result, nil
	}
	if a.failed() {
		return cpuset.New(), fmt.Errorf("not enough cpus available to satisfy request: requested=%d, available=%d", n, available.Size())
	}
	nodes := a.sortedNUMANodes()
	freeIn := func(node int) int { return a.free.CPUsInNUMANodes(node).Size() }
	lo, hi := a.numaNodesNeeded(groupSize)

	for k := lo; k <= hi; k++ {
		bestBalance := math.MaxFloat64
		var bestRemainder, bestCombo []int
		bestInOneSocket := false

		forEachCombination(nodes, k, func(combo []int) bool {
			if bestBalance == 0 && (!alignBySocket || bestInOneSocket) {
				return false
			}
			if a.free.CPUsInNUMANodes(combo...).Size() < n {
				return true
			}
			groups := 0
			for _, node := range combo {
				groups += freeIn(node) / groupSize
			}
			if groups*groupSize < n {
				return true
			}
			share := (n / len(combo) / groupSize) * groupSize
			if alignBySocket {
				for _, node := range combo {
					share = min(share, freeIn(node)/groupSize*groupSize)
				}
			}
			for _, node := range combo {
				if freeIn(node) < share {
					return true
				}
			}
			after := make(map[int]int, len(nodes))
			for _, node := range nodes {
				after[node] = freeIn(node)
			}
			for _, node := range combo {
				after[node] -= share
			}
			remainder := n - share*len(combo)
			var candidates []int
			for _, node := range combo {
				if after[node] >= groupSize {
					candidates = append(candidates, node)
				}
			}

			localBalance := math.MaxFloat64
			var localRemainder []int
			if remainder == 0 {
				localBalance = balance(after)
			}
			for size := len(candidates); remainder > 0 && size >= 1; size-- {
				forEachCombination(candidates, size, func(subset []int) bool {
					left := maps.Clone(after)
					total := 0
					for _, node := range subset {
						total += left[node]
					}
					if total < remainder {
						return true
					}
					for r := remainder; r > 0; {
						for _, node := range subset {
							if r == 0 {
								break
							}
							if left[node] < groupSize {
								continue
							}
							left[node] -= groupSize
							r -= groupSize
						}
					}
					if b := balance(left); b < localBalance {
						localBalance = b
						localRemainder = subset
					}
					return true
				})
			}

			inOneSocket := alignBySocket && topo.CPUDetails.NUMANodesInSameSocket(combo)
			better := localBalance < bestBalance
			if alignBySocket && inOneSocket != bestInOneSocket {
				better = inOneSocket
			}
			if better {
				bestBalance = localBalance
				bestRemainder = localRemainder
				bestCombo = combo
				bestInOneSocket = inOneSocket
			}
			return true
		})

		if bestCombo == nil {
			continue
		}

		share := (n / len(bestCombo) / groupSize) * groupSize
		for _, node := range bestCombo {
			share = min(share, freeIn(node)/groupSize*groupSize)
		}
		for _, node := range bestCombo {
			cpus, _ := takeByTopologyNUMAPacked(topo, a.free.CPUsInNUMANodes(node), share, sorting, false)
			a.take(cpus)
		}
		for r := n - share*len(bestCombo); r > 0; {
			progressed := false
			for _, node := range bestRemainder {
				if r == 0 {
					break
				}
				if freeIn(node) < groupSize {
					continue
				}
				cpus, _ := takeByTopologyNUMAPacked(topo, a.free.CPUsInNUMANodes(node), groupSize, sorting, false)
				a.take(cpus)
				r -= groupSize
				progressed = true
			}
			if !progressed {
				break
			}
		}
		if a.need > 0 {
			return cpuset.New(), fmt.Errorf("accounting error, not enough CPUs allocated, remaining: %v", a.need)
		}
		if a.need < 0 {
			return cpuset.New(), fmt.Errorf("accounting error, too many CPUs allocated, remaining: %v", a.need)
		}
		return a.result, nil
	}
	return takeByTopologyNUMAPacked(topo, available, n, sorting, false)
}
