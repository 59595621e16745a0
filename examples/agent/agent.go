package main

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/component-helpers/node/util/sysctl"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/cpumanager"
	"github.com/nodekit/nodekit/cri"
	"github.com/nodekit/nodekit/crispec"
	"github.com/nodekit/nodekit/eviction"
	"github.com/nodekit/nodekit/examples/agent/kernel"
	"github.com/nodekit/nodekit/examples/agent/kubeletconfig"
	"github.com/nodekit/nodekit/examples/node"
	"github.com/nodekit/nodekit/imagegc"
	"github.com/nodekit/nodekit/runtimetest"
	"github.com/nodekit/nodekit/staticpod"
)

//go:embed manifests/*.yaml
var demoManifests embed.FS

// simulatedImage is the one image the simulated runtime holds; the bundled
// manifests use it.
const simulatedImage = "localhost/busybox:latest"

// writeDemoManifests copies the bundled manifests into a new temporary
// directory, the demo's staticPodPath.
func writeDemoManifests() (string, error) {
	dir, err := os.MkdirTemp("", "nodekit-manifests-")
	if err != nil {
		return "", err
	}
	entries, err := fs.ReadDir(demoManifests, "manifests")
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		b, err := demoManifests.ReadFile("manifests/" + e.Name())
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// agent is one node agent: the example node's wiring plus its sources,
// servers and, in cluster mode, the apiserver's side.
type agent struct {
	o   *options
	cfg *kubeletconfig.Config
	out io.Writer
	log *zap.Logger

	name       string
	simulated  bool
	runtime    core.Runtime
	closeRT    func()
	registry   *prometheus.Registry
	merger     *staticpod.Merger
	runners    []runner
	node       *node.Node
	local      *v1.Node
	cleanup    []func()
	cluster    *cluster
	servers    *servers
	rootDir    string
	evictAdmit bool
}

// runner is something the agent runs until it stops.
type runner struct {
	name string
	run  func(ctx context.Context) error
}

func newAgent(ctx context.Context, o *options, cfg *kubeletconfig.Config, out io.Writer) (_ *agent, err error) {
	a := &agent{o: o, cfg: cfg, out: out}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	if a.log, err = newLogger(cfg, o.verbose); err != nil {
		return nil, err
	}
	for _, u := range cfg.Unsupported {
		a.log.Warn("configuration field not acted on", zap.String("field", u))
	}
	if cfg.ProtectKernelDefaults {
		if err := kernel.Protect(sysctl.New()); err != nil {
			return nil, err
		}
	}
	a.name = o.hostname
	if a.name == "" {
		if a.name, err = os.Hostname(); err != nil {
			return nil, err
		}
		a.name = strings.ToLower(a.name)
	}

	// The runtime.
	a.simulated = cfg.ContainerRuntimeEndpoint == ""
	if a.simulated {
		fmt.Fprintln(out, "no containerRuntimeEndpoint configured: running on the simulated runtime (nothing really runs)")
		rt, err := runtimetest.New(runtimetest.Config{Images: []string{simulatedImage}, Logger: a.log.Named("sim")})
		if err != nil {
			return nil, err
		}
		a.runtime, a.closeRT = rt, func() {}
	} else {
		rt, err := cri.New(ctx, cri.Config{Endpoint: cfg.ContainerRuntimeEndpoint, RequestTimeout: cfg.RuntimeRequestTimeout.Duration, Logger: a.log.Named("cri")})
		if err != nil {
			return nil, fmt.Errorf("container runtime %s: %w", cfg.ContainerRuntimeEndpoint, err)
		}
		a.runtime, a.closeRT = rt, func() { rt.Close() }
	}

	// Directories: real ones on a real runtime, temporary ones for the
	// simulated runtime unless given.
	a.rootDir = o.rootDir
	logsDir := cfg.PodLogsDir
	if a.simulated {
		if a.rootDir == "" {
			if a.rootDir, err = a.tempDir("nodekit-root-"); err != nil {
				return nil, err
			}
		}
		if !o.set["pod-logs-dir"] && cfg.Source == "the bundled demo.yaml" {
			if logsDir, err = a.tempDir("nodekit-pod-logs-"); err != nil {
				return nil, err
			}
		}
	} else if a.rootDir == "" {
		a.rootDir = "/var/lib/nodekit"
	}
	for _, d := range []string{a.rootDir, logsDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, err
		}
	}

	a.registry = prometheus.NewRegistry()
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// The node object: this machine, less what is reserved.
	if a.local, err = localNode(a.name, cfg); err != nil {
		return nil, err
	}

	// Pod sources: files, a URL and, in cluster mode, the apiserver.
	var sources []string
	if cfg.StaticPodPath != "" {
		sources = append(sources, core.SourceFile)
	}
	if cfg.StaticPodURL != "" {
		sources = append(sources, core.SourceHTTP)
	}
	if o.kubeconfig != "" {
		sources = append(sources, core.SourceAPI)
	}
	if len(sources) == 0 {
		return nil, errors.New("no pod source: set staticPodPath, staticPodURL or --kubeconfig")
	}
	if a.merger, err = staticpod.NewMerger(staticpod.MergerConfig{Sources: sources, Logger: a.log.Named("config")}); err != nil {
		return nil, err
	}
	if cfg.StaticPodPath != "" {
		files, err := staticpod.NewFileSource(staticpod.FileConfig{Path: cfg.StaticPodPath, NodeName: a.name,
			Period: cfg.FileCheckFrequency.Duration, Logger: a.log.Named("file"), Registerer: a.registry})
		if err != nil {
			return nil, err
		}
		a.runners = append(a.runners, runner{"file source", func(ctx context.Context) error { return files.Run(ctx, a.merger) }})
	}
	if cfg.StaticPodURL != "" {
		header := map[string][]string{}
		for k, v := range cfg.StaticPodURLHeader {
			header[k] = v
		}
		web, err := staticpod.NewHTTPSource(staticpod.HTTPConfig{URL: cfg.StaticPodURL, Header: header, NodeName: a.name,
			Period: cfg.HTTPCheckFrequency.Duration, Logger: a.log.Named("http"), Registerer: a.registry})
		if err != nil {
			return nil, err
		}
		a.runners = append(a.runners, runner{"http source", func(ctx context.Context) error { return web.Run(ctx, a.merger) }})
	}

	nc := node.Config{Runtime: a.runtime, Updates: a.merger.Updates(), SourcesReady: a.merger.AllReady,
		Node: func() (*v1.Node, error) { return a.local, nil }, PodLogsRoot: logsDir, HostIPs: hostIPs(),
		VolumeStatsPeriod: cfg.VolumeStatsAggPeriod.Duration, Registerer: a.registry, Logger: a.log}
	mem := a.local.Status.Capacity.Memory().Value()
	if nc.Translator, err = crispec.New(crispec.Config{MemoryCapacity: mem, PodLogsRoot: logsDir, ClusterDomain: cfg.ClusterDomain,
		NodeAllocatable: a.local.Status.Allocatable, NodeIPs: nc.HostIPs, DisableCPUCFSQuota: !*cfg.CPUCFSQuota,
		CPUCFSQuotaPeriod: cfg.CPUCFSQuotaPeriod.Duration}); err != nil {
		return nil, err
	}
	root := os.Geteuid() == 0
	if !a.simulated && root {
		// Volumes need mounts, cgroups need root: on a real node only.
		nc.RootDir = a.rootDir
		if *cfg.CgroupsPerQOS {
			cg, err := cpumanager.NewCgroupManager(cpumanager.CgroupManagerConfig{Root: cgroupRoot(cfg.CgroupRoot),
				NodeAllocatable: nodeAllocatable(a.local, cfg), DisableCPUQuota: !*cfg.CPUCFSQuota,
				CPUCFSQuotaPeriod: cfg.CPUCFSQuotaPeriod.Duration, PodPidsLimit: *cfg.PodPidsLimit,
				Logger: a.log.Named("cgroups"), Registerer: a.registry})
			if err != nil {
				return nil, err
			}
			nc.PodCgroups = cg
		}
	} else if !a.simulated {
		a.log.Warn("not running as root: no volume manager and no pod cgroups")
	}
	if !*cfg.CgroupsPerQOS {
		nc.CgroupParent = cfg.CgroupRoot // every pod's sandbox directly under cgroupRoot
	}
	policy, err := eviction.NewPolicy(eviction.Config{EvictionHard: cfg.EvictionHard, EvictionSoft: cfg.EvictionSoft,
		EvictionSoftGracePeriod: cfg.EvictionSoftGracePeriod, EvictionMinimumReclaim: cfg.EvictionMinimumReclaim,
		MergeDefaultEvictionSettings: *cfg.MergeDefaultEvictionSettings, EvictionPressureTransitionPeriod: cfg.EvictionPressureTransitionPeriod.Duration,
		EvictionMaxPodGracePeriod: cfg.EvictionMaxPodGracePeriod, EnforceNodeAllocatable: cfg.EnforceNodeAllocatable})
	if err != nil {
		return nil, err
	}
	if !a.simulated && root {
		stats, err := eviction.NewStatsProvider(eviction.StatsConfig{ActivePods: a.activePods, Runtime: a.runtime,
			ImageFs: a.runtime, RootDir: a.rootDir, PodLogsDir: logsDir, CgroupRoot: cgroupRoot(cfg.CgroupRoot), Logger: a.log.Named("stats")})
		if err != nil {
			return nil, err
		}
		nc.Eviction, nc.EvictionObserver = policy, stats
		nc.EvictionNotifiers = map[eviction.Signal]*eviction.Notifier{}
		for sig, cgroup := range map[eviction.Signal]string{eviction.SignalMemoryAvailable: "/", eviction.SignalAllocatableMemoryAvailable: stats.AllocatableCgroup()} {
			n, err := eviction.NewMemoryNotifier(eviction.NotifierConfig{Cgroup: cgroup, Logger: a.log.Named("memory-notifier")})
			if err != nil {
				return nil, err
			}
			nc.EvictionNotifiers[sig] = n
		}
	}
	if !a.simulated {
		// Unused images are collected by the kubelet's policy, and reclaimed
		// under imagefs pressure.
		nc.ImageGC = &imagegc.Config{Policy: &imagegc.Policy{
			HighThresholdPercent: int(*cfg.ImageGCHighThresholdPercent), LowThresholdPercent: int(*cfg.ImageGCLowThresholdPercent),
			MinAge: cfg.ImageMinimumGCAge.Duration, MaxAge: cfg.ImageMaximumGCAge.Duration}}
	}

	if nc.CPUManager, err = a.cpuManager(); err != nil {
		return nil, err
	}

	if o.kubeconfig != "" {
		if a.cluster, err = newCluster(ctx, a, &nc); err != nil {
			return nil, err
		}
	}
	if a.node, err = node.New(nc); err != nil {
		return nil, err
	}
	if a.cluster != nil {
		if err := a.cluster.wire(a.node); err != nil {
			return nil, err
		}
	}
	if a.servers, err = newServers(a); err != nil {
		return nil, err
	}
	return a, nil
}

