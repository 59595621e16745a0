// Package node wires nodekit's subsystems into a node agent: the PLEG
// watches the runtime, the sync loop admits the pods the sources want and
// hands them to one worker each, the driver carries out each worker's plan
// on the runtime with probes and lifecycle hooks, housekeeping kills pods
// no source wants and collects dead containers, and every pod's status is
// generated (statusmgr) and served in the shape of the kubelet's /pods
// (PodsHandler). The example agents run it; tests embed it to run pods on
// a real runtime.
package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/cpumanager"
	"github.com/nodekit/nodekit/crispec"
	"github.com/nodekit/nodekit/eviction"
	"github.com/nodekit/nodekit/imagegc"
	"github.com/nodekit/nodekit/pleg"
	"github.com/nodekit/nodekit/runtimemetrics"
	"github.com/nodekit/nodekit/statusmgr"
	"github.com/nodekit/nodekit/syncloop"
	"github.com/nodekit/nodekit/volumemgr"
)

// DefaultRelistPeriod is the PLEG's relist period without an event stream:
// the containers are listed this often, the sandboxes every second
// (pleg.DefaultSandboxRelistPeriod).
const DefaultRelistPeriod = 250 * time.Millisecond

// DefaultGCPeriod is how often dead containers are collected, as the
// kubelet's ContainerGCPeriod.
const DefaultGCPeriod = time.Minute

