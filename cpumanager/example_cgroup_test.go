package cpumanager_test

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodekit/nodekit/cpumanager"
)

// A pod's cgroup: where it goes, the cgroup parent the sandbox carries,
// and the values written to it.
func ExampleResourceConfigForPod() {
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: "0b7e6c1e-5f1a-4c7e-9d7b-2f3a4b5c6d7e"},
		Spec: v1.PodSpec{Containers: []v1.Container{{
			Name: "app",
			Resources: v1.ResourceRequirements{
				Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("250m"), v1.ResourceMemory: resource.MustParse("64Mi")},
				Limits:   v1.ResourceList{v1.ResourceCPU: resource.MustParse("500m"), v1.ResourceMemory: resource.MustParse("128Mi")},
			},
		}}},
	}
	fmt.Println(cpumanager.CgroupLayout{}.CgroupParent(pod))
	fmt.Println(cpumanager.CgroupLayout{Driver: cpumanager.SystemdDriver}.CgroupParent(pod))
	fmt.Println(cpumanager.ResourceConfigForPod(pod, cpumanager.PodResourceOptions{PidsLimit: 4096}))
	// Output:
	// /kubepods/burstable/pod0b7e6c1e-5f1a-4c7e-9d7b-2f3a4b5c6d7e
	// /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0b7e6c1e_5f1a_4c7e_9d7b_2f3a4b5c6d7e.slice
	// cpu.shares=256 cpu.quota=50000 cpu.period=100000 memory=134217728 pids=4096
}

// The cgroups above the pods: kubepods gets the node's allocatable
// resources, burstable shares for the Burstable pods' CPU requests.
func ExampleQOSResourcesForPods() {
	node := cpumanager.NodeAllocatable{
		Capacity:       v1.ResourceList{v1.ResourceCPU: resource.MustParse("4"), v1.ResourceMemory: resource.MustParse("8Gi")},
		SystemReserved: v1.ResourceList{v1.ResourceCPU: resource.MustParse("1"), v1.ResourceMemory: resource.MustParse("1Gi")},
	}
	burstable := func(cpu string) *v1.Pod {
		return &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{
			Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu)}},
		}}}}
	}
	qos := cpumanager.QOSResourcesForPods([]*v1.Pod{burstable("500m"), burstable("1")}, cpumanager.QOSOptions{})
	fmt.Println("kubepods:  ", node.Resources())
	fmt.Println("burstable: ", qos.Burstable)
	fmt.Println("besteffort:", qos.BestEffort)
	// Output:
	// kubepods:   cpu.shares=3072 memory=7516192768
	// burstable:  cpu.shares=1536
	// besteffort: cpu.shares=2
}
