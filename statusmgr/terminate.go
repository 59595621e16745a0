package statusmgr

import (
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/nodekit/nodekit/core"
)

// terminate completes the last status of a pod whose worker is done, as
// the kubelet's TerminatePod: what has no terminated state could not be
// seen to end, so it failed.
func terminate(pod *v1.Pod, s *v1.PodStatus) {
	unknown := v1.ContainerState{Terminated: &v1.ContainerStateTerminated{
		Reason:   ReasonContainerStatusUnknown,
		Message:  MessageNotLocatedTerminated,
		ExitCode: exitCodeUnknown,
	}}
	if podInitialized(pod) {
		for i := range s.ContainerStatuses {
			if s.ContainerStatuses[i].State.Terminated == nil {
				s.ContainerStatuses[i].State = *unknown.DeepCopy()
			}
		}
	}
	for i := range attempted(s.InitContainerStatuses) {
		if s.InitContainerStatuses[i].State.Terminated == nil {
			s.InitContainerStatuses[i].State = *unknown.DeepCopy()
		}
	}
	if !isStatic(pod) && !terminalPhase(s.Phase) {
		s.Phase = v1.PodFailed
	}
}

// podInitialized reports whether the API's status of pod shows that it
// was initialized: it has no init containers, a regular container left
// the waiting state or has a last state, or its last init container
// completed (a sidecar: started).
func podInitialized(pod *v1.Pod) bool {
	if len(pod.Spec.InitContainers) == 0 {
		return true
	}
	for _, s := range pod.Status.ContainerStatuses {
		if s.LastTerminationState.Terminated != nil || s.State.Waiting == nil {
			return true
		}
	}
	n := len(pod.Status.InitContainerStatuses)
	if n == 0 || n > len(pod.Spec.InitContainers) {
		return false
	}
	c, s := &pod.Spec.InitContainers[n-1], pod.Status.InitContainerStatuses[n-1]
	if c.Name != s.Name {
		return false
	}
	if core.IsSidecar(c) {
		return s.State.Running != nil && s.Started != nil && *s.Started
	}
	if t := s.LastTerminationState.Terminated; t != nil && t.ExitCode == 0 {
		return true
	}
	t := s.State.Terminated
	return t != nil && t.ExitCode == 0
}

// attempted returns the init container statuses up to the last one that
// left the waiting state or has a last state: those that tried to run.
// With none, it returns the first.
func attempted(statuses []v1.ContainerStatus) []v1.ContainerStatus {
	for i := len(statuses) - 1; i >= 0; i-- {
		if statuses[i].State.Waiting == nil || statuses[i].LastTerminationState.Terminated != nil {
			return statuses[:i+1]
		}
	}
	if len(statuses) > 0 {
		return statuses[:1]
	}
	return nil
}

// CheckTransition returns an error wrapping core.ErrInvalid when next
// moves a container that old shows terminated, and that its restart
// policy does not run again, out of the terminated state; the kubelet's
// status manager drops such a status rather than cache it. Pods whose
// restartPolicy is Always, and pods with a RestartAllContainers rule, may
// leave the terminated state; so may sidecars, and containers whose
// restartPolicyRules or restartPolicy run them again after that exit.
func CheckTransition(pod *v1.Pod, old, next *v1.PodStatus) error {
	spec := &pod.Spec
	if spec.RestartPolicy == v1.RestartPolicyAlways || allContainersCouldRestart(spec) {
		return nil
	}
	check := func(kind string, specs []v1.Container, olds, nexts []v1.ContainerStatus, init bool) error {
		for i, o := range olds {
			if o.State.Terminated == nil {
				continue
			}
			var c *v1.Container
			if init {
				if i >= len(specs) || specs[i].Name != o.Name {
					return fmt.Errorf("%w: status of pod %s/%s lists init container %q where its spec does not", core.ErrInvalid, pod.Namespace, pod.Name, o.Name)
				}
				c = &specs[i]
				if core.IsSidecar(c) {
					continue
				}
			}
			code := o.State.Terminated.ExitCode
			if code != 0 && spec.RestartPolicy == v1.RestartPolicyOnFailure {
				continue
			}
			if c == nil {
				for j := range specs {
					if specs[j].Name == o.Name {
						c = &specs[j]
					}
				}
			}
			if c != nil && core.ContainerShouldRestart(c, spec.RestartPolicy, code) {
				continue
			}
			for _, n := range nexts {
				if n.Name == o.Name && n.State.Terminated == nil {
					return fmt.Errorf("%w: terminated %s %q of pod %s/%s attempted illegal transition to non-terminated state", core.ErrInvalid, kind, n.Name, pod.Namespace, pod.Name)
				}
			}
		}
		return nil
	}
	if err := check("container", spec.Containers, old.ContainerStatuses, next.ContainerStatuses, false); err != nil {
		return err
	}
	return check("init container", spec.InitContainers, old.InitContainerStatuses, next.InitContainerStatuses, true)
}

// Reason and message of a pod whose active deadline passed, in the
// kubelet's words.
const (
	ReasonDeadlineExceeded  = "DeadlineExceeded"
	MessageDeadlineExceeded = "Pod was active on the node longer than the specified deadline"
)

// ActiveDeadlineExceeded returns the Eviction of a pod that has run for
// its activeDeadlineSeconds or longer by now, counted from the start time
// of status (the last generated status, or the API's); nil when the pod
// has no deadline, no start time, or time left.
func ActiveDeadlineExceeded(pod *v1.Pod, status *v1.PodStatus, now time.Time) *Eviction {
	if pod.Spec.ActiveDeadlineSeconds == nil || status == nil || status.StartTime == nil || status.StartTime.IsZero() {
		return nil
	}
	if now.Sub(status.StartTime.Time) < time.Duration(*pod.Spec.ActiveDeadlineSeconds)*time.Second {
		return nil
	}
	return &Eviction{Reason: ReasonDeadlineExceeded, Message: MessageDeadlineExceeded}
}
