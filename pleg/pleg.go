package pleg

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

// Runtime is what the PLEG reads from the container runtime: lists, and
// the status of what changed. A runtime that also implements
// core.EventStreamer is followed through its event stream.
type Runtime interface {
	core.SandboxLister
	core.ContainerLister
	core.SandboxStatuser
	core.ContainerStatuser
}

// EventMode says whether the PLEG follows the runtime's event stream.
type EventMode int

const (
	// EventsAuto follows the event stream when the runtime offers one and
	// relists only as a safety net; otherwise it relists every
	// RelistPeriod. The default.
	EventsAuto EventMode = iota
	// EventsOff always relists every RelistPeriod.
	EventsOff
)

// Defaults of Config.
const (
	DefaultRelistPeriod           = time.Second
	DefaultSandboxRelistPeriod    = time.Second
	DefaultRelistThreshold        = 3 * time.Minute
	DefaultEventedRelistPeriod    = 300 * time.Second
	DefaultEventedRelistThreshold = 10 * time.Minute
	DefaultStreamRetryMin         = time.Second
	DefaultStreamRetryMax         = 30 * time.Second
	DefaultSubscriberBuffer       = 64
	DefaultMaxPendingPerPod       = 16
)

// Config configures a PLEG. Only Runtime is required.
type Config struct {
	// Runtime to observe. Required.
	Runtime Runtime
	// Clock drives relists, health and back-off. Default: the real clock.
	Clock clock.WithTicker
	// Logger. Default: none.
	Logger *zap.Logger
	// Registerer receives the PLEG's metrics (the kubelet's names).
	// Default: none; metrics are still counted.
	Registerer prometheus.Registerer

	// RelistPeriod is the time between the end of one relist and the start
	// of the next, without an event stream. Default 1 s.
	RelistPeriod time.Duration
	// SandboxRelistPeriod: without an event stream, the sandboxes are
	// listed at least this often, and the relists in between list the
	// containers alone; one that finds a container appeared, changed or
	// gone lists the sandboxes too and goes on as a full relist, so that
	// every status is read with the sandboxes freshly listed. A container
	// that dies, what a short RelistPeriod is for, is found as fast as by
	// full relists, while a node where nothing changes pays for one list
	// call per RelistPeriod instead of two (at 100 pods on containerd 1.6
	// the sandboxes' list adds some 60 % to the containers' in the
	// agent, decoding every sandbox's labels and annotations, see
	// BENCHMARKS.md). A sandbox that dies while its containers
	// do not change is found by the next full relist. The cache's global
	// time moves with full relists only. Default 1 s, the kubelet's relist
	// period; at or below RelistPeriod, every relist is a full one.
	SandboxRelistPeriod time.Duration
	// RelistThreshold: Healthy fails when no relist has completed for this
	// long. Default 3 min.
	RelistThreshold time.Duration

	// Events selects whether to follow the runtime's event stream.
	Events EventMode
	// EventedRelistPeriod is the relist period while the event stream is
	// connected: the safety net for events a runtime might not send.
	// Default 300 s.
	EventedRelistPeriod time.Duration
	// EventedRelistThreshold replaces RelistThreshold while the event
	// stream is connected. Default 10 min.
	EventedRelistThreshold time.Duration
	// StreamRetryMin and StreamRetryMax bound the exponential back-off
	// between attempts to (re)connect the event stream. Defaults 1 s, 30 s.
	StreamRetryMin, StreamRetryMax time.Duration

	// SubscriberBuffer is the channel capacity of each Watch. Default 64.
	SubscriberBuffer int
	// MaxPendingPerPod is how many events of one pod wait for a slow
	// subscriber before they are coalesced into one PodSync. Default 16.
	MaxPendingPerPod int
}

