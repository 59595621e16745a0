package kubeapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// Recorder records an event about an API object: eventtype is
// v1.EventTypeNormal or v1.EventTypeWarning, reason a short CamelCase
// word, the message formatted from messageFmt and args. It never blocks and
// never fails: an event that cannot be sent is dropped. A subsystem that
// records events declares an interface of its own with this method, so that
// it needs neither this package nor client-go; EventRecorder, NopRecorder
// and MemoryRecorder all satisfy it.
type Recorder interface {
	Eventf(obj runtime.Object, eventtype, reason, messageFmt string, args ...any)
}

// ComponentKubelet is the source component of the events a kubelet
// records, and the default of EventRecorderConfig.Component.
const ComponentKubelet = "kubelet"

// maxPendingEvents bounds the events kept for an EventRecorder whose Run
// has not started yet; as many as client-go's broadcaster queues.
const maxPendingEvents = 1000

// EventRecorderConfig configures an EventRecorder.
type EventRecorderConfig struct {
	// Client of the apiserver. Required.
	Client kubernetes.Interface
	// NodeName is the host of the events' source and their reporting
	// instance. Required.
	NodeName string
	// Component is the events' source component and reporting
	// controller. Default ComponentKubelet.
	Component string
	// Clock ages client-go's event correlator (its spam filter and the
	// aggregation of similar events). The events' timestamps are client-go's
	// own: the wall clock when they are sent on.
	Clock  clock.PassiveClock
	Logger *zap.Logger
}

// EventRecorder records events in the apiserver as the kubelet does: a
// client-go record.EventBroadcaster whose recorder stamps every event with
// the source {Component, Host: NodeName}, correlates similar events
// (counting repeats, aggregating bursts, rate limiting per object) and
// writes them in the namespace of the object they are about (events about
// cluster-scoped objects such as the Node go to "default"), trying each up
// to 12 times, 10 s apart, while the apiserver cannot be reached; an event
// the apiserver rejects is dropped.
//
// Eventf may be called before Run starts: up to 1000 events are kept and
// sent once it does. After Run returns, events are dropped.
type EventRecorder struct {
	cfg EventRecorderConfig
	log *zap.Logger

	mu       sync.Mutex
	recorder record.EventRecorder // nil until Run starts, and again after it ends
	pending  []pendingEvent
	started  bool // Run was called
	stopped  bool // Run has ended
}

type pendingEvent struct {
	obj                     runtime.Object
	eventtype, reason, note string
}

var _ Recorder = (*EventRecorder)(nil)

