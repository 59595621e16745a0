package syncloop

import (
	"fmt"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
)

// Why a new sandbox is needed: PodActions.SandboxReason, with the
// kubelet's messages, which it also shows in the PodReadyToStartContainers
// condition.
const (
	SandboxReasonNone           = "no pod sandbox exists"
	SandboxReasonMultipleReady  = "multiple pod sandboxes are ready and need to be reconciled"
	SandboxReasonNotReady       = "pod sandbox is not ready"
	SandboxReasonNetworkChanged = "network namespace mode changed and sandbox needs to be recreated"
	SandboxReasonNoIP           = "pod sandbox has no IP address"
)

// KillReason says why the plan stops a container.
type KillReason string

// The reasons a container is stopped. Those the kubelet names carry its
// names; the kubelet leaves the reason of a changed spec empty and does
// not stop containers outside the spec.
const (
	// KillSpecChanged: the container's hash annotation differs from the
	// spec's hash (crispec.ContainerHash: its name and image changed).
	KillSpecChanged KillReason = "SpecChanged"
	// KillLivenessProbe: the container's liveness probe failed.
	KillLivenessProbe KillReason = "LivenessProbe"
	// KillStartupProbe: the container's startup probe failed.
	KillStartupProbe KillReason = "StartupProbe"
	// KillUnknownState: the runtime reports the container in an unknown
	// state; it is stopped before it is started again so that two
	// instances never run at once.
	KillUnknownState KillReason = "Unknown"
	// KillNotInSpec: the container is running (or created, or unknown)
	// under a name that the pod's spec does not have.
	KillNotInSpec KillReason = "NotInSpec"
)

// Reasons of a PodActions.Outcome.
const (
	// OutcomeCompleted: every regular container exited with code 0 and
	// the restart policy runs none of them again.
	OutcomeCompleted = "Completed"
	// OutcomeInitContainerFailed: an init container failed and its restart
	// policy does not run it again (restartPolicy Never).
	OutcomeInitContainerFailed = "InitContainerFailed"
	// OutcomeContainerFailed: no container runs again and at least one
	// regular container did not exit with code 0.
	OutcomeContainerFailed = "ContainerFailed"
)

// ProbeResult is the last result of a container's probe.
type ProbeResult int

// Probe results, as the kubelet's prober reports them.
const (
	// ProbeUnknown: the probe has not decided yet (it has not run, or the
	// container's initial delay has not passed). An absent result is
	// unknown too.
	ProbeUnknown ProbeResult = iota
	ProbeSuccess
	ProbeFailure
)

// String returns "Unknown", "Success" or "Failure".
func (r ProbeResult) String() string {
	switch r {
	case ProbeSuccess:
		return "Success"
	case ProbeFailure:
		return "Failure"
	default:
		return "Unknown"
	}
}

// BackOffFunc decides whether restarting container c must wait
// (CrashLoopBackOff). lastExit is the newest exited instance of c in the
// runtime; its finished_at is when the back-off counts from. It returns
// how long the restart must still wait, 0 to restart now, and the waiting
// message when it waits.
//
// Plan calls it once for each container it is about to restart that has
// an exited instance, in start order, and asks about none after an init
// container (not a sidecar) that must wait, as the kubelet stops there. An answer of 0
// means Plan puts the container in the start lists, so an implementation
// may record the restart there, as the kubelet records it before it
// starts the container (BackOff.Next); RestartBackOff does.
type BackOffFunc func(c *v1.Container, lastExit *runtimeapi.ContainerStatus) (wait time.Duration, message string)

// RestartBackOff returns the BackOffFunc of the kubelet's crash-loop
// back-off for pod, over b: the key is the container's ContainerKey, the
// delay counts from lastExit's finished_at, and a container let restart is
// recorded with b.Next, so that its next exit waits longer. The message is
// CrashLoopBackOffMessage.
func RestartBackOff(b *BackOff, pod *v1.Pod) BackOffFunc {
	return func(c *v1.Container, lastExit *runtimeapi.ContainerStatus) (time.Duration, string) {
		key := ContainerKey{
			PodName:      pod.Name,
			PodNamespace: pod.Namespace,
			PodUID:       pod.UID,
			Container:    c.Name,
			Image:        c.Image,
			Resources:    c.Resources.String(),
		}.String()
		finishedAt := time.Unix(0, lastExit.GetFinishedAt())
		if held, wait := b.InBackOff(key, finishedAt); held {
			return wait, CrashLoopBackOffMessage(b.Delay(key), c.Name, pod.Name, pod.Namespace, pod.UID)
		}
		b.Next(key, finishedAt)
		return 0, ""
	}
}

