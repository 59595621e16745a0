package pleg

import (
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

// state is what the PLEG remembers of a container or sandbox between two
// observations of the runtime.
type state uint8

const (
	// nonExistent: the runtime does not have it.
	nonExistent state = iota
	// running: a running container or a ready sandbox.
	running
	// exited: an exited container or a sandbox that is not ready.
	exited
	// created: a container created and not started yet.
	created
	// unknown: a state the runtime could not tell.
	unknown
)

func (s state) String() string {
	switch s {
	case nonExistent:
		return "non-existent"
	case running:
		return "running"
	case exited:
		return "exited"
	case created:
		return "created"
	}
	return "unknown"
}

func containerState(s runtimeapi.ContainerState) state {
	switch s {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return running
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return exited
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return created
	}
	return unknown
}

func sandboxState(s runtimeapi.PodSandboxState) state {
	if s == runtimeapi.PodSandboxState_SANDBOX_READY {
		return running
	}
	return exited
}

// transition returns the events that moving from old to cur produces, in
// order: none, one or two. It is the whole of the PLEG's event logic; the
// rest is bookkeeping.
//
//	old \ cur      running   exited   created   unknown   non-existent
//	non-existent   Started   Died     -         Changed   -
//	running        -         Died     -         Changed   Died, Removed
//	exited         Started   -        -         Changed   Removed
//	created        Started   Died     -         Changed   Removed
//	unknown        Started   Died     -         -         Died, Removed
//
// Creating a container is the sync loop's own action and says nothing new,
// so it makes no event: whether the runtime is observed between create and
// start or not, the same events follow. That keeps relisting and following
// the event stream in step. ContainerChanged is kept for the runtime's
// UNKNOWN state.
//
// A container that started and died between two observations goes from
// non-existent (or created) to exited: the relist adds ContainerStarted
// before the ContainerDied when its status shows that it did start.
func transition(old, cur state) (evs [2]core.PodLifecycleEventType, n int) {
	if old == cur {
		return evs, 0
	}
	switch cur {
	case running:
		evs[0] = core.ContainerStarted
		return evs, 1
	case exited:
		evs[0] = core.ContainerDied
		return evs, 1
	case created:
		return evs, 0
	case unknown:
		evs[0] = core.ContainerChanged
		return evs, 1
	}
	// Gone.
	switch old {
	case exited, created:
		evs[0] = core.ContainerRemoved
		return evs, 1
	case nonExistent:
		return evs, 0
	}
	evs[0], evs[1] = core.ContainerDied, core.ContainerRemoved
	return evs, 2
}
