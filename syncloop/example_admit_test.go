package syncloop_test

import (
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/syncloop"
)

// New pods are admitted one at a time, in creation order, next to the
// pods admitted before them; a rejected pod is failed, never started.
func ExampleAdmission() {
	node := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", Labels: map[string]string{"kubernetes.io/os": "linux"}},
		Status: v1.NodeStatus{Allocatable: v1.ResourceList{
			v1.ResourceCPU:    resource.MustParse("2"),
			v1.ResourceMemory: resource.MustParse("4Gi"),
			v1.ResourcePods:   resource.MustParse("110"),
		}},
	}
	fit, err := syncloop.NewNodeFit(syncloop.NodeFitConfig{
		Node: func() (*v1.Node, error) { return node, nil }, // an informer's lister in a real agent
		OS:   "linux",
	})
	if err != nil {
		panic(err)
	}
	admission, err := syncloop.NewAdmission(syncloop.AdmissionConfig{Handlers: []syncloop.AdmitHandler{fit}})
	if err != nil {
		panic(err)
	}
	// Another subsystem plugs in its own check, as the eviction manager
	// refuses new pods while the node is short of memory.
	memoryPressure := false
	admission.AddHandler(syncloop.AdmitFunc(func(a syncloop.AdmitAttributes) syncloop.AdmitResult {
		if memoryPressure {
			return syncloop.AdmitResult{Reason: "Evicted", Message: "The node had condition: [MemoryPressure]."}
		}
		return syncloop.AdmitResult{Admit: true}
	}))

	pod := func(name, cpu string, hostPort int32) *v1.Pod {
		return &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", UID: types.UID(name)},
			Spec: v1.PodSpec{Containers: []v1.Container{{
				Name:      "app",
				Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu)}},
				Ports:     []v1.ContainerPort{{ContainerPort: 8080, HostPort: hostPort}},
			}}},
		}
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var active []*v1.Pod
	admit := func(p *v1.Pod) {
		r := admission.Admit(syncloop.AdmitAttributes{Pod: p, OtherPods: active})
		if r.Admit {
			active = append(active, p)
			fmt.Printf("%s: admitted\n", p.Name)
			return
		}
		st := syncloop.RejectedStatus(p, r, now)
		fmt.Printf("%s: %s %s: %s\n", p.Name, st.Phase, st.Reason, st.Message)
	}
	admit(pod("web", "1", 80))
	admit(pod("batch", "500m", 0))
	admit(pod("report", "1", 0))
	admit(pod("web-2", "100m", 80))
	memoryPressure = true
	admit(pod("cache", "100m", 0))
	// Output:
	// web: admitted
	// batch: admitted
	// report: Failed OutOfcpu: Pod was rejected: Node didn't have enough resource: cpu, requested: 1000, used: 1500, capacity: 2000
	// web-2: Failed NodePorts: Pod was rejected: Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports
	// cache: Failed Evicted: Pod was rejected: The node had condition: [MemoryPressure].
}
