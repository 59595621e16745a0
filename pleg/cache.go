package pleg

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/core"
)

// Cache holds the newest runtime status of every pod the PLEG knows. Safe
// for concurrent use.
//
// Statuses are shared, immutable values: callers must not modify what Get
// and GetNewerThan return.
//
// Besides one entry per pod, the cache has a global time: the start of the
// last complete relist. Every pod the runtime had then is cached as of that
// time or later, so a pod without an entry is known to have nothing in the
// runtime as of the global time.
type Cache struct {
	mu   sync.RWMutex
	pods map[types.UID]cacheEntry
	// now is the global time; zero until the first updateTime.
	now time.Time
	// waiters of GetNewerThan, by pod; nwaiters counts them all, so that
	// set and updateTime cost nothing extra when nobody waits.
	waiters  map[types.UID][]*cacheWaiter
	nwaiters int
}

type cacheEntry struct {
	status   *core.PodStatus
	err      error
	modified time.Time
}

type cacheWaiter struct {
	minTime time.Time
	ch      chan cacheEntry // capacity 1; receives the entry once, then is dropped
}

func newCache() *Cache {
	return &Cache{pods: map[types.UID]cacheEntry{}, waiters: map[types.UID][]*cacheWaiter{}}
}

// Get returns the pod's newest status, or nil and no error when the cache
// has nothing for it (never observed, or gone from the runtime). If the
// last attempt to read the pod's status failed, it returns the status
// before that (possibly nil) and the error.
func (c *Cache) Get(uid types.UID) (*core.PodStatus, error) {
	c.mu.RLock()
	e := c.pods[uid]
	c.mu.RUnlock()
	return e.status, e.err
}

// GetNewerThan is Get once the cache holds data for uid observed after
// minTime: the pod's entry was set at a later time, or a complete relist
// started later (then a pod without an entry is reported as nil, nil). It
// blocks until then, or until ctx ends, when it returns ctx's error,
// wrapped.
func (c *Cache) GetNewerThan(ctx context.Context, uid types.UID, minTime time.Time) (*core.PodStatus, error) {
	c.mu.Lock()
	if e, ok := c.newerThan(uid, minTime); ok {
		c.mu.Unlock()
		return e.status, e.err
	}
	if err := ctx.Err(); err != nil {
		c.mu.Unlock()
		return nil, waitError(uid, minTime, err)
	}
	w := &cacheWaiter{minTime: minTime, ch: make(chan cacheEntry, 1)}
	c.waiters[uid] = append(c.waiters[uid], w)
	c.nwaiters++
	c.mu.Unlock()

	select {
	case e := <-w.ch:
		return e.status, e.err
	case <-ctx.Done():
	}
	c.mu.Lock()
	removed := c.removeWaiter(uid, w)
	c.mu.Unlock()
	if !removed {
		// Served while ctx ended: the entry is in the channel.
		e := <-w.ch
		return e.status, e.err
	}
	return nil, waitError(uid, minTime, ctx.Err())
}

func waitError(uid types.UID, minTime time.Time, err error) error {
	return fmt.Errorf("pleg: waiting for a status of pod %s newer than %s: %w", uid, minTime.Format(time.RFC3339Nano), err)
}

// set records the status of the pod, or the error reading it, observed at
// timestamp, and wakes the waiters it satisfies. It does nothing and
// returns false when the cache has a newer entry for the pod. With an
// error and a nil status, the pod's previous status is kept alongside the
// error.
func (c *Cache) set(uid types.UID, status *core.PodStatus, err error, timestamp time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.pods[uid]
	if ok && old.modified.After(timestamp) {
		return false
	}
	if err != nil && status == nil {
		status = old.status
	}
	c.pods[uid] = cacheEntry{status: status, err: err, modified: timestamp}
	if c.nwaiters > 0 {
		c.notify(uid)
	}
	return true
}

// delete forgets the pod. Its waiters keep waiting until the global time
// passes their minTime, when they get nil, nil.
func (c *Cache) delete(uid types.UID) {
	c.mu.Lock()
	delete(c.pods, uid)
	c.mu.Unlock()
}

// updateTime raises the global time to t, the start of a complete relist;
// it never lowers it. It wakes the waiters this satisfies.
func (c *Cache) updateTime(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !t.After(c.now) {
		return
	}
	c.now = t
	if c.nwaiters == 0 {
		return
	}
	for uid := range c.waiters {
		c.notify(uid)
	}
}

// Len reports how many pods have entries.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.pods)
}

// newerThan returns the pod's entry if it is known to be newer than
// minTime. c.mu must be held.
func (c *Cache) newerThan(uid types.UID, minTime time.Time) (cacheEntry, bool) {
	e, ok := c.pods[uid]
	if !c.now.IsZero() && c.now.After(minTime) {
		return e, true // a missing pod was absent from the runtime after minTime
	}
	return e, ok && e.modified.After(minTime)
}

// notify hands the pod's entry to each of its waiters it satisfies. c.mu
// must be held for writing.
func (c *Cache) notify(uid types.UID) {
	ws := c.waiters[uid]
	kept := ws[:0]
	for _, w := range ws {
		if e, ok := c.newerThan(uid, w.minTime); ok {
			w.ch <- e
			c.nwaiters--
		} else {
			kept = append(kept, w)
		}
	}
	clear(ws[len(kept):])
	if len(kept) == 0 {
		delete(c.waiters, uid)
	} else {
		c.waiters[uid] = kept
	}
}

// removeWaiter deregisters w, reporting false if notify already served
// it. c.mu must be held for writing.
func (c *Cache) removeWaiter(uid types.UID, w *cacheWaiter) bool {
	ws := c.waiters[uid]
	for i, x := range ws {
		if x != w {
			continue
		}
		last := len(ws) - 1
		ws[i] = ws[last]
		ws[last] = nil
		if last == 0 {
			delete(c.waiters, uid)
		} else {
			c.waiters[uid] = ws[:last]
		}
		c.nwaiters--
		return true
	}
	return false
}

// waiting reports how many GetNewerThan calls are blocked, for tests.
func (c *Cache) waiting() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.nwaiters
}
