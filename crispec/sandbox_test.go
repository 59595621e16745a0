package crispec_test

import (
	"errors"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
)

func webPod() *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-0", Namespace: "shop", UID: "0b7e6c1e-1111-4c4c-9c9c-000000000001",
			Labels:      map[string]string{"app": "web"},
			Annotations: map[string]string{"team": "checkout"},
		},
		Spec: v1.PodSpec{
			NodeName:  "node-a",
			Hostname:  "web-0",
			Subdomain: "web",
			SecurityContext: &v1.PodSecurityContext{
				RunAsUser:          ptr(int64(1000)),
				RunAsGroup:         ptr(int64(3000)),
				FSGroup:            ptr(int64(2000)),
				SupplementalGroups: []int64{4000},
				Sysctls:            []v1.Sysctl{{Name: "net.core.somaxconn", Value: "1024"}},
				SeccompProfile:     &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault},
			},
			Overhead: rl("cpu", "100m", "memory", "64Mi"),
			Containers: []v1.Container{{
				Name:  "app",
				Image: "registry.example.com/shop/web:1.4.2",
				Ports: []v1.ContainerPort{
					{Name: "http", ContainerPort: 8080, Protocol: v1.ProtocolTCP},
					{Name: "dns", ContainerPort: 53, HostPort: 53, HostIP: "10.0.0.5", Protocol: v1.ProtocolUDP},
				},
				Resources: v1.ResourceRequirements{
					Requests: rl("cpu", "250m", "memory", "128Mi"),
					Limits:   rl("cpu", "1", "memory", "512Mi"),
				},
			}, {
				Name:      "sidecar",
				Image:     "envoy:1",
				Ports:     []v1.ContainerPort{{ContainerPort: 9901}},
				Resources: v1.ResourceRequirements{Requests: rl("cpu", "50m", "memory", "64Mi")},
			}},
		},
	}
}

func TestSandboxConfig(t *testing.T) {
	tr := newTranslator(t, crispec.Config{
		ClusterDomain:     "cluster.local",
		CgroupV2:          true,
		DefaultPodSysctls: map[string]string{"net/ipv4/ip_unprivileged_port_start": "0", "kernel.shmmax": "1000", "vm.swappiness": "1"},
	})
	dns := &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"shop.svc.cluster.local"}, Options: []string{"ndots:5"}}
	got, err := tr.SandboxConfig(webPod(), 1, crispec.SandboxOptions{
		CgroupParent:            "kubepods-burstable-pod0b7e6c1e.slice",
		DNS:                     dns,
		ExtraSupplementalGroups: []int64{65534},
	})
	if err != nil {
		t.Fatal(err)
	}
	unified := map[string]string{"memory.oom.group": "1"}
	want := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "web-0", Namespace: "shop", Uid: "0b7e6c1e-1111-4c4c-9c9c-000000000001", Attempt: 1},
		Hostname: "web-0",
		Labels: map[string]string{
			"app":                         "web",
			"io.kubernetes.pod.name":      "web-0",
			"io.kubernetes.pod.namespace": "shop",
			"io.kubernetes.pod.uid":       "0b7e6c1e-1111-4c4c-9c9c-000000000001",
		},
		Annotations:  map[string]string{"team": "checkout"},
		LogDirectory: "/var/log/pods/shop_web-0_0b7e6c1e-1111-4c4c-9c9c-000000000001",
		DnsConfig:    dns,
		PortMappings: []*runtimeapi.PortMapping{
			{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 8080},
			{Protocol: runtimeapi.Protocol_UDP, ContainerPort: 53, HostPort: 53, HostIp: "10.0.0.5"},
			{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 9901},
		},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: "kubepods-burstable-pod0b7e6c1e.slice",
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{
					Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD,
					UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE},
				},
				RunAsUser:          &runtimeapi.Int64Value{Value: 1000},
				RunAsGroup:         &runtimeapi.Int64Value{Value: 3000},
				SupplementalGroups: []int64{2000, 65534, 4000},
				Seccomp:            &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
			},
			Sysctls: map[string]string{
				"net.ipv4.ip_unprivileged_port_start": "0",
				"kernel.shmmax":                       "1000",
				"net.core.somaxconn":                  "1024",
			},
			// The pod requests 300m; its limits are the sum of the limits
			// its containers set, though the sidecar sets none.
			Resources: &runtimeapi.LinuxContainerResources{
				CpuShares: 307, CpuPeriod: 100000, CpuQuota: 100000, MemoryLimitInBytes: 512 << 20, Unified: unified,
			},
			Overhead: &runtimeapi.LinuxContainerResources{
				CpuShares: 102, CpuPeriod: 100000, CpuQuota: 10000, MemoryLimitInBytes: 64 << 20, Unified: unified,
			},
		},
	}
	assertSameJSON(t, "sandbox config", got, want)
}

