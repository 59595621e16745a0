package syncloop_test

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/syncloop"
)

// printWorkers stands in for syncloop.Workers: it prints what the loop
// hands to the pods' workers.
type printWorkers struct{}

func (printWorkers) Update(u syncloop.Update) { fmt.Println(u.Type, u.Pod.Name) }

func (printWorkers) State(types.UID) (syncloop.WorkerState, bool) { return 0, false }

func (printWorkers) States() map[types.UID]syncloop.WorkerState { return nil }

func (printWorkers) Forget(types.UID) bool { return false }

// printStatus stands in for the status manager.
type printStatus struct{}

func (printStatus) SetPodStatus(p *v1.Pod, s v1.PodStatus) {
	fmt.Printf("%s: %s, %s\n", p.Name, s.Phase, s.Message)
}

// The loop admits new pods (here: at most two), hands the admitted ones to
// their workers and fails the others; a removal kills the pod, and an
// update of a rejected pod goes nowhere.
func ExampleLoop() {
	atMostTwo := syncloop.AdmitFunc(func(a syncloop.AdmitAttributes) syncloop.AdmitResult {
		if len(a.OtherPods) >= 2 {
			return syncloop.AdmitResult{Reason: syncloop.ReasonOutOfPods, Message: "Node didn't have enough resource: pods"}
		}
		return syncloop.AdmitResult{Admit: true}
	})
	loop, err := syncloop.NewLoop(syncloop.LoopConfig{
		Updates:   make(chan core.PodUpdate), // Run would read it; Handle takes updates directly
		Workers:   printWorkers{},
		Admission: atMostTwo,
		Status:    printStatus{},
	})
	if err != nil {
		panic(err)
	}
	pod := func(name string) *v1.Pod {
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name)}}
	}
	loop.Handle(core.PodUpdate{Op: core.OpAdd, Pods: []*v1.Pod{pod("a"), pod("b"), pod("c")}, Source: core.SourceFile})
	loop.Handle(core.PodUpdate{Op: core.OpUpdate, Pods: []*v1.Pod{pod("c")}, Source: core.SourceFile})
	loop.Handle(core.PodUpdate{Op: core.OpRemove, Pods: []*v1.Pod{pod("a")}, Source: core.SourceFile})
	fmt.Println("active:", len(loop.ActivePods()))
	// Output:
	// create a
	// create b
	// c: Failed, Pod was rejected: Node didn't have enough resource: pods
	// kill a
	// active: 1
}
