package eviction

import (
	"time"

	v1 "k8s.io/api/core/v1"
)

// Observations is one snapshot of the node's resources and of the usage of
// each active pod: everything Decide looks at besides its State and Policy.
// A stats provider fills it from cgroups, statfs and the container
// runtime; tests and dry runs write it by hand. It is a plain value: Decide
// neither keeps nor modifies it, nor the pods it points to.
//
// Each section carries the time it was measured. A section with a zero
// Time was not measured: its signals are not observed, and thresholds on
// them are neither met nor cleared. Amounts are as the kernel or the
// runtime report them, in bytes, inodes or processes.
type Observations struct {
	// Memory is the node's memory: the root cgroup's working set and what
	// is left of the machine's memory beside it (memory.available).
	Memory MemoryStats
	// AllocatableMemory is the memory of the cgroup all pods run in (the
	// kubelet's "pods" system container, kubepods): its working set and
	// what is left of its limit, the node's allocatable memory
	// (allocatableMemory.available).
	AllocatableMemory MemoryStats
	// NodeFs is the filesystem of the kubelet's root directory (nodefs.*).
	NodeFs FsStats
	// ImageFs is the filesystem the runtime keeps images on, as the
	// runtime's ImageFsInfo reports it (imagefs.*). Without a dedicated
	// image filesystem it is the nodefs again; left zero, it is taken to
	// be NodeFs unless DedicatedImageFs is set.
	ImageFs FsStats
	// ContainerFs is the filesystem of containers' writable layers
	// (containerfs.*). Left zero, it is taken to be ImageFs, or NodeFs
	// when DedicatedContainerFs is set (writable layers then live beside
	// the kubelet's root directory, as the kubelet assumes).
	ContainerFs FsStats
	// PIDs is the node's process ID limit and use (pid.available).
	PIDs PIDStats

	// DedicatedImageFs is true when images live on another filesystem
	// than the kubelet's root directory (the kubelet's
	// HasDedicatedImageFs). It decides which pod usage counts against
	// which filesystem and which garbage collection reclaims it.
	DedicatedImageFs bool
	// DedicatedContainerFs is true when containers' writable layers live
	// on another filesystem than images (the runtime reports different
	// mount points for its image and container filesystems; the kubelet's
	// HasDedicatedContainerFs). It only matters with DedicatedImageFs.
	DedicatedContainerFs bool

	// Pods are the node's active pods: admitted, and not in a terminal
	// phase. Only they can be ranked and evicted. Their order breaks ties
	// in the ranking: of two pods that rank equal, the earlier goes first.
	Pods []PodStats
}

// MemoryStats is the memory of a cgroup.
type MemoryStats struct {
	// Time is when it was measured; zero when it was not.
	Time time.Time
	// AvailableBytes is the cgroup's limit (for the root cgroup, the
	// machine's memory) less WorkingSetBytes.
	AvailableBytes uint64
	// WorkingSetBytes is the memory in use that cannot be reclaimed
	// easily: usage less inactive file-backed pages (memory.current less
	// inactive_file on cgroup v2). AvailableBytes plus WorkingSetBytes is
	// the capacity a percentage threshold is taken of.
	WorkingSetBytes uint64
}

// FsStats is the space and inode use of a filesystem, as statfs reports it.
type FsStats struct {
	// Time is when it was measured; zero when it was not.
	Time time.Time
	// CapacityBytes is the filesystem's size.
	CapacityBytes uint64
	// AvailableBytes is the space unprivileged users may still use (statfs
	// f_bavail times the block size).
	AvailableBytes uint64
	// Inodes is the filesystem's number of inodes. Zero means the
	// filesystem does not count them (btrfs): its inodesFree signal is not
	// observed.
	Inodes uint64
	// InodesFree is the number of inodes still free.
	InodesFree uint64
}

// PIDStats is the node's use of process IDs.
type PIDStats struct {
	// Time is when it was measured; zero when it was not.
	Time time.Time
	// MaxPID is the most processes the node can run: kernel.pid_max, or
	// less if the kernel's threads-max is lower. Zero: not measured.
	MaxPID uint64
	// NumProcesses is the number of processes (threads) running.
	NumProcesses uint64
}

