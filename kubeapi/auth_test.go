package kubeapi_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	kubeletconfig "k8s.io/kubelet/config/v1beta1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/kubeapi"
)

func TestServerRequestAttributes(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		verb         string
		subresources string
	}{
		{"GET", "/", "get", "proxy"},
		{"GET", "/pods", "get", "pods proxy"},
		{"GET", "/pods/", "get", "pods proxy"},
		{"GET", "/podsx", "get", "proxy"},
		{"GET", "/allocatedPods/", "get", "pods proxy"},
		{"GET", "/runningpods/", "get", "pods proxy"},
		{"GET", "/runningPods/", "get", "proxy"},
		{"GET", "/healthz", "get", "healthz proxy"},
		{"GET", "/healthz/syncloop", "get", "healthz proxy"},
		{"GET", "/healthzx", "get", "proxy"},
		{"GET", "/configz", "get", "configz proxy"},
		{"GET", "/flagz", "get", "configz"},
		{"GET", "/statusz", "get", "statusz"},
		{"GET", "/stats", "get", "stats"},
		{"GET", "/stats/summary", "get", "stats"},
		{"GET", "/metrics", "get", "metrics"},
		{"GET", "/metrics/cadvisor", "get", "metrics"},
		{"GET", "/metrics/resource", "get", "metrics"},
		{"GET", "/metrics/probes", "get", "metrics"},
		{"GET", "/metricsx", "get", "proxy"},
		{"GET", "/logs/", "get", "log"},
		{"GET", "/logs/messages", "get", "log"},
		{"GET", "/spec/", "get", "proxy"},
		{"GET", "/containerLogs/ns/pod/c", "get", "proxy"},
		{"POST", "/checkpoint/ns/pod/c", "create", "checkpoint"},
		{"POST", "/exec/ns/pod/c", "create", "proxy"},
		{"PUT", "/run/ns/pod/c", "update", "proxy"},
		{"PATCH", "/pods/x", "patch", "pods proxy"},
		{"DELETE", "/pods/x", "delete", "pods proxy"},
		{"HEAD", "/healthz", "", "healthz proxy"},
		{"OPTIONS", "/metrics", "", "metrics"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			u := &user.DefaultInfo{Name: "alice", Groups: []string{"devs"}}
			r := httptest.NewRequest(tc.method, tc.path, nil)
			attrs := kubeapi.ServerRequestAttributes("n1", u, r)
			var subs []string
			for _, a := range attrs {
				subs = append(subs, a.GetSubresource())
				if a.GetVerb() != tc.verb || a.GetUser() != u || a.GetName() != "n1" || a.GetResource() != "nodes" ||
					a.GetAPIGroup() != "" || a.GetAPIVersion() != "v1" || a.GetNamespace() != "" || !a.IsResourceRequest() || a.GetPath() != tc.path {
					t.Errorf("attributes %+v", a)
				}
			}
			if got := strings.Join(subs, " "); got != tc.subresources {
				t.Errorf("subresources %q, want %q", got, tc.subresources)
			}
		})
	}
}

