package statusmgr

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

var readySandbox = []*runtimeapi.PodSandboxStatus{sandbox("sb1", true, 0, "10.1.2.3")}

// A pod nothing ran of yet: every container waits in ContainerCreating and
// no condition but Initialized and PodScheduled is True.
func TestGenerateNothingRanYet(t *testing.T) {
	pod := newPod(v1.PodSpec{Containers: names("b", "a")})
	got := Generate(Input{Pod: pod, HostIPs: []string{"192.168.0.5"}, Now: at(0)})

	now := mt(0)
	no := false
	waiting := func(name string) v1.ContainerStatus {
		return v1.ContainerStatus{Name: name, Image: name + ":1", Started: &no,
			State: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: ReasonContainerCreating}}}
	}
	want := v1.PodStatus{
		ObservedGeneration: 1,
		Phase:              v1.PodPending,
		Conditions: []v1.PodCondition{
			{Type: v1.PodReadyToStartContainers, ObservedGeneration: 1, Status: v1.ConditionFalse, Reason: ReasonPodSandboxNotReady, Message: SandboxMessageNone, LastTransitionTime: now},
			{Type: v1.PodInitialized, ObservedGeneration: 1, Status: v1.ConditionTrue, LastTransitionTime: now},
			{Type: v1.PodReady, ObservedGeneration: 1, Status: v1.ConditionFalse, Reason: ReasonContainersNotReady, Message: "containers with unready status: [b a]", LastTransitionTime: now},
			{Type: v1.ContainersReady, ObservedGeneration: 1, Status: v1.ConditionFalse, Reason: ReasonContainersNotReady, Message: "containers with unready status: [b a]", LastTransitionTime: now},
			{Type: v1.PodScheduled, ObservedGeneration: 1, Status: v1.ConditionTrue, LastTransitionTime: now},
		},
		HostIP:            "192.168.0.5",
		HostIPs:           []v1.HostIP{{IP: "192.168.0.5"}},
		StartTime:         &now,
		ContainerStatuses: []v1.ContainerStatus{waiting("a"), waiting("b")},
		QOSClass:          v1.PodQOSBestEffort,
		Resources:         &v1.ResourceRequirements{},
	}
	if diff := diffOf(want, got); diff != "" {
		t.Errorf("status :\n%s", diff)
	}
}

func TestGenerateNilPod(t *testing.T) {
	if got := Generate(Input{Now: at(0)}); !reflect.DeepEqual(got, v1.PodStatus{}) {
		t.Errorf("Generate without a pod = %+v, want an empty status", got)
	}
}

// Running containers: state, IDs, image, started and ready, pod IP.
func TestGenerateRunning(t *testing.T) {
	pod := newPod(v1.PodSpec{Containers: names("a", "b")})
	rt := runtimeStatus(readySandbox, running("a", "a1", 1), running("b", "b1", 2, restarts(3)))
	got := Generate(Input{Pod: pod, Runtime: rt, RuntimeName: "cri-o", Now: at(10)})

	if got.Phase != v1.PodRunning || got.PodIP != "10.1.2.3" || !reflect.DeepEqual(got.PodIPs, []v1.PodIP{{IP: "10.1.2.3"}}) {
		t.Errorf("phase %s, podIP %q %v", got.Phase, got.PodIP, got.PodIPs)
	}
	for _, t2 := range []v1.PodConditionType{v1.PodReadyToStartContainers, v1.PodInitialized, v1.PodReady, v1.ContainersReady, v1.PodScheduled} {
		if c := condition(got, t2); c.Status != v1.ConditionTrue {
			t.Errorf("%s = %+v, want True", t2, c)
		}
	}
	yes := true
	want := v1.ContainerStatus{
		Name:         "b",
		State:        v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: mt(3)}},
		Ready:        true,
		RestartCount: 3,
		Image:        "docker.io/library/b:1",
		ImageID:      "docker.io/library/b@sha256:" + strings.Repeat("ab", 32),
		ContainerID:  "cri-o://b1",
		Started:      &yes,
		Resources:    &v1.ResourceRequirements{},
	}
	if diff := diffOf(want, containerStatus(got, "b")); diff != "" {
		t.Errorf("container b :\n%s", diff)
	}
	if id := containerStatus(got, "a").ContainerID; id != "cri-o://a1" {
		t.Errorf("container a: ID %q", id)
	}
	if got := Generate(Input{Pod: pod, Runtime: rt, Now: at(10)}); containerStatus(got, "a").ContainerID != "containerd://a1" {
		t.Errorf("default runtime name: ID %q, want containerd://a1", containerStatus(got, "a").ContainerID)
	}
}

// Exited containers carry the runtime's reason, exit code, message and
// times; the kubelet sets no signal.
func TestGenerateExited(t *testing.T) {
	pod := newPod(v1.PodSpec{Containers: names("done", "failed", "oom"), RestartPolicy: v1.RestartPolicyNever})
	oom := exited("oom", "o1", 1, 137, "OOMKilled", 7)
	oom.Message = "memory limit reached"
	rt := runtimeStatus(readySandbox,
		exited("done", "d1", 1, 0, "Completed", 5),
		exited("failed", "f1", 1, 2, "Error", 6),
		oom,
	)
	got := Generate(Input{Pod: pod, Runtime: rt, Now: at(10)})
	if got.Phase != v1.PodFailed {
		t.Errorf("phase %s, want Failed", got.Phase)
	}
	for name, want := range map[string]v1.ContainerStateTerminated{
		"done":   {ExitCode: 0, Reason: "Completed", StartedAt: mt(2), FinishedAt: mt(5), ContainerID: "containerd://d1"},
		"failed": {ExitCode: 2, Reason: "Error", StartedAt: mt(2), FinishedAt: mt(6), ContainerID: "containerd://f1"},
		"oom":    {ExitCode: 137, Reason: "OOMKilled", Message: "memory limit reached", StartedAt: mt(2), FinishedAt: mt(7), ContainerID: "containerd://o1"},
	} {
		cs := containerStatus(got, name)
		if cs.State.Terminated == nil || *cs.State.Terminated != want {
			t.Errorf("%s: state %+v, want terminated %+v", name, cs.State, want)
		}
		if cs.Ready || cs.Started == nil || *cs.Started {
			t.Errorf("%s: ready %v started %v, want false, false", name, cs.Ready, cs.Started)
		}
	}
	if c := condition(got, v1.PodReady); c.Reason != ReasonPodFailed {
		t.Errorf("Ready = %+v, want reason PodFailed", c)
	}
}

