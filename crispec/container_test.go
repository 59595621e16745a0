package crispec_test

import (
	"errors"
	"testing"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
)

func TestContainerConfig(t *testing.T) {
	tr := newTranslator(t, crispec.Config{MemoryCapacity: 16 << 30, SELinuxEnabled: true})
	pod := webPod()
	pod.DeletionGracePeriodSeconds = ptr(int64(10))
	pod.Spec.TerminationGracePeriodSeconds = ptr(int64(30))
	hostToContainer := v1.MountPropagationHostToContainer
	c := &pod.Spec.Containers[0]
	c.Command = []string{"/bin/web"}
	c.Args = []string{"--listen=:$(PORT)", "--pod=$(POD_NAME)"}
	c.WorkingDir = "/srv"
	c.Env = []v1.EnvVar{{Name: "PORT", Value: "8080"}, fieldEnv("POD_NAME", "metadata.name")}
	c.VolumeMounts = []v1.VolumeMount{
		{Name: "config", MountPath: "/etc/web", ReadOnly: true},
		{Name: "data", MountPath: "/var/lib/web", SubPathExpr: "$(POD_NAME)", MountPropagation: &hostToContainer},
	}
	c.Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"sleep", "5"}}}}
	c.SecurityContext = &v1.SecurityContext{
		Capabilities:             &v1.Capabilities{Add: []v1.Capability{"NET_BIND_SERVICE"}, Drop: []v1.Capability{"ALL"}},
		AllowPrivilegeEscalation: ptr(false),
		ReadOnlyRootFilesystem:   ptr(true),
	}
	c.TerminationMessagePath = "/dev/termination-log"
	c.TerminationMessagePolicy = v1.TerminationMessageReadFile

	got, err := tr.ContainerConfig(pod, c, crispec.ContainerOptions{
		RestartCount: 2,
		PodIPs:       []string{"10.244.1.7"},
		ImageRef:     "registry.example.com/shop/web@sha256:abcd",
		ImageUser:    crispec.ImageUser{UID: ptr(int64(101))},
		Volumes: map[string]crispec.Volume{
			"config": {HostPath: "/var/lib/kubelet/pods/0b7e/volumes/kubernetes.io~configmap/config"},
			"data":   {HostPath: "/var/lib/kubelet/pods/0b7e/volumes/kubernetes.io~empty-dir/data", SELinuxRelabel: true},
		},
		EtcHostsPath:               "/var/lib/kubelet/pods/0b7e/etc-hosts",
		TerminationMessageHostPath: "/var/lib/kubelet/pods/0b7e/containers/app/3f2a9c1d",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app", Attempt: 2},
		Image: &runtimeapi.ImageSpec{
			Image:              "registry.example.com/shop/web@sha256:abcd",
			UserSpecifiedImage: "registry.example.com/shop/web:1.4.2",
		},
		Command:    []string{"/bin/web"},
		Args:       []string{"--listen=:8080", "--pod=web-0"},
		WorkingDir: "/srv",
		Envs: []*runtimeapi.KeyValue{
			{Key: "PORT", Value: []byte("8080")},
			{Key: "POD_NAME", Value: []byte("web-0")},
		},
		Mounts: []*runtimeapi.Mount{{
			ContainerPath: "/etc/web",
			HostPath:      "/var/lib/kubelet/pods/0b7e/volumes/kubernetes.io~configmap/config",
			Readonly:      true,
		}, {
			ContainerPath:  "/var/lib/web",
			HostPath:       "/var/lib/kubelet/pods/0b7e/volumes/kubernetes.io~empty-dir/data/web-0",
			SelinuxRelabel: true,
			Propagation:    runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER,
		}, {
			ContainerPath:  "/etc/hosts",
			HostPath:       "/var/lib/kubelet/pods/0b7e/etc-hosts",
			SelinuxRelabel: true,
		}, {
			ContainerPath:  "/dev/termination-log",
			HostPath:       "/var/lib/kubelet/pods/0b7e/containers/app/3f2a9c1d",
			SelinuxRelabel: true,
		}},
		Labels: map[string]string{
			"io.kubernetes.pod.name":       "web-0",
			"io.kubernetes.pod.namespace":  "shop",
			"io.kubernetes.pod.uid":        "0b7e6c1e-1111-4c4c-9c9c-000000000001",
			"io.kubernetes.container.name": "app",
		},
		Annotations: map[string]string{
			"io.kubernetes.container.hash":                     "f16c2629",
			"io.kubernetes.container.restartCount":             "2",
			"io.kubernetes.container.terminationMessagePath":   "/dev/termination-log",
			"io.kubernetes.container.terminationMessagePolicy": "File",
			"io.kubernetes.pod.deletionGracePeriod":            "10",
			"io.kubernetes.pod.terminationGracePeriod":         "30",
			"io.kubernetes.container.preStopHandler":           `{"exec":{"command":["sleep","5"]}}`,
			"io.kubernetes.container.ports":                    `[{"name":"http","containerPort":8080,"protocol":"TCP"},{"name":"dns","hostPort":53,"containerPort":53,"protocol":"UDP","hostIP":"10.0.0.5"}]`,
		},
		LogPath: "app/2.log",
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources: &runtimeapi.LinuxContainerResources{
				CpuPeriod: 100000, CpuQuota: 100000, CpuShares: 256,
				MemoryLimitInBytes: 512 << 20,
				OomScoreAdj:        993, // 1000 - 1000*128Mi/16Gi
			},
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				Capabilities: &runtimeapi.Capability{AddCapabilities: []string{"NET_BIND_SERVICE"}, DropCapabilities: []string{"ALL"}},
				NamespaceOptions: &runtimeapi.NamespaceOption{
					Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD,
					UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE},
				},
				RunAsUser:          &runtimeapi.Int64Value{Value: 1000},
				RunAsGroup:         &runtimeapi.Int64Value{Value: 3000},
				ReadonlyRootfs:     true,
				SupplementalGroups: []int64{2000, 4000},
				NoNewPrivs:         true,
				MaskedPaths:        crispec.DefaultMaskedPaths(),
				ReadonlyPaths:      crispec.DefaultReadonlyPaths(),
				Seccomp:            &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
			},
		},
	}
	assertSameJSON(t, "container config", got, want)
}

