package statusmgr

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"sigs.k8s.io/yaml"

	"github.com/nodekit/nodekit/core"
)

// t0 is the time tests count from; at(n) is n seconds later.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func mt(s int) metav1.Time { return metav1.NewTime(at(s)) }

// cst parses a container status written "name=state":
//
//	running, started (running, started true), ready (running, started and
//	ready), waiting, waiting:Reason, exited:<code>, crash:<code> (waiting,
//	lastState exited with code), restarting-all (waiting, lastState
//	RestartingAllContainers), none (no state)
func cst(s string) v1.ContainerStatus {
	name, state, _ := strings.Cut(s, "=")
	kind, arg, _ := strings.Cut(state, ":")
	code := func() int32 {
		n, err := strconv.Atoi(arg)
		if err != nil {
			panic(fmt.Sprintf("bad exit code in %q", s))
		}
		return int32(n)
	}
	yes := true
	cs := v1.ContainerStatus{Name: name}
	switch kind {
	case "running":
		cs.State.Running = &v1.ContainerStateRunning{}
	case "started":
		cs.State.Running = &v1.ContainerStateRunning{}
		cs.Started = &yes
	case "ready":
		cs.State.Running = &v1.ContainerStateRunning{}
		cs.Started, cs.Ready = &yes, true
	case "waiting":
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: arg}
	case "exited":
		cs.State.Terminated = &v1.ContainerStateTerminated{ExitCode: code()}
	case "crash":
		cs.State.Waiting = &v1.ContainerStateWaiting{}
		cs.LastTerminationState.Terminated = &v1.ContainerStateTerminated{ExitCode: code()}
	case "restarting-all":
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: ReasonRestartingAllContainers, Message: MessageRestartingAll}
		cs.LastTerminationState.Terminated = &v1.ContainerStateTerminated{Reason: ReasonRestartingAllContainers, Message: MessageRestartingAll, ExitCode: 137}
	case "none":
	default:
		panic(fmt.Sprintf("unknown state in %q", s))
	}
	return cs
}

func csts(ss ...string) []v1.ContainerStatus {
	out := make([]v1.ContainerStatus, len(ss))
	for i, s := range ss {
		out[i] = cst(s)
	}
	return out
}

var (
	policyAlways    = v1.ContainerRestartPolicyAlways
	policyOnFailure = v1.ContainerRestartPolicyOnFailure
	policyNever     = v1.ContainerRestartPolicyNever
)

// sidecar is an init container with restartPolicy Always.
func sidecar(name string) v1.Container {
	return v1.Container{Name: name, RestartPolicy: &policyAlways}
}

// restartAllOn is a container whose exit with one of codes restarts all
// containers of the pod.
func restartAllOn(c v1.Container, codes ...int32) v1.Container {
	if c.RestartPolicy == nil {
		c.RestartPolicy = &policyNever
	}
	c.RestartPolicyRules = []v1.ContainerRestartRule{{
		Action:    v1.ContainerRestartRuleActionRestartAllContainers,
		ExitCodes: &v1.ContainerRestartRuleOnExitCodes{Operator: v1.ContainerRestartRuleOnExitCodesOpIn, Values: codes},
	}}
	return c
}

func names(ns ...string) []v1.Container {
	out := make([]v1.Container, len(ns))
	for i, n := range ns {
		out[i] = v1.Container{Name: n, Image: n + ":1"}
	}
	return out
}

// newPod is pod "default/web", generation 1, with spec.
func newPod(spec v1.PodSpec) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-1", Generation: 1},
		Spec:       spec,
	}
}

// sandbox is a sandbox of pod uid-1 created at created seconds.
func sandbox(id string, ready bool, created int, ip string) *runtimeapi.PodSandboxStatus {
	state := runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	if ready {
		state = runtimeapi.PodSandboxState_SANDBOX_READY
	}
	sb := &runtimeapi.PodSandboxStatus{
		Id:        id,
		Metadata:  &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "uid-1"},
		State:     state,
		CreatedAt: at(created).UnixNano(),
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: &runtimeapi.NamespaceOption{
			Network: runtimeapi.NamespaceMode_POD,
		}}},
	}
	if ip != "" {
		sb.Network = &runtimeapi.PodSandboxNetworkStatus{Ip: ip}
	}
	return sb
}

