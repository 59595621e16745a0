package syncloop

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// Defaults of BackOffConfig: the kubelet's, with no feature gate set.
const (
	// DefaultBackOffInitial is the first delay: the kubelet's
	// initialCrashLoopBackOff and imageBackOffPeriod.
	DefaultBackOffInitial = 10 * time.Second
	// DefaultBackOffMax caps the delay: the kubelet's MaxContainerBackOff
	// (crashLoopBackOff.maxContainerRestartPeriod) and MaxImageBackOff.
	DefaultBackOffMax = 300 * time.Second
	// DefaultBackOffResetAfter is how long a container must run before its
	// back-off starts over: the kubelet's fixed 600 s.
	DefaultBackOffResetAfter = 10 * time.Minute
)

// Waiting reasons and event reason of a back-off, with the kubelet's
// spelling. The status manager puts the first two in
// ContainerStateWaiting.Reason, with the messages built below.
const (
	// ReasonCrashLoopBackOff: the container exited and its restart is
	// held back (kubecontainer.ErrCrashLoopBackOff).
	ReasonCrashLoopBackOff = "CrashLoopBackOff"
	// ReasonErrImagePull: the last pull of the container's image failed;
	// the syncs after it report ReasonImagePullBackOff until the back-off
	// ends (images.ErrImagePull).
	ReasonErrImagePull = "ErrImagePull"
	// ReasonImagePullBackOff: the next pull of the image is held back
	// (images.ErrImagePullBackOff).
	ReasonImagePullBackOff = "ImagePullBackOff"
	// EventReasonBackOff is the reason of the events recorded while a
	// restart (type Warning) or a pull (type Normal) is held back.
	EventReasonBackOff = "BackOff"
)

// BackOffConfig configures a BackOff. Zero fields take the defaults.
type BackOffConfig struct {
	// Initial is the first delay that Next records. Default 10 s, or Max
	// when only Max is set and it is smaller (as the kubelet lowers its
	// initial delay to a smaller maxContainerRestartPeriod).
	Initial time.Duration
	// Max caps the delay, which doubles at each failure. Default 300 s.
	// The kubelet's ReduceDefaultCrashLoopBackOffDecay gate (alpha, off)
	// would make it Initial 1 s, Max 60 s; its KubeletCrashLoopBackOffMax
	// gate (beta, on) takes Max from the kubelet configuration, 1 s to
	// 300 s, default 300 s.
	Max time.Duration
	// ResetAfter forgets a key's history once more than that much time
	// separates a failure from the previous Next: a container that was let
	// restart at T (by the BackOff's clock) and finished after
	// T+ResetAfter, strictly, restarts at once, and its next delay is
	// Initial again. Its exit code does not matter, and the worker needs to
	// know only finished_at: the start is the time of Next, which counts
	// the image pull and container creation as running time, as the
	// kubelet counts them. It is also the idle time after which GC
	// forgets a key. Default 10 min, the kubelet's rule for container
	// restarts whatever Max is; its image pulls use 2×Max, which is the
	// same 10 min with the defaults. It must be at least Max, or a delay
	// could be forgotten before it ends.
	ResetAfter time.Duration
	// Clock is where all time comes from. Default: the real clock.
	Clock clock.PassiveClock
}

// BackOff tracks per-key exponential back-off, as the kubelet holds back
// the restarts of a crashing container (CrashLoopBackOff) and the pulls of
// an image that failed to pull (ImagePullBackOff).
//
// Each key has a delay and the time of its last Next. The first Next of a
// key records Initial; each later one doubles the delay, up to Max. A
// failure that comes more than ResetAfter after the last Next starts over
// at Initial.
//
// A container restart follows the kubelet's doBackOff. The first exit is
// restarted at once (with the delay Initial recorded for the next one);
// after the n-th exit the restart waits Initial×2^(n-2), capped at Max,
// counted from the exit's finished_at. The exit code does not matter: a
// container that completed under restartPolicy Always is held back too.
//
//	key := ContainerKey{...}.String()
//	if held, wait := b.InBackOff(key, finishedAt); held {
//		// Waiting, ReasonCrashLoopBackOff,
//		// CrashLoopBackOffMessage(b.Delay(key), ...); sync again in wait.
//		return
//	}
//	b.Next(key, finishedAt)
//	// start the container
//
// An image pull waits from the failed pull instead (see
// InBackOffSinceUpdate):
//
//	key := ImageKey{PodUID: uid, Image: image}.String()
//	if held, wait := b.InBackOffSinceUpdate(key); held {
//		// Waiting, ReasonImagePullBackOff, ImagePullBackOffMessage(...)
//		return
//	}
//	if err := pull(); err != nil {
//		b.Next(key, clk.Now()) // the BackOff's clock
//		// Waiting, ReasonErrImagePull
//	}
//
// The kubelet uses one BackOff for all container restarts and another for
// all image pulls. A BackOff is safe for concurrent use; it starts no
// goroutine and never sleeps. Call GC now and then (the kubelet does in
// its housekeeping, every 2 s) so that keys of pods long gone are
// forgotten.
type BackOff struct {
	initial    time.Duration
	max        time.Duration
	resetAfter time.Duration
	clock      clock.PassiveClock

	mu      sync.Mutex
	entries map[string]backOffEntry
}

