package cpumanager

import (
	"fmt"
	"maps"
	"slices"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/utils/cpuset"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
)

// StaticPolicyConfig configures the static policy.
type StaticPolicyConfig struct {
	// Topology of the machine. Required.
	Topology *Topology
	// NumReservedCPUs is how many CPUs are kept for the system and the
	// kubelet and never given exclusively: the kubelet's
	// ceil(systemReserved.cpu + kubeReserved.cpu). Without ReservedCPUs
	// they are picked by topology, lowest cores first (for example {0,4}
	// for two CPUs on a 4-core machine with 2 threads per core). The
	// static policy requires at least one reserved CPU.
	NumReservedCPUs int
	// ReservedCPUs lists the reserved CPUs explicitly (the kubelet's
	// reservedSystemCPUs). When set, NumReservedCPUs may be zero (it is
	// then the list's size) or must equal the list's size.
	ReservedCPUs cpuset.CPUSet
	// Options are the kubelet's cpuManagerPolicyOptions (see the
	// ...Option constants).
	Options map[string]string
	// EnableAlphaOptions allows the alpha options (the kubelet's
	// CPUManagerPolicyAlphaOptions feature gate, off by default).
	EnableAlphaOptions bool
	// DisableBetaOptions forbids the beta options (the kubelet's
	// CPUManagerPolicyBetaOptions feature gate, on by default).
	DisableBetaOptions bool
	// Affinity, when set, supplies the NUMA placement a topology manager
	// chose for each container; CPUs are taken from those nodes first.
	// Nil means no NUMA preference (the topology manager's none policy).
	Affinity AffinityStore
	// TopologyManagerPolicy names the topology manager's policy, if one
	// runs ("none", "best-effort", "restricted", "single-numa-node"). It
	// is only checked: align-by-socket cannot be used with
	// single-numa-node.
	TopologyManagerPolicy string
}

// StaticPolicy is the kubelet's static CPU manager policy. A container
// gets exclusive CPUs when its pod is Guaranteed and its CPU request is a
// whole number; every other container runs in the shared pool.
//
// The CPUs fall into these sets:
//
//   - SHARED, the State's DefaultCPUSet: every CPU not exclusively
//     assigned. It shrinks and grows as exclusive assignments come and go.
//   - RESERVED: part of SHARED that is never assigned exclusively (with
//     strict-cpu-reservation, not part of SHARED either).
//   - ASSIGNABLE: SHARED minus RESERVED; exclusive CPUs come from here.
//   - EXCLUSIVE: the CPUs assigned to containers, in the State's
//     Assignments.
//
// CPUs are picked topologically (the kubelet's takeByTopology): whole
// NUMA nodes and sockets when the request is that large, then whole
// cores, then single threads, each time from the most used group first so
// that free groups stay whole. With a topology manager's affinity, CPUs
// from the chosen NUMA nodes are taken first.
//
// Init containers are allocated before app containers: the CPUs a
// regular init container held may be taken again by the app containers of
// the same pod, since they never run at the same time. Sidecars
// (restartable init containers) keep theirs.
//
// Pods that set pod-level resources are left in the shared pool (the
// kubelet's PodLevelResourceManagers feature is off by default).
type StaticPolicy struct {
	topo *Topology
	// reserved never goes to a container exclusively.
	reserved cpuset.CPUSet
	// reservedCores is reserved plus the sibling threads of its CPUs:
	// with full-pcpus-only no core with a reserved thread is assigned.
	reservedCores cpuset.CPUSet
	opts          StaticPolicyOptions
	groupSize     int
	affinity      AffinityStore
}

var _ Policy = (*StaticPolicy)(nil)

