// Package kernel checks the kernel settings a node agent relies on, as the
// kubelet's protectKernelDefaults does: with it set, the agent refuses to
// start on a kernel whose settings differ, and says which and how to fix
// them, instead of changing them itself.
package kernel

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/component-helpers/node/util/sysctl"
)

// Setting is one kernel setting the agent relies on.
type Setting struct {
	// Name as sysctl(8) spells it, e.g. vm.overcommit_memory.
	Name string
	// Want is the value the kubelet requires.
	Want int
	// Why the node needs it.
	Why string
}

// Defaults are the settings the kubelet checks, with the values it
// requires.
var Defaults = []Setting{
	{"vm.overcommit_memory", sysctl.VMOvercommitMemoryAlways, "memory limits, not the kernel's heuristics, decide what a pod may allocate"},
	{"vm.panic_on_oom", sysctl.VMPanicOnOOMInvokeOOMKiller, "an out-of-memory condition kills a process instead of panicking the node"},
	{"kernel.panic", sysctl.KernelPanicRebootTimeout, "a panicked node reboots after 10 s"},
	{"kernel.panic_on_oops", sysctl.KernelPanicOnOopsAlways, "a kernel oops panics (and reboots) the node instead of running on in a corrupted state"},
	{"kernel.keys.root_maxkeys", sysctl.RootMaxKeysSetting, "runtimes create a key per container"},
	{"kernel.keys.root_maxbytes", sysctl.RootMaxBytesSetting, "room for the keys' payloads"},
}

// Difference is a setting whose value is not the one wanted.
type Difference struct {
	Setting
	Got int
	// Err is set when the value could not be read.
	Err error
}

// Check reads every setting through s (sysctl.New() reads /proc/sys) and
// returns those that differ from what the agent wants.
func Check(s sysctl.Interface, settings []Setting) []Difference {
	var out []Difference
	for _, want := range settings {
		got, err := s.GetSysctl(strings.ReplaceAll(want.Name, ".", "/"))
		if err != nil || got != want.Want {
			out = append(out, Difference{Setting: want, Got: got, Err: err})
		}
	}
	return out
}

// ErrDefaultsDiffer is wrapped by the error of Protect.
var ErrDefaultsDiffer = errors.New("kernel settings differ from what the node needs (protectKernelDefaults is set)")

// Protect is the protectKernelDefaults check: nil when every setting has
// its value, otherwise an error listing each difference and the command
// that fixes it.
func Protect(s sysctl.Interface) error {
	diffs := Check(s, Defaults)
	if len(diffs) == 0 {
		return nil
	}
	var b strings.Builder
	var fix []string
	for _, d := range diffs {
		if d.Err != nil {
			fmt.Fprintf(&b, "\n  %s: cannot be read: %v", d.Name, d.Err)
			continue
		}
		fmt.Fprintf(&b, "\n  %s = %d, want %d (%s)", d.Name, d.Got, d.Want, d.Why)
		fix = append(fix, fmt.Sprintf("%s=%d", d.Name, d.Want))
	}
	if len(fix) > 0 {
		slices.Sort(fix)
		fmt.Fprintf(&b, "\nset them with: sysctl -w %s (and persist them in /etc/sysctl.d), or unset protectKernelDefaults", strings.Join(fix, " "))
	}
	return fmt.Errorf("%w:%s", ErrDefaultsDiffer, b.String())
}
