package main

import (
	"go.uber.org/zap"

	"github.com/nodekit/nodekit/cpumanager"
)

// cpuManager is the CPU manager the configuration asks for
// (cpuManagerPolicy, cpuManagerPolicyOptions, reservedSystemCPUs or the
// cpu of kubeReserved and systemReserved, cpuManagerReconcilePeriod), with
// the machine's topology read from sysfs for the static policy and the
// kubelet's checkpoint at rootDir/cpu_manager_state: a kubelet and the
// agent given the same root directory read each other's.
func (a *agent) cpuManager() (*cpumanager.ManagerConfig, error) {
	var topo *cpumanager.Topology
	if a.cfg.CPUManagerPolicy == cpumanager.PolicyStatic {
		var err error
		if topo, err = cpumanager.DiscoverTopology("/"); err != nil {
			return nil, err
		}
		a.log.Info("CPU topology discovered", zap.Stringer("topology", topo))
	}
	policy, err := a.cfg.CPUPolicy(topo)
	if err != nil {
		return nil, err
	}
	alloc, err := cpumanager.NewAllocator(cpumanager.AllocatorConfig{Policy: policy, StateDir: a.rootDir, Logger: a.log.Named("cpumanager")})
	if err != nil {
		return nil, err
	}
	return &cpumanager.ManagerConfig{Allocator: alloc, ReconcilePeriod: a.cfg.CPUManagerReconcilePeriod.Duration}, nil
}
