package runtimetest_test

import (
	"context"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/runtimetest"
)

const busybox = "localhost/busybox:latest"

var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// env is a runtime on a fake clock.
type env struct {
	t   testing.TB
	ctx context.Context
	clk *testingclock.FakeClock
	rt  *runtimetest.Runtime
}

func newEnv(t testing.TB, cfg runtimetest.Config) *env {
	t.Helper()
	clk := testingclock.NewFakeClock(epoch)
	cfg.Clock = clk
	if cfg.Images == nil {
		cfg.Images = []string{busybox}
	}
	rt, err := runtimetest.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &env{t: t, ctx: context.Background(), clk: clk, rt: rt}
}

func sandboxConfig(name string, hostNetwork bool) *runtimeapi.PodSandboxConfig {
	mode := runtimeapi.NamespaceMode_POD
	if hostNetwork {
		mode = runtimeapi.NamespaceMode_NODE
	}
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "ns", Uid: "uid-" + name},
		Labels:       map[string]string{core.LabelPodName: name, core.LabelPodNamespace: "ns", core.LabelPodUID: "uid-" + name, "app": name},
		Annotations:  map[string]string{"note": "kept"},
		LogDirectory: "/var/log/pods/" + name,
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: mode, Pid: runtimeapi.NamespaceMode_CONTAINER},
		}},
	}
}

// containerConfig is a container as the kubelet makes it: PID 1 of its own
// PID namespace.
func containerConfig(name string, cmd ...string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: busybox},
		Command:  cmd,
		LogPath:  name + "/0.log",
		Labels:   map[string]string{core.LabelContainerName: name},
		Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
		}},
	}
}

func (e *env) runSandbox(name string) (string, *runtimeapi.PodSandboxConfig) {
	e.t.Helper()
	cfg := sandboxConfig(name, false)
	id, err := e.rt.RunPodSandbox(e.ctx, cfg, "")
	if err != nil {
		e.t.Fatalf("RunPodSandbox %s: %v", name, err)
	}
	return id, cfg
}

func (e *env) create(sbID string, sb *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	e.t.Helper()
	id, err := e.rt.CreateContainer(e.ctx, sbID, cfg, sb)
	if err != nil {
		e.t.Fatalf("CreateContainer %s: %v", cfg.GetMetadata().GetName(), err)
	}
	return id
}

// start creates and starts a container in a new sandbox named after it.
func (e *env) start(cfg *runtimeapi.ContainerConfig) string {
	e.t.Helper()
	sbID, sb := e.runSandbox("pod-" + cfg.GetMetadata().GetName())
	id := e.create(sbID, sb, cfg)
	if err := e.rt.StartContainer(e.ctx, id); err != nil {
		e.t.Fatalf("StartContainer: %v", err)
	}
	return id
}

func (e *env) sandboxOf(id string) string {
	e.t.Helper()
	list, err := e.rt.ListContainers(e.ctx, &runtimeapi.ContainerFilter{Id: id})
	if err != nil || len(list) != 1 {
		e.t.Fatalf("ListContainers %s: %d containers, %v", id, len(list), err)
	}
	return list[0].PodSandboxId
}

func (e *env) status(id string) *runtimeapi.ContainerStatus {
	e.t.Helper()
	resp, err := e.rt.ContainerStatus(e.ctx, id, false)
	if err != nil {
		e.t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	return resp.GetStatus()
}

// wantState checks a container's state and, once exited, its exit code and
// reason.
func (e *env) wantState(id string, state runtimeapi.ContainerState, code int32, reason string) *runtimeapi.ContainerStatus {
	e.t.Helper()
	st := e.status(id)
	if st.GetState() != state || st.GetExitCode() != code || st.GetReason() != reason {
		e.t.Fatalf("container %s: %s exit %d reason %q; want %s exit %d reason %q",
			st.GetMetadata().GetName(), st.GetState(), st.GetExitCode(), st.GetReason(), state, code, reason)
	}
	return st
}

// waitWaiters waits until the fake clock has n waiters: until the calls
// under test are waiting on it.
func (e *env) waitWaiters(n int) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.clk.Waiters() != n {
		if time.Now().After(deadline) {
			e.t.Fatalf("the clock has %d waiters, want %d", e.clk.Waiters(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// async runs f in a goroutine and returns a channel of its error.
func async(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

// result waits for an async call to return.
func (e *env) result(ch <-chan error) error {
	e.t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		e.t.Fatal("the call did not return")
		return nil
	}
}

// pending checks that an async call has not returned yet.
func (e *env) pending(ch <-chan error) {
	e.t.Helper()
	select {
	case err := <-ch:
		e.t.Fatalf("the call returned early: %v", err)
	default:
	}
}
