package syncloop

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
	"github.com/nodekit/nodekit/runtimetest"
)

// fakeExec answers ExecSync with a fixed exit code and output.
type fakeExec struct {
	code int32
	out  string
	err  error
	cmds [][]string
}

func (f *fakeExec) ExecSync(_ context.Context, _ string, cmd []string, timeout time.Duration) (core.ExecResult, error) {
	f.cmds = append(f.cmds, cmd)
	return core.ExecResult{Stdout: []byte(f.out), ExitCode: f.code}, f.err
}

func TestHookRunnerExec(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"}}
	c := &v1.Container{Name: "app"}
	h := &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"sh", "-c", "exit 3"}}}
	ok := &HookRunner{Exec: &fakeExec{}}
	if msg, err := ok.Run(context.Background(), pod, c, h, "cid", ""); err != nil || msg != "" {
		t.Fatalf("successful hook: %q, %v", msg, err)
	}
	bad := &HookRunner{Exec: &fakeExec{code: 3, out: "no config"}}
	msg, err := bad.Run(context.Background(), pod, c, h, "cid", "")
	if err == nil {
		t.Fatal("a hook exiting 3 succeeded")
	}
	want := `Exec lifecycle hook ([sh -c exit 3]) for Container "app" in Pod "p_ns(u1)" failed - error: command 'sh -c exit 3' exited with 3: , message: "no config"`
	if msg != want {
		t.Fatalf("message\n got %s\nwant %s", msg, want)
	}
	if _, err := (&HookRunner{}).Run(context.Background(), pod, c, h, "cid", ""); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("exec hook without an ExecSyncer: %v, want ErrInvalid", err)
	}
	if _, err := ok.Run(context.Background(), pod, c, &v1.LifecycleHandler{}, "cid", ""); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("empty handler: %v, want ErrInvalid", err)
	}
}

// An httpGet hook succeeds on any HTTP answer, even 500, carries the
// kubelet's User-Agent and the hook's headers, and fails only when the
// request does.
func TestHookRunnerHTTP(t *testing.T) {
	var mu sync.Mutex
	var got []*http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"}}
	c := &v1.Container{Name: "app", Ports: []v1.ContainerPort{{Name: "http", ContainerPort: int32(mustAtoi(t, port))}}}
	h := &v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{Path: "shutdown", Port: intstr.FromString("http"),
		HTTPHeaders: []v1.HTTPHeader{{Name: "X-Why", Value: "stop"}}}}
	r := &HookRunner{}
	if msg, err := r.Run(context.Background(), pod, c, h, "cid", host); err != nil {
		t.Fatalf("hook answered 500: %q, %v; want success", msg, err)
	}
	mu.Lock()
	if len(got) != 1 || got[0].URL.Path != "/shutdown" || got[0].UserAgent() != DefaultHookUserAgent || got[0].Header.Get("X-Why") != "stop" {
		t.Fatalf("requests: %+v", got)
	}
	mu.Unlock()

	// HTTPS to a plain-HTTP server falls back to HTTP.
	h.HTTPGet.Scheme = v1.URISchemeHTTPS
	if msg, err := r.Run(context.Background(), pod, c, h, "cid", host); err != nil {
		t.Fatalf("https hook on an http server: %q, %v; want the HTTP fallback to succeed", msg, err)
	}

	srv.Close()
	h.HTTPGet.Scheme = ""
	msg, err := r.Run(context.Background(), pod, c, h, "cid", host)
	if err == nil || !strings.HasPrefix(msg, `HTTP lifecycle hook (shutdown) for Container "app" in Pod "p_ns(u1)" failed - error: `) {
		t.Fatalf("hook to a closed server: %q, %v", msg, err)
	}
	if _, err := r.Run(context.Background(), pod, c, h, "cid", ""); err == nil || !strings.Contains(err.Error(), "no IP") {
		t.Fatalf("hook of a pod without IP: %v", err)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, r := range s {
		if r < '0' || r > '9' {
			t.Fatalf("not a number: %q", s)
		}
		n = n*10 + int(r-'0')
	}
	return n
}

func TestHookRunnerSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"}}
		c := &v1.Container{Name: "app"}
		h := &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 5}}
		start := time.Now()
		if _, err := (&HookRunner{}).Run(context.Background(), pod, c, h, "cid", ""); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 5*time.Second {
			t.Fatalf("slept %s, want 5s", d)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		msg, err := (&HookRunner{}).Run(ctx, pod, c, h, "cid", "")
		if err == nil || msg != `Sleep lifecycle hook (5) for Container "app" in Pod "p_ns(u1)" failed - error: container terminated before sleep hook finished` {
			t.Fatalf("cut-short sleep: %q, %v", msg, err)
		}
	})
}

