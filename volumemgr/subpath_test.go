package volumemgr

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
)

// subpathFixture is a pod volume with a file, a directory and symlinks,
// next to a directory outside it that a symlink must not reach.
type subpathFixture struct {
	root, vol, outside string
	layout             Layout
}

const subpathUID types.UID = "uid-sub"

func newSubpathFixture(t *testing.T) subpathFixture {
	t.Helper()
	root := mntTestRoot(t)
	f := subpathFixture{root: root, layout: Layout{Root: root}, outside: filepath.Join(root, "outside")}
	f.vol = f.layout.VolumeDir(subpathUID, PluginEmptyDir, "data")
	mustMkdir := func(p string, mode fs.FileMode) {
		t.Helper()
		if err := os.MkdirAll(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite := func(p, content string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustLink := func(target, link string) {
		t.Helper()
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	mustMkdir(f.vol, 0o777)
	mustMkdir(filepath.Join(f.vol, "dir"), 0o755)
	mustMkdir(filepath.Join(f.vol, "other"), 0o755)
	mustMkdir(f.outside, 0o755)
	mustWrite(filepath.Join(f.vol, "file.txt"), "hello")
	mustWrite(filepath.Join(f.vol, "dir", "inner.txt"), "inner")
	mustWrite(filepath.Join(f.vol, "other", "other.txt"), "other")
	mustWrite(filepath.Join(f.outside, "secret.txt"), "secret")
	mustLink(f.outside, filepath.Join(f.vol, "escape"))
	rel, err := filepath.Rel(f.vol, f.outside)
	if err != nil {
		t.Fatal(err)
	}
	mustLink(rel, filepath.Join(f.vol, "escape-rel"))
	mustLink(filepath.Join(f.outside, "made-by-pod"), filepath.Join(f.vol, "dangling-out"))
	mustLink("dir", filepath.Join(f.vol, "inside-link"))
	mustLink("..", filepath.Join(f.vol, "dir", "up"))
	return f
}

func (f subpathFixture) subPath(index int, rel string) crispec.SubPath {
	return crispec.SubPath{VolumeMountIndex: index, VolumeName: "data", VolumePath: f.vol, Path: filepath.Join(f.vol, rel)}
}

func newTestSubpaths(t *testing.T, l Layout, m Mounter) *Subpaths {
	t.Helper()
	s, err := NewSubpaths(SubpathsConfig{Layout: l, Mounter: m})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mntReadString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSubpathBindMount(t *testing.T) {
	needRootForMounts(t)
	f := newSubpathFixture(t)
	t.Cleanup(func() { unmountAllUnder(t, f.root) })
	s := newTestSubpaths(t, f.layout, realMounter(t))

	dirTarget, err := s.Prepare(subpathUID, "app", f.subPath(2, "dir"))
	if err != nil {
		t.Fatal(err)
	}
	if want := f.layout.SubpathDir(subpathUID, "data", "app", 2); dirTarget != want {
		t.Fatalf("Prepare = %s, want %s", dirTarget, want)
	}
	if got := mntReadString(t, filepath.Join(dirTarget, "inner.txt")); got != "inner" {
		t.Fatalf("the subPath mount shows %q, want the volume's file", got)
	}
	fileTarget, err := s.Prepare(subpathUID, "app", f.subPath(3, "file.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if got := mntReadString(t, fileTarget); got != "hello" {
		t.Fatalf("the file subPath mount reads %q, want hello", got)
	}
	// A symlink that stays inside the volume is fine.
	linkTarget, err := s.Prepare(subpathUID, "sidecar", f.subPath(0, "inside-link"))
	if err != nil {
		t.Fatal(err)
	}
	if got := mntReadString(t, filepath.Join(linkTarget, "inner.txt")); got != "inner" {
		t.Fatalf("the mount of a symlink inside the volume shows %q, want inner", got)
	}
	// Writes through the mount land in the volume.
	if err := os.WriteFile(filepath.Join(dirTarget, "written"), []byte("w"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := mntReadString(t, filepath.Join(f.vol, "dir", "written")); got != "w" {
		t.Fatalf("write through the subPath mount: volume has %q", got)
	}

	// Idempotent.
	again, err := s.Prepare(subpathUID, "app", f.subPath(2, "dir"))
	if err != nil || again != dirTarget {
		t.Fatalf("Prepare again = %s, %v; want %s", again, err, dirTarget)
	}
	if got := mountPointsUnder(t, dirTarget); len(got) != 1 {
		t.Fatalf("mounts on %s after two Prepares: %v, want one", dirTarget, got)
	}
	if got := mountPointsUnder(t, f.layout.PodSubpathsDir(subpathUID)); len(got) != 3 {
		t.Fatalf("subPath mounts %v, want three", got)
	}

	if err := s.CleanPod(subpathUID); err != nil {
		t.Fatal(err)
	}
	if got := mountPointsUnder(t, f.root); len(got) != 0 {
		t.Fatalf("mounts left after CleanPod: %v", got)
	}
	if _, err := os.Lstat(f.layout.PodSubpathsDir(subpathUID)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("volume-subpaths after CleanPod: %v, want it gone", err)
	}
	for _, p := range []string{"file.txt", "dir/inner.txt", "dir/written"} {
		if _, err := os.Stat(filepath.Join(f.vol, p)); err != nil {
			t.Errorf("the volume lost %s in the cleanup: %v", p, err)
		}
	}
}

func TestSubpathEscapeRefused(t *testing.T) {
	needRootForMounts(t)
	f := newSubpathFixture(t)
	t.Cleanup(func() { unmountAllUnder(t, f.root) })
	s := newTestSubpaths(t, f.layout, realMounter(t))

	for _, sub := range []string{"escape", "escape-rel", "escape/secret.txt", "dangling-out", "dangling-out/deeper", "dir/up/escape"} {
		t.Run(sub, func(t *testing.T) {
			_, err := s.Prepare(subpathUID, "app", f.subPath(1, sub))
			if !errors.Is(err, core.ErrInvalid) {
				t.Fatalf("Prepare(%s) = %v, want an error wrapping core.ErrInvalid", sub, err)
			}
			if !regexp.MustCompile(`outside the volume|unexpected symlink`).MatchString(err.Error()) {
				t.Errorf("error %q does not say the subPath leaves the volume", err)
			}
			if !strings.Contains(err.Error(), `volume "data" subPath "`+sub+`" of container "app"`) {
				t.Errorf("error %q does not name the volume, subPath and container", err)
			}
			if strings.Contains(err.Error(), f.outside) {
				t.Errorf("error %q tells where the symlink leads on the host", err)
			}
		})
	}
	if got := mountPointsUnder(t, f.root); len(got) != 0 {
		t.Fatalf("a refused subPath left mounts: %v", got)
	}
	if _, err := os.Lstat(filepath.Join(f.outside, "made-by-pod")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a dangling symlink made Prepare create a directory outside the volume: %v", err)
	}
	if _, err := os.Lstat(f.layout.SubpathDir(subpathUID, "data", "app", 1)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused subPath left its mount point: %v", err)
	}

	// Lexically outside: refused before anything is touched.
	_, err := s.Prepare(subpathUID, "app", crispec.SubPath{VolumeName: "data", VolumePath: f.vol, Path: f.outside})
	if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "not inside the volume") {
		t.Fatalf("Prepare of a path outside the volume: %v, want core.ErrInvalid", err)
	}
}

func TestSubpathCreatesMissingDirectories(t *testing.T) {
	needRootForMounts(t)
	old := syscall.Umask(0o077) // new directories get the volume's mode regardless
	t.Cleanup(func() { syscall.Umask(old) })
	f := newSubpathFixture(t)
	t.Cleanup(func() { unmountAllUnder(t, f.root) })
	s := newTestSubpaths(t, f.layout, realMounter(t))

	target, err := s.Prepare(subpathUID, "app", f.subPath(0, "new/deeper"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"new", "new/deeper"} {
		mntAssertMode(t, filepath.Join(f.vol, p), fs.ModeDir|0o777)
	}
	if err := os.WriteFile(filepath.Join(target, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(f.vol, "new", "deeper", "x")); err != nil {
		t.Fatalf("the new subPath directory is not what is mounted: %v", err)
	}
	// Through a symlink that stays inside the volume.
	if _, err := s.Prepare(subpathUID, "app", f.subPath(1, "inside-link/made")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(f.vol, "dir", "made")); err != nil || !fi.IsDir() {
		t.Fatalf("inside-link/made: %v, want a directory in dir/", err)
	}
	if err := s.CleanVolume(subpathUID, "data"); err != nil {
		t.Fatal(err)
	}
	if got := mountPointsUnder(t, f.root); len(got) != 0 {
		t.Fatalf("mounts left after CleanVolume: %v", got)
	}
}

func TestSubpathStaleMountReplaced(t *testing.T) {
	needRootForMounts(t)
	f := newSubpathFixture(t)
	t.Cleanup(func() { unmountAllUnder(t, f.root) })
	s := newTestSubpaths(t, f.layout, realMounter(t))

	target, err := s.Prepare(subpathUID, "app", f.subPath(0, "dir"))
	if err != nil {
		t.Fatal(err)
	}
	// The pod changed: the same mount now has another subPath.
	if _, err := s.Prepare(subpathUID, "app", f.subPath(0, "other")); err != nil {
		t.Fatal(err)
	}
	if got := mntReadString(t, filepath.Join(target, "other.txt")); got != "other" {
		t.Fatalf("the replaced mount shows %q, want the new subPath", got)
	}
	if got := mountPointsUnder(t, target); len(got) != 1 {
		t.Fatalf("mounts on %s: %v, want one", target, got)
	}
	// And then a file.
	if _, err := s.Prepare(subpathUID, "app", f.subPath(0, "file.txt")); err != nil {
		t.Fatal(err)
	}
	if got := mntReadString(t, target); got != "hello" {
		t.Fatalf("the replaced mount reads %q, want the file", got)
	}
	if got := mountPointsUnder(t, target); len(got) != 1 {
		t.Fatalf("mounts on %s: %v, want one", target, got)
	}
	if err := s.CleanVolume(subpathUID, "data"); err != nil {
		t.Fatal(err)
	}
	if got := mountPointsUnder(t, f.root); len(got) != 0 {
		t.Fatalf("mounts left: %v", got)
	}
}

func TestSubpathWithRecordingMounter(t *testing.T) {
	f := newSubpathFixture(t)
	m := newRecordingMounter()
	s := newTestSubpaths(t, f.layout, m)

	target, err := s.Prepare(subpathUID, "app", f.subPath(4, "file.txt"))
	if err != nil {
		t.Fatal(err)
	}
	calls := m.Calls()
	if len(calls) != 1 || !regexp.MustCompile(`^mount  /proc/\d+/fd/\d+ `+regexp.QuoteMeta(target)+` bind$`).MatchString(calls[0]) {
		t.Fatalf("calls %q, want one bind mount of an open descriptor on %s", calls, target)
	}
	if fi, err := os.Lstat(target); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("mount point of a file subPath: %v, want a file", err)
	}

	// "." is the whole volume.
	whole, err := s.Prepare(subpathUID, "app", f.subPath(6, "."))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(whole); err != nil || !fi.IsDir() {
		t.Fatalf("mount point of the whole volume: %v, want a directory", err)
	}

	// A failed mount leaves no mount point behind.
	m.failOn = f.layout.SubpathDir(subpathUID, "data", "app", 5)
	if _, err := s.Prepare(subpathUID, "app", f.subPath(5, "dir")); err == nil {
		t.Fatal("Prepare with a failing mount succeeded")
	}
	if _, err := os.Lstat(m.failOn); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("mount point after a failed mount: %v, want it gone", err)
	}

	if err := s.CleanPod(subpathUID); err != nil {
		t.Fatal(err)
	}
	if got := m.Calls(); !slices.Contains(got, "unmount "+target) || !slices.Contains(got, "unmount "+whole) {
		t.Fatalf("calls %q, want unmounts of %s and %s", got, target, whole)
	}
	if _, err := os.Lstat(f.layout.PodSubpathsDir(subpathUID)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("volume-subpaths after CleanPod: %v, want it gone", err)
	}
	if err := s.CleanPod(subpathUID); err != nil {
		t.Fatalf("CleanPod of a clean pod: %v", err)
	}
}

func TestSubpathRejectsNames(t *testing.T) {
	f := newSubpathFixture(t)
	s := newTestSubpaths(t, f.layout, newRecordingMounter())
	bad := []struct {
		uid       types.UID
		container string
		p         crispec.SubPath
	}{
		{"../uid", "app", f.subPath(0, "dir")},
		{subpathUID, "../app", f.subPath(0, "dir")},
		{subpathUID, "app", crispec.SubPath{VolumeName: "../data", VolumePath: f.vol, Path: filepath.Join(f.vol, "dir")}},
		{subpathUID, "app", f.subPath(-1, "dir")},
		{subpathUID, "app", crispec.SubPath{VolumeName: "data", VolumePath: "relative", Path: "relative/dir"}},
	}
	for _, b := range bad {
		if _, err := s.Prepare(b.uid, b.container, b.p); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("Prepare(%q, %q, %+v) = %v, want core.ErrInvalid", b.uid, b.container, b.p, err)
		}
	}
	if _, err := NewSubpaths(SubpathsConfig{}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("NewSubpaths without a layout: %v, want core.ErrInvalid", err)
	}
}

// PrepareFunc plugs into crispec: the container's mount uses the bind
// mount, not the joined path.
func TestSubpathPrepareFuncWithCrispec(t *testing.T) {
	f := newSubpathFixture(t)
	s := newTestSubpaths(t, f.layout, newRecordingMounter())
	tr, err := crispec.New(crispec.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: subpathUID},
		Spec: v1.PodSpec{Containers: []v1.Container{{
			Name: "app", Image: "busybox",
			VolumeMounts: []v1.VolumeMount{
				{Name: "data", MountPath: "/all"},
				{Name: "data", MountPath: "/cfg", SubPath: "dir"},
				{Name: "data", MountPath: "/bad", SubPath: "escape"},
			},
		}}},
	}
	c := &pod.Spec.Containers[0]
	opts := crispec.ContainerOptions{
		Volumes:        map[string]crispec.Volume{"data": {HostPath: f.vol}},
		PrepareSubPath: s.PrepareFunc(subpathUID, "app"),
	}
	_, err = tr.ContainerConfig(pod, c, opts)
	if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "outside the volume") {
		t.Fatalf("ContainerConfig with an escaping subPath: %v, want core.ErrInvalid", err)
	}
	c.VolumeMounts = c.VolumeMounts[:2]
	cfg, err := tr.ContainerConfig(pod, c, opts)
	if err != nil {
		t.Fatal(err)
	}
	var hostPaths []string
	for _, m := range cfg.Mounts {
		hostPaths = append(hostPaths, m.HostPath)
	}
	want := []string{f.vol, f.layout.SubpathDir(subpathUID, "data", "app", 1)}
	if !slices.Equal(hostPaths, want) {
		t.Fatalf("mount host paths %v, want %v", hostPaths, want)
	}
}

// openInside is what makes a symlink swapped in after the resolution
// harmless: it never follows one.
func TestOpenInsideRefusesSymlinks(t *testing.T) {
	f := newSubpathFixture(t)
	for _, rel := range []string{"inside-link/inner.txt", "escape", "dir/up"} {
		fd, err := openInside(f.vol, filepath.Join(f.vol, rel), unix.O_PATH)
		if err == nil {
			unix.Close(fd)
		}
		if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "unexpected symlink") {
			t.Errorf("openInside(%s) = %v, want an unexpected symlink error", rel, err)
		}
	}
	fd, err := openInside(f.vol, filepath.Join(f.vol, "dir", "inner.txt"), unix.O_PATH)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if err := safeMakeDir(f.vol, "file.txt/sub", 0o755); !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("safeMakeDir below a file: %v, want a not a directory error", err)
	}
}
