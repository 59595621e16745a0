package kubeapi_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/internal/testenv"
	"github.com/nodekit/nodekit/kubeapi"
)

// lastSet records the newest set a source delivered.
type lastSet struct {
	mu   sync.Mutex
	n    int
	pods []string
}

func (l *lastSet) Set(_ context.Context, source string, pods []*v1.Pod) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	l.pods = nil
	for _, p := range pods {
		l.pods = append(l.pods, source+":"+p.Namespace+"/"+p.Name)
	}
	return nil
}

func (l *lastSet) get() (int, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n, strings.Join(l.pods, " ")
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cluster starts a kube-apiserver with the Node n1 and, as no controller
// manager runs, the default service account that admission gives
// ordinary pods.
func cluster(t *testing.T) (kubernetes.Interface, *v1.Node) {
	t.Helper()
	api := testenv.StartAPIServer(t)
	cs, err := kubernetes.NewForConfig(api.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cs.CoreV1().ServiceAccounts("default").Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	node, err := cs.CoreV1().Nodes().Create(ctx, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cs, node
}

func pod(name, node string, annotations map[string]string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: annotations},
		Spec:       v1.PodSpec{NodeName: node, Containers: []v1.Container{{Name: "c", Image: "busybox:1"}}},
	}
}

// On a real kube-apiserver: the source sees only the pods bound to its
// node, delivers the set at every change, keeps mirror pods apart; Mirrors
// creates, re-creates, replaces and deletes the mirror pods of static
// pods, owned by the Node.
func TestPodSourceAndMirrorsOnAPIServer(t *testing.T) {
	cs, node := cluster(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	src, err := kubeapi.NewPodSource(kubeapi.PodSourceConfig{Client: cs, NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	sink := &lastSet{}
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, sink) }()
	eventually(t, "the first, empty set", func() bool { n, _ := sink.get(); return n > 0 })
	for _, p := range []*v1.Pod{pod("web", "n1", nil), pod("elsewhere", "n2", nil)} {
		if _, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the node's pod", func() bool { _, s := sink.get(); return s == "api:default/web" })

	// Mirrors: the static pod etcd-n1 gets a mirror pod owned by the Node.
	mirrors, err := kubeapi.NewMirrors(kubeapi.MirrorsConfig{Client: cs, NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	static := pod("etcd-n1", "n1", map[string]string{core.AnnotationConfigHash: "h1", core.AnnotationConfigSource: core.SourceFile})
	static.UID = "h1"
	if res, err := mirrors.Sync(ctx, []*v1.Pod{static}, src.MirrorPods()); err != nil || res.Created != 1 {
		t.Fatalf("first sync: %+v %v", res, err)
	}
	eventually(t, "the mirror pod in the source", func() bool { return len(src.MirrorPods()) == 1 })
	mp := src.MirrorPods()[0]
	if mp.Annotations[core.AnnotationConfigMirror] != "h1" || len(mp.OwnerReferences) != 1 || mp.OwnerReferences[0].UID != node.UID {
		t.Fatalf("mirror pod: annotations %v owners %+v", mp.Annotations, mp.OwnerReferences)
	}
	if _, s := sink.get(); s != "api:default/web" {
		t.Errorf("the mirror pod reached the set: %s", s)
	}
	// Deleted by someone: created again.
	if err := cs.CoreV1().Pods("default").Delete(ctx, "etcd-n1", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deletion to be seen", func() bool { return len(src.MirrorPods()) == 0 })
	if res, err := mirrors.Sync(ctx, []*v1.Pod{static}, src.MirrorPods()); err != nil || res.Created != 1 {
		t.Fatalf("after a deletion: %+v %v", res, err)
	}
	eventually(t, "the recreated mirror", func() bool { return len(src.MirrorPods()) == 1 })
	// The manifest changed: the stale mirror is replaced.
	static.Annotations[core.AnnotationConfigHash] = "h2"
	if res, err := mirrors.Sync(ctx, []*v1.Pod{static}, src.MirrorPods()); err != nil || res.Created != 1 || res.Deleted != 1 {
		t.Fatalf("stale: %+v %v", res, err)
	}
	eventually(t, "the replaced mirror", func() bool {
		m := src.MirrorPods()
		return len(m) == 1 && m[0].Annotations[core.AnnotationConfigMirror] == "h2"
	})
	// The static pod is gone: its mirror is orphaned and deleted.
	if res, err := mirrors.Sync(ctx, nil, src.MirrorPods()); err != nil || res.Deleted != 1 {
		t.Fatalf("orphaned: %+v %v", res, err)
	}
	eventually(t, "no mirror", func() bool { return len(src.MirrorPods()) == 0 })

	// Run keeps them in sync by itself: a mirror deleted by someone is
	// back at the next sync.
	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	fast, err := kubeapi.NewMirrors(kubeapi.MirrorsConfig{Client: cs, NodeName: "n1", Period: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		runDone <- fast.Run(runCtx, nil, func() []*v1.Pod { return []*v1.Pod{static} }, src.MirrorPods)
	}()
	eventually(t, "Run to create the mirror", func() bool { return len(src.MirrorPods()) == 1 })
	first := src.MirrorPods()[0].UID
	if err := cs.CoreV1().Pods("default").Delete(ctx, "etcd-n1", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Run to recreate the mirror", func() bool {
		m := src.MirrorPods()
		return len(m) == 1 && m[0].UID != first
	})
	stopRun()
	<-runDone

	// The node's pod removed: an empty set.
	if err := cs.CoreV1().Pods("default").Delete(ctx, "web", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the empty set", func() bool { _, s := sink.get(); return s == "" })
	cancel()
	<-done
}

// Pod statuses written on a real kube-apiserver: a pod's status lands in
// its status subresource; a pod deleted and created again under its name
// is not given the old one's status; a static pod's status goes to its
// mirror pod; Run writes what changed.
func TestStatusWriterOnAPIServer(t *testing.T) {
	cs, _ := cluster(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := kubeapi.NewStatusWriter(kubeapi.StatusWriterConfig{Client: cs, ReconcilePeriod: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	web, err := cs.CoreV1().Pods("default").Create(ctx, pod("web", "n1", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	running := v1.PodStatus{Phase: v1.PodRunning, HostIP: "10.0.0.5", Conditions: []v1.PodCondition{
		{Type: v1.PodReady, Status: v1.ConditionTrue, LastTransitionTime: metav1.NewTime(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))}}}
	if err := w.Write(ctx, kubeapi.StatusEntry{Pod: web, Status: running, Version: 1}, false); err != nil {
		t.Fatal(err)
	}
	got, err := cs.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != v1.PodRunning || got.Status.HostIP != "10.0.0.5" || len(got.Status.Conditions) != 1 {
		t.Fatalf("status in the apiserver: %+v", got.Status)
	}
	// The same version is not written again.
	rv := got.ResourceVersion
	if err := w.Write(ctx, kubeapi.StatusEntry{Pod: web, Status: running, Version: 1}, false); err != nil {
		t.Fatal(err)
	}
	if again, _ := cs.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{}); again.ResourceVersion != rv {
		t.Errorf("an unchanged version was written again")
	}

	// Deleted and created again under the same name: the old pod's
	// status must not reach the new one.
	if err := cs.CoreV1().Pods("default").Delete(ctx, "web", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod("web", "n1", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	failed := *running.DeepCopy()
	failed.Phase = v1.PodFailed
	if err := w.Write(ctx, kubeapi.StatusEntry{Pod: web, Status: failed, Version: 2}, false); err != nil {
		t.Fatalf("write for a replaced pod: %v", err)
	}
	if now, _ := cs.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{}); now.Status.Phase == v1.PodFailed || now.UID == web.UID {
		t.Fatalf("the new pod got the old one's status: %s (uid %s)", now.Status.Phase, now.UID)
	}

	// Graceful deletion: the pod stays until its worker finished and its
	// final status is written, then the writer deletes it.
	db, err := cs.CoreV1().Pods("default").Create(ctx, pod("db", "n1", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Pods("default").Delete(ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, kubeapi.StatusEntry{Pod: db, Status: running, Version: 1}, false); err != nil {
		t.Fatal(err)
	}
	if got, err := cs.CoreV1().Pods("default").Get(ctx, "db", metav1.GetOptions{}); err != nil || got.DeletionTimestamp == nil {
		t.Fatalf("a pod still running was deleted, or never marked: %v", err)
	}
	done := *failed.DeepCopy()
	done.Phase = v1.PodSucceeded
	if err := w.Write(ctx, kubeapi.StatusEntry{Pod: db, Status: done, Version: 2, Finished: true}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods("default").Get(ctx, "db", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a finished pod being deleted is still there: %v", err)
	}

	// A static pod's status goes to its mirror pod, through Run.
	static := pod("etcd-n1", "n1", map[string]string{core.AnnotationConfigHash: "h1", core.AnnotationConfigSource: core.SourceFile})
	static.UID = "h1"
	mirrors, err := kubeapi.NewMirrors(kubeapi.MirrorsConfig{Client: cs, NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mirrors.Sync(ctx, []*v1.Pod{static}, nil); err != nil {
		t.Fatal(err)
	}
	changed := make(chan struct{}, 1)
	var mu sync.Mutex
	entries := []kubeapi.StatusEntry{{Pod: static, Status: v1.PodStatus{Phase: v1.PodPending}, Version: 1}}
	list := func() []kubeapi.StatusEntry {
		mu.Lock()
		defer mu.Unlock()
		return append([]kubeapi.StatusEntry(nil), entries...)
	}
	runCtx, stop := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- w.Run(runCtx, changed, list) }()
	mu.Lock()
	entries[0].Status, entries[0].Version = running, 2
	mu.Unlock()
	changed <- struct{}{}
	eventually(t, "the mirror pod's status", func() bool {
		mp, err := cs.CoreV1().Pods("default").Get(ctx, "etcd-n1", metav1.GetOptions{})
		return err == nil && mp.Status.Phase == v1.PodRunning && mp.Status.HostIP == "10.0.0.5"
	})
	stop()
	<-runDone
}
