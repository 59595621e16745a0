package core

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	kubelettypes "k8s.io/kubelet/pkg/types"
)

// Labels the kubelet sets on sandboxes and containers; tools such as crictl
// and log collectors key on them.
const (
	LabelPodName       = kubelettypes.KubernetesPodNameLabel
	LabelPodNamespace  = kubelettypes.KubernetesPodNamespaceLabel
	LabelPodUID        = kubelettypes.KubernetesPodUIDLabel
	LabelContainerName = kubelettypes.KubernetesContainerNameLabel
)

// Annotations pod sources set on the pods they deliver, with the kubelet's
// names.
const (
	// AnnotationConfigSource names the source a pod came from (SourceFile,
	// SourceHTTP, SourceAPI).
	AnnotationConfigSource = "kubernetes.io/config.source"
	// AnnotationConfigHash is the hash a file or HTTP source gives a pod:
	// its UID.
	AnnotationConfigHash = "kubernetes.io/config.hash"
	// AnnotationConfigSeen is when a source first saw the pod (RFC 3339
	// with nanoseconds); the pod start duration counts from it.
	AnnotationConfigSeen = "kubernetes.io/config.seen"
	// AnnotationConfigMirror marks a mirror pod: the apiserver's copy of a
	// static pod, with the static pod's hash as its value.
	AnnotationConfigMirror = v1.MirrorPodAnnotationKey
)

// Annotations the kubelet sets on containers.
const (
	AnnotationContainerHash                     = "io.kubernetes.container.hash"
	AnnotationContainerRestartCount             = "io.kubernetes.container.restartCount"
	AnnotationContainerTerminationMessagePath   = "io.kubernetes.container.terminationMessagePath"
	AnnotationContainerTerminationMessagePolicy = "io.kubernetes.container.terminationMessagePolicy"
	AnnotationContainerPreStopHandler           = "io.kubernetes.container.preStopHandler"
	AnnotationContainerPorts                    = "io.kubernetes.container.ports"
	AnnotationPodDeletionGracePeriod            = "io.kubernetes.pod.deletionGracePeriod"
	AnnotationPodTerminationGracePeriod         = "io.kubernetes.pod.terminationGracePeriod"
)

// SandboxInfo is what a sandbox's labels say about its pod.
type SandboxInfo struct {
	PodName      string
	PodNamespace string
	PodUID       types.UID
	// Labels are the pod's own labels, without the ones above.
	Labels map[string]string
}

// SandboxInfoFromLabels reads a sandbox's labels. It reports false when the
// sandbox was not made for a pod (it lacks the pod UID label).
func SandboxInfoFromLabels(labels map[string]string) (SandboxInfo, bool) {
	uid, ok := labels[LabelPodUID]
	if !ok {
		return SandboxInfo{}, false
	}
	info := SandboxInfo{
		PodName:      labels[LabelPodName],
		PodNamespace: labels[LabelPodNamespace],
		PodUID:       types.UID(uid),
		Labels:       make(map[string]string, len(labels)),
	}
	for k, v := range labels {
		switch k {
		case LabelPodName, LabelPodNamespace, LabelPodUID:
		default:
			info.Labels[k] = v
		}
	}
	return info, true
}

// ContainerInfo is what a container's labels and annotations say about it.
type ContainerInfo struct {
	ContainerName string
	PodName       string
	PodNamespace  string
	PodUID        types.UID

	Hash                      uint64
	RestartCount              int
	TerminationMessagePath    string
	TerminationMessagePolicy  v1.TerminationMessagePolicy
	PodDeletionGracePeriod    *int64
	PodTerminationGracePeriod *int64
	PreStopHandler            *v1.LifecycleHandler
	Ports                     []v1.ContainerPort
}

// ContainerInfoFromLabels reads a container's labels and annotations. It
// reports false when the container was not made for a pod. Malformed
// annotations are an error naming the annotation; the fields that could be
// read are still returned.
func ContainerInfoFromLabels(labels, annotations map[string]string) (ContainerInfo, bool, error) {
	name, ok := labels[LabelContainerName]
	if !ok || labels[LabelPodUID] == "" {
		return ContainerInfo{}, false, nil
	}
	info := ContainerInfo{
		ContainerName:            name,
		PodName:                  labels[LabelPodName],
		PodNamespace:             labels[LabelPodNamespace],
		PodUID:                   types.UID(labels[LabelPodUID]),
		TerminationMessagePath:   annotations[AnnotationContainerTerminationMessagePath],
		TerminationMessagePolicy: v1.TerminationMessagePolicy(annotations[AnnotationContainerTerminationMessagePolicy]),
	}
	var errs []error
	bad := func(key string, err error) { errs = append(errs, fmt.Errorf("annotation %s: %w", key, err)) }
	if s, ok := annotations[AnnotationContainerHash]; ok {
		h, err := strconv.ParseUint(s, 16, 64)
		if err != nil {
			bad(AnnotationContainerHash, err)
		}
		info.Hash = h
	}
	if s, ok := annotations[AnnotationContainerRestartCount]; ok {
		n, err := strconv.Atoi(s)
		if err != nil {
			bad(AnnotationContainerRestartCount, err)
		}
		info.RestartCount = n
	}
	for _, f := range []struct {
		key string
		dst **int64
	}{
		{AnnotationPodDeletionGracePeriod, &info.PodDeletionGracePeriod},
		{AnnotationPodTerminationGracePeriod, &info.PodTerminationGracePeriod},
	} {
		key, dst := f.key, f.dst
		if s, ok := annotations[key]; ok {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				bad(key, err)
				continue
			}
			*dst = &n
		}
	}
	if s, ok := annotations[AnnotationContainerPreStopHandler]; ok {
		h := &v1.LifecycleHandler{}
		if err := json.Unmarshal([]byte(s), h); err != nil {
			bad(AnnotationContainerPreStopHandler, err)
		} else {
			info.PreStopHandler = h
		}
	}
	if s, ok := annotations[AnnotationContainerPorts]; ok {
		if err := json.Unmarshal([]byte(s), &info.Ports); err != nil {
			bad(AnnotationContainerPorts, err)
		}
	}
	if len(errs) > 0 {
		return info, true, fmt.Errorf("container %q of pod %s/%s: %w: %w", name, info.PodNamespace, info.PodName, ErrInvalid, errors.Join(errs...))
	}
	return info, true, nil
}
