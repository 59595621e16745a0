package kubeletconfig

import (
	"fmt"
	"maps"
	"math"
	"strconv"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/cpuset"

	"github.com/nodekit/nodekit/cpumanager"
)

// Reserved returns kubeReserved and systemReserved as the kubelet uses
// them: when reservedSystemCPUs is set, it replaces their cpu (kubeReserved
// loses its cpu, systemReserved's becomes the number of CPUs listed). The
// maps are copies. Call it on a validated configuration.
func (c *Config) Reserved() (kube, system map[string]string) {
	kube, system = maps.Clone(c.KubeReserved), maps.Clone(c.SystemReserved)
	if c.ReservedSystemCPUs == "" {
		return kube, system
	}
	cpus, err := cpuset.Parse(c.ReservedSystemCPUs)
	if err != nil || cpus.IsEmpty() {
		return kube, system
	}
	delete(kube, "cpu")
	if system == nil {
		system = map[string]string{}
	}
	system["cpu"] = strconv.Itoa(cpus.Size())
	return kube, system
}

// CPUPolicy is the CPU manager policy the configuration asks for
// on a machine of topology topo, as the kubelet builds it:
// cpuManagerPolicy none or static with cpuManagerPolicyOptions (beta
// options allowed, alpha ones not: Kubernetes 1.37's default feature
// gates). The static policy reserves the CPUs of reservedSystemCPUs, which
// must be CPUs of the machine; without them, ceil(kubeReserved.cpu +
// systemReserved.cpu) CPUs picked by topology, which must be at least one.
// topo is only read for the static policy. Each error names its field.
func (c *Config) CPUPolicy(topo *cpumanager.Topology) (cpumanager.Policy, error) {
	wrap := func(field string, err error) error {
		return fmt.Errorf("kubelet configuration %s: %s: %w", c.source(), field, err)
	}
	switch c.CPUManagerPolicy {
	case cpumanager.PolicyNone:
		p, err := cpumanager.NewNonePolicy(cpumanager.NonePolicyConfig{Options: c.CPUManagerPolicyOptions})
		if err != nil {
			return nil, wrap("cpuManagerPolicyOptions", err)
		}
		return p, nil
	case cpumanager.PolicyStatic:
	default:
		return nil, wrap("cpuManagerPolicy", fmt.Errorf("%q: want none or static", c.CPUManagerPolicy))
	}
	if topo == nil {
		return nil, wrap("cpuManagerPolicy", fmt.Errorf("static: the machine's CPU topology is unknown"))
	}
	sc := cpumanager.StaticPolicyConfig{Topology: topo, Options: c.CPUManagerPolicyOptions}
	if c.ReservedSystemCPUs != "" {
		cpus, err := cpuset.Parse(c.ReservedSystemCPUs)
		if err != nil {
			return nil, wrap("reservedSystemCPUs", fmt.Errorf("%q: %w", c.ReservedSystemCPUs, err))
		}
		if !cpus.IsSubsetOf(topo.CPUs()) {
			return nil, wrap("reservedSystemCPUs", fmt.Errorf("%q is not a subset of the online CPUs %s", c.ReservedSystemCPUs, topo.CPUs()))
		}
		sc.ReservedCPUs = cpus
	}
	if sc.ReservedCPUs.IsEmpty() {
		var total resource.Quantity
		for field, rl := range map[string]map[string]string{"kubeReserved": c.KubeReserved, "systemReserved": c.SystemReserved} {
			v, ok := rl["cpu"]
			if !ok {
				continue
			}
			q, err := resource.ParseQuantity(v)
			if err != nil {
				return nil, wrap(field+".cpu", fmt.Errorf("%q: %w", v, err))
			}
			total.Add(q)
		}
		// Fractions of a CPU cannot be given exclusively: round up.
		sc.NumReservedCPUs = int(math.Ceil(float64(total.MilliValue()) / 1000))
		if sc.NumReservedCPUs <= 0 {
			return nil, wrap("reservedSystemCPUs", fmt.Errorf("the static policy requires reservedSystemCPUs, or kubeReserved.cpu + systemReserved.cpu greater than zero"))
		}
		if sc.NumReservedCPUs > topo.NumCPUs {
			// Either field may be the one too large: name both.
			return nil, wrap("kubeReserved.cpu + systemReserved.cpu", fmt.Errorf("%s is more than the machine's %d CPUs", total.String(), topo.NumCPUs))
		}
	}
	p, err := cpumanager.NewStaticPolicy(sc)
	if err != nil {
		// The reservation was checked above: what is left is the options.
		return nil, wrap("cpuManagerPolicyOptions", err)
	}
	return p, nil
}

func (c *Config) source() string {
	if c.Source == "" {
		return "(defaults)"
	}
	return c.Source
}
