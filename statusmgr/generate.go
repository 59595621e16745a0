package statusmgr

import (
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	utilnet "k8s.io/utils/net"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
)

// ProbeState is what the prober knows of a pod's running regular
// containers and sidecars, by CRI container ID (without the runtime
// prefix). syncloop's ProbeManager implements it.
type ProbeState interface {
	// Ready reports whether the instance is ready: it has started, and it
	// has no readiness probe or that probe succeeded last.
	Ready(uid types.UID, containerID string) bool
	// Started reports whether the instance has started: it has no
	// startup probe or that probe succeeded.
	Started(uid types.UID, containerID string) bool
}

// Waiting is a container that the sync loop could not start or holds
// back, with the kubelet's reason (CrashLoopBackOff, ImagePullBackOff,
// ErrImagePull, CreateContainerConfigError, RunContainerError, ...) and
// message: syncloop's Driver.Waiting reports them.
type Waiting struct {
	// Name of the init, regular or ephemeral container.
	Name    string
	Reason  string
	Message string
}

// Eviction is a decision, taken outside the pod's containers, that the pod
// fails: its active deadline passed (ActiveDeadlineExceeded), the node's
// resources ran short, the node shuts down.
type Eviction struct {
	// Reason and Message become the pod's (Evicted, DeadlineExceeded, ...).
	Reason  string
	Message string
	// DisruptionTarget adds the DisruptionTarget condition (True, reason
	// TerminationByKubelet, Message), as the kubelet's eviction manager
	// and node shutdown do. Later statuses keep it (from Previous).
	DisruptionTarget bool
}

// Input is everything a pod's status is generated from.
type Input struct {
	// Pod is the pod: its spec, and in its Status the status the API
	// has, which the kubelet consults too: the conditions others own
	// (kept as they are), a terminal phase (never left), the reason and
	// message of the phase, and the evidence that the pod was initialized
	// (Finished). Required: without it Generate returns an empty status.
	Pod *v1.Pod
	// Previous is the status last generated for the pod (the status
	// manager's cache). Nil: Pod.Status. The new status keeps its start
	// time, the lastTransitionTime of each condition whose status does not
	// change, the restart counts and last states of containers the
	// runtime lost, its DisruptionTarget condition and its terminal phase.
	Previous *v1.PodStatus
	// Runtime is the pod's runtime status, as the PLEG caches it. Nil:
	// the runtime has nothing of the pod.
	Runtime *core.PodStatus
	// Probes answers which running containers have started and are
	// ready. Nil: no prober runs; a running container has started unless
	// it has a startupProbe (or its previous status says it has), and is
	// ready once started unless it has a readinessProbe: the kubelet's
	// values before any probe result.
	Probes ProbeState
	// Waiting are the containers the last sync could not start or held
	// back. One the next sync is to start waits with its reason.
	Waiting []Waiting
	// HostIPs are the node's IPs, primary first: the pod's hostIP and
	// hostIPs (two at most, one per family), the pod IPs of a pod on the
	// host network, and the family its pod IPs are ordered by. Empty:
	// hostIP is not set.
	HostIPs []string
	// RuntimeName is the runtime's name (VersionResponse.RuntimeName),
	// the scheme of container IDs in the status: "containerd://<id>".
	// Empty: "containerd".
	RuntimeName string
	// SupportsRecursiveReadOnly says the pod's runtime handler supports
	// recursively read-only mounts, as crispec.ContainerOptions has it.
	SupportsRecursiveReadOnly bool
	// TerminationMessage, if not nil, returns what an exited container
	// instance left as its termination message: Generate calls it for
	// the newest two instances of each container, and appends a
	// non-empty answer to the runtime's message for the instance after
	// ": ". ReadTerminationMessage reads it as the kubelet does. Nil: the
	// runtime's message alone.
	TerminationMessage func(cs *runtimeapi.ContainerStatus) string
	// Evict, if not nil, fails the pod with its reason and message.
	Evict *Eviction
	// Terminal says nothing of the pod runs or will run again: its
	// containers were stopped for good (syncloop's SyncTerminatingPod
	// finished). Restart policies no longer count: the phase is
	// Succeeded when every regular container exited 0, else Failed
	// (static pods excepted, as in the kubelet).
	Terminal bool
	// Finished says the pod's worker is done with it (syncloop's
	// Terminated state): this is its last status. It implies Terminal.
	// As the kubelet's TerminatePod: once the pod was initialized, every
	// regular container without a terminated state gets one of
	// ContainerStatusUnknown (exit code 137), and so does every init
	// container up to the last one that ran; a phase that is not terminal
	// becomes Failed (static pods excepted).
	Finished bool
	// Now is the time of the status: the lastTransitionTime of conditions
	// that change and the start time of a pod that has none.
	Now time.Time
}