// PlanInput is everything a plan depends on besides the pod and its
// runtime status. The zero value is valid: no probe has a result, nothing
// is held back, the hash is the kubelet's.
type PlanInput struct {
	// Liveness holds the liveness probe results by container ID. A
	// running container whose result is ProbeFailure is stopped, and
	// started again if its restart policy allows.
	Liveness map[string]ProbeResult
	// Startup holds the startup probe results by container ID. A running
	// container whose result is ProbeFailure is stopped and restarted as
	// for a liveness failure. A sidecar with a startupProbe counts as
	// started only at ProbeSuccess: until then the next init container
	// waits.
	//
	// Results are keyed by container ID, not by name, because they belong
	// to one instance: a failure of the instance just stopped must not
	// stop the one that replaces it.
	Startup map[string]ProbeResult
	// BackOff decides which restarts must wait. Nil: none waits.
	BackOff BackOffFunc
	// RestartAllContainers says the pod is resetting all its containers
	// (restartPolicyRules action RestartAllContainers): the pod's
	// AllContainersRestarting condition is True. The plan then only lists
	// the containers to remove (ContainersToReset).
	RestartAllContainers bool
	// Hash computes a container spec's hash, to compare with the
	// core.AnnotationContainerHash of its running instance. Nil:
	// crispec.ContainerHash, the kubelet's.
	Hash func(*v1.Container) uint64
}

// ContainerToStart is one container the plan starts.
type ContainerToStart struct {
	// Index of the container in pod.Spec.InitContainers,
	// pod.Spec.Containers or pod.Spec.EphemeralContainers.
	Index int
	Name  string
	// RestartCount to give the new instance (crispec.ContainerOptions):
	// one more than the core.AnnotationContainerRestartCount of the newest
	// instance of that name, as the kubelet counts. It is 0 when the
	// runtime has no instance of that name; the kubelet then takes one
	// more than the highest <n>.log in the container's log directory, in
	// case the runtime lost its state, and so should the driver.
	RestartCount int
	// FirstRun says the runtime has no instance of the container: the
	// driver should then count restarts from the log directory.
	FirstRun bool
}

// ContainerToKill is why the plan stops a container.
type ContainerToKill struct {
	// Name of the container (its CRI metadata name).
	Name   string
	Reason KillReason
	// Message for the Killing event, in the kubelet's words, such as
	// "Container app failed liveness probe, will be restarted".
	Message string
}

// ContainerToReset is one instance of a container that a
// RestartAllContainers reset removes.
type ContainerToReset struct {
	// ID of the container instance.
	ID   string
	Name string
	// Kill says the instance has not exited: stop it (with no grace
	// period, as the kubelet does) before removing it.
	Kill bool
}

// WaitingContainer is a container the plan would start but whose restart
// is held back.
type WaitingContainer struct {
	// Index of the container in pod.Spec.InitContainers (Init) or
	// pod.Spec.Containers.
	Index int
	Init  bool
	Name  string
	// Reason is ReasonCrashLoopBackOff; the status manager shows it with
	// Message as the container's waiting state.
	Reason  string
	Message string
	// Wait is how long the restart is still held back: sync the pod
	// again then.
	Wait time.Duration
}

// Outcome is the end of a pod whose restart policy runs none of its
// containers again.
type Outcome struct {
	// Phase is v1.PodSucceeded or v1.PodFailed.
	Phase v1.PodPhase
	// Reason is OutcomeCompleted, OutcomeInitContainerFailed or
	// OutcomeContainerFailed.
	Reason string
	// Message names the container that decided it.
	Message string
}