// A crash-looping container waits in CrashLoopBackOff with its newest
// exit as its last state and the restart count of its newest instance.
func TestGenerateCrashLoopBackOff(t *testing.T) {
	pod := newPod(v1.PodSpec{Containers: names("app", "side")})
	rt := runtimeStatus(readySandbox,
		exited("app", "app0", 1, 1, "Error", 3),
		exited("app", "app2", 30, 2, "Error", 33, restarts(2)),
		exited("app", "app1", 10, 1, "Error", 12, restarts(1)),
		running("side", "side0", 1),
	)
	msg := "back-off 20s restarting failed container=app pod=web_default(uid-1)"
	got := Generate(Input{Pod: pod, Runtime: rt, Waiting: []Waiting{{Name: "app", Reason: "CrashLoopBackOff", Message: msg}}, Now: at(40)})

	cs := containerStatus(got, "app")
	if w := cs.State.Waiting; w == nil || w.Reason != "CrashLoopBackOff" || w.Message != msg {
		t.Errorf("state %+v, want waiting CrashLoopBackOff", cs.State)
	}
	want := &v1.ContainerStateTerminated{ExitCode: 2, Reason: "Error", StartedAt: mt(31), FinishedAt: mt(33), ContainerID: "containerd://app2"}
	if diff := diffOf(want, cs.LastTerminationState.Terminated); diff != "" {
		t.Errorf("last state :\n%s", diff)
	}
	if cs.RestartCount != 2 || cs.ContainerID != "containerd://app2" || cs.Ready {
		t.Errorf("restartCount %d, containerID %q, ready %v", cs.RestartCount, cs.ContainerID, cs.Ready)
	}
	if got.Phase != v1.PodRunning {
		t.Errorf("phase %s, want Running", got.Phase)
	}
	if c := condition(got, v1.ContainersReady); c.Message != "containers with unready status: [app]" {
		t.Errorf("ContainersReady = %+v", c)
	}

	// Without the sync loop's reason the exit shows as it is.
	got = Generate(Input{Pod: pod, Runtime: rt, Now: at(40)})
	cs = containerStatus(got, "app")
	if cs.State.Terminated == nil || cs.State.Terminated.ContainerID != "containerd://app2" ||
		cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ContainerID != "containerd://app1" {
		t.Errorf("without a waiting reason: state %+v, last state %+v", cs.State, cs.LastTerminationState)
	}

	// A reason for a container the next sync does not start is ignored.
	pod.Spec.RestartPolicy = v1.RestartPolicyOnFailure
	rt = runtimeStatus(readySandbox, exited("app", "app0", 1, 0, "Completed", 3), running("side", "side0", 1))
	got = Generate(Input{Pod: pod, Runtime: rt, Waiting: []Waiting{{Name: "app", Reason: "CrashLoopBackOff"}}, Now: at(40)})
	if cs := containerStatus(got, "app"); cs.State.Terminated == nil {
		t.Errorf("a container done by its policy: state %+v, want terminated", cs.State)
	}
}

// Waiting reasons: ContainerCreating without init containers,
// PodInitializing with them, empty for a created container, the sync
// loop's reason when the start failed.
func TestGenerateWaitingReasons(t *testing.T) {
	pod := newPod(v1.PodSpec{InitContainers: names("init1", "init2"), Containers: names("app")})
	rt := runtimeStatus(readySandbox, running("init1", "i1", 1))
	got := Generate(Input{Pod: pod, Runtime: rt, Now: at(5)})
	for name, reason := range map[string]string{"init2": ReasonPodInitializing, "app": ReasonPodInitializing} {
		if w := containerStatus(got, name).State.Waiting; w == nil || w.Reason != reason {
			t.Errorf("%s: state %+v, want waiting %s", name, containerStatus(got, name).State, reason)
		}
	}
	if got.Phase != v1.PodPending {
		t.Errorf("phase %s, want Pending", got.Phase)
	}
	if c := condition(got, v1.PodInitialized); c.Status != v1.ConditionFalse || c.Message != "containers with incomplete status: [init1 init2]" {
		t.Errorf("Initialized = %+v", c)
	}

	pod = newPod(v1.PodSpec{Containers: names("app", "img")})
	created := instance("app", "a1", runtimeapi.ContainerState_CONTAINER_CREATED, 1)
	rt = runtimeStatus(readySandbox, created)
	got = Generate(Input{Pod: pod, Runtime: rt, Now: at(5), Waiting: []Waiting{{Name: "img", Reason: "ImagePullBackOff", Message: `Back-off pulling image "img:1"`}}})
	if w := containerStatus(got, "app").State.Waiting; w == nil || w.Reason != "" {
		t.Errorf("created container: state %+v, want waiting without a reason", containerStatus(got, "app").State)
	}
	if w := containerStatus(got, "img").State.Waiting; w == nil || w.Reason != "ImagePullBackOff" || w.Message != `Back-off pulling image "img:1"` {
		t.Errorf("image not pulled: state %+v", containerStatus(got, "img").State)
	}
	if w := containerStatus(Generate(Input{Pod: pod, Now: at(5)}), "img").State.Waiting; w == nil || w.Reason != ReasonContainerCreating {
		t.Errorf("not created yet: %+v, want ContainerCreating", w)
	}
}

