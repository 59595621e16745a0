package kubeapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/nodekit/nodekit/kubeapi"
)

// What a request to a kubelet's server asks of its Node: the verb of the
// method, and the subresources of nodes that allow it, tried in order.
func ExampleServerRequestAttributes() {
	u := &user.DefaultInfo{Name: "system:serviceaccount:monitoring:prometheus"}
	for _, req := range []struct{ method, path string }{
		{"GET", "/metrics/cadvisor"},
		{"GET", "/stats/summary"},
		{"GET", "/pods"},
		{"GET", "/healthz"},
		{"POST", "/exec/default/web/app"},
		{"POST", "/checkpoint/default/web/app"},
		{"GET", "/logs/syslog"},
	} {
		attrs := kubeapi.ServerRequestAttributes("n1", u, httptest.NewRequest(req.method, req.path, nil))
		fmt.Printf("%-4s %-27s ->", req.method, req.path)
		for _, a := range attrs {
			fmt.Printf(" %s %s/%s", a.GetVerb(), a.GetResource(), a.GetSubresource())
		}
		fmt.Printf(" (name %s)\n", attrs[0].GetName())
	}
	// Output:
	// GET  /metrics/cadvisor           -> get nodes/metrics (name n1)
	// GET  /stats/summary              -> get nodes/stats (name n1)
	// GET  /pods                       -> get nodes/pods get nodes/proxy (name n1)
	// GET  /healthz                    -> get nodes/healthz get nodes/proxy (name n1)
	// POST /exec/default/web/app       -> create nodes/proxy (name n1)
	// POST /checkpoint/default/web/app -> create nodes/checkpoint (name n1)
	// GET  /logs/syslog                -> get nodes/log (name n1)
}

// Wiring a kubelet's server with the kubelet's defaults: bearer tokens
// checked by TokenReviews and requests authorized by SubjectAccessReviews
// of the apiserver, no anonymous requests. A request without credentials
// is refused before the apiserver is asked anything.
func ExampleServerAuth_Wrap() {
	client := kubernetes.NewForConfigOrDie(&rest.Config{Host: "https://apiserver.example:6443"})
	auth, err := kubeapi.NewServerAuth(kubeapi.ServerAuthConfig{Client: client, NodeName: "n1"})
	if err != nil {
		fmt.Println(err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		u, _ := kubeapi.UserFrom(r.Context())
		fmt.Fprintf(w, "ok, %s", u.GetName())
	})
	// A real server serves it over TLS:
	// tlsConfig, err := kubeapi.ServerTLSConfig(certFile, keyFile, clientCAFile, "", nil)
	// srv := &http.Server{Addr: ":10250", Handler: auth.Wrap(mux), TLSConfig: tlsConfig}
	// go auth.Run(ctx); srv.ListenAndServeTLS("", "")
	handler := auth.Wrap(mux)

	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	fmt.Println(rec.Code, rec.Body.String())
	// Output:
	// 401 Unauthorized
}
