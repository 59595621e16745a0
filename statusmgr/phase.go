package statusmgr

import (
	v1 "k8s.io/api/core/v1"

	"github.com/nodekit/nodekit/core"
)

// Phase is the phase of a pod whose init and regular containers show
// statuses (one per container name; ephemeral containers do not count), by
// the kubelet's rules (Kubernetes 1.37, default feature gates):
//
//   - Failed when an init container (not a sidecar) failed and its restart
//     policy (restartPolicyRules, then its restartPolicy, then the pod's)
//     does not run it again.
//   - Pending while an init container has not completed, while a sidecar
//     has not started and the pod has not been initialized before
//     (initialized: a regular container of the current sandbox has run),
//     and while a regular container waits without having run.
//   - Running when every regular container has a status and one runs (a
//     running sidecar counts too).
//   - When none runs and every regular container has exited: for a
//     terminal pod (nothing of it runs again; not for static pods)
//     Succeeded when every regular container exited 0, else Failed;
//     otherwise Running while one of them is to restart by its policy,
//     then Succeeded or Failed.
//   - Pending in every other case.
//
// A waiting container whose lastState is terminated counts as exited with
// that exit code (a container in CrashLoopBackOff). An exit of a container
// whose RestartAllContainers rule matched, or whose state says
// RestartingAllContainers, counts as one to restart.
func Phase(pod *v1.Pod, statuses []v1.ContainerStatus, terminal, initialized bool) v1.PodPhase {
	spec := &pod.Spec
	find := func(name string) (*v1.ContainerStatus, bool) {
		for i := range statuses {
			if statuses[i].Name == name {
				return &statuses[i], true
			}
		}
		return nil, false
	}
	// restartable says a container that exited with code (and reason)
	// runs again.
	restartable := func(c *v1.Container, t *v1.ContainerStateTerminated) bool {
		return core.ContainerShouldRestart(c, spec.RestartPolicy, t.ExitCode) || t.Reason == ReasonRestartingAllContainers
	}

	pendingInit, pendingSidecars, failedInitForGood := 0, 0, 0
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		if core.IsSidecar(c) {
			continue
		}
		s, ok := find(c.Name)
		switch {
		case !ok, s.State.Running != nil:
			pendingInit++
		case s.State.Terminated != nil:
			if t := s.State.Terminated; t.ExitCode != 0 && !restartable(c, t) {
				failedInitForGood++
			}
		case s.State.Waiting != nil && s.LastTerminationState.Terminated != nil:
			if t := s.LastTerminationState.Terminated; t.ExitCode != 0 && !restartable(c, t) {
				failedInitForGood++
			}
		default:
			pendingInit++
		}
	}

	unknown, running, waiting, stopped, stoppedForGood, succeeded := 0, 0, 0, 0, 0, 0
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		if !core.IsSidecar(c) {
			continue
		}
		s, ok := find(c.Name)
		switch {
		case !ok:
			unknown++
		case s.State.Running != nil:
			if s.Started == nil || !*s.Started {
				pendingSidecars++
			}
			running++
		case s.State.Terminated != nil:
			// An exited sidecar does not decide the phase.
		case s.State.Waiting != nil:
			if s.LastTerminationState.Terminated == nil {
				pendingSidecars++
				waiting++
			}
		default:
			pendingSidecars++
			unknown++
		}
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		s, ok := find(c.Name)
		switch {
		case !ok:
			unknown++
		case s.State.Running != nil:
			running++
		case s.State.Terminated != nil:
			stopped++
			if !restartable(c, s.State.Terminated) {
				stoppedForGood++
			}
			if s.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case s.State.Waiting != nil:
			if t := s.LastTerminationState.Terminated; t != nil {
				stopped++
				if !restartable(c, t) {
					stoppedForGood++
				}
			} else {
				waiting++
			}
		default:
			unknown++
		}
	}

	if failedInitForGood > 0 {
		return v1.PodFailed
	}
	switch {
	case pendingInit > 0 || (pendingSidecars > 0 && !initialized) || waiting > 0:
		return v1.PodPending
	case running > 0 && unknown == 0:
		return v1.PodRunning
	case running == 0 && stopped > 0 && unknown == 0:
		if terminal && !isStatic(pod) {
			if stopped == succeeded {
				return v1.PodSucceeded
			}
			return v1.PodFailed
		}
		if stopped != stoppedForGood {
			return v1.PodRunning
		}
		if stopped == succeeded {
			return v1.PodSucceeded
		}
		return v1.PodFailed
	default:
		return v1.PodPending
	}
}

// isStatic reports whether pod came from a source other than the
// apiserver (the kubernetes.io/config.source annotation). The kubelet
// gives static pods no terminal phase.
func isStatic(pod *v1.Pod) bool {
	source, ok := pod.Annotations[core.AnnotationConfigSource]
	return ok && source != core.SourceAPI
}

// allContainersCouldRestart reports whether some init or regular container
// has a RestartAllContainers rule.
func allContainersCouldRestart(spec *v1.PodSpec) bool {
	for _, cs := range [][]v1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			for _, rule := range cs[i].RestartPolicyRules {
				if rule.Action == v1.ContainerRestartRuleActionRestartAllContainers {
					return true
				}
			}
		}
	}
	return false
}