// Init containers in spec order, ready once they exited 0; a sidecar's
// start initializes the pod; sidecars count for ContainersReady.
func TestGenerateInitContainersAndSidecars(t *testing.T) {
	pod := newPod(v1.PodSpec{
		InitContainers: []v1.Container{{Name: "setup"}, sidecar("proxy"), {Name: "migrate"}},
		Containers:     names("app"),
	})
	rt := runtimeStatus(readySandbox, exited("setup", "s1", 1, 0, "Completed", 2), running("proxy", "p1", 3))
	got := Generate(Input{Pod: pod, Runtime: rt, Now: at(5)})
	var order []string
	for _, s := range got.InitContainerStatuses {
		order = append(order, s.Name)
	}
	if strings.Join(order, ",") != "setup,proxy,migrate" {
		t.Errorf("init container statuses in order %v", order)
	}
	setup, proxy := containerStatus(got, "setup"), containerStatus(got, "proxy")
	if !setup.Ready || *setup.Started {
		t.Errorf("completed init container: ready %v started %v, want true, false", setup.Ready, *setup.Started)
	}
	if !proxy.Ready || !*proxy.Started {
		t.Errorf("running sidecar: ready %v started %v, want true, true", proxy.Ready, *proxy.Started)
	}
	if got.Phase != v1.PodPending {
		t.Errorf("phase %s, want Pending", got.Phase)
	}

	// A sidecar that has not started yet (its startupProbe has not
	// succeeded) holds the pod's initialization.
	pod.Spec.InitContainers[1].StartupProbe = &v1.Probe{}
	got = Generate(Input{Pod: pod, Runtime: rt, Now: at(5)})
	if c := condition(got, v1.PodInitialized); c.Message != "containers with incomplete status: [proxy migrate]" {
		t.Errorf("Initialized = %+v", c)
	}

	// Initialized: the regular container runs; a sidecar that is not
	// ready makes the containers not ready.
	rt = runtimeStatus(readySandbox, exited("setup", "s1", 1, 0, "Completed", 2), running("proxy", "p1", 3),
		exited("migrate", "m1", 4, 0, "Completed", 5), running("app", "a1", 6))
	got = Generate(Input{Pod: pod, Runtime: rt, Probes: probes{ready: map[string]bool{"a1": true}, started: map[string]bool{"a1": true, "p1": true}}, Now: at(7)})
	if got.Phase != v1.PodRunning || condition(got, v1.PodInitialized).Status != v1.ConditionTrue {
		t.Errorf("phase %s, Initialized %+v", got.Phase, condition(got, v1.PodInitialized))
	}
	if c := condition(got, v1.ContainersReady); c.Message != "containers with unready status: [proxy]" {
		t.Errorf("ContainersReady = %+v", c)
	}

	// The runtime lost the init containers of an initialized pod: they
	// completed, except the sidecar, which waits for its restart.
	rt = runtimeStatus(readySandbox, running("app", "a1", 6))
	got = Generate(Input{Pod: pod, Runtime: rt, Now: at(7)})
	if s := containerStatus(got, "setup").State.Terminated; s == nil || s.Reason != ReasonCompleted || s.Message != MessageInitAssumedCompleted {
		t.Errorf("lost init container: %+v", containerStatus(got, "setup").State)
	}
	if s := containerStatus(got, "proxy").State.Waiting; s == nil {
		t.Errorf("lost sidecar: %+v", containerStatus(got, "proxy").State)
	}
}

// Probes decide started and ready; without them, a startupProbe or
// readinessProbe holds the container back.
func TestGenerateProbes(t *testing.T) {
	pod := newPod(v1.PodSpec{Containers: []v1.Container{
		{Name: "plain"},
		{Name: "startup", StartupProbe: &v1.Probe{}},
		{Name: "readiness", ReadinessProbe: &v1.Probe{}},
	}})
	rt := runtimeStatus(readySandbox, running("plain", "p1", 1), running("startup", "s1", 1), running("readiness", "r1", 1))
	check := func(got v1.PodStatus, want map[string][2]bool) {
		t.Helper()
		for name, w := range want {
			cs := containerStatus(got, name)
			if *cs.Started != w[0] || cs.Ready != w[1] {
				t.Errorf("%s: started %v ready %v, want %v %v", name, *cs.Started, cs.Ready, w[0], w[1])
			}
		}
	}
	check(Generate(Input{Pod: pod, Runtime: rt, Now: at(5)}), map[string][2]bool{
		"plain": {true, true}, "startup": {false, false}, "readiness": {true, false},
	})
	p := probes{
		started: map[string]bool{"p1": true, "s1": true, "r1": false},
		ready:   map[string]bool{"p1": false, "s1": true, "r1": true},
	}
	check(Generate(Input{Pod: pod, Runtime: rt, Probes: p, Now: at(5)}), map[string][2]bool{
		"plain": {true, false}, "startup": {true, true}, "readiness": {false, false},
	})

	// A container whose previous status says it started stays started.
	yes := true
	prev := v1.PodStatus{ContainerStatuses: []v1.ContainerStatus{{Name: "startup", ContainerID: "containerd://s1", Started: &yes, State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}}}}
	check(Generate(Input{Pod: pod, Previous: &prev, Runtime: rt, Now: at(5)}), map[string][2]bool{"startup": {true, true}})
}

// A condition keeps its lastTransitionTime while its status does not
// change; the start time never changes.
func TestGenerateTransitionTimesAndStartTime(t *testing.T) {
	pod := newPod(v1.PodSpec{Containers: names("a")})
	rt := runtimeStatus(readySandbox, running("a", "a1", 1))
	first := Generate(Input{Pod: pod, Runtime: rt, Now: at(10)})
	if *first.StartTime != mt(10) {
		t.Fatalf("start time %v, want %v", first.StartTime, mt(10))
	}

	p := probes{started: map[string]bool{"a1": true}, ready: map[string]bool{"a1": false}}
	second := Generate(Input{Pod: pod, Previous: &first, Runtime: rt, Probes: p, Now: at(20)})
	for typ, when := range map[v1.PodConditionType]metav1.Time{
		v1.PodReady:                  mt(20),
		v1.ContainersReady:           mt(20),
		v1.PodInitialized:            mt(10),
		v1.PodScheduled:              mt(10),
		v1.PodReadyToStartContainers: mt(10),
	} {
		if c := condition(second, typ); !c.LastTransitionTime.Equal(&when) {
			t.Errorf("%s: lastTransitionTime %v, want %v", typ, c.LastTransitionTime, when)
		}
	}
	if *second.StartTime != mt(10) {
		t.Errorf("start time %v, want %v", second.StartTime, mt(10))
	}

	// Without a previous status, the API's counts.
	pod.Status = second
	third := Generate(Input{Pod: pod, Runtime: rt, Probes: p, Now: at(30)})
	if c := condition(third, v1.PodReady); c.LastTransitionTime != mt(20) || *third.StartTime != mt(10) {
		t.Errorf("from the API's status: Ready at %v, start %v", c.LastTransitionTime, third.StartTime)
	}
}

