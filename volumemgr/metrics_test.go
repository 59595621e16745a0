package volumemgr

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clocktesting "k8s.io/utils/clock/testing"
)

var volumeStatsNames = []string{
	"kubelet_volume_stats_capacity_bytes",
	"kubelet_volume_stats_available_bytes",
	"kubelet_volume_stats_used_bytes",
	"kubelet_volume_stats_inodes",
	"kubelet_volume_stats_inodes_free",
	"kubelet_volume_stats_inodes_used",
}

// fixedMeasure answers with the stats of stats by volume name, at the
// clock's time.
func fixedMeasure(now func() time.Time, stats map[string]VolumeStats) func(context.Context, VolumeRef) (VolumeStats, error) {
	return func(_ context.Context, r VolumeRef) (VolumeStats, error) {
		st := stats[r.Volume]
		st.Time = now()
		return st, nil
	}
}

func TestVolumeStatsMetrics(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	claim := VolumeRef{PodUID: "u1", Namespace: "shop", Pod: "db-0", Volume: "data", Claim: "data-db-0", Path: "/pv"}
	scratch := VolumeRef{PodUID: "u1", Namespace: "shop", Pod: "db-0", Volume: "scratch", Plugin: PluginEmptyDir, Path: "/scratch"}
	var vols volumeList
	vols.set(claim, scratch)
	reg := prometheus.NewRegistry()
	s, err := NewStats(StatsConfig{Volumes: vols.get, Clock: clk, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	s.measure = fixedMeasure(clk.Now, map[string]VolumeStats{
		"data":    {CapacityBytes: 10e9, AvailableBytes: 4e9, UsedBytes: 6e9, Inodes: 1e6, InodesFree: 999000, InodesUsed: 1000},
		"scratch": {CapacityBytes: 50e9, AvailableBytes: 20e9, UsedBytes: 4096, Inodes: 3e6, InodesFree: 2e6, InodesUsed: 3},
	})

	// Nothing measured yet: nothing exported.
	if err := testutil.GatherAndCompare(reg, strings.NewReader(""), volumeStatsNames...); err != nil {
		t.Errorf("before the first refresh: %v", err)
	}
	if err := s.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP kubelet_volume_stats_available_bytes Number of available bytes in the volume
# TYPE kubelet_volume_stats_available_bytes gauge
kubelet_volume_stats_available_bytes{namespace="shop",persistentvolumeclaim="data-db-0",pod="db-0",volume="data"} 4e+09
kubelet_volume_stats_available_bytes{namespace="shop",persistentvolumeclaim="",pod="db-0",volume="scratch"} 2e+10
# HELP kubelet_volume_stats_capacity_bytes Capacity in bytes of the volume
# TYPE kubelet_volume_stats_capacity_bytes gauge
kubelet_volume_stats_capacity_bytes{namespace="shop",persistentvolumeclaim="data-db-0",pod="db-0",volume="data"} 1e+10
kubelet_volume_stats_capacity_bytes{namespace="shop",persistentvolumeclaim="",pod="db-0",volume="scratch"} 5e+10
# HELP kubelet_volume_stats_inodes Maximum number of inodes in the volume
# TYPE kubelet_volume_stats_inodes gauge
kubelet_volume_stats_inodes{namespace="shop",persistentvolumeclaim="data-db-0",pod="db-0",volume="data"} 1e+06
kubelet_volume_stats_inodes{namespace="shop",persistentvolumeclaim="",pod="db-0",volume="scratch"} 3e+06
# HELP kubelet_volume_stats_inodes_free Number of free inodes in the volume
# TYPE kubelet_volume_stats_inodes_free gauge
kubelet_volume_stats_inodes_free{namespace="shop",persistentvolumeclaim="data-db-0",pod="db-0",volume="data"} 999000
kubelet_volume_stats_inodes_free{namespace="shop",persistentvolumeclaim="",pod="db-0",volume="scratch"} 2e+06
# HELP kubelet_volume_stats_inodes_used Number of used inodes in the volume
# TYPE kubelet_volume_stats_inodes_used gauge
kubelet_volume_stats_inodes_used{namespace="shop",persistentvolumeclaim="data-db-0",pod="db-0",volume="data"} 1000
kubelet_volume_stats_inodes_used{namespace="shop",persistentvolumeclaim="",pod="db-0",volume="scratch"} 3
# HELP kubelet_volume_stats_used_bytes Number of used bytes in the volume
# TYPE kubelet_volume_stats_used_bytes gauge
kubelet_volume_stats_used_bytes{namespace="shop",persistentvolumeclaim="data-db-0",pod="db-0",volume="data"} 6e+09
kubelet_volume_stats_used_bytes{namespace="shop",persistentvolumeclaim="",pod="db-0",volume="scratch"} 4096
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), volumeStatsNames...); err != nil {
		t.Errorf("after the first refresh: %v", err)
	}
	// The collector alone gives the same.
	if err := testutil.CollectAndCompare(s.metrics, strings.NewReader(want), volumeStatsNames...); err != nil {
		t.Errorf("collector: %v", err)
	}

	// The claim's volume goes: its series go at the next refresh.
	vols.set(scratch)
	if err := s.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	want = `
# HELP kubelet_volume_stats_used_bytes Number of used bytes in the volume
# TYPE kubelet_volume_stats_used_bytes gauge
kubelet_volume_stats_used_bytes{namespace="shop",persistentvolumeclaim="",pod="db-0",volume="scratch"} 4096
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "kubelet_volume_stats_used_bytes"); err != nil {
		t.Errorf("after the claim's volume went: %v", err)
	}
	if n := testutil.CollectAndCount(s.metrics); n != 6 {
		t.Errorf("%d series for one volume, want 6", n)
	}

	vols.set()
	if err := s.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(s.metrics); n != 0 {
		t.Errorf("%d series with no volume, want none", n)
	}
}

// Two pods of one name (one going, its successor coming) have volumes of
// the same labels: the series are those of the volume measured last.
func TestVolumeStatsMetricsOfPodsOfOneName(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	old := VolumeRef{PodUID: "old", Namespace: "ns", Pod: "web", Volume: "cache", Path: "/old"}
	next := VolumeRef{PodUID: "new", Namespace: "ns", Pod: "web", Volume: "cache", Path: "/new"}
	var vols volumeList
	vols.set(old)
	reg := prometheus.NewRegistry()
	s, err := NewStats(StatsConfig{Volumes: vols.get, Clock: clk, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	s.measure = func(_ context.Context, r VolumeRef) (VolumeStats, error) {
		if r.PodUID == "old" {
			return VolumeStats{Time: clk.Now(), UsedBytes: 111}, nil
		}
		return VolumeStats{Time: clk.Now(), UsedBytes: 222}, nil
	}
	if err := s.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The old pod's volume cannot be measured any more; the new one's
	// is measured later.
	s.measure = func(_ context.Context, r VolumeRef) (VolumeStats, error) {
		if r.PodUID == "old" {
			return VolumeStats{}, context.DeadlineExceeded
		}
		return VolumeStats{Time: clk.Now(), UsedBytes: 222}, nil
	}
	vols.set(old, next)
	clk.Step(time.Minute)
	_ = s.Refresh(t.Context())
	want := `
# HELP kubelet_volume_stats_used_bytes Number of used bytes in the volume
# TYPE kubelet_volume_stats_used_bytes gauge
kubelet_volume_stats_used_bytes{namespace="ns",persistentvolumeclaim="",pod="web",volume="cache"} 222
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "kubelet_volume_stats_used_bytes"); err != nil {
		t.Error(err)
	}
}