// NewStaticPolicy validates the configuration, parses the options and
// picks the reserved CPUs. Errors wrap core.ErrInvalid and name the field
// or option at fault.
func NewStaticPolicy(cfg StaticPolicyConfig) (*StaticPolicy, error) {
	topo := cfg.Topology
	if topo == nil || topo.NumCPUs == 0 {
		return nil, fmt.Errorf("cpumanager: static policy: Topology is required: %w", core.ErrInvalid)
	}
	if slices.ContainsFunc(topo.CPUDetails.NUMANodes().List(), func(n int) bool { return n > 63 }) {
		return nil, fmt.Errorf("cpumanager: static policy: Topology: NUMA node IDs above 63 are not supported: %w", core.ErrInvalid)
	}
	opts, err := parseStaticPolicyOptions(cfg.Options, cfg.EnableAlphaOptions, !cfg.DisableBetaOptions)
	if err != nil {
		return nil, fmt.Errorf("cpumanager: static policy: Options: %w", err)
	}
	if err := opts.validateForMachine(topo, cfg.TopologyManagerPolicy); err != nil {
		return nil, fmt.Errorf("cpumanager: static policy: Options: %w", err)
	}
	p := &StaticPolicy{
		topo:      topo,
		opts:      opts,
		groupSize: topo.CPUsPerCore(),
		affinity:  cfg.Affinity,
	}

	n := cfg.NumReservedCPUs
	if n == 0 {
		n = cfg.ReservedCPUs.Size()
	}
	if n <= 0 {
		return nil, fmt.Errorf("cpumanager: static policy: NumReservedCPUs: the static policy requires systemreserved.cpu + kubereserved.cpu to be greater than zero: %w", core.ErrInvalid)
	}
	reserved := cfg.ReservedCPUs
	if reserved.IsEmpty() {
		// Errors leave reserved empty, caught just below.
		reserved, _ = p.takeByTopology(topo.CPUs(), n)
	}
	if reserved.Size() != n {
		return nil, fmt.Errorf("cpumanager: static policy: ReservedCPUs: unable to reserve the required amount of CPUs (size of %s did not equal %d): %w", reserved, n, core.ErrInvalid)
	}
	cores := cpuset.New()
	for _, cpu := range reserved.List() {
		info, ok := topo.CPUDetails[cpu]
		if !ok {
			return nil, fmt.Errorf("cpumanager: static policy: ReservedCPUs: unknown CPU ID: %d: %w", cpu, core.ErrInvalid)
		}
		cores = cores.Union(topo.CPUDetails.CPUsInCores(info.CoreID))
	}
	p.reserved = reserved
	p.reservedCores = cores
	return p, nil
}

// Name returns "static".
func (p *StaticPolicy) Name() string { return PolicyStatic }

// Options returns the parsed options.
func (p *StaticPolicy) Options() StaticPolicyOptions { return p.opts }

// Topology returns the machine the policy allocates on.
func (p *StaticPolicy) Topology() *Topology { return p.topo }

// ReservedCPUs returns the CPUs never assigned exclusively.
func (p *StaticPolicy) ReservedCPUs() cpuset.CPUSet { return p.reserved }

// AllocatableCPUs is every CPU but the reserved ones.
func (p *StaticPolicy) AllocatableCPUs() cpuset.CPUSet {
	return p.topo.CPUs().Difference(p.reserved)
}

// AvailableCPUs is the shared pool minus the reserved CPUs: what can be
// assigned exclusively right now.
func (p *StaticPolicy) AvailableCPUs(s *State) cpuset.CPUSet {
	return s.DefaultCPUSet.Difference(p.reserved)
}

// Start fills an empty state with every CPU (but the reserved ones under
// strict-cpu-reservation) as the shared pool, or checks a restored one the
// way the kubelet does: reserved CPUs in the pool (or, strictly, not),
// no exclusive CPU in the pool, and pool plus assignments covering exactly
// the machine's CPUs. A mismatch is an error wrapping core.ErrInvalid: the
// state was written for another machine or configuration.
func (p *StaticPolicy) Start(s *State) error {
	all := p.topo.CPUs()
	if p.opts.StrictCPUReservation {
		all = all.Difference(p.reserved)
	}
	if s.DefaultCPUSet.IsEmpty() {
		if len(s.Assignments) != 0 {
			return fmt.Errorf("cpumanager: static policy: default cpuset cannot be empty: %w", core.ErrInvalid)
		}
		s.DefaultCPUSet = all
		return nil
	}
	if p.opts.StrictCPUReservation {
		if in := p.reserved.Intersection(s.DefaultCPUSet); !in.IsEmpty() {
			return fmt.Errorf("cpumanager: static policy: some of strictly reserved cpus: %q are present in defaultCpuSet: %q: %w", in.String(), s.DefaultCPUSet.String(), core.ErrInvalid)
		}
	} else if !p.reserved.Intersection(s.DefaultCPUSet).Equals(p.reserved) {
		return fmt.Errorf("cpumanager: static policy: not all reserved cpus: %q are present in defaultCpuSet: %q: %w", p.reserved.String(), s.DefaultCPUSet.String(), core.ErrInvalid)
	}
	known := s.DefaultCPUSet
	for _, pod := range slices.Sorted(maps.Keys(s.Assignments)) {
		for _, name := range slices.Sorted(maps.Keys(s.Assignments[pod])) {
			cset := s.Assignments[pod][name]
			if !s.DefaultCPUSet.Intersection(cset).IsEmpty() {
				return fmt.Errorf("cpumanager: static policy: pod: %s, container: %s cpuset: %q overlaps with default cpuset %q: %w", pod, name, cset.String(), s.DefaultCPUSet.String(), core.ErrInvalid)
			}
			known = known.Union(cset)
		}
	}
	if !known.Equals(all) {
		return fmt.Errorf("cpumanager: static policy: current set of available CPUs %q doesn't match with CPUs in state %q: %w", all.String(), known.String(), core.ErrInvalid)
	}
	return nil
}

