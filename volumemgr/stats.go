package volumemgr

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// DefaultStatsPeriod is how often Stats measures the volumes again, as the
// kubelet's default volumeStatsAggPeriod.
const DefaultStatsPeriod = time.Minute

// VolumeRef names a volume of a pod to measure and says how.
type VolumeRef struct {
	// PodUID, Namespace and Pod name the pod. PodUID is required.
	PodUID    types.UID
	Namespace string
	Pod       string
	// Volume is the volume's name in the pod's spec. Required.
	Volume string
	// Plugin is the volume's plugin (PluginEmptyDir, PluginHostPath, …);
	// it is carried along for the stats' readers, not used to measure.
	Plugin string
	// Path is where the volume is: its directory under
	// Layout.VolumeDir, or the host's path for a hostPath volume (a
	// directory, a file or a socket). Absolute; required.
	Path string
	// OwnFS says that the volume is a filesystem of its own (a tmpfs
	// emptyDir, secret or projected volume, a mounted persistent volume):
	// statfs alone measures it, used bytes being the filesystem's used
	// blocks. Otherwise the volume shares its filesystem with others
	// (an emptyDir on disk, configMap, downwardAPI, hostPath): statfs
	// gives the filesystem's capacity, available bytes and inodes, and a
	// walk of Path (DiskUsage) the bytes and inodes the volume uses.
	OwnFS bool
	// Claim is the name of the PersistentVolumeClaim the volume comes
	// from (in Namespace), or "".
	Claim string
}

// validate reports what makes r unusable, wrapping core.ErrInvalid.
func (r VolumeRef) validate() error {
	var errs []error
	if r.PodUID == "" {
		errs = append(errs, errors.New("PodUID is required"))
	}
	if r.Volume == "" {
		errs = append(errs, errors.New("Volume is required"))
	}
	if !filepath.IsAbs(r.Path) {
		errs = append(errs, fmt.Errorf("Path %q is not absolute", r.Path))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", core.ErrInvalid, errors.Join(errs...))
	}
	return nil
}

// VolumeStats is the usage of one volume at Time. Counts are int64, as
// the kubelet computes them, and never negative; they are bytes or
// inodes.
type VolumeStats struct {
	// Time is when the measurement of the volume began.
	Time time.Time
	// CapacityBytes is the size of the volume's filesystem,
	// AvailableBytes what is left of it for unprivileged users.
	CapacityBytes, AvailableBytes int64
	// UsedBytes is what the volume uses: its filesystem's used blocks for
	// a volume of its own filesystem, its allocated blocks (DiskUsage)
	// otherwise.
	UsedBytes int64
	// Inodes and InodesFree are those of the volume's filesystem.
	Inodes, InodesFree int64
	// InodesUsed is what the volume uses: its filesystem's used inodes
	// for a volume of its own filesystem, its entries (DiskUsage)
	// otherwise.
	InodesUsed int64
}

// VolumeUsage is a volume with its last stats.
type VolumeUsage struct {
	// Ref is the volume as Volumes last returned it with stats measured.
	Ref VolumeRef
	// Stats are its last stats.
	Stats VolumeStats
}

// StatsConfig configures Stats.
type StatsConfig struct {
	// Volumes returns the volumes to measure; it is called once per
	// refresh. A volume it no longer returns is forgotten. Required.
	Volumes func() []VolumeRef
	// Period between refreshes in Run, counted from the end of one to
	// the start of the next. Default DefaultStatsPeriod.
	Period time.Duration
	// Clock times the refreshes and the stats. Default the real clock.
	Clock clock.WithTicker
	// Logger receives the failures to measure a volume. Default none.
	Logger *zap.Logger
	// Registerer receives the kubelet's volume stats metrics
	// (kubelet_volume_stats_*) and
	// kubelet_volume_metric_collection_duration_seconds. Nil: none.
	Registerer prometheus.Registerer
}

// Stats measures the volumes of the pods periodically and keeps their last
// stats for the eviction manager, the summary and the metrics, as the
// kubelet's volume stat calculators do.
//
// The volumes are measured one after the other, at most one refresh at a
// time, so that a volume is never walked twice at once. Until a volume is
// measured it has no stats; when a measurement fails, the volume keeps the
// stats of its last success, with their time, and the failure is logged
// once until it changes.
//
// All methods are safe for concurrent use.
type Stats struct {
	cfg     StatsConfig
	log     *zap.Logger
	metrics *statsMetrics
	measure func(context.Context, VolumeRef) (VolumeStats, error)
	busy    chan struct{} // holds a token while a refresh runs

	mu    sync.RWMutex
	cache map[volumeKey]*volumeEntry
}

// volumeKey identifies a volume.
type volumeKey struct {
	pod    types.UID
	volume string
}

// volumeEntry is what Stats knows of a volume.
type volumeEntry struct {
	usage    VolumeUsage
	measured bool   // usage holds stats
	lastErr  string // the failure of the last measurement, or ""
}

