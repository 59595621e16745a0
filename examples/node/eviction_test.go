package node_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/eviction"
	"github.com/nodekit/nodekit/examples/node"
	"github.com/nodekit/nodekit/syncloop"
)

// pressureObserver reports the node's memory as the test sets it and each
// active pod's usage from a table.
type pressureObserver struct {
	mu        sync.Mutex
	n         *node.Node
	available uint64
	usage     map[string]uint64
}

func (o *pressureObserver) Observe(context.Context) (eviction.Observations, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Now()
	if o.n == nil {
		return eviction.Observations{}, nil
	}
	obs := eviction.Observations{Memory: eviction.MemoryStats{Time: now, AvailableBytes: o.available, WorkingSetBytes: 4<<30 - o.available}}
	for _, p := range o.n.Loop.ActivePods() {
		if s, ok := o.n.Workers.State(p.UID); ok && s == syncloop.Terminated {
			continue
		}
		obs.Pods = append(obs.Pods, eviction.PodStats{Pod: p, Time: now, MemoryWorkingSetBytes: o.usage[p.Name],
			Containers: []eviction.ContainerStats{{Name: "app", MemoryWorkingSetBytes: o.usage[p.Name]}}})
	}
	return obs, nil
}

// Node-pressure eviction through the node's wiring, on the simulated
// runtime: the pod using most memory above its request is evicted, its
// status says Evicted with the kubelet's message and DisruptionTarget, the
// other pod keeps running, and a BestEffort pod is refused while the
// node is under memory pressure.
func TestEvictionOnTheNode(t *testing.T) {
	policy, err := eviction.NewPolicy(eviction.Config{EvictionHard: map[string]string{"memory.available": "500Mi"}})
	if err != nil {
		t.Fatal(err)
	}
	obs := &pressureObserver{available: 2 << 30, usage: map[string]uint64{"hog": 900 << 20, "calm": 100 << 20}}
	updates := make(chan core.PodUpdate, 4)
	big := allocatable("4")
	wake := make(chan struct{}, 1)
	_, n := runSimNode(t, node.Config{Updates: updates, Node: func() (*v1.Node, error) { return big, nil },
		Eviction: policy, EvictionObserver: obs, EvictionWake: wake, EvictionInterval: time.Hour})
	obs.mu.Lock()
	obs.n = n
	obs.mu.Unlock()
	pod := func(name, request string) *v1.Pod {
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "e2e", UID: k8stypes.UID("uid-" + name)},
			Spec: v1.PodSpec{TerminationGracePeriodSeconds: ptr.To[int64](30),
				Containers: []v1.Container{{Name: "app", Image: "busybox"}}}}
		if request != "" {
			p.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceMemory: resource.MustParse(request)}
		}
		return p
	}
	hog, calm := pod("hog", "100Mi"), pod("calm", "200Mi")
	updates <- core.PodUpdate{Op: core.OpAdd, Pods: []*v1.Pod{hog, calm}}
	waitForCond(t, "both pods running", func() bool {
		a, _, ok1 := n.Statuses.Get(hog.UID)
		b, _, ok2 := n.Statuses.Get(calm.UID)
		return ok1 && ok2 && a.Phase == v1.PodRunning && b.Phase == v1.PodRunning
	})

	obs.mu.Lock()
	obs.available = 200 << 20
	obs.mu.Unlock()
	wake <- struct{}{}
	waitForCond(t, "the hog's eviction in its status", func() bool {
		st, _, ok := n.Statuses.Get(hog.UID)
		return ok && st.Phase == v1.PodFailed && st.Reason == "Evicted" &&
			strings.Contains(st.Message, "The node was low on resource: memory.") && hasCondition(st.Conditions, v1.DisruptionTarget)
	})
	d, ok := n.Evictions.Last()
	if !ok || d.Starved == nil || d.Starved.Victim == nil || d.Starved.Victim.Pod.Name != "hog" || len(d.Starved.Ranking) != 2 {
		t.Fatalf("decision: %v", d)
	}
	if st, _, _ := n.Statuses.Get(calm.UID); st.Phase != v1.PodRunning {
		t.Errorf("the other pod: %s", st.Phase)
	}
	// Under memory pressure a BestEffort pod is refused.
	be := pod("besteffort", "")
	updates <- core.PodUpdate{Op: core.OpAdd, Pods: []*v1.Pod{be}}
	waitForCond(t, "the BestEffort pod refused", func() bool {
		st, _, ok := n.Statuses.Get(be.UID)
		return ok && st.Phase == v1.PodFailed && st.Reason == "Evicted" && strings.Contains(st.Message, "MemoryPressure")
	})
}

func hasCondition(cs []v1.PodCondition, t v1.PodConditionType) bool {
	for _, c := range cs {
		if c.Type == t && c.Status == v1.ConditionTrue {
			return true
		}
	}
	return false
}

func waitForCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
