package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// GetContainerEvents implements core.EventStreamer. It blocks until ctx
// ends or the stream breaks and returns why. On runtimes without the call
// the error wraps core.ErrUnimplemented.
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
	for {
		select {
		case ev := <-inner:
			select {
			case ch <- ev:
			case <-ctx.Done():
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
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return classify("container events", err)
		}
	}
}