func (c Config) withDefaults() (Config, error) {
	if c.Runtime == nil {
		return c, fmt.Errorf("pleg: Config.Runtime is required: %w", core.ErrInvalid)
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	setDefault(&c.RelistPeriod, DefaultRelistPeriod)
	setDefault(&c.RelistThreshold, DefaultRelistThreshold)
	setDefault(&c.SandboxRelistPeriod, DefaultSandboxRelistPeriod)
	setDefault(&c.EventedRelistPeriod, DefaultEventedRelistPeriod)
	setDefault(&c.EventedRelistThreshold, DefaultEventedRelistThreshold)
	setDefault(&c.StreamRetryMin, DefaultStreamRetryMin)
	setDefault(&c.StreamRetryMax, DefaultStreamRetryMax)
	if c.SubscriberBuffer == 0 {
		c.SubscriberBuffer = DefaultSubscriberBuffer
	}
	if c.MaxPendingPerPod == 0 {
		c.MaxPendingPerPod = DefaultMaxPendingPerPod
	}
	var errs []error
	for name, d := range map[string]time.Duration{
		"RelistPeriod": c.RelistPeriod, "RelistThreshold": c.RelistThreshold, "SandboxRelistPeriod": c.SandboxRelistPeriod,
		"EventedRelistPeriod": c.EventedRelistPeriod, "EventedRelistThreshold": c.EventedRelistThreshold,
		"StreamRetryMin": c.StreamRetryMin, "StreamRetryMax": c.StreamRetryMax,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %s must be positive", name, d))
		}
	}
	if c.RelistThreshold <= c.RelistPeriod {
		errs = append(errs, fmt.Errorf("RelistThreshold %s must exceed RelistPeriod %s", c.RelistThreshold, c.RelistPeriod))
	}
	if c.EventedRelistThreshold <= c.EventedRelistPeriod {
		errs = append(errs, fmt.Errorf("EventedRelistThreshold %s must exceed EventedRelistPeriod %s", c.EventedRelistThreshold, c.EventedRelistPeriod))
	}
	if c.StreamRetryMax < c.StreamRetryMin {
		errs = append(errs, fmt.Errorf("StreamRetryMax %s is below StreamRetryMin %s", c.StreamRetryMax, c.StreamRetryMin))
	}
	if c.SubscriberBuffer < 0 || c.MaxPendingPerPod < 0 {
		errs = append(errs, fmt.Errorf("SubscriberBuffer %d and MaxPendingPerPod %d must be positive", c.SubscriberBuffer, c.MaxPendingPerPod))
	}
	if c.Events != EventsAuto && c.Events != EventsOff {
		errs = append(errs, fmt.Errorf("Events %d is not an EventMode", c.Events))
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("pleg: %w: %w", core.ErrInvalid, errors.Join(errs...))
	}
	return c, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

// PLEG is the pod lifecycle event generator. Create it with New, start it
// with Run, read events from Watch and statuses from Cache.
type PLEG struct {
	cfg     Config
	log     *zap.Logger
	metrics *metrics
	cache   *Cache
	fanout  *fanout

	// mu serialises relists (full and per pod) and guards the records.
	mu sync.Mutex
	records

	// health and mode, read by Healthy from any goroutine.
	hmu        sync.Mutex
	lastRelist time.Time // end of the last successful full relist
	lastStart  time.Time // start of the last full relist, for the interval metric
	streaming  bool      // the event stream is connected

	kick chan struct{} // wakes Run for an early full relist
	ran  chan struct{} // closed when Run starts
}

// New returns a PLEG for cfg. It starts nothing; call Run.
func New(cfg Config) (*PLEG, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("pleg: register metrics: %w", err)
	}
	p := &PLEG{
		cfg:     cfg,
		log:     cfg.Logger,
		metrics: m,
		cache:   newCache(),
		kick:    make(chan struct{}, 1),
		ran:     make(chan struct{}),
		records: newRecords(),
	}
	p.fanout = newFanout(cfg.MaxPendingPerPod, func(n int) { m.discardEvents.Add(float64(n)) })
	return p, nil
}

// Cache is the pod status cache the PLEG keeps up to date.
func (p *PLEG) Cache() *Cache { return p.cache }

// Watch subscribes to pod lifecycle events. Every subscriber sees every
// event, in order per pod; a subscriber that falls behind gets a PodSync
// for a pod in place of that pod's pending events (counted in
// Subscription.Coalesced and kubelet_pleg_discard_events), never silence.
// Close the subscription when done.
func (p *PLEG) Watch() *Subscription {
	return p.fanout.subscribe(p.cfg.SubscriberBuffer)
}

// Healthy reports whether the PLEG has relisted recently, in the
// kubelet's words, for a node Ready condition.
func (p *PLEG) Healthy() (bool, error) {
	p.hmu.Lock()
	last, streaming := p.lastRelist, p.streaming
	p.hmu.Unlock()
	if last.IsZero() {
		return false, errors.New("pleg has yet to be successful")
	}
	threshold := p.cfg.RelistThreshold
	if streaming {
		threshold = p.cfg.EventedRelistThreshold
	}
	if elapsed := p.cfg.Clock.Since(last); elapsed > threshold {
		return false, fmt.Errorf("pleg was last seen active %v ago; threshold is %v", elapsed, threshold)
	}
	return true, nil
}

