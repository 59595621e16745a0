package volumemgr

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// Names the AtomicWriter keeps for itself in its directory. Payload paths
// may not start with "..", so they never collide with these.
const (
	// AtomicDataDir is the symlink to the timestamped directory holding
	// the current content. Consumers watch it to learn of updates.
	AtomicDataDir = "..data"
	// atomicDataTmp is the symlink made to the new timestamped directory
	// and renamed over AtomicDataDir.
	atomicDataTmp = "..data_tmp"
	// atomicTimestampLayout names timestamped directories, followed by a
	// random suffix: ..2016_02_01_15_04_05.123456789.
	atomicTimestampLayout = "..2006_01_02_15_04_05."
)

// AtomicWriterConfig configures an AtomicWriter.
type AtomicWriterConfig struct {
	// Dir is the volume's directory. It is required and must exist when
	// Write is called (the writer never creates it: a missing directory
	// is a missing mount).
	Dir string
	// Clock names the timestamped directories. Nil means the real clock.
	Clock clock.PassiveClock
	// Logger receives debug messages about writes and warnings about
	// leftovers it could not remove. Nil means no logging.
	Logger *zap.Logger
	// BeforePublish, if set, is called with the path of the new
	// timestamped directory once the payload is written there and before
	// it becomes visible; an error aborts the write, the new directory is
	// removed and the old content stays. The kubelet applies the pod's
	// fsGroup ownership here, so that no reader sees a file before its
	// group may read it.
	BeforePublish func(dir string) error
}

// AtomicWriter publishes a payload of files into a directory so that a
// reader sees either all of the previous content or all of the new, as the
// kubelet's atomic writer does for configMap, secret, downwardAPI and
// projected volumes. The files live in a hidden timestamped directory; the
// visible names are symlinks through the ..data symlink:
//
//	<dir>/..2026_01_02_15_04_05.1234567   the content
//	<dir>/..data -> ..2026_01_02_15_04_05.1234567
//	<dir>/config.yaml -> ..data/config.yaml
//	<dir>/certs -> ..data/certs            (for certs/ca.crt)
//
// An update writes a new timestamped directory and renames a symlink to it
// over ..data, which is atomic, so a consumer may watch ..data (inotify) to
// learn of updates. A reader that resolves ..data once (readlink, then
// paths under the directory it names) reads one consistent version; a
// reader that opens visible paths one at a time reads each file whole,
// of the version current when it opens it. A reader that resolved the old
// directory just before the swap may find it removed (ENOENT) and should
// read again.
//
// Crash safety: at every step on disk, ..data names a complete directory,
// so a crash of the process at any point leaves either the old or the new
// content visible, never a file of one mixed with a file of the other. A
// crash before the rename leaves a stray ..data_tmp or timestamped
// directory (the old content stays visible); a crash after it leaves the
// old timestamped directory, a symlink for a new top-level name not yet
// made, or one for a removed name dangling (the new content is visible,
// the new name not yet). The next Write repairs all of these, even when
// the payload is unchanged. Nothing is fsynced: after a crash of the
// machine, the next Write compares the files on disk with the payload and
// rewrites what a lost write left short.
//
// Write calls are serialized; two writers (or processes) on one directory
// are not.
type AtomicWriter struct {
	dir           string
	clock         clock.PassiveClock
	log           *zap.Logger
	beforePublish func(string) error

	mu sync.Mutex
}

// NewAtomicWriter returns a writer for cfg.Dir. An empty Dir is an error
// wrapping core.ErrInvalid; the directory itself is only looked at by
// Write.
func NewAtomicWriter(cfg AtomicWriterConfig) (*AtomicWriter, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Dir == "" {
		return nil, fmt.Errorf("volumemgr: AtomicWriterConfig.Dir is required: %w", core.ErrInvalid)
	}
	return &AtomicWriter{
		dir:           filepath.Clean(cfg.Dir),
		clock:         cfg.Clock,
		log:           cfg.Logger.With(zap.String("dir", cfg.Dir)),
		beforePublish: cfg.BeforePublish,
	}, nil
}

