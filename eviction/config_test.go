package eviction

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodekit/nodekit/core"
)

func TestNewPolicyDefaultsAndMerge(t *testing.T) {
	type m = map[string]string
	defaults := []string{"memory.available<100Mi", "allocatableMemory.available<100Mi", "nodefs.available<10%",
		"nodefs.inodesFree<5%", "imagefs.available<15%", "imagefs.inodesFree<5%"}
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{
			name: "zero config: the kubelet's defaults, memory also on allocatable",
			want: defaults,
		},
		{
			name: "a hard map replaces the defaults",
			cfg:  Config{EvictionHard: m{"memory.available": "500Mi"}},
			want: []string{"memory.available<500Mi", "allocatableMemory.available<500Mi"},
		},
		{
			name: "an empty hard map replaces them too",
			cfg:  Config{EvictionHard: m{}},
			want: []string{},
		},
		{
			name: "merge keeps the defaults the map leaves out",
			cfg:  Config{EvictionHard: m{"memory.available": "500Mi", "pid.available": "100"}, MergeDefaultEvictionSettings: true},
			want: []string{"memory.available<500Mi", "allocatableMemory.available<500Mi", "nodefs.available<10%",
				"nodefs.inodesFree<5%", "imagefs.available<15%", "imagefs.inodesFree<5%", "pid.available<100"},
		},
		{
			name: "merge: 0% disables a default",
			cfg:  Config{EvictionHard: m{"imagefs.available": "0%", "imagefs.inodesFree": "0%"}, MergeDefaultEvictionSettings: true},
			want: []string{"memory.available<100Mi", "allocatableMemory.available<100Mi", "nodefs.available<10%", "nodefs.inodesFree<5%"},
		},
		{
			name: "merge without a hard map is the defaults",
			cfg:  Config{MergeDefaultEvictionSettings: true},
			want: defaults,
		},
		{
			name: "soft thresholds come beside the defaults, and are not copied to allocatable",
			cfg:  Config{EvictionSoft: m{"memory.available": "1Gi"}, EvictionSoftGracePeriod: m{"memory.available": "1m"}},
			want: []string{"memory.available<100Mi", "memory.available<1Gi for 1m0s", "allocatableMemory.available<100Mi", "nodefs.available<10%",
				"nodefs.inodesFree<5%", "imagefs.available<15%", "imagefs.inodesFree<5%"},
		},
		{
			name: "no node allocatable enforcement: no allocatable threshold",
			cfg:  Config{EnforceNodeAllocatable: []string{}},
			want: []string{"memory.available<100Mi", "nodefs.available<10%", "nodefs.inodesFree<5%", "imagefs.available<15%", "imagefs.inodesFree<5%"},
		},
		{
			name: "enforcement on system-reserved only",
			cfg:  Config{EnforceNodeAllocatable: []string{"system-reserved"}, EvictionHard: m{"memory.available": "1Gi"}},
			want: []string{"memory.available<1Gi"},
		},
		{
			name: "the allocatable copy keeps the minimum reclaim",
			cfg:  Config{EvictionHard: m{"memory.available": "1Gi"}, EvictionMinimumReclaim: m{"memory.available": "100Mi"}},
			want: []string{"memory.available<1Gi reclaim 100Mi", "allocatableMemory.available<1Gi reclaim 100Mi"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustPolicy(t, tc.cfg)
			if got := strs(p.Thresholds()); !slices.Equal(got, tc.want) {
				t.Errorf("Thresholds:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestNewPolicyDoesNotModifyConfig(t *testing.T) {
	hard := map[string]string{"memory.available": "1Gi"}
	mustPolicy(t, Config{EvictionHard: hard, MergeDefaultEvictionSettings: true})
	if len(hard) != 1 {
		t.Errorf("EvictionHard was modified: %v", hard)
	}
	d := DefaultEvictionHard()
	d["memory.available"] = "1Ti"
	if DefaultEvictionHard()["memory.available"] != "100Mi" {
		t.Error("DefaultEvictionHard shares its map")
	}
}

func TestNewPolicySettings(t *testing.T) {
	p := mustPolicy(t, Config{})
	if got := p.PressureTransitionPeriod(); got != 5*time.Minute {
		t.Errorf("default PressureTransitionPeriod = %v, want 5m", got)
	}
	if got := p.MaxPodGracePeriodSeconds(); got != 0 {
		t.Errorf("default MaxPodGracePeriodSeconds = %d, want 0", got)
	}
	if !p.LocalStorageCapacityIsolation() {
		t.Error("local storage capacity isolation is off by default, want on")
	}
	p = mustPolicy(t, Config{EvictionPressureTransitionPeriod: 30 * time.Second, EvictionMaxPodGracePeriod: 60, LocalStorageCapacityIsolation: ptr(false)})
	if p.PressureTransitionPeriod() != 30*time.Second || p.MaxPodGracePeriodSeconds() != 60 || p.LocalStorageCapacityIsolation() {
		t.Errorf("settings not kept: %v %d %t", p.PressureTransitionPeriod(), p.MaxPodGracePeriodSeconds(), p.LocalStorageCapacityIsolation())
	}
}

func TestNewPolicyErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"bad threshold", Config{EvictionHard: map[string]string{"memory.available": "-1"}}, `evictionHard["memory.available"]`},
		{"the merged map is validated", Config{EvictionHard: map[string]string{"nodefs.available": "x%"}, MergeDefaultEvictionSettings: true}, `evictionHard["nodefs.available"] = "x%"`},
		{"soft without grace", Config{EvictionSoft: map[string]string{"memory.available": "1Gi"}}, `evictionSoft["memory.available"]`},
		{"negative transition period", Config{EvictionPressureTransitionPeriod: -time.Second}, "EvictionPressureTransitionPeriod"},
		{"negative max grace period", Config{EvictionMaxPodGracePeriod: -1}, "EvictionMaxPodGracePeriod"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPolicy(tc.cfg)
			if err == nil {
				t.Fatalf("NewPolicy = %v, want an error", p)
			}
			if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want core.ErrInvalid naming %q", err, tc.want)
			}
		})
	}
}

