package node_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/cpumanager"
	"github.com/nodekit/nodekit/eviction"
	"github.com/nodekit/nodekit/examples/node"
	"github.com/nodekit/nodekit/internal/testenv"
)

// labCgroupRoot creates a cgroup root of the test's own in every v1
// hierarchy and removes it, deepest first, when the test ends.
func labCgroupRoot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creating cgroups needs root")
	}
	if mode := cgroups.Mode(); mode != cgroups.Legacy && mode != cgroups.Hybrid {
		t.Skip("the lab is written for cgroup v1 hierarchies")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	root := "/nodekit-lab-" + hex.EncodeToString(b)
	if _, err := cgroup1.New(cgroup1.StaticPath(root), &specs.LinuxResources{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		entries, _ := os.ReadDir("/sys/fs/cgroup")
		for _, e := range entries {
			var dirs []string
			_ = filepath.WalkDir(filepath.Join("/sys/fs/cgroup", e.Name(), root), func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, p)
				}
				return nil
			})
			slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
			for _, d := range dirs {
				if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
					t.Logf("cleanup: %v", err)
				}
			}
		}
	})
	return root
}

// The course's eviction lab, for real and safely: pods run on containerd
// in a kubepods cgroup of their own limited to 512 MiB (node allocatable
// enforcement); a hard allocatableMemory.available threshold of 300 MiB;
// a pod that holds about 250 MiB, far beyond its 32 MiB request, crosses
// it. The memory notifier wakes the eviction manager at once (its interval
// here is a minute); the decision names the pod and the numbers, its
// status says Evicted, and the other pod keeps running. The host's memory
// is never at stake: everything stays inside the 512 MiB cgroup.
func TestEvictionLabOnContainerd(t *testing.T) {
	root := labCgroupRoot(t)
	e := startEnv(t, testenv.Containerd16)
	capacity := v1.ResourceList{v1.ResourceCPU: resource.MustParse("2"), v1.ResourceMemory: resource.MustParse("512Mi")}
	cg, err := cpumanager.NewCgroupManager(cpumanager.CgroupManagerConfig{Root: root, NodeAllocatable: cpumanager.NodeAllocatable{Capacity: capacity}})
	if err != nil {
		t.Fatal(err)
	}
	policy, err := eviction.NewPolicy(eviction.Config{EvictionHard: map[string]string{"allocatableMemory.available": "300Mi"}})
	if err != nil {
		t.Fatal(err)
	}
	var n *node.Node
	stats, err := eviction.NewStatsProvider(eviction.StatsConfig{
		ActivePods: func() []*v1.Pod {
			if n == nil {
				return nil
			}
			return n.Loop.ActivePods()
		},
		Runtime: e.rt, RootDir: t.TempDir(), PodLogsDir: e.logsRoot, CgroupRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	notifier, err := eviction.NewMemoryNotifier(eviction.NotifierConfig{Cgroup: stats.AllocatableCgroup()})
	if err != nil {
		t.Fatal(err)
	}
	a := e.start(t, func(c *node.Config) {
		c.PodCgroups = cg
		c.Eviction, c.EvictionObserver, c.EvictionInterval = policy, stats, time.Minute
		c.EvictionNotifiers = map[eviction.Signal]*eviction.Notifier{eviction.SignalAllocatableMemoryAvailable: notifier}
		c.Node = func() (*v1.Node, error) { return allocatable("2"), nil }
		c.Translator = nil // made from the Node: Burstable pods need its memory
	})
	n = a.Node
	request := v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceMemory: resource.MustParse("32Mi"), v1.ResourceCPU: resource.MustParse("100m")}}
	calm := hostPod("calm", service("app"))
	calm.Spec.Containers[0].Resources = request
	hog := hostPod("hog", v1.Container{Name: "app", Resources: request,
		// tail keeps a line without end in memory; the sleep keeps its
		// input open, so it holds what it read.
		Command: []string{"sh", "-c", "(head -c 250m /dev/zero; sleep 3600) | tail"}})
	hog.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
	a.send(core.OpAdd, calm)
	e.waitSummary(t, calm.UID, time.Minute, "app#0:running")
	start := time.Now()
	a.send(core.OpAdd, hog)
	waitFor(t, 2*time.Minute, "the hog's eviction in its status", func() bool {
		st, _, ok := n.Statuses.Get(hog.UID)
		return ok && st.Phase == v1.PodFailed && st.Reason == "Evicted"
	})
	t.Logf("hog added → evicted in its status: %s (monitoring interval 1m: the notifier woke the manager)", time.Since(start).Round(time.Millisecond))
	d, ok := n.Evictions.Last()
	if !ok || d.Starved == nil || d.Starved.Victim == nil {
		t.Fatalf("decision: %v", d)
	}
	record := d.String()
	t.Logf("decision:\n%s", record)
	for _, want := range []string{"allocatableMemory.available", "hog", "The node was low on resource: memory"} {
		if !strings.Contains(record, want) {
			t.Errorf("the decision does not name %q", want)
		}
	}
	if d.Starved.Victim.Pod.UID != hog.UID || d.Starved.Observed.Available >= 300<<20 {
		t.Errorf("victim %s, observed %s", d.Starved.Victim.Pod.Name, fmt.Sprint(d.Starved.Observed.Available))
	}
	st, _, _ := n.Statuses.Get(hog.UID)
	if !strings.Contains(st.Message, "Container app was using") {
		t.Errorf("status message: %q", st.Message)
	}
	if s := summary(e.containers(t, calm.UID)); s != "app#0:running" {
		t.Errorf("the other pod: %s", s)
	}
	if cst, _, _ := n.Statuses.Get(calm.UID); cst.Phase != v1.PodRunning {
		t.Errorf("the other pod's phase: %s", cst.Phase)
	}
	a.send(core.OpRemove, calm, hog)
	waitFor(t, time.Minute, "the pods to stop", func() bool {
		return !strings.Contains(summary(e.containers(t, calm.UID)), "running")
	})
}
