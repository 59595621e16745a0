package cpumanager_test

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/cpuset"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/cpumanager"
	"github.com/nodekit/nodekit/runtimetest"
)

// A Manager over a simulated runtime on four CPUs, CPU 0 reserved. A
// shared container runs on every CPU; a Guaranteed pod asking for two is
// admitted and takes them out of the shared pool; the reconcile shrinks
// the shared container to what is left.
func ExampleManager() {
	topo, _ := cpumanager.NewTopology(cpumanager.TopologyDescription{Sockets: 1, NUMANodesPerSocket: 1, CoresPerNUMANode: 4, ThreadsPerCore: 1})
	policy, _ := cpumanager.NewStaticPolicy(cpumanager.StaticPolicyConfig{Topology: topo, ReservedCPUs: cpuset.New(0)})
	alloc, _ := cpumanager.NewAllocator(cpumanager.AllocatorConfig{Policy: policy}) // in memory
	rt, _ := runtimetest.New(runtimetest.Config{Images: []string{"busybox"}})
	db := guaranteed("db", "2")
	var active []*v1.Pod
	m, err := cpumanager.NewManager(cpumanager.ManagerConfig{Allocator: alloc, Runtime: rt,
		Pods: cpumanager.ActivePodsFunc(func() []*v1.Pod { return active })})
	if err != nil {
		panic(err)
	}

	// A container of a BestEffort pod, created with the shared pool.
	ctx := context.Background()
	sb := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "uid-web"}}
	sbID, _ := rt.RunPodSandbox(ctx, sb, "")
	web := &v1.Pod{}
	web.Name, web.Namespace, web.UID = "web", "default", "uid-web"
	web.Spec.Containers = []v1.Container{{Name: "app"}}
	cpus, _ := m.ContainerCPUs(web, &web.Spec.Containers[0])
	id, _ := rt.CreateContainer(ctx, sbID, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app"}, Image: &runtimeapi.ImageSpec{Image: "busybox"},
		Labels: map[string]string{core.LabelPodUID: "uid-web", core.LabelContainerName: "app"},
		Linux:  &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{CpusetCpus: cpus}},
	}, sb)
	_ = rt.StartContainer(ctx, id)
	fmt.Println("web created on:", cpus)

	active = []*v1.Pod{web, db}
	r := m.Admit(cpumanager.AdmitAttributes{Pod: db})
	cpus, exclusive := m.ContainerCPUs(db, &db.Spec.Containers[0])
	fmt.Println("db admitted:", r.Admit, "cpus:", cpus, "exclusive:", exclusive)

	res, _ := m.Reconcile(ctx) // Run does this when Admit wakes it
	st, _ := rt.ContainerStatus(ctx, id, false)
	fmt.Println("updated:", res.Updated, "web now on:", st.GetStatus().GetResources().GetLinux().GetCpusetCpus())

	r = m.Admit(cpumanager.AdmitAttributes{Pod: guaranteed("cache", "2")})
	fmt.Println("cache admitted:", r.Admit, r.Reason)
	fmt.Println(r.Message)
	// Output:
	// web created on: 0-3
	// db admitted: true cpus: 1-2 exclusive: true
	// updated: 1 web now on: 0,3
	// cache admitted: false UnexpectedAdmissionError
	// Allocate failed due to not enough cpus available to satisfy request: requested=2, available=1, which is unexpected
}
