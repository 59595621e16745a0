package syncloop

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// UpdateType says why a pod's worker is asked to act.
type UpdateType int

const (
	// UpdateCreate: a source added the pod.
	UpdateCreate UpdateType = iota
	// UpdateUpdate: a source changed the pod.
	UpdateUpdate
	// UpdateSync: nothing changed in the spec; sync again (PLEG event,
	// probe result, periodic resync).
	UpdateSync
	// UpdateKill: terminate the pod (deleted, evicted, rejected).
	UpdateKill
)

func (t UpdateType) String() string {
	switch t {
	case UpdateCreate:
		return "create"
	case UpdateUpdate:
		return "update"
	case UpdateSync:
		return "sync"
	case UpdateKill:
		return "kill"
	}
	return fmt.Sprintf("UpdateType(%d)", int(t))
}

// Update asks a pod's worker to act.
type Update struct {
	Type UpdateType
	// Pod is the newest spec. Required.
	Pod *v1.Pod
	// KillGracePeriod, for UpdateKill, shortens the grace period (eviction
	// asks for this). A grace period only ever shrinks.
	KillGracePeriod *int64
}

// WorkerState is where a pod's worker is in the pod's life on the node.
type WorkerState int

const (
	// Syncing: the pod should run; its worker drives the runtime toward the spec.
	Syncing WorkerState = iota
	// Terminating: the pod is being stopped; nothing new may start.
	Terminating
	// Terminated: nothing of the pod runs any more; its resources may go.
	Terminated
)

func (s WorkerState) String() string {
	return [...]string{"syncing", "terminating", "terminated"}[s]
}

// Syncer does a worker's work. The sync loop's runtime driver implements
// it; tests plug in their own. Each method is called from the pod's worker
// goroutine only, never twice at once for one pod.
type Syncer interface {
	// SyncPod moves the runtime one step toward the pod's spec. It
	// returns terminal when the pod is done (its restart policy starts
	// nothing more), which moves the worker to terminating.
	SyncPod(ctx context.Context, pod *v1.Pod, status *core.PodStatus) (terminal bool, err error)
	// SyncTerminatingPod stops every container of the pod within
	// gracePeriod seconds. The worker calls it again, with the same or a
	// shorter grace period, until it returns nil; its ctx is cancelled when
	// a shorter grace period arrives.
	SyncTerminatingPod(ctx context.Context, pod *v1.Pod, status *core.PodStatus, gracePeriod int64) error
	// SyncTerminatedPod releases what the pod held once nothing of it runs.
	SyncTerminatedPod(ctx context.Context, pod *v1.Pod, status *core.PodStatus) error
}

// StatusSource gives a worker the runtime status of its pod observed after
// a given time; pleg.Cache implements it. GetNewerThan blocks until it has
// such a status or ctx ends; when it already has one it returns it even if
// ctx is done.
type StatusSource interface {
	GetNewerThan(ctx context.Context, uid types.UID, minTime time.Time) (*core.PodStatus, error)
}

// StatusRefresher is optionally implemented by a StatusSource that can
// inspect one pod on demand (pleg.PLEG's RelistPod). The worker then asks
// for a fresh status of its pod after each sync instead of waiting for
// the next relist, which a runtime's event stream may never bring.
type StatusRefresher interface {
	RelistPod(ctx context.Context, uid types.UID) error
}

// Defaults of WorkersConfig.
const (
	DefaultResyncInterval = time.Minute
	DefaultBackOffPeriod  = 10 * time.Second
)

// WorkersConfig configures the pod workers.
type WorkersConfig struct {
	Syncer Syncer       // required
	Status StatusSource // required
	Clock  clock.WithTicker
	Logger *zap.Logger
	// ResyncInterval is how long a healthy pod waits for its next sync
	// when nothing happens, with up to 50 % jitter. Default 1 min.
	ResyncInterval time.Duration
	// BackOffPeriod is how long a pod whose sync failed waits to retry,
	// with up to 50 % jitter. Default 10 s.
	BackOffPeriod time.Duration
	// Jitter returns a float in [0, 1); default math/rand. Tests fix it.
	Jitter func() float64
	// Registerer receives the workers' metrics: kubelet_pod_worker_duration_seconds{operation_type},
	// kubelet_pod_start_duration_seconds (observed once per pod, when a
	// sync first sees one of its regular containers running) and
	// kubelet_pod_worker_start_duration_seconds. Nil: none.
	Registerer prometheus.Registerer
}

