package core

import (
	"time"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PodLifecycleEventType says what changed in a pod's runtime state.
type PodLifecycleEventType string

// The event types the PLEG emits, with the kubelet's names.
const (
	// ContainerStarted: a container is running that was not before.
	ContainerStarted PodLifecycleEventType = "ContainerStarted"
	// ContainerDied: a container has exited. ExitCode is set when the
	// runtime reported it.
	ContainerDied PodLifecycleEventType = "ContainerDied"
	// ContainerRemoved: an exited container is gone from the runtime.
	ContainerRemoved PodLifecycleEventType = "ContainerRemoved"
	// ContainerChanged: a container entered a state that is neither
	// running nor exited (created, unknown).
	ContainerChanged PodLifecycleEventType = "ContainerChanged"
	// PodSync: something changed that no single event above describes,
	// or several events were coalesced; sync the whole pod.
	PodSync PodLifecycleEventType = "PodSync"
)

// PodLifecycleEvent is one observed change of a pod's runtime state.
type PodLifecycleEvent struct {
	// PodUID is the pod the change belongs to.
	PodUID types.UID
	Type   PodLifecycleEventType
	// ContainerID is the container (or, with Sandbox, the sandbox) that
	// changed. Empty for PodSync.
	ContainerID string
	// Sandbox says ContainerID names a pod sandbox.
	Sandbox bool
	// ExitCode of a ContainerDied event, when known.
	ExitCode *int32
}

// PodStatus is the runtime's view of one pod: what the PLEG caches and the
// sync loop and the status manager read. It is immutable once published:
// readers must not modify it or what it points to.
type PodStatus struct {
	UID       types.UID
	Name      string
	Namespace string
	// IPs of the pod, primary first. Kept after the sandbox stops, as the
	// kubelet does, so that a terminated pod still reports its IPs.
	IPs []string
	// SandboxStatuses, newest first.
	SandboxStatuses []*runtimeapi.PodSandboxStatus
	// ContainerStatuses of every container the runtime still has, newest
	// first within each container name.
	ContainerStatuses []*runtimeapi.ContainerStatus
	// ObservedAt is when the runtime was asked for this status.
	ObservedAt time.Time
}

// SandboxIPs returns a sandbox's IPs, primary first; none for a sandbox on
// the host network or without an address.
func SandboxIPs(sb *runtimeapi.PodSandboxStatus) []string {
	net := sb.GetNetwork()
	if net.GetIp() == "" {
		return nil
	}
	ips := make([]string, 0, 1+len(net.GetAdditionalIps()))
	ips = append(ips, net.GetIp())
	for _, ip := range net.GetAdditionalIps() {
		ips = append(ips, ip.GetIp())
	}
	return ips
}
