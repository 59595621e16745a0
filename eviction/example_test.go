package eviction_test

import (
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodekit/nodekit/eviction"
)

const mi = 1 << 20

func pod(name, memoryRequest string) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}}
	c := v1.Container{Name: name}
	if memoryRequest != "" {
		c.Resources.Requests = v1.ResourceList{v1.ResourceMemory: resource.MustParse(memoryRequest)}
	}
	p.Spec.Containers = []v1.Container{c}
	return p
}

// A dry run: Decide is a pure function, so asking it what it would do
// and acting on nothing is all a dry run takes.
func ExampleDecide() {
	policy, err := eviction.NewPolicy(eviction.Config{
		EvictionHard:           map[string]string{"memory.available": "100Mi"},
		EnforceNodeAllocatable: []string{},
	})
	if err != nil {
		panic(err)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	app, db := pod("app", "100Mi"), pod("db", "1Gi")
	obs := eviction.Observations{
		Memory: eviction.MemoryStats{Time: now, AvailableBytes: 50 * mi, WorkingSetBytes: 4046 * mi},
		Pods: []eviction.PodStats{
			{Pod: db, Time: now, MemoryWorkingSetBytes: 800 * mi,
				Containers: []eviction.ContainerStats{{Name: "db", MemoryWorkingSetBytes: 800 * mi}}},
			{Pod: app, Time: now, MemoryWorkingSetBytes: 300 * mi,
				Containers: []eviction.ContainerStats{{Name: "app", MemoryWorkingSetBytes: 300 * mi}}},
		},
	}

	var state eviction.State // a node's first round
	d := eviction.Decide(state, now, obs, policy)
	state = d.State // for the next round

	fmt.Println("conditions:", d.Conditions)
	fmt.Println("starved:", d.Starved.Resource, "by", d.Starved.Threshold)
	for _, rp := range d.Starved.Ranking {
		fmt.Printf("rank: %s exceeds request: %t\n", rp.Pod.Name, rp.ExceedsRequest)
	}
	v := d.Starved.Victim
	fmt.Printf("evict %s, grace %ds, reason %s\n", v.Pod.Name, v.GracePeriodSeconds, v.Reason)
	fmt.Printf("message: %q\n", v.Message)
	fmt.Println("new BestEffort pods:", eviction.AdmitPod(pod("new", ""), d.Conditions).Message)
	// Output:
	// conditions: [MemoryPressure]
	// starved: memory by memory.available<100Mi
	// rank: app exceeds request: true
	// rank: db exceeds request: false
	// evict app, grace 1s, reason Evicted
	// message: "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. Container app was using 300Mi, request is 100Mi, has larger consumption of memory. "
	// new BestEffort pods: The node had condition: [MemoryPressure].
}

// The kubelet's defaults, and what a configuration with one hard threshold
// makes of them.
func ExampleNewPolicy() {
	show := func(cfg eviction.Config) {
		p, err := eviction.NewPolicy(cfg)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(p.Thresholds())
	}
	show(eviction.Config{})
	show(eviction.Config{EvictionHard: map[string]string{"memory.available": "500Mi"}})
	show(eviction.Config{EvictionHard: map[string]string{"memory.available": "500Mi"}, MergeDefaultEvictionSettings: true})
	show(eviction.Config{EvictionSoft: map[string]string{"memory.available": "1Gi"}})
	// Output:
	// [memory.available<100Mi allocatableMemory.available<100Mi nodefs.available<10% nodefs.inodesFree<5% imagefs.available<15% imagefs.inodesFree<5%]
	// [memory.available<500Mi allocatableMemory.available<500Mi]
	// [memory.available<500Mi allocatableMemory.available<500Mi nodefs.available<10% nodefs.inodesFree<5% imagefs.available<15% imagefs.inodesFree<5%]
	// eviction: evictionSoft["memory.available"] = "1Gi": soft eviction threshold needs a grace period in evictionSoftGracePeriod: invalid
}