// GuaranteedCPUs is the number of exclusive CPUs a container qualifies
// for under the static policy: its CPU request when its pod's QoS class
// is Guaranteed and the request is a whole number of CPUs, else 0.
func GuaranteedCPUs(pod *v1.Pod, container *v1.Container) int {
	if crispec.PodQOS(pod) != v1.PodQOSGuaranteed {
		return 0
	}
	q := container.Resources.Requests[v1.ResourceCPU]
	if !wholeCPUs(q) {
		return 0
	}
	return int(q.Value())
}

func wholeCPUs(q resource.Quantity) bool { return q.Value()*1000 == q.MilliValue() }

// podGuaranteedCPUs is the exclusive CPUs a pod needs at its peak: the
// larger of its long-running containers' sum (app containers and
// sidecars) and, for each regular init container, its own request plus
// the sidecars started before it.
func podGuaranteedCPUs(pod *v1.Pod) int {
	initPeak, sidecars := 0, 0
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if _, ok := c.Resources.Requests[v1.ResourceCPU]; !ok {
			continue
		}
		n := GuaranteedCPUs(pod, c)
		if core.IsSidecar(c) {
			sidecars += n
		} else if sidecars+n > initPeak {
			initPeak = sidecars + n
		}
	}
	apps := 0
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if _, ok := c.Resources.Requests[v1.ResourceCPU]; !ok {
			continue
		}
		apps += GuaranteedCPUs(pod, c)
	}
	return max(initPeak, apps+sidecars)
}

// podLevelResources reports pods whose CPUs the kubelet leaves to the
// shared pool by default: those setting pod-level resources.
func podLevelResources(pod *v1.Pod) bool { return resourcehelper.IsPodLevelResourcesSet(pod) }

// Allocate gives a container of a Guaranteed pod with a whole-number CPU
// request that many exclusive CPUs, taken out of the shared pool; others
// get nothing and run in the shared pool. A container that already has
// CPUs (a restarted kubelet re-admitting its pods) keeps them, even if the
// options changed since. With full-pcpus-only a request that whole free
// cores cannot meet fails with an SMTAlignmentError; a request larger
// than the free CPUs fails with an error. On error the state is unchanged.
func (p *StaticPolicy) Allocate(s *State, pod *v1.Pod, container *v1.Container) (cpuset.CPUSet, error) {
	n := GuaranteedCPUs(pod, container)
	if n == 0 || podLevelResources(pod) {
		return cpuset.New(), nil
	}
	podUID := string(pod.UID)
	if cset, ok := s.CPUSet(podUID, container.Name); ok {
		p.updateReusable(s, pod, container, cset)
		return cset, nil
	}
	if err := p.checkSMTAlignment(s, n); err != nil {
		return cpuset.New(), err
	}
	var affinity NUMAMask
	if p.affinity != nil {
		affinity = p.affinity.GetAffinity(podUID, container.Name).NUMANodeAffinity
	}
	cset, err := p.allocateCPUs(s, n, affinity, s.reusable[podUID])
	if err != nil {
		return cpuset.New(), &allocationError{podUID: podUID, container: container.Name, n: n, err: err}
	}
	s.SetCPUSet(podUID, container.Name, cset)
	p.updateReusable(s, pod, container, cset)
	return cset, nil
}

// allocationError is the static policy's failure to find a container's
// CPUs. err is the cause in the kubelet's words ("not enough cpus
// available to satisfy request: ..."), which admission reports.
type allocationError struct {
	podUID, container string
	n                 int
	err               error
}

func (e *allocationError) Error() string {
	return fmt.Sprintf("cpumanager: pod %s container %q: allocate %d exclusive CPUs: %v", e.podUID, e.container, e.n, e.err)
}

func (e *allocationError) Unwrap() error { return e.err }

