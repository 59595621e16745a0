package volumemgr

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/nodekit/nodekit/core"
)

// DownwardAPIPayload returns the files of a downwardAPI volume, as the
// kubelet's downwardAPI plugin projects them from the pod.
//
// A fieldRef item reads metadata.name, metadata.namespace, metadata.uid,
// metadata.labels, metadata.annotations (one key="value" line per entry,
// sorted by key, the value quoted with Go escapes, no final newline), or
// one entry, metadata.labels['key'] or metadata.annotations['key'] (empty
// if absent). Other fields (spec.nodeName, status.podIP, ...) are for
// environment variables only, as in the kubelet.
//
// A resourceFieldRef item reads limits.cpu, limits.memory,
// limits.ephemeral-storage, requests.cpu, requests.memory,
// requests.ephemeral-storage, or limits. and requests. of a
// hugepages-<size> resource, of the named container (regular or init),
// divided by the divisor (default 1; for cpu, "1m" gives millicores) and
// rounded up. A cpu, memory or ephemeral-storage limit the container does
// not set (or sets to zero) reads as the node's allocatable amount, which
// nodeAllocatable gives; nil nodeAllocatable is an error only for an item
// that needs it.
//
// Modes and owners follow ConfigMapPayload (default mode
// v1.DownwardAPIVolumeSourceDefaultMode, 0644). Every item at fault is
// reported, each error naming it: an unsupported field or resource, a
// malformed subscript, a container not in the pod or a bad path wrap
// core.ErrInvalid. Neither argument is modified.
func DownwardAPIPayload(src *v1.DownwardAPIVolumeSource, pod *v1.Pod, nodeAllocatable v1.ResourceList) (map[string]FileProjection, error) {
	if src == nil {
		return nil, payloadErrorf(core.ErrInvalid, "downwardAPI volume source is nil")
	}
	if pod == nil {
		return nil, payloadErrorf(core.ErrInvalid, "downwardAPI volume: pod is nil")
	}
	defaultMode := payloadModeOr(src.DefaultMode, v1.DownwardAPIVolumeSourceDefaultMode)
	if err := checkPayloadMode(defaultMode); err != nil {
		return nil, payloadErrorf(core.ErrInvalid, "downwardAPI: defaultMode: %v", err)
	}
	payload := map[string]FileProjection{}
	if err := addDownwardAPIPayload(payload, "downwardAPI ", src.Items, pod, nodeAllocatable, defaultMode, src.DefaultUser); err != nil {
		return nil, err
	}
	if err := checkPayloadTree(payload); err != nil {
		return nil, err
	}
	return payload, nil
}

// addDownwardAPIPayload adds the files of downward API items to payload;
// where prefixes messages.
func addDownwardAPIPayload(payload map[string]FileProjection, where string, items []v1.DownwardAPIVolumeFile, pod *v1.Pod, nodeAllocatable v1.ResourceList, defaultMode int32, defaultUser *int64) error {
	var errs []error
	for i, item := range items {
		bad := func(class error, format string, args ...any) {
			errs = append(errs, payloadErrorf(class, "%sitems[%d] %q: %s", where, i, item.Path, fmt.Sprintf(format, args...)))
		}
		p, err := cleanPayloadPath(item.Path)
		if err != nil {
			bad(core.ErrInvalid, "path: %v", err)
			continue
		}
		mode := payloadModeOr(item.Mode, defaultMode)
		if err := checkPayloadMode(mode); err != nil {
			bad(core.ErrInvalid, "mode: %v", err)
			continue
		}
		var value string
		switch {
		case item.FieldRef != nil:
			value, err = downwardFieldValue(pod, item.FieldRef.FieldPath)
			if err != nil {
				bad(core.ErrInvalid, "fieldRef.fieldPath %q: %v", item.FieldRef.FieldPath, err)
				continue
			}
		case item.ResourceFieldRef != nil:
			value, err = downwardResourceValue(pod, item.ResourceFieldRef, nodeAllocatable)
			if err != nil {
				bad(core.ErrInvalid, "resourceFieldRef: %v", err)
				continue
			}
		}
		// An item with neither reference is an empty file, as in the
		// kubelet (the API server refuses it).
		payload[p] = FileProjection{Data: []byte(value), Mode: mode, FsUser: resolveItemUser(defaultUser, item.User)}
	}
	return errors.Join(errs...)
}

