package conformance

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

// Cgroup is what the kernel enforces for one container, read from its
// cgroup. On cgroup v2, set CPUWeight (cpu.weight) and leave CPUShares
// zero: the suite converts the shares it asked for as the OCI runtimes do.
type Cgroup struct {
	MemoryLimitBytes int64
	CPUShares        int64
	CPUWeight        int64
	CPUQuota         int64
	CPUPeriod        int64
}

// expect is what a container given these limits must show, in the
// flavour of cgroup got was read from.
func expect(got Cgroup, memory, shares, quota, period int64) Cgroup {
	want := Cgroup{MemoryLimitBytes: memory, CPUShares: shares, CPUQuota: quota, CPUPeriod: period}
	if got.CPUWeight != 0 {
		want.CPUShares = 0
		want.CPUWeight = 1 + ((shares-2)*9999)/262142
	}
	return want
}

// Target is the implementation under test.
type Target struct {
	// Runtime under test. Required.
	Runtime core.Runtime
	// Image present in the runtime, holding busybox (sh, sleep, echo). Required.
	Image string
	// Cgroup reads a running container's cgroup limits. Nil skips the
	// cgroup checks.
	Cgroup func(ctx context.Context, containerID string) (Cgroup, error)
	// Events says whether the runtime streams container events. When false
	// and the runtime implements core.EventStreamer, the suite checks that
	// the stream fails with core.ErrUnimplemented.
	Events bool
	// LogDir is a directory for container logs. Default: a test temp dir.
	LogDir string
	// CgroupParent of every sandbox the suite creates. Default: none (the
	// runtime's default).
	CgroupParent string
}

// Run runs the whole suite as subtests of t.
func Run(t *testing.T, target Target) {
	t.Helper()
	if target.Runtime == nil || target.Image == "" {
		t.Fatal("conformance: Target.Runtime and Target.Image are required")
	}
	s := &suite{Target: target, run: randomID()}
	if s.LogDir == "" {
		s.LogDir = t.TempDir()
	}
	cases := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"RuntimeStatus", s.testRuntimeStatus},
		{"SandboxLifecycle", s.testSandboxLifecycle},
		{"PodNetworkSandbox", s.testPodNetworkSandbox},
		{"ContainerLifecycle", s.testContainerLifecycle},
		{"ListFilters", s.testListFilters},
		{"ExitCodes", s.testExitCodes},
		{"StopHonoursGracePeriod", s.testStopGrace},
		{"StopSandboxStopsContainers", s.testStopSandboxStopsContainers},
		{"RemoveSandboxRemovesContainers", s.testRemoveSandboxRemovesContainers},
		{"ExecSync", s.testExecSync},
		{"ResourceLimits", s.testResourceLimits},
		{"Stats", s.testStats},
		{"Images", s.testImages},
		{"UnknownIDs", s.testUnknownIDs},
		{"UnknownImage", s.testUnknownImage},
		{"Events", s.testEvents},
	}
	for _, c := range cases {
		t.Run(c.name, c.fn)
	}
}

type suite struct {
	Target
	run string
}

const namespace = "conformance"

func randomID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// sandboxConfig is a host-network sandbox with the kubelet's labels.
func (s *suite) sandboxConfig(t *testing.T, hostNetwork bool) *runtimeapi.PodSandboxConfig {
	name := strings.ToLower(fmt.Sprintf("%s-%s", s.run, strings.ReplaceAll(t.Name(), "/", "-")))
	if len(name) > 60 {
		name = name[:60]
	}
	uid := "uid-" + randomID() + randomID()
	net := runtimeapi.NamespaceMode_POD
	if hostNetwork {
		net = runtimeapi.NamespaceMode_NODE
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: namespace, Uid: uid, Attempt: 0},
		Labels: map[string]string{
			core.LabelPodName: name, core.LabelPodNamespace: namespace, core.LabelPodUID: uid,
			"app": "conformance", "run": s.run,
		},
		Annotations:  map[string]string{"nodekit.test/annotation": "kept"},
		LogDirectory: s.LogDir,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: s.CgroupParent,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: net, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD},
			},
		},
	}
	// A host-network pod shares the node's UTS namespace and keeps its
	// hostname; runtimes refuse to set one.
	if !hostNetwork {
		cfg.Hostname = "conformance"
	}
	return cfg
}

