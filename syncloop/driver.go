package syncloop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
)

// DriverRuntime is what the driver asks of the container runtime.
type DriverRuntime interface {
	core.SandboxRunner
	core.SandboxStopper
	core.SandboxStatuser
	core.ContainerCreator
	core.ContainerStarter
	core.ContainerStopper
	core.ContainerRemover
	core.ImageStatuser
	core.ImagePuller
	core.ExecSyncer
}

// ProbeSource is what the driver asks of the probe workers; ProbeManager
// implements it. The driver tells it about the pod's running containers on
// every sync, plans with its liveness and startup results, and drops the
// pod once it terminated.
type ProbeSource interface {
	SyncPod(pod *v1.Pod, status *core.PodStatus)
	Results(uid types.UID) (liveness, startup map[string]ProbeResult)
	RemovePod(uid types.UID)
}

// DriverConfig configures a Driver.
type DriverConfig struct {
	// Runtime to drive. Required.
	Runtime DriverRuntime
	// Translator turns pods into CRI configs. Default: crispec.New with
	// its defaults.
	Translator *crispec.Translator
	// BackOff holds back restarts of crashing containers. Default:
	// NewBackOff with the kubelet's defaults, on Clock.
	BackOff *BackOff
	// ImageBackOff holds back pulls of images that failed to pull, apart
	// from BackOff as in the kubelet. Default: NewBackOff with the
	// kubelet's defaults, on Clock.
	ImageBackOff *BackOff
	// CgroupParent of every pod sandbox the driver runs. Default: none
	// (the runtime's default).
	CgroupParent string
	// HostIPs are the node's IPs, primary first: the IPs of pods on the
	// host network (their status.podIP, the host their hooks and probes
	// reach). Default: none.
	HostIPs []string
	// Probes, when set, runs the probes of the pod's containers; their
	// liveness and startup results restart containers. Nil: no probes run.
	Probes ProbeSource
	// Hooks runs postStart and preStop hooks. Default: a HookRunner over
	// Runtime and Clock.
	Hooks *HookRunner
	// Volumes, when set, mounts the pod's volumes before its sandbox and
	// containers start and gives their host paths to the containers'
	// mounts; when it is a VolumeUnmounter, a terminated pod's volumes
	// are unmounted before its worker is done. Nil: pods run without
	// volumes (a container that mounts one cannot be created).
	Volumes Volumes
	// Cgroups, when set, makes each pod's cgroup before its sandbox is
	// created and gives the sandbox its cgroup parent (cpumanager's
	// CgroupManager); CgroupParent is then ignored.
	Cgroups PodCgroups
	// CPUs, when set, gives each container the CPUs it runs on (the CPU
	// manager's assignment) at creation: cpuset_cpus, and no CFS quota for
	// a container pinned to exclusive CPUs, as the kubelet.
	CPUs CPUAssigner
	// Registerer receives the driver's metrics (kubelet_started_pods_total,
	// kubelet_started_containers_total and their error counts). Nil: none.
	Registerer prometheus.Registerer
	Clock      clock.Clock
	Logger     *zap.Logger
}

// Driver carries out what a pod's worker decided, on the runtime: it is
// the Syncer of the Workers.
type Driver struct {
	cfg     DriverConfig
	log     *zap.Logger
	metrics *driverMetrics

	mu      sync.Mutex
	waiting map[types.UID][]WaitingContainer
}

