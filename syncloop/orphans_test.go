package syncloop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/syncloop"
)

// formatOrphan writes the fields OrphanPods restores, on one line.
func formatOrphan(p *v1.Pod) string {
	s := fmt.Sprintf("%s %s/%s", p.UID, p.Namespace, p.Name)
	if len(p.Labels) > 0 {
		for _, k := range slices.Sorted(maps.Keys(p.Labels)) {
			s += " label:" + k + "=" + p.Labels[k]
		}
	}
	if g := p.DeletionGracePeriodSeconds; g != nil {
		s += fmt.Sprintf(" deletionGrace=%d", *g)
	}
	if g := p.Spec.TerminationGracePeriodSeconds; g != nil {
		s += fmt.Sprintf(" terminationGrace=%d", *g)
	}
	for _, c := range p.Spec.Containers {
		s += " [" + c.Name
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
			if e := c.Lifecycle.PreStop.Exec; e != nil {
				s += " preStop=" + strings.Join(e.Command, " ")
			}
			if s2 := c.Lifecycle.PreStop.Sleep; s2 != nil {
				s += fmt.Sprintf(" preStop=sleep %d", s2.Seconds)
			}
		}
		for _, port := range c.Ports {
			s += fmt.Sprintf(" port=%d", port.ContainerPort)
		}
		if c.TerminationMessagePath != "" {
			s += " msg=" + c.TerminationMessagePath
		}
		s += "]"
	}
	return s
}

