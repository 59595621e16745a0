package staticpod_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	v1 "k8s.io/api/core/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/staticpod"
)

const httpPodYAML = `apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: nginx
    image: nginx:1.27
`

const httpPodJSON = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"cache","namespace":"infra"},
 "spec":{"containers":[{"name":"redis","image":"redis:7"}]}}`

const httpPodListJSON = `{"apiVersion":"v1","kind":"PodList","items":[
 {"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}},
 {"metadata":{"name":"b"},"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}]}`

const httpPodListYAML = `apiVersion: v1
kind: PodList
items:
- metadata:
    name: x
  spec:
    containers:
    - name: c
      image: alpine:3.20
- metadata:
    name: "y"
    namespace: kube-system
  spec:
    containers:
    - name: c
      image: alpine:3.20
`

const httpPodNoImageYAML = `apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: nginx
`

// httpAnswer is what the test server answers to one request.
type httpAnswer struct {
	status int
	body   string
	hang   bool // answer nothing until the client gives up
}

// httpRequest is what the test server saw of one request.
type httpRequest struct {
	header http.Header
	host   string
}

// httpRecorder is a Sink that records each set it is given, optionally
// passing it on to another sink or failing.
type httpRecorder struct {
	sets chan []*v1.Pod
	next staticpod.Sink
	err  error
}

func (r *httpRecorder) Set(ctx context.Context, source string, pods []*v1.Pod) error {
	if source != core.SourceHTTP {
		return fmt.Errorf("source %q, want %q", source, core.SourceHTTP)
	}
	var err error
	if r.next != nil {
		err = r.next.Set(ctx, source, pods)
	}
	r.sets <- pods
	if r.err != nil {
		return r.err
	}
	return err
}

// httpHarness runs an HTTPSource against a scripted server: each request
// waits for the answer the test gives it, so when a request arrives the
// read before it has finished.
type httpHarness struct {
	t       *testing.T
	url     string
	clock   *testingclock.FakeClock
	period  time.Duration
	reg     *prometheus.Registry
	logs    *observer.ObservedLogs
	sink    *httpRecorder
	reqs    chan httpRequest
	answer  chan httpAnswer
	closed  chan struct{}
	done    chan error
	cancel  context.CancelFunc
	reads   int
	stopped bool
	src     *staticpod.HTTPSource
}

// startHTTP serves on 127.0.0.1 and runs a source with cfg (URL,
// Clock, Logger and Registerer filled in) until the test ends.
func startHTTP(t *testing.T, cfg staticpod.HTTPConfig, sink *httpRecorder) *httpHarness {
	t.Helper()
	h := &httpHarness{
		t:      t,
		clock:  testingclock.NewFakeClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)),
		period: cfg.Period,
		reg:    prometheus.NewRegistry(),
		reqs:   make(chan httpRequest),
		answer: make(chan httpAnswer),
		closed: make(chan struct{}),
		done:   make(chan error, 1),
	}
	if h.period == 0 {
		h.period = staticpod.DefaultHTTPPeriod
	}
	if sink == nil {
		sink = &httpRecorder{}
	}
	sink.sets = make(chan []*v1.Pod, 10)
	h.sink = sink
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case h.reqs <- httpRequest{header: r.Header.Clone(), host: r.Host}:
		case <-h.closed:
			return
		}
		select {
		case a := <-h.answer:
			if a.hang {
				select {
				case <-r.Context().Done():
				case <-h.closed:
				}
				return
			}
			w.WriteHeader(a.status)
			io.WriteString(w, a.body)
		case <-r.Context().Done():
		case <-h.closed:
		}
	}))
	h.url = srv.URL + "/pods"
	if cfg.URL == "" {
		cfg.URL = h.url
	} else {
		cfg.URL = strings.ReplaceAll(cfg.URL, "SERVER", strings.TrimPrefix(srv.URL, "http://"))
	}
	if cfg.NodeName == "" {
		cfg.NodeName = "node1"
	}
	if cfg.Timeout == 0 {
		// Longer than the period, so that stepping the clock to the next
		// read never times out a read still under way.
		cfg.Timeout = time.Hour
	}
	cfg.Clock = h.clock
	cfg.Registerer = h.reg
	obs, logs := observer.New(zapcore.DebugLevel)
	cfg.Logger = zap.New(obs)
	h.logs = logs
	src, err := staticpod.NewHTTPSource(cfg)
	if err != nil {
		t.Fatalf("NewHTTPSource: %v", err)
	}
	h.src = src
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- src.Run(ctx, h.sink) }()
	t.Cleanup(func() {
		if !h.stopped {
			if err := h.stop(); !errors.Is(err, context.Canceled) {
				t.Errorf("Run returned %v, want context.Canceled", err)
			}
		}
		close(h.closed)
		srv.Close()
	})
	return h
}