type backOffEntry struct {
	delay time.Duration // the current delay
	last  time.Time     // clock time of the last Next
}

// NewBackOff returns a BackOff for cfg. Negative durations, an Initial
// above Max and a ResetAfter below Max are errors wrapping core.ErrInvalid.
func NewBackOff(cfg BackOffConfig) (*BackOff, error) {
	var errs []error
	if cfg.Initial < 0 || cfg.Max < 0 || cfg.ResetAfter < 0 {
		errs = append(errs, fmt.Errorf("Initial %s, Max %s and ResetAfter %s must not be negative", cfg.Initial, cfg.Max, cfg.ResetAfter))
	}
	if len(errs) == 0 {
		if cfg.Max == 0 {
			cfg.Max = DefaultBackOffMax
		}
		if cfg.Initial == 0 {
			cfg.Initial = min(DefaultBackOffInitial, cfg.Max)
		}
		if cfg.ResetAfter == 0 {
			cfg.ResetAfter = DefaultBackOffResetAfter
		}
		if cfg.Initial > cfg.Max {
			errs = append(errs, fmt.Errorf("Initial %s must not exceed Max %s", cfg.Initial, cfg.Max))
		}
		if cfg.ResetAfter < cfg.Max {
			errs = append(errs, fmt.Errorf("ResetAfter %s must be at least Max %s", cfg.ResetAfter, cfg.Max))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("syncloop: back-off: %w: %w", core.ErrInvalid, errors.Join(errs...))
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &BackOff{
		initial:    cfg.Initial,
		max:        cfg.Max,
		resetAfter: cfg.ResetAfter,
		clock:      cfg.Clock,
		entries:    map[string]backOffEntry{},
	}, nil
}

// InBackOff reports whether an action on key whose last attempt ended at
// since (for a container, the finished_at of its last exited instance) is
// still held back, and if so for how long: until since plus the current
// delay. A key never recorded is not held back, nor one whose last Next
// came more than ResetAfter before since: the container ran long enough
// for its back-off to start over. This is the kubelet's
// Backoff.IsInBackOffSince.
func (b *BackOff) InBackOff(key string, since time.Time) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[key]
	if !ok || b.expired(since, e) {
		return false, 0
	}
	if wait := e.delay - b.clock.Since(since); wait > 0 {
		return true, wait
	}
	return false, 0
}

// InBackOffSinceUpdate reports whether an action on key is still held
// back, counting the current delay from its last Next, and if so for how
// long. The kubelet holds back image pulls so, with Next called at each
// failed pull (Backoff.IsInBackOffSinceUpdate).
func (b *BackOff) InBackOffSinceUpdate(key string) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[key]
	if !ok {
		return false, 0
	}
	now := b.clock.Now()
	if b.expired(now, e) {
		return false, 0
	}
	if wait := e.delay - now.Sub(e.last); wait > 0 {
		return true, wait
	}
	return false, 0
}

// Next records that the action on key is taken now, after a failure that
// ended at since, and returns the delay that will hold back the next one:
// Initial for a new key or one whose last Next came more than ResetAfter
// before since, else twice the previous delay, at most Max.
func (b *BackOff) Next(key string, since time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[key]
	switch {
	case !ok || b.expired(since, e):
		e.delay = b.initial
	case e.delay > b.max/2:
		e.delay = b.max
	default:
		e.delay *= 2
	}
	e.last = b.clock.Now()
	b.entries[key] = e
	return e.delay
}

