package pleg

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

// streamer follows the runtime's container events and hands Run the pods
// they concern, in batches.
type streamer struct {
	p   *PLEG
	es  core.EventStreamer
	out chan<- podUIDs
}

// run connects, reconnects with back-off, and gives up for good when the
// runtime has no event stream, leaving the PLEG to relist alone.
func (s *streamer) run(ctx context.Context) {
	p := s.p
	backoff := p.cfg.StreamRetryMin
	for ctx.Err() == nil {
		connected := false
		err := s.follow(ctx, func() {
			connected = true
			backoff = p.cfg.StreamRetryMin
			p.metrics.streamConnects.Inc()
			p.setStreaming(true)
			// Debug only: a runtime without the call (containerd 1.6)
			// opens the stream and rejects it right after.
			p.log.Debug("container event stream open", zap.Duration("safetyRelistPeriod", p.cfg.EventedRelistPeriod))
			// Anything may have happened while not connected.
			p.RequestRelist()
		})
		p.setStreaming(false)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, core.ErrUnimplemented) {
			p.log.Info("the runtime has no container event stream; relisting only",
				zap.Duration("period", p.cfg.RelistPeriod), zap.Error(err))
			return
		}
		p.metrics.streamErrors.Inc()
		if connected {
			p.log.Warn("container event stream broke; relisting every period until it is back",
				zap.Duration("period", p.cfg.RelistPeriod), zap.Error(err))
			p.RequestRelist()
		}
		p.log.Debug("reconnecting to the container event stream", zap.Duration("after", backoff), zap.Error(err))
		t := p.cfg.Clock.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		backoff = min(2*backoff, p.cfg.StreamRetryMax)
	}
}

// follow streams events until the stream ends, batching the pods of the
// events that arrive together.
func (s *streamer) follow(ctx context.Context, onConnected func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan *runtimeapi.ContainerEventResponse, 256)
	done := make(chan error, 1)
	go func() { done <- s.es.GetContainerEvents(ctx, ch, onConnected) }()
	// The stream is drained at all times, also while the PLEG is busy
	// with the last batch: events that come meanwhile are merged into the
	// next one. (A runtime may block every publisher of events while one
	// subscriber's buffer is full: containerd 2.x does.)
	var pending podUIDs
	for {
		var out chan<- podUIDs
		if len(pending) > 0 {
			out = s.out
		}
		select {
		case err := <-done:
			if err == nil {
				err = errors.New("container event stream closed")
			}
			return err
		case ev := <-ch:
			pending = s.add(pending, ev)
		case out <- pending:
			pending = nil
		case <-ctx.Done():
			<-done
			return ctx.Err()
		}
	}
}

func (s *streamer) add(batch podUIDs, ev *runtimeapi.ContainerEventResponse) podUIDs {
	if ev.GetCreatedAt() != 0 {
		lat := s.p.cfg.Clock.Since(time.Unix(0, ev.GetCreatedAt()))
		s.p.metrics.streamLatency.Observe(lat.Seconds())
	}
	sb := ev.GetPodSandboxStatus()
	uid := podUID(sb.GetLabels(), sb.GetMetadata())
	if uid == "" {
		// A deleted container's event may carry no sandbox; find its pod
		// among what the PLEG knows.
		uid = s.p.podOf(ev.GetContainerId())
	}
	if uid == "" {
		return batch
	}
	for _, u := range batch {
		if u == uid {
			return batch
		}
	}
	return append(batch, uid)
}

func (p *PLEG) podOf(containerID string) types.UID {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.entities[containerID]; e != nil {
		return e.pod.uid
	}
	return ""
}

func (p *PLEG) setStreaming(on bool) {
	p.hmu.Lock()
	p.streaming = on
	p.hmu.Unlock()
}