func TestContainerSecurityContext(t *testing.T) {
	unmasked := v1.UnmaskedProcMount
	for _, tc := range []struct {
		name string
		cfg  crispec.Config
		pod  func(*v1.Pod)
		opts crispec.ContainerOptions
		want func(*runtimeapi.LinuxContainerSecurityContext)
	}{{
		name: "nil security contexts: the image's user, unconfined seccomp",
		pod:  func(*v1.Pod) {},
		want: func(*runtimeapi.LinuxContainerSecurityContext) {},
	}, {
		name: "image with a user name",
		pod:  func(*v1.Pod) {},
		opts: crispec.ContainerOptions{ImageUser: crispec.ImageUser{Username: "nginx"}},
		want: func(sc *runtimeapi.LinuxContainerSecurityContext) {
			sc.RunAsUser = nil
			sc.RunAsUsername = "nginx"
		},
	}, {
		name: "image with a numeric user",
		pod:  func(*v1.Pod) {},
		opts: crispec.ContainerOptions{ImageUser: crispec.ImageUser{UID: ptr(int64(65534)), Username: "nobody"}},
		want: func(sc *runtimeapi.LinuxContainerSecurityContext) { sc.RunAsUser.Value = 65534 },
	}, {
		name: "container fields win over the pod's",
		pod: func(p *v1.Pod) {
			p.Spec.SecurityContext = &v1.PodSecurityContext{
				RunAsUser: ptr(int64(1)), RunAsGroup: ptr(int64(2)),
				SELinuxOptions:  &v1.SELinuxOptions{Level: "s0:c1"},
				SeccompProfile:  &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault},
				AppArmorProfile: &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeRuntimeDefault},
			}
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{
				RunAsUser: ptr(int64(10)), RunAsGroup: ptr(int64(20)),
				SELinuxOptions:  &v1.SELinuxOptions{Type: "spc_t"},
				SeccompProfile:  &v1.SeccompProfile{Type: v1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr("my.json")},
				AppArmorProfile: &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeUnconfined},
				Privileged:      ptr(true),
				ProcMount:       &unmasked,
			}
		},
		cfg: crispec.Config{SeccompProfileRoot: "/etc/seccomp"},
		want: func(sc *runtimeapi.LinuxContainerSecurityContext) {
			sc.RunAsUser.Value = 10
			sc.RunAsGroup = &runtimeapi.Int64Value{Value: 20}
			sc.SelinuxOptions = &runtimeapi.SELinuxOption{Type: "spc_t"}
			sc.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/etc/seccomp/my.json"}
			sc.Apparmor = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
			sc.ApparmorProfile = "unconfined"
			sc.Privileged = true
			sc.MaskedPaths, sc.ReadonlyPaths = []string{}, []string{}
		},
	}, {
		name: "pod fields apply when the container sets none",
		pod: func(p *v1.Pod) {
			p.Spec.SecurityContext = &v1.PodSecurityContext{
				RunAsUser: ptr(int64(1)), RunAsGroup: ptr(int64(2)),
				SELinuxOptions:  &v1.SELinuxOptions{Level: "s0:c1"},
				SeccompProfile:  &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault},
				AppArmorProfile: &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeLocalhost, LocalhostProfile: ptr("k8s-default")},
				FSGroup:         ptr(int64(3)), SupplementalGroups: []int64{4, 5},
			}
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{AllowPrivilegeEscalation: ptr(true)}
		},
		opts: crispec.ContainerOptions{ExtraSupplementalGroups: []int64{6}},
		want: func(sc *runtimeapi.LinuxContainerSecurityContext) {
			sc.RunAsUser.Value = 1
			sc.RunAsGroup = &runtimeapi.Int64Value{Value: 2}
			sc.SelinuxOptions = &runtimeapi.SELinuxOption{Level: "s0:c1"}
			sc.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
			sc.Apparmor = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "k8s-default"}
			sc.ApparmorProfile = "localhost/k8s-default"
			sc.SupplementalGroups = []int64{3, 4, 5, 6}
		},
	}, {
		name: "deprecated AppArmor annotation beats the pod field",
		pod: func(p *v1.Pod) {
			p.Annotations = map[string]string{"container.apparmor.security.beta.kubernetes.io/c": "runtime/default"}
			p.Spec.SecurityContext = &v1.PodSecurityContext{AppArmorProfile: &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeUnconfined}}
		},
		want: func(sc *runtimeapi.LinuxContainerSecurityContext) {
			sc.Apparmor = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
			sc.ApparmorProfile = "runtime/default"
		},
	}, {
		name: "seccomp default",
		cfg:  crispec.Config{SeccompDefault: true},
		pod:  func(*v1.Pod) {},
		want: func(sc *runtimeapi.LinuxContainerSecurityContext) {
			sc.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
		},
	}, {
		name: "explicit Unconfined beats the seccomp default",
		cfg:  crispec.Config{SeccompDefault: true},
		pod: func(p *v1.Pod) {
			p.Spec.SecurityContext = &v1.PodSecurityContext{SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeUnconfined}}
		},
		want: func(*runtimeapi.LinuxContainerSecurityContext) {},
	}, {
		name: "capabilities are passed as written",
		pod: func(p *v1.Pod) {
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{Capabilities: &v1.Capabilities{
				Add: []v1.Capability{"CAP_NET_ADMIN", "sys_time"}, Drop: nil,
			}}
		},
		want: func(sc *runtimeapi.LinuxContainerSecurityContext) {
			sc.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"CAP_NET_ADMIN", "sys_time"}, DropCapabilities: []string{}}
		},
	}, {
		name: "extra masked paths",
		cfg:  crispec.Config{ExtraMaskedPaths: []string{"/sys/devices/system/cpu/cpu0/thermal_throttle"}},
		pod:  func(*v1.Pod) {},
		want: func(sc *runtimeapi.LinuxContainerSecurityContext) {
			sc.MaskedPaths = append(sc.MaskedPaths, "/sys/devices/system/cpu/cpu0/thermal_throttle")
		},
	}, {
		name: "ephemeral container joins its target's PID namespace",
		pod:  func(*v1.Pod) {},
		opts: crispec.ContainerOptions{TargetContainerID: "abc123"},
		want: func(sc *runtimeapi.LinuxContainerSecurityContext) {
			sc.NamespaceOptions.Pid = runtimeapi.NamespaceMode_TARGET
			sc.NamespaceOptions.TargetId = "abc123"
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTranslator(t, tc.cfg)
			pod := onePod(v1.Container{Name: "c"})
			tc.pod(pod)
			got, err := tr.ContainerConfig(pod, &pod.Spec.Containers[0], tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			want := &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{
					Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD,
					UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE},
				},
				RunAsUser:     &runtimeapi.Int64Value{Value: 0},
				MaskedPaths:   crispec.DefaultMaskedPaths(),
				ReadonlyPaths: crispec.DefaultReadonlyPaths(),
				Seccomp:       &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined},
			}
			tc.want(want)
			assertSameJSON(t, "security context", got.Linux.SecurityContext, want)
		})
	}
}

func TestContainerSecurityContextErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		pod  func(*v1.Pod)
		opts crispec.ContainerOptions
		want string
	}{{
		name: "runAsNonRoot with an image running as root",
		pod:  func(p *v1.Pod) { p.Spec.SecurityContext = &v1.PodSecurityContext{RunAsNonRoot: ptr(true)} },
		want: `pod default/p container "c": securityContext: runAsNonRoot is true and the image runs as root`,
	}, {
		name: "runAsNonRoot with a named image user",
		pod:  func(p *v1.Pod) { p.Spec.SecurityContext = &v1.PodSecurityContext{RunAsNonRoot: ptr(true)} },
		opts: crispec.ContainerOptions{ImageUser: crispec.ImageUser{Username: "app"}},
		want: `pod default/p container "c": securityContext: runAsNonRoot is true and the image's user "app" is not numeric, so it cannot be verified`,
	}, {
		name: "runAsNonRoot with runAsUser 0",
		pod: func(p *v1.Pod) {
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(0))}
		},
		opts: crispec.ContainerOptions{ImageUser: crispec.ImageUser{UID: ptr(int64(1000))}},
		want: `pod default/p container "c": securityContext: runAsNonRoot is true but runAsUser is 0`,
	}, {
		name: "runAsNonRoot with an out-of-range image user",
		pod:  func(p *v1.Pod) { p.Spec.SecurityContext = &v1.PodSecurityContext{RunAsNonRoot: ptr(true)} },
		opts: crispec.ContainerOptions{ImageUser: crispec.ImageUser{UID: ptr(int64(1) << 40)}},
		want: `pod default/p container "c": securityContext: runAsNonRoot is true and the image's user ID 1099511627776 is invalid: must be between 0 and 2147483647, inclusive`,
	}, {
		name: "Localhost seccomp without a profile",
		pod: func(p *v1.Pod) {
			p.Spec.SecurityContext = &v1.PodSecurityContext{SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeLocalhost}}
		},
		want: `pod default/p container "c": spec.securityContext.seccompProfile: type Localhost needs localhostProfile`,
	}, {
		name: "Localhost AppArmor without a profile",
		pod: func(p *v1.Pod) {
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{AppArmorProfile: &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeLocalhost}}
		},
		want: `pod default/p container "c": appArmorProfile: type Localhost needs localhostProfile`,
	}, {
		name: "unknown AppArmor type",
		pod: func(p *v1.Pod) {
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{AppArmorProfile: &v1.AppArmorProfile{Type: "Bogus"}}
		},
		want: `pod default/p container "c": appArmorProfile: unknown type "Bogus"`,
	}, {
		name: "user namespace without mappings",
		pod:  func(p *v1.Pod) { p.Spec.HostUsers = ptr(false) },
		want: `pod default/p container "c": spec.hostUsers is false: needs the pod's user namespace mappings (a UserNamespace in POD mode with uid and gid mappings)`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTranslator(t, crispec.Config{})
			pod := onePod(v1.Container{Name: "c"})
			tc.pod(pod)
			_, err := tr.ContainerConfig(pod, &pod.Spec.Containers[0], tc.opts)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error\n got %v\nwant %s", err, tc.want)
			}
			if !errors.Is(err, core.ErrInvalid) {
				t.Errorf("%v does not match core.ErrInvalid", err)
			}
		})
	}
}

