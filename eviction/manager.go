package eviction

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// Observer measures the node: a StatsProvider, or anything that fills
// Observations.
type Observer interface {
	Observe(ctx context.Context) (Observations, error)
}

// PodEvictor carries out an eviction: it kills the pod with the
// eviction's grace period (through the sync loop's pod worker) and makes
// its status Failed with the eviction's reason, message and condition. It
// returns once the kill is under way.
type PodEvictor interface {
	EvictPod(ctx context.Context, e Eviction) error
}

// PodCleanup is an optional capability of a PodEvictor: whether an
// evicted pod is gone (its containers stopped and its resources
// released). With it the Manager waits, as the kubelet, for the pods it
// evicted to be cleaned up before the next round, so it does not evict a
// second pod for the resources the first still holds.
type PodCleanup interface {
	PodCleanedUp(uid types.UID) bool
}

// ContainerGC and ImageGC free node resources without evicting a pod
// (Starvation.NodeReclaim).
type ContainerGC interface {
	DeleteAllUnusedContainers(ctx context.Context) error
}

// ImageGC deletes images no container uses.
type ImageGC interface {
	DeleteUnusedImages(ctx context.Context) error
}

// Recorder records Kubernetes events (kubeapi's recorder has this
// method).
type Recorder interface {
	Eventf(object runtime.Object, eventtype, reason, messageFmt string, args ...any)
}

// AnnotatedRecorder is an optional capability of a Recorder: events with
// annotations, which an eviction's event carries (the offending
// containers and their usage).
type AnnotatedRecorder interface {
	AnnotatedEventf(object runtime.Object, annotations map[string]string, eventtype, reason, messageFmt string, args ...any)
}

// Defaults of ManagerConfig, the kubelet's.
const (
	// DefaultMonitoringInterval is how often the node is measured and a
	// round decided (the kubelet's evictionMonitoringPeriod).
	DefaultMonitoringInterval = 10 * time.Second
	// DefaultPodCleanupTimeout bounds the wait for evicted pods to be
	// cleaned up.
	DefaultPodCleanupTimeout = 30 * time.Second
	// PodCleanupPollPeriod is how often the cleanup is checked.
	PodCleanupPollPeriod = time.Second
)

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// Policy holds the thresholds. Required.
	Policy *Policy
	// Observer measures the node. Required.
	Observer Observer
	// Evictor evicts pods. Nil: the Manager decides and reports but
	// evicts nothing (a node-wide dry run).
	Evictor PodEvictor
	// Containers and Images free resources before a pod is evicted; nil
	// skips that reclaim.
	Containers ContainerGC
	Images     ImageGC
	// Recorder records the node's and the evicted pods' events; Node is
	// the object the node's events are about. Nil Recorder: no events.
	Recorder Recorder
	Node     *v1.ObjectReference
	// Wake makes the Manager decide a round at once, besides every
	// MonitoringInterval: a memory threshold notifier's channel, so that
	// crossing a hard memory threshold is acted on within a second instead
	// of at the next interval.
	Wake <-chan struct{}
	// Notifiers watch memory thresholds between rounds: one for
	// SignalMemoryAvailable on the root cgroup, one for
	// SignalAllocatableMemoryAvailable on kubepods
	// (StatsProvider.AllocatableCgroup). The Manager runs them, sets their
	// thresholds from the policy's hard threshold of their signal after
	// each measurement (Notifier.UpdateThreshold), and decides a round at
	// once when one fires: a crossed hard memory threshold is acted on
	// within a second instead of at the next interval.
	Notifiers map[Signal]*Notifier
	// MonitoringInterval: default DefaultMonitoringInterval.
	MonitoringInterval time.Duration
	// PodCleanupTimeout: default DefaultPodCleanupTimeout.
	PodCleanupTimeout time.Duration
	// Registerer receives kubelet_evictions{eviction_signal} and
	// kubelet_eviction_stats_age_seconds{eviction_signal}. Nil: none.
	Registerer prometheus.Registerer
	Clock      clock.WithTicker
	Logger     *zap.Logger
}

// Manager is the eviction driver: every MonitoringInterval (or at once
// when woken) it measures the node (Observer), decides a round (Decide)
// and carries the Decision out as the kubelet's eviction manager: node
// conditions, local storage evictions, the node's event, node-level
// reclaim, then at most one pod evicted, and a wait for its cleanup. Each
// Decision is logged, counted and kept (Last); Conditions and an Admitter
// built on it serve node status and admission; DryRun answers "what would
// you evict now?" without acting.
type Manager struct {
	cfg ManagerConfig
	log *zap.Logger

	evictions *prometheus.CounterVec
	statsAge  *prometheus.HistogramVec

	mu    sync.Mutex
	state State
	last  *Decision
}