// Config configures a Node.
type Config struct {
	// Runtime runs the pods. Required.
	Runtime core.Runtime
	// Updates are the pod sources' changes. Required.
	Updates <-chan core.PodUpdate
	// SourcesReady reports whether every source delivered its pods once.
	// Once it returns true, the updates of those first deliveries must be
	// on Updates already (staticpod.Merger's AllReady waits for a Set in
	// progress). Nil: always.
	SourcesReady func() bool
	// Node returns the node object that admission fits pods to.
	// Default: LocalNode, read once.
	Node func() (*v1.Node, error)
	// PodLogsRoot holds the pods' log directories. Default
	// crispec.DefaultPodLogsRoot; with a Translator of your own, set it to
	// the translator's so that logs of deleted pods are collected.
	PodLogsRoot string
	// GCPolicy of dead containers. Default syncloop.DefaultGCPolicy().
	GCPolicy *syncloop.GCPolicy
	// GCPeriod is how often dead containers are collected. Default
	// DefaultGCPeriod.
	GCPeriod time.Duration
	// Translator turns pods into CRI configs. Default: crispec.New with
	// PodLogsRoot and the memory capacity of Node.
	Translator *crispec.Translator
	// CgroupParent of every pod sandbox. Default: the runtime's.
	CgroupParent string
	// HostIPs are the node's IPs: those of host-network pods.
	HostIPs []string
	// BackOff configures the crash-loop and image-pull back-off.
	BackOff syncloop.BackOffConfig
	// RelistPeriod of the PLEG while it has no event stream (containerd
	// 1.6, or a broken stream). Default DefaultRelistPeriod: a quarter of
	// the kubelet's 1 s, so that a container that dies is found in 0.125 s
	// on average; while nothing changes, the PLEG lists the containers
	// alone between its full relists (every second), one call that costs
	// the agent about 1.2 ms at 100 pods (see BENCHMARKS.md).
	RelistPeriod time.Duration
	// Events selects whether the PLEG follows the runtime's event stream.
	Events pleg.EventMode
	// RootDir, if set, is the agent's root directory (the kubelet's
	// --root-dir): pods' volumes are mounted under RootDir/pods by a
	// volumemgr.Manager before their containers start. Empty: no volume
	// manager; a pod whose containers mount a volume cannot start.
	RootDir string
	// ConfigMaps and Secrets answer configMap and secret volumes (and,
	// with the default Translator, environment variables that name them).
	// volumemgr.Objects is an in-memory one.
	ConfigMaps volumemgr.ConfigMapGetter
	Secrets    volumemgr.SecretGetter
	// Tokens answers the service account tokens of projected volumes
	// (kubeapi.Tokens in a cluster).
	Tokens volumemgr.TokenGetter
	// VolumeResyncPeriod: how often content volumes are written again from
	// their sources; default volumemgr.DefaultResyncPeriod.
	VolumeResyncPeriod time.Duration
	// VolumeStatsPeriod: how often the volumes' usage is measured (the
	// kubelet's volumeStatsAggPeriod); default volumemgr.DefaultStatsPeriod.
	VolumeStatsPeriod time.Duration
	// PodCgroups, if set, keeps the QoS cgroup hierarchy and the pod
	// cgroups (the kubelet's cgroupsPerQOS): each pod's sandbox runs in
	// its pod cgroup, the QoS cgroups follow the active pods, and cgroups
	// of pods gone are removed. CgroupParent is then ignored.
	PodCgroups *cpumanager.CgroupManager
	// CPUManager, if set, pins CPUs as the kubelet's CPU manager does.
	// Give its Allocator (and ReconcilePeriod); the Node fills in Runtime,
	// Pods (the loop's active pods) and SourcesReady, and Clock, Logger and
	// Registerer when unset, then builds the cpumanager.Manager (Node.CPUs)
	// that allocates CPUs at admission (after eviction's handler, before
	// node fit, as the kubelet), gives each container its cpuset at
	// creation and runs the reconcile loop; it is woken whenever pods
	// leave the active set. The Manager's SourcesReady is the loop's
	// (syncloop.Loop.SourcesReady, and the SourcesReady given here if
	// any): it holds, as the kubelet's, only once the loop has handled
	// what the sources sent. Until then no CPUs are taken back, so that
	// after a restart a running pod not yet admitted again keeps its CPUs
	// while the pods before it are admitted.
	CPUManager *cpumanager.ManagerConfig
	// Eviction, if set with an EvictionObserver, runs node-pressure
	// eviction: pods are evicted through their workers (status Failed,
	// reason Evicted), new pods are refused under pressure.
	Eviction         *eviction.Policy
	EvictionObserver eviction.Observer
	// EvictionWake wakes the eviction manager at once (a memory threshold
	// notifier).
	EvictionWake <-chan struct{}
	// EvictionNotifiers watch memory thresholds between rounds (see
	// eviction.ManagerConfig.Notifiers).
	EvictionNotifiers map[eviction.Signal]*eviction.Notifier
	// EvictionInterval: default eviction.DefaultMonitoringInterval.
	EvictionInterval time.Duration
	// Recorder records events (evictions, ...). Nil: none.
	Recorder eviction.Recorder
	// ImageGC, if set, collects unused images (imagegc) while the Node
	// runs, and is the eviction manager's image reclaim. Its Images,
	// Containers, Sandboxes and ImageFs default to Runtime; its Clock,
	// Logger, Registerer and Recorder to the Node's; its Node to a
	// reference to the node object. Nil: images are not collected.
	ImageGC *imagegc.Config
	// StatusSink, if set, receives the pods' statuses through a
	// statusmgr.Syncer (kubeapi.StatusWriter writes them to an apiserver).
	// Nil: they stay in Statuses.
	StatusSink statusmgr.Sink
	// Registerer receives every subsystem's metrics. Nil: none.
	Registerer prometheus.Registerer
	Clock      clock.WithTicker
	Logger     *zap.Logger
}

