package kubeletconfig_test

import (
	"fmt"

	"github.com/nodekit/nodekit/examples/agent/kubeletconfig"
)

// A kubelet's configuration file: the defaults fill what it leaves out,
// and what the agent does not act on is listed, not ignored.
func ExampleParse() {
	c, err := kubeletconfig.Parse([]byte(`
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: /etc/kubernetes/manifests
shutdownGracePeriod: 30s
`), "kubelet.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.StaticPodPath, c.SyncFrequency.Duration, c.MaxPods, c.Authorization.Mode)
	for _, u := range c.Unsupported {
		fmt.Println("unsupported:", u)
	}
	// Output:
	// /etc/kubernetes/manifests 1m0s 110 Webhook
	// unsupported: shutdownGracePeriod: graceful node shutdown is not implemented
}
