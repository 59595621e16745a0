package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/cri"
)

// maxPods is the most pods one measurement takes: names have three digits.
const maxPods = 1000

// gracePeriod of the benchmark's pods. Their containers exit at once on
// SIGTERM, so it only bounds a stop that goes wrong.
const gracePeriod = 2

// runAnnotation carries a nonce per run, so that the same manifest written
// again is a new pod to the agent (static pod UIDs hash the manifest).
const runAnnotation = "nodebench.nodekit.io/run"

// podName is the name of the i-th pod and of its container. Agents add
// "-<node name>" to static pods' names; the container keeps this one, which
// is how the benchmark finds each pod in the runtime.
func podName(i int) string { return fmt.Sprintf("nb-%03d", i) }

var nameRE = regexp.MustCompile(`^nb-([0-9]{3})(-|$)`)

// podIndex is the i of a pod or container name podName(i) made, with or
// without the node-name suffix.
func podIndex(name string) (int, bool) {
	m := nameRE.FindStringSubmatch(name)
	if m == nil {
		return 0, false
	}
	i, err := strconv.Atoi(m[1])
	return i, err == nil
}

// manifestFile is the file name of the i-th pod's manifest.
func manifestFile(i int) string { return podName(i) + ".json" }

var manifestRE = regexp.MustCompile(`^nb-[0-9]{3}\.json$`)

// benchPod is the i-th pod: host network, one container of image that
// sleeps until SIGTERM, tiny requests so that a hundred fit on two CPUs.
func benchPod(namespace, image, nonce string, i int) *v1.Pod {
	return &v1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        podName(i),
			Namespace:   namespace,
			Labels:      map[string]string{"app": "nodebench"},
			Annotations: map[string]string{runAnnotation: nonce},
		},
		Spec: v1.PodSpec{
			HostNetwork:                   true,
			RestartPolicy:                 v1.RestartPolicyAlways,
			DNSPolicy:                     v1.DNSDefault,
			TerminationGracePeriodSeconds: ptr.To[int64](gracePeriod),
			Containers: []v1.Container{{
				Name:            podName(i),
				Image:           image,
				ImagePullPolicy: v1.PullNever,
				// wait returns at once on the trapped signal; sleep alone
				// would hold SIGTERM until it ends.
				Command:                  []string{"sh", "-c", "trap 'exit 0' TERM; sleep 86400 & wait"},
				TerminationMessagePath:   v1.TerminationMessagePathDefault,
				TerminationMessagePolicy: v1.TerminationMessageReadFile,
				Resources: v1.ResourceRequirements{Requests: v1.ResourceList{
					v1.ResourceCPU:    resource.MustParse("5m"),
					v1.ResourceMemory: resource.MustParse("8Mi"),
				}},
			}},
		},
	}
}

// newNonce returns a random hex string.
func newNonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// stageManifests writes the manifests of pods 0..n-1 into a fresh hidden
// directory next to dir (agents ignore dot files; the same file system, so
// that a rename moves a manifest into dir in one step) and returns it.
func stageManifests(dir, namespace, image string, n int) (string, error) {
	stage, err := os.MkdirTemp(filepath.Dir(filepath.Clean(dir)), ".nodebench-")
	if err != nil {
		return "", err
	}
	nonce := newNonce()
	for i := range n {
		data, err := json.MarshalIndent(benchPod(namespace, image, nonce, i), "", "  ")
		if err != nil {
			os.RemoveAll(stage)
			return "", err
		}
		if err := os.WriteFile(filepath.Join(stage, manifestFile(i)), append(data, '\n'), 0o644); err != nil {
			os.RemoveAll(stage)
			return "", err
		}
	}
	return stage, nil
}

// publish moves the staged manifests of pods 0..n-1 into dir.
func publish(stage, dir string, n int) error {
	for i := range n {
		if err := os.Rename(filepath.Join(stage, manifestFile(i)), filepath.Join(dir, manifestFile(i))); err != nil {
			return err
		}
	}
	return nil
}

// benchManifests lists the manifests in dir that nodebench wrote.
func benchManifests(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if !e.IsDir() && manifestRE.MatchString(e.Name()) {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	return files, nil
}

// bench is a connection to the runtime and the settings of the
// measurement.
type bench struct {
	globals
	rt      *cri.Runtime
	runtime string // "containerd v2.4.2"
}

func newBench(ctx context.Context, g globals) (*bench, error) {
	rt, err := cri.New(ctx, cri.Config{Endpoint: g.endpoint})
	if err != nil {
		return nil, err
	}
	v, err := rt.Version(ctx)
	if err != nil {
		rt.Close()
		return nil, err
	}
	return &bench{globals: g, rt: rt, runtime: v.GetRuntimeName() + " " + v.GetRuntimeVersion()}, nil
}

func (b *bench) close() { b.rt.Close() }

// pods is what the runtime runs of one namespace's benchmark pods, by pod
// index.
type pods struct {
	running map[int]*runtimeapi.Container // the running container
	ready   map[int]bool                  // a sandbox is ready
}

// list lists the running containers and ready sandboxes of namespace.
// Without sandboxes, only containers are listed (one call instead of two).
func (b *bench) list(ctx context.Context, namespace string, sandboxes bool) (pods, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sel := map[string]string{core.LabelPodNamespace: namespace}
	cs, err := b.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{
		State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
		LabelSelector: sel,
	})
	if err != nil {
		return pods{}, err
	}
	p := pods{running: map[int]*runtimeapi.Container{}, ready: map[int]bool{}}
	for _, c := range cs {
		if i, ok := podIndex(c.GetLabels()[core.LabelContainerName]); ok {
			p.running[i] = c
		}
	}
	if !sandboxes {
		return p, nil
	}
	sbs, err := b.rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{
		State:         &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
		LabelSelector: sel,
	})
	if err != nil {
		return pods{}, err
	}
	for _, sb := range sbs {
		if i, ok := podIndex(sb.GetMetadata().GetName()); ok {
			p.ready[i] = true
		}
	}
	return p, nil
}

// indices returns the pod indices that have a running container or a
// ready sandbox.
func (p pods) indices() map[int]bool {
	all := map[int]bool{}
	for i := range p.running {
		all[i] = true
	}
	for i := range p.ready {
		all[i] = true
	}
	return all
}