// preStopPod has one container with a preStop exec hook, ignoring SIGTERM
// (PID 1 without a handler), and the given grace period.
func preStopPod(grace int64) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-prestop"},
		Spec: v1.PodSpec{
			HostNetwork:                   true,
			TerminationGracePeriodSeconds: &grace,
			Containers: []v1.Container{{Name: "app", Image: testImage, Command: []string{"sleep", "infinity"},
				Lifecycle: &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"drain"}}}}}},
		},
	}
}

// The preStop hook runs before the container is stopped, and its time
// comes out of the grace period: a 3 s hook leaves 7 of 10 s for the stop
// signal. A hook that outlasts the grace period is abandoned and the
// container still gets the minimum 2 s.
func TestDriverPreStop(t *testing.T) {
	for _, tc := range []struct {
		name     string
		hookTook time.Duration
		grace    int64
		wantExit time.Duration // after termination starts
	}{
		{"hook within grace", 3 * time.Second, 10, 10 * time.Second},
		{"hook outlasts grace", runtimetest.Forever, 5, 7 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rt := simRuntime(t)
				var hookAt time.Duration
				start := time.Now()
				rt.SetBehavior(runtimetest.Match{Container: "app"}, runtimetest.Behavior{
					IgnoreStop: true,
					Exec: func(_ string, cmd []string) (core.ExecResult, time.Duration, error) {
						if cmd[0] == "drain" {
							hookAt = time.Since(start)
						}
						return core.ExecResult{}, tc.hookTook, nil
					},
				})
				d := newDriver(t, rt)
				pod := preStopPod(tc.grace)
				ctx := context.Background()
				if _, err := d.SyncPod(ctx, pod, statusOf(t, rt, pod)); err != nil {
					t.Fatal(err)
				}
				start = time.Now()
				if err := d.SyncTerminatingPod(ctx, pod, statusOf(t, rt, pod), tc.grace); err != nil {
					t.Fatal(err)
				}
				if hookAt != 0 {
					t.Fatalf("preStop ran %s after termination started, want at once", hookAt)
				}
				st := statusOf(t, rt, pod)
				cs := st.ContainerStatuses[0]
				if cs.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED || cs.GetExitCode() != 137 {
					t.Fatalf("container: %v", cs)
				}
				if took := time.Unix(0, cs.GetFinishedAt()).Sub(start); took != tc.wantExit {
					t.Fatalf("container killed %s after termination started, want %s", took, tc.wantExit)
				}
			})
		})
	}
}

// A container the spec does not name anymore still gets the preStop hook
// its running instance recorded in its annotations.
func TestDriverPreStopFromAnnotations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := simRuntime(t)
		var hooks []string
		rt.SetBehavior(runtimetest.Match{}, runtimetest.Behavior{Exec: func(_ string, cmd []string) (core.ExecResult, time.Duration, error) {
			hooks = append(hooks, strings.Join(cmd, " "))
			return core.ExecResult{}, 0, nil
		}})
		d := newDriver(t, rt)
		pod := preStopPod(30)
		ctx := context.Background()
		if _, err := d.SyncPod(ctx, pod, statusOf(t, rt, pod)); err != nil {
			t.Fatal(err)
		}
		bare := pod.DeepCopy()
		bare.Spec.Containers = nil // e.g. an orphan rebuilt from labels
		if err := d.SyncTerminatingPod(ctx, bare, statusOf(t, rt, pod), 30); err != nil {
			t.Fatal(err)
		}
		if len(hooks) != 1 || hooks[0] != "drain" {
			t.Fatalf("hooks run: %q, want the annotated preStop", hooks)
		}
	})
}

// A failing postStart hook kills the container; the sync fails with the
// kubelet's reason and the container waits with PostStartHookError.
func TestDriverPostStartFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := simRuntime(t)
		rt.SetBehavior(runtimetest.Match{Container: "app"}, runtimetest.Behavior{Exec: func(string, []string) (core.ExecResult, time.Duration, error) {
			return core.ExecResult{ExitCode: 1, Stderr: []byte("boom")}, 0, nil
		}})
		reg := prometheus.NewRegistry()
		tr, err := crispec.New(crispec.Config{PodLogsRoot: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		d, err := NewDriver(DriverConfig{Runtime: rt, Translator: tr, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		pod := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-poststart"},
			Spec: v1.PodSpec{HostNetwork: true, Containers: []v1.Container{{Name: "app", Image: testImage,
				Lifecycle: &v1.Lifecycle{PostStart: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"init"}}}}}}},
		}
		_, err = d.SyncPod(context.Background(), pod, statusOf(t, rt, pod))
		if err == nil || !strings.Contains(err.Error(), ReasonFailedPostStartHook) {
			t.Fatalf("SyncPod: %v, want %s", err, ReasonFailedPostStartHook)
		}
		if got := summary(statusOf(t, rt, pod)); got != "app#0:exited(143)" {
			t.Fatalf("containers: %s", got)
		}
		w := d.Waiting(pod.UID)
		if len(w) != 1 || w[0].Reason != ReasonPostStartHookError || !strings.Contains(w[0].Message, `Exec lifecycle hook ([init]) for Container "app"`) {
			t.Fatalf("Waiting = %+v", w)
		}
		if n := testutil.ToFloat64(d.metrics.startedContainersErrors.WithLabelValues("container", ReasonPostStartHookError)); n != 1 {
			t.Fatalf("kubelet_started_containers_errors_total{code=PostStartHookError} = %v", n)
		}
		if n := testutil.ToFloat64(d.metrics.startedPods); n != 1 {
			t.Fatalf("kubelet_started_pods_total = %v", n)
		}
	})
}