// Times are cut to the second, in UTC.
func TestGenerateTimesToTheSecond(t *testing.T) {
	pod := newPod(v1.PodSpec{Containers: names("a")})
	cs := running("a", "a1", 1)
	cs.StartedAt += 999_999_999
	got := Generate(Input{Pod: pod, Runtime: runtimeStatus(readySandbox, cs), Now: at(10).Add(500 * 1e6)})
	if s := containerStatus(got, "a").State.Running.StartedAt; s != mt(2) {
		t.Errorf("startedAt %v, want %v", s, mt(2))
	}
	if *got.StartTime != mt(10) || condition(got, v1.PodReady).LastTransitionTime != mt(10) {
		t.Errorf("start time %v, Ready at %v, want %v", got.StartTime, condition(got, v1.PodReady).LastTransitionTime, mt(10))
	}
}

// The phase never leaves a terminal phase; its reason and message stay
// while it does not change.
func TestGeneratePhaseStaysTerminal(t *testing.T) {
	pod := newPod(v1.PodSpec{Containers: names("a")})
	rt := runtimeStatus(readySandbox, running("a", "a1", 1))

	prev := v1.PodStatus{Phase: v1.PodFailed, Reason: "Evicted", Message: "The node was low on resource: memory."}
	got := Generate(Input{Pod: pod, Previous: &prev, Runtime: rt, Now: at(5)})
	if got.Phase != v1.PodFailed || got.Reason != prev.Reason || got.Message != prev.Message {
		t.Errorf("previous Failed: %s %q %q", got.Phase, got.Reason, got.Message)
	}
	if c := condition(got, v1.PodReady); c.Status != v1.ConditionFalse || c.Reason != ReasonPodFailed {
		t.Errorf("Ready in a terminal phase: %+v", c)
	}

	pod.Status = v1.PodStatus{Phase: v1.PodSucceeded, Reason: "Done"}
	got = Generate(Input{Pod: pod, Previous: &v1.PodStatus{Phase: v1.PodRunning}, Runtime: rt, Now: at(5)})
	if got.Phase != v1.PodSucceeded || got.Reason != "" {
		t.Errorf("API Succeeded: %s %q", got.Phase, got.Reason)
	}

	pod.Status = v1.PodStatus{Phase: v1.PodRunning, Reason: "api-reason", Message: "api-message"}
	got = Generate(Input{Pod: pod, Previous: &v1.PodStatus{Phase: v1.PodRunning, Message: "cached"}, Runtime: rt, Now: at(5)})
	if got.Reason != "api-reason" || got.Message != "cached" {
		t.Errorf("same phase: reason %q message %q, want the cache's, else the API's", got.Reason, got.Message)
	}
}

// Terminal: the restart policy no longer counts. Finished: what has no
// terminated state gets ContainerStatusUnknown, and the phase is terminal.
func TestGenerateTerminalAndFinished(t *testing.T) {
	pod := newPod(v1.PodSpec{Containers: names("a", "b")})
	rt := runtimeStatus(readySandbox, exited("a", "a1", 1, 0, "Completed", 5), exited("b", "b1", 1, 0, "Completed", 5))
	if got := Generate(Input{Pod: pod, Runtime: rt, Now: at(6)}); got.Phase != v1.PodRunning {
		t.Errorf("not terminal: phase %s, want Running (restartPolicy Always)", got.Phase)
	}
	got := Generate(Input{Pod: pod, Runtime: rt, Terminal: true, Now: at(6)})
	if got.Phase != v1.PodSucceeded {
		t.Errorf("terminal: phase %s, want Succeeded", got.Phase)
	}
	if c := condition(got, v1.PodReady); c.Reason != ReasonPodCompleted {
		t.Errorf("terminal: Ready %+v", c)
	}

	// The runtime lost b, which was running: its end is unknown.
	prev := v1.PodStatus{Phase: v1.PodRunning, ContainerStatuses: []v1.ContainerStatus{
		{Name: "a", State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}, ContainerID: "containerd://a1"},
		{Name: "b", State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}, ContainerID: "containerd://b1"},
	}}
	pod.Status = prev
	rt = runtimeStatus(readySandbox, exited("a", "a1", 1, 0, "Completed", 5))
	got = Generate(Input{Pod: pod, Runtime: rt, Finished: true, Now: at(6)})
	b := containerStatus(got, "b")
	want := &v1.ContainerStateTerminated{Reason: ReasonContainerStatusUnknown, Message: MessageNotLocatedTerminated, ExitCode: 137}
	if diff := diffOf(want, b.State.Terminated); diff != "" {
		t.Errorf("lost container :\n%s", diff)
	}
	if got.Phase != v1.PodFailed {
		t.Errorf("finished: phase %s, want Failed", got.Phase)
	}

	// A container still running at the end did not end as seen: the pod
	// failed, and is no longer ready.
	rt = runtimeStatus(readySandbox, running("a", "a1", 1), running("b", "b1", 1))
	got = Generate(Input{Pod: pod, Runtime: rt, Finished: true, Now: at(6)})
	if s := containerStatus(got, "a").State.Terminated; got.Phase != v1.PodFailed || s == nil || s.Reason != ReasonContainerStatusUnknown {
		t.Errorf("finished while running: phase %s, a %+v", got.Phase, containerStatus(got, "a").State)
	}
	for _, typ := range []v1.PodConditionType{v1.PodReady, v1.ContainersReady} {
		if c := condition(got, typ); c.Status != v1.ConditionFalse || c.Reason != ReasonPodFailed {
			t.Errorf("finished while running: %s = %+v, want False PodFailed", typ, c)
		}
	}

	// Static pods keep their phase.
	pod.Annotations = map[string]string{core.AnnotationConfigSource: core.SourceFile}
	if got := Generate(Input{Pod: pod, Runtime: rt, Finished: true, Now: at(6)}); got.Phase == v1.PodFailed || got.Phase == v1.PodSucceeded {
		t.Errorf("static pod finished: phase %s, want not terminal", got.Phase)
	}
}

