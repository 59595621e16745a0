package eviction

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/nodekit/nodekit/core"
)

// strs formats thresholds for comparison.
func strs(ts []Threshold) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.String()
	}
	return out
}

func TestParseThresholds(t *testing.T) {
	type m = map[string]string
	tests := []struct {
		name                   string
		hard, soft, grace, min m
		want                   []string
	}{
		{name: "nothing"},
		{
			name: "quantity",
			hard: m{"memory.available": "150Mi"},
			want: []string{"memory.available<150Mi"},
		},
		{
			name: "percentage",
			hard: m{"nodefs.available": "10%", "imagefs.inodesFree": "12.5%"},
			want: []string{"nodefs.available<10%", "imagefs.inodesFree<12.5%"},
		},
		{
			name: "every signal, in signal order",
			hard: m{"pid.available": "100", "containerfs.inodesFree": "1%", "containerfs.available": "2%", "imagefs.inodesFree": "3%",
				"imagefs.available": "4%", "nodefs.inodesFree": "5%", "nodefs.available": "6%", "allocatableMemory.available": "7Mi", "memory.available": "8Mi"},
			want: []string{"memory.available<8Mi", "allocatableMemory.available<7Mi", "nodefs.available<6%", "nodefs.inodesFree<5%",
				"imagefs.available<4%", "imagefs.inodesFree<3%", "containerfs.available<2%", "containerfs.inodesFree<1%", "pid.available<100"},
		},
		{
			name:  "soft with grace period, after the hard ones",
			hard:  m{"memory.available": "100Mi"},
			soft:  m{"memory.available": "300Mi", "nodefs.available": "15%"},
			grace: m{"memory.available": "1m30s", "nodefs.available": "2m", "pid.available": "10s"},
			want:  []string{"memory.available<100Mi", "memory.available<300Mi for 1m30s", "nodefs.available<15% for 2m0s"},
		},
		{
			name:  "a zero grace period makes a soft threshold hard",
			soft:  m{"memory.available": "300Mi"},
			grace: m{"memory.available": "0s"},
			want:  []string{"memory.available<300Mi"},
		},
		{
			name:  "minimum reclaim on hard and soft",
			hard:  m{"memory.available": "100Mi", "nodefs.available": "10%"},
			soft:  m{"memory.available": "300Mi"},
			grace: m{"memory.available": "30s"},
			min:   m{"memory.available": "50Mi", "nodefs.available": "5%", "imagefs.available": "1Gi"},
			want:  []string{"memory.available<100Mi reclaim 50Mi", "nodefs.available<10% reclaim 5%", "memory.available<300Mi for 30s reclaim 50Mi"},
		},
		{
			name: "zero minimum reclaim is none",
			hard: m{"memory.available": "100Mi"},
			min:  m{"memory.available": "0"},
			want: []string{"memory.available<100Mi"},
		},
		{
			name: "0% and 100% disable the signal",
			hard: m{"memory.available": "0%", "nodefs.available": "100%", "imagefs.available": "0.0%", "pid.available": "1%"},
			want: []string{"pid.available<1%"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseThresholds(tc.hard, tc.soft, tc.grace, tc.min)
			if err != nil {
				t.Fatalf("ParseThresholds: %v", err)
			}
			if !slices.Equal(strs(got), tc.want) {
				t.Errorf("ParseThresholds:\n got %q\nwant %q", strs(got), tc.want)
			}
		})
	}
}

