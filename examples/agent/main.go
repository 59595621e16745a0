// Command agent is nodekit's example node agent. Today it runs one pod
// through the runtime port the way the agent's pod workers will: translate
// the pod with crispec, run its sandbox and containers, show them as crictl
// would, then stop and remove them. The sync loop, PLEG and status manager
// that turn this into a long-running agent are not built yet.
//
// With no flags it runs a built-in pod on the simulated runtime and needs
// no setup:
//
//	go run ./examples/agent
//
// Against a real runtime, with a pod manifest of your own:
//
//	go run ./examples/agent -runtime-endpoint unix:///run/containerd/containerd.sock -manifest pod.yaml
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"k8s.io/utils/ptr"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/cri"
	"github.com/nodekit/nodekit/crispec"
	"github.com/nodekit/nodekit/runtimetest"
)

const simulatedImage = "localhost/busybox:latest"

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	endpoint := fs.String("runtime-endpoint", "", "CRI socket of a real runtime (default: the built-in simulated runtime)")
	manifest := fs.String("manifest", "", "pod manifest, YAML or JSON (default: a built-in pod)")
	logsRoot := fs.String("pod-logs-root", "", "directory for pod logs (default: a temporary directory)")
	hold := fs.Duration("hold", 2*time.Second, "how long the pod runs before it is stopped")
	verbose := fs.Bool("v", false, "log what the runtime adapter does")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := zap.NewNop()
	if *verbose {
		l, err := zap.NewDevelopment()
		if err != nil {
			return err
		}
		logger = l
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	pod, err := loadPod(*manifest)
	if err != nil {
		return err
	}
	rt, closeRT, err := openRuntime(ctx, *endpoint, logger)
	if err != nil {
		return err
	}
	defer closeRT()
	if *logsRoot == "" {
		dir, err := os.MkdirTemp("", "nodekit-pod-logs-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		*logsRoot = dir
	}
	tr, err := crispec.New(crispec.Config{PodLogsRoot: *logsRoot, MemoryCapacity: 8 << 30})
	if err != nil {
		return err
	}
	return runPod(ctx, out, rt, tr, pod, *hold)
}

func openRuntime(ctx context.Context, endpoint string, logger *zap.Logger) (core.Runtime, func(), error) {
	if endpoint == "" {
		rt, err := runtimetest.New(runtimetest.Config{Images: []string{simulatedImage}, Logger: logger})
		return rt, func() {}, err
	}
	rt, err := cri.New(ctx, cri.Config{Endpoint: endpoint, Logger: logger})
	if err != nil {
		return nil, nil, err
	}
	return rt, func() { rt.Close() }, nil
}

func loadPod(path string) (*v1.Pod, error) {
	if path == "" {
		return defaultPod(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pod := &v1.Pod{}
	if err := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096).Decode(pod); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	if pod.Kind != "Pod" {
		return nil, fmt.Errorf("manifest %s: kind %q, want Pod", path, pod.Kind)
	}
	if pod.Namespace == "" {
		pod.Namespace = metav1.NamespaceDefault
	}
	if pod.UID == "" {
		// As for static pods, the UID follows from the manifest's content.
		sum := sha256.Sum256(data)
		pod.UID = types.UID(fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16]))
	}
	return pod, nil
}

func defaultPod() *v1.Pod {
	return &v1.Pod{
		TypeMeta:   metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: metav1.NamespaceDefault, UID: "6e6f6465-6b69-7400-0000-68656c6c6f00", Labels: map[string]string{"app": "hello"}},
		Spec: v1.PodSpec{
			HostNetwork:                   true,
			TerminationGracePeriodSeconds: ptr.To[int64](5),
			Containers: []v1.Container{{
				Name:            "hello",
				Image:           simulatedImage,
				ImagePullPolicy: v1.PullNever,
				Command:         []string{"sh", "-c", "trap 'exit 0' TERM; echo hello from $(POD_NAME); while true; do sleep 0.2; done"},
				Env: []v1.EnvVar{{Name: "POD_NAME", ValueFrom: &v1.EnvVarSource{
					FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"},
				}}},
				Resources: v1.ResourceRequirements{
					Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("100m"), v1.ResourceMemory: resource.MustParse("32Mi")},
					Limits:   v1.ResourceList{v1.ResourceCPU: resource.MustParse("500m"), v1.ResourceMemory: resource.MustParse("64Mi")},
				},
			}},
		},
	}
}

