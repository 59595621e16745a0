package volumemgr_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/volumemgr"
)

var atomicTestTime = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

const atomicTestPrefix = "..2026_01_02_15_04_05."

func newAtomicTestWriter(t *testing.T, dir string, before func(string) error) *volumemgr.AtomicWriter {
	t.Helper()
	w, err := volumemgr.NewAtomicWriter(volumemgr.AtomicWriterConfig{
		Dir:           dir,
		Clock:         clocktesting.NewFakePassiveClock(atomicTestTime),
		BeforePublish: before,
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func mustAtomicWrite(t *testing.T, w *volumemgr.AtomicWriter, payload map[string]volumemgr.FileProjection, wantChanged bool) {
	t.Helper()
	changed, err := w.Write(payload)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if changed != wantChanged {
		t.Fatalf("Write: changed %v, want %v", changed, wantChanged)
	}
}

// atomicTextPayload builds a payload of files with mode 0644 from path: content
// pairs.
func atomicTextPayload(kv ...string) map[string]volumemgr.FileProjection {
	p := map[string]volumemgr.FileProjection{}
	for i := 0; i < len(kv); i += 2 {
		p[kv[i]] = volumemgr.FileProjection{Data: []byte(kv[i+1]), Mode: 0o644}
	}
	return p
}

// atomicReadVisible reads what a consumer of dir sees: every file reachable from
// the names that do not start with "..", following symlinks, as
// "path=content" lines.
func atomicReadVisible(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	var walk func(rel string)
	walk = func(rel string) {
		entries, err := os.ReadDir(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if rel == "" && strings.HasPrefix(e.Name(), "..") {
				continue
			}
			p := filepath.Join(rel, e.Name())
			fi, err := os.Stat(filepath.Join(dir, p))
			if err != nil {
				t.Fatalf("visible %s: %v", p, err)
			}
			if fi.IsDir() {
				walk(p)
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, p))
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, p+"="+string(data))
		}
	}
	walk("")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// renderTextPayload renders a payload as atomicReadVisible renders a directory.
func renderTextPayload(p map[string]volumemgr.FileProjection) string {
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(p)) {
		lines = append(lines, filepath.Clean(k)+"="+string(p[k].Data))
	}
	return strings.Join(lines, "\n")
}

func atomicDirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func atomicDataTarget(t *testing.T, dir string) string {
	t.Helper()
	target, err := os.Readlink(filepath.Join(dir, volumemgr.AtomicDataDir))
	if err != nil {
		t.Fatal(err)
	}
	return target
}

// checkAtomicLayout checks that dir holds ..data, the one timestamped
// directory it names, and a symlink into ..data for each of visible, and
// nothing else.
func checkAtomicLayout(t *testing.T, dir string, visible ...string) {
	t.Helper()
	target := atomicDataTarget(t, dir)
	if !strings.HasPrefix(target, atomicTestPrefix) || len(target) == len(atomicTestPrefix) {
		t.Errorf("..data -> %q, want %q and a random suffix", target, atomicTestPrefix)
	}
	want := append([]string{volumemgr.AtomicDataDir, target}, visible...)
	slices.Sort(want)
	if got := atomicDirNames(t, dir); !slices.Equal(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}
	for _, name := range visible {
		link, err := os.Readlink(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("visible %s: %v", name, err)
			continue
		}
		if link != filepath.Join(volumemgr.AtomicDataDir, name) {
			t.Errorf("visible %s -> %q, want ..data/%s", name, link, name)
		}
	}
}

func atomicFileMode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

func TestNewAtomicWriterNeedsDir(t *testing.T) {
	_, err := volumemgr.NewAtomicWriter(volumemgr.AtomicWriterConfig{})
	if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "Dir") {
		t.Fatalf("got %v, want core.ErrInvalid naming Dir", err)
	}
	// Clock and Logger may be nil.
	w, err := volumemgr.NewAtomicWriter(volumemgr.AtomicWriterConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	mustAtomicWrite(t, w, atomicTextPayload("a", "1"), true)
}

func TestAtomicWriterFirstWrite(t *testing.T) {
	dir := t.TempDir()
	w := newAtomicTestWriter(t, dir, nil)
	payload := map[string]volumemgr.FileProjection{
		"foo":          {Data: []byte("foo"), Mode: 0o644},
		".dotfile":     {Data: []byte("dot"), Mode: 0o644},
		"bar/baz":      {Data: []byte("baz"), Mode: 0o600},
		"a/b/c/d.txt":  {Data: []byte("deep"), Mode: 0o400},
		"a/b/other":    {Data: nil, Mode: 0o644},
		"x//unclean/f": {Data: []byte("f"), Mode: 0o644},
	}
	mustAtomicWrite(t, w, payload, true)

	checkAtomicLayout(t, dir, ".dotfile", "a", "bar", "foo", "x")
	if got, want := atomicReadVisible(t, dir), renderTextPayload(payload); got != want {
		t.Errorf("visible content:\n%s\nwant:\n%s", got, want)
	}
	ts := filepath.Join(dir, atomicDataTarget(t, dir))
	for path, want := range map[string]fs.FileMode{
		ts:                                     fs.ModeDir | 0o755,
		filepath.Join(ts, "a"):                 fs.ModeDir | 0o755,
		filepath.Join(ts, "a/b/c"):             fs.ModeDir | 0o755,
		filepath.Join(dir, "foo"):              0o644,
		filepath.Join(dir, "bar/baz"):          0o600,
		filepath.Join(dir, "a/b/c/d.txt"):      0o400,
		filepath.Join(dir, "x", "unclean/f"):   0o644,
		filepath.Join(ts, "x", "unclean", "f"): 0o644,
	} {
		if got := atomicFileMode(t, path); got != want {
			t.Errorf("mode of %s: %v, want %v", path, got, want)
		}
	}
}

// Modes are set whatever the umask: 0777 and 0666 survive the usual 022.
func TestAtomicWriterModes(t *testing.T) {
	dir := t.TempDir()
	w := newAtomicTestWriter(t, dir, nil)
	modes := map[string]int32{"rwx": 0o777, "rw": 0o666, "none": 0, "ro": 0o444, "g": 0o070}
	payload := map[string]volumemgr.FileProjection{}
	for name, m := range modes {
		payload["m/"+name] = volumemgr.FileProjection{Data: []byte(name), Mode: m}
	}
	mustAtomicWrite(t, w, payload, true)
	for name, m := range modes {
		if got := atomicFileMode(t, filepath.Join(dir, "m", name)); got != fs.FileMode(m) {
			t.Errorf("mode of %s: %v, want %v", name, got, fs.FileMode(m))
		}
	}
}

func TestAtomicWriterUnchangedWritesNothing(t *testing.T) {
	dir := t.TempDir()
	w := newAtomicTestWriter(t, dir, nil)
	payload := atomicTextPayload("a", "1", "b/c", "2", "empty", "")
	mustAtomicWrite(t, w, payload, true)
	target := atomicDataTarget(t, dir)
	before, err := os.Stat(filepath.Join(dir, target, "a"))
	if err != nil {
		t.Fatal(err)
	}

	mustAtomicWrite(t, w, atomicTextPayload("a", "1", "b/c", "2", "empty", ""), false)
	// A different mode alone does not rewrite, as in the kubelet (an
	// fsGroup step may have changed the mode on disk).
	payload["a"] = volumemgr.FileProjection{Data: []byte("1"), Mode: 0o600}
	mustAtomicWrite(t, w, payload, false)

	if got := atomicDataTarget(t, dir); got != target {
		t.Errorf("..data -> %s, want still %s", got, target)
	}
	after, err := os.Stat(filepath.Join(dir, target, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Error("file a was replaced")
	}
	checkAtomicLayout(t, dir, "a", "b", "empty")
}

func TestAtomicWriterUpdate(t *testing.T) {
	cases := []struct {
		name          string
		first, second map[string]volumemgr.FileProjection
		changed       bool
		visible       []string
	}{
		{"content changes", atomicTextPayload("a", "1", "b/c", "2"), atomicTextPayload("a", "1", "b/c", "3"), true, []string{"a", "b"}},
		{"same content", atomicTextPayload("a", "1", "b/c", "2"), atomicTextPayload("a", "1", "b/c", "2"), false, []string{"a", "b"}},
		{"a file added", atomicTextPayload("a", "1"), atomicTextPayload("a", "1", "z", "2"), true, []string{"a", "z"}},
		{"a nested file added", atomicTextPayload("a/b", "1"), atomicTextPayload("a/b", "1", "a/c/d", "2"), true, []string{"a"}},
		{"a top-level file removed", atomicTextPayload("a", "1", "b", "2"), atomicTextPayload("a", "1"), true, []string{"a"}},
		{"a directory removed", atomicTextPayload("a", "1", "d/e/f", "2"), atomicTextPayload("a", "1"), true, []string{"a"}},
		{"a nested file removed", atomicTextPayload("d/e", "1", "d/f", "2"), atomicTextPayload("d/e", "1"), true, []string{"d"}},
		{"an empty nested directory left", atomicTextPayload("d/e/f", "1", "d/g", "2"), atomicTextPayload("d/g", "2"), true, []string{"d"}},
		{"everything removed", atomicTextPayload("a", "1", "b/c", "2"), atomicTextPayload(), true, nil},
		{"from nothing", atomicTextPayload(), atomicTextPayload("a", "1"), true, []string{"a"}},
		{"a file becomes a directory", atomicTextPayload("foo", "1"), atomicTextPayload("foo/bar", "2"), true, []string{"foo"}},
		{"a directory becomes a file", atomicTextPayload("foo/bar", "1"), atomicTextPayload("foo", "2"), true, []string{"foo"}},
		{"renamed", atomicTextPayload("old", "1"), atomicTextPayload("new", "1"), true, []string{"new"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w := newAtomicTestWriter(t, dir, nil)
			mustAtomicWrite(t, w, tc.first, true)
			oldTarget := atomicDataTarget(t, dir)
			mustAtomicWrite(t, w, tc.second, tc.changed)
			if got, want := atomicReadVisible(t, dir), renderTextPayload(tc.second); got != want {
				t.Errorf("visible content:\n%s\nwant:\n%s", got, want)
			}
			checkAtomicLayout(t, dir, tc.visible...)
			if newTarget := atomicDataTarget(t, dir); (newTarget != oldTarget) != tc.changed {
				t.Errorf("..data %s -> %s, changed %v", oldTarget, newTarget, tc.changed)
			}
		})
	}
}

func TestAtomicWriterRefusesInvalidPayload(t *testing.T) {
	cases := []struct {
		name    string
		payload map[string]volumemgr.FileProjection
		msg     string
	}{
		{"empty path", atomicTextPayload("", "x"), `path ""`},
		{"absolute", atomicTextPayload("/dev/null", "x"), `"/dev/null"`},
		{"reserved name", atomicTextPayload("..sneaky.txt", "x"), `"..sneaky.txt"`},
		{"..data", atomicTextPayload("..data", "x"), `"..data"`},
		{"dotdot element", atomicTextPayload("hello/there/../../../../etc/passwd", "x"), "'..'"},
		{"dotdot element 2", atomicTextPayload("hello/../etc/somethingbad", "x"), "'..'"},
		{"path too long", atomicTextPayload(strings.Repeat("a/", 2049), "x"), "4096"},
		{"name too long", atomicTextPayload(strings.Repeat("a", 256), "x"), "255"},
		{"the directory itself", atomicTextPayload("./", "x"), `"./"`},
		{"two spellings of one path", atomicTextPayload("a/b", "1", "a//b", "2"), "same file"},
		{"a file and its directory", atomicTextPayload("a", "1", "a/b", "2"), `"a"`},
		{"mode beyond 0777", map[string]volumemgr.FileProjection{"a": {Mode: 0o1777}}, "mode"},
		{"negative mode", map[string]volumemgr.FileProjection{"a": {Mode: -1}}, "mode"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w := newAtomicTestWriter(t, dir, nil)
			mustAtomicWrite(t, w, atomicTextPayload("keep", "me"), true)
			before := atomicDirNames(t, dir)
			changed, err := w.Write(tc.payload)
			if !errors.Is(err, core.ErrInvalid) || changed {
				t.Fatalf("got changed %v, %v; want an error matching core.ErrInvalid", changed, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %s", err, tc.msg)
			}
			if got := atomicDirNames(t, dir); !slices.Equal(got, before) {
				t.Errorf("entries %q after a refused write, want %q", got, before)
			}
			if got := atomicReadVisible(t, dir); got != "keep=me" {
				t.Errorf("content %q after a refused write", got)
			}
		})
	}
}

func TestAtomicWriterMissingDir(t *testing.T) {
	w := newAtomicTestWriter(t, filepath.Join(t.TempDir(), "not-mounted"), nil)
	if _, err := w.Write(atomicTextPayload("a", "1")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v, want an error matching fs.ErrNotExist", err)
	}
}

func TestAtomicWriterOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root")
	}
	dir := t.TempDir()
	w := newAtomicTestWriter(t, dir, nil)
	mustAtomicWrite(t, w, map[string]volumemgr.FileProjection{
		"token":   {Data: []byte("t"), Mode: 0o600, FsUser: ptr.To[int64](1234)},
		"sub/key": {Data: []byte("k"), Mode: 0o600, FsUser: ptr.To[int64](1235)},
		"plain":   {Data: []byte("p"), Mode: 0o644},
	}, true)
	owner := func(path string, follow bool) uint32 {
		t.Helper()
		stat := os.Lstat
		if follow {
			stat = os.Stat
		}
		fi, err := stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Uid
	}
	for path, want := range map[string]uint32{
		filepath.Join(dir, "token"):   1234,
		filepath.Join(dir, "sub/key"): 1235,
		filepath.Join(dir, "plain"):   0,
	} {
		if got := owner(path, true); got != want {
			t.Errorf("owner of %s: %d, want %d", path, got, want)
		}
	}
	// The visible symlinks belong to their file's owner too.
	if got := owner(filepath.Join(dir, "token"), false); got != 1234 {
		t.Errorf("owner of the token symlink: %d, want 1234", got)
	}
	if got := owner(filepath.Join(dir, "sub"), false); got != 1235 {
		t.Errorf("owner of the sub symlink: %d, want 1235", got)
	}
}

