package syncloop

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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

// ProbeKind is which of a container's probes a result belongs to.
type ProbeKind int

// The three probes of a container.
const (
	ProbeLiveness ProbeKind = iota
	ProbeReadiness
	ProbeStartup
)

// String returns "Liveness", "Readiness" or "Startup": the probe_type
// label of the probe metrics.
func (k ProbeKind) String() string {
	switch k {
	case ProbeLiveness:
		return "Liveness"
	case ProbeReadiness:
		return "Readiness"
	case ProbeStartup:
		return "Startup"
	}
	return fmt.Sprintf("ProbeKind(%d)", int(k))
}

// Prober runs one attempt of probe p of container c, whose instance is
// containerID in a pod whose IP is podIP. It returns the result and the
// probe's output; an error means the probe could not be run at all, and the
// attempt counts for nothing. *ProbeRunner is the Prober of the kubelet's
// probe handlers.
type Prober interface {
	Run(ctx context.Context, c *v1.Container, p *v1.Probe, containerID, podIP string) (ProbeResult, string, error)
}

// ProberFunc adapts a function to Prober.
type ProberFunc func(ctx context.Context, c *v1.Container, p *v1.Probe, containerID, podIP string) (ProbeResult, string, error)

// Run calls f.
func (f ProberFunc) Run(ctx context.Context, c *v1.Container, p *v1.Probe, containerID, podIP string) (ProbeResult, string, error) {
	return f(ctx, c, p, containerID, podIP)
}

var (
	_ Prober = (*ProbeRunner)(nil)
	_ Prober = ProberFunc(nil)
)

// Probe settings the API server fills in when a pod leaves them out; the
// manager applies them to pods that were not defaulted.
const (
	defaultProbePeriod           = 10 * time.Second
	defaultProbeSuccessThreshold = 1
	defaultProbeFailureThreshold = 3
	// maxProbeAttempts is how often an attempt that errors is repeated
	// before the round is given up, as the kubelet's prober does.
	maxProbeAttempts = 3
	// adoptionGrace: a container that started this long before the
	// manager was created ran before the agent restarted.
	adoptionGrace = 10 * time.Second
)

// ProbeManagerConfig configures a ProbeManager.
type ProbeManagerConfig struct {
	// Runner runs one probe attempt. Required; usually a *ProbeRunner.
	Runner Prober
	// Clock times the probes. Default clock.RealClock.
	Clock clock.WithTicker
	// Logger. Default: none.
	Logger *zap.Logger
	// Registerer receives the probe metrics under the kubelet's names:
	// prober_probe_total{probe_type,result,container,pod,namespace,pod_uid}
	// counts rounds by result, "successful" or "failed" (as with the
	// kubelet, "unknown" never occurs: a round whose attempts error counts
	// for nothing), and prober_probe_duration_seconds{probe_type,container,
	// pod,namespace} times the successful ones. A pod's series are deleted
	// by RemovePod. Default: none; the metrics are still counted.
	Registerer prometheus.Registerer
	// OnChange is told when a container instance's result of a probe is
	// first set or changes (not when it is dropped). It is called from the
	// manager's goroutines and from SyncPod, never with a lock held, and
	// must not block. The pod's worker wants to sync on a liveness or
	// startup Failure (and on a startup Success, which lets the next init
	// container start); the status manager wants every readiness change.
	OnChange func(uid types.UID, kind ProbeKind, containerID string, result ProbeResult)
	// Jitter returns a float in [0, 1); default math/rand/v2. Tests fix
	// it. It is called with the manager's lock held.
	Jitter func() float64
	// NodeIP is the pod IP given to the probes of pods on the host
	// network, whose sandbox has no address of its own: the kubelet probes
	// them at the node's IP. Empty: such probes reach their container only
	// when they name a host.
	NodeIP string
}