// Node is a running set of subsystems. Its fields are the subsystems, for
// callers that want to look inside (tests, status endpoints).
type Node struct {
	PLEG      *pleg.PLEG
	Admission *syncloop.Admission
	Probes    *syncloop.ProbeManager
	Driver    *syncloop.Driver
	Workers   *syncloop.Workers
	Loop      *syncloop.Loop
	GC        *syncloop.ContainerGC
	// Statuses holds each pod's status: generated (statusmgr.Generate)
	// at every PLEG event of the pod and every StatusPeriod, and the
	// Failed status of rejected pods.
	Statuses *statusmgr.Cache
	// StatusSync pushes Statuses to Config.StatusSink; nil without one.
	StatusSync *statusmgr.Syncer
	// Evictions is the eviction manager; nil without Config.Eviction.
	Evictions *eviction.Manager
	// Images is the image garbage collector; nil without Config.ImageGC.
	Images *imagegc.GC
	// Volumes mounts pods' volumes and VolumeStats measures them; nil
	// without Config.RootDir.
	Volumes     *volumemgr.Manager
	VolumeStats *volumemgr.Stats
	// CPUs is the CPU manager; nil without Config.CPUManager.
	CPUs *cpumanager.Manager

	cpuPods   string // the active pods the CPU manager was last woken for
	cgroups   *cpumanager.CgroupManager
	qosPods   string // the active pods UpdateQOS last saw
	evictedMu sync.Mutex
	evicted   map[types.UID]*statusmgr.Eviction

	events       *pleg.Subscription
	statusEvents *pleg.Subscription
	hostIPs      []string
	gcPeriod     time.Duration
	sourcesReady func() bool
	clock        clock.WithTicker
	log          *zap.Logger

	// cpuWoken: the CPU manager was woken when the sources became ready
	// (loop goroutine only).
	cpuWoken bool
}

