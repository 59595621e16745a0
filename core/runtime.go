package core

import (
	"context"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// SandboxLister lists pod sandboxes. A nil filter lists all of them.
type SandboxLister interface {
	ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error)
}

// ContainerLister lists containers. A nil filter lists all of them.
type ContainerLister interface {
	ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error)
}

// SandboxRunner creates and starts a pod sandbox and returns its ID.
// runtimeHandler selects the runtime class ("" for the default).
type SandboxRunner interface {
	RunPodSandbox(ctx context.Context, config *runtimeapi.PodSandboxConfig, runtimeHandler string) (string, error)
}

// SandboxStopper stops and removes pod sandboxes. Stopping a sandbox kills
// any container still running in it. Both calls are idempotent: stopping a
// stopped sandbox or removing a removed one succeeds.
type SandboxStopper interface {
	StopPodSandbox(ctx context.Context, sandboxID string) error
	RemovePodSandbox(ctx context.Context, sandboxID string) error
}

// SandboxStatuser reports the status of one sandbox. An unknown ID is
// ErrNotFound.
type SandboxStatuser interface {
	PodSandboxStatus(ctx context.Context, sandboxID string, verbose bool) (*runtimeapi.PodSandboxStatusResponse, error)
}

// ContainerCreator creates a container in a sandbox and starts it.
type ContainerCreator interface {
	CreateContainer(ctx context.Context, sandboxID string, config *runtimeapi.ContainerConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error)
	StartContainer(ctx context.Context, containerID string) error
}

// ContainerStopper stops and removes containers. StopContainer sends the
// stop signal and kills the container after timeout seconds (0: at once).
// Stopping an exited container succeeds; stopping an unknown one either
// succeeds or is ErrNotFound, depending on the runtime (containerd 1.6 says
// not found, 2.x succeeds): treat both as "not running". Removing an unknown
// container succeeds.
type ContainerStopper interface {
	StopContainer(ctx context.Context, containerID string, timeout int64) error
	RemoveContainer(ctx context.Context, containerID string) error
}

// ContainerStatuser reports the status of one container. An unknown ID is
// ErrNotFound.
type ContainerStatuser interface {
	ContainerStatus(ctx context.Context, containerID string, verbose bool) (*runtimeapi.ContainerStatusResponse, error)
}

// ExecResult is the outcome of a command that ran to completion. A non-zero
// ExitCode is not an error.
type ExecResult struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int32
}

// ExecSyncer runs a command in a running container and waits for it. A
// command still running after timeout (0: no limit) is ErrTimeout.
type ExecSyncer interface {
	ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (ExecResult, error)
}

// ResourceUpdater changes the Linux resources of a running container.
type ResourceUpdater interface {
	UpdateContainerResources(ctx context.Context, containerID string, resources *runtimeapi.ContainerResources) error
}

// StatsLister reports resource usage of containers and sandboxes.
type StatsLister interface {
	ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error)
	ListPodSandboxStats(ctx context.Context, filter *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error)
}

// ImageStatuser reports whether an image is present. A missing image is a
// nil image in the response, not an error.
type ImageStatuser interface {
	ImageStatus(ctx context.Context, image *runtimeapi.ImageSpec, verbose bool) (*runtimeapi.ImageStatusResponse, error)
}

// ImagePuller pulls an image and returns its reference.
type ImagePuller interface {
	PullImage(ctx context.Context, image *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error)
}

// ImageManager lists and removes images (image garbage collection).
type ImageManager interface {
	ListImages(ctx context.Context, filter *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error)
	RemoveImage(ctx context.Context, image *runtimeapi.ImageSpec) error
}

// ImageFsInfoer reports the usage of the filesystems that hold images and
// container writable layers.
type ImageFsInfoer interface {
	ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error)
}

// StatusChecker reports the runtime's name, version and readiness.
type StatusChecker interface {
	Version(ctx context.Context) (*runtimeapi.VersionResponse, error)
	Status(ctx context.Context, verbose bool) (*runtimeapi.StatusResponse, error)
}

// EventStreamer is the optional push capability of a runtime. It streams
// container events into ch until ctx ends or the stream breaks, and returns
// the reason; it calls onConnected (if not nil) once the stream is
// established. A runtime that cannot stream returns ErrUnimplemented at once.
// It never closes ch.
type EventStreamer interface {
	GetContainerEvents(ctx context.Context, ch chan<- *runtimeapi.ContainerEventResponse, onConnected func()) error
}

// Runtime is the whole runtime port: the union of every required role.
// EventStreamer is not part of it; discover it by type assertion.
type Runtime interface {
	SandboxLister
	ContainerLister
	SandboxRunner
	SandboxStopper
	SandboxStatuser
	ContainerCreator
	ContainerStopper
	ContainerStatuser
	ExecSyncer
	ResourceUpdater
	StatsLister
	ImageStatuser
	ImagePuller
	ImageManager
	ImageFsInfoer
	StatusChecker
}
