package kubeletconfig_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodekit/nodekit/examples/agent/kubeletconfig"
)

func TestParse(t *testing.T) {
	c, err := kubeletconfig.Parse([]byte(`
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: /etc/kubernetes/manifests
nodeStatusUpdateFrequency: 4s
evictionHard:
  memory.available: 200Mi
featureGates:
  SomeGate: true
imageGCHighThresholdPercent: 90
imageMaximumGCAge: 168h
containerLogMaxSize: 50Mi
`), "kubelet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	k := c.KubeletConfiguration
	if k.StaticPodPath != "/etc/kubernetes/manifests" || k.EvictionHard["memory.available"] != "200Mi" {
		t.Errorf("values: %q %v", k.StaticPodPath, k.EvictionHard)
	}
	// The kubelet's defaults, and its rule that the report frequency
	// follows an update frequency that was set.
	if k.SyncFrequency.Duration != time.Minute || k.MaxPods != 110 || k.Port != 10250 || *k.Authentication.Anonymous.Enabled ||
		k.Authorization.Mode != "Webhook" || k.ReadOnlyPort != 0 || k.NodeStatusReportFrequency.Duration != 4*time.Second ||
		k.CgroupDriver != "cgroupfs" || *k.FailCgroupV1 || k.ContainerRuntimeEndpoint != "" {
		t.Errorf("defaults: %+v", k)
	}
	// Image garbage collection: the values set, the kubelet's defaults
	// for the rest.
	if *k.ImageGCHighThresholdPercent != 90 || *k.ImageGCLowThresholdPercent != 80 || k.ImageMinimumGCAge.Duration != 2*time.Minute ||
		k.ImageMaximumGCAge.Duration != 168*time.Hour {
		t.Errorf("image GC: high %d low %d min %s max %s", *k.ImageGCHighThresholdPercent, *k.ImageGCLowThresholdPercent,
			k.ImageMinimumGCAge.Duration, k.ImageMaximumGCAge.Duration)
	}
	want := []string{
		"containerLogMaxSize: container logs are not rotated",
		"featureGates: nodekit has no feature gates; it follows Kubernetes 1.37's defaults",
	}
	if strings.Join(c.Unsupported, "\n") != strings.Join(want, "\n") {
		t.Errorf("unsupported:\n%s", strings.Join(c.Unsupported, "\n"))
	}
}

func TestParseErrors(t *testing.T) {
	for name, tc := range map[string]struct{ in, want string }{
		"unknown field": {"apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPth: /x\n", `unknown field "staticPodPth"`},
		"wrong kind":    {"apiVersion: kubelet.config.k8s.io/v1beta1\nkind: Pod\n", `kind "Pod"`},
		"no apiVersion": {"kind: KubeletConfiguration\n", `apiVersion ""`},
		"wrong type":    {"apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: many\n", "maxPods"},
		"bad duration":  {"apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nsyncFrequency: soon\n", "soon"},
		"empty":         {"\n", "empty"},
	} {
		_, err := kubeletconfig.Parse([]byte(tc.in), "k.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "k.yaml") {
			t.Errorf("%s: %v, want an error naming k.yaml and %q", name, err, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	c, err := kubeletconfig.Parse([]byte(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
readOnlyPort: 70000
tlsMinVersion: VersionTLS11
cpuManagerPolicy: dynamic
reservedSystemCPUs: "0-"
kubeReserved: {memory: lots}
systemReserved: {cpu: "-1"}
authorization: {mode: RBAC}
tlsCertFile: /etc/cert.pem
cgroupDriver: cgroupv3
maxPods: -1
syncFrequency: -1s
enforceNodeAllocatable: [pods, everything]
containerRuntimeEndpoint: tcp://1.2.3.4:5
imageGCHighThresholdPercent: 101
imageGCLowThresholdPercent: -1
imageMinimumGCAge: -1s
imageMaximumGCAge: -1h
`), "bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, field := range []string{"readOnlyPort", "tlsMinVersion: \"VersionTLS11\"", "cpuManagerPolicy", "reservedSystemCPUs", "kubeReserved.memory",
		"systemReserved.cpu", "authorization.mode", "tlsCertFile", "cgroupDriver", "maxPods", "syncFrequency", "enforceNodeAllocatable[1]",
		"containerRuntimeEndpoint", "imageGCHighThresholdPercent: 101", "imageGCLowThresholdPercent: -1", "imageMinimumGCAge", "imageMaximumGCAge",
		"bad.yaml"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("the error does not name %s:\n%v", field, err)
		}
	}
}

// The kubelet's rules between the image garbage collection fields.
func TestValidateImageGC(t *testing.T) {
	for in, want := range map[string]string{
		"imageGCHighThresholdPercent: 80\nimageGCLowThresholdPercent: 80\n": "imageGCLowThresholdPercent: 80 must be less than imageGCHighThresholdPercent 80",
		"imageMinimumGCAge: 1h\nimageMaximumGCAge: 1h\n":                    "imageMaximumGCAge: 1h0m0s must be greater than imageMinimumGCAge 1h0m0s",
		"imageGCHighThresholdPercent: 100\nimageGCLowThresholdPercent: 0\n": "",
	} {
		c, err := kubeletconfig.Parse([]byte("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"+in), "k.yaml")
		if err != nil {
			t.Fatal(err)
		}
		err = c.Validate()
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

func TestLoadAndDefault(t *testing.T) {
	if err := kubeletconfig.Default().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	p := filepath.Join(t.TempDir(), "k.json")
	if err := os.WriteFile(p, []byte(`{"apiVersion":"kubelet.config.k8s.io/v1beta1","kind":"KubeletConfiguration","maxPods":7}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := kubeletconfig.Load(p)
	if err != nil || c.MaxPods != 7 || c.Source != p {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := kubeletconfig.Load(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: %v", err)
	}
}