// Write makes payload the content of the directory. changed reports
// whether new content was published (..data swapped); it is false when the
// files under ..data already hold the payload's bytes and no others, and
// then nothing is written. Modes and owners are set when a file is written
// and not compared, as in the kubelet (an fsGroup step in BeforePublish
// may have added group bits since).
//
// The algorithm:
//
//  1. Check the payload (see below).
//  2. Read ..data; compare the payload with the files under it.
//  3. If they differ: create ..<timestamp>.<random> (mode 0755), write
//     every file (its directories 0755, the file's Mode set by chmod
//     whatever the umask, its owner set to FsUser if given), call
//     BeforePublish, symlink ..data_tmp to the new directory, and rename
//     ..data_tmp over ..data.
//  4. Create a symlink <name> -> ..data/<name> for each top-level name of
//     the payload that has none.
//  5. Remove the visible symlinks into ..data for names no longer in the
//     payload.
//  6. Remove the old timestamped directory and any leftovers of an earlier
//     crash (..data_tmp, other timestamped directories).
//
// A path that is empty, absolute, longer than 4096 bytes, has an element
// ".." or longer than 255 bytes, starts with "..", cleans to the same path
// as another or to the directory of another, or a Mode outside 0 to 0777,
// is an error wrapping core.ErrInvalid naming the path, and nothing is
// written. An error after step 3 returns changed true: the new content is
// visible but the repair of steps 4 to 6 is incomplete, and the next Write
// completes it.
func (w *AtomicWriter) Write(payload map[string]FileProjection) (changed bool, err error) {
	clean, err := checkAtomicPayload(payload)
	if err != nil {
		return false, fmt.Errorf("volumemgr: write %s: %w", w.dir, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()

	dataLink := filepath.Join(w.dir, AtomicDataDir)
	current, err := os.Readlink(dataLink)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		current = ""
	case err != nil:
		return false, fmt.Errorf("volumemgr: write %s: read %s: %w", w.dir, AtomicDataDir, err)
	}

	same := false
	if current != "" {
		if !isAtomicTimestampDir(current) {
			// Not ours to compare with, nor to remove: replace it.
			w.log.Warn("..data names no timestamped directory; replacing it", zap.String("target", current))
		} else if same, err = atomicSameContent(filepath.Join(w.dir, current), clean); err != nil {
			return false, fmt.Errorf("volumemgr: write %s: compare with %s: %w", w.dir, current, err)
		}
	}

	if !same {
		tsName, err := w.publish(clean)
		if err != nil {
			return false, fmt.Errorf("volumemgr: write %s: %w", w.dir, err)
		}
		w.log.Debug("published new content", zap.String("data", tsName), zap.String("previous", current), zap.Int("files", len(clean)))
		current = tsName
	} else {
		w.log.Debug("content unchanged", zap.String("data", current))
	}

	if err := w.linkVisible(clean); err != nil {
		return !same, fmt.Errorf("volumemgr: write %s: %w", w.dir, err)
	}
	if err := w.removeLeftovers(clean, current); err != nil {
		return !same, fmt.Errorf("volumemgr: write %s: %w", w.dir, err)
	}
	return !same, nil
}

// checkAtomicPayload checks every path and mode of a payload and returns
// it with its paths cleaned.
func checkAtomicPayload(payload map[string]FileProjection) (map[string]FileProjection, error) {
	clean := make(map[string]FileProjection, len(payload))
	from := make(map[string]string, len(payload))
	var errs []error
	for _, p := range slices.Sorted(maps.Keys(payload)) {
		c, err := cleanPayloadPath(p)
		if err != nil {
			errs = append(errs, payloadErrorf(core.ErrInvalid, "path %q: %v", p, err))
			continue
		}
		if err := checkPayloadMode(payload[p].Mode); err != nil {
			errs = append(errs, payloadErrorf(core.ErrInvalid, "path %q: mode: %v", p, err))
			continue
		}
		if other, dup := from[c]; dup {
			errs = append(errs, payloadErrorf(core.ErrInvalid, "paths %q and %q are the same file", other, p))
			continue
		}
		from[c] = p
		clean[c] = payload[p]
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := checkPayloadTree(clean); err != nil {
		return nil, err
	}
	return clean, nil
}

// atomicSameContent reports whether dir holds exactly the payload: each path a
// regular file with the payload's bytes, and nothing else but the
// directories leading to them.
func atomicSameContent(dir string, payload map[string]FileProjection) (bool, error) {
	want := map[string]bool{}
	for p := range payload {
		want[p] = true
		for d := filepath.Dir(p); d != "."; d = filepath.Dir(d) {
			want[d] = true
		}
	}
	extra := false
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if !want[rel] {
			extra = true
			return filepath.SkipAll
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		// ..data dangles: write afresh.
		return false, nil
	}
	if err != nil || extra {
		return false, err
	}
	for p, f := range payload {
		path := filepath.Join(dir, p)
		// A file that is missing, is not a regular file, lies under a
		// file (ENOTDIR) or cannot be read differs: writing it afresh
		// repairs it, or reports why not.
		fi, err := os.Lstat(path)
		if err != nil || !fi.Mode().IsRegular() || fi.Size() != int64(len(f.Data)) {
			return false, nil
		}
		data, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(data, f.Data) {
			return false, nil
		}
	}
	return true, nil
}

// publish writes the payload into a new timestamped directory and swaps
// ..data to it. It returns the new directory's name. On error, nothing it
// created is left behind and ..data is unchanged.
func (w *AtomicWriter) publish(payload map[string]FileProjection) (string, error) {
	prefix := w.clock.Now().UTC().Format(atomicTimestampLayout)
	tsDir, err := os.MkdirTemp(w.dir, prefix)
	if err != nil {
		return "", fmt.Errorf("create timestamped directory: %w", err)
	}
	tsName := filepath.Base(tsDir)
	published := false
	defer func() {
		if !published {
			if err := os.RemoveAll(tsDir); err != nil {
				w.log.Warn("cannot remove unpublished directory", zap.String("data", tsName), zap.Error(err))
			}
		}
	}()
	// Group and others must be able to traverse it, whatever the umask.
	if err := os.Chmod(tsDir, 0o755); err != nil {
		return "", fmt.Errorf("chmod %s: %w", tsName, err)
	}
	for _, p := range slices.Sorted(maps.Keys(payload)) {
		if err := atomicWriteFile(tsDir, p, payload[p]); err != nil {
			return "", err
		}
	}
	if w.beforePublish != nil {
		if err := w.beforePublish(tsDir); err != nil {
			return "", fmt.Errorf("before publishing %s: %w", tsName, err)
		}
	}

	tmpLink := filepath.Join(w.dir, atomicDataTmp)
	// Only a crash leaves one behind: Writes are serialized.
	if err := os.Remove(tmpLink); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("remove stale %s: %w", atomicDataTmp, err)
	}
	if err := os.Symlink(tsName, tmpLink); err != nil {
		return "", fmt.Errorf("symlink %s: %w", atomicDataTmp, err)
	}
	if err := os.Rename(tmpLink, filepath.Join(w.dir, AtomicDataDir)); err != nil {
		if rmErr := os.Remove(tmpLink); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
			w.log.Warn("cannot remove "+atomicDataTmp, zap.Error(rmErr))
		}
		return "", fmt.Errorf("rename %s over %s: %w", atomicDataTmp, AtomicDataDir, err)
	}
	published = true
	return tsName, nil
}

