package staticpod

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// DefaultUpdatesBuffer is the capacity of a Merger's updates channel.
const DefaultUpdatesBuffer = 50

// MergerConfig configures a Merger.
type MergerConfig struct {
	// Sources are the names of the sources the merger takes snapshots
	// from; AllReady holds once each delivered one. Required.
	Sources []string
	// Buffer is the capacity of the updates channel. Default
	// DefaultUpdatesBuffer.
	Buffer int
	Clock  clock.PassiveClock
	Logger *zap.Logger
}

// Merger turns the complete snapshots of several pod sources into one
// stream of pod updates, as the kubelet's pod config does: a pod new to
// its source is an ADD (stamped with kubernetes.io/config.source and
// kubernetes.io/config.seen), a changed spec, labels or annotations an
// UPDATE, a newly set deletion timestamp a DELETE, a change of status
// alone a RECONCILE, and a pod gone from its source a REMOVE. Each
// snapshot's updates are sent in that order: REMOVE, ADD, UPDATE, DELETE,
// RECONCILE.
type Merger struct {
	cfg     MergerConfig
	log     *zap.Logger
	updates chan core.PodUpdate

	mu   sync.Mutex // serializes Set; guards the fields below
	pods map[string]map[types.UID]*v1.Pod
	seen map[string]bool
}

// NewMerger returns a Merger for cfg.
func NewMerger(cfg MergerConfig) (*Merger, error) {
	if len(cfg.Sources) == 0 {
		return nil, fmt.Errorf("staticpod: merger: Sources is required: %w", core.ErrInvalid)
	}
	if cfg.Buffer < 0 {
		return nil, fmt.Errorf("staticpod: merger: Buffer %d must not be negative: %w", cfg.Buffer, core.ErrInvalid)
	}
	if cfg.Buffer == 0 {
		cfg.Buffer = DefaultUpdatesBuffer
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	m := &Merger{cfg: cfg, log: cfg.Logger, updates: make(chan core.PodUpdate, cfg.Buffer),
		pods: map[string]map[types.UID]*v1.Pod{}, seen: map[string]bool{}}
	for _, s := range cfg.Sources {
		m.pods[s] = map[types.UID]*v1.Pod{}
	}
	return m, nil
}

// Updates are the merged pod updates, for syncloop.LoopConfig.Updates.
func (m *Merger) Updates() <-chan core.PodUpdate { return m.updates }

// AllReady reports whether every source delivered a snapshot: until then
// a pod missing from the node may only be missing from a source not yet
// heard from, and nothing is cleaned up.
func (m *Merger) AllReady() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.cfg.Sources {
		if !m.seen[s] {
			return false
		}
	}
	return true
}

