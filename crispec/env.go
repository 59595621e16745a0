package crispec

import (
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	resourcehelper "k8s.io/component-helpers/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	netutils "k8s.io/utils/net"

	"github.com/nodekit/nodekit/core"
)

// envList is an environment under construction: names keep the position
// where they were first set, values can be replaced.
type envList struct {
	names  []string
	values map[string]string
}

func newEnvList() *envList { return &envList{values: map[string]string{}} }

func (l *envList) set(name, value string) {
	if _, ok := l.values[name]; !ok {
		l.names = append(l.names, name)
	}
	l.values[name] = value
}

// buildEnv computes a container's environment as the kubelet does:
// envFrom first, then env in order, each value expanded against what came
// before it and the service environment, then the service variables the
// container did not set. The kubelet emits the result in map order; here it
// is deterministic: device variables, then first-set order, then service
// variables sorted by name.
func (t *Translator) buildEnv(pod *v1.Pod, c *v1.Container, opts *ContainerOptions) ([]*runtimeapi.KeyValue, error) {
	env := newEnvList()
	configMaps := map[string]*v1.ConfigMap{}
	secrets := map[string]*v1.Secret{}

	for i, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			ref := from.ConfigMapRef
			cm, err := t.configMap(pod.Namespace, ref.Name, configMaps)
			if err != nil {
				if isNotFound(err) && ref.Optional != nil && *ref.Optional {
					continue
				}
				return nil, fmt.Errorf("envFrom[%d] configMapRef %q: %w", i, ref.Name, err)
			}
			for _, k := range sortedKeys(cm.Data) {
				env.set(from.Prefix+k, cm.Data[k])
			}
		case from.SecretRef != nil:
			ref := from.SecretRef
			s, err := t.secret(pod.Namespace, ref.Name, secrets)
			if err != nil {
				if isNotFound(err) && ref.Optional != nil && *ref.Optional {
					continue
				}
				return nil, fmt.Errorf("envFrom[%d] secretRef %q: %w", i, ref.Name, err)
			}
			for _, k := range sortedKeys(s.Data) {
				env.set(from.Prefix+k, string(s.Data[k]))
			}
		}
	}

	lookup := keepUnknown(env.values, opts.ServiceEnv)
	for i, e := range c.Env {
		value := e.Value
		switch {
		case value != "":
			value = expand(value, lookup)
		case e.ValueFrom != nil:
			v, skip, err := t.envValueFrom(pod, c, e.ValueFrom, opts, configMaps, secrets)
			if err != nil {
				return nil, fmt.Errorf("env[%d] %q: %w", i, e.Name, err)
			}
			if skip {
				continue
			}
			value = v
		}
		env.set(e.Name, value)
	}

	out := make([]*runtimeapi.KeyValue, 0, len(opts.Devices.Envs)+len(env.names)+len(opts.ServiceEnv))
	for _, kv := range opts.Devices.Envs {
		if kv == nil {
			continue
		}
		out = append(out, &runtimeapi.KeyValue{Key: kv.Key, Value: slices.Clone(kv.Value)})
	}
	for _, name := range env.names {
		out = append(out, &runtimeapi.KeyValue{Key: name, Value: []byte(env.values[name])})
	}
	for _, name := range sortedKeys(opts.ServiceEnv) {
		if _, ok := env.values[name]; !ok {
			out = append(out, &runtimeapi.KeyValue{Key: name, Value: []byte(opts.ServiceEnv[name])})
		}
	}
	return out, nil
}