// NewDriver returns a Driver for cfg.
func NewDriver(cfg DriverConfig) (*Driver, error) {
	if cfg.Runtime == nil {
		return nil, fmt.Errorf("syncloop: driver: Runtime is required: %w", core.ErrInvalid)
	}
	if cfg.Translator == nil {
		tr, err := crispec.New(crispec.Config{})
		if err != nil {
			return nil, err
		}
		cfg.Translator = tr
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.BackOff == nil {
		b, err := NewBackOff(BackOffConfig{Clock: cfg.Clock})
		if err != nil {
			return nil, err
		}
		cfg.BackOff = b
	}
	if cfg.ImageBackOff == nil {
		b, err := NewBackOff(BackOffConfig{Clock: cfg.Clock})
		if err != nil {
			return nil, err
		}
		cfg.ImageBackOff = b
	}
	if cfg.Hooks == nil {
		cfg.Hooks = &HookRunner{Exec: cfg.Runtime, Clock: cfg.Clock}
	}
	m, err := newDriverMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Driver{cfg: cfg, log: cfg.Logger, metrics: m, waiting: map[types.UID][]WaitingContainer{}}, nil
}

var _ Syncer = (*Driver)(nil)

// Housekeep forgets the back-off of containers and images not seen for
// long (BackOff.GC); the loop calls it at housekeeping.
func (d *Driver) Housekeep(context.Context) error {
	d.cfg.BackOff.GC()
	d.cfg.ImageBackOff.GC()
	return nil
}

// WaitError is what SyncPod returns when the pod is as its spec wants
// except for containers whose restart is held back: the worker syncs the
// pod again after Wait, without counting a failure.
type WaitError struct {
	// Wait is how long until the first held-back container may start.
	Wait time.Duration
	// Waiting are the held-back containers.
	Waiting []WaitingContainer
}

func (e *WaitError) Error() string {
	names := make([]string, len(e.Waiting))
	for i, w := range e.Waiting {
		names[i] = w.Name + " (" + w.Reason + ")"
	}
	return fmt.Sprintf("containers held back for %s: %s", e.Wait, strings.Join(names, ", "))
}

// Waiting returns the containers of a pod whose start the last sync held
// back, with the kubelet's waiting reasons and messages (CrashLoopBackOff,
// ImagePullBackOff, ErrImagePull, PostStartHookError): what the status
// manager shows as their waiting state.
func (d *Driver) Waiting(uid types.UID) []WaitingContainer {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.waiting[uid])
}

