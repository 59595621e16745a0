package staticpod

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// manifestErrors logs each manifest's error once, not at every re-read,
// and counts it in staticpod_manifest_errors_total{source}.
type manifestErrors struct {
	source  string
	log     *zap.Logger
	counter *prometheus.CounterVec

	mu   sync.Mutex
	last map[string]string // location → text of its current error
}

func newManifestErrors(source string, reg prometheus.Registerer, log *zap.Logger) (*manifestErrors, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "staticpod_manifest_errors_total",
		Help: "Manifests found invalid or unreadable, by source; an error counts once until the manifest changes.",
	}, []string{"source"})
	if reg != nil {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			c = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	return &manifestErrors{source: source, log: log, counter: c, last: map[string]string{}}, nil
}

// report records err for a manifest at location; a new error (not the one
// reported last for that location) is logged and counted.
func (e *manifestErrors) report(location string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.last[location] == err.Error() {
		return
	}
	e.last[location] = err.Error()
	e.counter.WithLabelValues(e.source).Inc()
	e.log.Warn("manifest ignored", zap.String("source", e.source), zap.String("manifest", location), zap.Error(err))
}

// clear forgets the error of a manifest that is now fine or gone.
func (e *manifestErrors) clear(location string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.last, location)
}

// keepOnly forgets the errors of manifests not in locations.
func (e *manifestErrors) keepOnly(locations map[string]bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for l := range e.last {
		if !locations[l] {
			delete(e.last, l)
		}
	}
}

// count is how many errors were counted.
func (e *manifestErrors) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.last)
}