// runSandbox starts a sandbox that is stopped and removed when the test ends.
func (s *suite) runSandbox(t *testing.T, cfg *runtimeapi.PodSandboxConfig) string {
	t.Helper()
	id, err := s.Runtime.RunPodSandbox(ctxFor(t), cfg, "")
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	if id == "" {
		t.Fatal("RunPodSandbox returned an empty ID")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Runtime.StopPodSandbox(ctx, id); err != nil && !errors.Is(err, core.ErrNotFound) {
			t.Errorf("cleanup: StopPodSandbox: %v", err)
		}
		if err := s.Runtime.RemovePodSandbox(ctx, id); err != nil && !errors.Is(err, core.ErrNotFound) {
			t.Errorf("cleanup: RemovePodSandbox: %v", err)
		}
	})
	return id
}

func (s *suite) containerConfig(sb *runtimeapi.PodSandboxConfig, name string, cmd ...string) *runtimeapi.ContainerConfig {
	md := sb.GetMetadata()
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name, Attempt: 0},
		Image:    &runtimeapi.ImageSpec{Image: s.Image},
		Command:  cmd,
		LogPath:  md.GetUid() + "-" + name + ".log",
		Labels: map[string]string{
			core.LabelPodName: md.GetName(), core.LabelPodNamespace: md.GetNamespace(),
			core.LabelPodUID: md.GetUid(), core.LabelContainerName: name,
		},
		Annotations: map[string]string{
			core.AnnotationContainerHash:                     "1f2e3d4c",
			core.AnnotationContainerRestartCount:             "0",
			core.AnnotationContainerTerminationMessagePath:   "/dev/termination-log",
			core.AnnotationContainerTerminationMessagePolicy: "File",
		},
		Linux: &runtimeapi.LinuxContainerConfig{
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: sb.GetLinux().GetSecurityContext().GetNamespaceOptions(),
			},
		},
	}
}

// startContainer creates and starts a container; the sandbox's cleanup
// takes it away.
func (s *suite) startContainer(t *testing.T, sandboxID string, sb *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	t.Helper()
	ctx := ctxFor(t)
	id, err := s.Runtime.CreateContainer(ctx, sandboxID, cfg, sb)
	if err != nil {
		t.Fatalf("CreateContainer %q: %v", cfg.GetMetadata().GetName(), err)
	}
	if err := s.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatalf("StartContainer %q: %v", cfg.GetMetadata().GetName(), err)
	}
	return id
}

