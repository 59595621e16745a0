package pleg

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/core"
)

var cacheEpoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func cacheAt(s int) time.Time { return cacheEpoch.Add(time.Duration(s) * time.Second) }

func testStatus(uid types.UID, name string) *core.PodStatus {
	return &core.PodStatus{UID: uid, Name: name}
}

func wantCached(t *testing.T, c *Cache, uid types.UID, want *core.PodStatus, wantErr error) {
	t.Helper()
	got, err := c.Get(uid)
	if got != want || !errors.Is(err, wantErr) || (wantErr == nil && err != nil) {
		t.Fatalf("Get(%s) = %v, %v; want %v, %v", uid, got, err, want, wantErr)
	}
}

func TestCacheSetGet(t *testing.T) {
	c := newCache()
	wantCached(t, c, "a", nil, nil)

	s1, s2, s3 := testStatus("a", "1"), testStatus("a", "2"), testStatus("a", "3")
	if !c.set("a", s1, nil, cacheAt(2)) {
		t.Fatal("first set rejected")
	}
	wantCached(t, c, "a", s1, nil)
	if c.set("a", s2, nil, cacheAt(1)) {
		t.Error("set older than the entry accepted")
	}
	wantCached(t, c, "a", s1, nil)
	if !c.set("a", s2, nil, cacheAt(2)) {
		t.Error("set as old as the entry rejected")
	}
	wantCached(t, c, "a", s2, nil)

	// A failed read keeps the previous status next to the error.
	if !c.set("a", nil, core.ErrUnavailable, cacheAt(3)) {
		t.Fatal("error set rejected")
	}
	wantCached(t, c, "a", s2, core.ErrUnavailable)
	if !c.set("a", s3, nil, cacheAt(4)) {
		t.Fatal("set after an error rejected")
	}
	wantCached(t, c, "a", s3, nil)

	// A pod never read successfully reports a nil status with its error.
	c.set("b", nil, core.ErrUnavailable, cacheAt(4))
	wantCached(t, c, "b", nil, core.ErrUnavailable)

	if n := c.Len(); n != 2 {
		t.Errorf("Len = %d, want 2", n)
	}
	c.delete("a")
	wantCached(t, c, "a", nil, nil)
	if n := c.Len(); n != 1 {
		t.Errorf("Len after delete = %d, want 1", n)
	}
	// After a delete any timestamp is accepted again.
	if !c.set("a", s1, nil, cacheAt(1)) {
		t.Error("set after delete rejected")
	}
}

// newerThanAsync calls GetNewerThan in a goroutine; the getResult arrives on the
// returned channel.
type getResult struct {
	status *core.PodStatus
	err    error
}

func newerThanAsync(ctx context.Context, c *Cache, uid types.UID, minTime time.Time) <-chan getResult {
	ch := make(chan getResult, 1)
	go func() {
		s, err := c.GetNewerThan(ctx, uid, minTime)
		ch <- getResult{s, err}
	}()
	return ch
}

// wantWaiting checks, once every goroutine of the bubble is blocked, that
// no getResult has arrived and n waiters are registered.
func wantWaiting(t *testing.T, c *Cache, ch <-chan getResult, n int) {
	t.Helper()
	synctest.Wait()
	select {
	case r := <-ch:
		t.Fatalf("GetNewerThan returned early: %v, %v", r.status, r.err)
	default:
	}
	if got := c.waiting(); got != n {
		t.Fatalf("%d waiters, want %d", got, n)
	}
}

func wantServed(t *testing.T, ch <-chan getResult, want *core.PodStatus, wantErr error) {
	t.Helper()
	synctest.Wait()
	select {
	case r := <-ch:
		if r.status != want || !errors.Is(r.err, wantErr) || (wantErr == nil && r.err != nil) {
			t.Fatalf("GetNewerThan = %v, %v; want %v, %v", r.status, r.err, want, wantErr)
		}
	default:
		t.Fatal("GetNewerThan still blocked")
	}
}

