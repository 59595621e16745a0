package statusmgr

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

// cond is a condition without observedGeneration, for comparing.
type cond struct {
	Status  v1.ConditionStatus
	Reason  string
	Message string
}

func condOf(c v1.PodCondition) cond { return cond{c.Status, c.Reason, c.Message} }

func TestContainersReadyAndReadyConditions(t *testing.T) {
	gated := func(spec v1.PodSpec, gates ...string) v1.PodSpec {
		for _, g := range gates {
			spec.ReadinessGates = append(spec.ReadinessGates, v1.PodReadinessGate{ConditionType: v1.PodConditionType(g)})
		}
		return spec
	}
	gate := func(t string, s v1.ConditionStatus) v1.PodCondition {
		return v1.PodCondition{Type: v1.PodConditionType(t), Status: s}
	}
	withSidecars := v1.PodSpec{InitContainers: []v1.Container{sidecar("s1"), sidecar("s2"), {Name: "init"}}, Containers: names("r1")}
	cases := []struct {
		name       string
		spec       v1.PodSpec
		statuses   []v1.ContainerStatus
		conditions []v1.PodCondition
		phase      v1.PodPhase
		// ready is the Ready condition; ContainersReady is the same
		// without readiness gates.
		ready, containersReady cond
	}{
		{"no statuses", v1.PodSpec{}, nil, nil, v1.PodRunning,
			cond{v1.ConditionFalse, ReasonUnknownContainerStatuses, ""}, cond{v1.ConditionFalse, ReasonUnknownContainerStatuses, ""}},
		{"no containers", v1.PodSpec{}, []v1.ContainerStatus{}, nil, v1.PodRunning,
			cond{v1.ConditionTrue, "", ""}, cond{v1.ConditionTrue, "", ""}},
		{"unknown", v1.PodSpec{Containers: names("a")}, []v1.ContainerStatus{}, nil, v1.PodRunning,
			cond{v1.ConditionFalse, ReasonContainersNotReady, "containers with unknown status: [a]"}, cond{v1.ConditionFalse, ReasonContainersNotReady, "containers with unknown status: [a]"}},
		{"all ready", v1.PodSpec{Containers: names("a", "b")}, csts("a=ready", "b=ready"), nil, v1.PodRunning,
			cond{v1.ConditionTrue, "", ""}, cond{v1.ConditionTrue, "", ""}},
		{"one unknown one unready", v1.PodSpec{Containers: names("a", "b", "c")}, csts("a=ready", "b=running"), nil, v1.PodRunning,
			cond{v1.ConditionFalse, ReasonContainersNotReady, "containers with unknown status: [c], containers with unready status: [b]"},
			cond{v1.ConditionFalse, ReasonContainersNotReady, "containers with unknown status: [c], containers with unready status: [b]"}},
		{"succeeded", v1.PodSpec{Containers: names("a")}, csts("a=exited:0"), nil, v1.PodSucceeded,
			cond{v1.ConditionFalse, ReasonPodCompleted, ""}, cond{v1.ConditionFalse, ReasonPodCompleted, ""}},
		{"failed while ready", v1.PodSpec{Containers: names("a")}, csts("a=ready"), nil, v1.PodFailed,
			cond{v1.ConditionFalse, ReasonPodFailed, ""}, cond{v1.ConditionFalse, ReasonPodFailed, ""}},
		{"succeeded with an unknown container", v1.PodSpec{Containers: names("a", "b")}, csts("a=exited:0"), nil, v1.PodSucceeded,
			cond{v1.ConditionFalse, ReasonContainersNotReady, "containers with unknown status: [b], containers with unready status: [a]"},
			cond{v1.ConditionFalse, ReasonContainersNotReady, "containers with unknown status: [b], containers with unready status: [a]"}},
		{"sidecar unknown", withSidecars, csts("s1=ready", "init=exited:0", "r1=ready"), nil, v1.PodRunning,
			cond{v1.ConditionFalse, ReasonContainersNotReady, "containers with unknown status: [s2]"}, cond{v1.ConditionFalse, ReasonContainersNotReady, "containers with unknown status: [s2]"}},
		{"sidecar unready", withSidecars, csts("s1=ready", "s2=started", "init=exited:0", "r1=ready"), nil, v1.PodRunning,
			cond{v1.ConditionFalse, ReasonContainersNotReady, "containers with unready status: [s2]"}, cond{v1.ConditionFalse, ReasonContainersNotReady, "containers with unready status: [s2]"}},
		{"sidecars ready; the init container does not count", withSidecars, csts("s1=ready", "s2=ready", "init=exited:0", "r1=ready"), nil, v1.PodRunning,
			cond{v1.ConditionTrue, "", ""}, cond{v1.ConditionTrue, "", ""}},
		{"gate missing", gated(v1.PodSpec{}, "gate1"), []v1.ContainerStatus{}, nil, v1.PodRunning,
			cond{v1.ConditionFalse, ReasonReadinessGatesNotReady, `corresponding condition of pod readiness gate "gate1" does not exist.`}, cond{v1.ConditionTrue, "", ""}},
		{"gate false", gated(v1.PodSpec{}, "gate1"), []v1.ContainerStatus{}, []v1.PodCondition{gate("gate1", v1.ConditionFalse)}, v1.PodRunning,
			cond{v1.ConditionFalse, ReasonReadinessGatesNotReady, `the status of pod readiness gate "gate1" is not "True", but False`}, cond{v1.ConditionTrue, "", ""}},
		{"gate true", gated(v1.PodSpec{}, "gate1"), []v1.ContainerStatus{}, []v1.PodCondition{gate("gate1", v1.ConditionTrue)}, v1.PodRunning,
			cond{v1.ConditionTrue, "", ""}, cond{v1.ConditionTrue, "", ""}},
		{"two gates, one missing one false", gated(v1.PodSpec{}, "gate1", "gate2", "gate3"), []v1.ContainerStatus{},
			[]v1.PodCondition{gate("gate1", v1.ConditionTrue), gate("gate3", v1.ConditionUnknown)}, v1.PodRunning,
			cond{v1.ConditionFalse, ReasonReadinessGatesNotReady, `corresponding condition of pod readiness gate "gate2" does not exist., the status of pod readiness gate "gate3" is not "True", but Unknown`},
			cond{v1.ConditionTrue, "", ""}},
		{"gates wait for containers", gated(v1.PodSpec{Containers: names("a")}, "gate1"), csts("a=running"), []v1.PodCondition{gate("gate1", v1.ConditionTrue)}, v1.PodRunning,
			cond{v1.ConditionFalse, ReasonContainersNotReady, "containers with unready status: [a]"}, cond{v1.ConditionFalse, ReasonContainersNotReady, "containers with unready status: [a]"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pod := newPod(c.spec)
			ready := podReadyCondition(pod, c.conditions, c.statuses, c.phase)
			if ready.Type != v1.PodReady || ready.ObservedGeneration != 1 || condOf(ready) != c.ready {
				t.Errorf("Ready = %+v, want %+v", ready, c.ready)
			}
			cr := containersReadyCondition(pod, c.statuses, c.phase)
			if cr.Type != v1.ContainersReady || cr.ObservedGeneration != 1 || condOf(cr) != c.containersReady {
				t.Errorf("ContainersReady = %+v, want %+v", cr, c.containersReady)
			}
		})
	}
}

