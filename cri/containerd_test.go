package cri_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/cri"
	"github.com/nodekit/nodekit/crispec"
	"github.com/nodekit/nodekit/internal/testenv"
	"github.com/nodekit/nodekit/runtimetest/conformance"
)

func connect(t *testing.T, cd *testenv.Containerd) *cri.Runtime {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rt, err := cri.New(ctx, cri.Config{Endpoint: cd.Endpoint(), Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatalf("cri.New(%s): %v", cd.Endpoint(), err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

// cgroupOf reads a running container's limits from the host's cgroupfs,
// through the PID the runtime reports in its verbose status.
func cgroupOf(rt core.ContainerStatuser) func(ctx context.Context, id string) (conformance.Cgroup, error) {
	return func(ctx context.Context, id string) (conformance.Cgroup, error) {
		resp, err := rt.ContainerStatus(ctx, id, true)
		if err != nil {
			return conformance.Cgroup{}, err
		}
		var info struct {
			Pid int `json:"pid"`
		}
		if err := json.Unmarshal([]byte(resp.GetInfo()["info"]), &info); err != nil || info.Pid == 0 {
			return conformance.Cgroup{}, fmt.Errorf("container %s: no pid in verbose status (%v)", id, err)
		}
		return testenv.CgroupLimits(info.Pid)
	}
}

func TestConformance(t *testing.T) {
	for _, v := range testenv.Versions {
		t.Run("containerd-"+string(v), func(t *testing.T) {
			t.Parallel()
			cd := testenv.StartContainerd(t, testenv.Options{Version: v})
			rt := connect(t, cd)
			conformance.Run(t, conformance.Target{
				Runtime:      rt,
				Image:        testenv.BusyboxImage,
				Cgroup:       cgroupOf(rt),
				Events:       v != testenv.Containerd16,
				CgroupParent: cd.CgroupParent,
			})
		})
	}
}

func webPod() *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "0c6e3c41-2f0b-4a8e-9d8e-5a1d7f3b9e01", Labels: map[string]string{"app": "web"}},
		Spec: v1.PodSpec{
			HostNetwork: true,
			Containers: []v1.Container{{
				Name:            "server",
				Image:           testenv.BusyboxImage,
				ImagePullPolicy: v1.PullNever,
				Command:         []string{"sleep", "3600"},
				Resources: v1.ResourceRequirements{
					Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("250m"), v1.ResourceMemory: resource.MustParse("64Mi")},
					Limits:   v1.ResourceList{v1.ResourceCPU: resource.MustParse("250m"), v1.ResourceMemory: resource.MustParse("64Mi")},
				},
				TerminationMessagePath:   "/dev/termination-log",
				TerminationMessagePolicy: v1.TerminationMessageReadFile,
			}},
		},
	}
}

// runPod translates pod and runs its sandbox and first container through
// the adapter, the way an agent does.
func runPod(t *testing.T, rt *cri.Runtime, cd *testenv.Containerd, pod *v1.Pod) (sandboxID string, sbCfg *runtimeapi.PodSandboxConfig, containerID string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tr, err := crispec.New(crispec.Config{PodLogsRoot: t.TempDir(), MemoryCapacity: 8 << 30})
	if err != nil {
		t.Fatalf("crispec.New: %v", err)
	}
	sbCfg, err = tr.SandboxConfig(pod, 0, crispec.SandboxOptions{CgroupParent: cd.CgroupParent})
	if err != nil {
		return "", nil, "", err
	}
	if err := os.MkdirAll(sbCfg.LogDirectory, 0o755); err != nil {
		t.Fatal(err)
	}
	sandboxID, err = rt.RunPodSandbox(ctx, sbCfg, "")
	if err != nil {
		return "", nil, "", err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = rt.StopPodSandbox(ctx, sandboxID)
		if err := rt.RemovePodSandbox(ctx, sandboxID); err != nil {
			t.Errorf("remove sandbox: %v", err)
		}
	})
	c := &pod.Spec.Containers[0]
	cfg, err := tr.ContainerConfig(pod, c, crispec.ContainerOptions{})
	if err != nil {
		return sandboxID, sbCfg, "", err
	}
	containerID, err = rt.CreateContainer(ctx, sandboxID, cfg, sbCfg)
	if err != nil {
		return sandboxID, sbCfg, "", err
	}
	return sandboxID, sbCfg, containerID, rt.StartContainer(ctx, containerID)
}

