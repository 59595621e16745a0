package syncloop

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// PodWorkers is what the loop asks of the pod workers; *Workers
// implements it.
type PodWorkers interface {
	Update(u Update)
	State(uid types.UID) (WorkerState, bool)
	States() map[types.UID]WorkerState
	Forget(uid types.UID) bool
}

// Admitter decides whether a pod new to the node may run there;
// *Admission implements it.
type Admitter interface {
	Admit(a AdmitAttributes) AdmitResult
}

// PodStatusSetter receives the status the loop decides for a pod without
// running it: the Failed status of a rejected pod. The status manager
// implements it.
type PodStatusSetter interface {
	SetPodStatus(pod *v1.Pod, status v1.PodStatus)
}

// RuntimePodLister lists what the runtime runs, to find pods that no
// source wants.
type RuntimePodLister interface {
	core.SandboxLister
	core.ContainerLister
}

// Housekeeper is cleaned up at every housekeeping round; Driver is one.
type Housekeeper interface {
	Housekeep(ctx context.Context) error
}

// HousekeeperFunc is a Housekeeper made of a function.
type HousekeeperFunc func(ctx context.Context) error

// Housekeep calls f.
func (f HousekeeperFunc) Housekeep(ctx context.Context) error { return f(ctx) }

// DefaultHousekeepingInterval is how often the loop looks for pods to
// clean up, as the kubelet's housekeeping period.
const DefaultHousekeepingInterval = 2 * time.Second

// LoopConfig configures a Loop.
type LoopConfig struct {
	// Updates are the pod sources' changes. Required.
	Updates <-chan core.PodUpdate
	// Events are the PLEG's events (pleg.Subscription.Events()); each
	// wakes its pod's worker. Nil: the workers' resync alone.
	Events <-chan core.PodLifecycleEvent
	// Workers run the pods. Required.
	Workers PodWorkers
	// Admission decides whether an added pod may run. Nil: all may.
	Admission Admitter
	// Status receives the Failed status of rejected pods. Nil: they are
	// only logged.
	Status PodStatusSetter
	// Runtime is listed at housekeeping for running pods that no source
	// wants (left by an agent that restarted), which are then killed.
	// Nil: no such cleanup.
	Runtime RuntimePodLister
	// SourcesReady reports whether every pod source has sent its pods
	// once. The loop counts the sources ready (Loop.SourcesReady) only
	// when, besides, nothing sent is left on Updates, so that every pod
	// they sent was handled first; until then nothing is cleaned up for
	// lack of a source. Nil: always.
	SourcesReady func() bool
	// Housekeepers run at every housekeeping round, in order, after the
	// loop's own cleanup.
	Housekeepers []Housekeeper
	// HousekeepingInterval: default DefaultHousekeepingInterval.
	HousekeepingInterval time.Duration
	Clock                clock.WithTicker
	Logger               *zap.Logger
}

// Loop is the kubelet's sync loop: it turns what the pod sources want
// into work for the pod workers. It keeps the pods the sources want, admits
// new pods against the others (a rejected pod never runs and gets a Failed
// status), routes updates, removals and graceful deletions to the pods'
// workers, wakes a pod's worker for each PLEG event, and at housekeeping
// forgets terminated pods no source wants and kills runtime pods that no
// source wants.
type Loop struct {
	cfg LoopConfig
	log *zap.Logger

	mu       sync.Mutex
	pods     map[types.UID]*v1.Pod // what the sources want
	rejected map[types.UID]bool
	killed   map[types.UID]bool // orphans handed to the workers

	synced atomic.Bool // see SourcesReady
}

// SourcesReady reports whether the loop has handled the pods of every
// source: the sources are ready (LoopConfig.SourcesReady) and no update
// they sent was still waiting to be handled. It is what every cleanup of
// things no source wants should wait for (the kubelet's sourcesReady,
// which counts a source once its sync loop handled the source's update):
// a source being ready only means its first update was sent, and during a
// restart the pods of that update are not known until the loop has
// handled it. Once true it stays true.
func (l *Loop) SourcesReady() bool { return l.synced.Load() }