func TestAtomicWriterBeforePublish(t *testing.T) {
	dir := t.TempDir()
	var calls []string
	fail := error(nil)
	w := newAtomicTestWriter(t, dir, func(ts string) error {
		calls = append(calls, ts)
		// The new content is complete, and not visible yet.
		if data, err := os.ReadFile(filepath.Join(ts, "a")); err != nil || len(data) == 0 {
			t.Errorf("BeforePublish: file a: %q, %v", data, err)
		}
		if target, err := os.Readlink(filepath.Join(dir, volumemgr.AtomicDataDir)); err == nil && target == filepath.Base(ts) {
			t.Error("BeforePublish called after the swap")
		}
		if filepath.Dir(ts) != dir || !strings.HasPrefix(filepath.Base(ts), atomicTestPrefix) {
			t.Errorf("BeforePublish(%s): not a timestamped directory of %s", ts, dir)
		}
		return fail
	})
	mustAtomicWrite(t, w, atomicTextPayload("a", "1"), true)
	mustAtomicWrite(t, w, atomicTextPayload("a", "1"), false)
	if len(calls) != 1 {
		t.Fatalf("BeforePublish called %d times, want once (an unchanged payload publishes nothing)", len(calls))
	}

	fail = errors.New("fsGroup chown failed")
	before := atomicDirNames(t, dir)
	changed, err := w.Write(atomicTextPayload("a", "2", "b", "3"))
	if !errors.Is(err, fail) || changed {
		t.Fatalf("got changed %v, %v; want the hook's error", changed, err)
	}
	if got := atomicReadVisible(t, dir); got != "a=1" {
		t.Errorf("content after a failed hook: %q, want the old", got)
	}
	if got := atomicDirNames(t, dir); !slices.Equal(got, before) {
		t.Errorf("entries after a failed hook: %q, want %q", got, before)
	}
}

