package pleg

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

// entity is a container or sandbox the PLEG has seen.
type entity struct {
	id      string
	sandbox bool
	pod     *podRecord
	// old is the state events were last emitted for; cur the state of the
	// latest observation.
	old, cur state
	// criState is the runtime's own state word, for metrics.
	criState runtimeapi.ContainerState
	// seen is the generation of the last relist that listed it.
	seen uint64
}

// podRecord is one pod and everything the runtime has of it.
type podRecord struct {
	uid      types.UID
	entities []*entity
	// dirty: an entity's cur differs from its old.
	dirty bool
	// reinspect: fetch the status again even if nothing changed (the last
	// fetch failed, or someone asked).
	reinspect bool
	queued    bool
}

// records is the PLEG's memory of the runtime between relists. Guarded by
// PLEG.mu.
type records struct {
	entities map[string]*entity
	pods     map[types.UID]*podRecord
	gen      uint64
	// work is reused by every relist: the pods to inspect.
	work []*podRecord
	// events is reused by every relist: what it publishes.
	events []core.PodLifecycleEvent
}

func newRecords() records {
	return records{entities: map[string]*entity{}, pods: map[types.UID]*podRecord{}}
}

// observe records that the runtime lists id in state s.
func (r *records) observe(uid types.UID, id string, sandbox bool, s state, cs runtimeapi.ContainerState) {
	e := r.entities[id]
	if e == nil {
		pod := r.pods[uid]
		if pod == nil {
			pod = &podRecord{uid: uid}
			r.pods[uid] = pod
		}
		e = &entity{id: id, sandbox: sandbox, pod: pod, old: nonExistent}
		pod.entities = append(pod.entities, e)
		r.entities[id] = e
	}
	e.cur, e.criState, e.seen = s, cs, r.gen
	if e.cur != e.old {
		r.mark(e.pod)
	}
}

// mark queues pod for inspection in this relist.
func (r *records) mark(pod *podRecord) {
	pod.dirty = true
	r.enqueue(pod)
}

// markUnlisted records as gone what of pod the current list did not show.
func (r *records) markUnlisted(pod *podRecord) {
	for _, e := range pod.entities {
		if e.seen != r.gen && e.cur != nonExistent {
			e.cur = nonExistent
			r.mark(pod)
		}
	}
}

func (r *records) enqueue(pod *podRecord) {
	if !pod.queued {
		pod.queued = true
		r.work = append(r.work, pod)
	}
}

// podUID returns the pod a runtime object belongs to, from its labels,
// falling back to the sandbox metadata.
func podUID(labels map[string]string, md *runtimeapi.PodSandboxMetadata) types.UID {
	if uid := labels[core.LabelPodUID]; uid != "" {
		return types.UID(uid)
	}
	return types.UID(md.GetUid())
}

// Relist compares the runtime with the last observation, refreshes the
// cache for the pods that changed, and publishes their events. Run calls it
// every period; calling it directly (in tests, or an embedder that drives
// the PLEG itself) is safe.
func (p *PLEG) Relist(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	start := p.cfg.Clock.Now()
	sandboxes, err := p.cfg.Runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		return fmt.Errorf("pleg: relist: %w", err)
	}
	containers, err := p.cfg.Runtime.ListContainers(ctx, nil)
	if err != nil {
		return fmt.Errorf("pleg: relist: %w", err)
	}
	p.apply(ctx, start, sandboxes, containers)
	return nil
}

// relistContainers lists the containers alone, between full relists
// (Config.SandboxRelistPeriod). When a container appeared, changed state
// or went, or a pod waits to be inspected again, it lists the sandboxes
// too and goes on as a full relist: a status is only ever read with the
// pod's sandboxes freshly listed, so that none misses a sandbox created
// since the last full relist. When nothing changed it does nothing more,
// and the cache's global time does not move (the sandboxes were not
// looked at).
func (p *PLEG) relistContainers(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	start := p.cfg.Clock.Now()
	containers, err := p.cfg.Runtime.ListContainers(ctx, nil)
	if err != nil {
		return fmt.Errorf("pleg: relist containers: %w", err)
	}
	if !p.containersChanged(containers) {
		return nil
	}
	sandboxes, err := p.cfg.Runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		return fmt.Errorf("pleg: relist: %w", err)
	}
	p.apply(ctx, start, sandboxes, containers)
	return nil
}

// containersChanged reports whether containers, a list of every
// container, differs from what the PLEG last observed, or a pod waits to
// be inspected again. p.mu must be held.
func (p *PLEG) containersChanged(containers []*runtimeapi.Container) bool {
	for _, c := range containers {
		e := p.entities[c.GetId()]
		if e == nil || e.cur != containerState(c.GetState()) || e.criState != c.GetState() {
			return true
		}
	}
	live := 0
	for _, pod := range p.pods {
		if pod.reinspect {
			return true
		}
		for _, e := range pod.entities {
			if !e.sandbox && e.cur != nonExistent {
				live++
			}
		}
	}
	return live != len(containers)
}

