package cpumanager

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/utils/cpuset"
)

// ContainerCPUAssignments holds exclusive CPUs by pod UID and container
// name.
type ContainerCPUAssignments map[string]map[string]cpuset.CPUSet

// Clone returns a deep copy.
func (a ContainerCPUAssignments) Clone() ContainerCPUAssignments {
	out := make(ContainerCPUAssignments, len(a))
	for pod, containers := range a {
		out[pod] = maps.Clone(containers)
	}
	return out
}

// String prints the assignments sorted by pod and container, e.g.
// {"pod-a":{"app":"2,8"}}.
func (a ContainerCPUAssignments) String() string {
	var b strings.Builder
	b.WriteString("{")
	for i, pod := range slices.Sorted(maps.Keys(a)) {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%q:{", pod)
		for j, name := range slices.Sorted(maps.Keys(a[pod])) {
			if j > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "%q:%q", name, a[pod][name].String())
		}
		b.WriteString("}")
	}
	b.WriteString("}")
	return b.String()
}

// State is what the CPU manager remembers: the shared pool and the
// exclusive assignments. It is what the checkpoint file holds, and what a
// Policy reads and changes. A State is a plain value owned by one
// goroutine; the zero State is empty and ready to use (a policy's Start
// fills it). Allocator keeps one behind a lock and persists it.
type State struct {
	// DefaultCPUSet is the shared pool: the CPUs of every container
	// without exclusive CPUs. Under the static policy it holds every CPU
	// not exclusively assigned, reserved CPUs included (excluded with
	// strict-cpu-reservation).
	DefaultCPUSet cpuset.CPUSet
	// Assignments holds the exclusive CPUs of each pinned container.
	Assignments ContainerCPUAssignments

	// reusable holds, for the pod being admitted, the CPUs its finished
	// init containers held and its app containers may take again. Like
	// the kubelet's, it is not persisted: after a restart nothing is
	// reused.
	reusable map[string]cpuset.CPUSet
}

// Clone returns a deep copy of s.
func (s *State) Clone() State {
	out := State{DefaultCPUSet: s.DefaultCPUSet.Clone(), Assignments: s.Assignments.Clone()}
	if s.reusable != nil {
		out.reusable = maps.Clone(s.reusable)
	}
	return out
}

// CPUSet returns the exclusive CPUs of a container, if it has any.
func (s *State) CPUSet(podUID, containerName string) (cpuset.CPUSet, bool) {
	cset, ok := s.Assignments[podUID][containerName]
	return cset, ok
}

// CPUSetOrDefault returns the CPUs a container runs on: its exclusive CPUs,
// else the shared pool (which under the none policy is empty, meaning "no
// pinning").
func (s *State) CPUSetOrDefault(podUID, containerName string) cpuset.CPUSet {
	if cset, ok := s.CPUSet(podUID, containerName); ok {
		return cset
	}
	return s.DefaultCPUSet
}

// SetCPUSet records exclusive CPUs for a container.
func (s *State) SetCPUSet(podUID, containerName string, cset cpuset.CPUSet) {
	if s.Assignments == nil {
		s.Assignments = ContainerCPUAssignments{}
	}
	if s.Assignments[podUID] == nil {
		s.Assignments[podUID] = map[string]cpuset.CPUSet{}
	}
	s.Assignments[podUID][containerName] = cset
}

// Delete forgets a container's exclusive CPUs (without returning them to
// the shared pool: that is the policy's RemoveContainer).
func (s *State) Delete(podUID, containerName string) {
	delete(s.Assignments[podUID], containerName)
	if len(s.Assignments[podUID]) == 0 {
		delete(s.Assignments, podUID)
	}
}

// ExclusiveCPUs returns every CPU assigned exclusively to some container.
// Its size is the kubelet's cpu_manager_exclusive_cpu_allocation_count.
func (s *State) ExclusiveCPUs() cpuset.CPUSet {
	out := cpuset.New()
	for _, containers := range s.Assignments {
		for _, cset := range containers {
			out = out.Union(cset)
		}
	}
	return out
}

// NumExclusiveContainers is the number of containers holding exclusive
// CPUs.
func (s *State) NumExclusiveContainers() int {
	n := 0
	for _, containers := range s.Assignments {
		n += len(containers)
	}
	return n
}

// equal reports whether two states hold the same pool and assignments.
func (s *State) equal(o *State) bool {
	if !sameCPUs(s.DefaultCPUSet, o.DefaultCPUSet) || len(s.Assignments) != len(o.Assignments) {
		return false
	}
	for pod, containers := range s.Assignments {
		other, ok := o.Assignments[pod]
		if !ok || len(other) != len(containers) {
			return false
		}
		for name, cset := range containers {
			if oc, ok := other[name]; !ok || !sameCPUs(oc, cset) {
				return false
			}
		}
	}
	return true
}

// sameCPUs compares two sets by content (cpuset.CPUSet.Equals tells a
// zero CPUSet from an empty one).
func sameCPUs(a, b cpuset.CPUSet) bool { return a.Size() == b.Size() && a.IsSubsetOf(b) }
