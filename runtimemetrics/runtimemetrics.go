package runtimemetrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// Config configures New.
type Config struct {
	// Runtime is the runtime to instrument. Required.
	Runtime core.Runtime
	// Registerer receives the metrics. Default: none, and New returns
	// Runtime itself. Several runtimes instrumented with one Registerer
	// share the metrics, as the kubelet's runtime and image services do.
	Registerer prometheus.Registerer
	// Clock times the calls. Default: the real clock.
	Clock clock.PassiveClock
}

// New returns a core.Runtime that passes every call to cfg.Runtime and
// records it. The result implements core.EventStreamer if cfg.Runtime
// does, and io.Closer if cfg.Runtime does, and nothing else. Errors wrap
// core.ErrInvalid for a missing Runtime, or are the Registerer's when it
// already holds a different metric of the same name.
func New(cfg Config) (core.Runtime, error) {
	if cfg.Runtime == nil {
		return nil, fmt.Errorf("runtimemetrics: Runtime is required: %w", core.ErrInvalid)
	}
	if cfg.Registerer == nil {
		return cfg.Runtime, nil
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("runtimemetrics: register metrics: %w", err)
	}
	r := &instrumented{rt: cfg.Runtime, m: m, clock: cfg.Clock}
	es, isStreamer := cfg.Runtime.(core.EventStreamer)
	c, isCloser := cfg.Runtime.(io.Closer)
	switch {
	case isStreamer && isCloser:
		return struct {
			*instrumented
			eventStreamer
			closer
		}{r, eventStreamer{r, es}, closer{r, c}}, nil
	case isStreamer:
		return struct {
			*instrumented
			eventStreamer
		}{r, eventStreamer{r, es}}, nil
	case isCloser:
		return struct {
			*instrumented
			closer
		}{r, closer{r, c}}, nil
	default:
		return r, nil
	}
}

// metrics are the kubelet's runtime operation metrics, under its names.
type metrics struct {
	operations    *prometheus.CounterVec
	errors        *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	sandboxTime   *prometheus.HistogramVec
	sandboxErrors *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns = "kubelet"
	m := &metrics{
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "runtime_operations_total",
			Help: "Cumulative number of runtime operations by operation type."}, []string{"operation_type"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "runtime_operations_errors_total",
			Help: "Cumulative number of runtime operation errors by operation type."}, []string{"operation_type"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "runtime_operations_duration_seconds",
			Help:    "Duration in seconds of runtime operations. Broken down by operation type.",
			Buckets: prometheus.ExponentialBuckets(.005, 2.5, 14)}, []string{"operation_type"}),
		sandboxTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "run_podsandbox_duration_seconds",
			Help:    "Duration in seconds of the run_podsandbox operations. Broken down by RuntimeClass.Handler.",
			Buckets: prometheus.DefBuckets}, []string{"runtime_handler"}),
		sandboxErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "run_podsandbox_errors_total",
			Help: "Cumulative number of the run_podsandbox operation errors by RuntimeClass.Handler."}, []string{"runtime_handler"}),
	}
	var errs []error
	var err error
	m.operations, err = register(reg, m.operations)
	errs = append(errs, err)
	m.errors, err = register(reg, m.errors)
	errs = append(errs, err)
	m.duration, err = register(reg, m.duration)
	errs = append(errs, err)
	m.sandboxTime, err = register(reg, m.sandboxTime)
	errs = append(errs, err)
	m.sandboxErrors, err = register(reg, m.sandboxErrors)
	errs = append(errs, err)
	return m, errors.Join(errs...)
}

