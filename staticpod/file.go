package staticpod

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// Defaults of FileConfig.
const (
	// DefaultFilePeriod is how often the manifests are read again even
	// without a change notification, as the kubelet's FileCheckFrequency.
	DefaultFilePeriod = 20 * time.Second
	// DefaultWatchRetryMin and DefaultWatchRetryMax bound the back-off
	// between attempts to set up the watch.
	DefaultWatchRetryMin = time.Second
	DefaultWatchRetryMax = 20 * time.Second
)

// FileConfig configures a FileSource.
type FileConfig struct {
	// Path is a directory of manifests (not recursive: subdirectories and
	// files whose name starts with a dot are ignored) or one manifest
	// file. Required.
	Path string
	// NodeName of the node. Required.
	NodeName string
	// Period between reads without a notification. Default
	// DefaultFilePeriod.
	Period time.Duration
	// WatchRetryMin and WatchRetryMax bound the back-off of the watch's
	// set-up. Defaults DefaultWatchRetryMin, DefaultWatchRetryMax.
	WatchRetryMin, WatchRetryMax time.Duration
	Clock                        clock.WithTicker
	Logger                       *zap.Logger
	// Registerer receives staticpod_manifest_errors_total. Nil: none.
	Registerer prometheus.Registerer
}

// FileSource delivers the pods of the manifests in a directory (or one
// file): at start, at every change the filesystem notifies (fsnotify), and
// every Period as a safety net.
//
// A manifest that cannot be read or is invalid is reported once (logged,
// counted) until it changes, and never stops the others. Where the kubelet
// drops the pod of a manifest that became invalid, a FileSource keeps the
// pods of that file's last valid content until the file is fixed or
// removed: an edit saved half-way does not stop a running pod. An empty
// file is taken as one being written: it keeps its previous pods and is
// not reported. A pod whose
// name another file already uses (files read in name order) is refused,
// naming both files.
type FileSource struct {
	cfg    FileConfig
	log    *zap.Logger
	errs   *manifestErrors
	cache  map[string]fileEntry
	single bool
}

// fileEntry is what a manifest file gave at its last read.
type fileEntry struct {
	data []byte
	pods []*v1.Pod // of the last valid content; nil if none yet
}

