package node_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/examples/node"
	"github.com/nodekit/nodekit/runtimetest"
)

// On the simulated runtime: of two pods that do not fit together on a
// node of 2 CPUs, the older runs and the other is rejected OutOfcpu and
// never reaches the runtime; the rejection is counted.
func TestAdmissionOnTheNode(t *testing.T) {
	reg := prometheus.NewRegistry()
	updates := make(chan core.PodUpdate, 1)
	twoCPUs := allocatable("2")
	rt, n := runSimNode(t, node.Config{Updates: updates, Registerer: reg, Logger: zaptest.NewLogger(t),
		Node: func() (*v1.Node, error) { return twoCPUs, nil }})
	ctx := context.Background()
	pod := func(name string, cpu string, created int64) *v1.Pod {
		return &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "e2e", UID: k8stypes.UID("uid-" + name), CreationTimestamp: metav1.Unix(created, 0)},
			Spec: v1.PodSpec{HostNetwork: true, TerminationGracePeriodSeconds: ptr.To[int64](1), Containers: []v1.Container{{
				Name: "app", Image: "busybox", Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu)}}}}},
		}
	}
	updates <- core.PodUpdate{Op: core.OpAdd, Pods: []*v1.Pod{pod("second", "1500m", 2), pod("first", "1", 1)}}
	deadline := time.Now().Add(10 * time.Second)
	for !n.Loop.IsPodTerminated("uid-second") || len(n.Loop.ActivePods()) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the second pod was not rejected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for {
		cs, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) == 1 {
			if got := cs[0].GetLabels()[core.LabelPodName]; got != "first" {
				t.Fatalf("running: %s, want first", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d containers running, want 1", len(cs))
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := `
# HELP kubelet_admission_rejections_total Cumulative number pod admission rejections by the Kubelet.
# TYPE kubelet_admission_rejections_total counter
kubelet_admission_rejections_total{reason="OutOfcpu"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "kubelet_admission_rejections_total"); err != nil {
		t.Error(err)
	}
	if st, _, ok := n.Statuses.Get("uid-second"); !ok || st.Phase != v1.PodFailed || st.Reason != "OutOfcpu" {
		t.Errorf("status of the rejected pod: %v %s %s", ok, st.Phase, st.Reason)
	}
	if s, ok := n.Workers.State("uid-second"); ok {
		t.Errorf("the rejected pod has a worker (%s)", s)
	}
}

// allocatable is a node with cpus CPUs, 4 GiB and room for 10 pods.
func allocatable(cpus string) *v1.Node {
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: v1.NodeStatus{Allocatable: v1.ResourceList{
		v1.ResourceCPU: resource.MustParse(cpus), v1.ResourceMemory: resource.MustParse("4Gi"), v1.ResourcePods: resource.MustParse("10")}}}
}

// runSimNode runs a Node on a simulated runtime with a busybox image (cfg's
// Runtime and PodLogsRoot are set) until the test ends.
func runSimNode(t *testing.T, cfg node.Config) (*runtimetest.Runtime, *node.Node) {
	t.Helper()
	rt, err := runtimetest.New(runtimetest.Config{Images: []string{"busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Runtime, cfg.PodLogsRoot = rt, t.TempDir()
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Error(err)
		}
	})
	return rt, n
}