// Workers runs one worker per pod: updates to a pod are coalesced (the
// newest spec wins, a kill is never lost), its syncs never overlap, and
// its state moves one way, syncing → terminating → terminated.
type Workers struct {
	cfg     WorkersConfig
	log     *zap.Logger
	metrics *workerMetrics

	mu      sync.Mutex
	ctx     context.Context // Run's; nil until Run
	pods    map[types.UID]*podWorker
	running sync.WaitGroup
}

// podWorker is one pod's worker. Its fields are guarded by Workers.mu.
type podWorker struct {
	uid   types.UID
	pod   *v1.Pod
	state WorkerState
	// grace is the effective termination grace period once terminating.
	grace int64
	// cancel interrupts the sync in flight: a SyncPod when the pod is to
	// terminate, a SyncTerminatingPod when a shorter grace period arrives.
	cancel  context.CancelFunc
	wake    chan struct{}
	started bool
	// op is the kind of the newest update not yet synced, for the
	// worker duration metric.
	op UpdateType
	// firstSeen is when the pod was first seen: its config.seen
	// annotation, else its first update.
	firstSeen time.Time
	// running is set once a sync saw the pod running, so that its start
	// duration is observed once.
	running bool
}

// NewWorkers returns pod workers for cfg. Nothing runs until Run.
func NewWorkers(cfg WorkersConfig) (*Workers, error) {
	var errs []error
	if cfg.Syncer == nil {
		errs = append(errs, errors.New("Syncer is required"))
	}
	if cfg.Status == nil {
		errs = append(errs, errors.New("Status is required"))
	}
	if cfg.ResyncInterval < 0 || cfg.BackOffPeriod < 0 {
		errs = append(errs, fmt.Errorf("ResyncInterval %s and BackOffPeriod %s must be positive", cfg.ResyncInterval, cfg.BackOffPeriod))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("syncloop: workers: %w: %w", core.ErrInvalid, errors.Join(errs...))
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.ResyncInterval == 0 {
		cfg.ResyncInterval = DefaultResyncInterval
	}
	if cfg.BackOffPeriod == 0 {
		cfg.BackOffPeriod = DefaultBackOffPeriod
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	m, err := newWorkerMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Workers{cfg: cfg, log: cfg.Logger, metrics: m, pods: map[types.UID]*podWorker{}}, nil
}

// Run starts the workers of the pods updated so far and of every pod
// updated later, until ctx ends; then it waits for them and returns ctx's
// error.
func (w *Workers) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.ctx != nil {
		w.mu.Unlock()
		return errors.New("syncloop: workers: Run called twice")
	}
	w.ctx = ctx
	// In the order the pods were seen, so that of two pods of one name
	// the older starts.
	pending := slices.Collect(maps.Values(w.pods))
	slices.SortFunc(pending, func(a, b *podWorker) int {
		return cmp.Or(a.firstSeen.Compare(b.firstSeen), strings.Compare(string(a.uid), string(b.uid)))
	})
	for _, pw := range pending {
		w.startLocked(pw)
	}
	w.mu.Unlock()
	<-ctx.Done()
	w.running.Wait()
	return ctx.Err()
}

// Update hands a pod update to the pod's worker and returns at once. An
// update for a terminated pod is ignored until Forget.
func (w *Workers) Update(u Update) {
	if u.Pod == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	pw := w.pods[u.Pod.UID]
	if pw == nil {
		pw = &podWorker{uid: u.Pod.UID, wake: make(chan struct{}, 1), op: UpdateSync, firstSeen: w.cfg.Clock.Now()}
		if t, err := time.Parse(time.RFC3339Nano, u.Pod.Annotations[core.AnnotationConfigSeen]); err == nil {
			pw.firstSeen = t
		}
		w.pods[u.Pod.UID] = pw
	}
	// The most telling update since the last sync names the sync.
	if u.Type < pw.op || u.Type == UpdateKill {
		pw.op = u.Type
	}
	if pw.state == Terminated {
		return
	}
	pw.pod = u.Pod
	if u.Type == UpdateKill || u.Pod.DeletionTimestamp != nil || isTerminalPhase(u.Pod) {
		w.terminateLocked(pw, u.KillGracePeriod)
	}
	w.wakeNow(pw)
	if w.ctx != nil {
		w.startLocked(pw)
	}
}

// State reports a pod's worker state; false when the pod is unknown.
func (w *Workers) State(uid types.UID) (WorkerState, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	pw := w.pods[uid]
	if pw == nil {
		return 0, false
	}
	return pw.state, true
}

// Forget drops a terminated pod's worker, so that its UID could be used
// again. It reports false, and forgets nothing, for a pod that is not
// terminated.
func (w *Workers) Forget(uid types.UID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	pw := w.pods[uid]
	if pw == nil || pw.state != Terminated {
		return false
	}
	delete(w.pods, uid)
	return true
}

// podRunning reports whether status shows one of pod's regular containers
// running: the pod is initialized and runs, the kubelet's Running phase.
func podRunning(pod *v1.Pod, status *core.PodStatus) bool {
	if status == nil {
		return false
	}
	for _, cs := range status.ContainerStatuses {
		if cs.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		for i := range pod.Spec.Containers {
			if pod.Spec.Containers[i].Name == cs.GetMetadata().GetName() {
				return true
			}
		}
	}
	return false
}

func isTerminalPhase(pod *v1.Pod) bool {
	return pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed
}

// terminateLocked moves the worker to terminating and shrinks its grace
// period, interrupting a termination in flight when it shrank.
func (w *Workers) terminateLocked(pw *podWorker, override *int64) {
	grace := EffectiveGracePeriod(pw.grace, pw.pod, override)
	switch {
	case pw.state == Syncing:
		pw.state, pw.grace = Terminating, grace
		w.log.Info("pod terminating", zap.String("pod", pw.pod.Namespace+"/"+pw.pod.Name), zap.String("podUID", string(pw.uid)),
			zap.Int64("gracePeriod", grace))
	case pw.state == Terminating && grace < pw.grace:
		pw.grace = grace
	default:
		return
	}
	if pw.cancel != nil {
		pw.cancel()
	}
}

// EffectiveGracePeriod is the grace period a terminating pod gets, as the
// kubelet computes it: the apiserver's deletion grace period or a kill's
// override when shorter than what the pod already had (current, 0 for
// none), else the pod's own terminationGracePeriodSeconds (default 30 s);
// never more than current once set, never less than 1 s.
func EffectiveGracePeriod(current int64, pod *v1.Pod, override *int64) int64 {
	grace := current
	overridden := false
	for _, o := range []*int64{pod.DeletionGracePeriodSeconds, override} {
		if o != nil && (grace == 0 || *o < grace) {
			grace, overridden = *o, true
		}
	}
	if !overridden && grace == 0 {
		grace = v1.DefaultTerminationGracePeriodSeconds
		if s := pod.Spec.TerminationGracePeriodSeconds; s != nil {
			grace = *s
		}
	}
	return max(grace, 1)
}

func (w *Workers) startLocked(pw *podWorker) {
	if pw.started || pw.state == Terminated {
		return
	}
	if pw.state == Syncing && w.nameTakenLocked(pw) {
		// Another pod of the same name (an edited static pod, say) has
		// not terminated: two must never run at once. This one starts
		// when that one has terminated.
		return
	}
	pw.started = true
	w.metrics.workerStart.Observe(w.cfg.Clock.Since(pw.firstSeen).Seconds())
	w.running.Add(1)
	go func() {
		defer w.running.Done()
		w.work(w.ctx, pw)
	}()
}

// nameTakenLocked reports whether a pod of pw's namespace and name but
// another UID has a worker that has not terminated and started first.
func (w *Workers) nameTakenLocked(pw *podWorker) bool {
	for _, o := range w.pods {
		if o != pw && o.state != Terminated && o.started && o.pod.Name == pw.pod.Name && o.pod.Namespace == pw.pod.Namespace {
			return true
		}
	}
	return false
}

// startWaitingLocked starts the workers held back by the name of a pod
// that has just terminated.
func (w *Workers) startWaitingLocked(done *v1.Pod) {
	if w.ctx == nil {
		return
	}
	for _, o := range w.pods {
		if !o.started && o.pod.Name == done.Name && o.pod.Namespace == done.Namespace {
			w.startLocked(o)
		}
	}
}

// States returns the state of every pod's worker, by pod UID.
func (w *Workers) States() map[types.UID]WorkerState {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[types.UID]WorkerState, len(w.pods))
	for uid, pw := range w.pods {
		out[uid] = pw.state
	}
	return out
}

