package staticpod

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// DefaultHTTPPeriod is how often an HTTPSource reads its URL unless told
// otherwise, as the kubelet's http-check-frequency: 20 s.
const DefaultHTTPPeriod = 20 * time.Second

// DefaultHTTPTimeout bounds one request of an HTTPSource unless told
// otherwise, as the kubelet's manifest client: 10 s.
const DefaultHTTPTimeout = 10 * time.Second

// HTTPConfig configures an HTTPSource.
type HTTPConfig struct {
	// URL serves the manifest: a Pod or a PodList, in YAML or JSON (the
	// kubelet's manifest-url). Its scheme is http or https. Required.
	URL string
	// Header is sent with every request (the kubelet's
	// manifest-url-header). A Host entry sets the request's host.
	Header http.Header
	// NodeName is the node's name, for the pods' defaults (see Decode).
	// Required.
	NodeName string
	// Period is the time between two reads. Default DefaultHTTPPeriod.
	Period time.Duration
	// Timeout bounds each request, answer and body included, measured on
	// Clock. Default DefaultHTTPTimeout.
	Timeout time.Duration
	// Client makes the requests. Default: a client with Go's default
	// transport (Timeout applies whatever the client).
	Client *http.Client
	// Clock drives the reads and the timeout. Default: the real clock.
	Clock clock.WithTicker
	// Logger. Default: none.
	Logger *zap.Logger
	// Registerer receives staticpod_manifest_errors_total{source="http"}.
	// Default: no metrics.
	Registerer prometheus.Registerer
}

// HTTPSource is the pod source that reads a URL, as the kubelet's
// manifest-url: at once, then every Period, it fetches the manifest and
// hands its pods to a Sink under the source name core.SourceHTTP.
//
// An answer other than 200 OK, a failed or timed-out request, a body
// larger than MaxManifestSize and a manifest Decode refuses are errors:
// the sink is not called, so the pods it has from the last good read stay,
// and the error is logged and counted once (until the error changes or a
// read succeeds). A body identical to the last one read is not decoded
// again and the sink is not called. An empty body means no pods. The
// first successful read is what tells the sink the source was heard from
// (a Merger's AllReady).
//
// The URL, with any password in it masked, is the manifest's location: it
// names the source in errors and logs and goes into each pod's UID.
type HTTPSource struct {
	cfg      HTTPConfig
	location string
	log      *zap.Logger
	errs     *manifestErrors
	running  atomic.Bool
}

// NewHTTPSource returns an HTTPSource for cfg. It starts nothing; call
// Run.
func NewHTTPSource(cfg HTTPConfig) (*HTTPSource, error) {
	if cfg.Period == 0 {
		cfg.Period = DefaultHTTPPeriod
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultHTTPTimeout
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	cfg.Header = cfg.Header.Clone()

	invalid := func(format string, args ...any) error {
		return fmt.Errorf("staticpod: http source: "+format+": %w", append(args, core.ErrInvalid)...)
	}
	if cfg.URL == "" {
		return nil, invalid("URL is required")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, invalid("URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, invalid("URL %q: scheme %q, want http or https", u.Redacted(), u.Scheme)
	}
	if u.Host == "" {
		return nil, invalid("URL %q has no host", u.Redacted())
	}
	if cfg.NodeName == "" {
		return nil, invalid("NodeName is required")
	}
	if cfg.Period < 0 {
		return nil, invalid("Period %s must not be negative", cfg.Period)
	}
	if cfg.Timeout < 0 {
		return nil, invalid("Timeout %s must not be negative", cfg.Timeout)
	}
	log := cfg.Logger.With(zap.String("source", core.SourceHTTP), zap.String("url", u.Redacted()))
	errs, err := newManifestErrors(core.SourceHTTP, cfg.Registerer, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("staticpod: http source: metrics: %w", err)
	}
	return &HTTPSource{cfg: cfg, location: u.Redacted(), log: log, errs: errs}, nil
}

// Run reads the URL at once, then every Period, and hands each new set of
// pods to sink, until ctx ends; then it returns ctx's error. It returns
// earlier only when sink refuses a set for a reason other than its
// content (an error that does not wrap ErrInvalidManifest, such as a
// source the sink does not know). Each time Run starts it reads and sends
// anew. Run may not be called again before it returns.
func (s *HTTPSource) Run(ctx context.Context, sink Sink) error {
	if sink == nil {
		return fmt.Errorf("staticpod: http source: sink is nil: %w", core.ErrInvalid)
	}
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("staticpod: http source: Run is already running")
	}
	defer s.running.Store(false)

	s.log.Info("reading pods from URL", zap.Duration("period", s.cfg.Period))
	ticker := s.cfg.Clock.NewTicker(s.cfg.Period)
	defer ticker.Stop()
	st := &readState{}
	for {
		if err := s.read(ctx, sink, st); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C():
		}
	}
}