// PodStats is an active pod and what it uses.
type PodStats struct {
	// Pod is the pod as the node runs it: the spec gives its requests,
	// limits, priority, volumes and termination grace period, the
	// annotations tell static and mirror pods. Required.
	Pod *v1.Pod
	// Time is when the usage below was measured. Zero means no stats were
	// found for the pod: the kubelet then ranks it before every pod with
	// stats, and never evicts it for a local storage limit.
	Time time.Time
	// MemoryWorkingSetBytes is the working set of the pod's cgroup.
	MemoryWorkingSetBytes uint64
	// ProcessCount is the number of processes (threads) in the pod's
	// cgroup.
	ProcessCount uint64
	// EphemeralStorageBytes is the pod's use of local ephemeral storage:
	// its containers' writable layers and logs, its local ephemeral
	// volumes (emptyDir on disk, configMap, gitRepo, ...) and its
	// etc-hosts file. It is checked against the pod's ephemeral-storage
	// limit.
	EphemeralStorageBytes uint64
	// Containers are the pod's running containers (init and sidecar
	// containers included while they run). Their order is the order of the
	// offending containers in an eviction message.
	Containers []ContainerStats
	// Volumes are the pod's volumes that were measured, by name.
	Volumes []VolumeStats
}

// ContainerStats is what one container of a pod uses.
type ContainerStats struct {
	// Name is the container's name in the pod's spec.
	Name string
	// MemoryWorkingSetBytes is the working set of the container's cgroup.
	MemoryWorkingSetBytes uint64
	// RootfsBytes and RootfsInodes are what the container's writable layer
	// uses (on the containerfs).
	RootfsBytes, RootfsInodes uint64
	// LogsBytes and LogsInodes are what the container's log files use
	// (on the nodefs).
	LogsBytes, LogsInodes uint64
}

// VolumeStats is what one volume of a pod uses.
type VolumeStats struct {
	// Name is the volume's name in the pod's spec.
	Name string
	// UsedBytes and InodesUsed are the volume's use of its filesystem.
	UsedBytes, InodesUsed uint64
}

// SignalObservation is the value of one signal in a snapshot.
type SignalObservation struct {
	Signal Signal
	// Available is the amount left; a threshold is met when it falls
	// below the threshold's amount.
	Available int64
	// Capacity is the whole amount: a percentage threshold is taken of it.
	Capacity int64
	// Time is when it was measured.
	Time time.Time
}

// String formats the observation as "memory.available: 50Mi of 1Gi".
func (o SignalObservation) String() string {
	return string(o.Signal) + ": " + formatAmount(o.Available, o.Signal.quantityFormat()) +
		" of " + formatAmount(o.Capacity, o.Signal.quantityFormat())
}

// imageFs and containerFs are the filesystems the snapshot stands for,
// with the fallbacks its documentation promises.
func (o *Observations) imageFs() FsStats {
	if o.ImageFs.Time.IsZero() && !o.DedicatedImageFs {
		return o.NodeFs
	}
	return o.ImageFs
}

func (o *Observations) containerFs() FsStats {
	if !o.ContainerFs.Time.IsZero() {
		return o.ContainerFs
	}
	if o.DedicatedContainerFs {
		return o.NodeFs
	}
	return o.imageFs()
}

// signals derives the observed signals from a snapshot, in signal order:
// the kubelet's makeSignalObservations.
func (o *Observations) signals() []SignalObservation {
	var out []SignalObservation
	add := func(s Signal, available, capacity int64, at time.Time) {
		out = append(out, SignalObservation{Signal: s, Available: available, Capacity: capacity, Time: at})
	}
	memory := func(s Signal, m MemoryStats) {
		if !m.Time.IsZero() {
			add(s, int64(m.AvailableBytes), int64(m.AvailableBytes+m.WorkingSetBytes), m.Time)
		}
	}
	fs := func(bytes, inodes Signal, f FsStats) {
		if f.Time.IsZero() {
			return
		}
		add(bytes, int64(f.AvailableBytes), int64(f.CapacityBytes), f.Time)
		if f.Inodes > 0 {
			add(inodes, int64(f.InodesFree), int64(f.Inodes), f.Time)
		}
	}
	memory(SignalMemoryAvailable, o.Memory)
	memory(SignalAllocatableMemoryAvailable, o.AllocatableMemory)
	fs(SignalNodeFsAvailable, SignalNodeFsInodesFree, o.NodeFs)
	fs(SignalImageFsAvailable, SignalImageFsInodesFree, o.imageFs())
	fs(SignalContainerFsAvailable, SignalContainerFsInodesFree, o.containerFs())
	if p := o.PIDs; !p.Time.IsZero() && p.MaxPID > 0 {
		add(SignalPIDAvailable, int64(p.MaxPID)-int64(p.NumProcesses), int64(p.MaxPID), p.Time)
	}
	return out
}

// observed finds the observation of s.
func observed(obs []SignalObservation, s Signal) (SignalObservation, bool) {
	for _, o := range obs {
		if o.Signal == s {
			return o, true
		}
	}
	return SignalObservation{}, false
}