// runPod does once what a pod worker does for a new pod and for its
// deletion.
func runPod(ctx context.Context, out io.Writer, rt core.Runtime, tr *crispec.Translator, pod *v1.Pod, hold time.Duration) error {
	sbCfg, err := tr.SandboxConfig(pod, 0, crispec.SandboxOptions{})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(sbCfg.LogDirectory, 0o755); err != nil {
		return err
	}
	sandboxID, err := rt.RunPodSandbox(ctx, sbCfg, "")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "pod %s/%s: sandbox %s\n", pod.Namespace, pod.Name, short(sandboxID))
	defer func() {
		// Take the pod down even when interrupted.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := rt.StopPodSandbox(ctx, sandboxID); err != nil {
			fmt.Fprintln(out, "stop sandbox:", err)
		}
		if err := rt.RemovePodSandbox(ctx, sandboxID); err != nil {
			fmt.Fprintln(out, "remove sandbox:", err)
		}
		fmt.Fprintf(out, "pod %s/%s: sandbox removed\n", pod.Namespace, pod.Name)
	}()
	var podIPs []string
	if st, err := rt.PodSandboxStatus(ctx, sandboxID, false); err == nil && st.GetStatus().GetNetwork().GetIp() != "" {
		podIPs = append(podIPs, st.GetStatus().GetNetwork().GetIp())
	}

	var ids []string
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		imageRef, err := ensureImage(ctx, rt, pod, c, sbCfg)
		if err != nil {
			return err
		}
		cfg, err := tr.ContainerConfig(pod, c, crispec.ContainerOptions{PodIPs: podIPs, ImageRef: imageRef})
		if err != nil {
			return err
		}
		id, err := rt.CreateContainer(ctx, sandboxID, cfg, sbCfg)
		if err != nil {
			return err
		}
		if err := rt.StartContainer(ctx, id); err != nil {
			return err
		}
		r := cfg.GetLinux().GetResources()
		fmt.Fprintf(out, "container %q: %s, cpu shares %d, quota %d/%d, memory limit %d\n",
			c.Name, strings.Join(cfg.GetCommand(), " "), r.GetCpuShares(), r.GetCpuQuota(), r.GetCpuPeriod(), r.GetMemoryLimitInBytes())
		ids = append(ids, id)
	}
	if err := printContainers(ctx, out, rt, sandboxID); err != nil {
		return err
	}

	select {
	case <-ctx.Done():
	case <-time.After(hold):
	}
	grace := int64(v1.DefaultTerminationGracePeriodSeconds)
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = *pod.Spec.TerminationGracePeriodSeconds
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), time.Duration(grace+10)*time.Second)
	defer cancel()
	for _, id := range ids {
		if err := rt.StopContainer(stopCtx, id, grace); err != nil && !errors.Is(err, core.ErrNotFound) {
			return err
		}
	}
	return printContainers(stopCtx, out, rt, sandboxID)
}

// ensureImage makes sure the container's image is present, pulling it
// unless the pull policy forbids it, and returns its reference.
func ensureImage(ctx context.Context, rt core.Runtime, pod *v1.Pod, c *v1.Container, sbCfg *runtimeapi.PodSandboxConfig) (string, error) {
	spec := &runtimeapi.ImageSpec{Image: c.Image, UserSpecifiedImage: c.Image}
	st, err := rt.ImageStatus(ctx, spec, false)
	if err != nil {
		return "", err
	}
	if img := st.GetImage(); img != nil && c.ImagePullPolicy != v1.PullAlways {
		return img.GetId(), nil
	}
	if c.ImagePullPolicy == v1.PullNever {
		return "", fmt.Errorf("pod %s/%s container %q: image %q is not present and imagePullPolicy is Never", pod.Namespace, pod.Name, c.Name, c.Image)
	}
	return rt.PullImage(ctx, spec, nil, sbCfg)
}

func printContainers(ctx context.Context, out io.Writer, rt core.Runtime, sandboxID string) error {
	list, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: sandboxID})
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CONTAINER\tNAME\tSTATE\tEXIT\tATTEMPT\tPOD\tNAMESPACE")
	for _, c := range list {
		exit := "-"
		if c.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			st, err := rt.ContainerStatus(ctx, c.GetId(), false)
			if err != nil {
				return err
			}
			exit = fmt.Sprintf("%d (%s)", st.GetStatus().GetExitCode(), st.GetStatus().GetReason())
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", short(c.GetId()), c.GetMetadata().GetName(),
			strings.TrimPrefix(c.GetState().String(), "CONTAINER_"), exit, c.GetMetadata().GetAttempt(),
			c.GetLabels()[core.LabelPodName], c.GetLabels()[core.LabelPodNamespace])
	}
	return w.Flush()
}

func short(id string) string {
	if len(id) > 13 {
		return id[:13]
	}
	return id
}