// tempDir makes a temporary directory removed when the agent stops.
func (a *agent) tempDir(prefix string) (string, error) {
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	a.cleanup = append(a.cleanup, func() { os.RemoveAll(d) })
	return d, nil
}

func (a *agent) close() {
	if a.closeRT != nil {
		a.closeRT()
	}
	for i := len(a.cleanup) - 1; i >= 0; i-- {
		a.cleanup[i]()
	}
}

// run runs everything until ctx ends or something fails, then stops
// gracefully: pods keep running, as when a kubelet restarts.
func (a *agent) run(ctx context.Context) error {
	defer a.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runners := append([]runner{{"node", a.node.Run}}, a.runners...)
	if a.cluster != nil {
		runners = append(runners, a.cluster.runners()...)
	}
	runners = append(runners, a.servers.runners()...)
	var wg sync.WaitGroup
	errs := make(chan error, len(runners))
	for _, r := range runners {
		wg.Go(func() {
			if err := r.run(ctx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				errs <- fmt.Errorf("%s: %w", r.name, err)
				cancel()
			}
		})
	}
	mode := "standalone"
	if a.cluster != nil {
		mode = "cluster"
	}
	a.log.Info("node agent started", zap.String("node", a.name), zap.String("mode", mode), zap.Bool("simulatedRuntime", a.simulated),
		zap.String("staticPodPath", a.cfg.StaticPodPath), zap.String("rootDir", a.rootDir))
	fmt.Fprintf(a.out, "node %s running (%s mode); %s\n", a.name, mode, a.servers.describe())
	<-ctx.Done()
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	a.log.Info("node agent stopped; pods keep running")
	return errors.Join(all...)
}