// NewManager returns a Manager for cfg.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Policy == nil || cfg.Observer == nil {
		return nil, fmt.Errorf("eviction: manager: Policy and Observer are required: %w", core.ErrInvalid)
	}
	if cfg.MonitoringInterval < 0 || cfg.PodCleanupTimeout < 0 {
		return nil, fmt.Errorf("eviction: manager: MonitoringInterval and PodCleanupTimeout must not be negative: %w", core.ErrInvalid)
	}
	if cfg.MonitoringInterval == 0 {
		cfg.MonitoringInterval = DefaultMonitoringInterval
	}
	if cfg.PodCleanupTimeout == 0 {
		cfg.PodCleanupTimeout = DefaultPodCleanupTimeout
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	m := &Manager{cfg: cfg, log: cfg.Logger,
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{Subsystem: "kubelet", Name: "evictions",
			Help: "Cumulative number of pod evictions by eviction signal"}, []string{"eviction_signal"}),
		statsAge: prometheus.NewHistogramVec(prometheus.HistogramOpts{Subsystem: "kubelet", Name: "eviction_stats_age_seconds",
			Help:    "Time between when stats are collected, and when pod is evicted based on those stats by eviction signal",
			Buckets: prometheus.DefBuckets}, []string{"eviction_signal"}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{m.evictions, m.statsAge} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("eviction: manager: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Run decides and acts every MonitoringInterval, and at once whenever
// Wake receives, until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	t := m.cfg.Clock.NewTicker(m.cfg.MonitoringInterval)
	defer t.Stop()
	fired := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for sig, n := range m.cfg.Notifiers {
		wg.Go(func() {
			if err := n.Run(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("memory threshold notifier stopped; the monitoring interval alone applies", zap.String("signal", string(sig)), zap.Error(err))
			}
		})
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-n.C():
					select {
					case fired <- struct{}{}:
					default:
					}
				}
			}
		})
	}
	for {
		if _, evicted, err := m.Synchronize(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("eviction round incomplete", zap.Error(err))
		} else if len(evicted) > 0 {
			m.waitForCleanup(ctx, evicted)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C():
		case <-m.cfg.Wake:
		case <-fired:
			m.log.Info("memory threshold crossed: deciding at once")
		}
	}
}

// updateNotifiers sets each notifier's threshold from the policy's hard
// threshold of its signal and the cgroup's stats just measured.
func (m *Manager) updateNotifiers(obs Observations) {
	for sig, n := range m.cfg.Notifiers {
		stats := obs.Memory
		if sig == SignalAllocatableMemoryAvailable {
			stats = obs.AllocatableMemory
		}
		if stats.Time.IsZero() {
			continue
		}
		for _, t := range m.cfg.Policy.Thresholds() {
			if t.Signal != sig || !t.Hard() {
				continue
			}
			if _, err := n.UpdateThreshold(stats, t.Value); err != nil {
				m.log.Debug("notifier threshold not updated", zap.String("signal", string(sig)), zap.Error(err))
			}
		}
	}
}

// Synchronize runs one round: measure, decide, act. It returns the
// Decision and the pods it evicted; errors of measuring or acting are
// joined (a partial measurement is still decided on).
func (m *Manager) Synchronize(ctx context.Context) (Decision, []*v1.Pod, error) {
	obs, obsErr := m.cfg.Observer.Observe(ctx)
	m.updateNotifiers(obs)
	now := m.cfg.Clock.Now()
	m.mu.Lock()
	d := Decide(m.state, now, obs, m.cfg.Policy)
	m.state, m.last = d.State, &d
	m.mu.Unlock()
	errs := []error{obsErr}
	if d.Starved != nil || len(d.LocalStorage) > 0 {
		m.log.Info("eviction round", zap.Stringer("decision", d))
	} else {
		m.log.Debug("eviction round", zap.Stringer("decision", d))
	}
	var evicted []*v1.Pod
	if len(d.LocalStorage) > 0 {
		for _, e := range d.LocalStorage {
			if acted, err := m.evict(ctx, e, time.Time{}); err != nil {
				errs = append(errs, err)
			} else if acted {
				evicted = append(evicted, e.Pod)
			}
		}
		return d, evicted, errors.Join(errs...)
	}
	s := d.Starved
	if s == nil {
		return d, nil, errors.Join(errs...)
	}
	if m.cfg.Recorder != nil && m.cfg.Node != nil && s.Event.Reason != "" {
		m.cfg.Recorder.Eventf(m.cfg.Node, v1.EventTypeWarning, s.Event.Reason, "%s", s.Event.Message)
	}
	if len(s.NodeReclaim) > 0 {
		reclaimed := false
		for _, a := range s.NodeReclaim {
			var err error
			switch {
			case a == ReclaimContainers && m.cfg.Containers != nil:
				err = m.cfg.Containers.DeleteAllUnusedContainers(ctx)
			case a == ReclaimImages && m.cfg.Images != nil:
				err = m.cfg.Images.DeleteUnusedImages(ctx)
			default:
				continue
			}
			reclaimed = true
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", a, err))
			}
		}
		if reclaimed {
			again, err := m.cfg.Observer.Observe(ctx)
			if err == nil && m.cfg.Policy.Relieved(again) {
				m.log.Info("node-level reclaim relieved the pressure", zap.String("signal", string(s.Threshold.Signal)))
				return d, nil, errors.Join(errs...)
			}
		}
	}
	if s.Victim == nil {
		m.log.Warn("under pressure, but no pod can be evicted", zap.String("signal", string(s.Threshold.Signal)))
		return d, nil, errors.Join(errs...)
	}
	if acted, err := m.evict(ctx, *s.Victim, s.Observed.Time); err != nil {
		errs = append(errs, err)
	} else if acted {
		evicted = append(evicted, s.Victim.Pod)
	}
	return d, evicted, errors.Join(errs...)
}

