package syncloop

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/nodekit/nodekit/core"
)

var backOffEpoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newTestBackOff(t *testing.T, cfg BackOffConfig) (*BackOff, *testingclock.FakeClock) {
	t.Helper()
	clk := testingclock.NewFakeClock(backOffEpoch)
	cfg.Clock = clk
	b, err := NewBackOff(cfg)
	if err != nil {
		t.Fatalf("NewBackOff(%+v): %v", cfg, err)
	}
	return b, clk
}

func TestBackOffNextSequence(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		name string
		cfg  BackOffConfig
		want []time.Duration
	}{
		{"kubelet defaults", BackOffConfig{}, []time.Duration{10 * s, 20 * s, 40 * s, 80 * s, 160 * s, 300 * s, 300 * s, 300 * s}},
		{"ReduceDefaultCrashLoopBackOffDecay", BackOffConfig{Initial: s, Max: 60 * s}, []time.Duration{s, 2 * s, 4 * s, 8 * s, 16 * s, 32 * s, 60 * s, 60 * s}},
		{"maxContainerRestartPeriod below the initial delay", BackOffConfig{Max: 5 * s}, []time.Duration{5 * s, 5 * s, 5 * s}},
		{"maxContainerRestartPeriod 1 min", BackOffConfig{Max: time.Minute}, []time.Duration{10 * s, 20 * s, 40 * s, 60 * s, 60 * s}},
		{"initial equal to max", BackOffConfig{Initial: 7 * s, Max: 7 * s}, []time.Duration{7 * s, 7 * s}},
		{"max not a power of two of initial", BackOffConfig{Initial: 3 * s, Max: 20 * s}, []time.Duration{3 * s, 6 * s, 12 * s, 20 * s, 20 * s}},
		{"huge max does not overflow", BackOffConfig{Initial: time.Duration(1) << 61, Max: time.Duration(1<<63 - 1), ResetAfter: time.Duration(1<<63 - 1)},
			[]time.Duration{1 << 61, 1 << 62, 1<<63 - 1, 1<<63 - 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, clk := newTestBackOff(t, tc.cfg)
			var got []time.Duration
			for range tc.want {
				d := b.Next("k", clk.Now())
				if d != b.Delay("k") {
					t.Fatalf("Next returned %s, Delay says %s", d, b.Delay("k"))
				}
				got = append(got, d)
				clk.Step(time.Second)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("delays = %v, want %v", got, tc.want)
			}
		})
	}
}

// crashLoop plays the kubelet's sync loop for one container on a fake
// clock: when the container has exited, a sync either holds the restart
// back (and the pod worker comes back when the back-off ends) or records
// the restart with Next and starts the container.
type crashLoop struct {
	t     *testing.T
	b     *BackOff
	clk   *testingclock.FakeClock
	key   string
	waits []time.Duration // from each exit to its restart
	msgs  []string        // the waiting message of each exit held back
}

// exit ends the container's current run after it ran for run, then
// restarts it as the kubelet would.
func (l *crashLoop) exit(run time.Duration) {
	l.t.Helper()
	l.clk.Step(run)
	finishedAt := l.clk.Now()
	if held, wait := l.b.InBackOff(l.key, finishedAt); held {
		if wait != l.b.Delay(l.key) {
			l.t.Fatalf("right after the exit, wait %s, want the whole delay %s", wait, l.b.Delay(l.key))
		}
		l.msgs = append(l.msgs, CrashLoopBackOffMessage(l.b.Delay(l.key), "app", "web", "default", "8d1c0f2e"))
		// A sync just before the end is still held back, for what is left.
		l.clk.Step(wait - time.Nanosecond)
		if held, left := l.b.InBackOff(l.key, finishedAt); !held || left != time.Nanosecond {
			l.t.Fatalf("1ns before the end: held %v for %s, want held for 1ns", held, left)
		}
		l.clk.Step(time.Nanosecond)
		if held, left := l.b.InBackOff(l.key, finishedAt); held {
			l.t.Fatalf("at the end of the delay: still held for %s", left)
		}
	}
	l.waits = append(l.waits, l.clk.Since(finishedAt))
	l.b.Next(l.key, finishedAt)
}