// apply takes in the lists of every sandbox and every container of a
// relist started at start. p.mu must be held.
func (p *PLEG) apply(ctx context.Context, start time.Time, sandboxes []*runtimeapi.PodSandbox, containers []*runtimeapi.Container) {
	p.hmu.Lock()
	if !p.lastStart.IsZero() {
		p.metrics.relistInterval.Observe(start.Sub(p.lastStart).Seconds())
	}
	p.lastStart = start
	p.hmu.Unlock()
	defer func() { p.metrics.relistDuration.Observe(p.cfg.Clock.Since(start).Seconds()) }()
	p.gen++
	for _, sb := range sandboxes {
		p.observe(podUID(sb.GetLabels(), sb.GetMetadata()), sb.GetId(), true, sandboxState(sb.GetState()), 0)
	}
	for _, c := range containers {
		p.observe(podUID(c.GetLabels(), nil), c.GetId(), false, containerState(c.GetState()), c.GetState())
	}
	// What was not listed is gone; pods marked for reinspection are due.
	for _, pod := range p.pods {
		p.markUnlisted(pod)
		if pod.reinspect {
			p.enqueue(pod)
		}
	}
	p.inspect(ctx, start)
	p.updateGauges()
	p.cache.updateTime(start)
	p.hmu.Lock()
	p.lastRelist = p.cfg.Clock.Now()
	p.hmu.Unlock()
	p.metrics.lastSeen.Set(float64(start.Unix()))
}

// RelistPod relists one pod at once: the sync loop calls it right after it
// acted on the pod, and the event stream for every pod it reports. Events
// and the cache are updated as by Relist.
func (p *PLEG) RelistPod(ctx context.Context, uid types.UID) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	start := p.cfg.Clock.Now()
	defer func() { p.metrics.podRelistDuration.Observe(p.cfg.Clock.Since(start).Seconds()) }()
	sel := map[string]string{core.LabelPodUID: string(uid)}
	sandboxes, err := p.cfg.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: sel})
	if err != nil {
		return fmt.Errorf("pleg: relist pod %s: %w", uid, err)
	}
	containers, err := p.cfg.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: sel})
	if err != nil {
		return fmt.Errorf("pleg: relist pod %s: %w", uid, err)
	}
	p.gen++
	for _, sb := range sandboxes {
		p.observe(uid, sb.GetId(), true, sandboxState(sb.GetState()), 0)
	}
	for _, c := range containers {
		p.observe(uid, c.GetId(), false, containerState(c.GetState()), c.GetState())
	}
	if pod := p.pods[uid]; pod != nil {
		p.markUnlisted(pod)
		p.enqueue(pod)
	}
	p.inspect(ctx, start)
	p.updateGauges()
	return nil
}

// Reinspect makes the next relist fetch the pod's status even if nothing
// about it changed.
func (p *PLEG) Reinspect(uid types.UID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pod := p.pods[uid]; pod != nil {
		pod.reinspect = true
	}
}

// inspect fetches the status of every queued pod, caches it, commits the
// pod's transitions and publishes their events. A pod whose status could
// not be read keeps its transitions for the next relist and emits nothing
// now, so no event is published without a status to go with it.
func (p *PLEG) inspect(ctx context.Context, observedAt time.Time) {
	events := p.events[:0]
	for _, pod := range p.work {
		pod.queued = false
		status, err := p.podStatus(ctx, pod, observedAt)
		if err != nil {
			p.log.Warn("reading pod status failed; will retry", zap.String("podUID", string(pod.uid)), zap.Error(err))
			p.cache.set(pod.uid, nil, err, observedAt)
			pod.reinspect = true
			continue
		}
		pod.reinspect = false
		if status == nil {
			p.cache.delete(pod.uid)
		} else {
			p.cache.set(pod.uid, status, nil, observedAt)
		}
		if pod.dirty {
			events = p.commit(pod, status, events)
		}
	}
	clear(p.work)
	p.work = p.work[:0]
	if len(events) > 0 {
		p.fanout.publish(events)
	}
	clear(events)
	p.events = events[:0]
}

func (p *PLEG) cachedStatus(uid types.UID) *core.PodStatus {
	s, _ := p.cache.Get(uid)
	return s
}