// checkSynced sets SourcesReady when the sources are ready and nothing
// they sent waits on Updates. Only the goroutine that handles the updates
// may call it (Run's): then an empty Updates means all were handled.
func (l *Loop) checkSynced() {
	if !l.synced.Load() && l.cfg.SourcesReady() && len(l.cfg.Updates) == 0 {
		l.synced.Store(true)
		l.log.Info("pod sources ready: every pod they sent was handled")
	}
}

// NewLoop returns a Loop for cfg. Nothing happens until Run.
func NewLoop(cfg LoopConfig) (*Loop, error) {
	var errs []error
	if cfg.Updates == nil {
		errs = append(errs, errors.New("Updates is required"))
	}
	if cfg.Workers == nil {
		errs = append(errs, errors.New("Workers is required"))
	}
	if cfg.HousekeepingInterval < 0 {
		errs = append(errs, fmt.Errorf("HousekeepingInterval %s must be positive", cfg.HousekeepingInterval))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("syncloop: loop: %w: %w", core.ErrInvalid, errors.Join(errs...))
	}
	if cfg.HousekeepingInterval == 0 {
		cfg.HousekeepingInterval = DefaultHousekeepingInterval
	}
	if cfg.SourcesReady == nil {
		cfg.SourcesReady = func() bool { return true }
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &Loop{
		cfg: cfg, log: cfg.Logger,
		pods: map[types.UID]*v1.Pod{}, rejected: map[types.UID]bool{}, killed: map[types.UID]bool{},
	}, nil
}

// Run handles updates, events and housekeeping until ctx ends or Updates
// is closed.
func (l *Loop) Run(ctx context.Context) error {
	t := l.cfg.Clock.NewTicker(l.cfg.HousekeepingInterval)
	defer t.Stop()
	events := l.cfg.Events
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case u, ok := <-l.cfg.Updates:
			if !ok {
				return errors.New("syncloop: loop: the pod updates channel was closed")
			}
			l.Handle(u)
			l.checkSynced()
		case e, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			l.handleEvent(e)
		case <-t.C():
			if err := l.Housekeep(ctx); err != nil && ctx.Err() == nil {
				l.log.Warn("housekeeping failed", zap.Error(err))
			}
		}
	}
}

// Handle applies one update of the pod sources.
func (l *Loop) Handle(u core.PodUpdate) {
	switch u.Op {
	case core.OpAdd:
		pods := slices.Clone(u.Pods)
		// Older pods first, as the kubelet admits them.
		slices.SortStableFunc(pods, func(a, b *v1.Pod) int {
			return a.CreationTimestamp.Compare(b.CreationTimestamp.Time)
		})
		for _, p := range pods {
			l.add(p)
		}
	case core.OpUpdate, core.OpDelete:
		for _, p := range u.Pods {
			l.update(p, UpdateUpdate)
		}
	case core.OpReconcile:
		for _, p := range u.Pods {
			l.reconcile(p)
		}
	case core.OpRemove:
		for _, p := range u.Pods {
			l.remove(p)
		}
	default:
		l.log.Warn("pod update with an unknown operation ignored", zap.Stringer("op", u.Op), zap.String("source", u.Source))
	}
}

func (l *Loop) add(p *v1.Pod) {
	l.mu.Lock()
	if _, known := l.pods[p.UID]; known {
		l.mu.Unlock()
		l.update(p, UpdateUpdate)
		return
	}
	l.pods[p.UID] = p
	var others []*v1.Pod
	if l.cfg.Admission != nil && !isTerminalPhase(p) {
		others = l.activeLocked(p.UID)
	}
	l.mu.Unlock()

	if l.cfg.Admission != nil && !isTerminalPhase(p) {
		if r := l.cfg.Admission.Admit(AdmitAttributes{Pod: p, OtherPods: others}); !r.Admit {
			l.reject(p, r)
			return
		}
	}
	l.log.Info("pod admitted", zap.String("pod", p.Namespace+"/"+p.Name), zap.String("podUID", string(p.UID)),
		zap.String("source", p.Annotations[core.AnnotationConfigSource]))
	l.cfg.Workers.Update(Update{Type: UpdateCreate, Pod: p})
}