// SyncPod carries out one Plan: it kills what must go (running preStop
// hooks), replaces the sandbox when needed, and starts the ephemeral,
// init, sidecar and regular containers the plan lists, in the order
// PodActions documents, running postStart hooks. It reports terminal when
// the plan says nothing of the pod runs again, and a *WaitError when the
// only thing left undone is a held-back restart.
func (d *Driver) SyncPod(ctx context.Context, pod *v1.Pod, status *core.PodStatus) (bool, error) {
	if status == nil {
		status = &core.PodStatus{UID: pod.UID}
	}
	in := PlanInput{BackOff: RestartBackOff(d.cfg.BackOff, pod)}
	if d.cfg.Probes != nil {
		d.cfg.Probes.SyncPod(pod, status)
		in.Liveness, in.Startup = d.cfg.Probes.Results(pod.UID)
	}
	actions := Plan(pod, status, in)
	waiting := actions.Waiting
	defer func() {
		d.mu.Lock()
		d.waiting[pod.UID] = waiting
		d.mu.Unlock()
	}()
	grace := EffectiveGracePeriod(0, pod, nil)
	if actions.KillPod {
		if err := d.SyncTerminatingPod(ctx, pod, status, grace); err != nil {
			return false, err
		}
		if !actions.CreateSandbox {
			if o := actions.Outcome; o != nil {
				d.log.Info("pod done", zap.String("pod", pod.Namespace+"/"+pod.Name), zap.String("phase", string(o.Phase)), zap.String("reason", o.Reason))
			}
			return true, nil
		}
		// Initialization starts over in the new sandbox.
		for _, cs := range status.ContainerStatuses {
			if isInitContainer(pod, cs.GetMetadata().GetName()) {
				if err := d.cfg.Runtime.RemoveContainer(ctx, cs.GetId()); err != nil {
					return false, fmt.Errorf("remove init container %q of pod %s/%s: %w", cs.GetMetadata().GetName(), pod.Namespace, pod.Name, err)
				}
			}
		}
	} else {
		podIP := firstIP(d.podIPs(pod, readySandboxIPs(status)))
		var mu sync.Mutex
		var errs []error
		var wg sync.WaitGroup
		for id, k := range actions.ContainersToKill {
			cs := containerStatus(status, id)
			c := containerSpec(pod, k.Name, cs)
			g := grace
			if p := killProbe(c, k.Reason); p != nil && p.TerminationGracePeriodSeconds != nil {
				g = *p.TerminationGracePeriodSeconds
			}
			d.log.Info("killing container", zap.String("pod", pod.Namespace+"/"+pod.Name), zap.String("container", k.Name), zap.String("reason", string(k.Reason)), zap.String("message", k.Message))
			wg.Go(func() {
				if err := d.killContainer(ctx, pod, c, id, podIP, g, d.cfg.Clock.Now().Add(time.Duration(g)*time.Second)); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s: %w", k.Reason, err))
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return false, err
		}
		for _, r := range actions.ContainersToReset {
			if r.Kill {
				if err := d.cfg.Runtime.StopContainer(ctx, r.ID, 0); err != nil && !errors.Is(err, core.ErrNotFound) {
					return false, fmt.Errorf("stop container %q of pod %s/%s: %w", r.Name, pod.Namespace, pod.Name, err)
				}
			}
			if err := d.cfg.Runtime.RemoveContainer(ctx, r.ID); err != nil {
				return false, fmt.Errorf("remove container %q of pod %s/%s: %w", r.Name, pod.Namespace, pod.Name, err)
			}
		}
	}

	// Volumes first: nothing starts without them. Asked at every sync, as
	// the kubelet does, so that the volume manager knows every pod that
	// runs (an agent restart adopts the volumes of running pods this way).
	if d.cfg.Volumes != nil {
		if err := d.cfg.Volumes.WaitForAttachAndMount(ctx, pod); err != nil {
			waiting = append(waiting, mountWaiting(pod, actions, err)...)
			return false, fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
	}

	// The sandbox to start containers in: a new one, or the current one
	// as the PLEG's status shows it.
	attempt := actions.Attempt
	var current *runtimeapi.PodSandboxStatus
	if !actions.CreateSandbox {
		for _, sb := range status.SandboxStatuses {
			if sb.GetId() == actions.SandboxID {
				current = sb
				attempt = sb.GetMetadata().GetAttempt()
			}
		}
	}
	parent := d.cfg.CgroupParent
	if c := d.cfg.Cgroups; c != nil {
		parent = c.CgroupParent(pod)
		if actions.CreateSandbox {
			if err := c.EnsurePod(ctx, pod); err != nil {
				return false, fmt.Errorf("pod %s/%s: cgroup: %w", pod.Namespace, pod.Name, err)
			}
		}
	}
	sbCfg, err := d.cfg.Translator.SandboxConfig(pod, attempt, crispec.SandboxOptions{CgroupParent: parent})
	if err != nil {
		return false, err
	}
	sandboxID := actions.SandboxID
	if actions.CreateSandbox {
		d.metrics.startedPods.Inc()
		if err := os.MkdirAll(sbCfg.LogDirectory, 0o755); err != nil {
			d.metrics.startedPodsErrors.Inc()
			return false, fmt.Errorf("pod %s/%s: log directory: %w", pod.Namespace, pod.Name, err)
		}
		if sandboxID, err = d.cfg.Runtime.RunPodSandbox(ctx, sbCfg, ""); err != nil {
			d.metrics.startedPodsErrors.Inc()
			return false, err
		}
		d.log.Info("pod sandbox started", zap.String("pod", pod.Namespace+"/"+pod.Name), zap.String("sandbox", sandboxID),
			zap.Uint32("attempt", attempt), zap.String("cgroupParent", parent))
	}
	if sandboxID == "" {
		return false, nil
	}
	// Only a sandbox created just now must be asked for its network.
	if current == nil {
		st, err := d.cfg.Runtime.PodSandboxStatus(ctx, sandboxID, false)
		if err != nil {
			return false, err
		}
		current = st.GetStatus()
	}
	s := &starter{d: d, pod: pod, sandboxID: sandboxID, sbCfg: sbCfg, podIPs: d.podIPs(pod, core.SandboxIPs(current))}
	var errs []error
	for _, i := range actions.EphemeralContainersToStart {
		ec := &pod.Spec.EphemeralContainers[i]
		c := v1.Container(ec.EphemeralContainerCommon)
		if err := s.start(ctx, &c, ContainerToStart{Index: i, Name: c.Name, FirstRun: true}, "ephemeral_container"); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range actions.InitContainersToStart {
		ic := &pod.Spec.InitContainers[c.Index]
		if err := s.start(ctx, ic, c, "init_container"); err != nil {
			if !core.IsSidecar(ic) {
				waiting = append(waiting, s.waiting...)
				return false, errors.Join(append(errs, err)...)
			}
			errs = append(errs, err)
		}
	}
	for _, c := range actions.ContainersToStart {
		if err := s.start(ctx, &pod.Spec.Containers[c.Index], c, "container"); err != nil {
			errs = append(errs, err)
		}
	}
	waiting = append(waiting, s.waiting...)
	if err := errors.Join(errs...); err != nil {
		return false, err
	}
	if len(actions.Waiting) > 0 {
		we := &WaitError{Waiting: actions.Waiting, Wait: actions.Waiting[0].Wait}
		for _, w := range actions.Waiting {
			we.Wait = min(we.Wait, w.Wait)
		}
		return false, we
	}
	return false, nil
}

// starter starts the containers of one sync in one sandbox.
type starter struct {
	d         *Driver
	pod       *v1.Pod
	sandboxID string
	sbCfg     *runtimeapi.PodSandboxConfig
	podIPs    []string
	// waiting collects containers that could not start, with the
	// kubelet's waiting reasons.
	waiting []WaitingContainer
}

// start creates and starts one container and runs its postStart hook; a
// failed hook kills the container again, as the kubelet does.
func (s *starter) start(ctx context.Context, c *v1.Container, ts ContainerToStart, kind string) error {
	d, pod := s.d, s.pod
	d.metrics.startedContainers.WithLabelValues(kind).Inc()
	fail := func(reason, message string, err error) error {
		d.metrics.startedContainersErrors.WithLabelValues(kind, reason).Inc()
		if reason != "" {
			s.waiting = append(s.waiting, WaitingContainer{Index: ts.Index, Init: kind == "init_container", Name: c.Name, Reason: reason, Message: message})
		}
		return err
	}
	imageRef, err := d.ensureImage(ctx, pod, c, s.sbCfg)
	if err != nil {
		reason := ReasonErrImagePull
		var held *imageBackOffError
		switch {
		case errors.As(err, &held):
			reason = ReasonImagePullBackOff
		case c.ImagePullPolicy == v1.PullNever && errors.Is(err, core.ErrNotFound):
			reason = ReasonErrImageNeverPull
		}
		return fail(reason, err.Error(), err)
	}
	restarts := ts.RestartCount
	if ts.FirstRun {
		// The runtime has no instance: count on from the logs of earlier
		// ones, in case the runtime lost them.
		restarts = max(restarts, restartCountFromLogs(filepath.Join(s.sbCfg.LogDirectory, c.Name)))
	}
	if err := os.MkdirAll(filepath.Join(s.sbCfg.LogDirectory, c.Name), 0o755); err != nil {
		return fail("CreateContainerConfigError", err.Error(), fmt.Errorf("pod %s/%s container %q: log directory: %w", pod.Namespace, pod.Name, c.Name, err))
	}
	opts := crispec.ContainerOptions{RestartCount: restarts, PodIPs: s.podIPs, ImageRef: imageRef}
	var cpus string
	if a := d.cfg.CPUs; a != nil {
		cpus, opts.Resources.ExclusiveCPUs = a.ContainerCPUs(pod, c)
	}
	if v := d.cfg.Volumes; v != nil {
		opts.Volumes = v.PodVolumes(pod)
		if sp, ok := v.(SubPathPreparer); ok {
			opts.PrepareSubPath = func(p crispec.SubPath) (string, error) { return sp.PrepareSubPath(pod, c, p) }
		}
	}
	cfg, err := d.cfg.Translator.ContainerConfig(pod, c, opts)
	if err != nil {
		return fail("CreateContainerConfigError", err.Error(), err)
	}
	if cpus != "" && cfg.GetLinux().GetResources() != nil {
		cfg.Linux.Resources.CpusetCpus = cpus
	}
	id, err := d.cfg.Runtime.CreateContainer(ctx, s.sandboxID, cfg, s.sbCfg)
	if err != nil {
		return fail("CreateContainerError", err.Error(), err)
	}
	if err := d.cfg.Runtime.StartContainer(ctx, id); err != nil {
		return fail("RunContainerError", err.Error(), err)
	}
	d.log.Info("container started", zap.String("pod", pod.Namespace+"/"+pod.Name), zap.String("container", c.Name),
		zap.String("kind", kind), zap.String("containerID", id), zap.String("image", c.Image), zap.Int("restartCount", restarts))
	if c.Lifecycle == nil || c.Lifecycle.PostStart == nil {
		return nil
	}
	msg, err := d.cfg.Hooks.Run(ctx, pod, c, c.Lifecycle.PostStart, id, firstIP(s.podIPs))
	if err == nil {
		return nil
	}
	d.log.Warn("postStart hook failed; killing the container", zap.String("pod", pod.Namespace+"/"+pod.Name), zap.String("container", c.Name), zap.String("message", msg))
	grace := EffectiveGracePeriod(0, pod, nil)
	if kerr := d.killContainer(ctx, pod, c, id, firstIP(s.podIPs), grace, d.cfg.Clock.Now().Add(time.Duration(grace)*time.Second)); kerr != nil {
		err = errors.Join(err, kerr)
	}
	return fail(ReasonPostStartHookError, msg, fmt.Errorf("%s: %w", ReasonFailedPostStartHook, err))
}

// restartCountFromLogs is one more than the highest <n>.log in a
// container's log directory, 0 when there is none: the restart count a
// container gets when the runtime has no instance of it.
func restartCountFromLogs(dir string) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".log")
		if !ok {
			continue
		}
		if i, err := strconv.Atoi(name); err == nil && i >= n {
			n = i + 1
		}
	}
	return n
}

func isInitContainer(pod *v1.Pod, name string) bool {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return true
		}
	}
	return false
}

