package eviction_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/eviction"
)

// expectCrossing waits up to within for a value on C.
func expectCrossing(t *testing.T, n *eviction.Notifier, within time.Duration, what string) {
	t.Helper()
	select {
	case <-n.C():
		return
	default:
	}
	select {
	case <-n.C():
	case <-time.After(within):
		t.Fatalf("%s: no crossing reported within %v", what, within)
	}
}

func expectNoCrossing(t *testing.T, n *eviction.Notifier, what string) {
	t.Helper()
	select {
	case <-n.C():
		t.Fatalf("%s: a crossing was reported", what)
	default:
	}
}

// On cgroup v2 the notifier reads memory.current every interval and
// reports crossings either way, at the next reading.
func TestNotifierPollsCgroupV2(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		node := newFakeNode(t.TempDir())
		node.memoryV2("/kubepods", 100, 100, 0, 0, "max")
		current := filepath.Join(node.Mount, "kubepods", "memory.current")
		n, err := eviction.NewMemoryNotifier(eviction.NotifierConfig{Cgroup: "kubepods", Mount: node.Mount, Version: 2, Threshold: 200})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- n.Run(ctx) }()
		synctest.Wait()

		time.Sleep(time.Second)
		expectNoCrossing(t, n, "usage stays below")

		write(current, "250\n")
		start := time.Now()
		expectCrossing(t, n, time.Second, "usage rises above")
		if took := time.Since(start); took > eviction.DefaultNotifierInterval {
			t.Errorf("crossing reported after %v, want within one interval", took)
		}
		time.Sleep(time.Second)
		expectNoCrossing(t, n, "usage stays above")

		write(current, "150\n")
		expectCrossing(t, n, time.Second, "usage falls below")

		// Arming below the usage reports nothing for that side.
		n.SetThreshold(100)
		synctest.Wait()
		time.Sleep(time.Second)
		expectNoCrossing(t, n, "re-armed below the usage")
		write(current, "50\n")
		expectCrossing(t, n, time.Second, "usage falls below the new threshold")

		// Without a threshold nothing is read.
		n.SetThreshold(0)
		synctest.Wait()
		write(current, "500\n")
		time.Sleep(time.Second)
		expectNoCrossing(t, n, "no threshold")

		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	})
}

// The interval is the notifier's, on its clock.
func TestNotifierInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		node := newFakeNode(t.TempDir())
		node.memoryV2("/", -1, 100, 0, 0, "") // the root: anon + file
		n, err := eviction.NewMemoryNotifier(eviction.NotifierConfig{Mount: node.Mount, Version: 2, Threshold: 150, Interval: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		go n.Run(t.Context())
		synctest.Wait()
		node.memoryV2("/", -1, 100, 100, 0, "")
		time.Sleep(900 * time.Millisecond)
		expectNoCrossing(t, n, "before the interval")
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		expectCrossing(t, n, 0, "at the interval")
	})
}

// A cgroup that goes away ends Run with an error wrapping
// core.ErrNotFound; a second Run at once is refused.
func TestNotifierCgroupRemoved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		node := newFakeNode(t.TempDir())
		node.memoryV2("/pod", 100, 100, 0, 0, "max")
		n, err := eviction.NewMemoryNotifier(eviction.NotifierConfig{Cgroup: "/pod", Mount: node.Mount, Version: 2, Threshold: 200})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- n.Run(t.Context()) }()
		synctest.Wait()
		if err := n.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "already running") {
			t.Errorf("second Run = %v, want refused", err)
		}
		if err := os.RemoveAll(filepath.Join(node.Mount, "pod")); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, core.ErrNotFound) {
			t.Errorf("Run = %v, want ErrNotFound", err)
		}
	})
}

// UpdateThreshold puts the usage threshold where the working set meets
// the eviction threshold: capacity − amount + the cgroup's inactive file
// pages, read from memory.stat on either version.
func TestNotifierUpdateThreshold(t *testing.T) {
	const mi = uint64(1) << 20
	node := newFakeNode(t.TempDir())
	node.memoryV2("/kubepods", int64(900*mi), 700*mi, 200*mi, 76*mi, "1073741824")
	node.memoryV1("/kubepods", 900*mi, 80*mi, gi)
	measured := eviction.MemoryStats{Time: time.Unix(1, 0), WorkingSetBytes: 824 * mi, AvailableBytes: 200 * mi}
	for _, tc := range []struct {
		version int
		mount   string
		want    uint64
	}{
		{2, node.Mount, (1024 - 100 + 76) * mi},
		{1, node.Mount, (1024 - 100 + 80) * mi},
	} {
		n, err := eviction.NewMemoryNotifier(eviction.NotifierConfig{Cgroup: "/kubepods", Mount: tc.mount, Version: tc.version})
		if err != nil {
			t.Fatal(err)
		}
		th, err := n.UpdateThreshold(measured, eviction.ThresholdValue{Quantity: resource.MustParse("100Mi")})
		if err != nil || th != tc.want || n.Threshold() != tc.want {
			t.Errorf("v%d: UpdateThreshold = %d, %v (Threshold %d); want %d", tc.version, th, err, n.Threshold(), tc.want)
		}
		if _, err := n.UpdateThreshold(eviction.MemoryStats{}, eviction.ThresholdValue{}); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("v%d: UpdateThreshold of unmeasured stats = %v, want ErrInvalid", tc.version, err)
		}
	}
	n, err := eviction.NewMemoryNotifier(eviction.NotifierConfig{Cgroup: "/gone", Mount: node.Mount, Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.UpdateThreshold(measured, eviction.ThresholdValue{}); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("UpdateThreshold of a missing cgroup = %v, want ErrNotFound", err)
	}
}

func TestNewMemoryNotifierInvalid(t *testing.T) {
	for _, tc := range []struct {
		cfg  eviction.NotifierConfig
		want string
	}{
		{eviction.NotifierConfig{Mount: "sys/fs/cgroup"}, "Mount"},
		{eviction.NotifierConfig{Version: 3}, "Version"},
		{eviction.NotifierConfig{Interval: -time.Second}, "Interval"},
		{eviction.NotifierConfig{Cgroup: "/kubepods/../x"}, "Cgroup"},
	} {
		_, err := eviction.NewMemoryNotifier(tc.cfg)
		if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewMemoryNotifier(%+v) = %v, want an invalid %s", tc.cfg, err, tc.want)
		}
	}
	if _, err := eviction.NewMemoryNotifier(eviction.NotifierConfig{}); err != nil {
		t.Errorf("the zero NotifierConfig: %v", err)
	}
}
