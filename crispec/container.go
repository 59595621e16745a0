package crispec

import (
	"encoding/json"
	"maps"
	"math"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

// ContainerOptions are what the kubelet knows about a container besides
// the pod spec: facts from the runtime, the volume manager, the device
// manager and the CPU manager. The zero value suits a first attempt with
// no volumes, no pod IPs yet and an image that names no user.
type ContainerOptions struct {
	// RestartCount is the attempt number: 0 for the first container of
	// this name in the pod, one more than the last one after that. It is
	// the metadata attempt, names the log file and is annotated.
	RestartCount int

	// PodIPs are the sandbox's IPs, primary first, known once the sandbox
	// runs. They answer status.podIP(s) and decide the /etc/hosts mount.
	PodIPs []string

	// ImageRef is the image as pulled (digest or ID), from PullImage or
	// ImageStatus. Empty means the spec's image.
	ImageRef string

	// ImageUser is the user the image runs as, from ImageStatus.
	ImageUser ImageUser

	// Volumes are the pod's volumes as the volume manager mounted them,
	// by volume name. Every volumeMount must name one.
	Volumes map[string]Volume

	// PrepareSubPath, if set, turns a volume subPath into the host path to
	// bind-mount, the way the kubelet makes subPaths safe against symlinks
	// (it bind-mounts the resolved path under the pod's directory). When
	// nil the host path is the volume path joined with the subPath, which
	// has been checked to stay inside the volume lexically.
	PrepareSubPath func(p SubPath) (hostPath string, err error)

	// SupportsRecursiveReadOnly says the pod's runtime handler supports
	// recursive read-only mounts (from the runtime's status).
	SupportsRecursiveReadOnly bool

	// EtcHostsPath is the host path of the pod's managed hosts file (see
	// HostsFile), mounted at /etc/hosts when the pod has IPs or uses the
	// host network, unless the container mounts something there itself.
	// Empty: no hosts mount.
	EtcHostsPath string

	// TerminationMessageHostPath is the host file mounted at the
	// container's terminationMessagePath: the kubelet creates an empty
	// file, mode 0666, with a fresh name in the pod's per-container
	// directory for every attempt. Empty: no termination message mount.
	TerminationMessageHostPath string

	// ServiceEnv are the service environment variables the container sees
	// (FOO_SERVICE_HOST and the like): the "kubernetes" service of the
	// default namespace always, the services of the pod's namespace when
	// spec.enableServiceLinks is true. They may be referenced by $(NAME)
	// and are added after the container's own variables.
	ServiceEnv map[string]string

	// Devices are what the device manager and DRA allocated.
	Devices DeviceAllocation

	// UserNamespace: as SandboxOptions.UserNamespace, the same value.
	UserNamespace *runtimeapi.UserNamespace

	// ExtraSupplementalGroups: as SandboxOptions.ExtraSupplementalGroups.
	ExtraSupplementalGroups []int64

	// TargetContainerID is, for an ephemeral container, the ID of the
	// container whose PID namespace it joins (spec.targetContainerName).
	TargetContainerID string

	// Resources: set ExclusiveCPUs when the CPU manager pinned this
	// container to exclusive CPUs.
	Resources ResourceOptions
}

// ImageUser is the user an image is configured to run as, from the
// runtime's ImageStatus (Image.Uid or Image.Username). Both unset means
// the image names no user and runs as root, as the kubelet assumes.
type ImageUser struct {
	UID      *int64
	Username string
}

// imageUser returns the image's numeric user or its user name, never
// both; root when the image names no user.
func (o *ContainerOptions) imageUser() (uid *int64, username string) {
	switch {
	case o.ImageUser.UID != nil:
		u := *o.ImageUser.UID
		return &u, ""
	case o.ImageUser.Username != "":
		return nil, o.ImageUser.Username
	}
	return new(int64), ""
}

// Volume is a pod volume as the volume manager mounted it.
type Volume struct {
	// HostPath is where the volume is mounted on the node.
	HostPath string
	// ReadOnly forces every mount of the volume read-only (a read-only
	// PVC, for example).
	ReadOnly bool
	// SELinuxRelabel asks the runtime to relabel the volume for the
	// container: the volume plugin is SELinux-managed and supports
	// relabeling. Takes effect only with Config.SELinuxEnabled.
	SELinuxRelabel bool
	// Image, for an image volume, is the image the runtime mounts; HostPath
	// is then ignored.
	Image *runtimeapi.ImageSpec
}

// SubPath is a volume mount with a subPath, for
// ContainerOptions.PrepareSubPath.
type SubPath struct {
	// VolumeMountIndex is the index of the mount in the container's
	// volumeMounts.
	VolumeMountIndex int
	// VolumeName is the name of the pod volume.
	VolumeName string
	// VolumePath is the volume's host path.
	VolumePath string
	// Path is VolumePath joined with the (expanded) subPath.
	Path string
}

// DeviceAllocation is what device plugins and DRA give a container. The
// kubelet puts these envs before the container's own, these mounts before
// its volume mounts, and lets its own annotations win over these.
type DeviceAllocation struct {
	Envs        []*runtimeapi.KeyValue
	Mounts      []*runtimeapi.Mount
	DeviceNodes []*runtimeapi.Device
	CDIDevices  []*runtimeapi.CDIDevice
	Annotations map[string]string
}

// ContainerConfig translates one container of a pod into the config for
// CreateContainer, as the kubelet does. c is one of the pod's init or
// regular containers, or an ephemeral container's common part
// ((*v1.Container)(&ec.EphemeralContainerCommon)).
//
// The caller creates ContainerLogDir before creating the container, and
// the termination message file when it passes one.
//
// Input the kubelet would refuse (an unsupported downward API field, a
// subPath that leaves its volume, a Localhost seccomp profile without a
// name) is an error matching core.ErrInvalid; a volume, ConfigMap or
// Secret (key) that is not there (yet) matches core.ErrNotFound or passes
// the lookup's error through. Every error names the pod and the container.
func (t *Translator) ContainerConfig(pod *v1.Pod, c *v1.Container, opts ContainerOptions) (*runtimeapi.ContainerConfig, error) {
	if pod == nil {
		return nil, invalidf("nil pod")
	}
	if err := checkPodIdentity(pod); err != nil {
		return nil, err
	}
	if c == nil {
		return nil, podErr(pod, invalidf("nil container"))
	}
	cfg, err := t.containerConfig(pod, c, &opts)
	if err != nil {
		return nil, containerErr(pod, c, err)
	}
	return cfg, nil
}

func (t *Translator) containerConfig(pod *v1.Pod, c *v1.Container, opts *ContainerOptions) (*runtimeapi.ContainerConfig, error) {
	if c.Name == "" {
		return nil, invalidf("name is empty")
	}
	if opts.RestartCount < 0 || opts.RestartCount > math.MaxUint32 {
		return nil, invalidf("restart count %d is out of range", opts.RestartCount)
	}
	if err := verifyRunAsNonRoot(pod, c, opts); err != nil {
		return nil, err
	}

	envs, err := t.buildEnv(pod, c, opts)
	if err != nil {
		return nil, err
	}
	// References resolve against the final environment; a name set twice
	// resolves to its last value.
	envMap := make(map[string]string, len(envs))
	for _, kv := range envs {
		envMap[kv.Key] = string(kv.Value)
	}
	lookup := keepUnknown(envMap)
	var command, args []string
	for _, s := range c.Command {
		command = append(command, expand(s, lookup))
	}
	for _, s := range c.Args {
		args = append(args, expand(s, lookup))
	}

	mounts, err := t.mounts(pod, c, opts, envMap)
	if err != nil {
		return nil, err
	}

	resources, err := t.containerResources(pod, c, opts.Resources)
	if err != nil {
		return nil, err
	}
	sc, err := t.containerSecurityContext(pod, c, opts)
	if err != nil {
		return nil, err
	}
	if u := sc.NamespaceOptions.UsernsOptions; u != nil {
		for _, m := range mounts {
			m.UidMappings, m.GidMappings = u.Uids, u.Gids
		}
	}

	image := opts.ImageRef
	if image == "" {
		image = c.Image
	}
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{
			Name:    c.Name,
			Attempt: uint32(opts.RestartCount),
		},
		Image:       &runtimeapi.ImageSpec{Image: image, UserSpecifiedImage: c.Image},
		Command:     command,
		Args:        args,
		WorkingDir:  c.WorkingDir,
		Envs:        envs,
		Mounts:      mounts,
		Devices:     cloneDevices(opts.Devices.DeviceNodes),
		CDIDevices:  cloneCDIDevices(opts.Devices.CDIDevices),
		Labels:      containerLabels(pod, c),
		Annotations: containerAnnotations(pod, c, opts),
		LogPath:     ContainerLogPath(c.Name, opts.RestartCount),
		Stdin:       c.Stdin,
		StdinOnce:   c.StdinOnce,
		Tty:         c.TTY,
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       resources,
			SecurityContext: sc,
		},
	}
	return cfg, nil
}