// ProbeManager runs the liveness, readiness and startup probes of the
// running containers of every pod it is told about, each on its own
// period, as the kubelet's prober manager does, and keeps their results
// for Plan (Results) and for the pod's status (Ready, Started).
//
// Each probe of each running container instance has a worker: a goroutine
// that probes at once (after a random part of the period when the manager
// was created less than a period ago, so that an agent restart does not
// probe everything at once) and then every periodSeconds (default 10). A
// round is skipped while the container's initialDelaySeconds, counted from
// its started_at, have not passed, and liveness and readiness rounds are
// skipped until the container has started (its startup probe succeeded). A
// result is recorded once successThreshold successes (default 1) or
// failureThreshold failures (default 3) come in a row. An attempt that
// returns an error is repeated up to 3 times and then the round counts for
// nothing; ProbeUnknown without an error is a failure.
//
// Until a probe decides, its result is the kubelet's initial value:
// liveness Success, readiness Failure, startup Unknown. A worker stops
// probing once its instance's liveness probe has failed (the container is
// to be restarted; its next instance gets a new worker) and once the
// startup probe has decided either way. When the startup probe succeeds,
// the readiness probe runs at once instead of waiting for its period.
//
// Containers that were running before the manager was created (started
// more than 10 s before it), which an agent restart adopts, are not reset
// to the initial values: their readiness is the pod's Ready condition, and
// their startup is what the pod's status says (ContainerStatus.Started),
// until a probe decides.
//
// When the pod has a deletion timestamp, its liveness and startup probes
// succeed and stop, so that a terminating container is not restarted;
// readiness probes go on until the container stops.
//
// The methods are safe for concurrent use.
type ProbeManager struct {
	cfg     ProbeManagerConfig
	log     *zap.Logger
	metrics *probeMetrics
	created time.Time

	mu      sync.Mutex
	ctx     context.Context // Run's; nil until Run
	closed  bool            // Run is returning: no new workers start
	pods    map[types.UID]*probedPod
	running sync.WaitGroup
}

// probedPod is what the manager knows of one pod. Guarded by
// ProbeManager.mu.
type probedPod struct {
	uid   types.UID
	pod   *v1.Pod
	podIP string
	// containers are the running instances of the pod's regular
	// containers and sidecars, by container ID.
	containers map[string]*probedContainer
	// series are the metric label sets counted for the pod, deleted with
	// it.
	series map[probeSeries]struct{}
}

type probeSeries struct {
	kind                      ProbeKind
	container, pod, namespace string
}

// probedContainer is one running container instance.
type probedContainer struct {
	id        string
	spec      v1.Container
	startedAt time.Time
	// adopted: it was running before the manager was created.
	adopted bool
	probes  [3]*probeWorker // by ProbeKind; nil when the spec has none
}

// probeWorker is one probe of one container instance. Its fields are
// guarded by ProbeManager.mu.
type probeWorker struct {
	kind   ProbeKind
	pod    *probedPod
	c      *probedContainer
	probe  *v1.Probe
	series probeSeries
	log    *zap.Logger

	result    ProbeResult
	hasResult bool
	// done: it probes no more (its result holds, or it was stopped).
	done bool
	// cancel stops its goroutine; nil until it runs.
	cancel context.CancelFunc
	// trigger asks for a round now.
	trigger chan struct{}
}

// probeChange is a result to report through OnChange.
type probeChange struct {
	uid    types.UID
	kind   ProbeKind
	id     string
	result ProbeResult
}

// NewProbeManager returns a probe manager for cfg. Nothing runs until Run.
func NewProbeManager(cfg ProbeManagerConfig) (*ProbeManager, error) {
	if cfg.Runner == nil {
		return nil, fmt.Errorf("syncloop: probe manager: %w: Runner is required", core.ErrInvalid)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	metrics, err := newProbeMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("syncloop: probe manager: register metrics: %w", err)
	}
	return &ProbeManager{
		cfg:     cfg,
		log:     cfg.Logger,
		metrics: metrics,
		created: cfg.Clock.Now(),
		pods:    map[types.UID]*probedPod{},
	}, nil
}