// register registers c, or returns the equal collector reg already holds.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var dup prometheus.AlreadyRegisteredError
	if errors.As(err, &dup) {
		if existing, ok := dup.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

// Operation types, as the kubelet names them.
const (
	opListPodSandbox      = "list_podsandbox"
	opRunPodSandbox       = "run_podsandbox"
	opStopPodSandbox      = "stop_podsandbox"
	opRemovePodSandbox    = "remove_podsandbox"
	opPodSandboxStatus    = "podsandbox_status"
	opListContainers      = "list_containers"
	opCreateContainer     = "create_container"
	opStartContainer      = "start_container"
	opStopContainer       = "stop_container"
	opRemoveContainer     = "remove_container"
	opContainerStatus     = "container_status"
	opExecSync            = "exec_sync"
	opUpdateContainer     = "update_container"
	opListContainerStats  = "list_container_stats"
	opListPodSandboxStats = "list_podsandbox_stats"
	opImageStatus         = "image_status"
	opPullImage           = "pull_image"
	opListImages          = "list_images"
	opRemoveImage         = "remove_image"
	opImageFsInfo         = "image_fs_info"
	opVersion             = "version"
	opStatus              = "status"
	opGetContainerEvents  = "get_container_events"
	opClose               = "close"
)

// instrumented is the core.Runtime that records every call.
type instrumented struct {
	rt    core.Runtime
	m     *metrics
	clock clock.PassiveClock
}

var _ core.Runtime = (*instrumented)(nil)

// record counts one call of op that started at start and failed if err is
// not nil; recordFor one that took d.
func (r *instrumented) record(op string, start time.Time, err error) {
	r.recordFor(op, r.clock.Since(start), err)
}

func (r *instrumented) recordFor(op string, d time.Duration, err error) {
	r.m.operations.WithLabelValues(op).Inc()
	r.m.duration.WithLabelValues(op).Observe(d.Seconds())
	if err != nil {
		r.m.errors.WithLabelValues(op).Inc()
	}
}

// ListPodSandbox records list_podsandbox.
func (r *instrumented) ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	start := r.clock.Now()
	out, err := r.rt.ListPodSandbox(ctx, filter)
	r.record(opListPodSandbox, start, err)
	return out, err
}

// RunPodSandbox records run_podsandbox, and its duration and failure by
// runtime handler.
func (r *instrumented) RunPodSandbox(ctx context.Context, config *runtimeapi.PodSandboxConfig, runtimeHandler string) (string, error) {
	start := r.clock.Now()
	out, err := r.rt.RunPodSandbox(ctx, config, runtimeHandler)
	d := r.clock.Since(start)
	r.recordFor(opRunPodSandbox, d, err)
	r.m.sandboxTime.WithLabelValues(runtimeHandler).Observe(d.Seconds())
	if err != nil {
		r.m.sandboxErrors.WithLabelValues(runtimeHandler).Inc()
	}
	return out, err
}

// StopPodSandbox records stop_podsandbox.
func (r *instrumented) StopPodSandbox(ctx context.Context, sandboxID string) error {
	start := r.clock.Now()
	err := r.rt.StopPodSandbox(ctx, sandboxID)
	r.record(opStopPodSandbox, start, err)
	return err
}

// RemovePodSandbox records remove_podsandbox.
func (r *instrumented) RemovePodSandbox(ctx context.Context, sandboxID string) error {
	start := r.clock.Now()
	err := r.rt.RemovePodSandbox(ctx, sandboxID)
	r.record(opRemovePodSandbox, start, err)
	return err
}

// PodSandboxStatus records podsandbox_status.
func (r *instrumented) PodSandboxStatus(ctx context.Context, sandboxID string, verbose bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	start := r.clock.Now()
	out, err := r.rt.PodSandboxStatus(ctx, sandboxID, verbose)
	r.record(opPodSandboxStatus, start, err)
	return out, err
}

// ListContainers records list_containers.
func (r *instrumented) ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	start := r.clock.Now()
	out, err := r.rt.ListContainers(ctx, filter)
	r.record(opListContainers, start, err)
	return out, err
}

// CreateContainer records create_container.
func (r *instrumented) CreateContainer(ctx context.Context, sandboxID string, config *runtimeapi.ContainerConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error) {
	start := r.clock.Now()
	out, err := r.rt.CreateContainer(ctx, sandboxID, config, sandboxConfig)
	r.record(opCreateContainer, start, err)
	return out, err
}

// StartContainer records start_container.
func (r *instrumented) StartContainer(ctx context.Context, containerID string) error {
	start := r.clock.Now()
	err := r.rt.StartContainer(ctx, containerID)
	r.record(opStartContainer, start, err)
	return err
}

// StopContainer records stop_container.
func (r *instrumented) StopContainer(ctx context.Context, containerID string, timeout int64) error {
	start := r.clock.Now()
	err := r.rt.StopContainer(ctx, containerID, timeout)
	r.record(opStopContainer, start, err)
	return err
}

// RemoveContainer records remove_container.
func (r *instrumented) RemoveContainer(ctx context.Context, containerID string) error {
	start := r.clock.Now()
	err := r.rt.RemoveContainer(ctx, containerID)
	r.record(opRemoveContainer, start, err)
	return err
}

// ContainerStatus records container_status.
func (r *instrumented) ContainerStatus(ctx context.Context, containerID string, verbose bool) (*runtimeapi.ContainerStatusResponse, error) {
	start := r.clock.Now()
	out, err := r.rt.ContainerStatus(ctx, containerID, verbose)
	r.record(opContainerStatus, start, err)
	return out, err
}

