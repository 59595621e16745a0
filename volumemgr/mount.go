package volumemgr

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"
	mountutils "k8s.io/mount-utils"

	"github.com/nodekit/nodekit/core"
)

// Mounter is what the volume plugins need from the host's mount table.
// SystemMounter is the real one; tests may record calls instead.
type Mounter interface {
	// Mount mounts source on target, as mount(8) would with -t fstype
	// (empty: none, as for a bind mount) and -o options ("bind",
	// "size=1024", ...). target must exist.
	Mount(source, target, fstype string, options []string) error
	// Unmount unmounts target (the topmost mount on it).
	Unmount(target string) error
	// IsMountPoint says whether something is mounted on path, bind mounts
	// within one filesystem included. A path that does not exist is an
	// error matching fs.ErrNotExist.
	IsMountPoint(path string) (bool, error)
}

// MounterConfig configures a SystemMounter. The zero value is usable.
type MounterConfig struct {
	// Logger receives a debug line per mount and unmount. Nil: none.
	Logger *zap.Logger
}

// SystemMounter mounts with the host's mount(8) and umount(8) through
// k8s.io/mount-utils, as the kubelet does, and never through a systemd
// scope (tmpfs, hugetlbfs and bind mounts need no helper process to
// survive the agent). Mount passes --no-canonicalize, so that a source
// such as /proc/<pid>/fd/<n> is mounted as the file the descriptor
// holds, not as a path resolved again. It is safe for concurrent use.
type SystemMounter struct {
	m   mountutils.Interface
	log *zap.Logger
}

var _ Mounter = (*SystemMounter)(nil)

// NewMounter returns a SystemMounter. It runs umount(8) once, on a fresh
// temporary directory, to learn whether umount reports "not mounted"
// safely, as mount-utils does.
func NewMounter(cfg MounterConfig) (*SystemMounter, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &SystemMounter{m: mountutils.NewWithoutSystemd(""), log: cfg.Logger}, nil
}

// Mount implements Mounter.
func (s *SystemMounter) Mount(source, target, fstype string, options []string) error {
	s.log.Debug("mount", zap.String("source", source), zap.String("target", target),
		zap.String("fstype", fstype), zap.Strings("options", options))
	return s.m.MountSensitiveWithoutSystemdWithMountFlags(source, target, fstype, options, nil, []string{"--no-canonicalize"})
}

// Unmount implements Mounter.
func (s *SystemMounter) Unmount(target string) error {
	s.log.Debug("unmount", zap.String("target", target))
	return s.m.Unmount(target)
}

// IsMountPoint implements Mounter.
func (s *SystemMounter) IsMountPoint(path string) (bool, error) {
	return s.m.IsMountPoint(path)
}

// mountedOrAbsent asks m whether path is a mount point; a path that does
// not exist is not one.
func mountedOrAbsent(m Mounter, path string) (bool, error) {
	mounted, err := m.IsMountPoint(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check whether %s is a mount point: %w", path, err)
	}
	return mounted, nil
}

// unmountAll unmounts path until nothing is mounted on it any more (a
// path can carry stacked mounts); a path that does not exist is done.
func unmountAll(m Mounter, path string) error {
	for range 8 {
		mounted, err := mountedOrAbsent(m, path)
		if err != nil || !mounted {
			return err
		}
		if err := m.Unmount(path); err != nil {
			return fmt.Errorf("unmount %s: %w", path, err)
		}
	}
	return fmt.Errorf("unmount %s: still a mount point after 8 unmounts", path)
}

// checkLayoutRoot validates a Layout given in the field named field.
func checkLayoutRoot(field string, l Layout) error {
	if l.Root == "" || !filepath.IsAbs(l.Root) {
		return fmt.Errorf("%s.Root %q must be an absolute path: %w", field, l.Root, core.ErrInvalid)
	}
	return nil
}

// checkPathName checks that a name used as one directory of the layout
// (a pod UID, a volume or container name) stays one directory.
func checkPathName(what, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%s %q cannot name a directory: %w", what, name, core.ErrInvalid)
	}
	return nil
}

func checkPodUID(uid types.UID) error { return checkPathName("pod UID", string(uid)) }

// removeOneFilesystem removes path and what it contains, like
// rm -rf --one-file-system: it opens every directory without following
// symlinks, removes symlinks themselves, and fails on a directory that
// is a mount point instead of entering it. dirsOnly removes directories
// only and fails on anything else. It removes what it can and returns the
// first error; a path that does not exist is removed.
func removeOneFilesystem(path string, dirsOnly bool) error {
	path = filepath.Clean(path)
	parent, name := filepath.Split(path)
	pfd, err := unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return &fs.PathError{Op: "open", Path: parent, Err: err}
	}
	defer unix.Close(pfd)
	return removeTreeAt(pfd, name, path, dirsOnly)
}

func removeTreeAt(dirfd int, name, path string, dirsOnly bool) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if dirsOnly {
			return fmt.Errorf("%s is not a directory, refusing to remove it", path)
		}
		if err := unix.Unlinkat(dirfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return &fs.PathError{Op: "unlink", Path: path, Err: err}
		}
		return nil
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	dir := os.NewFile(uintptr(fd), path)
	defer dir.Close()
	if mp, err := isMountRoot(dirfd, fd); err != nil {
		return &fs.PathError{Op: "statx", Path: path, Err: err}
	} else if mp {
		return fmt.Errorf("cannot delete directory %s: it is a mount point", path)
	}
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return err
	}
	var first error
	for _, n := range names {
		if err := removeTreeAt(fd, n, filepath.Join(path, n), dirsOnly); err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return first
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return &fs.PathError{Op: "rmdir", Path: path, Err: err}
	}
	return nil
}

// isMountRoot says whether the directory open as fd, found in the
// directory open as parentfd, is the root of a mount: the kernel says so
// (statx, Linux 5.8 and newer), or it lives on another device.
func isMountRoot(parentfd, fd int) (bool, error) {
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS, &stx); err != nil {
		return false, err
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		return true, nil
	}
	var pst, st unix.Stat_t
	if err := unix.Fstat(parentfd, &pst); err != nil {
		return false, err
	}
	if err := unix.Fstat(fd, &st); err != nil {
		return false, err
	}
	return pst.Dev != st.Dev, nil
}