// Finished, for a pod with init containers: the init containers up to the
// last that ran get ContainerStatusUnknown; regular containers only once
// the API's status shows the pod initialized.
func TestGenerateFinishedWithInitContainers(t *testing.T) {
	pod := newPod(v1.PodSpec{InitContainers: names("i1", "i2", "i3"), Containers: names("app")})
	prev := v1.PodStatus{InitContainerStatuses: csts("i1=exited:0", "i2=running", "i3=waiting:PodInitializing")}
	got := Generate(Input{Pod: pod, Previous: &prev, Finished: true, Now: at(5)})
	for name, unknown := range map[string]bool{"i1": false, "i2": true, "i3": false, "app": false} {
		s := containerStatus(got, name).State
		if isUnknown := s.Terminated != nil && s.Terminated.Reason == ReasonContainerStatusUnknown; isUnknown != unknown {
			t.Errorf("%s: state %+v, want ContainerStatusUnknown %v", name, s, unknown)
		}
	}
	if got.Phase != v1.PodFailed {
		t.Errorf("phase %s, want Failed", got.Phase)
	}

	// Nothing ran: the first init container failed.
	got = Generate(Input{Pod: pod, Finished: true, Now: at(5)})
	if s := containerStatus(got, "i1").State.Terminated; s == nil || s.Reason != ReasonContainerStatusUnknown {
		t.Errorf("nothing ran: i1 %+v", containerStatus(got, "i1").State)
	}
	if s := containerStatus(got, "i2").State; s.Waiting == nil {
		t.Errorf("nothing ran: i2 %+v, want waiting", s)
	}

	// The API's status shows the last init container completed: the
	// regular container's end is unknown too.
	pod.Status = v1.PodStatus{InitContainerStatuses: csts("i1=exited:0", "i2=exited:0", "i3=exited:0"), ContainerStatuses: csts("app=waiting")}
	got = Generate(Input{Pod: pod, Finished: true, Now: at(5)})
	if s := containerStatus(got, "app").State.Terminated; s == nil || s.Reason != ReasonContainerStatusUnknown {
		t.Errorf("initialized: app %+v", containerStatus(got, "app").State)
	}
}

// Containers the runtime lost: one that was running gets a last state of
// ContainerStatusUnknown and a restart; one in an unknown state that was
// running is taken as terminated.
func TestGenerateLostContainers(t *testing.T) {
	pod := newPod(v1.PodSpec{Containers: names("gone", "unknown")})
	prev := v1.PodStatus{ContainerStatuses: []v1.ContainerStatus{
		{Name: "gone", RestartCount: 4, State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}},
		{Name: "unknown", RestartCount: 2, State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}},
	}}
	rt := runtimeStatus(readySandbox, instance("unknown", "u1", runtimeapi.ContainerState_CONTAINER_UNKNOWN, 1, restarts(2)))
	got := Generate(Input{Pod: pod, Previous: &prev, Runtime: rt, Now: at(5)})

	gone := containerStatus(got, "gone")
	if w := gone.State.Waiting; w == nil || w.Reason != ReasonContainerCreating {
		t.Errorf("gone: state %+v", gone.State)
	}
	want := &v1.ContainerStateTerminated{Reason: ReasonContainerStatusUnknown, Message: MessageNotLocatedDeleted, ExitCode: 137}
	if diff := diffOf(want, gone.LastTerminationState.Terminated); diff != "" || gone.RestartCount != 5 {
		t.Errorf("gone: restartCount %d, last state :\n%s", gone.RestartCount, diff)
	}
	unknown := containerStatus(got, "unknown")
	want = &v1.ContainerStateTerminated{Reason: ReasonContainerStatusUnknown, Message: MessageNotLocatedTerminated, ExitCode: 137}
	if diff := diffOf(want, unknown.State.Terminated); diff != "" || unknown.RestartCount != 3 {
		t.Errorf("unknown: restartCount %d, state :\n%s", unknown.RestartCount, diff)
	}
	// The pod does not go back to Pending for it.
	if got.Phase != v1.PodRunning {
		t.Errorf("phase %s, want Running", got.Phase)
	}

	// Being deleted, the lost container does not count a restart.
	now := metav1.NewTime(at(4))
	pod.DeletionTimestamp = &now
	if got := Generate(Input{Pod: pod, Previous: &prev, Runtime: rt, Now: at(5)}); containerStatus(got, "gone").RestartCount != 4 {
		t.Errorf("deleted pod: restartCount %d, want 4", containerStatus(got, "gone").RestartCount)
	}
}

// Restart counts come from the instance's annotation and never go down;
// a running instance after a terminated status counts one more.
func TestGenerateRestartCounts(t *testing.T) {
	pod := newPod(v1.PodSpec{Containers: names("a", "b")})
	prev := v1.PodStatus{ContainerStatuses: []v1.ContainerStatus{
		{Name: "a", RestartCount: 7, ContainerID: "containerd://a1", State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}},
		{Name: "b", RestartCount: 1, ContainerID: "containerd://b1", State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 1, ContainerID: "containerd://b1"}}},
	}}
	rt := runtimeStatus(readySandbox, running("a", "a1", 1, restarts(2)), running("b", "b2", 5, restarts(1)))
	got := Generate(Input{Pod: pod, Previous: &prev, Runtime: rt, Now: at(6)})
	if n := containerStatus(got, "a").RestartCount; n != 7 {
		t.Errorf("a: restartCount %d, want 7 (never down)", n)
	}
	b := containerStatus(got, "b")
	if b.RestartCount != 2 {
		t.Errorf("b: restartCount %d, want 2", b.RestartCount)
	}
	// The terminated instance of the previous status is the last state,
	// though the runtime removed it.
	if t2 := b.LastTerminationState.Terminated; t2 == nil || t2.ContainerID != "containerd://b1" || t2.ExitCode != 1 {
		t.Errorf("b: last state %+v", b.LastTerminationState)
	}
}

