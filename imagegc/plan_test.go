package imagegc_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/imagegc"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// img is an image detected at detected and last used at used (minutes
// after t0; used < 0: never used).
func img(id string, size uint64, detected, used int) imagegc.Image {
	i := imagegc.Image{ID: id, Size: size, FirstDetected: t0.Add(time.Duration(detected) * time.Minute)}
	if used >= 0 {
		i.LastUsed = t0.Add(time.Duration(used) * time.Minute)
	}
	return i
}

func pinned(i imagegc.Image) imagegc.Image { i.Pinned = true; return i }

// steps renders a plan as "delete ID reason" and "keep ID reason", in
// the plan's order.
func steps(p imagegc.Plan) []string {
	var out []string
	for _, d := range p.Delete {
		out = append(out, "delete "+d.Image.ID+" "+string(d.Reason))
	}
	for _, k := range p.Keep {
		out = append(out, "keep "+k.Image.ID+" "+string(k.Reason))
	}
	return out
}

func TestDecide(t *testing.T) {
	noAges := imagegc.Policy{HighThresholdPercent: 85, LowThresholdPercent: 80}
	minAge := imagegc.Policy{HighThresholdPercent: 85, LowThresholdPercent: 80, MinAge: 10 * time.Minute}
	maxAge := imagegc.Policy{HighThresholdPercent: 85, LowThresholdPercent: 80, MinAge: 10 * time.Minute, MaxAge: time.Hour}
	for _, tc := range []struct {
		name   string
		images []imagegc.Image
		inUse  []string
		now    int // minutes after t0
		policy imagegc.Policy
		free   uint64
		want   []string
		space  uint64
		age    uint64
	}{{
		name:   "least recently used first, stops once enough is freed",
		images: []imagegc.Image{img("c", 100, 0, 30), img("a", 100, 0, 10), img("b", 100, 0, 20)},
		now:    60, policy: noAges, free: 150,
		want:  []string{"delete a space", "delete b space", "keep c not needed"},
		space: 200,
	}, {
		name:   "an image never used goes before any used one",
		images: []imagegc.Image{img("used", 100, 0, 5), img("never", 100, 20, -1)},
		now:    60, policy: noAges, free: 1,
		want:  []string{"delete never space", "keep used not needed"},
		space: 100,
	}, {
		name:   "ties broken by first detection, then by ID",
		images: []imagegc.Image{img("late", 10, 30, 40), img("y", 10, 5, 40), img("x", 10, 5, 40)},
		now:    60, policy: noAges, free: 25,
		want:  []string{"delete x space", "delete y space", "delete late space"},
		space: 30,
	}, {
		name:   "in use and pinned stay whatever the need",
		images: []imagegc.Image{img("busy", 500, 0, 60), pinned(img("pause", 500, 0, -1)), img("idle", 10, 0, -1)},
		inUse:  []string{"busy"},
		now:    60, policy: noAges, free: imagegc.AllBytes,
		want:  []string{"delete idle space", "keep pause pinned", "keep busy in use"},
		space: 10,
	}, {
		name:   "younger than MinAge stays; the next one goes instead",
		images: []imagegc.Image{img("new", 100, 55, -1), img("old", 100, 0, 20)},
		now:    60, policy: minAge, free: 100,
		want:  []string{"delete old space", "keep new younger than the minimum age"},
		space: 100,
	}, {
		name:   "exactly MinAge old may go",
		images: []imagegc.Image{img("edge", 100, 50, -1)},
		now:    60, policy: minAge, free: 1,
		want:  []string{"delete edge space"},
		space: 100,
	}, {
		name:   "used now (not in use any more) stays",
		images: []imagegc.Image{img("now", 100, 0, 60), img("before", 100, 0, 59)},
		now:    60, policy: noAges, free: imagegc.AllBytes,
		want:  []string{"delete before space", "keep now used now"},
		space: 100,
	}, {
		name:   "nothing wanted: nothing deleted for space",
		images: []imagegc.Image{img("a", 100, 0, -1), img("b", 100, 0, 1)},
		now:    60, policy: noAges, free: 0,
		want: []string{"keep a not needed", "keep b not needed"},
	}, {
		name:   "not enough to free: every candidate goes, and that is all",
		images: []imagegc.Image{img("a", 100, 0, -1), img("b", 100, 0, 1), img("c", 100, 0, 2)},
		inUse:  []string{"c"},
		now:    60, policy: noAges, free: 1000,
		want:  []string{"delete a space", "delete b space", "keep c in use"},
		space: 200,
	}, {
		name: "MaxAge: unused for longer goes by age whatever the space, before any space deletion",
		images: []imagegc.Image{
			img("fresh", 100, 0, 200), img("stale", 300, 0, 100), img("stale-busy", 100, 0, 90),
			pinned(img("stale-pinned", 100, 0, 10)), img("edge", 100, 0, 170),
		},
		inUse: []string{"stale-busy"},
		now:   230, policy: maxAge, free: 0,
		want: []string{"delete stale age", "keep stale-pinned pinned", "keep stale-busy in use", "keep edge not needed", "keep fresh not needed"},
		age:  300,
	}, {
		name:   "MaxAge: deletions by age do not count toward the space to free",
		images: []imagegc.Image{img("stale", 300, 0, 10), img("a", 100, 0, 150), img("b", 100, 0, 160)},
		now:    200, policy: maxAge, free: 50,
		want:  []string{"delete stale age", "delete a space", "keep b not needed"},
		space: 100, age: 300,
	}, {
		name:   "MaxAge: a never used image is as old as its first detection",
		images: []imagegc.Image{img("pulled-long-ago", 10, 0, -1), img("just-pulled", 10, 199, -1)},
		now:    200, policy: maxAge, free: 0,
		want: []string{"delete pulled-long-ago age", "keep just-pulled not needed"},
		age:  10,
	}, {
		name:   "MaxAge ignores MinAge, as the kubelet's does",
		images: []imagegc.Image{img("odd", 10, 195, -1)},
		now:    200, policy: imagegc.Policy{MinAge: time.Hour, MaxAge: time.Minute}, free: 0,
		want: []string{"delete odd age"},
		age:  10,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			inUse := map[string]bool{}
			for _, id := range tc.inUse {
				inUse[id] = true
			}
			in := imagegc.Input{Images: tc.images, InUse: inUse, Now: t0.Add(time.Duration(tc.now) * time.Minute), Policy: tc.policy, BytesToFree: tc.free}
			before := append([]imagegc.Image(nil), tc.images...)
			p := imagegc.Decide(in)
			if got := steps(p); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if p.SpaceBytes != tc.space || p.AgeBytes != tc.age || p.BytesToFree != tc.free {
				t.Errorf("bytes: space %d age %d to free %d, want %d %d %d", p.SpaceBytes, p.AgeBytes, p.BytesToFree, tc.space, tc.age, tc.free)
			}
			for i := range before {
				if before[i].ID != tc.images[i].ID {
					t.Fatalf("Decide reordered its input")
				}
			}
		})
	}
}