// atomicWriteFile writes one file of the payload under dir, creating
// its directories with mode 0755.
func atomicWriteFile(dir, rel string, f FileProjection) error {
	if parent := filepath.Dir(rel); parent != "." {
		if err := atomicMkdirAll(dir, parent); err != nil {
			return err
		}
	}
	path := filepath.Join(dir, rel)
	mode := os.FileMode(f.Mode) & os.ModePerm
	if err := os.WriteFile(path, f.Data, mode); err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	// The umask applied at creation; set the mode asked for.
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", rel, err)
	}
	if f.FsUser != nil {
		if err := os.Lchown(path, int(*f.FsUser), -1); err != nil {
			return fmt.Errorf("chown %s to user %d: %w", rel, *f.FsUser, err)
		}
	}
	return nil
}

// atomicMkdirAll creates the directories of rel under dir, each with mode
// 0755 whatever the umask.
func atomicMkdirAll(dir, rel string) error {
	path := dir
	for _, e := range strings.Split(rel, string(filepath.Separator)) {
		path = filepath.Join(path, e)
		err := os.Mkdir(path, 0o755)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("mkdir %s: %w", rel, err)
		}
		if err := os.Chmod(path, 0o755); err != nil {
			return fmt.Errorf("chmod %s: %w", rel, err)
		}
	}
	return nil
}