func (s *suite) containerStatus(t *testing.T, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	resp, err := s.Runtime.ContainerStatus(ctxFor(t), id, false)
	if err != nil {
		t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	if resp.GetStatus() == nil {
		t.Fatalf("ContainerStatus %s: no status", id)
	}
	return resp.GetStatus()
}

// waitExited polls until the container has exited and returns its status.
func (s *suite) waitExited(t *testing.T, id string, within time.Duration) *runtimeapi.ContainerStatus {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := s.containerStatus(t, id)
		if st.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s still %s after %s", id, st.GetState(), within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *suite) testRuntimeStatus(t *testing.T) {
	ctx := ctxFor(t)
	v, err := s.Runtime.Version(ctx)
	if err != nil {
		t.Fatalf("Version: %v", err)
	}
	if v.GetRuntimeName() == "" || v.GetRuntimeVersion() == "" {
		t.Errorf("Version: empty runtime name or version: %+v", v)
	}
	if v.GetRuntimeApiVersion() != "v1" {
		t.Errorf("Version: runtime API version %q, want v1", v.GetRuntimeApiVersion())
	}
	st, err := s.Runtime.Status(ctx, false)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	ready := false
	for _, c := range st.GetStatus().GetConditions() {
		if c.GetType() == runtimeapi.RuntimeReady {
			ready = c.GetStatus()
		}
	}
	if !ready {
		t.Errorf("Status: RuntimeReady is not true: %+v", st.GetStatus())
	}
}

func (s *suite) testSandboxLifecycle(t *testing.T) {
	ctx := ctxFor(t)
	cfg := s.sandboxConfig(t, true)
	id := s.runSandbox(t, cfg)

	list, err := s.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{Id: id})
	if err != nil {
		t.Fatalf("ListPodSandbox: %v", err)
	}
	if len(list) != 1 || list[0].GetId() != id {
		t.Fatalf("ListPodSandbox by id: got %d sandboxes, want exactly %s", len(list), id)
	}
	if got := list[0].GetState(); got != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("listed state %s, want SANDBOX_READY", got)
	}
	if md := list[0].GetMetadata(); md.GetName() != cfg.Metadata.Name || md.GetNamespace() != namespace || md.GetUid() != cfg.Metadata.Uid {
		t.Errorf("listed metadata %+v, want %+v", md, cfg.Metadata)
	}
	if list[0].GetCreatedAt() == 0 {
		t.Error("listed sandbox has no creation time")
	}

	resp, err := s.Runtime.PodSandboxStatus(ctx, id, false)
	if err != nil {
		t.Fatalf("PodSandboxStatus: %v", err)
	}
	st := resp.GetStatus()
	if st.GetId() != id || st.GetState() != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("status id %s state %s, want %s SANDBOX_READY", st.GetId(), st.GetState(), id)
	}
	info, ok := core.SandboxInfoFromLabels(st.GetLabels())
	if !ok || info.PodName != cfg.Metadata.Name || info.PodNamespace != namespace || string(info.PodUID) != cfg.Metadata.Uid {
		t.Errorf("labels do not round-trip: %+v (ok=%v) from %v", info, ok, st.GetLabels())
	}
	if info.Labels["app"] != "conformance" {
		t.Errorf("pod label app lost: %v", info.Labels)
	}
	if st.GetAnnotations()["nodekit.test/annotation"] != "kept" {
		t.Errorf("annotation lost: %v", st.GetAnnotations())
	}
	if got := st.GetLinux().GetNamespaces().GetOptions().GetNetwork(); got != runtimeapi.NamespaceMode_NODE {
		t.Errorf("network namespace mode %s, want NODE", got)
	}

	if _, err := s.Runtime.RunPodSandbox(ctx, cfg, ""); !errors.Is(err, core.ErrAlreadyExists) {
		t.Errorf("second RunPodSandbox with the same name, uid and attempt: %v, want core.ErrAlreadyExists", err)
	}

	if err := s.Runtime.StopPodSandbox(ctx, id); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if err := s.Runtime.StopPodSandbox(ctx, id); err != nil {
		t.Errorf("second StopPodSandbox: %v, want success", err)
	}
	resp, err = s.Runtime.PodSandboxStatus(ctx, id, false)
	if err != nil {
		t.Fatalf("PodSandboxStatus after stop: %v", err)
	}
	if got := resp.GetStatus().GetState(); got != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("state after stop %s, want SANDBOX_NOTREADY", got)
	}
	if err := s.Runtime.RemovePodSandbox(ctx, id); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	if err := s.Runtime.RemovePodSandbox(ctx, id); err != nil {
		t.Errorf("second RemovePodSandbox: %v, want success", err)
	}
	if _, err := s.Runtime.PodSandboxStatus(ctx, id, false); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("PodSandboxStatus of removed sandbox: %v, want core.ErrNotFound", err)
	}
	list, err = s.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{Id: id})
	if err != nil || len(list) != 0 {
		t.Errorf("ListPodSandbox after remove: %d sandboxes, err %v; want none", len(list), err)
	}
}

func (s *suite) testPodNetworkSandbox(t *testing.T) {
	cfg := s.sandboxConfig(t, false)
	id := s.runSandbox(t, cfg)
	resp, err := s.Runtime.PodSandboxStatus(ctxFor(t), id, false)
	if err != nil {
		t.Fatalf("PodSandboxStatus: %v", err)
	}
	if resp.GetStatus().GetNetwork().GetIp() == "" {
		t.Errorf("pod-network sandbox has no IP: %+v", resp.GetStatus().GetNetwork())
	}
	if got := resp.GetStatus().GetLinux().GetNamespaces().GetOptions().GetNetwork(); got != runtimeapi.NamespaceMode_POD {
		t.Errorf("network namespace mode %s, want POD", got)
	}
}

