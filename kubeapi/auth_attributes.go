package kubeapi

import (
	"net/http"
	"strings"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// ServerRequestAttributes returns what a request to a kubelet's server
// asks of the Node nodeName, as the kubelet's authorizer sees it: one set
// of attributes per subresource that would allow it, in the order they
// are tried; a request is allowed when any is. All are resource requests
// of user for the verb of the HTTP method (GET get, POST create, PUT
// update, PATCH patch, DELETE delete, any other "") on "nodes" (API
// version v1) named nodeName, and differ only in the subresource,
// chosen by the path (a path names itself and everything under it):
//
//	/stats            stats
//	/metrics          metrics (also /metrics/cadvisor, /metrics/probes, ...)
//	/logs             log
//	/checkpoint       checkpoint
//	/statusz          statusz
//	/flagz            configz
//	/pods             pods, then proxy
//	/allocatedPods    pods, then proxy
//	/runningpods      pods, then proxy
//	/healthz          healthz, then proxy
//	/configz          configz, then proxy
//	anything else     proxy
//
// The fine-grained subresources (pods, healthz, configz) come first and
// fall back to proxy, which used to grant them.
func ServerRequestAttributes(nodeName string, u user.Info, r *http.Request) []authorizer.Attributes {
	verb := requestVerb(r.Method)
	subresources := requestSubresources(r.URL.Path)
	attrs := make([]authorizer.Attributes, 0, len(subresources))
	for _, s := range subresources {
		attrs = append(attrs, authorizer.AttributesRecord{
			User:            u,
			Verb:            verb,
			APIVersion:      "v1",
			Resource:        "nodes",
			Subresource:     s,
			Name:            nodeName,
			ResourceRequest: true,
			Path:            r.URL.Path,
		})
	}
	return attrs
}

// requestVerb is the API verb of an HTTP method.
func requestVerb(method string) string {
	switch method {
	case http.MethodGet:
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return ""
}

// requestSubresources are the subresources of the Node that allow a
// request for path, in the order to try.
func requestSubresources(path string) []string {
	var fine string
	switch {
	case underPath(path, "/allocatedPods"), underPath(path, "/pods"):
		fine = "pods"
	case underPath(path, "/healthz"):
		fine = "healthz"
	case underPath(path, "/configz"):
		fine = "configz"
	case underPath(path, "/runningpods"):
		fine = "pods"
	}
	var coarse string
	switch {
	case underPath(path, "/stats"):
		coarse = "stats"
	case underPath(path, "/metrics"):
		coarse = "metrics"
	case underPath(path, "/logs"):
		coarse = "log"
	case underPath(path, "/checkpoint"):
		coarse = "checkpoint"
	case underPath(path, "/statusz"):
		coarse = "statusz"
	case underPath(path, "/flagz"):
		coarse = "configz"
	default:
		coarse = "proxy"
	}
	if fine == "" {
		return []string{coarse}
	}
	return []string{fine, coarse}
}

// underPath reports whether path is prefix or below it.
func underPath(path, prefix string) bool {
	rest, ok := strings.CutPrefix(path, prefix)
	return ok && (rest == "" || rest[0] == '/')
}
