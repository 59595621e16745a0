// Command agent is nodekit's example node agent, on the wiring of
// examples/node: the sync loop admits pods and gives each a worker that
// drives the runtime toward the spec, the PLEG's events wake the workers,
// and every pod's status is kept. By default it runs one pod, removes it
// after a while and lets it terminate gracefully; with -manifest-dir it
// runs a directory's static pods until interrupted. Volumes, eviction and
// the CPU manager join as they are built.
//
// With no flags it runs a built-in pod on the simulated runtime and needs
// no setup:
//
//	go run ./examples/agent
//
// Against a real runtime, with a pod manifest of your own:
//
//	go run ./examples/agent -runtime-endpoint unix:///run/containerd/containerd.sock -manifest pod.yaml
//
// Static pods of a directory, followed until interrupted:
//
//	go run ./examples/agent -runtime-endpoint unix:///run/containerd/containerd.sock -manifest-dir /etc/kubernetes/manifests
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
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
	"github.com/nodekit/nodekit/examples/node"
	"github.com/nodekit/nodekit/runtimetest"
	"github.com/nodekit/nodekit/staticpod"
	"github.com/nodekit/nodekit/syncloop"
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
	verbose := fs.Bool("v", false, "log what the PLEG, the pod workers, the driver and the runtime do")
	podsAddr := fs.String("pods-addr", "", "with -manifest-dir: serve the pods and their statuses as JSON at http://ADDR/pods, as the kubelet's /pods (e.g. 127.0.0.1:10255)")
	manifestDir := fs.String("manifest-dir", "", "run the static pods of this directory (or file) until interrupted, following its changes, instead of one pod")
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

	if *logsRoot == "" {
		dir, err := os.MkdirTemp("", "nodekit-pod-logs-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		*logsRoot = dir
	}
	if *manifestDir != "" {
		rt, closeRT, err := openRuntime(ctx, *endpoint, logger)
		if err != nil {
			return err
		}
		defer closeRT()
		return runStatic(ctx, out, rt, *manifestDir, *logsRoot, *podsAddr, logger)
	}
	pod, err := loadPod(*manifest)
	if err != nil {
		return err
	}
	rt, closeRT, err := openRuntime(ctx, *endpoint, logger)
	if err != nil {
		return err
	}
	defer closeRT()
	tr, err := crispec.New(crispec.Config{PodLogsRoot: *logsRoot, MemoryCapacity: 8 << 30})
	if err != nil {
		return err
	}
	return runPod(ctx, out, rt, tr, *logsRoot, pod, *hold, logger)
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

// runPod runs the pod the way the agent runs every pod: the PLEG watches
// the runtime, the pod's worker drives it toward the spec through the
// driver, and every PLEG event for the pod wakes its worker. After hold,
// the pod is killed and terminates gracefully.
func runPod(ctx context.Context, out io.Writer, rt core.Runtime, tr *crispec.Translator, logsRoot string, pod *v1.Pod, hold time.Duration, logger *zap.Logger) error {
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		cfg, err := tr.ContainerConfig(pod, c, crispec.ContainerOptions{})
		if err != nil {
			return err
		}
		r := cfg.GetLinux().GetResources()
		fmt.Fprintf(out, "container %q: %s, cpu shares %d, quota %d/%d, memory limit %d\n",
			c.Name, strings.Join(cfg.GetCommand(), " "), r.GetCpuShares(), r.GetCpuQuota(), r.GetCpuPeriod(), r.GetMemoryLimitInBytes())
	}
	// The pod's worker would retry a missing image forever, as the
	// kubelet does; a command line is better told at once.
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if c.ImagePullPolicy != v1.PullNever {
			continue
		}
		st, err := rt.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: c.Image}, false)
		if err != nil {
			return err
		}
		if st.GetImage() == nil {
			return fmt.Errorf("pod %s/%s container %q: image %q is not present and imagePullPolicy is Never", pod.Namespace, pod.Name, c.Name, c.Image)
		}
	}
	updates := make(chan core.PodUpdate, 1)
	n, err := node.New(node.Config{Runtime: rt, Updates: updates, Translator: tr, PodLogsRoot: logsRoot, HostIPs: []string{"127.0.0.1"}, Logger: logger})
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- n.Run(runCtx) }()
	defer func() {
		stop()
		<-done
		removeSandboxes(out, rt, pod)
	}()

	updates <- core.PodUpdate{Op: core.OpAdd, Pods: []*v1.Pod{pod}, Source: "agent"}
	running := func() bool {
		st, _ := n.PLEG.Cache().Get(pod.UID)
		if st == nil {
			return false
		}
		c := 0
		for _, cs := range st.ContainerStatuses {
			if cs.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
				c++
			}
		}
		return c == len(pod.Spec.Containers)
	}
	if err := waitUntil(ctx, time.Minute, running); err != nil {
		return fmt.Errorf("pod %s/%s: containers not running: %w", pod.Namespace, pod.Name, err)
	}
	if err := printContainers(ctx, out, rt, pod); err != nil {
		return err
	}

	select {
	case <-ctx.Done():
	case <-time.After(hold):
	}
	// The source no longer wants the pod: its worker stops it within its
	// grace period.
	updates <- core.PodUpdate{Op: core.OpRemove, Pods: []*v1.Pod{pod}, Source: "agent"}
	grace := syncloop.EffectiveGracePeriod(0, pod, nil)
	terminated := func() bool { s, ok := n.Workers.State(pod.UID); return !ok || s == syncloop.Terminated }
	if err := waitUntil(context.Background(), time.Duration(grace+30)*time.Second, terminated); err != nil {
		return fmt.Errorf("pod %s/%s: not terminated: %w", pod.Namespace, pod.Name, err)
	}
	return printContainers(context.Background(), out, rt, pod)
}

