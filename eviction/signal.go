package eviction

import (
	"slices"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Signal names a measured amount of a node resource that eviction
// thresholds are set on, with the kubelet's spelling. Every signal is an
// amount still available: a threshold on it is met when the amount falls
// below the threshold.
type Signal string

// The signals thresholds can be set on.
const (
	// SignalMemoryAvailable is the node's memory capacity less its working
	// set, in bytes (Observations.Memory).
	SignalMemoryAvailable Signal = "memory.available"
	// SignalAllocatableMemoryAvailable is the memory the pods' cgroup may
	// still use: its limit (the node's allocatable memory) less its working
	// set, in bytes (Observations.AllocatableMemory).
	SignalAllocatableMemoryAvailable Signal = "allocatableMemory.available"
	// SignalNodeFsAvailable is the free space of the filesystem that holds
	// the kubelet's root directory: volumes, logs and, without a dedicated
	// image filesystem, images and writable layers.
	SignalNodeFsAvailable Signal = "nodefs.available"
	// SignalNodeFsInodesFree is the number of free inodes on the nodefs.
	SignalNodeFsInodesFree Signal = "nodefs.inodesFree"
	// SignalImageFsAvailable is the free space of the filesystem the
	// container runtime keeps image layers on (and writable layers, unless
	// the container filesystem is split from it).
	SignalImageFsAvailable Signal = "imagefs.available"
	// SignalImageFsInodesFree is the number of free inodes on the imagefs.
	SignalImageFsInodesFree Signal = "imagefs.inodesFree"
	// SignalContainerFsAvailable is the free space of the filesystem that
	// holds containers' writable layers. Its thresholds are never taken
	// from the configuration: they mirror those of nodefs.available or
	// imagefs.available, whichever filesystem the writable layers are on
	// (see Policy).
	SignalContainerFsAvailable Signal = "containerfs.available"
	// SignalContainerFsInodesFree is the number of free inodes on the
	// containerfs, with thresholds mirrored as for SignalContainerFsAvailable.
	SignalContainerFsInodesFree Signal = "containerfs.inodesFree"
	// SignalPIDAvailable is the number of process IDs still available: the
	// node's maximum less the processes running.
	SignalPIDAvailable Signal = "pid.available"
)

// Signals that name the cause of a local storage limit eviction. They are
// not thresholds and cannot be configured; they are the label of such an
// eviction in the kubelet's kubelet_evictions metric (Eviction.Signal).
const (
	// SignalEmptyDirFsLimit: an emptyDir volume grew past its sizeLimit.
	SignalEmptyDirFsLimit Signal = "emptydirfs.limit"
	// SignalEphemeralPodFsLimit: a pod's local ephemeral storage grew past
	// the sum of its containers' ephemeral-storage limits.
	SignalEphemeralPodFsLimit Signal = "ephemeralpodfs.limit"
	// SignalEphemeralContainerFsLimit: a container's logs and writable layer
	// grew past its ephemeral-storage limit.
	SignalEphemeralContainerFsLimit Signal = "ephemeralcontainerfs.limit"
)

// Resources that signals measure besides v1.ResourceMemory and
// v1.ResourceEphemeralStorage. They are named in eviction messages and
// annotations ("The node was low on resource: inodes. ").
const (
	// ResourceInodes counts inodes of a filesystem.
	ResourceInodes v1.ResourceName = "inodes"
	// ResourcePIDs counts process IDs.
	ResourcePIDs v1.ResourceName = "pids"
)

// signalInfo is what the package knows of a signal.
type signalInfo struct {
	signal    Signal
	resource  v1.ResourceName
	condition v1.NodeConditionType
}

// signalTable lists the threshold signals in the order the package reports
// and breaks ties between them: memory first, as the kubelet reclaims it
// first, then the filesystems, then PIDs.
var signalTable = [...]signalInfo{
	{SignalMemoryAvailable, v1.ResourceMemory, v1.NodeMemoryPressure},
	{SignalAllocatableMemoryAvailable, v1.ResourceMemory, v1.NodeMemoryPressure},
	{SignalNodeFsAvailable, v1.ResourceEphemeralStorage, v1.NodeDiskPressure},
	{SignalNodeFsInodesFree, ResourceInodes, v1.NodeDiskPressure},
	{SignalImageFsAvailable, v1.ResourceEphemeralStorage, v1.NodeDiskPressure},
	{SignalImageFsInodesFree, ResourceInodes, v1.NodeDiskPressure},
	{SignalContainerFsAvailable, v1.ResourceEphemeralStorage, v1.NodeDiskPressure},
	{SignalContainerFsInodesFree, ResourceInodes, v1.NodeDiskPressure},
	{SignalPIDAvailable, ResourcePIDs, v1.NodePIDPressure},
}

// Signals returns the signals thresholds can be set on, memory first.
func Signals() []Signal {
	out := make([]Signal, len(signalTable))
	for i, s := range signalTable {
		out[i] = s.signal
	}
	return out
}

func (s Signal) info() (signalInfo, bool) {
	for _, si := range signalTable {
		if si.signal == s {
			return si, true
		}
	}
	return signalInfo{}, false
}

// order is the signal's place in signalTable; unknown signals sort last.
func (s Signal) order() int {
	for i, si := range signalTable {
		if si.signal == s {
			return i
		}
	}
	return len(signalTable)
}

// Valid reports whether thresholds can be set on s.
func (s Signal) Valid() bool {
	_, ok := s.info()
	return ok
}

// Resource is what s measures: v1.ResourceMemory,
// v1.ResourceEphemeralStorage (bytes of a filesystem), ResourceInodes or
// ResourcePIDs. It is "" for a signal thresholds cannot be set on.
func (s Signal) Resource() v1.ResourceName {
	si, _ := s.info()
	return si.resource
}

// NodeCondition is the node condition a threshold met on s reports:
// MemoryPressure for the memory signals, DiskPressure for the filesystem
// signals, PIDPressure for pid.available. It is "" for a signal thresholds
// cannot be set on.
func (s Signal) NodeCondition() v1.NodeConditionType {
	si, _ := s.info()
	return si.condition
}

// quantityFormat is how the kubelet prints amounts of s: bytes in binary
// units (Mi, Gi), counts in decimal ones.
func (s Signal) quantityFormat() resource.Format {
	switch s.Resource() {
	case ResourceInodes, ResourcePIDs:
		return resource.DecimalSI
	default:
		return resource.BinarySI
	}
}

// conditionOrder is the order node conditions are reported in.
var conditionOrder = [...]v1.NodeConditionType{v1.NodeMemoryPressure, v1.NodeDiskPressure, v1.NodePIDPressure}

// sortConditions puts conditions in conditionOrder.
func sortConditions(conds []v1.NodeConditionType) {
	slices.SortFunc(conds, func(a, b v1.NodeConditionType) int {
		return slices.Index(conditionOrder[:], a) - slices.Index(conditionOrder[:], b)
	})
}
