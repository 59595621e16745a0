package kubeapi_test

import (
	"crypto/tls"
	"net/http"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	kubeletconfig "k8s.io/kubelet/config/v1beta1"

	"github.com/nodekit/nodekit/internal/testenv"
	"github.com/nodekit/nodekit/kubeapi"
)

// grant binds a ClusterRole allowing verb on nodes/subresource to
// subject.
func grant(t *testing.T, cs kubernetes.Interface, name, verb, subresource string, subject rbacv1.Subject) {
	t.Helper()
	ctx := t.Context()
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes/" + subresource}, Verbs: []string{verb}}},
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{subject},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// certOf is the client certificate of a configuration from RESTConfigAs.
func certOf(t *testing.T, api *testenv.APIServer, user string, groups ...string) tls.Certificate {
	t.Helper()
	cfg, err := api.RESTConfigAs(user, groups...)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(cfg.CertData, cfg.KeyData)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// expect sends method path and fails unless the answer is code with body.
func expect(t *testing.T, c *http.Client, method, url, token string, code int, body string) {
	t.Helper()
	if gotCode, gotBody := do(t, c, method, url, token); gotCode != code || gotBody != body {
		t.Errorf("%s %s: %d %q, want %d %q", method, url, gotCode, gotBody, code, body)
	}
}

// A kubelet's server guarded by a ServerAuth that asks a real
// kube-apiserver, with the node's own credentials, as a kubelet does:
// service account tokens through TokenReviews, client certificates of
// the cluster's CA, RBAC through SubjectAccessReviews; anonymous requests
// only where enabled; the reviews' caches when the apiserver is gone.
func TestServerAuthOnAPIServer(t *testing.T) {
	api := testenv.StartAPIServer(t)
	admin, err := kubernetes.NewForConfig(api.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	nodeCfg, err := api.RESTConfigAs("system:node:n1", "system:nodes")
	if err != nil {
		t.Fatal(err)
	}
	nodeClient, err := kubernetes.NewForConfig(nodeCfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	caFile := writeFile(t, t.TempDir(), "ca.crt", api.CAData)
	serving := newTestCA(t, "kubelet-serving")

	newAuth := func(anonymous bool) *kubeapi.ServerAuth {
		t.Helper()
		a, err := kubeapi.NewServerAuth(kubeapi.ServerAuthConfig{
			Authentication: kubeletconfig.KubeletAuthentication{
				X509:      kubeletconfig.KubeletX509Authentication{ClientCAFile: caFile},
				Anonymous: kubeletconfig.KubeletAnonymousAuthentication{Enabled: &anonymous},
			},
			// Denials are kept only briefly, so that a new binding
			// shows at once.
			Authorization: kubeletconfig.KubeletAuthorization{Webhook: kubeletconfig.KubeletWebhookAuthorization{
				CacheUnauthorizedTTL: metav1.Duration{Duration: 100 * time.Millisecond}}},
			Client:   nodeClient,
			NodeName: "n1",
		})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	srv := startServer(t, serving, caFile, newAuth(false).Wrap(whoami))
	plain := httpsClient(serving, nil)

	// Nothing: 401.
	expect(t, plain, "GET", srv.URL+"/pods", "", 401, "Unauthorized")
	expect(t, plain, "GET", srv.URL+"/metrics", "not-a-token", 401, "Unauthorized")

	// A service account's token, without RBAC: 403 as the kubelet says it.
	if _, err := admin.CoreV1().ServiceAccounts("default").Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "scraper"}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := admin.CoreV1().ServiceAccounts("default").CreateToken(ctx, "scraper", &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token := tr.Status.Token
	const sa = "system:serviceaccount:default:scraper"
	expect(t, plain, "GET", srv.URL+"/metrics", token, 403, "Forbidden (user="+sa+", verb=get, resource=nodes, subresource(s)=[metrics])\n")
	expect(t, plain, "GET", srv.URL+"/pods", token, 403, "Forbidden (user="+sa+", verb=get, resource=nodes, subresource(s)=[pods proxy])\n")

	// nodes/metrics granted: /metrics, not /pods.
	grant(t, admin, "scrape-metrics", "get", "metrics", rbacv1.Subject{Kind: "ServiceAccount", Name: "scraper", Namespace: "default"})
	const saGroups = "[system:serviceaccounts system:serviceaccounts:default system:authenticated]"
	eventually(t, "GET /metrics allowed", func() bool {
		code, _ := do(t, plain, "GET", srv.URL+"/metrics/cadvisor", token)
		return code == 200
	})
	expect(t, plain, "GET", srv.URL+"/metrics", token, 200, sa+" "+saGroups)
	expect(t, plain, "GET", srv.URL+"/pods", token, 403, "Forbidden (user="+sa+", verb=get, resource=nodes, subresource(s)=[pods proxy])\n")

	// nodes/proxy granted (get): /pods through proxy, anything else with
	// get; not other verbs.
	grant(t, admin, "proxy-get", "get", "proxy", rbacv1.Subject{Kind: "ServiceAccount", Name: "scraper", Namespace: "default"})
	eventually(t, "GET /pods allowed", func() bool {
		code, _ := do(t, plain, "GET", srv.URL+"/pods", token)
		return code == 200
	})
	expect(t, plain, "GET", srv.URL+"/containerLogs/default/p/c", token, 200, sa+" "+saGroups)
	expect(t, plain, "POST", srv.URL+"/exec/default/p/c", token, 403, "Forbidden (user="+sa+", verb=create, resource=nodes, subresource(s)=[proxy])\n")
	expect(t, plain, "GET", srv.URL+"/stats/summary", token, 403, "Forbidden (user="+sa+", verb=get, resource=nodes, subresource(s)=[stats])\n")

	// Client certificates of the cluster's CA: system:masters may do
	// anything, another user what RBAC grants it.
	admCert, aliceCert := certOf(t, api, "kube-apiserver-kubelet-client", "system:masters"), certOf(t, api, "alice")
	asAdmin, asAlice := httpsClient(serving, &admCert), httpsClient(serving, &aliceCert)
	expect(t, asAdmin, "POST", srv.URL+"/exec/default/p/c", "", 200, "kube-apiserver-kubelet-client [system:masters system:authenticated]")
	expect(t, asAdmin, "GET", srv.URL+"/stats/summary", "", 200, "kube-apiserver-kubelet-client [system:masters system:authenticated]")
	expect(t, asAlice, "GET", srv.URL+"/healthz", "", 403, "Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[healthz proxy])\n")
	grant(t, admin, "alice-healthz", "get", "healthz", rbacv1.Subject{Kind: "User", Name: "alice"})
	eventually(t, "GET /healthz allowed", func() bool {
		code, _ := do(t, asAlice, "GET", srv.URL+"/healthz", "")
		return code == 200
	})
	expect(t, asAlice, "GET", srv.URL+"/configz", "", 403, "Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[configz proxy])\n")

	// A certificate of another CA for the same user: 401.
	strangerCert := newTestCA(t, "stranger").clientCert(t, "kube-apiserver-kubelet-client", "system:masters")
	expect(t, httpsClient(serving, &strangerCert), "GET", srv.URL+"/pods", "", 401, "Unauthorized")

	// Anonymous enabled: system:anonymous, allowed what RBAC grants
	// system:unauthenticated; bad credentials are still refused.
	anon := startServer(t, serving, caFile, newAuth(true).Wrap(whoami))
	expect(t, plain, "GET", anon.URL+"/healthz", "", 403, "Forbidden (user=system:anonymous, verb=get, resource=nodes, subresource(s)=[healthz proxy])\n")
	expect(t, plain, "GET", anon.URL+"/healthz", "not-a-token", 401, "Unauthorized")
	expect(t, httpsClient(serving, &strangerCert), "GET", anon.URL+"/healthz", "", 401, "Unauthorized")
	expect(t, plain, "GET", anon.URL+"/metrics", token, 200, sa+" "+saGroups)
	grant(t, admin, "anonymous-healthz", "get", "healthz", rbacv1.Subject{Kind: "Group", Name: "system:unauthenticated", APIGroup: rbacv1.GroupName})
	eventually(t, "anonymous GET /healthz allowed", func() bool {
		code, _ := do(t, plain, "GET", anon.URL+"/healthz/ping", "")
		return code == 200
	})
	expect(t, plain, "GET", anon.URL+"/healthz", "", 200, "system:anonymous [system:unauthenticated]")
	expect(t, plain, "GET", anon.URL+"/pods", "", 403, "Forbidden (user=system:anonymous, verb=get, resource=nodes, subresource(s)=[pods proxy])\n")

	// The apiserver gone: what was allowed stays allowed while cached
	// (5 minutes; tokens 2); a review it cannot answer is a 500.
	if err := api.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	expect(t, plain, "GET", srv.URL+"/metrics", token, 200, sa+" "+saGroups)
	expect(t, asAlice, "GET", srv.URL+"/healthz", "", 200, "alice [system:authenticated]")
	expect(t, asAlice, "GET", srv.URL+"/logs/", "", 500, "Authorization error (user=alice, verb=get, resource=nodes, subresource=log)")
}
