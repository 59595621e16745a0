package pleg

import (
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/core"
)

// Subscription is one consumer's stream of pod lifecycle events.
//
// Events that do not fit in the channel wait in a queue per pod. When
// more than the limit of one pod's events wait (Config.MaxPendingPerPod),
// they are replaced by a single PodSync for the pod, which also absorbs
// the pod's further events until it is delivered. So a slow consumer
// never blocks the publisher, holds at most the limit of waiting events
// per pod, and never misses a pod: it gets a PodSync instead, and should
// then read the pod's newest status from the Cache.
//
// Each Subscription runs one goroutine, which moves waiting events into
// the channel as the consumer reads it; it ends with Close, or when the
// PLEG's Run returns.
type Subscription struct {
	events    chan core.PodLifecycleEvent
	wake      chan struct{} // capacity 1: events are waiting
	done      chan struct{} // closed by Close
	exited    chan struct{} // closed when the pump has closed events and returned
	closeOnce sync.Once
	owner     *fanout
	limit     int
	coalesced atomic.Uint64

	mu     sync.Mutex
	closed bool
	// inflight: the pump holds an event it is sending, so nothing else may
	// be sent before it.
	inflight bool
	// order lists the pods with waiting events, from order[head], in the
	// order they got their first waiting event; pending holds them.
	order    []types.UID
	head     int
	pending  map[types.UID]*podQueue
	npending int
	free     []*podQueue
}

// podQueue holds one pod's waiting events, from events[next].
type podQueue struct {
	events []core.PodLifecycleEvent
	next   int
	synced bool // events is a single coalesced PodSync
}

// Events delivers events in the order observed per pod. The channel is
// closed after Close, and when the PLEG's Run returns.
func (s *Subscription) Events() <-chan core.PodLifecycleEvent { return s.events }

// Coalesced reports how many events this subscriber did not receive
// individually because they were merged into a PodSync for their pod while
// it lagged.
func (s *Subscription) Coalesced() uint64 { return s.coalesced.Load() }

// Close ends the subscription and drops the events waiting outside the
// channel; those already in it can still be read. When Close returns, the
// channel is closed and the goroutine has ended. It is idempotent and safe
// to call concurrently with anything.
func (s *Subscription) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.order, s.pending, s.free, s.npending = nil, nil, nil, 0
		s.mu.Unlock()
		close(s.done)
		if s.owner != nil {
			s.owner.remove(s)
		}
	})
	<-s.exited
}

// deliver queues events for the subscriber and sends what fits into its
// channel without blocking. It returns how many events it coalesced.
func (s *Subscription) deliver(events []core.PodLifecycleEvent) int {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0
	}
	if !s.inflight {
		s.drain()
	}
	n := 0
	for _, ev := range events {
		if s.npending == 0 && !s.inflight {
			select {
			case s.events <- ev:
				continue
			default:
			}
		}
		n += s.enqueue(ev)
	}
	waiting := s.npending > 0
	s.mu.Unlock()
	if waiting {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	if n > 0 {
		s.coalesced.Add(uint64(n))
	}
	return n
}

// enqueue appends ev to its pod's waiting events, coalescing them into a
// PodSync when they would exceed the limit. It returns how many events it
// coalesced. s.mu must be held.
func (s *Subscription) enqueue(ev core.PodLifecycleEvent) int {
	q := s.pending[ev.PodUID]
	if q == nil {
		if k := len(s.free); k > 0 {
			q, s.free = s.free[k-1], s.free[:k-1]
		} else {
			q = &podQueue{events: make([]core.PodLifecycleEvent, 0, min(s.limit, 4))}
		}
		s.pending[ev.PodUID] = q
		s.order = append(s.order, ev.PodUID)
	}
	switch {
	case q.synced:
		return 1
	case len(q.events)-q.next < s.limit:
		if q.next > 0 && len(q.events) == cap(q.events) {
			// Reuse the delivered prefix rather than grow.
			live := copy(q.events, q.events[q.next:])
			clear(q.events[live:])
			q.events, q.next = q.events[:live], 0
		}
		q.events = append(q.events, ev)
		s.npending++
		return 0
	}
	n := len(q.events) - q.next + 1
	clear(q.events)
	q.events = append(q.events[:0], core.PodLifecycleEvent{PodUID: ev.PodUID, Type: core.PodSync})
	q.next, q.synced = 0, true
	s.npending -= n - 2
	return n
}

