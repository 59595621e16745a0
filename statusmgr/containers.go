package statusmgr

import (
	"slices"
	"sort"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

// Waiting reasons and termination reasons the kubelet sets itself; the
// runtime gives the others (Completed, Error, OOMKilled, StartError, ...).
const (
	// ReasonContainerCreating: the container has not been created yet
	// (the pod has no init containers).
	ReasonContainerCreating = "ContainerCreating"
	// ReasonPodInitializing: the container has not been created yet and
	// the pod has init containers.
	ReasonPodInitializing = "PodInitializing"
	// ReasonContainerStatusUnknown: the runtime lost a container that was
	// running, or the pod ended without the container's status known.
	// Its exit code is 137.
	ReasonContainerStatusUnknown = "ContainerStatusUnknown"
	// ReasonRestartingAllContainers: the container was removed because
	// the pod restarts all its containers in place.
	ReasonRestartingAllContainers = "RestartingAllContainers"
	// ReasonCompleted: an init container the runtime lost after the pod
	// was initialized is taken as completed.
	ReasonCompleted = "Completed"
)

// Messages of the container states the kubelet makes up, in its words.
const (
	MessageNotLocatedTerminated = "The container could not be located when the pod was terminated"
	MessageNotLocatedDeleted    = "The container could not be located when the pod was deleted.  The container used to be Running"
	MessageRestartingAll        = "The container is removed because RestartAllContainers in place"
	MessageInitAssumedCompleted = "Unable to get init container status from container runtime and pod has been initialized, treat it as exited normally"
)

// Limits of the kubelet on termination messages.
const (
	// MaxTerminationMessageLength is the most bytes read from a
	// container's terminationMessagePath.
	MaxTerminationMessageLength = 4 * 1024
	// MaxTerminationMessageLogLength is the most bytes of a container's
	// log taken as its termination message (FallbackToLogsOnError).
	MaxTerminationMessageLogLength = 2 * 1024
	// MaxTerminationMessageLogLines is the most lines of a container's log
	// taken as its termination message.
	MaxTerminationMessageLogLines = 80
	// MaxPodTerminationMessageLength is what the messages of all the
	// containers of a pod may hold together: each container's terminated
	// message is cut to this divided by the pod's number of containers.
	MaxPodTerminationMessageLength = 12 * 1024
)

// exitCodeUnknown is the exit code the kubelet gives a container whose end
// it did not see.
const exitCodeUnknown = 137

// containerName is the container name of a runtime instance: its
// io.kubernetes.container.name label, else its CRI metadata name.
func containerName(cs *runtimeapi.ContainerStatus) string {
	if n, ok := cs.GetLabels()[core.LabelContainerName]; ok {
		return n
	}
	return cs.GetMetadata().GetName()
}

// newestInstance returns the newest runtime instance of the container
// name, nil when the runtime has none.
func newestInstance(rt *core.PodStatus, name string) *runtimeapi.ContainerStatus {
	var newest *runtimeapi.ContainerStatus
	for _, cs := range rt.ContainerStatuses {
		if containerName(cs) == name && (newest == nil || cs.GetCreatedAt() > newest.GetCreatedAt()) {
			newest = cs
		}
	}
	return newest
}

// anyActiveRegularContainer reports whether a regular container has an
// instance in the pod's current sandbox: the newest sandbox, when it is
// ready. CRI container statuses do not name their sandbox, so an instance
// belongs to it when it was created at or after the sandbox.
func anyActiveRegularContainer(pod *v1.Pod, rt *core.PodStatus) bool {
	if len(rt.SandboxStatuses) == 0 || rt.SandboxStatuses[0].GetState() != runtimeapi.PodSandboxState_SANDBOX_READY {
		return false
	}
	since := rt.SandboxStatuses[0].GetCreatedAt()
	for _, cs := range rt.ContainerStatuses {
		if cs.GetCreatedAt() < since {
			continue
		}
		name := containerName(cs)
		for i := range pod.Spec.Containers {
			if pod.Spec.Containers[i].Name == name {
				return true
			}
		}
	}
	return false
}

// anyRegularContainerCreated reports whether the newest instance of a
// regular container was created, runs or has exited.
func anyRegularContainerCreated(pod *v1.Pod, rt *core.PodStatus) bool {
	for i := range pod.Spec.Containers {
		cs := newestInstance(rt, pod.Spec.Containers[i].Name)
		if cs == nil {
			continue
		}
		switch cs.GetState() {
		case runtimeapi.ContainerState_CONTAINER_CREATED, runtimeapi.ContainerState_CONTAINER_RUNNING, runtimeapi.ContainerState_CONTAINER_EXITED:
			return true
		}
	}
	return false
}

// shouldBeRestarted is the kubelet's ShouldContainerBeRestarted: the
// container is to be started (again) by the next sync.
func shouldBeRestarted(c *v1.Container, pod *v1.Pod, rt *core.PodStatus) bool {
	if pod.DeletionTimestamp != nil {
		return false
	}
	cs := newestInstance(rt, c.Name)
	if cs == nil {
		return true
	}
	switch cs.GetState() {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return false
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return core.ContainerShouldRestart(c, pod.Spec.RestartPolicy, cs.GetExitCode())
	default:
		return true
	}
}

// containerStatuses converts the runtime's instances of the containers
// specs into API statuses, as the kubelet's convertToAPIContainerStatuses:
//
//   - A container the runtime has no instance of waits (ContainerCreating,
//     or PodInitializing in a pod with init containers), keeping the
//     restart count and last state of its previous status; a terminated
//     previous status is kept whole. One that was running and is gone gets
//     a lastState of ContainerStatusUnknown (exit code 137) and, unless
//     the pod is being deleted, one more restart.
//   - Otherwise its newest instance gives its state and the one before it
//     its lastState.
//   - A container the next sync starts, for which the sync loop reported
//     a reason (Input.Waiting), waits with that reason and message; its
//     terminated state becomes its lastState.
//
// Init containers come in spec order, the others sorted by name.
func (g *generator) containerStatuses(specs []v1.Container, previous []v1.ContainerStatus, isInit bool) []v1.ContainerStatus {
	pod, rt := g.pod, g.rt
	hasInit := len(pod.Spec.InitContainers) > 0
	defaultReason := ReasonContainerCreating
	if hasInit {
		defaultReason = ReasonPodInitializing
	}
	old := make(map[string]*v1.ContainerStatus, len(previous))
	for i := range previous {
		old[previous[i].Name] = &previous[i]
	}

	statuses := make(map[string]*v1.ContainerStatus, len(specs))
	for i := range specs {
		c := &specs[i]
		s := &v1.ContainerStatus{
			Name:         c.Name,
			Image:        c.Image,
			State:        v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: defaultReason}},
			VolumeMounts: g.volumeMounts(c),
		}
		if o, ok := old[c.Name]; ok {
			if o.State.Terminated != nil {
				s = o.DeepCopy()
			} else {
				s.RestartCount = o.RestartCount
				s.LastTerminationState = *o.LastTerminationState.DeepCopy()
			}
		}
		statuses[c.Name] = s
	}

	// Containers the runtime has no instance of.
	for i := range specs {
		c := &specs[i]
		o, ok := old[c.Name]
		if !ok || newestInstance(rt, c.Name) != nil {
			continue
		}
		s := statuses[c.Name]
		if g.restarting && o.State.Waiting == nil {
			s.State = v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: ReasonRestartingAllContainers, Message: MessageRestartingAll}}
			s.LastTerminationState.Terminated = &v1.ContainerStateTerminated{Reason: ReasonRestartingAllContainers, Message: MessageRestartingAll, ExitCode: exitCodeUnknown}
			s.RestartCount = o.RestartCount + 1
			continue
		}
		if o.State.Terminated != nil || o.State.Running == nil {
			continue
		}
		if s.State.Waiting == nil || s.State.Waiting.Reason != defaultReason || s.LastTerminationState.Terminated != nil {
			continue
		}
		// It was running and is gone: it did end, with an unknown code.
		s.LastTerminationState.Terminated = &v1.ContainerStateTerminated{Reason: ReasonContainerStatusUnknown, Message: MessageNotLocatedDeleted, ExitCode: exitCodeUnknown}
		if pod.DeletionTimestamp == nil {
			s.RestartCount++
		}
	}

	// The newest instance gives the state, the one before the lastState.
	instances := make([]*runtimeapi.ContainerStatus, len(rt.ContainerStatuses))
	copy(instances, rt.ContainerStatuses)
	sort.SliceStable(instances, func(i, j int) bool { return instances[i].GetCreatedAt() > instances[j].GetCreatedAt() })
	seen := map[string]int{}
	for _, cs := range instances {
		name := containerName(cs)
		if _, ok := statuses[name]; !ok || seen[name] >= 2 {
			continue
		}
		s := g.convert(cs, old[name])
		if seen[name] == 0 {
			statuses[name] = s
		} else {
			statuses[name].LastTerminationState = s.State
		}
		seen[name]++
	}

	// Containers the next sync starts wait, with the sync loop's reason.
	for i := range specs {
		c := &specs[i]
		s := statuses[c.Name]
		if isInit {
			newest := newestInstance(rt, c.Name)
			if newest.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED && newest.GetExitCode() == 0 {
				continue
			}
			// The runtime lost an init container of a pod whose regular
			// containers were created: it did complete.
			if newest == nil && !core.IsSidecar(c) && s.State.Waiting != nil && anyRegularContainerCreated(pod, rt) {
				s.State = v1.ContainerState{Terminated: &v1.ContainerStateTerminated{Reason: ReasonCompleted, Message: MessageInitAssumedCompleted}}
				continue
			}
		}
		if !shouldBeRestarted(c, pod, rt) {
			continue
		}
		w, ok := g.waiting[c.Name]
		if !ok {
			continue
		}
		if s.State.Terminated != nil {
			s.LastTerminationState = s.State
		}
		s.State = v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: w.Reason, Message: w.Message}}
	}

	out := make([]v1.ContainerStatus, 0, len(statuses))
	if isInit {
		for i := range specs {
			out = append(out, *statuses[specs[i].Name])
		}
		return out
	}
	for _, s := range statuses {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// convert is the API status of one runtime instance; o is the container's
// previous status, if any.
func (g *generator) convert(cs *runtimeapi.ContainerStatus, o *v1.ContainerStatus) *v1.ContainerStatus {
	info, _, _ := core.ContainerInfoFromLabels(cs.GetLabels(), cs.GetAnnotations())
	id := g.runtimeName + "://" + cs.GetId()
	s := &v1.ContainerStatus{
		Name:         containerName(cs),
		RestartCount: int32(info.RestartCount),
		Image:        cs.GetImage().GetImage(),
		ImageID:      cs.GetImageRef(),
		ContainerID:  id,
	}
	if o != nil {
		for i := range o.VolumeMounts {
			s.VolumeMounts = append(s.VolumeMounts, *o.VolumeMounts[i].DeepCopy())
		}
		// Restart counts never go down, and a lastState survives the
		// removal of the instance it came from (RestartAllContainers).
		s.RestartCount = max(s.RestartCount, o.RestartCount)
		if o.ContainerID != id && o.State.Terminated != nil {
			s.LastTerminationState.Terminated = o.State.Terminated.DeepCopy()
		} else if o.LastTerminationState.Terminated != nil {
			s.LastTerminationState.Terminated = o.LastTerminationState.Terminated.DeepCopy()
		}
	}
	switch cs.GetState() {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		s.State.Running = &v1.ContainerStateRunning{StartedAt: unixTime(cs.GetStartedAt())}
		if o != nil && o.State.Terminated != nil && o.RestartCount >= int32(info.RestartCount) {
			s.RestartCount = o.RestartCount + 1
		}
		// Started stays as the previous status says until a probe
		// decides (updateProbes).
		if o != nil && o.Started != nil {
			started := *o.Started
			s.Started = &started
		}
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		s.State.Waiting = &v1.ContainerStateWaiting{}
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		msg := cs.GetMessage()
		if g.terminationMessage != nil {
			if tm := g.terminationMessage(cs); tm != "" {
				if msg != "" {
					msg += ": "
				}
				msg += tm
			}
		}
		s.State.Terminated = &v1.ContainerStateTerminated{
			ExitCode:    cs.GetExitCode(),
			Reason:      cs.GetReason(),
			Message:     msg,
			StartedAt:   unixTime(cs.GetStartedAt()),
			FinishedAt:  unixTime(cs.GetFinishedAt()),
			ContainerID: id,
		}
	default:
		if o != nil && o.State.Running != nil {
			// It was running and the runtime no longer knows: it ended.
			reason := ReasonContainerStatusUnknown
			if g.restarting {
				reason = ReasonRestartingAllContainers
			}
			s.State.Terminated = &v1.ContainerStateTerminated{Reason: reason, Message: MessageNotLocatedTerminated, ExitCode: exitCodeUnknown}
			s.RestartCount = o.RestartCount + 1
		} else {
			s.State.Waiting = &v1.ContainerStateWaiting{}
		}
	}
	if c := g.spec(s.Name); c != nil {
		s.Resources = g.resources(c, s, cs, o)
		s.AllocatedResources = c.Resources.Requests.DeepCopy()
	}
	if u := cs.GetUser(); u != nil {
		s.User = &v1.ContainerUser{}
		if l := u.GetLinux(); l != nil {
			s.User.Linux = &v1.LinuxContainerUser{UID: l.GetUid(), GID: l.GetGid(), SupplementalGroups: slices.Clone(l.GetSupplementalGroups())}
		}
	}
	return s
}

func unixTime(ns int64) metav1.Time {
	return metav1.NewTime(time.Unix(0, ns).UTC())
}

// spec returns the init, regular or ephemeral container named name.
func (g *generator) spec(name string) *v1.Container {
	for _, cs := range [][]v1.Container{g.pod.Spec.InitContainers, g.pod.Spec.Containers} {
		for i := range cs {
			if cs[i].Name == name {
				return &cs[i]
			}
		}
	}
	for i := range g.pod.Spec.EphemeralContainers {
		if ec := &g.pod.Spec.EphemeralContainers[i]; ec.Name == name {
			c := v1.Container(ec.EphemeralContainerCommon)
			return &c
		}
	}
	return nil
}

// volumeMounts are a container's mounts as its status shows them, with
// the recursive read-only mode a read-only mount gets.
func (g *generator) volumeMounts(c *v1.Container) []v1.VolumeMountStatus {
	var out []v1.VolumeMountStatus
	for _, vm := range c.VolumeMounts {
		s := v1.VolumeMountStatus{Name: vm.Name, MountPath: vm.MountPath, ReadOnly: vm.ReadOnly}
		if vm.ReadOnly {
			mode := v1.RecursiveReadOnlyDisabled
			if recursiveReadOnly(vm, g.supportsRRO) {
				mode = v1.RecursiveReadOnlyEnabled
			}
			s.RecursiveReadOnly = &mode
		}
		out = append(out, s)
	}
	return out
}

// recursiveReadOnly reports whether a mount is made recursively read-only.
// A mode that cannot be had (the runtime lacks it, the mount is not
// read-only or propagates) reads as disabled; the container's creation
// fails on it anyway.
func recursiveReadOnly(vm v1.VolumeMount, supported bool) bool {
	if vm.RecursiveReadOnly == nil || !vm.ReadOnly {
		return false
	}
	if vm.MountPropagation != nil && *vm.MountPropagation != v1.MountPropagationNone {
		return false
	}
	switch *vm.RecursiveReadOnly {
	case v1.RecursiveReadOnlyIfPossible, v1.RecursiveReadOnlyEnabled:
		return supported
	}
	return false
}

// CPU amounts below which the kubelet shows the spec's value rather than
// the runtime's: the cgroup minimums.
const (
	minShares        = 2
	minMilliCPULimit = 10
)

// resources are the resources a container status shows: the spec's for
// an instance that does not run; for a running one, the CPU and memory
// limits and the CPU request the runtime reports (CFS quota, memory limit,
// CPU shares), else those of the previous status of the same instance,
// else the spec's.
func (g *generator) resources(c *v1.Container, s *v1.ContainerStatus, cs *runtimeapi.ContainerStatus, o *v1.ContainerStatus) *v1.ResourceRequirements {
	out := c.Resources.DeepCopy()
	if cs.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return out
	}
	var oldLimits, oldRequests v1.ResourceList
	if o != nil && o.State.Running != nil && o.ContainerID == s.ContainerID && o.Resources != nil {
		oldLimits, oldRequests = o.Resources.Limits, o.Resources.Requests
	}
	keep := func(name v1.ResourceName, from, to v1.ResourceList) {
		if q, ok := from[name]; ok {
			to[name] = q.DeepCopy()
		}
	}
	var cpuLimit, cpuRequest, memLimit *resource.Quantity
	if l := cs.GetResources().GetLinux(); l != nil {
		if l.GetCpuPeriod() > 0 && l.GetCpuQuota() != -1 {
			if m := l.GetCpuQuota() * 1000 / l.GetCpuPeriod(); m > 0 {
				cpuLimit = resource.NewMilliQuantity(m, resource.DecimalSI)
			}
		}
		if sh := l.GetCpuShares(); sh >= minShares {
			if m := (sh*1000 + 1023) / 1024; m > 0 {
				cpuRequest = resource.NewMilliQuantity(m, resource.DecimalSI)
			}
		}
		if b := l.GetMemoryLimitInBytes(); b > 0 {
			memLimit = resource.NewQuantity(b, resource.BinarySI)
		}
	}
	if out.Limits != nil {
		if cpuLimit != nil {
			if cpuLimit.MilliValue() > minMilliCPULimit || out.Limits.Cpu().MilliValue() > minMilliCPULimit {
				out.Limits[v1.ResourceCPU] = *cpuLimit
			}
		} else {
			keep(v1.ResourceCPU, oldLimits, out.Limits)
		}
		if memLimit != nil {
			out.Limits[v1.ResourceMemory] = *memLimit
		} else {
			keep(v1.ResourceMemory, oldLimits, out.Limits)
		}
	}
	if out.Requests != nil {
		if cpuRequest != nil {
			if cpuRequest.MilliValue() > minShares || out.Requests.Cpu().MilliValue() > minShares {
				out.Requests[v1.ResourceCPU] = *cpuRequest
			}
		} else {
			keep(v1.ResourceCPU, oldRequests, out.Requests)
		}
		// The runtime does not report a memory request: the spec's
		// stands, which is what the kubelet set.
	}
	return out
}
