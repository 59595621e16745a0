package eviction

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nodekit/nodekit/core"
)

// DefaultPressureTransitionPeriod is how long a node condition stays true
// after the last threshold reporting it was met, unless
// Config.EvictionPressureTransitionPeriod says otherwise.
const DefaultPressureTransitionPeriod = 5 * time.Minute

// NodeAllocatableEnforcementPods is the Config.EnforceNodeAllocatable
// entry that makes the hard memory.available thresholds apply to
// allocatableMemory.available too.
const NodeAllocatableEnforcementPods = "pods"

// Config configures a Policy with the kubelet's eviction settings, named
// and shaped as in KubeletConfiguration so that a kubelet's configuration
// file carries over. The zero Config is the kubelet's defaults.
type Config struct {
	// EvictionHard maps signals to hard thresholds: a quantity or a
	// percentage of the signal's capacity ("memory.available": "100Mi",
	// "nodefs.available": "10%"). Pods are evicted as soon as one is met.
	//
	// Nil means DefaultEvictionHard. A map that is not nil, even an empty
	// one, replaces the defaults, as in the kubelet: with
	// {"memory.available": "500Mi"} the disk signals have no hard
	// threshold at all. Set MergeDefaultEvictionSettings to keep the
	// defaults of the signals the map leaves out; "0%" then disables one.
	EvictionHard map[string]string
	// EvictionSoft maps signals to soft thresholds, written as those of
	// EvictionHard. A soft threshold must stay met for its grace period
	// before pods are evicted for it. It has no default.
	EvictionSoft map[string]string
	// EvictionSoftGracePeriod maps signals to the grace period of their
	// soft threshold ("memory.available": "1m30s"). Every soft threshold
	// needs one.
	EvictionSoftGracePeriod map[string]string
	// EvictionMinimumReclaim maps signals to how much more than the
	// threshold must be available before eviction for it stops
	// ("imagefs.available": "2Gi"; a quantity or a percentage).
	EvictionMinimumReclaim map[string]string
	// MergeDefaultEvictionSettings, when EvictionHard is not nil, fills in
	// DefaultEvictionHard for the signals EvictionHard leaves out. The
	// kubelet's default is false: the user's map replaces the defaults.
	MergeDefaultEvictionSettings bool
	// EvictionPressureTransitionPeriod is how long a node condition
	// (MemoryPressure, DiskPressure, PIDPressure) stays true after its
	// thresholds were last met, so that it does not flap. Zero means
	// DefaultPressureTransitionPeriod (5m); negative is invalid.
	EvictionPressureTransitionPeriod time.Duration
	// EvictionMaxPodGracePeriod caps, in seconds, the grace period of a pod
	// evicted for a soft threshold: it gets the smaller of this and its own
	// terminationGracePeriodSeconds. The kubelet's default, 0, stops such
	// pods at once (the runtime then grants its minimum). Negative is
	// invalid.
	EvictionMaxPodGracePeriod int32
	// EnforceNodeAllocatable lists the kubelet's node allocatable
	// enforcement levels. When it holds NodeAllocatableEnforcementPods
	// ("pods"), each hard memory.available threshold is copied onto
	// allocatableMemory.available. Nil means the kubelet's default,
	// ["pods"]; other entries are not looked at here.
	EnforceNodeAllocatable []string
	// LocalStorageCapacityIsolation, when true, evicts pods that outgrow
	// an emptyDir sizeLimit or an ephemeral-storage limit, whether or not
	// the node is under pressure. Nil means the kubelet's default, true.
	LocalStorageCapacityIsolation *bool
}

// Policy is a validated eviction configuration: what Decide and AdmitPod
// decide by. It is immutable and safe for concurrent use.
type Policy struct {
	thresholds   []Threshold
	transition   time.Duration
	maxGrace     int64
	localStorage bool
}