func TestContainerMounts(t *testing.T) {
	bidirectional := v1.MountPropagationBidirectional
	none := v1.MountPropagationNone
	ifPossible := v1.RecursiveReadOnlyIfPossible
	enabled := v1.RecursiveReadOnlyEnabled
	pod := onePod(v1.Container{
		Name: "c",
		Env:  []v1.EnvVar{{Name: "SUB", Value: "a/b"}},
		VolumeMounts: []v1.VolumeMount{
			{Name: "data", MountPath: "/data"},
			{Name: "data", MountPath: "relative/./path", SubPath: "x/y", ReadOnly: true, RecursiveReadOnly: &ifPossible},
			{Name: "data", MountPath: "/expr", SubPathExpr: "logs/$(SUB)", MountPropagation: &bidirectional},
			{Name: "ro", MountPath: "/ro", MountPropagation: &none, BindMountOptions: []string{"noexec", "nosuid"}},
			{Name: "img", MountPath: "/models", SubPath: "v2", ReadOnly: true, RecursiveReadOnly: &enabled},
		},
		TerminationMessagePath: "dev/term",
	})
	opts := crispec.ContainerOptions{
		Volumes: map[string]crispec.Volume{
			"data": {HostPath: "/pods/u/volumes/data", SELinuxRelabel: true},
			"ro":   {HostPath: "/pods/u/volumes/ro", ReadOnly: true},
			"img":  {Image: &runtimeapi.ImageSpec{Image: "sha256:feed", UserSpecifiedImage: "models:v2"}},
		},
		SupportsRecursiveReadOnly:  true,
		EtcHostsPath:               "/pods/u/etc-hosts",
		TerminationMessageHostPath: "/pods/u/containers/c/1234",
		Devices: crispec.DeviceAllocation{
			Mounts: []*runtimeapi.Mount{{ContainerPath: "/dev/shm/gpu", HostPath: "/run/gpu", SelinuxRelabel: true}},
		},
	}
	// No pod IPs and no host network: no /etc/hosts. SELinux is off: no
	// relabeling.
	tr := newTranslator(t, crispec.Config{})
	got, err := tr.ContainerConfig(pod, &pod.Spec.Containers[0], opts)
	if err != nil {
		t.Fatal(err)
	}
	assertSameJSON(t, "mounts", got.Mounts, []*runtimeapi.Mount{
		{ContainerPath: "/dev/shm/gpu", HostPath: "/run/gpu"},
		{ContainerPath: "/data", HostPath: "/pods/u/volumes/data"},
		{ContainerPath: "/relative/path", HostPath: "/pods/u/volumes/data/x/y", Readonly: true, RecursiveReadOnly: true},
		{ContainerPath: "/expr", HostPath: "/pods/u/volumes/data/logs/a/b", Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL},
		{ContainerPath: "/ro", HostPath: "/pods/u/volumes/ro", Readonly: true, MountOptions: []string{"noexec", "nosuid"}},
		{ContainerPath: "/models", Readonly: true, RecursiveReadOnly: true,
			Image: &runtimeapi.ImageSpec{Image: "sha256:feed", UserSpecifiedImage: "models:v2"}, ImageSubPath: "v2"},
		{ContainerPath: "/dev/term", HostPath: "/pods/u/containers/c/1234"},
	})

	// Host network: /etc/hosts is mounted, unless the container mounts
	// something there.
	pod.Spec.HostNetwork = true
	got, err = tr.ContainerConfig(pod, &pod.Spec.Containers[0], opts)
	if err != nil {
		t.Fatal(err)
	}
	if m := got.Mounts[len(got.Mounts)-2]; m.ContainerPath != "/etc/hosts" || m.HostPath != "/pods/u/etc-hosts" {
		t.Errorf("hosts mount %v", m)
	}
	pod.Spec.Containers[0].VolumeMounts = append(pod.Spec.Containers[0].VolumeMounts, v1.VolumeMount{Name: "data", MountPath: "/etc/hosts", SubPath: "hosts"})
	got, err = tr.ContainerConfig(pod, &pod.Spec.Containers[0], opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range got.Mounts {
		if m.HostPath == "/pods/u/etc-hosts" {
			t.Errorf("managed hosts file mounted over the container's own")
		}
	}

	// PrepareSubPath decides the host path of subPath mounts.
	var seen []crispec.SubPath
	opts.PrepareSubPath = func(p crispec.SubPath) (string, error) {
		seen = append(seen, p)
		return "/pods/u/volume-subpaths/" + p.VolumeName, nil
	}
	got, err = tr.ContainerConfig(pod, &pod.Spec.Containers[0], opts)
	if err != nil {
		t.Fatal(err)
	}
	assertSameJSON(t, "prepared subpaths", seen, []crispec.SubPath{
		{VolumeMountIndex: 1, VolumeName: "data", VolumePath: "/pods/u/volumes/data", Path: "/pods/u/volumes/data/x/y"},
		{VolumeMountIndex: 2, VolumeName: "data", VolumePath: "/pods/u/volumes/data", Path: "/pods/u/volumes/data/logs/a/b"},
		{VolumeMountIndex: 5, VolumeName: "data", VolumePath: "/pods/u/volumes/data", Path: "/pods/u/volumes/data/hosts"},
	})
	if got.Mounts[2].HostPath != "/pods/u/volume-subpaths/data" {
		t.Errorf("subPath host path %q", got.Mounts[2].HostPath)
	}

	// With SELinux enabled, relabeling is passed on.
	tr = newTranslator(t, crispec.Config{SELinuxEnabled: true})
	opts.PrepareSubPath = nil
	got, err = tr.ContainerConfig(pod, &pod.Spec.Containers[0], opts)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, true, true, true, false, false} {
		if got.Mounts[i].SelinuxRelabel != want {
			t.Errorf("mount %d (%s): selinux_relabel %v, want %v", i, got.Mounts[i].ContainerPath, got.Mounts[i].SelinuxRelabel, want)
		}
	}
}

