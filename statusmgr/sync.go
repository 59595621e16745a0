package statusmgr

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// Sink writes one pod's status somewhere: kubeapi's StatusWriter to an
// apiserver, MemorySink to memory. A Syncer calls it for one pod at a
// time, never twice at once for the same pod. A pod the sink has nowhere
// to write to (it was deleted) is not an error: nil says the entry is
// done with. An error makes the Syncer try again later, with back-off.
type Sink interface {
	WriteStatus(ctx context.Context, e core.PodStatusEntry) error
}

// StatusSource is what a Syncer reads the statuses from; *Cache is one.
type StatusSource interface {
	// List returns every pod's newest status.
	List() []core.PodStatusEntry
	// Changed receives after statuses changed.
	Changed() <-chan struct{}
}

// VersionSource is a StatusSource that can also list its versions alone
// and give one pod's entry; *Cache is one. A Syncer uses it, when its
// source has it, to copy only the statuses it writes: a pass after one
// pod's change copies one status, not every pod's.
type VersionSource interface {
	StatusSource
	// Versions returns every pod's newest version, without its status.
	Versions() []PodVersion
	// Entry returns one pod's newest status; false when it has none.
	Entry(uid types.UID) (core.PodStatusEntry, bool)
}

// PodVersion is a pod's newest status version, as a VersionSource lists
// it.
type PodVersion struct {
	UID types.UID
	// Version and ChangedAt are those of the pod's core.PodStatusEntry.
	Version   uint64
	ChangedAt time.Time
}

// Defaults of SyncerConfig.
const (
	// DefaultReconcilePeriod is how often a Syncer writes every status
	// again, changed or not: the kubelet's status manager's 10 s batch,
	// the safety net for a status the sink lost or someone overwrote.
	DefaultReconcilePeriod = 10 * time.Second
	// DefaultRetryInitial is the first wait before a failed write is
	// tried again; it doubles at each failure up to DefaultRetryMax.
	DefaultRetryInitial = 200 * time.Millisecond
	// DefaultRetryMax caps the wait between attempts.
	DefaultRetryMax = 30 * time.Second
	// DefaultParallelism is how many pods' statuses are written at once.
	DefaultParallelism = 4
)

// SyncerConfig configures a Syncer.
type SyncerConfig struct {
	// Source of the statuses. Required.
	Source StatusSource
	// Sink they are written to. Required.
	Sink Sink
	// ReconcilePeriod: default DefaultReconcilePeriod.
	ReconcilePeriod time.Duration
	// RetryInitial and RetryMax bound the back-off of failed writes:
	// defaults DefaultRetryInitial and DefaultRetryMax.
	RetryInitial, RetryMax time.Duration
	// Parallelism: default DefaultParallelism.
	Parallelism int
	// Registerer gets kubelet_pod_status_sync_duration_seconds; nil
	// registers nothing.
	Registerer prometheus.Registerer
	Clock      clock.WithTicker
	Logger     *zap.Logger
}

// Syncer pushes the statuses of a StatusSource to a Sink, as the kubelet's
// status manager pushes its cache to the apiserver:
//
//   - coalescing: only each pod's newest version is written, and a version
//     already written is not written again, however many changes came
//     between two passes;
//   - batching: a pass writes every pod whose status changed, up to
//     Parallelism at once, one write per pod at a time;
//   - retry: a failed write is tried again after a back-off that doubles
//     from RetryInitial to RetryMax, and at once when a newer version
//     comes; a success resets it;
//   - reconcile: every ReconcilePeriod every status is written again,
//     changed or not, except those waiting out a back-off;
//   - kubelet_pod_status_sync_duration_seconds: the time from the first
//     change a pass saw unwritten until the sink took the status.
type Syncer struct {
	cfg SyncerConfig
	log *zap.Logger

	syncDuration prometheus.Histogram

	mu   sync.Mutex
	pods map[types.UID]*syncState
}

type syncState struct {
	written  uint64    // version the sink took
	since    time.Time // ChangedAt of the oldest version not yet written
	failures int
	failed   uint64 // version of the last failed write
	retryAt  time.Time
}