// Evict fails the pod with its reason and message, and adds
// DisruptionTarget; later statuses keep it.
func TestGenerateEvict(t *testing.T) {
	pod := newPod(v1.PodSpec{Containers: names("a")})
	pod.Status.Conditions = []v1.PodCondition{
		{Type: "example.com/gate", Status: v1.ConditionTrue},
		{Type: v1.PodResizePending, Status: v1.ConditionTrue},
		{Type: v1.PodScheduled, Status: v1.ConditionTrue, LastTransitionTime: mt(-100)},
	}
	rt := runtimeStatus(readySandbox, running("a", "a1", 1))
	ev := &Eviction{Reason: "Evicted", Message: "The node was low on resource: memory.", DisruptionTarget: true}
	got := Generate(Input{Pod: pod, Runtime: rt, Evict: ev, Now: at(10)})
	if got.Phase != v1.PodFailed || got.Reason != "Evicted" || got.Message != ev.Message {
		t.Errorf("evicted: %s %q %q", got.Phase, got.Reason, got.Message)
	}
	dt := v1.PodCondition{Type: v1.DisruptionTarget, ObservedGeneration: 1, Status: v1.ConditionTrue, Reason: ReasonTerminationByKubelet, Message: ev.Message, LastTransitionTime: mt(10)}
	if diff := diffOf(dt, condition(got, v1.DisruptionTarget)); diff != "" {
		t.Errorf("DisruptionTarget :\n%s", diff)
	}
	var types []string
	for _, c := range got.Conditions {
		types = append(types, string(c.Type))
	}
	if want := "example.com/gate,PodReadyToStartContainers,Initialized,Ready,ContainersReady,PodScheduled,DisruptionTarget"; strings.Join(types, ",") != want {
		t.Errorf("conditions %v, want %s", types, want)
	}
	if c := condition(got, v1.PodScheduled); c.LastTransitionTime != mt(-100) {
		t.Errorf("PodScheduled at %v, want the scheduler's %v", c.LastTransitionTime, mt(-100))
	}

	later := Generate(Input{Pod: pod, Previous: &got, Runtime: runtimeStatus(readySandbox), Terminal: true, Now: at(20)})
	if later.Phase != v1.PodFailed || later.Reason != "Evicted" {
		t.Errorf("later: %s %q", later.Phase, later.Reason)
	}
	if diff := diffOf(dt, condition(later, v1.DisruptionTarget)); diff != "" {
		t.Errorf("later DisruptionTarget :\n%s", diff)
	}
}

// Pod IPs: one per family, the node's family first; a pod on the host
// network has the node's IPs.
func TestGeneratePodIPs(t *testing.T) {
	pod := newPod(v1.PodSpec{Containers: names("a")})
	rt := runtimeStatus(readySandbox)
	rt.IPs = []string{"fd00::0001", "10.0.0.1", "fd00::2", "10.0.0.2"}
	for _, c := range []struct {
		hostIPs []string
		want    []v1.PodIP
	}{
		{nil, []v1.PodIP{{IP: "10.0.0.1"}, {IP: "fd00::1"}}},
		{[]string{"192.168.0.1"}, []v1.PodIP{{IP: "10.0.0.1"}, {IP: "fd00::1"}}},
		{[]string{"2001:db8::1", "192.168.0.1"}, []v1.PodIP{{IP: "fd00::1"}, {IP: "10.0.0.1"}}},
	} {
		got := Generate(Input{Pod: pod, Runtime: rt, HostIPs: c.hostIPs, Now: at(1)})
		if !reflect.DeepEqual(got.PodIPs, c.want) || got.PodIP != c.want[0].IP {
			t.Errorf("host IPs %v: pod IPs %v (%s), want %v", c.hostIPs, got.PodIPs, got.PodIP, c.want)
		}
	}

	pod.Spec.HostNetwork = true
	got := Generate(Input{Pod: pod, HostIPs: []string{"192.168.0.1", "2001:db8::1", "192.168.0.2"}, Now: at(1)})
	if got.PodIP != "192.168.0.1" || !reflect.DeepEqual(got.PodIPs, []v1.PodIP{{IP: "192.168.0.1"}, {IP: "2001:db8::1"}}) {
		t.Errorf("host network: pod IPs %v (%s)", got.PodIPs, got.PodIP)
	}
	if !reflect.DeepEqual(got.HostIPs, []v1.HostIP{{IP: "192.168.0.1"}, {IP: "2001:db8::1"}}) || got.HostIP != "192.168.0.1" {
		t.Errorf("host IPs %v (%s)", got.HostIPs, got.HostIP)
	}
}

// Ephemeral containers: sorted by name, default waiting, no started.
func TestGenerateEphemeralContainers(t *testing.T) {
	pod := newPod(v1.PodSpec{Containers: names("a")})
	pod.Spec.EphemeralContainers = []v1.EphemeralContainer{
		{EphemeralContainerCommon: v1.EphemeralContainerCommon{Name: "debug2", Image: "busybox"}},
		{EphemeralContainerCommon: v1.EphemeralContainerCommon{Name: "debug1", Image: "busybox"}, TargetContainerName: "a"},
	}
	rt := runtimeStatus(readySandbox, running("a", "a1", 1), running("debug1", "d1", 5))
	got := Generate(Input{Pod: pod, Runtime: rt, Now: at(6)})
	if n := len(got.EphemeralContainerStatuses); n != 2 || got.EphemeralContainerStatuses[0].Name != "debug1" {
		t.Fatalf("ephemeral statuses %+v", got.EphemeralContainerStatuses)
	}
	d1, d2 := got.EphemeralContainerStatuses[0], got.EphemeralContainerStatuses[1]
	if d1.State.Running == nil || d1.ContainerID != "containerd://d1" || d1.Started != nil || d1.Ready {
		t.Errorf("debug1: %+v", d1)
	}
	if d2.State.Waiting == nil || d2.State.Waiting.Reason != ReasonContainerCreating || d2.Image != "busybox" {
		t.Errorf("debug2: %+v", d2)
	}
	if got.Phase != v1.PodRunning || condition(got, v1.ContainersReady).Status != v1.ConditionTrue {
		t.Errorf("ephemeral containers count for nothing: phase %s, ContainersReady %+v", got.Phase, condition(got, v1.ContainersReady))
	}
}