// work is one pod's worker loop.
func (w *Workers) work(ctx context.Context, pw *podWorker) {
	var lastSync time.Time
	// atHand: the next termination pass may start from the status at
	// hand rather than wait for one observed after the last sync. A kill
	// must not wait: refreshing every pod of a mass deletion first costs
	// the runtime a status round each and, where the source refreshes one
	// pod at a time, serializes them ahead of the first stop. What that
	// status missed (a container the last sync started) is seen by the
	// check that follows every pass, which then goes round once more.
	atHand := true
	// after is a status observed after the last termination pass, which
	// the next pass starts from.
	var after *core.PodStatus
	timer := w.cfg.Clock.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-pw.wake:
		case <-timer.C():
		}
		w.mu.Lock()
		pod, state, grace, op := pw.pod, pw.state, pw.grace, pw.op
		pw.op = UpdateSync
		syncCtx, cancel := context.WithCancel(ctx)
		pw.cancel = cancel
		w.mu.Unlock()

		started := w.cfg.Clock.Now()
		log := w.log.With(zap.String("pod", pod.Namespace+"/"+pod.Name), zap.String("podUID", string(pw.uid)), zap.Stringer("state", state))
		var status *core.PodStatus
		var err error
		usedAtHand := state == Terminating && atHand
		switch {
		case usedAtHand:
			status, err = w.statusAtHand(ctx, pw.uid, lastSync)
		case state == Terminating && after != nil:
			status, after = after, nil
		default:
			status, err = w.status(ctx, pw.uid, lastSync)
		}
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				return
			}
			log.Warn("no pod status to sync with", zap.Error(err))
			w.requeue(timer, w.cfg.BackOffPeriod)
			continue
		}

		switch state {
		case Syncing:
			if !pw.running && podRunning(pod, status) {
				pw.running = true
				w.metrics.podStart.Observe(started.Sub(pw.firstSeen).Seconds())
			}
			terminal, err := w.cfg.Syncer.SyncPod(syncCtx, pod, status)
			interrupted := syncCtx.Err() != nil
			cancel()
			lastSync = w.cfg.Clock.Now()
			w.metrics.duration.WithLabelValues(op.String()).Observe(w.cfg.Clock.Since(started).Seconds())
			var wait *WaitError
			switch {
			case ctx.Err() != nil:
				return
			case interrupted:
				// The pod is to terminate: do that now.
				w.wakeNow(pw)
			case terminal:
				w.mu.Lock()
				w.terminateLocked(pw, nil)
				w.mu.Unlock()
				w.wakeNow(pw)
			case errors.As(err, &wait):
				log.Debug("restarts held back", zap.Error(err))
				timer.Reset(wait.Wait)
			case err != nil:
				log.Warn("sync failed; retrying", zap.Error(err))
				w.requeue(timer, w.cfg.BackOffPeriod)
			default:
				w.requeue(timer, w.cfg.ResyncInterval)
			}
		case Terminating:
			err := w.cfg.Syncer.SyncTerminatingPod(syncCtx, pod, status, grace)
			interrupted := syncCtx.Err() != nil
			cancel()
			lastSync = w.cfg.Clock.Now()
			w.metrics.duration.WithLabelValues(UpdateKill.String()).Observe(w.cfg.Clock.Since(started).Seconds())
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				if interrupted {
					// A shorter grace period arrived: start over with it.
					w.wakeNow(pw)
					continue
				}
				atHand = false
				log.Warn("termination failed; retrying", zap.Error(err))
				w.requeue(timer, w.cfg.BackOffPeriod)
				continue
			}
			atHand = false
			// What runs now, observed after every stop.
			status, err = w.status(ctx, pw.uid, w.cfg.Clock.Now())
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				log.Warn("no pod status after the termination; retrying", zap.Error(err))
				w.requeue(timer, w.cfg.BackOffPeriod)
				continue
			}
			if usedAtHand && stillRuns(status) {
				// The status at hand missed something: stop it too,
				// now, from this status.
				log.Info("pod still runs what its status did not show; terminating it again")
				after = status
				w.wakeNow(pw)
				continue
			}
			if err := w.finish(ctx, pw, pod, status); err != nil {
				if ctx.Err() != nil {
					return
				}
				log.Warn("cleanup of the terminated pod failed; retrying", zap.Error(err))
				w.requeue(timer, w.cfg.BackOffPeriod)
				continue
			}
			return
		default:
			cancel()
			return
		}
	}
}