// imageBackOffError is a pull held back by the image-pull back-off.
type imageBackOffError struct{ msg string }

// ReasonErrImageNeverPull is the waiting reason of a container whose image
// is missing while its pull policy is Never.
const ReasonErrImageNeverPull = "ErrImageNeverPull"

func (e *imageBackOffError) Error() string { return e.msg }

// ensureImage makes sure the container's image is present, pulling it
// unless the pull policy forbids it or a pull that failed before is held
// back, and returns its reference.
func (d *Driver) ensureImage(ctx context.Context, pod *v1.Pod, c *v1.Container, sbCfg *runtimeapi.PodSandboxConfig) (string, error) {
	spec := &runtimeapi.ImageSpec{Image: c.Image, UserSpecifiedImage: c.Image}
	st, err := d.cfg.Runtime.ImageStatus(ctx, spec, false)
	if err != nil {
		return "", err
	}
	if img := st.GetImage(); img != nil && c.ImagePullPolicy != v1.PullAlways {
		return img.GetId(), nil
	}
	if c.ImagePullPolicy == v1.PullNever {
		return "", fmt.Errorf("pod %s/%s container %q: image %q is not present and imagePullPolicy is Never: %w", pod.Namespace, pod.Name, c.Name, c.Image, core.ErrNotFound)
	}
	key := ImageKey{PodUID: pod.UID, Image: c.Image}.String()
	if held, _ := d.cfg.ImageBackOff.InBackOffSinceUpdate(key); held {
		return "", &imageBackOffError{msg: fmt.Sprintf("Back-off pulling image %q", c.Image)}
	}
	ref, err := d.cfg.Runtime.PullImage(ctx, spec, nil, sbCfg)
	if err != nil {
		d.cfg.ImageBackOff.Next(key, d.cfg.Clock.Now())
		return "", fmt.Errorf("failed to pull image %q: %w", c.Image, err)
	}
	d.cfg.ImageBackOff.Reset(key)
	return ref, nil
}

