package core

import v1 "k8s.io/api/core/v1"

// SystemCriticalPriority is the priority from which a pod is critical: the
// system-cluster-critical and system-node-critical priority classes.
const SystemCriticalPriority int32 = 2000000000

// IsStaticPod reports whether pod came from a file or a URL, not from the
// apiserver (its config.source annotation).
func IsStaticPod(pod *v1.Pod) bool {
	if pod == nil {
		return false
	}
	src, ok := pod.Annotations[AnnotationConfigSource]
	return ok && src != SourceAPI
}

// IsCriticalPod reports whether pod is critical as the kubelet decides it:
// a static pod, a mirror pod, or a pod of priority SystemCriticalPriority
// or more. The kubelet never evicts critical pods, admits them under
// pressure, and lets them preempt.
func IsCriticalPod(pod *v1.Pod) bool {
	if pod == nil {
		return false
	}
	if IsStaticPod(pod) {
		return true
	}
	if _, ok := pod.Annotations[AnnotationConfigMirror]; ok {
		return true
	}
	return pod.Spec.Priority != nil && *pod.Spec.Priority >= SystemCriticalPriority
}