// verifyRunAsNonRoot refuses a container with runAsNonRoot that would run
// as root, or whose user cannot be checked (a user name in the image).
func verifyRunAsNonRoot(pod *v1.Pod, c *v1.Container, opts *ContainerOptions) error {
	sc := effectiveSecurityContext(pod, c)
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		return nil
	}
	if sc.RunAsUser != nil {
		if *sc.RunAsUser == 0 {
			return invalidf("securityContext: runAsNonRoot is true but runAsUser is 0")
		}
		return nil
	}
	uid, username := opts.imageUser()
	switch {
	case uid == nil:
		return invalidf("securityContext: runAsNonRoot is true and the image's user %q is not numeric, so it cannot be verified", username)
	case *uid == 0:
		return invalidf("securityContext: runAsNonRoot is true and the image runs as root")
	}
	if errs := validation.IsValidUserID(*uid); len(errs) > 0 {
		return invalidf("securityContext: runAsNonRoot is true and the image's user ID %d is invalid: %s", *uid, strings.Join(errs, "; "))
	}
	return nil
}

// containerLabels tie the container to its pod.
func containerLabels(pod *v1.Pod, c *v1.Container) map[string]string {
	return map[string]string{
		core.LabelPodName:       pod.Name,
		core.LabelPodNamespace:  pod.Namespace,
		core.LabelPodUID:        string(pod.UID),
		core.LabelContainerName: c.Name,
	}
}

