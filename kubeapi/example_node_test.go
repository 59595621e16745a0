package kubeapi_test

import (
	"context"
	"errors"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/nodekit/nodekit/kubeapi"
	"github.com/nodekit/nodekit/runtimetest"
)

// A node agent registers its Node and keeps its status. The sources here
// are stand-ins: a real agent passes its CRI runtime, its PLEG's Healthy,
// its eviction manager and a machine probe, and calls Run in place of
// UpdateStatus.
func ExampleNodeStatus() {
	ctx := context.Background()
	cs := fake.NewClientset() // a kubernetes.Interface of the node's credentials
	rt, err := runtimetest.New(runtimetest.Config{RuntimeName: "containerd", Version: "2.1.0"})
	if err != nil {
		panic(err)
	}
	var plegErr error // what the PLEG's Healthy says
	events := &kubeapi.MemoryRecorder{}
	ns, err := kubeapi.NewNodeStatus(kubeapi.NodeStatusConfig{
		Client:   cs,
		NodeName: "n1",
		Taints:   []v1.Taint{{Key: "example.com/dedicated", Value: "db", Effect: v1.TaintEffectNoSchedule}},
		Machine: kubeapi.MachineInfoFunc(func(context.Context) (kubeapi.MachineInfo, error) {
			return kubeapi.MachineInfo{Capacity: v1.ResourceList{
				v1.ResourceCPU:              resource.MustParse("4"),
				v1.ResourceMemory:           resource.MustParse("8Gi"),
				v1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
			}, BootID: "b1"}, nil
		}),
		Runtime:        rt,
		HealthChecks:   []kubeapi.HealthCheck{{Name: "PLEG", Check: func() (bool, error) { return plegErr == nil, plegErr }}},
		SystemReserved: v1.ResourceList{v1.ResourceCPU: resource.MustParse("500m"), v1.ResourceMemory: resource.MustParse("512Mi")},
		EvictionHard:   map[string]string{"memory.available": "512Mi"},
		Recorder:       events,
	})
	if err != nil {
		panic(err)
	}
	if err := ns.Register(ctx); err != nil {
		panic(err)
	}
	show := func() {
		node, err := cs.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		if err != nil {
			panic(err)
		}
		for _, c := range node.Status.Conditions {
			fmt.Printf("  %s=%s %s: %s\n", c.Type, c.Status, c.Reason, c.Message)
		}
	}
	node, _ := cs.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	fmt.Println("allocatable cpu", node.Status.Allocatable.Cpu(), "memory", node.Status.Allocatable.Memory())
	fmt.Println("taint", node.Spec.Taints[0].ToString())
	show()

	plegErr = errors.New("pleg was last seen active 3m10s ago; threshold is 3m0s")
	if err := ns.UpdateStatus(ctx); err != nil {
		panic(err)
	}
	fmt.Println("PLEG unhealthy:")
	show()
	fmt.Println("events:")
	for _, e := range events.Events() {
		fmt.Println(" ", e)
	}
	// Output:
	// allocatable cpu 3500m memory 7Gi
	// taint example.com/dedicated=db:NoSchedule
	//   MemoryPressure=False KubeletHasSufficientMemory: kubelet has sufficient memory available
	//   DiskPressure=False KubeletHasNoDiskPressure: kubelet has no disk pressure
	//   PIDPressure=False KubeletHasSufficientPID: kubelet has sufficient PID available
	//   Ready=True KubeletReady: kubelet is posting ready status
	// PLEG unhealthy:
	//   MemoryPressure=False KubeletHasSufficientMemory: kubelet has sufficient memory available
	//   DiskPressure=False KubeletHasNoDiskPressure: kubelet has no disk pressure
	//   PIDPressure=False KubeletHasSufficientPID: kubelet has sufficient PID available
	//   Ready=False KubeletNotReady: PLEG is not healthy: pleg was last seen active 3m10s ago; threshold is 3m0s
	// events:
	//   Normal NodeHasSufficientMemory Node n1 status is now: NodeHasSufficientMemory
	//   Normal NodeHasNoDiskPressure Node n1 status is now: NodeHasNoDiskPressure
	//   Normal NodeHasSufficientPID Node n1 status is now: NodeHasSufficientPID
	//   Normal NodeNotReady Node n1 status is now: NodeNotReady
}

// Subsystems record events through a Recorder of their own declaration;
// tests give them a MemoryRecorder, a node agent an EventRecorder.
func ExampleMemoryRecorder() {
	var rec kubeapi.MemoryRecorder
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}
	rec.Eventf(pod, v1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s", "app", pod.Name)
	for _, e := range rec.Events() {
		fmt.Println(e)
	}
	// Output:
	// Warning BackOff Back-off restarting failed container app in pod web
}
