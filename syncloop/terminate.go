package syncloop

import (
	"slices"

	v1 "k8s.io/api/core/v1"

	"github.com/nodekit/nodekit/core"
)

// MinimumStopGracePeriod is the least time, in seconds, a container is
// given to stop once its pod's grace period has run out, as the kubelet
// gives it.
const MinimumStopGracePeriod = 2

// TerminationOrder splits the running containers of a terminating pod
// into stages that stop one after the other, each stage's containers in
// parallel, as the kubelet orders them: first the regular containers (and
// any container the spec does not name), then the sidecars (init
// containers with restartPolicy Always), the last declared first, so that
// every sidecar outlives the containers that may use it. Stages are never
// empty; names not running are left out.
func TerminationOrder(pod *v1.Pod, running []string) [][]string {
	sidecars := map[string]bool{}
	var order []string
	for i := len(pod.Spec.InitContainers) - 1; i >= 0; i-- {
		c := &pod.Spec.InitContainers[i]
		if core.IsSidecar(c) {
			sidecars[c.Name] = true
			order = append(order, c.Name)
		}
	}
	var first []string
	for _, name := range running {
		if !sidecars[name] {
			first = append(first, name)
		}
	}
	var stages [][]string
	if len(first) > 0 {
		stages = append(stages, first)
	}
	for _, name := range order {
		if slices.Contains(running, name) {
			stages = append(stages, []string{name})
		}
	}
	return stages
}
