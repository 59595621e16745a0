package cpumanager

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/cpuset"
)

// The policy names, as in the kubelet's --cpu-manager-policy and in the
// checkpoint's policyName.
const (
	PolicyNone   = "none"
	PolicyStatic = "static"
)

// Policy decides which CPUs containers run on. It is a deterministic core:
// it holds only its configuration, and every call reads and changes the
// State passed in, nothing else (no I/O, no clock, no goroutines). Calls
// on one State must not run concurrently; Allocator serialises them and
// persists the State after each change.
//
// The methods follow the kubelet's CPU manager policies:
//
//   - Start validates a State restored from a checkpoint against the
//     machine and the configuration, and fills an empty one.
//   - Allocate runs at pod admission for each container, init containers
//     first, and returns the container's exclusive CPUs: empty when it runs
//     in the shared pool. Allocating a container that already has CPUs
//     returns them again.
//   - RemoveContainer returns a container's exclusive CPUs to the shared
//     pool (those its pod's other containers do not still hold) and
//     reports what it released.
//   - TopologyHints and PodTopologyHints answer a topology manager
//     (see HintProvider).
//   - AllocatableCPUs is every CPU that may ever be assigned exclusively;
//     AvailableCPUs the ones that may be right now (shared pool minus
//     reserved: cpu_manager_shared_pool_size_millicores is its size × 1000).
type Policy interface {
	Name() string
	Start(s *State) error
	Allocate(s *State, pod *v1.Pod, container *v1.Container) (cpuset.CPUSet, error)
	RemoveContainer(s *State, podUID, containerName string) cpuset.CPUSet
	TopologyHints(s *State, pod *v1.Pod, container *v1.Container) map[string][]TopologyHint
	PodTopologyHints(s *State, pod *v1.Pod) map[string][]TopologyHint
	AllocatableCPUs() cpuset.CPUSet
	AvailableCPUs(s *State) cpuset.CPUSet
}

// ErrorSMTAlignment is the Type of an SMTAlignmentError: the reason the
// kubelet gives a pod it rejects for it.
const ErrorSMTAlignment = "SMTAlignmentError"

// SMTAlignmentError is returned by the static policy with full-pcpus-only
// when a container's request cannot be met with whole physical cores:
// either it is not a multiple of the threads per core, or not enough whole
// cores are free. Pod admission fails with it (the pod is rejected with
// reason Type()), exactly as the kubelet's.
type SMTAlignmentError struct {
	RequestedCPUs         int
	CpusPerCore           int
	AvailablePhysicalCPUs int
	CausedByPhysicalCPUs  bool
}

// Error returns the kubelet's message.
func (e SMTAlignmentError) Error() string {
	if e.CausedByPhysicalCPUs {
		return fmt.Sprintf("SMT Alignment Error: not enough free physical CPUs: available physical CPUs = %d, requested CPUs = %d, CPUs per core = %d",
			e.AvailablePhysicalCPUs, e.RequestedCPUs, e.CpusPerCore)
	}
	return fmt.Sprintf("SMT Alignment Error: requested %d cpus not multiple cpus per core = %d", e.RequestedCPUs, e.CpusPerCore)
}

// Type is the admission failure reason, "SMTAlignmentError".
func (e SMTAlignmentError) Type() string { return ErrorSMTAlignment }
