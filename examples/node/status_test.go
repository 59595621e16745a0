package node_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/examples/node"
	"github.com/nodekit/nodekit/statusmgr"
)

// The node keeps every pod's status, served as the kubelet's /pods: on the
// simulated runtime a running pod is Running and Ready, a crash-looping
// one Running with its container waiting in CrashLoopBackOff, its restart
// count and last exit code shown.
func TestPodsAPI(t *testing.T) {
	updates := make(chan core.PodUpdate, 1)
	big := allocatable("4")
	_, n := runSimNode(t, node.Config{Updates: updates, HostIPs: []string{"10.0.0.5"},
		Node: func() (*v1.Node, error) { return big, nil }})
	pod := func(name string, cmd ...string) *v1.Pod {
		return &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "e2e", UID: k8stypes.UID("uid-" + name)},
			Spec: v1.PodSpec{HostNetwork: true, TerminationGracePeriodSeconds: ptr.To[int64](1),
				Containers: []v1.Container{{Name: "app", Image: "busybox", Command: cmd}}},
		}
	}
	updates <- core.PodUpdate{Op: core.OpAdd, Pods: []*v1.Pod{pod("ok"), pod("crash", "sh", "-c", "exit 1")}}

	srv := httptest.NewServer(n.PodsHandler())
	defer srv.Close()
	get := func() map[string]v1.PodStatus {
		res, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var list v1.PodList
		if err := json.NewDecoder(res.Body).Decode(&list); err != nil {
			t.Fatal(err)
		}
		out := map[string]v1.PodStatus{}
		for _, p := range list.Items {
			out[p.Name] = p.Status
		}
		return out
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := get()
		ok, crash := st["ok"], st["crash"]
		okReady := ok.Phase == v1.PodRunning && len(ok.Conditions) > 0 && condTrue(ok.Conditions, v1.PodReady) && ok.PodIP == "10.0.0.5"
		crashing := len(crash.ContainerStatuses) == 1 && crash.ContainerStatuses[0].State.Waiting != nil &&
			crash.ContainerStatuses[0].State.Waiting.Reason == "CrashLoopBackOff" && crash.ContainerStatuses[0].RestartCount >= 1 &&
			crash.ContainerStatuses[0].LastTerminationState.Terminated != nil && crash.ContainerStatuses[0].LastTerminationState.Terminated.ExitCode == 1
		if okReady && crashing {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("statuses after 20 s:\nok: %+v\ncrash: %+v", ok, crash)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func condTrue(cs []v1.PodCondition, t v1.PodConditionType) bool {
	for _, c := range cs {
		if c.Type == t {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

// With a StatusSink the node pushes every status to it: a pod deleted
// gracefully reaches the sink with a terminal phase and marked Finished
// once its worker is done; once no source wants it, its status is
// dropped.
func TestStatusSinkOnTheNode(t *testing.T) {
	updates := make(chan core.PodUpdate, 1)
	big := allocatable("4")
	sink := statusmgr.NewMemorySink()
	_, n := runSimNode(t, node.Config{Updates: updates, StatusSink: sink,
		Node: func() (*v1.Node, error) { return big, nil }})
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "e2e", UID: "uid-web"},
		Spec: v1.PodSpec{HostNetwork: true, TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []v1.Container{{Name: "app", Image: "busybox"}}},
	}
	updates <- core.PodUpdate{Op: core.OpAdd, Pods: []*v1.Pod{pod}}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("gave up waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("Running in the sink", func() bool {
		e, ok := sink.Get(pod.UID)
		return ok && e.Status.Phase == v1.PodRunning && !e.Finished
	})
	deleting := pod.DeepCopy()
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	deleting.DeletionGracePeriodSeconds = ptr.To[int64](1)
	updates <- core.PodUpdate{Op: core.OpDelete, Pods: []*v1.Pod{deleting}}
	waitFor("the final status in the sink", func() bool {
		e, ok := sink.Get(pod.UID)
		return ok && e.Finished && (e.Status.Phase == v1.PodFailed || e.Status.Phase == v1.PodSucceeded)
	})
	if _, _, ok := n.Statuses.Get(pod.UID); !ok {
		t.Fatal("the status was dropped while a source still wants the pod")
	}
	updates <- core.PodUpdate{Op: core.OpRemove, Pods: []*v1.Pod{deleting}}
	waitFor("the status to be dropped", func() bool { _, _, ok := n.Statuses.Get(pod.UID); return !ok })
	waitFor("the syncer to forget the pod", func() bool { return n.StatusSync.Written(pod.UID) == 0 })
}
