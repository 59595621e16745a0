package cpumanager

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nodekit/nodekit/core"
)

// ReadCheckpoint reads and decodes a checkpoint file (see
// UnmarshalCheckpoint). A missing file is an error wrapping
// core.ErrNotFound.
func ReadCheckpoint(path string) (policyName string, s State, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", State{}, fmt.Errorf("cpumanager: checkpoint %s: %w", path, core.ErrNotFound)
	}
	if err != nil {
		return "", State{}, fmt.Errorf("cpumanager: read checkpoint: %w", err)
	}
	policyName, s, err = UnmarshalCheckpoint(b)
	if err != nil {
		return "", State{}, fmt.Errorf("cpumanager: checkpoint %s: %w", path, err)
	}
	return policyName, s, nil
}

// WriteCheckpoint writes a state to path in the kubelet's format,
// atomically: the file is either the old one or the new one, whole, even
// if the machine crashes while writing.
func WriteCheckpoint(path, policyName string, s *State) error {
	b, err := MarshalCheckpoint(policyName, s)
	if err != nil {
		return err
	}
	return writeFileAtomic(osFiles{}, path, b)
}

// checkpointTempPrefix starts the names of the temporary files a write
// goes through. The leading dot keeps them out of the kubelet's listing of
// its checkpoints.
func checkpointTempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// tempFile is the part of *os.File a write needs.
type tempFile interface {
	io.Writer
	Sync() error
	Close() error
	Name() string
}

// fileSystem is the file system the checkpoint is written through; tests
// inject failures with it.
type fileSystem interface {
	MkdirAll(dir string, perm fs.FileMode) error
	CreateTemp(dir, pattern string) (tempFile, error)
	Rename(from, to string) error
	Remove(path string) error
	// SyncDir flushes a directory's entries (the rename) to disk.
	SyncDir(dir string) error
}

type osFiles struct{}

func (osFiles) MkdirAll(dir string, perm fs.FileMode) error { return os.MkdirAll(dir, perm) }
func (osFiles) CreateTemp(dir, pattern string) (tempFile, error) {
	return os.CreateTemp(dir, pattern)
}
func (osFiles) Rename(from, to string) error { return os.Rename(from, to) }
func (osFiles) Remove(path string) error     { return os.Remove(path) }
func (osFiles) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeFileAtomic writes data to a temporary file beside path, flushes
// it, renames it over path and flushes the directory. On failure the
// temporary file is removed and path is untouched.
func writeFileAtomic(fsys fileSystem, path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cpumanager: write checkpoint: %w", err)
	}
	f, err := fsys.CreateTemp(dir, checkpointTempPrefix(path)+"*")
	if err != nil {
		return fmt.Errorf("cpumanager: write checkpoint: %w", err)
	}
	tmp, closed := f.Name(), false
	defer func() {
		if err == nil {
			return
		}
		if !closed {
			_ = f.Close()
		}
		if rerr := fsys.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = fmt.Errorf("%w (and removing the temporary file %s: %w)", err, tmp, rerr)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("cpumanager: write checkpoint %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("cpumanager: write checkpoint %s: %w", tmp, err)
	}
	closed = true
	if err := f.Close(); err != nil {
		return fmt.Errorf("cpumanager: write checkpoint %s: %w", tmp, err)
	}
	if err := fsys.Rename(tmp, path); err != nil {
		return fmt.Errorf("cpumanager: write checkpoint: %w", err)
	}
	if err := fsys.SyncDir(dir); err != nil {
		// The new file is in place (the temporary name is gone); only
		// its durability across a crash is in doubt.
		return fmt.Errorf("cpumanager: write checkpoint: sync %s: %w", dir, err)
	}
	return nil
}

// removeStaleTempFiles deletes temporary files a crashed write left
// beside path.
func removeStaleTempFiles(path string) error {
	entries, err := os.ReadDir(filepath.Dir(path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	prefix := checkpointTempPrefix(path)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(filepath.Dir(path), e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}