func (s *suite) testContainerLifecycle(t *testing.T) {
	ctx := ctxFor(t)
	sb := s.sandboxConfig(t, true)
	sbID := s.runSandbox(t, sb)
	cfg := s.containerConfig(sb, "main", "sleep", "3600")

	id, err := s.Runtime.CreateContainer(ctx, sbID, cfg, sb)
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	st := s.containerStatus(t, id)
	if st.GetState() != runtimeapi.ContainerState_CONTAINER_CREATED {
		t.Errorf("state after create %s, want CONTAINER_CREATED", st.GetState())
	}
	if st.GetCreatedAt() == 0 {
		t.Error("created container has no creation time")
	}
	if _, err := s.Runtime.CreateContainer(ctx, sbID, cfg, sb); !errors.Is(err, core.ErrAlreadyExists) {
		t.Errorf("second CreateContainer with the same name and attempt: %v, want core.ErrAlreadyExists", err)
	}
	if err := s.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	st = s.containerStatus(t, id)
	if st.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("state after start %s, want CONTAINER_RUNNING", st.GetState())
	}
	if st.GetStartedAt() == 0 {
		t.Error("running container has no start time")
	}
	if st.GetMetadata().GetName() != "main" {
		t.Errorf("metadata name %q, want main", st.GetMetadata().GetName())
	}
	if st.GetImage().GetImage() == "" || st.GetImageRef() == "" {
		t.Errorf("status lacks image (%q) or image ref (%q)", st.GetImage().GetImage(), st.GetImageRef())
	}
	info, ok, err := core.ContainerInfoFromLabels(st.GetLabels(), st.GetAnnotations())
	if err != nil || !ok {
		t.Fatalf("ContainerInfoFromLabels: ok=%v err=%v", ok, err)
	}
	if info.ContainerName != "main" || info.PodName != sb.Metadata.Name || string(info.PodUID) != sb.Metadata.Uid ||
		info.Hash != 0x1f2e3d4c || info.TerminationMessagePath != "/dev/termination-log" {
		t.Errorf("labels do not round-trip: %+v", info)
	}

	list, err := s.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: sbID})
	if err != nil {
		t.Fatalf("ListContainers: %v", err)
	}
	if len(list) != 1 || list[0].GetId() != id || list[0].GetPodSandboxId() != sbID {
		t.Fatalf("ListContainers by sandbox: %d containers, want exactly %s", len(list), id)
	}
	if list[0].GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING || list[0].GetLabels()[core.LabelContainerName] != "main" {
		t.Errorf("listed container %+v", list[0])
	}

	if err := s.Runtime.StopContainer(ctx, id, 0); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	st = s.containerStatus(t, id)
	if st.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("state after stop %s, want CONTAINER_EXITED", st.GetState())
	}
	if st.GetFinishedAt() < st.GetStartedAt() {
		t.Errorf("finished at %d before started at %d", st.GetFinishedAt(), st.GetStartedAt())
	}
	if err := s.Runtime.StopContainer(ctx, id, 0); err != nil {
		t.Errorf("StopContainer of an exited container: %v, want success", err)
	}
	if err := s.Runtime.RemoveContainer(ctx, id); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
	if _, err := s.Runtime.ContainerStatus(ctx, id, false); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("ContainerStatus of removed container: %v, want core.ErrNotFound", err)
	}
	if err := s.Runtime.RemoveContainer(ctx, id); err != nil {
		t.Errorf("second RemoveContainer: %v, want success", err)
	}
}

func (s *suite) testListFilters(t *testing.T) {
	ctx := ctxFor(t)
	sb := s.sandboxConfig(t, true)
	sbID := s.runSandbox(t, sb)
	running := s.startContainer(t, sbID, sb, s.containerConfig(sb, "running", "sleep", "3600"))
	created, err := s.Runtime.CreateContainer(ctx, sbID, s.containerConfig(sb, "created", "sleep", "3600"), sb)
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}

	ids := func(f *runtimeapi.ContainerFilter) []string {
		t.Helper()
		list, err := s.Runtime.ListContainers(ctx, f)
		if err != nil {
			t.Fatalf("ListContainers(%v): %v", f, err)
		}
		var out []string
		for _, c := range list {
			if c.GetPodSandboxId() == sbID {
				out = append(out, c.GetId())
			}
		}
		return out
	}
	check := func(what string, got []string, want ...string) {
		t.Helper()
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: got %v, want %v", what, got, want)
		}
	}
	check("by id", ids(&runtimeapi.ContainerFilter{Id: running}), running)
	check("by state running", ids(&runtimeapi.ContainerFilter{PodSandboxId: sbID, State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}), running)
	check("by state created", ids(&runtimeapi.ContainerFilter{PodSandboxId: sbID, State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_CREATED}}), created)
	check("by label", ids(&runtimeapi.ContainerFilter{LabelSelector: map[string]string{core.LabelPodUID: sb.Metadata.Uid, core.LabelContainerName: "created"}}), created)
	if all := ids(nil); len(all) != 2 {
		t.Errorf("unfiltered: %d containers of the sandbox, want 2", len(all))
	}

	list, err := s.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"run": s.run, core.LabelPodUID: sb.Metadata.Uid}})
	if err != nil || len(list) != 1 || list[0].GetId() != sbID {
		t.Errorf("ListPodSandbox by label: %d sandboxes (err %v), want exactly %s", len(list), err, sbID)
	}
	list, err = s.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{Id: sbID, State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}})
	if err != nil || len(list) != 0 {
		t.Errorf("ListPodSandbox of a ready sandbox filtered by NOTREADY: %d sandboxes (err %v), want none", len(list), err)
	}
}