func (l *Loop) reject(p *v1.Pod, r AdmitResult) {
	l.mu.Lock()
	l.rejected[p.UID] = true
	l.mu.Unlock()
	l.log.Info("pod rejected", zap.String("pod", p.Namespace+"/"+p.Name), zap.String("podUID", string(p.UID)), zap.String("reason", r.Reason), zap.String("message", r.Message))
	if l.cfg.Status != nil {
		l.cfg.Status.SetPodStatus(p, RejectedStatus(p, r, l.cfg.Clock.Now()))
	}
}

func (l *Loop) update(p *v1.Pod, t UpdateType) {
	l.mu.Lock()
	l.pods[p.UID] = p
	rejected := l.rejected[p.UID]
	l.mu.Unlock()
	if !rejected {
		l.cfg.Workers.Update(Update{Type: t, Pod: p})
	}
}

// reconcile takes a status-only change: it wakes the worker only when the
// status ends the pod (an eviction or a failure reported elsewhere).
func (l *Loop) reconcile(p *v1.Pod) {
	l.mu.Lock()
	l.pods[p.UID] = p
	rejected := l.rejected[p.UID]
	l.mu.Unlock()
	if !rejected && isTerminalPhase(p) {
		l.cfg.Workers.Update(Update{Type: UpdateUpdate, Pod: p})
	}
}

func (l *Loop) remove(p *v1.Pod) {
	l.mu.Lock()
	if cur, ok := l.pods[p.UID]; ok {
		p = cur
	}
	delete(l.pods, p.UID)
	rejected := l.rejected[p.UID]
	delete(l.rejected, p.UID)
	l.mu.Unlock()
	if !rejected {
		l.cfg.Workers.Update(Update{Type: UpdateKill, Pod: p})
	}
}

func (l *Loop) handleEvent(e core.PodLifecycleEvent) {
	if e.Type == core.ContainerRemoved {
		return // nothing to do about a container already gone
	}
	l.SyncPod(e.PodUID)
}

// SyncPod wakes the worker of a pod the sources want, to sync it now (a
// probe result changed, say). Unknown and rejected pods are ignored.
func (l *Loop) SyncPod(uid types.UID) {
	l.mu.Lock()
	p, ok := l.pods[uid]
	ok = ok && !l.rejected[uid]
	l.mu.Unlock()
	if ok {
		l.cfg.Workers.Update(Update{Type: UpdateSync, Pod: p})
	}
}

// activeLocked returns the pods that count against the node's resources:
// admitted, not in a terminal phase, and whose worker has not terminated,
// except skip.
func (l *Loop) activeLocked(skip types.UID) []*v1.Pod {
	states := l.cfg.Workers.States()
	var out []*v1.Pod
	for uid, p := range l.pods {
		if uid == skip || l.rejected[uid] || isTerminalPhase(p) || states[uid] == Terminated {
			continue
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *v1.Pod) int { return cmp.Compare(a.UID, b.UID) })
	return out
}

// Pods returns the pods the sources want, rejected ones included.
func (l *Loop) Pods() []*v1.Pod {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*v1.Pod, 0, len(l.pods))
	for _, p := range l.pods {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *v1.Pod) int { return cmp.Compare(a.UID, b.UID) })
	return out
}

// ActivePods returns the admitted pods that have not terminated: what
// admission counts and what the node runs or is about to.
func (l *Loop) ActivePods() []*v1.Pod {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.activeLocked("")
}

