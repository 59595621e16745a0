package cri

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
	"k8s.io/klog/v2"
	utilexec "k8s.io/utils/exec"

	"github.com/nodekit/nodekit/core"
)

// Defaults of Config.
const (
	DefaultEndpoint       = "unix:///run/containerd/containerd.sock"
	DefaultRequestTimeout = 2 * time.Minute
	DefaultConnectTimeout = 10 * time.Second
)

// Config configures a connection to a CRI runtime. The zero value connects
// to containerd's default socket.
type Config struct {
	// Endpoint of the runtime service, "unix:///path" or a plain socket
	// path. Default DefaultEndpoint.
	Endpoint string
	// ImageEndpoint of the image service. Default: Endpoint.
	ImageEndpoint string
	// RequestTimeout bounds every call (ExecSync: the command's own timeout
	// plus this). Default DefaultRequestTimeout, as the kubelet's
	// runtimeRequestTimeout.
	RequestTimeout time.Duration
	// ConnectTimeout bounds New's wait for the runtime to answer. Default
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// Logger receives cri-client's messages, at debug level: every failure
	// is also returned to the caller. Default: none.
	Logger *zap.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.Endpoint == "" {
		c.Endpoint = DefaultEndpoint
	}
	if c.ImageEndpoint == "" {
		c.ImageEndpoint = c.Endpoint
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.RequestTimeout < 0 {
		return c, fmt.Errorf("cri: RequestTimeout %s: %w: must be positive", c.RequestTimeout, core.ErrInvalid)
	}
	if c.ConnectTimeout < 0 {
		return c, fmt.Errorf("cri: ConnectTimeout %s: %w: must be positive", c.ConnectTimeout, core.ErrInvalid)
	}
	return c, nil
}

// Runtime is a connection to a CRI runtime. It is safe for concurrent use.
type Runtime struct {
	cfg Config
	log logr.Logger
	rs  internalapi.RuntimeService
	is  internalapi.ImageManagerService
}

var (
	_ core.Runtime       = (*Runtime)(nil)
	_ core.EventStreamer = (*Runtime)(nil)
)

// New connects to the runtime and checks that it answers and is ready. The
// errors it returns wrap core.ErrUnavailable when the runtime cannot be
// used now and core.ErrInvalid when the configuration is wrong.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	clientLog := cfg.Logger.Named("cri-client").WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return debugCore{c} }))
	r := &Runtime{cfg: cfg, log: zapr.NewLogger(clientLog)}
	for _, ep := range []string{cfg.Endpoint, cfg.ImageEndpoint} {
		if err := checkSocket(ep); err != nil {
			return nil, err
		}
	}
	cctx, cancel := context.WithTimeout(r.ctx(ctx), cfg.ConnectTimeout)
	defer cancel()
	r.rs, err = remote.NewRemoteRuntimeServiceBuilder().
		WithEndpoint(cfg.Endpoint).
		WithConnectionTimeout(cfg.RequestTimeout).
		WithTracerProvider(nil).
		Build(cctx)
	if err != nil {
		return nil, fmt.Errorf("cri: connect to runtime service %s: %w: %w", cfg.Endpoint, core.ErrUnavailable, err)
	}
	r.is, err = remote.NewRemoteImageServiceBuilder().
		WithEndpoint(cfg.ImageEndpoint).
		WithConnectionTimeout(cfg.RequestTimeout).
		WithTracerProvider(nil).
		Build(cctx)
	if err != nil {
		_ = r.rs.Close(ctx)
		return nil, fmt.Errorf("cri: connect to image service %s: %w: %w", cfg.ImageEndpoint, core.ErrUnavailable, err)
	}
	if err := r.checkReady(cctx); err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}

