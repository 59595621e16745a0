package volumemgr

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/nodekit/nodekit/core"
)

// volumeList is a changeable list of volumes for StatsConfig.Volumes.
type volumeList struct {
	mu   sync.Mutex
	refs []VolumeRef
}

func (l *volumeList) set(refs ...VolumeRef) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refs = refs
}

func (l *volumeList) get() []VolumeRef {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]VolumeRef(nil), l.refs...)
}

// fakeMeasure records the measurements asked of it and answers with
// stats whose UsedBytes counts the measurements of the volume and whose
// Time is the clock's; fail makes a volume's measurement fail.
type fakeMeasure struct {
	now func() time.Time

	mu    sync.Mutex
	calls map[string]int
	times map[string][]time.Time
	fail  map[string]error
}

func newFakeMeasure(now func() time.Time) *fakeMeasure {
	return &fakeMeasure{now: now, calls: map[string]int{}, times: map[string][]time.Time{}, fail: map[string]error{}}
}

func (f *fakeMeasure) measure(_ context.Context, r VolumeRef) (VolumeStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[r.Volume]++
	f.times[r.Volume] = append(f.times[r.Volume], f.now())
	if err := f.fail[r.Volume]; err != nil {
		return VolumeStats{}, err
	}
	return VolumeStats{Time: f.now(), CapacityBytes: 1000, AvailableBytes: 600, UsedBytes: int64(f.calls[r.Volume]),
		Inodes: 100, InodesFree: 90, InodesUsed: 7}, nil
}

func (f *fakeMeasure) count(volume string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[volume]
}

func (f *fakeMeasure) setFail(volume string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[volume] = err
}

func ref(uid, volume string) VolumeRef {
	return VolumeRef{PodUID: types.UID(uid), Namespace: "ns", Pod: "pod-" + uid, Volume: volume,
		Plugin: PluginEmptyDir, Path: "/var/lib/kubelet/pods/" + uid + "/volumes/kubernetes.io~empty-dir/" + volume}
}

func TestNewStatsValidates(t *testing.T) {
	vols := func() []VolumeRef { return nil }
	for _, tc := range []struct {
		name string
		cfg  StatsConfig
		want string // in the error; "" for none
	}{
		{"zero values usable", StatsConfig{Volumes: vols}, ""},
		{"Volumes required", StatsConfig{}, "Volumes is required"},
		{"negative Period", StatsConfig{Volumes: vols, Period: -time.Second}, "Period must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewStats(tc.cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("NewStats: %v", err)
				}
				if s.cfg.Period != DefaultStatsPeriod || s.cfg.Clock == nil || s.log == nil {
					t.Errorf("defaults not applied: %+v", s.cfg)
				}
				return
			}
			if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewStats: %v, want core.ErrInvalid naming %q", err, tc.want)
			}
		})
	}
}

func TestStatsRunRefreshesEveryPeriod(t *testing.T) {
	for _, tc := range []struct {
		name   string
		period time.Duration // configured
		want   time.Duration // between refreshes
	}{
		{"configured", 10 * time.Second, 10 * time.Second},
		{"default as the kubelet's volumeStatsAggPeriod", 0, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var vols volumeList
				vols.set(ref("u1", "a"))
				s, err := NewStats(StatsConfig{Volumes: vols.get, Period: tc.period})
				if err != nil {
					t.Fatal(err)
				}
				fm := newFakeMeasure(time.Now)
				s.measure = fm.measure
				start := time.Now()
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				go func() { done <- s.Run(ctx) }()

				synctest.Wait()
				if n := fm.count("a"); n != 1 {
					t.Fatalf("%d measurements at start, want 1", n)
				}
				time.Sleep(tc.want - time.Nanosecond)
				synctest.Wait()
				if n := fm.count("a"); n != 1 {
					t.Fatalf("%d measurements just before the period, want 1", n)
				}
				time.Sleep(time.Nanosecond)
				synctest.Wait()
				if n := fm.count("a"); n != 2 {
					t.Fatalf("%d measurements after one period, want 2", n)
				}
				// A volume added is measured at the next refresh.
				vols.set(ref("u1", "a"), ref("u2", "b"))
				time.Sleep(tc.want)
				synctest.Wait()
				if a, b := fm.count("a"), fm.count("b"); a != 3 || b != 1 {
					t.Fatalf("after two periods: %d and %d measurements, want 3 and 1", a, b)
				}
				got := s.PodVolumeStats("u1")["a"]
				if want := start.Add(2 * tc.want); !got.Time.Equal(want) || got.UsedBytes != 3 {
					t.Errorf("stats of a: %+v, want those of the third measurement at %v", got, want)
				}

				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Errorf("Run = %v, want context.Canceled", err)
				}
			})
		})
	}
}

func TestStatsRunStopsAMeasurementWhenContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := NewStats(StatsConfig{Volumes: func() []VolumeRef { return []VolumeRef{ref("u1", "a")} }})
		if err != nil {
			t.Fatal(err)
		}
		started := make(chan struct{})
		s.measure = func(ctx context.Context, _ VolumeRef) (VolumeStats, error) {
			close(started)
			<-ctx.Done()
			return VolumeStats{}, ctx.Err()
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		<-started
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
		if all := s.All(); len(all) != 0 {
			t.Errorf("All = %+v after an interrupted measurement, want nothing", all)
		}
		s.mu.RLock()
		defer s.mu.RUnlock()
		if len(s.cache) != 0 {
			t.Errorf("an interrupted measurement was recorded as a failure: %+v", s.cache)
		}
	})
}

func TestStatsForgetsVolumesThatDisappear(t *testing.T) {
	var vols volumeList
	vols.set(ref("u1", "a"), ref("u1", "b"), ref("u2", "c"))
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	s, err := NewStats(StatsConfig{Volumes: vols.get, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	s.measure = newFakeMeasure(clk.Now).measure
	if err := s.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := s.PodVolumeStats("u1"); len(got) != 2 || got["a"].CapacityBytes != 1000 || !got["b"].Time.Equal(clk.Now()) {
		t.Fatalf("PodVolumeStats(u1) = %+v, want a and b", got)
	}

	vols.set(ref("u1", "b"))
	if err := s.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := s.PodVolumeStats("u1"); len(got) != 1 || got["b"].UsedBytes != 2 {
		t.Errorf("PodVolumeStats(u1) = %+v, want b alone, measured twice", got)
	}
	if got := s.PodVolumeStats("u2"); got != nil {
		t.Errorf("PodVolumeStats(u2) = %+v, want nil: the pod is gone", got)
	}
	all := s.All()
	if len(all) != 1 || all[0].Ref != ref("u1", "b") {
		t.Errorf("All = %+v, want b of u1 alone", all)
	}
}

func TestStatsAllIsOrderedAndCarriesTheRefs(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	refs := []VolumeRef{ref("u2", "a"), ref("u1", "z"), ref("u1", "b")}
	refs[0].Claim, refs[0].OwnFS = "data", true
	s, err := NewStats(StatsConfig{Volumes: func() []VolumeRef { return refs }, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	s.measure = newFakeMeasure(clk.Now).measure
	if err := s.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	all := s.All()
	var got []string
	for _, u := range all {
		got = append(got, string(u.Ref.PodUID)+"/"+u.Ref.Volume)
	}
	if strings.Join(got, " ") != "u1/b u1/z u2/a" {
		t.Errorf("All in order %v, want u1/b u1/z u2/a", got)
	}
	if all[2].Ref != refs[0] || all[2].Stats.AvailableBytes != 600 {
		t.Errorf("All[2] = %+v, want the ref as given with its stats", all[2])
	}
}

func TestStatsKeepsTheLastStatsWhenAMeasurementFails(t *testing.T) {
	obs, logs := observer.New(zapcore.InfoLevel)
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	var vols volumeList
	vols.set(ref("u1", "a"))
	s, err := NewStats(StatsConfig{Volumes: vols.get, Clock: clk, Logger: zap.New(obs)})
	if err != nil {
		t.Fatal(err)
	}
	fm := newFakeMeasure(clk.Now)
	s.measure = fm.measure
	if err := s.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	first := s.PodVolumeStats("u1")["a"]

	// a now fails, and b, new, fails from the start.
	broken := errors.New("disk on fire")
	fm.setFail("a", broken)
	fm.setFail("b", broken)
	vols.set(ref("u1", "a"), ref("u1", "b"))
	for range 2 {
		clk.Step(time.Minute)
		if err := s.Refresh(t.Context()); !errors.Is(err, broken) {
			t.Fatalf("Refresh = %v, want the failures", err)
		}
	}
	got := s.PodVolumeStats("u1")
	if len(got) != 1 || got["a"] != first {
		t.Errorf("PodVolumeStats = %+v, want a's first stats %+v alone (b was never measured)", got, first)
	}
	if n := logs.FilterMessage("cannot measure volume").Len(); n != 2 {
		t.Errorf("%d failures logged over two refreshes, want 2: one per volume until its error changes", n)
	}
	fm.setFail("a", errors.New("disk still on fire"))
	clk.Step(time.Minute)
	_ = s.Refresh(t.Context())
	if n := logs.FilterMessage("cannot measure volume").Len(); n != 3 {
		t.Errorf("%d failures logged, want 3: a's new error is logged", n)
	}

	fm.setFail("a", nil)
	clk.Step(time.Minute)
	if err := s.Refresh(t.Context()); !errors.Is(err, broken) {
		t.Fatalf("Refresh = %v, want b's failure", err)
	}
	if got := s.PodVolumeStats("u1")["a"]; !got.Time.Equal(clk.Now()) {
		t.Errorf("a's stats are from %v, want the new measurement at %v", got.Time, clk.Now())
	}
	if n := logs.FilterMessage("volume measured again").Len(); n != 1 {
		t.Errorf("recovery logged %d times, want 1", n)
	}
}

func TestStatsRefreshReportsBadRefs(t *testing.T) {
	dir := t.TempDir()
	good := VolumeRef{PodUID: "u1", Volume: "good", Path: dir}
	relative := VolumeRef{PodUID: "u1", Volume: "relative", Path: "volumes/x"}
	noUID := VolumeRef{Volume: "nouid", Path: dir}
	dup := good
	dup.Path = "/elsewhere"
	s, err := NewStats(StatsConfig{Volumes: func() []VolumeRef { return []VolumeRef{good, relative, noUID, dup} }})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Refresh(t.Context())
	if !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("Refresh = %v, want core.ErrInvalid", err)
	}
	for _, want := range []string{`Path "volumes/x" is not absolute`, "PodUID is required", `volume "good" of pod u1 listed twice`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Refresh = %v, want it to say %q", err, want)
		}
	}
	all := s.All()
	if len(all) != 1 || all[0].Ref != good {
		t.Errorf("All = %+v, want the good volume alone, as first listed", all)
	}
}

func TestStatsRefreshesOneAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := NewStats(StatsConfig{Volumes: func() []VolumeRef { return []VolumeRef{ref("u1", "a")} }})
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		running, most, calls := 0, 0, 0
		release := make(chan struct{})
		s.measure = func(context.Context, VolumeRef) (VolumeStats, error) {
			mu.Lock()
			running++
			calls++
			most = max(most, running)
			mu.Unlock()
			<-release
			mu.Lock()
			running--
			mu.Unlock()
			return VolumeStats{Time: time.Now()}, nil
		}
		first := make(chan error, 1)
		go func() { first <- s.Refresh(t.Context()) }()
		synctest.Wait()

		// A refresh waiting for the one under way gives up when its ctx
		// ends.
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if err := s.Refresh(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Refresh while another runs, ctx ending = %v, want context.DeadlineExceeded", err)
		}
		second := make(chan error, 1)
		go func() { second <- s.Refresh(t.Context()) }()
		synctest.Wait()
		mu.Lock()
		if calls != 1 {
			t.Errorf("%d measurements started while the first runs, want 1", calls)
		}
		mu.Unlock()
		close(release)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		if err := <-second; err != nil {
			t.Fatal(err)
		}
		if calls != 2 || most != 1 {
			t.Errorf("%d measurements, at most %d at once; want 2, one at a time", calls, most)
		}
	})
}

