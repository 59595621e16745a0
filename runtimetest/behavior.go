package runtimetest

import (
	"math"
	"slices"
	"time"

	"github.com/nodekit/nodekit/core"
)

// Forever, as a duration of ExecFunc, is a command that never ends.
const Forever time.Duration = math.MaxInt64

// Exit is how a container's process ends.
type Exit struct {
	// After is how long the process runs before it ends: from
	// StartContainer for Behavior.Exit, from the stop signal for
	// Behavior.OnStop.
	After time.Duration
	// Code is the exit code. The status reason is "Completed" for 0 and
	// "Error" otherwise.
	Code int32
	// OOMKilled makes the end an OOM kill: exit code 137 and reason
	// "OOMKilled"; Code is ignored.
	OOMKilled bool
}

// ExecFunc runs a command for ExecSync in a running container. It returns
// the command's result and how long it runs on the injected clock (Forever:
// it never ends); ExecSync waits that long, times out as the real runtime
// would, and returns the result. A non-nil error fails the call.
type ExecFunc func(containerID string, cmd []string) (res core.ExecResult, took time.Duration, err error)

// Behavior scripts a container, overriding what its command says (see the
// package documentation). The zero Behavior runs until it is stopped and
// ends on the stop signal with exit code 143.
type Behavior struct {
	// Exit, when not nil, makes the container end by itself Exit.After
	// after it starts. Nil: it runs until stopped.
	Exit *Exit
	// OnStop is how the container ends after the stop signal (SIGTERM).
	// Nil: at once, with exit code 143, as a process the signal kills.
	OnStop *Exit
	// IgnoreStop makes the container ignore the stop signal, as PID 1
	// without a handler does: StopContainer waits out its timeout and then
	// kills it (exit code 137).
	IgnoreStop bool
	// StartError makes StartContainer fail with this error; the container
	// is then exited with code 128 and reason "StartError", as in
	// containerd.
	StartError error
	// Exec runs the commands of ExecSync. Nil: DefaultExec.
	Exec ExecFunc
}

// Match selects containers by what CreateContainer is given. Empty fields
// match every container.
type Match struct {
	// Image is an image reference, normalised like any other ("busybox"
	// matches "docker.io/library/busybox:latest"), or an image ID.
	Image string
	// Pod is the sandbox's metadata name.
	Pod string
	// Container is the container's metadata name.
	Container string
}

type rule struct {
	match    Match
	behavior Behavior
}

// SetBehavior scripts the containers that m selects and that are created
// from now on; containers that exist keep their script. When several
// rules match a container, the one set last wins; setting a rule for an
// existing Match replaces it. A container no rule matches follows its
// command.
func (r *Runtime) SetBehavior(m Match, b Behavior) {
	if m.Image != "" {
		if ref, err := normalizeRef(m.Image); err == nil {
			m.Image = ref
		}
	}
	b.Exit = cloneExit(b.Exit)
	b.OnStop = cloneExit(b.OnStop)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rules = slices.DeleteFunc(r.rules, func(x rule) bool { return x.match == m })
	r.rules = append(r.rules, rule{match: m, behavior: b})
}

// ClearBehaviors removes every rule set with SetBehavior.
func (r *Runtime) ClearBehaviors() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rules = nil
}

func cloneExit(e *Exit) *Exit {
	if e == nil {
		return nil
	}
	c := *e
	return &c
}

// behaviorLocked returns the behaviour of the last rule that matches a
// container, or false.
func (r *Runtime) behaviorLocked(img *image, requested, pod, name string) (Behavior, bool) {
	for i := len(r.rules) - 1; i >= 0; i-- {
		m := r.rules[i].match
		if (m.Pod == "" || m.Pod == pod) && (m.Container == "" || m.Container == name) &&
			(m.Image == "" || m.Image == requested || img.hasRef(m.Image)) {
			return r.rules[i].behavior, true
		}
	}
	return Behavior{}, false
}

// program is what a container's process does: the Behavior that matched
// it, or what its command says.
type program struct {
	exit *Exit // ends by itself; nil: runs until stopped
	// From handlerAt after start, the stop signal is ignored (ignore) or
	// handled (handler). Before that, or with neither, it takes its default
	// action: ignored by PID 1, fatal (143) to any other process.
	ignore    bool
	handler   *Exit
	handlerAt time.Duration
	pid1      bool
	// busy holds the foreground sleeps of a shell, which delay its trap.
	busy     busyTimes
	startErr error
	exec     ExecFunc
}

func behaviorProgram(b Behavior) program {
	p := program{exit: b.Exit, startErr: b.StartError, exec: b.Exec}
	switch {
	case b.IgnoreStop:
		p.ignore = true
	case b.OnStop != nil:
		p.handler = b.OnStop
	default:
		p.handler = &Exit{Code: 143}
	}
	return p
}

// onStop is what the stop signal does when it arrives t after the start:
// the exit it causes, counted from the signal, or false if the process
// carries on.
func (p *program) onStop(t time.Duration) (Exit, bool) {
	if t >= p.handlerAt {
		if p.ignore {
			return Exit{}, false
		}
		if p.handler != nil {
			e := *p.handler
			e.After = addDuration(e.After, p.busy.delay(t))
			return e, true
		}
	}
	if p.pid1 {
		return Exit{}, false
	}
	return Exit{Code: 143}, true
}

// addDuration adds without overflowing past Forever.
func addDuration(a, b time.Duration) time.Duration {
	if a > Forever-b {
		return Forever
	}
	return a + b
}
