package volumemgr

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
)

func newTestPodDirs(t *testing.T, cfg PodDirsConfig) *PodDirs {
	t.Helper()
	d, err := NewPodDirs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPodDirsRebuild(t *testing.T) {
	needRootForMounts(t)
	root := mntTestRoot(t)
	t.Cleanup(func() { unmountAllUnder(t, root) })
	l := Layout{Root: root}
	e := newTestEmptyDir(t, EmptyDirConfig{Layout: l, Mounter: realMounter(t)})

	podA := mntPod("pod-a", mntResources("", "memory=32Mi"))
	for _, vol := range []*v1.Volume{emptyDirVolume("mem", v1.StorageMediumMemory, ""), emptyDirVolume("scratch", "", "")} {
		if _, err := e.SetUp(podA, vol); err != nil {
			t.Fatal(err)
		}
	}
	mntMkdirs(t, l.VolumeDir("pod-a", PluginConfigMap, "cfg"))
	if err := e.SetUpTmpfs(l.VolumeDir("pod-b", PluginSecret, "token"), 1<<20); err != nil {
		t.Fatal(err)
	}
	// Not volumes: a symlink among the volumes, a file among the pods.
	if err := os.Symlink(root, filepath.Join(l.VolumeDir("pod-b", PluginSecret, "escape"))); err != nil {
		t.Fatal(err)
	}
	mntWriteFiles(t, filepath.Join(l.PodsDir(), "not-a-pod"))

	// A restarted agent knows nothing but the disk.
	d := newTestPodDirs(t, PodDirsConfig{Layout: l, Mounter: realMounter(t)})
	pods, err := d.Pods()
	if err != nil {
		t.Fatal(err)
	}
	if want := []types.UID{"pod-a", "pod-b"}; !slices.Equal(pods, want) {
		t.Fatalf("Pods = %v, want %v", pods, want)
	}
	vols, err := d.Volumes()
	if err != nil {
		t.Fatal(err)
	}
	want := []DiskVolume{
		{"pod-a", PluginConfigMap, "cfg", l.VolumeDir("pod-a", PluginConfigMap, "cfg"), false},
		{"pod-a", PluginEmptyDir, "mem", l.VolumeDir("pod-a", PluginEmptyDir, "mem"), true},
		{"pod-a", PluginEmptyDir, "scratch", l.VolumeDir("pod-a", PluginEmptyDir, "scratch"), false},
		{"pod-b", PluginSecret, "token", l.VolumeDir("pod-b", PluginSecret, "token"), true},
	}
	if !slices.Equal(vols, want) {
		t.Fatalf("Volumes =\n%+v\nwant\n%+v", vols, want)
	}
}

func TestRemoveOrphanedPodRefusesWhileMounted(t *testing.T) {
	needRootForMounts(t)
	root := mntTestRoot(t)
	t.Cleanup(func() { unmountAllUnder(t, root) })
	l := Layout{Root: root}
	m := realMounter(t)
	e := newTestEmptyDir(t, EmptyDirConfig{Layout: l, Mounter: m})
	s := newTestSubpaths(t, l, m)
	d := newTestPodDirs(t, PodDirsConfig{Layout: l, Mounter: m})

	const uid = "orphan"
	pod := mntPod(uid, mntResources("", "memory=32Mi"))
	memDir, err := e.SetUp(pod, emptyDirVolume("mem", v1.StorageMediumMemory, ""))
	if err != nil {
		t.Fatal(err)
	}
	diskDir, err := e.SetUp(pod, emptyDirVolume("disk", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	mntWriteFiles(t, filepath.Join(diskDir, "sub", "f"))
	sub, err := s.Prepare(uid, "app", crispec.SubPath{VolumeMountIndex: 1, VolumeName: "disk", VolumePath: diskDir, Path: filepath.Join(diskDir, "sub")})
	if err != nil {
		t.Fatal(err)
	}
	mntWriteFiles(t, l.EtcHostsPath(uid), filepath.Join(l.ContainerDir(uid, "app"), "termination-log"))

	err = d.RemoveOrphanedPod(uid)
	var me *PodMountedError
	if !errors.As(err, &me) {
		t.Fatalf("RemoveOrphanedPod with mounts: %v, want a *PodMountedError", err)
	}
	if want := []string{memDir, sub}; me.PodUID != uid || !slices.Equal(me.Paths, want) {
		t.Fatalf("PodMountedError = %+v, want paths %v", me, want)
	}
	for _, p := range []string{memDir, sub} {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not name %s", err, p)
		}
	}
	mntAssertThere(t, l.EtcHostsPath(uid), filepath.Join(diskDir, "sub", "f"), filepath.Join(l.ContainerDir(uid, "app"), "termination-log"))

	// Unmounted but not torn down: the disk volume keeps the pod dir.
	if err := s.CleanPod(uid); err != nil {
		t.Fatal(err)
	}
	if err := e.TearDown(uid, "mem"); err != nil {
		t.Fatal(err)
	}
	err = d.RemoveOrphanedPod(uid)
	if err == nil || !strings.Contains(err.Error(), "failed to rmdir() volume at path "+diskDir) {
		t.Fatalf("RemoveOrphanedPod with a volume not torn down: %v, want a refusal naming it", err)
	}
	mntAssertThere(t, filepath.Join(diskDir, "sub", "f"), l.EtcHostsPath(uid))

	if err := e.TearDown(uid, "disk"); err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveOrphanedPod(uid); err != nil {
		t.Fatal(err)
	}
	mntAssertGone(t, l.PodDir(uid))
	if got := mountPointsUnder(t, root); len(got) != 0 {
		t.Fatalf("mounts left: %v", got)
	}
	if err := d.RemoveOrphanedPod(uid); err != nil {
		t.Fatalf("RemoveOrphanedPod of a removed pod: %v", err)
	}
}

func TestRemoveOrphanedPodDoesNotFollowSymlinksOrCrossMounts(t *testing.T) {
	needRootForMounts(t)
	root := mntTestRoot(t)
	t.Cleanup(func() { unmountAllUnder(t, root) })
	l := Layout{Root: root}
	d := newTestPodDirs(t, PodDirsConfig{Layout: l, Mounter: realMounter(t)})
	const uid = "orphan"

	outside := filepath.Join(root, "outside")
	mntWriteFiles(t, filepath.Join(outside, "keep"))
	mntMkdirs(t, l.VolumeDir(uid, PluginConfigMap, "cfg"), l.PodPluginDir(uid, PluginEmptyDir, "x"))
	for _, link := range []string{filepath.Join(l.ContainerDir(uid, "app"), "link"), filepath.Join(l.PodPluginsDir(uid), "link")} {
		mntMkdirs(t, filepath.Dir(link))
		if err := os.Symlink(outside, link); err != nil {
			t.Fatal(err)
		}
	}
	// A mount the volume scan does not know of.
	mnt := l.ContainerDir(uid, "mounted")
	mntMkdirs(t, mnt)
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	mntWriteFiles(t, filepath.Join(mnt, "keep"))

	err := d.RemoveOrphanedPod(uid)
	if err == nil || !strings.Contains(err.Error(), "cannot delete directory "+mnt+": it is a mount point") {
		t.Fatalf("RemoveOrphanedPod across a mount: %v, want a refusal naming %s", err, mnt)
	}
	mntAssertThere(t, filepath.Join(mnt, "keep"), filepath.Join(outside, "keep"))
	mntAssertGone(t, l.PodVolumesDir(uid), l.PodPluginsDir(uid)) // what could go went

	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveOrphanedPod(uid); err != nil {
		t.Fatal(err)
	}
	mntAssertGone(t, l.PodDir(uid))
	mntAssertThere(t, filepath.Join(outside, "keep"))
}

func TestRemoveOrphanedPodWithRecordingMounter(t *testing.T) {
	root := t.TempDir()
	l := Layout{Root: root}
	m := newRecordingMounter()
	d := newTestPodDirs(t, PodDirsConfig{Layout: l, Mounter: m})
	const uid = "orphan"
	vol := l.VolumeDir(uid, PluginSecret, "token")
	mntMkdirs(t, vol)
	if err := m.Mount("tmpfs", vol, "tmpfs", nil); err != nil {
		t.Fatal(err)
	}
	var me *PodMountedError
	if err := d.RemoveOrphanedPod(uid); !errors.As(err, &me) || !slices.Equal(me.Paths, []string{vol}) {
		t.Fatalf("RemoveOrphanedPod = %v, want a *PodMountedError naming %s", err, vol)
	}
	mntAssertThere(t, vol)
	if err := m.Unmount(vol); err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveOrphanedPod(uid); err != nil {
		t.Fatal(err)
	}
	mntAssertGone(t, l.PodDir(uid))
	if err := d.RemoveOrphanedPod("../x"); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("RemoveOrphanedPod of a bad UID: %v, want core.ErrInvalid", err)
	}
}

func TestCleanupOrphanedPods(t *testing.T) {
	root := t.TempDir()
	l := Layout{Root: root}
	m := newRecordingMounter()
	reg := prometheus.NewRegistry()
	d := newTestPodDirs(t, PodDirsConfig{Layout: l, Mounter: m, Registerer: reg})
	for _, uid := range []types.UID{"running", "gone", "mounted"} {
		mntWriteFiles(t, l.EtcHostsPath(uid))
	}
	mounted := l.VolumeDir("mounted", PluginEmptyDir, "mem")
	mntMkdirs(t, mounted)
	if err := m.Mount("tmpfs", mounted, "tmpfs", nil); err != nil {
		t.Fatal(err)
	}

	err := d.CleanupOrphanedPods(func(uid types.UID) bool { return uid == "running" })
	var me *PodMountedError
	if !errors.As(err, &me) || me.PodUID != "mounted" {
		t.Fatalf("CleanupOrphanedPods = %v, want the mounted pod's refusal", err)
	}
	mntAssertThere(t, l.PodDir("running"), l.PodDir("mounted"))
	mntAssertGone(t, l.PodDir("gone"))
	if got := testutil.ToFloat64(d.cleaned); got != 2 {
		t.Errorf("kubelet_orphan_pod_cleaned_volumes = %v, want 2", got)
	}
	if got := testutil.ToFloat64(d.cleanErrors); got != 1 {
		t.Errorf("kubelet_orphan_pod_cleaned_volumes_errors = %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "kubelet_orphan_pod_cleaned_volumes", "kubelet_orphan_pod_cleaned_volumes_errors"); err != nil || n != 2 {
		t.Errorf("registered orphan gauges: %d, %v; want 2", n, err)
	}

	if err := m.Unmount(mounted); err != nil {
		t.Fatal(err)
	}
	if err := d.CleanupOrphanedPods(func(uid types.UID) bool { return uid == "running" }); err != nil {
		t.Fatal(err)
	}
	mntAssertGone(t, l.PodDir("mounted"))
	if got := testutil.ToFloat64(d.cleanErrors); got != 0 {
		t.Errorf("kubelet_orphan_pod_cleaned_volumes_errors = %v, want 0", got)
	}
}

func TestNewPodDirsValidates(t *testing.T) {
	if _, err := NewPodDirs(PodDirsConfig{Layout: Layout{Root: "rel"}}); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("NewPodDirs with a relative root: %v, want core.ErrInvalid", err)
	}
}
