package runtimetest

import (
	"context"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

// ExecSync implements core.ExecSyncer. The command runs through the
// container's Behavior.Exec, or DefaultExec, and takes as long on the
// injected clock as that says. A command still running after timeout
// (0: no limit) is core.ErrTimeout; one whose container exits meanwhile is
// killed with it (exit code 137). The container must be running.
func (r *Runtime) ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (core.ExecResult, error) {
	if err := r.enter(ctx, "ExecSync"); err != nil {
		return core.ExecResult{}, err
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("exec %q in container %s: %w", cmd, containerID, fmt.Errorf(format, args...))
	}
	if len(cmd) == 0 {
		return core.ExecResult{}, fail("%w: empty command", core.ErrInvalid)
	}
	r.mu.Lock()
	r.settleLocked()
	c, err := r.containerLocked(containerID)
	if err != nil {
		r.mu.Unlock()
		return core.ExecResult{}, fail("%w", err)
	}
	if c.state != runtimeapi.ContainerState_CONTAINER_RUNNING {
		r.mu.Unlock()
		return core.ExecResult{}, fail("container is in %s state", c.state)
	}
	run := c.prog.exec
	if run == nil {
		run = DefaultExec
	}
	id, exited := c.id, c.exited
	r.mu.Unlock()

	res, took, err := run(id, cmd)
	if err != nil {
		return core.ExecResult{}, fail("%w", err)
	}
	timedOut := timeout > 0 && took > timeout
	if timedOut {
		took = timeout
	}
	if took <= 0 {
		return res, nil
	}
	var done <-chan time.Time // nil: the command never ends
	if took < Forever {
		t := r.clock.NewTimer(took)
		defer t.Stop()
		done = t.C()
	}
	select {
	case <-done:
	case <-exited:
		return core.ExecResult{ExitCode: 137}, nil
	case <-ctx.Done():
		return core.ExecResult{}, fail("%w", ctxErr(ctx))
	}
	if timedOut {
		return core.ExecResult{}, fail("%w: still running after %s", core.ErrTimeout, timeout)
	}
	return res, nil
}
