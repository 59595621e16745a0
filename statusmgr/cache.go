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
)

// CacheConfig configures a Cache.
type CacheConfig struct {
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
	log *zap.Logger

	mu      sync.Mutex
	pods    map[types.UID]*cachedStatus
	changed chan struct{}
}

type cachedStatus struct {
	pod     *v1.Pod
	status  v1.PodStatus
	version uint64
}

// NewCache returns an empty Cache.
func NewCache(cfg CacheConfig) (*Cache, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &Cache{log: cfg.Logger, pods: map[types.UID]*cachedStatus{}, changed: make(chan struct{}, 1)}, nil
}

// Set stores status as pod's newest. It returns the version stored and
// whether the status changed; an illegal transition is an error wrapping
// core.ErrInvalid, and nothing is stored. Neither argument is modified.
func (c *Cache) Set(pod *v1.Pod, status v1.PodStatus) (version uint64, changed bool, err error) {
	next := *status.DeepCopy()
	normalize(pod, &next)
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.pods[pod.UID]
	if cur != nil {
		if err := CheckTransition(pod, &cur.status, &next); err != nil {
			return cur.version, false, fmt.Errorf("statusmgr: status of pod %s/%s refused: %w", pod.Namespace, pod.Name, err)
		}
		if equality.Semantic.DeepEqual(cur.status, next) {
			cur.pod = pod
			return cur.version, false, nil
		}
	} else {
		cur = &cachedStatus{}
		c.pods[pod.UID] = cur
	}
	cur.pod, cur.status = pod, next
	cur.version++
	select {
	case c.changed <- struct{}{}:
	default:
	}
	return cur.version, true, nil
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
	var cs *v1.ContainerStatus
	for _, list := range [][]v1.ContainerStatus{next.ContainerStatuses, next.InitContainerStatuses} {
		for i := range list {
			if _, id, _ := strings.Cut(list[i].ContainerID, "://"); id == containerID && containerID != "" {
				cs = &list[i]
			}
		}
	}
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
	cur.version++
	select {
	case c.changed <- struct{}{}:
	default:
	}
	return cur.version, true
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

// Delete forgets a pod's status (its pod is gone for good).
func (c *Cache) Delete(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pods, uid)
}

// Changed receives a value after one or more statuses changed, for a sink
// that pushes them: changes that come together are signalled once.
func (c *Cache) Changed() <-chan struct{} { return c.changed }

// Entry is one pod's cached status.
type Entry struct {
	Pod     *v1.Pod
	Status  v1.PodStatus
	Version uint64
}

// List returns every pod's status, copies, in no particular order: what a
// sink pushes after Changed.
func (c *Cache) List() []Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Entry, 0, len(c.pods))
	for _, cur := range c.pods {
		out = append(out, Entry{Pod: cur.pod, Status: *cur.status.DeepCopy(), Version: cur.version})
	}
	return out
}

// Len is how many pods have a status.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pods)
}
