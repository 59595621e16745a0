//go:build linux

package eviction_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/nodekit/nodekit/eviction"
	"github.com/nodekit/nodekit/runtimetest"
)

// A StatsProvider measures the node and its pods for Decide. Here the
// node is a directory tree standing for /sys/fs/cgroup (cgroup v1, the
// cgroupfs driver) and /proc, and the runtime is runtimetest's; on a node
// the zero StatsConfig paths are the real ones.
func ExampleStatsProvider_Observe() {
	dir, err := os.MkdirTemp("", "nodekit-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	node := newFakeNode(dir)
	node.proc(8<<30, "0.10 0.20 0.30 3/412 5123", 4194304, 63704)
	node.memoryV1("/", 5<<30, 2<<30, unlimitedV1)             // the root cgroup
	node.memoryV1("/kubepods", 2<<30+512<<20, 512<<20, 7<<30) // node allocatable: 7Gi
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: "6c3f5c2e-1d0b-4a7e-9a57-0c6f1d2b9e41"},
		Spec: v1.PodSpec{
			Containers: []v1.Container{{Name: "app", Resources: v1.ResourceRequirements{
				Requests: v1.ResourceList{v1.ResourceMemory: resource.MustParse("100Mi")}}}},
			Volumes: []v1.Volume{
				{Name: "cache", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
				{Name: "token", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "t"}}},
			},
		},
	}
	podCgroup := "/kubepods/burstable/pod" + string(pod.UID) // a Burstable pod
	node.memoryV1(podCgroup, 300<<20, 20<<20, unlimitedV1)
	node.pidsV1(podCgroup, 12)

	ctx := context.Background()
	clk := testingclock.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	rt, err := runtimetest.New(runtimetest.Config{Clock: clk, Images: []string{"busybox"}})
	if err != nil {
		panic(err)
	}
	runContainer(ctx, rt, pod, "app", runtimetest.Usage{MemoryWorkingSetBytes: 250 << 20, WritableLayerBytes: 4 << 20})

	p, err := eviction.NewStatsProvider(eviction.StatsConfig{
		ActivePods: func() []*v1.Pod { return []*v1.Pod{pod} },
		Runtime:    rt,
		// Wired to volumemgr.Stats.PodVolumeStats in an agent.
		PodVolumes: func(types.UID) []eviction.VolumeStats {
			return []eviction.VolumeStats{{Name: "token", UsedBytes: 4 << 10}, {Name: "cache", UsedBytes: 64 << 20}}
		},
		RootDir:       node.RootDir,
		PodLogsDir:    node.Logs,
		CgroupMount:   node.Mount,
		CgroupVersion: 1,
		ProcDir:       node.Proc,
		Clock:         clk,
	})
	if err != nil {
		panic(err)
	}
	obs, err := p.Observe(ctx)
	if err != nil {
		panic(err)
	}
	policy, err := eviction.NewPolicy(eviction.Config{})
	if err != nil {
		panic(err)
	}
	d := eviction.Decide(eviction.State{}, clk.Now(), obs, policy)
	for _, s := range d.Signals {
		if s.Signal.Resource() == v1.ResourceMemory || s.Signal == eviction.SignalPIDAvailable {
			fmt.Println(s)
		}
	}
	fmt.Println("nodefs measured:", !obs.NodeFs.Time.IsZero())
	q := func(b uint64) string { return resource.NewQuantity(int64(b), resource.BinarySI).String() }
	ps := obs.Pods[0]
	fmt.Printf("pod %s: working set %s, %d tasks, ephemeral storage %s\n",
		ps.Pod.Name, q(ps.MemoryWorkingSetBytes), ps.ProcessCount, q(ps.EphemeralStorageBytes))
	for _, c := range ps.Containers {
		fmt.Printf("container %s: working set %s, writable layer %s\n", c.Name, q(c.MemoryWorkingSetBytes), q(c.RootfsBytes))
	}
	for _, v := range ps.Volumes {
		fmt.Printf("volume %s: %s\n", v.Name, q(v.UsedBytes))
	}
	// Output:
	// memory.available: 5Gi of 8Gi
	// allocatableMemory.available: 5Gi of 7Gi
	// pid.available: 63292 of 63704
	// nodefs measured: true
	// pod web: working set 280Mi, 12 tasks, ephemeral storage 68Mi
	// container app: working set 250Mi, writable layer 4Mi
	// volume cache: 64Mi
	// volume token: 4Ki
}

// A Notifier wakes the eviction loop when memory usage crosses the
// threshold an eviction threshold stands for. On cgroup v2 (here a
// directory tree standing for the unified hierarchy) it reads the usage
// every Interval on its clock.
func ExampleNotifier() {
	dir, err := os.MkdirTemp("", "nodekit-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	node := newFakeNode(dir)
	// kubepods: 900Mi in use, 76Mi of it inactive file pages.
	node.memoryV2("/kubepods", 900<<20, 700<<20, 200<<20, 76<<20, "1073741824")

	clk := testingclock.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	n, err := eviction.NewMemoryNotifier(eviction.NotifierConfig{
		Cgroup:  "/kubepods", // StatsProvider.AllocatableCgroup()
		Mount:   node.Mount,
		Version: 2,
		Clock:   clk,
	})
	if err != nil {
		panic(err)
	}
	// Every eviction round: from the round's Observations and the
	// allocatableMemory.available threshold.
	measured := eviction.MemoryStats{Time: clk.Now(), WorkingSetBytes: 824 << 20, AvailableBytes: 200 << 20}
	th, err := n.UpdateThreshold(measured, eviction.ThresholdValue{Quantity: resource.MustParse("100Mi")})
	if err != nil {
		panic(err)
	}
	fmt.Println("usage threshold:", resource.NewQuantity(int64(th), resource.BinarySI))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- n.Run(ctx) }()
	for !clk.HasWaiters() { // the first reading is made
		time.Sleep(time.Millisecond)
	}
	write(filepath.Join(node.Mount, "kubepods", "memory.current"), fmt.Sprint(1010<<20))
	clk.Step(eviction.DefaultNotifierInterval)
	<-n.C()
	fmt.Println("crossed")
	cancel()
	fmt.Println(<-done)
	// Output:
	// usage threshold: 1000Mi
	// crossed
	// context canceled
}
