package kernel_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"k8s.io/component-helpers/node/util/sysctl"
	sysctltesting "k8s.io/component-helpers/node/util/sysctl/testing"

	"github.com/nodekit/nodekit/examples/agent/kernel"
)

func good() *sysctltesting.Fake {
	f := sysctltesting.NewFake()
	for _, s := range kernel.Defaults {
		_ = f.SetSysctl(strings.ReplaceAll(s.Name, ".", "/"), s.Want)
	}
	return f
}

func TestProtect(t *testing.T) {
	if err := kernel.Protect(good()); err != nil {
		t.Fatalf("a kernel with the right settings: %v", err)
	}
	f := good()
	_ = f.SetSysctl("vm/overcommit_memory", 0)
	_ = f.SetSysctl("kernel/panic", 0)
	err := kernel.Protect(f)
	if !errors.Is(err, kernel.ErrDefaultsDiffer) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"vm.overcommit_memory = 0, want 1", "kernel.panic = 0, want 10", "sysctl -w kernel.panic=10 vm.overcommit_memory=1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "panic_on_oops") {
		t.Errorf("a setting that is right is listed:\n%v", err)
	}
}

// On this machine: Check agrees with /proc/sys.
func TestCheckReadsTheKernel(t *testing.T) {
	diffs := kernel.Check(sysctl.New(), kernel.Defaults)
	differs := map[string]bool{}
	for _, d := range diffs {
		differs[d.Name] = true
	}
	for _, s := range kernel.Defaults {
		b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(s.Name, ".", "/"))
		if err != nil {
			t.Skipf("cannot read %s: %v", s.Name, err)
		}
		v, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if (v != s.Want) != differs[s.Name] {
			t.Errorf("%s = %d (want %d): Check says differs=%v", s.Name, v, s.Want, differs[s.Name])
		}
	}
}