func TestInitializedCondition(t *testing.T) {
	initialized := v1.PodStatus{Conditions: []v1.PodCondition{{Type: v1.PodInitialized, Status: v1.ConditionTrue}}}
	cases := []struct {
		name     string
		spec     v1.PodSpec
		statuses []v1.ContainerStatus
		old      v1.PodStatus
		phase    v1.PodPhase
		want     cond
	}{
		{"no init containers", v1.PodSpec{Containers: names("a")}, []v1.ContainerStatus{}, v1.PodStatus{}, v1.PodRunning, cond{v1.ConditionTrue, "", ""}},
		{"no statuses", v1.PodSpec{InitContainers: names("i")}, nil, v1.PodStatus{}, v1.PodPending, cond{v1.ConditionFalse, ReasonUnknownContainerStatuses, ""}},
		{"unknown", v1.PodSpec{InitContainers: names("i")}, []v1.ContainerStatus{}, v1.PodStatus{}, v1.PodPending,
			cond{v1.ConditionFalse, ReasonContainersNotInitialized, "containers with unknown status: [i]"}},
		{"completed", v1.PodSpec{InitContainers: names("i", "j")}, []v1.ContainerStatus{readyStatus("i=exited:0"), readyStatus("j=exited:0")}, v1.PodStatus{}, v1.PodPending, cond{v1.ConditionTrue, "", ""}},
		{"one incomplete one unknown", v1.PodSpec{InitContainers: names("i", "j", "k")}, csts("i=exited:0", "j=running"), v1.PodStatus{}, v1.PodPending,
			cond{v1.ConditionFalse, ReasonContainersNotInitialized, "containers with unknown status: [k], containers with incomplete status: [i j]"}},
		{"succeeded", v1.PodSpec{InitContainers: names("i")}, []v1.ContainerStatus{readyStatus("i=exited:0")}, v1.PodStatus{}, v1.PodSucceeded, cond{v1.ConditionTrue, ReasonPodCompleted, ""}},
		{"sidecar not started", v1.PodSpec{InitContainers: []v1.Container{sidecar("s")}, Containers: names("a")}, csts("s=running"), v1.PodStatus{}, v1.PodPending,
			cond{v1.ConditionFalse, ReasonContainersNotInitialized, "containers with incomplete status: [s]"}},
		{"sidecar started", v1.PodSpec{InitContainers: []v1.Container{sidecar("s")}, Containers: names("a")}, csts("s=started"), v1.PodStatus{}, v1.PodPending, cond{v1.ConditionTrue, "", ""}},
		{"sidecar restarting after a regular container ran", v1.PodSpec{InitContainers: []v1.Container{sidecar("s")}, Containers: names("a")}, csts("s=crash:1", "a=running"), v1.PodStatus{}, v1.PodRunning, cond{v1.ConditionTrue, "", ""}},
		{"regular container exited", v1.PodSpec{InitContainers: names("i"), Containers: names("a")}, csts("i=waiting", "a=exited:1"), v1.PodStatus{}, v1.PodRunning, cond{v1.ConditionTrue, "", ""}},
		{"kept once initialized", v1.PodSpec{InitContainers: names("i"), Containers: names("a")}, csts("i=waiting", "a=waiting"), initialized, v1.PodPending, cond{v1.ConditionTrue, "", ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := initializedCondition(newPod(c.spec), &c.old, c.statuses, c.phase)
			if got.Type != v1.PodInitialized || condOf(got) != c.want {
				t.Errorf("Initialized = %+v, want %+v", got, c.want)
			}
		})
	}
}

