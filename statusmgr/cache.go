package statusmgr

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// CacheConfig configures a Cache.
type CacheConfig struct {
	// Clock stamps each version with the time of its change
	// (core.PodStatusEntry.ChangedAt). Default: the real clock.
	Clock  clock.PassiveClock
	Logger *zap.Logger
}

// Cache keeps the newest status of each pod, with a version that grows by
// one at every change, as the kubelet's status manager keeps them before
// they are pushed anywhere. A status is stored with its times cut to the
// second and its termination messages to their share of
// MaxPodTerminationMessageLength, as the API would store it; one equal to
// the stored status is dropped, without a new version; one that moves a
// container out of a terminated state its restart policy does not leave
// (CheckTransition) is refused and the stored one kept.
//
// Cache implements syncloop's PodStatusSetter, so the sync loop can hand
// it the Failed status of a rejected pod.
type Cache struct {
	log   *zap.Logger
	clock clock.PassiveClock

	mu      sync.Mutex
	pods    map[types.UID]*cachedStatus
	changed chan struct{}
}

type cachedStatus struct {
	pod       *v1.Pod
	status    v1.PodStatus
	version   uint64
	changedAt time.Time
	finished  bool
}

// NewCache returns an empty Cache.
func NewCache(cfg CacheConfig) (*Cache, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Cache{log: cfg.Logger, clock: cfg.Clock, pods: map[types.UID]*cachedStatus{}, changed: make(chan struct{}, 1)}, nil
}

// Set stores status as pod's newest. It returns the version stored and
// whether the status changed; an illegal transition is an error wrapping
// core.ErrInvalid, and nothing is stored. Neither argument is modified.
func (c *Cache) Set(pod *v1.Pod, status v1.PodStatus) (version uint64, changed bool, err error) {
	return c.set(pod, status, false)
}

// Finish is Set for the last status of a pod whose worker is done with it
// (nothing of it runs any more): the entry is marked Finished, which
// tells a sink it may publish a terminal phase and complete the pod's
// deletion, as the kubelet's TerminatePod. Marking it is a change of its
// own: the version grows even when the status is equal to the stored one.
func (c *Cache) Finish(pod *v1.Pod, status v1.PodStatus) (version uint64, changed bool, err error) {
	return c.set(pod, status, true)
}

func (c *Cache) set(pod *v1.Pod, status v1.PodStatus, finished bool) (uint64, bool, error) {
	next := *status.DeepCopy()
	normalize(pod, &next)
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.pods[pod.UID]
	if cur != nil {
		if err := CheckTransition(pod, &cur.status, &next); err != nil {
			return cur.version, false, fmt.Errorf("statusmgr: status of pod %s/%s refused: %w", pod.Namespace, pod.Name, err)
		}
		if equality.Semantic.DeepEqual(cur.status, next) && (cur.finished || !finished) {
			cur.pod = pod
			return cur.version, false, nil
		}
	} else {
		cur = &cachedStatus{}
		c.pods[pod.UID] = cur
	}
	cur.pod, cur.status = pod, next
	cur.finished = cur.finished || finished
	c.bump(cur)
	return cur.version, true, nil
}

// bump makes cur's content a new version and signals Changed. c.mu is
// held.
func (c *Cache) bump(cur *cachedStatus) {
	cur.version++
	cur.changedAt = c.clock.Now()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// SetContainerReadiness applies a readiness probe's change to the cached
// status at once, without a full Generate, as the kubelet's status manager
// does: the container instance's ready flag (a container that does not
// run cannot become ready), then the ContainersReady and Ready conditions,
// whose transition time moves only when their status does. containerID is
// the runtime's ID, without the "containerd://" prefix. It reports false
// when the cache has no such pod or container instance, or nothing
// changed.
func (c *Cache) SetContainerReadiness(uid types.UID, containerID string, ready bool, now time.Time) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.pods[uid]
	if cur == nil {
		return 0, false
	}
	next := *cur.status.DeepCopy()
	cs := findContainerByID(&next, containerID)
	if cs == nil || cs.Ready == ready || (ready && cs.State.Running == nil) {
		return cur.version, false
	}
	cs.Ready = ready
	at := metav1.NewTime(now.UTC().Truncate(time.Second))
	for _, cond := range []v1.PodCondition{
		containersReadyCondition(cur.pod, next.ContainerStatuses, next.Phase),
		podReadyCondition(cur.pod, next.Conditions, next.ContainerStatuses, next.Phase),
	} {
		cond.LastTransitionTime = at
		if old := findCondition(next.Conditions, cond.Type); old != nil && old.Status == cond.Status {
			cond.LastTransitionTime = old.LastTransitionTime
		}
		next.Conditions = replaceOrAppend(next.Conditions, cond)
	}
	cur.status = next
	c.bump(cur)
	return cur.version, true
}