func TestSandboxNamespaces(t *testing.T) {
	tr := newTranslator(t, crispec.Config{})
	for _, tc := range []struct {
		name string
		spec func(*v1.PodSpec)
		want *runtimeapi.NamespaceOption
	}{
		{"defaults", func(*v1.PodSpec) {}, &runtimeapi.NamespaceOption{
			Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}},
		{"host network", func(s *v1.PodSpec) { s.HostNetwork = true }, &runtimeapi.NamespaceOption{
			Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}},
		{"host PID", func(s *v1.PodSpec) { s.HostPID = true }, &runtimeapi.NamespaceOption{
			Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_POD}},
		{"host PID wins over sharing", func(s *v1.PodSpec) { s.HostPID, s.ShareProcessNamespace = true, ptr(true) }, &runtimeapi.NamespaceOption{
			Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_POD}},
		{"shared process namespace", func(s *v1.PodSpec) { s.ShareProcessNamespace = ptr(true) }, &runtimeapi.NamespaceOption{
			Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_POD, Ipc: runtimeapi.NamespaceMode_POD}},
		{"host IPC", func(s *v1.PodSpec) { s.HostIPC = true }, &runtimeapi.NamespaceOption{
			Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_NODE}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := onePod(v1.Container{Name: "c"})
			tc.spec(&pod.Spec)
			tc.want.UsernsOptions = &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}
			sb, err := tr.SandboxConfig(pod, 0, crispec.SandboxOptions{})
			if err != nil {
				t.Fatal(err)
			}
			assertSameJSON(t, "sandbox namespaces", sb.Linux.SecurityContext.NamespaceOptions, tc.want)
			c, err := tr.ContainerConfig(pod, &pod.Spec.Containers[0], crispec.ContainerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			assertSameJSON(t, "container namespaces", c.Linux.SecurityContext.NamespaceOptions, tc.want)
		})
	}
}

