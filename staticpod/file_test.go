package staticpod

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/nodekit/nodekit/core"
)

func manifest(name, image string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec: {containers: [{name: c, image: %q}]}\n", name, image)
}

// fileEnv runs a FileSource over a temporary directory into a Merger; the
// period is an hour, so every update a test sees came from a notification.
type fileEnv struct {
	dir string
	m   *Merger
	reg *prometheus.Registry
}

func startFileSource(t *testing.T, path string) *fileEnv {
	t.Helper()
	e := &fileEnv{dir: filepath.Dir(path), reg: prometheus.NewRegistry()}
	var err error
	e.m, err = NewMerger(MergerConfig{Sources: []string{core.SourceFile}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewFileSource(FileConfig{Path: path, NodeName: "n1", Period: time.Hour, Registerer: e.reg, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, e.m) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	})
	return e
}

// next waits for the next update: "OP:name,name".
func (e *fileEnv) next(t *testing.T) string {
	t.Helper()
	select {
	case u := <-e.m.Updates():
		var names []string
		for _, p := range u.Pods {
			names = append(names, p.Name)
		}
		return u.Op.String() + ":" + strings.Join(names, ",")
	case <-time.After(5 * time.Second):
		t.Fatal("no update within 5 s")
		return ""
	}
}

func (e *fileEnv) quiet(t *testing.T) {
	t.Helper()
	select {
	case u := <-e.m.Updates():
		t.Fatalf("unexpected update %s %d pods", u.Op, len(u.Pods))
	case <-time.After(300 * time.Millisecond):
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFileSourceDirectory(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), manifest("a", "busybox:1"))
	write(t, filepath.Join(dir, ".hidden.yaml"), manifest("hidden", "busybox:1"))
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "sub", "s.yaml"), manifest("sub", "busybox:1"))
	e := startFileSource(t, dir)
	if got := e.next(t); got != "ADD:a-n1" {
		t.Fatalf("start: %s (dot-files and subdirectories are ignored)", got)
	}

	// Add, edit (a new UID: the old pod goes, the new one comes), rename,
	// delete.
	write(t, filepath.Join(dir, "b.yaml"), manifest("b", "busybox:1"))
	if got := e.next(t); got != "ADD:b-n1" {
		t.Fatalf("add: %s", got)
	}
	write(t, filepath.Join(dir, "b.yaml"), manifest("b", "busybox:2"))
	if got := e.next(t) + " " + e.next(t); got != "REMOVE:b-n1 ADD:b-n1" {
		t.Fatalf("edit: %s", got)
	}
	if err := os.Rename(filepath.Join(dir, "b.yaml"), filepath.Join(dir, "c.yaml")); err != nil {
		t.Fatal(err)
	}
	// The path is part of the UID: a renamed manifest is a new pod.
	if got := e.next(t) + " " + e.next(t); got != "REMOVE:b-n1 ADD:b-n1" {
		t.Fatalf("rename: %s", got)
	}
	if err := os.Remove(filepath.Join(dir, "c.yaml")); err != nil {
		t.Fatal(err)
	}
	if got := e.next(t); got != "REMOVE:b-n1" {
		t.Fatalf("delete: %s", got)
	}

	// Atomic replace, as editors and config tools do: write a temporary
	// dot-file, rename it over the manifest.
	tmp := filepath.Join(dir, ".a.yaml.tmp")
	write(t, tmp, manifest("a", "busybox:3"))
	if err := os.Rename(tmp, filepath.Join(dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	if got := e.next(t) + " " + e.next(t); got != "REMOVE:a-n1 ADD:a-n1" {
		t.Fatalf("atomic replace: %s", got)
	}
	e.quiet(t)
}

// An invalid edit keeps the pod of the manifest's last valid content, is
// reported once however often the directory is read, and a fix applies.
func TestFileSourceInvalidManifest(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.yaml")
	write(t, path, manifest("a", "busybox:1"))
	e := startFileSource(t, dir)
	if got := e.next(t); got != "ADD:a-n1" {
		t.Fatal(got)
	}
	write(t, path, "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c}]}\n")
	write(t, filepath.Join(dir, "other.yaml"), manifest("o", "busybox:1")) // another read
	if got := e.next(t); got != "ADD:o-n1" {
		t.Fatalf("after a bad edit: %s (the running pod must stay)", got)
	}
	want := "\n# HELP staticpod_manifest_errors_total Manifests found invalid or unreadable, by source; an error counts once until the manifest changes.\n# TYPE staticpod_manifest_errors_total counter\nstaticpod_manifest_errors_total{source=\"file\"} 1\n"
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(want), "staticpod_manifest_errors_total"); err != nil {
		t.Error(err)
	}
	// A duplicate name in a later file is refused, naming both.
	write(t, filepath.Join(dir, "z.yaml"), manifest("o", "busybox:9"))
	e.quiet(t)
	write(t, path, manifest("a", "busybox:2"))
	if got := e.next(t) + " " + e.next(t); got != "REMOVE:a-n1 ADD:a-n1" {
		t.Fatalf("after the fix: %s", got)
	}
	want = strings.Replace(want, "} 1", "} 2", 1)
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(want), "staticpod_manifest_errors_total"); err != nil {
		t.Error(err)
	}
}

// A single file works as a directory of one; a missing path is no pods.
func TestFileSourceSingleFileAndMissingPath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "only.yaml")
	write(t, path, manifest("only", "busybox:1"))
	write(t, filepath.Join(dir, "ignored.yaml"), manifest("ignored", "busybox:1"))
	e := startFileSource(t, path)
	if got := e.next(t); got != "ADD:only-n1" {
		t.Fatal(got)
	}
	write(t, filepath.Join(dir, "ignored.yaml"), manifest("ignored", "busybox:2"))
	e.quiet(t)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if got := e.next(t); got != "REMOVE:only-n1" {
		t.Fatal(got)
	}

	missing := startFileSource(t, filepath.Join(t.TempDir(), "absent"))
	if got := missing.next(t); got != "ADD:" {
		t.Fatalf("missing path: %s, want an empty first snapshot", got)
	}
	if !missing.m.AllReady() {
		t.Error("a missing path still counts as heard from")
	}
}

func TestNewFileSourceValidation(t *testing.T) {
	_, err := NewFileSource(FileConfig{Period: -time.Second})
	if !errors.Is(err, core.ErrInvalid) {
		t.Fatal(err)
	}
	for _, want := range []string{"Path is required", "NodeName is required", "must not be negative"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v lacks %q", err, want)
		}
	}
}

// A directory that does not exist yet cannot be watched: the watch is set
// up again with back-off, and once the directory appears its manifests are
// read without waiting for the period.
func TestFileSourceWatchRetry(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "later")
	m, err := NewMerger(MergerConfig{Sources: []string{core.SourceFile}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewFileSource(FileConfig{Path: dir, NodeName: "n1", Period: time.Hour, WatchRetryMin: 20 * time.Millisecond, WatchRetryMax: 40 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, m) }()
	defer func() { cancel(); <-done }()
	e := &fileEnv{m: m}
	if got := e.next(t); got != "ADD:" {
		t.Fatalf("before the directory exists: %s", got)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "a.yaml"), manifest("a", "busybox:1"))
	if got := e.next(t); got != "ADD:a-n1" {
		t.Fatalf("after the directory appeared: %s", got)
	}
	// The watch works now: a second manifest comes by notification.
	write(t, filepath.Join(dir, "b.yaml"), manifest("b", "busybox:1"))
	if got := e.next(t); got != "ADD:b-n1" {
		t.Fatalf("through the watch: %s", got)
	}
}
