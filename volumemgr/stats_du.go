package volumemgr

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/nodekit/nodekit/core"
)

// UsageInfo is what DiskUsage finds under a path.
type UsageInfo struct {
	// Bytes is the space allocated to the entries: the sum of their
	// allocated 512-byte blocks (st_blocks), as du counts. A sparse file
	// counts what it occupies, not its length; a small file counts at
	// least one filesystem block.
	Bytes int64
	// Inodes is the number of entries counted, the path itself included.
	Inodes int64
}

// direntBufSize is the size of the buffer directory entries are read into.
const direntBufSize = 32 << 10

// DiskUsage measures the space and inodes used under path, as the kubelet
// measures a volume on a shared filesystem with du:
//
//   - every entry counts its allocated blocks times 512 and one inode,
//     directories and path itself included;
//   - a file with several hard links under path counts once;
//   - symbolic links are counted, not followed (path itself may be a
//     symbolic link: its target is measured);
//   - the walk stays on path's filesystem: a mount point under path and
//     everything below it is not counted;
//   - an entry removed while the walk runs is skipped; any other error
//     ends the walk and is returned.
//
// Path may also be a file, a socket or a device: its own blocks and one
// inode are counted. DiskUsage returns ctx's error, wrapped, when ctx ends
// during the walk, and no counts with any error. An empty path is an error
// wrapping core.ErrInvalid.
func DiskUsage(ctx context.Context, path string) (UsageInfo, error) {
	if path == "" {
		return UsageInfo{}, fmt.Errorf("volumemgr: disk usage: %w: empty path", core.ErrInvalid)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return UsageInfo{}, fmt.Errorf("volumemgr: disk usage of %s: %w", path, err)
	}
	w := walker{ctx: ctx, buf: make([]byte, direntBufSize)}
	fd, err := unix.Open(real, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOTDIR) {
		var st unix.Stat_t
		if err := unix.Lstat(real, &st); err != nil {
			return UsageInfo{}, fmt.Errorf("volumemgr: disk usage of %s: %w", path, err)
		}
		w.add(&st)
		return w.usage, nil
	}
	if err != nil {
		return UsageInfo{}, fmt.Errorf("volumemgr: disk usage of %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return UsageInfo{}, fmt.Errorf("volumemgr: disk usage of %s: %w", path, err)
	}
	w.dev = uint64(st.Dev)
	w.add(&st)
	if err := w.dir(fd, real); err != nil {
		return UsageInfo{}, fmt.Errorf("volumemgr: disk usage of %s: %w", path, err)
	}
	return w.usage, nil
}

// walker walks one directory tree for DiskUsage. Directories are opened
// relative to their parent's descriptor without following symbolic links,
// so that a directory renamed or replaced during the walk cannot lead it
// elsewhere; each level of the tree holds one descriptor while it is
// walked.
type walker struct {
	ctx   context.Context
	dev   uint64              // the filesystem of the root
	buf   []byte              // directory entries, shared by all levels
	seen  map[uint64]struct{} // inodes with more than one link, counted
	usage UsageInfo
}

// add counts st and reports whether it was counted: a non-directory with
// several links counts only the first time it is seen.
func (w *walker) add(st *unix.Stat_t) bool {
	if st.Mode&unix.S_IFMT != unix.S_IFDIR && uint64(st.Nlink) > 1 {
		if _, ok := w.seen[uint64(st.Ino)]; ok {
			return false
		}
		if w.seen == nil {
			w.seen = map[uint64]struct{}{}
		}
		w.seen[uint64(st.Ino)] = struct{}{}
	}
	w.usage.Bytes += int64(st.Blocks) * 512
	w.usage.Inodes++
	return true
}

// dir counts the entries of the directory open as fd (named path in
// errors) and walks its subdirectories; it closes fd.
func (w *walker) dir(fd int, path string) error {
	defer unix.Close(fd)
	var names []string
	for {
		n, err := unix.ReadDirent(fd, w.buf)
		if err != nil {
			return fmt.Errorf("read directory %s: %w", path, err)
		}
		if n <= 0 {
			return nil
		}
		// ParseDirent copies the names, so that the buffer is free for
		// the subdirectories walked below.
		_, _, names = unix.ParseDirent(w.buf[:n], -1, names[:0])
		for _, name := range names {
			if err := w.ctx.Err(); err != nil {
				return err
			}
			if err := w.entry(fd, path, name); err != nil {
				return err
			}
		}
	}
}

// entry counts the entry name of the directory open as dirfd and walks it
// if it is a directory on the same filesystem.
func (w *walker) entry(dirfd int, dir, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // removed since the directory was read
		}
		return fmt.Errorf("stat %s: %w", filepath.Join(dir, name), err)
	}
	if uint64(st.Dev) != w.dev {
		return nil // a mount point: another filesystem
	}
	if !w.add(&st) || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			return nil // removed or replaced since it was counted
		}
		return fmt.Errorf("open directory %s: %w", filepath.Join(dir, name), err)
	}
	var opened unix.Stat_t
	if err := unix.Fstat(fd, &opened); err != nil {
		unix.Close(fd)
		return fmt.Errorf("stat %s: %w", filepath.Join(dir, name), err)
	}
	if uint64(opened.Dev) != w.dev || opened.Ino != st.Ino {
		unix.Close(fd) // mounted over or replaced since it was counted
		return nil
	}
	return w.dir(fd, filepath.Join(dir, name))
}

// fsInfo is what statfs reports of the filesystem holding a path.
type fsInfo struct {
	capacity, available, used      int64
	inodes, inodesFree, inodesUsed int64
}

// statfs reports the filesystem holding path, in the kubelet's terms:
// capacity is all blocks, available the blocks an unprivileged user may
// still allocate, used all blocks minus the free ones (the blocks reserved
// for root count as used), each times the fragment size (the block size
// where the filesystem reports no fragment size); inodes used are the
// inodes minus the free ones.
func statfs(path string) (fsInfo, error) {
	var s unix.Statfs_t
	if err := unix.Statfs(path, &s); err != nil {
		return fsInfo{}, fmt.Errorf("volumemgr: statfs %s: %w", path, err)
	}
	bs := int64(s.Frsize)
	if bs <= 0 {
		bs = int64(s.Bsize)
	}
	return fsInfo{
		capacity:   int64(s.Blocks) * bs,
		available:  int64(s.Bavail) * bs,
		used:       (int64(s.Blocks) - int64(s.Bfree)) * bs,
		inodes:     int64(s.Files),
		inodesFree: int64(s.Ffree),
		inodesUsed: int64(s.Files) - int64(s.Ffree),
	}, nil
}