// Run runs the probe workers of the pods synced so far and of every pod
// synced later, until ctx ends; then it waits for them and returns ctx's
// error. An attempt in flight is cancelled.
func (m *ProbeManager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.ctx != nil {
		m.mu.Unlock()
		return errors.New("syncloop: probe manager: Run called twice")
	}
	m.ctx = ctx
	for _, pp := range m.pods {
		for _, c := range pp.containers {
			for _, w := range c.probes {
				m.launchLocked(w)
			}
		}
	}
	m.mu.Unlock()
	<-ctx.Done()
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.running.Wait()
	return ctx.Err()
}

// SyncPod tells the manager the pod's newest spec and runtime status. It
// returns at once and may be called as often as wanted, also while the pod
// terminates: every running container instance of the pod's regular
// containers and sidecars (init containers with restartPolicy Always; not
// other init containers, not ephemeral containers) gets a worker for each
// probe its spec has, unless it has one; the newest instance of each
// container name is the one probed. The workers of instances no longer
// running, or no longer in status, stop, and their results are dropped.
// The probes get the primary IP of the pod's newest ready sandbox (the
// last one known while none is ready), or NodeIP for a pod on the host
// network. After RemovePod, SyncPod starts the pod over.
func (m *ProbeManager) SyncPod(pod *v1.Pod, status *core.PodStatus) {
	if pod == nil {
		return
	}
	specs := map[string]*v1.Container{}
	for i := range pod.Spec.Containers {
		specs[pod.Spec.Containers[i].Name] = &pod.Spec.Containers[i]
	}
	for i := range pod.Spec.InitContainers {
		if core.IsSidecar(&pod.Spec.InitContainers[i]) {
			specs[pod.Spec.InitContainers[i].Name] = &pod.Spec.InitContainers[i]
		}
	}
	// The newest instance of each probed name, if it runs, in status
	// order.
	var running []*runtimeapi.ContainerStatus
	runningIDs := map[string]bool{}
	seen := map[string]bool{}
	var podIP string
	if status != nil {
		for _, cs := range status.ContainerStatuses {
			name := cs.GetMetadata().GetName()
			if seen[name] {
				continue
			}
			seen[name] = true
			if cs.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING && specs[name] != nil {
				running = append(running, cs)
				runningIDs[cs.GetId()] = true
			}
		}
		for _, sb := range status.SandboxStatuses {
			if sb.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY {
				if ips := core.SandboxIPs(sb); len(ips) > 0 {
					podIP = ips[0]
				}
				break
			}
		}
	}
	if pod.Spec.HostNetwork {
		podIP = m.cfg.NodeIP
	}

	var changes []probeChange
	m.mu.Lock()
	pp := m.pods[pod.UID]
	if pp == nil {
		pp = &probedPod{uid: pod.UID, containers: map[string]*probedContainer{}, series: map[probeSeries]struct{}{}}
		m.pods[pod.UID] = pp
	}
	pp.pod = pod
	if podIP != "" {
		pp.podIP = podIP
	}
	for id, c := range pp.containers {
		if !runningIDs[id] {
			m.stopContainerLocked(c)
			delete(pp.containers, id)
		}
	}
	deleting := pod.DeletionTimestamp != nil
	for _, cs := range running {
		c := pp.containers[cs.GetId()]
		if c == nil {
			c = m.addContainerLocked(pp, cs, specs[cs.GetMetadata().GetName()], &changes)
			pp.containers[c.id] = c
		}
		for _, kind := range []ProbeKind{ProbeLiveness, ProbeStartup} {
			// A pod being deleted shuts down quietly: nothing restarts
			// its containers any more.
			if w := c.probes[kind]; deleting && w != nil && !w.done {
				m.stopWorkerLocked(w)
				m.setLocked(w, ProbeSuccess, &changes)
			}
		}
		for _, w := range c.probes {
			m.launchLocked(w)
		}
	}
	m.mu.Unlock()
	m.notify(changes)
}

