package runtimetest

import (
	"context"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

// subscriber is one GetContainerEvents stream.
type subscriber struct {
	queue  chan *runtimeapi.ContainerEventResponse
	broken chan struct{} // closed when the runtime drops the stream
	err    error         // why; written before broken is closed
}

// GetContainerEvents implements core.EventStreamer. When Config.Events is
// false it fails at once with core.ErrUnimplemented, as containerd 1.6
// does. Otherwise it calls onConnected once subscribed and forwards, in
// order, the events of every change from then on, as containerd 2 sends
// them: CONTAINER_CREATED, _STARTED, _STOPPED and _DELETED for containers,
// and for sandboxes (with the sandbox ID as container ID), each carrying
// the sandbox's status and the statuses of its containers.
//
// It returns ctx's error when ctx ends. Each stream buffers
// Config.EventBuffer events; when its consumer falls that far behind, the
// runtime drops the stream, as a server drops a stalled gRPC stream, and
// GetContainerEvents returns an error wrapping core.ErrUnavailable: the
// consumer should relist and subscribe again. BreakEventStreams does the
// same to every stream. It never closes ch.
func (r *Runtime) GetContainerEvents(ctx context.Context, ch chan<- *runtimeapi.ContainerEventResponse, onConnected func()) error {
	if err := r.enter(ctx, "GetContainerEvents"); err != nil {
		return err
	}
	if !r.events {
		return fmt.Errorf("get container events: %w: the runtime has no event stream", core.ErrUnimplemented)
	}
	sub := &subscriber{
		queue:  make(chan *runtimeapi.ContainerEventResponse, r.eventBuffer),
		broken: make(chan struct{}),
	}
	r.mu.Lock()
	r.subs[sub] = struct{}{}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.subs, sub)
		r.mu.Unlock()
	}()
	if onConnected != nil {
		onConnected()
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sub.broken:
			return sub.err
		case ev := <-sub.queue:
			select {
			case ch <- ev:
			case <-ctx.Done():
				return ctx.Err()
			case <-sub.broken:
				return sub.err
			}
		}
	}
}

// BreakEventStreams drops every event stream, as if the connection to the
// runtime broke: each GetContainerEvents returns an error wrapping
// core.ErrUnavailable, and events not yet delivered are lost.
func (r *Runtime) BreakEventStreams() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for sub := range r.subs {
		r.dropLocked(sub, fmt.Errorf("container event stream broken: %w", core.ErrUnavailable))
	}
}

func (r *Runtime) dropLocked(sub *subscriber, err error) {
	delete(r.subs, sub)
	sub.err = err
	close(sub.broken)
}

// emitLocked sends the event of a change to every stream; each stream
// gets its own copy, and nothing is built when nobody listens. id is a
// container's ID or, for the events of a sandbox, the sandbox's.
func (r *Runtime) emitLocked(id string, s *sandbox, typ runtimeapi.ContainerEventType, at time.Time) {
	for sub := range r.subs {
		ev := &runtimeapi.ContainerEventResponse{
			ContainerId:        id,
			ContainerEventType: typ,
			CreatedAt:          at.UnixNano(),
			PodSandboxStatus:   r.sandboxStatusLocked(s),
			ContainersStatuses: r.containerStatusesLocked(s),
		}
		select {
		case sub.queue <- ev:
		default:
			r.dropLocked(sub, fmt.Errorf("container event stream dropped: the consumer fell %d events behind: %w", cap(sub.queue), core.ErrUnavailable))
		}
	}
}