// Streaming reports whether the PLEG follows a connected event stream.
func (p *PLEG) Streaming() bool {
	p.hmu.Lock()
	defer p.hmu.Unlock()
	return p.streaming
}

// RequestRelist asks Run for a full relist as soon as possible, for
// example after the sync loop acted on many pods. It does not block.
func (p *PLEG) RequestRelist() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Run relists until ctx ends, following the runtime's event stream when
// there is one, and returns ctx's error. Call it once.
func (p *PLEG) Run(ctx context.Context) error {
	select {
	case <-p.ran:
		return errors.New("pleg: Run called twice")
	default:
		close(p.ran)
	}
	defer p.fanout.close()

	var streamEvents chan podUIDs
	if es, ok := p.cfg.Runtime.(core.EventStreamer); ok && p.cfg.Events == EventsAuto {
		streamEvents = make(chan podUIDs, 1)
		stream := &streamer{p: p, es: es, out: streamEvents}
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			stream.run(ctx)
		}()
	} else {
		p.log.Info("relisting the runtime only", zap.Duration("period", p.cfg.RelistPeriod),
			zap.String("reason", map[bool]string{true: "events are off", false: "the runtime has no event stream"}[p.cfg.Events == EventsOff]))
	}

	if err := p.Relist(ctx); err != nil && ctx.Err() == nil {
		p.log.Error("relist failed", zap.Error(err))
	}
	timer := p.cfg.Clock.NewTimer(p.period())
	defer timer.Stop()
	for {
		full := true
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C():
			full = p.fullRelistDue()
		case <-p.kick:
			if !timer.Stop() {
				select {
				case <-timer.C():
				default:
				}
			}
		case uids := <-streamEvents:
			p.relistBatch(ctx, uids)
			continue
		}
		if !full {
			if err := p.relistContainers(ctx); err != nil && ctx.Err() == nil {
				p.log.Warn("relist of the containers failed", zap.Error(err))
			}
		} else if err := p.Relist(ctx); err != nil && ctx.Err() == nil {
			p.log.Error("relist failed", zap.Error(err))
		}
		timer.Reset(p.period())
	}
}

// relistBatch relists the pods of a batch of events: each pod alone, or,
// when the batch concerns many of the pods (a burst: a node starting or
// stopping them all at once), every pod in one full relist, its pods
// inspected whether their state changed or not. Two list calls then
// replace two per pod.
func (p *PLEG) relistBatch(ctx context.Context, uids podUIDs) {
	if p.markForFullRelist(uids) {
		if err := p.Relist(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("relist of a burst of events failed", zap.Int("pods", len(uids)), zap.Error(err))
		}
		return
	}
	for _, uid := range uids {
		if err := p.RelistPod(ctx, uid); err != nil && ctx.Err() == nil {
			p.log.Warn("relist of one pod failed", zap.String("podUID", string(uid)), zap.Error(err))
		}
	}
}

// markForFullRelist reports whether a full relist is the cheaper way to
// relist the pods of uids: when they are more than 2 plus a twentieth of
// the pods the PLEG knows (a runtime's filtered list still goes over
// every object, so a pod's relist costs about as much as a full one at
// 100 pods, a tenth of it at 1,000). If so, it marks them to be
// inspected by that relist.
func (p *PLEG) markForFullRelist(uids podUIDs) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(uids) <= 2+len(p.pods)/20 {
		return false
	}
	for _, uid := range uids {
		if pod := p.pods[uid]; pod != nil {
			pod.reinspect = true
		}
	}
	return true
}

// fullRelistDue reports whether the next periodic relist must list the
// sandboxes too: always while streaming, else once SandboxRelistPeriod
// has passed since the last full relist started.
func (p *PLEG) fullRelistDue() bool {
	if p.Streaming() || p.cfg.SandboxRelistPeriod <= p.cfg.RelistPeriod {
		return true
	}
	p.hmu.Lock()
	last := p.lastStart
	p.hmu.Unlock()
	return last.IsZero() || p.cfg.Clock.Since(last) >= p.cfg.SandboxRelistPeriod
}

func (p *PLEG) period() time.Duration {
	if p.Streaming() {
		return p.cfg.EventedRelistPeriod
	}
	return p.cfg.RelistPeriod
}

// podUIDs is a batch of pods the event stream says changed.
type podUIDs []types.UID
