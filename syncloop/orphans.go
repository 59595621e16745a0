package syncloop

import (
	"cmp"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

// OrphanPods finds the pods running in the runtime that no source wants,
// as the kubelet does after a restart: for each pod UID with a ready
// sandbox or a running container made for a pod, in order of UID, that
// wanted rejects (a nil wanted wants no pod), it returns a pod rebuilt from
// the labels and annotations, enough for the pod workers to terminate it
// (Update{Type: UpdateKill, Pod: pod}):
//
//   - name, namespace and UID, and the pod's own labels, from its newest
//     ready sandbox, or from its newest running container when no sandbox
//     is ready;
//   - deletionGracePeriodSeconds and terminationGracePeriodSeconds from
//     the newest running container that records them
//     (core.AnnotationPodDeletionGracePeriod,
//     core.AnnotationPodTerminationGracePeriod);
//   - one container per running container name, sorted by name, with the
//     newest instance's preStop handler, ports and termination message
//     path.
//
// What the labels do not record is left out: images, init containers and
// sidecars (every container is a regular one), restart policy. Malformed
// annotations lose only the fields they hold. The kubelet kills such pods
// with a grace period of 1 s (Update.KillGracePeriod); without an
// override the restored grace periods apply.
func OrphanPods(sandboxes []*runtimeapi.PodSandbox, containers []*runtimeapi.Container, wanted func(types.UID) bool) []*v1.Pod {
	type instance struct {
		id      string
		created time.Time
		info    core.ContainerInfo
	}
	type runtimePod struct {
		sandbox     *runtimeapi.PodSandbox // newest ready one
		sandboxInfo core.SandboxInfo
		containers  []instance
	}
	pods := map[types.UID]*runtimePod{}
	get := func(uid types.UID) *runtimePod {
		p := pods[uid]
		if p == nil {
			p = &runtimePod{}
			pods[uid] = p
		}
		return p
	}
	for _, s := range sandboxes {
		if s.GetState() != runtimeapi.PodSandboxState_SANDBOX_READY {
			continue
		}
		info, ok := core.SandboxInfoFromLabels(s.GetLabels())
		if !ok || info.PodUID == "" || (wanted != nil && wanted(info.PodUID)) {
			continue
		}
		p := get(info.PodUID)
		if p.sandbox == nil || newestFirst(time.Unix(0, s.GetCreatedAt()), time.Unix(0, p.sandbox.GetCreatedAt()), s.GetId(), p.sandbox.GetId()) < 0 {
			p.sandbox, p.sandboxInfo = s, info
		}
	}
	for _, c := range containers {
		if c.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		info, ok, _ := core.ContainerInfoFromLabels(c.GetLabels(), c.GetAnnotations())
		if !ok || (wanted != nil && wanted(info.PodUID)) {
			continue
		}
		p := get(info.PodUID)
		p.containers = append(p.containers, instance{id: c.GetId(), created: time.Unix(0, c.GetCreatedAt()), info: info})
	}

	out := make([]*v1.Pod, 0, len(pods))
	for uid, p := range pods {
		slices.SortFunc(p.containers, func(a, b instance) int { return newestFirst(a.created, b.created, a.id, b.id) })
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: uid}}
		if p.sandbox != nil {
			pod.Name, pod.Namespace = p.sandboxInfo.PodName, p.sandboxInfo.PodNamespace
			if pod.Name == "" && pod.Namespace == "" {
				pod.Name, pod.Namespace = p.sandbox.GetMetadata().GetName(), p.sandbox.GetMetadata().GetNamespace()
			}
			if len(p.sandboxInfo.Labels) > 0 {
				pod.Labels = p.sandboxInfo.Labels
			}
		} else {
			pod.Name, pod.Namespace = p.containers[0].info.PodName, p.containers[0].info.PodNamespace
		}
		seen := map[string]bool{}
		for _, c := range p.containers {
			info := c.info
			if pod.DeletionGracePeriodSeconds == nil && info.PodDeletionGracePeriod != nil {
				pod.DeletionGracePeriodSeconds = info.PodDeletionGracePeriod
			}
			if pod.Spec.TerminationGracePeriodSeconds == nil && info.PodTerminationGracePeriod != nil {
				pod.Spec.TerminationGracePeriodSeconds = info.PodTerminationGracePeriod
			}
			if seen[info.ContainerName] {
				continue
			}
			seen[info.ContainerName] = true
			spec := v1.Container{
				Name:                   info.ContainerName,
				Ports:                  info.Ports,
				TerminationMessagePath: info.TerminationMessagePath,
			}
			if info.PreStopHandler != nil {
				spec.Lifecycle = &v1.Lifecycle{PreStop: info.PreStopHandler}
			}
			pod.Spec.Containers = append(pod.Spec.Containers, spec)
		}
		slices.SortFunc(pod.Spec.Containers, func(a, b v1.Container) int { return cmp.Compare(a.Name, b.Name) })
		out = append(out, pod)
	}
	slices.SortFunc(out, func(a, b *v1.Pod) int { return cmp.Compare(a.UID, b.UID) })
	return out
}