// addContainerLocked makes the workers of a newly seen running instance,
// with their initial results.
func (m *ProbeManager) addContainerLocked(pp *probedPod, cs *runtimeapi.ContainerStatus, spec *v1.Container, changes *[]probeChange) *probedContainer {
	c := &probedContainer{id: cs.GetId(), spec: *spec}
	if ns := cs.GetStartedAt(); ns != 0 {
		c.startedAt = time.Unix(0, ns)
		c.adopted = c.startedAt.Before(m.created.Add(-adoptionGrace))
	}
	for kind, p := range [...]*v1.Probe{ProbeLiveness: spec.LivenessProbe, ProbeReadiness: spec.ReadinessProbe, ProbeStartup: spec.StartupProbe} {
		if p == nil {
			continue
		}
		kind := ProbeKind(kind)
		w := &probeWorker{kind: kind, pod: pp, c: c, probe: p, trigger: make(chan struct{}, 1),
			series: probeSeries{kind: kind, container: spec.Name, pod: pp.pod.Name, namespace: pp.pod.Namespace},
			log: m.log.With(zap.Stringer("probe", kind), zap.String("pod", pp.pod.Namespace+"/"+pp.pod.Name),
				zap.String("podUID", string(pp.uid)), zap.String("container", spec.Name), zap.String("containerID", c.id))}
		c.probes[kind] = w
		pp.series[w.series] = struct{}{}
		switch {
		case !c.adopted:
			m.setLocked(w, [...]ProbeResult{ProbeLiveness: ProbeSuccess, ProbeReadiness: ProbeFailure, ProbeStartup: ProbeUnknown}[kind], changes)
		case kind == ProbeStartup && statusStarted(pp.pod, spec.Name):
			// It had started before the agent restarted.
			m.setLocked(w, ProbeSuccess, changes)
			w.done = true
		}
	}
	return c
}

// statusStarted reports whether the pod's status says its container name
// has started.
func statusStarted(pod *v1.Pod, name string) bool {
	for _, list := range [][]v1.ContainerStatus{pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses} {
		for _, s := range list {
			if s.Name == name {
				return s.Started != nil && *s.Started
			}
		}
	}
	return false
}

// RemovePod stops all the workers of the pod, cancelling attempts in
// flight, and forgets it and its results.
func (m *ProbeManager) RemovePod(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pp := m.pods[uid]
	if pp == nil {
		return
	}
	for _, c := range pp.containers {
		m.stopContainerLocked(c)
	}
	for s := range pp.series {
		m.metrics.delete(s, uid)
	}
	delete(m.pods, uid)
}

// Results returns the pod's liveness and startup results by container ID,
// as PlanInput wants them. Instances without a result are absent.
func (m *ProbeManager) Results(uid types.UID) (liveness, startup map[string]ProbeResult) {
	m.mu.Lock()
	defer m.mu.Unlock()
	liveness, startup = map[string]ProbeResult{}, map[string]ProbeResult{}
	pp := m.pods[uid]
	if pp == nil {
		return liveness, startup
	}
	for id, c := range pp.containers {
		if w := c.probes[ProbeLiveness]; w != nil && w.hasResult {
			liveness[id] = w.result
		}
		if w := c.probes[ProbeStartup]; w != nil && w.hasResult {
			startup[id] = w.result
		}
	}
	return liveness, startup
}

// Ready reports the kubelet's readiness of a regular container or sidecar
// instance: it is running, it has started, and it has no readiness probe
// or its readiness probe's result is Success.
func (m *ProbeManager) Ready(uid types.UID, containerID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	pp := m.pods[uid]
	if pp == nil {
		return false
	}
	c := pp.containers[containerID]
	if c == nil || !startedLocked(c) {
		return false
	}
	w := c.probes[ProbeReadiness]
	switch {
	case w == nil:
		return true
	case w.hasResult:
		return w.result == ProbeSuccess
	}
	// Adopted after a restart, and the probe has not decided yet.
	return c.adopted && podReady(pp.pod)
}