func TestSandboxHostNetwork(t *testing.T) {
	tr := newTranslator(t, crispec.Config{DefaultPodSysctls: map[string]string{
		"net.ipv4.tcp_keepalive_time": "600", "kernel.domainname": "x", "kernel.msgmax": "1", "fs.mqueue.msg_max": "10", "user.max_user_namespaces": "5",
	}})
	pod := onePod(v1.Container{Name: "c"})
	pod.Spec.HostNetwork = true
	pod.Spec.Hostname = "ignored"
	sb, err := tr.SandboxConfig(pod, 0, crispec.SandboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sb.Hostname != "" {
		t.Errorf("hostname %q: a host-network pod keeps the node's", sb.Hostname)
	}
	// Network sysctls belong to the node's namespace; user.* only go to
	// pods with their own user namespace.
	assertSameJSON(t, "sysctls", sb.Linux.Sysctls, map[string]string{"kernel.msgmax": "1", "fs.mqueue.msg_max": "10"})

	pod.Spec.HostNetwork, pod.Spec.HostIPC = false, true
	sb, err = tr.SandboxConfig(pod, 0, crispec.SandboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	assertSameJSON(t, "sysctls", sb.Linux.Sysctls, map[string]string{"net.ipv4.tcp_keepalive_time": "600", "kernel.domainname": "x"})
}

func TestSandboxPrivileged(t *testing.T) {
	tr := newTranslator(t, crispec.Config{})
	for _, tc := range []struct {
		name string
		pod  func(*v1.Pod)
		want bool
	}{
		{"none", func(*v1.Pod) {}, false},
		{"explicitly unprivileged", func(p *v1.Pod) {
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{Privileged: ptr(false)}
		}, false},
		{"regular container", func(p *v1.Pod) {
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{Privileged: ptr(true)}
		}, true},
		{"init container", func(p *v1.Pod) {
			p.Spec.InitContainers = []v1.Container{{Name: "i", SecurityContext: &v1.SecurityContext{Privileged: ptr(true)}}}
		}, true},
		{"ephemeral container", func(p *v1.Pod) {
			p.Spec.EphemeralContainers = []v1.EphemeralContainer{{EphemeralContainerCommon: v1.EphemeralContainerCommon{
				Name: "debug", SecurityContext: &v1.SecurityContext{Privileged: ptr(true)}}}}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := onePod(v1.Container{Name: "c"})
			tc.pod(pod)
			sb, err := tr.SandboxConfig(pod, 0, crispec.SandboxOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := sb.Linux.SecurityContext.Privileged; got != tc.want {
				t.Errorf("privileged = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSandboxHostname(t *testing.T) {
	long := strings.Repeat("a", 60) + "-b.c"
	for _, tc := range []struct {
		name   string
		domain string
		spec   func(*v1.PodSpec)
		want   string
		err    string
	}{
		{name: "pod name", spec: func(*v1.PodSpec) {}, want: "p"},
		{name: "spec.hostname", spec: func(s *v1.PodSpec) { s.Hostname = "box" }, want: "box"},
		{name: "subdomain without FQDN", domain: "cluster.local", spec: func(s *v1.PodSpec) { s.Subdomain = "svc" }, want: "p"},
		{name: "FQDN", domain: "cluster.local", spec: func(s *v1.PodSpec) {
			s.Hostname, s.Subdomain, s.SetHostnameAsFQDN = "box", "svc", ptr(true)
		}, want: "box.svc.default.svc.cluster.local"},
		{name: "FQDN without cluster domain", spec: func(s *v1.PodSpec) {
			s.Subdomain, s.SetHostnameAsFQDN = "svc", ptr(true)
		}, want: "p.svc.default.svc."},
		{name: "FQDN without subdomain", domain: "cluster.local", spec: func(s *v1.PodSpec) { s.SetHostnameAsFQDN = ptr(true) }, want: "p"},
		{name: "FQDN too long", domain: "cluster.local", spec: func(s *v1.PodSpec) {
			s.Hostname, s.Subdomain, s.SetHostnameAsFQDN = strings.Repeat("h", 40), "svc", ptr(true)
		}, err: `pod default/p: spec.setHostnameAsFQDN: FQDN "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh.svc.default.svc.cluster.local" is longer than 64 characters`},
		{name: "override", domain: "cluster.local", spec: func(s *v1.PodSpec) {
			s.HostnameOverride, s.Hostname, s.Subdomain, s.SetHostnameAsFQDN = ptr("db.internal"), "box", "svc", ptr(true)
		}, want: "db.internal"},
		{name: "override truncated", spec: func(s *v1.PodSpec) { s.HostnameOverride = ptr(long) }, want: strings.Repeat("a", 60) + "-b"},
		{name: "bad hostname", spec: func(s *v1.PodSpec) { s.Hostname = "Box_1" },
			err: `pod default/p: spec.hostname "Box_1": not a DNS label: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`},
		{name: "bad override", spec: func(s *v1.PodSpec) { s.HostnameOverride = ptr("-x") },
			err: `pod default/p: spec.hostnameOverride "-x": not a DNS subdomain: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTranslator(t, crispec.Config{ClusterDomain: tc.domain})
			pod := onePod(v1.Container{Name: "c"})
			tc.spec(&pod.Spec)
			sb, err := tr.SandboxConfig(pod, 0, crispec.SandboxOptions{})
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error\n got %v\nwant %s", err, tc.err)
				}
				if !errors.Is(err, core.ErrInvalid) {
					t.Errorf("%v does not match core.ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sb.Hostname != tc.want {
				t.Errorf("hostname %q, want %q", sb.Hostname, tc.want)
			}
		})
	}
}

func TestSandboxPortMappings(t *testing.T) {
	tr := newTranslator(t, crispec.Config{})
	pod := onePod(v1.Container{Name: "a", Ports: []v1.ContainerPort{
		{ContainerPort: 80, HostPort: 8080},
		{ContainerPort: 80, HostPort: 8080}, // same unnamed port: dropped
		{ContainerPort: 80, HostPort: 8080, HostIP: "fd00::1"},
		{ContainerPort: 80, HostPort: 8080, HostIP: "10.0.0.1"},
		{Name: "x", ContainerPort: 81, Protocol: v1.ProtocolSCTP},
		{Name: "x", ContainerPort: 82}, // same name: dropped
		{ContainerPort: 83, Protocol: "bogus"},
	}}, v1.Container{Name: "b", Ports: []v1.ContainerPort{
		{Name: "x", ContainerPort: 84, Protocol: v1.ProtocolUDP}, // names are per container
	}})
	pod.Spec.InitContainers = []v1.Container{{Name: "init", Ports: []v1.ContainerPort{{ContainerPort: 99}}}}
	sb, err := tr.SandboxConfig(pod, 0, crispec.SandboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	assertSameJSON(t, "port mappings", sb.PortMappings, []*runtimeapi.PortMapping{
		{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 8080},
		{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 8080, HostIp: "fd00::1"},
		{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 8080, HostIp: "10.0.0.1"},
		{Protocol: runtimeapi.Protocol_SCTP, ContainerPort: 81},
		{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 83},
		{Protocol: runtimeapi.Protocol_UDP, ContainerPort: 84},
	})
}

func TestSandboxUserNamespace(t *testing.T) {
	tr := newTranslator(t, crispec.Config{DefaultPodSysctls: map[string]string{"user.max_user_namespaces": "5"}})
	pod := onePod(v1.Container{Name: "c"})
	pod.Spec.HostUsers = ptr(false)
	_, err := tr.SandboxConfig(pod, 0, crispec.SandboxOptions{})
	if !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("error %v, want core.ErrInvalid", err)
	}
	ids := []*runtimeapi.IDMapping{{HostId: 65536, Length: 65536}}
	userns := &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: ids, Gids: ids}
	sb, err := tr.SandboxConfig(pod, 0, crispec.SandboxOptions{UserNamespace: userns})
	if err != nil {
		t.Fatal(err)
	}
	assertSameJSON(t, "userns", sb.Linux.SecurityContext.NamespaceOptions.UsernsOptions, userns)
	assertSameJSON(t, "sysctls", sb.Linux.Sysctls, map[string]string{"user.max_user_namespaces": "5"})

	// The container's mounts get the mappings too.
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "data", MountPath: "/data"}}
	c, err := tr.ContainerConfig(pod, &pod.Spec.Containers[0], crispec.ContainerOptions{
		UserNamespace: userns,
		Volumes:       map[string]crispec.Volume{"data": {HostPath: "/var/lib/kubelet/pods/u/volumes/data"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	assertSameJSON(t, "mount uid mappings", c.Mounts[0].UidMappings, ids)
	assertSameJSON(t, "mount gid mappings", c.Mounts[0].GidMappings, ids)
}

func TestSandboxSupplementalGroupsPolicy(t *testing.T) {
	tr := newTranslator(t, crispec.Config{})
	pod := onePod(v1.Container{Name: "c"})
	strict := v1.SupplementalGroupsPolicyStrict
	pod.Spec.SecurityContext = &v1.PodSecurityContext{SupplementalGroupsPolicy: &strict}
	sb, err := tr.SandboxConfig(pod, 0, crispec.SandboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := sb.Linux.SecurityContext.SupplementalGroupsPolicy; got != runtimeapi.SupplementalGroupsPolicy_Strict {
		t.Errorf("policy %v, want Strict", got)
	}
	bogus := v1.SupplementalGroupsPolicy("Bogus")
	pod.Spec.SecurityContext.SupplementalGroupsPolicy = &bogus
	_, err = tr.SandboxConfig(pod, 0, crispec.SandboxOptions{})
	const want = `pod default/p: spec.securityContext.supplementalGroupsPolicy "Bogus": unsupported policy`
	if err == nil || err.Error() != want || !errors.Is(err, core.ErrInvalid) {
		t.Errorf("error %v, want %s", err, want)
	}
}