func TestParseThresholdsValues(t *testing.T) {
	got, err := ParseThresholds(map[string]string{"memory.available": "1Gi", "nodefs.available": "10%"},
		map[string]string{"nodefs.inodesFree": "5%"}, map[string]string{"nodefs.inodesFree": "90s"}, map[string]string{"nodefs.available": "500Mi"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d thresholds, want 3", len(got))
	}
	mem, nodefs, inodes := got[0], got[1], got[2]
	if mem.Signal != SignalMemoryAvailable || !mem.Hard() || mem.Value.Quantity.Value() != gi || mem.Value.Percentage != 0 || !mem.MinReclaim.IsZero() {
		t.Errorf("memory threshold = %+v", mem)
	}
	if nodefs.Signal != SignalNodeFsAvailable || nodefs.Value.Percentage != float32(10)/100 || nodefs.MinReclaim.Quantity.Value() != 500*mi {
		t.Errorf("nodefs threshold = %+v", nodefs)
	}
	if inodes.Signal != SignalNodeFsInodesFree || inodes.Hard() || inodes.GracePeriod != 90*time.Second {
		t.Errorf("inodes threshold = %+v", inodes)
	}
}

func TestParseThresholdsErrors(t *testing.T) {
	type m = map[string]string
	tests := []struct {
		name                   string
		hard, soft, grace, min m
		want                   []string // each must be in the error
	}{
		{name: "unknown hard signal", hard: m{"memory.used": "1Gi"},
			want: []string{`evictionHard["memory.used"] = "1Gi": unsupported eviction signal`}},
		{name: "local storage signal is no threshold", hard: m{"emptydirfs.limit": "1Gi"},
			want: []string{`evictionHard["emptydirfs.limit"] = "1Gi": unsupported eviction signal`}},
		{name: "unknown soft signal", soft: m{"cpu.available": "1"}, grace: m{"memory.available": "1m"},
			want: []string{`evictionSoft["cpu.available"] = "1": unsupported eviction signal`}},
		{name: "unknown grace signal", grace: m{"disk.available": "1m"},
			want: []string{`evictionSoftGracePeriod["disk.available"] = "1m": unsupported eviction signal`}},
		{name: "unknown minimum reclaim signal", min: m{"disk.available": "1Gi"},
			want: []string{`evictionMinimumReclaim["disk.available"] = "1Gi": unsupported eviction signal`}},
		{name: "bad quantity", hard: m{"memory.available": "lots"},
			want: []string{`evictionHard["memory.available"] = "lots": not a quantity`}},
		{name: "zero quantity", hard: m{"memory.available": "0"},
			want: []string{`evictionHard["memory.available"] = "0": threshold must be positive`}},
		{name: "negative quantity", soft: m{"memory.available": "-1Gi"}, grace: m{"memory.available": "1m"},
			want: []string{`evictionSoft["memory.available"] = "-1Gi": threshold must be positive`}},
		{name: "bad percentage", hard: m{"nodefs.available": "ten%"},
			want: []string{`evictionHard["nodefs.available"] = "ten%": not a percentage`}},
		{name: "percentage above 100", hard: m{"nodefs.available": "101%"},
			want: []string{`evictionHard["nodefs.available"] = "101%": percentage must be at most 100%`}},
		{name: "negative percentage", hard: m{"nodefs.available": "-5%"},
			want: []string{`evictionHard["nodefs.available"] = "-5%": percentage must be at least 0%`}},
		{name: "soft without grace period", soft: m{"memory.available": "1Gi", "nodefs.available": "20%"}, grace: m{"nodefs.available": "1m"},
			want: []string{`evictionSoft["memory.available"] = "1Gi": soft eviction threshold needs a grace period`}},
		{name: "bad grace period", soft: m{"memory.available": "1Gi"}, grace: m{"memory.available": "a while"},
			want: []string{`evictionSoftGracePeriod["memory.available"] = "a while": not a duration`}},
		{name: "negative grace period", soft: m{"memory.available": "1Gi"}, grace: m{"memory.available": "-1m"},
			want: []string{`evictionSoftGracePeriod["memory.available"] = "-1m": grace period must not be negative`}},
		{name: "negative minimum reclaim", min: m{"memory.available": "-1Mi"},
			want: []string{`evictionMinimumReclaim["memory.available"] = "-1Mi": minimum reclaim must not be negative`}},
		{name: "zero percent minimum reclaim", min: m{"memory.available": "0%"},
			want: []string{`evictionMinimumReclaim["memory.available"] = "0%": percentage must be above 0%`}},
		{name: "bad minimum reclaim", min: m{"memory.available": "x%"},
			want: []string{`evictionMinimumReclaim["memory.available"] = "x%": not a percentage`}},
		{name: "bad minimum reclaim quantity", min: m{"memory.available": "x"},
			want: []string{`evictionMinimumReclaim["memory.available"] = "x": not a quantity`}},
		{
			name: "every mistake is reported",
			hard: m{"memory.available": "0", "foo": "1"},
			soft: m{"nodefs.available": "200%"},
			min:  m{"pid.available": "-1"},
			want: []string{
				`evictionHard["memory.available"] = "0"`,
				`evictionHard["foo"] = "1"`,
				`evictionSoft["nodefs.available"] = "200%"`,
				`evictionMinimumReclaim["pid.available"] = "-1"`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseThresholds(tc.hard, tc.soft, tc.grace, tc.min)
			if err == nil {
				t.Fatalf("ParseThresholds = %v, want an error", strs(got))
			}
			if !errors.Is(err, core.ErrInvalid) {
				t.Errorf("error %v does not wrap core.ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if got != nil {
				t.Errorf("thresholds = %v, want none with an error", strs(got))
			}
		})
	}
}

func TestThresholdValueAmount(t *testing.T) {
	pct := func(s string) ThresholdValue {
		p, err := parsePercentage(s)
		if err != nil {
			t.Fatal(err)
		}
		return ThresholdValue{Percentage: p}
	}
	tests := []struct {
		name     string
		v        ThresholdValue
		capacity int64
		want     int64
	}{
		{"quantity ignores capacity", ThresholdValue{Quantity: resource.MustParse("100Mi")}, gi, 100 * mi},
		{"quantity rounds up", ThresholdValue{Quantity: resource.MustParse("1.5")}, 10, 2},
		{"10% of 100 GiB, in single precision", pct("10%"), 100 * gi, 10737418400}, // not 10737418240
		{"5% of a million inodes", pct("5%"), 1000000, 50000},
		{"15% rounds down", pct("15%"), 7, 1},
		{"zero", ThresholdValue{}, gi, 0},
	}
	for _, tc := range tests {
		if got := tc.v.Amount(tc.capacity); got != tc.want {
			t.Errorf("%s: Amount(%d) = %d, want %d", tc.name, tc.capacity, got, tc.want)
		}
	}
}

func TestThresholdsMet(t *testing.T) {
	hard, err := ParseThresholds(map[string]string{"memory.available": "100Mi", "nodefs.available": "10%", "pid.available": "50"}, nil, nil,
		map[string]string{"memory.available": "50Mi", "nodefs.available": "5%"})
	if err != nil {
		t.Fatal(err)
	}
	obs := func(mem, fs, pid int64) []SignalObservation {
		return []SignalObservation{
			{Signal: SignalMemoryAvailable, Available: mem, Capacity: gi},
			{Signal: SignalNodeFsAvailable, Available: fs, Capacity: 1000},
			{Signal: SignalPIDAvailable, Available: pid, Capacity: 1000},
		}
	}
	tests := []struct {
		name       string
		obs        []SignalObservation
		minReclaim bool
		want       []string
	}{
		{"none met", obs(200*mi, 500, 500), false, nil},
		{"below the threshold", obs(99*mi, 99, 49), false, []string{"memory.available<100Mi reclaim 50Mi", "nodefs.available<10% reclaim 5%", "pid.available<50"}},
		{"at the threshold is not met", obs(100*mi, 100, 50), false, nil},
		{"one byte short", obs(100*mi-1, 100, 50), false, []string{"memory.available<100Mi reclaim 50Mi"}},
		{"above the threshold but within the minimum reclaim", obs(149*mi, 149, 50), true, []string{"memory.available<100Mi reclaim 50Mi", "nodefs.available<10% reclaim 5%"}},
		{"past the minimum reclaim", obs(150*mi, 150, 50), true, nil},
		{"without minimum reclaim", obs(149*mi, 149, 50), false, nil},
		{"signal not observed", []SignalObservation{{Signal: SignalPIDAvailable, Available: 1, Capacity: 1000}}, false, []string{"pid.available<50"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := strs(thresholdsMet(hard, tc.obs, tc.minReclaim))
			if !slices.Equal(got, tc.want) && (len(got) != 0 || len(tc.want) != 0) {
				t.Errorf("thresholdsMet = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCompareForReclaim(t *testing.T) {
	ts, err := ParseThresholds(
		map[string]string{"pid.available": "10", "imagefs.available": "15%", "nodefs.available": "10%", "allocatableMemory.available": "1Mi", "memory.available": "100Mi"},
		map[string]string{"memory.available": "200Mi", "nodefs.available": "20%"},
		map[string]string{"memory.available": "1m", "nodefs.available": "1m"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(ts)
	slices.SortStableFunc(ts, compareForReclaim)
	want := []string{"memory.available<100Mi", "memory.available<200Mi for 1m0s", "allocatableMemory.available<1Mi",
		"nodefs.available<10%", "nodefs.available<20% for 1m0s", "imagefs.available<15%", "pid.available<10"}
	if got := strs(ts); !slices.Equal(got, want) {
		t.Errorf("sorted:\n got %q\nwant %q", got, want)
	}
}

func TestMergeThresholds(t *testing.T) {
	a, _ := ParseThresholds(map[string]string{"memory.available": "100Mi"}, nil, nil, nil)
	b, _ := ParseThresholds(map[string]string{"memory.available": "100Mi", "nodefs.available": "10%"}, nil, nil, map[string]string{"memory.available": "1Mi"})
	got := strs(mergeThresholds(a, b))
	want := []string{"memory.available<100Mi", "nodefs.available<10%"}
	if !slices.Equal(got, want) {
		t.Errorf("mergeThresholds = %q, want %q (the minimum reclaim does not tell thresholds apart)", got, want)
	}
}