// PodActions is what to do to make the runtime match the pod, as the
// kubelet's computePodActions decides it. A driver carries it out in this
// order:
//
//  1. If KillPod: stop every container of the pod (TerminationOrder:
//     regular containers, then sidecars, the last declared first) and
//     every sandbox. ContainersToKill then only says why some of them
//     stop. Without CreateSandbox the pod is done: nothing is started,
//     and Outcome says how it ended. With CreateSandbox, remove the pod's
//     init container instances (the kubelet purges them, so that
//     initialization starts over) and go on.
//  2. Otherwise stop ContainersToKill, then for each of ContainersToReset
//     in order stop it if Kill and remove it.
//  3. If CreateSandbox, run a new sandbox with Attempt; otherwise use
//     SandboxID.
//  4. Start EphemeralContainersToStart, then InitContainersToStart in
//     order, then ContainersToStart. An init container that is not a
//     sidecar and fails to start ends the sync; a sidecar that fails to
//     start does not.
type PodActions struct {
	// KillPod stops all containers and sandboxes of the pod: its sandbox
	// must be replaced (CreateSandbox), or nothing of it is to run any
	// more.
	KillPod bool
	// CreateSandbox runs a new sandbox, after KillPod.
	CreateSandbox bool
	// SandboxReason says why CreateSandbox (one of the SandboxReason
	// constants).
	SandboxReason string
	// SandboxID is the pod's newest sandbox: the one to start containers
	// in, or with CreateSandbox the one replaced; empty when there is none.
	SandboxID string
	// Attempt of the sandbox: with CreateSandbox the new one's, one more
	// than the newest sandbox's (0 for a pod's first sandbox).
	Attempt uint32

	// ContainersToKill by container ID.
	ContainersToKill map[string]ContainerToKill
	// ContainersToReset, in the order the kubelet removes them: the
	// regular containers, then the init containers, then the instances
	// whose exit asked for the reset, the regular ones first.
	ContainersToReset []ContainerToReset

	// EphemeralContainersToStart indexes pod.Spec.EphemeralContainers.
	// An ephemeral container is started once, never restarted.
	EphemeralContainersToStart []int
	// InitContainersToStart, in spec order: at most one init container
	// that is not a sidecar (the next one to run, or one to retry), and
	// sidecars to start or restart.
	InitContainersToStart []ContainerToStart
	// ContainersToStart are the regular containers to start, in spec
	// order; empty until the pod is initialized.
	ContainersToStart []ContainerToStart
	// Waiting are the containers left out of the start lists because
	// their restart is held back. After an init container that is not a
	// sidecar, the containers that would have started after it are left
	// out too (but not listed here), as the kubelet stops there.
	Waiting []WaitingContainer

	// Outcome is set exactly when KillPod is set without CreateSandbox:
	// nothing of the pod runs again.
	Outcome *Outcome
}

