package syncloop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
)

// gcPods answers GCPodState from two sets.
type gcPods struct{ content, runtime map[types.UID]bool }

func (g gcPods) ShouldPodContentBeRemoved(uid types.UID) bool { return g.content[uid] }
func (g gcPods) ShouldPodRuntimeBeRemoved(uid types.UID) bool {
	return g.content[uid] || g.runtime[uid]
}

// gcWorld builds runtime objects from a compact description:
// "pod/name#n:state@t" is the n-th instance of container name of pod,
// created at second t; states: run, exit, created, unknown.
func gcWorld(t *testing.T, specs ...string) ([]*runtimeapi.PodSandbox, []*runtimeapi.Container) {
	t.Helper()
	var cs []*runtimeapi.Container
	sbs := map[string]*runtimeapi.PodSandbox{}
	for _, s := range specs {
		var pod, name, state string
		var n, at int
		if _, err := fmt.Sscanf(strings.NewReplacer("/", " ", "#", " ", ":", " ", "@", " ").Replace(s), "%s %s %d %s %d", &pod, &name, &n, &state, &at); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		st := map[string]runtimeapi.ContainerState{"run": runtimeapi.ContainerState_CONTAINER_RUNNING, "exit": runtimeapi.ContainerState_CONTAINER_EXITED,
			"created": runtimeapi.ContainerState_CONTAINER_CREATED, "unknown": runtimeapi.ContainerState_CONTAINER_UNKNOWN}[state]
		labels := map[string]string{core.LabelPodUID: pod, core.LabelPodName: pod, core.LabelPodNamespace: "ns", core.LabelContainerName: name}
		if sbs[pod] == nil {
			sbs[pod] = &runtimeapi.PodSandbox{Id: "sb-" + pod, State: runtimeapi.PodSandboxState_SANDBOX_READY, CreatedAt: 0,
				Labels: map[string]string{core.LabelPodUID: pod, core.LabelPodName: pod, core.LabelPodNamespace: "ns"}}
		}
		cs = append(cs, &runtimeapi.Container{Id: fmt.Sprintf("%s-%s-%d", pod, name, n), PodSandboxId: "sb-" + pod, State: st,
			CreatedAt: time.Unix(int64(at), 0).UnixNano(), Metadata: &runtimeapi.ContainerMetadata{Name: name, Attempt: uint32(n)}, Labels: labels})
	}
	var out []*runtimeapi.PodSandbox
	for _, sb := range sbs {
		out = append(out, sb)
	}
	slices.SortFunc(out, func(a, b *runtimeapi.PodSandbox) int { return strings.Compare(a.Id, b.Id) })
	return out, cs
}

func gcIDs(p GCPlan) string {
	var s []string
	for _, c := range p.Containers {
		id := c.ID
		if c.Unknown {
			id += "(stop)"
		}
		s = append(s, id)
	}
	for _, sb := range p.Sandboxes {
		s = append(s, sb.ID)
	}
	s = append(s, p.LogDirs...)
	return strings.Join(s, " ")
}

