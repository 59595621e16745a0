package syncloop_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
	"github.com/nodekit/nodekit/runtimetest"
	"github.com/nodekit/nodekit/syncloop"
)

// gcEpoch is time 0 of the PlanGC cases; objects are created at whole
// seconds after it.
var gcEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// podState answers GCPodState from two sets: deleted pods (whose content
// may go, and their runtime too) and terminated ones (whose runtime may
// go).
type podState struct {
	deleted, terminated map[types.UID]bool
}

func (s podState) ShouldPodContentBeRemoved(uid types.UID) bool { return s.deleted[uid] }
func (s podState) ShouldPodRuntimeBeRemoved(uid types.UID) bool {
	return s.deleted[uid] || s.terminated[uid]
}

func set(uids ...types.UID) map[types.UID]bool {
	m := map[types.UID]bool{}
	for _, u := range uids {
		m[u] = true
	}
	return m
}

var gcStates = map[string]runtimeapi.ContainerState{
	"running": runtimeapi.ContainerState_CONTAINER_RUNNING,
	"exited":  runtimeapi.ContainerState_CONTAINER_EXITED,
	"created": runtimeapi.ContainerState_CONTAINER_CREATED,
	"unknown": runtimeapi.ContainerState_CONTAINER_UNKNOWN,
}

// ctr is a container "ID POD/NAME STATE SECOND [restarts=N]
// [deletionGrace=N] [terminationGrace=N] [nolabels]" in sandbox sb-POD,
// made for pod POD in namespace ns, created SECOND seconds after gcEpoch.
func ctr(t *testing.T, spec string) *runtimeapi.Container {
	t.Helper()
	f := strings.Fields(spec)
	pod, name, _ := strings.Cut(f[1], "/")
	state, ok := gcStates[f[2]]
	if !ok {
		t.Fatalf("ctr %q: state %q", spec, f[2])
	}
	sec, err := strconv.Atoi(f[3])
	if err != nil {
		t.Fatalf("ctr %q: %v", spec, err)
	}
	c := &runtimeapi.Container{
		Id:           f[0],
		PodSandboxId: "sb-" + pod,
		Metadata:     &runtimeapi.ContainerMetadata{Name: name},
		State:        state,
		CreatedAt:    gcEpoch.Add(time.Duration(sec) * time.Second).UnixNano(),
		Labels: map[string]string{
			core.LabelPodName:       pod,
			core.LabelPodNamespace:  "ns",
			core.LabelPodUID:        pod,
			core.LabelContainerName: name,
		},
		Annotations: map[string]string{},
	}
	for _, opt := range f[4:] {
		k, v, _ := strings.Cut(opt, "=")
		switch k {
		case "restarts":
			c.Annotations[core.AnnotationContainerRestartCount] = v
		case "deletionGrace":
			c.Annotations[core.AnnotationPodDeletionGracePeriod] = v
		case "terminationGrace":
			c.Annotations[core.AnnotationPodTerminationGracePeriod] = v
		case "nolabels":
			c.Labels = nil
		case "sandbox":
			c.PodSandboxId = v
		default:
			t.Fatalf("ctr %q: option %q", spec, opt)
		}
	}
	return c
}