// checkSMTAlignment enforces full-pcpus-only.
func (p *StaticPolicy) checkSMTAlignment(s *State, n int) error {
	if !p.opts.FullPhysicalCPUsOnly {
		return nil
	}
	if n%p.groupSize != 0 {
		return SMTAlignmentError{RequestedCPUs: n, CpusPerCore: p.groupSize}
	}
	// Cores with a reserved thread do not count: taking their other
	// threads would break the whole-core guarantee.
	avail := s.DefaultCPUSet.Difference(p.reservedCores).Size()
	if n > avail {
		return SMTAlignmentError{RequestedCPUs: n, CpusPerCore: p.groupSize, AvailablePhysicalCPUs: avail, CausedByPhysicalCPUs: true}
	}
	return nil
}

// updateReusable tracks the CPUs the pod's app containers may take again:
// a regular init container's CPUs join them, an app container's (or a
// sidecar's) leave them. Only the pod being admitted is remembered.
func (p *StaticPolicy) updateReusable(s *State, pod *v1.Pod, container *v1.Container, cset cpuset.CPUSet) {
	podUID := string(pod.UID)
	for uid := range s.reusable {
		if uid != podUID {
			delete(s.reusable, uid)
		}
	}
	if s.reusable == nil {
		s.reusable = map[string]cpuset.CPUSet{}
	}
	if _, ok := s.reusable[podUID]; !ok {
		s.reusable[podUID] = cpuset.New()
	}
	for i := range pod.Spec.InitContainers {
		init := &pod.Spec.InitContainers[i]
		if init.Name != container.Name {
			continue
		}
		if core.IsSidecar(init) {
			break
		}
		s.reusable[podUID] = s.reusable[podUID].Union(cset)
		return
	}
	s.reusable[podUID] = s.reusable[podUID].Difference(cset)
}

// allocateCPUs takes n CPUs from the assignable ones plus reusable,
// aligned to the NUMA affinity first, and removes them from the shared
// pool.
func (p *StaticPolicy) allocateCPUs(s *State, n int, affinity NUMAMask, reusable cpuset.CPUSet) (cpuset.CPUSet, error) {
	allocatable := p.AvailableCPUs(s).Union(reusable)
	result := cpuset.New()
	if affinity != 0 {
		aligned := p.alignedCPUs(affinity, allocatable)
		got, err := p.takeByTopology(aligned, min(n, aligned.Size()))
		if err != nil {
			return cpuset.New(), err
		}
		result = got
	}
	rest, err := p.takeByTopology(allocatable.Difference(result), n-result.Size())
	if err != nil {
		return cpuset.New(), err
	}
	result = result.Union(rest)
	s.DefaultCPUSet = s.DefaultCPUSet.Difference(result)
	return result, nil
}

// alignedCPUs are the allocatable CPUs on the affinity's NUMA nodes, or on
// their sockets with align-by-socket.
func (p *StaticPolicy) alignedCPUs(affinity NUMAMask, allocatable cpuset.CPUSet) cpuset.CPUSet {
	nodes := affinity.Nodes()
	if p.opts.AlignBySocket {
		sockets := p.topo.CPUDetails.SocketsInNUMANodes(nodes...).List()
		return allocatable.Intersection(p.topo.CPUDetails.CPUsInSockets(sockets...))
	}
	return allocatable.Intersection(p.topo.CPUDetails.CPUsInNUMANodes(nodes...))
}

// takeByTopology picks n of available according to the options.
func (p *StaticPolicy) takeByTopology(available cpuset.CPUSet, n int) (cpuset.CPUSet, error) {
	sorting := sortPacked
	if p.opts.DistributeCPUsAcrossCores {
		sorting = sortSpread
	}
	if p.opts.DistributeCPUsAcrossNUMA {
		group := 1
		if p.opts.FullPhysicalCPUsOnly {
			group = p.groupSize
		}
		return takeByTopologyNUMADistributed(p.topo, available, n, group, sorting, p.opts.AlignBySocket)
	}
	return takeByTopologyNUMAPacked(p.topo, available, n, sorting, p.opts.PreferAlignByUncoreCache)
}

// RemoveContainer returns a container's exclusive CPUs to the shared pool,
// except those another container of the same pod still holds (an app
// container reusing its init container's CPUs). It reports the CPUs
// released.
func (p *StaticPolicy) RemoveContainer(s *State, podUID, containerName string) cpuset.CPUSet {
	cset, ok := s.CPUSet(podUID, containerName)
	if !ok {
		return cpuset.New()
	}
	s.Delete(podUID, containerName)
	for _, other := range s.Assignments[podUID] {
		cset = cset.Difference(other)
	}
	s.DefaultCPUSet = s.DefaultCPUSet.Union(cset)
	return cset
}