// killContainer stops container id of pod (c its spec, possibly rebuilt
// from the container's annotations; nil when unknown), as the kubelet
// kills one: its preStop hook first, bounded by the grace period and by
// deadline, then StopContainer with what is left of the grace period but
// never less than MinimumStopGracePeriod.
func (d *Driver) killContainer(ctx context.Context, pod *v1.Pod, c *v1.Container, id, podIP string, grace int64, deadline time.Time) error {
	name := id
	if c != nil {
		name = c.Name
	}
	if c != nil && c.Lifecycle != nil && c.Lifecycle.PreStop != nil && grace > 0 {
		started := d.cfg.Clock.Now()
		limit := min(time.Duration(grace)*time.Second, deadline.Sub(started))
		d.runPreStop(ctx, pod, c, id, podIP, limit)
		grace -= int64(d.cfg.Clock.Since(started) / time.Second)
	}
	left := int64((deadline.Sub(d.cfg.Clock.Now()) + time.Second - 1) / time.Second)
	grace = max(min(grace, left), MinimumStopGracePeriod)
	if err := d.cfg.Runtime.StopContainer(ctx, id, grace); err != nil && !errors.Is(err, core.ErrNotFound) {
		return fmt.Errorf("stop container %q of pod %s/%s: %w", name, pod.Namespace, pod.Name, err)
	}
	d.log.Info("container stopped", zap.String("pod", pod.Namespace+"/"+pod.Name), zap.String("container", name), zap.String("containerID", id), zap.Int64("gracePeriod", grace))
	return nil
}

