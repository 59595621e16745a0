package eviction

import (
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestParseMeminfo(t *testing.T) {
	got, err := parseMeminfo([]byte("MemTotal:       24731708 kB\nMemFree:  100 kB\nHugePages_Total:       4\nInactive(file):  2728620 kB\nbogus line\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"MemTotal": 24731708 * 1024, "MemFree": 100 * 1024, "HugePages_Total": 4, "Inactive(file)": 2728620 * 1024}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d fields, want %d: %v", len(got), len(want), got)
	}
	if _, err := parseMeminfo([]byte("MemTotal: lots kB\n")); err == nil {
		t.Error("a field that is not a number parses")
	}
}

func TestParseLoadavgTasks(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{in: "1.36 3.49 4.53 2/3518 3715089\n", want: 3518},
		{in: "0.00 0.00 0.00 1/70000 1", want: 70000}, // past sysinfo's 16 bits
		{in: "0.00 0.00 0.00 2/136", wantErr: true},
		{in: "0.00 0.00 0.00 2-136 5", wantErr: true},
		{in: "0.00 0.00 0.00 2/x 5", wantErr: true},
		{in: "", wantErr: true},
	} {
		got, err := parseLoadavgTasks(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseLoadavgTasks(%q) = %d, %v; want %d, error %t", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestMemoryArithmetic(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    cgroupMemory
		want uint64
	}{
		{"usage less inactive file", cgroupMemory{usage: 1000, inactiveFile: 300}, 700},
		{"no inactive file", cgroupMemory{usage: 1000}, 1000},
		{"inactive file above usage (stats read at different moments)", cgroupMemory{usage: 100, inactiveFile: 300}, 0},
	} {
		if got := tc.m.workingSet(); got != tc.want {
			t.Errorf("%s: workingSet = %d, want %d", tc.name, got, tc.want)
		}
	}
	info := map[string]uint64{"AnonPages": 10, "Buffers": 1, "Cached": 20, "SwapCached": 2, "Inactive(file)": 5, "MemTotal": 100}
	if got, want := meminfoMemory(info), (cgroupMemory{usage: 33, inactiveFile: 5, limit: 100}); got != want {
		t.Errorf("meminfoMemory = %+v, want %+v", got, want)
	}
	for _, tc := range []struct {
		limit uint64
		want  bool
	}{{0, true}, {9223372036854771712, true}, {1<<62 + 1, true}, {1 << 62, false}, {8 << 30, false}} {
		if got := unlimited(tc.limit); got != tc.want {
			t.Errorf("unlimited(%d) = %t", tc.limit, got)
		}
	}
}

func TestCgroupNames(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "12-34"}}
	burstable := pod.DeepCopy()
	burstable.Spec.Containers = []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{
		Requests: v1.ResourceList{v1.ResourceMemory: resource.MustParse("1Mi")}}}}
	for _, tc := range []struct {
		driver, root    string
		pod             *v1.Pod
		wantAllocatable string
		wantPod         []string
	}{
		{
			driver: CgroupDriverCgroupfs, pod: pod,
			wantAllocatable: "/kubepods",
			wantPod:         []string{"/kubepods/besteffort/pod12-34", "/kubepods/pod12-34", "/kubepods/burstable/pod12-34"},
		},
		{
			driver: CgroupDriverCgroupfs, root: "/nodes/a/", pod: burstable,
			wantAllocatable: "/nodes/a/kubepods",
			wantPod:         []string{"/nodes/a/kubepods/burstable/pod12-34", "/nodes/a/kubepods/pod12-34", "/nodes/a/kubepods/besteffort/pod12-34"},
		},
		{
			driver: CgroupDriverSystemd, pod: burstable,
			wantAllocatable: "/kubepods.slice",
			wantPod: []string{
				"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12_34.slice",
				"/kubepods.slice/kubepods-pod12_34.slice",
				"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12_34.slice",
			},
		},
	} {
		p, err := NewStatsProvider(StatsConfig{CgroupDriver: tc.driver, CgroupRoot: tc.root})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.AllocatableCgroup(); got != tc.wantAllocatable {
			t.Errorf("%s %q: AllocatableCgroup = %q, want %q", tc.driver, tc.root, got, tc.wantAllocatable)
		}
		got := p.podCgroupCandidates(tc.pod, qosOf(tc.pod))
		if !slices.Equal(got, tc.wantPod) {
			t.Errorf("%s %q: pod cgroups = %q, want %q", tc.driver, tc.root, got, tc.wantPod)
		}
	}
}

func qosOf(pod *v1.Pod) v1.PodQOSClass {
	if len(pod.Spec.Containers) == 0 {
		return v1.PodQOSBestEffort
	}
	return v1.PodQOSBurstable
}

func TestOrderBySpec(t *testing.T) {
	pod := &v1.Pod{Spec: v1.PodSpec{
		InitContainers: []v1.Container{{Name: "sidecar"}},
		Containers:     []v1.Container{{Name: "b"}, {Name: "a"}},
		Volumes: []v1.Volume{
			{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
			{Name: "ram", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory}}},
			{Name: "conf", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{}}},
			{Name: "token", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{}}},
			{Name: "info", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{}}},
			{Name: "repo", VolumeSource: v1.VolumeSource{GitRepo: &v1.GitRepoVolumeSource{}}},
			{Name: "host", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{}}},
		},
	}}
	cs := orderContainers(pod, []containerSample{{name: "zz"}, {name: "sidecar"}, {name: "a"}, {name: "b"}, {name: "extra"}})
	var names []string
	for _, c := range cs {
		names = append(names, c.name)
	}
	if want := []string{"b", "a", "sidecar", "extra", "zz"}; !slices.Equal(names, want) {
		t.Errorf("containers in order %q, want %q", names, want)
	}
	vs := orderVolumes(pod, []VolumeStats{{Name: "x"}, {Name: "conf"}, {Name: "scratch"}})
	names = names[:0]
	for _, v := range vs {
		names = append(names, v.Name)
	}
	if want := []string{"scratch", "conf", "x"}; !slices.Equal(names, want) {
		t.Errorf("volumes in order %q, want %q", names, want)
	}
	var local []string
	for _, v := range pod.Spec.Volumes {
		if isLocalEphemeralVolume(pod, v.Name) {
			local = append(local, v.Name)
		}
	}
	if want := []string{"scratch", "conf", "repo"}; !slices.Equal(local, want) {
		t.Errorf("local ephemeral volumes %q, want %q", local, want)
	}
}
