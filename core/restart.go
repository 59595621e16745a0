package core

import (
	"slices"

	v1 "k8s.io/api/core/v1"
)

// IsSidecar reports whether an init container is a sidecar: one with
// restartPolicy Always, which starts among the init containers and keeps
// running beside the regular ones.
func IsSidecar(c *v1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
}

// ContainerShouldRestart is the kubelet's rule for whether container c,
// which exited with exitCode, runs again: its first matching
// restartPolicyRule decides (Restart and RestartAllContainers: yes), else
// its own restartPolicy, else the pod's (podPolicy; empty means Always).
// Rules and a container's own policy count only for containers that have
// a restartPolicy (sidecars and, with ContainerRestartRules, any
// container).
func ContainerShouldRestart(c *v1.Container, podPolicy v1.RestartPolicy, exitCode int32) bool {
	if c.RestartPolicy != nil {
		if rule, ok := MatchRestartRule(c, exitCode); ok {
			switch rule.Action {
			case v1.ContainerRestartRuleActionRestart, v1.ContainerRestartRuleActionRestartAllContainers:
				return true
			}
		}
		switch *c.RestartPolicy {
		case v1.ContainerRestartPolicyAlways:
			return true
		case v1.ContainerRestartPolicyOnFailure:
			return exitCode != 0
		case v1.ContainerRestartPolicyNever:
			return false
		}
	}
	switch podPolicy {
	case v1.RestartPolicyOnFailure:
		return exitCode != 0
	case v1.RestartPolicyNever:
		return false
	default:
		return true
	}
}

// MatchRestartRule returns the first of c's restartPolicyRules whose exit
// codes match exitCode.
func MatchRestartRule(c *v1.Container, exitCode int32) (v1.ContainerRestartRule, bool) {
	for _, rule := range c.RestartPolicyRules {
		if rule.ExitCodes == nil {
			continue
		}
		in := slices.Contains(rule.ExitCodes.Values, exitCode)
		switch rule.ExitCodes.Operator {
		case v1.ContainerRestartRuleOnExitCodesOpIn:
			if in {
				return rule, true
			}
		case v1.ContainerRestartRuleOnExitCodesOpNotIn:
			if !in {
				return rule, true
			}
		}
	}
	return v1.ContainerRestartRule{}, false
}
