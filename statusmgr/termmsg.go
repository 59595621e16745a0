package statusmgr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-client/pkg/logs"

	"github.com/nodekit/nodekit/core"
)

// ReadTerminationMessage returns the termination message of an exited
// container instance as the kubelet reads it; it does file I/O and is
// meant as Input.TerminationMessage:
//
//	in.TerminationMessage = func(cs *runtimeapi.ContainerStatus) string { return statusmgr.ReadTerminationMessage(ctx, cs) }
//
// The container's terminationMessagePath and terminationMessagePolicy come
// from its annotations (core.AnnotationContainerTerminationMessagePath and
// ...Policy, which crispec sets). The file is read through the host path
// of the container's mount at that path: its last
// MaxTerminationMessageLength bytes. With the policy
// FallbackToLogsOnError, a container that failed (a non-zero exit code,
// and a reason other than ContainerCannotRun) and left no file or an
// empty one gets the tail of its CRI log instead: the last
// MaxTerminationMessageLogLength bytes of its last
// MaxTerminationMessageLogLines lines. A file or log that cannot be read
// gives a message saying so, as in the kubelet.
//
// The message of an exited instance does not change: a caller may keep it
// by container ID.
func ReadTerminationMessage(ctx context.Context, cs *runtimeapi.ContainerStatus) string {
	if cs.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED {
		return ""
	}
	path := cs.GetAnnotations()[core.AnnotationContainerTerminationMessagePath]
	policy := v1.TerminationMessagePolicy(cs.GetAnnotations()[core.AnnotationContainerTerminationMessagePolicy])
	fallback := policy == v1.TerminationMessageFallbackToLogsOnError && cs.GetExitCode() != 0 && cs.GetReason() != "ContainerCannotRun"
	msg, checkLogs := terminationFile(cs, path, fallback)
	if checkLogs {
		msg = logTail(ctx, cs.GetLogPath())
	}
	return msg
}

// terminationFile reads the termination message file, and reports
// whether the log must be read instead.
func terminationFile(cs *runtimeapi.ContainerStatus, path string, fallback bool) (string, bool) {
	if path == "" {
		return "", fallback
	}
	path = filepath.Clean("/" + path)
	for _, m := range cs.GetMounts() {
		if m.GetContainerPath() != path {
			continue
		}
		data, err := readTail(m.GetHostPath(), MaxTerminationMessageLength)
		if errors.Is(err, fs.ErrNotExist) {
			return "", fallback
		}
		if err != nil {
			return fmt.Sprintf("Error on reading termination log %s: %v", m.GetHostPath(), err), false
		}
		return string(data), fallback && len(data) == 0
	}
	return "", fallback
}

// readTail returns the last limit bytes of the file at path.
func readTail(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() == 0 {
		return nil, nil
	}
	if _, err := f.Seek(-min(limit, fi.Size()), io.SeekEnd); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}

// logTail returns the tail of a CRI log file.
func logTail(ctx context.Context, path string) string {
	lines := int64(MaxTerminationMessageLogLines)
	buf := &tailBuffer{max: MaxTerminationMessageLogLength}
	if err := logs.ReadLogs(ctx, path, "", &logs.LogOptions{TailLines: &lines}, nil, buf, buf); err != nil {
		return fmt.Sprintf("Error on reading termination message from logs: %v", err)
	}
	return string(buf.data)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max  int
	data []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.data = append(b.data, p...)
	if over := len(b.data) - b.max; over > 0 {
		b.data = append(b.data[:0], b.data[over:]...)
	}
	return len(p), nil
}