// The termination message is appended to the runtime's message, and each
// container's terminated message is cut to its share of 12 KiB.
func TestGenerateTerminationMessages(t *testing.T) {
	pod := newPod(v1.PodSpec{Containers: names("a", "b", "c"), RestartPolicy: v1.RestartPolicyNever})
	a := exited("a", "a1", 1, 1, "Error", 2)
	a.Message = "runtime says"
	rt := runtimeStatus(readySandbox, a, exited("b", "b1", 1, 1, "Error", 2), exited("c", "c1", 1, 0, "Completed", 2))
	var asked []string
	hook := func(cs *runtimeapi.ContainerStatus) string {
		asked = append(asked, cs.GetId())
		switch cs.GetId() {
		case "a1":
			return "file says"
		case "b1":
			return strings.Repeat("x", 5000)
		}
		return ""
	}
	got := Generate(Input{Pod: pod, Runtime: rt, TerminationMessage: hook, Now: at(3)})
	if m := containerStatus(got, "a").State.Terminated.Message; m != "runtime says: file says" {
		t.Errorf("a: message %q", m)
	}
	if m := containerStatus(got, "b").State.Terminated.Message; len(m) != 12*1024/3 {
		t.Errorf("b: message of %d bytes, want %d", len(m), 12*1024/3)
	}
	if m := containerStatus(got, "c").State.Terminated.Message; m != "" {
		t.Errorf("c: message %q", m)
	}
	sort.Strings(asked)
	if strings.Join(asked, ",") != "a1,b1,c1" {
		t.Errorf("asked for %v, want each exited instance once", asked)
	}
}

// Volume mounts show the recursive read-only mode of read-only mounts.
func TestGenerateVolumeMounts(t *testing.T) {
	ifPossible, enabled := v1.RecursiveReadOnlyIfPossible, v1.RecursiveReadOnlyEnabled
	pod := newPod(v1.PodSpec{Containers: []v1.Container{{Name: "a", VolumeMounts: []v1.VolumeMount{
		{Name: "data", MountPath: "/data"},
		{Name: "token", MountPath: "/var/run/secrets", ReadOnly: true},
		{Name: "ro", MountPath: "/ro", ReadOnly: true, RecursiveReadOnly: &ifPossible},
		{Name: "rro", MountPath: "/rro", ReadOnly: true, RecursiveReadOnly: &enabled},
	}}}})
	disabled, on := v1.RecursiveReadOnlyDisabled, v1.RecursiveReadOnlyEnabled
	for _, c := range []struct {
		supported bool
		want      []v1.VolumeMountStatus
	}{
		{false, []v1.VolumeMountStatus{
			{Name: "data", MountPath: "/data"},
			{Name: "token", MountPath: "/var/run/secrets", ReadOnly: true, RecursiveReadOnly: &disabled},
			{Name: "ro", MountPath: "/ro", ReadOnly: true, RecursiveReadOnly: &disabled},
			{Name: "rro", MountPath: "/rro", ReadOnly: true, RecursiveReadOnly: &disabled},
		}},
		{true, []v1.VolumeMountStatus{
			{Name: "data", MountPath: "/data"},
			{Name: "token", MountPath: "/var/run/secrets", ReadOnly: true, RecursiveReadOnly: &disabled},
			{Name: "ro", MountPath: "/ro", ReadOnly: true, RecursiveReadOnly: &on},
			{Name: "rro", MountPath: "/rro", ReadOnly: true, RecursiveReadOnly: &on},
		}},
	} {
		first := Generate(Input{Pod: pod, SupportsRecursiveReadOnly: c.supported, Now: at(1)})
		if diff := diffOf(c.want, containerStatus(first, "a").VolumeMounts); diff != "" {
			t.Errorf("supported %v :\n%s", c.supported, diff)
		}
		// Once the container runs, its mounts come from the previous
		// status.
		rt := runtimeStatus(readySandbox, running("a", "a1", 1))
		next := Generate(Input{Pod: pod, Previous: &first, Runtime: rt, Now: at(2)})
		if diff := diffOf(c.want, containerStatus(next, "a").VolumeMounts); diff != "" {
			t.Errorf("running, supported %v :\n%s", c.supported, diff)
		}
	}
}

// Resources: the runtime's CPU and memory for a running container, the
// spec's otherwise; allocatedResources are the spec's requests; the
// pod-level sums; the runtime's user.
func TestGenerateResourcesAndUser(t *testing.T) {
	rl := func(cpu, mem string) v1.ResourceList {
		return v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu), v1.ResourceMemory: resource.MustParse(mem)}
	}
	pod := newPod(v1.PodSpec{Containers: []v1.Container{
		{Name: "a", Resources: v1.ResourceRequirements{Requests: rl("250m", "64Mi"), Limits: rl("500m", "128Mi")}},
		{Name: "b", Resources: v1.ResourceRequirements{Requests: rl("100m", "32Mi")}},
	}})
	a := running("a", "a1", 1)
	a.Resources = &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{
		CpuShares: 256, CpuQuota: 60000, CpuPeriod: 100000, MemoryLimitInBytes: 256 << 20,
	}}
	a.User = &runtimeapi.ContainerUser{Linux: &runtimeapi.LinuxContainerUser{Uid: 1000, Gid: 3000, SupplementalGroups: []int64{3000, 4000}}}
	rt := runtimeStatus(readySandbox, a, exited("b", "b1", 1, 1, "Error", 2))
	got := Generate(Input{Pod: pod, Runtime: rt, Now: at(3)})

	ca := containerStatus(got, "a")
	want := &v1.ResourceRequirements{Requests: rl("250m", "64Mi"), Limits: rl("600m", "256Mi")}
	if !equalResources(ca.Resources, want) {
		t.Errorf("a: resources %v, want %v", ca.Resources, want)
	}
	if !equalLists(ca.AllocatedResources, rl("250m", "64Mi")) {
		t.Errorf("a: allocated %v", ca.AllocatedResources)
	}
	if u := ca.User; u == nil || u.Linux == nil || u.Linux.UID != 1000 || u.Linux.GID != 3000 || !reflect.DeepEqual(u.Linux.SupplementalGroups, []int64{3000, 4000}) {
		t.Errorf("a: user %+v", ca.User)
	}
	cb := containerStatus(got, "b")
	if !equalResources(cb.Resources, &v1.ResourceRequirements{Requests: rl("100m", "32Mi")}) || cb.User != nil {
		t.Errorf("b: resources %v, user %v", cb.Resources, cb.User)
	}
	if !equalLists(got.AllocatedResources, rl("350m", "96Mi")) || !equalLists(got.Resources.Requests, rl("350m", "96Mi")) || !equalLists(got.Resources.Limits, rl("500m", "128Mi")) {
		t.Errorf("pod: allocated %v, resources %v", got.AllocatedResources, got.Resources)
	}
	if got.QOSClass != v1.PodQOSBurstable {
		t.Errorf("QoS %s", got.QOSClass)
	}
}

