package crispec_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
)

// envOf returns the environment of a container as "K=V" lines, in order.
func envOf(t *testing.T, tr *crispec.Translator, pod *v1.Pod, c *v1.Container, opts crispec.ContainerOptions) []string {
	t.Helper()
	cfg, err := tr.ContainerConfig(pod, c, opts)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, kv := range cfg.Envs {
		out = append(out, kv.Key+"="+string(kv.Value))
	}
	return out
}

func assertLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n%s", what, lineDiff(strings.Join(want, "\n"), strings.Join(got, "\n")))
	}
}

func fieldEnv(name, path string) v1.EnvVar {
	return v1.EnvVar{Name: name, ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
}

func resourceEnv(name, container, res, divisor string) v1.EnvVar {
	sel := &v1.ResourceFieldSelector{ContainerName: container, Resource: res}
	if divisor != "" {
		sel.Divisor = resource.MustParse(divisor)
	}
	return v1.EnvVar{Name: name, ValueFrom: &v1.EnvVarSource{ResourceFieldRef: sel}}
}

func TestEnvExpansion(t *testing.T) {
	tr := newTranslator(t, crispec.Config{})
	c := v1.Container{Name: "app", Env: []v1.EnvVar{
		{Name: "A", Value: "a"},
		{Name: "B", Value: "$(A)-b"},
		{Name: "ESCAPED", Value: "$$(A)"},
		{Name: "FORWARD", Value: "$(LATER)"},
		{Name: "LATER", Value: "later"},
		{Name: "FROM_SERVICE", Value: "http://$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT)"},
		{Name: "UNKNOWN", Value: "$(NOPE) $(A"},
		{Name: "A", Value: "a2"},
		{Name: "AFTER", Value: "$(A)"},
		{Name: "EMPTY"},
		{Name: "WEB_SERVICE_PORT", Value: "8443"},
	}}
	pod := onePod(c)
	got := envOf(t, tr, pod, &pod.Spec.Containers[0], crispec.ContainerOptions{
		ServiceEnv: map[string]string{
			"WEB_SERVICE_HOST":         "10.96.3.4",
			"WEB_SERVICE_PORT":         "443",
			"KUBERNETES_SERVICE_HOST":  "10.96.0.1",
			"KUBERNETES_SERVICE_PORT":  "443",
			"KUBERNETES_PORT_443_TCP":  "tcp://10.96.0.1:443",
			"KUBERNETES_PORT":          "tcp://10.96.0.1:443",
			"KUBERNETES_PORT_443_ADDR": "10.96.0.1",
		},
		Devices: crispec.DeviceAllocation{Envs: nil},
	})
	assertLines(t, "env", got, []string{
		// A keeps its first position and takes its last value.
		"A=a2",
		"B=a-b",
		"ESCAPED=$(A)",
		"FORWARD=$(LATER)",
		"LATER=later",
		"FROM_SERVICE=http://10.96.3.4:443",
		"UNKNOWN=$(NOPE) $(A",
		"AFTER=a2",
		"EMPTY=",
		// The container's own value wins over the service's.
		"WEB_SERVICE_PORT=8443",
		"KUBERNETES_PORT=tcp://10.96.0.1:443",
		"KUBERNETES_PORT_443_ADDR=10.96.0.1",
		"KUBERNETES_PORT_443_TCP=tcp://10.96.0.1:443",
		"KUBERNETES_SERVICE_HOST=10.96.0.1",
		"KUBERNETES_SERVICE_PORT=443",
		"WEB_SERVICE_HOST=10.96.3.4",
	})
}

func TestCommandAndArgsExpansion(t *testing.T) {
	tr := newTranslator(t, crispec.Config{})
	pod := onePod(v1.Container{
		Name:    "app",
		Command: []string{"/bin/$(BIN)", "$$(BIN)", "$(MISSING)"},
		Args:    []string{"--port=$(PORT)", "--host=$(SVC_HOST)", "--dev=$(GPU)", "$", "$$"},
		Env: []v1.EnvVar{
			{Name: "BIN", Value: "server"},
			{Name: "PORT", Value: "80"},
			{Name: "PORT", Value: "8080"},
		},
	})
	cfg, err := tr.ContainerConfig(pod, &pod.Spec.Containers[0], crispec.ContainerOptions{
		ServiceEnv: map[string]string{"SVC_HOST": "10.0.0.1"},
		Devices:    crispec.DeviceAllocation{Envs: []*runtimeapi.KeyValue{{Key: "GPU", Value: []byte("0,1")}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	assertLines(t, "command", cfg.Command, []string{"/bin/server", "$(BIN)", "$(MISSING)"})
	assertLines(t, "args", cfg.Args, []string{"--port=8080", "--host=10.0.0.1", "--dev=0,1", "$", "$"})
	if cfg.Envs[0].Key != "GPU" {
		t.Errorf("device variables come first, got %s", cfg.Envs[0].Key)
	}
}

func TestEnvFieldRef(t *testing.T) {
	tr := newTranslator(t, crispec.Config{NodeIPs: []string{"fd00::1", "192.168.1.10"}})
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web", Namespace: "shop", UID: "uid-1",
			Labels:      map[string]string{"app": "web", "tier": "front end"},
			Annotations: map[string]string{"note": `say "hi"`, "Example.com/Key": "v"},
		},
		Spec: v1.PodSpec{
			NodeName:           "node-a",
			ServiceAccountName: "web-sa",
			Containers: []v1.Container{{Name: "app", Env: []v1.EnvVar{
				fieldEnv("NAME", "metadata.name"),
				fieldEnv("NS", "metadata.namespace"),
				fieldEnv("UID", "metadata.uid"),
				fieldEnv("APP", "metadata.labels['app']"),
				fieldEnv("ABSENT", "metadata.labels['absent']"),
				fieldEnv("NOTE", "metadata.annotations['note']"),
				fieldEnv("UPPER", "metadata.annotations['Example.com/Key']"),
				fieldEnv("LABELS", "metadata.labels"),
				fieldEnv("ANNOTATIONS", "metadata.annotations"),
				fieldEnv("NODE", "spec.nodeName"),
				fieldEnv("HOST", "spec.host"),
				fieldEnv("SA", "spec.serviceAccountName"),
				fieldEnv("HOST_IP", "status.hostIP"),
				fieldEnv("HOST_IPS", "status.hostIPs"),
				fieldEnv("POD_IP", "status.podIP"),
				fieldEnv("POD_IPS", "status.podIPs"),
				{Name: "NO_VERSION", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				{Name: "NOT_EXPANDED", Value: "", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.annotations['note']"}}},
			}}},
		},
	}
	got := envOf(t, tr, pod, &pod.Spec.Containers[0], crispec.ContainerOptions{
		// Same family as the node's primary IP first, one per family,
		// in canonical form.
		PodIPs: []string{"10.244.0.7", "10.244.0.8", "fd00:0:0::7"},
	})
	assertLines(t, "env", got, []string{
		"NAME=web",
		"NS=shop",
		"UID=uid-1",
		"APP=web",
		"ABSENT=",
		`NOTE=say "hi"`,
		"UPPER=v",
		"LABELS=app=\"web\"\ntier=\"front end\"",
		"ANNOTATIONS=Example.com/Key=\"v\"\nnote=\"say \\\"hi\\\"\"",
		"NODE=node-a",
		"HOST=node-a",
		"SA=web-sa",
		"HOST_IP=fd00::1",
		"HOST_IPS=fd00::1,192.168.1.10",
		"POD_IP=fd00::7",
		"POD_IPS=fd00::7,10.244.0.7",
		"NO_VERSION=web",
		`NOT_EXPANDED=say "hi"`,
	})
}

func TestEnvFieldRefErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  crispec.Config
		env  v1.EnvVar
		want string
	}{
		{"unsupported field", crispec.Config{}, fieldEnv("X", "spec.bogus"),
			`pod default/web container "app": env[2] "X": valueFrom.fieldRef.fieldPath "spec.bogus": unsupported field`},
		{"not for env vars", crispec.Config{}, fieldEnv("X", "status.phase"),
			`pod default/web container "app": env[2] "X": valueFrom.fieldRef.fieldPath "status.phase": unsupported field`},
		{"subscript on a plain field", crispec.Config{}, fieldEnv("X", "metadata.name['x']"),
			`pod default/web container "app": env[2] "X": valueFrom.fieldRef.fieldPath "metadata.name['x']": field does not support a subscript`},
		{"invalid label key", crispec.Config{}, fieldEnv("X", "metadata.labels['a b']"),
			`pod default/web container "app": env[2] "X": valueFrom.fieldRef.fieldPath "metadata.labels['a b']": invalid key: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`},
		{"bad version", crispec.Config{},
			v1.EnvVar{Name: "X", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{APIVersion: "v2", FieldPath: "metadata.name"}}},
			`pod default/web container "app": env[2] "X": valueFrom.fieldRef.apiVersion "v2": unsupported pod version`},
		{"host IP unknown", crispec.Config{}, fieldEnv("X", "status.hostIP"),
			`pod default/web container "app": env[2] "X": valueFrom.fieldRef.fieldPath "status.hostIP": the node's IPs are unknown (Config.NodeIPs is empty)`},
		{"unsupported resource", crispec.Config{}, resourceEnv("X", "", "limits.gpu", ""),
			`pod default/web container "app": env[2] "X": valueFrom.resourceFieldRef.resource "limits.gpu": unsupported resource`},
		{"unknown container", crispec.Config{}, resourceEnv("X", "nope", "requests.cpu", ""),
			`pod default/web container "app": env[2] "X": valueFrom.resourceFieldRef.containerName "nope": no such container in the pod`},
		{"limit default needs allocatable", crispec.Config{}, resourceEnv("X", "", "limits.memory", ""),
			`pod default/web container "app": env[2] "X": valueFrom.resourceFieldRef.resource "limits.memory": the container sets no limit and the node's allocatable resources are unknown (Config.NodeAllocatable is not set)`},
		{"env files", crispec.Config{},
			v1.EnvVar{Name: "X", ValueFrom: &v1.EnvVarSource{FileKeyRef: &v1.FileKeySelector{VolumeName: "v", Path: "env", Key: "K"}}},
			`pod default/web container "app": env[2] "X": valueFrom.fileKeyRef: env files are not supported`},
		{"no ConfigMap source", crispec.Config{},
			v1.EnvVar{Name: "X", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}, Key: "k"}}},
			`pod default/web container "app": env[2] "X": valueFrom.configMapKeyRef "cm": needs a ConfigMap source, and Config.ConfigMaps is not set`},
		{"no Secret source", crispec.Config{},
			v1.EnvVar{Name: "X", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "s"}, Key: "k"}}},
			`pod default/web container "app": env[2] "X": valueFrom.secretKeyRef "s": needs a Secret source, and Config.Secrets is not set`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTranslator(t, tc.cfg)
			pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "u"}, Spec: v1.PodSpec{
				Containers: []v1.Container{{Name: "app", Env: []v1.EnvVar{{Name: "A", Value: "a"}, {Name: "B", Value: "b"}, tc.env}}},
			}}
			_, err := tr.ContainerConfig(pod, &pod.Spec.Containers[0], crispec.ContainerOptions{})
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, core.ErrInvalid) {
				t.Errorf("%v does not match core.ErrInvalid", err)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got %q\nwant %q", err, tc.want)
			}
		})
	}
}