// next lets the source make its next read (at once for the first, after
// one period for the others) and waits for its request: then every read
// before it has finished. The request waits for reply.
func (h *httpHarness) next() httpRequest {
	h.t.Helper()
	if h.reads > 0 {
		h.clock.Step(h.period)
	}
	select {
	case req := <-h.reqs:
		h.reads++
		return req
	case err := <-h.done:
		h.stopped = true
		h.t.Fatalf("read %d: Run returned %v", h.reads+1, err)
	case <-time.After(10 * time.Second):
		h.t.Fatalf("read %d: no request", h.reads+1)
	}
	return httpRequest{}
}

// reply answers the request of the current read.
func (h *httpHarness) reply(a httpAnswer) {
	h.t.Helper()
	select {
	case h.answer <- a:
	case <-time.After(10 * time.Second):
		h.t.Fatalf("read %d: the request went away before its answer", h.reads)
	}
}

// read makes the next read, checks that the one before it sent nothing
// the test has not taken, and answers a.
func (h *httpHarness) read(a httpAnswer) httpRequest {
	h.t.Helper()
	req := h.next()
	h.noSet()
	h.reply(a)
	return req
}

// set waits for the next set the sink gets.
func (h *httpHarness) set() []*v1.Pod {
	h.t.Helper()
	select {
	case pods := <-h.sink.sets:
		return pods
	case <-time.After(10 * time.Second):
		h.t.Fatalf("after read %d: the sink got nothing", h.reads)
	}
	return nil
}

// noSet checks that the sink got no set the test has not taken.
func (h *httpHarness) noSet() {
	h.t.Helper()
	select {
	case pods := <-h.sink.sets:
		h.t.Fatalf("before read %d: the sink got %s, want nothing", h.reads, httpPodNames(pods))
	default:
	}
}

// stop cancels Run and returns what it returned.
func (h *httpHarness) stop() error {
	h.t.Helper()
	h.cancel()
	select {
	case err := <-h.done:
		h.stopped = true
		return err
	case <-time.After(10 * time.Second):
		h.t.Fatal("Run did not return after its context ended")
	}
	return nil
}

// errorsCounted is staticpod_manifest_errors_total{source="http"}.
func (h *httpHarness) errorsCounted() float64 {
	h.t.Helper()
	return httpErrorsCounted(h.t, h.reg)
}

func httpErrorsCounted(t *testing.T, g prometheus.Gatherer) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "staticpod_manifest_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "source" && l.GetValue() == core.SourceHTTP {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// warnings are the errors logged as warnings.
func (h *httpHarness) warnings() []string {
	var out []string
	for _, e := range h.logs.FilterLevelExact(zapcore.WarnLevel).All() {
		out = append(out, fmt.Sprint(e.ContextMap()["error"]))
	}
	return out
}

func httpPodNames(pods []*v1.Pod) string {
	var names []string
	for _, p := range pods {
		names = append(names, p.Namespace+"/"+p.Name)
	}
	return "[" + strings.Join(names, " ") + "]"
}

func TestHTTPSourceDecodes(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string
	}{
		{"pod YAML", httpPodYAML, "[default/web-node1]"},
		{"pod JSON", httpPodJSON, "[infra/cache-node1]"},
		{"pod list JSON", httpPodListJSON, "[default/a-node1 default/b-node1]"},
		{"pod list YAML", httpPodListYAML, "[default/x-node1 kube-system/y-node1]"},
		{"empty body", "", "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startHTTP(t, staticpod.HTTPConfig{}, nil)
			h.read(httpAnswer{status: http.StatusOK, body: tt.body})
			pods := h.set()
			if got := httpPodNames(pods); got != tt.want {
				t.Fatalf("pods %s, want %s", got, tt.want)
			}
			if pods == nil {
				t.Error("an empty body gave a nil set, want an empty one")
			}
			for _, p := range pods {
				if p.UID == "" || p.Spec.NodeName != "node1" || p.Annotations[core.AnnotationConfigHash] != string(p.UID) {
					t.Errorf("pod %s: UID %q, nodeName %q, hash %q: not the static pod defaults",
						p.Name, p.UID, p.Spec.NodeName, p.Annotations[core.AnnotationConfigHash])
				}
				if len(p.Spec.Tolerations) != 0 {
					t.Errorf("pod %s tolerates %v; only file pods get the NoExecute toleration", p.Name, p.Spec.Tolerations)
				}
			}
			h.next()
			if n := h.errorsCounted(); n != 0 {
				t.Errorf("errors counted %v, want 0 (warnings %q)", n, h.warnings())
			}
		})
	}
}