// downwardFieldValue is the value of a downward API volume's fieldRef.
func downwardFieldValue(pod *v1.Pod, fieldPath string) (string, error) {
	if base, key, ok := core.SplitFieldSubscript(fieldPath); ok {
		switch base {
		case "metadata.annotations":
			if errs := validation.IsQualifiedName(strings.ToLower(key)); len(errs) > 0 {
				return "", fmt.Errorf("invalid key: %s", strings.Join(errs, "; "))
			}
			return pod.Annotations[key], nil
		case "metadata.labels":
			if errs := validation.IsQualifiedName(key); len(errs) > 0 {
				return "", fmt.Errorf("invalid key: %s", strings.Join(errs, "; "))
			}
			return pod.Labels[key], nil
		}
		return "", errors.New("the field has no subscript")
	}
	switch fieldPath {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return core.FormatDownwardMap(pod.Labels), nil
	case "metadata.annotations":
		return core.FormatDownwardMap(pod.Annotations), nil
	}
	return "", errors.New("unsupported field")
}

// limitDefaultsToAllocatable tells the resources whose limit reads as the
// node's allocatable amount when the container sets none. Huge pages are
// never overcommitted, so their limit is always set.
func limitDefaultsToAllocatable(rn v1.ResourceName) bool {
	switch rn {
	case v1.ResourceCPU, v1.ResourceMemory, v1.ResourceEphemeralStorage:
		return true
	}
	return false
}

// downwardResourceValue is the value of a downward API volume's
// resourceFieldRef.
func downwardResourceValue(pod *v1.Pod, ref *v1.ResourceFieldSelector, nodeAllocatable v1.ResourceList) (string, error) {
	c := downwardContainer(pod, ref.ContainerName)
	if c == nil {
		return "", fmt.Errorf("containerName %q: no such container in the pod", ref.ContainerName)
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}

	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok || (kind != "limits" && kind != "requests") {
		return "", fmt.Errorf("resource %q: unsupported resource", ref.Resource)
	}
	rn := v1.ResourceName(name)
	switch {
	case rn == v1.ResourceCPU, rn == v1.ResourceMemory, rn == v1.ResourceEphemeralStorage:
	case strings.HasPrefix(name, v1.ResourceHugePagesPrefix):
	default:
		return "", fmt.Errorf("resource %q: unsupported resource", ref.Resource)
	}

	var q resource.Quantity
	if kind == "requests" {
		q = c.Resources.Requests[rn]
	} else {
		var set bool
		q, set = c.Resources.Limits[rn]
		if (!set || q.IsZero()) && limitDefaultsToAllocatable(rn) {
			if nodeAllocatable == nil {
				return "", fmt.Errorf("resource %q: container %q sets no limit and the node's allocatable resources are not given", ref.Resource, c.Name)
			}
			q = nodeAllocatable[rn]
		}
	}

	var num, den int64
	if rn == v1.ResourceCPU {
		num, den = q.MilliValue(), divisor.MilliValue()
	} else {
		num, den = q.Value(), divisor.Value()
	}
	if den <= 0 {
		return "", fmt.Errorf("resource %q: divisor %s is not positive", ref.Resource, divisor.String())
	}
	return strconv.FormatInt(int64(math.Ceil(float64(num)/float64(den))), 10), nil
}

// downwardContainer finds a regular or init container of the pod by name.
func downwardContainer(pod *v1.Pod, name string) *v1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}