// Plan computes what to do so that the runtime's state of a pod, status,
// matches the pod's spec. status is what the PLEG caches (nil: the
// runtime has nothing of the pod); pod must not be nil. Plan is
// deterministic: it does no I/O, reads no clock and modifies neither
// argument; it calls in.BackOff and in.Hash and nothing else.
//
// It follows the kubelet's computePodActions (Kubernetes 1.37, default
// feature gates), including sidecars (init containers with restartPolicy
// Always), per-container restartPolicy and restartPolicyRules
// (ContainerRestartRules) and RestartAllContainers. It leaves out in-place
// resizes.
//
// The sandbox is replaced when there is none, when the newest is not
// ready, when more than one is ready, when its network namespace mode
// differs from the pod's hostNetwork, or when a pod not on the host
// network has no IP. A replacement stops everything and starts over at
// the first init container, except that a pod with restartPolicy Never
// that already ran gets no new sandbox, and neither does a pod whose
// regular containers all ran and none is to run again.
//
// Init containers run one at a time in spec order, each only after the
// one before exited 0. A sidecar counts as done once it runs (and, with a
// startupProbe, once that succeeded); it is restarted whenever it exits,
// fails its startup or liveness probe, or its spec changes. A failed init
// container runs again unless the restart policy says otherwise; then the
// pod is done and failed.
//
// Once initialized, a regular container that is not running is started
// unless its restart policy says it is done (Never; OnFailure after exit
// code 0; restartPolicyRules first). A running container whose spec hash
// changed is restarted whatever the policy; one that failed its liveness
// or startup probe is stopped, and started again unless its policy is
// Never. A container in an unknown state is stopped before it starts
// again. When no regular container runs or is to start, the pod is done:
// its sidecars are not restarted, and everything is stopped.
//
// Restarts of containers that exited before pass through in.BackOff.
//
// Where it differs from the kubelet, on purpose:
//
//   - The kubelet checks the back-off as it starts each container; Plan
//     does it up front and lists what waits in Waiting, so the driver only
//     carries out the plan.
//   - It stops running containers whose name the spec does not have
//     (KillNotInSpec); the kubelet leaves them until the pod stops.
//   - It says how a finished pod ended (Outcome); the kubelet works that
//     out later, in the pod's phase. The status manager's phase stays the
//     authority: Outcome is what the restart policy decided.
//   - A pod that is done starts nothing, not even ephemeral containers.
//   - SandboxID names the replaced sandbox whatever the reason; the
//     kubelet leaves it empty when the network namespace mode changed.
//   - CRI container statuses do not name their sandbox, so a container
//     belongs to the current sandbox (for init progress) when it was
//     created at or after that sandbox.
func Plan(pod *v1.Pod, status *core.PodStatus, in PlanInput) PodActions {
	if status == nil {
		status = &core.PodStatus{}
	}
	if in.Hash == nil {
		in.Hash = crispec.ContainerHash
	}
	p := &planner{pod: pod, status: status, in: in}
	p.index()
	a := p.plan()
	if a.KillPod {
		// Everything stops; without a new sandbox nothing starts.
		a.ContainersToReset = nil
		if !a.CreateSandbox {
			a.EphemeralContainersToStart = nil
			a.InitContainersToStart = nil
			a.ContainersToStart = nil
			a.Outcome = p.outcome(&a)
		}
	} else {
		p.killNotInSpec(&a)
	}
	p.applyBackOff(&a)
	return a
}

// planner holds one Plan call's input and indexes of the status.
type planner struct {
	pod    *v1.Pod
	status *core.PodStatus
	in     PlanInput

	// newest instance of each name, newest of the current sandbox, newest
	// exited.
	newest, active, exited map[string]*runtimeapi.ContainerStatus
	// anyActive says some instance belongs to the current sandbox, by name.
	anyActive map[string]bool
	// initFailure is set when an init container's failure ends the pod.
	initFailure string
}

// index builds the lookups. Statuses are newest first within a name, so
// the first of each name is the newest. An instance belongs to the current
// sandbox (the kubelet's active containers) when the newest sandbox is
// ready and the instance was created after it: CRI container statuses do
// not name their sandbox.
func (p *planner) index() {
	p.newest = map[string]*runtimeapi.ContainerStatus{}
	p.active = map[string]*runtimeapi.ContainerStatus{}
	p.exited = map[string]*runtimeapi.ContainerStatus{}
	p.anyActive = map[string]bool{}
	var current *runtimeapi.PodSandboxStatus
	if len(p.status.SandboxStatuses) > 0 && p.status.SandboxStatuses[0].GetState() == runtimeapi.PodSandboxState_SANDBOX_READY {
		current = p.status.SandboxStatuses[0]
	}
	for _, cs := range p.status.ContainerStatuses {
		name := cs.GetMetadata().GetName()
		if _, ok := p.newest[name]; !ok {
			p.newest[name] = cs
		}
		if _, ok := p.exited[name]; !ok && cs.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			p.exited[name] = cs
		}
		if current != nil && cs.GetCreatedAt() >= current.GetCreatedAt() {
			p.anyActive[name] = true
			if _, ok := p.active[name]; !ok {
				p.active[name] = cs
			}
		}
	}
}