func (l *crashLoop) check(wantWaits []time.Duration, wantMsgDelays []string) {
	l.t.Helper()
	if fmt.Sprint(l.waits) != fmt.Sprint(wantWaits) {
		l.t.Errorf("waits before each restart = %v\nwant %v", l.waits, wantWaits)
	}
	var want []string
	for _, d := range wantMsgDelays {
		want = append(want, "back-off "+d+" restarting failed container=app pod=web_default(8d1c0f2e)")
	}
	if strings.Join(l.msgs, "\n") != strings.Join(want, "\n") {
		l.t.Errorf("messages:\n%s\nwant:\n%s", strings.Join(l.msgs, "\n"), strings.Join(want, "\n"))
	}
	l.waits, l.msgs = nil, nil
}

// The kubelet's CrashLoopBackOff: the first exit restarts at once, then
// 10 s, 20 s, 40 s, 80 s, 160 s, 300 s, 300 s…; a run longer than 10 min
// starts it over.
func TestCrashLoopBackOffSequence(t *testing.T) {
	start := time.Now()
	s := time.Second
	b, clk := newTestBackOff(t, BackOffConfig{})
	key := ContainerKey{PodName: "web", PodNamespace: "default", PodUID: "8d1c0f2e", Container: "app", Image: "nginx"}.String()
	l := &crashLoop{t: t, b: b, clk: clk, key: key}

	for range 9 {
		l.exit(time.Second) // crashes a second after each start
	}
	l.check(
		[]time.Duration{0, 10 * s, 20 * s, 40 * s, 80 * s, 160 * s, 300 * s, 300 * s, 300 * s},
		[]string{"10s", "20s", "40s", "1m20s", "2m40s", "5m0s", "5m0s", "5m0s"},
	)

	// A run of exactly ResetAfter is not long enough: the kubelet's test is
	// strictly longer than 600 s.
	l.exit(DefaultBackOffResetAfter)
	l.check([]time.Duration{300 * s}, []string{"5m0s"})

	// Running longer than ResetAfter resets: the restart is at once, and
	// the delays start over at 10 s.
	l.exit(DefaultBackOffResetAfter + time.Nanosecond)
	if d := b.Delay(key); d != 10*s {
		t.Fatalf("after a long run, delay %s, want 10s", d)
	}
	for range 3 {
		l.exit(time.Second)
	}
	l.check([]time.Duration{0, 10 * s, 20 * s, 40 * s}, []string{"10s", "20s", "40s"})

	if wall := time.Since(start); wall > time.Second {
		t.Errorf("took %s of wall time", wall)
	}
}

// A sync that runs late, long after the exit, restarts at once; the
// time left shrinks with the clock, counted from finished_at.
func TestInBackOffCountsFromFinishedAt(t *testing.T) {
	b, clk := newTestBackOff(t, BackOffConfig{})
	if held, wait := b.InBackOff("k", clk.Now()); held || wait != 0 {
		t.Fatalf("unknown key: held %v %s", held, wait)
	}
	b.Next("k", clk.Now()) // first exit, restarted at once: delay 10s
	clk.Step(3 * time.Second)
	finishedAt := clk.Now() // second exit
	clk.Step(4 * time.Second)
	if held, wait := b.InBackOff("k", finishedAt); !held || wait != 6*time.Second {
		t.Errorf("4s after the exit: held %v for %s, want 6s", held, wait)
	}
	// finished_at older than the delay: no wait at all.
	if held, _ := b.InBackOff("k", finishedAt.Add(-time.Minute)); held {
		t.Error("exit a minute ago is still held back")
	}
	// Reset forgets the key.
	b.Reset("k")
	if held, _ := b.InBackOff("k", finishedAt); held || b.Len() != 0 {
		t.Errorf("after Reset: held %v, %d keys", held, b.Len())
	}
	if d := b.Next("k", finishedAt); d != DefaultBackOffInitial {
		t.Errorf("Next after Reset = %s, want %s", d, DefaultBackOffInitial)
	}
}