func TestEnvResourceFieldRef(t *testing.T) {
	tr := newTranslator(t, crispec.Config{
		MemoryCapacity:  16 << 30,
		NodeAllocatable: rl("cpu", "3800m", "memory", "15Gi", "ephemeral-storage", "100Gi", "pods", "110"),
	})
	pod := &v1.Pod{ObjectMeta: metaFor("p"), Spec: v1.PodSpec{
		InitContainers: []v1.Container{{Name: "init", Resources: v1.ResourceRequirements{Requests: rl("cpu", "100m")}}},
		Containers: []v1.Container{{
			Name: "app",
			Resources: v1.ResourceRequirements{
				Requests: rl("cpu", "250m", "memory", "100Mi", "ephemeral-storage", "1G", "hugepages-2Mi", "4Mi"),
				Limits:   rl("cpu", "1500m", "hugepages-2Mi", "4Mi"),
			},
			Env: []v1.EnvVar{
				resourceEnv("CPU_LIMIT", "", "limits.cpu", ""),
				resourceEnv("CPU_LIMIT_M", "", "limits.cpu", "1m"),
				resourceEnv("CPU_REQUEST", "", "requests.cpu", ""),
				resourceEnv("CPU_REQUEST_100M", "", "requests.cpu", "100m"),
				resourceEnv("MEM_REQUEST", "", "requests.memory", ""),
				resourceEnv("MEM_REQUEST_MI", "", "requests.memory", "1Mi"),
				resourceEnv("MEM_REQUEST_GI", "", "requests.memory", "1Gi"),
				resourceEnv("MEM_LIMIT", "", "limits.memory", "1Mi"),
				resourceEnv("STORAGE_REQUEST", "", "requests.ephemeral-storage", "1k"),
				resourceEnv("STORAGE_LIMIT", "", "limits.ephemeral-storage", "1Gi"),
				resourceEnv("HUGE_REQUEST", "", "requests.hugepages-2Mi", "1Mi"),
				resourceEnv("HUGE_LIMIT", "", "limits.hugepages-2Mi", ""),
				resourceEnv("SIDE_CPU_LIMIT", "side", "limits.cpu", "1m"),
				resourceEnv("SIDE_MEM_REQUEST", "side", "requests.memory", ""),
				resourceEnv("INIT_CPU_LIMIT", "init", "limits.cpu", ""),
				resourceEnv("INIT_CPU_REQUEST", "init", "requests.cpu", "1m"),
			},
		}, {
			Name:      "side",
			Resources: v1.ResourceRequirements{Requests: rl("memory", "10M")},
		}},
	}}
	got := envOf(t, tr, pod, &pod.Spec.Containers[0], crispec.ContainerOptions{})
	assertLines(t, "env", got, []string{
		"CPU_LIMIT=2", // 1.5 rounded up
		"CPU_LIMIT_M=1500",
		"CPU_REQUEST=1",
		"CPU_REQUEST_100M=3", // 2.5 rounded up
		"MEM_REQUEST=104857600",
		"MEM_REQUEST_MI=100",
		"MEM_REQUEST_GI=1",
		"MEM_LIMIT=15360", // the node's allocatable memory
		"STORAGE_REQUEST=1000000",
		"STORAGE_LIMIT=100",
		"HUGE_REQUEST=4",
		"HUGE_LIMIT=4194304",
		"SIDE_CPU_LIMIT=3800", // another container: its limit is defaulted as well
		"SIDE_MEM_REQUEST=10000000",
		"INIT_CPU_LIMIT=0", // init containers' limits are not defaulted
		"INIT_CPU_REQUEST=100",
	})
}