func TestNewServerAuthInvalid(t *testing.T) {
	caFile := writeFile(t, t.TempDir(), "ca.crt", newTestCA(t, "ca").pem)
	cs := kubernetes.NewForConfigOrDie(&rest.Config{Host: "https://127.0.0.1:1"})
	off, on := new(false), new(true)
	for _, tc := range []struct {
		name string
		cfg  kubeapi.ServerAuthConfig
		want []string // in the error; none: valid
	}{
		{"zero", kubeapi.ServerAuthConfig{}, []string{
			"NodeName is required",
			"Authentication.Webhook.Enabled needs a Client",
			"Authorization.Mode Webhook needs a Client",
		}},
		{"unknown mode", kubeapi.ServerAuthConfig{NodeName: "n1", Client: cs,
			Authorization: kubeletconfig.KubeletAuthorization{Mode: "RBAC"}},
			[]string{`Authorization.Mode "RBAC" is neither Webhook nor AlwaysAllow`}},
		{"no authentication", kubeapi.ServerAuthConfig{NodeName: "n1", Client: cs,
			Authentication: kubeletconfig.KubeletAuthentication{Webhook: kubeletconfig.KubeletWebhookAuthentication{Enabled: off}}},
			[]string{"Authentication: no method is on"}},
		{"negative TTLs", kubeapi.ServerAuthConfig{NodeName: "n1", Client: cs,
			Authentication: kubeletconfig.KubeletAuthentication{Webhook: kubeletconfig.KubeletWebhookAuthentication{CacheTTL: metav1.Duration{Duration: -time.Second}}},
			Authorization: kubeletconfig.KubeletAuthorization{Webhook: kubeletconfig.KubeletWebhookAuthorization{
				CacheAuthorizedTTL: metav1.Duration{Duration: -time.Minute}, CacheUnauthorizedTTL: metav1.Duration{Duration: -time.Second}}}},
			[]string{
				"Authentication.Webhook.CacheTTL -1s must not be negative",
				"Authorization.Webhook.CacheAuthorizedTTL -1m0s must not be negative",
				"Authorization.Webhook.CacheUnauthorizedTTL -1s must not be negative",
			}},
		{"AlwaysAllow still needs the webhook's client", kubeapi.ServerAuthConfig{NodeName: "n1",
			Authorization: kubeletconfig.KubeletAuthorization{Mode: kubeletconfig.KubeletAuthorizationModeAlwaysAllow}},
			[]string{"Authentication.Webhook.Enabled needs a Client"}},

		// Valid, as the kubelet takes them.
		{"defaults", kubeapi.ServerAuthConfig{NodeName: "n1", Client: cs}, nil},
		{"anonymous with Webhook authorization", kubeapi.ServerAuthConfig{NodeName: "n1", Client: cs,
			Authentication: kubeletconfig.KubeletAuthentication{Anonymous: kubeletconfig.KubeletAnonymousAuthentication{Enabled: on}}}, nil},
		{"certificates only, AlwaysAllow, no client", kubeapi.ServerAuthConfig{NodeName: "n1",
			Authentication: kubeletconfig.KubeletAuthentication{X509: kubeletconfig.KubeletX509Authentication{ClientCAFile: caFile},
				Webhook: kubeletconfig.KubeletWebhookAuthentication{Enabled: off}},
			Authorization: kubeletconfig.KubeletAuthorization{Mode: kubeletconfig.KubeletAuthorizationModeAlwaysAllow}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := kubeapi.NewServerAuth(tc.cfg)
			if tc.want == nil {
				if err != nil || a == nil {
					t.Fatalf("NewServerAuth: %v", err)
				}
				return
			}
			if !errors.Is(err, core.ErrInvalid) {
				t.Fatalf("error %v, want core.ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}

	// A client CA file that cannot be read.
	_, err := kubeapi.NewServerAuth(kubeapi.ServerAuthConfig{NodeName: "n1", Client: cs,
		Authentication: kubeletconfig.KubeletAuthentication{X509: kubeletconfig.KubeletX509Authentication{ClientCAFile: filepath.Join(t.TempDir(), "none")}}})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "Authentication.X509.ClientCAFile") {
		t.Errorf("missing CA file: %v", err)
	}
}

// reviews answers TokenReviews and SubjectAccessReviews as an apiserver
// does, from a table, and records what it was asked.
type reviews struct {
	tokens map[string]authnv1.UserInfo
	allow  map[string]bool // "user verb subresource"
	fail   map[string]bool // subresources whose reviews are refused

	mu                 sync.Mutex
	tokenReviews, sars []string
}

func (rv *reviews) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/apis/authentication.k8s.io/v1/tokenreviews":
		var tr authnv1.TokenReview
		if err := json.NewDecoder(r.Body).Decode(&tr); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rv.tokenReviews = append(rv.tokenReviews, tr.Spec.Token)
		if u, ok := rv.tokens[tr.Spec.Token]; ok {
			tr.Status = authnv1.TokenReviewStatus{Authenticated: true, User: u}
		}
		_ = json.NewEncoder(w).Encode(tr)
	case "/apis/authorization.k8s.io/v1/subjectaccessreviews":
		var sar authzv1.SubjectAccessReview
		if err := json.NewDecoder(r.Body).Decode(&sar); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ra := sar.Spec.ResourceAttributes
		if ra == nil || ra.Resource != "nodes" || ra.Name != "n1" || ra.Version != "v1" || ra.Group != "" || ra.Namespace != "" {
			http.Error(w, fmt.Sprintf("unexpected attributes %+v", ra), http.StatusBadRequest)
			return
		}
		rv.sars = append(rv.sars, sar.Spec.User+" "+ra.Verb+" "+ra.Subresource)
		if rv.fail[ra.Subresource] {
			w.WriteHeader(http.StatusForbidden)
			_ = json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
				Status: metav1.StatusFailure, Reason: metav1.StatusReasonForbidden, Code: http.StatusForbidden, Message: "no reviews for you"})
			return
		}
		sar.Status.Allowed = rv.allow[sar.Spec.User+" "+ra.Verb+" "+ra.Subresource]
		_ = json.NewEncoder(w).Encode(sar)
	default:
		http.NotFound(w, r)
	}
}