// NewSyncer returns a Syncer for cfg.
func NewSyncer(cfg SyncerConfig) (*Syncer, error) {
	if cfg.Source == nil {
		return nil, fmt.Errorf("statusmgr: syncer: Source is required: %w", core.ErrInvalid)
	}
	if cfg.Sink == nil {
		return nil, fmt.Errorf("statusmgr: syncer: Sink is required: %w", core.ErrInvalid)
	}
	for name, d := range map[string]time.Duration{"ReconcilePeriod": cfg.ReconcilePeriod, "RetryInitial": cfg.RetryInitial, "RetryMax": cfg.RetryMax} {
		if d < 0 {
			return nil, fmt.Errorf("statusmgr: syncer: %s %s must not be negative: %w", name, d, core.ErrInvalid)
		}
	}
	if cfg.Parallelism < 0 {
		return nil, fmt.Errorf("statusmgr: syncer: Parallelism %d must not be negative: %w", cfg.Parallelism, core.ErrInvalid)
	}
	if cfg.ReconcilePeriod == 0 {
		cfg.ReconcilePeriod = DefaultReconcilePeriod
	}
	if cfg.RetryInitial == 0 {
		cfg.RetryInitial = DefaultRetryInitial
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = max(DefaultRetryMax, cfg.RetryInitial)
	}
	if cfg.RetryMax < cfg.RetryInitial {
		return nil, fmt.Errorf("statusmgr: syncer: RetryMax %s is below RetryInitial %s: %w", cfg.RetryMax, cfg.RetryInitial, core.ErrInvalid)
	}
	if cfg.Parallelism == 0 {
		cfg.Parallelism = DefaultParallelism
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	s := &Syncer{cfg: cfg, log: cfg.Logger, pods: map[types.UID]*syncState{},
		syncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Subsystem: "kubelet", Name: "pod_status_sync_duration_seconds",
			Help:    "Duration in seconds to sync a pod status update. Measures time from detection of a change to pod status until the API is successfully updated for that pod, even if multiple intevening changes to pod status occur.",
			Buckets: []float64{0.010, 0.050, 0.100, 0.500, 1, 5, 10, 20, 30, 45, 60},
		})}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(s.syncDuration); err != nil {
			return nil, fmt.Errorf("statusmgr: syncer: register metrics: %w", err)
		}
	}
	return s, nil
}

// Run writes statuses as they change, every ReconcilePeriod all of them,
// and failed ones again after their back-off, until ctx ends.
func (s *Syncer) Run(ctx context.Context) error {
	reconcile := s.cfg.Clock.NewTicker(s.cfg.ReconcilePeriod)
	defer reconcile.Stop()
	var retry clock.Timer
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	all := false
	for {
		_ = s.Sync(ctx, all)
		all = false
		var retryC <-chan time.Time
		if at, ok := s.nextRetry(); ok {
			d := max(at.Sub(s.cfg.Clock.Now()), 0)
			if retry == nil {
				retry = s.cfg.Clock.NewTimer(d)
			} else {
				retry.Reset(d)
			}
			retryC = retry.C()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.cfg.Source.Changed():
		case <-reconcile.C():
			all = true
		case <-retryC:
		}
		if retry != nil && retryC != nil {
			retry.Stop()
		}
	}
}

