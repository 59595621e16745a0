package pleg

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the kubelet's PLEG metrics, under the same names.
type metrics struct {
	relistDuration    prometheus.Histogram
	relistInterval    prometheus.Histogram
	podRelistDuration prometheus.Histogram
	discardEvents     prometheus.Counter
	lastSeen          prometheus.Gauge
	runningPods       prometheus.Gauge
	runningContainers *prometheus.GaugeVec
	streamErrors      prometheus.Counter
	streamConnects    prometheus.Counter
	streamLatency     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns = "kubelet"
	m := &metrics{
		relistDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "pleg_relist_duration_seconds",
			Help: "Duration in seconds for relisting pods in PLEG.", Buckets: prometheus.DefBuckets}),
		relistInterval: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "pleg_relist_interval_seconds",
			Help: "Interval in seconds between relisting in PLEG.", Buckets: prometheus.DefBuckets}),
		podRelistDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "pleg_pod_relist_duration_seconds",
			Help: "Duration in seconds for relisting a single pod in PLEG.", Buckets: prometheus.DefBuckets}),
		discardEvents: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "pleg_discard_events",
			Help: "The number of events a slow PLEG subscriber received coalesced into a PodSync instead of individually."}),
		lastSeen: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "pleg_last_seen_seconds",
			Help: "Timestamp in seconds when PLEG was last seen active."}),
		runningPods: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "running_pods",
			Help: "Number of pods that have a running pod sandbox."}),
		runningContainers: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "running_containers",
			Help: "Number of containers currently running."}, []string{"container_state"}),
		streamErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "evented_pleg_connection_error_count",
			Help: "The number of errors encountered during the establishment of streaming connection with the CRI runtime."}),
		streamConnects: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "evented_pleg_connection_success_count",
			Help: "The number of times a streaming client was obtained to receive CRI Events."}),
		streamLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "evented_pleg_connection_latency_seconds",
			Help: "The latency of streaming connection with the CRI runtime, measured in seconds.", Buckets: prometheus.DefBuckets}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.relistDuration, m.relistInterval, m.podRelistDuration, m.discardEvents,
		m.lastSeen, m.runningPods, m.runningContainers, m.streamErrors, m.streamConnects, m.streamLatency} {
		errs = append(errs, reg.Register(c))
	}
	return m, errors.Join(errs...)
}
