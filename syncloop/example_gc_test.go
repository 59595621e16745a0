package syncloop_test

import (
	"context"
	"fmt"
	"os"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
	"github.com/nodekit/nodekit/runtimetest"
	"github.com/nodekit/nodekit/syncloop"
)

// exampleSources answers GCPodState for the examples: the pods the
// sources have are alive, every other pod is gone.
type exampleSources map[types.UID]bool

func (s exampleSources) ShouldPodContentBeRemoved(uid types.UID) bool { return !s[uid] }
func (s exampleSources) ShouldPodRuntimeBeRemoved(uid types.UID) bool { return !s[uid] }

// The plan for a node where web's app crashed three times and the pod
// "old" was deleted: web keeps its newest dead app, old loses everything.
func ExamplePlanGC() {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	container := func(id, pod, name string, state runtimeapi.ContainerState, sec int) *runtimeapi.Container {
		return &runtimeapi.Container{
			Id: id, PodSandboxId: "sandbox-" + pod, State: state,
			Metadata:  &runtimeapi.ContainerMetadata{Name: name},
			CreatedAt: t0.Add(time.Duration(sec) * time.Second).UnixNano(),
			Labels: map[string]string{
				core.LabelPodUID: pod, core.LabelPodName: pod, core.LabelPodNamespace: "shop", core.LabelContainerName: name,
			},
		}
	}
	exited, running := runtimeapi.ContainerState_CONTAINER_EXITED, runtimeapi.ContainerState_CONTAINER_RUNNING
	plan := syncloop.PlanGC(syncloop.GCInput{
		Sandboxes: []*runtimeapi.PodSandbox{
			{Id: "sandbox-web", State: runtimeapi.PodSandboxState_SANDBOX_READY, Metadata: &runtimeapi.PodSandboxMetadata{Uid: "web"}},
			{Id: "sandbox-old", State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY, Metadata: &runtimeapi.PodSandboxMetadata{Uid: "old"}},
		},
		Containers: []*runtimeapi.Container{
			container("web-1", "web", "app", exited, 1),
			container("web-2", "web", "app", exited, 2),
			container("web-3", "web", "app", exited, 3),
			container("web-4", "web", "app", running, 4),
			container("old-1", "old", "app", exited, 1),
		},
		PodLogDirs:      []string{"shop_web_web", "shop_old_old"},
		Policy:          syncloop.DefaultGCPolicy(),
		Pods:            exampleSources{"web": true},
		AllSourcesReady: true,
		Now:             t0.Add(time.Minute),
	})
	for _, c := range plan.Containers {
		fmt.Println("container", c.ID, c.Reason)
	}
	for _, s := range plan.Sandboxes {
		fmt.Println("sandbox", s.ID, s.Reason)
	}
	for _, d := range plan.PodLogDirs {
		fmt.Println("logs", d.Name, d.Reason)
	}
	// Output:
	// container old-1 PodDeleted
	// container web-1 MaxPerPodContainer
	// container web-2 MaxPerPodContainer
	// sandbox sandbox-old PodDeleted
	// logs shop_old_old PodDeleted
}

// A ContainerGC over a runtime, collecting after a crash loop: of four
// attempts, the one running and the newest dead one stay.
func ExampleContainerGC() {
	ctx := context.Background()
	clk := testingclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	rt, err := runtimetest.New(runtimetest.Config{Clock: clk, Images: []string{"busybox"}})
	if err != nil {
		panic(err)
	}
	logs, err := os.MkdirTemp("", "pods") // the pod logs root; /var/log/pods on a node
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(logs)
	tr, err := crispec.New(crispec.Config{PodLogsRoot: logs})
	if err != nil {
		panic(err)
	}
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "8d1c0f2e"},
		Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "app", Image: "busybox"}}},
	}
	sbCfg, _ := tr.SandboxConfig(pod, 0, crispec.SandboxOptions{})
	sbID, _ := rt.RunPodSandbox(ctx, sbCfg, "")
	for attempt := range 4 {
		cfg, _ := tr.ContainerConfig(pod, &pod.Spec.Containers[0], crispec.ContainerOptions{RestartCount: attempt})
		id, _ := rt.CreateContainer(ctx, sbID, cfg, sbCfg)
		_ = rt.StartContainer(ctx, id)
		if attempt < 3 {
			_ = rt.ExitContainer(id, runtimetest.Exit{Code: 1})
		}
		clk.Step(10 * time.Second)
	}

	gc, err := syncloop.NewContainerGC(syncloop.ContainerGCConfig{
		Runtime:     rt,
		Pods:        exampleSources{pod.UID: true},
		PodLogsRoot: logs,
		Clock:       clk,
		// Policy nil: the kubelet's default, one dead instance per container.
	})
	if err != nil {
		panic(err)
	}
	plan, err := gc.GarbageCollect(ctx, true, false)
	if err != nil {
		panic(err)
	}
	fmt.Println("removed:", len(plan.Containers), "containers")
	left, _ := rt.ListContainers(ctx, nil)
	for _, c := range left {
		fmt.Println("left: attempt", c.GetMetadata().GetAttempt(), c.GetState())
	}
	// Output:
	// removed: 2 containers
	// left: attempt 2 CONTAINER_EXITED
	// left: attempt 3 CONTAINER_RUNNING
}

// After a restart, what runs of pods no source has is rebuilt for the pod
// workers to terminate, with the kubelet's 1 s grace period.
func ExampleOrphanPods() {
	sandboxes := []*runtimeapi.PodSandbox{{
		Id:       "sandbox-1",
		State:    runtimeapi.PodSandboxState_SANDBOX_READY,
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "cart", Namespace: "shop", Uid: "4b7e"},
		Labels:   map[string]string{core.LabelPodUID: "4b7e", core.LabelPodName: "cart", core.LabelPodNamespace: "shop"},
	}}
	containers := []*runtimeapi.Container{{
		Id:           "c-1",
		PodSandboxId: "sandbox-1",
		State:        runtimeapi.ContainerState_CONTAINER_RUNNING,
		Metadata:     &runtimeapi.ContainerMetadata{Name: "app"},
		Labels: map[string]string{
			core.LabelPodUID: "4b7e", core.LabelPodName: "cart", core.LabelPodNamespace: "shop", core.LabelContainerName: "app",
		},
		Annotations: map[string]string{
			core.AnnotationPodTerminationGracePeriod: "60",
			core.AnnotationContainerPreStopHandler:   `{"sleep":{"seconds":5}}`,
		},
	}}
	wanted := func(uid types.UID) bool { return false } // no source has it any more

	one := int64(1)
	for _, pod := range syncloop.OrphanPods(sandboxes, containers, wanted) {
		u := syncloop.Update{Type: syncloop.UpdateKill, Pod: pod, KillGracePeriod: &one}
		c := pod.Spec.Containers[0]
		fmt.Printf("kill %s/%s (%s): container %s, preStop sleep %ds, grace period %ds\n",
			pod.Namespace, pod.Name, pod.UID, c.Name, c.Lifecycle.PreStop.Sleep.Seconds,
			syncloop.EffectiveGracePeriod(0, u.Pod, u.KillGracePeriod))
		// workers.Update(u)
	}
	// Output:
	// kill shop/cart (4b7e): container app, preStop sleep 5s, grace period 1s
}
