package cpumanager

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/nodekit/nodekit/core"
)

// The static policy's options, as named in the kubelet's
// --cpu-manager-policy-options (cpuManagerPolicyOptions). Each takes
// "true" or "false".
const (
	// FullPCPUsOnlyOption: exclusive CPUs come as whole physical cores;
	// a request that cannot be met so fails admission with an
	// SMTAlignmentError. Stable.
	FullPCPUsOnlyOption = "full-pcpus-only"
	// DistributeCPUsAcrossNUMAOption: a request that needs more than one
	// NUMA node is spread evenly over the nodes instead of filling one
	// first. Beta.
	DistributeCPUsAcrossNUMAOption = "distribute-cpus-across-numa"
	// AlignBySocketOption: NUMA alignment is widened to the socket: CPUs
	// of the sockets of the chosen NUMA nodes are taken first, and hints
	// spanning the fewest sockets are preferred. Alpha.
	AlignBySocketOption = "align-by-socket"
	// DistributeCPUsAcrossCoresOption: a container's threads go to
	// different physical cores where possible. Alpha.
	DistributeCPUsAcrossCoresOption = "distribute-cpus-across-cores"
	// StrictCPUReservationOption: reserved CPUs leave the shared pool too,
	// so no pod container runs on them. Stable.
	StrictCPUReservationOption = "strict-cpu-reservation"
	// PreferAlignByUncoreCacheOption: exclusive CPUs are taken from as
	// few uncore (L3) cache groups as possible. Stable.
	PreferAlignByUncoreCacheOption = "prefer-align-cpus-by-uncorecache"
)

type optionLevel int

const (
	optionStable optionLevel = iota
	optionBeta
	optionAlpha
)

var staticOptionLevels = map[string]optionLevel{
	FullPCPUsOnlyOption:             optionStable,
	StrictCPUReservationOption:      optionStable,
	PreferAlignByUncoreCacheOption:  optionStable,
	DistributeCPUsAcrossNUMAOption:  optionBeta,
	AlignBySocketOption:             optionAlpha,
	DistributeCPUsAcrossCoresOption: optionAlpha,
}

// StaticPolicyOptions are the parsed options of the static policy.
type StaticPolicyOptions struct {
	FullPhysicalCPUsOnly      bool
	DistributeCPUsAcrossNUMA  bool
	AlignBySocket             bool
	DistributeCPUsAcrossCores bool
	StrictCPUReservation      bool
	PreferAlignByUncoreCache  bool
}

// parseStaticPolicyOptions reads the options map as the kubelet does:
// unknown names, options of a level that is not enabled (alpha unless
// alpha, beta unless beta) and values that are not booleans are errors, as
// are the combinations the kubelet forbids. Errors wrap core.ErrInvalid
// and name the option.
func parseStaticPolicyOptions(options map[string]string, alpha, beta bool) (StaticPolicyOptions, error) {
	var o StaticPolicyOptions
	for _, name := range slices.Sorted(maps.Keys(options)) {
		level, known := staticOptionLevels[name]
		switch {
		case !known:
			return o, fmt.Errorf("unknown CPU Manager Policy option: %q: %w", name, core.ErrInvalid)
		case level == optionAlpha && !alpha:
			return o, fmt.Errorf("CPU Manager Policy Alpha-level Options not enabled, but option %q provided: %w", name, core.ErrInvalid)
		case level == optionBeta && !beta:
			return o, fmt.Errorf("CPU Manager Policy Beta-level Options not enabled, but option %q provided: %w", name, core.ErrInvalid)
		}
		v, err := strconv.ParseBool(options[name])
		if err != nil {
			return o, fmt.Errorf("bad value for option %q: %w: %w", name, err, core.ErrInvalid)
		}
		switch name {
		case FullPCPUsOnlyOption:
			o.FullPhysicalCPUsOnly = v
		case DistributeCPUsAcrossNUMAOption:
			o.DistributeCPUsAcrossNUMA = v
		case AlignBySocketOption:
			o.AlignBySocket = v
		case DistributeCPUsAcrossCoresOption:
			o.DistributeCPUsAcrossCores = v
		case StrictCPUReservationOption:
			o.StrictCPUReservation = v
		case PreferAlignByUncoreCacheOption:
			o.PreferAlignByUncoreCache = v
		}
	}
	for _, pair := range []struct {
		a, b       string
		aSet, bSet bool
	}{
		{FullPCPUsOnlyOption, DistributeCPUsAcrossCoresOption, o.FullPhysicalCPUsOnly, o.DistributeCPUsAcrossCores},
		{DistributeCPUsAcrossNUMAOption, DistributeCPUsAcrossCoresOption, o.DistributeCPUsAcrossNUMA, o.DistributeCPUsAcrossCores},
		{PreferAlignByUncoreCacheOption, DistributeCPUsAcrossCoresOption, o.PreferAlignByUncoreCache, o.DistributeCPUsAcrossCores},
		{PreferAlignByUncoreCacheOption, DistributeCPUsAcrossNUMAOption, o.PreferAlignByUncoreCache, o.DistributeCPUsAcrossNUMA},
	} {
		if pair.aSet && pair.bSet {
			return o, fmt.Errorf("static policy options %s and %s can not be used at the same time: %w", pair.a, pair.b, core.ErrInvalid)
		}
	}
	return o, nil
}

// validateForMachine rejects options the machine or the topology manager
// cannot honour.
func (o StaticPolicyOptions) validateForMachine(topo *Topology, topologyManagerPolicy string) error {
	if !o.AlignBySocket {
		return nil
	}
	if topologyManagerPolicy == "single-numa-node" {
		return fmt.Errorf("option %s: topology manager policy single-numa-node is incompatible with it: %w", AlignBySocketOption, core.ErrInvalid)
	}
	if topo.NumSockets > topo.NumNUMANodes {
		return fmt.Errorf("option %s: not compatible with hardware where number of sockets (%d) is more than number of NUMA nodes (%d): %w", AlignBySocketOption, topo.NumSockets, topo.NumNUMANodes, core.ErrInvalid)
	}
	return nil
}
