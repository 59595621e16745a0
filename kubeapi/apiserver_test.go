package kubeapi_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/internal/testenv"
	"github.com/nodekit/nodekit/kubeapi"
	"github.com/nodekit/nodekit/statusmgr"
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
	cs, node, _ := clusterAPI(t)
	return cs, node
}

func clusterAPI(t *testing.T) (kubernetes.Interface, *v1.Node, *testenv.APIServer) {
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
	return cs, node, api
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
// its status subresource, merged with the conditions others own; nothing
// is sent when nothing changed; a terminal phase waits until the pod is
// finished; a deleted pod, and a pod deleted and created again under its
// name, are not written to; a pod being deleted is deleted once its final
// status is there.
func TestStatusWriterOnAPIServer(t *testing.T) {
	cs, _ := cluster(t)
	ctx := t.Context()
	w, err := kubeapi.NewStatusWriter(kubeapi.StatusWriterConfig{Client: cs})
	if err != nil {
		t.Fatal(err)
	}
	web, err := cs.CoreV1().Pods("default").Create(ctx, pod("web", "n1", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) *v1.Pod {
		t.Helper()
		p, err := cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	since := metav1.NewTime(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	running := v1.PodStatus{Phase: v1.PodRunning, HostIP: "10.0.0.5", Conditions: []v1.PodCondition{
		{Type: v1.PodReady, Status: v1.ConditionTrue, LastTransitionTime: since}}}
	if err := w.WriteStatus(ctx, core.PodStatusEntry{Pod: web, Status: running, Version: 1}); err != nil {
		t.Fatal(err)
	}
	got := get("web")
	if got.Status.Phase != v1.PodRunning || got.Status.HostIP != "10.0.0.5" || len(got.Status.Conditions) != 1 {
		t.Fatalf("status in the apiserver: %+v", got.Status)
	}
	// The same status again sends nothing.
	if err := w.WriteStatus(ctx, core.PodStatusEntry{Pod: web, Status: running, Version: 1}); err != nil {
		t.Fatal(err)
	}
	if again := get("web"); again.ResourceVersion != got.ResourceVersion {
		t.Errorf("an unchanged status was sent")
	}

	// Someone else adds a condition of theirs: the node's next status
	// keeps it.
	got.Status.Conditions = append(got.Status.Conditions, v1.PodCondition{Type: "example.com/Warm", Status: v1.ConditionTrue, LastTransitionTime: since})
	if _, err := cs.CoreV1().Pods("default").UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	notReady := *running.DeepCopy()
	notReady.Conditions[0].Status = v1.ConditionFalse
	if err := w.WriteStatus(ctx, core.PodStatusEntry{Pod: web, Status: notReady, Version: 2}); err != nil {
		t.Fatal(err)
	}
	conds := map[v1.PodConditionType]v1.ConditionStatus{}
	for _, c := range get("web").Status.Conditions {
		conds[c.Type] = c.Status
	}
	if conds[v1.PodReady] != v1.ConditionFalse || conds["example.com/Warm"] != v1.ConditionTrue || len(conds) != 2 {
		t.Fatalf("conditions after the node's write: %v", conds)
	}

	// A terminal phase is held back while the pod's containers may run,
	// and written once the pod is finished.
	failed := *notReady.DeepCopy()
	failed.Phase, failed.Reason = v1.PodFailed, "Evicted"
	if err := w.WriteStatus(ctx, core.PodStatusEntry{Pod: web, Status: failed, Version: 3}); err != nil {
		t.Fatal(err)
	}
	if p := get("web"); p.Status.Phase != v1.PodRunning || p.Status.Reason != "" {
		t.Fatalf("a terminal phase reached the API before the pod finished: %s %s", p.Status.Phase, p.Status.Reason)
	}
	if err := w.WriteStatus(ctx, core.PodStatusEntry{Pod: web, Status: failed, Version: 4, Finished: true}); err != nil {
		t.Fatal(err)
	}
	if p := get("web"); p.Status.Phase != v1.PodFailed || p.Status.Reason != "Evicted" {
		t.Fatalf("the finished pod's phase: %s %s", p.Status.Phase, p.Status.Reason)
	}

	// Deleted and created again under the same name: the old pod's
	// status must not reach the new one (the UID in the patch conflicts).
	if err := cs.CoreV1().Pods("default").Delete(ctx, "web", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	// Deleted: nothing to write to, and nothing created.
	if err := w.WriteStatus(ctx, core.PodStatusEntry{Pod: web, Status: running, Version: 5}); err != nil {
		t.Fatalf("write for a deleted pod: %v", err)
	}
	if _, err := cs.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the deleted pod: %v", err)
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod("web", "n1", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteStatus(ctx, core.PodStatusEntry{Pod: web, Status: running, Version: 6}); err != nil {
		t.Fatalf("write for a replaced pod: %v", err)
	}
	if now := get("web"); now.Status.Phase == v1.PodRunning || now.UID == web.UID {
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
	if err := w.WriteStatus(ctx, core.PodStatusEntry{Pod: db, Status: running, Version: 1}); err != nil {
		t.Fatal(err)
	}
	if got := get("db"); got.DeletionTimestamp == nil {
		t.Fatal("the pod was never marked for deletion")
	}
	done := *running.DeepCopy()
	done.Phase = v1.PodSucceeded
	if err := w.WriteStatus(ctx, core.PodStatusEntry{Pod: db, Status: done, Version: 2}); err != nil {
		t.Fatal(err)
	}
	if got := get("db"); got.Status.Phase != v1.PodRunning {
		t.Fatalf("a pod not finished was given its terminal phase: %s", got.Status.Phase)
	}
	if err := w.WriteStatus(ctx, core.PodStatusEntry{Pod: db, Status: done, Version: 3, Finished: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods("default").Get(ctx, "db", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a finished pod being deleted is still there: %v", err)
	}
}

// The whole chain on a real kube-apiserver: a statusmgr Cache, a Syncer
// and the StatusWriter. A static pod's status goes to its mirror pod; a
// status that changes while the apiserver is down reaches it once it is
// back.
func TestStatusSyncOnAPIServer(t *testing.T) {
	cs, _, api := clusterAPI(t)
	ctx := t.Context()
	w, err := kubeapi.NewStatusWriter(kubeapi.StatusWriterConfig{Client: cs})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := statusmgr.NewCache(statusmgr.CacheConfig{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	sink := &countingSink{Sink: w}
	// No reconcile during the test: only the retries can bring a status
	// that failed to the apiserver.
	syncer, err := statusmgr.NewSyncer(statusmgr.SyncerConfig{Source: cache, Sink: sink, Registerer: reg,
		ReconcilePeriod: time.Hour, RetryInitial: 100 * time.Millisecond, RetryMax: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	static := pod("etcd-n1", "n1", map[string]string{core.AnnotationConfigHash: "h1", core.AnnotationConfigSource: core.SourceFile})
	static.UID = "h1"
	mirrors, err := kubeapi.NewMirrors(kubeapi.MirrorsConfig{Client: cs, NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mirrors.Sync(ctx, []*v1.Pod{static}, nil); err != nil {
		t.Fatal(err)
	}
	web, err := cs.CoreV1().Pods("default").Create(ctx, pod("web", "n1", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- syncer.Run(runCtx) }()
	defer func() { stop(); <-runDone }()

	phaseOf := func(name string) v1.PodPhase {
		p, err := cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return p.Status.Phase
	}
	cache.Set(static, v1.PodStatus{Phase: v1.PodRunning, HostIP: "10.0.0.5"})
	cache.Set(web, v1.PodStatus{Phase: v1.PodPending})
	eventually(t, "the mirror pod's status", func() bool { return phaseOf("etcd-n1") == v1.PodRunning })
	eventually(t, "web's status", func() bool { return phaseOf("web") == v1.PodPending })

	// The apiserver goes away; web starts running meanwhile.
	if err := api.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	cache.Set(web, v1.PodStatus{Phase: v1.PodRunning})
	eventually(t, "three failed writes", func() bool { return sink.failures.Load() >= 3 })
	if syncer.Written(web.UID) != 1 {
		t.Fatalf("written version %d while the apiserver is down", syncer.Written(web.UID))
	}
	if err := api.StartAgain(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "web's status after the apiserver came back", func() bool { return phaseOf("web") == v1.PodRunning })
	eventually(t, "the written version", func() bool { return syncer.Written(web.UID) == 2 })
	// Three statuses reached the apiserver, each measured from its change.
	if got := gather(t, reg); got != "kubelet_pod_status_sync_duration_seconds_count 3\n" {
		t.Errorf("metrics: %q", got)
	}
}

// countingSink counts the failed writes of the sink it wraps.
type countingSink struct {
	statusmgr.Sink
	failures atomic.Int64
}

func (c *countingSink) WriteStatus(ctx context.Context, e core.PodStatusEntry) error {
	err := c.Sink.WriteStatus(ctx, e)
	if err != nil {
		c.failures.Add(1)
	}
	return err
}

func gather(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			fmt.Fprintf(&b, "%s_count %d\n", mf.GetName(), m.GetHistogram().GetSampleCount())
		}
	}
	return b.String()
}