// New wires the subsystems for cfg. Nothing runs until Run.
func New(cfg Config) (*Node, error) {
	if cfg.Runtime == nil || cfg.Updates == nil {
		return nil, fmt.Errorf("node: Runtime and Updates are required: %w", core.ErrInvalid)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.PodLogsRoot == "" {
		cfg.PodLogsRoot = crispec.DefaultPodLogsRoot
	}
	if cfg.GCPeriod == 0 {
		cfg.GCPeriod = DefaultGCPeriod
	}
	if cfg.SourcesReady == nil {
		cfg.SourcesReady = func() bool { return true }
	}
	if cfg.RelistPeriod == 0 {
		cfg.RelistPeriod = DefaultRelistPeriod
	}
	if cfg.BackOff.Clock == nil {
		cfg.BackOff.Clock = cfg.Clock
	}
	backOff, err := syncloop.NewBackOff(cfg.BackOff)
	if err != nil {
		return nil, err
	}
	if cfg.Registerer != nil {
		rt, err := runtimemetrics.New(runtimemetrics.Config{Runtime: cfg.Runtime, Registerer: cfg.Registerer, Clock: cfg.Clock})
		if err != nil {
			return nil, err
		}
		cfg.Runtime = rt
	}
	if cfg.Node == nil {
		local, err := LocalNode()
		if err != nil {
			return nil, err
		}
		cfg.Node = func() (*v1.Node, error) { return local, nil }
	}
	if cfg.Translator == nil {
		// Burstable pods' memory limits need the node's memory.
		nd, err := cfg.Node()
		if err != nil {
			return nil, err
		}
		mem := nd.Status.Capacity.Memory()
		if mem.IsZero() {
			mem = nd.Status.Allocatable.Memory()
		}
		tc := crispec.Config{MemoryCapacity: mem.Value(), PodLogsRoot: cfg.PodLogsRoot, NodeAllocatable: nd.Status.Allocatable}
		if cfg.ConfigMaps != nil {
			tc.ConfigMaps = cfg.ConfigMaps
		}
		if cfg.Secrets != nil {
			tc.Secrets = cfg.Secrets
		}
		cfg.Translator, err = crispec.New(tc)
		if err != nil {
			return nil, err
		}
	}
	p, err := pleg.New(pleg.Config{Runtime: cfg.Runtime, Clock: cfg.Clock, Logger: cfg.Logger.Named("pleg"),
		Registerer: cfg.Registerer, RelistPeriod: cfg.RelistPeriod, Events: cfg.Events})
	if err != nil {
		return nil, err
	}
	n := &Node{PLEG: p, evicted: map[types.UID]*statusmgr.Eviction{}}
	nodeIP := ""
	if len(cfg.HostIPs) > 0 {
		nodeIP = cfg.HostIPs[0]
	}
	n.Probes, err = syncloop.NewProbeManager(syncloop.ProbeManagerConfig{
		Runner: &syncloop.ProbeRunner{Exec: cfg.Runtime}, NodeIP: nodeIP,
		Clock: cfg.Clock, Logger: cfg.Logger.Named("probes"), Registerer: cfg.Registerer,
		// A changed result syncs the pod: a failed liveness or startup
		// probe restarts the container. Readiness and startup reach the
		// status at once, without waiting for the next generation.
		OnChange: func(uid types.UID, kind syncloop.ProbeKind, id string, result syncloop.ProbeResult) {
			switch kind {
			case syncloop.ProbeReadiness:
				n.Statuses.SetContainerReadiness(uid, id, result == syncloop.ProbeSuccess, n.clock.Now())
			case syncloop.ProbeStartup:
				n.Statuses.SetContainerStartup(uid, id, result == syncloop.ProbeSuccess)
			}
			n.Loop.SyncPod(uid)
		},
	})
	if err != nil {
		return nil, err
	}
	dc := syncloop.DriverConfig{
		Probes:  n.Probes,
		Runtime: cfg.Runtime, Translator: cfg.Translator, BackOff: backOff, CgroupParent: cfg.CgroupParent,
		HostIPs: cfg.HostIPs, Registerer: cfg.Registerer, Clock: cfg.Clock, Logger: cfg.Logger.Named("driver"),
	}
	if cfg.RootDir != "" {
		nd, err := cfg.Node()
		if err != nil {
			return nil, err
		}
		n.Volumes, err = volumemgr.NewManager(volumemgr.ManagerConfig{Root: cfg.RootDir,
			ConfigMaps: cfg.ConfigMaps, Secrets: cfg.Secrets, Tokens: cfg.Tokens, NodeAllocatable: nd.Status.Allocatable,
			PodKnown: n.podKnown, SourcesReady: n.loopSourcesReady, ResyncPeriod: cfg.VolumeResyncPeriod,
			Registerer: cfg.Registerer, Clock: cfg.Clock, Logger: cfg.Logger.Named("volumes")})
		if err != nil {
			return nil, err
		}
		dc.Volumes = n.Volumes
		if cfg.Recorder != nil {
			dc.Volumes = eventfulVolumes{n.Volumes, cfg.Recorder}
		}
		n.VolumeStats, err = volumemgr.NewStats(volumemgr.StatsConfig{Volumes: n.Volumes.VolumeRefs, Period: cfg.VolumeStatsPeriod,
			Registerer: cfg.Registerer, Clock: cfg.Clock, Logger: cfg.Logger.Named("volume-stats")})
		if err != nil {
			return nil, err
		}
	}
	if cfg.PodCgroups != nil {
		dc.Cgroups = cfg.PodCgroups
		n.cgroups = cfg.PodCgroups
	}
	if cfg.CPUManager != nil {
		if n.CPUs, err = newCPUManager(*cfg.CPUManager, cfg, n); err != nil {
			return nil, err
		}
		dc.CPUs = n.CPUs
	}
	n.Driver, err = syncloop.NewDriver(dc)
	if err != nil {
		return nil, err
	}
	n.Workers, err = syncloop.NewWorkers(syncloop.WorkersConfig{Syncer: n.Driver, Status: plegStatus{p},
		Clock: cfg.Clock, Logger: cfg.Logger.Named("workers"), Registerer: cfg.Registerer})
	if err != nil {
		return nil, err
	}
	fit, err := syncloop.NewNodeFit(syncloop.NodeFitConfig{Node: cfg.Node, Logger: cfg.Logger.Named("admission")})
	if err != nil {
		return nil, err
	}
	// Handlers are added below in the kubelet's order: eviction's, the
	// CPU manager's allocation, then node fit (the predicate handler).
	n.Admission, err = syncloop.NewAdmission(syncloop.AdmissionConfig{
		Registerer: cfg.Registerer, Logger: cfg.Logger.Named("admission")})
	if err != nil {
		return nil, err
	}
	var imageReclaim eviction.ImageGC
	if cfg.ImageGC != nil {
		if n.Images, err = newImageGC(cfg); err != nil {
			return nil, err
		}
		imageReclaim = n.Images
	}
	if cfg.Eviction != nil && cfg.EvictionObserver != nil {
		var nodeRef *v1.ObjectReference
		if cfg.Recorder != nil {
			nd, err := cfg.Node()
			if err != nil {
				return nil, err
			}
			nodeRef = &v1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: nd.Name, UID: nd.UID}
		}
		n.Evictions, err = eviction.NewManager(eviction.ManagerConfig{Policy: cfg.Eviction, Observer: cfg.EvictionObserver, Node: nodeRef,
			Evictor: evictor{n}, Containers: containerReclaimer{n}, Images: imageReclaim, Recorder: cfg.Recorder, Wake: cfg.EvictionWake, Notifiers: cfg.EvictionNotifiers, MonitoringInterval: cfg.EvictionInterval,
			Registerer: cfg.Registerer, Clock: cfg.Clock, Logger: cfg.Logger.Named("eviction")})
		if err != nil {
			return nil, err
		}
		adm, err := eviction.NewAdmitter(eviction.AdmitterConfig{Conditions: n.Evictions.Conditions})
		if err != nil {
			return nil, err
		}
		n.Admission.AddHandler(syncloop.AdmitFunc(func(a syncloop.AdmitAttributes) syncloop.AdmitResult {
			return syncloop.AdmitResult(adm.Admit(eviction.AdmitAttributes(a)))
		}))
	}
	if n.CPUs != nil {
		// Before node fit, as the kubelet allocates resources before its
		// predicate handler: a pod that node fit then refuses keeps its
		// CPUs until the CPU manager next takes back those of pods not
		// active, as in the kubelet.
		n.Admission.AddHandler(syncloop.AdmitFunc(func(a syncloop.AdmitAttributes) syncloop.AdmitResult {
			return syncloop.AdmitResult(n.CPUs.Admit(cpumanager.AdmitAttributes(a)))
		}))
	}
	n.Admission.AddHandler(fit)
	n.Statuses, err = statusmgr.NewCache(statusmgr.CacheConfig{Clock: cfg.Clock, Logger: cfg.Logger.Named("status")})
	if err != nil {
		return nil, err
	}
	if cfg.StatusSink != nil {
		n.StatusSync, err = statusmgr.NewSyncer(statusmgr.SyncerConfig{Source: n.Statuses, Sink: cfg.StatusSink,
			Registerer: cfg.Registerer, Clock: cfg.Clock, Logger: cfg.Logger.Named("status-sync")})
		if err != nil {
			return nil, err
		}
	}
	n.events = p.Watch()
	n.Loop, err = syncloop.NewLoop(syncloop.LoopConfig{
		Updates: cfg.Updates, Events: n.events.Events(), Workers: n.Workers, Runtime: cfg.Runtime, Admission: n.Admission, Status: n.Statuses,
		SourcesReady: cfg.SourcesReady, Housekeepers: n.housekeepers(),
		Clock: cfg.Clock, Logger: cfg.Logger.Named("loop"),
	})
	if err != nil {
		n.events.Close()
		return nil, err
	}
	n.GC, err = syncloop.NewContainerGC(syncloop.ContainerGCConfig{Runtime: cfg.Runtime, Pods: n.Loop, Policy: cfg.GCPolicy,
		PodLogsRoot: cfg.PodLogsRoot, Clock: cfg.Clock, Logger: cfg.Logger.Named("gc")})
	if err != nil {
		n.events.Close()
		return nil, err
	}
	n.gcPeriod, n.sourcesReady, n.clock, n.log = cfg.GCPeriod, n.loopSourcesReady, cfg.Clock, cfg.Logger
	n.hostIPs = cfg.HostIPs
	n.statusEvents = p.Watch()
	return n, nil
}