func TestCacheGetNewerThanReady(t *testing.T) {
	ctx := context.Background()
	s := testStatus("a", "1")
	for i, tc := range []struct {
		uid     types.UID
		min     time.Time
		global  time.Time
		want    *core.PodStatus
		blocked bool
	}{
		{uid: "a", min: cacheAt(1), want: s},
		{uid: "a", min: cacheAt(2), blocked: true}, // strictly after
		{uid: "a", min: cacheAt(2), global: cacheAt(3), want: s},
		{uid: "a", min: cacheAt(3), global: cacheAt(3), blocked: true},
		{uid: "x", min: cacheAt(1), blocked: true}, // no global time yet
		{uid: "x", min: cacheAt(1), global: cacheAt(3), want: nil},
		{uid: "x", min: time.Time{}, global: cacheAt(3), want: nil},
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			c := newCache()
			c.set("a", s, nil, cacheAt(2))
			if !tc.global.IsZero() {
				c.updateTime(tc.global)
			}
			ctx, cancel := context.WithCancel(ctx)
			cancel()
			got, err := c.GetNewerThan(ctx, tc.uid, tc.min)
			if tc.blocked {
				if !errors.Is(err, context.Canceled) || got != nil {
					t.Fatalf("GetNewerThan = %v, %v; want to block", got, err)
				}
			} else if err != nil || got != tc.want {
				t.Fatalf("GetNewerThan = %v, %v; want %v at once", got, err, tc.want)
			}
			if n := c.waiting(); n != 0 {
				t.Errorf("%d waiters left", n)
			}
		})
	}
}

func TestCacheGetNewerThanWakesOnSet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		c := newCache()
		s1, s2 := testStatus("a", "1"), testStatus("a", "2")
		c.set("a", s1, nil, cacheAt(1))

		ch := newerThanAsync(ctx, c, "a", cacheAt(1))
		wantWaiting(t, c, ch, 1)
		c.set("b", testStatus("b", "1"), nil, cacheAt(5))
		wantWaiting(t, c, ch, 1) // another pod
		c.set("a", s1, nil, cacheAt(1))
		wantWaiting(t, c, ch, 1) // not after minTime
		c.set("a", s2, nil, cacheAt(2))
		wantServed(t, ch, s2, nil)
		if n := c.waiting(); n != 0 {
			t.Errorf("%d waiters left", n)
		}

		// An error entry satisfies a waiter too, with the status before it.
		ch = newerThanAsync(ctx, c, "a", cacheAt(2))
		wantWaiting(t, c, ch, 1)
		c.set("a", nil, core.ErrUnavailable, cacheAt(3))
		wantServed(t, ch, s2, core.ErrUnavailable)
	})
}

func TestCacheGetNewerThanWakesInOrderOfMinTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		c := newCache()
		early, late := newerThanAsync(ctx, c, "a", cacheAt(1)), newerThanAsync(ctx, c, "a", cacheAt(3))
		other := newerThanAsync(ctx, c, "b", cacheAt(1))
		synctest.Wait()
		if n := c.waiting(); n != 3 {
			t.Fatalf("%d waiters, want 3", n)
		}
		s2 := testStatus("a", "2")
		c.set("a", s2, nil, cacheAt(2))
		wantServed(t, early, s2, nil)
		wantWaiting(t, c, late, 2)

		// The global time wakes the rest: late sees a's entry, other
		// learns that b has nothing.
		c.updateTime(cacheAt(3))
		wantWaiting(t, c, late, 1)
		wantServed(t, other, nil, nil)
		c.updateTime(cacheAt(4))
		wantServed(t, late, s2, nil)
		if n := c.waiting(); n != 0 {
			t.Errorf("%d waiters left", n)
		}
	})
}

func TestCacheUpdateTimeNeverLowers(t *testing.T) {
	c := newCache()
	c.updateTime(cacheAt(5))
	c.updateTime(cacheAt(1))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if s, err := c.GetNewerThan(ctx, "x", cacheAt(4)); s != nil || err != nil {
		t.Errorf("GetNewerThan after lowering the global time = %v, %v; want nil, nil", s, err)
	}
}