// pop removes the first waiting event. s.mu must be held.
func (s *Subscription) pop() (core.PodLifecycleEvent, bool) {
	if s.npending == 0 {
		return core.PodLifecycleEvent{}, false
	}
	uid := s.order[s.head]
	q := s.pending[uid]
	ev := q.events[q.next]
	q.events[q.next] = core.PodLifecycleEvent{}
	q.next++
	s.npending--
	if q.next == len(q.events) {
		delete(s.pending, uid)
		q.events, q.next, q.synced = q.events[:0], 0, false
		if len(s.free) < 16 {
			s.free = append(s.free, q)
		}
		s.order[s.head] = ""
		s.head++
		if s.head == len(s.order) {
			s.order, s.head = s.order[:0], 0
		} else if s.head >= 64 && s.head*2 >= len(s.order) {
			s.order, s.head = s.order[:copy(s.order, s.order[s.head:])], 0
		}
	}
	return ev, true
}

// drain sends waiting events into the channel while it has room. s.mu
// must be held and no event in flight.
func (s *Subscription) drain() {
	for s.npending > 0 {
		uid := s.order[s.head]
		q := s.pending[uid]
		select {
		case s.events <- q.events[q.next]:
			s.pop()
		default:
			return
		}
	}
}

// pump moves waiting events into the channel, blocking while it is full,
// until Close.
func (s *Subscription) pump() {
	defer close(s.exited)
	defer close(s.events)
	for {
		s.mu.Lock()
		s.inflight = false
		if s.closed {
			s.mu.Unlock()
			return
		}
		s.drain()
		ev, ok := s.pop()
		s.inflight = ok
		s.mu.Unlock()
		if !ok {
			select {
			case <-s.wake:
				continue
			case <-s.done:
				return
			}
		}
		select {
		case s.events <- ev:
		case <-s.done:
			return
		}
	}
}

// waiting reports how many events wait for the subscriber outside its
// channel, for tests.
func (s *Subscription) waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.npending
	if s.inflight && !s.closed {
		n++
	}
	return n
}

// fanout publishes every event to every subscription.
type fanout struct {
	limit      int
	onCoalesce func(n int)

	mu     sync.Mutex // serialises changes to subs
	closed bool
	subs   atomic.Pointer[[]*Subscription] // copy on write, read by publish without locks
}

// newFanout returns a fanout that coalesces a subscriber's waiting events
// of one pod beyond perPodLimit (default DefaultMaxPendingPerPod), and
// reports how many events it coalesced to onCoalesce (which may be nil).
func newFanout(perPodLimit int, onCoalesce func(n int)) *fanout {
	if perPodLimit <= 0 {
		perPodLimit = DefaultMaxPendingPerPod
	}
	return &fanout{limit: perPodLimit, onCoalesce: onCoalesce}
}

// subscribe returns a new subscription whose channel holds buffer events
// (default DefaultSubscriberBuffer), and starts its goroutine. After close
// it returns a closed subscription.
func (f *fanout) subscribe(buffer int) *Subscription {
	if buffer <= 0 {
		buffer = DefaultSubscriberBuffer
	}
	s := &Subscription{
		events:  make(chan core.PodLifecycleEvent, buffer),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		exited:  make(chan struct{}),
		owner:   f,
		limit:   f.limit,
		pending: map[types.UID]*podQueue{},
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		s.owner = nil
		s.closed = true
		s.closeOnce.Do(func() {})
		close(s.done)
		close(s.events)
		close(s.exited)
		return s
	}
	var subs []*Subscription
	if old := f.subs.Load(); old != nil {
		subs = append(subs, *old...)
	}
	subs = append(subs, s)
	f.subs.Store(&subs)
	go s.pump()
	return s
}

// remove forgets s.
func (f *fanout) remove(s *Subscription) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.subs.Load()
	if old == nil {
		return
	}
	subs := make([]*Subscription, 0, len(*old))
	for _, x := range *old {
		if x != s {
			subs = append(subs, x)
		}
	}
	f.subs.Store(&subs)
}

// publish hands events to every subscription. It never blocks on a slow
// subscriber.
func (f *fanout) publish(events []core.PodLifecycleEvent) {
	subs := f.subs.Load()
	if subs == nil || len(events) == 0 {
		return
	}
	n := 0
	for _, s := range *subs {
		n += s.deliver(events)
	}
	if n > 0 && f.onCoalesce != nil {
		f.onCoalesce(n)
	}
}

// close closes every subscription, and those subscribed later.
func (f *fanout) close() {
	f.mu.Lock()
	f.closed = true
	old := f.subs.Swap(nil)
	f.mu.Unlock()
	if old == nil {
		return
	}
	for _, s := range *old {
		s.Close()
	}
}
