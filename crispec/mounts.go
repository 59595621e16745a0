package crispec

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// etcHostsPath is where the managed hosts file is mounted.
const etcHostsPath = "/etc/hosts"

// mounts builds a container's mounts in the kubelet's order: device
// mounts, volume mounts in spec order, the hosts file, the termination
// message file. env resolves subPathExpr.
func (t *Translator) mounts(pod *v1.Pod, c *v1.Container, opts *ContainerOptions, env map[string]string) ([]*runtimeapi.Mount, error) {
	out := make([]*runtimeapi.Mount, 0, len(opts.Devices.Mounts)+len(c.VolumeMounts)+2)
	for _, m := range opts.Devices.Mounts {
		if m == nil {
			continue
		}
		out = append(out, &runtimeapi.Mount{
			ContainerPath:     m.ContainerPath,
			HostPath:          m.HostPath,
			Readonly:          m.Readonly,
			SelinuxRelabel:    m.SelinuxRelabel && t.cfg.SELinuxEnabled,
			Propagation:       m.Propagation,
			RecursiveReadOnly: m.RecursiveReadOnly,
			MountOptions:      slices.Clone(m.MountOptions),
		})
	}

	mountHosts := opts.EtcHostsPath != "" && (len(opts.PodIPs) > 0 || pod.Spec.HostNetwork)
	imageVolumes := slices.ContainsFunc(pod.Spec.Volumes, func(v v1.Volume) bool { return v.Image != nil })
	for i := range c.VolumeMounts {
		vm := &c.VolumeMounts[i]
		if vm.MountPath == etcHostsPath {
			mountHosts = false
		}
		m, err := t.volumeMount(i, vm, opts, env, imageVolumes)
		if err != nil {
			return nil, fmt.Errorf("volumeMounts[%d] %q: %w", i, vm.Name, err)
		}
		out = append(out, m)
	}
	if mountHosts {
		out = append(out, &runtimeapi.Mount{
			ContainerPath:  etcHostsPath,
			HostPath:       opts.EtcHostsPath,
			SelinuxRelabel: t.cfg.SELinuxEnabled,
		})
	}
	if opts.TerminationMessageHostPath != "" && c.TerminationMessagePath != "" {
		out = append(out, &runtimeapi.Mount{
			ContainerPath:  filepath.Clean("/" + c.TerminationMessagePath),
			HostPath:       opts.TerminationMessageHostPath,
			SelinuxRelabel: t.cfg.SELinuxEnabled,
		})
	}
	return out, nil
}