func TestContainerMountErrors(t *testing.T) {
	bogus := v1.MountPropagationMode("Sideways")
	hostToContainer := v1.MountPropagationHostToContainer
	enabled := v1.RecursiveReadOnlyEnabled
	for _, tc := range []struct {
		name   string
		mount  v1.VolumeMount
		opts   crispec.ContainerOptions
		want   string
		target error
	}{{
		name:   "subPath escapes the volume",
		mount:  v1.VolumeMount{Name: "data", MountPath: "/d", SubPath: "a/../../etc"},
		want:   `pod default/p container "c": volumeMounts[0] "data": subPath "a/../../etc" must not contain '..'`,
		target: core.ErrInvalid,
	}, {
		name:   "subPath is .. itself",
		mount:  v1.VolumeMount{Name: "data", MountPath: "/d", SubPath: ".."},
		want:   `pod default/p container "c": volumeMounts[0] "data": subPath ".." must not contain '..'`,
		target: core.ErrInvalid,
	}, {
		name:   "subPathExpr escapes the volume",
		mount:  v1.VolumeMount{Name: "data", MountPath: "/d", SubPathExpr: "$(UP)/x"},
		want:   `pod default/p container "c": volumeMounts[0] "data": subPath "../x" must not contain '..'`,
		target: core.ErrInvalid,
	}, {
		name:   "absolute subPath",
		mount:  v1.VolumeMount{Name: "data", MountPath: "/d", SubPath: "/etc"},
		want:   `pod default/p container "c": volumeMounts[0] "data": subPath "/etc" must be a relative path`,
		target: core.ErrInvalid,
	}, {
		name:   "subPathExpr with an unset variable",
		mount:  v1.VolumeMount{Name: "data", MountPath: "/d", SubPathExpr: "$(NOPE)"},
		want:   `pod default/p container "c": volumeMounts[0] "data": subPathExpr "$(NOPE)": no value for NOPE`,
		target: core.ErrInvalid,
	}, {
		name:   "unknown propagation",
		mount:  v1.VolumeMount{Name: "data", MountPath: "/d", MountPropagation: &bogus},
		want:   `pod default/p container "c": volumeMounts[0] "data": mountPropagation "Sideways": unknown mode`,
		target: core.ErrInvalid,
	}, {
		name:   "recursive read-only needs read-only",
		mount:  v1.VolumeMount{Name: "data", MountPath: "/d", RecursiveReadOnly: &enabled},
		want:   `pod default/p container "c": volumeMounts[0] "data": recursiveReadOnly "Enabled" needs readOnly: true`,
		target: core.ErrInvalid,
	}, {
		name:   "recursive read-only and propagation",
		mount:  v1.VolumeMount{Name: "data", MountPath: "/d", ReadOnly: true, RecursiveReadOnly: &enabled, MountPropagation: &hostToContainer},
		want:   `pod default/p container "c": volumeMounts[0] "data": recursiveReadOnly "Enabled" is incompatible with mountPropagation "HostToContainer"`,
		target: core.ErrInvalid,
	}, {
		name:   "recursive read-only unsupported by the runtime",
		mount:  v1.VolumeMount{Name: "data", MountPath: "/d", ReadOnly: true, RecursiveReadOnly: &enabled},
		want:   `pod default/p container "c": volumeMounts[0] "data": recursiveReadOnly "Enabled": the runtime does not support recursive read-only mounts`,
		target: core.ErrInvalid,
	}, {
		name:   "volume not mounted yet",
		mount:  v1.VolumeMount{Name: "other", MountPath: "/d"},
		want:   `pod default/p container "c": volumeMounts[0] "other": volume "other" is not mounted (not in ContainerOptions.Volumes)`,
		target: core.ErrNotFound,
	}, {
		name:  "subPath preparation fails",
		mount: v1.VolumeMount{Name: "data", MountPath: "/d", SubPath: "x"},
		opts: crispec.ContainerOptions{PrepareSubPath: func(crispec.SubPath) (string, error) {
			return "", core.ErrUnavailable
		}},
		want:   `pod default/p container "c": volumeMounts[0] "data": subPath "x": runtime unavailable`,
		target: core.ErrUnavailable,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTranslator(t, crispec.Config{})
			pod := onePod(v1.Container{Name: "c", Env: []v1.EnvVar{{Name: "UP", Value: ".."}}, VolumeMounts: []v1.VolumeMount{tc.mount}})
			tc.opts.Volumes = map[string]crispec.Volume{"data": {HostPath: "/pods/u/volumes/data"}}
			_, err := tr.ContainerConfig(pod, &pod.Spec.Containers[0], tc.opts)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error\n got %v\nwant %s", err, tc.want)
			}
			if !errors.Is(err, tc.target) {
				t.Errorf("%v does not match %v", err, tc.target)
			}
		})
	}
}

