package syncloop

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nodekit/nodekit/core"
)

func TestExecProbe(t *testing.T) {
	rt := simRuntime(t)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-web"}, Spec: v1.PodSpec{HostNetwork: true,
		Containers: []v1.Container{{Name: "app", Image: testImage, Command: []string{"sleep", "3600"}}}}}
	status := runRaw(t, rt, pod)
	id := status.ContainerStatuses[0].GetId()
	r := &ProbeRunner{Exec: rt}
	for _, tc := range []struct {
		cmd  []string
		want ProbeResult
		out  string
	}{
		{[]string{"echo", "ok"}, ProbeSuccess, "ok\n"},
		{[]string{"sh", "-c", "echo bad; exit 3"}, ProbeFailure, "bad\n"},
	} {
		res, out, err := r.Run(context.Background(), &pod.Spec.Containers[0], &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: tc.cmd}}}, id, "")
		if err != nil || res != tc.want || out != tc.out {
			t.Errorf("exec %v: %v %q %v, want %v %q", tc.cmd, res, out, err, tc.want, tc.out)
		}
	}
}

func TestHTTPProbe(t *testing.T) {
	var gotUA, gotAccept, gotHeader string
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		gotUA, gotAccept, gotHeader = r.UserAgent(), r.Header.Get("Accept"), r.Header.Get("X-Probe")
		w.Write([]byte("fine"))
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/healthz", http.StatusFound) })
	mux.HandleFunc("/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://elsewhere.invalid/", http.StatusFound)
	})
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "secret detail", http.StatusInternalServerError)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(strings.Repeat("x", 50<<10))) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	_, portStr, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	port, _ := strconv.Atoi(portStr)
	c := &v1.Container{Name: "app", Ports: []v1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}
	probe := func(path string, p intstr.IntOrString) (ProbeResult, string, error) {
		return (&ProbeRunner{}).Run(context.Background(), c, &v1.Probe{TimeoutSeconds: 2, ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{
			Path: path, Port: p, HTTPHeaders: []v1.HTTPHeader{{Name: "X-Probe", Value: "yes"}},
		}}}, "", "127.0.0.1")
	}
	if res, out, err := probe("/healthz", intstr.FromString("http")); err != nil || res != ProbeSuccess || out != "fine" {
		t.Errorf("healthy: %v %q %v", res, out, err)
	}
	if gotUA != DefaultProbeUserAgent || gotAccept != "*/*" || gotHeader != "yes" {
		t.Errorf("request headers: User-Agent %q Accept %q X-Probe %q", gotUA, gotAccept, gotHeader)
	}
	if res, out, _ := probe("/moved", intstr.FromInt(port)); res != ProbeSuccess || out != "fine" {
		t.Errorf("same-host redirect: %v %q, want it followed", res, out)
	}
	if res, out, _ := probe("/away", intstr.FromInt(port)); res != ProbeSuccess || !strings.HasPrefix(out, "Probe terminated redirects") {
		t.Errorf("redirect to another host: %v %q, want a success with a warning", res, out)
	}
	if res, out, _ := probe("/broken", intstr.FromInt(port)); res != ProbeFailure || out != "HTTP probe failed with statuscode: 500" {
		t.Errorf("500: %v %q", res, out)
	}
	if res, out, _ := probe("/big", intstr.FromInt(port)); res != ProbeSuccess || len(out) != 10<<10 {
		t.Errorf("big body: %v, %d bytes kept, want 10 KiB", res, len(out))
	}
	if _, _, err := probe("/", intstr.FromString("nope")); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("unknown named port: %v, want core.ErrInvalid", err)
	}
}

func TestTCPProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	c := &v1.Container{Name: "app"}
	p := &v1.Probe{TimeoutSeconds: 1, ProbeHandler: v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt(port)}}}
	if res, _, err := (&ProbeRunner{}).Run(context.Background(), c, p, "", "127.0.0.1"); err != nil || res != ProbeSuccess {
		t.Errorf("open port: %v %v", res, err)
	}
	ln.Close()
	if res, _, err := (&ProbeRunner{}).Run(context.Background(), c, p, "", "127.0.0.1"); err != nil || res != ProbeFailure {
		t.Errorf("closed port: %v %v", res, err)
	}
}

func TestGRPCProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(ln)
	defer srv.Stop()
	port := int32(ln.Addr().(*net.TCPAddr).Port)
	c := &v1.Container{Name: "app"}
	p := &v1.Probe{TimeoutSeconds: 2, ProbeHandler: v1.ProbeHandler{GRPC: &v1.GRPCAction{Port: port}}}
	if res, out, err := (&ProbeRunner{}).Run(context.Background(), c, p, "", "127.0.0.1"); err != nil || res != ProbeSuccess {
		t.Errorf("serving: %v %q %v", res, out, err)
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if res, out, _ := (&ProbeRunner{}).Run(context.Background(), c, p, "", "127.0.0.1"); res != ProbeFailure || !strings.Contains(out, "NOT_SERVING") {
		t.Errorf("not serving: %v %q", res, out)
	}
}

func TestProbeWithoutHandler(t *testing.T) {
	_, _, err := (&ProbeRunner{}).Run(context.Background(), &v1.Container{Name: "app"}, &v1.Probe{}, "", "")
	if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), `"app"`) {
		t.Errorf("probe without handler: %v", err)
	}
}