// volumeMount translates one volume mount. imageVolumes says the pod has
// image volumes: the kubelet then passes every mount's subPath as
// image_sub_path too, which runtimes ignore for mounts that are not images.
func (t *Translator) volumeMount(index int, vm *v1.VolumeMount, opts *ContainerOptions, env map[string]string, imageVolumes bool) (*runtimeapi.Mount, error) {
	vol, ok := opts.Volumes[vm.Name]
	if !ok {
		return nil, notFoundf("volume %q is not mounted (not in ContainerOptions.Volumes)", vm.Name)
	}

	subPath := vm.SubPath
	if vm.SubPathExpr != "" {
		var err error
		if subPath, err = expandSubPath(vm.SubPathExpr, env); err != nil {
			return nil, err
		}
	}
	if subPath != "" {
		if filepath.IsAbs(subPath) {
			return nil, invalidf("subPath %q must be a relative path", subPath)
		}
		if slices.Contains(strings.Split(filepath.ToSlash(subPath), "/"), "..") {
			return nil, invalidf("subPath %q must not contain '..'", subPath)
		}
	}

	m := &runtimeapi.Mount{
		ContainerPath:  absPath(vm.MountPath),
		Readonly:       vm.ReadOnly || vol.ReadOnly,
		SelinuxRelabel: vol.SELinuxRelabel && t.cfg.SELinuxEnabled,
		MountOptions:   slices.Clone(vm.BindMountOptions),
	}
	if imageVolumes || vol.Image != nil {
		m.ImageSubPath = subPath
	}
	if vol.Image != nil {
		m.Image = &runtimeapi.ImageSpec{
			Image:              vol.Image.Image,
			UserSpecifiedImage: vol.Image.UserSpecifiedImage,
			RuntimeHandler:     vol.Image.RuntimeHandler,
			Annotations:        maps.Clone(vol.Image.Annotations),
		}
	} else {
		if vol.HostPath == "" {
			return nil, notFoundf("volume %q has no host path", vm.Name)
		}
		m.HostPath = vol.HostPath
		if subPath != "" {
			m.HostPath = filepath.Join(vol.HostPath, subPath)
			if opts.PrepareSubPath != nil {
				p, err := opts.PrepareSubPath(SubPath{
					VolumeMountIndex: index,
					VolumeName:       vm.Name,
					VolumePath:       vol.HostPath,
					Path:             m.HostPath,
				})
				if err != nil {
					return nil, fmt.Errorf("subPath %q: %w", subPath, err)
				}
				m.HostPath = p
			}
		}
	}

	var err error
	if m.Propagation, err = mountPropagation(vm.MountPropagation); err != nil {
		return nil, err
	}
	if m.RecursiveReadOnly, err = recursiveReadOnly(vm, opts.SupportsRecursiveReadOnly); err != nil {
		return nil, err
	}
	return m, nil
}

// expandSubPath expands a subPathExpr; unlike command and args, every
// reference must name a variable with a non-empty value.
func expandSubPath(expr string, env map[string]string) (string, error) {
	var missing []string
	out := expand(expr, func(name string) string {
		v := env[name]
		if v == "" && !slices.Contains(missing, name) {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		slices.Sort(missing)
		return "", invalidf("subPathExpr %q: no value for %s", expr, strings.Join(missing, ", "))
	}
	return out, nil
}

// absPath makes a container path absolute and clean, as the kubelet does
// for mount paths.
func absPath(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Clean("/" + p)
}

func mountPropagation(p *v1.MountPropagationMode) (runtimeapi.MountPropagation, error) {
	switch {
	case p == nil, *p == v1.MountPropagationNone:
		return runtimeapi.MountPropagation_PROPAGATION_PRIVATE, nil
	case *p == v1.MountPropagationHostToContainer:
		return runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER, nil
	case *p == v1.MountPropagationBidirectional:
		return runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL, nil
	}
	return 0, invalidf("mountPropagation %q: unknown mode", *p)
}

// recursiveReadOnly decides whether a mount is recursively read-only:
// Enabled requires a read-only, non-propagating mount and a runtime that
// supports it; IfPossible asks only when the runtime supports it.
func recursiveReadOnly(vm *v1.VolumeMount, supported bool) (bool, error) {
	if vm.RecursiveReadOnly == nil || *vm.RecursiveReadOnly == v1.RecursiveReadOnlyDisabled {
		return false, nil
	}
	if !vm.ReadOnly {
		return false, invalidf("recursiveReadOnly %q needs readOnly: true", *vm.RecursiveReadOnly)
	}
	if vm.MountPropagation != nil && *vm.MountPropagation != v1.MountPropagationNone {
		return false, invalidf("recursiveReadOnly %q is incompatible with mountPropagation %q", *vm.RecursiveReadOnly, *vm.MountPropagation)
	}
	switch *vm.RecursiveReadOnly {
	case v1.RecursiveReadOnlyIfPossible:
		return supported, nil
	case v1.RecursiveReadOnlyEnabled:
		if !supported {
			return false, invalidf("recursiveReadOnly %q: the runtime does not support recursive read-only mounts", *vm.RecursiveReadOnly)
		}
		return true, nil
	}
	return false, invalidf("recursiveReadOnly %q: unknown mode", *vm.RecursiveReadOnly)
}