// checkSocket fails fast, with a clear message, when a unix socket endpoint
// names a file that does not exist.
func checkSocket(endpoint string) error {
	path := endpoint
	if strings.Contains(endpoint, "://") {
		u, err := url.Parse(endpoint)
		if err != nil {
			return fmt.Errorf("cri: endpoint %q: %w: %w", endpoint, core.ErrInvalid, err)
		}
		if u.Scheme != "unix" {
			return fmt.Errorf("cri: endpoint %q: %w: only unix sockets are supported", endpoint, core.ErrInvalid)
		}
		path = u.Path
	}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cri: socket %s does not exist (is the runtime running?): %w", path, core.ErrUnavailable)
	}
	if err != nil {
		return fmt.Errorf("cri: socket %s: %w: %w", path, core.ErrUnavailable, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("cri: %s is not a unix socket: %w", path, core.ErrInvalid)
	}
	return nil
}

func (r *Runtime) checkReady(ctx context.Context) error {
	st, err := r.Status(ctx, false)
	if err != nil {
		return fmt.Errorf("cri: runtime at %s: %w", r.cfg.Endpoint, err)
	}
	for _, c := range st.GetStatus().GetConditions() {
		if c.GetType() == runtimeapi.RuntimeReady && !c.GetStatus() {
			return fmt.Errorf("cri: runtime at %s is not ready: %s: %s: %w", r.cfg.Endpoint, c.GetReason(), c.GetMessage(), core.ErrUnavailable)
		}
	}
	return nil
}

// Close closes the connections. Calls after Close fail.
func (r *Runtime) Close() error {
	ctx := r.ctx(context.Background())
	err := r.rs.Close(ctx)
	if r.is != nil {
		err = errors.Join(err, r.is.Close(ctx))
	}
	return err
}

// ctx puts the logger where cri-client looks for it.
func (r *Runtime) ctx(ctx context.Context) context.Context {
	return klog.NewContext(ctx, r.log)
}

// classify wraps a gRPC error with its core error class and the operation.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if class := classOf(err); class != nil {
		return fmt.Errorf("%s: %w: %w", op, class, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// classOf maps a runtime's error to a core error class, or nil.
func classOf(err error) error {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.NotFound:
		return core.ErrNotFound
	case codes.AlreadyExists:
		return core.ErrAlreadyExists
	case codes.InvalidArgument, codes.OutOfRange:
		return core.ErrInvalid
	case codes.Unimplemented:
		return core.ErrUnimplemented
	case codes.Unavailable:
		return core.ErrUnavailable
	case codes.DeadlineExceeded:
		return core.ErrTimeout
	case codes.Canceled:
		return context.Canceled
	case codes.Unknown, codes.FailedPrecondition:
		msg := st.Message()
		switch {
		case strings.Contains(msg, "is reserved for"):
			// containerd reports a taken sandbox or container name this
			// way (Unknown in 1.6, FailedPrecondition in 2.x).
			return core.ErrAlreadyExists
		case strings.Contains(msg, "an error occurred when try to find"):
			// containerd 1.6 reports some unknown IDs this way.
			return core.ErrNotFound
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return core.ErrTimeout
	}
	return nil
}

func podRef(md *runtimeapi.PodSandboxMetadata) string {
	return md.GetNamespace() + "/" + md.GetName()
}

// ListPodSandbox implements core.SandboxLister.
func (r *Runtime) ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	out, err := r.rs.ListPodSandbox(r.ctx(ctx), filter)
	return out, classify("list pod sandboxes", err)
}

// ListContainers implements core.ContainerLister.
func (r *Runtime) ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	out, err := r.rs.ListContainers(r.ctx(ctx), filter)
	return out, classify("list containers", err)
}

// RunPodSandbox implements core.SandboxRunner.
func (r *Runtime) RunPodSandbox(ctx context.Context, config *runtimeapi.PodSandboxConfig, runtimeHandler string) (string, error) {
	if config.GetMetadata() == nil {
		return "", fmt.Errorf("run pod sandbox: %w: config has no metadata", core.ErrInvalid)
	}
	id, err := r.rs.RunPodSandbox(r.ctx(ctx), config, runtimeHandler)
	return id, classify(fmt.Sprintf("run sandbox of pod %s (uid %s, attempt %d)", podRef(config.Metadata), config.Metadata.GetUid(), config.Metadata.GetAttempt()), err)
}

