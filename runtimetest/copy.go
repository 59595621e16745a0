package runtimetest

import (
	"maps"
	"slices"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Explicit deep copies of the CRI messages the runtime keeps, much cheaper
// than proto.Clone. The runtime keeps private copies of what it is given
// and hands out fresh ones, so callers never share memory with it.
// TestCopiesAreDeep fills every field by reflection and checks these
// functions copy them all, so a field added to the CRI API is not missed.

func copyPodSandboxMetadata(m *runtimeapi.PodSandboxMetadata) *runtimeapi.PodSandboxMetadata {
	if m == nil {
		return nil
	}
	return &runtimeapi.PodSandboxMetadata{Name: m.Name, Uid: m.Uid, Namespace: m.Namespace, Attempt: m.Attempt}
}

func copyImageSpec(s *runtimeapi.ImageSpec) *runtimeapi.ImageSpec {
	if s == nil {
		return nil
	}
	out := &runtimeapi.ImageSpec{}
	copyImageSpecInto(out, s)
	return out
}

func copyImageSpecInto(dst, s *runtimeapi.ImageSpec) {
	dst.Image = s.GetImage()
	dst.Annotations = maps.Clone(s.GetAnnotations())
	dst.UserSpecifiedImage = s.GetUserSpecifiedImage()
	dst.RuntimeHandler = s.GetRuntimeHandler()
	dst.ImageRef = s.GetImageRef()
}

func copyIDMappings(ms []*runtimeapi.IDMapping) []*runtimeapi.IDMapping {
	if ms == nil {
		return nil
	}
	out := make([]*runtimeapi.IDMapping, len(ms))
	for i, m := range ms {
		if m != nil {
			out[i] = &runtimeapi.IDMapping{HostId: m.HostId, ContainerId: m.ContainerId, Length: m.Length}
		}
	}
	return out
}

func copyMounts(ms []*runtimeapi.Mount) []*runtimeapi.Mount {
	if ms == nil {
		return nil
	}
	out := make([]*runtimeapi.Mount, len(ms))
	for i, m := range ms {
		if m == nil {
			continue
		}
		out[i] = &runtimeapi.Mount{
			ContainerPath:     m.ContainerPath,
			HostPath:          m.HostPath,
			Readonly:          m.Readonly,
			SelinuxRelabel:    m.SelinuxRelabel,
			Propagation:       m.Propagation,
			UidMappings:       copyIDMappings(m.UidMappings),
			GidMappings:       copyIDMappings(m.GidMappings),
			RecursiveReadOnly: m.RecursiveReadOnly,
			Image:             copyImageSpec(m.Image),
			ImageSubPath:      m.ImageSubPath,
			MountOptions:      slices.Clone(m.MountOptions),
		}
	}
	return out
}

func copyNamespaceOption(o *runtimeapi.NamespaceOption) *runtimeapi.NamespaceOption {
	if o == nil {
		return nil
	}
	out := &runtimeapi.NamespaceOption{Network: o.Network, Pid: o.Pid, Ipc: o.Ipc, TargetId: o.TargetId}
	if u := o.UsernsOptions; u != nil {
		out.UsernsOptions = &runtimeapi.UserNamespace{Mode: u.Mode, Uids: copyIDMappings(u.Uids), Gids: copyIDMappings(u.Gids)}
	}
	return out
}

func copyResources(r *runtimeapi.ContainerResources) *runtimeapi.ContainerResources {
	if r == nil {
		return nil
	}
	return &runtimeapi.ContainerResources{Linux: copyLinuxResources(r.Linux), Windows: copyWindowsResources(r.Windows)}
}

func copyLinuxResources(l *runtimeapi.LinuxContainerResources) *runtimeapi.LinuxContainerResources {
	if l == nil {
		return nil
	}
	out := &runtimeapi.LinuxContainerResources{
		CpuPeriod:              l.CpuPeriod,
		CpuQuota:               l.CpuQuota,
		CpuShares:              l.CpuShares,
		MemoryLimitInBytes:     l.MemoryLimitInBytes,
		OomScoreAdj:            l.OomScoreAdj,
		CpusetCpus:             l.CpusetCpus,
		CpusetMems:             l.CpusetMems,
		Unified:                maps.Clone(l.Unified),
		MemorySwapLimitInBytes: l.MemorySwapLimitInBytes,
	}
	if l.HugepageLimits != nil {
		out.HugepageLimits = make([]*runtimeapi.HugepageLimit, len(l.HugepageLimits))
		for i, h := range l.HugepageLimits {
			if h != nil {
				out.HugepageLimits[i] = &runtimeapi.HugepageLimit{PageSize: h.PageSize, Limit: h.Limit}
			}
		}
	}
	return out
}

func copyWindowsResources(w *runtimeapi.WindowsContainerResources) *runtimeapi.WindowsContainerResources {
	if w == nil {
		return nil
	}
	out := &runtimeapi.WindowsContainerResources{
		CpuShares:          w.CpuShares,
		CpuCount:           w.CpuCount,
		CpuMaximum:         w.CpuMaximum,
		MemoryLimitInBytes: w.MemoryLimitInBytes,
		RootfsSizeInBytes:  w.RootfsSizeInBytes,
	}
	if w.AffinityCpus != nil {
		out.AffinityCpus = make([]*runtimeapi.WindowsCpuGroupAffinity, len(w.AffinityCpus))
		for i, a := range w.AffinityCpus {
			if a != nil {
				out.AffinityCpus[i] = &runtimeapi.WindowsCpuGroupAffinity{CpuMask: a.CpuMask, CpuGroup: a.CpuGroup}
			}
		}
	}
	return out
}

// mergeLinuxResources applies an update as containerd does: its non-zero
// CPU, cpuset, memory and swap limits replace the old ones and its unified
// entries are added; the OOM score adjustment cannot change.
func mergeLinuxResources(old, upd *runtimeapi.LinuxContainerResources) *runtimeapi.LinuxContainerResources {
	out := copyLinuxResources(old)
	if out == nil {
		out = &runtimeapi.LinuxContainerResources{}
	}
	setIf := func(dst *int64, v int64) {
		if v != 0 {
			*dst = v
		}
	}
	setIf(&out.CpuPeriod, upd.CpuPeriod)
	setIf(&out.CpuQuota, upd.CpuQuota)
	setIf(&out.CpuShares, upd.CpuShares)
	setIf(&out.MemoryLimitInBytes, upd.MemoryLimitInBytes)
	setIf(&out.MemorySwapLimitInBytes, upd.MemorySwapLimitInBytes)
	if upd.CpusetCpus != "" {
		out.CpusetCpus = upd.CpusetCpus
	}
	if upd.CpusetMems != "" {
		out.CpusetMems = upd.CpusetMems
	}
	if len(upd.Unified) > 0 {
		if out.Unified == nil {
			out.Unified = make(map[string]string, len(upd.Unified))
		}
		maps.Copy(out.Unified, upd.Unified)
	}
	return out
}