// readState is what one Run remembers between reads.
type readState struct {
	seen    bool   // body holds a body read with 200 OK
	body    []byte // the last body read with 200 OK
	bodyErr error  // why body was refused; nil if its pods were sent
	failing bool   // the last read failed
}

// read reads the URL once and sends its pods if they changed. It returns
// an error only when Run must stop.
func (s *HTTPSource) read(ctx context.Context, sink Sink, st *readState) error {
	data, err := s.fetch(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.fail(st, err)
		return nil
	}
	if st.seen && bytes.Equal(data, st.body) {
		if st.bodyErr != nil {
			s.fail(st, st.bodyErr)
		} else {
			s.succeed(st)
		}
		return nil
	}
	pods := []*v1.Pod{}
	if len(data) > 0 {
		pods, err = Decode(data, DecodeOptions{NodeName: s.cfg.NodeName, Source: core.SourceHTTP, Location: s.location})
		if err != nil {
			st.seen, st.body, st.bodyErr = true, data, err
			s.fail(st, err)
			return nil
		}
	}
	if err := sink.Set(ctx, core.SourceHTTP, pods); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, ErrInvalidManifest) {
			return fmt.Errorf("staticpod: http source: %w", err)
		}
		// The sink took the set but dropped some pods: do not send the
		// same body again.
		st.seen, st.body, st.bodyErr = true, data, err
		s.fail(st, err)
		return nil
	}
	st.seen, st.body, st.bodyErr = true, data, nil
	s.log.Debug("pods read from URL", zap.Int("pods", len(pods)))
	s.succeed(st)
	return nil
}

// fetch GETs the URL and returns the body of a 200 OK answer.
func (s *HTTPSource) fetch(ctx context.Context) ([]byte, error) {
	reqCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timedOut := fmt.Errorf("no answer within %s: %w", s.cfg.Timeout, context.DeadlineExceeded)
	timer := s.cfg.Clock.NewTimer(s.cfg.Timeout)
	done := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-timer.C():
			cancel(timedOut)
		case <-done:
		}
	}()
	defer func() {
		timer.Stop()
		close(done)
		<-watched
	}()
	wrap := func(err error) error {
		if cause := context.Cause(reqCtx); cause == timedOut {
			return fmt.Errorf("GET %s: %w", s.location, timedOut)
		}
		return err
	}

	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, s.cfg.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", s.location, err)
	}
	for k, vs := range s.cfg.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	if host := s.cfg.Header.Get("Host"); host != "" {
		req.Host = host
	}
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			// The client names the URL unmasked; name it as everywhere else.
			err = fmt.Errorf("GET %s: %w", s.location, uerr.Err)
		}
		return nil, wrap(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", s.location, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
	if err != nil {
		return nil, wrap(fmt.Errorf("GET %s: reading the body: %w", s.location, err))
	}
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", s.location, ErrInvalidManifest, MaxManifestSize)
	}
	return data, nil
}

// fail records a failed read: the error is logged and counted unless it
// is the one reported last.
func (s *HTTPSource) fail(st *readState, err error) {
	st.failing = true
	s.errs.report(s.location, err)
}

// succeed records a good read.
func (s *HTTPSource) succeed(st *readState) {
	if st.failing {
		s.log.Info("pods read from URL again")
		st.failing = false
	}
	s.errs.clear(s.location)
}