// Run runs every subsystem until ctx ends, then waits for them.
func (n *Node) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var (
		mu  sync.Mutex
		all []error
	)
	run := func(name string, f func(context.Context) error) {
		wg.Go(func() {
			if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
				mu.Lock()
				all = append(all, fmt.Errorf("%s: %w", name, err))
				mu.Unlock()
				cancel()
			}
		})
	}
	if n.cgroups != nil {
		if err := n.cgroups.EnsureHierarchy(ctx); err != nil {
			return fmt.Errorf("node: cgroups: %w", err)
		}
	}
	run("pleg", n.PLEG.Run)
	run("probes", n.Probes.Run)
	run("workers", n.Workers.Run)
	run("loop", n.Loop.Run)
	run("gc", n.collect)
	run("status", n.statuses)
	if n.StatusSync != nil {
		run("status-sync", n.StatusSync.Run)
	}
	if n.Evictions != nil {
		run("eviction", n.Evictions.Run)
	}
	if n.CPUs != nil {
		run("cpumanager", n.CPUs.Run)
	}
	if n.Images != nil {
		run("image-gc", n.Images.Run)
	}
	if n.Volumes != nil {
		run("volumes", n.Volumes.Run)
		run("volume-stats", n.VolumeStats.Run)
	}
	wg.Wait()
	n.events.Close()
	n.statusEvents.Close()
	if len(all) > 0 {
		return errors.Join(all...)
	}
	return ctx.Err()
}