// runStatic runs the static pods of dir until ctx ends: the file source
// feeds the node, and every container that starts or dies is printed.
// Pods keep running when the agent stops, as with the kubelet.
func runStatic(ctx context.Context, out io.Writer, rt core.Runtime, dir, logsRoot, podsAddr string, logger *zap.Logger) error {
	local, err := node.LocalNode()
	if err != nil {
		return err
	}
	m, err := staticpod.NewMerger(staticpod.MergerConfig{Sources: []string{core.SourceFile}, Logger: logger.Named("merger")})
	if err != nil {
		return err
	}
	files, err := staticpod.NewFileSource(staticpod.FileConfig{Path: dir, NodeName: local.Name, Logger: logger.Named("files")})
	if err != nil {
		return err
	}
	n, err := node.New(node.Config{Runtime: rt, Updates: m.Updates(), SourcesReady: m.AllReady, PodLogsRoot: logsRoot,
		Node: func() (*v1.Node, error) { return local, nil }, HostIPs: []string{"127.0.0.1"}, Logger: logger})
	if err != nil {
		return err
	}
	events := n.PLEG.Watch()
	defer events.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 2)
	go func() { done <- files.Run(ctx, m) }()
	go func() { done <- n.Run(ctx) }()
	if podsAddr != "" {
		lis, err := net.Listen("tcp", podsAddr)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("/pods", n.PodsHandler())
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(lis)
		defer srv.Close()
		fmt.Fprintf(out, "serving the pods API at http://%s/pods\n", lis.Addr())
	}
	fmt.Fprintf(out, "running the static pods of %s on node %s\n", dir, local.Name)
	for {
		select {
		case <-ctx.Done():
			<-done
			<-done
			return nil
		case err := <-done:
			cancel()
			<-done
			return err
		case ev := <-events.Events():
			if ev.Sandbox || (ev.Type != core.ContainerStarted && ev.Type != core.ContainerDied) {
				continue
			}
			st, _ := n.PLEG.Cache().Get(ev.PodUID)
			if st == nil {
				continue
			}
			name := ""
			for _, cs := range st.ContainerStatuses {
				if cs.GetId() == ev.ContainerID {
					name = cs.GetMetadata().GetName()
				}
			}
			{
				fmt.Fprintf(out, "pod %s/%s: container %s %s\n", st.Namespace, st.Name, name, strings.ToLower(strings.TrimPrefix(string(ev.Type), "Container")))
			}
		}
	}
}

// waitUntil polls cond until it holds, ctx ends or limit passes.
func waitUntil(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.After(limit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("gave up after %s", limit)
		case <-tick.C:
		}
	}
	return nil
}

// removeSandboxes takes away what is left of the pod, as the agent's
// garbage collection will.
func removeSandboxes(out io.Writer, rt core.Runtime, pod *v1.Pod) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{core.LabelPodUID: string(pod.UID)}})
	if err != nil {
		fmt.Fprintln(out, "list sandboxes:", err)
		return
	}
	for _, sb := range sbs {
		if err := rt.StopPodSandbox(ctx, sb.GetId()); err != nil {
			fmt.Fprintln(out, "stop sandbox:", err)
		}
		if err := rt.RemovePodSandbox(ctx, sb.GetId()); err != nil {
			fmt.Fprintln(out, "remove sandbox:", err)
		}
	}
	fmt.Fprintf(out, "pod %s/%s: sandbox removed\n", pod.Namespace, pod.Name)
}

func printContainers(ctx context.Context, out io.Writer, rt core.Runtime, pod *v1.Pod) error {
	list, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{core.LabelPodUID: string(pod.UID)}})
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