// The URL is part of the UID: the same manifest served at another URL is
// another pod.
func TestHTTPSourceUIDFollowsURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, httpPodYAML)
	}))
	defer srv.Close()
	var uids []string
	for _, path := range []string{"/a", "/b", "/a"} {
		src, err := staticpod.NewHTTPSource(staticpod.HTTPConfig{URL: srv.URL + path, NodeName: "node1"})
		if err != nil {
			t.Fatal(err)
		}
		sink := &httpRecorder{sets: make(chan []*v1.Pod, 1)}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- src.Run(ctx, sink) }()
		select {
		case pods := <-sink.sets:
			uids = append(uids, string(pods[0].UID))
		case err := <-done:
			t.Fatalf("Run returned %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("no set")
		}
		cancel()
		<-done
	}
	if uids[0] == uids[1] || uids[0] != uids[2] {
		t.Errorf("UIDs at /a, /b, /a: %q; want the URL to decide them", uids)
	}
}

func TestHTTPSourceSendsOnlyChanges(t *testing.T) {
	h := startHTTP(t, staticpod.HTTPConfig{}, nil)
	h.read(httpAnswer{status: http.StatusOK, body: httpPodYAML})
	first := h.set()
	h.read(httpAnswer{status: http.StatusOK, body: httpPodYAML})
	h.read(httpAnswer{status: http.StatusOK, body: httpPodYAML}) // the read before sent nothing

	changed := strings.Replace(httpPodYAML, "nginx:1.27", "nginx:1.28", 1)
	h.read(httpAnswer{status: http.StatusOK, body: changed})
	second := h.set()
	if second[0].Spec.Containers[0].Image != "nginx:1.28" {
		t.Fatalf("image %q after the change, want nginx:1.28", second[0].Spec.Containers[0].Image)
	}
	if second[0].UID == first[0].UID {
		t.Error("the changed manifest kept its UID; an edited manifest is a new pod")
	}
	// Back to the first body: a change again.
	h.read(httpAnswer{status: http.StatusOK, body: httpPodYAML})
	if third := h.set(); third[0].UID != first[0].UID {
		t.Errorf("UID %s, want %s again", third[0].UID, first[0].UID)
	}
	// An empty body empties the set; the same manifest after it is sent
	// again.
	h.read(httpAnswer{status: http.StatusOK, body: ""})
	if pods := h.set(); len(pods) != 0 {
		t.Fatalf("empty body gave %s, want no pods", httpPodNames(pods))
	}
	h.read(httpAnswer{status: http.StatusOK, body: ""})
	h.read(httpAnswer{status: http.StatusOK, body: httpPodYAML})
	if pods := h.set(); len(pods) != 1 {
		t.Fatalf("after the empty body: %s, want the pod back", httpPodNames(pods))
	}
	h.next()
	h.noSet()
}