// NewStats returns a Stats for cfg.
func NewStats(cfg StatsConfig) (*Stats, error) {
	var errs []error
	if cfg.Volumes == nil {
		errs = append(errs, errors.New("Volumes is required"))
	}
	if cfg.Period < 0 {
		errs = append(errs, errors.New("Period must not be negative"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("volumemgr: stats: %w: %w", core.ErrInvalid, errors.Join(errs...))
	}
	if cfg.Period == 0 {
		cfg.Period = DefaultStatsPeriod
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	s := &Stats{
		cfg:   cfg,
		log:   cfg.Logger,
		busy:  make(chan struct{}, 1),
		cache: map[volumeKey]*volumeEntry{},
	}
	s.measure = s.measureVolume
	m, err := newStatsMetrics(cfg.Registerer, s)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	return s, nil
}

// Run refreshes the stats now and then every Period until ctx ends, and
// returns ctx's error. Failures to measure a volume are logged by Refresh.
func (s *Stats) Run(ctx context.Context) error {
	for {
		if err := s.Refresh(ctx); err != nil && ctx.Err() == nil {
			s.log.Debug("volume stats refreshed with failures", zap.Error(err))
		}
		t := s.cfg.Clock.NewTimer(s.cfg.Period)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C():
		}
	}
}

// Refresh measures every volume Volumes returns, once, after forgetting
// the volumes it no longer returns. It waits for a refresh under way to
// finish first. It returns the failures joined: a VolumeRef that is
// invalid (wrapping core.ErrInvalid) or listed twice (the first counts), a
// volume that could not be measured, and ctx's error if ctx ended before
// every volume was measured.
func (s *Stats) Refresh(ctx context.Context) error {
	select {
	case s.busy <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.busy }()

	var errs []error
	refs := s.cfg.Volumes()
	want := make(map[volumeKey]bool, len(refs))
	todo := refs[:0:0]
	for _, r := range refs {
		k := volumeKey{r.PodUID, r.Volume}
		if want[k] {
			errs = append(errs, fmt.Errorf("volumemgr: stats: %w: volume %q of pod %s listed twice", core.ErrInvalid, r.Volume, r.PodUID))
			continue
		}
		want[k] = true
		todo = append(todo, r)
	}
	s.mu.Lock()
	for k := range s.cache {
		if !want[k] {
			delete(s.cache, k)
		}
	}
	s.mu.Unlock()

	for _, r := range todo {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		st, err := s.measure(ctx, r)
		if err != nil && ctx.Err() != nil {
			return errors.Join(append(errs, ctx.Err())...)
		}
		s.store(r, st, err)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// store records the outcome of a measurement of r.
func (s *Stats) store(r VolumeRef, st VolumeStats, err error) {
	k := volumeKey{r.PodUID, r.Volume}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.cache[k]
	if e == nil {
		e = &volumeEntry{usage: VolumeUsage{Ref: r}}
		s.cache[k] = e
	}
	if err != nil {
		if e.lastErr != err.Error() {
			s.log.Warn("cannot measure volume", zap.String("pod", r.Namespace+"/"+r.Pod), zap.String("podUID", string(r.PodUID)),
				zap.String("volume", r.Volume), zap.String("path", r.Path), zap.Error(err))
		}
		e.lastErr = err.Error()
		return
	}
	if e.lastErr != "" {
		s.log.Info("volume measured again", zap.String("pod", r.Namespace+"/"+r.Pod), zap.String("podUID", string(r.PodUID)),
			zap.String("volume", r.Volume))
	}
	e.usage = VolumeUsage{Ref: r, Stats: st}
	e.measured, e.lastErr = true, ""
}

// measureVolume measures r: statfs alone for a volume of its own
// filesystem, statfs and DiskUsage otherwise.
func (s *Stats) measureVolume(ctx context.Context, r VolumeRef) (VolumeStats, error) {
	if err := r.validate(); err != nil {
		return VolumeStats{}, fmt.Errorf("volumemgr: stats of volume %q of pod %s: %w", r.Volume, r.PodUID, err)
	}
	start := s.cfg.Clock.Now()
	fs, err := statfs(r.Path)
	if r.OwnFS {
		s.metrics.observe("statfs", s.cfg.Clock.Since(start))
	}
	if err != nil {
		return VolumeStats{}, err
	}
	st := VolumeStats{
		Time:           start,
		CapacityBytes:  fs.capacity,
		AvailableBytes: fs.available,
		UsedBytes:      fs.used,
		Inodes:         fs.inodes,
		InodesFree:     fs.inodesFree,
		InodesUsed:     fs.inodesUsed,
	}
	if r.OwnFS {
		return st, nil
	}
	duStart := s.cfg.Clock.Now()
	u, err := DiskUsage(ctx, r.Path)
	s.metrics.observe("du", s.cfg.Clock.Since(duStart))
	if err != nil {
		return VolumeStats{}, err
	}
	st.UsedBytes, st.InodesUsed = u.Bytes, u.Inodes
	return st, nil
}

// PodVolumeStats returns the last stats of the measured volumes of the pod
// uid, by volume name; nil if there are none.
func (s *Stats) PodVolumeStats(uid types.UID) map[string]VolumeStats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out map[string]VolumeStats
	for k, e := range s.cache {
		if k.pod != uid || !e.measured {
			continue
		}
		if out == nil {
			out = map[string]VolumeStats{}
		}
		out[k.volume] = e.usage.Stats
	}
	return out
}

// All returns every measured volume with its last stats, ordered by pod
// UID and volume name.
func (s *Stats) All() []VolumeUsage {
	s.mu.RLock()
	out := make([]VolumeUsage, 0, len(s.cache))
	for _, e := range s.cache {
		if e.measured {
			out = append(out, e.usage)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b VolumeUsage) int {
		return cmp.Or(cmp.Compare(a.Ref.PodUID, b.Ref.PodUID), cmp.Compare(a.Ref.Volume, b.Ref.Volume))
	})
	return out
}
