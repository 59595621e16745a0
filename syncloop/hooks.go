package syncloop

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// DefaultHookUserAgent is the User-Agent of httpGet lifecycle hooks, as
// the kubelet 1.37 sends it, unless the hook sets its own.
const DefaultHookUserAgent = "kube-lifecycle/1.37"

// Reasons of the kubelet's events and waiting states for lifecycle hooks.
const (
	// ReasonFailedPostStartHook: the postStart hook failed and the
	// container was killed.
	ReasonFailedPostStartHook = "FailedPostStartHook"
	// ReasonFailedPreStopHook: the preStop hook failed; the container was
	// stopped anyway.
	ReasonFailedPreStopHook = "FailedPreStopHook"
	// ReasonPostStartHookError is the waiting reason of a container whose
	// postStart hook failed (the kubelet's ErrPostStartHook).
	ReasonPostStartHookError = "PostStartHookError"
)

// HookRunner runs a container's lifecycle handlers, postStart and
// preStop, as the kubelet's handler runner: exec in the container with no
// timeout of its own, httpGet (any HTTP response succeeds; only a failed
// request fails, and an HTTPS hook that got a plain-HTTP answer is retried
// over HTTP), and sleep. The caller bounds a hook with ctx: the pod's
// grace period for preStop.
type HookRunner struct {
	// Exec runs exec hooks in the container. Required for exec hooks.
	Exec core.ExecSyncer
	// Clock times sleep hooks. Default: the real clock.
	Clock clock.Clock
	// UserAgent of httpGet hooks. Default DefaultHookUserAgent.
	UserAgent string
	// Client sends httpGet hooks. Default: a client that does not verify
	// certificates and uses no proxy, as the kubelet's.
	Client *http.Client
}

// Run runs handler h of container c in pod, the container instance being
// containerID and the pod's IP podIP. On failure it returns the kubelet's
// message for the hook's event along with the error.
func (r *HookRunner) Run(ctx context.Context, pod *v1.Pod, c *v1.Container, h *v1.LifecycleHandler, containerID, podIP string) (string, error) {
	switch {
	case h.Exec != nil:
		if r.Exec == nil {
			err := fmt.Errorf("exec hook of container %q: no ExecSyncer: %w", c.Name, core.ErrInvalid)
			return "Cannot run handler: " + err.Error(), err
		}
		res, err := r.Exec.ExecSync(ctx, containerID, h.Exec.Command, 0)
		if err == nil && res.ExitCode != 0 {
			err = fmt.Errorf("command '%s' exited with %d: %s", strings.Join(h.Exec.Command, " "), res.ExitCode, res.Stderr)
		}
		if err != nil {
			out := string(res.Stdout) + string(res.Stderr)
			return fmt.Sprintf("Exec lifecycle hook (%v) for Container %q in Pod %q failed - error: %v, message: %q", h.Exec.Command, c.Name, podDesc(pod.Name, pod.Namespace, pod.UID), err, out), err
		}
		return "", nil
	case h.HTTPGet != nil:
		if err := r.httpGet(ctx, c, h.HTTPGet, podIP); err != nil {
			return fmt.Sprintf("HTTP lifecycle hook (%s) for Container %q in Pod %q failed - error: %v", h.HTTPGet.Path, c.Name, podDesc(pod.Name, pod.Namespace, pod.UID), err), err
		}
		return "", nil
	case h.Sleep != nil:
		clk := r.Clock
		if clk == nil {
			clk = clock.RealClock{}
		}
		t := clk.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer t.Stop()
		select {
		case <-t.C():
			return "", nil
		case <-ctx.Done():
			err := errors.New("container terminated before sleep hook finished")
			return fmt.Sprintf("Sleep lifecycle hook (%d) for Container %q in Pod %q failed - error: %v", h.Sleep.Seconds, c.Name, podDesc(pod.Name, pod.Namespace, pod.UID), err), err
		}
	}
	err := fmt.Errorf("invalid handler of container %q: %w", c.Name, core.ErrInvalid)
	return "Cannot run handler: " + err.Error(), err
}

func (r *HookRunner) httpGet(ctx context.Context, c *v1.Container, g *v1.HTTPGetAction, podIP string) error {
	if g.Host == "" && podIP == "" {
		return errors.New("failed to find networking container: the pod has no IP")
	}
	req, err := newHTTPGetRequest(ctx, c, g, podIP, cmp.Or(r.UserAgent, DefaultHookUserAgent))
	if err != nil {
		return err
	}
	client := r.Client
	if client == nil {
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, Proxy: http.ProxyURL(nil)}}
	}
	res, err := client.Do(req)
	discardBody(res)
	if err != nil && req.URL.Scheme == "https" && isHTTPResponseError(err) {
		// The server speaks plain HTTP: the kubelet retries over HTTP
		// without credentials.
		retry := req.Clone(ctx)
		retry.URL.Scheme = "http"
		retry.Header.Del("Authorization")
		res, rerr := client.Do(retry)
		discardBody(res)
		if rerr == nil {
			err = nil
		}
	}
	return err
}

// isHTTPResponseError reports whether an HTTPS request was answered in
// plain HTTP.
func isHTTPResponseError(err error) bool {
	return strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

func discardBody(res *http.Response) {
	if res == nil {
		return
	}
	defer res.Body.Close()
	io.Copy(io.Discard, io.LimitReader(res.Body, maxProbeBody))
}
