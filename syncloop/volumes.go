package syncloop

import (
	"context"

	v1 "k8s.io/api/core/v1"

	"github.com/nodekit/nodekit/crispec"
)

// Volumes is what the Driver asks of a volume manager (volumemgr's Manager
// has these methods).
type Volumes interface {
	// WaitForAttachAndMount returns once every volume of pod is mounted,
	// or with an error that names the volumes that are not and why. The
	// driver calls it before it creates the pod's sandbox or any of its
	// containers, as the kubelet does.
	WaitForAttachAndMount(ctx context.Context, pod *v1.Pod) error
	// PodVolumes returns the pod's mounted volumes by name, for the
	// containers' mounts.
	PodVolumes(pod *v1.Pod) map[string]crispec.Volume
}

// SubPathPreparer is an optional capability of Volumes: it turns the
// subPath of one of c's volume mounts into the host path to bind-mount,
// safely (see crispec.ContainerOptions.PrepareSubPath). Without it the
// host path is the volume's path joined with the subPath.
type SubPathPreparer interface {
	PrepareSubPath(pod *v1.Pod, c *v1.Container, p crispec.SubPath) (string, error)
}

// VolumeUnmounter is an optional capability of Volumes: the driver calls
// WaitForUnmount when a pod's worker is done with it (nothing of it runs),
// and the worker is done only once it returns nil: the volumes are
// unmounted, as the kubelet's SyncTerminatedPod waits for them.
type VolumeUnmounter interface {
	WaitForUnmount(ctx context.Context, pod *v1.Pod) error
}

// ReasonContainerCreating is the waiting reason of the containers of a pod
// whose volumes are not mounted yet (the kubelet's reason while a pod is
// being set up); the message says which volume failed and why.
const ReasonContainerCreating = "ContainerCreating"

// mountWaiting are the containers the plan would start, waiting because
// the pod's volumes could not be mounted.
func mountWaiting(pod *v1.Pod, actions PodActions, err error) []WaitingContainer {
	var out []WaitingContainer
	for _, c := range actions.InitContainersToStart {
		out = append(out, WaitingContainer{Index: c.Index, Init: true, Name: c.Name, Reason: ReasonContainerCreating, Message: err.Error()})
	}
	for _, c := range actions.ContainersToStart {
		out = append(out, WaitingContainer{Index: c.Index, Name: c.Name, Reason: ReasonContainerCreating, Message: err.Error()})
	}
	if len(out) == 0 && actions.CreateSandbox {
		for i := range pod.Spec.Containers {
			out = append(out, WaitingContainer{Index: i, Name: pod.Spec.Containers[i].Name, Reason: ReasonContainerCreating, Message: err.Error()})
		}
	}
	return out
}

// PodCgroups is what the Driver asks of a pod cgroup manager
// (cpumanager's CgroupManager has these methods).
type PodCgroups interface {
	// EnsurePod creates or updates the pod's cgroup with the limits its
	// spec asks for. The driver calls it before it creates a sandbox.
	EnsurePod(ctx context.Context, pod *v1.Pod) error
	// CgroupParent is the cgroup the pod's sandbox runs in.
	CgroupParent(pod *v1.Pod) string
}

// CPUAssigner is what the Driver asks of a CPU manager: the CPUs a
// container runs on ("0-3,8"; "" leaves them to the runtime) and whether
// they are exclusively its own.
type CPUAssigner interface {
	ContainerCPUs(pod *v1.Pod, c *v1.Container) (cpus string, exclusive bool)
}