// sb is a sandbox "ID POD ready|notready SECOND".
func sb(t *testing.T, spec string) *runtimeapi.PodSandbox {
	t.Helper()
	f := strings.Fields(spec)
	sec, err := strconv.Atoi(f[3])
	if err != nil {
		t.Fatalf("sb %q: %v", spec, err)
	}
	state := runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	if f[2] == "ready" {
		state = runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return &runtimeapi.PodSandbox{
		Id:        f[0],
		Metadata:  &runtimeapi.PodSandboxMetadata{Name: f[1], Namespace: "ns", Uid: f[1]},
		State:     state,
		CreatedAt: gcEpoch.Add(time.Duration(sec) * time.Second).UnixNano(),
		Labels:    map[string]string{core.LabelPodUID: f[1], core.LabelPodName: f[1], core.LabelPodNamespace: "ns"},
	}
}

// formatGCPlan writes a plan one entry a line: "container ID REASON
// [stop=GRACE] [log=PATH]", "sandbox ID REASON", "logs NAME REASON".
func formatGCPlan(p syncloop.GCPlan) []string {
	var out []string
	for _, c := range p.Containers {
		s := "container " + c.ID + " " + string(c.Reason)
		if c.Stop {
			s += " stop=" + strconv.FormatInt(c.GracePeriod, 10)
		}
		if c.LogPath != "" {
			s += " log=" + c.LogPath
		}
		out = append(out, s)
	}
	for _, s := range p.Sandboxes {
		out = append(out, "sandbox "+s.ID+" "+string(s.Reason))
	}
	for _, d := range p.PodLogDirs {
		out = append(out, "logs "+d.Name+" "+string(d.Reason))
	}
	return out
}

func TestPlanGC(t *testing.T) {
	def := syncloop.DefaultGCPolicy()
	unlimited := syncloop.GCPolicy{MaxPerPodContainer: -1, MaxContainers: -1}
	tests := []struct {
		name       string
		containers []string
		sandboxes  []string
		logDirs    []string
		logsRoot   string
		policy     syncloop.GCPolicy
		deleted    []types.UID
		terminated []types.UID
		ready      bool // all sources ready
		evict      bool // evict non-deleted pods
		minAge     time.Duration
		want       []string
	}{{
		name:   "the default keeps the newest dead instance of each pod container",
		policy: def,
		containers: []string{
			"a1 p/app exited 1", "a2 p/app exited 2", "a3 p/app exited 3", "a4 p/app running 4",
			"b1 p/side exited 1", "q1 q/app exited 1", "q2 q/app created 2",
		},
		want: []string{
			"container a1 MaxPerPodContainer",
			"container q1 MaxPerPodContainer",
			"container a2 MaxPerPodContainer",
		},
	}, {
		name:       "running containers are never removed, however many",
		policy:     syncloop.GCPolicy{MaxPerPodContainer: 0, MaxContainers: 0},
		containers: []string{"a1 p/app running 1", "a2 p/app running 2", "a3 p/app exited 3"},
		want:       []string{"container a3 MaxPerPodContainer"},
	}, {
		name:       "a negative MaxPerPodContainer keeps every dead instance",
		policy:     unlimited,
		containers: []string{"a1 p/app exited 1", "a2 p/app exited 2"},
		want:       nil,
	}, {
		name:       "containers younger than MinAge are left alone",
		policy:     syncloop.GCPolicy{MinAge: 5 * time.Second, MaxPerPodContainer: 0, MaxContainers: -1},
		containers: []string{"a1 p/app exited 1", "a2 p/app exited 5", "a3 p/app exited 6"},
		// now is 10 s: a3 was created 4 s ago.
		want: []string{"container a1 MaxPerPodContainer", "container a2 MaxPerPodContainer"},
	}, {
		name:   "MaxContainers gives each pod container an equal share first",
		policy: syncloop.GCPolicy{MaxPerPodContainer: -1, MaxContainers: 4},
		containers: []string{
			"a1 p/app exited 1", "a2 p/app exited 2", "a3 p/app exited 3", "a4 p/app exited 4",
			"b1 p/side exited 5", "b2 p/side exited 6",
			"c1 q/app exited 7",
		},
		// 7 > 4: each of 3 keeps 4/3 = 1, leaving 3.
		want: []string{
			"container a1 MaxContainers", "container a2 MaxContainers", "container a3 MaxContainers",
			"container b1 MaxContainers",
		},
	}, {
		name:   "MaxContainers then removes the oldest across pods",
		policy: syncloop.GCPolicy{MaxPerPodContainer: -1, MaxContainers: 2},
		containers: []string{
			"a1 p/app exited 1", "a2 p/app exited 4",
			"b1 p/side exited 3",
			"c1 q/app exited 2", "c2 q/app exited 5",
		},
		// each of 3 keeps max(2/3, 1) = 1: a2, b1, c2; then the oldest of
		// those, b1, goes.
		want: []string{
			"container a1 MaxContainers", "container c1 MaxContainers", "container b1 MaxContainers",
		},
	}, {
		name:       "MaxContainers 0 keeps no dead container",
		policy:     syncloop.GCPolicy{MaxPerPodContainer: 1, MaxContainers: 0},
		containers: []string{"a1 p/app exited 1", "a2 p/app exited 2", "c1 q/app exited 3", "r1 q/x running 0"},
		want: []string{
			"container a1 MaxPerPodContainer", "container a2 MaxContainers", "container c1 MaxContainers",
		},
	}, {
		name:       "ties in creation time are broken by ID",
		policy:     syncloop.GCPolicy{MaxPerPodContainer: 1, MaxContainers: -1},
		containers: []string{"z p/app exited 1", "m p/app exited 1", "a p/app exited 1"},
		want:       []string{"container m MaxPerPodContainer", "container z MaxPerPodContainer"},
	}, {
		name:       "a deleted pod loses every dead container once all sources are ready",
		policy:     def,
		ready:      true,
		deleted:    []types.UID{"p"},
		containers: []string{"a1 p/app exited 1", "a2 p/app exited 2", "a3 p/app running 3", "q1 q/app exited 1"},
		want:       []string{"container a1 PodDeleted", "container a2 PodDeleted"},
	}, {
		name:       "not before all sources are ready",
		policy:     def,
		deleted:    []types.UID{"p"},
		containers: []string{"a1 p/app exited 1", "a2 p/app exited 2"},
		want:       []string{"container a1 MaxPerPodContainer"},
	}, {
		name:       "MinAge holds for deleted pods too",
		policy:     syncloop.GCPolicy{MinAge: 5 * time.Second, MaxPerPodContainer: 1, MaxContainers: -1},
		ready:      true,
		deleted:    []types.UID{"p"},
		containers: []string{"a1 p/app exited 1", "a2 p/app exited 8"},
		want:       []string{"container a1 PodDeleted"},
	}, {
		name:       "a terminated pod that is not deleted keeps its newest instances",
		policy:     def,
		ready:      true,
		terminated: []types.UID{"p"},
		containers: []string{"a1 p/app exited 1", "a2 p/app exited 2"},
		want:       []string{"container a1 MaxPerPodContainer"},
	}, {
		name:       "unless non-deleted pods are evicted",
		policy:     def,
		ready:      true,
		evict:      true,
		terminated: []types.UID{"p"},
		containers: []string{"a1 p/app exited 1", "a2 p/app exited 2", "q1 q/app exited 1"},
		want:       []string{"container a1 PodTerminated", "container a2 PodTerminated"},
	}, {
		name:       "containers not made for a pod go once all sources are ready",
		policy:     def,
		ready:      true,
		containers: []string{"x1 p/tool exited 1 nolabels", "x2 p/tool exited 2 nolabels", "x3 p/tool running 3 nolabels"},
		want:       []string{"container x1 NotPod", "container x2 NotPod"},
	}, {
		name:       "and are held to the policy before",
		policy:     def,
		containers: []string{"x1 p/tool exited 1 nolabels", "x2 p/tool exited 2 nolabels"},
		want:       []string{"container x1 MaxPerPodContainer"},
	}, {
		name:   "a container in an unknown state is stopped first, with the pod's grace period",
		policy: syncloop.GCPolicy{MaxPerPodContainer: 0, MaxContainers: -1},
		containers: []string{
			"u1 p/a unknown 1 deletionGrace=5 terminationGrace=30",
			"u2 p/b unknown 2 terminationGrace=20",
			"u3 p/c unknown 3 terminationGrace=0",
			"u4 p/d unknown 4",
			"u5 p/e created 5",
		},
		want: []string{
			"container u1 MaxPerPodContainer stop=5",
			"container u2 MaxPerPodContainer stop=20",
			"container u3 MaxPerPodContainer stop=2",
			"container u4 MaxPerPodContainer stop=2",
			"container u5 MaxPerPodContainer",
		},
	}, {
		name:     "with a logs root, each container's log file is named",
		policy:   syncloop.GCPolicy{MaxPerPodContainer: 0, MaxContainers: -1},
		logsRoot: "/logs",
		containers: []string{
			"a1 p/app exited 1", "a2 p/app exited 2 restarts=1",
			"x1 p/tool exited 3 nolabels",
		},
		want: []string{
			"container a1 MaxPerPodContainer log=/logs/ns_p_p/app/0.log",
			"container a2 MaxPerPodContainer log=/logs/ns_p_p/app/1.log",
			"container x1 MaxPerPodContainer",
		},
	}, {
		name:      "a live pod keeps its newest sandbox, ready or not, and those with containers",
		policy:    def,
		sandboxes: []string{"s1 p notready 1", "s2 p notready 2", "s3 p ready 3", "s4 p notready 4", "t1 q notready 1"},
		containers: []string{
			"a1 p/app exited 1 sandbox=s2",
		},
		want: []string{"sandbox s1 OldSandbox"},
	}, {
		name:      "a sandbox whose containers the plan removes goes with them",
		policy:    syncloop.GCPolicy{MaxPerPodContainer: 0, MaxContainers: -1},
		sandboxes: []string{"s1 p notready 1", "s2 p ready 2"},
		containers: []string{
			"a1 p/app exited 1 sandbox=s1", "a2 p/app created 1 sandbox=s2",
		},
		want: []string{
			"container a1 MaxPerPodContainer", "container a2 MaxPerPodContainer",
			"sandbox s1 OldSandbox",
		},
	}, {
		name:      "a deleted pod loses its newest sandbox too, without waiting for the sources",
		policy:    def,
		deleted:   []types.UID{"p"},
		sandboxes: []string{"s1 p notready 1", "s2 p notready 2", "t1 q notready 1", "t2 q notready 2"},
		want:      []string{"sandbox s1 PodDeleted", "sandbox t1 OldSandbox", "sandbox s2 PodDeleted"},
	}, {
		name:       "but not a ready one, nor one whose containers stay",
		policy:     def,
		deleted:    []types.UID{"p"},
		sandboxes:  []string{"s1 p ready 1", "s2 p notready 2"},
		containers: []string{"a1 p/app exited 1 sandbox=s2", "a2 p/app exited 2 sandbox=s2"},
		// sources not ready: the containers stay under the policy.
		want: []string{"container a1 MaxPerPodContainer"},
	}, {
		name:       "a terminated pod's sandboxes go when non-deleted pods are evicted",
		policy:     def,
		evict:      true,
		sandboxes:  []string{"s1 p notready 1", "t1 q notready 1"},
		terminated: []types.UID{"p"},
		want:       []string{"sandbox s1 PodTerminated"},
	}, {
		name:    "log directories of deleted pods with nothing left go once all sources are ready",
		policy:  syncloop.GCPolicy{MinAge: 5 * time.Second, MaxPerPodContainer: 1, MaxContainers: -1},
		ready:   true,
		deleted: []types.UID{"gone", "stays", "running", "young"},
		logDirs: []string{
			"ns_gone_gone", "ns_stays_stays", "ns_live_live", "ns_running_running", "ns_young_young",
			"not-a-pod", "a_b_c_d", "_x_gone",
		},
		containers: []string{"r1 running/app running 1", "y1 young/app exited 9", "g1 gone/app exited 1"},
		want: []string{
			"container g1 PodDeleted",
			"logs ns_gone_gone PodDeleted", "logs ns_stays_stays PodDeleted",
		},
	}, {
		name:    "and none before",
		policy:  def,
		deleted: []types.UID{"gone"},
		logDirs: []string{"ns_gone_gone"},
		want:    nil,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := syncloop.GCInput{
				PodLogDirs:          tc.logDirs,
				PodLogsRoot:         tc.logsRoot,
				Policy:              tc.policy,
				Pods:                podState{deleted: set(tc.deleted...), terminated: set(tc.terminated...)},
				AllSourcesReady:     tc.ready,
				EvictNonDeletedPods: tc.evict,
				Now:                 gcEpoch.Add(10 * time.Second),
			}
			for _, s := range tc.containers {
				in.Containers = append(in.Containers, ctr(t, s))
			}
			for _, s := range tc.sandboxes {
				in.Sandboxes = append(in.Sandboxes, sb(t, s))
			}
			got := formatGCPlan(syncloop.PlanGC(in))
			if !slices.Equal(got, tc.want) {
				t.Errorf("plan:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

const gcImage = "localhost/busybox:latest"

// gcWorld is a simulated runtime on a fake clock, with a translator whose
// pod logs root is a temporary directory.
type gcWorld struct {
	t    *testing.T
	clk  *testingclock.FakeClock
	rt   *runtimetest.Runtime
	tr   *crispec.Translator
	root string
}

func newGCWorld(t *testing.T) *gcWorld {
	t.Helper()
	clk := testingclock.NewFakeClock(gcEpoch)
	rt, err := runtimetest.New(runtimetest.Config{Clock: clk, Images: []string{gcImage}})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	tr, err := crispec.New(crispec.Config{PodLogsRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	return &gcWorld{t: t, clk: clk, rt: rt, tr: tr, root: root}
}

func (w *gcWorld) gc(pods syncloop.GCPodState, policy *syncloop.GCPolicy) *syncloop.ContainerGC {
	w.t.Helper()
	g, err := syncloop.NewContainerGC(syncloop.ContainerGCConfig{Runtime: w.rt, Pods: pods, Policy: policy, PodLogsRoot: w.root, Clock: w.clk})
	if err != nil {
		w.t.Fatal(err)
	}
	return g
}

// gcPod is a pod running in the simulated runtime.
type gcPod struct {
	w     *gcWorld
	pod   *v1.Pod
	sbCfg *runtimeapi.PodSandboxConfig
	sbID  string
}

// runPod runs a sandbox for a pod named name (its UID too) with the
// given containers, and makes its log directory, as the driver does.
func (w *gcWorld) runPod(name string, containers ...string) *gcPod {
	w.t.Helper()
	grace := int64(3)
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(name)},
		Spec:       v1.PodSpec{TerminationGracePeriodSeconds: &grace},
	}
	for _, c := range containers {
		pod.Spec.Containers = append(pod.Spec.Containers, v1.Container{Name: c, Image: gcImage})
	}
	cfg, err := w.tr.SandboxConfig(pod, 0, crispec.SandboxOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
		w.t.Fatal(err)
	}
	id, err := w.rt.RunPodSandbox(context.Background(), cfg, "")
	if err != nil {
		w.t.Fatal(err)
	}
	return &gcPod{w: w, pod: pod, sbCfg: cfg, sbID: id}
}

// start creates and starts attempt restarts of container name, writes its
// log file, and returns its ID.
func (p *gcPod) start(name string, restarts int) string {
	t := p.w.t
	t.Helper()
	var spec *v1.Container
	for i := range p.pod.Spec.Containers {
		if p.pod.Spec.Containers[i].Name == name {
			spec = &p.pod.Spec.Containers[i]
		}
	}
	cfg, err := p.w.tr.ContainerConfig(p.pod, spec, crispec.ContainerOptions{RestartCount: restarts})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id, err := p.w.rt.CreateContainer(ctx, p.sbID, cfg, p.sbCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.w.rt.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(p.sbCfg.LogDirectory, cfg.LogPath)
	if err := os.MkdirAll(filepath.Dir(log), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(log, []byte("log\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.w.clk.Step(time.Second)
	return id
}

// crash starts attempt restarts of container name and ends it with exit
// code 1.
func (p *gcPod) crash(name string, restarts int) string {
	p.w.t.Helper()
	id := p.start(name, restarts)
	if err := p.w.rt.ExitContainer(id, runtimetest.Exit{Code: 1}); err != nil {
		p.w.t.Fatal(err)
	}
	return id
}

// containers lists the IDs of the runtime's containers, sorted.
func (w *gcWorld) containers() []string {
	w.t.Helper()
	cs, err := w.rt.ListContainers(context.Background(), nil)
	if err != nil {
		w.t.Fatal(err)
	}
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.GetId())
	}
	slices.Sort(ids)
	return ids
}

// sandboxes lists the IDs of the runtime's sandboxes, sorted.
func (w *gcWorld) sandboxes() []string {
	w.t.Helper()
	ss, err := w.rt.ListPodSandbox(context.Background(), nil)
	if err != nil {
		w.t.Fatal(err)
	}
	var ids []string
	for _, s := range ss {
		ids = append(ids, s.GetId())
	}
	slices.Sort(ids)
	return ids
}

// files lists the files and directories under the logs root, relative to it.
func (w *gcWorld) files() []string {
	w.t.Helper()
	var out []string
	err := filepath.WalkDir(w.root, func(path string, d os.DirEntry, err error) error {
		if err != nil || path == w.root {
			return err
		}
		rel, _ := filepath.Rel(w.root, path)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}

func sorted(ids ...string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

func TestContainerGCRemovesOldInstances(t *testing.T) {
	w := newGCWorld(t)
	p := w.runPod("web", "app")
	a0 := p.crash("app", 0)
	a1 := p.crash("app", 1)
	a2 := p.start("app", 2)
	rotated := filepath.Join(w.root, "ns_web_web", "app", "0.log.20260101-000000")
	if err := os.WriteFile(rotated, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	g := w.gc(podState{}, nil)

	plan, err := g.GarbageCollect(ctx, true, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := formatGCPlan(plan), []string{"container " + a0 + " MaxPerPodContainer log=" + filepath.Join(w.root, "ns_web_web", "app", "0.log")}; !slices.Equal(got, want) {
		t.Errorf("plan %q, want %q", got, want)
	}
	if got, want := w.containers(), sorted(a1, a2); !slices.Equal(got, want) {
		t.Errorf("containers after gc %q, want %q", got, want)
	}
	if got, want := w.files(), []string{"ns_web_web", "ns_web_web/app", "ns_web_web/app/1.log", "ns_web_web/app/2.log"}; !slices.Equal(got, want) {
		t.Errorf("log files after gc %q, want %q", got, want)
	}
	if got, want := w.sandboxes(), []string{p.sbID}; !slices.Equal(got, want) {
		t.Errorf("sandboxes after gc %q, want %q", got, want)
	}

	// Nothing more to do.
	plan, err = g.GarbageCollect(ctx, true, false)
	if err != nil || !plan.Empty() {
		t.Errorf("second gc: plan %q, err %v; want nothing", formatGCPlan(plan), err)
	}
}

func TestContainerGCHonoursMinAge(t *testing.T) {
	w := newGCWorld(t)
	p := w.runPod("web", "app")
	a0 := p.crash("app", 0)
	a1 := p.crash("app", 1)
	g := w.gc(podState{}, &syncloop.GCPolicy{MinAge: time.Minute, MaxPerPodContainer: 0, MaxContainers: -1})
	ctx := context.Background()

	if plan, err := g.GarbageCollect(ctx, true, false); err != nil || !plan.Empty() {
		t.Fatalf("young containers: plan %q, err %v; want nothing", formatGCPlan(plan), err)
	}
	// a0 was created at 0 s, a1 at 1 s, and it is 2 s now: at 60 s, a0 is
	// a minute old and a1 not yet.
	w.clk.Step(58 * time.Second)
	if _, err := g.GarbageCollect(ctx, true, false); err != nil {
		t.Fatal(err)
	}
	if got, want := w.containers(), []string{a1}; !slices.Equal(got, want) {
		t.Errorf("containers %q, want %q (a0 %s removed)", got, want, a0)
	}
}

func TestContainerGCRemovesDeletedPods(t *testing.T) {
	w := newGCWorld(t)
	ctx := context.Background()
	gone := w.runPod("gone", "app", "side")
	gone.start("app", 0)
	gone.start("side", 0)
	if err := w.rt.StopPodSandbox(ctx, gone.sbID); err != nil { // the pod terminated
		t.Fatal(err)
	}
	live := w.runPod("live", "app")
	l0 := live.start("app", 0)
	if err := os.Mkdir(filepath.Join(w.root, "not-a-pod"), 0o755); err != nil {
		t.Fatal(err)
	}
	g := w.gc(podState{deleted: set("gone")}, nil)

	// Until every source has been seen, a deleted pod's dead containers
	// stay (one each is within the policy), so its sandbox and logs stay
	// too.
	plan, err := g.GarbageCollect(ctx, false, false)
	if err != nil || !plan.Empty() {
		t.Fatalf("sources not ready: plan %q, err %v; want nothing", formatGCPlan(plan), err)
	}

	plan, err = g.GarbageCollect(ctx, true, false)
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, c := range plan.Containers {
		reasons = append(reasons, string(c.PodUID)+"/"+c.Name+" "+string(c.Reason))
	}
	for _, s := range plan.Sandboxes {
		reasons = append(reasons, "sandbox "+string(s.PodUID)+" "+string(s.Reason))
	}
	for _, d := range plan.PodLogDirs {
		reasons = append(reasons, "logs "+d.Name+" "+string(d.Reason))
	}
	want := []string{"gone/app PodDeleted", "gone/side PodDeleted", "sandbox gone PodDeleted", "logs ns_gone_gone PodDeleted"}
	if !slices.Equal(reasons, want) {
		t.Errorf("plan %q, want %q", reasons, want)
	}
	if got, want := w.containers(), []string{l0}; !slices.Equal(got, want) {
		t.Errorf("containers %q, want %q", got, want)
	}
	if got, want := w.sandboxes(), []string{live.sbID}; !slices.Equal(got, want) {
		t.Errorf("sandboxes %q, want %q", got, want)
	}
	if got, want := w.files(), []string{"not-a-pod", "ns_live_live", "ns_live_live/app", "ns_live_live/app/0.log"}; !slices.Equal(got, want) {
		t.Errorf("log files %q, want %q", got, want)
	}
}

func TestContainerGCKeepsGoingAfterAFailure(t *testing.T) {
	w := newGCWorld(t)
	ctx := context.Background()
	first := w.runPod("first", "app")
	f0 := first.crash("app", 0)
	second := w.runPod("second", "app")
	second.crash("app", 0)
	for _, p := range []*gcPod{first, second} {
		if err := w.rt.StopPodSandbox(ctx, p.sbID); err != nil {
			t.Fatal(err)
		}
	}
	boom := errors.New("boom")
	if err := w.rt.InjectFault("RemoveContainer", runtimetest.Fault{Err: boom, Times: 1}); err != nil {
		t.Fatal(err)
	}
	g := w.gc(podState{deleted: set("first", "second")}, nil)

	plan, err := g.GarbageCollect(ctx, true, false)
	if !errors.Is(err, boom) {
		t.Fatalf("gc error %v, want %v", err, boom)
	}
	if len(plan.Containers) != 2 || len(plan.Sandboxes) != 2 || len(plan.PodLogDirs) != 2 {
		t.Errorf("plan %q, want both pods' containers, sandboxes and logs", formatGCPlan(plan))
	}
	// The oldest container, f0, failed: its sandbox and logs stay; the
	// second pod is gone.
	if got, want := w.containers(), []string{f0}; !slices.Equal(got, want) {
		t.Errorf("containers %q, want %q", got, want)
	}
	if got, want := w.sandboxes(), []string{first.sbID}; !slices.Equal(got, want) {
		t.Errorf("sandboxes %q, want %q", got, want)
	}
	if got, want := w.files(), []string{"ns_first_first", "ns_first_first/app"}; !slices.Equal(got, want) {
		t.Errorf("log files %q, want %q (the log file goes before the container)", got, want)
	}

	// The next collection finishes the work.
	if _, err := g.GarbageCollect(ctx, true, false); err != nil {
		t.Fatal(err)
	}
	if c, s, f := w.containers(), w.sandboxes(), w.files(); len(c)+len(s)+len(f) != 0 {
		t.Errorf("after a second gc: containers %q, sandboxes %q, files %q; want none", c, s, f)
	}
}

func TestContainerGCListFailureRemovesNothing(t *testing.T) {
	w := newGCWorld(t)
	p := w.runPod("web", "app")
	p.crash("app", 0)
	p.crash("app", 1)
	if err := w.rt.InjectFault("ListPodSandbox", runtimetest.Fault{Err: core.ErrUnavailable, Times: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := w.gc(podState{}, nil).GarbageCollect(context.Background(), true, false)
	if !errors.Is(err, core.ErrUnavailable) {
		t.Errorf("gc error %v, want %v", err, core.ErrUnavailable)
	}
	if n := w.rt.Calls("RemoveContainer"); n != 0 {
		t.Errorf("RemoveContainer called %d times, want 0", n)
	}
}

// unknownRuntime reports one running container in an unknown state, as a
// runtime that lost track of it does, and records how it is stopped.
type unknownRuntime struct {
	*runtimetest.Runtime
	unknown string
	stops   []string
}

func (r *unknownRuntime) ListContainers(ctx context.Context, f *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	cs, err := r.Runtime.ListContainers(ctx, f)
	for _, c := range cs {
		if c.GetId() == r.unknown {
			c.State = runtimeapi.ContainerState_CONTAINER_UNKNOWN
		}
	}
	return cs, err
}

func (r *unknownRuntime) StopContainer(ctx context.Context, id string, timeout int64) error {
	r.stops = append(r.stops, fmt.Sprintf("%s %d", id, timeout))
	return r.Runtime.StopContainer(ctx, id, timeout)
}

func TestContainerGCStopsContainersInAnUnknownState(t *testing.T) {
	w := newGCWorld(t)
	ctx := context.Background()
	p := w.runPod("web", "app")
	u := p.start("app", 0) // a service: runs until stopped
	rt := &unknownRuntime{Runtime: w.rt, unknown: u}
	if err := w.rt.InjectFault("StopContainer", runtimetest.Fault{Err: core.ErrUnavailable, Times: 1}); err != nil {
		t.Fatal(err)
	}
	g, err := syncloop.NewContainerGC(syncloop.ContainerGCConfig{Runtime: rt, Pods: podState{deleted: set("web")}, PodLogsRoot: w.root, Clock: w.clk})
	if err != nil {
		t.Fatal(err)
	}

	// A container that cannot be stopped is kept.
	if _, err := g.GarbageCollect(ctx, true, false); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("gc error %v, want %v", err, core.ErrUnavailable)
	}
	if got, want := w.containers(), []string{u}; !slices.Equal(got, want) {
		t.Fatalf("containers %q, want %q", got, want)
	}
	if _, err := g.GarbageCollect(ctx, true, false); err != nil {
		t.Fatal(err)
	}
	// Stopped with the pod's grace period, 3 s, then removed.
	if got, want := rt.stops, []string{u + " 3", u + " 3"}; !slices.Equal(got, want) {
		t.Errorf("stops %q, want %q", got, want)
	}
	if got := w.containers(); len(got) != 0 {
		t.Errorf("containers %q, want none", got)
	}
}

func TestNewContainerGC(t *testing.T) {
	rt, err := runtimetest.New(runtimetest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  syncloop.ContainerGCConfig
		bad  string // what the error names; "" for valid
	}{
		{"defaults", syncloop.ContainerGCConfig{Runtime: rt, Pods: podState{}}, ""},
		{"no runtime", syncloop.ContainerGCConfig{Pods: podState{}}, "Runtime"},
		{"no pods", syncloop.ContainerGCConfig{Runtime: rt}, "Pods"},
		{"relative logs root", syncloop.ContainerGCConfig{Runtime: rt, Pods: podState{}, PodLogsRoot: "logs"}, "PodLogsRoot"},
		{"negative min age", syncloop.ContainerGCConfig{Runtime: rt, Pods: podState{}, Policy: &syncloop.GCPolicy{MinAge: -time.Second}}, "MinAge"},
		{"no limits", syncloop.ContainerGCConfig{Runtime: rt, Pods: podState{}, Policy: &syncloop.GCPolicy{MaxPerPodContainer: -1, MaxContainers: -1}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := syncloop.NewContainerGC(tc.cfg)
			switch {
			case tc.bad == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tc.bad == "" && g == nil:
				t.Error("nil ContainerGC")
			case tc.bad != "" && (!errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), tc.bad)):
				t.Errorf("error %v, want one wrapping core.ErrInvalid naming %s", err, tc.bad)
			}
		})
	}
	if err := (syncloop.GCPolicy{MinAge: -1}).Validate(); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("Validate of a negative MinAge: %v, want core.ErrInvalid", err)
	}
	if err := syncloop.DefaultGCPolicy().Validate(); err != nil {
		t.Errorf("Validate of the default policy: %v", err)
	}
}