// evict carries out one eviction (statsTime: when the signal acted on was
// measured, for kubelet_eviction_stats_age_seconds); false without an
// Evictor.
func (m *Manager) evict(ctx context.Context, e Eviction, statsTime time.Time) (bool, error) {
	if m.cfg.Evictor == nil {
		m.log.Info("would evict (no evictor: dry run)", zap.Stringer("eviction", e))
		return false, nil
	}
	m.log.Info("evicting pod", zap.Stringer("eviction", e))
	if m.cfg.Recorder != nil {
		if ar, ok := m.cfg.Recorder.(AnnotatedRecorder); ok && len(e.Annotations) > 0 {
			ar.AnnotatedEventf(e.Pod, e.Annotations, v1.EventTypeWarning, e.Reason, "%s", e.Message)
		} else {
			m.cfg.Recorder.Eventf(e.Pod, v1.EventTypeWarning, e.Reason, "%s", e.Message)
		}
	}
	if err := m.cfg.Evictor.EvictPod(ctx, e); err != nil {
		return false, fmt.Errorf("evict pod %s/%s: %w", e.Pod.Namespace, e.Pod.Name, err)
	}
	m.evictions.WithLabelValues(string(e.Signal)).Inc()
	if !statsTime.IsZero() {
		m.statsAge.WithLabelValues(string(e.Signal)).Observe(m.cfg.Clock.Since(statsTime).Seconds())
	}
	return true, nil
}

// waitForCleanup waits, up to PodCleanupTimeout, for the evicted pods to
// be cleaned up (when the Evictor can tell).
func (m *Manager) waitForCleanup(ctx context.Context, pods []*v1.Pod) {
	pc, ok := m.cfg.Evictor.(PodCleanup)
	if !ok {
		return
	}
	deadline := m.cfg.Clock.Now().Add(m.cfg.PodCleanupTimeout)
	t := m.cfg.Clock.NewTicker(PodCleanupPollPeriod)
	defer t.Stop()
	for {
		done := true
		for _, p := range pods {
			done = done && pc.PodCleanedUp(p.UID)
		}
		if done {
			return
		}
		if !m.cfg.Clock.Now().Before(deadline) {
			m.log.Warn("evicted pods not cleaned up in time", zap.Duration("timeout", m.cfg.PodCleanupTimeout))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

// DryRun measures the node and decides a round from the current state
// without acting on it or keeping its state: what the Manager would do
// now.
func (m *Manager) DryRun(ctx context.Context) (Decision, error) {
	obs, err := m.cfg.Observer.Observe(ctx)
	m.mu.Lock()
	state := m.state
	m.mu.Unlock()
	return Decide(state, m.cfg.Clock.Now(), obs, m.cfg.Policy), err
}

// Last returns the latest round's Decision; false before the first.
func (m *Manager) Last() (Decision, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == nil {
		return Decision{}, false
	}
	return *m.last, true
}

// Conditions are the node's pressure conditions as the latest round left
// them (MemoryPressure, DiskPressure, PIDPressure): for node status and
// admission (AdmitterConfig.Conditions).
func (m *Manager) Conditions() []v1.NodeConditionType {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == nil {
		return nil
	}
	return append([]v1.NodeConditionType(nil), m.last.Conditions...)
}

// IsUnderMemoryPressure, IsUnderDiskPressure and IsUnderPIDPressure say
// whether the latest round left the node condition on, as the kubelet's
// eviction manager reports it for node status.
func (m *Manager) IsUnderMemoryPressure() bool { return m.hasCondition(v1.NodeMemoryPressure) }

// IsUnderDiskPressure: see IsUnderMemoryPressure.
func (m *Manager) IsUnderDiskPressure() bool { return m.hasCondition(v1.NodeDiskPressure) }

// IsUnderPIDPressure: see IsUnderMemoryPressure.
func (m *Manager) IsUnderPIDPressure() bool { return m.hasCondition(v1.NodePIDPressure) }

func (m *Manager) hasCondition(c v1.NodeConditionType) bool {
	for _, have := range m.Conditions() {
		if have == c {
			return true
		}
	}
	return false
}
