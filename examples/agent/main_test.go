package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"

	"github.com/nodekit/nodekit/cri"
	"github.com/nodekit/nodekit/internal/testenv"
	"github.com/nodekit/nodekit/runtimetest"
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

// -manifest-dir: a manifest dropped into the directory starts its pod, and
// removing it stops the pod, until the agent is interrupted.
func TestManifestDirOnSimulatedRuntime(t *testing.T) {
	dir := t.TempDir()
	rt, err := runtimetest.New(runtimetest.Config{Images: []string{simulatedImage}})
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runStatic(ctx, out, rt, dir, t.TempDir(), "127.0.0.1:0", zap.NewNop()) }()
	manifest := filepath.Join(dir, "web.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers: [{name: app, image: "`+simulatedImage+`", imagePullPolicy: Never}]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, out, regexp.MustCompile(`pod default/web-\S+: container app started`))
	// The pods API shows it running.
	url := regexp.MustCompile(`serving the pods API at (\S+)`).FindStringSubmatch(out.String())[1]
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		var list v1.PodList
		err = json.NewDecoder(res.Body).Decode(&list)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) == 1 && list.Items[0].Status.Phase == v1.PodRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pods API: %+v", list.Items)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := os.Remove(manifest); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, out, regexp.MustCompile(`pod default/web-\S+: container app died`))
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runStatic: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitOutput(t *testing.T, out *syncBuffer, re *regexp.Regexp) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !re.MatchString(out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("output lacks %s:\n%s", re, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// -manifest-dir on real containerd: a manifest dropped into the directory
// of the running agent starts its pod within a second.
func TestManifestDirOnContainerd(t *testing.T) {
	cd := testenv.StartContainerd(t, testenv.Options{Version: testenv.Containerd16})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rt, err := cri.New(ctx, cri.Config{Endpoint: cd.Endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	dir := t.TempDir()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- runStatic(ctx, out, rt, dir, t.TempDir(), "", zap.NewNop()) }()
	waitOutput(t, out, regexp.MustCompile(`running the static pods of`))
	start := time.Now()
	if err := os.WriteFile(filepath.Join(dir, "web.yaml"), []byte(`apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - {name: app, image: "`+testenv.BusyboxImage+`", imagePullPolicy: Never, command: [sleep, "3600"]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, out, regexp.MustCompile(`pod default/web-\S+: container app started`))
	t.Logf("manifest written → the agent reports the container started: %s", time.Since(start).Round(time.Millisecond))
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runStatic: %v", err)
	}
}
