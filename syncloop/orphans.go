package syncloop

import (
	"cmp"
	"slices"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

// OrphanPods returns the pods that still run in the runtime (a ready
// sandbox or a container not exited) but that wanted rejects: what an
// agent that restarted finds of pods no source wants any more. Each is
// rebuilt from its objects' labels and annotations, as the kubelet
// restores a pod it has no spec for: name, namespace and UID; the
// termination and deletion grace periods the containers recorded (so
// that the pod stops within its own grace period); and one container per
// running name with the preStop hook it recorded. Pods come out in order
// of UID. Objects not made for a pod (without the pod UID label) are
// ignored.
func OrphanPods(sandboxes []*runtimeapi.PodSandbox, containers []*runtimeapi.Container, wanted func(types.UID) bool) []*v1.Pod {
	pods := map[types.UID]*v1.Pod{}
	get := func(uid types.UID, name, namespace string) *v1.Pod {
		if p := pods[uid]; p != nil {
			if p.Name == "" {
				p.Name, p.Namespace = name, namespace
			}
			return p
		}
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: uid, Name: name, Namespace: namespace}}
		pods[uid] = p
		return p
	}
	for _, sb := range sandboxes {
		info, ok := core.SandboxInfoFromLabels(sb.GetLabels())
		if !ok || sb.GetState() != runtimeapi.PodSandboxState_SANDBOX_READY || wanted(info.PodUID) {
			continue
		}
		get(info.PodUID, info.PodName, info.PodNamespace)
	}
	for _, c := range containers {
		// Malformed annotations only lose what they would have said.
		info, ok, _ := core.ContainerInfoFromLabels(c.GetLabels(), c.GetAnnotations())
		if !ok || c.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED || wanted(info.PodUID) {
			continue
		}
		p := get(info.PodUID, info.PodName, info.PodNamespace)
		if g := info.PodTerminationGracePeriod; g != nil {
			p.Spec.TerminationGracePeriodSeconds = g
		}
		if g := info.PodDeletionGracePeriod; g != nil {
			p.DeletionGracePeriodSeconds = g
		}
		if slices.ContainsFunc(p.Spec.Containers, func(s v1.Container) bool { return s.Name == info.ContainerName }) {
			continue
		}
		spec := v1.Container{Name: info.ContainerName}
		if info.PreStopHandler != nil {
			spec.Lifecycle = &v1.Lifecycle{PreStop: info.PreStopHandler}
		}
		p.Spec.Containers = append(p.Spec.Containers, spec)
	}
	out := make([]*v1.Pod, 0, len(pods))
	for _, p := range pods {
		slices.SortFunc(p.Spec.Containers, func(a, b v1.Container) int { return cmp.Compare(a.Name, b.Name) })
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *v1.Pod) int { return cmp.Compare(a.UID, b.UID) })
	return out
}