// envValueFrom resolves one valueFrom source. skip reports an optional
// source that is absent: the variable is then not set at all.
func (t *Translator) envValueFrom(pod *v1.Pod, c *v1.Container, from *v1.EnvVarSource, opts *ContainerOptions,
	configMaps map[string]*v1.ConfigMap, secrets map[string]*v1.Secret) (value string, skip bool, err error) {
	switch {
	case from.FieldRef != nil:
		v, err := t.fieldRefValue(pod, from.FieldRef, opts.PodIPs)
		return v, false, err

	case from.ResourceFieldRef != nil:
		v, err := t.resourceFieldRefValue(pod, c, from.ResourceFieldRef)
		return v, false, err

	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		optional := ref.Optional != nil && *ref.Optional
		cm, err := t.configMap(pod.Namespace, ref.Name, configMaps)
		if err != nil {
			if isNotFound(err) && optional {
				return "", true, nil
			}
			return "", false, fmt.Errorf("valueFrom.configMapKeyRef %q: %w", ref.Name, err)
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			if optional {
				return "", true, nil
			}
			return "", false, notFoundf("valueFrom.configMapKeyRef: key %q not found in ConfigMap %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return v, false, nil

	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		optional := ref.Optional != nil && *ref.Optional
		s, err := t.secret(pod.Namespace, ref.Name, secrets)
		if err != nil {
			if isNotFound(err) && optional {
				return "", true, nil
			}
			return "", false, fmt.Errorf("valueFrom.secretKeyRef %q: %w", ref.Name, err)
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			if optional {
				return "", true, nil
			}
			return "", false, notFoundf("valueFrom.secretKeyRef: key %q not found in Secret %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return string(v), false, nil

	case from.FileKeyRef != nil:
		return "", false, invalidf("valueFrom.fileKeyRef: env files are not supported")
	}
	// An empty source: the kubelet sets the variable to "".
	return "", false, nil
}

func (t *Translator) configMap(namespace, name string, cache map[string]*v1.ConfigMap) (*v1.ConfigMap, error) {
	if cm, ok := cache[name]; ok {
		return cm, nil
	}
	if t.cfg.ConfigMaps == nil {
		return nil, invalidf("needs a ConfigMap source, and Config.ConfigMaps is not set")
	}
	cm, err := t.cfg.ConfigMaps.GetConfigMap(namespace, name)
	if err != nil {
		return nil, err
	}
	if cm == nil {
		return nil, notFoundf("ConfigMap %s/%s not found", namespace, name)
	}
	cache[name] = cm
	return cm, nil
}

func (t *Translator) secret(namespace, name string, cache map[string]*v1.Secret) (*v1.Secret, error) {
	if s, ok := cache[name]; ok {
		return s, nil
	}
	if t.cfg.Secrets == nil {
		return nil, invalidf("needs a Secret source, and Config.Secrets is not set")
	}
	s, err := t.cfg.Secrets.GetSecret(namespace, name)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, notFoundf("Secret %s/%s not found", namespace, name)
	}
	cache[name] = s
	return s, nil
}

func isNotFound(err error) bool {
	return errors.Is(err, core.ErrNotFound) || apierrors.IsNotFound(err)
}

// fieldRefValue answers a downward API fieldRef from the pod, the node's
// IPs and the pod's IPs.
func (t *Translator) fieldRefValue(pod *v1.Pod, ref *v1.ObjectFieldSelector, podIPs []string) (string, error) {
	// The API server defaults apiVersion to v1; accept it unset as well.
	if ref.APIVersion != "" && ref.APIVersion != "v1" {
		return "", invalidf("valueFrom.fieldRef.apiVersion %q: unsupported pod version", ref.APIVersion)
	}
	path := ref.FieldPath
	bad := func(format string, args ...any) error {
		return invalidf("valueFrom.fieldRef.fieldPath %q: %s", path, fmt.Sprintf(format, args...))
	}

	if base, key, ok := core.SplitFieldSubscript(path); ok {
		switch base {
		case "metadata.labels":
			if errs := validation.IsQualifiedName(key); len(errs) > 0 {
				return "", bad("invalid key: %s", strings.Join(errs, "; "))
			}
			return pod.Labels[key], nil
		case "metadata.annotations":
			if errs := validation.IsQualifiedName(strings.ToLower(key)); len(errs) > 0 {
				return "", bad("invalid key: %s", strings.Join(errs, "; "))
			}
			return pod.Annotations[key], nil
		}
		return "", bad("field does not support a subscript")
	}

	switch path {
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
	case "spec.nodeName", "spec.host":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		if len(t.cfg.NodeIPs) == 0 {
			return "", bad("the node's IPs are unknown (Config.NodeIPs is empty)")
		}
		if path == "status.hostIP" {
			return canonicalIP(t.cfg.NodeIPs[0]), nil
		}
		ips := make([]string, len(t.cfg.NodeIPs))
		for i, ip := range t.cfg.NodeIPs {
			ips[i] = canonicalIP(ip)
		}
		return strings.Join(ips, ","), nil
	case "status.podIP", "status.podIPs":
		ips := t.orderPodIPs(podIPs)
		if path == "status.podIPs" {
			return strings.Join(ips, ","), nil
		}
		if len(ips) > 0 {
			return ips[0], nil
		}
		if len(podIPs) > 0 {
			// None parses: the primary IP as given.
			return podIPs[0], nil
		}
		return "", nil
	}
	// spec.restartPolicy, spec.schedulerName and status.phase are valid
	// downward API paths for volumes but not for env vars: the kubelet
	// refuses them here too.
	return "", bad("unsupported field")
}

// orderPodIPs returns at most one pod IP of each family, the family of the
// node's primary IP first (IPv4 when the node's IPs are unknown), in
// canonical form, as the kubelet reports them to the downward API.
func (t *Translator) orderPodIPs(podIPs []string) []string {
	first, second := netutils.IsIPv4, netutils.IsIPv6
	if len(t.cfg.NodeIPs) > 0 && !netutils.IsIPv4(netutils.ParseIPSloppy(t.cfg.NodeIPs[0])) {
		first, second = second, first
	}
	var out []string
	for _, family := range []func(net.IP) bool{first, second} {
		for _, s := range podIPs {
			if ip := netutils.ParseIPSloppy(s); family(ip) {
				out = append(out, ip.String())
				break
			}
		}
	}
	return out
}

func canonicalIP(s string) string {
	if ip := netutils.ParseIPSloppy(s); ip != nil {
		return ip.String()
	}
	return s
}

// downwardLimitResources are the resources whose unset limits the
// downward API fills in from the node's allocatable resources.
var downwardLimitResources = []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory, v1.ResourceEphemeralStorage}

// resourceFieldRefValue answers a downward API resourceFieldRef. Unset
// limits read as the pod-level limit if the pod sets one, else as the
// node's allocatable amount; values are divided by the divisor (default 1)
// and rounded up.
func (t *Translator) resourceFieldRefValue(pod *v1.Pod, c *v1.Container, ref *v1.ResourceFieldSelector) (string, error) {
	target := c
	defaulted := true
	if ref.ContainerName != "" {
		target, defaulted = findContainer(pod, ref.ContainerName)
		if target == nil {
			return "", invalidf("valueFrom.resourceFieldRef.containerName %q: no such container in the pod", ref.ContainerName)
		}
	}
	limits := target.Resources.Limits
	if defaulted {
		var err error
		limits, err = t.downwardLimits(pod, target, ref.Resource)
		if err != nil {
			return "", err
		}
	}

	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	requests := target.Resources.Requests
	var q resource.Quantity
	cpu := false
	switch res := ref.Resource; res {
	case "limits.cpu":
		q, cpu = quantityOrZero(limits, v1.ResourceCPU), true
	case "limits.memory":
		q = quantityOrZero(limits, v1.ResourceMemory)
	case "limits.ephemeral-storage":
		q = quantityOrZero(limits, v1.ResourceEphemeralStorage)
	case "requests.cpu":
		q, cpu = quantityOrZero(requests, v1.ResourceCPU), true
	case "requests.memory":
		q = quantityOrZero(requests, v1.ResourceMemory)
	case "requests.ephemeral-storage":
		q = quantityOrZero(requests, v1.ResourceEphemeralStorage)
	default:
		if name, ok := strings.CutPrefix(res, "requests."); ok && isHugePages(v1.ResourceName(name)) {
			q = quantityOrZero(requests, v1.ResourceName(name))
		} else if name, ok := strings.CutPrefix(res, "limits."); ok && isHugePages(v1.ResourceName(name)) {
			q = quantityOrZero(limits, v1.ResourceName(name))
		} else {
			return "", invalidf("valueFrom.resourceFieldRef.resource %q: unsupported resource", res)
		}
	}
	var v float64
	if cpu {
		v = float64(q.MilliValue()) / float64(divisor.MilliValue())
	} else {
		v = float64(q.Value()) / float64(divisor.Value())
	}
	return strconv.FormatInt(int64(math.Ceil(v)), 10), nil
}

// findContainer finds a container of the pod by name. defaulted reports
// whether the kubelet fills in its unset limits: it does so for regular
// containers, not for init containers.
func findContainer(pod *v1.Pod, name string) (c *v1.Container, defaulted bool) {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i], true
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i], false
		}
	}
	return nil, false
}

