package syncloop

import (
	"fmt"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"

	"github.com/nodekit/nodekit/crispec"
)

func TestOrphanPods(t *testing.T) {
	tr, err := crispec.New(crispec.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// objects makes a pod's sandbox and containers as the driver labels
	// them, in the given states.
	objects := func(name string, sbState runtimeapi.PodSandboxState, states map[string]runtimeapi.ContainerState) ([]*runtimeapi.PodSandbox, []*runtimeapi.Container) {
		pod := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), DeletionGracePeriodSeconds: ptr.To[int64](7)},
			Spec:       v1.PodSpec{TerminationGracePeriodSeconds: ptr.To[int64](45), HostNetwork: true},
		}
		for _, c := range []string{"web", "db"} {
			spec := v1.Container{Name: c, Image: "busybox"}
			if c == "web" {
				spec.Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"drain"}}}}
			}
			pod.Spec.Containers = append(pod.Spec.Containers, spec)
		}
		sb, err := tr.SandboxConfig(pod, 0, crispec.SandboxOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sbs := []*runtimeapi.PodSandbox{{Id: "sb-" + name, Labels: sb.Labels, Annotations: sb.Annotations, State: sbState}}
		var cs []*runtimeapi.Container
		for i := range pod.Spec.Containers {
			cfg, err := tr.ContainerConfig(pod, &pod.Spec.Containers[i], crispec.ContainerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if st, ok := states[cfg.Metadata.Name]; ok {
				cs = append(cs, &runtimeapi.Container{Id: name + "-" + cfg.Metadata.Name, Labels: cfg.Labels, Annotations: cfg.Annotations, State: st})
			}
		}
		return sbs, cs
	}
	running, exited := runtimeapi.ContainerState_CONTAINER_RUNNING, runtimeapi.ContainerState_CONTAINER_EXITED
	ready, notReady := runtimeapi.PodSandboxState_SANDBOX_READY, runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	var sbs []*runtimeapi.PodSandbox
	var cs []*runtimeapi.Container
	add := func(s []*runtimeapi.PodSandbox, c []*runtimeapi.Container) {
		sbs, cs = append(sbs, s...), append(cs, c...)
	}
	add(objects("wanted", ready, map[string]runtimeapi.ContainerState{"web": running}))
	add(objects("orphan", ready, map[string]runtimeapi.ContainerState{"web": running, "db": running}))
	add(objects("stopped", notReady, map[string]runtimeapi.ContainerState{"web": exited, "db": exited}))
	add(objects("leftover", notReady, map[string]runtimeapi.ContainerState{"web": exited, "db": running}))
	add(objects("bare", ready, nil))
	// Objects not made for a pod are none of the loop's business.
	sbs = append(sbs, &runtimeapi.PodSandbox{Id: "foreign", State: ready})
	cs = append(cs, &runtimeapi.Container{Id: "foreign-c", State: running, Labels: map[string]string{"app": "x"}})

	var got []string
	for _, p := range OrphanPods(sbs, cs, func(uid types.UID) bool { return uid == "uid-wanted" }) {
		var names []string
		for _, c := range p.Spec.Containers {
			n := c.Name
			if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Exec != nil {
				n += "(preStop " + strings.Join(c.Lifecycle.PreStop.Exec.Command, " ") + ")"
			}
			names = append(names, n)
		}
		got = append(got, fmt.Sprintf("%s %s/%s grace=%v deletion=%v [%s]", p.UID, p.Namespace, p.Name,
			ptr.Deref(p.Spec.TerminationGracePeriodSeconds, -1), ptr.Deref(p.DeletionGracePeriodSeconds, -1), strings.Join(names, " ")))
	}
	want := []string{
		"uid-bare ns/bare grace=-1 deletion=-1 []",
		"uid-leftover ns/leftover grace=45 deletion=7 [db]",
		"uid-orphan ns/orphan grace=45 deletion=7 [db web(preStop drain)]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("orphans\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}