// Started reports whether a regular container or sidecar instance has
// started: it is running, and it has no startup probe or its startup probe
// succeeded.
func (m *ProbeManager) Started(uid types.UID, containerID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	pp := m.pods[uid]
	if pp == nil {
		return false
	}
	c := pp.containers[containerID]
	return c != nil && startedLocked(c)
}

func startedLocked(c *probedContainer) bool {
	w := c.probes[ProbeStartup]
	return w == nil || (w.hasResult && w.result == ProbeSuccess)
}

func podReady(pod *v1.Pod) bool {
	for _, cond := range pod.Status.Conditions {
		if cond.Type == v1.PodReady {
			return cond.Status == v1.ConditionTrue
		}
	}
	return false
}

// setLocked records a worker's result and queues the change, if it is
// one.
func (m *ProbeManager) setLocked(w *probeWorker, r ProbeResult, changes *[]probeChange) {
	if w.hasResult && w.result == r {
		return
	}
	w.result, w.hasResult = r, true
	*changes = append(*changes, probeChange{uid: w.pod.uid, kind: w.kind, id: w.c.id, result: r})
}

func (m *ProbeManager) notify(changes []probeChange) {
	if m.cfg.OnChange == nil {
		return
	}
	for _, ch := range changes {
		m.cfg.OnChange(ch.uid, ch.kind, ch.id, ch.result)
	}
}

func (m *ProbeManager) stopContainerLocked(c *probedContainer) {
	for _, w := range c.probes {
		if w != nil {
			m.stopWorkerLocked(w)
		}
	}
}

func (m *ProbeManager) stopWorkerLocked(w *probeWorker) {
	w.done = true
	if w.cancel != nil {
		w.cancel()
	}
}

// launchLocked starts a worker's goroutine, once Run has begun.
func (m *ProbeManager) launchLocked(w *probeWorker) {
	if w == nil || w.done || w.cancel != nil || m.ctx == nil || m.closed {
		return
	}
	ctx, cancel := context.WithCancel(m.ctx)
	w.cancel = cancel
	period := probePeriod(w.probe)
	var delay time.Duration
	if m.cfg.Clock.Since(m.created) < period {
		delay = time.Duration(min(max(m.cfg.Jitter(), 0), 1) * float64(period))
	}
	m.running.Add(1)
	go func() {
		defer m.running.Done()
		defer cancel()
		m.work(ctx, w, period, delay)
	}()
}

func probePeriod(p *v1.Probe) time.Duration {
	if p.PeriodSeconds <= 0 {
		return defaultProbePeriod
	}
	return time.Duration(p.PeriodSeconds) * time.Second
}