// NewEventRecorder returns an EventRecorder for cfg.
func NewEventRecorder(cfg EventRecorderConfig) (*EventRecorder, error) {
	var errs []error
	if cfg.Client == nil {
		errs = append(errs, errors.New("Client is required"))
	}
	if cfg.NodeName == "" {
		errs = append(errs, errors.New("NodeName is required"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("kubeapi: event recorder: %w: %w", core.ErrInvalid, errors.Join(errs...))
	}
	if cfg.Component == "" {
		cfg.Component = ComponentKubelet
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &EventRecorder{cfg: cfg, log: cfg.Logger}, nil
}

// Run sends the events recorded to the apiserver until ctx ends; the
// events recorded before it started go first. It returns ctx's error. Run
// once.
func (r *EventRecorder) Run(ctx context.Context) error {
	r.mu.Lock()
	started := r.started
	r.started = true
	r.mu.Unlock()
	if started {
		return errors.New("kubeapi: event recorder: Run called twice")
	}
	logger := zapr.NewLogger(r.log)
	bctx, cancel := context.WithCancel(klog.NewContext(ctx, logger))
	defer cancel()
	b := record.NewBroadcaster(record.WithContext(bctx), record.WithCorrelatorOptions(record.CorrelatorOptions{Clock: r.cfg.Clock}))
	defer b.Shutdown()
	b.StartEventWatcher(func(e *v1.Event) {
		r.log.Debug("event", zap.String("object", e.InvolvedObject.Kind+" "+e.InvolvedObject.Namespace+"/"+e.InvolvedObject.Name),
			zap.String("type", e.Type), zap.String("reason", e.Reason), zap.String("message", e.Message))
	})
	b.StartRecordingToSink(&eventSink{ctx: bctx, events: r.cfg.Client.CoreV1().Events("")})
	rec := b.NewRecorder(scheme.Scheme, v1.EventSource{Component: r.cfg.Component, Host: r.cfg.NodeName}).WithLogger(logger)

	r.mu.Lock()
	for _, e := range r.pending {
		rec.Event(e.obj, e.eventtype, e.reason, e.note)
	}
	r.pending = nil
	r.recorder = rec
	r.mu.Unlock()

	<-ctx.Done()
	r.mu.Lock()
	r.recorder, r.stopped = nil, true
	r.mu.Unlock()
	return ctx.Err()
}

// Eventf records an event about obj (any API object, or a
// *v1.ObjectReference such as NodeReference's). See Recorder.
func (r *EventRecorder) Eventf(obj runtime.Object, eventtype, reason, messageFmt string, args ...any) {
	note := fmt.Sprintf(messageFmt, args...)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.recorder != nil:
		r.recorder.Event(obj, eventtype, reason, note)
	case r.stopped:
		r.log.Debug("event dropped: the recorder has stopped", zap.String("reason", reason), zap.String("message", note))
	case len(r.pending) >= maxPendingEvents:
		r.log.Warn("event dropped: too many events before Run", zap.String("reason", reason), zap.String("message", note))
	default:
		r.pending = append(r.pending, pendingEvent{obj: obj, eventtype: eventtype, reason: reason, note: note})
	}
}

// eventSink writes events with the recorder's context, so that a write in
// flight ends with Run.
type eventSink struct {
	ctx    context.Context
	events corev1client.EventInterface
}

func (s *eventSink) Create(e *v1.Event) (*v1.Event, error) {
	return s.events.CreateWithEventNamespaceWithContext(s.ctx, e)
}

func (s *eventSink) Update(e *v1.Event) (*v1.Event, error) {
	return s.events.UpdateWithEventNamespaceWithContext(s.ctx, e)
}

func (s *eventSink) Patch(e *v1.Event, data []byte) (*v1.Event, error) {
	return s.events.PatchWithEventNamespaceWithContext(s.ctx, e, data)
}

// NodeReference is the reference events about the node nodeName are
// recorded against, as the kubelet records them: kind Node, API version
// v1, and the Node's UID when known ("" otherwise; NodeStatus.NodeRef
// fills it in once the node is registered).
func NodeReference(nodeName string, uid types.UID) *v1.ObjectReference {
	return &v1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: nodeName, UID: uid}
}

// NopRecorder is a Recorder that drops every event.
type NopRecorder struct{}

var _ Recorder = NopRecorder{}

// Eventf does nothing.
func (NopRecorder) Eventf(runtime.Object, string, string, string, ...any) {}

// RecordedEvent is one event a MemoryRecorder kept.
type RecordedEvent struct {
	// Object is the object the event is about, as given to Eventf.
	Object runtime.Object
	// Type is v1.EventTypeNormal or v1.EventTypeWarning.
	Type    string
	Reason  string
	Message string
}

// String is "<Type> <Reason> <Message>", the way kubectl lists an event.
func (e RecordedEvent) String() string { return e.Type + " " + e.Reason + " " + e.Message }

// MemoryRecorder is a Recorder that keeps every event in memory, in the
// order recorded, for tests. It is safe for concurrent use; the zero value
// is ready.
type MemoryRecorder struct {
	mu     sync.Mutex
	events []RecordedEvent
}

var _ Recorder = (*MemoryRecorder)(nil)

// Eventf keeps the event.
func (m *MemoryRecorder) Eventf(obj runtime.Object, eventtype, reason, messageFmt string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, RecordedEvent{Object: obj, Type: eventtype, Reason: reason, Message: fmt.Sprintf(messageFmt, args...)})
}

// Events returns the events kept so far.
func (m *MemoryRecorder) Events() []RecordedEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.events)
}

// Reset forgets the events kept so far.
func (m *MemoryRecorder) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = nil
}