// runPreStop runs c's preStop hook for at most limit; a hook still running
// then is abandoned (its context cancelled), as the kubelet gives up on it.
func (d *Driver) runPreStop(ctx context.Context, pod *v1.Pod, c *v1.Container, id, podIP string, limit time.Duration) {
	if limit <= 0 {
		return
	}
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	var msg string
	var err error
	go func() {
		defer close(done)
		msg, err = d.cfg.Hooks.Run(hctx, pod, c, c.Lifecycle.PreStop, id, podIP)
	}()
	t := d.cfg.Clock.NewTimer(limit)
	defer t.Stop()
	select {
	case <-done:
		if err != nil {
			d.log.Warn("preStop hook failed", zap.String("pod", pod.Namespace+"/"+pod.Name), zap.String("container", c.Name), zap.String("reason", ReasonFailedPreStopHook), zap.String("message", msg))
		}
		return
	case <-t.C():
		d.log.Info("preStop hook did not finish within the grace period", zap.String("pod", pod.Namespace+"/"+pod.Name), zap.String("container", c.Name), zap.Duration("gracePeriod", limit))
	case <-ctx.Done():
	}
	cancel()
	<-done
}

// containerStatus finds a container instance in status.
func containerStatus(status *core.PodStatus, id string) *runtimeapi.ContainerStatus {
	for _, cs := range status.ContainerStatuses {
		if cs.GetId() == id {
			return cs
		}
	}
	return nil
}

