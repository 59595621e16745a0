package statusmgr

import (
	"errors"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodekit/nodekit/core"
)

func TestCheckTransition(t *testing.T) {
	cases := []struct {
		name      string
		spec      v1.PodSpec
		old, next v1.PodStatus
		illegal   bool
	}{
		{"always restarts", v1.PodSpec{Containers: names("a"), RestartPolicy: v1.RestartPolicyAlways},
			v1.PodStatus{ContainerStatuses: csts("a=exited:0")}, v1.PodStatus{ContainerStatuses: csts("a=running")}, false},
		{"never: terminated to running", v1.PodSpec{Containers: names("a"), RestartPolicy: v1.RestartPolicyNever},
			v1.PodStatus{ContainerStatuses: csts("a=exited:1")}, v1.PodStatus{ContainerStatuses: csts("a=running")}, true},
		{"never: terminated to waiting", v1.PodSpec{Containers: names("a"), RestartPolicy: v1.RestartPolicyNever},
			v1.PodStatus{ContainerStatuses: csts("a=exited:1")}, v1.PodStatus{ContainerStatuses: csts("a=crash:1")}, true},
		{"never: terminated stays", v1.PodSpec{Containers: names("a"), RestartPolicy: v1.RestartPolicyNever},
			v1.PodStatus{ContainerStatuses: csts("a=exited:1")}, v1.PodStatus{ContainerStatuses: csts("a=exited:1")}, false},
		{"onfailure: failed restarts", v1.PodSpec{Containers: names("a"), RestartPolicy: v1.RestartPolicyOnFailure},
			v1.PodStatus{ContainerStatuses: csts("a=exited:1")}, v1.PodStatus{ContainerStatuses: csts("a=running")}, false},
		{"onfailure: succeeded does not", v1.PodSpec{Containers: names("a"), RestartPolicy: v1.RestartPolicyOnFailure},
			v1.PodStatus{ContainerStatuses: csts("a=exited:0")}, v1.PodStatus{ContainerStatuses: csts("a=running")}, true},
		{"container policy Always in a Never pod", v1.PodSpec{Containers: []v1.Container{{Name: "a", RestartPolicy: &policyAlways}}, RestartPolicy: v1.RestartPolicyNever},
			v1.PodStatus{ContainerStatuses: csts("a=exited:0")}, v1.PodStatus{ContainerStatuses: csts("a=running")}, false},
		{"init container completed", v1.PodSpec{InitContainers: names("i"), Containers: names("a"), RestartPolicy: v1.RestartPolicyOnFailure},
			v1.PodStatus{InitContainerStatuses: csts("i=exited:0")}, v1.PodStatus{InitContainerStatuses: csts("i=running")}, true},
		{"sidecar", v1.PodSpec{InitContainers: []v1.Container{sidecar("s")}, Containers: names("a"), RestartPolicy: v1.RestartPolicyNever},
			v1.PodStatus{InitContainerStatuses: csts("s=exited:0")}, v1.PodStatus{InitContainerStatuses: csts("s=running")}, false},
		{"restart-all rule", v1.PodSpec{Containers: []v1.Container{restartAllOn(v1.Container{Name: "a"}, 42)}, RestartPolicy: v1.RestartPolicyNever},
			v1.PodStatus{ContainerStatuses: csts("a=exited:1")}, v1.PodStatus{ContainerStatuses: csts("a=running")}, false},
		{"status does not match the spec", v1.PodSpec{InitContainers: names("i"), Containers: names("a"), RestartPolicy: v1.RestartPolicyNever},
			v1.PodStatus{InitContainerStatuses: csts("j=exited:0")}, v1.PodStatus{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckTransition(newPod(c.spec), &c.old, &c.next)
			if (err != nil) != c.illegal {
				t.Fatalf("CheckTransition = %v, want illegal %v", err, c.illegal)
			}
			if err != nil && !errors.Is(err, core.ErrInvalid) {
				t.Errorf("error %v does not wrap core.ErrInvalid", err)
			}
		})
	}
}

func TestActiveDeadlineExceeded(t *testing.T) {
	sixty := int64(60)
	pod := newPod(v1.PodSpec{Containers: names("a"), ActiveDeadlineSeconds: &sixty})
	started := &v1.PodStatus{StartTime: &metav1.Time{Time: at(0)}}
	cases := []struct {
		name   string
		pod    *v1.Pod
		status *v1.PodStatus
		now    time.Time
		want   bool
	}{
		{"time left", pod, started, at(59), false},
		{"deadline reached", pod, started, at(60), true},
		{"no start time", pod, &v1.PodStatus{}, at(600), false},
		{"no status", pod, nil, at(600), false},
		{"no deadline", newPod(v1.PodSpec{Containers: names("a")}), started, at(600), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ActiveDeadlineExceeded(c.pod, c.status, c.now)
			if (got != nil) != c.want {
				t.Fatalf("ActiveDeadlineExceeded = %+v, want eviction %v", got, c.want)
			}
			if got != nil && (got.Reason != "DeadlineExceeded" || got.Message != "Pod was active on the node longer than the specified deadline" || got.DisruptionTarget) {
				t.Errorf("eviction %+v", got)
			}
		})
	}

	// Fed to Generate, it fails the pod.
	rt := runtimeStatus(readySandbox, running("a", "a1", 1))
	prev := Generate(Input{Pod: pod, Runtime: rt, Now: at(0)})
	s := Generate(Input{Pod: pod, Previous: &prev, Runtime: rt, Evict: ActiveDeadlineExceeded(pod, &prev, at(61)), Now: at(61)})
	if s.Phase != v1.PodFailed || s.Reason != ReasonDeadlineExceeded || findCondition(s.Conditions, v1.DisruptionTarget) != nil {
		t.Errorf("deadline exceeded: phase %s reason %q conditions %+v", s.Phase, s.Reason, s.Conditions)
	}
}