func TestStatsMeasuresVolumesOnASharedFilesystem(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cfg", "key"), 5000)
	file := filepath.Join(dir, "host-file")
	writeFile(t, file, 20000)
	vol := VolumeRef{PodUID: "u1", Namespace: "ns", Pod: "p", Volume: "cfg", Plugin: PluginConfigMap, Path: filepath.Join(dir, "cfg")}
	host := VolumeRef{PodUID: "u1", Namespace: "ns", Pod: "p", Volume: "host", Plugin: PluginHostPath, Path: file}
	s, err := NewStats(StatsConfig{Volumes: func() []VolumeRef { return []VolumeRef{vol, host} }, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	fs, err := statfs(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := s.PodVolumeStats("u1")
	du := mustDiskUsage(t, vol.Path)
	if st := got["cfg"]; st.UsedBytes != du.Bytes || st.InodesUsed != 2 || st.CapacityBytes != fs.capacity ||
		st.Inodes != fs.inodes || !st.Time.Equal(clk.Now()) {
		t.Errorf("stats of the configMap volume = %+v; want used %+v (the walk), capacity %d and inodes %d (statfs), at %v",
			st, du, fs.capacity, fs.inodes, clk.Now())
	}
	fi, err := os.Lstat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st := got["host"]; st.UsedBytes != fi.Sys().(*syscall.Stat_t).Blocks*512 || st.UsedBytes < 20000 || st.InodesUsed != 1 ||
		st.CapacityBytes != fs.capacity {
		t.Errorf("stats of the hostPath file = %+v; want the file's blocks, one inode, its filesystem's capacity %d", st, fs.capacity)
	}
}

func TestStatsMeasuresAVolumeOfItsOwnFilesystem(t *testing.T) {
	dir := t.TempDir()
	mountTmpfs(t, dir, "size=8m,nr_inodes=100")
	writeFile(t, filepath.Join(dir, "a"), 1<<20)
	vol := VolumeRef{PodUID: "u1", Volume: "mem", Plugin: PluginEmptyDir, Path: dir, OwnFS: true}
	s, err := NewStats(StatsConfig{Volumes: func() []VolumeRef { return []VolumeRef{vol} }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	fs, err := statfs(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := VolumeStats{CapacityBytes: 8 << 20, AvailableBytes: 7 << 20, UsedBytes: 1 << 20,
		Inodes: 100, InodesFree: fs.inodesFree, InodesUsed: 100 - fs.inodesFree}
	got := s.PodVolumeStats("u1")["mem"]
	if got.Time.IsZero() {
		t.Error("no time on the stats")
	}
	got.Time = time.Time{}
	if got != want {
		t.Errorf("stats of a tmpfs = %+v, want %+v (statfs alone)", got, want)
	}
}
