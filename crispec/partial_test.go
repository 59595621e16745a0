package crispec_test

import (
	"errors"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
)

// Partial and odd pods are answered, with configs or errors, never with a
// panic.
func TestPartialPodsDoNotPanic(t *testing.T) {
	tr := newTranslator(t, crispec.Config{})
	always := v1.ContainerRestartPolicyAlways
	meta := metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"}
	pods := []*v1.Pod{
		{},
		{ObjectMeta: meta},
		{ObjectMeta: meta, Spec: v1.PodSpec{SecurityContext: &v1.PodSecurityContext{}}},
		{ObjectMeta: meta, Spec: v1.PodSpec{Resources: &v1.ResourceRequirements{}}},
		{ObjectMeta: meta, Spec: v1.PodSpec{Resources: &v1.ResourceRequirements{Requests: rl("memory", "1Gi")}}},
		{ObjectMeta: meta, Spec: v1.PodSpec{InitContainers: []v1.Container{{Name: "s", RestartPolicy: &always, Resources: v1.ResourceRequirements{Requests: rl("memory", "1Gi")}}}}},
		{ObjectMeta: meta, Spec: v1.PodSpec{Overhead: v1.ResourceList{}, Containers: []v1.Container{{}}}},
		{ObjectMeta: meta, Spec: v1.PodSpec{HostUsers: ptr(false)}},
		{ObjectMeta: meta, Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c", Ports: []v1.ContainerPort{{}}, VolumeMounts: []v1.VolumeMount{{}}, EnvFrom: []v1.EnvFromSource{{}}, Env: []v1.EnvVar{{}, {ValueFrom: &v1.EnvVarSource{}}}}}}},
	}
	containers := []*v1.Container{
		{},
		{Name: "c"},
		{Name: "s", RestartPolicy: &always},
		{Name: "e", SecurityContext: &v1.SecurityContext{}, Lifecycle: &v1.Lifecycle{}},
		{Name: "r", Resources: v1.ResourceRequirements{Limits: rl("memory", "1Gi", "hugepages-1Gi", "2Gi", "hugepages-bogus", "1")}},
	}
	for i, pod := range pods {
		_, _ = tr.SandboxConfig(pod, 0, crispec.SandboxOptions{})
		_, _ = tr.HostsFile(pod, []string{"10.0.0.1"}, nil)
		for j, c := range append(containers, nil) {
			if _, err := tr.ContainerConfig(pod, c, crispec.ContainerOptions{}); err != nil {
				t.Logf("pod %d container %d: %v", i, j, err)
			}
			_, _ = tr.ContainerResources(pod, c, crispec.ResourceOptions{})
		}
		for j := range pod.Spec.Containers {
			_, _ = tr.ContainerConfig(pod, &pod.Spec.Containers[j], crispec.ContainerOptions{})
		}
	}
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  crispec.Config
		ok   bool
	}{
		{"zero value", crispec.Config{}, true},
		{"relative log root", crispec.Config{PodLogsRoot: "logs"}, false},
		{"relative seccomp root", crispec.Config{SeccompProfileRoot: "seccomp"}, false},
		{"period too short", crispec.Config{CPUCFSQuotaPeriod: 500 * time.Microsecond}, false},
		{"period too long", crispec.Config{CPUCFSQuotaPeriod: 2 * time.Second}, false},
		{"negative memory", crispec.Config{MemoryCapacity: -1}, false},
		{"throttling factor above 1", crispec.Config{MemoryThrottlingFactor: 1.5}, false},
		{"bad node IP", crispec.Config{NodeIPs: []string{"node-a"}}, false},
		{"bad page size", crispec.Config{HugePageSizes: []string{"2Mi"}}, false},
		{"good page sizes", crispec.Config{HugePageSizes: []string{"2MB", "1GB", "64KB"}}, true},
		{"relative masked path", crispec.Config{ExtraMaskedPaths: []string{"proc/x"}}, false},
		{"negative allocatable", crispec.Config{NodeAllocatable: rl("cpu", "-1")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := crispec.New(tc.cfg)
			if (err == nil) != tc.ok {
				t.Errorf("New: %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, core.ErrInvalid) {
				t.Errorf("New: %v does not match core.ErrInvalid", err)
			}
		})
	}
}
