package crispec

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/component-helpers/node/util/sysctl"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	netutils "k8s.io/utils/net"

	"github.com/nodekit/nodekit/core"
)

// SandboxOptions are what the kubelet knows about a pod's sandbox besides
// its spec. The zero value is valid for a pod in the host user namespace
// with no DNS configuration and no cgroup parent.
type SandboxOptions struct {
	// CgroupParent is the pod's cgroup, from the QoS cgroup manager
	// (for example "kubepods-burstable-pod<uid>.slice" with the systemd
	// driver).
	CgroupParent string

	// DNS is the pod's resolv.conf content, from the DNS configurer.
	DNS *runtimeapi.DNSConfig

	// UserNamespace holds the pod's ID mappings (mode POD) when
	// spec.hostUsers is false; required then and ignored otherwise.
	UserNamespace *runtimeapi.UserNamespace

	// ExtraSupplementalGroups are added to the sandbox's groups: the GIDs
	// that the pod's volumes require (pv.beta.kubernetes.io/gid).
	ExtraSupplementalGroups []int64

	// Resources: set ExclusiveCPUs when a container of the pod has
	// exclusive CPUs.
	Resources ResourceOptions
}

// SandboxConfig translates a pod into the config of its sandbox for
// RunPodSandbox, as the kubelet does. attempt counts the sandboxes created
// for this pod before (0 for the first).
//
// The caller creates the log directory (config.LogDirectory) before
// running the sandbox. Errors wrap core.ErrInvalid and name the pod.
func (t *Translator) SandboxConfig(pod *v1.Pod, attempt uint32, opts SandboxOptions) (*runtimeapi.PodSandboxConfig, error) {
	if pod == nil {
		return nil, invalidf("nil pod")
	}
	if err := checkPodIdentity(pod); err != nil {
		return nil, err
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{
			Name:      pod.Name,
			Namespace: pod.Namespace,
			Uid:       string(pod.UID),
			Attempt:   attempt,
		},
		Labels:       podLabels(pod),
		Annotations:  maps.Clone(pod.Annotations),
		DnsConfig:    cloneDNS(opts.DNS),
		LogDirectory: PodLogDir(t.cfg.PodLogsRoot, pod.Namespace, pod.Name, pod.UID),
		PortMappings: portMappings(pod),
	}
	// A pod on the host network keeps the node's hostname.
	if !pod.Spec.HostNetwork {
		host, domain, err := t.hostnameAndDomain(pod)
		if err != nil {
			return nil, podErr(pod, err)
		}
		if domain != "" && pod.Spec.SetHostnameAsFQDN != nil && *pod.Spec.SetHostnameAsFQDN {
			fqdn := host + "." + domain
			// The kernel's nodename holds 64 bytes.
			if len(fqdn) > 64 {
				return nil, podErr(pod, invalidf("spec.setHostnameAsFQDN: FQDN %q is longer than 64 characters", fqdn))
			}
			host = fqdn
		}
		cfg.Hostname = host
	}

	linux, err := t.sandboxLinux(pod, &opts)
	if err != nil {
		return nil, podErr(pod, err)
	}
	cfg.Linux = linux
	return cfg, nil
}

// checkPodIdentity refuses pods the runtime could not name or that the
// labels could not tie back to the pod.
func checkPodIdentity(pod *v1.Pod) error {
	switch {
	case pod.Name == "":
		return invalidf("pod %s/%s: metadata.name is empty", pod.Namespace, pod.Name)
	case pod.Namespace == "":
		return invalidf("pod %s/%s: metadata.namespace is empty", pod.Namespace, pod.Name)
	case pod.UID == "":
		return invalidf("pod %s/%s: metadata.uid is empty", pod.Namespace, pod.Name)
	}
	return nil
}

// podLabels are the pod's labels plus the kubelet's pod name, namespace
// and UID labels, which win over pod labels of the same key.
func podLabels(pod *v1.Pod) map[string]string {
	labels := make(map[string]string, len(pod.Labels)+3)
	maps.Copy(labels, pod.Labels)
	labels[core.LabelPodName] = pod.Name
	labels[core.LabelPodNamespace] = pod.Namespace
	labels[core.LabelPodUID] = string(pod.UID)
	return labels
}

