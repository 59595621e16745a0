package statusmgr

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodekit/nodekit/core"
)

func TestPhase(t *testing.T) {
	two := func(policy v1.RestartPolicy) v1.PodSpec {
		return v1.PodSpec{Containers: names("A", "B"), RestartPolicy: policy}
	}
	withInit := func(policy v1.RestartPolicy, init ...v1.Container) v1.PodSpec {
		return v1.PodSpec{InitContainers: init, Containers: names("A", "B"), RestartPolicy: policy}
	}
	ruleC := restartAllOn(v1.Container{Name: "C"}, 42)
	ruleSidecar := restartAllOn(sidecar("C"), 42)

	type tc struct {
		name        string
		spec        v1.PodSpec
		statuses    []string
		terminal    bool
		initialized bool
		want        v1.PodPhase
	}
	cases := []tc{
		// restartPolicy Always.
		{"always: nothing yet", two(v1.RestartPolicyAlways), nil, false, false, v1.PodPending},
		{"always: all running", two(v1.RestartPolicyAlways), []string{"A=running", "B=running"}, false, false, v1.PodRunning},
		{"always: all stopped", two(v1.RestartPolicyAlways), []string{"A=exited:0", "B=exited:1"}, false, false, v1.PodRunning},
		{"always: all succeeded, terminal", two(v1.RestartPolicyAlways), []string{"A=exited:0", "B=exited:0"}, true, false, v1.PodSucceeded},
		{"always: one failed, terminal", two(v1.RestartPolicyAlways), []string{"A=exited:0", "B=exited:-1"}, true, false, v1.PodFailed},
		{"always: running and stopped", two(v1.RestartPolicyAlways), []string{"A=running", "B=exited:0"}, false, false, v1.PodRunning},
		{"always: one unknown", two(v1.RestartPolicyAlways), []string{"A=running"}, false, false, v1.PodPending},
		{"always: one waiting", two(v1.RestartPolicyAlways), []string{"A=running", "B=waiting"}, false, false, v1.PodPending},
		{"always: crash loop", two(v1.RestartPolicyAlways), []string{"A=running", "B=crash:0"}, false, false, v1.PodRunning},
		{"always: no state", two(v1.RestartPolicyAlways), []string{"A=none", "B=running"}, false, false, v1.PodPending},

		// restartPolicy Always, init containers.
		{"always init: init running", withInit(v1.RestartPolicyAlways, names("X")...), []string{"X=running"}, false, false, v1.PodPending},
		{"always init: init failed", withInit(v1.RestartPolicyAlways, names("X")...), []string{"X=exited:-1"}, false, false, v1.PodPending},
		{"always init: init crash loop", withInit(v1.RestartPolicyAlways, names("X")...), []string{"X=crash:-1"}, false, false, v1.PodPending},
		{"always init: init waiting", withInit(v1.RestartPolicyAlways, names("X")...), []string{"X=waiting"}, false, false, v1.PodPending},
		{"always init: init succeeded", withInit(v1.RestartPolicyAlways, names("X")...), []string{"X=exited:0", "A=running", "B=running"}, false, false, v1.PodRunning},

		// restartPolicy Always, a sidecar.
		{"sidecar running", withInit(v1.RestartPolicyAlways, sidecar("X")), []string{"X=running"}, false, false, v1.PodPending},
		{"sidecar stopped", withInit(v1.RestartPolicyAlways, sidecar("X")), []string{"X=exited:0"}, false, false, v1.PodPending},
		{"sidecar crash loop", withInit(v1.RestartPolicyAlways, sidecar("X")), []string{"X=crash:-1"}, false, false, v1.PodPending},
		{"sidecar waiting", withInit(v1.RestartPolicyAlways, sidecar("X")), []string{"X=waiting"}, false, false, v1.PodPending},
		{"sidecar started, one regular running", withInit(v1.RestartPolicyAlways, sidecar("X")), []string{"X=started", "A=running"}, false, true, v1.PodPending},
		{"sidecar started, all running", withInit(v1.RestartPolicyAlways, sidecar("X")), []string{"X=started", "A=running", "B=running"}, false, true, v1.PodRunning},
		{"sidecar not started, initialized", withInit(v1.RestartPolicyAlways, sidecar("X")), []string{"X=running", "A=running", "B=running"}, false, true, v1.PodRunning},
		{"sidecar stopped, all running", withInit(v1.RestartPolicyAlways, sidecar("X")), []string{"X=exited:0", "A=running", "B=running"}, false, true, v1.PodRunning},
		{"sidecar crash loop, all running", withInit(v1.RestartPolicyAlways, sidecar("X")), []string{"X=crash:0", "A=running", "B=running"}, false, true, v1.PodRunning},
		{"sidecar failed, all succeeded, terminal", withInit(v1.RestartPolicyAlways, sidecar("X")), []string{"X=exited:-1", "A=exited:0", "B=exited:0"}, true, true, v1.PodSucceeded},
		{"new sandbox: initializing again", withInit(v1.RestartPolicyAlways, sidecar("X")), []string{"X=running", "A=running", "B=running"}, false, false, v1.PodPending},

		// restartPolicy Always, an init container then a sidecar.
		{"has run: all running", v1.PodSpec{InitContainers: []v1.Container{{Name: "X"}, sidecar("Y")}, Containers: names("A")}, []string{"X=running", "Y=running", "A=running"}, false, false, v1.PodPending},
		{"has run: regular stopped", v1.PodSpec{InitContainers: []v1.Container{{Name: "X"}, sidecar("Y")}, Containers: names("A")}, []string{"X=running", "Y=running", "A=exited:0"}, false, false, v1.PodPending},
		{"has run: new sandbox", v1.PodSpec{InitContainers: []v1.Container{{Name: "X"}, sidecar("Y")}, Containers: names("A")}, []string{"X=exited:0", "Y=running", "A=exited:0"}, false, false, v1.PodPending},
		{"has run: initialized, regular stopped", v1.PodSpec{InitContainers: []v1.Container{{Name: "X"}, sidecar("Y")}, Containers: names("A")}, []string{"X=exited:0", "Y=running", "A=exited:0"}, false, true, v1.PodRunning},
		{"has run: initialized, all running", v1.PodSpec{InitContainers: []v1.Container{{Name: "X"}, sidecar("Y")}, Containers: names("A")}, []string{"X=exited:0", "Y=running", "A=running"}, false, true, v1.PodRunning},

		// restartPolicy Never.
		{"never: all running", two(v1.RestartPolicyNever), []string{"A=running", "B=running"}, false, false, v1.PodRunning},
		{"never: all succeeded", two(v1.RestartPolicyNever), []string{"A=exited:0", "B=exited:0"}, false, false, v1.PodSucceeded},
		{"never: all failed", two(v1.RestartPolicyNever), []string{"A=exited:-1", "B=exited:-1"}, false, false, v1.PodFailed},
		{"never: running and succeeded", two(v1.RestartPolicyNever), []string{"A=running", "B=exited:0"}, false, false, v1.PodRunning},
		{"never: one unknown", two(v1.RestartPolicyNever), []string{"A=running"}, false, false, v1.PodPending},
		{"never: one waiting", two(v1.RestartPolicyNever), []string{"A=running", "B=waiting"}, false, false, v1.PodPending},
		{"never init: running", withInit(v1.RestartPolicyNever, names("X")...), []string{"X=running"}, false, false, v1.PodPending},
		{"never init: failed", withInit(v1.RestartPolicyNever, names("X")...), []string{"X=exited:-1"}, false, false, v1.PodFailed},
		{"never init: waiting after 0", withInit(v1.RestartPolicyNever, names("X")...), []string{"X=crash:0"}, false, false, v1.PodPending},
		{"never init: waiting after failure", withInit(v1.RestartPolicyNever, names("X")...), []string{"X=crash:-1"}, false, false, v1.PodFailed},
		{"never init: waiting", withInit(v1.RestartPolicyNever, names("X")...), []string{"X=waiting"}, false, false, v1.PodPending},
		{"never init: succeeded", withInit(v1.RestartPolicyNever, names("X")...), []string{"X=exited:0", "A=running", "B=running"}, false, false, v1.PodRunning},
		{"never sidecar: started, one running", withInit(v1.RestartPolicyNever, sidecar("X")), []string{"X=started", "A=running"}, false, true, v1.PodPending},
		{"never sidecar: started, regulars succeeded", withInit(v1.RestartPolicyNever, sidecar("X")), []string{"X=started", "A=exited:0", "B=exited:0"}, false, true, v1.PodRunning},
		{"never sidecar: all succeeded", withInit(v1.RestartPolicyNever, sidecar("X")), []string{"X=exited:0", "A=exited:0", "B=exited:0"}, false, true, v1.PodSucceeded},
		{"never sidecar: sidecar failed, regulars succeeded", withInit(v1.RestartPolicyNever, sidecar("X")), []string{"X=exited:-1", "A=exited:0", "B=exited:0"}, false, true, v1.PodSucceeded},
		{"never sidecar: sidecar crash loop, regulars succeeded", withInit(v1.RestartPolicyNever, sidecar("X")), []string{"X=crash:-1", "A=exited:0", "B=exited:0"}, false, true, v1.PodSucceeded},

		// restartPolicy OnFailure.
		{"onfailure: all succeeded", two(v1.RestartPolicyOnFailure), []string{"A=exited:0", "B=exited:0"}, false, false, v1.PodSucceeded},
		{"onfailure: all failed", two(v1.RestartPolicyOnFailure), []string{"A=exited:-1", "B=exited:-1"}, false, false, v1.PodRunning},
		{"onfailure: all failed, terminal", two(v1.RestartPolicyOnFailure), []string{"A=exited:-1", "B=exited:-1"}, true, false, v1.PodFailed},
		{"onfailure: running and succeeded", two(v1.RestartPolicyOnFailure), []string{"A=running", "B=exited:0"}, false, false, v1.PodRunning},
		{"onfailure: crash loop", two(v1.RestartPolicyOnFailure), []string{"A=running", "B=crash:0"}, false, false, v1.PodRunning},

		// Container restart policies.
		{"container Never failed", v1.PodSpec{Containers: []v1.Container{{Name: "A", RestartPolicy: &policyNever}}}, []string{"A=exited:-1"}, false, true, v1.PodFailed},
		{"container OnFailure failed", v1.PodSpec{Containers: []v1.Container{{Name: "A", RestartPolicy: &policyOnFailure}}}, []string{"A=exited:-1"}, false, true, v1.PodRunning},
		{"container Always failed", v1.PodSpec{Containers: []v1.Container{{Name: "A", RestartPolicy: &policyAlways}}}, []string{"A=exited:-1"}, false, true, v1.PodRunning},
		{"one restartable of two", v1.PodSpec{Containers: []v1.Container{{Name: "A", RestartPolicy: &policyAlways}, {Name: "B"}}, RestartPolicy: v1.RestartPolicyNever}, []string{"A=exited:0", "B=exited:-1"}, false, true, v1.PodRunning},
		{"none restartable", v1.PodSpec{Containers: []v1.Container{{Name: "A", RestartPolicy: &policyNever}, {Name: "B", RestartPolicy: &policyOnFailure}}}, []string{"A=exited:-1", "B=exited:0"}, false, true, v1.PodFailed},
		{"none restartable, succeeded", v1.PodSpec{Containers: []v1.Container{{Name: "A", RestartPolicy: &policyNever}, {Name: "B", RestartPolicy: &policyOnFailure}}}, []string{"A=exited:0", "B=exited:0"}, false, true, v1.PodSucceeded},
		{"init Never failed", v1.PodSpec{InitContainers: []v1.Container{{Name: "X", RestartPolicy: &policyNever}}, Containers: names("A")}, []string{"X=exited:-1"}, false, true, v1.PodFailed},
		{"init OnFailure failed", v1.PodSpec{InitContainers: []v1.Container{{Name: "X", RestartPolicy: &policyOnFailure}}, Containers: names("A"), RestartPolicy: v1.RestartPolicyNever}, []string{"X=exited:-1"}, false, true, v1.PodPending},

		// RestartAllContainers.
		{"rule: regular triggers", v1.PodSpec{Containers: []v1.Container{ruleC}, RestartPolicy: v1.RestartPolicyNever}, []string{"C=exited:42"}, false, true, v1.PodRunning},
		{"rule: regular other code", v1.PodSpec{Containers: []v1.Container{ruleC}, RestartPolicy: v1.RestartPolicyNever}, []string{"C=exited:1"}, false, true, v1.PodFailed},
		{"rule: init triggers", v1.PodSpec{InitContainers: []v1.Container{ruleC}, Containers: names("R"), RestartPolicy: v1.RestartPolicyNever}, []string{"C=exited:42", "R=waiting"}, false, true, v1.PodPending},
		{"rule: sidecar triggers", v1.PodSpec{InitContainers: []v1.Container{ruleSidecar}, Containers: names("R"), RestartPolicy: v1.RestartPolicyNever}, []string{"C=exited:42", "R=waiting"}, false, true, v1.PodPending},
		{"rule: regular cleaned up", v1.PodSpec{Containers: []v1.Container{ruleC}, RestartPolicy: v1.RestartPolicyNever}, []string{"C=restarting-all"}, false, true, v1.PodRunning},
		{"rule: init succeeded, regular cleaned up", v1.PodSpec{InitContainers: names("I"), Containers: []v1.Container{ruleC}, RestartPolicy: v1.RestartPolicyNever}, []string{"I=exited:0", "C=restarting-all"}, false, true, v1.PodRunning},
		{"rule: init failed, regular cleaned up", v1.PodSpec{InitContainers: names("I"), Containers: []v1.Container{ruleC}, RestartPolicy: v1.RestartPolicyNever}, []string{"I=exited:-1", "C=restarting-all"}, false, true, v1.PodFailed},
		{"rule: sidecar killed regular", v1.PodSpec{InitContainers: []v1.Container{ruleSidecar}, Containers: names("R"), RestartPolicy: v1.RestartPolicyNever}, []string{"C=restarting-all", "R=restarting-all"}, false, true, v1.PodRunning},
		{"rule: sidecar running again", v1.PodSpec{InitContainers: []v1.Container{ruleSidecar}, Containers: names("R"), RestartPolicy: v1.RestartPolicyNever}, []string{"C=running", "R=restarting-all"}, false, true, v1.PodRunning},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pod := newPod(c.spec)
			if got := Phase(pod, csts(c.statuses...), c.terminal, c.initialized); got != c.want {
				t.Errorf("Phase(%v, terminal %v, initialized %v) = %s, want %s", c.statuses, c.terminal, c.initialized, got, c.want)
			}
		})
	}
}

// A static pod gets no terminal phase from being terminal, as in the
// kubelet.
func TestPhaseStaticPodNotTerminal(t *testing.T) {
	pod := newPod(v1.PodSpec{Containers: names("A"), RestartPolicy: v1.RestartPolicyAlways})
	statuses := csts("A=exited:1")
	if got := Phase(pod, statuses, true, true); got != v1.PodFailed {
		t.Fatalf("API pod: %s, want Failed", got)
	}
	for source, want := range map[string]v1.PodPhase{core.SourceFile: v1.PodRunning, core.SourceAPI: v1.PodFailed} {
		pod.ObjectMeta = metav1.ObjectMeta{Annotations: map[string]string{core.AnnotationConfigSource: source}}
		if got := Phase(pod, statuses, true, true); got != want {
			t.Errorf("source %s: %s, want %s", source, got, want)
		}
	}
}
