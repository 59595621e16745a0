package runtimetest

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"github.com/nodekit/nodekit/core"
)

// AllMethods, as the method of InjectFault, makes a fault apply to every
// method that has no fault of its own.
const AllMethods = "*"

// Fault is a failure injected into calls of one method.
type Fault struct {
	// Delay holds the call this long on the injected clock before it runs.
	// If the caller's context ends first, the call returns its error.
	Delay time.Duration
	// Err, if not nil, is returned (wrapped) instead of running the call.
	// Wrap a core error class to simulate a real failure, for example
	// fmt.Errorf("connection refused: %w", core.ErrUnavailable).
	Err error
	// Times is how many calls the fault applies to; 0 means every call
	// until ClearFaults.
	Times int
}

// InjectFault queues f for calls of method, which is the name of a method
// of core.Runtime or core.EventStreamer ("ListContainers",
// "GetContainerEvents", ...) or AllMethods. Faults of one method apply in
// the order they were injected: a call takes the first, and a fault with
// Times > 0 leaves the queue after that many calls. An unknown method name
// is an error wrapping core.ErrInvalid, and nothing is queued.
func (r *Runtime) InjectFault(method string, f Fault) error {
	if !isMethod(method) {
		return fmt.Errorf("runtimetest: InjectFault: %q is not a method of core.Runtime or core.EventStreamer: %w", method, core.ErrInvalid)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults[method] = append(r.faults[method], &f)
	return nil
}

// ClearFaults removes every injected fault.
func (r *Runtime) ClearFaults() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.faults)
}

// Calls reports how many times method has been called, including calls
// that failed.
func (r *Runtime) Calls(method string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[method]
}

func isMethod(name string) bool {
	if name == AllMethods {
		return true
	}
	_, ok := reflect.TypeFor[core.Runtime]().MethodByName(name)
	if !ok {
		_, ok = reflect.TypeFor[core.EventStreamer]().MethodByName(name)
	}
	return ok
}

// enter starts every call of the port: it counts the call, takes the next
// injected fault, fails at once if ctx has ended, and applies the fault.
func (r *Runtime) enter(ctx context.Context, method string) error {
	r.mu.Lock()
	r.calls[method]++
	f := r.takeFaultLocked(method)
	r.mu.Unlock()
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", method, ctxErr(ctx))
	}
	if f.Delay > 0 {
		if err := r.wait(ctx, f.Delay); err != nil {
			return fmt.Errorf("%s: %w", method, err)
		}
	}
	if f.Err != nil {
		return fmt.Errorf("%s: injected fault: %w", method, f.Err)
	}
	return nil
}

func (r *Runtime) takeFaultLocked(method string) Fault {
	key := method
	q := r.faults[key]
	if len(q) == 0 {
		key = AllMethods
		q = r.faults[key]
	}
	if len(q) == 0 {
		return Fault{}
	}
	f := q[0]
	if f.Times > 0 {
		f.Times--
		if f.Times == 0 {
			r.faults[key] = q[1:]
		}
	}
	return *f
}