// newImageGC builds the image garbage collector of cfg.ImageGC over the
// node's runtime, clock, logger, metrics and events.
func newImageGC(cfg Config) (*imagegc.GC, error) {
	ic := *cfg.ImageGC
	if ic.Images == nil {
		ic.Images = cfg.Runtime
	}
	if ic.Containers == nil {
		ic.Containers = cfg.Runtime
	}
	if ic.Sandboxes == nil {
		ic.Sandboxes = cfg.Runtime
	}
	if ic.ImageFs == nil {
		ic.ImageFs = cfg.Runtime
	}
	if ic.Clock == nil {
		ic.Clock = cfg.Clock
	}
	if ic.Logger == nil {
		ic.Logger = cfg.Logger.Named("image-gc")
	}
	if ic.Registerer == nil {
		ic.Registerer = cfg.Registerer
	}
	if ic.Recorder == nil && cfg.Recorder != nil {
		ic.Recorder = cfg.Recorder
	}
	if ic.Node == nil && ic.Recorder != nil {
		nd, err := cfg.Node()
		if err != nil {
			return nil, err
		}
		ic.Node = &v1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: nd.Name, UID: nd.UID}
	}
	return imagegc.New(ic)
}

// loopSourcesReady is the sources' readiness for every cleanup of what no
// source wants (container GC, volumes, CPUs): the loop's, which holds once
// it handled every pod the ready sources sent.
func (n *Node) loopSourcesReady() bool { return n.Loop != nil && n.Loop.SourcesReady() }

// plegStatus is the workers' status source: the PLEG's cache, refreshed
// for one pod on demand.
type plegStatus struct{ p *pleg.PLEG }

func (s plegStatus) GetNewerThan(ctx context.Context, uid types.UID, minTime time.Time) (*core.PodStatus, error) {
	return s.p.Cache().GetNewerThan(ctx, uid, minTime)
}

func (s plegStatus) RelistPod(ctx context.Context, uid types.UID) error {
	return s.p.RelistPod(ctx, uid)
}

// collect garbage-collects dead containers every GCPeriod until ctx ends.
func (n *Node) collect(ctx context.Context) error {
	t := n.clock.NewTicker(n.gcPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C():
		}
		if _, err := n.GC.GarbageCollect(ctx, n.sourcesReady(), false); err != nil && ctx.Err() == nil {
			n.log.Warn("garbage collection failed", zap.Error(err))
		}
	}
}

// StatusPeriod is how often every pod's status is generated again, besides
// at each of its PLEG events.
const StatusPeriod = 5 * time.Second

// statuses keeps Statuses current until ctx ends.
func (n *Node) statuses(ctx context.Context) error {
	t := n.clock.NewTicker(StatusPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-n.statusEvents.Events():
			if !ok {
				return ctx.Err()
			}
			n.generate(ev.PodUID)
		case <-t.C():
			for _, p := range n.Loop.Pods() {
				n.generate(p.UID)
			}
		}
	}
}