// Delay returns key's current delay, 0 for a key not recorded. It is the
// duration that the kubelet's CrashLoopBackOff message shows.
func (b *BackOff) Delay(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.entries[key].delay
}

// Reset forgets key: its next Next records Initial. The kubelet never
// resets (a container's key changes with its image and resources, and a
// long run resets by ResetAfter); Reset serves an embedder that wants
// more, such as forgetting a pull back-off once the image is present.
func (b *BackOff) Reset(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.entries, key)
}

// GC forgets every key whose last Next is more than ResetAfter old, and
// returns how many it forgot. Such a key has no effect any more: any
// failure now starts over at Initial.
func (b *BackOff) GC() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	n := 0
	for k, e := range b.entries {
		if b.expired(now, e) {
			delete(b.entries, k)
			n++
		}
	}
	return n
}

// Len returns how many keys are recorded.
func (b *BackOff) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.entries)
}

// expired reports whether an event at t comes more than ResetAfter after
// e's last Next.
func (b *BackOff) expired(t time.Time, e backOffEntry) bool {
	return t.Sub(e.last) > b.resetAfter
}

// ContainerKey identifies a container of a pod for its restart back-off:
// the fields of the kubelet's GetBackoffKey. Any change of them (a new
// image, resized resources, a pod recreated with a new UID) gives a new
// key and so a back-off that starts over.
type ContainerKey struct {
	PodName      string
	PodNamespace string
	PodUID       types.UID
	// Container is the container's name.
	Container string
	// Image is the container's image as the spec names it.
	Image string
	// Resources renders the container's resources; equal resources must
	// render equal. The kubelet uses v1.ResourceRequirements.String().
	Resources string
}

// String returns the key as the kubelet builds it: the FNV-64a hash, in
// hex, of the fields joined with "/".
func (k ContainerKey) String() string {
	h := fnv.New64a()
	h.Write([]byte(strings.Join([]string{k.PodName, k.PodNamespace, string(k.PodUID), k.Container, k.Image, k.Resources}, "/")))
	return strconv.FormatUint(h.Sum64(), 16)
}

// ImageKey identifies the pulls of an image for one pod.
type ImageKey struct {
	PodUID types.UID
	Image  string
}

// String returns the key as the kubelet builds it: "<pod UID>_<image>".
func (k ImageKey) String() string {
	return string(k.PodUID) + "_" + k.Image
}

// CrashLoopBackOffMessage is the waiting message of a container whose
// restart is held back, as the kubelet words it, with delay the current
// delay (Delay), not the time left:
//
//	back-off 1m20s restarting failed container=app pod=web_shop(8d1c…)
func CrashLoopBackOffMessage(delay time.Duration, container, podName, podNamespace string, podUID types.UID) string {
	return fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", delay, container, podDesc(podName, podNamespace, podUID))
}

// CrashLoopBackOffEventMessage is the message of the Warning event,
// reason EventReasonBackOff, that the kubelet records at each sync that
// holds a restart back:
//
//	Back-off restarting failed container app in pod web_shop(8d1c…)
func CrashLoopBackOffEventMessage(container, podName, podNamespace string, podUID types.UID) string {
	return fmt.Sprintf("Back-off restarting failed container %s in pod %s", container, podDesc(podName, podNamespace, podUID))
}

// ImagePullBackOffMessage is the waiting message of a container whose
// image pull is held back, as the kubelet words it. lastErr describes the
// failed pull that started the delay; the kubelet passes "<reason>:
// <message>" of that failure, such as "ErrImagePull: failed to pull
// …". Without it the message is the bare one, which is also the message
// of the Normal event, reason EventReasonBackOff:
//
//	Back-off pulling image "nginx:nope"
//	Back-off pulling image "nginx:nope": ErrImagePull: failed to pull …
func ImagePullBackOffMessage(image, lastErr string) string {
	msg := fmt.Sprintf("Back-off pulling image %q", image)
	if lastErr != "" {
		msg += ": " + lastErr
	}
	return msg
}

// podDesc formats a pod as the kubelet's format.PodDesc:
// "<name>_<namespace>(<uid>)".
func podDesc(name, namespace string, uid types.UID) string {
	return fmt.Sprintf("%s_%s(%s)", name, namespace, uid)
}
