package cpumanager_test

import (
	"fmt"
	"os"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/cpumanager"
)

// guaranteed is a pod whose one container requests and is limited to cpu
// CPUs and 1Gi of memory: QoS class Guaranteed.
func guaranteed(uid, cpu string) *v1.Pod {
	rl := v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu), v1.ResourceMemory: resource.MustParse("1Gi")}
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: uid, Namespace: "default", UID: types.UID("uid-" + uid)},
		Spec: v1.PodSpec{Containers: []v1.Container{{
			Name: "app", Resources: v1.ResourceRequirements{Requests: rl, Limits: rl},
		}}},
	}
}

// Two exclusive CPUs on a dual-socket machine with two threads per core:
// the static policy hands out a whole core, from the socket the reserved
// CPU already uses, and takes it out of the shared pool.
func ExampleStaticPolicy() {
	// CPUs 0-11; socket 0 = 0,2,4,6,8,10; core c = {c, c+6}.
	topo, err := cpumanager.NewTopology(cpumanager.TopologyDescription{
		Sockets: 2, NUMANodesPerSocket: 1, CoresPerNUMANode: 3, ThreadsPerCore: 2, Interleaved: true,
	})
	if err != nil {
		panic(err)
	}
	policy, err := cpumanager.NewStaticPolicy(cpumanager.StaticPolicyConfig{Topology: topo, NumReservedCPUs: 1})
	if err != nil {
		panic(err)
	}
	var s cpumanager.State
	if err := policy.Start(&s); err != nil {
		panic(err)
	}
	pod := guaranteed("db", "2")
	cpus, err := policy.Allocate(&s, pod, &pod.Spec.Containers[0])
	if err != nil {
		panic(err)
	}
	fmt.Println("topology:", topo)
	fmt.Println("reserved:", policy.ReservedCPUs())
	fmt.Println("exclusive:", cpus)
	fmt.Println("shared pool:", s.DefaultCPUSet)
	// Output:
	// topology: 12 CPUs, 6 cores, 2 sockets, 2 NUMA nodes, 2 uncore caches
	// reserved: 0
	// exclusive: 2,8
	// shared pool: 0-1,3-7,9-11
}

// The Allocator keeps the kubelet's checkpoint: after a restart the pod
// keeps its CPUs, and a shared container runs on the pool.
func ExampleAllocator() {
	dir, err := os.MkdirTemp("", "cpumanager-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	topo, _ := cpumanager.NewTopology(cpumanager.TopologyDescription{
		Sockets: 1, NUMANodesPerSocket: 1, CoresPerNUMANode: 4, ThreadsPerCore: 2,
	})
	newAllocator := func() *cpumanager.Allocator {
		policy, err := cpumanager.NewStaticPolicy(cpumanager.StaticPolicyConfig{
			Topology: topo, NumReservedCPUs: 2,
			Options: map[string]string{cpumanager.FullPCPUsOnlyOption: "true"},
		})
		if err != nil {
			panic(err)
		}
		a, err := cpumanager.NewAllocator(cpumanager.AllocatorConfig{Policy: policy, StateDir: dir})
		if err != nil {
			panic(err)
		}
		return a
	}

	a := newAllocator()
	db := guaranteed("db", "4")
	cpus, _ := a.Allocate(db, &db.Spec.Containers[0])
	fmt.Println("db:", cpus)
	odd := guaranteed("odd", "3")
	_, err = a.Allocate(odd, &odd.Spec.Containers[0])
	fmt.Println("odd:", err)

	restarted := newAllocator()
	fmt.Println("db after restart:", restarted.ExclusiveCPUs("uid-db", "app"))
	fmt.Println("others run on:", restarted.CPUSet("uid-web", "app"))
	st := restarted.Stats()
	fmt.Println("exclusive CPUs:", st.ExclusiveCPUs, "assignable left:", st.SharedPoolCPUs)
	// Output:
	// db: 1-2,5-6
	// odd: SMT Alignment Error: requested 3 cpus not multiple cpus per core = 2
	// db after restart: 1-2,5-6
	// others run on: 0,3-4,7
	// exclusive CPUs: 4 assignable left: 2
}