func cloneDNS(d *runtimeapi.DNSConfig) *runtimeapi.DNSConfig {
	if d == nil {
		return nil
	}
	return &runtimeapi.DNSConfig{
		Servers:  slices.Clone(d.Servers),
		Searches: slices.Clone(d.Searches),
		Options:  slices.Clone(d.Options),
	}
}

// hostnameAndDomain is the pod's hostname and DNS domain:
// spec.hostnameOverride if set (and no domain); else spec.hostname or the
// pod name, with <subdomain>.<namespace>.svc.<cluster domain> as the domain
// if spec.subdomain is set. Hostnames longer than 63 characters are
// truncated, as the kubelet does.
func (t *Translator) hostnameAndDomain(pod *v1.Pod) (host, domain string, err error) {
	if o := pod.Spec.HostnameOverride; o != nil {
		if errs := validation.IsDNS1123Subdomain(*o); len(errs) > 0 {
			return "", "", invalidf("spec.hostnameOverride %q: not a DNS subdomain: %s", *o, strings.Join(errs, "; "))
		}
		host, err = truncateHostname(*o)
		return host, "", err
	}
	host = pod.Name
	if h := pod.Spec.Hostname; h != "" {
		if errs := validation.IsDNS1123Label(h); len(errs) > 0 {
			return "", "", invalidf("spec.hostname %q: not a DNS label: %s", h, strings.Join(errs, "; "))
		}
		host = h
	}
	if host, err = truncateHostname(host); err != nil {
		return "", "", err
	}
	if sub := pod.Spec.Subdomain; sub != "" {
		if errs := validation.IsDNS1123Label(sub); len(errs) > 0 {
			return "", "", invalidf("spec.subdomain %q: not a DNS label: %s", sub, strings.Join(errs, "; "))
		}
		domain = fmt.Sprintf("%s.%s.svc.%s", sub, pod.Namespace, t.cfg.ClusterDomain)
	}
	return host, domain, nil
}

// truncateHostname cuts a hostname to the kernel's 63 characters, then
// trims the dashes and dots that would end it.
func truncateHostname(h string) (string, error) {
	const maxLen = 63
	if len(h) <= maxLen {
		return h, nil
	}
	cut := strings.TrimRight(h[:maxLen], "-.")
	if cut == "" {
		return "", invalidf("hostname %q is empty once truncated to %d characters", h, maxLen)
	}
	return cut, nil
}

// portMappings lists the ports of the pod's regular containers, in order.
// Within one container a port whose name (or, unnamed, whose family,
// protocol, host IP and ports) repeats an earlier one is dropped.
func portMappings(pod *v1.Pod) []*runtimeapi.PortMapping {
	var out []*runtimeapi.PortMapping
	for i := range pod.Spec.Containers {
		seen := map[string]bool{}
		for _, p := range pod.Spec.Containers[i].Ports {
			name := p.Name
			if name == "" {
				family := "any"
				if p.HostIP != "" {
					family = "v4"
					if netutils.IsIPv6String(p.HostIP) {
						family = "v6"
					}
				}
				name = fmt.Sprintf("%s-%s-%s:%d:%d", family, p.Protocol, p.HostIP, p.ContainerPort, p.HostPort)
			}
			if seen[name] {
				continue
			}
			seen[name] = true
			out = append(out, &runtimeapi.PortMapping{
				Protocol:      runtimeProtocol(p.Protocol),
				ContainerPort: p.ContainerPort,
				HostPort:      p.HostPort,
				HostIp:        p.HostIP,
			})
		}
	}
	return out
}

// runtimeProtocol maps a port protocol; unknown or empty is TCP.
func runtimeProtocol(p v1.Protocol) runtimeapi.Protocol {
	switch p {
	case v1.ProtocolUDP:
		return runtimeapi.Protocol_UDP
	case v1.ProtocolSCTP:
		return runtimeapi.Protocol_SCTP
	}
	return runtimeapi.Protocol_TCP
}

