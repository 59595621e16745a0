package statusmgr

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

func TestReadTerminationMessage(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// criLog writes lines in the CRI log format, the last one without a
	// newline of its own when partial.
	criLog := func(name string, lines ...string) string {
		var b strings.Builder
		for _, l := range lines {
			fmt.Fprintf(&b, "2026-03-04T05:06:07.000000000Z stderr F %s\n", l)
		}
		return write(name, b.String())
	}
	var many []string
	for i := range 100 {
		many = append(many, fmt.Sprintf("line %d", i))
	}
	var long []string
	for i := range 30 {
		long = append(long, fmt.Sprintf("%02d%s", i, strings.Repeat("y", 98)))
	}

	message := write("message", "all done\n")
	empty := write("empty", "")
	big := write("big", strings.Repeat("a", 10)+strings.Repeat("b", MaxTerminationMessageLength))
	logFile := criLog("0.log", "starting", "panic: boom")
	manyLog := criLog("many.log", many...)
	longLog := criLog("long.log", long...)

	type tc struct {
		name     string
		path     string // terminationMessagePath
		policy   v1.TerminationMessagePolicy
		hostPath string // of the mount at path; "" for no mount
		logPath  string
		state    runtimeapi.ContainerState
		code     int32
		reason   string
		want     string
	}
	cases := []tc{
		{"running", "/dev/termination-log", v1.TerminationMessageReadFile, message, logFile, runtimeapi.ContainerState_CONTAINER_RUNNING, 0, "", ""},
		{"file", "/dev/termination-log", v1.TerminationMessageReadFile, message, logFile, runtimeapi.ContainerState_CONTAINER_EXITED, 1, "Error", "all done\n"},
		{"relative path", "dev/termination-log", v1.TerminationMessageReadFile, message, logFile, runtimeapi.ContainerState_CONTAINER_EXITED, 0, "Completed", "all done\n"},
		{"file's last 4 KiB", "/dev/termination-log", v1.TerminationMessageReadFile, big, logFile, runtimeapi.ContainerState_CONTAINER_EXITED, 0, "Completed", strings.Repeat("b", MaxTerminationMessageLength)},
		{"no path", "", v1.TerminationMessageReadFile, message, logFile, runtimeapi.ContainerState_CONTAINER_EXITED, 1, "Error", ""},
		{"no mount", "/dev/termination-log", v1.TerminationMessageReadFile, "", logFile, runtimeapi.ContainerState_CONTAINER_EXITED, 1, "Error", ""},
		{"no file", "/dev/termination-log", v1.TerminationMessageReadFile, filepath.Join(dir, "missing"), logFile, runtimeapi.ContainerState_CONTAINER_EXITED, 1, "Error", ""},
		{"file unreadable", "/dev/termination-log", v1.TerminationMessageReadFile, dir, logFile, runtimeapi.ContainerState_CONTAINER_EXITED, 1, "Error", "Error on reading termination log " + dir + ": "},
		{"fallback: file wins", "/dev/termination-log", v1.TerminationMessageFallbackToLogsOnError, message, logFile, runtimeapi.ContainerState_CONTAINER_EXITED, 1, "Error", "all done\n"},
		{"fallback: no file", "/dev/termination-log", v1.TerminationMessageFallbackToLogsOnError, filepath.Join(dir, "missing"), logFile, runtimeapi.ContainerState_CONTAINER_EXITED, 1, "Error", "starting\npanic: boom\n"},
		{"fallback: empty file", "/dev/termination-log", v1.TerminationMessageFallbackToLogsOnError, empty, logFile, runtimeapi.ContainerState_CONTAINER_EXITED, 1, "Error", "starting\npanic: boom\n"},
		{"fallback: no path", "", v1.TerminationMessageFallbackToLogsOnError, "", logFile, runtimeapi.ContainerState_CONTAINER_EXITED, 1, "Error", "starting\npanic: boom\n"},
		{"fallback: succeeded", "/dev/termination-log", v1.TerminationMessageFallbackToLogsOnError, empty, logFile, runtimeapi.ContainerState_CONTAINER_EXITED, 0, "Completed", ""},
		{"fallback: could not run", "/dev/termination-log", v1.TerminationMessageFallbackToLogsOnError, empty, logFile, runtimeapi.ContainerState_CONTAINER_EXITED, 128, "ContainerCannotRun", ""},
		{"fallback: last 80 lines", "", v1.TerminationMessageFallbackToLogsOnError, "", manyLog, runtimeapi.ContainerState_CONTAINER_EXITED, 1, "Error", strings.Join(many[20:], "\n") + "\n"},
		{"fallback: last 2 KiB", "", v1.TerminationMessageFallbackToLogsOnError, "", longLog, runtimeapi.ContainerState_CONTAINER_EXITED, 1, "Error", (strings.Join(long, "\n") + "\n")[30*101-MaxTerminationMessageLogLength:]},
		{"fallback: no log", "", v1.TerminationMessageFallbackToLogsOnError, "", filepath.Join(dir, "missing.log"), runtimeapi.ContainerState_CONTAINER_EXITED, 1, "Error", "Error on reading termination message from logs: "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cs := &runtimeapi.ContainerStatus{
				Id: "c1", State: c.state, ExitCode: c.code, Reason: c.reason, LogPath: c.logPath,
				Annotations: map[string]string{
					core.AnnotationContainerTerminationMessagePath:   c.path,
					core.AnnotationContainerTerminationMessagePolicy: string(c.policy),
				},
			}
			if c.hostPath != "" {
				cs.Mounts = []*runtimeapi.Mount{
					{ContainerPath: "/etc/hosts", HostPath: message + ".not"},
					{ContainerPath: "/dev/termination-log", HostPath: c.hostPath},
				}
			}
			got := ReadTerminationMessage(context.Background(), cs)
			if strings.HasPrefix(c.want, "Error on") {
				if !strings.HasPrefix(got, c.want) {
					t.Errorf("message %q, want it to start with %q", got, c.want)
				}
				return
			}
			if got != c.want {
				t.Errorf("message %q, want %q", got, c.want)
			}
		})
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 5}
	for _, s := range []string{"ab", "cdef", "", "ghijklmn", "o"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if string(b.data) != "klmno" {
		t.Errorf("kept %q, want %q", b.data, "klmno")
	}
}
