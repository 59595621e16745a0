package volumemgr

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/nodekit/nodekit/core"
)

func newTestEmptyDir(t *testing.T, cfg EmptyDirConfig) *EmptyDir {
	t.Helper()
	e, err := NewEmptyDir(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// mntResources builds requests and limits from "name=quantity" pairs.
func mntResources(requests, limits string) v1.ResourceRequirements {
	parse := func(s string) v1.ResourceList {
		if s == "" {
			return nil
		}
		l := v1.ResourceList{}
		for _, kv := range strings.Split(s, ",") {
			k, v, _ := strings.Cut(kv, "=")
			l[v1.ResourceName(k)] = resource.MustParse(v)
		}
		return l
	}
	return v1.ResourceRequirements{Requests: parse(requests), Limits: parse(limits)}
}

func mntPod(uid string, containers ...v1.ResourceRequirements) *v1.Pod {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: types.UID(uid)}}
	for i, r := range containers {
		pod.Spec.Containers = append(pod.Spec.Containers, v1.Container{Name: "c" + string(rune('a'+i)), Resources: r})
	}
	return pod
}

func emptyDirVolume(name string, medium v1.StorageMedium, sizeLimit string) *v1.Volume {
	src := &v1.EmptyDirVolumeSource{Medium: medium}
	if sizeLimit != "" {
		q := resource.MustParse(sizeLimit)
		src.SizeLimit = &q
	}
	return &v1.Volume{Name: name, VolumeSource: v1.VolumeSource{EmptyDir: src}}
}

func TestNewEmptyDirValidates(t *testing.T) {
	for _, root := range []string{"", "relative/root"} {
		_, err := NewEmptyDir(EmptyDirConfig{Layout: Layout{Root: root}, Mounter: newRecordingMounter()})
		if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "EmptyDirConfig.Layout.Root") {
			t.Errorf("root %q: error %v, want core.ErrInvalid naming EmptyDirConfig.Layout.Root", root, err)
		}
	}
	e := newTestEmptyDir(t, EmptyDirConfig{Layout: Layout{Root: t.TempDir()}, Mounter: newRecordingMounter()})
	if e.allocatable.Value() <= 0 {
		t.Errorf("allocatable memory without NodeAllocatable = %s, want the machine's memory", e.allocatable.String())
	}
}