func TestPlanGC(t *testing.T) {
	crash := []string{"a/app#0:exit@1", "a/app#1:exit@2", "a/app#2:exit@3", "a/app#3:run@4"}
	now := time.Unix(100, 0)
	for _, tc := range []struct {
		name    string
		world   []string
		policy  GCPolicy
		pods    gcPods
		ready   bool
		evict   bool
		notRdy  []string // pods whose sandbox is not ready
		logDirs []string
		want    string
	}{
		{name: "default keeps the newest dead instance", world: crash, policy: DefaultGCPolicy(), ready: true,
			want: "a-app-0 a-app-1"},
		{name: "keep all", world: crash, policy: GCPolicy{MaxPerPodContainer: -1, MaxContainers: -1}, ready: true, want: ""},
		{name: "keep none", world: crash, policy: GCPolicy{MaxPerPodContainer: 0, MaxContainers: -1}, ready: true,
			want: "a-app-0 a-app-1 a-app-2"},
		{name: "min age keeps young containers", world: crash, policy: GCPolicy{MinAge: 98 * time.Second, MaxPerPodContainer: 0, MaxContainers: -1},
			ready: true, want: "a-app-0 a-app-1"},
		{name: "a deleted pod loses everything once sources are ready", world: append(slices.Clone(crash[:3]), "a/side#0:exit@1"),
			policy: DefaultGCPolicy(), pods: gcPods{content: map[types.UID]bool{"a": true}}, ready: true, notRdy: []string{"a"},
			logDirs: []string{"ns_a_a", "ns_b_b", "not-a-pod-dir"},
			want:    "a-app-0 a-app-1 a-app-2 a-side-0 sb-a ns_a_a"},
		{name: "a deleted pod keeps its newest instances until sources are ready", world: crash[:3], policy: DefaultGCPolicy(),
			pods: gcPods{content: map[types.UID]bool{"a": true}}, ready: false, notRdy: []string{"a"}, logDirs: []string{"ns_a_a"},
			want: "a-app-0 a-app-1"},
		{name: "a completed pod still wanted keeps its last instance unless evicting", world: crash[:3], policy: DefaultGCPolicy(),
			pods: gcPods{runtime: map[types.UID]bool{"a": true}}, ready: true, notRdy: []string{"a"}, want: "a-app-0 a-app-1"},
		{name: "evicting a completed pod", world: crash[:3], policy: DefaultGCPolicy(),
			pods: gcPods{runtime: map[types.UID]bool{"a": true}}, ready: true, evict: true, notRdy: []string{"a"},
			want: "a-app-0 a-app-1 a-app-2 sb-a"},
		{name: "an unknown container is stopped before removal", world: []string{"a/app#0:unknown@1", "a/app#1:exit@2"},
			policy: DefaultGCPolicy(), ready: true, want: "a-app-0(stop)"},
		{name: "created containers count as dead", world: []string{"a/app#0:created@1", "a/app#1:exit@2"},
			policy: DefaultGCPolicy(), ready: true, want: "a-app-0"},
		{name: "global cap: equal shares, then the oldest", world: []string{
			"a/app#0:exit@1", "a/app#1:exit@5", "a/app#2:exit@9",
			"b/app#0:exit@2", "b/app#1:exit@6",
			"c/app#0:exit@3"},
			policy: GCPolicy{MaxPerPodContainer: -1, MaxContainers: 2}, ready: true,
			// Shares of 2/3 → 1: a keeps app#2, b keeps app#1, c keeps
			// app#0; then the oldest of those (c's, at 3 s) goes.
			want: "a-app-0 a-app-1 b-app-0 c-app-0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sbs, cs := gcWorld(t, tc.world...)
			for _, sb := range sbs {
				if slices.Contains(tc.notRdy, sb.Labels[core.LabelPodUID]) {
					sb.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
				}
			}
			if tc.pods.content == nil {
				tc.pods.content = map[types.UID]bool{}
			}
			plan := PlanGC(GCInput{Sandboxes: sbs, Containers: cs, LogDirs: tc.logDirs, Policy: tc.policy, Pods: tc.pods,
				AllSourcesReady: tc.ready, EvictNonDeletedPods: tc.evict, Now: now})
			if got := gcIDs(plan); got != tc.want {
				t.Errorf("plan %q, want %q", got, tc.want)
			}
		})
	}
}

// A pod's sandboxes: the newest stays (its network may be reused) unless
// the pod is gone; a ready one or one with containers left never goes.
func TestPlanGCSandboxes(t *testing.T) {
	sb := func(id string, created int64, ready bool) *runtimeapi.PodSandbox {
		st := runtimeapi.PodSandboxState_SANDBOX_NOTREADY
		if ready {
			st = runtimeapi.PodSandboxState_SANDBOX_READY
		}
		return &runtimeapi.PodSandbox{Id: id, CreatedAt: created, State: st,
			Labels: map[string]string{core.LabelPodUID: "p", core.LabelPodName: "p", core.LabelPodNamespace: "ns"}}
	}
	used := &runtimeapi.Container{Id: "c", PodSandboxId: "old-used", State: runtimeapi.ContainerState_CONTAINER_RUNNING,
		Labels: map[string]string{core.LabelPodUID: "p", core.LabelContainerName: "app"}, Metadata: &runtimeapi.ContainerMetadata{Name: "app"}}
	in := GCInput{Sandboxes: []*runtimeapi.PodSandbox{sb("old", 1, false), sb("old-used", 2, false), sb("ready", 3, true), sb("newest", 4, false),
		{Id: "foreign", State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}},
		Containers: []*runtimeapi.Container{used}, Policy: DefaultGCPolicy(), Pods: gcPods{}, AllSourcesReady: true}
	if got := gcIDs(PlanGC(in)); got != "old" {
		t.Errorf("plan %q, want old", got)
	}
	in.Pods = gcPods{content: map[types.UID]bool{"p": true}}
	if got := gcIDs(PlanGC(in)); got != "newest old" {
		t.Errorf("plan of a deleted pod %q, want newest old", got)
	}
}

