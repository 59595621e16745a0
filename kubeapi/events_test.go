package kubeapi

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/nodekit/nodekit/core"
)

func listEvents(t *testing.T, cs *fake.Clientset, ns string) []v1.Event {
	t.Helper()
	l, err := cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// Events recorded before Run are sent once it starts; repeats are
// counted on one event; the source is the kubelet on the node; events
// about a pod go to its namespace, about the node to "default"; nothing is
// sent after Run ends.
func TestEventRecorderFake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fake.NewClientset()
		r, err := NewEventRecorder(EventRecorderConfig{Client: cs, NodeName: "n1"})
		if err != nil {
			t.Fatal(err)
		}
		node := NodeReference("n1", "node-uid")
		r.Eventf(node, v1.EventTypeNormal, "Starting", "Starting %s.", "kubelet")
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		synctest.Wait()
		evs := listEvents(t, cs, "default")
		if len(evs) != 1 {
			t.Fatalf("%d events", len(evs))
		}
		e := evs[0]
		if e.InvolvedObject.Kind != "Node" || e.InvolvedObject.Name != "n1" || e.InvolvedObject.UID != "node-uid" ||
			e.Reason != "Starting" || e.Message != "Starting kubelet." || e.Type != v1.EventTypeNormal ||
			e.Source.Component != "kubelet" || e.Source.Host != "n1" || e.ReportingController != "kubelet" || e.ReportingInstance != "n1" || e.Count != 1 {
			t.Errorf("event %+v", e)
		}

		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", UID: "pod-uid"}}
		r.Eventf(pod, v1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s", "app")
		r.Eventf(pod, v1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s", "app")
		synctest.Wait()
		evs = listEvents(t, cs, "shop")
		if len(evs) != 1 || evs[0].Count != 2 || evs[0].InvolvedObject.Kind != "Pod" || evs[0].InvolvedObject.UID != "pod-uid" {
			t.Errorf("pod events %+v", evs)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
		r.Eventf(node, v1.EventTypeNormal, "Late", "after the end")
		synctest.Wait()
		if n := len(listEvents(t, cs, "default")); n != 1 {
			t.Errorf("%d node events after Run ended", n)
		}
		if err := r.Run(t.Context()); err == nil {
			t.Error("Run ran twice")
		}
	})
	if _, err := NewEventRecorder(EventRecorderConfig{}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("validation: %v", err)
	}
}

func TestMemoryAndNopRecorder(t *testing.T) {
	var m MemoryRecorder
	var r Recorder = &m
	r.Eventf(NodeReference("n1", ""), v1.EventTypeWarning, "Rebooted", "Node %s has been rebooted, boot id: %s", "n1", "b2")
	NopRecorder{}.Eventf(nil, v1.EventTypeNormal, "Nothing", "")
	evs := m.Events()
	if len(evs) != 1 || evs[0].String() != "Warning Rebooted Node n1 has been rebooted, boot id: b2" || evs[0].Object.(*v1.ObjectReference).Name != "n1" {
		t.Errorf("events %v", evs)
	}
	m.Reset()
	if len(m.Events()) != 0 {
		t.Error("Reset kept events")
	}
}