func (p *planner) plan() PodActions {
	pod := p.pod
	create, attempt, sandboxID, reason := p.sandboxChanged()
	a := PodActions{
		KillPod:          create,
		CreateSandbox:    create,
		SandboxReason:    reason,
		SandboxID:        sandboxID,
		Attempt:          attempt,
		ContainersToKill: map[string]ContainerToKill{},
	}

	if p.in.RestartAllContainers {
		p.reset(&a)
		return a
	}

	if create {
		if pod.Spec.RestartPolicy == v1.RestartPolicyNever && attempt != 0 && len(p.status.ContainerStatuses) != 0 {
			// The pod ran and is not to run again: stop what is left.
			a.CreateSandbox = false
			return a
		}
		var toStart []int
		for i := range pod.Spec.Containers {
			c := &pod.Spec.Containers[i]
			runOnce := pod.Spec.RestartPolicy == v1.RestartPolicyOnFailure
			if c.RestartPolicy != nil {
				runOnce = *c.RestartPolicy == v1.ContainerRestartPolicyOnFailure
			}
			if runOnce && p.succeeded(c.Name) {
				continue
			}
			toStart = append(toStart, i)
		}
		if len(toStart) == 0 && p.anyRegularCreated() {
			// Initialized, and nothing is left to run.
			a.CreateSandbox = false
			return a
		}
		if len(pod.Spec.InitContainers) > 0 {
			a.InitContainersToStart = []ContainerToStart{p.toStart(pod.Spec.InitContainers, 0)}
			return a
		}
		for _, i := range toStart {
			a.ContainersToStart = append(a.ContainersToStart, p.toStart(pod.Spec.Containers, i))
		}
		return a
	}

	for i := range pod.Spec.EphemeralContainers {
		if p.newest[pod.Spec.EphemeralContainers[i].Name] == nil {
			a.EphemeralContainersToStart = append(a.EphemeralContainersToStart, i)
		}
	}

	initialized := p.initActions(&a)
	if a.KillPod || !initialized {
		return a
	}

	keep := 0
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		cs := p.newest[c.Name]
		if cs == nil || cs.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
			if p.shouldRestart(c) {
				a.ContainersToStart = append(a.ContainersToStart, p.toStart(pod.Spec.Containers, i))
				if cs != nil && cs.GetState() == runtimeapi.ContainerState_CONTAINER_UNKNOWN {
					a.ContainersToKill[cs.GetId()] = ContainerToKill{
						Name:    c.Name,
						Reason:  KillUnknownState,
						Message: `Container is in "unknown" state, try killing it before restart`,
					}
				}
			}
			continue
		}

		restart := pod.Spec.RestartPolicy != v1.RestartPolicyNever
		if c.RestartPolicy != nil {
			// Probe failures follow the container's policy alone: with the
			// container still running there is no exit code for its rules.
			restart = *c.RestartPolicy != v1.ContainerRestartPolicyNever
		}
		var kill ContainerToKill
		switch {
		case p.changed(c, cs):
			kill = ContainerToKill{Reason: KillSpecChanged, Message: fmt.Sprintf("Container %s definition changed", c.Name)}
			restart = true // whatever the policy: the spec asks for it
		case p.in.Liveness[cs.GetId()] == ProbeFailure:
			kill = ContainerToKill{Reason: KillLivenessProbe, Message: fmt.Sprintf("Container %s failed liveness probe", c.Name)}
		case p.in.Startup[cs.GetId()] == ProbeFailure:
			kill = ContainerToKill{Reason: KillStartupProbe, Message: fmt.Sprintf("Container %s failed startup probe", c.Name)}
		default:
			keep++
			continue
		}
		kill.Name = c.Name
		if restart {
			kill.Message += ", will be restarted"
			a.ContainersToStart = append(a.ContainersToStart, p.toStart(pod.Spec.Containers, i))
		}
		a.ContainersToKill[cs.GetId()] = kill
	}

	if keep == 0 && len(a.ContainersToStart) == 0 {
		// Every regular container is done: so is the pod, and its
		// sidecars must not keep it alive.
		a.KillPod = true
		a.InitContainersToStart = nil
	}
	return a
}