func (s *suite) testExitCodes(t *testing.T) {
	sb := s.sandboxConfig(t, true)
	sbID := s.runSandbox(t, sb)
	for _, tc := range []struct {
		code   int32
		reason string
	}{{0, "Completed"}, {3, "Error"}, {127, "Error"}} {
		name := fmt.Sprintf("exit%d", tc.code)
		id := s.startContainer(t, sbID, sb, s.containerConfig(sb, name, "sh", "-c", fmt.Sprintf("exit %d", tc.code)))
		st := s.waitExited(t, id, 30*time.Second)
		if st.GetExitCode() != tc.code {
			t.Errorf("%s: exit code %d, want %d", name, st.GetExitCode(), tc.code)
		}
		if st.GetReason() != tc.reason {
			t.Errorf("%s: reason %q, want %q", name, st.GetReason(), tc.reason)
		}
		// A process that exits at once may be seen to finish a little
		// before its start was recorded (containerd does this), so only
		// the presence of both times is checked.
		if st.GetFinishedAt() == 0 || st.GetStartedAt() == 0 {
			t.Errorf("%s: started %d finished %d, want both set", name, st.GetStartedAt(), st.GetFinishedAt())
		}
	}
}

func (s *suite) testStopGrace(t *testing.T) {
	sb := s.sandboxConfig(t, true)
	sbID := s.runSandbox(t, sb)
	ctx := ctxFor(t)

	// A process that handles SIGTERM ends on it, well before the grace
	// period runs out.
	graceful := s.startContainer(t, sbID, sb, s.containerConfig(sb, "graceful",
		"sh", "-c", "trap 'exit 0' TERM; touch /tmp/trapped; while true; do sleep 0.1; done"))
	// Stop it only once the shell has installed its trap.
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := s.Runtime.ExecSync(ctx, graceful, []string{"test", "-f", "/tmp/trapped"}, 10*time.Second)
		if err == nil && res.ExitCode == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shell did not install its trap within 30 s (last exec: %v, %v)", res, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	if err := s.Runtime.StopContainer(ctx, graceful, 30); err != nil {
		t.Fatalf("StopContainer(graceful): %v", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("a container that exits on SIGTERM took %s to stop with a 30 s grace period", took)
	}
	if st := s.containerStatus(t, graceful); st.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED || st.GetExitCode() != 0 {
		t.Errorf("graceful: state %s exit code %d, want EXITED 0", st.GetState(), st.GetExitCode())
	}

	// PID 1 without a handler ignores SIGTERM: it runs until the grace
	// period ends, then is killed.
	const grace = 2
	stubborn := s.startContainer(t, sbID, sb, s.containerConfig(sb, "stubborn", "sleep", "3600"))
	start = time.Now()
	if err := s.Runtime.StopContainer(ctx, stubborn, grace); err != nil {
		t.Fatalf("StopContainer(stubborn): %v", err)
	}
	if took := time.Since(start); took < grace*time.Second*9/10 {
		t.Errorf("a container that ignores SIGTERM was stopped after %s, before its %d s grace period", took, grace)
	}
	if st := s.containerStatus(t, stubborn); st.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED || st.GetExitCode() != 137 {
		t.Errorf("stubborn: state %s exit code %d, want EXITED 137", st.GetState(), st.GetExitCode())
	}
}

