package runtimetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// Defaults of Config.
const (
	DefaultRuntimeName = "runtimetest"
	DefaultVersion     = "v0.1.0"
	DefaultEventBuffer = 1024
	// DefaultImageSize is the size of the images in Config.Images and
	// Config.PullableImages.
	DefaultImageSize = 4 << 20
)

// Config configures a simulated runtime. The zero value is a ready runtime
// on the real clock, with no images and no event stream.
type Config struct {
	// Clock is the source of all time: timestamps, timed exits, stop grace
	// periods, exec durations and injected delays. Default: the real clock.
	// It must offer AfterFunc (k8s.io/utils/clock.RealClock and the fake
	// clock of k8s.io/utils/clock/testing do).
	Clock clock.WithDelayedExecution
	// Logger receives debug messages about lifecycle transitions. Default:
	// none.
	Logger *zap.Logger
	// RuntimeName and Version are what Version reports. Defaults
	// DefaultRuntimeName and DefaultVersion.
	RuntimeName string
	Version     string
	// Images are present from the start, each DefaultImageSize bytes.
	// References are normalised as containerd does: "busybox" is
	// "docker.io/library/busybox:latest".
	Images []string
	// PullableImages can be pulled with PullImage; any other reference is
	// not found in the simulated registry.
	PullableImages []string
	// Events enables GetContainerEvents. When false the call fails with
	// core.ErrUnimplemented, as on containerd 1.6.
	Events bool
	// EventBuffer is how many events each event stream may hold before its
	// consumer reads them; a stream that overflows is broken. Default
	// DefaultEventBuffer.
	EventBuffer int
}

// Runtime is an in-memory CRI runtime. It implements core.Runtime and
// core.EventStreamer and is safe for concurrent use. Every object it returns
// is freshly allocated: callers may keep and modify results.
type Runtime struct {
	clock       clock.WithDelayedExecution
	log         *zap.Logger
	name        string
	version     string
	events      bool
	eventBuffer int
	// fire is the callback of every exit timer. Fake clocks run AfterFunc
	// callbacks while holding their own lock, so it must not call back into
	// the clock on the same goroutine.
	fire func()

	mu             sync.Mutex
	sandboxes      map[string]*sandbox
	sandboxOrder   []*sandbox // creation order; removed entries are compacted lazily
	sandboxNames   map[string]string
	containers     map[string]*container
	containerOrder []*container
	containerNames map[string]string
	seq            uint64 // containers created so far
	exits          exitQueue
	ips            ipPool
	images         imageStore
	imageFs        *fsUsage // nil: computed from images and writable layers
	conditions     []*runtimeapi.RuntimeCondition
	rules          []rule
	faults         map[string][]*Fault
	calls          map[string]int
	subs           map[*subscriber]struct{}
}

var (
	_ core.Runtime       = (*Runtime)(nil)
	_ core.EventStreamer = (*Runtime)(nil)
)

// New returns a simulated runtime. It starts no goroutines. Errors wrap
// core.ErrInvalid.
func New(cfg Config) (*Runtime, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.RuntimeName == "" {
		cfg.RuntimeName = DefaultRuntimeName
	}
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	if cfg.EventBuffer == 0 {
		cfg.EventBuffer = DefaultEventBuffer
	}
	if cfg.EventBuffer < 0 {
		return nil, fmt.Errorf("runtimetest: EventBuffer %d: %w: must be positive", cfg.EventBuffer, core.ErrInvalid)
	}
	r := &Runtime{
		clock:          cfg.Clock,
		log:            cfg.Logger,
		name:           cfg.RuntimeName,
		version:        cfg.Version,
		events:         cfg.Events,
		eventBuffer:    cfg.EventBuffer,
		sandboxes:      make(map[string]*sandbox),
		sandboxNames:   make(map[string]string),
		containers:     make(map[string]*container),
		containerNames: make(map[string]string),
		ips:            newIPPool(),
		images:         newImageStore(),
		conditions: []*runtimeapi.RuntimeCondition{
			{Type: runtimeapi.RuntimeReady, Status: true},
			{Type: runtimeapi.NetworkReady, Status: true},
		},
		faults: make(map[string][]*Fault),
		calls:  make(map[string]int),
		subs:   make(map[*subscriber]struct{}),
	}
	r.fire = func() { go r.settleNow() }
	for _, ref := range cfg.Images {
		if err := r.AddImage(ref, DefaultImageSize); err != nil {
			return nil, fmt.Errorf("runtimetest: Images: %w", err)
		}
	}
	for _, ref := range cfg.PullableImages {
		if err := r.AddPullableImage(ref, DefaultImageSize); err != nil {
			return nil, fmt.Errorf("runtimetest: PullableImages: %w", err)
		}
	}
	return r, nil
}

