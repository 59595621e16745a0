package cpumanager_test

import (
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/cpumanager"
)

const cgTestUID = "6a1f3c2e-0b7d-4e21-9a55-1c2d3e4f5a6b"

// cgPod builds a pod with one container per requirements.
func cgPod(uid string, containers ...v1.ResourceRequirements) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: types.UID(uid)}}
	for i, r := range containers {
		p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: "c" + string(rune('0'+i)), Resources: r})
	}
	return p
}

// cgReq builds requirements from the CPU and memory requests and limits;
// "" leaves a value out.
func cgReq(reqCPU, reqMem, limCPU, limMem string) v1.ResourceRequirements {
	mk := func(cpu, mem string) v1.ResourceList {
		l := v1.ResourceList{}
		if cpu != "" {
			l[v1.ResourceCPU] = resource.MustParse(cpu)
		}
		if mem != "" {
			l[v1.ResourceMemory] = resource.MustParse(mem)
		}
		if len(l) == 0 {
			return nil
		}
		return l
	}
	return v1.ResourceRequirements{Requests: mk(reqCPU, reqMem), Limits: mk(limCPU, limMem)}
}

func TestCgroupLayoutNames(t *testing.T) {
	guaranteed := cgPod(cgTestUID, cgReq("1", "1Gi", "1", "1Gi"))
	burstable := cgPod(cgTestUID, cgReq("100m", "", "", ""))
	besteffort := cgPod(cgTestUID, cgReq("", "", "", ""))
	tests := []struct {
		layout cpumanager.CgroupLayout
		pod    *v1.Pod
		want   string
	}{
		{cpumanager.CgroupLayout{}, guaranteed, "/kubepods/pod" + cgTestUID},
		{cpumanager.CgroupLayout{}, burstable, "/kubepods/burstable/pod" + cgTestUID},
		{cpumanager.CgroupLayout{}, besteffort, "/kubepods/besteffort/pod" + cgTestUID},
		{cpumanager.CgroupLayout{Root: "/custom/root/"}, burstable, "/custom/root/kubepods/burstable/pod" + cgTestUID},
		{cpumanager.CgroupLayout{Driver: cpumanager.SystemdDriver}, guaranteed,
			"/kubepods.slice/kubepods-pod6a1f3c2e_0b7d_4e21_9a55_1c2d3e4f5a6b.slice"},
		{cpumanager.CgroupLayout{Driver: cpumanager.SystemdDriver}, burstable,
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6a1f3c2e_0b7d_4e21_9a55_1c2d3e4f5a6b.slice"},
		{cpumanager.CgroupLayout{Root: "/", Driver: cpumanager.SystemdDriver}, besteffort,
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod6a1f3c2e_0b7d_4e21_9a55_1c2d3e4f5a6b.slice"},
		{cpumanager.CgroupLayout{Root: "/system", Driver: cpumanager.SystemdDriver}, besteffort,
			"/system.slice/system-kubepods.slice/system-kubepods-besteffort.slice/system-kubepods-besteffort-pod6a1f3c2e_0b7d_4e21_9a55_1c2d3e4f5a6b.slice"},
	}
	for _, tt := range tests {
		got := tt.layout.CgroupParent(tt.pod)
		if got != tt.want {
			t.Errorf("%+v CgroupParent = %q, want %q", tt.layout, got, tt.want)
		}
		uid, ok := tt.layout.PodUID(got)
		if !ok || uid != cgTestUID {
			t.Errorf("%+v PodUID(%q) = %q, %v; want %q, true", tt.layout, got, uid, ok, cgTestUID)
		}
	}
}

// The status' QoS class wins over the resources, as the kubelet keeps a
// pod in the cgroup it started in.
func TestCgroupLayoutUsesStatusQOSClass(t *testing.T) {
	p := cgPod(cgTestUID, cgReq("1", "1Gi", "1", "1Gi"))
	p.Status.QOSClass = v1.PodQOSBurstable
	if got, want := (cpumanager.CgroupLayout{}).CgroupParent(p), "/kubepods/burstable/pod"+cgTestUID; got != want {
		t.Errorf("CgroupParent = %q, want %q", got, want)
	}
}

func TestCgroupLayoutPodUIDRejects(t *testing.T) {
	l := cpumanager.CgroupLayout{Root: "/r"}
	for _, p := range []string{
		"/r/kubepods",
		"/r/kubepods/burstable",
		"/r/kubepods/burstable/pod",             // no UID
		"/r/kubepods/burstable/abc",             // no prefix
		"/kubepods/burstable/pod" + cgTestUID,   // another root
		"/r/kubepods/burstable/pod1/container",  // too deep
		"/r/kubepods/other/pod" + cgTestUID,     // not a QoS cgroup
		"/r/kubepods.slice/kubepods-pod1.slice", // another driver
		"/",
	} {
		if uid, ok := l.PodUID(p); ok {
			t.Errorf("PodUID(%q) = %q, true; want false", p, uid)
		}
	}
	if uid, ok := l.PodUID("/r/kubepods/besteffort/pod12"); !ok || uid != "12" {
		t.Errorf("PodUID of a besteffort pod = %q, %v", uid, ok)
	}
}

func TestCgroupNameConversions(t *testing.T) {
	tests := []struct {
		name     cpumanager.CgroupName
		cgroupfs string
		systemd  string
	}{
		{cpumanager.CgroupName{}, "/", "/"},
		{cpumanager.CgroupName{"kubepods"}, "/kubepods", "/kubepods.slice"},
		{cpumanager.CgroupName{"kubepods", "burstable"}, "/kubepods/burstable", "/kubepods.slice/kubepods-burstable.slice"},
		{cpumanager.CgroupName{"a", "b-c", "d"}, "/a/b-c/d", "/a.slice/a-b_c.slice/a-b_c-d.slice"},
	}
	for _, tt := range tests {
		if got := tt.name.Cgroupfs(); got != tt.cgroupfs {
			t.Errorf("%q.Cgroupfs() = %q, want %q", tt.name, got, tt.cgroupfs)
		}
		if got := tt.name.Systemd(); got != tt.systemd {
			t.Errorf("%q.Systemd() = %q, want %q", tt.name, got, tt.systemd)
		}
		if got := cpumanager.ParseCgroupfsName(tt.cgroupfs); !slices.Equal(got, tt.name) {
			t.Errorf("ParseCgroupfsName(%q) = %q, want %q", tt.cgroupfs, got, tt.name)
		}
		if got := cpumanager.ParseSystemdName(tt.systemd); !slices.Equal(got, tt.name) {
			t.Errorf("ParseSystemdName(%q) = %q, want %q", tt.systemd, got, tt.name)
		}
		for _, d := range []cpumanager.CgroupDriver{cpumanager.CgroupfsDriver, cpumanager.SystemdDriver} {
			if got := d.Parse(d.Name(tt.name)); !slices.Equal(got, tt.name) {
				t.Errorf("%s round trip of %q = %q", d, tt.name, got)
			}
		}
	}
	if got := cpumanager.ParseSystemdName("-.slice"); len(got) != 0 {
		t.Errorf(`ParseSystemdName("-.slice") = %q, want the root`, got)
	}
	n := cpumanager.CgroupName{"a"}
	c := n.Child("b")
	c[0] = "changed"
	if n[0] != "a" {
		t.Error("Child shares the parent's storage")
	}
}
