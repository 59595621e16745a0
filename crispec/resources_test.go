package crispec_test

import (
	"errors"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
)

func TestMilliCPUToShares(t *testing.T) {
	for _, tc := range []struct{ milli, want int64 }{
		{0, 2}, {1, 2}, {2, 2}, {3, 3}, {10, 10}, {100, 102}, {250, 256}, {333, 340},
		{1000, 1024}, {1500, 1536}, {256000, 262144}, {300000, 262144}, {-5, 2},
	} {
		if got := crispec.MilliCPUToShares(tc.milli); got != tc.want {
			t.Errorf("MilliCPUToShares(%d) = %d, want %d", tc.milli, got, tc.want)
		}
	}
}

func TestMilliCPUToQuota(t *testing.T) {
	for _, tc := range []struct{ milli, period, want int64 }{
		{0, 100000, 0},
		{1, 100000, 1000},
		{10, 100000, 1000},
		{11, 100000, 1100},
		{250, 100000, 25000},
		{1000, 100000, 100000},
		{1500, 50000, 75000},
		{333, 100000, 33300},
		{5, 1000, 1000},
	} {
		if got := crispec.MilliCPUToQuota(tc.milli, tc.period); got != tc.want {
			t.Errorf("MilliCPUToQuota(%d, %d) = %d, want %d", tc.milli, tc.period, got, tc.want)
		}
	}
}

func onePod(containers ...v1.Container) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metaFor("p"),
		Spec:       v1.PodSpec{Containers: containers},
	}
}

