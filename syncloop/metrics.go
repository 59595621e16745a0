package syncloop

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// podStartBuckets are the kubelet's buckets of pod start durations, in
// seconds.
var podStartBuckets = []float64{0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600}

// register registers cs with reg; a nil reg registers nothing, so that
// the collectors count for no one.
func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("syncloop: register metrics: %w", err)
		}
	}
	return nil
}

// driverMetrics are the Driver's metrics, named as the kubelet's.
type driverMetrics struct {
	startedPods             prometheus.Counter
	startedPodsErrors       prometheus.Counter
	startedContainers       *prometheus.CounterVec
	startedContainersErrors *prometheus.CounterVec
}

func newDriverMetrics(reg prometheus.Registerer) (*driverMetrics, error) {
	m := &driverMetrics{
		startedPods: prometheus.NewCounter(prometheus.CounterOpts{
			Subsystem: "kubelet", Name: "started_pods_total",
			Help: "Cumulative number of pods started",
		}),
		startedPodsErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Subsystem: "kubelet", Name: "started_pods_errors_total",
			Help: "Cumulative number of errors when starting pods",
		}),
		startedContainers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Subsystem: "kubelet", Name: "started_containers_total",
			Help: "Cumulative number of containers started",
		}, []string{"container_type"}),
		startedContainersErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Subsystem: "kubelet", Name: "started_containers_errors_total",
			Help: "Cumulative number of errors when starting containers",
		}, []string{"container_type", "code"}),
	}
	return m, register(reg, m.startedPods, m.startedPodsErrors, m.startedContainers, m.startedContainersErrors)
}

// workerMetrics are the Workers' metrics, named as the kubelet's.
type workerMetrics struct {
	duration    *prometheus.HistogramVec
	podStart    prometheus.Histogram
	workerStart prometheus.Histogram
}

func newWorkerMetrics(reg prometheus.Registerer) (*workerMetrics, error) {
	m := &workerMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Subsystem: "kubelet", Name: "pod_worker_duration_seconds",
			Help:    "Duration in seconds to sync a single pod. Broken down by operation type: create, update, or sync",
			Buckets: prometheus.DefBuckets,
		}, []string{"operation_type"}),
		podStart: prometheus.NewHistogram(prometheus.HistogramOpts{
			Subsystem: "kubelet", Name: "pod_start_duration_seconds",
			Help:    "Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run",
			Buckets: podStartBuckets,
		}),
		workerStart: prometheus.NewHistogram(prometheus.HistogramOpts{
			Subsystem: "kubelet", Name: "pod_worker_start_duration_seconds",
			Help:    "Duration in seconds from kubelet seeing a pod to starting a worker.",
			Buckets: prometheus.DefBuckets,
		}),
	}
	return m, register(reg, m.duration, m.podStart, m.workerStart)
}