func preStop(t *testing.T, cmd ...string) string {
	t.Helper()
	b, err := json.Marshal(v1.LifecycleHandler{Exec: &v1.ExecAction{Command: cmd}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// orphanCtr is a container of pod uid (named name-of-uid) as the driver
// makes it, created at second sec.
func orphanCtr(id, uid, name string, state runtimeapi.ContainerState, sec int, annotations map[string]string) *runtimeapi.Container {
	return &runtimeapi.Container{
		Id:           id,
		PodSandboxId: "sb-" + uid,
		Metadata:     &runtimeapi.ContainerMetadata{Name: name},
		State:        state,
		CreatedAt:    gcEpoch.Add(time.Duration(sec) * time.Second).UnixNano(),
		Labels: map[string]string{
			core.LabelPodName:       "name-of-" + uid,
			core.LabelPodNamespace:  "ns",
			core.LabelPodUID:        uid,
			core.LabelContainerName: name,
		},
		Annotations: annotations,
	}
}

func orphanSandbox(id, uid string, ready bool, sec int, podName string, labels map[string]string) *runtimeapi.PodSandbox {
	state := runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	if ready {
		state = runtimeapi.PodSandboxState_SANDBOX_READY
	}
	l := map[string]string{core.LabelPodUID: uid, core.LabelPodName: podName, core.LabelPodNamespace: "ns"}
	for k, v := range labels {
		l[k] = v
	}
	return &runtimeapi.PodSandbox{
		Id:        id,
		Metadata:  &runtimeapi.PodSandboxMetadata{Name: podName, Namespace: "ns", Uid: uid},
		State:     state,
		CreatedAt: gcEpoch.Add(time.Duration(sec) * time.Second).UnixNano(),
		Labels:    l,
	}
}

func TestOrphanPods(t *testing.T) {
	const (
		running = runtimeapi.ContainerState_CONTAINER_RUNNING
		exited  = runtimeapi.ContainerState_CONTAINER_EXITED
		unknown = runtimeapi.ContainerState_CONTAINER_UNKNOWN
	)
	tests := []struct {
		name       string
		sandboxes  []*runtimeapi.PodSandbox
		containers []*runtimeapi.Container
		wanted     []types.UID // nil: a nil wanted
		want       []string
	}{{
		name: "a pod no source wants is rebuilt from its labels and annotations",
		sandboxes: []*runtimeapi.PodSandbox{
			orphanSandbox("s1", "u1", true, 1, "web", map[string]string{"app": "shop"}),
		},
		containers: []*runtimeapi.Container{
			orphanCtr("c1", "u1", "app", running, 2, map[string]string{
				core.AnnotationPodTerminationGracePeriod:       "45",
				core.AnnotationPodDeletionGracePeriod:          "10",
				core.AnnotationContainerPreStopHandler:         preStop(t, "nginx", "-s", "quit"),
				core.AnnotationContainerPorts:                  `[{"containerPort":8080,"protocol":"TCP"}]`,
				core.AnnotationContainerTerminationMessagePath: "/dev/termination-log",
			}),
			orphanCtr("c2", "u1", "metrics", running, 3, map[string]string{core.AnnotationPodTerminationGracePeriod: "45"}),
		},
		wanted: []types.UID{"other"},
		want: []string{
			"u1 ns/web label:app=shop deletionGrace=10 terminationGrace=45 [app preStop=nginx -s quit port=8080 msg=/dev/termination-log] [metrics]",
		},
	}, {
		name: "wanted pods, pods with nothing running and objects not made for a pod are left out",
		sandboxes: []*runtimeapi.PodSandbox{
			orphanSandbox("s1", "wanted", true, 1, "keep", nil),
			orphanSandbox("s2", "dead", false, 1, "dead", nil),
			{Id: "s3", State: runtimeapi.PodSandboxState_SANDBOX_READY, Metadata: &runtimeapi.PodSandboxMetadata{Name: "x", Uid: "x"}},
		},
		containers: []*runtimeapi.Container{
			orphanCtr("c1", "wanted", "app", running, 1, nil),
			orphanCtr("c2", "dead", "app", exited, 1, nil),
			orphanCtr("c3", "lost", "app", unknown, 1, nil),
			{Id: "c4", State: running, Metadata: &runtimeapi.ContainerMetadata{Name: "tool"}},
		},
		wanted: []types.UID{"wanted"},
		want:   nil,
	}, {
		name: "without a ready sandbox, the running containers' labels name the pod",
		sandboxes: []*runtimeapi.PodSandbox{
			orphanSandbox("s1", "u1", false, 1, "old-name", nil),
		},
		containers: []*runtimeapi.Container{
			orphanCtr("c1", "u1", "app", running, 2, nil),
			orphanCtr("c0", "u1", "init", exited, 1, nil),
		},
		wanted: []types.UID{},
		want:   []string{"u1 ns/name-of-u1 [app]"},
	}, {
		name: "a ready sandbox with nothing running is still a pod to kill",
		sandboxes: []*runtimeapi.PodSandbox{
			orphanSandbox("s1", "u1", true, 1, "web", nil),
		},
		wanted: []types.UID{},
		want:   []string{"u1 ns/web"},
	}, {
		name: "the newest ready sandbox and the newest instance of each container win",
		sandboxes: []*runtimeapi.PodSandbox{
			orphanSandbox("s1", "u1", true, 1, "first", nil),
			orphanSandbox("s2", "u1", true, 2, "second", nil),
			orphanSandbox("s3", "u1", false, 3, "third", nil),
		},
		containers: []*runtimeapi.Container{
			orphanCtr("c1", "u1", "app", running, 1, map[string]string{
				core.AnnotationContainerPreStopHandler:   preStop(t, "old"),
				core.AnnotationPodTerminationGracePeriod: "30",
				core.AnnotationPodDeletionGracePeriod:    "7",
			}),
			orphanCtr("c2", "u1", "app", running, 2, map[string]string{
				core.AnnotationContainerPreStopHandler:   preStop(t, "new"),
				core.AnnotationPodTerminationGracePeriod: "60",
			}),
		},
		wanted: []types.UID{},
		want:   []string{"u1 ns/second deletionGrace=7 terminationGrace=60 [app preStop=new]"},
	}, {
		name: "a malformed annotation loses only its own field",
		sandboxes: []*runtimeapi.PodSandbox{
			orphanSandbox("s1", "u1", true, 1, "web", nil),
		},
		containers: []*runtimeapi.Container{
			orphanCtr("c1", "u1", "app", running, 1, map[string]string{
				core.AnnotationContainerPreStopHandler:   "{not json",
				core.AnnotationPodTerminationGracePeriod: "12",
			}),
		},
		wanted: []types.UID{},
		want:   []string{"u1 ns/web terminationGrace=12 [app]"},
	}, {
		name: "pods come in order of UID; a nil wanted wants none",
		sandboxes: []*runtimeapi.PodSandbox{
			orphanSandbox("s3", "c", true, 1, "pc", nil),
			orphanSandbox("s1", "a", true, 3, "pa", nil),
		},
		containers: []*runtimeapi.Container{
			orphanCtr("c2", "b", "app", running, 2, nil),
		},
		want: []string{"a ns/pa", "b ns/name-of-b [app]", "c ns/pc"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var wanted func(types.UID) bool
			if tc.wanted != nil {
				wanted = func(uid types.UID) bool { return slices.Contains(tc.wanted, uid) }
			}
			var got []string
			for _, p := range syncloop.OrphanPods(tc.sandboxes, tc.containers, wanted) {
				got = append(got, formatOrphan(p))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("orphans:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

// After a restart, an orphan rebuilt by OrphanPods is enough for the
// driver to terminate what runs of it.
func TestOrphanPodsTerminate(t *testing.T) {
	w := newGCWorld(t)
	ctx := context.Background()
	orphan := w.runPod("orphan", "app", "side")
	orphan.start("app", 0)
	orphan.start("side", 0)
	kept := w.runPod("kept", "app")
	k0 := kept.start("app", 0)

	sandboxes, err := w.rt.ListPodSandbox(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	containers, err := w.rt.ListContainers(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	pods := syncloop.OrphanPods(sandboxes, containers, func(uid types.UID) bool { return uid == "kept" })
	if len(pods) != 1 || pods[0].UID != "orphan" {
		t.Fatalf("orphans %v, want the pod orphan", pods)
	}
	pod := pods[0]
	if got := formatOrphan(pod); got != "orphan ns/orphan terminationGrace=3 [app] [side]" {
		t.Errorf("orphan %q", got)
	}

	d, err := syncloop.NewDriver(syncloop.DriverConfig{Runtime: w.rt, Clock: w.clk})
	if err != nil {
		t.Fatal(err)
	}
	status := &core.PodStatus{UID: pod.UID, Name: pod.Name, Namespace: pod.Namespace}
	for _, c := range containers {
		if c.GetLabels()[core.LabelPodUID] != string(pod.UID) {
			continue
		}
		st, err := w.rt.ContainerStatus(ctx, c.GetId(), false)
		if err != nil {
			t.Fatal(err)
		}
		status.ContainerStatuses = append(status.ContainerStatuses, st.GetStatus())
	}
	sst, err := w.rt.PodSandboxStatus(ctx, orphan.sbID, false)
	if err != nil {
		t.Fatal(err)
	}
	status.SandboxStatuses = []*runtimeapi.PodSandboxStatus{sst.GetStatus()}
	one := int64(1) // the kubelet's override for orphans
	if err := d.SyncTerminatingPod(ctx, pod, status, syncloop.EffectiveGracePeriod(0, pod, &one)); err != nil {
		t.Fatal(err)
	}

	containers, err = w.rt.ListContainers(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var runningIDs []string
	for _, c := range containers {
		if c.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
			runningIDs = append(runningIDs, c.GetId())
		}
	}
	if !slices.Equal(runningIDs, []string{k0}) {
		t.Errorf("running after terminating the orphan: %q, want only %q", runningIDs, k0)
	}
	sandboxes, err = w.rt.ListPodSandbox(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := syncloop.OrphanPods(sandboxes, containers, func(uid types.UID) bool { return uid == "kept" }); len(got) != 0 {
		t.Errorf("orphans after termination: %v, want none", got)
	}
}