func TestContainerResources(t *testing.T) {
	const gi = int64(1) << 30
	base := crispec.Config{MemoryCapacity: 8 * gi}
	withCfg := func(f func(*crispec.Config)) crispec.Config {
		c := base
		f(&c)
		return c
	}
	limited := v1.Container{Name: "c", Resources: v1.ResourceRequirements{
		Requests: rl("cpu", "250m", "memory", "1Gi"),
		Limits:   rl("cpu", "500m", "memory", "2Gi"),
	}}
	for _, tc := range []struct {
		name string
		cfg  crispec.Config
		pod  *v1.Pod
		opts crispec.ResourceOptions
		want *runtimeapi.LinuxContainerResources
	}{{
		name: "no resources: minimum shares, no quota, no memory limit, best effort",
		cfg:  base,
		pod:  onePod(v1.Container{Name: "c"}),
		want: &runtimeapi.LinuxContainerResources{CpuShares: 2, CpuPeriod: 100000, OomScoreAdj: 1000},
	}, {
		name: "requests and limits",
		cfg:  base,
		pod:  onePod(limited),
		want: &runtimeapi.LinuxContainerResources{
			CpuShares: 256, CpuPeriod: 100000, CpuQuota: 50000,
			MemoryLimitInBytes: 2 * gi, OomScoreAdj: 875,
		},
	}, {
		name: "only limits: shares follow the CPU limit",
		cfg:  base,
		pod: onePod(v1.Container{Name: "c", Resources: v1.ResourceRequirements{
			Limits: rl("cpu", "500m", "memory", "256Mi"),
		}}),
		want: &runtimeapi.LinuxContainerResources{
			CpuShares: 512, CpuPeriod: 100000, CpuQuota: 50000,
			MemoryLimitInBytes: 256 << 20, OomScoreAdj: 999,
		},
	}, {
		name: "tiny CPU: minimum shares and minimum quota",
		cfg:  base,
		pod: onePod(v1.Container{Name: "c", Resources: v1.ResourceRequirements{
			Requests: rl("cpu", "1m"), Limits: rl("cpu", "1m"),
		}}),
		want: &runtimeapi.LinuxContainerResources{CpuShares: 2, CpuPeriod: 100000, CpuQuota: 1000, OomScoreAdj: 999},
	}, {
		name: "guaranteed",
		cfg:  base,
		pod: onePod(v1.Container{Name: "c", Resources: v1.ResourceRequirements{
			Requests: rl("cpu", "2", "memory", "1Gi"), Limits: rl("cpu", "2", "memory", "1Gi"),
		}}),
		want: &runtimeapi.LinuxContainerResources{
			CpuShares: 2048, CpuPeriod: 100000, CpuQuota: 200000,
			MemoryLimitInBytes: gi, OomScoreAdj: -997,
		},
	}, {
		name: "exclusive CPUs lift the quota",
		cfg:  base,
		pod: onePod(v1.Container{Name: "c", Resources: v1.ResourceRequirements{
			Requests: rl("cpu", "2", "memory", "1Gi"), Limits: rl("cpu", "2", "memory", "1Gi"),
		}}),
		opts: crispec.ResourceOptions{ExclusiveCPUs: true},
		want: &runtimeapi.LinuxContainerResources{
			CpuShares: 2048, CpuPeriod: 100000, CpuQuota: -1,
			MemoryLimitInBytes: gi, OomScoreAdj: -997,
		},
	}, {
		name: "CFS quota disabled",
		cfg:  withCfg(func(c *crispec.Config) { c.DisableCPUCFSQuota = true }),
		pod:  onePod(limited),
		want: &runtimeapi.LinuxContainerResources{CpuShares: 256, MemoryLimitInBytes: 2 * gi, OomScoreAdj: 875},
	}, {
		name: "custom CFS period",
		cfg:  withCfg(func(c *crispec.Config) { c.CPUCFSQuotaPeriod = 50 * time.Millisecond }),
		pod:  onePod(limited),
		want: &runtimeapi.LinuxContainerResources{
			CpuShares: 256, CpuPeriod: 50000, CpuQuota: 25000,
			MemoryLimitInBytes: 2 * gi, OomScoreAdj: 875,
		},
	}, {
		name: "cgroup v2",
		cfg:  withCfg(func(c *crispec.Config) { c.CgroupV2 = true }),
		pod:  onePod(limited),
		want: &runtimeapi.LinuxContainerResources{
			CpuShares: 256, CpuPeriod: 100000, CpuQuota: 50000,
			MemoryLimitInBytes: 2 * gi, OomScoreAdj: 875,
			Unified: map[string]string{"memory.oom.group": "1", "memory.min": "0", "memory.low": "0"},
		},
	}, {
		name: "cgroup v2 without memory QoS",
		cfg:  withCfg(func(c *crispec.Config) { c.CgroupV2, c.DisableMemoryQoS = true, true }),
		pod:  onePod(limited),
		want: &runtimeapi.LinuxContainerResources{
			CpuShares: 256, CpuPeriod: 100000, CpuQuota: 50000,
			MemoryLimitInBytes: 2 * gi, OomScoreAdj: 875,
			Unified: map[string]string{"memory.oom.group": "1", "memory.high": "max"},
		},
	}, {
		name: "cgroup v2 memory QoS: tiered reservation and throttling",
		cfg: withCfg(func(c *crispec.Config) {
			c.CgroupV2, c.TieredMemoryReservation, c.MemoryThrottlingFactor = true, true, 0.5
		}),
		pod: onePod(limited),
		want: &runtimeapi.LinuxContainerResources{
			CpuShares: 256, CpuPeriod: 100000, CpuQuota: 50000,
			MemoryLimitInBytes: 2 * gi, OomScoreAdj: 875,
			// 1Gi + 0.5 × (2Gi − 1Gi)
			Unified: map[string]string{"memory.oom.group": "1", "memory.low": "1073741824", "memory.high": "1610612736"},
		},
	}, {
		name: "cgroup v2, single-process OOM kill",
		cfg:  withCfg(func(c *crispec.Config) { c.CgroupV2, c.SingleProcessOOMKill = true, true }),
		pod:  onePod(limited),
		want: &runtimeapi.LinuxContainerResources{
			CpuShares: 256, CpuPeriod: 100000, CpuQuota: 50000,
			MemoryLimitInBytes: 2 * gi, OomScoreAdj: 875,
			Unified: map[string]string{"memory.min": "0", "memory.low": "0"},
		},
	}, {
		name: "cgroup v1 swap controller: no swap beyond the limit",
		cfg:  withCfg(func(c *crispec.Config) { c.SwapController = true }),
		pod:  onePod(limited),
		want: &runtimeapi.LinuxContainerResources{
			CpuShares: 256, CpuPeriod: 100000, CpuQuota: 50000,
			MemoryLimitInBytes: 2 * gi, MemorySwapLimitInBytes: 2 * gi, OomScoreAdj: 875,
		},
	}, {
		name: "cgroup v2 swap controller: no swap",
		cfg:  withCfg(func(c *crispec.Config) { c.CgroupV2, c.SwapController = true, true }),
		pod:  onePod(limited),
		want: &runtimeapi.LinuxContainerResources{
			CpuShares: 256, CpuPeriod: 100000, CpuQuota: 50000,
			MemoryLimitInBytes: 2 * gi, OomScoreAdj: 875,
			Unified: map[string]string{"memory.oom.group": "1", "memory.swap.max": "0", "memory.min": "0", "memory.low": "0"},
		},
	}, {
		name: "limited swap: in proportion to the memory request",
		cfg: withCfg(func(c *crispec.Config) {
			c.CgroupV2, c.SwapController, c.LimitedSwap, c.SwapCapacity = true, true, true, 4*gi
		}),
		pod: onePod(limited),
		want: &runtimeapi.LinuxContainerResources{
			CpuShares: 256, CpuPeriod: 100000, CpuQuota: 50000,
			MemoryLimitInBytes: 2 * gi, OomScoreAdj: 875,
			Unified: map[string]string{"memory.oom.group": "1", "memory.swap.max": "536870912", "memory.min": "0", "memory.low": "0"},
		},
	}, {
		name: "huge pages: every node size gets a limit",
		cfg:  withCfg(func(c *crispec.Config) { c.HugePageSizes = []string{"2MB", "1GB"} }),
		pod: onePod(v1.Container{Name: "c", Resources: v1.ResourceRequirements{
			Requests: rl("memory", "1Gi", "hugepages-2Mi", "64Mi"),
			Limits:   rl("memory", "1Gi", "hugepages-2Mi", "64Mi"),
		}}),
		want: &runtimeapi.LinuxContainerResources{
			CpuShares: 2, CpuPeriod: 100000, MemoryLimitInBytes: gi, OomScoreAdj: 875,
			HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 64 << 20}, {PageSize: "1GB", Limit: 0}},
		},
	}, {
		name: "pod-level limits stand in for unset container limits",
		cfg:  base,
		pod: &v1.Pod{ObjectMeta: metaFor("p"), Spec: v1.PodSpec{
			Resources: &v1.ResourceRequirements{Requests: rl("cpu", "1", "memory", "2Gi"), Limits: rl("cpu", "2", "memory", "4Gi")},
			Containers: []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{
				Requests: rl("memory", "1Gi"), Limits: rl("memory", "3Gi"),
			}}},
		}},
		want: &runtimeapi.LinuxContainerResources{
			// No CPU request: it follows the (pod-level) limit.
			CpuShares: 2048, CpuPeriod: 100000, CpuQuota: 200000,
			// The pod's unassigned 1Gi request counts for its only container.
			MemoryLimitInBytes: 3 * gi, OomScoreAdj: 750,
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTranslator(t, tc.cfg)
			got, err := tr.ContainerResources(tc.pod, &tc.pod.Spec.Containers[0], tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			assertSameJSON(t, "resources", got, tc.want)
		})
	}
}

