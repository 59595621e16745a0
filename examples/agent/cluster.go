package main

import (
	"context"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/examples/node"
	"github.com/nodekit/nodekit/kubeapi"
)

// cluster is the agent's side of a cluster: the apiserver's pods, mirror
// pods, pod statuses, the Node, its lease, events, ConfigMaps and Secrets.
type cluster struct {
	a        *agent
	client   kubernetes.Interface
	pods     *kubeapi.PodSource
	mirrors  *kubeapi.Mirrors
	recorder *kubeapi.EventRecorder
	objects  *kubeapi.Objects
	lease    *kubeapi.NodeLease
	status   *kubeapi.NodeStatus
	n        *node.Node
}

// newCluster connects to the apiserver and sets the parts of the node's
// configuration that come from it.
func newCluster(_ context.Context, a *agent, nc *node.Config) (*cluster, error) {
	cs, _, err := kubeapi.NewClient(kubeapi.ClientConfig{Kubeconfig: a.o.kubeconfig})
	if err != nil {
		return nil, err
	}
	c := &cluster{a: a, client: cs}
	log := a.log.Named("apiserver")
	if c.recorder, err = kubeapi.NewEventRecorder(kubeapi.EventRecorderConfig{Client: cs, NodeName: a.name, Logger: log}); err != nil {
		return nil, err
	}
	if c.objects, err = kubeapi.NewObjects(kubeapi.ObjectsConfig{Client: cs, Logger: log}); err != nil {
		return nil, err
	}
	writer, err := kubeapi.NewStatusWriter(kubeapi.StatusWriterConfig{Client: cs, Logger: log.Named("status")})
	if err != nil {
		return nil, err
	}
	if c.pods, err = kubeapi.NewPodSource(kubeapi.PodSourceConfig{Client: cs, NodeName: a.name, Logger: log.Named("pods")}); err != nil {
		return nil, err
	}
	if c.mirrors, err = kubeapi.NewMirrors(kubeapi.MirrorsConfig{Client: cs, NodeName: a.name, Logger: log.Named("mirrors")}); err != nil {
		return nil, err
	}
	if c.lease, err = kubeapi.NewNodeLease(kubeapi.NodeLeaseConfig{Client: cs, NodeName: a.name,
		DurationSeconds: a.cfg.NodeLeaseDurationSeconds, Logger: log.Named("lease")}); err != nil {
		return nil, err
	}
	tokens, err := kubeapi.NewTokens(kubeapi.TokensConfig{Client: cs})
	if err != nil {
		return nil, err
	}
	nc.ConfigMaps, nc.Secrets, nc.Tokens, nc.StatusSink, nc.Recorder = c.objects, c.objects, tokens, writer, c.recorder
	return c, nil
}

// wire finishes what needs the node: its health and pressure for the
// Node's status.
func (c *cluster) wire(n *node.Node) error {
	c.n = n
	cfg := c.a.cfg
	var taints []v1.Taint
	taints = append(taints, cfg.RegisterWithTaints...)
	sc := kubeapi.NodeStatusConfig{Client: c.client, NodeName: c.a.name, Taints: taints, ControllerManagedAttachDetach: true,
		Machine: machine{c.a}, Runtime: c.a.runtime, Addresses: addresses{c.a}, Images: c.a.runtime,
		HealthChecks: []kubeapi.HealthCheck{{Name: "PLEG", Check: n.PLEG.Healthy}},
		MaxPods:      int64(cfg.MaxPods), SystemReserved: toResourceList(cfg.SystemReserved), KubeReserved: toResourceList(cfg.KubeReserved),
		EvictionHard: cfg.EvictionHard, KubeletVersion: "v1.37.2-nodekit", UpdateFrequency: cfg.NodeStatusUpdateFrequency.Duration,
		ReportFrequency: cfg.NodeStatusReportFrequency.Duration, Recorder: c.recorder, Logger: c.a.log.Named("node-status")}
	if *cfg.EnableServer {
		sc.KubeletPort = cfg.Port
	}
	if n.Evictions != nil {
		sc.Pressure = n.Evictions
	}
	var err error
	c.status, err = kubeapi.NewNodeStatus(sc)
	return err
}

// staticPods are the node's pods from files and URLs, whose mirror pods
// the apiserver gets.
func (c *cluster) staticPods() []*v1.Pod {
	var out []*v1.Pod
	for _, p := range c.n.Loop.Pods() {
		if src := p.Annotations[core.AnnotationConfigSource]; src != "" && src != core.SourceAPI {
			out = append(out, p)
		}
	}
	return out
}

func (c *cluster) runners() []runner {
	return []runner{
		{"events", c.recorder.Run},
		{"objects", c.objects.Run},
		{"node status", c.status.Run},
		{"node lease", c.lease.Run},
		{"apiserver pods", func(ctx context.Context) error { return c.pods.Run(ctx, c.a.merger) }},
		{"mirror pods", func(ctx context.Context) error { return c.mirrors.Run(ctx, nil, c.staticPods, c.pods.MirrorPods) }},
	}
}

// machine reports this machine to the Node's status.
type machine struct{ a *agent }

func (m machine) MachineInfo(context.Context) (kubeapi.MachineInfo, error) {
	capacity := m.a.local.Status.Capacity.DeepCopy()
	delete(capacity, v1.ResourcePods)
	var st unix.Statfs_t
	if err := unix.Statfs(m.a.rootDir, &st); err == nil {
		capacity[v1.ResourceEphemeralStorage] = *resource.NewQuantity(int64(st.Blocks)*int64(st.Bsize), resource.BinarySI)
	}
	info := kubeapi.MachineInfo{Capacity: capacity, MachineID: readTrim("/etc/machine-id"),
		SystemUUID: readTrim("/sys/class/dmi/id/product_uuid"), BootID: readTrim("/proc/sys/kernel/random/boot_id")}
	var uts syscall.Utsname
	if err := syscall.Uname(&uts); err == nil {
		info.KernelVersion = charsToString(uts.Release[:])
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				info.OSImage = strings.Trim(v, `"`)
			}
		}
	}
	return info, nil
}

// addresses are the node's InternalIP and Hostname.
type addresses struct{ a *agent }

func (ad addresses) NodeAddresses(context.Context) ([]v1.NodeAddress, error) {
	var out []v1.NodeAddress
	for _, ip := range hostIPs() {
		out = append(out, v1.NodeAddress{Type: v1.NodeInternalIP, Address: ip})
	}
	return append(out, v1.NodeAddress{Type: v1.NodeHostName, Address: ad.a.name}), nil
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func charsToString(cs []int8) string {
	b := make([]byte, 0, len(cs))
	for _, c := range cs {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}