// The kubelet's ImagePullBackOff: each failed pull doubles the wait,
// counted from the failure; a failure more than ResetAfter after the last
// one starts over.
func TestImagePullBackOff(t *testing.T) {
	s := time.Second
	b, clk := newTestBackOff(t, BackOffConfig{})
	key := ImageKey{PodUID: "8d1c0f2e", Image: "nginx:nope"}.String()
	if key != "8d1c0f2e_nginx:nope" {
		t.Fatalf("ImageKey = %q", key)
	}

	// pull tries to pull whenever the back-off allows; every pull fails.
	// It returns the time from that failure to the next pull.
	var lastErr string
	pull := func() time.Duration {
		t.Helper()
		failedAt := clk.Now()
		b.Next(key, failedAt)
		lastErr = "ErrImagePull: failed to pull image \"nginx:nope\": not found"
		for {
			held, wait := b.InBackOffSinceUpdate(key)
			if !held {
				return clk.Since(failedAt)
			}
			if got, want := ImagePullBackOffMessage("nginx:nope", lastErr), `Back-off pulling image "nginx:nope": ErrImagePull: failed to pull image "nginx:nope": not found`; got != want {
				t.Fatalf("message %q, want %q", got, want)
			}
			// The pod worker resyncs at most every minute.
			clk.Step(min(wait, time.Minute))
		}
	}
	var waits []time.Duration
	for range 8 {
		waits = append(waits, pull())
	}
	if want := []time.Duration{10 * s, 20 * s, 40 * s, 80 * s, 160 * s, 300 * s, 300 * s, 300 * s}; fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Errorf("waits between pulls = %v, want %v", waits, want)
	}

	// The image pulls; nothing is recorded. A failure exactly ResetAfter
	// after the last one still doubles; one later starts over.
	clk.Step(DefaultBackOffResetAfter - 300*s)
	if d := b.Next(key, clk.Now()); d != 300*s {
		t.Errorf("failure ResetAfter after the last: delay %s, want 5m0s", d)
	}
	clk.Step(DefaultBackOffResetAfter + time.Nanosecond)
	if held, _ := b.InBackOffSinceUpdate(key); held {
		t.Error("held back more than ResetAfter after the last failure")
	}
	if d := b.Next(key, clk.Now()); d != 10*s {
		t.Errorf("failure after more than ResetAfter: delay %s, want 10s", d)
	}
}

func TestBackOffGC(t *testing.T) {
	b, clk := newTestBackOff(t, BackOffConfig{})
	b.Next("old", clk.Now())
	clk.Step(5 * time.Minute)
	b.Next("recent", clk.Now())
	clk.Step(5 * time.Minute) // "old" is exactly ResetAfter old: kept
	if n := b.GC(); n != 0 || b.Len() != 2 {
		t.Fatalf("GC at ResetAfter: forgot %d, %d keys left, want 0 and 2", n, b.Len())
	}
	clk.Step(time.Nanosecond)
	if n := b.GC(); n != 1 || b.Len() != 1 || b.Delay("old") != 0 || b.Delay("recent") != 10*time.Second {
		t.Fatalf("GC after ResetAfter: forgot %d, %d keys left, old %s, recent %s",
			n, b.Len(), b.Delay("old"), b.Delay("recent"))
	}
	// Keys of pods long gone do not pile up.
	for i := range 1000 {
		b.Next(fmt.Sprint("pod-", i), clk.Now())
	}
	clk.Step(time.Hour)
	if n := b.GC(); n != 1001 || b.Len() != 0 {
		t.Errorf("GC an hour later: forgot %d, %d keys left", n, b.Len())
	}
}

func TestNewBackOffValidation(t *testing.T) {
	for _, tc := range []struct {
		cfg  BackOffConfig
		want string
	}{
		{BackOffConfig{Initial: -time.Second}, "Initial -1s, Max 0s and ResetAfter 0s must not be negative"},
		{BackOffConfig{Max: -time.Second}, "must not be negative"},
		{BackOffConfig{ResetAfter: -time.Second}, "must not be negative"},
		{BackOffConfig{Initial: time.Minute, Max: 30 * time.Second}, "Initial 1m0s must not exceed Max 30s"},
		{BackOffConfig{Initial: 11 * time.Minute}, "Initial 11m0s must not exceed Max 5m0s"},
		{BackOffConfig{ResetAfter: time.Minute}, "ResetAfter 1m0s must be at least Max 5m0s"},
		{BackOffConfig{Max: time.Hour}, "ResetAfter 10m0s must be at least Max 1h0m0s"},
	} {
		b, err := NewBackOff(tc.cfg)
		if b != nil || !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewBackOff(%+v) = %v, %v; want nil and core.ErrInvalid with %q", tc.cfg, b, err, tc.want)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "syncloop: back-off: invalid: ") {
			t.Errorf("error %q lacks the package prefix", err)
		}
	}

	b, err := NewBackOff(BackOffConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if b.initial != 10*time.Second || b.max != 300*time.Second || b.resetAfter != 10*time.Minute || b.clock == nil {
		t.Errorf("defaults: initial %s, max %s, resetAfter %s, clock %v", b.initial, b.max, b.resetAfter, b.clock)
	}
}