// NewFileSource returns a FileSource for cfg.
func NewFileSource(cfg FileConfig) (*FileSource, error) {
	var errs []error
	if cfg.Path == "" {
		errs = append(errs, errors.New("Path is required"))
	}
	if cfg.NodeName == "" {
		errs = append(errs, errors.New("NodeName is required"))
	}
	if cfg.Period < 0 || cfg.WatchRetryMin < 0 || cfg.WatchRetryMax < 0 {
		errs = append(errs, errors.New("Period, WatchRetryMin and WatchRetryMax must not be negative"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("staticpod: file source: %w: %w", core.ErrInvalid, errors.Join(errs...))
	}
	if cfg.Period == 0 {
		cfg.Period = DefaultFilePeriod
	}
	if cfg.WatchRetryMin == 0 {
		cfg.WatchRetryMin = DefaultWatchRetryMin
	}
	if cfg.WatchRetryMax == 0 {
		cfg.WatchRetryMax = DefaultWatchRetryMax
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	me, err := newManifestErrors(core.SourceFile, cfg.Registerer, cfg.Logger)
	if err != nil {
		return nil, err
	}
	return &FileSource{cfg: cfg, log: cfg.Logger, errs: me, cache: map[string]fileEntry{}}, nil
}

// Run reads the manifests and hands their pods to sink under
// core.SourceFile, then again at each change and every Period, until ctx
// ends.
func (s *FileSource) Run(ctx context.Context, sink Sink) error {
	tick := s.cfg.Clock.NewTicker(s.cfg.Period)
	defer tick.Stop()
	var w *fsnotify.Watcher
	defer func() {
		if w != nil {
			w.Close()
		}
	}()
	retry := s.cfg.WatchRetryMin
	var retryAt <-chan time.Time
	watch := func() {
		var err error
		w, err = s.watch()
		if err != nil {
			s.log.Warn("cannot watch the manifests; reading them every period until it works", zap.String("path", s.cfg.Path),
				zap.Duration("retryIn", retry), zap.Error(err))
			t := s.cfg.Clock.NewTimer(retry)
			retryAt = t.C()
			retry = min(2*retry, s.cfg.WatchRetryMax)
			return
		}
		retry, retryAt = s.cfg.WatchRetryMin, nil
	}
	// Watch first, then read: a change made between the two is read
	// twice rather than missed.
	watch()
	if err := s.sync(ctx, sink); err != nil {
		return err
	}
	for {
		var events <-chan fsnotify.Event
		var werrs <-chan error
		if w != nil {
			events, werrs = w.Events, w.Errors
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C():
		case <-retryAt:
			watch()
			if w == nil {
				continue
			}
		case ev, ok := <-events:
			if !ok {
				w = nil
				watch()
				continue
			}
			if !s.concerns(ev) {
				continue
			}
			// Take every event already queued with this one.
			for more := true; more; {
				select {
				case <-w.Events:
				default:
					more = false
				}
			}
		case err, ok := <-werrs:
			if ok {
				s.log.Warn("manifest watch failed; setting it up again", zap.Error(err))
			}
			w.Close()
			w = nil
			watch()
		}
		if err := s.sync(ctx, sink); err != nil {
			return err
		}
	}
}

// watch watches the directory, or a single file's directory.
func (s *FileSource) watch() (*fsnotify.Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	dir := s.cfg.Path
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		dir = filepath.Dir(dir)
	}
	if err := w.Add(dir); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// concerns reports whether a filesystem event may change the pods.
func (s *FileSource) concerns(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	if s.single {
		return filepath.Clean(ev.Name) == filepath.Clean(s.cfg.Path)
	}
	return true
}

// sync reads the manifests and hands the pods to sink. Only ctx's end is
// an error; problems with manifests are reported and skipped.
func (s *FileSource) sync(ctx context.Context, sink Sink) error {
	pods := s.read()
	if err := sink.Set(ctx, core.SourceFile, pods); err != nil && ctx.Err() != nil {
		return ctx.Err()
	} else if err != nil {
		s.log.Warn("pods refused", zap.Error(err))
	}
	return nil
}

// read reads every manifest and returns their pods.
func (s *FileSource) read() []*v1.Pod {
	var files []string
	fi, err := os.Stat(s.cfg.Path)
	switch {
	case err != nil:
		s.errs.report(s.cfg.Path, fmt.Errorf("manifest path: %w", err))
	case !fi.IsDir():
		s.single = true
		files = []string{s.cfg.Path}
		s.errs.clear(s.cfg.Path)
	default:
		s.single = false
		s.errs.clear(s.cfg.Path)
		entries, err := os.ReadDir(s.cfg.Path)
		if err != nil {
			s.errs.report(s.cfg.Path, fmt.Errorf("manifest directory: %w", err))
		}
		for _, e := range entries {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			files = append(files, filepath.Join(s.cfg.Path, e.Name()))
		}
	}
	slices.Sort(files)
	present := map[string]bool{s.cfg.Path: true}
	owner := map[string]string{} // pod namespace/name → file
	var out []*v1.Pod
	for _, f := range files {
		present[f] = true
		pods := s.readFile(f)
		for _, p := range pods {
			full := p.Namespace + "/" + p.Name
			if other, taken := owner[full]; taken {
				s.errs.report(f, fmt.Errorf("%s: %w: pod %s is already defined in %s", f, ErrInvalidManifest, full, other))
				pods = nil
				break
			}
		}
		for _, p := range pods {
			owner[p.Namespace+"/"+p.Name] = f
			out = append(out, p)
		}
	}
	for f := range s.cache {
		if !present[f] {
			delete(s.cache, f)
		}
	}
	s.errs.keepOnly(present)
	return out
}

// readFile returns the pods of one manifest: of its current content when
// valid, else of its last valid content.
func (s *FileSource) readFile(path string) []*v1.Pod {
	prev := s.cache[path]
	data, err := readCapped(path)
	if err != nil {
		s.errs.report(path, err)
		return prev.pods
	}
	if prev.data != nil && bytes.Equal(prev.data, data) {
		return prev.pods
	}
	if len(data) == 0 {
		// Most likely caught between truncation and write: wait for the
		// content rather than report it.
		s.log.Debug("empty manifest skipped", zap.String("manifest", path))
		return prev.pods
	}
	pods, err := Decode(data, DecodeOptions{NodeName: s.cfg.NodeName, Source: core.SourceFile, Location: path})
	if err != nil {
		s.errs.report(path, err)
		if prev.pods != nil {
			s.log.Warn("keeping the pods of the manifest's last valid content", zap.String("manifest", path))
		}
		s.cache[path] = fileEntry{data: data, pods: prev.pods}
		return prev.pods
	}
	s.errs.clear(path)
	s.cache[path] = fileEntry{data: data, pods: pods}
	return pods
}

// readCapped reads a file of at most MaxManifestSize bytes.
func readCapped(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxManifestSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", path, ErrInvalidManifest, MaxManifestSize)
	}
	return data, nil
}