func TestHTTPSourceKeepsPodsOnErrors(t *testing.T) {
	h := startHTTP(t, staticpod.HTTPConfig{}, nil)
	h.read(httpAnswer{status: http.StatusOK, body: httpPodYAML})
	h.set()

	steps := []struct {
		answer httpAnswer
		want   float64 // errors counted once the read is done
	}{
		{httpAnswer{status: http.StatusNotFound, body: httpPodListJSON}, 1},
		{httpAnswer{status: http.StatusNotFound}, 1}, // the same error again
		{httpAnswer{status: http.StatusNotFound}, 1},
		{httpAnswer{status: http.StatusInternalServerError}, 2}, // another error
		{httpAnswer{status: http.StatusInternalServerError}, 2},
		{httpAnswer{status: http.StatusOK, body: httpPodYAML}, 2}, // good and unchanged: nothing sent
		{httpAnswer{status: http.StatusInternalServerError}, 3},   // a new failure after a good read
		{httpAnswer{status: http.StatusOK, body: httpPodYAML}, 3},
	}
	h.next()
	for i, s := range steps {
		h.reply(s.answer)
		h.next()
		h.noSet()
		if got := h.errorsCounted(); got != s.want {
			t.Fatalf("step %d (%d): errors counted %v, want %v (warnings %q)", i, s.answer.status, got, s.want, h.warnings())
		}
	}
	warnings := h.warnings()
	want := []string{"404 Not Found", "500 Internal Server Error", "500 Internal Server Error"}
	if len(warnings) != len(want) {
		t.Fatalf("warnings %q, want one per counted error: %q", warnings, want)
	}
	for i := range want {
		if !strings.Contains(warnings[i], want[i]) || !strings.Contains(warnings[i], h.url) {
			t.Errorf("warning %d: %q, want it to name %q and %s", i, warnings[i], want[i], h.url)
		}
	}
	if got := h.logs.FilterMessage("pods read from URL again").Len(); got != 2 {
		t.Errorf("%d recoveries logged, want 2", got)
	}
}

func TestHTTPSourceRefusesInvalidPod(t *testing.T) {
	h := startHTTP(t, staticpod.HTTPConfig{}, nil)
	h.read(httpAnswer{status: http.StatusOK, body: httpPodYAML})
	h.set()
	for range 3 {
		h.read(httpAnswer{status: http.StatusOK, body: httpPodNoImageYAML})
	}
	h.next()
	h.noSet()
	if got := h.errorsCounted(); got != 1 {
		t.Fatalf("errors counted %v over three reads of one invalid manifest, want 1", got)
	}
	w := h.warnings()
	if len(w) != 1 || !strings.Contains(w[0], "spec.containers[0].image") || !strings.Contains(w[0], h.url) {
		t.Fatalf("warnings %q, want one naming spec.containers[0].image and %s", w, h.url)
	}
	// Fixed: sent, and the error forgotten.
	fixed := strings.Replace(httpPodYAML, "nginx:1.27", "nginx:1.29", 1)
	h.reply(httpAnswer{status: http.StatusOK, body: fixed})
	if pods := h.set(); pods[0].Spec.Containers[0].Image != "nginx:1.29" {
		t.Fatalf("image %q, want nginx:1.29", pods[0].Spec.Containers[0].Image)
	}
	// The invalid manifest again counts again.
	h.read(httpAnswer{status: http.StatusOK, body: httpPodNoImageYAML})
	h.next()
	if got := h.errorsCounted(); got != 2 {
		t.Errorf("errors counted %v, want 2", got)
	}
}

func TestHTTPSourceBodySize(t *testing.T) {
	h := startHTTP(t, staticpod.HTTPConfig{}, nil)
	// A JSON pod with an annotation that fills it up to the limit.
	head, tail := `{"kind":"Pod","metadata":{"name":"web","annotations":{"pad":"`, `"}},"spec":{"containers":[{"name":"c","image":"nginx:1.27"}]}}`
	atLimit := head + strings.Repeat("x", staticpod.MaxManifestSize-len(head)-len(tail)) + tail
	h.read(httpAnswer{status: http.StatusOK, body: atLimit})
	if pods := h.set(); httpPodNames(pods) != "[default/web-node1]" {
		t.Fatalf("a manifest of MaxManifestSize bytes gave %s", httpPodNames(pods))
	}
	h.read(httpAnswer{status: http.StatusOK, body: atLimit + " "})
	h.next()
	h.noSet()
	if got := h.errorsCounted(); got != 1 {
		t.Fatalf("errors counted %v, want 1", got)
	}
	if w := h.warnings(); len(w) != 1 || !strings.Contains(w[0], fmt.Sprintf("larger than %d bytes", staticpod.MaxManifestSize)) {
		t.Errorf("warnings %q, want one about the size", w)
	}
}

func TestHTTPSourceSendsHeaders(t *testing.T) {
	header := http.Header{
		"Authorization": {"Bearer abc"},
		"X-Node":        {"one", "two"},
		"Host":          {"manifests.example"},
	}
	h := startHTTP(t, staticpod.HTTPConfig{Header: header}, nil)
	header.Set("Authorization", "changed after NewHTTPSource")
	for i := range 2 {
		req := h.read(httpAnswer{status: http.StatusOK, body: httpPodYAML})
		if i == 0 {
			h.set()
		}
		if got := req.header.Get("Authorization"); got != "Bearer abc" {
			t.Errorf("Authorization %q, want Bearer abc", got)
		}
		if got := req.header.Values("X-Node"); !slices.Equal(got, []string{"one", "two"}) {
			t.Errorf("X-Node %q, want [one two]", got)
		}
		if req.host != "manifests.example" {
			t.Errorf("host %q, want manifests.example", req.host)
		}
	}
}

