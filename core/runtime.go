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

// SandboxStopper stops a pod sandbox, killing any container still running
// in it. Stopping a stopped sandbox succeeds; stopping an unknown one either
// succeeds or is ErrNotFound, depending on the runtime.
type SandboxStopper interface {
	StopPodSandbox(ctx context.Context, sandboxID string) error
}

// SandboxRemover removes a pod sandbox and its containers. Removing an
// unknown sandbox succeeds.
type SandboxRemover interface {
	RemovePodSandbox(ctx context.Context, sandboxID string) error
}

// SandboxStatuser reports the status of one sandbox. An unknown ID is
// ErrNotFound.
type SandboxStatuser interface {
	PodSandboxStatus(ctx context.Context, sandboxID string, verbose bool) (*runtimeapi.PodSandboxStatusResponse, error)
}

// ContainerCreator creates a container in a sandbox and returns its ID.
// Creating a second container with the same name and attempt in a sandbox
// is ErrAlreadyExists; an image the runtime does not have is ErrNotFound.
type ContainerCreator interface {
	CreateContainer(ctx context.Context, sandboxID string, config *runtimeapi.ContainerConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error)
}

// ContainerStarter starts a created container.
type ContainerStarter interface {
	StartContainer(ctx context.Context, containerID string) error
}

// ContainerStopper stops a container: it sends the stop signal and kills
// the container after timeout seconds (0: at once). Stopping an exited
// container succeeds; stopping an unknown one either succeeds or is
// ErrNotFound, depending on the runtime (containerd 1.6 says not found, 2.x
// succeeds): treat both as "not running".
type ContainerStopper interface {
	StopContainer(ctx context.Context, containerID string, timeout int64) error
}

// ContainerRemover removes a container. Removing an unknown container
// succeeds.
type ContainerRemover interface {
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
// why: ctx's error; an error wrapping ErrUnimplemented when the runtime
// lacks the call; one wrapping ErrUnavailable when the stream broke. It
// never closes ch.
//
// onConnected, if not nil, is called once, from the streaming goroutine,
// when the stream is open. A runtime without the call may still reject the
// stream right after (containerd 1.6 does), so onConnected does not promise
// events: only the returned error tells. Events arrive in the order the
// runtime sent them; those sent while no stream was open are lost, so a
// consumer must look at the whole runtime again after every (re)connection.
type EventStreamer interface {
	GetContainerEvents(ctx context.Context, ch chan<- *runtimeapi.ContainerEventResponse, onConnected func()) error
}

// SandboxManager is everything done to sandboxes.
type SandboxManager interface {
	SandboxLister
	SandboxRunner
	SandboxStopper
	SandboxRemover
	SandboxStatuser
}

// ContainerManager is everything done to containers.
type ContainerManager interface {
	ContainerLister
	ContainerCreator
	ContainerStarter
	ContainerStopper
	ContainerRemover
	ContainerStatuser
	ExecSyncer
	ResourceUpdater
}

// ImageService is everything done to images.
type ImageService interface {
	ImageStatuser
	ImagePuller
	ImageManager
	ImageFsInfoer
}

// Runtime is the whole runtime port: the union of every required role.
// EventStreamer is not part of it; discover it by type assertion.
type Runtime interface {
	SandboxManager
	ContainerManager
	ImageService
	StatsLister
	StatusChecker
}