// containerAnnotations record what the kubelet needs to manage the
// container after a restart of its own: the spec hash, the restart count,
// the termination message settings, the grace periods, the preStop hook
// and the ports. core.ContainerInfoFromLabels reads them back.
func containerAnnotations(pod *v1.Pod, c *v1.Container, opts *ContainerOptions) map[string]string {
	a := make(map[string]string, len(opts.Devices.Annotations)+8)
	maps.Copy(a, opts.Devices.Annotations)
	a[core.AnnotationContainerHash] = strconv.FormatUint(ContainerHash(c), 16)
	a[core.AnnotationContainerRestartCount] = strconv.Itoa(opts.RestartCount)
	a[core.AnnotationContainerTerminationMessagePath] = c.TerminationMessagePath
	a[core.AnnotationContainerTerminationMessagePolicy] = string(c.TerminationMessagePolicy)
	if p := pod.DeletionGracePeriodSeconds; p != nil {
		a[core.AnnotationPodDeletionGracePeriod] = strconv.FormatInt(*p, 10)
	}
	if p := pod.Spec.TerminationGracePeriodSeconds; p != nil {
		a[core.AnnotationPodTerminationGracePeriod] = strconv.FormatInt(*p, 10)
	}
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		if b, err := json.Marshal(c.Lifecycle.PreStop); err == nil {
			a[core.AnnotationContainerPreStopHandler] = string(b)
		}
	}
	if len(c.Ports) > 0 {
		if b, err := json.Marshal(c.Ports); err == nil {
			a[core.AnnotationContainerPorts] = string(b)
		}
	}
	return a
}

func cloneDevices(in []*runtimeapi.Device) []*runtimeapi.Device {
	out := make([]*runtimeapi.Device, 0, len(in))
	for _, d := range in {
		if d != nil {
			out = append(out, &runtimeapi.Device{ContainerPath: d.ContainerPath, HostPath: d.HostPath, Permissions: d.Permissions})
		}
	}
	return out
}

func cloneCDIDevices(in []*runtimeapi.CDIDevice) []*runtimeapi.CDIDevice {
	out := make([]*runtimeapi.CDIDevice, 0, len(in))
	for _, d := range in {
		if d != nil {
			out = append(out, &runtimeapi.CDIDevice{Name: d.Name})
		}
	}
	return out
}