func TestHTTPSourceMasksPassword(t *testing.T) {
	h := startHTTP(t, staticpod.HTTPConfig{URL: "http://admin:s3cret@SERVER/pods"}, nil)
	req := h.read(httpAnswer{status: http.StatusForbidden})
	if user, pass, ok := (&http.Request{Header: req.header}).BasicAuth(); !ok || user != "admin" || pass != "s3cret" {
		t.Errorf("basic auth %q %q %v, want the URL's", user, pass, ok)
	}
	h.next()
	w := h.warnings()
	if len(w) != 1 || strings.Contains(w[0], "s3cret") || !strings.Contains(w[0], "admin:xxxxx@") {
		t.Errorf("warnings %q, want one with the password masked", w)
	}
}

func TestHTTPSourceTimeout(t *testing.T) {
	h := startHTTP(t, staticpod.HTTPConfig{Timeout: 5 * time.Second}, nil)
	h.read(httpAnswer{status: http.StatusOK, body: httpPodYAML})
	h.set()
	h.read(httpAnswer{hang: true})
	h.clock.Step(5*time.Second - time.Nanosecond)
	if got := h.errorsCounted(); got != 0 {
		t.Fatalf("errors counted %v before the timeout", got)
	}
	h.clock.Step(time.Nanosecond)
	h.next()
	h.noSet()
	if got := h.errorsCounted(); got != 1 {
		t.Fatalf("errors counted %v after the timeout, want 1", got)
	}
	if w := h.warnings(); len(w) != 1 || !strings.Contains(w[0], "no answer within 5s") {
		t.Errorf("warnings %q, want one about the timeout", w)
	}
}

