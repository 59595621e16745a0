package core

import (
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PodStatusEntry is one pod's status as a status cache holds it, for a
// sink that writes it somewhere (an apiserver, memory): statusmgr's Cache
// lists them, kubeapi's StatusWriter writes them.
type PodStatusEntry struct {
	// Pod is the pod as its source gave it (for a static pod, the pod
	// from the file, not its mirror).
	Pod *v1.Pod
	// Status is the pod's status as the node generated it.
	Status v1.PodStatus
	// Version grows by one at every change of Status (or of Finished).
	Version uint64
	// ChangedAt is when Status changed to this version.
	ChangedAt time.Time
	// Finished says nothing of the pod runs any more: its worker
	// terminated it and is done. Until then a sink must not publish a
	// terminal phase (see MergePodStatus) nor finish the pod's deletion.
	Finished bool
}

// PodConditionByNode reports whether the node owns a pod condition type:
// it sets it and replaces whatever the API has for it. Conditions of other
// types belong to others (controllers, schedulers, users) and are kept as
// the API has them, except DisruptionTarget, which both may set.
func PodConditionByNode(t v1.PodConditionType) bool {
	switch t {
	case v1.PodScheduled, v1.PodReady, v1.PodInitialized, v1.ContainersReady,
		v1.PodResizeInProgress, v1.PodResizePending,
		v1.PodReadyToStartContainers, v1.AllContainersRestarting:
		return true
	}
	return false
}

// Reasons of the Ready and ContainersReady conditions of a pod in a
// terminal phase.
const (
	ReasonPodCompleted = "PodCompleted"
	ReasonPodFailed    = "PodFailed"
)

// MergePodStatus is the status a node publishes for pod, made from the
// status the API has now (api) and the one the node generated (ours), by
// the kubelet's rules:
//
//   - the conditions the node owns (PodConditionByNode) come from ours,
//     every other from api; a DisruptionTarget of ours is added only when
//     the phase becomes terminal now and nothing can still run, its
//     transition time then being now unless api had it with that status;
//   - resource claim statuses are api's (the node does not own them);
//   - a terminal phase is held back (api's phase, reason and message stay)
//     while containers could still run (couldRun), so that nothing reads
//     a pod as done while it may still use what it holds;
//   - in a terminal phase, Ready and ContainersReady are False with
//     reason PodCompleted or PodFailed.
//
// Neither status is modified; the result shares no memory with them.
func MergePodStatus(pod *v1.Pod, api, ours v1.PodStatus, couldRun bool, now time.Time) v1.PodStatus {
	out := *ours.DeepCopy()
	at := metav1.NewTime(now.UTC().Truncate(time.Second))
	conds := make([]v1.PodCondition, 0, len(api.Conditions)+len(ours.Conditions))
	for _, c := range api.Conditions {
		if !PodConditionByNode(c.Type) {
			conds = append(conds, *c.DeepCopy())
		}
	}
	toTerminal := !terminalPhase(api.Phase) && terminalPhase(ours.Phase)
	for _, c := range ours.Conditions {
		switch {
		case PodConditionByNode(c.Type):
			conds = append(conds, *c.DeepCopy())
		case c.Type == v1.DisruptionTarget && toTerminal && !couldRun:
			c := *c.DeepCopy()
			c.LastTransitionTime = at
			if old := condition(api.Conditions, c.Type); old != nil && old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime
			}
			conds = replaceCondition(conds, c)
		}
	}
	out.Conditions = conds
	out.ResourceClaimStatuses = nil
	for i := range api.ResourceClaimStatuses {
		out.ResourceClaimStatuses = append(out.ResourceClaimStatuses, *api.ResourceClaimStatuses[i].DeepCopy())
	}
	out.ExtendedResourceClaimStatus = api.ExtendedResourceClaimStatus.DeepCopy()
	out.NodeAllocatableResourceClaimStatuses = nil
	for i := range api.NodeAllocatableResourceClaimStatuses {
		out.NodeAllocatableResourceClaimStatuses = append(out.NodeAllocatableResourceClaimStatuses, *api.NodeAllocatableResourceClaimStatuses[i].DeepCopy())
	}
	if toTerminal && couldRun {
		out.Phase, out.Reason, out.Message = api.Phase, api.Reason, api.Message
	}
	if terminalPhase(out.Phase) {
		reason := ReasonPodCompleted
		if out.Phase == v1.PodFailed {
			reason = ReasonPodFailed
		}
		for _, t := range []v1.PodConditionType{v1.ContainersReady, v1.PodReady} {
			old := condition(out.Conditions, t)
			if old == nil || old.Status != v1.ConditionTrue {
				continue
			}
			out.Conditions = replaceCondition(out.Conditions, v1.PodCondition{
				Type: t, Status: v1.ConditionFalse, Reason: reason,
				ObservedGeneration: pod.Generation, LastTransitionTime: at,
			})
		}
	}
	return out
}

func terminalPhase(p v1.PodPhase) bool { return p == v1.PodSucceeded || p == v1.PodFailed }

func condition(conds []v1.PodCondition, t v1.PodConditionType) *v1.PodCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

func replaceCondition(conds []v1.PodCondition, c v1.PodCondition) []v1.PodCondition {
	for i := range conds {
		if conds[i].Type == c.Type {
			conds[i] = c
			return conds
		}
	}
	return append(conds, c)
}