// commit emits the events of pod's transitions and makes them the new
// baseline; entities gone from the runtime, and the pod itself when
// nothing of it is left, are forgotten.
func (p *PLEG) commit(pod *podRecord, status *core.PodStatus, events []core.PodLifecycleEvent) []core.PodLifecycleEvent {
	pod.dirty = false
	kept := pod.entities[:0]
	for _, e := range pod.entities {
		evs, n := transition(e.old, e.cur)
		for i := range n {
			ev := core.PodLifecycleEvent{PodUID: pod.uid, Type: evs[i], ContainerID: e.id, Sandbox: e.sandbox}
			if ev.Type == core.ContainerDied && !e.sandbox {
				if cs := findContainer(status, e.id); cs != nil {
					code := cs.GetExitCode()
					ev.ExitCode = &code
					// Started and died between two looks: it did start.
					if (e.old == nonExistent || e.old == created) && cs.GetStartedAt() != 0 {
						events = append(events, core.PodLifecycleEvent{PodUID: pod.uid, Type: core.ContainerStarted, ContainerID: e.id})
					}
				}
			}
			events = append(events, ev)
		}
		e.old = e.cur
		if e.cur == nonExistent {
			delete(p.entities, e.id)
			continue
		}
		kept = append(kept, e)
	}
	clear(pod.entities[len(kept):])
	pod.entities = kept
	if len(kept) == 0 {
		delete(p.pods, pod.uid)
	}
	return events
}

func findContainer(status *core.PodStatus, id string) *runtimeapi.ContainerStatus {
	if status == nil {
		return nil
	}
	for _, cs := range status.ContainerStatuses {
		if cs.GetId() == id {
			return cs
		}
	}
	return nil
}

// podStatus reads the status of everything the runtime has of pod. It
// returns nil when nothing is left.
func (p *PLEG) podStatus(ctx context.Context, pod *podRecord, observedAt time.Time) (*core.PodStatus, error) {
	status := &core.PodStatus{UID: pod.uid, ObservedAt: observedAt}
	for _, e := range pod.entities {
		if e.cur == nonExistent {
			continue
		}
		if e.sandbox {
			resp, err := p.cfg.Runtime.PodSandboxStatus(ctx, e.id, false)
			if errors.Is(err, core.ErrNotFound) {
				continue // removed since the list; the next relist sees it
			}
			if err != nil {
				return nil, err
			}
			status.SandboxStatuses = append(status.SandboxStatuses, resp.GetStatus())
			continue
		}
		resp, err := p.cfg.Runtime.ContainerStatus(ctx, e.id, false)
		if errors.Is(err, core.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		status.ContainerStatuses = append(status.ContainerStatuses, resp.GetStatus())
	}
	if len(status.SandboxStatuses) == 0 && len(status.ContainerStatuses) == 0 {
		return nil, nil
	}
	slices.SortFunc(status.SandboxStatuses, func(a, b *runtimeapi.PodSandboxStatus) int { return cmp.Compare(b.GetCreatedAt(), a.GetCreatedAt()) })
	slices.SortFunc(status.ContainerStatuses, func(a, b *runtimeapi.ContainerStatus) int { return cmp.Compare(b.GetCreatedAt(), a.GetCreatedAt()) })
	for _, sb := range status.SandboxStatuses {
		if md := sb.GetMetadata(); md != nil {
			status.Name, status.Namespace = md.GetName(), md.GetNamespace()
			break
		}
	}
	if status.Name == "" && len(status.ContainerStatuses) > 0 {
		l := status.ContainerStatuses[0].GetLabels()
		status.Name, status.Namespace = l[core.LabelPodName], l[core.LabelPodNamespace]
	}
	status.IPs = p.podIPs(pod.uid, status)
	return status, nil
}

// podIPs are the IPs of the newest ready sandbox; when no sandbox is
// ready, the pod keeps the IPs it had, as the kubelet does, so that a
// terminated pod still reports them.
func (p *PLEG) podIPs(uid types.UID, status *core.PodStatus) []string {
	for _, sb := range status.SandboxStatuses {
		if sb.GetState() != runtimeapi.PodSandboxState_SANDBOX_READY {
			continue
		}
		return core.SandboxIPs(sb)
	}
	if old := p.cachedStatus(uid); old != nil {
		return old.IPs
	}
	return nil
}

// updateGauges recounts running pods and containers by state.
func (p *PLEG) updateGauges() {
	var pods int
	var byState [4]int
	for _, pod := range p.pods {
		ready := false
		for _, e := range pod.entities {
			if e.sandbox {
				ready = ready || e.cur == running
				continue
			}
			if e.cur != nonExistent && int(e.criState) < len(byState) {
				byState[e.criState]++
			}
		}
		if ready {
			pods++
		}
	}
	p.metrics.runningPods.Set(float64(pods))
	for s, n := range byState {
		p.metrics.runningContainers.WithLabelValues(containerStateLabel(runtimeapi.ContainerState(s))).Set(float64(n))
	}
}

// containerStateLabel is the kubelet's container_state label value.
func containerStateLabel(s runtimeapi.ContainerState) string {
	switch s {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return "created"
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return "running"
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return "exited"
	}
	return "unknown"
}