// instance is a runtime container of pod uid-1. Options set its times,
// exit and annotations.
func instance(name, id string, state runtimeapi.ContainerState, created int, opts ...func(*runtimeapi.ContainerStatus)) *runtimeapi.ContainerStatus {
	cs := &runtimeapi.ContainerStatus{
		Id:       id,
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		State:    state,
		Image:    &runtimeapi.ImageSpec{Image: "docker.io/library/" + name + ":1"},
		ImageRef: "docker.io/library/" + name + "@sha256:" + strings.Repeat("ab", 32),
		ImageId:  "sha256:" + strings.Repeat("cd", 32),
		Labels: map[string]string{
			core.LabelContainerName: name,
			core.LabelPodName:       "web",
			core.LabelPodNamespace:  "default",
			core.LabelPodUID:        "uid-1",
		},
		Annotations: map[string]string{core.AnnotationContainerRestartCount: "0"},
		CreatedAt:   at(created).UnixNano(),
	}
	if state != runtimeapi.ContainerState_CONTAINER_CREATED {
		cs.StartedAt = at(created + 1).UnixNano()
	}
	for _, o := range opts {
		o(cs)
	}
	return cs
}

func restarts(n int) func(*runtimeapi.ContainerStatus) {
	return func(cs *runtimeapi.ContainerStatus) {
		cs.Annotations[core.AnnotationContainerRestartCount] = strconv.Itoa(n)
		cs.Metadata.Attempt = uint32(n)
	}
}

// exit sets the exit code, reason and finish time (seconds).
func exit(code int32, reason string, finished int) func(*runtimeapi.ContainerStatus) {
	return func(cs *runtimeapi.ContainerStatus) {
		cs.ExitCode, cs.Reason, cs.FinishedAt = code, reason, at(finished).UnixNano()
	}
}

func running(name, id string, created int, opts ...func(*runtimeapi.ContainerStatus)) *runtimeapi.ContainerStatus {
	return instance(name, id, runtimeapi.ContainerState_CONTAINER_RUNNING, created, opts...)
}

func exited(name, id string, created int, code int32, reason string, finished int, opts ...func(*runtimeapi.ContainerStatus)) *runtimeapi.ContainerStatus {
	return instance(name, id, runtimeapi.ContainerState_CONTAINER_EXITED, created, append([]func(*runtimeapi.ContainerStatus){exit(code, reason, finished)}, opts...)...)
}

// runtimeStatus is the runtime status of pod uid-1 with IP ip.
func runtimeStatus(sandboxes []*runtimeapi.PodSandboxStatus, containers ...*runtimeapi.ContainerStatus) *core.PodStatus {
	rt := &core.PodStatus{UID: "uid-1", Name: "web", Namespace: "default", SandboxStatuses: sandboxes, ContainerStatuses: containers}
	for _, sb := range sandboxes {
		if ips := core.SandboxIPs(sb); ips != nil {
			rt.IPs = ips
			break
		}
	}
	return rt
}

// probes is a ProbeState over fixed answers by container ID.
type probes struct {
	ready, started map[string]bool
}

func (p probes) Ready(_ types.UID, id string) bool   { return p.ready[id] }
func (p probes) Started(_ types.UID, id string) bool { return p.started[id] }

var _ ProbeState = probes{}

// condition returns the condition of type t, or a zero one.
func condition(s v1.PodStatus, t v1.PodConditionType) v1.PodCondition {
	if c := findCondition(s.Conditions, t); c != nil {
		return *c
	}
	return v1.PodCondition{}
}

// containerStatus returns the status of container name among all of s.
func containerStatus(s v1.PodStatus, name string) v1.ContainerStatus {
	for _, list := range [][]v1.ContainerStatus{s.InitContainerStatuses, s.ContainerStatuses, s.EphemeralContainerStatuses} {
		if cs, ok := findStatus(list, name); ok {
			return *cs
		}
	}
	return v1.ContainerStatus{}
}

// diffOf returns "" when want and got are deeply equal, else both as YAML.
func diffOf(want, got any) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	w, _ := yaml.Marshal(want)
	g, _ := yaml.Marshal(got)
	return fmt.Sprintf("want:\n%s\ngot:\n%s", w, g)
}