func TestContainerResourcesNeedsMemoryCapacityForBurstable(t *testing.T) {
	tr := newTranslator(t, crispec.Config{})
	pod := onePod(v1.Container{Name: "c", Resources: v1.ResourceRequirements{Requests: rl("memory", "1Gi")}})
	_, err := tr.ContainerResources(pod, &pod.Spec.Containers[0], crispec.ResourceOptions{})
	if !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("error %v, want core.ErrInvalid", err)
	}
	const want = `pod default/p container "c": the pod is Burstable and the node's memory capacity is unknown (Config.MemoryCapacity is not set)`
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	// Guaranteed and BestEffort pods do not need it.
	pod = onePod(v1.Container{Name: "c"})
	if _, err := tr.ContainerResources(pod, &pod.Spec.Containers[0], crispec.ResourceOptions{}); err != nil {
		t.Error(err)
	}
}

func TestOOMScoreAdj(t *testing.T) {
	const gi = int64(1) << 30
	tr := newTranslator(t, crispec.Config{MemoryCapacity: 8 * gi})
	req := func(name, mem string) v1.Container {
		return v1.Container{Name: name, Resources: v1.ResourceRequirements{Requests: rl("memory", mem)}}
	}
	always := v1.ContainerRestartPolicyAlways
	sidecar := req("sidecar", "10Mi")
	sidecar.RestartPolicy = &always
	bigSidecar := req("sidecar", "4Gi")
	bigSidecar.RestartPolicy = &always

	for _, tc := range []struct {
		name      string
		pod       *v1.Pod
		container string
		want      int64
	}{
		{"burstable 1Gi of 8Gi", onePod(req("c", "1Gi")), "c", 875},
		{"burstable requesting the whole node", onePod(req("c", "8Gi")), "c", 3},
		{"burstable requesting more than the node", onePod(req("c", "16Gi")), "c", 3},
		{"burstable with a tiny request", onePod(req("c", "1Mi")), "c", 999},
		{"burstable without a memory request", onePod(req("c", "1Gi"), v1.Container{Name: "d"}), "d", 999},
		{"QoS class from the status wins", func() *v1.Pod {
			p := onePod(req("c", "1Gi"))
			p.Status.QOSClass = v1.PodQOSGuaranteed
			return p
		}(), "c", -997},
		{"node-critical static pod", func() *v1.Pod {
			p := onePod(req("c", "1Gi"))
			p.Annotations = map[string]string{"kubernetes.io/config.source": "file"}
			p.Spec.PriorityClassName = "system-node-critical"
			return p
		}(), "c", -997},
		{"system-node-critical by priority", func() *v1.Pod {
			p := onePod(req("c", "1Gi"))
			p.Spec.Priority = ptr(int32(2000001000))
			p.Spec.PriorityClassName = "system-node-critical"
			return p
		}(), "c", -997},
		{"critical priority without the node-critical class", func() *v1.Pod {
			p := onePod(req("c", "1Gi"))
			p.Spec.Priority = ptr(int32(2000000000))
			return p
		}(), "c", 875},
		{"sidecar killed no later than the smallest regular container", func() *v1.Pod {
			p := onePod(req("a", "2Gi"), req("b", "1Gi"))
			p.Spec.InitContainers = []v1.Container{sidecar}
			return p
		}(), "sidecar", 875},
		{"sidecar larger than the regular containers keeps its own", func() *v1.Pod {
			p := onePod(req("a", "2Gi"))
			p.Spec.InitContainers = []v1.Container{bigSidecar}
			return p
		}(), "sidecar", 500},
		{"pod-level requests share the unassigned memory", &v1.Pod{ObjectMeta: metaFor("p"), Spec: v1.PodSpec{
			Resources:  &v1.ResourceRequirements{Requests: rl("memory", "4Gi")},
			Containers: []v1.Container{req("a", "1Gi"), req("b", "1Gi")},
		}}, "a", 750},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c *v1.Container
			for i := range tc.pod.Spec.InitContainers {
				if tc.pod.Spec.InitContainers[i].Name == tc.container {
					c = &tc.pod.Spec.InitContainers[i]
				}
			}
			for i := range tc.pod.Spec.Containers {
				if tc.pod.Spec.Containers[i].Name == tc.container {
					c = &tc.pod.Spec.Containers[i]
				}
			}
			got, err := tr.ContainerResources(tc.pod, c, crispec.ResourceOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.OomScoreAdj != tc.want {
				t.Errorf("oom_score_adj = %d, want %d", got.OomScoreAdj, tc.want)
			}
		})
	}
}
