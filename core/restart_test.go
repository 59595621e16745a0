package core_test

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/nodekit/nodekit/core"
)

func TestContainerShouldRestart(t *testing.T) {
	in := func(codes ...int32) []v1.ContainerRestartRule {
		return []v1.ContainerRestartRule{{Action: v1.ContainerRestartRuleActionRestart,
			ExitCodes: &v1.ContainerRestartRuleOnExitCodes{Operator: v1.ContainerRestartRuleOnExitCodesOpIn, Values: codes}}}
	}
	never := ptr.To(v1.ContainerRestartPolicyNever)
	for _, tc := range []struct {
		name   string
		c      v1.Container
		pod    v1.RestartPolicy
		code   int32
		expect bool
	}{
		{"pod Always, exit 0", v1.Container{}, v1.RestartPolicyAlways, 0, true},
		{"pod default is Always", v1.Container{}, "", 0, true},
		{"pod OnFailure, exit 0", v1.Container{}, v1.RestartPolicyOnFailure, 0, false},
		{"pod OnFailure, exit 1", v1.Container{}, v1.RestartPolicyOnFailure, 1, true},
		{"pod Never", v1.Container{}, v1.RestartPolicyNever, 1, false},
		{"sidecar", v1.Container{RestartPolicy: ptr.To(v1.ContainerRestartPolicyAlways)}, v1.RestartPolicyNever, 0, true},
		{"own Never beats the pod's Always", v1.Container{RestartPolicy: never}, v1.RestartPolicyAlways, 1, false},
		{"a matching rule beats its own Never", v1.Container{RestartPolicy: never, RestartPolicyRules: in(42)}, v1.RestartPolicyNever, 42, true},
		{"a rule that does not match", v1.Container{RestartPolicy: never, RestartPolicyRules: in(42)}, v1.RestartPolicyNever, 1, false},
		{"rules without an own policy do not count", v1.Container{RestartPolicyRules: in(42)}, v1.RestartPolicyNever, 42, false},
	} {
		if got := core.ContainerShouldRestart(&tc.c, tc.pod, tc.code); got != tc.expect {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.expect)
		}
	}
}