// Each simulated crash leaves what the writer leaves when the process dies
// between two steps; the next Write must repair it.
func TestAtomicWriterRepairsCrashLeftovers(t *testing.T) {
	// swapTo makes ..data name a new directory holding payload by hand,
	// as a writer that died right after the rename would leave it.
	swapTo := func(t *testing.T, dir string, payload map[string]volumemgr.FileProjection) {
		t.Helper()
		ts := filepath.Join(dir, "..2026_01_02_15_04_06.crashed")
		for p, f := range payload {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(ts, p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(ts, p), f.Data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, volumemgr.AtomicDataDir)); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name    string
		first   map[string]volumemgr.FileProjection
		crash   func(t *testing.T, dir string)
		second  map[string]volumemgr.FileProjection
		changed bool
		visible []string
	}{{
		name:  "died while writing the new directory",
		first: atomicTextPayload("a", "1"),
		crash: func(t *testing.T, dir string) {
			half := filepath.Join(dir, "..2026_01_02_15_04_06.123")
			if err := os.MkdirAll(filepath.Join(half, "sub"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(half, "sub", "a"), []byte("half"), 0o600); err != nil {
				t.Fatal(err)
			}
		},
		second:  atomicTextPayload("a", "1"),
		changed: false,
		visible: []string{"a"},
	}, {
		name:  "died after making ..data_tmp, unchanged payload",
		first: atomicTextPayload("a", "1"),
		crash: func(t *testing.T, dir string) {
			if err := os.Mkdir(filepath.Join(dir, "..2026_01_02_15_04_06.77"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("..2026_01_02_15_04_06.77", filepath.Join(dir, "..data_tmp")); err != nil {
				t.Fatal(err)
			}
		},
		second:  atomicTextPayload("a", "1"),
		changed: false,
		visible: []string{"a"},
	}, {
		name:  "died after making ..data_tmp, changed payload",
		first: atomicTextPayload("a", "1"),
		crash: func(t *testing.T, dir string) {
			if err := os.Symlink("..2026_01_02_15_04_06.gone", filepath.Join(dir, "..data_tmp")); err != nil {
				t.Fatal(err)
			}
		},
		second:  atomicTextPayload("a", "2", "b", "3"),
		changed: true,
		visible: []string{"a", "b"},
	}, {
		name:  "died after the swap, before making the visible symlinks",
		first: atomicTextPayload("a", "1"),
		crash: func(t *testing.T, dir string) {
			swapTo(t, dir, atomicTextPayload("a", "1", "b/c", "2"))
		},
		second:  atomicTextPayload("a", "1", "b/c", "2"),
		changed: false,
		visible: []string{"a", "b"},
	}, {
		name:  "died after the visible symlinks were removed, before making them",
		first: atomicTextPayload("a", "1", "b", "2"),
		crash: func(t *testing.T, dir string) {
			for _, name := range []string{"a", "b"} {
				if err := os.Remove(filepath.Join(dir, name)); err != nil {
					t.Fatal(err)
				}
			}
		},
		second:  atomicTextPayload("a", "1", "b", "2"),
		changed: false,
		visible: []string{"a", "b"},
	}, {
		name:  "died after the swap, before removing stale symlinks and the old directory",
		first: atomicTextPayload("a", "1", "gone", "2", "d/x", "3"),
		crash: func(t *testing.T, dir string) {
			swapTo(t, dir, atomicTextPayload("a", "9"))
		},
		second:  atomicTextPayload("a", "9"),
		changed: false,
		visible: []string{"a"},
	}, {
		name:  "..data names a directory someone removed",
		first: atomicTextPayload("a", "1"),
		crash: func(t *testing.T, dir string) {
			if err := os.RemoveAll(filepath.Join(dir, atomicDataTarget(t, dir))); err != nil {
				t.Fatal(err)
			}
		},
		second:  atomicTextPayload("a", "1"),
		changed: true,
		visible: []string{"a"},
	}, {
		name:  "a file of ..data truncated by a lost write",
		first: atomicTextPayload("a", "1234", "b", "x"),
		crash: func(t *testing.T, dir string) {
			if err := os.Truncate(filepath.Join(dir, "a"), 0); err != nil {
				t.Fatal(err)
			}
		},
		second:  atomicTextPayload("a", "1234", "b", "x"),
		changed: true,
		visible: []string{"a", "b"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w := newAtomicTestWriter(t, dir, nil)
			mustAtomicWrite(t, w, tc.first, true)
			tc.crash(t, dir)
			mustAtomicWrite(t, w, tc.second, tc.changed)
			if got, want := atomicReadVisible(t, dir), renderTextPayload(tc.second); got != want {
				t.Errorf("visible content:\n%s\nwant:\n%s", got, want)
			}
			target := atomicDataTarget(t, dir)
			want := append([]string{volumemgr.AtomicDataDir, target}, tc.visible...)
			slices.Sort(want)
			if got := atomicDirNames(t, dir); !slices.Equal(got, want) {
				t.Errorf("entries %q, want %q", got, want)
			}
		})
	}
}

// What the writer did not make is not its to remove: a directory a nested
// mount needs, a symlink elsewhere, a name starting with ".." that is no
// timestamp.
func TestAtomicWriterLeavesForeignEntries(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"mnt", "..foreign", "..2026_not_a_stamp", "cfg"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc", filepath.Join(dir, "elsewhere")); err != nil {
		t.Fatal(err)
	}
	w := newAtomicTestWriter(t, dir, nil)
	// "cfg" exists as a directory: left as it is, as the kubelet leaves it.
	mustAtomicWrite(t, w, atomicTextPayload("a", "1", "cfg/x", "2"), true)
	mustAtomicWrite(t, w, atomicTextPayload("b", "2"), true)
	target := atomicDataTarget(t, dir)
	want := []string{"..2026_not_a_stamp", volumemgr.AtomicDataDir, "..foreign", target, "b", "cfg", "elsewhere", "mnt"}
	slices.Sort(want)
	if got := atomicDirNames(t, dir); !slices.Equal(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}
	if link, _ := os.Readlink(filepath.Join(dir, "elsewhere")); link != "/etc" {
		t.Errorf("elsewhere -> %q", link)
	}
}

// Readers through the visible paths, and readers that resolve ..data
// once, never see a mix of two versions while the writer swaps
// repeatedly: every file read whole, both files of a resolved directory of
// one version, and no version older than one seen before.
func TestAtomicWriterConcurrentReaders(t *testing.T) {
	const (
		versions = 200
		size     = 32 << 10
	)
	content := func(v int) []byte {
		token := fmt.Sprintf("v%05d;", v)
		return bytes.Repeat([]byte(token), size/len(token)+1)[:size]
	}
	// version parses a file's content; ok is false for a torn or partial
	// file.
	version := func(data []byte) (v int, ok bool) {
		if len(data) != size {
			return 0, false
		}
		if _, err := fmt.Sscanf(string(data[:7]), "v%05d;", &v); err != nil {
			return 0, false
		}
		return v, bytes.Equal(data, content(v))
	}
	payload := func(v int) map[string]volumemgr.FileProjection {
		p := map[string]volumemgr.FileProjection{
			"a":     {Data: content(v), Mode: 0o644},
			"sub/b": {Data: content(v), Mode: 0o644},
		}
		// A file that comes and goes.
		if v%2 == 0 {
			p["even"] = volumemgr.FileProjection{Data: content(v), Mode: 0o644}
		}
		return p
	}

	dir := t.TempDir()
	w := newAtomicTestWriter(t, dir, nil)
	mustAtomicWrite(t, w, payload(0), true)

	var (
		done  atomic.Bool
		reads atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		seen  = map[string]map[int]bool{}
	)
	record := func(reader string, v int) {
		mu.Lock()
		defer mu.Unlock()
		if seen[reader] == nil {
			seen[reader] = map[int]bool{}
		}
		seen[reader][v] = true
	}
	read := func(path string) ([]byte, bool) {
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			// The old directory was removed between resolving ..data
			// and opening the file: read again.
			return nil, false
		}
		if err != nil {
			t.Errorf("read %s: %v", path, err)
			return nil, false
		}
		return data, true
	}
	for _, file := range []string{"a", "sub/b"} {
		reader := "visible " + file
		wg.Go(func() {
			last := -1
			for !done.Load() {
				data, ok := read(filepath.Join(dir, file))
				if !ok {
					continue
				}
				v, whole := version(data)
				if !whole {
					t.Errorf("%s: read a torn file (%d bytes)", reader, len(data))
					return
				}
				if v < last {
					t.Errorf("%s: version %d after %d", reader, v, last)
					return
				}
				last = v
				record(reader, v)
				reads.Add(1)
			}
		})
	}
	wg.Go(func() {
		for !done.Load() {
			target, err := os.Readlink(filepath.Join(dir, volumemgr.AtomicDataDir))
			if err != nil {
				t.Errorf("readlink ..data: %v", err)
				return
			}
			a, okA := read(filepath.Join(dir, target, "a"))
			b, okB := read(filepath.Join(dir, target, "sub/b"))
			if !okA || !okB {
				continue
			}
			va, wholeA := version(a)
			vb, wholeB := version(b)
			if !wholeA || !wholeB || va != vb {
				t.Errorf("resolved %s: a is v%d (whole %v), sub/b is v%d (whole %v)", target, va, wholeA, vb, wholeB)
				return
			}
			record("resolved", va)
			reads.Add(1)
		}
	})

	for v := 1; v <= versions && !t.Failed(); v++ {
		mustAtomicWrite(t, w, payload(v), true)
		// Let the readers run between swaps.
		for n := reads.Load(); reads.Load() < n+3 && !t.Failed(); {
			runtime.Gosched()
		}
	}
	done.Store(true)
	wg.Wait()

	for _, reader := range []string{"visible a", "visible sub/b", "resolved"} {
		if len(seen[reader]) < 2 {
			t.Errorf("%s saw %d versions; the test did not exercise the swap", reader, len(seen[reader]))
		}
	}
	if got, want := atomicReadVisible(t, dir), renderTextPayload(payload(versions)); got != want {
		t.Error("final content is not the last version")
	}
	checkAtomicLayout(t, dir, "a", "even", "sub")
}
