// Command kube-apiserver is the Kubernetes API server of the k8s.io/kubernetes
// release this module requires, built for internal/testenv: the same
// command as the release's, from the Go module proxy.
package main

import (
	"os"
	_ "time/tzdata" // time zones for CronJob, as the release binary has them

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // the json log format
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // the version metric
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