// NewPolicy validates cfg and returns its Policy. Invalid thresholds,
// grace periods or minimum reclaims, and negative durations, are reported
// in an error wrapping core.ErrInvalid that names each setting, signal and
// value at fault.
func NewPolicy(cfg Config) (*Policy, error) {
	hard := cfg.EvictionHard
	switch {
	case hard == nil:
		hard = DefaultEvictionHard()
	case cfg.MergeDefaultEvictionSettings:
		merged := DefaultEvictionHard()
		maps.Copy(merged, hard)
		hard = merged
	}
	thresholds, err := ParseThresholds(hard, cfg.EvictionSoft, cfg.EvictionSoftGracePeriod, cfg.EvictionMinimumReclaim)
	if err != nil {
		return nil, err
	}
	if cfg.EvictionPressureTransitionPeriod < 0 {
		return nil, fmt.Errorf("eviction: EvictionPressureTransitionPeriod %v is negative: %w", cfg.EvictionPressureTransitionPeriod, core.ErrInvalid)
	}
	if cfg.EvictionMaxPodGracePeriod < 0 {
		return nil, fmt.Errorf("eviction: EvictionMaxPodGracePeriod %d is negative: %w", cfg.EvictionMaxPodGracePeriod, core.ErrInvalid)
	}
	if cfg.EvictionPressureTransitionPeriod == 0 {
		cfg.EvictionPressureTransitionPeriod = DefaultPressureTransitionPeriod
	}
	enforce := cfg.EnforceNodeAllocatable
	if enforce == nil {
		enforce = []string{NodeAllocatableEnforcementPods}
	}
	if slices.Contains(enforce, NodeAllocatableEnforcementPods) {
		for _, t := range thresholds {
			if t.Signal == SignalMemoryAvailable && t.Hard() {
				t.Signal = SignalAllocatableMemoryAvailable
				thresholds = append(thresholds, t)
			}
		}
	}
	slices.SortStableFunc(thresholds, compareForReclaim)
	return &Policy{
		thresholds:   thresholds,
		transition:   cfg.EvictionPressureTransitionPeriod,
		maxGrace:     int64(cfg.EvictionMaxPodGracePeriod),
		localStorage: cfg.LocalStorageCapacityIsolation == nil || *cfg.LocalStorageCapacityIsolation,
	}, nil
}

// Thresholds returns the thresholds of the configuration, memory first,
// hard before soft: defaults applied, allocatableMemory.available added,
// and containerfs thresholds as written (ThresholdsFor replaces them).
func (p *Policy) Thresholds() []Threshold { return slices.Clone(p.thresholds) }

// ThresholdsFor returns the thresholds that apply to a node whose
// filesystems are laid out as obs says, the way the kubelet settles them
// once it knows the layout: containerfs.* thresholds from the
// configuration are dropped (the kubelet ignores them) and replaced with
// copies of the nodefs.* thresholds, or of the imagefs.* ones when images
// and writable layers share a dedicated image filesystem.
func (p *Policy) ThresholdsFor(obs Observations) []Threshold {
	from := map[Signal]Signal{SignalNodeFsAvailable: SignalContainerFsAvailable, SignalNodeFsInodesFree: SignalContainerFsInodesFree}
	if obs.DedicatedImageFs && !obs.DedicatedContainerFs {
		from = map[Signal]Signal{SignalImageFsAvailable: SignalContainerFsAvailable, SignalImageFsInodesFree: SignalContainerFsInodesFree}
	}
	out := make([]Threshold, 0, len(p.thresholds)+2)
	var mirrored []Threshold
	for _, t := range p.thresholds {
		if t.Signal == SignalContainerFsAvailable || t.Signal == SignalContainerFsInodesFree {
			continue
		}
		out = append(out, t)
		if to, ok := from[t.Signal]; ok {
			t.Signal = to
			mirrored = append(mirrored, t)
		}
	}
	out = append(out, mirrored...)
	slices.SortStableFunc(out, compareForReclaim)
	return out
}

// PressureTransitionPeriod is how long a node condition stays true after
// its thresholds were last met.
func (p *Policy) PressureTransitionPeriod() time.Duration { return p.transition }

// MaxPodGracePeriodSeconds caps the grace period of pods evicted for a
// soft threshold.
func (p *Policy) MaxPodGracePeriodSeconds() int64 { return p.maxGrace }

// LocalStorageCapacityIsolation reports whether pods are evicted for
// outgrowing their local storage limits.
func (p *Policy) LocalStorageCapacityIsolation() bool { return p.localStorage }

// Relieved reports whether no threshold is met by obs even counting the
// minimum reclaims, hard and soft alike and regardless of grace periods.
// After carrying out a Starvation's NodeReclaim, the driver measures again
// and evicts no pod that round if Relieved says so, as the kubelet does.
func (p *Policy) Relieved(obs Observations) bool {
	if p == nil {
		return true
	}
	return len(thresholdsMet(p.ThresholdsFor(obs), obs.signals(), true)) == 0
}