// A deleted pod's waiter is served by the global time, with nothing.
func TestCacheGetNewerThanDeleted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache()
		c.set("a", testStatus("a", "1"), nil, cacheAt(1))
		ch := newerThanAsync(context.Background(), c, "a", cacheAt(1))
		wantWaiting(t, c, ch, 1)
		c.delete("a")
		wantWaiting(t, c, ch, 1)
		c.updateTime(cacheAt(2))
		wantServed(t, ch, nil, nil)
	})
}

func TestCacheGetNewerThanContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache()
		ctx, cancel := context.WithCancel(context.Background())
		a1, a2 := newerThanAsync(ctx, c, "a", cacheAt(1)), newerThanAsync(ctx, c, "a", cacheAt(1))
		b := newerThanAsync(ctx, c, "b", cacheAt(1))
		keep := newerThanAsync(context.Background(), c, "a", cacheAt(1))
		synctest.Wait()
		if n := c.waiting(); n != 4 {
			t.Fatalf("%d waiters, want 4", n)
		}
		cancel()
		wantServed(t, a1, nil, context.Canceled)
		wantServed(t, a2, nil, context.Canceled)
		wantServed(t, b, nil, context.Canceled)
		wantWaiting(t, c, keep, 1)
		c.updateTime(cacheAt(2))
		wantServed(t, keep, nil, nil)

		// A deadline, in the bubble's fake time.
		ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ch := newerThanAsync(ctx, c, "a", cacheAt(2))
		wantWaiting(t, c, ch, 1)
		time.Sleep(time.Minute)
		wantServed(t, ch, nil, context.DeadlineExceeded)
		if n := c.waiting(); n != 0 {
			t.Errorf("%d waiters left", n)
		}
		if _, err := c.GetNewerThan(ctx, "a", cacheAt(2)); !errors.Is(err, context.DeadlineExceeded) || c.waiting() != 0 {
			t.Errorf("GetNewerThan with an ended context: %v, %d waiters", err, c.waiting())
		}
	})
}

func TestCacheConcurrent(t *testing.T) {
	const pods, rounds = 8, 200
	c := newCache()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for p := range pods {
		uid := types.UID(fmt.Sprint("pod-", p))
		wg.Go(func() { // writer
			for i := range rounds {
				c.set(uid, testStatus(uid, fmt.Sprint(i)), nil, cacheAt(i))
				if i%10 == 0 {
					c.delete(uid)
				}
			}
		})
		wg.Go(func() { // waiter, always eventually served
			for i := range rounds {
				if _, err := c.GetNewerThan(ctx, uid, cacheAt(i-1)); err != nil {
					t.Error(err)
					return
				}
			}
		})
		wg.Go(func() { // waiter that gives up
			for i := range rounds {
				ctx, cancel := context.WithCancel(ctx)
				if i%2 == 0 {
					cancel()
				}
				go cancel()
				_, _ = c.GetNewerThan(ctx, uid, cacheAt(rounds+i))
			}
		})
		wg.Go(func() { // reader
			for range rounds {
				if s, _ := c.Get(uid); s != nil && s.UID != uid {
					t.Errorf("Get(%s) returned %s", uid, s.UID)
				}
				_ = c.Len()
			}
		})
	}
	wg.Go(func() {
		for i := range rounds {
			c.updateTime(cacheAt(i))
		}
	})
	wg.Wait()
	if n := c.waiting(); n != 0 {
		t.Errorf("%d waiters left", n)
	}
}

func BenchmarkCacheSetGet(b *testing.B) {
	const pods = 1000
	c := newCache()
	uids := make([]types.UID, pods)
	statuses := make([]*core.PodStatus, pods)
	for i := range uids {
		uids[i] = types.UID(fmt.Sprint("pod-", i))
		statuses[i] = testStatus(uids[i], "x")
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p := i % pods
		c.set(uids[p], statuses[p], nil, cacheEpoch.Add(time.Duration(i)))
		if s, _ := c.Get(uids[p]); s != statuses[p] {
			b.Fatal("Get returned another status")
		}
		i++
	}
}