// status returns the pod's status observed after since: one observed
// during the previous sync may miss what it did last. When the source
// has none yet and can refresh the pod, it is asked to, rather than
// waiting for its next relist. A zero since takes whatever it has.
func (w *Workers) status(ctx context.Context, uid types.UID, since time.Time) (*core.PodStatus, error) {
	r, ok := w.cfg.Status.(StatusRefresher)
	if ok && !since.IsZero() {
		done, cancel := context.WithCancel(ctx)
		cancel()
		if st, err := w.cfg.Status.GetNewerThan(done, uid, since); err == nil {
			return st, nil // fresh enough already (an event's relist)
		}
		err := r.RelistPod(ctx, uid)
		if err == nil {
			// Observed after the sync ended, if at the same instant on a
			// virtual or coarse clock: fresh enough.
			return w.cfg.Status.GetNewerThan(ctx, uid, since.Add(-time.Nanosecond))
		}
		if ctx.Err() == nil {
			w.log.Debug("could not refresh the pod's status; waiting for the next relist", zap.String("podUID", string(uid)), zap.Error(err))
		}
	}
	return w.cfg.Status.GetNewerThan(ctx, uid, since)
}

// statusAtHand returns the newest status the source has of the pod,
// however old, without waiting or refreshing; when it has none at all, a
// status observed after since, as status does.
func (w *Workers) statusAtHand(ctx context.Context, uid types.UID, since time.Time) (*core.PodStatus, error) {
	done, cancel := context.WithCancel(ctx)
	cancel()
	if st, err := w.cfg.Status.GetNewerThan(done, uid, time.Time{}); err == nil {
		return st, nil
	}
	return w.status(ctx, uid, since)
}