// On the simulated runtime: a crash-looped container's old instances, and
// everything of a deleted pod including its logs, are removed; what is
// left lists as planned.
func TestContainerGC(t *testing.T) {
	rt := simRuntime(t)
	root := t.TempDir()
	tr, err := crispec.New(crispec.Config{PodLogsRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pod := func(name string) *v1.Pod {
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name)},
			Spec: v1.PodSpec{HostNetwork: true, Containers: []v1.Container{{Name: "app", Image: testImage, Command: []string{"sh", "-c", "exit 1"}}}}}
	}
	run := func(p *v1.Pod, attempts int) {
		sb, err := tr.SandboxConfig(p, 0, crispec.SandboxOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(sb.LogDirectory, 0o755); err != nil {
			t.Fatal(err)
		}
		id, err := rt.RunPodSandbox(ctx, sb, "")
		if err != nil {
			t.Fatal(err)
		}
		for a := range attempts {
			cfg, err := tr.ContainerConfig(p, &p.Spec.Containers[0], crispec.ContainerOptions{RestartCount: a})
			if err != nil {
				t.Fatal(err)
			}
			cid, err := rt.CreateContainer(ctx, id, cfg, sb)
			if err != nil {
				t.Fatal(err)
			}
			if err := rt.StartContainer(ctx, cid); err != nil {
				t.Fatal(err)
			}
		}
	}
	kept, deleted := pod("kept"), pod("deleted")
	run(kept, 3)
	run(deleted, 2)
	sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{core.LabelPodUID: "uid-deleted"}})
	if err != nil || len(sbs) != 1 {
		t.Fatal(sbs, err)
	}
	if err := rt.StopPodSandbox(ctx, sbs[0].GetId()); err != nil {
		t.Fatal(err)
	}
	g, err := NewContainerGC(ContainerGCConfig{Runtime: rt, Pods: gcPods{content: map[types.UID]bool{"uid-deleted": true}}, PodLogsRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := g.GarbageCollect(ctx, true, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Containers) != 4 || len(plan.Sandboxes) != 1 || len(plan.LogDirs) != 1 {
		t.Fatalf("plan: %+v", plan)
	}
	if got := summary(statusOf(t, rt, kept)); got != "app#2:exited(1)" {
		t.Errorf("kept pod after GC: %s", got)
	}
	if got := summary(statusOf(t, rt, deleted)); got != "" {
		t.Errorf("deleted pod after GC: %s", got)
	}
	if sbs, _ := rt.ListPodSandbox(ctx, nil); len(sbs) != 1 {
		t.Errorf("%d sandboxes left, want the kept pod's", len(sbs))
	}
	dirs, err := os.ReadDir(root)
	if err != nil || len(dirs) != 1 || dirs[0].Name() != filepath.Base(crispec.PodLogDir(root, "ns", "kept", "uid-kept")) {
		t.Errorf("log dirs left: %v %v", dirs, err)
	}
	// A second round has nothing to do.
	if plan, err := g.GarbageCollect(ctx, true, false); err != nil || gcIDs(plan) != "" {
		t.Errorf("second round: %q %v", gcIDs(plan), err)
	}
	if _, err := NewContainerGC(ContainerGCConfig{Policy: &GCPolicy{MinAge: -time.Second}}); !errors.Is(err, core.ErrInvalid) ||
		!strings.Contains(err.Error(), "Runtime is required") || !strings.Contains(err.Error(), "MinAge") {
		t.Errorf("validation: %v", err)
	}
}