// sandboxChanged is the kubelet's PodSandboxChanged: whether a new sandbox
// is needed, its attempt, the newest sandbox and why.
func (p *planner) sandboxChanged() (create bool, attempt uint32, id, reason string) {
	sandboxes := p.status.SandboxStatuses
	if len(sandboxes) == 0 {
		return true, 0, "", SandboxReasonNone
	}
	ready := 0
	for _, s := range sandboxes {
		if s.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY {
			ready++
		}
	}
	newest := sandboxes[0]
	id, attempt = newest.GetId(), newest.GetMetadata().GetAttempt()
	netns := runtimeapi.NamespaceMode_POD
	if p.pod.Spec.HostNetwork {
		netns = runtimeapi.NamespaceMode_NODE
	}
	switch {
	case ready > 1:
		return true, attempt + 1, id, SandboxReasonMultipleReady
	case newest.GetState() != runtimeapi.PodSandboxState_SANDBOX_READY:
		return true, attempt + 1, id, SandboxReasonNotReady
	case newest.GetLinux().GetNamespaces().GetOptions().GetNetwork() != netns:
		return true, attempt + 1, id, SandboxReasonNetworkChanged
	case !p.pod.Spec.HostNetwork && newest.GetNetwork() != nil && newest.GetNetwork().GetIp() == "":
		return true, attempt + 1, id, SandboxReasonNoIP
	}
	return false, attempt, id, ""
}

// initActions is the kubelet's computeInitContainerActions: it adds the
// init containers to start or stop to a, sets a.KillPod when an init
// container's failure ends the pod, and reports whether the pod is
// initialized. It walks the init containers from the last, because the
// runtime may have removed the instances of those that completed long
// ago: the last one with an instance in the current sandbox says how far
// initialization got.
func (p *planner) initActions(a *PodActions) bool {
	inits := p.pod.Spec.InitContainers
	if len(inits) == 0 {
		return true
	}
	// A regular container in the current sandbox means initialization
	// completed there, even if instances of the init containers are gone.
	initialized := false
	for i := range p.pod.Spec.Containers {
		if p.anyActive[p.pod.Spec.Containers[i].Name] {
			initialized = true
			break
		}
	}
	// previous: every init container before the one at hand is done.
	previous := initialized
	var start []int // in reverse
	kill := func(cs *runtimeapi.ContainerStatus, name string, reason KillReason, msg string) {
		a.ContainersToKill[cs.GetId()] = ContainerToKill{Name: name, Reason: reason, Message: msg}
	}

	for i := len(inits) - 1; i >= 0; i-- {
		c := &inits[i]
		sidecar := core.IsSidecar(c)
		cs := p.active[c.Name]
		if cs == nil {
			if previous && sidecar {
				start = append(start, i) // lost its instance: run it again
			}
			continue
		}
		if previous && !sidecar {
			continue // done long ago; only sidecars keep running
		}

	state:
		switch cs.GetState() {
		case runtimeapi.ContainerState_CONTAINER_CREATED:
			// Created but never started: the start failed. Try again.
			start = append(start, i)

		case runtimeapi.ContainerState_CONTAINER_RUNNING:
			if !sidecar {
				break // still initializing
			}
			if c.StartupProbe != nil {
				switch p.in.Startup[cs.GetId()] {
				case ProbeSuccess:
				case ProbeFailure:
					kill(cs, c.Name, KillStartupProbe, fmt.Sprintf("Init container %s failed startup probe", c.Name))
					start = append(start, i)
					break state
				default:
					break state // not started yet: the next one waits
				}
			}
			// The sidecar has started.
			if i == len(inits)-1 {
				initialized = true
			} else if !previous {
				start = append(start, i+1)
			}
			switch {
			case p.changed(c, cs):
				kill(cs, c.Name, KillSpecChanged, fmt.Sprintf("Init container %s definition changed", c.Name))
				start = append(start, i)
			case c.LivenessProbe != nil && p.in.Liveness[cs.GetId()] == ProbeFailure:
				kill(cs, c.Name, KillLivenessProbe, fmt.Sprintf("Init container %s failed liveness probe", c.Name))
				start = append(start, i)
			}

		case runtimeapi.ContainerState_CONTAINER_EXITED:
			if sidecar {
				start = append(start, i) // sidecars restart whatever their exit
				break
			}
			if initContainerFailed(cs) {
				if !p.shouldRestart(c) {
					p.initFailure = fmt.Sprintf("init container %q %s", c.Name, describeExit(cs))
					a.KillPod = true
					a.InitContainersToStart = nil
					return false
				}
				start = append(start, i)
				break
			}
			if i == len(inits)-1 {
				initialized = true
			} else {
				start = append(start, i+1)
			}

		default: // unknown
			if !sidecar {
				restart := p.pod.Spec.RestartPolicy != v1.RestartPolicyNever
				if c.RestartPolicy != nil {
					restart = *c.RestartPolicy != v1.ContainerRestartPolicyNever
				}
				if !restart {
					p.initFailure = fmt.Sprintf("init container %q is in an unknown state", c.Name)
					a.KillPod = true
					a.InitContainersToStart = nil
					return false
				}
			}
			kill(cs, c.Name, KillUnknownState, `Init container is in "unknown" state, try killing it before restart`)
			start = append(start, i)
		}
		previous = true
	}
	if !previous {
		start = append(start, 0) // nothing ran yet
	}
	for j := len(start) - 1; j >= 0; j-- {
		a.InitContainersToStart = append(a.InitContainersToStart, p.toStart(inits, start[j]))
	}
	return initialized
}