// containerSpec finds the spec of a container by name in pod, or rebuilds
// what killing it needs (its preStop hook) from the annotations of its
// running instance cs when the pod does not name it.
func containerSpec(pod *v1.Pod, name string, cs *runtimeapi.ContainerStatus) *v1.Container {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.EphemeralContainers {
		if pod.Spec.EphemeralContainers[i].Name == name {
			c := v1.Container(pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
			return &c
		}
	}
	if cs == nil {
		return nil
	}
	c := &v1.Container{Name: name}
	if info, ok, _ := core.ContainerInfoFromLabels(cs.GetLabels(), cs.GetAnnotations()); ok && info.PreStopHandler != nil {
		c.Lifecycle = &v1.Lifecycle{PreStop: info.PreStopHandler}
	}
	return c
}

// killProbe is the probe whose failure a kill reason names, nil for
// others.
func killProbe(c *v1.Container, r KillReason) *v1.Probe {
	if c == nil {
		return nil
	}
	switch r {
	case KillLivenessProbe:
		return c.LivenessProbe
	case KillStartupProbe:
		return c.StartupProbe
	}
	return nil
}

// readySandboxIPs are the IPs of the pod's ready sandbox in status, nil
// when none is ready.
func readySandboxIPs(status *core.PodStatus) []string {
	for _, sb := range status.SandboxStatuses {
		if sb.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY {
			return core.SandboxIPs(sb)
		}
	}
	return nil
}

// podIPs are the pod's IPs: its sandbox's, or the node's for a pod on the
// host network, as the kubelet reports them.
func (d *Driver) podIPs(pod *v1.Pod, sandboxIPs []string) []string {
	if len(sandboxIPs) == 0 && pod.Spec.HostNetwork {
		return d.cfg.HostIPs
	}
	return sandboxIPs
}

func firstIP(ips []string) string {
	if len(ips) == 0 {
		return ""
	}
	return ips[0]
}

// SyncTerminatingPod stops every container of the pod that has not
// exited, in TerminationOrder, within gracePeriod seconds shared by all
// stages: each container's preStop hook runs first, then the container is
// stopped with what is left of the grace period (a stage that starts after
// the deadline still gives its containers MinimumStopGracePeriod). Then it
// stops the pod's sandboxes.
func (d *Driver) SyncTerminatingPod(ctx context.Context, pod *v1.Pod, status *core.PodStatus, gracePeriod int64) error {
	deadline := d.cfg.Clock.Now().Add(time.Duration(gracePeriod) * time.Second)
	if status == nil {
		status = &core.PodStatus{}
	}
	podIP := firstIP(d.podIPs(pod, readySandboxIPs(status)))
	ids := map[string][]*runtimeapi.ContainerStatus{}
	var names []string
	for _, cs := range status.ContainerStatuses {
		if cs.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			continue
		}
		name := cs.GetMetadata().GetName()
		if _, seen := ids[name]; !seen {
			names = append(names, name)
		}
		ids[name] = append(ids[name], cs)
	}
	var mu sync.Mutex
	var errs []error
	for _, stage := range TerminationOrder(pod, names) {
		var wg sync.WaitGroup
		for _, name := range stage {
			for _, cs := range ids[name] {
				c := containerSpec(pod, name, cs)
				if cs.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
					c = nil // no hook for a container that does not run
				}
				wg.Go(func() {
					if err := d.killContainer(ctx, pod, c, cs.GetId(), podIP, gracePeriod, deadline); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				})
			}
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	for _, sb := range status.SandboxStatuses {
		if sb.GetState() != runtimeapi.PodSandboxState_SANDBOX_READY {
			continue
		}
		if err := d.cfg.Runtime.StopPodSandbox(ctx, sb.GetId()); err != nil && !errors.Is(err, core.ErrNotFound) {
			errs = append(errs, fmt.Errorf("stop sandbox of pod %s/%s: %w", pod.Namespace, pod.Name, err))
			continue
		}
		d.log.Info("pod sandbox stopped", zap.String("pod", pod.Namespace+"/"+pod.Name), zap.String("sandbox", sb.GetId()))
	}
	return errors.Join(errs...)
}

// SyncTerminatedPod releases what the pod held once nothing of it runs:
// its probe workers and back-off state. Dead containers and sandboxes are
// left for garbage collection, as the kubelet leaves them.
func (d *Driver) SyncTerminatedPod(ctx context.Context, pod *v1.Pod, status *core.PodStatus) error {
	if status != nil {
		for _, cs := range status.ContainerStatuses {
			if cs.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
				return fmt.Errorf("pod %s/%s: container %q is still running", pod.Namespace, pod.Name, cs.GetMetadata().GetName())
			}
		}
	}
	if d.cfg.Probes != nil {
		d.cfg.Probes.RemovePod(pod.UID)
	}
	d.mu.Lock()
	delete(d.waiting, pod.UID)
	d.mu.Unlock()
	if u, ok := d.cfg.Volumes.(VolumeUnmounter); ok {
		if err := u.WaitForUnmount(ctx, pod); err != nil {
			return fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
	}
	return nil
}
