package pleg

import (
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/core"
)

// A batch of events about many of the pods is relisted in one full
// relist (two list calls), every pod of the batch inspected; a batch
// about a few is relisted pod by pod.
func TestRelistBatch(t *testing.T) {
	e := newEnv(t, false)
	var uids podUIDs
	var containers []string
	for i := range 10 {
		name := fmt.Sprintf("p%d", i)
		sbID, sb := e.runSandbox(name, true)
		containers = append(containers, e.startContainer(sbID, sb, "app", "sleep", "3600"))
		uids = append(uids, types.UID("uid-"+name))
	}
	e.relist()
	e.next(20)
	lists := func() (int, int) { return e.rt.Calls("ListPodSandbox"), e.rt.Calls("ListContainers") }

	// Eight of the ten pods' containers die: more than 2 + 10/20 pods.
	for _, id := range containers[:8] {
		if err := e.rt.StopContainer(e.ctx, id, 0); err != nil {
			t.Fatal(err)
		}
	}
	sb0, c0 := lists()
	e.p.relistBatch(e.ctx, uids[:8])
	if sb, c := lists(); sb != sb0+1 || c != c0+1 {
		t.Errorf("a batch of 8 of 10 pods: %d sandbox and %d container lists, want 1 and 1", sb-sb0, c-c0)
	}
	evs := e.next(8)
	died := map[types.UID]bool{}
	for _, ev := range evs {
		if ev.Type == core.ContainerDied {
			died[ev.PodUID] = true
		}
	}
	if len(died) != 8 {
		t.Fatalf("ContainerDied for %d pods, want 8: %s", len(died), describe(evs))
	}

	// A burst of events whose changes the lists no longer show (the
	// pods' state went and came back): the pods are inspected anyway.
	st0 := e.rt.Calls("PodSandboxStatus")
	e.p.relistBatch(e.ctx, uids[:4])
	if got := e.rt.Calls("PodSandboxStatus") - st0; got != 4 {
		t.Errorf("a burst of 4 unchanged pods: %d sandbox statuses read, want 4", got)
	}

	// Two pods: each relisted alone.
	for _, id := range containers[8:] {
		if err := e.rt.StopContainer(e.ctx, id, 0); err != nil {
			t.Fatal(err)
		}
	}
	sb0, c0 = lists()
	e.p.relistBatch(e.ctx, uids[8:])
	if sb, c := lists(); sb != sb0+2 || c != c0+2 {
		t.Errorf("a batch of 2 of 10 pods: %d sandbox and %d container lists, want 2 and 2", sb-sb0, c-c0)
	}
	if evs := e.next(2); len(evs) != 2 || evs[0].Type != core.ContainerDied || evs[1].Type != core.ContainerDied {
		t.Fatalf("after the batch of 2: %s", describe(evs))
	}
}