// Pod returns the pod of uid that the sources want.
func (l *Loop) Pod(uid types.UID) (*v1.Pod, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.pods[uid]
	return p, ok
}

// IsPodDeleted reports whether no source wants the pod any more (or
// never did).
func (l *Loop) IsPodDeleted(uid types.UID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.pods[uid]
	return !ok
}

// IsPodTerminated reports whether nothing of the pod runs nor will: it
// was rejected, or its worker terminated.
func (l *Loop) IsPodTerminated(uid types.UID) bool {
	l.mu.Lock()
	rejected := l.rejected[uid]
	l.mu.Unlock()
	if rejected {
		return true
	}
	s, ok := l.cfg.Workers.State(uid)
	return ok && s == Terminated
}

// Housekeep runs one round of cleanup: it forgets the terminated workers
// of pods no source wants, and, once every source is ready
// (SourcesReady), kills the runtime's pods that no source wants and no
// worker handles. Call it from the goroutine that handles the updates, as
// Run does.
func (l *Loop) Housekeep(ctx context.Context) error {
	l.checkSynced()
	states := l.cfg.Workers.States()
	l.mu.Lock()
	for uid, s := range states {
		if _, wanted := l.pods[uid]; !wanted && s == Terminated {
			l.cfg.Workers.Forget(uid)
			delete(l.killed, uid)
		}
	}
	l.mu.Unlock()
	var errs []error
	if err := l.killOrphans(ctx); err != nil {
		errs = append(errs, err)
	}
	for _, h := range l.cfg.Housekeepers {
		if err := h.Housekeep(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killOrphans kills, once every source is ready, the runtime's pods that
// no source wants and no worker handles.
func (l *Loop) killOrphans(ctx context.Context) error {
	if l.cfg.Runtime == nil || !l.synced.Load() {
		return nil
	}
	sbs, err := l.cfg.Runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		return fmt.Errorf("list sandboxes: %w", err)
	}
	cs, err := l.cfg.Runtime.ListContainers(ctx, nil)
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	states := l.cfg.Workers.States()
	l.mu.Lock()
	wanted := func(uid types.UID) bool {
		_, ok := l.pods[uid]
		_, handled := states[uid]
		return ok || handled || l.killed[uid]
	}
	orphans := OrphanPods(sbs, cs, wanted)
	for _, p := range orphans {
		l.killed[p.UID] = true
	}
	l.mu.Unlock()
	for _, p := range orphans {
		l.log.Info("killing a pod no source wants", zap.String("pod", p.Namespace+"/"+p.Name), zap.String("podUID", string(p.UID)))
		// As the kubelet kills what only the runtime knows: within 1 s.
		one := int64(1)
		l.cfg.Workers.Update(Update{Type: UpdateKill, Pod: p, KillGracePeriod: &one})
	}
	return nil
}

// ShouldPodContentBeRemoved implements GCPodState: no source wants the
// pod and no worker runs it (none has, or its worker terminated).
func (l *Loop) ShouldPodContentBeRemoved(uid types.UID) bool {
	l.mu.Lock()
	_, wanted := l.pods[uid]
	l.mu.Unlock()
	if wanted {
		return false
	}
	s, known := l.cfg.Workers.State(uid)
	return !known || s == Terminated
}

// ShouldPodRuntimeBeRemoved implements GCPodState: nothing of the pod runs
// or will: it was rejected, its worker terminated, or no source wants it
// and no worker runs it.
func (l *Loop) ShouldPodRuntimeBeRemoved(uid types.UID) bool {
	l.mu.Lock()
	_, wanted := l.pods[uid]
	rejected := l.rejected[uid]
	l.mu.Unlock()
	if rejected {
		return true
	}
	s, known := l.cfg.Workers.State(uid)
	if known {
		return s == Terminated
	}
	return !wanted
}

var _ GCPodState = (*Loop)(nil)