func (rv *reviews) counts() (int, int) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return len(rv.tokenReviews), len(rv.sars)
}

func (rv *reviews) lastSARs(n int) []string {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return slices.Clone(rv.sars[len(rv.sars)-n:])
}

// whoami answers with the user the ServerAuth let through; the token
// that authenticated it must be gone.
var whoami = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if h := r.Header.Get("Authorization"); h != "" {
		http.Error(w, "the handler got "+h, http.StatusTeapot)
		return
	}
	u, ok := kubeapi.UserFrom(r.Context())
	if !ok {
		http.Error(w, "no user", http.StatusTeapot)
		return
	}
	fmt.Fprintf(w, "%s %v", u.GetName(), u.GetGroups())
})

// do sends method path with token, if any, and returns the status code and
// the body.
func do(t *testing.T, c *http.Client, method, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK && resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("%s %s: %d with Content-Type %q", method, url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, string(b)
}

// startServer serves h over TLS as a kubelet does, with a serving
// certificate of serving and client certificates asked for when caFile
// is given.
func startServer(t *testing.T, serving *testCA, caFile string, h http.Handler) *httptest.Server {
	t.Helper()
	certFile, keyFile := serving.servingFiles(t, t.TempDir())
	cfg, err := kubeapi.ServerTLSConfig(certFile, keyFile, caFile, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// The middleware against an apiserver's reviews served from a table:
// who is let through, the kubelet's answers to the others, the order the
// subresources are asked for, the caches.
func TestServerAuthWrap(t *testing.T) {
	rv := &reviews{
		tokens: map[string]authnv1.UserInfo{"t-alice": {Username: "alice", Groups: []string{"devs"}}},
		allow:  map[string]bool{"alice get proxy": true, "bob get metrics": true},
		fail:   map[string]bool{"stats": true},
	}
	api := httptest.NewServer(rv)
	t.Cleanup(api.Close)
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	clusterCA, stranger, serving := newTestCA(t, "cluster"), newTestCA(t, "stranger"), newTestCA(t, "serving")
	caFile := writeFile(t, t.TempDir(), "ca.crt", clusterCA.pem)
	auth, err := kubeapi.NewServerAuth(kubeapi.ServerAuthConfig{
		Authentication: kubeletconfig.KubeletAuthentication{X509: kubeletconfig.KubeletX509Authentication{ClientCAFile: caFile}},
		Client:         cs,
		NodeName:       "n1",
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, serving, caFile, auth.Wrap(whoami))
	bob, bobStranger := clusterCA.clientCert(t, "bob", "ops"), stranger.clientCert(t, "bob", "ops")
	plain, asBob, asFakeBob := httpsClient(serving, nil), httpsClient(serving, &bob), httpsClient(serving, &bobStranger)

	for _, step := range []struct {
		name         string
		client       *http.Client
		method, path string
		token        string
		code         int
		body         string
		sars         []string // asked for, in order
	}{
		{"no credentials", plain, "GET", "/pods", "", 401, "Unauthorized", nil},
		{"a token the apiserver does not know", plain, "GET", "/pods", "t-nobody", 401, "Unauthorized", nil},
		{"a token: pods, then proxy", plain, "GET", "/pods", "t-alice", 200, "alice [devs system:authenticated]",
			[]string{"alice get pods", "alice get proxy"}},
		{"a token, forbidden", plain, "GET", "/metrics", "t-alice", 403,
			"Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[metrics])\n", []string{"alice get metrics"}},
		{"the verb of the method", plain, "DELETE", "/pods/web", "t-alice", 403,
			"Forbidden (user=alice, verb=delete, resource=nodes, subresource(s)=[pods proxy])\n", []string{"alice delete pods", "alice delete proxy"}},
		{"a client certificate", asBob, "GET", "/metrics/cadvisor", "", 200, "bob [ops system:authenticated]", []string{"bob get metrics"}},
		{"a certificate of another authority", asFakeBob, "GET", "/metrics/cadvisor", "", 401, "Unauthorized", nil},
		{"a certificate of another authority, a good token", asFakeBob, "GET", "/logs/", "t-alice", 403,
			"Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[log])\n", []string{"alice get log"}},
		{"the review fails", asBob, "GET", "/stats/summary", "", 500,
			"Authorization error (user=bob, verb=get, resource=nodes, subresource=stats)", []string{"bob get stats"}},
		{"allowed, from the cache", plain, "GET", "/pods", "t-alice", 200, "alice [devs system:authenticated]", nil},
		{"forbidden, from the cache", plain, "GET", "/metrics", "t-alice", 403,
			"Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[metrics])\n", nil},
	} {
		tokenReviews, sars := rv.counts()
		code, body := do(t, step.client, step.method, srv.URL+step.path, step.token)
		if code != step.code || body != step.body {
			t.Errorf("%s: %d %q, want %d %q", step.name, code, body, step.code, step.body)
		}
		newTokenReviews, newSARs := rv.counts()
		if got := rv.lastSARs(newSARs - sars); !slices.Equal(got, step.sars) {
			t.Errorf("%s: asked %q, want %q", step.name, got, step.sars)
		}
		if step.name == "allowed, from the cache" && newTokenReviews != tokenReviews {
			t.Errorf("%s: the token was reviewed again", step.name)
		}
	}
	if tokenReviews, _ := rv.counts(); tokenReviews != 2 {
		t.Errorf("%d token reviews, want 2 (t-nobody, t-alice; then cached)", tokenReviews)
	}
}

// Anonymous requests with AlwaysAllow, as a kubelet left open: a request
// without credentials is system:anonymous; one with bad credentials is
// refused, never taken as anonymous.
func TestServerAuthAnonymous(t *testing.T) {
	clusterCA, stranger, serving := newTestCA(t, "cluster"), newTestCA(t, "stranger"), newTestCA(t, "serving")
	caFile := writeFile(t, t.TempDir(), "ca.crt", clusterCA.pem)
	auth, err := kubeapi.NewServerAuth(kubeapi.ServerAuthConfig{
		Authentication: kubeletconfig.KubeletAuthentication{
			X509:      kubeletconfig.KubeletX509Authentication{ClientCAFile: caFile},
			Webhook:   kubeletconfig.KubeletWebhookAuthentication{Enabled: new(false)},
			Anonymous: kubeletconfig.KubeletAnonymousAuthentication{Enabled: new(true)},
		},
		Authorization: kubeletconfig.KubeletAuthorization{Mode: kubeletconfig.KubeletAuthorizationModeAlwaysAllow},
		NodeName:      "n1",
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, serving, caFile, auth.Wrap(whoami))
	good, bad := clusterCA.clientCert(t, "carol"), stranger.clientCert(t, "carol")
	for _, tc := range []struct {
		name string
		c    *http.Client
		code int
		body string
	}{
		{"nothing", httpsClient(serving, nil), 200, "system:anonymous [system:unauthenticated]"},
		{"a good certificate", httpsClient(serving, &good), 200, "carol [system:authenticated]"},
		{"a certificate of another authority", httpsClient(serving, &bad), 401, "Unauthorized"},
	} {
		if code, body := do(t, tc.c, "POST", srv.URL+"/exec/ns/p/c", ""); code != tc.code || body != tc.body {
			t.Errorf("%s: %d %q, want %d %q", tc.name, code, body, tc.code, tc.body)
		}
	}
}

// Run reads the client CA file again when it changes: a certificate of the
// new authority is taken, one of the old is not.
func TestServerAuthRunReloadsClientCA(t *testing.T) {
	oldCA, newCA, serving := newTestCA(t, "old"), newTestCA(t, "new"), newTestCA(t, "serving")
	caFile := writeFile(t, t.TempDir(), "ca.crt", oldCA.pem)
	auth, err := kubeapi.NewServerAuth(kubeapi.ServerAuthConfig{
		Authentication: kubeletconfig.KubeletAuthentication{
			X509:    kubeletconfig.KubeletX509Authentication{ClientCAFile: caFile},
			Webhook: kubeletconfig.KubeletWebhookAuthentication{Enabled: new(false)},
		},
		Authorization: kubeletconfig.KubeletAuthorization{Mode: kubeletconfig.KubeletAuthorizationModeAlwaysAllow},
		NodeName:      "n1",
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, serving, caFile, auth.Wrap(whoami))
	oldCert, newCert := oldCA.clientCert(t, "dave"), newCA.clientCert(t, "erin")
	asOld, asNew := httpsClient(serving, &oldCert), httpsClient(serving, &newCert)
	if code, _ := do(t, asNew, "GET", srv.URL+"/", ""); code != 401 {
		t.Fatalf("a certificate of the new authority before the change: %d", code)
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- auth.Run(ctx) }()
	writeFile(t, filepath.Dir(caFile), "ca.crt", newCA.pem)
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := do(t, asNew, "GET", srv.URL+"/", "")
		if code == 200 {
			if body != "erin [system:authenticated]" {
				t.Errorf("body %q", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new authority was never taken: %d %q", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _ := do(t, asOld, "GET", srv.URL+"/", ""); code != 401 {
		t.Errorf("a certificate of the old authority after the change: %d", code)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
}

// A ServerAuth without a client CA file takes no certificate at all, and
// its Run only waits.
func TestServerAuthWithoutClientCA(t *testing.T) {
	clusterCA, serving := newTestCA(t, "cluster"), newTestCA(t, "serving")
	auth, err := kubeapi.NewServerAuth(kubeapi.ServerAuthConfig{
		Authentication: kubeletconfig.KubeletAuthentication{
			Webhook:   kubeletconfig.KubeletWebhookAuthentication{Enabled: new(false)},
			Anonymous: kubeletconfig.KubeletAnonymousAuthentication{Enabled: new(true)},
		},
		Authorization: kubeletconfig.KubeletAuthorization{Mode: kubeletconfig.KubeletAuthorizationModeAlwaysAllow},
		NodeName:      "n1",
	})
	if err != nil {
		t.Fatal(err)
	}
	// The server asks for no certificate: a client that has one is
	// anonymous.
	srv := httptest.NewUnstartedServer(auth.Wrap(whoami))
	certFile, keyFile := serving.servingFiles(t, t.TempDir())
	srv.TLS, err = kubeapi.ServerTLSConfig(certFile, keyFile, "", "VersionTLS13", nil)
	if err != nil {
		t.Fatal(err)
	}
	if srv.TLS.ClientAuth != tls.NoClientCert {
		t.Errorf("ClientAuth %v without a client CA", srv.TLS.ClientAuth)
	}
	srv.StartTLS()
	defer srv.Close()
	cert := clusterCA.clientCert(t, "frank")
	if code, body := do(t, httpsClient(serving, &cert), "GET", srv.URL+"/", ""); code != 200 || body != "system:anonymous [system:unauthenticated]" {
		t.Errorf("%d %q", code, body)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := auth.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run: %v", err)
	}
}