// A failed pull is retried only after the image back-off; until then the
// container waits with ImagePullBackOff and nothing is pulled.
func TestDriverImagePullBackOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := simRuntime(t)
		d := newDriver(t, rt)
		pod := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-pull"},
			Spec:       v1.PodSpec{HostNetwork: true, Containers: []v1.Container{{Name: "app", Image: "registry.invalid/app:1"}}},
		}
		ctx := context.Background()
		reasons := func() string {
			var rs []string
			for _, w := range d.Waiting(pod.UID) {
				rs = append(rs, w.Reason)
			}
			return strings.Join(rs, ",")
		}
		if _, err := d.SyncPod(ctx, pod, statusOf(t, rt, pod)); err == nil || reasons() != ReasonErrImagePull {
			t.Fatalf("first sync: %v, waiting %s", err, reasons())
		}
		if n := rt.Calls("PullImage"); n != 1 {
			t.Fatalf("pulls: %d", n)
		}
		time.Sleep(5 * time.Second)
		if _, err := d.SyncPod(ctx, pod, statusOf(t, rt, pod)); err == nil || reasons() != ReasonImagePullBackOff {
			t.Fatalf("sync during back-off: %v, waiting %s", err, reasons())
		}
		if n := rt.Calls("PullImage"); n != 1 {
			t.Fatalf("pulled during back-off: %d pulls", n)
		}
		time.Sleep(5 * time.Second)
		if err := rt.AddImage("registry.invalid/app:1", 1<<20); err != nil {
			t.Fatal(err)
		}
		if _, err := d.SyncPod(ctx, pod, statusOf(t, rt, pod)); err != nil || reasons() != "" {
			t.Fatalf("sync after back-off with the image present: %v, waiting %s", err, reasons())
		}
	})
}

// An ephemeral container added to a running pod starts once and is never
// restarted.
func TestDriverEphemeralContainer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := simRuntime(t)
		d := newDriver(t, rt)
		pod := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-eph"},
			Spec:       v1.PodSpec{HostNetwork: true, Containers: []v1.Container{{Name: "app", Image: testImage}}},
		}
		ctx := context.Background()
		if _, err := d.SyncPod(ctx, pod, statusOf(t, rt, pod)); err != nil {
			t.Fatal(err)
		}
		pod.Spec.EphemeralContainers = []v1.EphemeralContainer{{EphemeralContainerCommon: v1.EphemeralContainerCommon{
			Name: "debug", Image: testImage, Command: []string{"sh", "-c", "sleep 2; exit 1"}}}}
		for range 3 {
			if _, err := d.SyncPod(ctx, pod, statusOf(t, rt, pod)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Second)
		}
		if got := summary(statusOf(t, rt, pod)); got != "app#0:running debug#0:exited(1)" {
			t.Fatalf("containers: %s", got)
		}
	})
}

// A container the runtime has no instance of counts its restarts on from
// the logs of earlier instances.
func TestDriverRestartCountFromLogs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := simRuntime(t)
		root := t.TempDir()
		tr, err := crispec.New(crispec.Config{PodLogsRoot: root})
		if err != nil {
			t.Fatal(err)
		}
		d, err := NewDriver(DriverConfig{Runtime: rt, Translator: tr})
		if err != nil {
			t.Fatal(err)
		}
		pod := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-logs"},
			Spec:       v1.PodSpec{HostNetwork: true, Containers: []v1.Container{{Name: "app", Image: testImage}}},
		}
		dir := crispec.ContainerLogDir(root, "ns", "web", "uid-logs", "app")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"0.log", "4.log", "4.log.20260101-000000", "x.log"} {
			if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := d.SyncPod(context.Background(), pod, statusOf(t, rt, pod)); err != nil {
			t.Fatal(err)
		}
		cs := statusOf(t, rt, pod).ContainerStatuses[0]
		if got := cs.GetMetadata().GetAttempt(); got != 5 {
			t.Fatalf("attempt %d, want 5 (after 4.log)", got)
		}
		if got := cs.GetLogPath(); !strings.HasSuffix(got, "app/5.log") {
			t.Fatalf("log path %s", got)
		}
	})
}
