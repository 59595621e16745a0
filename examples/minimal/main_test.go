package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is the program's output, read by the test while the
// program writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The bundled manifest, copied to a directory of the test, runs on the
// simulated runtime: its pod is printed Running with its container ready;
// once the manifest is removed the pod terminates (the container traps
// SIGTERM and exits 0) and its worker is done with it. The run is bounded
// by -run-for, and ends early without error when the test cancels it.
func TestStaticPodRunsAndStops(t *testing.T) {
	dir := t.TempDir()
	manifest, err := os.ReadFile("manifests/hello.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "hello.yaml")
	if err := os.WriteFile(path, manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-manifest-dir", dir, "-node-name", "n1", "-run-for", "60s"}, out)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		t.Logf("output:\n%s", out)
	}()

	// waitFor waits for a line with every one of parts after the line
	// the previous wait found, and returns it.
	from := 0
	waitFor := func(parts ...string) string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			lines := strings.Split(out.String(), "\n")
			for i := from; i < len(lines); i++ {
				if containsAll(lines[i], parts) {
					from = i + 1
					return lines[i]
				}
			}
			select {
			case err := <-done:
				t.Fatalf("run ended (%v) before a line with %q", err, parts)
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("no line with %q after 20 s", parts)
			}
		}
	}
	running := waitFor("default/hello-n1 ", " Running app:running,ready")
	uid := running[strings.Index(running, "(") : strings.Index(running, ")")+1]
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor(uid, " app:terminated(Completed,exit=0) [terminated]")
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// A -run-for ends the run by itself, without error.
func TestRunFor(t *testing.T) {
	start := time.Now()
	out := &lockedBuffer{}
	if err := run(t.Context(), []string{"-manifest-dir", t.TempDir(), "-run-for", "300ms"}, out); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("-run-for 300ms ran %s", took)
	}
	if !strings.Contains(out.String(), "running the static pods of") {
		t.Fatalf("output %q", out)
	}
}
