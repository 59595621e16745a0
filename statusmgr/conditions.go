package statusmgr

import (
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

// Reasons of the conditions the kubelet sets, with its names.
const (
	// ReasonUnknownContainerStatuses: the pod has no container statuses.
	ReasonUnknownContainerStatuses = "UnknownContainerStatuses"
	// ReasonPodCompleted: the pod succeeded (Initialized True,
	// ContainersReady and Ready False).
	ReasonPodCompleted = "PodCompleted"
	// ReasonPodFailed: the pod failed (ContainersReady and Ready False).
	ReasonPodFailed = "PodFailed"
	// ReasonContainersNotReady: a container is not ready or has no status
	// (ContainersReady and Ready False).
	ReasonContainersNotReady = "ContainersNotReady"
	// ReasonContainersNotInitialized: an init container has not completed,
	// or a sidecar has not started (Initialized False).
	ReasonContainersNotInitialized = "ContainersNotInitialized"
	// ReasonReadinessGatesNotReady: a readiness gate's condition is missing
	// or not True (Ready False).
	ReasonReadinessGatesNotReady = "ReadinessGatesNotReady"
	// ReasonRestartAllContainersStarted: a container exited with a
	// RestartAllContainers rule (AllContainersRestarting True).
	ReasonRestartAllContainersStarted = "RestartAllContainersStarted"
	// ReasonPodSandboxNotReady: the pod needs a new sandbox
	// (PodReadyToStartContainers False); the message says why.
	ReasonPodSandboxNotReady = "PodSandboxNotReady"
	// ReasonTerminationByKubelet: the kubelet stopped the pod (eviction,
	// node shutdown): the reason of the DisruptionTarget condition an
	// Eviction asks for.
	ReasonTerminationByKubelet = v1.PodReasonTerminationByKubelet
)

// Messages of a False PodReadyToStartContainers condition: why the pod
// needs a new sandbox, in the kubelet's words.
const (
	SandboxMessageNone           = "no pod sandbox exists"
	SandboxMessageMultipleReady  = "multiple pod sandboxes are ready and need to be reconciled"
	SandboxMessageNotReady       = "pod sandbox is not ready"
	SandboxMessageNetworkChanged = "network namespace mode changed and sandbox needs to be recreated"
	SandboxMessageNoIP           = "pod sandbox has no IP address"
)

// conditionsByKubelet are the pod conditions the kubelet owns: it drops
// them from the API's status and sets its own. DisruptionTarget is shared:
// the kubelet keeps the one it has.
var conditionsByKubelet = [...]v1.PodConditionType{
	v1.PodScheduled,
	v1.PodReady,
	v1.PodInitialized,
	v1.ContainersReady,
	v1.PodResizeInProgress,
	v1.PodResizePending,
	v1.PodReadyToStartContainers,
	v1.AllContainersRestarting,
}

// transitionTracked are the conditions whose lastTransitionTime the
// kubelet keeps while their status does not change.
var transitionTracked = [...]v1.PodConditionType{
	v1.ContainersReady,
	v1.PodReady,
	v1.PodInitialized,
	v1.PodReadyToStartContainers,
	v1.PodScheduled,
	v1.DisruptionTarget,
	v1.AllContainersRestarting,
}

func byKubelet(t v1.PodConditionType) bool {
	for _, k := range conditionsByKubelet {
		if k == t {
			return true
		}
	}
	return false
}

func findCondition(conds []v1.PodCondition, t v1.PodConditionType) *v1.PodCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

func replaceOrAppend(conds []v1.PodCondition, c v1.PodCondition) []v1.PodCondition {
	if old := findCondition(conds, c.Type); old != nil {
		*old = c
		return conds
	}
	return append(conds, c)
}

func findStatus(statuses []v1.ContainerStatus, name string) (*v1.ContainerStatus, bool) {
	for i := range statuses {
		if statuses[i].Name == name {
			return &statuses[i], true
		}
	}
	return nil, false
}

// sandboxChanged reports whether the pod needs a new sandbox, and why (one
// of the SandboxMessage constants).
func sandboxChanged(pod *v1.Pod, rt *core.PodStatus) (bool, string) {
	if len(rt.SandboxStatuses) == 0 {
		return true, SandboxMessageNone
	}
	ready := 0
	for _, sb := range rt.SandboxStatuses {
		if sb.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY {
			ready++
		}
	}
	newest := rt.SandboxStatuses[0]
	switch {
	case ready > 1:
		return true, SandboxMessageMultipleReady
	case newest.GetState() != runtimeapi.PodSandboxState_SANDBOX_READY:
		return true, SandboxMessageNotReady
	case newest.GetLinux().GetNamespaces().GetOptions().GetNetwork() != networkMode(pod):
		return true, SandboxMessageNetworkChanged
	case !pod.Spec.HostNetwork && newest.GetNetwork() != nil && newest.GetNetwork().GetIp() == "":
		return true, SandboxMessageNoIP
	}
	return false, ""
}

func networkMode(pod *v1.Pod) runtimeapi.NamespaceMode {
	if pod.Spec.HostNetwork {
		return runtimeapi.NamespaceMode_NODE
	}
	return runtimeapi.NamespaceMode_POD
}

func readyToStartCondition(pod *v1.Pod, rt *core.PodStatus) v1.PodCondition {
	c := v1.PodCondition{Type: v1.PodReadyToStartContainers, ObservedGeneration: pod.Generation, Status: v1.ConditionTrue}
	if changed, why := sandboxChanged(pod, rt); changed {
		c.Status, c.Reason, c.Message = v1.ConditionFalse, ReasonPodSandboxNotReady, why
	}
	return c
}

// initializedCondition: True once every init container completed and
// every sidecar started, or once a regular container ran.
func initializedCondition(pod *v1.Pod, old *v1.PodStatus, statuses []v1.ContainerStatus, phase v1.PodPhase) v1.PodCondition {
	c := v1.PodCondition{Type: v1.PodInitialized, ObservedGeneration: pod.Generation, Status: v1.ConditionTrue}
	if statuses == nil && len(pod.Spec.InitContainers) > 0 {
		c.Status, c.Reason = v1.ConditionFalse, ReasonUnknownContainerStatuses
		return c
	}
	var unknown, incomplete []string
	for i := range pod.Spec.InitContainers {
		ic := &pod.Spec.InitContainers[i]
		s, ok := findStatus(statuses, ic.Name)
		switch {
		case !ok:
			unknown = append(unknown, ic.Name)
		case core.IsSidecar(ic) && (s.Started == nil || !*s.Started):
			incomplete = append(incomplete, ic.Name)
		case !core.IsSidecar(ic) && !s.Ready:
			incomplete = append(incomplete, ic.Name)
		}
	}
	if phase == v1.PodSucceeded && len(unknown) == 0 {
		c.Reason = ReasonPodCompleted
		return c
	}
	if anyRegularStarted(&pod.Spec, statuses) {
		return c
	}
	msg := notReadyMessage("incomplete", unknown, incomplete)
	if msg == "" {
		return c
	}
	// Once initialized, a pod stays so while its containers restart in
	// place.
	if prev := findCondition(old.Conditions, v1.PodInitialized); prev != nil && prev.Status == v1.ConditionTrue {
		return c
	}
	c.Status, c.Reason, c.Message = v1.ConditionFalse, ReasonContainersNotInitialized, msg
	return c
}

// anyRegularStarted reports whether a regular container runs or has
// exited: then the pod was initialized.
func anyRegularStarted(spec *v1.PodSpec, statuses []v1.ContainerStatus) bool {
	for i := range spec.Containers {
		if s, ok := findStatus(statuses, spec.Containers[i].Name); ok && (s.State.Running != nil || s.State.Terminated != nil) {
			return true
		}
	}
	return false
}

// containersReadyCondition: True when every regular container and sidecar
// is ready.
func containersReadyCondition(pod *v1.Pod, statuses []v1.ContainerStatus, phase v1.PodPhase) v1.PodCondition {
	c := v1.PodCondition{Type: v1.ContainersReady, ObservedGeneration: pod.Generation, Status: v1.ConditionFalse}
	if statuses == nil {
		c.Reason = ReasonUnknownContainerStatuses
		return c
	}
	var unknown, unready []string
	check := func(ctr *v1.Container) {
		s, ok := findStatus(statuses, ctr.Name)
		switch {
		case !ok:
			unknown = append(unknown, ctr.Name)
		case !s.Ready:
			unready = append(unready, ctr.Name)
		}
	}
	for i := range pod.Spec.InitContainers {
		if core.IsSidecar(&pod.Spec.InitContainers[i]) {
			check(&pod.Spec.InitContainers[i])
		}
	}
	for i := range pod.Spec.Containers {
		check(&pod.Spec.Containers[i])
	}
	switch {
	case phase == v1.PodSucceeded && len(unknown) == 0:
		c.Reason = ReasonPodCompleted
		return c
	case phase == v1.PodFailed:
		c.Reason = ReasonPodFailed
		return c
	}
	if msg := notReadyMessage("unready", unknown, unready); msg != "" {
		c.Reason, c.Message = ReasonContainersNotReady, msg
		return c
	}
	c.Status = v1.ConditionTrue
	return c
}

// podReadyCondition: ContainersReady, and then every readiness gate's
// condition True.
func podReadyCondition(pod *v1.Pod, conditions []v1.PodCondition, statuses []v1.ContainerStatus, phase v1.PodPhase) v1.PodCondition {
	cr := containersReadyCondition(pod, statuses, phase)
	c := v1.PodCondition{Type: v1.PodReady, ObservedGeneration: pod.Generation, Status: cr.Status, Reason: cr.Reason, Message: cr.Message}
	if cr.Status != v1.ConditionTrue {
		return c
	}
	var msgs []string
	for _, rg := range pod.Spec.ReadinessGates {
		gc := findCondition(conditions, rg.ConditionType)
		switch {
		case gc == nil:
			msgs = append(msgs, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", string(rg.ConditionType)))
		case gc.Status != v1.ConditionTrue:
			msgs = append(msgs, fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", string(rg.ConditionType), gc.Status))
		}
	}
	if len(msgs) > 0 {
		c.Status, c.Reason, c.Message = v1.ConditionFalse, ReasonReadinessGatesNotReady, strings.Join(msgs, ", ")
	}
	return c
}

// notReadyMessage lists the containers without a status and those not
// ready (or incomplete) as the kubelet does: "containers with unknown
// status: [a b], containers with unready status: [c]".
func notReadyMessage(what string, unknown, notReady []string) string {
	var msgs []string
	if len(unknown) > 0 {
		msgs = append(msgs, fmt.Sprintf("containers with unknown status: %s", unknown))
	}
	if len(notReady) > 0 {
		msgs = append(msgs, fmt.Sprintf("containers with %s status: %s", what, notReady))
	}
	return strings.Join(msgs, ", ")
}

// allContainersRestartingCondition: True from the exit of a container
// whose RestartAllContainers rule matched until every container of the
// pod is gone from the runtime.
func allContainersRestartingCondition(pod *v1.Pod, rt *core.PodStatus, old *v1.PodStatus, phase v1.PodPhase) v1.PodCondition {
	c := v1.PodCondition{Type: v1.AllContainersRestarting, Status: v1.ConditionFalse}
	switch {
	case phase == v1.PodSucceeded:
		c.Reason = ReasonPodCompleted
	case phase == v1.PodFailed:
		c.Reason = ReasonPodFailed
	case !shouldAllContainersRestart(pod, rt, old):
	case allContainersGone(pod, rt):
	default:
		c.Status, c.Reason, c.Message = v1.ConditionTrue, ReasonRestartAllContainersStarted, "container exited with restart policy rule"
	}
	return c
}

// shouldAllContainersRestart reports whether the pod is restarting all
// its containers: old says so (AllContainersRestarting True), or the
// newest instance of an init or regular container, or its terminated
// state in old, exited with a code whose rule is RestartAllContainers.
func shouldAllContainersRestart(pod *v1.Pod, rt *core.PodStatus, old *v1.PodStatus) bool {
	if c := findCondition(old.Conditions, v1.AllContainersRestarting); c != nil && c.Status == v1.ConditionTrue {
		return true
	}
	restartsAll := func(c *v1.Container, exitCode int32) bool {
		rule, ok := core.MatchRestartRule(c, exitCode)
		return ok && rule.Action == v1.ContainerRestartRuleActionRestartAllContainers
	}
	for _, cs := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			c := &cs[i]
			if s := newestInstance(rt, c.Name); s != nil && s.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED && restartsAll(c, s.GetExitCode()) {
				return true
			}
			if s, ok := findStatus(old.InitContainerStatuses, c.Name); ok && s.State.Terminated != nil && restartsAll(c, s.State.Terminated.ExitCode) {
				return true
			}
			if s, ok := findStatus(old.ContainerStatuses, c.Name); ok && s.State.Terminated != nil && restartsAll(c, s.State.Terminated.ExitCode) {
				return true
			}
		}
	}
	return false
}

// allContainersGone reports whether the runtime has no instance of any
// init or regular container of the pod.
func allContainersGone(pod *v1.Pod, rt *core.PodStatus) bool {
	for _, cs := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			if newestInstance(rt, cs[i].Name) != nil {
				return false
			}
		}
	}
	return true
}
