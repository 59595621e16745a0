package pleg

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/core"
)

// fanoutEvent is pod uid's event number i.
func fanoutEvent(uid types.UID, i int) core.PodLifecycleEvent {
	return core.PodLifecycleEvent{PodUID: uid, Type: core.ContainerStarted, ContainerID: strconv.Itoa(i)}
}

// roundRobin returns n events spread over pods pod-0, pod-1, ... in turn,
// numbered in publishing order.
func roundRobin(n, pods int) []core.PodLifecycleEvent {
	evs := make([]core.PodLifecycleEvent, n)
	for i := range evs {
		evs[i] = fanoutEvent(types.UID(fmt.Sprint("pod-", i%pods)), i)
	}
	return evs
}

// received reads what s delivers until, with every goroutine of the
// bubble blocked, its channel is empty or closed.
func received(s *Subscription) []core.PodLifecycleEvent {
	var got []core.PodLifecycleEvent
	for {
		synctest.Wait()
		select {
		case ev, ok := <-s.Events():
			if !ok {
				return got
			}
			got = append(got, ev)
		default:
			return got
		}
	}
}

func short(evs []core.PodLifecycleEvent) string {
	var b []byte
	for _, ev := range evs {
		if ev.Type == core.PodSync {
			b = fmt.Appendf(b, "%s:sync ", ev.PodUID)
		} else {
			b = fmt.Appendf(b, "%s:%s ", ev.PodUID, ev.ContainerID)
		}
	}
	return string(b)
}

// groupByPod orders evs by pod, pods in order of first appearance.
func groupByPod(evs []core.PodLifecycleEvent) []core.PodLifecycleEvent {
	var pods []types.UID
	byPod := map[types.UID][]core.PodLifecycleEvent{}
	for _, ev := range evs {
		if byPod[ev.PodUID] == nil {
			pods = append(pods, ev.PodUID)
		}
		byPod[ev.PodUID] = append(byPod[ev.PodUID], ev)
	}
	var out []core.PodLifecycleEvent
	for _, p := range pods {
		out = append(out, byPod[p]...)
	}
	return out
}

// checkAccounted checks that a subscriber that got got from published
// lost nothing silently: per pod it got a subsequence of the pod's events
// in order, every event it did not get individually is counted in
// coalesced, and a PodSync follows every gap and the pod's missed last
// events.
func checkAccounted(t *testing.T, published, got []core.PodLifecycleEvent, coalesced uint64) {
	t.Helper()
	rest := map[types.UID][]core.PodLifecycleEvent{}
	for _, ev := range published {
		rest[ev.PodUID] = append(rest[ev.PodUID], ev)
	}
	individual := 0
	synced := map[types.UID]bool{} // a PodSync since the pod's last individual event
	for _, ev := range got {
		if ev.Type == core.PodSync {
			synced[ev.PodUID] = true
			continue
		}
		individual++
		i := slices.Index(rest[ev.PodUID], ev)
		switch {
		case i < 0:
			t.Fatalf("got %s out of order or twice", short([]core.PodLifecycleEvent{ev}))
		case i > 0 && !synced[ev.PodUID]:
			t.Errorf("pod %s missed %d events before %s without a PodSync", ev.PodUID, i, ev.ContainerID)
		}
		rest[ev.PodUID] = rest[ev.PodUID][i+1:]
		synced[ev.PodUID] = false
	}
	for uid, evs := range rest {
		if len(evs) > 0 && !synced[uid] {
			t.Errorf("pod %s missed its last %d events without a PodSync", uid, len(evs))
		}
	}
	if uint64(individual)+coalesced != uint64(len(published)) {
		t.Errorf("got %d events individually and %d coalesced, want %d in all", individual, coalesced, len(published))
	}
}

func TestFanoutOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFanout(100, nil)
		roomy, tight := f.subscribe(1000), f.subscribe(2)
		defer f.close()
		events := roundRobin(60, 3)
		f.publish(events)

		// With room, events arrive as published.
		if got := received(roomy); !slices.Equal(got, events) {
			t.Errorf("roomy subscriber got\n%s\nwant\n%s", short(got), short(events))
		}
		// What did not fit waits per pod, and pods are served in the order
		// they started waiting.
		want := append(slices.Clone(events[:2]), groupByPod(events[2:])...)
		if got := received(tight); !slices.Equal(got, want) {
			t.Errorf("tight subscriber got\n%s\nwant\n%s", short(got), short(want))
		}
	})
}

func TestFanoutOrderPerPodAcrossBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFanout(1000, nil)
		defer f.close()
		subs := []*Subscription{f.subscribe(1), f.subscribe(3), f.subscribe(0)}
		events := roundRobin(500, 7)
		got := make([][]core.PodLifecycleEvent, len(subs))
		for batch := range slices.Chunk(events, 9) {
			f.publish(batch)
			// Read a little of each, differently, between batches.
			for i, s := range subs {
				for range i + 1 {
					synctest.Wait()
					select {
					case ev := <-s.Events():
						got[i] = append(got[i], ev)
					default:
					}
				}
			}
		}
		for i, s := range subs {
			got[i] = append(got[i], received(s)...)
			if len(got[i]) != len(events) || s.Coalesced() != 0 {
				t.Fatalf("subscriber %d got %d events, %d coalesced; want %d, none coalesced", i, len(got[i]), s.Coalesced(), len(events))
			}
			checkAccounted(t, events, got[i], 0)
		}
	})
}

func TestFanoutCoalesces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var reported []int
		f := newFanout(4, func(n int) { reported = append(reported, n) })
		defer f.close()
		s1, s2 := f.subscribe(1), f.subscribe(1)

		// a1 fills the channel; b1 waits first, then a2..a5 (the limit);
		// a6 turns a's five waiting events into a PodSync, which absorbs
		// a7..a10; b2 waits behind b1.
		batch := []core.PodLifecycleEvent{fanoutEvent("a", 1), fanoutEvent("b", 1)}
		for i := 2; i <= 10; i++ {
			batch = append(batch, fanoutEvent("a", i))
		}
		batch = append(batch, fanoutEvent("b", 2))
		f.publish(batch)
		want := []core.PodLifecycleEvent{
			fanoutEvent("a", 1), fanoutEvent("b", 1), fanoutEvent("b", 2),
			{PodUID: "a", Type: core.PodSync},
		}
		for _, s := range []*Subscription{s1, s2} {
			if got := received(s); !slices.Equal(got, want) {
				t.Errorf("got %s, want %s", short(got), short(want))
			}
			if n := s.Coalesced(); n != 9 {
				t.Errorf("Coalesced = %d, want 9", n)
			}
		}
		if !slices.Equal(reported, []int{18}) {
			t.Errorf("onCoalesce got %v, want [18]: one call per publish, summed over subscribers", reported)
		}

		// Caught up, the pod's events arrive one by one again.
		f.publish([]core.PodLifecycleEvent{fanoutEvent("a", 11)})
		if got := received(s1); !slices.Equal(got, []core.PodLifecycleEvent{fanoutEvent("a", 11)}) {
			t.Errorf("after catching up got %s", short(got))
		}
		if n := s1.Coalesced(); n != 9 {
			t.Errorf("Coalesced = %d, want still 9", n)
		}
	})
}

// A subscriber that never reads neither blocks the publisher nor delays
// the others, and holds at most the limit of events per pod.
func TestFanoutSlowSubscriber(t *testing.T) {
	const pods, limit, n = 50, 16, 10000
	synctest.Test(t, func(t *testing.T) {
		coalesced := 0
		f := newFanout(limit, func(n int) { coalesced += n })
		defer f.close()
		stuck := f.subscribe(0)
		roomy := f.subscribe(n)
		reader := f.subscribe(8)
		var readerGot []core.PodLifecycleEvent
		readerDone := make(chan struct{})
		go func() {
			defer close(readerDone)
			for ev := range reader.Events() {
				readerGot = append(readerGot, ev)
			}
		}()

		events := roundRobin(n, pods)
		for batch := range slices.Chunk(events, 10) {
			f.publish(batch) // a blocked publish deadlocks the bubble and fails the test
		}
		synctest.Wait()
		stuck.mu.Lock()
		waiting, waitingPods := stuck.npending, len(stuck.pending)
		stuck.mu.Unlock()
		if waiting > pods*limit || waitingPods > pods {
			t.Errorf("stuck subscriber holds %d events of %d pods, want at most %d of %d", waiting, waitingPods, pods*limit, pods)
		}
		if got := received(roomy); !slices.Equal(got, events) || roomy.Coalesced() != 0 {
			t.Errorf("roomy subscriber got %d events, %d coalesced; want all %d", len(got), roomy.Coalesced(), n)
		}
		checkAccounted(t, events, received(stuck), stuck.Coalesced())
		if stuck.Coalesced() == 0 {
			t.Error("stuck subscriber coalesced nothing")
		}

		// The reader kept up as well as it could; whatever it missed is
		// accounted for.
		synctest.Wait()
		reader.Close()
		<-readerDone
		checkAccounted(t, events, readerGot, reader.Coalesced())
		if want := int(stuck.Coalesced() + reader.Coalesced()); coalesced != want {
			t.Errorf("onCoalesce reported %d, want %d", coalesced, want)
		}
	})
}

func TestSubscriptionClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFanout(0, nil)
		keep, s := f.subscribe(1), f.subscribe(1)
		defer keep.Close()
		f.publish(roundRobin(5, 1))
		synctest.Wait()

		var wg sync.WaitGroup
		for range 3 {
			wg.Go(s.Close)
		}
		wg.Wait()
		s.Close()
		if w := s.waiting(); w != 0 {
			t.Errorf("%d events still waiting after Close", w)
		}
		// What was in the channel may still be read; then it is closed.
		if got := received(s); len(got) > 1 {
			t.Errorf("read %d events after Close, want at most the channel's 1", len(got))
		}
		if _, ok := <-s.Events(); ok {
			t.Error("channel open after Close")
		}
		if subs := *f.subs.Load(); len(subs) != 1 || subs[0] != keep {
			t.Errorf("fanout still has the closed subscription: %v", subs)
		}
		f.publish(roundRobin(5, 1)) // must not panic or reach s
		if got := received(keep); len(got) != 10 || keep.Coalesced() != 0 {
			t.Errorf("other subscriber got %d events, want 10", len(got))
		}
		// The bubble fails the test if s's goroutine is still running.
	})
}

func TestFanoutClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFanout(0, nil)
		subs := []*Subscription{f.subscribe(1), f.subscribe(64), f.subscribe(2)}
		f.publish(roundRobin(10, 2))
		synctest.Wait()
		f.close()
		f.close()
		for i, s := range subs {
			received(s)
			if _, ok := <-s.Events(); ok {
				t.Errorf("subscription %d open after the fanout closed", i)
			}
			s.Close()
		}
		late := f.subscribe(1)
		if _, ok := <-late.Events(); ok {
			t.Error("subscription made after close is open")
		}
		late.Close()
		f.publish(roundRobin(10, 2))
	})
}

// Close waits for the subscription's goroutine, also outside a bubble.
func TestSubscriptionCloseEndsGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	f := newFanout(0, nil)
	var subs []*Subscription
	for range 20 {
		subs = append(subs, f.subscribe(1))
	}
	f.publish(roundRobin(100, 10))
	for _, s := range subs[:10] {
		s.Close()
	}
	f.close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after closing, %d before", runtime.NumGoroutine(), before)
		}
		runtime.Gosched()
	}
}

// Publishers, readers, subscribing and closing all at once, for -race.
func TestFanoutConcurrent(t *testing.T) {
	const publishers, perPublisher = 3, 2000
	var coalesced sync.Mutex
	reported := 0
	f := newFanout(4, func(n int) { coalesced.Lock(); reported += n; coalesced.Unlock() })
	kept := f.subscribe(2)
	var got []core.PodLifecycleEvent
	var readers, churn sync.WaitGroup
	readers.Go(func() {
		for ev := range kept.Events() {
			got = append(got, ev)
		}
	})
	stop := make(chan struct{})
	churn.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			s := f.subscribe(1)
			readers.Go(func() {
				for range s.Events() {
				}
			})
			go s.Close()
			s.Close()
		}
	})
	var published []core.PodLifecycleEvent
	var pubs sync.WaitGroup
	for p := range publishers {
		evs := make([]core.PodLifecycleEvent, perPublisher)
		for i := range evs {
			evs[i] = fanoutEvent(types.UID(fmt.Sprintf("pod-%d-%d", p, i%5)), i)
		}
		published = append(published, evs...)
		pubs.Go(func() {
			for batch := range slices.Chunk(evs, 7) {
				f.publish(batch)
			}
		})
	}
	pubs.Wait()
	close(stop)
	churn.Wait()

	// Let kept catch up on everything its goroutine still holds, then end.
	deadline := time.Now().Add(10 * time.Second)
	for kept.waiting() > 0 || len(kept.Events()) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("subscriber did not catch up")
		}
		runtime.Gosched()
	}
	f.close()
	readers.Wait()
	checkAccounted(t, published, got, kept.Coalesced())
	if uint64(reported) < kept.Coalesced() {
		t.Errorf("onCoalesce reported %d, less than the kept subscriber's %d", reported, kept.Coalesced())
	}
}

// BenchmarkFanoutPublish publishes batches of 10 events (10 pods) to one
// subscriber that reads them all as they come. Unpaced, the publisher
// outruns the reader and most events are coalesced; paced, it waits for
// each batch to be read, so every event goes through the channel.
func BenchmarkFanoutPublish(b *testing.B) {
	for _, paced := range []bool{false, true} {
		b.Run(map[bool]string{false: "unpaced", true: "paced"}[paced], func(b *testing.B) {
			f := newFanout(0, nil)
			s := f.subscribe(0)
			batch := roundRobin(10, 10)
			read := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				n := 0
				for range s.Events() {
					if n++; paced && n%len(batch) == 0 {
						read <- struct{}{}
					}
				}
			}()
			b.ReportAllocs()
			for b.Loop() {
				f.publish(batch)
				if paced {
					<-read
				}
			}
			b.StopTimer()
			f.close()
			<-done
			b.ReportMetric(float64(s.Coalesced())/float64(b.N*len(batch)), "coalesced/event")
		})
	}
}
