package syncloop

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/nodekit/nodekit/core"
)

// DefaultProbeUserAgent is the User-Agent of HTTP probes, as the kubelet
// 1.37 sends it, unless the probe sets its own.
const DefaultProbeUserAgent = "kube-probe/1.37"

// maxProbeBody is how much of an HTTP probe's response body is read and
// kept as its output.
const maxProbeBody = 10 << 10

// ProbeRunner runs one probe once: exec, httpGet, tcpSocket or grpc, as
// the kubelet's prober does. Periods, thresholds and initial delays are the
// caller's: Run is a single attempt.
type ProbeRunner struct {
	// Exec runs exec probes in the container. Required for exec probes.
	Exec core.ExecSyncer
	// UserAgent of HTTP probes. Default DefaultProbeUserAgent.
	UserAgent string
}

// Run runs probe p of container c once and reports the result and its
// output. A probe that cannot be run at all (no handler, a named port the
// container lacks) is an error wrapping core.ErrInvalid; everything the
// probed program does, including timing out, is a result.
func (r *ProbeRunner) Run(ctx context.Context, c *v1.Container, p *v1.Probe, containerID, podIP string) (ProbeResult, string, error) {
	timeout := time.Duration(p.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = time.Second
	}
	switch {
	case p.Exec != nil:
		if r.Exec == nil {
			return ProbeUnknown, "", fmt.Errorf("exec probe of container %q: no ExecSyncer: %w", c.Name, core.ErrInvalid)
		}
		res, err := r.Exec.ExecSync(ctx, containerID, p.Exec.Command, timeout)
		if errors.Is(err, core.ErrTimeout) {
			return ProbeFailure, fmt.Sprintf("command %q timed out", strings.Join(p.Exec.Command, " ")), nil
		}
		if err != nil {
			return ProbeUnknown, "", err
		}
		out := string(res.Stdout) + string(res.Stderr)
		if res.ExitCode != 0 {
			return ProbeFailure, out, nil
		}
		return ProbeSuccess, out, nil
	case p.HTTPGet != nil:
		return r.httpGet(ctx, c, p.HTTPGet, podIP, timeout)
	case p.TCPSocket != nil:
		port, err := resolvePort(p.TCPSocket.Port, c)
		if err != nil {
			return ProbeUnknown, "", err
		}
		host := cmp.Or(p.TCPSocket.Host, podIP)
		d := net.Dialer{Timeout: timeout}
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return ProbeFailure, err.Error(), nil
		}
		conn.Close()
		return ProbeSuccess, "", nil
	case p.GRPC != nil:
		return grpcProbe(ctx, podIP, p.GRPC, timeout)
	}
	return ProbeUnknown, "", fmt.Errorf("probe of container %q has no handler: %w", c.Name, core.ErrInvalid)
}

func (r *ProbeRunner) httpGet(ctx context.Context, c *v1.Container, g *v1.HTTPGetAction, podIP string, timeout time.Duration) (ProbeResult, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := newHTTPGetRequest(ctx, c, g, podIP, cmp.Or(r.UserAgent, DefaultProbeUserAgent))
	if err != nil {
		return ProbeUnknown, "", fmt.Errorf("http probe: %w", err)
	}
	client := &http.Client{
		// Probes do not verify certificates, and follow redirects only
		// on the same host, as the kubelet's.
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true, Proxy: http.ProxyURL(nil)},
		CheckRedirect: func(next *http.Request, via []*http.Request) error {
			if next.URL.Hostname() != via[0].URL.Hostname() {
				return http.ErrUseLastResponse
			}
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			return nil
		},
	}
	res, err := client.Do(req)
	if err != nil {
		return ProbeFailure, err.Error(), nil
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxProbeBody))
	if err != nil {
		return ProbeFailure, err.Error(), nil
	}
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
		return ProbeSuccess, string(body), nil
	case res.StatusCode >= 300 && res.StatusCode < 400:
		// A redirect to another host is not followed; it counts as a
		// success with a warning, as with the kubelet.
		return ProbeSuccess, "Probe terminated redirects, Response body: " + string(body), nil
	}
	return ProbeFailure, fmt.Sprintf("HTTP probe failed with statuscode: %d", res.StatusCode), nil
}

// newHTTPGetRequest builds the request of an httpGet probe or lifecycle
// hook: host podIP unless the action names one, the container's named
// port resolved, the action's headers (a Host header sets the request's
// host), userAgent unless the action sets its own, Accept */* unless the
// action sets it (an empty Accept removes it).
func newHTTPGetRequest(ctx context.Context, c *v1.Container, g *v1.HTTPGetAction, podIP, userAgent string) (*http.Request, error) {
	port, err := resolvePort(g.Port, c)
	if err != nil {
		return nil, err
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u, err := url.Parse(scheme + "://" + net.JoinHostPort(cmp.Or(g.Host, podIP), strconv.Itoa(port)) + path)
	if err != nil {
		return nil, fmt.Errorf("container %q: %w: %w", c.Name, core.ErrInvalid, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("container %q: %w: %w", c.Name, core.ErrInvalid, err)
	}
	for _, h := range g.HTTPHeaders {
		req.Header.Add(h.Name, h.Value)
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header.Set("User-Agent", userAgent)
	}
	if _, ok := req.Header["Accept"]; !ok {
		req.Header.Set("Accept", "*/*")
	} else if req.Header.Get("Accept") == "" {
		req.Header.Del("Accept")
	}
	req.Host = req.Header.Get("Host")
	return req, nil
}

func grpcProbe(ctx context.Context, podIP string, g *v1.GRPCAction, timeout time.Duration) (ProbeResult, string, error) {
	addr := net.JoinHostPort(podIP, strconv.Itoa(int(g.Port)))
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return ProbeFailure, err.Error(), nil
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: ptr.Deref(g.Service, "")})
	if err != nil {
		return ProbeFailure, fmt.Sprintf("failed to connect service %q within %v: %v", addr, timeout, err), nil
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return ProbeFailure, fmt.Sprintf("service unhealthy (responded with %q)", resp.GetStatus()), nil
	}
	return ProbeSuccess, "", nil
}

// resolvePort finds a probe's port, by number or by the container's port
// name.
func resolvePort(p intstr.IntOrString, c *v1.Container) (int, error) {
	port := -1
	switch p.Type {
	case intstr.Int:
		port = p.IntValue()
	case intstr.String:
		for _, cp := range c.Ports {
			if cp.Name == p.StrVal {
				port = int(cp.ContainerPort)
			}
		}
		if port < 0 {
			return 0, fmt.Errorf("probe of container %q: port %q not found: %w", c.Name, p.StrVal, core.ErrInvalid)
		}
	}
	if port <= 0 || port > 65535 {
		return 0, fmt.Errorf("probe of container %q: invalid port number %d: %w", c.Name, port, core.ErrInvalid)
	}
	return port, nil
}
