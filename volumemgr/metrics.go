package volumemgr

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var _ prometheus.Collector = (*statsMetrics)(nil)

// statsMetrics are the metrics of Stats: the kubelet's volume stats gauges,
// read from the cached stats at each scrape, and the duration of the
// measurements.
type statsMetrics struct {
	stats    *Stats
	duration *prometheus.HistogramVec

	capacity, available, used      *prometheus.Desc
	inodes, inodesFree, inodesUsed *prometheus.Desc
}

func newStatsMetrics(reg prometheus.Registerer, s *Stats) (*statsMetrics, error) {
	// The kubelet's labels namespace and persistentvolumeclaim, then pod
	// and volume.
	labels := []string{"namespace", "persistentvolumeclaim", "pod", "volume"}
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("kubelet_volume_stats_"+name, help, labels, nil)
	}
	m := &statsMetrics{
		stats: s,
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Subsystem: "kubelet", Name: "volume_metric_collection_duration_seconds",
			Help:    "Duration in seconds to calculate volume stats",
			Buckets: prometheus.DefBuckets,
		}, []string{"metric_source"}),
		capacity:   desc("capacity_bytes", "Capacity in bytes of the volume"),
		available:  desc("available_bytes", "Number of available bytes in the volume"),
		used:       desc("used_bytes", "Number of used bytes in the volume"),
		inodes:     desc("inodes", "Maximum number of inodes in the volume"),
		inodesFree: desc("inodes_free", "Number of free inodes in the volume"),
		inodesUsed: desc("inodes_used", "Number of used inodes in the volume"),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("volumemgr: register metrics: %w", err)
		}
	}
	return m, nil
}

// observe records that a measurement by source ("du" or "statfs") took d.
func (m *statsMetrics) observe(source string, d time.Duration) {
	m.duration.WithLabelValues(source).Observe(d.Seconds())
}

// Describe implements prometheus.Collector.
func (m *statsMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.capacity, m.available, m.used, m.inodes, m.inodesFree, m.inodesUsed} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one series per measured volume
// and gauge. Two volumes with the same labels (two pods of one name, one
// going and one coming) give the series of the one measured last.
func (m *statsMetrics) Collect(ch chan<- prometheus.Metric) {
	type labels struct{ namespace, claim, pod, volume string }
	latest := map[labels]VolumeUsage{}
	for _, u := range m.stats.All() {
		l := labels{u.Ref.Namespace, u.Ref.Claim, u.Ref.Pod, u.Ref.Volume}
		if prev, ok := latest[l]; ok && !u.Stats.Time.After(prev.Stats.Time) {
			continue
		}
		latest[l] = u
	}
	for l, u := range latest {
		st := u.Stats
		for _, g := range []struct {
			desc *prometheus.Desc
			v    int64
		}{
			{m.capacity, st.CapacityBytes},
			{m.available, st.AvailableBytes},
			{m.used, st.UsedBytes},
			{m.inodes, st.Inodes},
			{m.inodesFree, st.InodesFree},
			{m.inodesUsed, st.InodesUsed},
		} {
			metric, err := prometheus.NewConstMetric(g.desc, prometheus.GaugeValue, float64(g.v), l.namespace, l.claim, l.pod, l.volume)
			if err != nil {
				ch <- prometheus.NewInvalidMetric(g.desc, err)
				continue
			}
			ch <- metric
		}
	}
}
