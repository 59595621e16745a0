package node_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/eviction"
	"github.com/nodekit/nodekit/examples/node"
	"github.com/nodekit/nodekit/imagegc"
	"github.com/nodekit/nodekit/runtimetest"
)

// imageFs is a dedicated image filesystem of 100 MiB holding the
// simulated runtime's images: the eviction manager observes it, the image
// collector measures it.
type imageFs struct {
	rt *runtimetest.Runtime
}

const imageFsCapacity = 100 << 20

func (f imageFs) available() uint64 {
	info, err := f.rt.ImageFsInfo(context.Background())
	if err != nil {
		return 0
	}
	return imageFsCapacity - min(info.GetImageFilesystems()[0].GetUsedBytes().GetValue(), imageFsCapacity)
}

func (f imageFs) Observe(context.Context) (eviction.Observations, error) {
	return eviction.Observations{DedicatedImageFs: true,
		ImageFs: eviction.FsStats{Time: time.Now(), CapacityBytes: imageFsCapacity, AvailableBytes: f.available()}}, nil
}

func (f imageFs) statfs(string) (imagegc.FsStats, error) {
	return imagegc.FsStats{CapacityBytes: imageFsCapacity, AvailableBytes: f.available()}, nil
}

// startImageNode runs a Node on the simulated runtime with a pod using
// busybox, and returns once the pod runs.
func startImageNode(t *testing.T, rt *runtimetest.Runtime, cfg node.Config) *node.Node {
	t.Helper()
	updates := make(chan core.PodUpdate, 1)
	cfg.Runtime, cfg.Updates, cfg.PodLogsRoot = rt, updates, t.TempDir()
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
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "e2e", UID: k8stypes.UID("uid-web")},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app", Image: "busybox"}}}}
	updates <- core.PodUpdate{Op: core.OpAdd, Pods: []*v1.Pod{pod}}
	waitForCond(t, "the pod running", func() bool {
		st, _, ok := n.Statuses.Get(pod.UID)
		return ok && st.Phase == v1.PodRunning
	})
	return n
}

func imageTags(t *testing.T, rt *runtimetest.Runtime) []string {
	t.Helper()
	imgs, err := rt.ListImages(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, img := range imgs {
		out = append(out, img.GetRepoTags()...)
	}
	slices.Sort(out)
	return out
}

const bigImage = "docker.io/library/big:1"

// Under imagefs pressure the eviction manager reclaims images through the
// node's collector before it evicts anyone: the unused image goes, the
// pod's stays, and the pressure is relieved.
func TestImageGCReclaimsForEviction(t *testing.T) {
	rt, err := runtimetest.New(runtimetest.Config{Images: []string{"busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	fs := imageFs{rt}
	policy, err := eviction.NewPolicy(eviction.Config{EvictionHard: map[string]string{"imagefs.available": "15%"}})
	if err != nil {
		t.Fatal(err)
	}
	wake := make(chan struct{}, 1)
	var mu sync.Mutex
	pressure := false
	observer := observerFunc(func(ctx context.Context) (eviction.Observations, error) {
		mu.Lock()
		defer mu.Unlock()
		if !pressure {
			return eviction.Observations{}, nil // until the big image is there
		}
		return fs.Observe(ctx)
	})
	n := startImageNode(t, rt, node.Config{Eviction: policy, EvictionObserver: observer, EvictionWake: wake, EvictionInterval: time.Hour,
		// High 100: no periodic collection, so the reclaim alone acts.
		ImageGC: &imagegc.Config{Policy: &imagegc.Policy{HighThresholdPercent: 100, LowThresholdPercent: 80}, Statfs: fs.statfs}})
	if err := rt.AddImage(bigImage, 90<<20); err != nil { // 94 % of the image filesystem
		t.Fatal(err)
	}
	mu.Lock()
	pressure = true
	mu.Unlock()
	wake <- struct{}{}
	waitForCond(t, "the unused image reclaimed", func() bool { return !slices.Contains(imageTags(t, rt), bigImage) })
	if got := imageTags(t, rt); !slices.Equal(got, []string{"docker.io/library/busybox:latest"}) {
		t.Errorf("images left %q", got)
	}
	res, ok := n.Images.Last()
	if !ok || len(res.Deleted) != 1 || res.Deleted[0].Image.String() != bigImage || res.BytesToFree != imagegc.AllBytes {
		t.Errorf("collector's last result %v", res)
	}
	d, ok := n.Evictions.Last()
	if !ok || d.Starved == nil || d.Starved.Threshold.Signal != eviction.SignalImageFsAvailable || !slices.Contains(d.Starved.NodeReclaim, eviction.ReclaimImages) {
		t.Errorf("decision %v", d)
	}
}

type observerFunc func(ctx context.Context) (eviction.Observations, error)

func (f observerFunc) Observe(ctx context.Context) (eviction.Observations, error) { return f(ctx) }

// The node runs its collector: above the high threshold an unused image
// goes at the next period, the pod's stays.
func TestImageGCRunsOnTheNode(t *testing.T) {
	rt, err := runtimetest.New(runtimetest.Config{Images: []string{"busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	fs := imageFs{rt}
	n := startImageNode(t, rt, node.Config{ImageGC: &imagegc.Config{Statfs: fs.statfs, Period: 50 * time.Millisecond,
		Policy: &imagegc.Policy{HighThresholdPercent: 85, LowThresholdPercent: 80}}})
	if err := rt.AddImage(bigImage, 90<<20); err != nil {
		t.Fatal(err)
	}
	waitForCond(t, "the unused image collected", func() bool { return !slices.Contains(imageTags(t, rt), bigImage) })
	if got := imageTags(t, rt); !slices.Equal(got, []string{"docker.io/library/busybox:latest"}) {
		t.Errorf("images left %q", got)
	}
	if n.Evictions != nil {
		t.Error("an eviction manager without Config.Eviction")
	}
}