// downwardLimits returns c's limits with unset (or zero) cpu, memory and
// ephemeral-storage limits filled in from the node's allocatable resources,
// where the pod's own limits, if set, replace the node's.
func (t *Translator) downwardLimits(pod *v1.Pod, c *v1.Container, res string) (v1.ResourceList, error) {
	limits := make(v1.ResourceList, len(c.Resources.Limits)+len(downwardLimitResources))
	for k, v := range c.Resources.Limits {
		limits[k] = v
	}
	if t.cfg.NodeAllocatable == nil {
		// Only a limit the container does not set needs the node.
		if name, ok := strings.CutPrefix(res, "limits."); ok {
			for _, r := range downwardLimitResources {
				if string(r) == name {
					if q, ok := limits[r]; !ok || q.IsZero() {
						return nil, invalidf("valueFrom.resourceFieldRef.resource %q: the container sets no limit and the node's allocatable resources are unknown (Config.NodeAllocatable is not set)", res)
					}
				}
			}
		}
		return limits, nil
	}
	allocatable := t.cfg.NodeAllocatable
	if resourcehelper.IsPodLevelLimitsSet(pod) {
		allocatable = allocatable.DeepCopy()
		for _, r := range downwardLimitResources {
			if !resourcehelper.IsSupportedPodLevelResource(r) {
				continue
			}
			if q, ok := pod.Spec.Resources.Limits[r]; ok && !q.IsZero() {
				if _, ok := allocatable[r]; ok {
					allocatable[r] = q
				}
			}
		}
	}
	for _, r := range downwardLimitResources {
		if q, ok := limits[r]; !ok || q.IsZero() {
			if a, ok := allocatable[r]; ok {
				limits[r] = a.DeepCopy()
			}
		}
	}
	return limits, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