func TestThresholdsFor(t *testing.T) {
	cfg := Config{
		EvictionHard:            map[string]string{"nodefs.available": "10%", "nodefs.inodesFree": "5%", "imagefs.available": "15%", "imagefs.inodesFree": "4%", "containerfs.available": "50%"},
		EvictionSoft:            map[string]string{"nodefs.available": "20%", "imagefs.available": "25%", "containerfs.inodesFree": "50%"},
		EvictionSoftGracePeriod: map[string]string{"nodefs.available": "1m", "imagefs.available": "2m", "containerfs.inodesFree": "3m"},
		EvictionMinimumReclaim:  map[string]string{"nodefs.available": "1Gi", "imagefs.available": "2Gi"},
	}
	p := mustPolicy(t, cfg)
	base := []string{"nodefs.available<10% reclaim 1Gi", "nodefs.available<20% for 1m0s reclaim 1Gi", "nodefs.inodesFree<5%",
		"imagefs.available<15% reclaim 2Gi", "imagefs.available<25% for 2m0s reclaim 2Gi", "imagefs.inodesFree<4%"}
	fromNodeFs := append(slices.Clone(base), "containerfs.available<10% reclaim 1Gi", "containerfs.available<20% for 1m0s reclaim 1Gi", "containerfs.inodesFree<5%")
	fromImageFs := append(slices.Clone(base), "containerfs.available<15% reclaim 2Gi", "containerfs.available<25% for 2m0s reclaim 2Gi", "containerfs.inodesFree<4%")
	tests := []struct {
		name                  string
		dedicatedImage, split bool
		want                  []string
	}{
		{"one filesystem: containerfs mirrors nodefs", false, false, fromNodeFs},
		{"dedicated imagefs with writable layers: containerfs mirrors imagefs", true, false, fromImageFs},
		{"split image and container filesystems: containerfs mirrors nodefs", true, true, fromNodeFs},
		{"container filesystem split without an imagefs: as one filesystem", false, true, fromNodeFs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := strs(p.ThresholdsFor(Observations{DedicatedImageFs: tc.dedicatedImage, DedicatedContainerFs: tc.split}))
			if !slices.Equal(got, tc.want) {
				t.Errorf("ThresholdsFor:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
	// The configuration's own containerfs thresholds stay visible.
	if got := strs(p.Thresholds()); !slices.Contains(got, "containerfs.available<50%") {
		t.Errorf("Thresholds() = %q, want the configured containerfs threshold", got)
	}
}

func TestRelieved(t *testing.T) {
	p := mustPolicy(t, Config{
		EvictionHard:           map[string]string{"memory.available": "100Mi"},
		EvictionSoft:           map[string]string{"memory.available": "200Mi"},
		EvictionMinimumReclaim: map[string]string{"memory.available": "50Mi"},
		EvictionSoftGracePeriod: map[string]string{
			"memory.available": "1h",
		},
		EnforceNodeAllocatable: []string{},
	})
	tests := []struct {
		available uint64
		want      bool
	}{
		{99 * mi, false},
		{150 * mi, false}, // the soft threshold counts, grace period or not
		{249 * mi, false}, // within the soft threshold's minimum reclaim
		{250 * mi, true},
	}
	for _, tc := range tests {
		if got := p.Relieved(memoryNode(t0, 4*gi, tc.available)); got != tc.want {
			t.Errorf("Relieved with %d Mi available = %t, want %t", tc.available/mi, got, tc.want)
		}
	}
	var nilPolicy *Policy
	if !nilPolicy.Relieved(memoryNode(t0, 4*gi, 0)) {
		t.Error("a nil policy is not relieved")
	}
}