func (s *suite) testStopSandboxStopsContainers(t *testing.T) {
	sb := s.sandboxConfig(t, true)
	sbID := s.runSandbox(t, sb)
	id := s.startContainer(t, sbID, sb, s.containerConfig(sb, "main", "sleep", "3600"))
	if err := s.Runtime.StopPodSandbox(ctxFor(t), sbID); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if st := s.containerStatus(t, id); st.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("container state after its sandbox stopped: %s, want CONTAINER_EXITED", st.GetState())
	}
}

func (s *suite) testRemoveSandboxRemovesContainers(t *testing.T) {
	ctx := ctxFor(t)
	sb := s.sandboxConfig(t, true)
	sbID := s.runSandbox(t, sb)
	id := s.startContainer(t, sbID, sb, s.containerConfig(sb, "main", "sleep", "3600"))
	if err := s.Runtime.StopPodSandbox(ctx, sbID); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if err := s.Runtime.RemovePodSandbox(ctx, sbID); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	if _, err := s.Runtime.ContainerStatus(ctx, id, false); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("ContainerStatus of a container whose sandbox was removed: %v, want core.ErrNotFound", err)
	}
}

func (s *suite) testExecSync(t *testing.T) {
	ctx := ctxFor(t)
	sb := s.sandboxConfig(t, true)
	sbID := s.runSandbox(t, sb)
	id := s.startContainer(t, sbID, sb, s.containerConfig(sb, "main", "sleep", "3600"))

	res, err := s.Runtime.ExecSync(ctx, id, []string{"echo", "hello"}, 10*time.Second)
	if err != nil {
		t.Fatalf("ExecSync echo: %v", err)
	}
	if string(res.Stdout) != "hello\n" || res.ExitCode != 0 {
		t.Errorf("ExecSync echo: stdout %q exit %d, want \"hello\\n\" 0", res.Stdout, res.ExitCode)
	}
	res, err = s.Runtime.ExecSync(ctx, id, []string{"sh", "-c", "echo oops >&2; exit 7"}, 10*time.Second)
	if err != nil {
		t.Fatalf("ExecSync exit 7: %v (a non-zero exit is a result, not an error)", err)
	}
	if res.ExitCode != 7 || !bytes.Contains(res.Stderr, []byte("oops")) {
		t.Errorf("ExecSync exit 7: exit %d stderr %q", res.ExitCode, res.Stderr)
	}
	if _, err := s.Runtime.ExecSync(ctx, id, []string{"sleep", "30"}, 1500*time.Millisecond); !errors.Is(err, core.ErrTimeout) {
		t.Errorf("ExecSync of a command that outlives its timeout: %v, want core.ErrTimeout", err)
	}
	if _, err := s.Runtime.ExecSync(ctx, "0000000000000000000000000000000000000000000000000000000000000000", []string{"true"}, time.Second); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("ExecSync in an unknown container: %v, want core.ErrNotFound", err)
	}
	if err := s.Runtime.StopContainer(ctx, id, 0); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	if _, err := s.Runtime.ExecSync(ctx, id, []string{"true"}, time.Second); err == nil {
		t.Error("ExecSync in an exited container succeeded, want an error")
	}
}

func (s *suite) testResourceLimits(t *testing.T) {
	if s.Cgroup == nil {
		t.Skip("the target cannot read cgroups")
	}
	ctx := ctxFor(t)
	sb := s.sandboxConfig(t, true)
	sbID := s.runSandbox(t, sb)
	cfg := s.containerConfig(sb, "limited", "sleep", "3600")
	cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{
		CpuShares:          512,
		CpuPeriod:          100000,
		CpuQuota:           50000,
		MemoryLimitInBytes: 64 << 20,
	}
	id := s.startContainer(t, sbID, sb, cfg)
	cg, err := s.Cgroup(ctx, id)
	if err != nil {
		t.Fatalf("read cgroup: %v", err)
	}
	if want := expect(cg, 64<<20, 512, 50000, 100000); cg != want {
		t.Errorf("cgroup %+v, want %+v", cg, want)
	}

	update := &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{
		CpuShares: 1024, CpuPeriod: 100000, CpuQuota: 200000, MemoryLimitInBytes: 128 << 20,
	}}
	if err := s.Runtime.UpdateContainerResources(ctx, id, update); err != nil {
		t.Fatalf("UpdateContainerResources: %v", err)
	}
	cg, err = s.Cgroup(ctx, id)
	if err != nil {
		t.Fatalf("read cgroup after update: %v", err)
	}
	if want := expect(cg, 128<<20, 1024, 200000, 100000); cg != want {
		t.Errorf("cgroup after update %+v, want %+v", cg, want)
	}
}

