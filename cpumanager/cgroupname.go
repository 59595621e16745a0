package cpumanager

import (
	"path"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/crispec"
)

// CgroupName is a cgroup's name independent of the cgroup driver: its path
// components below the cgroup root of the host, such as
// {"kubepods", "burstable", "pod<uid>"}. The empty name is the root.
//
// Components must be non-empty and contain no "/". With the systemd driver
// they must not contain "_" either, since "-" is escaped to "_".
type CgroupName []string

// Child returns a new name with components appended; n is not modified.
func (n CgroupName) Child(components ...string) CgroupName {
	out := make(CgroupName, 0, len(n)+len(components))
	return append(append(out, n...), components...)
}

// Cgroupfs is the name as the cgroupfs driver spells it: "/kubepods/burstable".
func (n CgroupName) Cgroupfs() string {
	return "/" + path.Join(n...)
}

// Systemd is the name as the systemd driver spells it on the cgroup file
// system, one slice per component with every ancestor's name as prefix and
// "-" in a component escaped to "_":
// {"kubepods", "burstable", "pod12-34"} is
// "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12_34.slice".
func (n CgroupName) Systemd() string {
	if len(n) == 0 {
		return "/"
	}
	var b strings.Builder
	prefix := ""
	for _, c := range n {
		unit := prefix + strings.ReplaceAll(c, "-", "_")
		b.WriteString("/" + unit + systemdSliceSuffix)
		prefix = unit + "-"
	}
	return b.String()
}

const systemdSliceSuffix = ".slice"

// ParseCgroupfsName reads a cgroupfs path ("/kubepods/burstable") back into
// a name. "/" and "" are the root.
func ParseCgroupfsName(p string) CgroupName {
	p = strings.Trim(path.Clean("/"+p), "/")
	if p == "" {
		return CgroupName{}
	}
	return CgroupName(strings.Split(p, "/"))
}

// ParseSystemdName reads a systemd slice, or the path to one, back into a
// name: the last slice carries every component ("kubepods-burstable.slice"
// is {"kubepods", "burstable"}), and "_" is unescaped to "-".
func ParseSystemdName(p string) CgroupName {
	base := strings.TrimSuffix(path.Base(p), systemdSliceSuffix)
	if base == "/" || base == "." || base == "" || base == "-" {
		return CgroupName{}
	}
	parts := strings.Split(base, "-")
	out := make(CgroupName, len(parts))
	for i, part := range parts {
		out[i] = strings.ReplaceAll(part, "_", "-")
	}
	return out
}

// CgroupDriver is how cgroups are named on the host: "cgroupfs" (plain
// directories) or "systemd" (slices).
type CgroupDriver string

// The cgroup drivers of the kubelet.
const (
	CgroupfsDriver CgroupDriver = "cgroupfs"
	SystemdDriver  CgroupDriver = "systemd"
)

// Name converts a name to the driver's path on the cgroup file system.
// The empty driver is cgroupfs.
func (d CgroupDriver) Name(n CgroupName) string {
	if d == SystemdDriver {
		return n.Systemd()
	}
	return n.Cgroupfs()
}

// Parse converts a path on the cgroup file system, in the driver's
// spelling, back into a name.
func (d CgroupDriver) Parse(p string) CgroupName {
	if d == SystemdDriver {
		return ParseSystemdName(p)
	}
	return ParseCgroupfsName(p)
}

// Names of the kubelet's cgroup hierarchy.
const (
	// NodeAllocatableCgroup is the top of the hierarchy, below the cgroup
	// root. Guaranteed pods live directly in it.
	NodeAllocatableCgroup = "kubepods"
	// BurstableCgroup and BestEffortCgroup are the QoS cgroups below it.
	BurstableCgroup  = "burstable"
	BestEffortCgroup = "besteffort"
	// PodCgroupPrefix precedes the pod's UID in a pod cgroup's name.
	PodCgroupPrefix = "pod"
)

// CgroupLayout names the cgroups of the kubelet's QoS hierarchy for a cgroup
// root and a driver. The zero value is the kubelet's default: root "/",
// cgroupfs driver. Its methods are pure.
type CgroupLayout struct {
	// Root is the cgroup the hierarchy lives in, in cgroupfs form (the
	// kubelet's --cgroup-root, whatever the driver). Empty means "/".
	Root string
	// Driver spells the names. Empty means cgroupfs.
	Driver CgroupDriver
}

// NodeAllocatable is the kubepods cgroup: <root>/kubepods.
func (l CgroupLayout) NodeAllocatable() CgroupName {
	return ParseCgroupfsName(l.Root).Child(NodeAllocatableCgroup)
}

// QOSCgroup is the cgroup holding the pods of a QoS class: kubepods itself
// for Guaranteed, kubepods/burstable and kubepods/besteffort for the
// others.
func (l CgroupLayout) QOSCgroup(class v1.PodQOSClass) CgroupName {
	top := l.NodeAllocatable()
	switch class {
	case v1.PodQOSBurstable:
		return top.Child(BurstableCgroup)
	case v1.PodQOSBestEffort:
		return top.Child(BestEffortCgroup)
	}
	return top
}

// PodCgroupName is the pod's cgroup: pod<uid> in the cgroup of its QoS
// class (status.qosClass, else computed from its resources).
func (l CgroupLayout) PodCgroupName(pod *v1.Pod) CgroupName {
	return l.QOSCgroup(crispec.PodQOS(pod)).Child(PodCgroupPrefix + string(pod.UID))
}

// CgroupParent is the pod cgroup's path in the driver's spelling, the value
// the kubelet passes as LinuxPodSandboxConfig.CgroupParent
// (crispec.SandboxOptions.CgroupParent): "/kubepods/burstable/pod<uid>"
// with cgroupfs, "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice"
// with systemd.
func (l CgroupLayout) CgroupParent(pod *v1.Pod) string {
	return l.Driver.Name(l.PodCgroupName(pod))
}

// Name spells a name in the layout's driver.
func (l CgroupLayout) Name(n CgroupName) string {
	return l.Driver.Name(n)
}

// PodUID reports whether a path, in the driver's spelling, is a pod cgroup
// of this layout (a pod<uid> child of one of the three QoS cgroups) and
// the pod's UID.
func (l CgroupLayout) PodUID(p string) (types.UID, bool) {
	n := l.Driver.Parse(p)
	if len(n) == 0 {
		return "", false
	}
	parent := n[:len(n)-1]
	for _, class := range []v1.PodQOSClass{v1.PodQOSGuaranteed, v1.PodQOSBurstable, v1.PodQOSBestEffort} {
		if slices.Equal(parent, l.QOSCgroup(class)) {
			return podUIDFromComponent(n[len(n)-1])
		}
	}
	return "", false
}

// podUIDFromComponent splits "pod<uid>".
func podUIDFromComponent(c string) (types.UID, bool) {
	uid, ok := strings.CutPrefix(c, PodCgroupPrefix)
	if !ok || uid == "" {
		return "", false
	}
	return types.UID(uid), true
}
