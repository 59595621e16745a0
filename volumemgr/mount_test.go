package volumemgr

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// recordingMounter records mounts instead of making them: a mounted path
// is one Mount was called on and Unmount was not.
type recordingMounter struct {
	mu      sync.Mutex
	calls   []string
	mounted map[string][]string // target → options
	failOn  string              // Mount of this target fails
}

var _ Mounter = (*recordingMounter)(nil)

func newRecordingMounter() *recordingMounter {
	return &recordingMounter{mounted: map[string][]string{}}
}

func (r *recordingMounter) Mount(source, target, fstype string, options []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "mount "+fstype+" "+source+" "+target+" "+strings.Join(options, ","))
	if target == r.failOn {
		return errors.New("mount failed on purpose")
	}
	if _, err := os.Lstat(target); err != nil {
		return err
	}
	r.mounted[target] = slices.Clone(options)
	return nil
}

func (r *recordingMounter) Unmount(target string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "unmount "+target)
	if _, ok := r.mounted[target]; !ok {
		return errors.New("not mounted")
	}
	delete(r.mounted, target)
	return nil
}

func (r *recordingMounter) IsMountPoint(path string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := os.Lstat(path); err != nil {
		return false, err
	}
	_, ok := r.mounted[path]
	return ok, nil
}

func (r *recordingMounter) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// needRootForMounts skips a test that mounts unless it runs as root.
func needRootForMounts(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount tmpfs and bind mounts; run the tests as root")
	}
}

// realMounter returns a SystemMounter.
func realMounter(t *testing.T) *SystemMounter {
	t.Helper()
	m, err := NewMounter(MounterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// mntTestRoot is a fresh layout root; resolved, so that paths compare with
// the mount table's.
func mntTestRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// mountPointsUnder lists the mount points at or below dir in
// /proc/self/mountinfo.
func mountPointsUnder(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountInfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func unescapeMountInfo(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// unmountAllUnder unmounts everything at or below dir, deepest first, for
// t.Cleanup.
func unmountAllUnder(t *testing.T, dir string) {
	t.Helper()
	for range 20 {
		mps := mountPointsUnder(t, dir)
		if len(mps) == 0 {
			return
		}
		slices.SortFunc(mps, func(a, b string) int { return len(b) - len(a) })
		if err := unix.Unmount(mps[0], unix.MNT_DETACH); err != nil {
			t.Errorf("cleanup: unmount %s: %v", mps[0], err)
			return
		}
	}
}

func TestSystemMounter(t *testing.T) {
	needRootForMounts(t)
	m := realMounter(t)
	root := mntTestRoot(t)
	t.Cleanup(func() { unmountAllUnder(t, root) })

	dir := filepath.Join(root, "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if mounted, err := m.IsMountPoint(dir); err != nil || mounted {
		t.Fatalf("IsMountPoint before mount = %v, %v; want false, nil", mounted, err)
	}
	if err := m.Mount("tmpfs", dir, "tmpfs", []string{"size=1m"}); err != nil {
		t.Fatal(err)
	}
	if mounted, err := m.IsMountPoint(dir); err != nil || !mounted {
		t.Fatalf("IsMountPoint after mount = %v, %v; want true, nil", mounted, err)
	}
	if got := mountPointsUnder(t, root); !slices.Equal(got, []string{dir}) {
		t.Fatalf("mount table has %v under the root, want %v", got, []string{dir})
	}

	// A bind mount within one filesystem is a mount point too.
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	for _, d := range []string{src, dst} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Mount(src, dst, "", []string{"bind"}); err != nil {
		t.Fatal(err)
	}
	if mounted, err := m.IsMountPoint(dst); err != nil || !mounted {
		t.Fatalf("IsMountPoint of a bind mount = %v, %v; want true, nil", mounted, err)
	}
	for _, d := range []string{dst, dir} {
		if err := m.Unmount(d); err != nil {
			t.Fatal(err)
		}
	}
	if got := mountPointsUnder(t, root); len(got) != 0 {
		t.Fatalf("mounts left after unmount: %v", got)
	}
	if _, err := m.IsMountPoint(filepath.Join(root, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("IsMountPoint of a missing path: %v, want fs.ErrNotExist", err)
	}
}

func TestUnmountAllStackedMounts(t *testing.T) {
	needRootForMounts(t)
	m := realMounter(t)
	root := mntTestRoot(t)
	t.Cleanup(func() { unmountAllUnder(t, root) })
	dir := filepath.Join(root, "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := m.Mount("tmpfs", dir, "tmpfs", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := unmountAll(m, dir); err != nil {
		t.Fatal(err)
	}
	if got := mountPointsUnder(t, root); len(got) != 0 {
		t.Fatalf("mounts left: %v", got)
	}
	if err := unmountAll(m, filepath.Join(root, "missing")); err != nil {
		t.Fatalf("unmountAll of a missing path: %v", err)
	}
}

func TestCheckPathName(t *testing.T) {
	for _, name := range []string{"", ".", "..", "a/b", "../x", "a\x00b"} {
		if err := checkPathName("volume name", name); err == nil {
			t.Errorf("checkPathName(%q) = nil, want an error", name)
		}
	}
	for _, name := range []string{"data", "a.b", "..a", "x-1"} {
		if err := checkPathName("volume name", name); err != nil {
			t.Errorf("checkPathName(%q) = %v, want nil", name, err)
		}
	}
}

func mntMkdirs(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.MkdirAll(p, 0o750); err != nil {
			t.Fatal(err)
		}
	}
}

func mntWriteFiles(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		mntMkdirs(t, filepath.Dir(p))
		if err := os.WriteFile(p, []byte(filepath.Base(p)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func mntAssertGone(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v, want it gone", p, err)
		}
	}
}

func mntAssertThere(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: %v, want it kept", p, err)
		}
	}
}

func mntAssertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != want {
		t.Errorf("mode of %s = %v, want %v", path, fi.Mode(), want)
	}
}

func TestRemoveOneFilesystemDirsOnly(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	mntMkdirs(t, filepath.Join(tree, "a", "b"), filepath.Join(tree, "c"))
	mntWriteFiles(t, filepath.Join(tree, "c", "file"))
	err := removeOneFilesystem(tree, true)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(tree, "c", "file")+" is not a directory") {
		t.Fatalf("removeOneFilesystem(dirsOnly) with a file: %v, want a refusal naming it", err)
	}
	mntAssertThere(t, filepath.Join(tree, "c", "file"))
	mntAssertGone(t, filepath.Join(tree, "a"))
	if err := removeOneFilesystem(tree, false); err != nil {
		t.Fatal(err)
	}
	mntAssertGone(t, tree)
	if err := removeOneFilesystem(filepath.Join(dir, "missing", "x"), false); err != nil {
		t.Fatalf("removeOneFilesystem of a missing path: %v", err)
	}
}
