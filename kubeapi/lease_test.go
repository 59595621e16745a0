package kubeapi

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/nodekit/nodekit/core"
)

func getLease(t *testing.T, cs *fake.Clientset) *coordinationv1.Lease {
	t.Helper()
	l, err := cs.CoordinationV1().Leases(v1.NamespaceNodeLease).Get(context.Background(), "n1", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// The lease, under synctest's fake time: created once the Node exists,
// held by the node, owned by the Node, renewed every 10 s (4 % jitter);
// reading it is retried with back-off while the apiserver fails.
func TestNodeLeaseFake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fake.NewClientset()
		var failGets atomic.Int32
		var mu sync.Mutex
		var getTimes []time.Time
		cs.PrependReactor("get", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
			mu.Lock()
			getTimes = append(getTimes, time.Now())
			mu.Unlock()
			if failGets.Load() > 0 {
				failGets.Add(-1)
				return true, nil, apierrors.NewServiceUnavailable("etcd is away")
			}
			return false, nil, nil
		})
		var conflict atomic.Bool
		cs.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
			if conflict.Load() {
				return true, nil, apierrors.NewConflict(coordinationv1.Resource("leases"), "n1", errors.New("changed"))
			}
			return false, nil, nil
		})
		l, err := NewNodeLease(NodeLeaseConfig{Client: cs, NodeName: "n1"})
		if err != nil {
			t.Fatal(err)
		}
		if l.RenewInterval() != 10*time.Second {
			t.Errorf("renew interval %v", l.RenewInterval())
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- l.Run(ctx) }()
		synctest.Wait()
		if getLease(t, cs) != nil {
			t.Fatal("a lease without its Node")
		}
		if _, err := cs.CoreV1().Nodes().Create(ctx, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "node-uid"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10*time.Second + 400*time.Millisecond)
		synctest.Wait()
		ls := getLease(t, cs)
		if ls == nil {
			t.Fatal("no lease after the Node came")
		}
		own := ls.OwnerReferences
		if *ls.Spec.HolderIdentity != "n1" || *ls.Spec.LeaseDurationSeconds != 40 ||
			len(own) != 1 || own[0].Kind != "Node" || own[0].Name != "n1" || own[0].UID != "node-uid" || own[0].APIVersion != "v1" {
			t.Fatalf("lease %+v owners %+v", ls.Spec, own)
		}
		first := ls.Spec.RenewTime.Time
		time.Sleep(10*time.Second + 400*time.Millisecond)
		synctest.Wait()
		renewed := getLease(t, cs).Spec.RenewTime.Time
		if d := renewed.Sub(first); d < 10*time.Second || d > 10*time.Second+400*time.Millisecond {
			t.Errorf("renewed %v after the last time, want 10 s + up to 4 %%", d)
		}

		// The update conflicts and the lease cannot be read for a while:
		// it is read again after 200 ms, 400 ms, 800 ms.
		conflict.Store(true)
		failGets.Store(3)
		mu.Lock()
		getTimes = nil
		mu.Unlock()
		time.Sleep(12 * time.Second)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(getTimes) < 4 {
			t.Fatalf("%d reads of the lease", len(getTimes))
		}
		for i, want := range []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond} {
			if d := getTimes[i+1].Sub(getTimes[i]); d != want {
				t.Errorf("read %d came %v after the one before, want %v", i+2, d, want)
			}
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	})
}

func TestNodeLeaseConfig(t *testing.T) {
	for _, cfg := range []NodeLeaseConfig{
		{},
		{Client: fake.NewClientset()},
		{Client: fake.NewClientset(), NodeName: "n1", DurationSeconds: -1},
		{Client: fake.NewClientset(), NodeName: "n1", RenewInterval: 40 * time.Second},
	} {
		if _, err := NewNodeLease(cfg); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
	l, err := NewNodeLease(NodeLeaseConfig{Client: fake.NewClientset(), NodeName: "n1", DurationSeconds: 60})
	if err != nil || l.RenewInterval() != 15*time.Second {
		t.Errorf("a 60 s lease is renewed every %v (%v), want 15 s", l.RenewInterval(), err)
	}
}
