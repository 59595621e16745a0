package volumemgr

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"
	mountutils "k8s.io/mount-utils"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
)

// SubpathsConfig configures Subpaths. Only Layout is required.
type SubpathsConfig struct {
	// Layout says where the bind mounts go. Required: Root must be
	// absolute.
	Layout Layout
	// Mounter makes and removes the bind mounts. Nil: a SystemMounter.
	Mounter Mounter
	// Logger receives what the kubelet logs. Nil: none.
	Logger *zap.Logger
}

// Subpaths makes volume subPaths safe as the kubelet does. A subPath is a
// path inside a volume the pod controls: a container could have replaced
// any element of it with a symlink to anywhere on the host, which the
// runtime would follow when it mounts the joined path. So Prepare
// resolves the subPath once, checks that it stays inside the volume,
// opens it element by element without following symlinks, and bind-mounts
// the opened file (through /proc/<pid>/fd/<n>, which cannot be swapped)
// to Layout.SubpathDir(uid, volume, container, index); the runtime mounts
// that path instead. The bind mounts outlive the container: CleanVolume
// and CleanPod remove them once the pod's volumes are torn down.
//
// Calls for different pods may run concurrently; the caller serialises
// the calls for one pod.
type Subpaths struct {
	layout  Layout
	mounter Mounter
	log     *zap.Logger
}

// NewSubpaths returns Subpaths. A Layout without an absolute Root is an
// error wrapping core.ErrInvalid.
func NewSubpaths(cfg SubpathsConfig) (*Subpaths, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if err := checkLayoutRoot("SubpathsConfig.Layout", cfg.Layout); err != nil {
		return nil, fmt.Errorf("volumemgr: subpaths: %w", err)
	}
	if cfg.Mounter == nil {
		m, err := NewMounter(MounterConfig{Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("volumemgr: subpaths: %w", err)
		}
		cfg.Mounter = m
	}
	return &Subpaths{layout: cfg.Layout, mounter: cfg.Mounter, log: cfg.Logger}, nil
}

// PrepareFunc returns Prepare for one container of a pod, the shape of
// crispec.ContainerOptions.PrepareSubPath.
func (s *Subpaths) PrepareFunc(uid types.UID, container string) func(crispec.SubPath) (string, error) {
	return func(p crispec.SubPath) (string, error) { return s.Prepare(uid, container, p) }
}

// Prepare makes the subPath p of container of pod uid safe to mount and
// returns the host path to mount instead of p.Path (see Subpaths). A
// missing subPath is created as a directory, element by element without
// following symlinks, with the mode of the volume directory. Prepare is
// idempotent: the same file bind-mounted already is kept; a stale bind
// mount is replaced.
//
// A subPath that leaves its volume, lexically or through a symlink, is an
// error wrapping core.ErrInvalid; the error names the volume and the
// subPath but not where a symlink leads on the host.
func (s *Subpaths) Prepare(uid types.UID, container string, p crispec.SubPath) (string, error) {
	if err := checkPodUID(uid); err != nil {
		return "", err
	}
	if err := checkPathName("container name", container); err != nil {
		return "", err
	}
	if err := checkPathName("volume name", p.VolumeName); err != nil {
		return "", err
	}
	if p.VolumeMountIndex < 0 {
		return "", fmt.Errorf("volume mount index %d is negative: %w", p.VolumeMountIndex, core.ErrInvalid)
	}
	if !filepath.IsAbs(p.VolumePath) {
		return "", fmt.Errorf("volume %q: path %q is not absolute: %w", p.VolumeName, p.VolumePath, core.ErrInvalid)
	}
	rel, err := filepath.Rel(p.VolumePath, p.Path)
	if err != nil || mountutils.StartsWithBackstep(rel) {
		return "", fmt.Errorf("volume %q: subPath %q is not inside the volume: %w", p.VolumeName, p.Path, core.ErrInvalid)
	}
	target, err := s.prepare(uid, container, p, rel)
	if err != nil {
		return "", fmt.Errorf("volume %q subPath %q of container %q: %w", p.VolumeName, rel, container, err)
	}
	return target, nil
}

func (s *Subpaths) prepare(uid types.UID, container string, p crispec.SubPath, rel string) (string, error) {
	realVolume, err := filepath.EvalSymlinks(p.VolumePath)
	if err != nil {
		return "", fmt.Errorf("resolve the volume path: %w", err)
	}
	if _, err := os.Stat(p.Path); errors.Is(err, fs.ErrNotExist) {
		fi, err := os.Stat(realVolume)
		if err != nil {
			return "", err
		}
		if err := safeMakeDir(realVolume, rel, fi.Mode()&(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky)); err != nil {
			return "", err
		}
	}

	// Resolve every symlink once, then open what they lead to without
	// following any: a symlink swapped in meanwhile fails the open.
	realPath, err := filepath.EvalSymlinks(p.Path)
	if err != nil {
		return "", fmt.Errorf("resolve the subPath: %w", err)
	}
	if !mountutils.PathWithinBase(realPath, realVolume) {
		return "", fmt.Errorf("the subPath resolves to a path outside the volume: %w", core.ErrInvalid)
	}
	fd, err := openInside(realVolume, realPath, unix.O_PATH)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", fmt.Errorf("fstat the subPath: %w", err)
	}

	target := s.layout.SubpathDir(uid, p.VolumeName, container, p.VolumeMountIndex)
	mounted, err := s.mountedSame(target, &st)
	if err != nil || mounted {
		return target, err
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		return "", err
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if fi, err := os.Lstat(target); err == nil && fi.IsDir() != isDir {
		// A mount point left from a subPath of the other kind.
		if err := os.Remove(target); err != nil {
			return "", err
		}
	}
	if isDir {
		err = os.Mkdir(target, 0o750)
	} else {
		// A file is the mount point of anything but a directory: the
		// bind mount gives it the source's type.
		var f *os.File
		if f, err = os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o640); err == nil {
			err = f.Close()
		}
	}
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}

	source := "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(fd)
	if err := s.mounter.Mount(source, target, "", []string{"bind"}); err != nil {
		if cerr := s.cleanOne(uid, target); cerr != nil {
			s.log.Error("clean up a failed subPath mount", zap.String("path", target), zap.Error(cerr))
		}
		return "", fmt.Errorf("bind-mount the subPath: %w", err)
	}
	s.log.Debug("bound subPath", zap.String("subPath", p.Path), zap.String("target", target))
	return target, nil
}