// StopPodSandbox implements core.SandboxStopper.
func (r *Runtime) StopPodSandbox(ctx context.Context, sandboxID string) error {
	return classify("stop pod sandbox "+sandboxID, r.rs.StopPodSandbox(r.ctx(ctx), sandboxID))
}

// RemovePodSandbox implements core.SandboxRemover.
func (r *Runtime) RemovePodSandbox(ctx context.Context, sandboxID string) error {
	return classify("remove pod sandbox "+sandboxID, r.rs.RemovePodSandbox(r.ctx(ctx), sandboxID))
}

// PodSandboxStatus implements core.SandboxStatuser.
func (r *Runtime) PodSandboxStatus(ctx context.Context, sandboxID string, verbose bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	out, err := r.rs.PodSandboxStatus(r.ctx(ctx), sandboxID, verbose)
	return out, classify("status of pod sandbox "+sandboxID, err)
}

// CreateContainer implements core.ContainerCreator. Its errors name the pod,
// the container and the image.
func (r *Runtime) CreateContainer(ctx context.Context, sandboxID string, config *runtimeapi.ContainerConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error) {
	if config.GetMetadata() == nil {
		return "", fmt.Errorf("create container in sandbox %s: %w: config has no metadata", sandboxID, core.ErrInvalid)
	}
	id, err := r.rs.CreateContainer(r.ctx(ctx), sandboxID, config, sandboxConfig)
	if err != nil {
		op := fmt.Sprintf("create container %q of pod %s (image %q)", config.Metadata.GetName(), podRef(sandboxConfig.GetMetadata()), config.GetImage().GetImage())
		return "", classify(op, err)
	}
	return id, nil
}

// StartContainer implements core.ContainerStarter. Its errors name the pod
// and the container.
func (r *Runtime) StartContainer(ctx context.Context, containerID string) error {
	if err := r.rs.StartContainer(r.ctx(ctx), containerID); err != nil {
		return classify("start "+r.describe(ctx, containerID), err)
	}
	return nil
}

// StopContainer implements core.ContainerStopper. Its errors name the pod
// and the container.
func (r *Runtime) StopContainer(ctx context.Context, containerID string, timeout int64) error {
	if err := r.rs.StopContainer(r.ctx(ctx), containerID, timeout); err != nil {
		return classify("stop "+r.describe(ctx, containerID), err)
	}
	return nil
}

// describe names a container by its pod and name for an error message,
// asking the runtime; it falls back to the bare ID. Only failure paths
// call it.
func (r *Runtime) describe(ctx context.Context, containerID string) string {
	resp, err := r.rs.ContainerStatus(r.ctx(ctx), containerID, false)
	if err != nil || resp.GetStatus() == nil {
		return "container " + containerID
	}
	l := resp.GetStatus().GetLabels()
	name := resp.GetStatus().GetMetadata().GetName()
	if ns, pod := l[core.LabelPodNamespace], l[core.LabelPodName]; pod != "" {
		return fmt.Sprintf("container %q of pod %s/%s (%s)", name, ns, pod, containerID)
	}
	return fmt.Sprintf("container %q (%s)", name, containerID)
}

// RemoveContainer implements core.ContainerRemover.
func (r *Runtime) RemoveContainer(ctx context.Context, containerID string) error {
	return classify("remove container "+containerID, r.rs.RemoveContainer(r.ctx(ctx), containerID))
}

// ContainerStatus implements core.ContainerStatuser.
func (r *Runtime) ContainerStatus(ctx context.Context, containerID string, verbose bool) (*runtimeapi.ContainerStatusResponse, error) {
	out, err := r.rs.ContainerStatus(r.ctx(ctx), containerID, verbose)
	return out, classify("status of container "+containerID, err)
}