func TestPodMemoryLimit(t *testing.T) {
	sidecar := v1.ContainerRestartPolicyAlways
	tests := []struct {
		name string
		pod  func() *v1.Pod
		want int64
		ok   bool
	}{
		{"best effort", func() *v1.Pod { return mntPod("u", v1.ResourceRequirements{}) }, 0, false},
		{"burstable, one container without a memory limit", func() *v1.Pod {
			return mntPod("u", mntResources("memory=100Mi", "memory=1Gi"), mntResources("cpu=1", ""))
		}, 0, false},
		{"burstable, every container with a memory limit", func() *v1.Pod {
			return mntPod("u", mntResources("memory=100Mi", "memory=1Gi"), mntResources("memory=10Mi", "memory=512Mi"))
		}, 1536 << 20, true},
		{"guaranteed", func() *v1.Pod {
			return mntPod("u", mntResources("cpu=1,memory=512Mi", "cpu=1,memory=512Mi"), mntResources("cpu=1,memory=512Mi", "cpu=1,memory=512Mi"))
		}, 1 << 30, true},
		{"init container above the regular ones", func() *v1.Pod {
			p := mntPod("u", mntResources("", "memory=1Gi"))
			p.Spec.InitContainers = []v1.Container{{Name: "init", Resources: mntResources("", "memory=2Gi")}}
			return p
		}, 2 << 30, true},
		{"sidecar adds to the regular containers", func() *v1.Pod {
			p := mntPod("u", mntResources("", "memory=1Gi"))
			p.Spec.InitContainers = []v1.Container{{Name: "side", RestartPolicy: &sidecar, Resources: mntResources("", "memory=256Mi")}}
			return p
		}, 1280 << 20, true},
		{"pod-level limit with containers without limits", func() *v1.Pod {
			p := mntPod("u", mntResources("memory=100Mi", ""))
			p.Spec.Resources = &v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceMemory: resource.MustParse("3Gi")}}
			return p
		}, 3 << 30, true},
		{"overhead added to the limit", func() *v1.Pod {
			p := mntPod("u", mntResources("", "memory=1Gi"))
			p.Spec.Overhead = v1.ResourceList{v1.ResourceMemory: resource.MustParse("100Mi")}
			return p
		}, 1124 << 20, true},
		{"status QoS class wins", func() *v1.Pod {
			p := mntPod("u", mntResources("", "memory=1Gi"))
			p.Status.QOSClass = v1.PodQOSBestEffort
			return p
		}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := PodMemoryLimit(tt.pod())
			if got != tt.want || ok != tt.ok {
				t.Errorf("PodMemoryLimit = %d, %v; want %d, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestMemoryVolumeSize(t *testing.T) {
	q := func(s string) *resource.Quantity { v := resource.MustParse(s); return &v }
	limited := mntPod("u", mntResources("", "memory=1Gi"))
	unlimited := mntPod("u", v1.ResourceRequirements{})
	tests := []struct {
		name        string
		allocatable string
		pod         *v1.Pod
		sizeLimit   *resource.Quantity
		want        string
	}{
		{"node allocatable when nothing is smaller", "8Gi", unlimited, nil, "8Gi"},
		{"pod limit below allocatable", "8Gi", limited, nil, "1Gi"},
		{"size limit below the pod limit", "8Gi", limited, q("512Mi"), "512Mi"},
		{"size limit above the pod limit", "8Gi", limited, q("2Gi"), "1Gi"},
		{"pod limit above allocatable", "512Mi", limited, nil, "512Mi"},
		{"size limit above allocatable", "512Mi", unlimited, q("1Gi"), "512Mi"},
		{"zero size limit ignored", "8Gi", limited, q("0"), "1Gi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := MemoryVolumeSize(resource.MustParse(tt.allocatable), tt.pod, tt.sizeLimit)
			if want := resource.MustParse(tt.want); got.Cmp(want) != 0 {
				t.Errorf("MemoryVolumeSize = %s, want %s", got.String(), tt.want)
			}
		})
	}
}

func TestEmptyDirDefaultMedium(t *testing.T) {
	old := syscall.Umask(0o077) // the mode must not depend on it
	t.Cleanup(func() { syscall.Umask(old) })

	root := t.TempDir()
	m := newRecordingMounter()
	e := newTestEmptyDir(t, EmptyDirConfig{Layout: Layout{Root: root}, Mounter: m})
	l := Layout{Root: root}
	pod := mntPod("uid-1", v1.ResourceRequirements{})

	dir, err := e.SetUp(pod, emptyDirVolume("scratch", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "pods/uid-1/volumes/kubernetes.io~empty-dir/scratch"); dir != want {
		t.Fatalf("SetUp path = %s, want %s", dir, want)
	}
	mntAssertMode(t, dir, fs.ModeDir|0o777)
	// The pod directories it creates are the kubelet's 0750, less the umask.
	fi, err := os.Stat(l.PodVolumesDir("uid-1"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&^0o750 != 0 {
		t.Fatalf("pod volumes dir mode %v, want at most 0750", fi.Mode())
	}
	ready := filepath.Join(l.PodPluginDir("uid-1", PluginEmptyDir, "scratch"), "ready")
	if fi, err := os.Stat(ready); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("ready file %s: %v", ready, err)
	}

	// Idempotent: content stays, nothing is mounted.
	if err := os.WriteFile(filepath.Join(dir, "data"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.SetUp(pod, emptyDirVolume("scratch", "", "")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
		t.Fatalf("second SetUp lost the content: %v", err)
	}
	if calls := m.Calls(); len(calls) != 0 {
		t.Fatalf("a disk emptyDir mounted something: %v", calls)
	}

	// The directory removed behind the ready file's back is set up again.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := e.SetUp(pod, emptyDirVolume("scratch", "", "")); err != nil {
		t.Fatal(err)
	}
	mntAssertMode(t, dir, fs.ModeDir|0o777)

	if err := e.TearDown("uid-1", "scratch"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Dir(ready)} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after TearDown: %v, want it gone", p, err)
		}
	}
	if err := e.TearDown("uid-1", "scratch"); err != nil {
		t.Errorf("TearDown of a volume torn down already: %v", err)
	}
}

func TestEmptyDirVolumeMode(t *testing.T) {
	pod := mntPod("uid-1", v1.ResourceRequirements{})
	vol := emptyDirVolume("scratch", "", "")
	vol.EmptyDir.Mode = ptr.To[int32](0o1755)
	for _, tt := range []struct {
		honour bool
		want   fs.FileMode
	}{{false, fs.ModeDir | 0o777}, {true, fs.ModeDir | fs.ModeSticky | 0o755}} {
		e := newTestEmptyDir(t, EmptyDirConfig{Layout: Layout{Root: t.TempDir()}, Mounter: newRecordingMounter(), VolumeMode: tt.honour})
		dir, err := e.SetUp(pod, vol)
		if err != nil {
			t.Fatal(err)
		}
		mntAssertMode(t, dir, tt.want)
	}
}

func TestEmptyDirRejects(t *testing.T) {
	e := newTestEmptyDir(t, EmptyDirConfig{Layout: Layout{Root: t.TempDir()}, Mounter: newRecordingMounter()})
	pod := mntPod("uid-1", v1.ResourceRequirements{})
	tests := []struct {
		name string
		pod  *v1.Pod
		vol  *v1.Volume
		want string
	}{
		{"unknown medium", pod, emptyDirVolume("v", "Tape", ""), `unknown storage medium "Tape"`},
		{"not an emptyDir", pod, &v1.Volume{Name: "v"}, "emptyDir volume"},
		{"volume name leaving the layout", pod, emptyDirVolume("../v", "", ""), `volume name "../v"`},
		{"pod UID leaving the layout", mntPod("../x"), emptyDirVolume("v", "", ""), `pod UID "../x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.SetUp(tt.pod, tt.vol)
			if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("SetUp error %v, want core.ErrInvalid saying %q", err, tt.want)
			}
		})
	}
}

func TestEmptyDirMemoryOptions(t *testing.T) {
	for _, noswap := range []bool{false, true} {
		root := t.TempDir()
		m := newRecordingMounter()
		e := newTestEmptyDir(t, EmptyDirConfig{
			Layout:          Layout{Root: root},
			Mounter:         m,
			NodeAllocatable: v1.ResourceList{v1.ResourceMemory: resource.MustParse("4Gi")},
			TmpfsNoswap:     ptr.To(noswap),
		})
		pod := mntPod("uid-1", mntResources("", "memory=64Mi"))
		dir, err := e.SetUp(pod, emptyDirVolume("mem", v1.StorageMediumMemory, ""))
		if err != nil {
			t.Fatal(err)
		}
		want := "mount tmpfs tmpfs " + dir + " size=67108864"
		if noswap {
			want += ",noswap"
		}
		// Set up again: ready and mounted, nothing to do.
		if _, err := e.SetUp(pod, emptyDirVolume("mem", v1.StorageMediumMemory, "")); err != nil {
			t.Fatal(err)
		}
		if got := m.Calls(); !slices.Equal(got, []string{want}) {
			t.Errorf("noswap %v: calls %q, want %q", noswap, got, want)
		}
	}
}

func TestEmptyDirMemoryTmpfs(t *testing.T) {
	needRootForMounts(t)
	root := mntTestRoot(t)
	t.Cleanup(func() { unmountAllUnder(t, root) })
	cfg := EmptyDirConfig{
		Layout:          Layout{Root: root},
		Mounter:         realMounter(t),
		NodeAllocatable: v1.ResourceList{v1.ResourceMemory: resource.MustParse("1Gi")},
	}
	e := newTestEmptyDir(t, cfg)
	pod := mntPod("uid-1", mntResources("cpu=1,memory=64Mi", "cpu=1,memory=64Mi"))

	for _, tt := range []struct {
		name, sizeLimit string
		want            int64
	}{{"pod-limit", "", 64 << 20}, {"size-limit", "16Mi", 16 << 20}} {
		dir, err := e.SetUp(pod, emptyDirVolume(tt.name, v1.StorageMediumMemory, tt.sizeLimit))
		if err != nil {
			t.Fatal(err)
		}
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		if st.Type != unix.TMPFS_MAGIC {
			t.Fatalf("%s: statfs type %#x, want tmpfs", tt.name, st.Type)
		}
		if got := int64(st.Blocks) * st.Bsize; got != tt.want {
			t.Errorf("%s: tmpfs size %d, want %d", tt.name, got, tt.want)
		}
	}
	dir := e.Path("uid-1", "pod-limit")
	mntAssertMode(t, dir, fs.ModeDir|fs.ModeSticky|0o777) // a tmpfs root, as the kubelet's
	if err := os.WriteFile(filepath.Join(dir, "data"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	// Idempotent, also for an agent that restarted.
	restarted := newTestEmptyDir(t, cfg)
	for _, ed := range []*EmptyDir{e, restarted} {
		if _, err := ed.SetUp(pod, emptyDirVolume("pod-limit", v1.StorageMediumMemory, "")); err != nil {
			t.Fatal(err)
		}
	}
	if got := mountPointsUnder(t, dir); len(got) != 1 {
		t.Fatalf("mounts on %s after three SetUps: %v, want one", dir, got)
	}
	mntAssertMode(t, dir, fs.ModeDir|fs.ModeSticky|0o777)
	if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
		t.Fatalf("SetUp again lost the tmpfs content: %v", err)
	}
	// The ready file alone does not make a Memory volume ready.
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.SetUp(pod, emptyDirVolume("pod-limit", v1.StorageMediumMemory, "")); err != nil {
		t.Fatal(err)
	}
	if got := mountPointsUnder(t, dir); len(got) != 1 {
		t.Fatalf("mounts on %s after a SetUp of an unmounted volume: %v, want one", dir, got)
	}

	for _, name := range []string{"pod-limit", "size-limit"} {
		if err := restarted.TearDown("uid-1", name); err != nil {
			t.Fatal(err)
		}
	}
	if got := mountPointsUnder(t, root); len(got) != 0 {
		t.Fatalf("mounts left after TearDown: %v", got)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("volume dir after TearDown: %v, want it gone", err)
	}
}

func TestEmptyDirTearDownDoesNotCrossMounts(t *testing.T) {
	needRootForMounts(t)
	root := mntTestRoot(t)
	t.Cleanup(func() { unmountAllUnder(t, root) })
	e := newTestEmptyDir(t, EmptyDirConfig{Layout: Layout{Root: root}, Mounter: realMounter(t)})
	dir, err := e.SetUp(mntPod("uid-1"), emptyDirVolume("scratch", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	nested := filepath.Join(dir, "nested")
	if err := os.Mkdir(nested, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", nested, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(nested, "keep")
	if err := os.WriteFile(keep, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err = e.TearDown("uid-1", "scratch")
	if err == nil || !strings.Contains(err.Error(), "mount point") {
		t.Fatalf("TearDown with a mount inside: %v, want a refusal naming the mount point", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("TearDown removed a file of another mount: %v", err)
	}
}

func TestEmptyDirHugePages(t *testing.T) {
	hp := t.TempDir()
	if err := os.Mkdir(filepath.Join(hp, "hugepages-2048kB"), 0o755); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	m := newRecordingMounter()
	e := newTestEmptyDir(t, EmptyDirConfig{Layout: Layout{Root: root}, Mounter: m, HugePagesDir: hp})

	pod := mntPod("uid-1", mntResources("hugepages-2Mi=4Mi,memory=10Mi", "hugepages-2Mi=4Mi,memory=10Mi"))
	for _, medium := range []v1.StorageMedium{"HugePages", "HugePages-2Mi"} {
		dir, err := e.SetUp(pod, emptyDirVolume(string(medium), medium, ""))
		if err != nil {
			t.Fatalf("%s: %v", medium, err)
		}
		if got, want := m.Calls()[len(m.Calls())-1], "mount hugetlbfs nodev "+dir+" pagesize=2Mi"; got != want {
			t.Errorf("%s: call %q, want %q", medium, got, want)
		}
	}

	twoSizes := mntPod("uid-1", mntResources("hugepages-2Mi=4Mi", "hugepages-2Mi=4Mi"), mntResources("hugepages-1Gi=1Gi", "hugepages-1Gi=1Gi"))
	tests := []struct {
		name   string
		pod    *v1.Pod
		medium v1.StorageMedium
		want   string
	}{
		{"size the node lacks", twoSizes, "HugePages-1Gi", `medium "HugePages-1Gi": the node has no huge pages of size 1Gi`},
		{"no huge page request", mntPod("uid-1", mntResources("memory=1Gi", "memory=1Gi")), "HugePages", "there is no resource request for huge pages"},
		{"no request of the medium's size", pod, "HugePages-1Gi", "there is no resource request for huge pages"},
		{"two sizes for the sizeless medium", twoSizes, "HugePages", "requests multiple huge page sizes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.SetUp(tt.pod, emptyDirVolume("bad", tt.medium, ""))
			if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), string(tt.medium)) {
				t.Fatalf("SetUp error %v, want core.ErrInvalid naming the medium and saying %q", err, tt.want)
			}
		})
	}
}

func TestEmptyDirHugetlbfs(t *testing.T) {
	needRootForMounts(t)
	if _, err := os.Stat(filepath.Join(defaultHugePagesDir, "hugepages-2048kB")); err != nil {
		t.Skip("the kernel offers no 2Mi huge pages")
	}
	root := mntTestRoot(t)
	t.Cleanup(func() { unmountAllUnder(t, root) })
	e := newTestEmptyDir(t, EmptyDirConfig{Layout: Layout{Root: root}, Mounter: realMounter(t)})
	pod := mntPod("uid-1", mntResources("hugepages-2Mi=2Mi,memory=10Mi", "hugepages-2Mi=2Mi,memory=10Mi"))
	vol := emptyDirVolume("huge", "HugePages-2Mi", "")
	dir, err := e.SetUp(pod, vol)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if int64(st.Type) != unix.HUGETLBFS_MAGIC || st.Bsize != 2<<20 {
		t.Fatalf("statfs type %#x block size %d, want hugetlbfs with 2Mi pages", st.Type, st.Bsize)
	}
	if _, err := e.SetUp(pod, vol); err != nil {
		t.Fatal(err)
	}
	if got := mountPointsUnder(t, dir); len(got) != 1 {
		t.Fatalf("mounts on %s after two SetUps: %v, want one", dir, got)
	}
	if size, err := mountedPageSize(dir); err != nil || size.Cmp(resource.MustParse("2Mi")) != 0 {
		t.Fatalf("mountedPageSize = %s, %v; want 2Mi", size.String(), err)
	}
	if err := e.TearDown("uid-1", "huge"); err != nil {
		t.Fatal(err)
	}
	if got := mountPointsUnder(t, root); len(got) != 0 {
		t.Fatalf("mounts left after TearDown: %v", got)
	}
}

func TestTmpfsSize(t *testing.T) {
	e := newTestEmptyDir(t, EmptyDirConfig{
		Layout:          Layout{Root: t.TempDir()},
		Mounter:         newRecordingMounter(),
		NodeAllocatable: v1.ResourceList{v1.ResourceMemory: resource.MustParse("2Gi")},
	})
	if got := e.TmpfsSize(mntPod("u", mntResources("", "memory=128Mi"))); got != 128<<20 {
		t.Errorf("TmpfsSize of a limited pod = %d, want its limit", got)
	}
	if got := e.TmpfsSize(mntPod("u", v1.ResourceRequirements{})); got != 2<<30 {
		t.Errorf("TmpfsSize of an unlimited pod = %d, want node allocatable", got)
	}
}

func TestSetUpTmpfs(t *testing.T) {
	needRootForMounts(t)
	root := mntTestRoot(t)
	t.Cleanup(func() { unmountAllUnder(t, root) })
	e := newTestEmptyDir(t, EmptyDirConfig{Layout: Layout{Root: root}, Mounter: realMounter(t)})
	dir := filepath.Join(root, "pods/uid-1/volumes/kubernetes.io~secret/token")
	for range 2 {
		if err := e.SetUpTmpfs(dir, 8<<20); err != nil {
			t.Fatal(err)
		}
	}
	if got := mountPointsUnder(t, root); !slices.Equal(got, []string{dir}) {
		t.Fatalf("mounts %v, want one tmpfs on %s", got, dir)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != unix.TMPFS_MAGIC || int64(st.Blocks)*st.Bsize != 8<<20 {
		t.Fatalf("statfs type %#x size %d, want an 8Mi tmpfs", st.Type, int64(st.Blocks)*st.Bsize)
	}
	if err := e.TearDownTmpfs(dir); err != nil {
		t.Fatal(err)
	}
	if got := mountPointsUnder(t, root); len(got) != 0 {
		t.Fatalf("mounts left: %v", got)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("dir after TearDownTmpfs: %v, want it gone", err)
	}
	if err := e.SetUpTmpfs("relative", 0); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("SetUpTmpfs of a relative dir: %v, want core.ErrInvalid", err)
	}
}

func TestParseKernelRelease(t *testing.T) {
	for _, tt := range []struct {
		rel          string
		major, minor int
		ok           bool
	}{
		{"6.18.44-fc-v657", 6, 18, true},
		{"5.15.0-105-generic", 5, 15, true},
		{"6.4", 6, 4, true},
		{"6.4rc1", 6, 4, true},
		{"garbage", 0, 0, false},
	} {
		major, minor, ok := parseKernelRelease(tt.rel)
		if major != tt.major || minor != tt.minor || ok != tt.ok {
			t.Errorf("parseKernelRelease(%q) = %d, %d, %v; want %d, %d, %v", tt.rel, major, minor, ok, tt.major, tt.minor, tt.ok)
		}
	}
}