func TestEnvResourceFieldRefPodLevelLimits(t *testing.T) {
	tr := newTranslator(t, crispec.Config{
		MemoryCapacity:  16 << 30,
		NodeAllocatable: rl("cpu", "4", "memory", "16Gi"),
	})
	pod := &v1.Pod{ObjectMeta: metaFor("p"), Spec: v1.PodSpec{
		Resources: &v1.ResourceRequirements{Limits: rl("cpu", "2", "ephemeral-storage", "5Gi")},
		Containers: []v1.Container{{Name: "app", Env: []v1.EnvVar{
			resourceEnv("CPU", "", "limits.cpu", ""),
			resourceEnv("MEM", "", "limits.memory", "1Gi"),
			// The node reports no allocatable storage: nothing to replace.
			resourceEnv("STORAGE", "", "limits.ephemeral-storage", ""),
		}}},
	}}
	got := envOf(t, tr, pod, &pod.Spec.Containers[0], crispec.ContainerOptions{})
	assertLines(t, "env", got, []string{"CPU=2", "MEM=16", "STORAGE=0"})
}

type configMaps map[string]*v1.ConfigMap

func (m configMaps) GetConfigMap(ns, name string) (*v1.ConfigMap, error) {
	if cm, ok := m[ns+"/"+name]; ok {
		return cm, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}

func TestEnvConfigMapsAndSecrets(t *testing.T) {
	secretCalls := 0
	tr := newTranslator(t, crispec.Config{
		ConfigMaps: configMaps{
			"default/settings": {Data: map[string]string{"mode": "fast", "b": "2", "a": "1"}},
		},
		Secrets: crispec.SecretGetterFunc(func(ns, name string) (*v1.Secret, error) {
			secretCalls++
			if ns == "default" && name == "creds" {
				return &v1.Secret{Data: map[string][]byte{"password": []byte("hunter2"), "user": []byte("admin")}}, nil
			}
			return nil, fmt.Errorf("secret %s/%s: %w", ns, name, core.ErrNotFound)
		}),
	})
	optional := ptr(true)
	ref := func(name string) v1.LocalObjectReference { return v1.LocalObjectReference{Name: name} }
	pod := onePod(v1.Container{
		Name: "app",
		EnvFrom: []v1.EnvFromSource{
			{ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: ref("settings")}},
			{Prefix: "DB_", SecretRef: &v1.SecretEnvSource{LocalObjectReference: ref("creds")}},
			{ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: ref("absent"), Optional: optional}},
		},
		Env: []v1.EnvVar{
			{Name: "mode", Value: "slow-$(a)"},
			{Name: "PASSWORD", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: ref("creds"), Key: "password"}}},
			{Name: "MODE2", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: ref("settings"), Key: "mode"}}},
			{Name: "SKIPPED_KEY", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: ref("settings"), Key: "nope", Optional: optional}}},
			{Name: "SKIPPED_MAP", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: ref("absent"), Key: "k", Optional: optional}}},
			{Name: "SKIPPED_SECRET", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: ref("absent"), Key: "k", Optional: optional}}},
		},
	})
	got := envOf(t, tr, pod, &pod.Spec.Containers[0], crispec.ContainerOptions{})
	assertLines(t, "env", got, []string{
		// envFrom first, keys sorted within a source; env overrides.
		"a=1",
		"b=2",
		"mode=slow-1",
		"DB_password=hunter2",
		"DB_user=admin",
		"PASSWORD=hunter2",
		"MODE2=fast",
	})
	if secretCalls != 2 { // creds once (then cached), absent once
		t.Errorf("secret lookups = %d, want 2", secretCalls)
	}

	for _, tc := range []struct {
		name   string
		env    v1.EnvVar
		from   v1.EnvFromSource
		want   string
		target error
	}{{
		name:   "missing key",
		env:    v1.EnvVar{Name: "X", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: ref("settings"), Key: "nope"}}},
		want:   `pod default/p container "app": env[0] "X": valueFrom.configMapKeyRef: key "nope" not found in ConfigMap default/settings`,
		target: core.ErrNotFound,
	}, {
		name:   "missing ConfigMap",
		env:    v1.EnvVar{Name: "X", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: ref("absent"), Key: "k"}}},
		want:   `pod default/p container "app": env[0] "X": valueFrom.configMapKeyRef "absent": configmaps "absent" not found`,
		target: nil,
	}, {
		name:   "missing Secret",
		env:    v1.EnvVar{Name: "X", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: ref("absent"), Key: "k"}}},
		want:   `pod default/p container "app": env[0] "X": valueFrom.secretKeyRef "absent": secret default/absent: not found`,
		target: core.ErrNotFound,
	}, {
		name:   "missing envFrom Secret",
		from:   v1.EnvFromSource{SecretRef: &v1.SecretEnvSource{LocalObjectReference: ref("absent")}},
		want:   `pod default/p container "app": envFrom[0] secretRef "absent": secret default/absent: not found`,
		target: core.ErrNotFound,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			c := v1.Container{Name: "app"}
			if tc.env.Name != "" {
				c.Env = []v1.EnvVar{tc.env}
			} else {
				c.EnvFrom = []v1.EnvFromSource{tc.from}
			}
			pod := onePod(c)
			_, err := tr.ContainerConfig(pod, &pod.Spec.Containers[0], crispec.ContainerOptions{})
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error\n got %v\nwant %s", err, tc.want)
			}
			if tc.target != nil && !errors.Is(err, tc.target) {
				t.Errorf("%v does not match %v", err, tc.target)
			}
			if errors.Is(err, core.ErrInvalid) {
				t.Errorf("%v: a missing object is not invalid input", err)
			}
		})
	}
}