func TestContainerKey(t *testing.T) {
	// The kubelet's GetBackoffKey for pod shop/web (UID 8d1c0f2e),
	// container app, image nginx:1.27, no resources; the hash computed
	// apart from this code.
	noResources := "&ResourceRequirements{Limits:ResourceList{},Requests:ResourceList{},Claims:[]ResourceClaim{},}"
	base := ContainerKey{PodName: "web", PodNamespace: "shop", PodUID: "8d1c0f2e", Container: "app", Image: "nginx:1.27", Resources: noResources}
	if got := base.String(); got != "1bc856422ca6f449" {
		t.Errorf("key = %s, want the kubelet's 1bc856422ca6f449", got)
	}
	// Every field is part of the key.
	seen := map[string]string{base.String(): "base"}
	for name, change := range map[string]func(*ContainerKey){
		"pod name":      func(k *ContainerKey) { k.PodName = "web2" },
		"pod namespace": func(k *ContainerKey) { k.PodNamespace = "default" },
		"pod UID":       func(k *ContainerKey) { k.PodUID = "0c6e3c41" },
		"container":     func(k *ContainerKey) { k.Container = "sidecar" },
		"image":         func(k *ContainerKey) { k.Image = "nginx:1.28" },
		"resources":     func(k *ContainerKey) { k.Resources = "cpu=1" },
	} {
		k := base
		change(&k)
		if other, dup := seen[k.String()]; dup {
			t.Errorf("changing the %s gives the key of %s", name, other)
		}
		seen[k.String()] = name
	}
}

func TestBackOffMessages(t *testing.T) {
	uid := types.UID("8d1c0f2e")
	for _, tc := range []struct{ got, want string }{
		{CrashLoopBackOffMessage(10*time.Second, "app", "web", "shop", uid), "back-off 10s restarting failed container=app pod=web_shop(8d1c0f2e)"},
		{CrashLoopBackOffMessage(80*time.Second, "app", "web", "shop", uid), "back-off 1m20s restarting failed container=app pod=web_shop(8d1c0f2e)"},
		{CrashLoopBackOffMessage(300*time.Second, "app", "web", "shop", uid), "back-off 5m0s restarting failed container=app pod=web_shop(8d1c0f2e)"},
		{CrashLoopBackOffEventMessage("app", "web", "shop", uid), "Back-off restarting failed container app in pod web_shop(8d1c0f2e)"},
		{ImagePullBackOffMessage("nginx:nope", ""), `Back-off pulling image "nginx:nope"`},
		{ImagePullBackOffMessage("nginx:nope", "ErrImagePull: not found"), `Back-off pulling image "nginx:nope": ErrImagePull: not found`},
		{ReasonCrashLoopBackOff + " " + ReasonErrImagePull + " " + ReasonImagePullBackOff + " " + EventReasonBackOff, "CrashLoopBackOff ErrImagePull ImagePullBackOff BackOff"},
	} {
		if tc.got != tc.want {
			t.Errorf("got  %q\nwant %q", tc.got, tc.want)
		}
	}
}

// Run with -race: every method may be called from many pod workers.
func TestBackOffConcurrent(t *testing.T) {
	b, clk := newTestBackOff(t, BackOffConfig{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			key := fmt.Sprint("k", i%2)
			for range 100 {
				b.InBackOff(key, clk.Now())
				b.InBackOffSinceUpdate(key)
				b.Next(key, clk.Now())
				b.Delay(key)
				b.GC()
				b.Len()
			}
		})
	}
	wg.Wait()
	if b.Len() != 2 || b.Delay("k0") != DefaultBackOffMax {
		t.Errorf("%d keys, k0 delay %s", b.Len(), b.Delay("k0"))
	}
}