// readyStatus is cst(s) made ready, as an init container that exited 0 is.
func readyStatus(s string) v1.ContainerStatus {
	cs := cst(s)
	cs.Ready = true
	return cs
}

func TestReadyToStartContainersCondition(t *testing.T) {
	hostNetwork := func(sb *runtimeapi.PodSandboxStatus) *runtimeapi.PodSandboxStatus {
		sb.Linux.Namespaces.Options.Network = runtimeapi.NamespaceMode_NODE
		return sb
	}
	cases := []struct {
		name      string
		host      bool
		sandboxes []*runtimeapi.PodSandboxStatus
		want      cond
	}{
		{"no sandbox", false, nil, cond{v1.ConditionFalse, ReasonPodSandboxNotReady, SandboxMessageNone}},
		{"ready with IP", false, []*runtimeapi.PodSandboxStatus{sandbox("s1", true, 0, "10.0.0.1")}, cond{v1.ConditionTrue, "", ""}},
		{"not ready", false, []*runtimeapi.PodSandboxStatus{sandbox("s1", false, 0, "10.0.0.1")}, cond{v1.ConditionFalse, ReasonPodSandboxNotReady, SandboxMessageNotReady}},
		{"newest not ready", false, []*runtimeapi.PodSandboxStatus{sandbox("s2", false, 5, ""), sandbox("s1", true, 0, "10.0.0.1")}, cond{v1.ConditionFalse, ReasonPodSandboxNotReady, SandboxMessageNotReady}},
		{"two ready", false, []*runtimeapi.PodSandboxStatus{sandbox("s2", true, 5, "10.0.0.2"), sandbox("s1", true, 0, "10.0.0.1")}, cond{v1.ConditionFalse, ReasonPodSandboxNotReady, SandboxMessageMultipleReady}},
		{"network mode changed", true, []*runtimeapi.PodSandboxStatus{sandbox("s1", true, 0, "10.0.0.1")}, cond{v1.ConditionFalse, ReasonPodSandboxNotReady, SandboxMessageNetworkChanged}},
		{"no IP", false, []*runtimeapi.PodSandboxStatus{func() *runtimeapi.PodSandboxStatus {
			sb := sandbox("s1", true, 0, "")
			sb.Network = &runtimeapi.PodSandboxNetworkStatus{}
			return sb
		}()}, cond{v1.ConditionFalse, ReasonPodSandboxNotReady, SandboxMessageNoIP}},
		{"host network needs no IP", true, []*runtimeapi.PodSandboxStatus{hostNetwork(sandbox("s1", true, 0, ""))}, cond{v1.ConditionTrue, "", ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pod := newPod(v1.PodSpec{Containers: names("a"), HostNetwork: c.host})
			got := readyToStartCondition(pod, &core.PodStatus{SandboxStatuses: c.sandboxes})
			if got.Type != v1.PodReadyToStartContainers || got.ObservedGeneration != 1 || condOf(got) != c.want {
				t.Errorf("PodReadyToStartContainers = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestAllContainersRestartingCondition(t *testing.T) {
	spec := v1.PodSpec{InitContainers: names("i"), Containers: []v1.Container{restartAllOn(v1.Container{Name: "c"}, 42), {Name: "d"}}, RestartPolicy: v1.RestartPolicyNever}
	sbs := []*runtimeapi.PodSandboxStatus{sandbox("s1", true, 0, "10.0.0.1")}
	restarting := cond{v1.ConditionTrue, ReasonRestartAllContainersStarted, "container exited with restart policy rule"}
	cases := []struct {
		name  string
		rt    *core.PodStatus
		old   v1.PodStatus
		phase v1.PodPhase
		want  cond
	}{
		{"no exit", runtimeStatus(sbs, running("c", "c1", 1)), v1.PodStatus{}, v1.PodRunning, cond{v1.ConditionFalse, "", ""}},
		{"exit with another code", runtimeStatus(sbs, exited("c", "c1", 1, 1, "Error", 3)), v1.PodStatus{}, v1.PodRunning, cond{v1.ConditionFalse, "", ""}},
		{"exit with the rule's code", runtimeStatus(sbs, exited("c", "c1", 1, 42, "Error", 3), running("d", "d1", 1)), v1.PodStatus{}, v1.PodRunning, restarting},
		{"exit seen in the previous status", runtimeStatus(sbs, running("d", "d1", 1)),
			v1.PodStatus{ContainerStatuses: csts("c=exited:42")}, v1.PodRunning, restarting},
		{"condition in the previous status", runtimeStatus(sbs, running("d", "d1", 1)),
			v1.PodStatus{Conditions: []v1.PodCondition{{Type: v1.AllContainersRestarting, Status: v1.ConditionTrue}}}, v1.PodRunning, restarting},
		{"all removed", runtimeStatus(sbs),
			v1.PodStatus{Conditions: []v1.PodCondition{{Type: v1.AllContainersRestarting, Status: v1.ConditionTrue}}}, v1.PodRunning, cond{v1.ConditionFalse, "", ""}},
		{"failed", runtimeStatus(sbs, exited("c", "c1", 1, 42, "Error", 3)), v1.PodStatus{}, v1.PodFailed, cond{v1.ConditionFalse, ReasonPodFailed, ""}},
		{"succeeded", runtimeStatus(sbs, exited("c", "c1", 1, 42, "Error", 3)), v1.PodStatus{}, v1.PodSucceeded, cond{v1.ConditionFalse, ReasonPodCompleted, ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := allContainersRestartingCondition(newPod(spec), c.rt, &c.old, c.phase)
			if got.Type != v1.AllContainersRestarting || condOf(got) != c.want {
				t.Errorf("AllContainersRestarting = %+v, want %+v", got, c.want)
			}
		})
	}
}
