package crispec_test

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodekit/nodekit/crispec"
)

// The cgroup settings of a Burstable container on an 8Gi node.
func ExampleTranslator_ContainerResources() {
	tr, err := crispec.New(crispec.Config{MemoryCapacity: 8 << 30})
	if err != nil {
		panic(err)
	}
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "1f6c"},
		Spec: v1.PodSpec{Containers: []v1.Container{{
			Name: "app",
			Resources: v1.ResourceRequirements{
				Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("250m"), v1.ResourceMemory: resource.MustParse("1Gi")},
				Limits:   v1.ResourceList{v1.ResourceCPU: resource.MustParse("500m"), v1.ResourceMemory: resource.MustParse("2Gi")},
			},
		}}},
	}
	r, err := tr.ContainerResources(pod, &pod.Spec.Containers[0], crispec.ResourceOptions{})
	if err != nil {
		panic(err)
	}
	fmt.Println("cpu_shares:", r.CpuShares)
	fmt.Println("cpu_quota:", r.CpuQuota, "per", r.CpuPeriod, "µs")
	fmt.Println("memory_limit_in_bytes:", r.MemoryLimitInBytes)
	fmt.Println("oom_score_adj:", r.OomScoreAdj)
	// Output:
	// cpu_shares: 256
	// cpu_quota: 50000 per 100000 µs
	// memory_limit_in_bytes: 2147483648
	// oom_score_adj: 875
}

// A sandbox and one container of a pod: what the runtime is asked to create.
func ExampleTranslator_ContainerConfig() {
	tr, err := crispec.New(crispec.Config{})
	if err != nil {
		panic(err)
	}
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "1f6c"},
		Spec: v1.PodSpec{Containers: []v1.Container{{
			Name:  "app",
			Image: "nginx:1.27",
			Args:  []string{"--name=$(POD_NAME)", "--literal=$$(POD_NAME)"},
			Env: []v1.EnvVar{{Name: "POD_NAME", ValueFrom: &v1.EnvVarSource{
				FieldRef: &v1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"},
			}}},
		}}},
	}
	sb, err := tr.SandboxConfig(pod, 0, crispec.SandboxOptions{})
	if err != nil {
		panic(err)
	}
	c, err := tr.ContainerConfig(pod, &pod.Spec.Containers[0], crispec.ContainerOptions{RestartCount: 1})
	if err != nil {
		panic(err)
	}
	fmt.Println("sandbox:", sb.Metadata.Name, sb.Hostname, sb.LogDirectory)
	fmt.Println("container:", c.Metadata.Name, "attempt", c.Metadata.Attempt, "log", c.LogPath)
	fmt.Println("args:", c.Args)
	fmt.Println("hash:", c.Annotations["io.kubernetes.container.hash"])
	// Output:
	// sandbox: web web /var/log/pods/shop_web_1f6c
	// container: app attempt 1 log app/1.log
	// args: [--name=web --literal=$(POD_NAME)]
	// hash: a763184
}

func ExampleMilliCPUToShares() {
	for _, milli := range []int64{0, 1, 100, 1000, 300000} {
		fmt.Println(milli, "→", crispec.MilliCPUToShares(milli))
	}
	// Output:
	// 0 → 2
	// 1 → 2
	// 100 → 102
	// 1000 → 1024
	// 300000 → 262144
}

func ExampleMilliCPUToQuota() {
	fmt.Println(crispec.MilliCPUToQuota(500, crispec.QuotaPeriod))
	fmt.Println(crispec.MilliCPUToQuota(1, crispec.QuotaPeriod)) // never below 1ms
	fmt.Println(crispec.MilliCPUToQuota(0, crispec.QuotaPeriod)) // no limit
	// Output:
	// 50000
	// 1000
	// 0
}

func ExampleContainerLogPath() {
	dir := crispec.PodLogDir(crispec.DefaultPodLogsRoot, "shop", "web-0", "1f6c")
	fmt.Println(dir)
	fmt.Println(crispec.ContainerLogPath("app", 3))
	// Output:
	// /var/log/pods/shop_web-0_1f6c
	// app/3.log
}