// mountedSame says whether target is a mount point holding the file st
// describes; a mount point holding another file is unmounted.
func (s *Subpaths) mountedSame(target string, st *unix.Stat_t) (bool, error) {
	mounted, err := mountedOrAbsent(s.mounter, target)
	if err != nil || !mounted {
		return false, err
	}
	var tst unix.Stat_t
	if err := unix.Lstat(target, &tst); err != nil {
		return false, &fs.PathError{Op: "lstat", Path: target, Err: err}
	}
	if tst.Dev == st.Dev && tst.Ino == st.Ino {
		return true, nil
	}
	s.log.Info("subPath bind mount holds another file; mounting again", zap.String("path", target))
	return false, unmountAll(s.mounter, target)
}

// CleanVolume unmounts and removes the subPath bind mounts of volume of
// pod uid, for every container, and the directories holding them. None is
// done.
func (s *Subpaths) CleanVolume(uid types.UID, volume string) error {
	if err := checkPodUID(uid); err != nil {
		return err
	}
	if err := checkPathName("volume name", volume); err != nil {
		return err
	}
	volDir := filepath.Join(s.layout.PodSubpathsDir(uid), volume)
	containers, err := os.ReadDir(volDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, c := range containers {
		if !c.IsDir() {
			continue
		}
		cdir := filepath.Join(volDir, c.Name())
		mounts, err := os.ReadDir(cdir)
		if err != nil {
			return err
		}
		for _, m := range mounts {
			if err := s.cleanMount(filepath.Join(cdir, m.Name())); err != nil {
				return err
			}
		}
		if err := os.Remove(cdir); err != nil {
			return err
		}
	}
	if err := os.Remove(volDir); err != nil {
		return err
	}
	if err := os.Remove(s.layout.PodSubpathsDir(uid)); err != nil && !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// CleanPod runs CleanVolume for every volume of pod uid with subPath
// mounts.
func (s *Subpaths) CleanPod(uid types.UID) error {
	if err := checkPodUID(uid); err != nil {
		return err
	}
	vols, err := os.ReadDir(s.layout.PodSubpathsDir(uid))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, v := range vols {
		if v.IsDir() {
			errs = append(errs, s.CleanVolume(uid, v.Name()))
		}
	}
	return errors.Join(errs...)
}

// cleanMount unmounts path if it is a mount point and removes it.
func (s *Subpaths) cleanMount(path string) error {
	if err := unmountAll(s.mounter, path); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// cleanOne removes the bind mount target and the directories above it up
// to the pod directory that are left empty.
func (s *Subpaths) cleanOne(uid types.UID, target string) error {
	if err := s.cleanMount(target); err != nil {
		return err
	}
	podDir := s.layout.PodDir(uid)
	for dir := filepath.Dir(target); dir != podDir && mountutils.PathWithinBase(dir, podDir); dir = filepath.Dir(dir) {
		err := os.Remove(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			break // not empty
		}
	}
	return nil
}

// openInside opens path, which must be base or below it and contain no
// symlinks below base, element by element from base without following
// symlinks, with flags (O_PATH or O_RDONLY|O_DIRECTORY) added to
// O_NOFOLLOW|O_CLOEXEC. base itself must not be a symlink.
func openInside(base, path string, flags int) (int, error) {
	rel, err := filepath.Rel(base, path)
	if err != nil || mountutils.StartsWithBackstep(rel) {
		return -1, fmt.Errorf("path is outside the volume: %w", core.ErrInvalid)
	}
	fd, err := unix.Open(base, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: base, Err: err}
	}
	if rel == "." {
		if flags == unix.O_PATH {
			return fd, nil
		}
		unix.Close(fd)
		return unix.Open(base, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	elems := strings.Split(rel, string(filepath.Separator))
	for i, e := range elems {
		f := unix.O_PATH
		if i == len(elems)-1 {
			f = flags
		}
		child, err := unix.Openat(fd, e, f|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			err = openatError(fd, e, filepath.Join(elems[:i+1]...), err)
		}
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(child, &st); err != nil {
			unix.Close(child)
			return -1, err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			unix.Close(child)
			return -1, fmt.Errorf("unexpected symlink %s inside the volume: %w", filepath.Join(elems[:i+1]...), core.ErrInvalid)
		}
		fd = child
	}
	return fd, nil
}

// openatError explains why opening name in the directory dirfd without
// following symlinks failed with err; display names it in the volume.
func openatError(dirfd int, name, display string, err error) error {
	var st unix.Stat_t
	if serr := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); serr == nil {
		switch {
		case st.Mode&unix.S_IFMT == unix.S_IFLNK:
			return fmt.Errorf("unexpected symlink %s inside the volume: %w", display, core.ErrInvalid)
		case errors.Is(err, unix.ENOTDIR):
			return fmt.Errorf("%s inside the volume is not a directory: %w", display, core.ErrInvalid)
		}
	}
	return &fs.PathError{Op: "openat", Path: display, Err: err}
}

// safeMakeDir creates the directories of rel below base that are missing,
// each with perm exactly, without following symlinks: it finds the part
// of rel that exists (symlinks there may lead anywhere inside base, not
// out of it), opens it element by element without following symlinks
// and creates the rest with mkdirat, opening each new directory the same
// way.
func safeMakeDir(base, rel string, perm os.FileMode) error {
	elems := strings.Split(filepath.Clean(rel), string(filepath.Separator))
	i := 0
	for ; i < len(elems); i++ {
		if _, err := os.Stat(filepath.Join(base, filepath.Join(elems[:i+1]...))); err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
				break // opening the existing part says what is wrong
			}
			return err
		}
	}
	if i == len(elems) {
		return nil // created meanwhile
	}
	existing, err := filepath.EvalSymlinks(filepath.Join(base, filepath.Join(elems[:i]...)))
	if err != nil {
		return err
	}
	if !mountutils.PathWithinBase(existing, base) {
		return fmt.Errorf("the subPath resolves to a path outside the volume: %w", core.ErrInvalid)
	}
	fd, err := openInside(base, existing, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer func() { unix.Close(fd) }()
	mode := uint32(perm & os.ModePerm)
	if perm&os.ModeSetuid != 0 {
		mode |= unix.S_ISUID
	}
	if perm&os.ModeSetgid != 0 {
		mode |= unix.S_ISGID
	}
	if perm&os.ModeSticky != 0 {
		mode |= unix.S_ISVTX
	}
	for _, e := range elems[i:] {
		err := unix.Mkdirat(fd, e, mode)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create directory %s in the volume: %w", e, err)
		}
		created := err == nil
		// Something created meanwhile is opened the same way: a symlink
		// fails.
		child, err := unix.Openat(fd, e, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return openatError(fd, e, e, err)
		}
		unix.Close(fd)
		fd = child
		if created {
			// mkdirat applied the umask.
			if err := unix.Fchmod(fd, mode); err != nil {
				return fmt.Errorf("chmod directory %s in the volume: %w", e, err)
			}
		}
	}
	return nil
}