// ExecSync records exec_sync. A command that exited non-zero counts as an
// error, as it does in the kubelet, whose CRI client turns the exit code
// into an error; the result and error returned are the runtime's.
func (r *instrumented) ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (core.ExecResult, error) {
	start := r.clock.Now()
	out, err := r.rt.ExecSync(ctx, containerID, cmd, timeout)
	failed := err
	if failed == nil && out.ExitCode != 0 {
		failed = errNonZeroExit
	}
	r.record(opExecSync, start, failed)
	return out, err
}

// errNonZeroExit marks an exec that ran and failed; it is never returned.
var errNonZeroExit = errors.New("non-zero exit code")

// UpdateContainerResources records update_container.
func (r *instrumented) UpdateContainerResources(ctx context.Context, containerID string, resources *runtimeapi.ContainerResources) error {
	start := r.clock.Now()
	err := r.rt.UpdateContainerResources(ctx, containerID, resources)
	r.record(opUpdateContainer, start, err)
	return err
}

// ListContainerStats records list_container_stats.
func (r *instrumented) ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	start := r.clock.Now()
	out, err := r.rt.ListContainerStats(ctx, filter)
	r.record(opListContainerStats, start, err)
	return out, err
}

// ListPodSandboxStats records list_podsandbox_stats.
func (r *instrumented) ListPodSandboxStats(ctx context.Context, filter *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error) {
	start := r.clock.Now()
	out, err := r.rt.ListPodSandboxStats(ctx, filter)
	r.record(opListPodSandboxStats, start, err)
	return out, err
}

// ImageStatus records image_status.
func (r *instrumented) ImageStatus(ctx context.Context, image *runtimeapi.ImageSpec, verbose bool) (*runtimeapi.ImageStatusResponse, error) {
	start := r.clock.Now()
	out, err := r.rt.ImageStatus(ctx, image, verbose)
	r.record(opImageStatus, start, err)
	return out, err
}

// PullImage records pull_image.
func (r *instrumented) PullImage(ctx context.Context, image *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error) {
	start := r.clock.Now()
	out, err := r.rt.PullImage(ctx, image, auth, sandboxConfig)
	r.record(opPullImage, start, err)
	return out, err
}

// ListImages records list_images.
func (r *instrumented) ListImages(ctx context.Context, filter *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	start := r.clock.Now()
	out, err := r.rt.ListImages(ctx, filter)
	r.record(opListImages, start, err)
	return out, err
}

// RemoveImage records remove_image.
func (r *instrumented) RemoveImage(ctx context.Context, image *runtimeapi.ImageSpec) error {
	start := r.clock.Now()
	err := r.rt.RemoveImage(ctx, image)
	r.record(opRemoveImage, start, err)
	return err
}

// ImageFsInfo records image_fs_info.
func (r *instrumented) ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	start := r.clock.Now()
	out, err := r.rt.ImageFsInfo(ctx)
	r.record(opImageFsInfo, start, err)
	return out, err
}

// Version records version.
func (r *instrumented) Version(ctx context.Context) (*runtimeapi.VersionResponse, error) {
	start := r.clock.Now()
	out, err := r.rt.Version(ctx)
	r.record(opVersion, start, err)
	return out, err
}

// Status records status.
func (r *instrumented) Status(ctx context.Context, verbose bool) (*runtimeapi.StatusResponse, error) {
	start := r.clock.Now()
	out, err := r.rt.Status(ctx, verbose)
	r.record(opStatus, start, err)
	return out, err
}

// eventStreamer is the instrumented core.EventStreamer of a runtime that
// has one.
type eventStreamer struct {
	r  *instrumented
	es core.EventStreamer
}

// GetContainerEvents records get_container_events when the stream ends:
// its duration is the stream's life, and it counts as an error whenever it
// returns one, ctx's included.
func (e eventStreamer) GetContainerEvents(ctx context.Context, ch chan<- *runtimeapi.ContainerEventResponse, onConnected func()) error {
	start := e.r.clock.Now()
	err := e.es.GetContainerEvents(ctx, ch, onConnected)
	e.r.record(opGetContainerEvents, start, err)
	return err
}

// closer is the instrumented io.Closer of a runtime that has one.
type closer struct {
	r *instrumented
	c io.Closer
}

// Close records close.
func (c closer) Close() error {
	start := c.r.clock.Now()
	err := c.c.Close()
	c.r.record(opClose, start, err)
	return err
}
