package pleg

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/runtimetest"
)

// floodStream sends n events of distinct pods as fast as it can, and
// reports when all were taken.
type floodStream struct {
	n    int
	sent chan struct{}
}

func (f *floodStream) GetContainerEvents(ctx context.Context, ch chan<- *runtimeapi.ContainerEventResponse, onConnected func()) error {
	onConnected()
	for i := range f.n {
		ev := &runtimeapi.ContainerEventResponse{ContainerId: fmt.Sprint("c", i), PodSandboxStatus: &runtimeapi.PodSandboxStatus{
			Metadata: &runtimeapi.PodSandboxMetadata{Uid: fmt.Sprint("pod-", i%50), Name: "p", Namespace: "ns"}}}
		select {
		case ch <- ev:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	close(f.sent)
	<-ctx.Done()
	return ctx.Err()
}

// The stream is drained while nobody takes the batches (the PLEG busy
// relisting): a runtime that blocks its publishers while a subscriber
// lags is never held up. What came meanwhile arrives as one batch.
func TestStreamDrainedWhileBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt, err := runtimetest.New(runtimetest.Config{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := New(Config{Runtime: rt})
		if err != nil {
			t.Fatal(err)
		}
		out := make(chan podUIDs) // nobody reads it yet
		f := &floodStream{n: 1000, sent: make(chan struct{})}
		s := &streamer{p: p, es: f, out: out}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.follow(ctx, func() {}) }()
		synctest.Wait()
		select {
		case <-f.sent:
		default:
			t.Fatal("the stream was not drained while the batches waited")
		}
		batch := <-out
		if len(batch) != 50 {
			t.Errorf("the waiting events came as %d pods, want the 50 distinct ones", len(batch))
		}
		cancel()
		<-done
	})
}
