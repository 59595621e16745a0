package volumemgr

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/nodekit/nodekit/core"
)

// Modes of what a hostPath volume creates: the kubelet's, but exact
// whatever the umask.
const (
	hostPathDirPerm  os.FileMode = 0o755
	hostPathFilePerm os.FileMode = 0o644
)

// errUnknownFileType is why the type of a FIFO, say, is not determined.
var errUnknownFileType = errors.New("only recognise file, directory, socket, block device and character device")

// pathMissingError says, as the kubelet does, that nothing is at a path;
// it matches fs.ErrNotExist.
type pathMissingError string

func (e pathMissingError) Error() string { return fmt.Sprintf("path %q does not exist", string(e)) }

func (pathMissingError) Is(target error) bool { return target == fs.ErrNotExist }

// HostPathTypeError is a failed hostPath type check: Path is not of the
// type the volume asks for. Its message is the kubelet's (the one a
// FailedMount event carries). It matches core.ErrNotFound when nothing is
// at Path (it may appear later) and core.ErrInvalid otherwise.
type HostPathTypeError struct {
	// Path is the host path checked.
	Path string
	// Type is the type the volume asks for.
	Type v1.HostPathType
	// Found is the type of what is at Path ("Directory", "File",
	// "Socket", "CharDevice", "BlockDevice"), or "" when it could not be
	// determined.
	Found v1.HostPathType
	// Err, when Found is "", says why: nothing is there (matching
	// fs.ErrNotExist), an unknown type (a FIFO), or the stat error.
	Err error
}

// Error is the kubelet's message: what was expected at Path and what was
// found there, or why that could not be determined.
func (e *HostPathTypeError) Error() string {
	if e.Found == "" {
		return fmt.Sprintf("hostPath type check failed, %s is not a %s, unable to determine its type: %v", e.Path, hostPathTypeWord(e.Type), e.Err)
	}
	return fmt.Sprintf("hostPath type check failed: %s is not a %s, it's a %s", e.Path, hostPathTypeWord(e.Type), e.Found)
}

// Unwrap gives the error class and, when set, Err.
func (e *HostPathTypeError) Unwrap() []error {
	class := core.ErrInvalid
	if errors.Is(e.Err, fs.ErrNotExist) {
		class = core.ErrNotFound
	}
	if e.Err == nil {
		return []error{class}
	}
	return []error{class, e.Err}
}

// hostPathTypeWord is how the kubelet names a type in its messages.
func hostPathTypeWord(t v1.HostPathType) string {
	switch t {
	case v1.HostPathDirectoryOrCreate, v1.HostPathDirectory:
		return "directory"
	case v1.HostPathFileOrCreate, v1.HostPathFile:
		return "file"
	case v1.HostPathSocket:
		return "socket file"
	case v1.HostPathCharDev:
		return "character device"
	case v1.HostPathBlockDev:
		return "block device"
	}
	return string(t)
}

// CheckHostPath checks a hostPath volume before it is used, as the
// kubelet's host-path plugin does, and returns nil when the volume can be
// bind-mounted from path:
//
//   - path must be absolute and contain no ".." element (an error wrapping
//     core.ErrInvalid);
//   - pathType nil or "" checks nothing more;
//   - DirectoryOrCreate creates a missing directory, with its missing
//     parents, mode 0755; Directory wants a directory;
//   - FileOrCreate creates a missing file, mode 0644, but not its parent
//     directory; File wants a regular file;
//   - Socket, CharDevice and BlockDevice want a socket, a character device,
//     a block device.
//
// Symlinks are followed, as they are when the runtime mounts the path. A
// path of the wrong type is a *HostPathTypeError; an unknown pathType an
// error wrapping core.ErrInvalid; a failure to create an error saying so.
func CheckHostPath(path string, pathType *v1.HostPathType) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("invalid HostPath `%s`: must be an absolute path: %w", path, core.ErrInvalid)
	}
	if slices.Contains(strings.Split(filepath.ToSlash(path), "/"), "..") {
		return fmt.Errorf("invalid HostPath `%s`: must not contain '..': %w", path, core.ErrInvalid)
	}
	if pathType == nil || *pathType == v1.HostPathUnset {
		return nil
	}
	t := *pathType
	switch t {
	case v1.HostPathDirectoryOrCreate, v1.HostPathFileOrCreate:
		exists, err := hostPathExists(path)
		if err != nil {
			return &HostPathTypeError{Path: path, Type: t, Err: err}
		}
		if !exists {
			create := makeHostPathDir
			if t == v1.HostPathFileOrCreate {
				create = makeHostPathFile
			}
			if err := create(path); err != nil {
				return fmt.Errorf("hostPath type check failed: create %s %s: %w", hostPathTypeWord(t), path, err)
			}
		}
	case v1.HostPathDirectory, v1.HostPathFile, v1.HostPathSocket, v1.HostPathCharDev, v1.HostPathBlockDev:
	default:
		return fmt.Errorf("%s is an invalid volume type: %w", t, core.ErrInvalid)
	}

	want := map[v1.HostPathType]v1.HostPathType{
		v1.HostPathDirectoryOrCreate: v1.HostPathDirectory,
		v1.HostPathFileOrCreate:      v1.HostPathFile,
	}[t]
	if want == "" {
		want = t
	}
	found, err := hostPathFileType(path)
	if err != nil {
		return &HostPathTypeError{Path: path, Type: t, Err: err}
	}
	if found != want {
		return &HostPathTypeError{Path: path, Type: t, Found: found}
	}
	return nil
}

// hostPathExists says whether path exists, following symlinks.
func hostPathExists(path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// hostPathFileType is the type of what path leads to, following symlinks.
func hostPathFileType(path string) (v1.HostPathType, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", pathMissingError(path)
	}
	if err != nil {
		return "", err
	}
	m := fi.Mode()
	switch {
	case m.IsDir():
		return v1.HostPathDirectory, nil
	case m.IsRegular():
		return v1.HostPathFile, nil
	case m&os.ModeSocket != 0:
		return v1.HostPathSocket, nil
	case m&os.ModeCharDevice != 0:
		return v1.HostPathCharDev, nil
	case m&os.ModeDevice != 0:
		return v1.HostPathBlockDev, nil
	}
	return "", errUnknownFileType
}

// makeHostPathDir creates path and its missing parents, each with mode
// 0755. Something already there is left to the type check.
func makeHostPathDir(path string) error {
	var missing []string
	for p := path; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		missing = append(missing, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	if err := os.MkdirAll(path, hostPathDirPerm); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	for _, p := range missing {
		if err := os.Chmod(p, hostPathDirPerm); err != nil {
			return err
		}
	}
	return nil
}

// makeHostPathFile creates an empty file at path, mode 0644; its parent
// must exist. Something already there is left to the type check.
func makeHostPathFile(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, hostPathFilePerm)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := f.Chmod(hostPathFilePerm); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