func TestPlanString(t *testing.T) {
	p := imagegc.Decide(imagegc.Input{
		Images: []imagegc.Image{
			{ID: "sha256:aa", RepoTags: []string{"docker.io/library/nginx:1.27"}, Size: 3 << 20, FirstDetected: t0},
			{ID: "sha256:bb", Size: 512, FirstDetected: t0, LastUsed: t0.Add(time.Minute)},
		},
		Now: t0.Add(time.Hour), BytesToFree: 1 << 20,
	})
	want := `to free for space: 1.0 MiB; deleting 1 (0 B by age, 3.0 MiB for space), keeping 1
  delete docker.io/library/nginx:1.27 (3.0 MiB): space
  keep sha256:bb (512 B): not needed`
	if got := p.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestSpaceToFree(t *testing.T) {
	def := imagegc.DefaultPolicy()
	for _, tc := range []struct {
		name            string
		capacity, avail uint64
		policy          imagegc.Policy
		usage           int
		over            bool
		bytes           uint64
	}{
		{"below the high threshold", 1000, 200, def, 80, false, 0},
		{"at the high threshold: down to the low one", 1000, 150, def, 85, true, 50},
		{"far above", 1000, 0, def, 100, true, 200},
		{"usage rounds up", 1000, 151, def, 85, true, 49},
		{"available beyond capacity is the capacity", 1000, 5000, def, 0, false, 0},
		{"high 0 always collects", 1000, 1000, imagegc.Policy{}, 0, true, 0},
		{"high 100 only when full", 1000, 0, imagegc.Policy{HighThresholdPercent: 100, LowThresholdPercent: 90}, 100, true, 100},
		{"high 100, not full", 1000, 10, imagegc.Policy{HighThresholdPercent: 100, LowThresholdPercent: 90}, 99, false, 0},
		{"high 100: under 1 % free rounds to full", 1000, 9, imagegc.Policy{HighThresholdPercent: 100, LowThresholdPercent: 90}, 100, true, 91},
		{"large filesystems do not overflow", 1 << 62, 1 << 58, def, 94, true, (1<<62)/5 - (1 << 58)},
		{"zero capacity", 0, 0, def, 0, false, 0},
	} {
		usage, over, bytes := imagegc.SpaceToFree(imagegc.FsStats{CapacityBytes: tc.capacity, AvailableBytes: tc.avail}, tc.policy)
		if usage != tc.usage || over != tc.over || bytes != tc.bytes {
			t.Errorf("%s: usage %d over %v bytes %d, want %d %v %d", tc.name, usage, over, bytes, tc.usage, tc.over, tc.bytes)
		}
	}
}

// SpaceToFree and Decide take a Policy as given, not validated: the
// thresholds are clamped to 0..100 and the ages to at least 0, so that no
// policy frees more than the filesystem holds.
func TestUnvalidatedPolicyClamped(t *testing.T) {
	for _, tc := range []struct {
		name            string
		capacity, avail uint64
		policy          imagegc.Policy
		usage           int
		over            bool
		bytes           uint64
	}{
		{"low above 100 is 100: nothing to free", 1000, 100, imagegc.Policy{HighThresholdPercent: 85, LowThresholdPercent: 150}, 90, true, 0},
		{"low far above 100", 1 << 40, 0, imagegc.Policy{HighThresholdPercent: 85, LowThresholdPercent: 1 << 40}, 100, true, 0},
		{"negative low is 0: free everything", 1000, 100, imagegc.Policy{HighThresholdPercent: 85, LowThresholdPercent: -20}, 90, true, 900},
		{"high above 100 is 100: a full filesystem is over", 1000, 0, imagegc.Policy{HighThresholdPercent: 150, LowThresholdPercent: 90}, 100, true, 100},
		{"high above 100, not full", 1000, 100, imagegc.Policy{HighThresholdPercent: 150, LowThresholdPercent: 90}, 90, false, 0},
		{"negative high is 0", 1000, 1000, imagegc.Policy{HighThresholdPercent: -5, LowThresholdPercent: -5}, 0, true, 0},
		{"negative high, some used", 1000, 600, imagegc.Policy{HighThresholdPercent: -5, LowThresholdPercent: -5}, 40, true, 400},
	} {
		usage, over, bytes := imagegc.SpaceToFree(imagegc.FsStats{CapacityBytes: tc.capacity, AvailableBytes: tc.avail}, tc.policy)
		if usage != tc.usage || over != tc.over || bytes != tc.bytes {
			t.Errorf("%s: usage %d over %v bytes %d, want %d %v %d", tc.name, usage, over, bytes, tc.usage, tc.over, tc.bytes)
		}
	}

	// A negative MinAge is none: an image first detected after now (a
	// clock stepped back) stays, as with MinAge 0.
	for _, minAge := range []time.Duration{0, -time.Hour} {
		p := imagegc.Decide(imagegc.Input{Images: []imagegc.Image{img("future", 10, 90, -1), img("old", 10, 0, -1)},
			Now: t0.Add(time.Hour), Policy: imagegc.Policy{MinAge: minAge, MaxAge: -time.Minute}, BytesToFree: imagegc.AllBytes})
		if got, want := steps(p), []string{"delete old space", "keep future younger than the minimum age"}; !slices.Equal(got, want) {
			t.Errorf("MinAge %s: %q, want %q", minAge, got, want)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	if err := imagegc.DefaultPolicy().Validate(); err != nil {
		t.Errorf("default policy: %v", err)
	}
	if err := (imagegc.Policy{}).Validate(); err != nil {
		t.Errorf("zero policy: %v", err)
	}
	if err := (imagegc.Policy{HighThresholdPercent: 80, LowThresholdPercent: 80}).Validate(); err != nil {
		t.Errorf("low = high: %v", err)
	}
	for field, p := range map[string]imagegc.Policy{
		"HighThresholdPercent": {HighThresholdPercent: 101},
		"LowThresholdPercent":  {HighThresholdPercent: 80, LowThresholdPercent: 90},
		"MinAge":               {HighThresholdPercent: 80, MinAge: -time.Second},
		"MaxAge":               {HighThresholdPercent: 80, MaxAge: -time.Second},
	} {
		err := p.Validate()
		if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "Policy."+field) {
			t.Errorf("%+v: %v, want core.ErrInvalid naming %s", p, err, field)
		}
	}
	if err := (imagegc.Policy{HighThresholdPercent: 80, LowThresholdPercent: -1}).Validate(); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("negative low: %v", err)
	}
	if (imagegc.Policy{HighThresholdPercent: 100}).Periodic() || !(imagegc.Policy{HighThresholdPercent: 100, MaxAge: time.Hour}).Periodic() || !imagegc.DefaultPolicy().Periodic() {
		t.Error("Periodic: want off only for high 100 without MaxAge")
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[uint64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 3 << 20: "3.0 MiB",
		5 << 30: "5.0 GiB", 1<<40 + 1<<39: "1.5 TiB",
	} {
		if got := imagegc.FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}
