package statusmgr

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
	"github.com/nodekit/nodekit/runtimetest"
)

// statusOf reads a pod's runtime status as the PLEG does.
func statusOf(ctx context.Context, t *testing.T, rt core.Runtime, uid string) *core.PodStatus {
	t.Helper()
	st, err := runtimetest.PodStatus(ctx, rt, types.UID(uid))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// Containers that crispec translated and the simulated runtime ran: their
// labels and annotations carry what the status needs (names, restart
// counts, termination message path and policy), and the runtime's reasons
// and images come through.
func TestGenerateFromSimulatedRuntime(t *testing.T) {
	ctx := context.Background()
	clk := clocktesting.NewFakeClock(t0)
	rt, err := runtimetest.New(runtimetest.Config{Clock: clk, Images: []string{"busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := crispec.New(crispec.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pod := newPod(v1.PodSpec{Containers: []v1.Container{
		{Name: "web", Image: "busybox", TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: v1.TerminationMessageReadFile},
		{Name: "job", Image: "busybox", Args: []string{"sh", "-c", "exit 3"}, TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: v1.TerminationMessageFallbackToLogsOnError},
		{Name: "report", Image: "busybox", Args: []string{"sh", "-c", "exit 0"}, TerminationMessagePath: "/tmp/result", TerminationMessagePolicy: v1.TerminationMessageReadFile},
	}})
	dir := t.TempDir()
	sbCfg, err := tr.SandboxConfig(pod, 0, crispec.SandboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sbCfg.LogDirectory = filepath.Join(dir, "logs")
	sbID, err := rt.RunPodSandbox(ctx, sbCfg, "")
	if err != nil {
		t.Fatal(err)
	}
	sbStatus, err := rt.PodSandboxStatus(ctx, sbID, false)
	if err != nil {
		t.Fatal(err)
	}
	ips := core.SandboxIPs(sbStatus.GetStatus())
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		msgFile := filepath.Join(dir, c.Name+"-termination-log")
		if err := os.WriteFile(msgFile, nil, 0o666); err != nil {
			t.Fatal(err)
		}
		cfg, err := tr.ContainerConfig(pod, c, crispec.ContainerOptions{PodIPs: ips, TerminationMessageHostPath: msgFile})
		if err != nil {
			t.Fatal(err)
		}
		clk.Step(time.Second)
		id, err := rt.CreateContainer(ctx, sbID, cfg, sbCfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := rt.StartContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// What the processes left: the report's file, the job's log.
	if err := os.WriteFile(filepath.Join(dir, "report-termination-log"), []byte("42 rows"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(sbCfg.LogDirectory, "job"), 0o755); err != nil {
		t.Fatal(err)
	}
	log := "2026-03-04T05:06:09.000000000Z stderr F cannot connect to db\n"
	if err := os.WriteFile(filepath.Join(sbCfg.LogDirectory, "job", "0.log"), []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	clk.Step(time.Second)

	status := statusOf(ctx, t, rt, string(pod.UID))
	got := Generate(Input{
		Pod:         pod,
		Runtime:     status,
		RuntimeName: "containerd",
		TerminationMessage: func(cs *runtimeapi.ContainerStatus) string {
			return ReadTerminationMessage(ctx, cs)
		},
		HostIPs: []string{"192.168.0.5"},
		Now:     clk.Now(),
	})

	if got.Phase != v1.PodRunning || got.PodIP != ips[0] || condition(got, v1.PodReadyToStartContainers).Status != v1.ConditionTrue {
		t.Errorf("phase %s, pod IP %q (sandbox %v), PodReadyToStartContainers %+v", got.Phase, got.PodIP, ips, condition(got, v1.PodReadyToStartContainers))
	}
	web := containerStatus(got, "web")
	if web.State.Running == nil || !web.Ready || web.Image != "docker.io/library/busybox:latest" ||
		!strings.HasPrefix(web.ImageID, "docker.io/library/busybox@sha256:") || !strings.HasPrefix(web.ContainerID, "containerd://") {
		t.Errorf("web: %+v", web)
	}
	job := containerStatus(got, "job").State.Terminated
	if job == nil || job.ExitCode != 3 || job.Reason != "Error" || job.Message != "cannot connect to db\n" {
		t.Errorf("job: %+v", containerStatus(got, "job").State)
	}
	report := containerStatus(got, "report").State.Terminated
	if report == nil || report.ExitCode != 0 || report.Reason != "Completed" || report.Message != "42 rows" {
		t.Errorf("report: %+v", containerStatus(got, "report").State)
	}

	// The job restarts: its second instance counts one restart and shows
	// the first one's exit as its last state.
	job0 := containerStatus(got, "job").ContainerID
	cfg, err := tr.ContainerConfig(pod, &pod.Spec.Containers[1], crispec.ContainerOptions{RestartCount: 1, PodIPs: ips})
	if err != nil {
		t.Fatal(err)
	}
	clk.Step(10 * time.Second)
	id, err := rt.CreateContainer(ctx, sbID, cfg, sbCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	clk.Step(time.Second)
	next := Generate(Input{Pod: pod, Previous: &got, Runtime: statusOf(ctx, t, rt, string(pod.UID)), Now: clk.Now(),
		Waiting: []Waiting{{Name: "job", Reason: "CrashLoopBackOff", Message: "back-off 10s restarting failed container=job pod=web_default(uid-1)"}}})
	j := containerStatus(next, "job")
	if j.RestartCount != 1 || j.State.Waiting == nil || j.State.Waiting.Reason != "CrashLoopBackOff" ||
		j.LastTerminationState.Terminated == nil || j.LastTerminationState.Terminated.ContainerID == job0 || j.LastTerminationState.Terminated.ExitCode != 3 {
		t.Errorf("job restarted: %+v", j)
	}
}
