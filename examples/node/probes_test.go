package node_test

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/internal/testenv"
)

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// hits counts the requests of a test HTTP server on 127.0.0.1 and when
// the first came.
type hits struct {
	mu    sync.Mutex
	n     int
	first time.Time
}

func (h *hits) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		h.first = time.Now()
	}
	h.n++
}

func (h *hits) get() (int, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n, h.first
}

// A pod on real containerd, probed the three ways: its web server's
// startup probe is grpc (against a health server of the test), its
// readiness probe httpGet and its liveness probe tcpSocket, both against
// busybox httpd in the container; a second container's exec liveness
// probe starts failing and the container is restarted. Removing the pod
// runs the web container's preStop hook (an httpGet to the test) before
// the container stops.
func TestProbesAndPreStopOnContainerd(t *testing.T) {
	e := startEnv(t, testenv.Containerd16)

	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := health.NewServer()
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	go gs.Serve(grpcLis)
	defer gs.Stop()
	grpcPort := grpcLis.Addr().(*net.TCPAddr).Port
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)

	preStop := &hits{}
	hookLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hookSrv := &http.Server{Handler: preStop}
	go hookSrv.Serve(hookLis)
	defer hookSrv.Close()
	hookPort := hookLis.Addr().(*net.TCPAddr).Port

	webPort := freePort(t)
	web := v1.Container{
		Name: "web",
		Command: []string{"sh", "-c", fmt.Sprintf(`mkdir -p /www && echo ok > /www/index.html
trap 'kill $P; exit 0' TERM
httpd -f -p 127.0.0.1:%d -h /www & P=$!
wait`, webPort)},
		StartupProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{GRPC: &v1.GRPCAction{Port: int32(grpcPort)}},
			PeriodSeconds: 1, FailureThreshold: 60},
		ReadinessProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/index.html", Port: intstr.FromInt32(int32(webPort))}},
			PeriodSeconds: 1},
		LivenessProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt32(int32(webPort))}},
			PeriodSeconds: 1},
		Lifecycle: &v1.Lifecycle{PreStop: &v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{
			Path: "/prestop", Host: "127.0.0.1", Port: intstr.FromInt32(int32(hookPort))}}},
	}
	flaky := v1.Container{
		Name:    "flaky",
		Command: []string{"sh", "-c", "touch /tmp/healthy; trap 'exit 0' TERM; sleep 3 & wait; rm /tmp/healthy; while true; do sleep 1 & wait; done"},
		LivenessProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"test", "-f", "/tmp/healthy"}}},
			PeriodSeconds: 1, FailureThreshold: 2},
	}
	pod := hostPod("probed", web, flaky)
	a := e.start(t, nil)
	a.send(core.OpAdd, pod)

	webID := func() string {
		for _, c := range e.containers(t, pod.UID) {
			if c.GetMetadata().GetName() == "web" && c.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
				return c.GetId()
			}
		}
		return ""
	}
	waitFor(t, time.Minute, "the web container to run", func() bool { return webID() != "" })
	// Not started, so not ready, while the grpc health check says
	// NOT_SERVING, though httpd answers.
	time.Sleep(3 * time.Second)
	id := webID()
	if a.Probes.Started(pod.UID, id) || a.Probes.Ready(pod.UID, id) {
		t.Fatal("web started and ready while its startup probe fails")
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	waitFor(t, 10*time.Second, "web to start (grpc) and be ready (httpGet)", func() bool {
		return a.Probes.Started(pod.UID, id) && a.Probes.Ready(pod.UID, id)
	})
	live, _ := a.Probes.Results(pod.UID)
	if live[id].String() != "Success" {
		t.Errorf("web's tcpSocket liveness: %v", live[id])
	}

	// flaky removes its health file after 3 s: two failed exec probes
	// later it is killed and started again.
	waitFor(t, 30*time.Second, "flaky to be restarted after its liveness probe failed", func() bool {
		for _, c := range e.containers(t, pod.UID) {
			if c.GetMetadata().GetName() == "flaky" && c.GetMetadata().GetAttempt() == 1 && c.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
				return true
			}
		}
		return false
	})
	if got := webID(); got != id {
		t.Errorf("web was restarted too: %s → %s", id, got)
	}

	a.send(core.OpRemove, pod)
	waitFor(t, 30*time.Second, "the pod to stop", func() bool {
		for _, c := range e.containers(t, pod.UID) {
			if c.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED {
				return false
			}
		}
		return true
	})
	n, hookAt := preStop.get()
	if n != 1 {
		t.Fatalf("preStop hook called %d times, want 1", n)
	}
	for _, c := range e.containers(t, pod.UID) {
		if c.GetId() != id {
			continue
		}
		if c.GetExitCode() != 0 {
			t.Errorf("web exited %d (%s), want 0 on SIGTERM", c.GetExitCode(), c.GetReason())
		}
		if finished := time.Unix(0, c.GetFinishedAt()); !hookAt.Before(finished) {
			t.Errorf("preStop hook at %s, after web stopped at %s", hookAt, finished)
		}
	}

}
