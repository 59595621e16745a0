package cpumanager

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/cpuset"

	"github.com/nodekit/nodekit/core"
)

// AllocatorConfig configures an Allocator.
type AllocatorConfig struct {
	// Policy decides the CPUs: a *StaticPolicy or a *NonePolicy.
	// Required.
	Policy Policy
	// StateDir is where the checkpoint lives: the kubelet's root
	// directory (/var/lib/kubelet) to share the kubelet's file. Empty
	// keeps the state in memory only.
	StateDir string
	// StateFileName defaults to CheckpointFileName.
	StateFileName string
	Logger        *zap.Logger
}

// Allocator is the CPU manager's driver: it keeps the State behind a lock,
// runs the Policy on it, and writes the checkpoint after every change. It
// implements HintProvider. All methods are safe for concurrent use.
//
// A change is made on a copy of the state and takes effect only once the
// checkpoint is written, so a failed write leaves both the file and the
// allocator as they were, and the call reports the error (the kubelet
// instead logs it and goes on with a state its file no longer matches).
type Allocator struct {
	policy Policy
	path   string
	log    *zap.Logger
	fsys   fileSystem

	mu    sync.Mutex
	state State
}

var _ HintProvider = (*Allocator)(nil)

// NewAllocator restores the state from the checkpoint, as the kubelet's
// CPU manager does when it starts: a missing file starts empty; a file
// that cannot be read (ErrCorruptCheckpoint), or that was written under
// another policy or for other CPUs (ErrCheckpointMismatch), is an error
// telling the operator to drain the node and delete the file. The
// policy's Start then fills or checks the state, and the result is
// written back. Temporary files left by a crash during an earlier write
// are removed.
func NewAllocator(cfg AllocatorConfig) (*Allocator, error) {
	if cfg.Policy == nil {
		return nil, fmt.Errorf("cpumanager: allocator: Policy is required: %w", core.ErrInvalid)
	}
	if cfg.StateFileName == "" {
		cfg.StateFileName = CheckpointFileName
	}
	if filepath.Base(cfg.StateFileName) != cfg.StateFileName {
		return nil, fmt.Errorf("cpumanager: allocator: StateFileName %q must be a plain file name: %w", cfg.StateFileName, core.ErrInvalid)
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	a := &Allocator{policy: cfg.Policy, log: cfg.Logger, fsys: osFiles{}}
	if cfg.StateDir != "" {
		a.path = filepath.Join(cfg.StateDir, cfg.StateFileName)
	}
	if err := a.restore(); err != nil {
		return nil, err
	}
	return a, nil
}

// restore loads, checks and rewrites the state.
func (a *Allocator) restore() error {
	var s State
	found := false
	if a.path != "" {
		if err := removeStaleTempFiles(a.path); err != nil {
			a.log.Warn("could not remove temporary checkpoint files", zap.String("path", a.path), zap.Error(err))
		}
		b, err := os.ReadFile(a.path)
		switch {
		case err == nil:
			_, s, err = unmarshalCheckpoint(b, a.policy.Name())
			if err != nil {
				return a.restoreError(err)
			}
			found = true
		case errors.Is(err, os.ErrNotExist):
		default:
			return fmt.Errorf("cpumanager: read checkpoint: %w", err)
		}
	}
	before := s.Clone()
	if err := a.policy.Start(&s); err != nil {
		return a.restoreError(fmt.Errorf("%w: invalid state: %w", ErrCheckpointMismatch, err))
	}
	if a.path != "" && (!found || !s.equal(&before)) {
		if err := WriteCheckpoint(a.path, a.policy.Name(), &s); err != nil {
			return err
		}
	}
	a.state = s
	a.log.Info("CPU manager state restored", zap.String("policy", a.policy.Name()),
		zap.Stringer("defaultCPUSet", s.DefaultCPUSet), zap.Stringer("assignments", s.Assignments))
	return nil
}

func (a *Allocator) restoreError(err error) error {
	where := a.path
	if where == "" {
		where = "(in memory)"
	}
	return fmt.Errorf("cpumanager: could not restore state from checkpoint: %w; drain this node and delete the CPU manager checkpoint file %q before restarting", err, where)
}

// update runs f on a copy of the state and, if the stored content
// changed, persists the copy before making it current.
func (a *Allocator) update(f func(s *State) error) error {
	next := a.state.Clone()
	if err := f(&next); err != nil {
		return err
	}
	if a.path != "" && !next.equal(&a.state) {
		b, err := MarshalCheckpoint(a.policy.Name(), &next)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(a.fsys, a.path, b); err != nil {
			return err
		}
	}
	a.state = next
	return nil
}

// Allocate assigns a container its CPUs at pod admission (init containers
// first, then app containers, in spec order) and returns its exclusive
// CPUs: empty when it runs in the shared pool. Errors: an
// SMTAlignmentError under full-pcpus-only, a request larger than the free
// CPUs, or a failed checkpoint write; the state is then unchanged and the
// pod should be rejected.
func (a *Allocator) Allocate(pod *v1.Pod, container *v1.Container) (cpuset.CPUSet, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var got cpuset.CPUSet
	err := a.update(func(s *State) error {
		var err error
		got, err = a.policy.Allocate(s, pod, container)
		return err
	})
	if err != nil {
		a.log.Info("CPU allocation failed", zap.String("pod", pod.Namespace+"/"+pod.Name),
			zap.String("podUID", string(pod.UID)), zap.String("container", container.Name), zap.Error(err))
		return cpuset.New(), err
	}
	if !got.IsEmpty() {
		a.log.Debug("exclusive CPUs assigned", zap.String("podUID", string(pod.UID)),
			zap.String("container", container.Name), zap.Stringer("cpus", got))
	}
	return got, nil
}

// RemoveContainer releases a container's exclusive CPUs to the shared pool
// and returns those released. Removing a container without exclusive CPUs
// does nothing.
func (a *Allocator) RemoveContainer(podUID, containerName string) (cpuset.CPUSet, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var released cpuset.CPUSet
	err := a.update(func(s *State) error {
		released = a.policy.RemoveContainer(s, podUID, containerName)
		return nil
	})
	if err != nil {
		return cpuset.New(), err
	}
	return released, nil
}

// RemoveStaleContainers releases the CPUs of every container in the state
// that is not a container of one of the active pods (the kubelet's
// removeStaleState, which it runs before each allocation once all pod
// sources are ready). It returns how many containers it released.
func (a *Allocator) RemoveStaleContainers(active []*v1.Pod) (int, error) {
	live := map[string]map[string]bool{}
	for _, pod := range active {
		names := map[string]bool{}
		for _, list := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
			for i := range list {
				names[list[i].Name] = true
			}
		}
		live[string(pod.UID)] = names
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	removed := 0
	err := a.update(func(s *State) error {
		removed = 0
		for pod, containers := range s.Assignments {
			for name := range containers {
				if !live[pod][name] {
					a.policy.RemoveContainer(s, pod, name)
					removed++
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return removed, nil
}

// GetTopologyHints implements HintProvider for one container.
func (a *Allocator) GetTopologyHints(pod *v1.Pod, container *v1.Container) map[string][]TopologyHint {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.policy.TopologyHints(&a.state, pod, container)
}

// GetPodTopologyHints implements HintProvider for a whole pod.
func (a *Allocator) GetPodTopologyHints(pod *v1.Pod) map[string][]TopologyHint {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.policy.PodTopologyHints(&a.state, pod)
}

// CPUSet returns the CPUs a container must run on: its exclusive CPUs,
// else the shared pool as it is now (which shrinks and grows with
// exclusive assignments, so shared containers must be updated when it
// changes). Empty under the none policy: no pinning.
func (a *Allocator) CPUSet(podUID, containerName string) cpuset.CPUSet {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state.CPUSetOrDefault(podUID, containerName)
}

// ExclusiveCPUs returns a container's exclusive CPUs, empty if it has
// none.
func (a *Allocator) ExclusiveCPUs(podUID, containerName string) cpuset.CPUSet {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cset, ok := a.state.CPUSet(podUID, containerName); ok {
		return cset
	}
	return cpuset.New()
}

// State returns a copy of the current state.
func (a *Allocator) State() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state.Clone()
}

// AllocatableCPUs returns every CPU that may be assigned exclusively.
func (a *Allocator) AllocatableCPUs() cpuset.CPUSet { return a.policy.AllocatableCPUs() }

// AllocatorStats are the figures behind the kubelet's CPU manager gauges.
type AllocatorStats struct {
	// ExclusiveCPUs counts the CPUs assigned exclusively:
	// cpu_manager_exclusive_cpu_allocation_count.
	ExclusiveCPUs int
	// ExclusiveContainers counts the containers holding exclusive CPUs.
	ExclusiveContainers int
	// SharedPoolCPUs counts the CPUs that may still be assigned (shared
	// pool minus reserved): cpu_manager_shared_pool_size_millicores is
	// SharedPoolCPUs × 1000. Zero under the none policy.
	SharedPoolCPUs int
	// ExclusiveCPUsPerNUMA counts exclusive CPUs by NUMA node
	// (cpu_manager_allocation_per_numa); nodes without any are absent.
	ExclusiveCPUsPerNUMA map[int]int
}

// Stats returns the current counts.
func (a *Allocator) Stats() AllocatorStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	excl := a.state.ExclusiveCPUs()
	st := AllocatorStats{
		ExclusiveCPUs:        excl.Size(),
		ExclusiveContainers:  a.state.NumExclusiveContainers(),
		SharedPoolCPUs:       a.policy.AvailableCPUs(&a.state).Size(),
		ExclusiveCPUsPerNUMA: map[int]int{},
	}
	if tp, ok := a.policy.(interface{ Topology() *Topology }); ok {
		for _, cpu := range excl.List() {
			st.ExclusiveCPUsPerNUMA[tp.Topology().CPUDetails[cpu].NUMANodeID]++
		}
	}
	return st
}

// containerCPUs returns, under one lock, a container's exclusive CPUs if
// it has any (exclusive true), else the shared pool.
func (a *Allocator) containerCPUs(podUID, containerName string) (cpus cpuset.CPUSet, exclusive bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cset, ok := a.state.CPUSet(podUID, containerName); ok {
		return cset, true
	}
	return a.state.DefaultCPUSet, false
}

// pins reports whether the policy ever pins containers (not the none
// policy).
func (a *Allocator) pins() bool { return a.policy.Name() != PolicyNone }
