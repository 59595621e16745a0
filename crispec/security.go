package crispec

import (
	"path/filepath"
	"strings"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// DefaultMaskedPaths are the paths the kubelet masks in every container
// whose procMount is not Unmasked. Config.ExtraMaskedPaths are added to
// them. The result is a fresh slice.
func DefaultMaskedPaths() []string {
	return []string{
		"/proc/asound",
		"/proc/acpi",
		"/proc/interrupts",
		"/proc/kcore",
		"/proc/keys",
		"/proc/latency_stats",
		"/proc/timer_list",
		"/proc/timer_stats",
		"/proc/sched_debug",
		"/proc/scsi",
		"/sys/firmware",
		"/sys/devices/virtual/powercap",
	}
}

// DefaultReadonlyPaths are the paths the kubelet makes read-only in every
// container whose procMount is not Unmasked. The result is a fresh slice.
func DefaultReadonlyPaths() []string {
	return []string{
		"/proc/bus",
		"/proc/fs",
		"/proc/irq",
		"/proc/sys",
		"/proc/sysrq-trigger",
	}
}

// namespaceOptions are the Linux namespaces of the pod: the node's network,
// PID and IPC namespaces when the pod asks for them, one PID namespace for
// the pod when it shares its process namespace, one per container
// otherwise. userns is the pod's user namespace when spec.hostUsers is
// false.
func namespaceOptions(pod *v1.Pod, userns *runtimeapi.UserNamespace) (*runtimeapi.NamespaceOption, error) {
	ns := &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_POD,
		Pid:     runtimeapi.NamespaceMode_CONTAINER,
		Ipc:     runtimeapi.NamespaceMode_POD,
	}
	if pod.Spec.HostNetwork {
		ns.Network = runtimeapi.NamespaceMode_NODE
	}
	switch {
	case pod.Spec.HostPID:
		ns.Pid = runtimeapi.NamespaceMode_NODE
	case pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace:
		ns.Pid = runtimeapi.NamespaceMode_POD
	}
	if pod.Spec.HostIPC {
		ns.Ipc = runtimeapi.NamespaceMode_NODE
	}

	if pod.Spec.HostUsers == nil || *pod.Spec.HostUsers {
		ns.UsernsOptions = &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}
		return ns, nil
	}
	if userns == nil || userns.Mode != runtimeapi.NamespaceMode_POD || len(userns.Uids) == 0 || len(userns.Gids) == 0 {
		return nil, invalidf("spec.hostUsers is false: needs the pod's user namespace mappings (a UserNamespace in POD mode with uid and gid mappings)")
	}
	ns.UsernsOptions = cloneUserNamespace(userns)
	return ns, nil
}

func cloneUserNamespace(u *runtimeapi.UserNamespace) *runtimeapi.UserNamespace {
	out := &runtimeapi.UserNamespace{Mode: u.Mode}
	for _, m := range u.Uids {
		out.Uids = append(out.Uids, &runtimeapi.IDMapping{HostId: m.HostId, ContainerId: m.ContainerId, Length: m.Length})
	}
	for _, m := range u.Gids {
		out.Gids = append(out.Gids, &runtimeapi.IDMapping{HostId: m.HostId, ContainerId: m.ContainerId, Length: m.Length})
	}
	return out
}

// supplementalGroupsPolicy maps the pod's policy to CRI.
func supplementalGroupsPolicy(p *v1.SupplementalGroupsPolicy) (runtimeapi.SupplementalGroupsPolicy, error) {
	if p == nil {
		return runtimeapi.SupplementalGroupsPolicy_Merge, nil
	}
	v, ok := runtimeapi.SupplementalGroupsPolicy_value[string(*p)]
	if !ok {
		return 0, invalidf("spec.securityContext.supplementalGroupsPolicy %q: unsupported policy", *p)
	}
	return runtimeapi.SupplementalGroupsPolicy(v), nil
}

func seLinuxOption(o *v1.SELinuxOptions) *runtimeapi.SELinuxOption {
	if o == nil {
		return nil
	}
	return &runtimeapi.SELinuxOption{User: o.User, Role: o.Role, Type: o.Type, Level: o.Level}
}

// hasPrivilegedContainer reports whether any container of the pod (init,
// regular or ephemeral) is privileged; the sandbox is then privileged too.
func hasPrivilegedContainer(pod *v1.Pod) bool {
	privileged := func(sc *v1.SecurityContext) bool {
		return sc != nil && sc.Privileged != nil && *sc.Privileged
	}
	for i := range pod.Spec.InitContainers {
		if privileged(pod.Spec.InitContainers[i].SecurityContext) {
			return true
		}
	}
	for i := range pod.Spec.Containers {
		if privileged(pod.Spec.Containers[i].SecurityContext) {
			return true
		}
	}
	for i := range pod.Spec.EphemeralContainers {
		if privileged(pod.Spec.EphemeralContainers[i].SecurityContext) {
			return true
		}
	}
	return false
}