func equalLists(a, b v1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for k, q := range a {
		if r, ok := b[k]; !ok || q.Cmp(r) != 0 {
			return false
		}
	}
	return true
}

func equalResources(a, b *v1.ResourceRequirements) bool {
	return a != nil && b != nil && equalLists(a.Requests, b.Requests) && equalLists(a.Limits, b.Limits)
}

// A pod restarting all its containers in place: a removed container waits
// with RestartingAllContainers, and the condition says so.
func TestGenerateRestartAllContainers(t *testing.T) {
	pod := newPod(v1.PodSpec{Containers: []v1.Container{restartAllOn(v1.Container{Name: "a"}, 42), {Name: "b"}}, RestartPolicy: v1.RestartPolicyNever})
	prev := v1.PodStatus{ContainerStatuses: []v1.ContainerStatus{
		{Name: "a", ContainerID: "containerd://a1", State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 42}}},
		{Name: "b", ContainerID: "containerd://b1", RestartCount: 3, State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}},
	}}
	rt := runtimeStatus(readySandbox, exited("a", "a1", 1, 42, "Error", 5))
	got := Generate(Input{Pod: pod, Previous: &prev, Runtime: rt, Now: at(6)})
	b := containerStatus(got, "b")
	if w := b.State.Waiting; w == nil || w.Reason != ReasonRestartingAllContainers || b.RestartCount != 4 ||
		b.LastTerminationState.Terminated == nil || b.LastTerminationState.Terminated.Reason != ReasonRestartingAllContainers {
		t.Errorf("b: %+v", b)
	}
	if c := condition(got, v1.AllContainersRestarting); c.Status != v1.ConditionTrue || c.Reason != ReasonRestartAllContainersStarted {
		t.Errorf("AllContainersRestarting = %+v", c)
	}
	if got.Phase != v1.PodRunning {
		t.Errorf("phase %s, want Running", got.Phase)
	}
	// Pods without such a rule have no AllContainersRestarting condition.
	if c := findCondition(Generate(Input{Pod: newPod(v1.PodSpec{Containers: names("a")}), Now: at(1)}).Conditions, v1.AllContainersRestarting); c != nil {
		t.Errorf("pod without rules: %+v", c)
	}
}

// Generate modifies none of its input.
func TestGenerateLeavesInputAlone(t *testing.T) {
	pod := newPod(v1.PodSpec{InitContainers: []v1.Container{sidecar("s")}, Containers: names("a", "b")})
	pod.Spec.InitContainers[0].Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse("1")}
	pod.Status = v1.PodStatus{Conditions: []v1.PodCondition{{Type: "x", Status: v1.ConditionTrue}}, ContainerStatuses: csts("a=running", "b=exited:1"),
		InitContainerStatuses: []v1.ContainerStatus{{Name: "s", VolumeMounts: []v1.VolumeMountStatus{{Name: "v", MountPath: "/v"}}}}}
	prev := pod.Status.DeepCopy()
	prev.Conditions = append(prev.Conditions, v1.PodCondition{Type: v1.DisruptionTarget, Status: v1.ConditionTrue})
	rt := runtimeStatus(readySandbox, running("s", "s1", 1), exited("a", "a1", 2, 1, "Error", 3), exited("a", "a0", 1, 1, "Error", 2))
	in := Input{Pod: pod, Previous: prev, Runtime: rt, Waiting: []Waiting{{Name: "a", Reason: "CrashLoopBackOff"}}, Finished: true, Now: at(5)}
	podCopy, prevCopy := pod.DeepCopy(), prev.DeepCopy()
	rtIDs := []string{rt.ContainerStatuses[0].Id, rt.ContainerStatuses[1].Id, rt.ContainerStatuses[2].Id}
	first := Generate(in)
	if !reflect.DeepEqual(pod, podCopy) || !reflect.DeepEqual(prev, prevCopy) {
		t.Error("Generate modified the pod or the previous status")
	}
	if ids := []string{rt.ContainerStatuses[0].Id, rt.ContainerStatuses[1].Id, rt.ContainerStatuses[2].Id}; !reflect.DeepEqual(ids, rtIDs) {
		t.Errorf("Generate reordered the runtime status: %v", ids)
	}
	// Nor does a caller's change of the result reach the input.
	first.ContainerStatuses[0].LastTerminationState.Terminated.ExitCode = 99
	first.Conditions[0].Status = v1.ConditionFalse
	first.InitContainerStatuses[0].VolumeMounts[0].Name = "changed"
	first.InitContainerStatuses[0].AllocatedResources[v1.ResourceCPU] = resource.MustParse("2")
	if !reflect.DeepEqual(pod, podCopy) || !reflect.DeepEqual(prev, prevCopy) {
		t.Error("the status shares memory with the input")
	}
	if second := Generate(in); reflect.DeepEqual(first, second) {
		t.Error("changing the first result changed nothing? the test is broken")
	} else if !reflect.DeepEqual(Generate(in), second) {
		t.Error("Generate is not deterministic")
	}
}