// stillRuns reports whether status shows a container running or a
// sandbox ready: what a termination pass stops.
func stillRuns(status *core.PodStatus) bool {
	if status == nil {
		return false
	}
	for _, cs := range status.ContainerStatuses {
		if cs.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
			return true
		}
	}
	for _, sb := range status.SandboxStatuses {
		if sb.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY {
			return true
		}
	}
	return false
}

// finish runs SyncTerminatedPod with status, observed after every
// container stopped, then marks the pod terminated.
func (w *Workers) finish(ctx context.Context, pw *podWorker, pod *v1.Pod, status *core.PodStatus) error {
	if err := w.cfg.Syncer.SyncTerminatedPod(ctx, pod, status); err != nil {
		return err
	}
	w.mu.Lock()
	pw.state = Terminated
	w.startWaitingLocked(pod)
	w.mu.Unlock()
	w.log.Info("pod terminated", zap.String("pod", pod.Namespace+"/"+pod.Name), zap.String("podUID", string(pod.UID)))
	return nil
}

func (w *Workers) wakeNow(pw *podWorker) {
	select {
	case pw.wake <- struct{}{}:
	default:
	}
}

// requeue arms the worker's timer for d plus up to 50 % jitter.
func (w *Workers) requeue(t clock.Timer, d time.Duration) {
	d += time.Duration(w.cfg.Jitter() * 0.5 * float64(d))
	t.Reset(d)
}