// sandboxLinux is the Linux part of the sandbox config: cgroup parent,
// sysctls, security context and resources.
func (t *Translator) sandboxLinux(pod *v1.Pod, opts *SandboxOptions) (*runtimeapi.LinuxPodSandboxConfig, error) {
	lc := &runtimeapi.LinuxPodSandboxConfig{
		CgroupParent: opts.CgroupParent,
		Sysctls:      t.sandboxSysctls(pod),
		SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			Privileged: hasPrivilegedContainer(pod),
			// The sandbox (pause) process always runs under the runtime's
			// default seccomp profile, whatever the pod asks for.
			Seccomp: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
		},
		Resources: t.sandboxResources(pod, opts.Resources.ExclusiveCPUs),
		Overhead:  t.overheadResources(pod),
	}
	sc := lc.SecurityContext
	ns, err := namespaceOptions(pod, opts.UserNamespace)
	if err != nil {
		return nil, err
	}
	sc.NamespaceOptions = ns

	// The API server always sets a (possibly empty) pod security context;
	// a nil one reads as empty.
	psc := pod.Spec.SecurityContext
	if psc == nil {
		psc = &v1.PodSecurityContext{}
	}
	if psc.RunAsUser != nil {
		sc.RunAsUser = &runtimeapi.Int64Value{Value: *psc.RunAsUser}
	}
	if psc.RunAsGroup != nil {
		sc.RunAsGroup = &runtimeapi.Int64Value{Value: *psc.RunAsGroup}
	}
	if psc.FSGroup != nil {
		sc.SupplementalGroups = append(sc.SupplementalGroups, *psc.FSGroup)
	}
	sc.SupplementalGroups = append(sc.SupplementalGroups, opts.ExtraSupplementalGroups...)
	sc.SupplementalGroups = append(sc.SupplementalGroups, psc.SupplementalGroups...)
	if psc.SupplementalGroupsPolicy != nil {
		if sc.SupplementalGroupsPolicy, err = supplementalGroupsPolicy(psc.SupplementalGroupsPolicy); err != nil {
			return nil, err
		}
	}
	sc.SelinuxOptions = seLinuxOption(psc.SELinuxOptions)
	return lc, nil
}

// ipcSysctls are the IPC-namespaced sysctls outside fs.mqueue.*.
var ipcSysctls = map[string]bool{
	"kernel.msgmax":          true,
	"kernel.msgmnb":          true,
	"kernel.msgmni":          true,
	"kernel.sem":             true,
	"kernel.shmall":          true,
	"kernel.shmmax":          true,
	"kernel.shmmni":          true,
	"kernel.shm_rmid_forced": true,
}

// sandboxSysctls are Config.DefaultPodSysctls that belong to a namespace
// the pod does not share with the node, overridden by the pod's own.
func (t *Translator) sandboxSysctls(pod *v1.Pod) map[string]string {
	out := map[string]string{}
	for k, v := range t.cfg.DefaultPodSysctls {
		name := sysctl.NormalizeName(k)
		switch {
		case ipcSysctls[name] || strings.HasPrefix(name, "fs.mqueue."):
			if !pod.Spec.HostIPC {
				out[name] = v
			}
		case strings.HasPrefix(name, "net."):
			if !pod.Spec.HostNetwork {
				out[name] = v
			}
		case strings.HasPrefix(name, "user."):
			if pod.Spec.HostUsers != nil && !*pod.Spec.HostUsers {
				out[name] = v
			}
		case name == "kernel.domainname":
			if !pod.Spec.HostNetwork {
				out[name] = v
			}
		}
		// Sysctls of no pod namespace are never defaulted.
	}
	if pod.Spec.SecurityContext != nil {
		for _, s := range pod.Spec.SecurityContext.Sysctls {
			out[s.Name] = s.Value
		}
	}
	return out
}