// settleNow applies the exits that are due; exit timers call it.
func (r *Runtime) settleNow() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.settleLocked()
}

// settleLocked applies every scheduled exit that is due, in time order, and
// returns the current time. Every call observes the runtime through it, so
// state is exact at the clock's current time even before exit timers run.
func (r *Runtime) settleLocked() time.Time {
	now := r.clock.Now()
	for len(r.exits) > 0 && !r.exits[0].dueAt.After(now) {
		c := r.exits[0]
		r.exitLocked(c, c.dueAt, c.dueExit)
	}
	return now
}

// wait blocks for d on the injected clock, or until ctx ends.
func (r *Runtime) wait(ctx context.Context, d time.Duration) error {
	t := r.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctxErr(ctx)
	}
}

// ctxErr is ctx's error, classed as core.ErrTimeout when its deadline
// passed, as the CRI adapter classes a deadline.
func ctxErr(ctx context.Context) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", core.ErrTimeout, err)
	}
	return err
}

// newID returns 64 random hex digits, like containerd's IDs.
func newID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Version implements core.StatusChecker.
func (r *Runtime) Version(ctx context.Context) (*runtimeapi.VersionResponse, error) {
	if err := r.enter(ctx, "Version"); err != nil {
		return nil, err
	}
	return &runtimeapi.VersionResponse{
		Version:           "0.1.0",
		RuntimeName:       r.name,
		RuntimeVersion:    r.version,
		RuntimeApiVersion: "v1",
	}, nil
}

// Status implements core.StatusChecker. It reports RuntimeReady and
// NetworkReady, true unless changed with SetCondition. verbose is ignored.
func (r *Runtime) Status(ctx context.Context, verbose bool) (*runtimeapi.StatusResponse, error) {
	if err := r.enter(ctx, "Status"); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	conds := make([]*runtimeapi.RuntimeCondition, len(r.conditions))
	for i, c := range r.conditions {
		conds[i] = &runtimeapi.RuntimeCondition{Type: c.Type, Status: c.Status, Reason: c.Reason, Message: c.Message}
	}
	return &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: conds}}, nil
}

// SetCondition sets a runtime condition that Status reports, adding it if
// it is new. While NetworkReady is false, RunPodSandbox fails for sandboxes
// on the pod network (not host network) with core.ErrUnavailable, as
// containerd fails without a CNI configuration.
func (r *Runtime) SetCondition(condType string, status bool, reason, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conditions {
		if c.Type == condType {
			c.Status, c.Reason, c.Message = status, reason, message
			return
		}
	}
	r.conditions = append(r.conditions, &runtimeapi.RuntimeCondition{Type: condType, Status: status, Reason: reason, Message: message})
}

// conditionLocked reports a condition's status and reason; an absent
// condition is false.
func (r *Runtime) conditionLocked(condType string) (bool, string) {
	for _, c := range r.conditions {
		if c.Type == condType {
			return c.Status, c.Reason
		}
	}
	return false, "condition not reported"
}
