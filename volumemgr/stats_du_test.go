package volumemgr

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nodekit/nodekit/core"
)

// writeFile writes size bytes of data to path, creating its directory.
func writeFile(t testing.TB, path string, size int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Repeat("x", size)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// lstatUsage sums what lstat reports of every entry under root, without
// deduplication: the reference DiskUsage is checked against where no
// entry is linked twice.
func lstatUsage(t *testing.T, root string) UsageInfo {
	t.Helper()
	var u UsageInfo
	err := filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		u.Bytes += fi.Sys().(*syscall.Stat_t).Blocks * 512
		u.Inodes++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func blockSize(t *testing.T, path string) int64 {
	t.Helper()
	var s unix.Statfs_t
	if err := unix.Statfs(path, &s); err != nil {
		t.Fatal(err)
	}
	return int64(s.Bsize)
}

func mustDiskUsage(t *testing.T, path string) UsageInfo {
	t.Helper()
	u, err := DiskUsage(t.Context(), path)
	if err != nil {
		t.Fatalf("DiskUsage(%s): %v", path, err)
	}
	return u
}

func TestDiskUsageCountsAllocatedBlocksAndEntries(t *testing.T) {
	root := t.TempDir()
	sizes := map[string]int{
		"empty":        0,
		"one":          1,
		"block":        4096,
		"ten-k":        10000,
		"a/b/mebibyte": 1 << 20,
		"a/small":      100,
	}
	var sum, rounded int64
	bs := blockSize(t, root)
	for name, size := range sizes {
		writeFile(t, filepath.Join(root, name), size)
		sum += int64(size)
		rounded += (int64(size) + bs - 1) / bs * bs
	}
	// Directories: root, a, a/b.
	var dirs int64
	for _, d := range []string{"", "a", "a/b"} {
		fi, err := os.Lstat(filepath.Join(root, d))
		if err != nil {
			t.Fatal(err)
		}
		dirs += fi.Sys().(*syscall.Stat_t).Blocks * 512
	}

	got := mustDiskUsage(t, root)
	if want := int64(len(sizes) + 3); got.Inodes != want {
		t.Errorf("Inodes = %d, want %d (files and directories, root included)", got.Inodes, want)
	}
	// Allocated blocks: at least the files' bytes, at most the files
	// rounded up to whole blocks (plus one block each for a filesystem
	// that allocates ahead) and the directories' own blocks.
	if lo, hi := sum, rounded+dirs+int64(len(sizes))*bs; got.Bytes < lo || got.Bytes > hi {
		t.Errorf("Bytes = %d, want within [%d, %d]", got.Bytes, lo, hi)
	}
	if want := lstatUsage(t, root); got != want {
		t.Errorf("DiskUsage = %+v, lstat of every entry sums to %+v", got, want)
	}
}

func TestDiskUsageCountsSparseFilesByAllocation(t *testing.T) {
	root := t.TempDir()
	f, err := os.Create(filepath.Join(root, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := mustDiskUsage(t, root); got.Bytes >= 1<<20 {
		t.Errorf("Bytes = %d for a 1 GiB sparse file with nothing written, want what is allocated (< 1 MiB)", got.Bytes)
	}
}

func TestDiskUsageCountsHardLinksOnce(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "data"), 1<<20)
	writeFile(t, filepath.Join(root, "sub", "other"), 10)
	before := mustDiskUsage(t, root)

	for _, link := range []string{"link1", "sub/link2", "sub/link3"} {
		if err := os.Link(filepath.Join(root, "data"), filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	after := mustDiskUsage(t, root)
	if after != before {
		t.Errorf("with three more links to a file: %+v, without: %+v; want the file counted once", after, before)
	}
	// Without deduplication the links would count the data four times.
	if naive := lstatUsage(t, root); naive.Bytes < after.Bytes+3*(1<<20) {
		t.Fatalf("the links do not share the data (%+v vs %+v): the test proves nothing", naive, after)
	}
}

func TestDiskUsageDoesNotFollowSymlinks(t *testing.T) {
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "big"), 1<<20)
	writeFile(t, filepath.Join(outside, "dir", "big"), 1<<20)

	root := t.TempDir()
	for link, target := range map[string]string{
		"to-file": filepath.Join(outside, "big"),
		"to-dir":  filepath.Join(outside, "dir"),
		"dangles": filepath.Join(outside, "missing"),
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	got := mustDiskUsage(t, root)
	if got.Inodes != 4 {
		t.Errorf("Inodes = %d, want 4: the directory and its three links", got.Inodes)
	}
	if got.Bytes >= 1<<20 {
		t.Errorf("Bytes = %d: a link's target was counted", got.Bytes)
	}
	if want := lstatUsage(t, root); got != want {
		t.Errorf("DiskUsage = %+v, want %+v", got, want)
	}

	// The path itself may be a link: its target is measured.
	link := filepath.Join(t.TempDir(), "volume")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	if got, want := mustDiskUsage(t, link), mustDiskUsage(t, outside); got != want {
		t.Errorf("DiskUsage of a link to a directory = %+v, of the directory = %+v", got, want)
	}
}

func TestDiskUsageOfAFileOrSocket(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	writeFile(t, file, 10000)
	fi, err := os.Lstat(file)
	if err != nil {
		t.Fatal(err)
	}
	want := UsageInfo{Bytes: fi.Sys().(*syscall.Stat_t).Blocks * 512, Inodes: 1}
	if got := mustDiskUsage(t, file); got != want || got.Bytes < 10000 {
		t.Errorf("DiskUsage of a file = %+v, want %+v", got, want)
	}

	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := mustDiskUsage(t, sock); got != (UsageInfo{Bytes: 0, Inodes: 1}) {
		t.Errorf("DiskUsage of a socket = %+v, want one inode and no bytes", got)
	}
}

func TestDiskUsageErrors(t *testing.T) {
	if _, err := DiskUsage(t.Context(), ""); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("empty path: %v, want core.ErrInvalid", err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := DiskUsage(t.Context(), missing); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing path: %v, want fs.ErrNotExist naming the path", err)
	}
}

// countingCtx is a context whose Err reports cancellation from its
// limit-th call on.
type countingCtx struct {
	context.Context
	calls, limit atomic.Int64
}

func (c *countingCtx) Err() error {
	if c.calls.Add(1) >= c.limit.Load() {
		return context.Canceled
	}
	return nil
}

func TestDiskUsageStopsWhenContextEnds(t *testing.T) {
	root := t.TempDir()
	for i := range 200 {
		writeFile(t, filepath.Join(root, fmt.Sprintf("d%d", i%10), fmt.Sprintf("f%d", i)), 1)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := DiskUsage(ctx, root); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled before: %v, want context.Canceled", err)
	}

	// Cancelled in the middle of the walk: it stops at once.
	cc := &countingCtx{Context: t.Context()}
	cc.limit.Store(50)
	u, err := DiskUsage(cc, root)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled during the walk: %v, want context.Canceled", err)
	}
	if cc.calls.Load() != 50 {
		t.Errorf("the walk went on after cancellation: %d checks, want 50", cc.calls.Load())
	}
	if u != (UsageInfo{}) {
		t.Errorf("DiskUsage = %+v with its error, want no counts", u)
	}
}

// mountTmpfs mounts a tmpfs with options at dir and unmounts it when the
// test ends; it skips the test when not root.
func mountTmpfs(t *testing.T, dir, options string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, options); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

func TestDiskUsageStopsAtMountPoints(t *testing.T) {
	root := t.TempDir()
	mnt := filepath.Join(root, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "file"), 100)
	mountTmpfs(t, mnt, "size=4m")
	writeFile(t, filepath.Join(mnt, "big"), 1<<20)
	writeFile(t, filepath.Join(mnt, "sub", "f"), 100)

	got := mustDiskUsage(t, root)
	if got.Inodes != 2 {
		t.Errorf("Inodes = %d, want 2 (the directory and its file; nothing of the mount)", got.Inodes)
	}
	if got.Bytes >= 1<<20 {
		t.Errorf("Bytes = %d: the mounted filesystem was counted", got.Bytes)
	}
	// The mount itself is measured as a volume of its own.
	if in := mustDiskUsage(t, mnt); in.Inodes != 4 || in.Bytes < 1<<20 {
		t.Errorf("DiskUsage of the mount = %+v, want its 4 entries and at least 1 MiB", in)
	}
}

func TestStatfsOfTmpfs(t *testing.T) {
	dir := t.TempDir()
	mountTmpfs(t, dir, "size=8m,nr_inodes=100")
	before, err := statfs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if before.capacity != 8<<20 || before.inodes != 100 {
		t.Errorf("capacity %d, inodes %d; want the tmpfs's size 8 MiB and 100 inodes", before.capacity, before.inodes)
	}
	writeFile(t, filepath.Join(dir, "a"), 1<<20)
	writeFile(t, filepath.Join(dir, "b"), 1<<20)
	after, err := statfs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d := after.used - before.used; d != 2<<20 {
		t.Errorf("used grew by %d writing 2 MiB, want 2 MiB", d)
	}
	if after.available != after.capacity-after.used {
		t.Errorf("available %d, want capacity - used = %d (a tmpfs reserves nothing)", after.available, after.capacity-after.used)
	}
	if d := after.inodesUsed - before.inodesUsed; d != 2 {
		t.Errorf("inodes used grew by %d creating 2 files, want 2", d)
	}
	if after.inodesFree != after.inodes-after.inodesUsed {
		t.Errorf("inodes free %d, want inodes - used = %d", after.inodesFree, after.inodes-after.inodesUsed)
	}
}

// BenchmarkDiskUsage walks 10,000 files in 100 directories.
func BenchmarkDiskUsage(b *testing.B) {
	root := b.TempDir()
	for d := range 100 {
		dir := filepath.Join(root, fmt.Sprintf("d%03d", d))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 100 {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", f)), []byte("data"), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		u, err := DiskUsage(ctx, root)
		if err != nil {
			b.Fatal(err)
		}
		if u.Inodes != 10101 {
			b.Fatalf("Inodes = %d, want 10101", u.Inodes)
		}
	}
}
