package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nodekit/nodekit/internal/testenv"
)

// The README's first command: the built-in pod on the simulated runtime
// starts, runs, and stops gracefully.
func TestRunBuiltInPodOnSimulatedRuntime(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"-hold", "1s", "-pod-logs-root", t.TempDir()}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`hello from hello; while true`),
		regexp.MustCompile(`cpu shares 102, quota 50000/100000, memory limit 67108864`),
		regexp.MustCompile(`\bhello\s+RUNNING\s+-\s+0\s+hello\s+default\b`),
		regexp.MustCompile(`\bhello\s+EXITED\s+0 \(Completed\)\s+0\s+hello\s+default\b`),
		regexp.MustCompile(`sandbox removed`),
	} {
		if !want.MatchString(got) {
			t.Errorf("output lacks %s:\n%s", want, got)
		}
	}
}

func TestImageNotPresent(t *testing.T) {
	manifest := filepath.Join(t.TempDir(), "pod.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: v1
kind: Pod
metadata: {name: ghost}
spec:
  containers:
  - {name: main, image: localhost/absent:v1, imagePullPolicy: Never}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	err := run([]string{"-manifest", manifest, "-hold", "0s"}, &bytes.Buffer{})
	want := `pod default/ghost container "main": image "localhost/absent:v1" is not present and imagePullPolicy is Never`
	if err == nil || err.Error() != want {
		t.Errorf("run: %v, want %q", err, want)
	}
}

func TestManifestErrors(t *testing.T) {
	dir := t.TempDir()
	notPod := filepath.Join(dir, "svc.yaml")
	if err := os.WriteFile(notPod, []byte("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("kind: Pod\nspec: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		notPod:                            `kind "Service", want Pod`,
		broken:                            "broken.yaml",
		filepath.Join(dir, "absent.yaml"): "no such file",
	} {
		err := run([]string{"-manifest", path}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("manifest %s: %v, want an error containing %q", filepath.Base(path), err, want)
		}
	}
}

// The same pod on real containerd, through the CRI adapter.
func TestRunBuiltInPodOnContainerd(t *testing.T) {
	cd := testenv.StartContainerd(t, testenv.Options{Version: testenv.Containerd16})
	var out bytes.Buffer
	if err := run([]string{"-runtime-endpoint", cd.Endpoint(), "-hold", "1s", "-pod-logs-root", t.TempDir()}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`\bhello\s+RUNNING\s+-\s+0\s+hello\s+default\b`),
		regexp.MustCompile(`\bhello\s+EXITED\s+0 \(Completed\)\s+0\s+hello\s+default\b`),
		regexp.MustCompile(`sandbox removed`),
	} {
		if !want.MatchString(out.String()) {
			t.Errorf("output lacks %s:\n%s", want, out.String())
		}
	}
}
