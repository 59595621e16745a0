package cri

import (
	"context"
	"errors"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

// GetContainerEvents implements core.EventStreamer. It blocks until ctx
// ends or the stream breaks and returns why: ctx's error, an error wrapping
// core.ErrUnimplemented on runtimes without the call, or one wrapping
// core.ErrUnavailable when the stream broke. Events received before the
// stream ended are all delivered first.
func (r *Runtime) GetContainerEvents(ctx context.Context, ch chan<- *runtimeapi.ContainerEventResponse, onConnected func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// cri-client wants a channel it can also read; forward from it.
	inner := make(chan *runtimeapi.ContainerEventResponse, 16)
	done := make(chan error, 1)
	go func() {
		done <- r.rs.GetContainerEvents(r.ctx(ctx), inner, func(runtimeapi.RuntimeService_GetContainerEventsClient) {
			if onConnected != nil {
				onConnected()
			}
		})
	}()
	forward := func(ev *runtimeapi.ContainerEventResponse) bool {
		select {
		case ch <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		select {
		case ev := <-inner:
			if !forward(ev) {
				// Keep draining so the client's send cannot block forever.
				for {
					select {
					case <-inner:
					case <-done:
						return ctx.Err()
					}
				}
			}
		case err := <-done:
			// The client has stopped sending: what it sent is all in inner.
			for drained := false; !drained; {
				select {
				case ev := <-inner:
					if !forward(ev) {
						drained = true
					}
				default:
					drained = true
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err = classify("container events", err); !errors.Is(err, core.ErrUnimplemented) && !errors.Is(err, core.ErrUnavailable) {
				err = fmt.Errorf("%w: %w", core.ErrUnavailable, err)
			}
			return err
		}
	}
}