// effectiveSecurityContext merges the pod's security context into the
// container's: container fields win; from the pod only SELinux options,
// runAsUser, runAsGroup and runAsNonRoot carry over.
func effectiveSecurityContext(pod *v1.Pod, c *v1.Container) v1.SecurityContext {
	var sc v1.SecurityContext
	if p := pod.Spec.SecurityContext; p != nil {
		sc.SELinuxOptions = p.SELinuxOptions
		sc.RunAsUser = p.RunAsUser
		sc.RunAsGroup = p.RunAsGroup
		sc.RunAsNonRoot = p.RunAsNonRoot
	}
	cs := c.SecurityContext
	if cs == nil {
		return sc
	}
	if cs.SELinuxOptions != nil {
		sc.SELinuxOptions = cs.SELinuxOptions
	}
	if cs.RunAsUser != nil {
		sc.RunAsUser = cs.RunAsUser
	}
	if cs.RunAsGroup != nil {
		sc.RunAsGroup = cs.RunAsGroup
	}
	if cs.RunAsNonRoot != nil {
		sc.RunAsNonRoot = cs.RunAsNonRoot
	}
	sc.Capabilities = cs.Capabilities
	sc.Privileged = cs.Privileged
	sc.ReadOnlyRootFilesystem = cs.ReadOnlyRootFilesystem
	sc.AllowPrivilegeEscalation = cs.AllowPrivilegeEscalation
	sc.ProcMount = cs.ProcMount
	return sc
}

// containerSecurityContext builds a container's Linux security context
// as the kubelet does.
func (t *Translator) containerSecurityContext(pod *v1.Pod, c *v1.Container, opts *ContainerOptions) (*runtimeapi.LinuxContainerSecurityContext, error) {
	sc := effectiveSecurityContext(pod, c)
	out := &runtimeapi.LinuxContainerSecurityContext{
		SelinuxOptions: seLinuxOption(sc.SELinuxOptions),
	}
	if caps := sc.Capabilities; caps != nil {
		// Names are passed as written ("NET_ADMIN", or "CAP_NET_ADMIN"):
		// the runtime normalizes them.
		out.Capabilities = &runtimeapi.Capability{
			AddCapabilities:  make([]string, len(caps.Add)),
			DropCapabilities: make([]string, len(caps.Drop)),
		}
		for i, c := range caps.Add {
			out.Capabilities.AddCapabilities[i] = string(c)
		}
		for i, c := range caps.Drop {
			out.Capabilities.DropCapabilities[i] = string(c)
		}
	}
	if sc.RunAsUser != nil {
		out.RunAsUser = &runtimeapi.Int64Value{Value: *sc.RunAsUser}
	} else {
		// The image decides; an image that names no user runs as root.
		uid, username := opts.imageUser()
		if uid != nil {
			out.RunAsUser = &runtimeapi.Int64Value{Value: *uid}
		}
		out.RunAsUsername = username
	}
	if sc.RunAsGroup != nil {
		out.RunAsGroup = &runtimeapi.Int64Value{Value: *sc.RunAsGroup}
	}
	if sc.Privileged != nil {
		out.Privileged = *sc.Privileged
	}
	if sc.ReadOnlyRootFilesystem != nil {
		out.ReadonlyRootfs = *sc.ReadOnlyRootFilesystem
	}
	// allowPrivilegeEscalation: false sets no_new_privs; unset leaves it
	// off.
	out.NoNewPrivs = sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation

	if sc.ProcMount != nil && *sc.ProcMount == v1.UnmaskedProcMount {
		out.MaskedPaths = []string{}
		out.ReadonlyPaths = []string{}
	} else {
		out.MaskedPaths = append(DefaultMaskedPaths(), t.cfg.ExtraMaskedPaths...)
		out.ReadonlyPaths = DefaultReadonlyPaths()
	}

	var err error
	if out.Seccomp, err = t.seccompProfile(pod, c); err != nil {
		return nil, err
	}
	if out.Apparmor, out.ApparmorProfile, err = appArmorProfile(pod, c); err != nil {
		return nil, err
	}
	if out.NamespaceOptions, err = namespaceOptions(pod, opts.UserNamespace); err != nil {
		return nil, err
	}
	if opts.TargetContainerID != "" && out.NamespaceOptions.Pid == runtimeapi.NamespaceMode_CONTAINER {
		out.NamespaceOptions.Pid = runtimeapi.NamespaceMode_TARGET
		out.NamespaceOptions.TargetId = opts.TargetContainerID
	}

	if p := pod.Spec.SecurityContext; p != nil {
		if p.FSGroup != nil {
			out.SupplementalGroups = append(out.SupplementalGroups, *p.FSGroup)
		}
		out.SupplementalGroups = append(out.SupplementalGroups, p.SupplementalGroups...)
		if p.SupplementalGroupsPolicy != nil {
			if out.SupplementalGroupsPolicy, err = supplementalGroupsPolicy(p.SupplementalGroupsPolicy); err != nil {
				return nil, err
			}
		}
	}
	out.SupplementalGroups = append(out.SupplementalGroups, opts.ExtraSupplementalGroups...)
	return out, nil
}