// generator holds one Generate call.
type generator struct {
	pod         *v1.Pod
	old         *v1.PodStatus
	rt          *core.PodStatus
	waiting     map[string]Waiting
	restarting  bool
	runtimeName string
	supportsRRO bool

	terminationMessage func(*runtimeapi.ContainerStatus) string
}

// Generate returns the status of in.Pod as the kubelet generates it
// (generateAPIPodStatus, then what its status manager does before caching
// it), with Kubernetes 1.37's default feature gates:
//
//   - podIPs from the runtime, at most one per family, the node's primary
//     family first; the node's IPs for a pod on the host network; hostIP
//     and hostIPs from in.HostIPs; the QoS class.
//   - Container statuses for init, regular and ephemeral containers
//     (state, lastState, restartCount, image, imageID, containerID,
//     volumeMounts, resources, allocatedResources, user), started and
//     ready from in.Probes; see the package documentation for the rules.
//   - The phase (Phase), kept terminal once it was (in Previous or in the
//     API) and Failed on in.Evict, with the reason and message of the
//     phase kept while the phase does not change.
//   - The conditions the kubelet owns: PodReadyToStartContainers,
//     Initialized, Ready (with readiness gates), ContainersReady,
//     PodScheduled and, for pods with a RestartAllContainers rule,
//     AllContainersRestarting, after the conditions others own (from
//     Pod.Status) and DisruptionTarget (from Previous or in.Evict). Ready
//     and ContainersReady are never True in a terminal phase.
//   - observedGeneration (the pod's generation) on the status and its
//     conditions; lastTransitionTime of each condition kept from
//     Previous while its status does not change, else in.Now; startTime
//     from Previous, else in.Now.
//   - Times to the second, each container's terminated message cut to
//     its share of MaxPodTerminationMessageLength.
//
// Generate is deterministic: it does no I/O, reads no clock, modifies no
// argument, and calls in.Probes and in.TerminationMessage and nothing else.
func Generate(in Input) v1.PodStatus {
	pod := in.Pod
	if pod == nil {
		return v1.PodStatus{}
	}
	g := &generator{
		pod:                pod,
		old:                in.Previous,
		rt:                 in.Runtime,
		waiting:            make(map[string]Waiting, len(in.Waiting)),
		runtimeName:        in.RuntimeName,
		supportsRRO:        in.SupportsRecursiveReadOnly,
		terminationMessage: in.TerminationMessage,
	}
	if g.old == nil {
		g.old = &pod.Status
	}
	if g.rt == nil {
		g.rt = &core.PodStatus{UID: pod.UID}
	}
	if g.runtimeName == "" {
		g.runtimeName = "containerd"
	}
	for _, w := range in.Waiting {
		g.waiting[w.Name] = w
	}
	terminal := in.Terminal || in.Finished
	old := g.old

	var s v1.PodStatus
	for _, ip := range sortPodIPs(g.rt.IPs, in.HostIPs) {
		s.PodIPs = append(s.PodIPs, v1.PodIP{IP: ip})
	}
	if len(s.PodIPs) > 0 {
		s.PodIP = s.PodIPs[0].IP
	}
	s.QOSClass = crispec.PodQOS(pod)
	g.restarting = shouldAllContainersRestart(pod, g.rt, old)
	s.ContainerStatuses = g.containerStatuses(pod.Spec.Containers, old.ContainerStatuses, false)
	s.InitContainerStatuses = g.containerStatuses(pod.Spec.InitContainers, old.InitContainerStatuses, true)
	if len(pod.Spec.EphemeralContainers) > 0 {
		ecs := make([]v1.Container, len(pod.Spec.EphemeralContainers))
		for i := range pod.Spec.EphemeralContainers {
			ecs[i] = v1.Container(pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
		}
		s.EphemeralContainerStatuses = g.containerStatuses(ecs, old.EphemeralContainerStatuses, false)
	}
	s.Resources, s.AllocatedResources = podResources(pod)

	// The phase, and its reason and message.
	all := append(append([]v1.ContainerStatus{}, s.ContainerStatuses...), s.InitContainerStatuses...)
	s.Phase = Phase(pod, all, terminal, anyActiveRegularContainer(pod, g.rt))
	if !terminalPhase(s.Phase) {
		switch {
		case terminalPhase(old.Phase):
			s.Phase = old.Phase
		case terminalPhase(pod.Status.Phase):
			s.Phase = pod.Status.Phase
		}
	}
	if s.Phase == old.Phase {
		s.Reason, s.Message = old.Reason, old.Message
		if s.Reason == "" {
			s.Reason = pod.Status.Reason
		}
		if s.Message == "" {
			s.Message = pod.Status.Message
		}
	}
	if in.Evict != nil {
		s.Phase, s.Reason, s.Message = v1.PodFailed, in.Evict.Reason, in.Evict.Message
	}
	if terminalPhase(pod.Status.Phase) {
		s.Phase = pod.Status.Phase
	}

	g.updateProbes(&s, in.Probes)

	// Conditions: those others own, DisruptionTarget, then the kubelet's.
	for _, c := range pod.Status.Conditions {
		if !byKubelet(c.Type) {
			s.Conditions = append(s.Conditions, *c.DeepCopy())
		}
	}
	if c := findCondition(old.Conditions, v1.DisruptionTarget); c != nil {
		s.Conditions = replaceOrAppend(s.Conditions, *c.DeepCopy())
	}
	all = append(append([]v1.ContainerStatus{}, s.InitContainerStatuses...), s.ContainerStatuses...)
	s.Conditions = append(s.Conditions, readyToStartCondition(pod, g.rt))
	s.Conditions = append(s.Conditions, initializedCondition(pod, old, all, s.Phase))
	s.Conditions = append(s.Conditions, podReadyCondition(pod, s.Conditions, all, s.Phase))
	s.Conditions = append(s.Conditions, containersReadyCondition(pod, all, s.Phase))
	s.Conditions = append(s.Conditions, v1.PodCondition{Type: v1.PodScheduled, ObservedGeneration: pod.Generation, Status: v1.ConditionTrue})
	if allContainersCouldRestart(&pod.Spec) {
		s.Conditions = append(s.Conditions, allContainersRestartingCondition(pod, g.rt, old, s.Phase))
	}
	if e := in.Evict; e != nil && e.DisruptionTarget {
		s.Conditions = replaceOrAppend(s.Conditions, v1.PodCondition{
			Type:               v1.DisruptionTarget,
			ObservedGeneration: pod.Generation,
			Status:             v1.ConditionTrue,
			Reason:             ReasonTerminationByKubelet,
			Message:            e.Message,
		})
	}

	setHostIPs(&s, pod, in.HostIPs)
	if in.Finished {
		terminate(pod, &s)
	}
	if terminalPhase(s.Phase) {
		// Never ready in a terminal phase.
		for _, t := range []v1.PodConditionType{v1.ContainersReady, v1.PodReady} {
			if c := findCondition(s.Conditions, t); c != nil && c.Status == v1.ConditionTrue {
				c.Status, c.Message = v1.ConditionFalse, ""
				c.Reason = ReasonPodFailed
				if s.Phase == v1.PodSucceeded {
					c.Reason = ReasonPodCompleted
				}
			}
		}
	}

	// What the status manager adds as it caches the status.
	s.ObservedGeneration = max(pod.Generation, old.ObservedGeneration)
	now := metav1.NewTime(in.Now)
	for _, t := range transitionTracked {
		c := findCondition(s.Conditions, t)
		if c == nil {
			continue
		}
		c.LastTransitionTime = now
		if o := findCondition(old.Conditions, t); o != nil && o.Status == c.Status {
			c.LastTransitionTime = o.LastTransitionTime
		}
	}
	if old.StartTime != nil && !old.StartTime.IsZero() {
		s.StartTime = old.StartTime.DeepCopy()
	} else {
		s.StartTime = &now
	}
	if len(old.VolumeHealth) > 0 {
		s.VolumeHealth = make([]v1.PodVolumeHealth, len(old.VolumeHealth))
		for i := range old.VolumeHealth {
			old.VolumeHealth[i].DeepCopyInto(&s.VolumeHealth[i])
		}
	}
	normalize(pod, &s)
	tidy(&s)
	return s
}

// tidy leaves out empty lists, as the API does once the status is stored.
func tidy(s *v1.PodStatus) {
	if len(s.InitContainerStatuses) == 0 {
		s.InitContainerStatuses = nil
	}
	if len(s.ContainerStatuses) == 0 {
		s.ContainerStatuses = nil
	}
	if len(s.AllocatedResources) == 0 {
		s.AllocatedResources = nil
	}
	if r := s.Resources; r != nil {
		if len(r.Requests) == 0 {
			r.Requests = nil
		}
		if len(r.Limits) == 0 {
			r.Limits = nil
		}
	}
}

func terminalPhase(p v1.PodPhase) bool {
	return p == v1.PodSucceeded || p == v1.PodFailed
}

// updateProbes sets started and ready, as the kubelet's prober manager
// does on every status: a regular container or sidecar has started when
// it runs and the prober says so; it is ready when it has started, runs
// and the prober says so. An init container is ready once it exited 0.
// Ephemeral containers are neither.
func (g *generator) updateProbes(s *v1.PodStatus, probes ProbeState) {
	uid := g.pod.UID
	rawID := func(cs *v1.ContainerStatus) string {
		_, id, _ := strings.Cut(cs.ContainerID, "://")
		return id
	}
	started := func(cs *v1.ContainerStatus, c *v1.Container) bool {
		switch {
		case cs.State.Running == nil:
			return false
		case probes != nil:
			return probes.Started(uid, rawID(cs))
		case cs.Started != nil && *cs.Started:
			return true
		}
		return c == nil || c.StartupProbe == nil
	}
	ready := func(cs *v1.ContainerStatus, c *v1.Container) bool {
		switch {
		case cs.State.Running == nil:
			return false
		case probes != nil:
			return probes.Ready(uid, rawID(cs))
		}
		return c == nil || c.ReadinessProbe == nil
	}
	for i := range s.ContainerStatuses {
		cs := &s.ContainerStatuses[i]
		var c *v1.Container
		for j := range g.pod.Spec.Containers {
			if g.pod.Spec.Containers[j].Name == cs.Name {
				c = &g.pod.Spec.Containers[j]
			}
		}
		st := started(cs, c)
		cs.Started = &st
		if st {
			cs.Ready = ready(cs, c)
		}
	}
	for i := range s.InitContainerStatuses {
		cs := &s.InitContainerStatuses[i]
		c := &g.pod.Spec.InitContainers[i]
		st := started(cs, c)
		cs.Started = &st
		if !core.IsSidecar(c) {
			if t := cs.State.Terminated; t != nil && t.ExitCode == 0 {
				cs.Ready = true
			}
			continue
		}
		if st {
			cs.Ready = ready(cs, c)
		}
	}
}

// sortPodIPs returns the first pod IP of the node's primary family (that
// of hostIPs[0]; IPv4 when there is none) and the first of the other
// family, each written canonically.
func sortPodIPs(ips, hostIPs []string) []string {
	primary, secondary := utilnet.IsIPv4, utilnet.IsIPv6
	if len(hostIPs) > 0 && utilnet.IsIPv6String(hostIPs[0]) {
		primary, secondary = utilnet.IsIPv6, utilnet.IsIPv4
	}
	var out []string
	for _, want := range []func(ip []byte) bool{
		func(ip []byte) bool { return primary(ip) },
		func(ip []byte) bool { return secondary(ip) },
	} {
		for _, s := range ips {
			if ip := utilnet.ParseIPSloppy(s); ip != nil && want(ip) {
				out = append(out, ip.String())
				break
			}
		}
	}
	return out
}

// setHostIPs sets hostIP and hostIPs from the node's IPs, and the pod IPs
// of a pod on the host network that has none yet.
func setHostIPs(s *v1.PodStatus, pod *v1.Pod, hostIPs []string) {
	if len(hostIPs) == 0 {
		return
	}
	if len(hostIPs) > 2 {
		hostIPs = hostIPs[:2]
	}
	s.HostIP = hostIPs[0]
	s.HostIPs = nil
	for _, ip := range hostIPs {
		s.HostIPs = append(s.HostIPs, v1.HostIP{IP: ip})
	}
	if !pod.Spec.HostNetwork {
		return
	}
	if s.PodIP == "" {
		s.PodIP = hostIPs[0]
		s.PodIPs = []v1.PodIP{{IP: s.PodIP}}
	}
	if len(hostIPs) == 2 && len(s.PodIPs) == 1 && utilnet.IsIPv6String(s.PodIPs[0].IP) != utilnet.IsIPv6String(hostIPs[1]) {
		s.PodIPs = append(s.PodIPs, v1.PodIP{IP: hostIPs[1]})
	}
}

// podResources are the pod-level resources and allocated resources of
// the status: the spec's pod-level resources with requests and limits
// summed over its containers as the scheduler sums them (overhead
// included). The kubelet reads a running pod's cgroup instead; that is
// the same unless a resize is under way, which nodekit does not do.
func podResources(pod *v1.Pod) (*v1.ResourceRequirements, v1.ResourceList) {
	r := pod.Spec.Resources.DeepCopy()
	if r == nil {
		r = &v1.ResourceRequirements{}
	}
	r.Requests = resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	r.Limits = resourcehelper.PodLimits(pod, resourcehelper.PodResourcesOptions{})
	return r, resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
}

// normalize cuts times to the second (in UTC), as the API stores them, and each
// container's terminated message to its share of
// MaxPodTerminationMessageLength.
func normalize(pod *v1.Pod, s *v1.PodStatus) {
	perContainer := MaxPodTerminationMessageLength
	if n := len(pod.Spec.Containers) + len(pod.Spec.InitContainers) + len(pod.Spec.EphemeralContainers); n > 0 {
		perContainer /= n
	}
	second := func(t *metav1.Time) {
		if !t.IsZero() {
			*t = metav1.NewTime(t.UTC().Truncate(time.Second))
		}
	}
	state := func(c *v1.ContainerState) {
		if c.Running != nil {
			second(&c.Running.StartedAt)
		}
		if c.Terminated != nil {
			second(&c.Terminated.StartedAt)
			second(&c.Terminated.FinishedAt)
			if len(c.Terminated.Message) > perContainer {
				c.Terminated.Message = c.Terminated.Message[:perContainer]
			}
		}
	}
	if s.StartTime != nil {
		second(s.StartTime)
	}
	for i := range s.Conditions {
		second(&s.Conditions[i].LastProbeTime)
		second(&s.Conditions[i].LastTransitionTime)
	}
	for _, list := range [][]v1.ContainerStatus{s.InitContainerStatuses, s.ContainerStatuses, s.EphemeralContainerStatuses} {
		for i := range list {
			state(&list[i].State)
			state(&list[i].LastTerminationState)
		}
	}
}