// reset lists every instance of the pod's containers for a
// RestartAllContainers reset, in the kubelet's order.
func (p *planner) reset(a *PodActions) {
	var sources [2][]ContainerToReset // regular, init
	for k, containers := range [2][]v1.Container{p.pod.Spec.Containers, p.pod.Spec.InitContainers} {
		for i := range containers {
			c := &containers[i]
			for _, cs := range p.status.ContainerStatuses {
				if cs.GetMetadata().GetName() != c.Name {
					continue
				}
				r := ContainerToReset{ID: cs.GetId(), Name: c.Name}
				if cs.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
					if rule, ok := core.MatchRestartRule(c, cs.GetExitCode()); ok && rule.Action == v1.ContainerRestartRuleActionRestartAllContainers {
						sources[k] = append(sources[k], r)
						continue
					}
				} else {
					r.Kill = true
				}
				a.ContainersToReset = append(a.ContainersToReset, r)
			}
		}
	}
	a.ContainersToReset = append(a.ContainersToReset, sources[0]...)
	a.ContainersToReset = append(a.ContainersToReset, sources[1]...)
}

// shouldRestart is the kubelet's ShouldContainerBeRestarted for a
// container whose newest instance is not running.
func (p *planner) shouldRestart(c *v1.Container) bool {
	if p.pod.DeletionTimestamp != nil {
		return false
	}
	cs := p.newest[c.Name]
	if cs == nil {
		return true // never ran, or all its instances were removed
	}
	switch cs.GetState() {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return false
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return core.ContainerShouldRestart(c, p.pod.Spec.RestartPolicy, cs.GetExitCode())
	default: // created (its start failed) or unknown
		return true
	}
}

// initContainerFailed is the kubelet's isInitContainerFailed for an exited
// instance: OOM-killed or a non-zero exit code.
func initContainerFailed(cs *runtimeapi.ContainerStatus) bool {
	return cs.GetReason() == "OOMKilled" || cs.GetExitCode() != 0
}

// changed reports whether a running instance's hash annotation differs
// from the spec's hash. A missing or malformed annotation reads as 0, as
// the kubelet reads it.
func (p *planner) changed(c *v1.Container, cs *runtimeapi.ContainerStatus) bool {
	h, _ := strconv.ParseUint(cs.GetAnnotations()[core.AnnotationContainerHash], 16, 64)
	return h != p.in.Hash(c)
}

// succeeded reports whether the newest instance of name exited 0.
func (p *planner) succeeded(name string) bool {
	cs := p.newest[name]
	return cs != nil && cs.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED && cs.GetExitCode() == 0
}

// anyRegularCreated reports whether any regular container has an instance
// that was created, ran or exited: then initialization completed once.
func (p *planner) anyRegularCreated() bool {
	for i := range p.pod.Spec.Containers {
		if cs := p.newest[p.pod.Spec.Containers[i].Name]; cs != nil && cs.GetState() != runtimeapi.ContainerState_CONTAINER_UNKNOWN {
			return true
		}
	}
	return false
}

// toStart describes containers[i] to start, with its restart count.
func (p *planner) toStart(containers []v1.Container, i int) ContainerToStart {
	s := ContainerToStart{Index: i, Name: containers[i].Name}
	cs := p.newest[s.Name]
	if cs == nil {
		s.FirstRun = true
		return s
	}
	n, _ := strconv.Atoi(cs.GetAnnotations()[core.AnnotationContainerRestartCount])
	s.RestartCount = n + 1
	return s
}