// Set takes the complete set of pods of one source and sends the updates
// it makes, blocking while the updates channel is full, until ctx ends.
// Pods are copied; the caller may reuse them. Of two pods of the same
// namespace and name in one snapshot, the first is kept and the other
// dropped with an error (the others still apply).
func (m *Merger) Set(ctx context.Context, source string, pods []*v1.Pod) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	stored, ok := m.pods[source]
	if !ok {
		return fmt.Errorf("staticpod: merger: unknown source %q: %w", source, core.ErrInvalid)
	}
	firstSet := !m.seen[source]
	// Restored when ctx ends before every update is sent, so that the
	// next snapshot sends them again: an update may come twice, never not
	// at all.
	before := maps.Clone(stored)
	rollback := func(err error) error {
		m.pods[source] = before
		m.seen[source] = !firstSet
		return err
	}
	m.seen[source] = true

	var dupErrs []error
	names := map[string]types.UID{}
	next := map[types.UID]*v1.Pod{}
	var order []types.UID
	for _, p := range pods {
		full := p.Namespace + "/" + p.Name
		if uid, dup := names[full]; dup {
			dupErrs = append(dupErrs, fmt.Errorf("source %s: pod %s (UID %s) dropped: its name is taken by the pod of UID %s: %w", source, full, p.UID, uid, ErrInvalidManifest))
			continue
		}
		if _, dup := next[p.UID]; dup {
			dupErrs = append(dupErrs, fmt.Errorf("source %s: pod %s dropped: UID %s appears twice: %w", source, full, p.UID, ErrInvalidManifest))
			continue
		}
		names[full] = p.UID
		next[p.UID] = p.DeepCopy()
		order = append(order, p.UID)
	}

	var adds, updates, deletes, removes, reconciles []*v1.Pod
	for _, uid := range order {
		ref := next[uid]
		if ref.Annotations == nil {
			ref.Annotations = map[string]string{}
		}
		ref.Annotations[core.AnnotationConfigSource] = source
		old, known := stored[uid]
		if !known {
			ref.Annotations[core.AnnotationConfigSeen] = m.cfg.Clock.Now().UTC().Format(time.RFC3339Nano)
			stored[uid] = ref
			adds = append(adds, ref.DeepCopy())
			continue
		}
		switch {
		case differ(old, ref):
			ref.Annotations[core.AnnotationConfigSeen] = old.Annotations[core.AnnotationConfigSeen]
			graceful := ref.DeletionTimestamp != nil
			stored[uid] = ref
			if graceful {
				deletes = append(deletes, ref.DeepCopy())
			} else {
				updates = append(updates, ref.DeepCopy())
			}
		case !reflect.DeepEqual(old.Status, ref.Status):
			upd := old.DeepCopy()
			upd.Status = ref.Status
			stored[uid] = upd
			reconciles = append(reconciles, upd.DeepCopy())
		}
	}
	for _, uid := range slices.Sorted(maps.Keys(stored)) {
		if _, still := next[uid]; !still {
			removes = append(removes, stored[uid])
			delete(stored, uid)
		}
	}
	slices.SortFunc(removes, func(a, b *v1.Pod) int { return cmp.Compare(a.UID, b.UID) })

	send := func(op core.PodOp, pods []*v1.Pod) error {
		select {
		case m.updates <- core.PodUpdate{Op: op, Pods: pods, Source: source}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var errs []error
	for _, u := range []struct {
		op   core.PodOp
		pods []*v1.Pod
	}{{core.OpRemove, removes}, {core.OpAdd, adds}, {core.OpUpdate, updates}, {core.OpDelete, deletes}} {
		if len(u.pods) > 0 {
			if err := send(u.op, u.pods); err != nil {
				return rollback(err)
			}
		}
	}
	if firstSet && len(adds) == 0 && len(updates) == 0 && len(deletes) == 0 {
		// An empty ADD tells the consumer the source has been heard from.
		if err := send(core.OpAdd, nil); err != nil {
			return rollback(err)
		}
	}
	if len(reconciles) > 0 {
		if err := send(core.OpReconcile, reconciles); err != nil {
			return rollback(err)
		}
	}
	for _, err := range dupErrs {
		m.log.Warn("pod dropped", zap.Error(err))
	}
	return errors.Join(append(errs, dupErrs...)...)
}

// differ reports whether a pod changed in what the node acts on: its spec,
// labels, deletion or annotations (except those the node keeps itself).
func differ(old, ref *v1.Pod) bool {
	return !reflect.DeepEqual(old.Spec, ref.Spec) ||
		!reflect.DeepEqual(old.Labels, ref.Labels) ||
		!reflect.DeepEqual(old.DeletionTimestamp, ref.DeletionTimestamp) ||
		!reflect.DeepEqual(old.DeletionGracePeriodSeconds, ref.DeletionGracePeriodSeconds) ||
		!sameAnnotations(old.Annotations, ref.Annotations)
}

// sameAnnotations compares annotations except the node's own.
func sameAnnotations(a, b map[string]string) bool {
	local := func(k string) bool {
		return k == core.AnnotationConfigSource || k == core.AnnotationConfigSeen || k == core.AnnotationConfigMirror
	}
	for k, v := range b {
		if !local(k) && a[k] != v {
			return false
		}
	}
	for k, v := range a {
		if !local(k) && b[k] != v {
			return false
		}
	}
	return true
}