func TestContainerConfigBadInput(t *testing.T) {
	tr := newTranslator(t, crispec.Config{})
	pod := onePod(v1.Container{Name: "c"})
	for _, tc := range []struct {
		name string
		pod  *v1.Pod
		c    *v1.Container
		opts crispec.ContainerOptions
		want string
	}{
		{"nil pod", nil, &v1.Container{Name: "c"}, crispec.ContainerOptions{}, "nil pod"},
		{"nil container", pod, nil, crispec.ContainerOptions{}, "pod default/p: nil container"},
		{"no name", pod, &v1.Container{}, crispec.ContainerOptions{}, `pod default/p container "": name is empty`},
		{"negative restart count", pod, &pod.Spec.Containers[0], crispec.ContainerOptions{RestartCount: -1}, `pod default/p container "c": restart count -1 is out of range`},
		{"pod without UID", &v1.Pod{ObjectMeta: metaFor("p")}, &v1.Container{Name: "c"}, crispec.ContainerOptions{}, ""},
		{"empty pod", &v1.Pod{}, &v1.Container{Name: "c"}, crispec.ContainerOptions{}, "pod /: metadata.name is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "pod without UID" {
				tc.pod.UID = ""
				tc.want = "pod default/p: metadata.uid is empty"
			}
			_, err := tr.ContainerConfig(tc.pod, tc.c, tc.opts)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error %v, want %s", err, tc.want)
			}
			if !errors.Is(err, core.ErrInvalid) {
				t.Errorf("%v does not match core.ErrInvalid", err)
			}
		})
	}
	if _, err := tr.SandboxConfig(nil, 0, crispec.SandboxOptions{}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("SandboxConfig(nil): %v", err)
	}
	if _, err := tr.SandboxConfig(&v1.Pod{}, 0, crispec.SandboxOptions{}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("SandboxConfig(empty pod): %v", err)
	}
	if _, err := tr.ContainerResources(nil, nil, crispec.ResourceOptions{}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("ContainerResources(nil): %v", err)
	}
	if _, err := tr.HostsFile(nil, nil, nil); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("HostsFile(nil): %v", err)
	}
}