// newLogger builds the agent's logger from logging.format (json or text)
// and verbosity.
func newLogger(cfg *kubeletconfig.Config, verbose bool) (*zap.Logger, error) {
	zc := zap.NewProductionConfig()
	if cfg.Logging.Format == "" || cfg.Logging.Format == "text" {
		zc.Encoding = "console"
		zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	}
	zc.DisableStacktrace = true
	zc.Sampling = nil
	if verbose || cfg.Logging.Verbosity >= 4 {
		zc.Level = zap.NewAtomicLevelAt(zap.DebugLevel)
	}
	zc.OutputPaths, zc.ErrorOutputPaths = []string{"stderr"}, []string{"stderr"}
	return zc.Build()
}

// hostIPs are the node's IPs: its first global unicast IPv4 address, and
// loopback as the fallback.
func hostIPs() []string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
				return []string{n.IP.String()}
			}
		}
	}
	return []string{"127.0.0.1"}
}

// localNode is this machine as a Node, its allocatable less kubeReserved,
// systemReserved and the hard eviction thresholds, as the kubelet computes
// it, and maxPods pods.
func localNode(name string, cfg *kubeletconfig.Config) (*v1.Node, error) {
	n, err := node.LocalNode()
	if err != nil {
		return nil, err
	}
	n.Name = name
	n.Labels[v1.LabelHostname] = name
	pods := resource.NewQuantity(int64(cfg.MaxPods), resource.DecimalSI)
	n.Status.Capacity[v1.ResourcePods] = *pods
	alloc := n.Status.Capacity.DeepCopy()
	kube, system := cfg.Reserved()
	for _, reserved := range []map[string]string{kube, system} {
		for k, v := range reserved {
			q := resource.MustParse(v) // validated
			if have, ok := alloc[v1.ResourceName(k)]; ok {
				have.Sub(q)
				if have.Sign() < 0 {
					have = resource.Quantity{}
				}
				alloc[v1.ResourceName(k)] = have
			}
		}
	}
	if v, ok := cfg.EvictionHard["memory.available"]; ok && !strings.HasSuffix(v, "%") {
		if q, err := resource.ParseQuantity(v); err == nil {
			m := alloc[v1.ResourceMemory]
			m.Sub(q)
			alloc[v1.ResourceMemory] = m
		}
	}
	n.Status.Allocatable = alloc
	return n, nil
}

// nodeAllocatable is what the kubepods cgroup is limited to.
func nodeAllocatable(n *v1.Node, cfg *kubeletconfig.Config) cpumanager.NodeAllocatable {
	na := cpumanager.NodeAllocatable{Capacity: n.Status.Capacity.DeepCopy()}
	delete(na.Capacity, v1.ResourcePods)
	na.DisableEnforcement = !slices.Contains(cfg.EnforceNodeAllocatable, "pods")
	kube, system := cfg.Reserved()
	na.SystemReserved = toResourceList(system)
	na.KubeReserved = toResourceList(kube)
	return na
}

func toResourceList(m map[string]string) v1.ResourceList {
	out := v1.ResourceList{}
	for k, v := range m {
		out[v1.ResourceName(k)] = resource.MustParse(v)
	}
	return out
}

// cgroupRoot is the kubelet's cgroupRoot, "/" when unset.
func cgroupRoot(r string) string {
	if r == "" {
		return "/"
	}
	return r
}

// activePods are the pods the eviction manager may rank: those the node
// admitted (nil until the node exists).
func (a *agent) activePods() []*v1.Pod {
	if a.node == nil {
		return nil
	}
	return a.node.Loop.ActivePods()
}