func TestVolumeMetricCollectionDuration(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	refs := []VolumeRef{
		{PodUID: "u1", Volume: "shared", Path: dir},
		{PodUID: "u1", Volume: "own", Path: dir, OwnFS: true},
	}
	s, err := NewStats(StatsConfig{Volumes: func() []VolumeRef { return refs }, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := s.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, f := range families {
		if f.GetName() != "kubelet_volume_metric_collection_duration_seconds" {
			continue
		}
		if f.GetHelp() != "Duration in seconds to calculate volume stats" {
			t.Errorf("help %q", f.GetHelp())
		}
		for _, m := range f.GetMetric() {
			counts[m.GetLabel()[0].GetValue()] = m.GetHistogram().GetSampleCount()
		}
	}
	if counts["du"] != 3 || counts["statfs"] != 3 || len(counts) != 2 {
		t.Errorf("measurements observed by metric_source: %v, want du and statfs 3 each", counts)
	}
}

func TestStatsMetricsRegistration(t *testing.T) {
	vols := func() []VolumeRef { return nil }
	reg := prometheus.NewRegistry()
	if _, err := NewStats(StatsConfig{Volumes: vols, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewStats(StatsConfig{Volumes: vols, Registerer: reg}); err == nil || !strings.Contains(err.Error(), "register metrics") {
		t.Errorf("a second Stats on the same registry: %v, want a registration error", err)
	}
	if _, err := NewStats(StatsConfig{Volumes: vols}); err != nil {
		t.Errorf("no registerer: %v", err)
	}
}
