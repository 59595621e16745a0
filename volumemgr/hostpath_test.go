package volumemgr

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"

	"github.com/nodekit/nodekit/core"
)

// firstBlockDevice finds a block device in /dev, or "".
func firstBlockDevice() string {
	entries, err := os.ReadDir("/dev")
	if err != nil {
		return ""
	}
	for _, e := range entries {
		if e.Type()&fs.ModeDevice != 0 && e.Type()&fs.ModeCharDevice == 0 {
			return filepath.Join("/dev", e.Name())
		}
	}
	return ""
}

func TestCheckHostPath(t *testing.T) {
	dir := t.TempDir()
	at := func(name string) string { return filepath.Join(dir, name) }
	if err := os.Mkdir(at("d"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(at("f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", at("s"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := unix.Mkfifo(at("fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"ld": at("d"), "lf": "f", "dangling": at("nothing")} {
		if err := os.Symlink(target, at(link)); err != nil {
			t.Fatal(err)
		}
	}
	block := firstBlockDevice()

	type want struct {
		msg   string // the error's message, "" for success
		class error
		found v1.HostPathType // for a *HostPathTypeError
	}
	ok := want{}
	notA := func(path, word string, found v1.HostPathType) want {
		return want{"hostPath type check failed: " + path + " is not a " + word + ", it's a " + string(found), core.ErrInvalid, found}
	}
	missing := func(path, word string) want {
		return want{`hostPath type check failed, ` + path + ` is not a ` + word + `, unable to determine its type: path "` + path + `" does not exist`, core.ErrNotFound, ""}
	}
	type testCase struct {
		name string
		path string
		typ  *v1.HostPathType
		want want
	}
	tests := []testCase{
		{"nil type checks nothing", at("nothing"), nil, ok},
		{"unset type checks nothing", at("nothing"), new(v1.HostPathUnset), ok},

		{"Directory", at("d"), new(v1.HostPathDirectory), ok},
		{"Directory through a symlink", at("ld"), new(v1.HostPathDirectory), ok},
		{"Directory, a file", at("f"), new(v1.HostPathDirectory), notA(at("f"), "directory", "File")},
		{"Directory, missing", at("nothing"), new(v1.HostPathDirectory), missing(at("nothing"), "directory")},
		{"Directory, dangling symlink", at("dangling"), new(v1.HostPathDirectory), missing(at("dangling"), "directory")},
		{"Directory, a FIFO", at("fifo"), new(v1.HostPathDirectory), want{"hostPath type check failed, " + at("fifo") + " is not a directory, unable to determine its type: only recognise file, directory, socket, block device and character device", core.ErrInvalid, ""}},
		{"DirectoryOrCreate, existing", at("d"), new(v1.HostPathDirectoryOrCreate), ok},
		{"DirectoryOrCreate, a file", at("f"), new(v1.HostPathDirectoryOrCreate), notA(at("f"), "directory", "File")},

		{"File", at("f"), new(v1.HostPathFile), ok},
		{"File through a symlink", at("lf"), new(v1.HostPathFile), ok},
		{"File, a directory", at("d"), new(v1.HostPathFile), notA(at("d"), "file", "Directory")},
		{"File, missing", at("nothing"), new(v1.HostPathFile), missing(at("nothing"), "file")},
		{"FileOrCreate, existing", at("f"), new(v1.HostPathFileOrCreate), ok},
		{"FileOrCreate, a directory", at("d"), new(v1.HostPathFileOrCreate), notA(at("d"), "file", "Directory")},

		{"Socket", at("s"), new(v1.HostPathSocket), ok},
		{"Socket, a file", at("f"), new(v1.HostPathSocket), notA(at("f"), "socket file", "File")},
		{"Socket, missing", at("nothing"), new(v1.HostPathSocket), missing(at("nothing"), "socket file")},

		{"CharDevice", "/dev/null", new(v1.HostPathCharDev), ok},
		{"CharDevice, a file", at("f"), new(v1.HostPathCharDev), notA(at("f"), "character device", "File")},
		{"CharDevice, a socket", at("s"), new(v1.HostPathCharDev), notA(at("s"), "character device", "Socket")},
		{"BlockDevice, a char device", "/dev/null", new(v1.HostPathBlockDev), notA("/dev/null", "block device", "CharDevice")},
		{"BlockDevice, a directory", at("d"), new(v1.HostPathBlockDev), notA(at("d"), "block device", "Directory")},

		{"unknown type", at("d"), new(v1.HostPathType("Pipe")), want{"Pipe is an invalid volume type: invalid", core.ErrInvalid, ""}},
		{"relative path", "var/log", nil, want{"invalid HostPath `var/log`: must be an absolute path: invalid", core.ErrInvalid, ""}},
		{"backstep", "/var/../etc", new(v1.HostPathDirectory), want{"invalid HostPath `/var/../etc`: must not contain '..': invalid", core.ErrInvalid, ""}},
	}
	if block != "" {
		tests = append(tests,
			testCase{"BlockDevice", block, new(v1.HostPathBlockDev), ok},
			testCase{"CharDevice, a block device", block, new(v1.HostPathCharDev), notA(block, "character device", "BlockDevice")},
		)
	} else {
		t.Log("no block device in /dev: the BlockDevice success case is not checked")
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckHostPath(tt.path, tt.typ)
			if tt.want.msg == "" {
				if err != nil {
					t.Fatalf("CheckHostPath = %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tt.want.msg {
				t.Fatalf("CheckHostPath error\n got %v\nwant %s", err, tt.want.msg)
			}
			if !errors.Is(err, tt.want.class) {
				t.Errorf("error %v does not match %v", err, tt.want.class)
			}
			var te *HostPathTypeError
			if errors.As(err, &te) != strings.HasPrefix(tt.want.msg, "hostPath type check failed") {
				t.Fatalf("errors.As(*HostPathTypeError) = %v for %v", te != nil, err)
			}
			if te != nil && (te.Path != tt.path || te.Type != *tt.typ || te.Found != tt.want.found) {
				t.Errorf("HostPathTypeError = %+v, want path %s type %s found %q", te, tt.path, *tt.typ, tt.want.found)
			}
		})
	}
}

func TestCheckHostPathCreates(t *testing.T) {
	old := syscall.Umask(0o077) // the modes must not depend on it
	t.Cleanup(func() { syscall.Umask(old) })
	dir := t.TempDir()

	newDir := filepath.Join(dir, "a", "b")
	if err := CheckHostPath(newDir, new(v1.HostPathDirectoryOrCreate)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, "a"), newDir} {
		mntAssertMode(t, p, fs.ModeDir|0o755)
	}
	mntAssertMode(t, dir, fs.ModeDir|0o700) // existing parents are left alone

	newFile := filepath.Join(dir, "file")
	if err := CheckHostPath(newFile, new(v1.HostPathFileOrCreate)); err != nil {
		t.Fatal(err)
	}
	mntAssertMode(t, newFile, 0o644)
	if err := os.WriteFile(newFile, []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckHostPath(newFile, new(v1.HostPathFileOrCreate)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(newFile); string(b) != "content" {
		t.Fatalf("FileOrCreate of an existing file changed it to %q", b)
	}

	// FileOrCreate does not create the parent directory.
	orphan := filepath.Join(dir, "nodir", "file")
	err := CheckHostPath(orphan, new(v1.HostPathFileOrCreate))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), orphan) {
		t.Fatalf("FileOrCreate without a parent: %v, want an error matching fs.ErrNotExist naming %s", err, orphan)
	}
	if _, err := os.Lstat(filepath.Dir(orphan)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("FileOrCreate created the parent directory: %v", err)
	}
}
