package eviction

import (
	"fmt"
	"slices"

	"github.com/go-logr/logr"
	v1 "k8s.io/api/core/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
)

// AdmitAttributes is what an admission decision looks at. It has the shape
// of the sync loop's admission attributes, so that one converts to the
// other.
type AdmitAttributes struct {
	// Pod asks to be admitted.
	Pod *v1.Pod
	// OtherPods are the pods already admitted; eviction does not look at
	// them.
	OtherPods []*v1.Pod
}

// AdmitResult is the outcome of an admission decision. It has the shape of
// the sync loop's admission result, so that one converts to the other.
type AdmitResult struct {
	// Admit is true when the pod may run.
	Admit bool
	// Reason is Reason ("Evicted") when the pod is refused.
	Reason string
	// Message is "The node had condition: [MemoryPressure]. " or the like.
	Message string
}

// nodeConditionMessageFmt is the kubelet's message for a pod refused under
// pressure.
const nodeConditionMessageFmt = "The node had condition: %v. "

// AdmitPod decides whether pod may start on a node with the given pressure
// conditions (Decision.Conditions), as the kubelet's eviction admission
// handler:
//
//   - without conditions, every pod is admitted;
//   - critical pods (IsCritical) are always admitted;
//   - under MemoryPressure alone, only BestEffort pods are refused, and not
//     those that tolerate the node.kubernetes.io/memory-pressure
//     NoSchedule taint;
//   - under DiskPressure or PIDPressure, every other pod is refused.
//
// A refusal has reason Reason and the message "The node had condition:
// [MemoryPressure DiskPressure]. ", the conditions in the order given.
func AdmitPod(pod *v1.Pod, conditions []v1.NodeConditionType) AdmitResult {
	if len(conditions) == 0 || IsCritical(pod) {
		return AdmitResult{Admit: true}
	}
	if pod == nil {
		return AdmitResult{Reason: Reason, Message: fmt.Sprintf(nodeConditionMessageFmt, conditions)}
	}
	if len(conditions) == 1 && conditions[0] == v1.NodeMemoryPressure {
		if crispec.PodQOS(pod) != v1.PodQOSBestEffort {
			return AdmitResult{Admit: true}
		}
		taint := &v1.Taint{Key: v1.TaintNodeMemoryPressure, Effect: v1.TaintEffectNoSchedule}
		if corev1helpers.TolerationsTolerateTaint(logr.Discard(), pod.Spec.Tolerations, taint, false) {
			return AdmitResult{Admit: true}
		}
	}
	return AdmitResult{Reason: Reason, Message: fmt.Sprintf(nodeConditionMessageFmt, conditions)}
}

// AdmitterConfig configures an Admitter.
type AdmitterConfig struct {
	// Conditions returns the node's pressure conditions now: those of the
	// latest Decision. Required. It is called once per pod and must return
	// soon.
	Conditions func() []v1.NodeConditionType
}

// Admitter is an admission handler that refuses pods under node pressure
// (AdmitPod). Its Admit method has the sync loop's handler shape; wire it
// with a conversion:
//
//	a, _ := eviction.NewAdmitter(eviction.AdmitterConfig{Conditions: conds})
//	admission.AddHandler(syncloop.AdmitFunc(func(attrs syncloop.AdmitAttributes) syncloop.AdmitResult {
//		return syncloop.AdmitResult(a.Admit(eviction.AdmitAttributes(attrs)))
//	}))
//
// It is safe for concurrent use if Conditions is.
type Admitter struct {
	conditions func() []v1.NodeConditionType
}

// NewAdmitter returns an Admitter for cfg. A missing Conditions is an
// error wrapping core.ErrInvalid.
func NewAdmitter(cfg AdmitterConfig) (*Admitter, error) {
	if cfg.Conditions == nil {
		return nil, fmt.Errorf("eviction: admitter: Conditions is required: %w", core.ErrInvalid)
	}
	return &Admitter{conditions: cfg.Conditions}, nil
}

// Admit decides whether a.Pod may start under the node's conditions now.
func (a *Admitter) Admit(attrs AdmitAttributes) AdmitResult {
	return AdmitPod(attrs.Pod, slices.Clone(a.conditions()))
}