// With the real clock, a server that hangs is given up on after Timeout.
func TestHTTPSourceTimeoutRealClock(t *testing.T) {
	hung := make(chan struct{})
	reqs := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqs <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-hung:
		}
	}))
	defer srv.Close()
	defer close(hung)
	reg := prometheus.NewRegistry()
	src, err := staticpod.NewHTTPSource(staticpod.HTTPConfig{URL: srv.URL, NodeName: "n",
		Period: 100 * time.Millisecond, Timeout: 20 * time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	sink := &httpRecorder{sets: make(chan []*v1.Pod, 1)}
	go func() { done <- src.Run(ctx, sink) }()
	for i := range 3 {
		select {
		case <-reqs:
		case <-time.After(10 * time.Second):
			t.Fatalf("request %d did not come", i+1)
		}
	}
	// Two reads timed out, with the same error: counted once.
	if got := httpErrorsCounted(t, reg); got != 1 {
		t.Errorf("errors counted %v, want 1", got)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
	if len(sink.sets) != 0 {
		t.Error("the sink got a set from a server that never answered")
	}
}

func TestHTTPSourceStopsWithContext(t *testing.T) {
	t.Run("between reads", func(t *testing.T) {
		h := startHTTP(t, staticpod.HTTPConfig{}, nil)
		h.read(httpAnswer{status: http.StatusOK, body: httpPodYAML})
		h.set()
		if err := h.stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
	t.Run("during a request", func(t *testing.T) {
		h := startHTTP(t, staticpod.HTTPConfig{}, nil)
		h.read(httpAnswer{hang: true})
		if err := h.stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
		if got := h.errorsCounted(); got != 0 {
			t.Errorf("errors counted %v; an ended context is not a manifest error", got)
		}
	})
}

func TestHTTPSourceSinkErrors(t *testing.T) {
	t.Run("refused manifest", func(t *testing.T) {
		sink := &httpRecorder{err: fmt.Errorf("pod dropped: %w", staticpod.ErrInvalidManifest)}
		h := startHTTP(t, staticpod.HTTPConfig{}, sink)
		h.read(httpAnswer{status: http.StatusOK, body: httpPodYAML})
		h.set()
		h.read(httpAnswer{status: http.StatusOK, body: httpPodYAML}) // not sent again
		h.next()
		h.noSet()
		if got := h.errorsCounted(); got != 1 {
			t.Errorf("errors counted %v, want 1", got)
		}
	})
	t.Run("refused source", func(t *testing.T) {
		sink := &httpRecorder{err: fmt.Errorf("unknown source: %w", core.ErrInvalid)}
		h := startHTTP(t, staticpod.HTTPConfig{}, sink)
		h.read(httpAnswer{status: http.StatusOK, body: httpPodYAML})
		h.set()
		select {
		case err := <-h.done:
			h.stopped = true
			if !errors.Is(err, core.ErrInvalid) || errors.Is(err, staticpod.ErrInvalidManifest) {
				t.Errorf("Run returned %v, want the sink's error", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run went on after the sink refused the source")
		}
	})
}

func TestHTTPSourceWithMerger(t *testing.T) {
	m, err := staticpod.NewMerger(staticpod.MergerConfig{Sources: []string{core.SourceFile, core.SourceHTTP}})
	if err != nil {
		t.Fatal(err)
	}
	h := startHTTP(t, staticpod.HTTPConfig{}, &httpRecorder{next: m})
	update := func() core.PodUpdate {
		t.Helper()
		select {
		case u := <-m.Updates():
			return u
		case <-time.After(10 * time.Second):
			t.Fatal("no update")
		}
		return core.PodUpdate{}
	}
	noUpdate := func() {
		t.Helper()
		select {
		case u := <-m.Updates():
			t.Fatalf("update %s %s, want none", u.Op, httpPodNames(u.Pods))
		default:
		}
	}
	if err := m.Set(context.Background(), core.SourceFile, nil); err != nil {
		t.Fatal(err)
	}
	if u := update(); u.Op != core.OpAdd || len(u.Pods) != 0 || u.Source != core.SourceFile {
		t.Fatalf("update %s %s from %s, want the file source's empty ADD", u.Op, httpPodNames(u.Pods), u.Source)
	}
	if m.AllReady() {
		t.Fatal("AllReady before the HTTP source was read")
	}
	h.read(httpAnswer{status: http.StatusServiceUnavailable})
	h.next()
	h.noSet()
	if m.AllReady() {
		t.Fatal("AllReady after a failed read")
	}

	h.reply(httpAnswer{status: http.StatusOK, body: httpPodListJSON})
	h.set()
	if !m.AllReady() {
		t.Error("not AllReady after the first good read")
	}
	u := update()
	if u.Op != core.OpAdd || u.Source != core.SourceHTTP || httpPodNames(u.Pods) != "[default/a-node1 default/b-node1]" {
		t.Fatalf("update %s %s from %s, want ADD of a and b from http", u.Op, httpPodNames(u.Pods), u.Source)
	}
	if src := u.Pods[0].Annotations[core.AnnotationConfigSource]; src != core.SourceHTTP {
		t.Errorf("config.source %q, want http", src)
	}

	h.read(httpAnswer{status: http.StatusInternalServerError})
	h.read(httpAnswer{status: http.StatusOK, body: httpPodListJSON})
	h.next()
	noUpdate()

	// b goes: REMOVE.
	onlyA := `{"apiVersion":"v1","kind":"PodList","items":[
 {"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}]}`
	h.reply(httpAnswer{status: http.StatusOK, body: onlyA})
	h.set()
	if u := update(); u.Op != core.OpRemove || httpPodNames(u.Pods) != "[default/b-node1]" {
		t.Fatalf("update %s %s, want REMOVE of b", u.Op, httpPodNames(u.Pods))
	}
	// An empty body: a goes too.
	h.read(httpAnswer{status: http.StatusOK})
	h.set()
	if u := update(); u.Op != core.OpRemove || httpPodNames(u.Pods) != "[default/a-node1]" {
		t.Fatalf("update %s %s, want REMOVE of a", u.Op, httpPodNames(u.Pods))
	}
	noUpdate()
}

// The defaults, under a bubble's fake time: a read at once, then every
// 20 s, each request given up after 10 s.
func TestHTTPSourceDefaultTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var times []time.Duration
		hang := false
		start := time.Now()
		transport := httpRoundTripFunc(func(req *http.Request) (*http.Response, error) {
			mu.Lock()
			times = append(times, time.Since(start))
			h := hang
			mu.Unlock()
			if h {
				<-req.Context().Done()
				return nil, req.Context().Err()
			}
			return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Header: http.Header{},
				Body: io.NopCloser(strings.NewReader(httpPodYAML)), Request: req}, nil
		})
		reg := prometheus.NewRegistry()
		src, err := staticpod.NewHTTPSource(staticpod.HTTPConfig{URL: "http://manifests.invalid/pods", NodeName: "n",
			Client: &http.Client{Transport: transport}, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		sink := &httpRecorder{sets: make(chan []*v1.Pod, 10)}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- src.Run(ctx, sink) }()

		requests := func() []time.Duration {
			synctest.Wait()
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(times)
		}
		if got := requests(); !slices.Equal(got, []time.Duration{0}) {
			t.Fatalf("requests at %v, want one at once", got)
		}
		if len(sink.sets) != 1 {
			t.Fatalf("%d sets after the first read, want 1", len(sink.sets))
		}
		time.Sleep(20*time.Second - time.Nanosecond)
		if got := requests(); len(got) != 1 {
			t.Fatalf("requests at %v before 20 s", got)
		}
		time.Sleep(time.Nanosecond)
		if got := requests(); !slices.Equal(got, []time.Duration{0, 20 * time.Second}) {
			t.Fatalf("requests at %v, want at 0 and 20 s", got)
		}
		if len(sink.sets) != 1 {
			t.Errorf("%d sets, want 1: the body did not change", len(sink.sets))
		}

		mu.Lock()
		hang = true
		mu.Unlock()
		time.Sleep(20*time.Second + 10*time.Second - time.Nanosecond)
		if got := httpErrorsCounted(t, reg); got != 0 {
			t.Fatalf("errors counted %v before the timeout", got)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if got := httpErrorsCounted(t, reg); got != 1 {
			t.Fatalf("errors counted %v after 10 s without an answer, want 1", got)
		}
		time.Sleep(10 * time.Second)
		if got := requests(); !slices.Equal(got, []time.Duration{0, 20 * time.Second, 40 * time.Second, 60 * time.Second}) {
			t.Fatalf("requests at %v, want every 20 s", got)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
}

type httpRoundTripFunc func(*http.Request) (*http.Response, error)

func (f httpRoundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestHTTPSourceRunOnce(t *testing.T) {
	h := startHTTP(t, staticpod.HTTPConfig{}, nil)
	h.read(httpAnswer{hang: true})
	if err := h.src.Run(context.Background(), &httpRecorder{}); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second Run: %v, want an error", err)
	}
	src, err := staticpod.NewHTTPSource(staticpod.HTTPConfig{URL: h.url, NodeName: "n"})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Run(context.Background(), nil); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("Run with a nil sink: %v, want core.ErrInvalid", err)
	}
}

func TestNewHTTPSourceConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  staticpod.HTTPConfig
		want string // "" when valid, else a word the error must hold
	}{
		{"valid http", staticpod.HTTPConfig{URL: "http://10.0.0.1:8080/pods", NodeName: "n"}, ""},
		{"valid https", staticpod.HTTPConfig{URL: "https://manifests.example/pods", NodeName: "n", Period: time.Minute, Timeout: time.Second}, ""},
		{"no URL", staticpod.HTTPConfig{NodeName: "n"}, "URL"},
		{"other scheme", staticpod.HTTPConfig{URL: "file:///etc/pods", NodeName: "n"}, "scheme"},
		{"relative URL", staticpod.HTTPConfig{URL: "/pods", NodeName: "n"}, "scheme"},
		{"no host", staticpod.HTTPConfig{URL: "http:///pods", NodeName: "n"}, "host"},
		{"unparsable URL", staticpod.HTTPConfig{URL: "http://[::1/pods", NodeName: "n"}, "URL"},
		{"no node", staticpod.HTTPConfig{URL: "http://h/pods"}, "NodeName"},
		{"negative period", staticpod.HTTPConfig{URL: "http://h/pods", NodeName: "n", Period: -time.Second}, "Period"},
		{"negative timeout", staticpod.HTTPConfig{URL: "http://h/pods", NodeName: "n", Timeout: -time.Second}, "Timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := staticpod.NewHTTPSource(tt.cfg)
			if tt.want == "" {
				if err != nil || src == nil {
					t.Fatalf("NewHTTPSource: %v", err)
				}
				return
			}
			if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewHTTPSource: %v, want core.ErrInvalid naming %s", err, tt.want)
			}
		})
	}
}