// ExecSync implements core.ExecSyncer. A command that exits non-zero is a
// result, not an error. The CRI counts exec timeouts in whole seconds: a
// timeout with a fraction of a second is rounded up, never down to "no
// limit".
func (r *Runtime) ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (core.ExecResult, error) {
	if rem := timeout % time.Second; rem != 0 {
		timeout += time.Second - rem
	}
	stdout, stderr, err := r.rs.ExecSync(r.ctx(ctx), containerID, cmd, timeout)
	res := core.ExecResult{Stdout: stdout, Stderr: stderr}
	var exit utilexec.CodeExitError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &exit):
		res.ExitCode = int32(exit.Code)
		return res, nil
	case errors.Is(err, remote.ErrCommandTimedOut):
		return res, fmt.Errorf("exec %q in %s: %w: %w", cmd, r.describe(ctx, containerID), core.ErrTimeout, err)
	}
	return res, classify(fmt.Sprintf("exec %q in %s", cmd, r.describe(ctx, containerID)), err)
}

// UpdateContainerResources implements core.ResourceUpdater.
func (r *Runtime) UpdateContainerResources(ctx context.Context, containerID string, resources *runtimeapi.ContainerResources) error {
	return classify("update resources of container "+containerID, r.rs.UpdateContainerResources(r.ctx(ctx), containerID, resources))
}

// ListContainerStats implements core.StatsLister.
func (r *Runtime) ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	out, err := r.rs.ListContainerStats(r.ctx(ctx), filter)
	return out, classify("list container stats", err)
}

// ListPodSandboxStats implements core.StatsLister.
func (r *Runtime) ListPodSandboxStats(ctx context.Context, filter *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error) {
	out, err := r.rs.ListPodSandboxStats(r.ctx(ctx), filter)
	return out, classify("list pod sandbox stats", err)
}

// ImageStatus implements core.ImageStatuser.
func (r *Runtime) ImageStatus(ctx context.Context, image *runtimeapi.ImageSpec, verbose bool) (*runtimeapi.ImageStatusResponse, error) {
	out, err := r.is.ImageStatus(r.ctx(ctx), image, verbose)
	return out, classify(fmt.Sprintf("status of image %q", image.GetImage()), err)
}

// PullImage implements core.ImagePuller.
func (r *Runtime) PullImage(ctx context.Context, image *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error) {
	ref, err := r.is.PullImage(r.ctx(ctx), image, auth, sandboxConfig)
	return ref, classify(fmt.Sprintf("pull image %q for pod %s", image.GetImage(), podRef(sandboxConfig.GetMetadata())), err)
}

// ListImages implements core.ImageManager.
func (r *Runtime) ListImages(ctx context.Context, filter *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	out, err := r.is.ListImages(r.ctx(ctx), filter)
	return out, classify("list images", err)
}

// RemoveImage implements core.ImageManager.
func (r *Runtime) RemoveImage(ctx context.Context, image *runtimeapi.ImageSpec) error {
	return classify(fmt.Sprintf("remove image %q", image.GetImage()), r.is.RemoveImage(r.ctx(ctx), image))
}

// ImageFsInfo implements core.ImageFsInfoer.
func (r *Runtime) ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	out, err := r.is.ImageFsInfo(r.ctx(ctx))
	return out, classify("image filesystem info", err)
}

// Version implements core.StatusChecker.
func (r *Runtime) Version(ctx context.Context) (*runtimeapi.VersionResponse, error) {
	out, err := r.rs.Version(r.ctx(ctx), "v1")
	return out, classify("runtime version", err)
}

// Status implements core.StatusChecker.
func (r *Runtime) Status(ctx context.Context, verbose bool) (*runtimeapi.StatusResponse, error) {
	out, err := r.rs.Status(r.ctx(ctx), verbose)
	return out, classify("runtime status", err)
}
