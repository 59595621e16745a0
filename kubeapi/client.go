package kubeapi

import (
	"fmt"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nodekit/nodekit/core"
)

// ClientConfig is how a node agent reaches its apiserver.
type ClientConfig struct {
	// Kubeconfig is the path of a kubeconfig file (the kubelet's
	// --kubeconfig). Required.
	Kubeconfig string
	// QPS and Burst bound the requests (the kubelet's kubeAPIQPS 50 and
	// kubeAPIBurst 100 when zero).
	QPS   float32
	Burst int
	// Timeout of each request; default 30 s.
	Timeout time.Duration
	// UserAgent; default "nodekit".
	UserAgent string
}

// NewClient returns a client of the apiserver cfg.Kubeconfig names, and
// the rest.Config it was made from.
func NewClient(cfg ClientConfig) (kubernetes.Interface, *rest.Config, error) {
	if cfg.Kubeconfig == "" {
		return nil, nil, fmt.Errorf("kubeapi: Kubeconfig is required: %w", core.ErrInvalid)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return nil, nil, fmt.Errorf("kubeconfig %s: %w", cfg.Kubeconfig, err)
	}
	rc.QPS, rc.Burst, rc.Timeout, rc.UserAgent = cfg.QPS, cfg.Burst, cfg.Timeout, cfg.UserAgent
	if rc.QPS == 0 {
		rc.QPS = 50
	}
	if rc.Burst == 0 {
		rc.Burst = 100
	}
	if rc.Timeout == 0 {
		rc.Timeout = 30 * time.Second
	}
	if rc.UserAgent == "" {
		rc.UserAgent = "nodekit"
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("kubeconfig %s: %w", cfg.Kubeconfig, err)
	}
	return cs, rc, nil
}