// generate makes and caches the status of one pod the sources want and a
// worker runs (a rejected pod keeps the Failed status the loop gave it).
func (n *Node) generate(uid types.UID) {
	pod, ok := n.Loop.Pod(uid)
	if !ok {
		return
	}
	state, ok := n.Workers.State(uid)
	if !ok {
		return
	}
	rt, _ := n.PLEG.Cache().Get(uid)
	in := statusmgr.Input{Pod: pod, Runtime: rt, Probes: n.Probes, HostIPs: n.hostIPs, Now: n.clock.Now(),
		Terminal: state == syncloop.Terminated, Finished: state == syncloop.Terminated}
	n.evictedMu.Lock()
	in.Evict = n.evicted[uid]
	n.evictedMu.Unlock()
	if prev, _, ok := n.Statuses.Get(uid); ok {
		in.Previous = &prev
	}
	for _, w := range n.Driver.Waiting(uid) {
		in.Waiting = append(in.Waiting, statusmgr.Waiting{Name: w.Name, Reason: w.Reason, Message: w.Message})
	}
	set := n.Statuses.Set
	if in.Finished {
		set = n.Statuses.Finish
	}
	if _, _, err := set(pod, statusmgr.Generate(in)); err != nil {
		n.log.Warn("pod status refused", zap.Error(err))
	}
}

// eventfulVolumes records a pod's mount failures as Warning events
// (FailedMount, as the kubelet), besides the waiting message in its status.
type eventfulVolumes struct {
	*volumemgr.Manager
	rec eviction.Recorder
}

func (v eventfulVolumes) WaitForAttachAndMount(ctx context.Context, pod *v1.Pod) error {
	err := v.Manager.WaitForAttachAndMount(ctx, pod)
	if err != nil && ctx.Err() == nil {
		v.rec.Eventf(pod, v1.EventTypeWarning, "FailedMount", "%v", err)
	}
	return err
}

// housekeepers are what the loop runs at every housekeeping round.
func (n *Node) housekeepers() []syncloop.Housekeeper {
	hk := []syncloop.Housekeeper{n.Driver, statusHousekeeper{n}}
	if n.cgroups != nil {
		hk = append(hk, syncloop.HousekeeperFunc(n.housekeepCgroups))
	}
	if n.Volumes != nil {
		hk = append(hk, n.Volumes)
	}
	if n.CPUs != nil {
		hk = append(hk, syncloop.HousekeeperFunc(n.housekeepCPUs))
	}
	return hk
}

// newCPUManager completes the CPU manager's configuration with the node's
// runtime, active pods, sources, clock, logger and registerer.
func newCPUManager(mc cpumanager.ManagerConfig, cfg Config, n *Node) (*cpumanager.Manager, error) {
	mc.Runtime = cfg.Runtime
	mc.Pods = cpumanager.ActivePodsFunc(func() []*v1.Pod { return n.Loop.ActivePods() })
	if ready := mc.SourcesReady; ready != nil {
		mc.SourcesReady = func() bool { return n.loopSourcesReady() && ready() }
	} else {
		mc.SourcesReady = n.loopSourcesReady
	}
	if mc.Clock == nil {
		mc.Clock = cfg.Clock
	}
	if mc.Logger == nil {
		mc.Logger = cfg.Logger.Named("cpumanager")
	}
	if mc.Registerer == nil {
		mc.Registerer = cfg.Registerer
	}
	return cpumanager.NewManager(mc)
}

// housekeepCPUs wakes the CPU manager when the active pods changed, so
// that the CPUs of pods gone return to the shared pool (and the shared
// containers grow) without waiting for its reconcile period.
//
// It also wakes the CPU manager once the loop's sources are ready
// (loopSourcesReady), so that it takes back at once the CPUs of pods that
// did not come back after a restart.
func (n *Node) housekeepCPUs(context.Context) error {
	if !n.cpuWoken && n.loopSourcesReady() {
		n.cpuWoken = true
		n.CPUs.Wake()
	}
	active := n.Loop.ActivePods()
	ids := make([]string, 0, len(active))
	for _, p := range active {
		ids = append(ids, string(p.UID))
	}
	if key := strings.Join(ids, ","); key != n.cpuPods {
		n.cpuPods = key
		n.CPUs.Wake()
	}
	return nil
}

