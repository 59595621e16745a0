package cpumanager

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/cpuset"

	"github.com/nodekit/nodekit/core"
)

// NonePolicyConfig configures the none policy.
type NonePolicyConfig struct {
	// Options must be empty: the none policy takes none, and the kubelet
	// refuses to start when given some.
	Options map[string]string
}

// NonePolicy is the kubelet's default CPU manager policy: it pins nothing.
// Every container may run on every CPU (the shared pool stays empty in the
// State, meaning "no cpuset"), and it has no topology preference.
type NonePolicy struct{}

var _ Policy = (*NonePolicy)(nil)

// NewNonePolicy returns the none policy. Options, if any, are an error
// wrapping core.ErrInvalid.
func NewNonePolicy(cfg NonePolicyConfig) (*NonePolicy, error) {
	if len(cfg.Options) > 0 {
		return nil, fmt.Errorf("cpumanager: none policy: Options: received unsupported options=%v: %w", cfg.Options, core.ErrInvalid)
	}
	return &NonePolicy{}, nil
}

// Name returns "none".
func (*NonePolicy) Name() string { return PolicyNone }

// Start accepts any state.
func (*NonePolicy) Start(*State) error { return nil }

// Allocate assigns nothing.
func (*NonePolicy) Allocate(*State, *v1.Pod, *v1.Container) (cpuset.CPUSet, error) {
	return cpuset.New(), nil
}

// RemoveContainer releases nothing.
func (*NonePolicy) RemoveContainer(*State, string, string) cpuset.CPUSet { return cpuset.New() }

// TopologyHints has no preference.
func (*NonePolicy) TopologyHints(*State, *v1.Pod, *v1.Container) map[string][]TopologyHint {
	return nil
}

// PodTopologyHints has no preference.
func (*NonePolicy) PodTopologyHints(*State, *v1.Pod) map[string][]TopologyHint { return nil }

// AllocatableCPUs is empty: nothing is ever exclusive.
func (*NonePolicy) AllocatableCPUs() cpuset.CPUSet { return cpuset.New() }

// AvailableCPUs is empty: nothing is ever exclusive.
func (*NonePolicy) AvailableCPUs(*State) cpuset.CPUSet { return cpuset.New() }