// work is one probe worker's loop: a round now (after delay), then one
// every period, or at once when triggered.
func (m *ProbeManager) work(ctx context.Context, w *probeWorker, period, delay time.Duration) {
	if delay > 0 {
		t := m.cfg.Clock.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
	timer := m.cfg.Clock.NewTimer(period)
	defer timer.Stop()
	var run probeRun
	for m.round(ctx, w, &run) {
		select {
		case <-ctx.Done():
			return
		case <-timer.C():
			timer.Reset(period)
		case <-w.trigger:
			timer.Stop()
			timer.Reset(period)
		}
	}
}

// probeRun counts the same results in a row.
type probeRun struct {
	last ProbeResult
	n    int
}

// round probes once, if the container is due, and records the result once
// its threshold is reached. It reports whether the worker goes on.
func (m *ProbeManager) round(ctx context.Context, w *probeWorker, run *probeRun) bool {
	m.mu.Lock()
	if w.done {
		m.mu.Unlock()
		return false
	}
	podIP, started := w.pod.podIP, startedLocked(w.c)
	m.mu.Unlock()

	if m.cfg.Clock.Since(w.c.startedAt) < time.Duration(w.probe.InitialDelaySeconds)*time.Second {
		return true
	}
	if w.kind != ProbeStartup && !started {
		return true
	}

	log := w.log
	begin := m.cfg.Clock.Now()
	var (
		result ProbeResult
		out    string
		err    error
	)
	for range maxProbeAttempts {
		result, out, err = m.cfg.Runner.Run(ctx, &w.c.spec, w.probe, w.c.id, podIP)
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if ctx.Err() != nil {
		return false
	}
	if err != nil {
		log.Warn("probe errored; round ignored", zap.Error(err))
		return true
	}
	if result == ProbeUnknown {
		result = ProbeFailure
	}
	if result == ProbeSuccess {
		m.metrics.count(w.series, w.pod.uid, "successful")
		m.metrics.observe(w.series, m.cfg.Clock.Since(begin))
		log.Debug("probe succeeded")
	} else {
		m.metrics.count(w.series, w.pod.uid, "failed")
		log.Debug("probe failed", zap.String("output", out))
	}

	if result == run.last {
		run.n++
	} else {
		run.last, run.n = result, 1
	}
	success, failure := w.probe.SuccessThreshold, w.probe.FailureThreshold
	if success <= 0 {
		success = defaultProbeSuccessThreshold
	}
	if failure <= 0 {
		failure = defaultProbeFailureThreshold
	}
	if (result == ProbeFailure && run.n < int(failure)) || (result == ProbeSuccess && run.n < int(success)) {
		return true
	}

	var changes []probeChange
	m.mu.Lock()
	if w.done {
		m.mu.Unlock()
		return false
	}
	m.setLocked(w, result, &changes)
	// A container that failed its liveness probe is to be restarted, and
	// a startup probe decides once: probe this instance no more.
	hold := (w.kind == ProbeLiveness && result == ProbeFailure) || w.kind == ProbeStartup
	if hold {
		w.done = true
	}
	readiness := w.c.probes[ProbeReadiness]
	m.mu.Unlock()
	if len(changes) > 0 {
		log.Info("probe result changed", zap.Stringer("result", result))
	}
	m.notify(changes)
	if w.kind == ProbeStartup && result == ProbeSuccess && readiness != nil {
		// The container has started: find out at once whether it is
		// ready, as the kubelet's next status update does.
		select {
		case readiness.trigger <- struct{}{}:
		default:
		}
	}
	return !hold
}

// probeMetrics are the kubelet's probe metrics, under the same names.
type probeMetrics struct {
	total    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newProbeMetrics(reg prometheus.Registerer) (*probeMetrics, error) {
	m := &probeMetrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{Subsystem: "prober", Name: "probe_total",
			Help: "Cumulative number of a liveness, readiness or startup probe for a container by result."},
			[]string{"probe_type", "result", "container", "pod", "namespace", "pod_uid"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Subsystem: "prober", Name: "probe_duration_seconds",
			Help: "Duration in seconds for a probe response.", Buckets: prometheus.DefBuckets},
			[]string{"probe_type", "container", "pod", "namespace"}),
	}
	if reg == nil {
		return m, nil
	}
	return m, errors.Join(reg.Register(m.total), reg.Register(m.duration))
}

func (m *probeMetrics) count(s probeSeries, uid types.UID, result string) {
	m.total.WithLabelValues(s.kind.String(), result, s.container, s.pod, s.namespace, string(uid)).Inc()
}

func (m *probeMetrics) observe(s probeSeries, d time.Duration) {
	m.duration.WithLabelValues(s.kind.String(), s.container, s.pod, s.namespace).Observe(d.Seconds())
}

func (m *probeMetrics) delete(s probeSeries, uid types.UID) {
	for _, result := range []string{"successful", "failed"} {
		m.total.DeleteLabelValues(s.kind.String(), result, s.container, s.pod, s.namespace, string(uid))
	}
	m.duration.DeleteLabelValues(s.kind.String(), s.container, s.pod, s.namespace)
}