// atomicTopLevelNames returns the first element of each payload path, with the
// owner of one of the files under it (the kubelet gives a visible symlink
// the owner of its file).
func atomicTopLevelNames(payload map[string]FileProjection) map[string]*int64 {
	names := map[string]*int64{}
	for _, p := range slices.Sorted(maps.Keys(payload)) {
		name, _, _ := strings.Cut(p, string(filepath.Separator))
		if _, seen := names[name]; !seen {
			names[name] = payload[p].FsUser
		}
	}
	return names
}

// linkVisible creates the symlink <name> -> ..data/<name> for each
// top-level name of the payload that has no entry yet. An entry of that
// name that is something else (a directory a nested mount needs, say) is
// left alone, as the kubelet leaves it.
func (w *AtomicWriter) linkVisible(payload map[string]FileProjection) error {
	names := atomicTopLevelNames(payload)
	for _, name := range slices.Sorted(maps.Keys(names)) {
		visible := filepath.Join(w.dir, name)
		if _, err := os.Lstat(visible); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("stat %s: %w", name, err)
		}
		if err := os.Symlink(filepath.Join(AtomicDataDir, name), visible); err != nil {
			return fmt.Errorf("symlink %s: %w", name, err)
		}
		if u := names[name]; u != nil {
			if err := os.Lchown(visible, int(*u), -1); err != nil {
				return fmt.Errorf("chown symlink %s to user %d: %w", name, *u, err)
			}
		}
	}
	return nil
}

// removeLeftovers removes the visible symlinks into ..data whose names the
// payload no longer has, ..data_tmp, and every timestamped directory but
// current.
func (w *AtomicWriter) removeLeftovers(payload map[string]FileProjection, current string) error {
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return fmt.Errorf("read directory: %w", err)
	}
	names := atomicTopLevelNames(payload)
	var errs []error
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(w.dir, name)
		switch {
		case name == atomicDataTmp:
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove stale %s: %w", name, err))
			}
		case isAtomicTimestampDir(name):
			if name == current {
				continue
			}
			if err := os.RemoveAll(path); err != nil {
				errs = append(errs, fmt.Errorf("remove old %s: %w", name, err))
			}
		case strings.HasPrefix(name, ".."):
			// ..data, or not ours.
		case e.Type()&fs.ModeSymlink != 0:
			if _, keep := names[name]; keep {
				continue
			}
			target, err := os.Readlink(path)
			if err != nil || target != filepath.Join(AtomicDataDir, name) {
				continue // not a link of ours
			}
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove stale %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// isAtomicTimestampDir tells the names of timestamped directories:
// "..YYYY_MM_DD_HH_MM_SS." and a non-empty suffix without "/".
func isAtomicTimestampDir(name string) bool {
	const n = len(atomicTimestampLayout)
	if len(name) <= n || strings.ContainsRune(name, filepath.Separator) {
		return false
	}
	for i := 0; i < n; i++ {
		c, l := name[i], atomicTimestampLayout[i]
		if l >= '0' && l <= '9' {
			if c < '0' || c > '9' {
				return false
			}
		} else if c != l {
			return false
		}
	}
	return true
}