func (s *suite) testStats(t *testing.T) {
	ctx := ctxFor(t)
	sb := s.sandboxConfig(t, true)
	sbID := s.runSandbox(t, sb)
	id := s.startContainer(t, sbID, sb, s.containerConfig(sb, "main", "sleep", "3600"))
	stats, err := s.Runtime.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{Id: id})
	if err != nil {
		t.Fatalf("ListContainerStats: %v", err)
	}
	if len(stats) != 1 || stats[0].GetAttributes().GetId() != id {
		t.Fatalf("ListContainerStats by id: %d entries, want exactly %s", len(stats), id)
	}
	if stats[0].GetMemory() == nil || stats[0].GetCpu() == nil {
		t.Errorf("container stats lack memory or CPU: %+v", stats[0])
	}
	if stats[0].GetAttributes().GetMetadata().GetName() != "main" {
		t.Errorf("container stats name %q, want main", stats[0].GetAttributes().GetMetadata().GetName())
	}
	if ws := stats[0].GetMemory().GetWorkingSetBytes(); ws == nil {
		t.Error("container stats lack the memory working set")
	}
	sbStats, err := s.Runtime.ListPodSandboxStats(ctx, &runtimeapi.PodSandboxStatsFilter{Id: sbID})
	if err != nil {
		t.Fatalf("ListPodSandboxStats: %v", err)
	}
	if len(sbStats) != 1 || sbStats[0].GetAttributes().GetId() != sbID {
		t.Fatalf("ListPodSandboxStats by id: %d entries, want exactly %s", len(sbStats), sbID)
	}
	if md := sbStats[0].GetAttributes().GetMetadata(); md.GetUid() != sb.Metadata.Uid {
		t.Errorf("sandbox stats metadata %+v, want uid %s", md, sb.Metadata.Uid)
	}
}

func (s *suite) testImages(t *testing.T) {
	ctx := ctxFor(t)
	images, err := s.Runtime.ListImages(ctx, nil)
	if err != nil {
		t.Fatalf("ListImages: %v", err)
	}
	status, err := s.Runtime.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: s.Image}, false)
	if err != nil || status.GetImage() == nil {
		t.Fatalf("ImageStatus(%s): %+v, %v", s.Image, status.GetImage(), err)
	}
	found := false
	for _, img := range images {
		if img.GetId() == status.GetImage().GetId() {
			found = true
			if img.GetSize() == 0 {
				t.Errorf("image %s has size 0", s.Image)
			}
		}
	}
	if !found {
		t.Errorf("ListImages does not list %s (id %s)", s.Image, status.GetImage().GetId())
	}
	fs, err := s.Runtime.ImageFsInfo(ctx)
	if err != nil {
		t.Fatalf("ImageFsInfo: %v", err)
	}
	if len(fs.GetImageFilesystems()) == 0 || fs.GetImageFilesystems()[0].GetUsedBytes() == nil {
		t.Errorf("ImageFsInfo reports no image filesystem usage: %+v", fs)
	}
}

func (s *suite) testUnknownIDs(t *testing.T) {
	ctx := ctxFor(t)
	const unknown = "4e6f6b69744e6f6b69744e6f6b69744e6f6b69744e6f6b69744e6f6b69740000"
	if _, err := s.Runtime.ContainerStatus(ctx, unknown, false); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("ContainerStatus: %v, want core.ErrNotFound", err)
	}
	if _, err := s.Runtime.PodSandboxStatus(ctx, unknown, false); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("PodSandboxStatus: %v, want core.ErrNotFound", err)
	}
	if err := s.Runtime.StartContainer(ctx, unknown); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("StartContainer: %v, want core.ErrNotFound", err)
	}
	if err := s.Runtime.StopContainer(ctx, unknown, 0); err != nil && !errors.Is(err, core.ErrNotFound) {
		t.Errorf("StopContainer: %v, want success or core.ErrNotFound", err)
	}
	if err := s.Runtime.RemoveContainer(ctx, unknown); err != nil {
		t.Errorf("RemoveContainer: %v, want success (removal is idempotent)", err)
	}
	if err := s.Runtime.StopPodSandbox(ctx, unknown); err != nil && !errors.Is(err, core.ErrNotFound) {
		t.Errorf("StopPodSandbox: %v, want success or core.ErrNotFound", err)
	}
	if err := s.Runtime.RemovePodSandbox(ctx, unknown); err != nil {
		t.Errorf("RemovePodSandbox: %v, want success (removal is idempotent)", err)
	}
	sb := s.sandboxConfig(t, true)
	if _, err := s.Runtime.CreateContainer(ctx, unknown, s.containerConfig(sb, "main", "true"), sb); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("CreateContainer in an unknown sandbox: %v, want core.ErrNotFound", err)
	}
}