// TopologyHints returns the NUMA placements that could hold a container's
// exclusive CPUs: every set of NUMA nodes with enough free (or reusable)
// CPUs, preferred when no smaller set of nodes could hold the request on
// an empty machine. A container that gets no exclusive CPUs has no
// preference (nil). A container that already has CPUs gets the hints of
// those, or an empty list (cannot be satisfied) if its request changed.
func (p *StaticPolicy) TopologyHints(s *State, pod *v1.Pod, container *v1.Container) map[string][]TopologyHint {
	n := GuaranteedCPUs(pod, container)
	if n == 0 || podLevelResources(pod) {
		return nil
	}
	if held, ok := s.CPUSet(string(pod.UID), container.Name); ok {
		if held.Size() != n {
			return map[string][]TopologyHint{string(v1.ResourceCPU): {}}
		}
		return map[string][]TopologyHint{string(v1.ResourceCPU): p.hints(held, cpuset.New(), n)}
	}
	return map[string][]TopologyHint{
		string(v1.ResourceCPU): p.hints(p.AvailableCPUs(s), s.reusable[string(pod.UID)], n),
	}
}

// PodTopologyHints returns the hints for all of a pod's exclusive CPUs at
// once (the topology manager's pod scope), counting the CPUs its
// containers already hold.
func (p *StaticPolicy) PodTopologyHints(s *State, pod *v1.Pod) map[string][]TopologyHint {
	n := podGuaranteedCPUs(pod)
	if n == 0 || podLevelResources(pod) {
		return nil
	}
	held := cpuset.New()
	for _, list := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			c := &list[i]
			cset, ok := s.CPUSet(string(pod.UID), c.Name)
			if !ok {
				continue
			}
			if cset.Size() != GuaranteedCPUs(pod, c) {
				return map[string][]TopologyHint{string(v1.ResourceCPU): {}}
			}
			held = held.Union(cset)
		}
	}
	if held.Size() == n {
		return map[string][]TopologyHint{string(v1.ResourceCPU): p.hints(held, cpuset.New(), n)}
	}
	reusable := s.reusable[string(pod.UID)].Union(held)
	return map[string][]TopologyHint{string(v1.ResourceCPU): p.hints(p.AvailableCPUs(s), reusable, n)}
}

// hints lists every set of NUMA nodes that holds all the reusable CPUs
// and, with the available ones, at least request CPUs; those as narrow as
// the narrowest set of nodes that could hold the request on the whole
// machine are preferred (with align-by-socket, those spanning the fewest
// sockets that could).
func (p *StaticPolicy) hints(available, reusable cpuset.CPUSet, request int) []TopologyHint {
	details := p.topo.CPUDetails
	nodes := details.NUMANodes().List()
	minWidth := len(nodes)
	out := []TopologyHint{}
	forEachNUMAMask(nodes, func(mask NUMAMask) {
		if details.CPUsInNUMANodes(mask.Nodes()...).Size() >= request && mask.Count() < minWidth {
			minWidth = mask.Count()
		}
		matching := 0
		for _, cpu := range reusable.List() {
			if !mask.IsSet(details[cpu].NUMANodeID) {
				return
			}
			matching++
		}
		for _, cpu := range available.List() {
			if mask.IsSet(details[cpu].NUMANodeID) {
				matching++
			}
		}
		if matching < request {
			return
		}
		out = append(out, TopologyHint{NUMANodeAffinity: mask})
	})
	for i := range out {
		if p.opts.AlignBySocket && p.socketAligned(out[i], minWidth) {
			out[i].Preferred = true
			continue
		}
		if out[i].NUMANodeAffinity.Count() == minWidth {
			out[i].Preferred = true
		}
	}
	return out
}

// socketAligned reports whether a hint spans no more sockets than the
// narrowest placement needs.
func (p *StaticPolicy) socketAligned(h TopologyHint, minWidth int) bool {
	if p.topo.NumSockets == 0 {
		return false
	}
	perSocket := p.topo.NumNUMANodes / p.topo.NumSockets
	if perSocket == 0 {
		return false
	}
	minSockets := (minWidth + perSocket - 1) / perSocket
	return p.topo.CPUDetails.SocketsInNUMANodes(h.NUMANodeAffinity.Nodes()...).Size() == minSockets
}