func crictl(t *testing.T, cd *testenv.Containerd, args ...string) []byte {
	t.Helper()
	bin := testenv.CrictlPath()
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("crictl not found at %s: run hack/testenv.sh install", bin)
	}
	args = append([]string{"--runtime-endpoint", cd.Endpoint(), "--image-endpoint", cd.Endpoint(), "--timeout", "30s"}, args...)
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("crictl %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
		}
		t.Fatalf("crictl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// A pod run through crispec and the adapter looks to crictl like a pod the
// kubelet made, and its limits are in the container's cgroup.
func TestPodVisibleToCrictl(t *testing.T) {
	for _, v := range testenv.Versions {
		t.Run("containerd-"+string(v), func(t *testing.T) {
			t.Parallel()
			cd := testenv.StartContainerd(t, testenv.Options{Version: v})
			rt := connect(t, cd)
			pod := webPod()
			sandboxID, _, containerID, err := runPod(t, rt, cd, pod)
			if err != nil {
				t.Fatalf("run pod: %v", err)
			}

			var pods struct {
				Items []struct {
					ID       string `json:"id"`
					State    string `json:"state"`
					Metadata struct{ Name, Namespace, UID string }
					Labels   map[string]string `json:"labels"`
				} `json:"items"`
			}
			if err := json.Unmarshal(crictl(t, cd, "pods", "--name", "web", "--namespace", "shop", "-o", "json"), &pods); err != nil {
				t.Fatalf("crictl pods output: %v", err)
			}
			if len(pods.Items) != 1 {
				t.Fatalf("crictl pods --name web --namespace shop: %d pods, want 1", len(pods.Items))
			}
			p := pods.Items[0]
			if p.ID != sandboxID || p.Metadata.Name != "web" || p.Metadata.Namespace != "shop" || p.Metadata.UID != string(pod.UID) || p.State != "SANDBOX_READY" {
				t.Errorf("crictl pods: %+v", p)
			}
			if p.Labels[core.LabelPodName] != "web" || p.Labels["app"] != "web" {
				t.Errorf("crictl pods labels: %v", p.Labels)
			}

			var ps struct {
				Containers []struct {
					ID           string `json:"id"`
					PodSandboxID string `json:"podSandboxId"`
					State        string `json:"state"`
					Metadata     struct{ Name string }
					Labels       map[string]string `json:"labels"`
					Annotations  map[string]string `json:"annotations"`
				} `json:"containers"`
			}
			if err := json.Unmarshal(crictl(t, cd, "ps", "--pod", sandboxID, "-o", "json"), &ps); err != nil {
				t.Fatalf("crictl ps output: %v", err)
			}
			if len(ps.Containers) != 1 {
				t.Fatalf("crictl ps --pod %s: %d containers, want 1", sandboxID, len(ps.Containers))
			}
			c := ps.Containers[0]
			if c.ID != containerID || c.Metadata.Name != "server" || c.State != "CONTAINER_RUNNING" {
				t.Errorf("crictl ps: %+v", c)
			}
			if c.Labels[core.LabelContainerName] != "server" || c.Labels[core.LabelPodNamespace] != "shop" {
				t.Errorf("crictl ps labels: %v", c.Labels)
			}
			wantHash := fmt.Sprintf("%x", crispec.ContainerHash(&pod.Spec.Containers[0]))
			if c.Annotations[core.AnnotationContainerHash] != wantHash {
				t.Errorf("container hash annotation %q, want %q", c.Annotations[core.AnnotationContainerHash], wantHash)
			}

			cg, err := cgroupOf(rt)(context.Background(), containerID)
			if err != nil {
				t.Fatalf("read cgroup: %v", err)
			}
			// 250m CPU: 256 shares, 25 ms of every 100 ms; 64 MiB of memory.
			want := conformance.Cgroup{MemoryLimitBytes: 64 << 20, CPUShares: 256, CPUQuota: 25000, CPUPeriod: 100000}
			if cg != want {
				t.Errorf("container cgroup %+v, want %+v", cg, want)
			}
			if !strings.HasPrefix(filepath.Clean(cd.CgroupParent), "/") {
				t.Errorf("cgroup parent %q is not absolute", cd.CgroupParent)
			}
		})
	}
}

// Bad input fails with an error that names the pod, the container and the
// cause, and leaves nothing half-made behind.
func TestBadInputErrors(t *testing.T) {
	cd := testenv.StartContainerd(t, testenv.Options{Version: testenv.Containerd16})
	rt := connect(t, cd)

	unknownImage := webPod()
	unknownImage.Name, unknownImage.UID = "ghost", "9a0e4b7c-1111-4c2d-8e3f-000000000001"
	unknownImage.Spec.Containers[0].Image = "localhost/no-such-image:v1"
	_, _, _, err := runPod(t, rt, cd, unknownImage)
	if !errors.Is(err, core.ErrNotFound) {
		t.Errorf("unknown image: %v, want core.ErrNotFound", err)
	}
	for _, part := range []string{"shop/ghost", `"server"`, "localhost/no-such-image:v1", "not found"} {
		if err == nil || !strings.Contains(err.Error(), part) {
			t.Errorf("unknown image error %v does not name %s", err, part)
		}
	}

	badField := webPod()
	badField.Name, badField.UID = "odd", "9a0e4b7c-1111-4c2d-8e3f-000000000002"
	badField.Spec.Containers[0].Env = []v1.EnvVar{{Name: "X", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "spec.bogus"}}}}
	_, _, _, err = runPod(t, rt, cd, badField)
	if !errors.Is(err, core.ErrInvalid) {
		t.Errorf("unsupported fieldRef: %v, want core.ErrInvalid", err)
	}
	for _, part := range []string{"shop/odd", "server", "spec.bogus"} {
		if err == nil || !strings.Contains(err.Error(), part) {
			t.Errorf("unsupported fieldRef error %v does not name %s", err, part)
		}
	}

	ctx := context.Background()
	list, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{core.LabelPodNamespace: "shop"}})
	if err != nil || len(list) != 0 {
		t.Errorf("containers left after failed creations: %d (err %v)", len(list), err)
	}

	// A command the image lacks fails at start; the error names the pod
	// and the container, and is not mistaken for an unknown container.
	badCmd := webPod()
	badCmd.Name, badCmd.UID = "badcmd", "9a0e4b7c-1111-4c2d-8e3f-000000000003"
	badCmd.Spec.Containers[0].Command = []string{"/no/such/program"}
	_, _, _, err = runPod(t, rt, cd, badCmd)
	if err == nil || errors.Is(err, core.ErrNotFound) {
		t.Errorf("start of a missing program: %v, want an error that is not core.ErrNotFound", err)
	}
	for _, part := range []string{"shop/badcmd", `"server"`, "/no/such/program"} {
		if err == nil || !strings.Contains(err.Error(), part) {
			t.Errorf("start error %v does not name %s", err, part)
		}
	}
}