// Sync makes one pass: it writes each pod's status whose newest version
// was not written yet and whose back-off is over (all: every pod's,
// written or not, unless in back-off). It returns the writes' errors,
// joined.
func (s *Syncer) Sync(ctx context.Context, all bool) error {
	now := s.cfg.Clock.Now()
	var todo []core.PodStatusEntry
	if vs, ok := s.cfg.Source.(VersionSource); ok && !all {
		for _, uid := range s.plan(vs.Versions(), all, now) {
			// The entry may be newer than the version planned: the
			// newest is what is written, and its version recorded.
			if e, ok := vs.Entry(uid); ok {
				todo = append(todo, e)
			}
		}
	} else {
		entries := s.cfg.Source.List()
		versions := make([]PodVersion, len(entries))
		byUID := make(map[types.UID]core.PodStatusEntry, len(entries))
		for i, e := range entries {
			versions[i] = PodVersion{UID: e.Pod.UID, Version: e.Version, ChangedAt: e.ChangedAt}
			byUID[e.Pod.UID] = e
		}
		for _, uid := range s.plan(versions, all, now) {
			todo = append(todo, byUID[uid])
		}
	}
	var (
		wg   sync.WaitGroup
		sem  = make(chan struct{}, s.cfg.Parallelism)
		errs = make([]error, len(todo))
	)
	for i, e := range todo {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = s.write(ctx, e)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// plan updates the per-pod state for versions (dropping pods no longer
// listed) and returns the pods to write now.
func (s *Syncer) plan(versions []PodVersion, all bool, now time.Time) []types.UID {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[types.UID]bool, len(versions))
	var todo []types.UID
	for _, e := range versions {
		uid := e.UID
		seen[uid] = true
		st := s.pods[uid]
		if st == nil {
			st = &syncState{}
			s.pods[uid] = st
		}
		fresh := e.Version > st.written
		if fresh && st.since.IsZero() {
			st.since = e.ChangedAt
		}
		switch {
		case st.failures > 0 && now.Before(st.retryAt) && e.Version <= st.failed:
			// waiting out a back-off (a newer version goes at once)
		case fresh || all:
			todo = append(todo, uid)
		}
	}
	for uid := range s.pods {
		if !seen[uid] {
			delete(s.pods, uid)
		}
	}
	return todo
}

// write writes one entry and records the outcome.
func (s *Syncer) write(ctx context.Context, e core.PodStatusEntry) error {
	err := s.cfg.Sink.WriteStatus(ctx, e)
	now := s.cfg.Clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.pods[e.Pod.UID]
	if st == nil { // dropped meanwhile
		return err
	}
	if err != nil {
		st.failures++
		st.failed = e.Version
		st.retryAt = now.Add(s.backoff(st.failures))
		if ctx.Err() == nil {
			s.log.Warn("pod status not written; trying again", zap.String("pod", e.Pod.Namespace+"/"+e.Pod.Name),
				zap.Uint64("version", e.Version), zap.Int("failures", st.failures), zap.Time("retryAt", st.retryAt), zap.Error(err))
		}
		return fmt.Errorf("pod %s/%s: %w", e.Pod.Namespace, e.Pod.Name, err)
	}
	if e.Version > st.written {
		if !st.since.IsZero() {
			s.syncDuration.Observe(now.Sub(st.since).Truncate(time.Millisecond).Seconds())
		}
		st.written, st.since = e.Version, time.Time{}
	}
	st.failures, st.retryAt = 0, time.Time{}
	return nil
}

// backoff is the wait after the n-th failure in a row.
func (s *Syncer) backoff(n int) time.Duration {
	d := s.cfg.RetryInitial
	for i := 1; i < n && d < s.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, s.cfg.RetryMax)
}

// nextRetry is the earliest time a failed write is due again.
func (s *Syncer) nextRetry() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var at time.Time
	for _, st := range s.pods {
		if st.failures > 0 && (at.IsZero() || st.retryAt.Before(at)) {
			at = st.retryAt
		}
	}
	return at, !at.IsZero()
}

// Written reports the version of pod uid's status the sink took last, 0
// for none.
func (s *Syncer) Written(uid types.UID) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.pods[uid]; st != nil {
		return st.written
	}
	return 0
}

// MemorySink keeps the statuses written to it: the sink of a standalone
// agent or a test. The zero value is not usable; use NewMemorySink.
type MemorySink struct {
	mu   sync.Mutex
	pods map[types.UID]core.PodStatusEntry
}

// NewMemorySink returns an empty MemorySink.
func NewMemorySink() *MemorySink { return &MemorySink{pods: map[types.UID]core.PodStatusEntry{}} }

// WriteStatus keeps a copy of e, replacing the pod's previous one.
func (m *MemorySink) WriteStatus(_ context.Context, e core.PodStatusEntry) error {
	e.Status = *e.Status.DeepCopy()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pods[e.Pod.UID] = e
	return nil
}

// Get returns a copy of the entry last written for pod uid.
func (m *MemorySink) Get(uid types.UID) (core.PodStatusEntry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.pods[uid]
	e.Status = *e.Status.DeepCopy()
	return e, ok
}

// Delete forgets pod uid.
func (m *MemorySink) Delete(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.pods, uid)
}
