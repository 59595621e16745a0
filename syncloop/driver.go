package syncloop

import (
	"context"
	"errors"
	"fmt"
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
	core.ContainerCreator
	core.ContainerStarter
	core.ContainerStopper
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
	Clock      clock.PassiveClock
	Logger     *zap.Logger
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
	return &Driver{cfg: cfg, log: cfg.Logger}, nil
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
