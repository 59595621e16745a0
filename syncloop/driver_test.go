package syncloop

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
	"github.com/nodekit/nodekit/runtimetest"
)

const testImage = "localhost/busybox:latest"

// simRuntime is a simulated runtime holding testImage, on the real clock
// (virtual inside a synctest bubble).
func simRuntime(t *testing.T) *runtimetest.Runtime {
	t.Helper()
	rt, err := runtimetest.New(runtimetest.Config{Images: []string{testImage}})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// runRaw starts the pod's containers directly, as a previous sync would
// have, and returns the pod's status.
func runRaw(t *testing.T, rt *runtimetest.Runtime, pod *v1.Pod) *core.PodStatus {
	t.Helper()
	ctx := context.Background()
	tr, err := crispec.New(crispec.Config{})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := tr.SandboxConfig(pod, 0, crispec.SandboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sbID, err := rt.RunPodSandbox(ctx, sb, "")
	if err != nil {
		t.Fatal(err)
	}
	var cs []*v1.Container
	for i := range pod.Spec.InitContainers {
		cs = append(cs, &pod.Spec.InitContainers[i])
	}
	for i := range pod.Spec.Containers {
		cs = append(cs, &pod.Spec.Containers[i])
	}
	status := &core.PodStatus{UID: pod.UID}
	for _, c := range cs {
		cfg, err := tr.ContainerConfig(pod, c, crispec.ContainerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		id, err := rt.CreateContainer(ctx, sbID, cfg, sb)
		if err != nil {
			t.Fatal(err)
		}
		if err := rt.StartContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		st, err := rt.ContainerStatus(ctx, id, false)
		if err != nil {
			t.Fatal(err)
		}
		status.ContainerStatuses = append(status.ContainerStatuses, st.GetStatus())
	}
	sst, err := rt.PodSandboxStatus(ctx, sbID, false)
	if err != nil {
		t.Fatal(err)
	}
	status.SandboxStatuses = []*runtimeapi.PodSandboxStatus{sst.GetStatus()}
	return status
}

// Regular containers get the grace period, sidecars stop after them, and
// the sandbox last.
func TestDriverTerminatesInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := simRuntime(t)
		always := v1.ContainerRestartPolicyAlways
		trap := []string{"sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"}
		pod := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-web"},
			Spec: v1.PodSpec{
				HostNetwork:    true,
				InitContainers: []v1.Container{{Name: "proxy", Image: testImage, Command: trap, RestartPolicy: &always}},
				Containers: []v1.Container{
					{Name: "stubborn", Image: testImage, Command: []string{"sleep", "3600"}},
					{Name: "polite", Image: testImage, Command: trap},
				},
			},
		}
		status := runRaw(t, rt, pod)
		d, err := NewDriver(DriverConfig{Runtime: rt})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := d.SyncTerminatingPod(context.Background(), pod, status, 10); err != nil {
			t.Fatalf("SyncTerminatingPod: %v", err)
		}
		// The stubborn container ignores SIGTERM and is killed when the
		// 10 s run out; the sidecar then gets the minimum and leaves at
		// once on SIGTERM.
		if took := time.Since(start); took < 10*time.Second || took > 12*time.Second {
			t.Errorf("termination took %s of virtual time, want the 10 s grace period", took)
		}
		finished := map[string]*runtimeapi.ContainerStatus{}
		for _, cs := range status.ContainerStatuses {
			resp, err := rt.ContainerStatus(context.Background(), cs.GetId(), false)
			if err != nil {
				t.Fatal(err)
			}
			finished[cs.GetMetadata().GetName()] = resp.GetStatus()
		}
		for name, code := range map[string]int32{"stubborn": 137, "polite": 0, "proxy": 0} {
			if st := finished[name]; st.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED || st.GetExitCode() != code {
				t.Errorf("%s: %s exit %d, want exited %d", name, st.GetState(), st.GetExitCode(), code)
			}
		}
		if finished["proxy"].GetFinishedAt() < finished["stubborn"].GetFinishedAt() {
			t.Error("the sidecar stopped before the regular containers")
		}
		sb, err := rt.PodSandboxStatus(context.Background(), status.SandboxStatuses[0].GetId(), false)
		if err != nil || sb.GetStatus().GetState() != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
			t.Errorf("sandbox after termination: %v, %v", sb.GetStatus().GetState(), err)
		}
		after := &core.PodStatus{UID: pod.UID}
		for _, st := range finished {
			after.ContainerStatuses = append(after.ContainerStatuses, st)
		}
		if err := d.SyncTerminatedPod(context.Background(), pod, after); err != nil {
			t.Errorf("SyncTerminatedPod after termination: %v", err)
		}
		if err := d.SyncTerminatedPod(context.Background(), pod, status); err == nil {
			t.Error("SyncTerminatedPod accepted a status with running containers")
		}
	})
}