func (s *suite) testUnknownImage(t *testing.T) {
	ctx := ctxFor(t)
	sb := s.sandboxConfig(t, true)
	sbID := s.runSandbox(t, sb)
	cfg := s.containerConfig(sb, "ghost", "true")
	cfg.Image.Image = "localhost/nodekit-does-not-exist:v0"
	_, err := s.Runtime.CreateContainer(ctx, sbID, cfg, sb)
	if !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("CreateContainer with an unknown image: %v, want core.ErrNotFound", err)
	}
	for _, part := range []string{"ghost", sb.Metadata.Name, "nodekit-does-not-exist"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not name %q", err, part)
		}
	}
	resp, err := s.Runtime.ImageStatus(ctx, cfg.Image, false)
	if err != nil {
		t.Fatalf("ImageStatus of an unknown image: %v, want no error", err)
	}
	if resp.GetImage() != nil {
		t.Errorf("ImageStatus of an unknown image: %+v, want none", resp.GetImage())
	}
	resp, err = s.Runtime.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: s.Image}, false)
	if err != nil || resp.GetImage() == nil {
		t.Errorf("ImageStatus of %s: %+v, %v; want the image", s.Image, resp.GetImage(), err)
	}
}

func (s *suite) testEvents(t *testing.T) {
	es, ok := s.Runtime.(core.EventStreamer)
	if !ok {
		t.Skip("the runtime does not implement core.EventStreamer")
	}
	ctx, cancel := context.WithCancel(ctxFor(t))
	defer cancel()
	ch := make(chan *runtimeapi.ContainerEventResponse, 64)
	connected := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- es.GetContainerEvents(ctx, ch, func() { close(connected) })
	}()
	if !s.Events {
		select {
		case err := <-done:
			if !errors.Is(err, core.ErrUnimplemented) {
				t.Errorf("GetContainerEvents on a runtime without events: %v, want core.ErrUnimplemented", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("GetContainerEvents on a runtime without events did not return")
		}
		return
	}
	select {
	case <-connected:
	case err := <-done:
		t.Fatalf("GetContainerEvents: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("event stream not connected after 30 s")
	}

	sb := s.sandboxConfig(t, true)
	sbID := s.runSandbox(t, sb)
	id := s.startContainer(t, sbID, sb, s.containerConfig(sb, "main", "sleep", "3600"))
	if err := s.Runtime.StopContainer(ctx, id, 0); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	if err := s.Runtime.RemoveContainer(ctx, id); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
	want := []runtimeapi.ContainerEventType{
		runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT,
		runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT,
		runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT,
		runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT,
	}
	var got []runtimeapi.ContainerEventType
	timeout := time.After(30 * time.Second)
	for len(got) < len(want) {
		select {
		case ev := <-ch:
			if ev.GetContainerId() != id {
				continue
			}
			got = append(got, ev.GetContainerEventType())
			if ev.GetCreatedAt() == 0 {
				t.Errorf("event %s has no time", ev.GetContainerEventType())
			}
			if ev.GetContainerEventType() != runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT &&
				ev.GetPodSandboxStatus().GetId() != sbID {
				t.Errorf("event %s carries sandbox %q, want %s", ev.GetContainerEventType(), ev.GetPodSandboxStatus().GetId(), sbID)
			}
		case err := <-done:
			t.Fatalf("event stream ended after %v: %v", got, err)
		case <-timeout:
			t.Fatalf("events after 30 s: %v, want %v", got, want)
		}
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("events %v, want %v", got, want)
			break
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Error("GetContainerEvents did not return after its context ended")
	}
}
