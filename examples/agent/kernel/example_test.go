package kernel_test

import (
	"fmt"

	sysctltesting "k8s.io/component-helpers/node/util/sysctl/testing"

	"github.com/nodekit/nodekit/examples/agent/kernel"
)

// A kernel that overcommits memory heuristically: with
// protectKernelDefaults the agent refuses to start and says what to set.
func ExampleCheck() {
	f := sysctltesting.NewFake()
	_ = f.SetSysctl("vm/overcommit_memory", 0)
	for _, d := range kernel.Check(f, kernel.Defaults[:1]) {
		fmt.Printf("%s = %d, want %d\n", d.Name, d.Got, d.Want)
	}
	// Output: vm.overcommit_memory = 0, want 1
}