// housekeepCgroups updates the QoS cgroups when the active pods changed
// and removes the cgroups of pods that no longer run, as the kubelet's
// housekeeping does.
func (n *Node) housekeepCgroups(ctx context.Context) error {
	active := n.Loop.ActivePods()
	ids := make([]string, 0, len(active))
	for _, p := range active {
		ids = append(ids, string(p.UID))
	}
	slices.Sort(ids)
	key := strings.Join(ids, ",")
	var errs []error
	if key != n.qosPods {
		if err := n.cgroups.UpdateQOS(ctx, active); err != nil {
			errs = append(errs, err)
		} else {
			n.qosPods = key
		}
	}
	running := func(uid types.UID) bool {
		s, ok := n.Workers.State(uid)
		return ok && s != syncloop.Terminated
	}
	if _, err := n.cgroups.CleanupOrphans(ctx, running); err != nil {
		errs = append(errs, err)
	}
	n.evictedMu.Lock()
	for uid := range n.evicted {
		if !n.podKnown(uid) {
			delete(n.evicted, uid)
		}
	}
	n.evictedMu.Unlock()
	return errors.Join(errs...)
}

// evictor carries out the eviction manager's decisions through the pod
// workers.
type evictor struct{ n *Node }

// EvictPod kills the pod with the eviction's grace period; its status
// becomes Failed with the eviction's reason and message.
func (e evictor) EvictPod(_ context.Context, ev eviction.Eviction) error {
	e.n.evictedMu.Lock()
	e.n.evicted[ev.Pod.UID] = &statusmgr.Eviction{Reason: ev.Reason, Message: ev.Message, DisruptionTarget: ev.Condition != nil}
	e.n.evictedMu.Unlock()
	grace := ev.GracePeriodSeconds
	e.n.Workers.Update(syncloop.Update{Type: syncloop.UpdateKill, Pod: ev.Pod, KillGracePeriod: &grace})
	return nil
}

// containerReclaimer is the eviction manager's node-level reclaim of
// containers: garbage collection that also removes what evicted pods left,
// as the kubelet's DeleteAllUnusedContainers.
type containerReclaimer struct{ n *Node }

func (c containerReclaimer) DeleteAllUnusedContainers(ctx context.Context) error {
	_, err := c.n.GC.GarbageCollect(ctx, c.n.sourcesReady(), true)
	return err
}

// PodCleanedUp: the evicted pod's worker is done with it.
func (e evictor) PodCleanedUp(uid types.UID) bool {
	s, ok := e.n.Workers.State(uid)
	return !ok || s == syncloop.Terminated
}

// podKnown says a pod is wanted by a source or handled by a worker.
func (n *Node) podKnown(uid types.UID) bool {
	if _, ok := n.Loop.Pod(uid); ok {
		return true
	}
	_, ok := n.Workers.State(uid)
	return ok
}

// statusHousekeeper drops, at each housekeeping round, the statuses of
// pods no source wants and no worker handles any more (the kubelet's
// RemoveOrphanedStatuses).
type statusHousekeeper struct{ n *Node }

func (h statusHousekeeper) Housekeep(context.Context) error {
	for _, e := range h.n.Statuses.List() {
		uid := e.Pod.UID
		if _, wanted := h.n.Loop.Pod(uid); wanted {
			continue
		}
		if _, handled := h.n.Workers.State(uid); handled {
			continue
		}
		h.n.Statuses.Delete(uid)
	}
	return nil
}

// PodsHandler serves the pods the sources want, with their statuses, as a
// v1.PodList in JSON: the shape of the kubelet's /pods endpoint.
func (n *Node) PodsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		list := v1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}}
		for _, p := range n.Loop.Pods() {
			p = p.DeepCopy()
			if st, _, ok := n.Statuses.Get(p.UID); ok {
				p.Status = st
			}
			list.Items = append(list.Items, *p)
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(&list); err != nil {
			n.log.Debug("pods API: write failed", zap.Error(err))
		}
	})
}