// killNotInSpec stops the instances that run under a name the spec does
// not have.
func (p *planner) killNotInSpec(a *PodActions) {
	names := map[string]bool{}
	for i := range p.pod.Spec.InitContainers {
		names[p.pod.Spec.InitContainers[i].Name] = true
	}
	for i := range p.pod.Spec.Containers {
		names[p.pod.Spec.Containers[i].Name] = true
	}
	for i := range p.pod.Spec.EphemeralContainers {
		names[p.pod.Spec.EphemeralContainers[i].Name] = true
	}
	for _, cs := range p.status.ContainerStatuses {
		name := cs.GetMetadata().GetName()
		if names[name] || cs.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			continue
		}
		a.ContainersToKill[cs.GetId()] = ContainerToKill{
			Name:    name,
			Reason:  KillNotInSpec,
			Message: fmt.Sprintf("Container %s is not in the pod's spec", name),
		}
	}
}

// applyBackOff moves the restarts that must wait from the start lists to
// a.Waiting. The kubelet checks the back-off as it starts each container,
// and gives up on the rest after an init container that is not a sidecar;
// so does this.
func (p *planner) applyBackOff(a *PodActions) {
	if p.in.BackOff == nil {
		return
	}
	inits := a.InitContainersToStart[:0]
	stop := false
	for _, s := range a.InitContainersToStart {
		if stop {
			break
		}
		c := &p.pod.Spec.InitContainers[s.Index]
		if w, ok := p.backOff(c, s, true); ok {
			a.Waiting = append(a.Waiting, w)
			stop = !core.IsSidecar(c)
			continue
		}
		inits = append(inits, s)
	}
	a.InitContainersToStart = inits
	if stop {
		a.ContainersToStart = nil
		return
	}
	regular := a.ContainersToStart[:0]
	for _, s := range a.ContainersToStart {
		if w, ok := p.backOff(&p.pod.Spec.Containers[s.Index], s, false); ok {
			a.Waiting = append(a.Waiting, w)
			continue
		}
		regular = append(regular, s)
	}
	a.ContainersToStart = regular
}

// backOff asks in.BackOff about restarting c and reports whether it waits.
func (p *planner) backOff(c *v1.Container, s ContainerToStart, init bool) (WaitingContainer, bool) {
	last := p.exited[c.Name]
	if last == nil {
		return WaitingContainer{}, false
	}
	wait, msg := p.in.BackOff(c, last)
	if wait <= 0 {
		return WaitingContainer{}, false
	}
	return WaitingContainer{Index: s.Index, Init: init, Name: c.Name, Reason: ReasonCrashLoopBackOff, Message: msg, Wait: wait}, true
}

// outcome says how a pod that stops for good ended.
func (p *planner) outcome(a *PodActions) *Outcome {
	if p.initFailure != "" {
		return &Outcome{Phase: v1.PodFailed, Reason: OutcomeInitContainerFailed, Message: p.initFailure}
	}
	for i := range p.pod.Spec.Containers {
		c := &p.pod.Spec.Containers[i]
		cs := p.newest[c.Name]
		var msg string
		switch {
		case cs == nil:
			msg = fmt.Sprintf("container %q never ran", c.Name)
		case cs.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED:
			if cs.GetExitCode() == 0 {
				continue
			}
			msg = fmt.Sprintf("container %q %s", c.Name, describeExit(cs))
		default:
			if k, ok := a.ContainersToKill[cs.GetId()]; ok {
				msg = k.Message
			} else {
				msg = fmt.Sprintf("container %q did not exit", c.Name)
			}
		}
		return &Outcome{Phase: v1.PodFailed, Reason: OutcomeContainerFailed, Message: msg}
	}
	return &Outcome{Phase: v1.PodSucceeded, Reason: OutcomeCompleted, Message: "all containers exited with code 0"}
}

// describeExit says how an exited instance ended: "exited with code 1
// (Error)".
func describeExit(cs *runtimeapi.ContainerStatus) string {
	s := fmt.Sprintf("exited with code %d", cs.GetExitCode())
	if r := cs.GetReason(); r != "" {
		s += " (" + r + ")"
	}
	return s
}