func TestContainerAnnotationsRoundTrip(t *testing.T) {
	tr := newTranslator(t, crispec.Config{})
	pod := webPod()
	pod.Spec.Containers[0].Resources = v1.ResourceRequirements{}
	pod.Spec.Containers[1].Resources = v1.ResourceRequirements{}
	pod.Spec.TerminationGracePeriodSeconds = ptr(int64(30))
	pod.DeletionGracePeriodSeconds = ptr(int64(0))
	c := &pod.Spec.Containers[0]
	c.TerminationMessagePath = "/dev/termination-log"
	c.TerminationMessagePolicy = v1.TerminationMessageFallbackToLogsOnError
	c.Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 3}}}
	cfg, err := tr.ContainerConfig(pod, c, crispec.ContainerOptions{
		RestartCount: 7,
		Devices:      crispec.DeviceAllocation{Annotations: map[string]string{"cdi.k8s.io/gpu": "x", "io.kubernetes.container.restartCount": "spoofed"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	info, ok, err := core.ContainerInfoFromLabels(cfg.Labels, cfg.Annotations)
	if err != nil || !ok {
		t.Fatalf("ContainerInfoFromLabels: %v, %v", ok, err)
	}
	want := core.ContainerInfo{
		ContainerName: "app", PodName: "web-0", PodNamespace: "shop", PodUID: pod.UID,
		Hash: crispec.ContainerHash(c), RestartCount: 7,
		TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: v1.TerminationMessageFallbackToLogsOnError,
		PodDeletionGracePeriod: ptr(int64(0)), PodTerminationGracePeriod: ptr(int64(30)),
		PreStopHandler: c.Lifecycle.PreStop, Ports: c.Ports,
	}
	assertSameJSON(t, "container info", info, want)
	if cfg.Annotations["cdi.k8s.io/gpu"] != "x" {
		t.Errorf("device annotation lost")
	}
}

func TestContainerHash(t *testing.T) {
	// Values computed by the kubelet for the same containers.
	for _, tc := range []struct {
		c    *v1.Container
		want uint64
	}{
		{&v1.Container{Name: "app", Image: "nginx:1.27"}, 0xa763184},
		{&v1.Container{}, 0xedd67cc4},
		{nil, 0xedd67cc4},
		// Only the name and the image count.
		{&v1.Container{Name: "sidecar", Image: "registry.k8s.io/pause:3.10", Command: []string{"x"}}, 0x3902b10d},
		{&v1.Container{Name: "sidecar", Image: "registry.k8s.io/pause:3.10"}, 0x3902b10d},
		{&v1.Container{Name: "app", Image: "registry.example.com/shop/web:1.4.2"}, 0xf16c2629},
	} {
		if got := crispec.ContainerHash(tc.c); got != tc.want {
			t.Errorf("ContainerHash(%v) = %x, want %x", tc.c, got, tc.want)
		}
	}
}

func TestLogPaths(t *testing.T) {
	if got, want := crispec.PodLogDir("/var/log/pods", "shop", "web-0", "u1"), "/var/log/pods/shop_web-0_u1"; got != want {
		t.Errorf("PodLogDir = %q, want %q", got, want)
	}
	if got, want := crispec.ContainerLogDir("/var/log/pods", "shop", "web-0", "u1", "app"), "/var/log/pods/shop_web-0_u1/app"; got != want {
		t.Errorf("ContainerLogDir = %q, want %q", got, want)
	}
	if got, want := crispec.ContainerLogPath("app", 3), "app/3.log"; got != want {
		t.Errorf("ContainerLogPath = %q, want %q", got, want)
	}
}