// seccompProfile: the container's profile, else the pod's, else
// RuntimeDefault when Config.SeccompDefault is set and Unconfined when not.
func (t *Translator) seccompProfile(pod *v1.Pod, c *v1.Container) (*runtimeapi.SecurityProfile, error) {
	var p *v1.SeccompProfile
	field := "securityContext.seccompProfile"
	switch {
	case c.SecurityContext != nil && c.SecurityContext.SeccompProfile != nil:
		p = c.SecurityContext.SeccompProfile
	case pod.Spec.SecurityContext != nil && pod.Spec.SecurityContext.SeccompProfile != nil:
		p, field = pod.Spec.SecurityContext.SeccompProfile, "spec.securityContext.seccompProfile"
	}
	switch {
	case p == nil && t.cfg.SeccompDefault, p != nil && p.Type == v1.SeccompProfileTypeRuntimeDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, nil
	case p != nil && p.Type == v1.SeccompProfileTypeLocalhost:
		if p.LocalhostProfile == nil || *p.LocalhostProfile == "" {
			return nil, invalidf("%s: type Localhost needs localhostProfile", field)
		}
		return &runtimeapi.SecurityProfile{
			ProfileType:  runtimeapi.SecurityProfile_Localhost,
			LocalhostRef: filepath.Join(t.cfg.SeccompProfileRoot, *p.LocalhostProfile),
		}, nil
	}
	// Unset without SeccompDefault, Unconfined, and unknown types.
	return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, nil
}

// appArmorProfile: the container's profile, else the deprecated per-container
// pod annotation (static pods may still carry it), else the pod's, else
// none. The second result is the old string form, still sent for runtimes
// that only read it.
func appArmorProfile(pod *v1.Pod, c *v1.Container) (*runtimeapi.SecurityProfile, string, error) {
	var p *v1.AppArmorProfile
	switch {
	case c.SecurityContext != nil && c.SecurityContext.AppArmorProfile != nil:
		p = c.SecurityContext.AppArmorProfile
	default:
		p = appArmorFromAnnotation(pod.Annotations[v1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix+c.Name])
		if p == nil && pod.Spec.SecurityContext != nil {
			p = pod.Spec.SecurityContext.AppArmorProfile
		}
	}
	if p == nil {
		return nil, "", nil
	}
	switch p.Type {
	case v1.AppArmorProfileTypeRuntimeDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
			v1.DeprecatedAppArmorBetaProfileRuntimeDefault, nil
	case v1.AppArmorProfileTypeUnconfined:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined},
			v1.DeprecatedAppArmorBetaProfileNameUnconfined, nil
	case v1.AppArmorProfileTypeLocalhost:
		if p.LocalhostProfile == nil {
			return nil, "", invalidf("appArmorProfile: type Localhost needs localhostProfile")
		}
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: *p.LocalhostProfile},
			v1.DeprecatedAppArmorBetaProfileNamePrefix + *p.LocalhostProfile, nil
	}
	return nil, "", invalidf("appArmorProfile: unknown type %q", p.Type)
}

func appArmorFromAnnotation(v string) *v1.AppArmorProfile {
	switch {
	case v == "":
		return nil
	case v == v1.DeprecatedAppArmorBetaProfileRuntimeDefault:
		return &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeRuntimeDefault}
	case v == v1.DeprecatedAppArmorBetaProfileNameUnconfined:
		return &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeUnconfined}
	case strings.HasPrefix(v, v1.DeprecatedAppArmorBetaProfileNamePrefix):
		name := strings.TrimPrefix(v, v1.DeprecatedAppArmorBetaProfileNamePrefix)
		return &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeLocalhost, LocalhostProfile: &name}
	}
	// An unknown value is ignored, as by the kubelet.
	return nil
}
