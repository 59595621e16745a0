package kubeapi

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/nodekit/nodekit/core"
)

// recordingSink keeps every set it was given.
type recordingSink struct {
	mu   sync.Mutex
	sets [][]string
}

func (r *recordingSink) Set(_ context.Context, source string, pods []*v1.Pod) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for _, p := range pods {
		names = append(names, source+":"+p.Namespace+"/"+p.Name)
	}
	r.sets = append(r.sets, names)
	return nil
}

func (r *recordingSink) last() (int, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sets) == 0 {
		return 0, ""
	}
	return len(r.sets), strings.Join(r.sets[len(r.sets)-1], " ")
}

func waitSet(t *testing.T, r *recordingSink, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, got := r.last()
		if n > 0 && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("last set %q, want %q", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func apiPod(ns, name string, mirror bool) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name)}, Spec: v1.PodSpec{NodeName: "n1"}}
	if mirror {
		p.Annotations = map[string]string{core.AnnotationConfigMirror: "h"}
	}
	return p
}

// Unit test on client-go's fake clientset (which ignores field
// selectors): the first, empty list is delivered, then every change as the
// whole set, mirror pods apart.
func TestPodSourceFake(t *testing.T) {
	cs := fake.NewClientset()
	src, err := NewPodSource(PodSourceConfig{Client: cs, NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	sink := &recordingSink{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, sink) }()
	waitSet(t, sink, "")
	if _, err := cs.CoreV1().Pods("a").Create(ctx, apiPod("a", "web", false), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods("a").Create(ctx, apiPod("a", "etcd-n1", true), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitSet(t, sink, "api:a/web")
	deadline := time.Now().Add(5 * time.Second)
	for len(src.MirrorPods()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := src.MirrorPods(); len(got) != 1 || got[0].Name != "etcd-n1" {
		t.Errorf("mirror pods %v", got)
	}
	if err := cs.CoreV1().Pods("a").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitSet(t, sink, "")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
	if _, err := NewPodSource(PodSourceConfig{}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("validation: %v", err)
	}
}

// Mirrors on the fake clientset: create for a static pod, delete an
// orphan, replace a stale one.
func TestMirrorsFake(t *testing.T) {
	cs := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "node-uid"}})
	m, err := NewMirrors(MirrorsConfig{Client: cs, NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	static := func(name, hash string) *v1.Pod {
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: name, UID: types.UID(hash),
			Annotations: map[string]string{core.AnnotationConfigHash: hash, core.AnnotationConfigSource: core.SourceFile}},
			Spec: v1.PodSpec{NodeName: "n1", Containers: []v1.Container{{Name: "c", Image: "i"}}}}
	}
	list := func() []*v1.Pod {
		l, err := cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var out []*v1.Pod
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
		return out
	}
	res, err := m.Sync(ctx, []*v1.Pod{static("etcd-n1", "h1"), static("api-n1", "h2")}, nil)
	if err != nil || res.Created != 2 {
		t.Fatalf("first sync: %+v %v", res, err)
	}
	mirrors := list()
	for _, mp := range mirrors {
		own := mp.OwnerReferences
		if len(own) != 1 || own[0].Kind != "Node" || own[0].UID != "node-uid" || !*own[0].Controller || mp.Annotations[core.AnnotationConfigMirror] == "" {
			t.Errorf("mirror %s: owners %+v annotations %v", mp.Name, own, mp.Annotations)
		}
	}
	// In sync: nothing to do. Then api's manifest changes (new hash) and
	// etcd's goes.
	if res, err := m.Sync(ctx, []*v1.Pod{static("etcd-n1", "h1"), static("api-n1", "h2")}, mirrors); err != nil || res != (MirrorResult{}) {
		t.Fatalf("in sync: %+v %v", res, err)
	}
	res, err = m.Sync(ctx, []*v1.Pod{static("api-n1", "h3")}, mirrors)
	if err != nil || res.Created != 1 || res.Deleted != 2 {
		t.Fatalf("after changes: %+v %v", res, err)
	}
	after := list()
	if len(after) != 1 || after[0].Name != "api-n1" || after[0].Annotations[core.AnnotationConfigMirror] != "h3" {
		t.Fatalf("mirrors after: %v", after)
	}
}
