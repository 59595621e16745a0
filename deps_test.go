package nodekit_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/nodekit/nodekit"

// subsystems are the packages that must never depend on each other: each
// can be imported alone, and only examples/ wires them together.
var subsystems = []string{"pleg", "syncloop", "statusmgr", "volumemgr", "eviction", "cpumanager", "staticpod", "imagegc"}

type goPackage struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Deps         []string
	Module       *struct{ Path string }
}

func listPackages(t *testing.T) []goPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,TestImports,XTestImports,Deps,Module", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []goPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p goPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	return pkgs
}

// subsystemOf returns the subsystem a package path belongs to, or "".
func subsystemOf(path string) string {
	rel, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return ""
	}
	top, _, _ := strings.Cut(rel, "/")
	for _, s := range subsystems {
		if top == s {
			return s
		}
	}
	return ""
}

func isExample(path string) bool {
	return path == module+"/examples" || strings.HasPrefix(path, module+"/examples/")
}

// checkGraph returns one message per forbidden edge in pkgs.
func checkGraph(pkgs []goPackage) []string {
	var bad []string
	for _, p := range pkgs {
		own := subsystemOf(p.ImportPath)
		for _, dep := range p.Deps {
			if dep == "k8s.io/kubernetes" || strings.HasPrefix(dep, "k8s.io/kubernetes/") {
				bad = append(bad, p.ImportPath+" depends on "+dep+": k8s.io/kubernetes is not a library")
			}
			if other := subsystemOf(dep); own != "" && other != "" && other != own {
				bad = append(bad, p.ImportPath+" depends on "+dep+": subsystems never import each other")
			}
			if p.ImportPath == module+"/core" && strings.HasPrefix(dep, module+"/") {
				bad = append(bad, p.ImportPath+" depends on "+dep+": core is the leaf package")
			}
			if p.ImportPath == module+"/crispec" && strings.HasPrefix(dep, module+"/") && dep != module+"/core" {
				bad = append(bad, p.ImportPath+" depends on "+dep+": crispec translates without I/O and needs only core")
			}
			if !isExample(p.ImportPath) && (isExample(dep) || dep == module+"/internal/testenv") {
				bad = append(bad, p.ImportPath+" depends on "+dep+": only tests and examples may")
			}
			if own == "" && !isExample(p.ImportPath) && subsystemOf(dep) != "" {
				bad = append(bad, p.ImportPath+" depends on "+dep+": shared packages never import subsystems")
			}
		}
		if own == "" {
			continue
		}
		for _, imp := range append(append([]string(nil), p.TestImports...), p.XTestImports...) {
			if other := subsystemOf(imp); other != "" && other != own {
				bad = append(bad, p.ImportPath+" tests import "+imp+": subsystems never import each other")
			}
		}
	}
	sort.Strings(bad)
	return bad
}

func TestDependencyGraph(t *testing.T) {
	for _, msg := range checkGraph(listPackages(t)) {
		t.Error(msg)
	}
}

// The guard itself must catch what it is meant to catch.
func TestDependencyGraphCatchesViolations(t *testing.T) {
	pkgs := []goPackage{
		{ImportPath: module + "/pleg", Deps: []string{module + "/core", module + "/syncloop/internal/plan"}},
		{ImportPath: module + "/eviction", Deps: []string{"k8s.io/kubernetes/pkg/kubelet"}},
		{ImportPath: module + "/core", Deps: []string{module + "/cri"}},
		{ImportPath: module + "/statusmgr", XTestImports: []string{module + "/pleg/plegtest"}},
		{ImportPath: module + "/examples/agent", Deps: []string{module + "/pleg", module + "/syncloop"}},
		{ImportPath: module + "/pleg/plegtest", Deps: []string{module + "/pleg", module + "/core"}},
		{ImportPath: module + "/crispec", Deps: []string{module + "/core", module + "/cri"}},
		{ImportPath: module + "/cri", Deps: []string{module + "/internal/testenv", module + "/eviction"}},
	}
	got := checkGraph(pkgs)
	want := []string{
		module + "/core depends on " + module + "/cri: core is the leaf package",
		module + "/cri depends on " + module + "/eviction: shared packages never import subsystems",
		module + "/cri depends on " + module + "/internal/testenv: only tests and examples may",
		module + "/crispec depends on " + module + "/cri: crispec translates without I/O and needs only core",
		module + "/eviction depends on k8s.io/kubernetes/pkg/kubelet: k8s.io/kubernetes is not a library",
		module + "/pleg depends on " + module + "/syncloop/internal/plan: subsystems never import each other",
		module + "/statusmgr tests import " + module + "/pleg/plegtest: subsystems never import each other",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("checkGraph:\n got %q\nwant %q", got, want)
	}
}