// SetContainerStartup applies a startup probe's change to the cached
// status at once, as the kubelet's status manager does: the container
// instance's started flag, nothing else (readiness follows from the
// readiness probe). containerID is the runtime's ID, without the
// "containerd://" prefix. It reports false when the cache has no such pod
// or container instance, or nothing changed.
func (c *Cache) SetContainerStartup(uid types.UID, containerID string, started bool) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.pods[uid]
	if cur == nil {
		return 0, false
	}
	next := *cur.status.DeepCopy()
	cs := findContainerByID(&next, containerID)
	if cs == nil || (cs.Started != nil && *cs.Started == started) {
		return cur.version, false
	}
	cs.Started = &started
	cur.status = next
	c.bump(cur)
	return cur.version, true
}

// findContainerByID is the status of the container instance with the
// runtime ID id (regular or init), nil if none.
func findContainerByID(s *v1.PodStatus, id string) *v1.ContainerStatus {
	if id == "" {
		return nil
	}
	for _, list := range [][]v1.ContainerStatus{s.ContainerStatuses, s.InitContainerStatuses} {
		for i := range list {
			if _, got, _ := strings.Cut(list[i].ContainerID, "://"); got == id {
				return &list[i]
			}
		}
	}
	return nil
}

// SetPodStatus is Set for callers that only log a refusal (syncloop's
// PodStatusSetter).
func (c *Cache) SetPodStatus(pod *v1.Pod, status v1.PodStatus) {
	if _, _, err := c.Set(pod, status); err != nil {
		c.log.Warn("pod status refused", zap.Error(err))
	}
}

// Get returns a copy of the pod's stored status and its version; false
// when the cache has none.
func (c *Cache) Get(uid types.UID) (v1.PodStatus, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.pods[uid]
	if cur == nil {
		return v1.PodStatus{}, 0, false
	}
	return *cur.status.DeepCopy(), cur.version, true
}

// Delete forgets a pod's status (its pod is gone for good) and signals
// Changed, so that a sink's syncer forgets it too.
func (c *Cache) Delete(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pods[uid]; !ok {
		return
	}
	delete(c.pods, uid)
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// Changed receives a value after one or more statuses changed, for a sink
// that pushes them: changes that come together are signalled once.
func (c *Cache) Changed() <-chan struct{} { return c.changed }

// List returns every pod's status, copies, in no particular order: what a
// sink pushes after Changed.
func (c *Cache) List() []core.PodStatusEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]core.PodStatusEntry, 0, len(c.pods))
	for _, cur := range c.pods {
		out = append(out, cur.entry())
	}
	return out
}

// Versions returns every pod's newest version, without copying its
// status: a Syncer's pass lists them, then copies with Entry only the
// statuses it writes.
func (c *Cache) Versions() []PodVersion {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]PodVersion, 0, len(c.pods))
	for uid, cur := range c.pods {
		out = append(out, PodVersion{UID: uid, Version: cur.version, ChangedAt: cur.changedAt})
	}
	return out
}

// Entry returns one pod's newest status, a copy, as List has it; false
// when the cache has none.
func (c *Cache) Entry(uid types.UID) (core.PodStatusEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.pods[uid]
	if cur == nil {
		return core.PodStatusEntry{}, false
	}
	return cur.entry(), true
}

// entry is a copy of cur as a core.PodStatusEntry; the cache's lock is
// held.
func (cur *cachedStatus) entry() core.PodStatusEntry {
	return core.PodStatusEntry{Pod: cur.pod, Status: *cur.status.DeepCopy(), Version: cur.version,
		ChangedAt: cur.changedAt, Finished: cur.finished}
}

var _ VersionSource = (*Cache)(nil)

// Len is how many pods have a status.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pods)
}
