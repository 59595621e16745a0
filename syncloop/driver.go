package syncloop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
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
	// CgroupParent of every pod sandbox the driver runs. Default: none
	// (the runtime's default).
	CgroupParent string
	Clock        clock.PassiveClock
	Logger       *zap.Logger
}

// Driver carries out what a pod's worker decided, on the runtime: it is
// the Syncer of the Workers.
type Driver struct {
	cfg DriverConfig
	log *zap.Logger
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
	return &Driver{cfg: cfg, log: cfg.Logger}, nil
}

var _ Syncer = (*Driver)(nil)

// SyncPod carries out one Plan: it kills what must go, replaces the
// sandbox when needed, and starts the init, sidecar and regular containers
// the plan lists, in the order PodActions documents. It reports terminal
// when the plan says nothing of the pod runs again.
func (d *Driver) SyncPod(ctx context.Context, pod *v1.Pod, status *core.PodStatus) (bool, error) {
	if status == nil {
		status = &core.PodStatus{UID: pod.UID}
	}
	actions := Plan(pod, status, PlanInput{BackOff: RestartBackOff(d.cfg.BackOff, pod)})
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
		for id, k := range actions.ContainersToKill {
			if err := d.cfg.Runtime.StopContainer(ctx, id, grace); err != nil && !errors.Is(err, core.ErrNotFound) {
				return false, fmt.Errorf("stop container %q of pod %s/%s (%s): %w", k.Name, pod.Namespace, pod.Name, k.Reason, err)
			}
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
	sbCfg, err := d.cfg.Translator.SandboxConfig(pod, attempt, crispec.SandboxOptions{CgroupParent: d.cfg.CgroupParent})
	if err != nil {
		return false, err
	}
	sandboxID := actions.SandboxID
	if actions.CreateSandbox {
		if err := os.MkdirAll(sbCfg.LogDirectory, 0o755); err != nil {
			return false, fmt.Errorf("pod %s/%s: log directory: %w", pod.Namespace, pod.Name, err)
		}
		if sandboxID, err = d.cfg.Runtime.RunPodSandbox(ctx, sbCfg, ""); err != nil {
			return false, err
		}
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
	podIPs := core.SandboxIPs(current)
	start := func(c *v1.Container, restartCount int) error {
		imageRef, err := d.ensureImage(ctx, pod, c, sbCfg)
		if err != nil {
			return err
		}
		cfg, err := d.cfg.Translator.ContainerConfig(pod, c, crispec.ContainerOptions{RestartCount: restartCount, PodIPs: podIPs, ImageRef: imageRef})
		if err != nil {
			return err
		}
		id, err := d.cfg.Runtime.CreateContainer(ctx, sandboxID, cfg, sbCfg)
		if err != nil {
			return err
		}
		return d.cfg.Runtime.StartContainer(ctx, id)
	}
	var errs []error
	for _, c := range actions.InitContainersToStart {
		ic := &pod.Spec.InitContainers[c.Index]
		if err := start(ic, c.RestartCount); err != nil {
			if !isSidecar(ic) {
				return false, err
			}
			errs = append(errs, err)
		}
	}
	for _, c := range actions.ContainersToStart {
		if err := start(&pod.Spec.Containers[c.Index], c.RestartCount); err != nil {
			errs = append(errs, err)
		}
	}
	return false, errors.Join(errs...)
}

func isInitContainer(pod *v1.Pod, name string) bool {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return true
		}
	}
	return false
}

// ensureImage makes sure the container's image is present, pulling it
// unless the pull policy forbids it, and returns its reference.
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
	return d.cfg.Runtime.PullImage(ctx, spec, nil, sbCfg)
}

// SyncTerminatingPod stops every container of the pod that has not
// exited, in TerminationOrder, within gracePeriod seconds shared by all
// stages (a stage that starts after the deadline still gives its
// containers MinimumStopGracePeriod), then stops the pod's sandboxes.
func (d *Driver) SyncTerminatingPod(ctx context.Context, pod *v1.Pod, status *core.PodStatus, gracePeriod int64) error {
	deadline := d.cfg.Clock.Now().Add(time.Duration(gracePeriod) * time.Second)
	if status == nil {
		status = &core.PodStatus{}
	}
	ids := map[string][]string{}
	var names []string
	for _, cs := range status.ContainerStatuses {
		if cs.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			continue
		}
		name := cs.GetMetadata().GetName()
		if _, seen := ids[name]; !seen {
			names = append(names, name)
		}
		ids[name] = append(ids[name], cs.GetId())
	}
	var mu sync.Mutex
	var errs []error
	for _, stage := range TerminationOrder(pod, names) {
		left := deadline.Sub(d.cfg.Clock.Now())
		timeout := max(int64((left+time.Second-1)/time.Second), MinimumStopGracePeriod)
		var wg sync.WaitGroup
		for _, name := range stage {
			for _, id := range ids[name] {
				wg.Go(func() {
					err := d.cfg.Runtime.StopContainer(ctx, id, timeout)
					if err != nil && !errors.Is(err, core.ErrNotFound) {
						mu.Lock()
						errs = append(errs, fmt.Errorf("stop container %q of pod %s/%s: %w", name, pod.Namespace, pod.Name, err))
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
		}
	}
	return errors.Join(errs...)
}

// SyncTerminatedPod releases what the pod held once nothing of it runs.
// The driver holds nothing itself; dead containers and sandboxes are left
// for garbage collection, as the kubelet leaves them.
func (d *Driver) SyncTerminatedPod(ctx context.Context, pod *v1.Pod, status *core.PodStatus) error {
	if status == nil {
		return nil
	}
	for _, cs := range status.ContainerStatuses {
		if cs.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
			return fmt.Errorf("pod %s/%s: container %q is still running", pod.Namespace, pod.Name, cs.GetMetadata().GetName())
		}
	}
	return nil
}
