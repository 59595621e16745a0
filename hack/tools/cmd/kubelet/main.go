// Command kubelet is the kubelet of the k8s.io/kubernetes release this
// module requires, built by hack/testenv.sh install-kubelet for the node
// benchmarks (hack/bench.sh): the same command as the release's, from the
// Go module proxy, so that nodekit's agents can be measured against it on
// the same machine and runtime.
package main

import (
	"context"
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // the json log format
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // the version metric
	"k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	os.Exit(cli.Run(app.NewKubeletCommand(context.Background())))
}
