package cri

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nodekit/nodekit/core"
)

func TestNewMissingSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nope.sock")
	_, err := New(context.Background(), Config{Endpoint: "unix://" + sock})
	if !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("New with a missing socket: %v, want core.ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), sock) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("error %q does not name the socket and say it is missing", err)
	}
}

func TestNewRejectsBadEndpoints(t *testing.T) {
	file := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Endpoint: "tcp://127.0.0.1:1234"}, "only unix sockets"},
		{Config{Endpoint: file}, "is not a unix socket"},
		{Config{Endpoint: "unix://" + file, RequestTimeout: -time.Second}, "RequestTimeout"},
	} {
		_, err := New(context.Background(), tc.cfg)
		if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v): %v, want core.ErrInvalid mentioning %q", tc.cfg, err, tc.want)
		}
	}
}

// A socket that accepts connections but never speaks gRPC must not hang New.
func TestNewSilentSocketTimesOut(t *testing.T) {
	dir, err := os.MkdirTemp("", "nk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	_, err = New(context.Background(), Config{Endpoint: sock, ConnectTimeout: 300 * time.Millisecond})
	if !errors.Is(err, core.ErrUnavailable) || !strings.Contains(err.Error(), sock) {
		t.Fatalf("New against a silent socket: %v, want core.ErrUnavailable naming %s", err, sock)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
	}{
		{status.Error(codes.NotFound, "container \"x\" not found"), core.ErrNotFound},
		{status.Error(codes.Unknown, "an error occurred when try to find sandbox: not found"), core.ErrNotFound},
		{status.Error(codes.Canceled, "context canceled"), context.Canceled},
		{status.Error(codes.AlreadyExists, "name is reserved"), core.ErrAlreadyExists},
		{status.Error(codes.Unknown, `failed to reserve container name "a": name "a" is reserved for "b"`), core.ErrAlreadyExists},
		{status.Error(codes.FailedPrecondition, `failed to reserve container name "a"; check if another CreateContainer request is in progress: name "a" is reserved for "b"`), core.ErrAlreadyExists},
		{status.Error(codes.InvalidArgument, "bad"), core.ErrInvalid},
		{status.Error(codes.Unimplemented, "unknown method GetContainerEvents"), core.ErrUnimplemented},
		{status.Error(codes.Unavailable, "connection refused"), core.ErrUnavailable},
		{status.Error(codes.DeadlineExceeded, "slow"), core.ErrTimeout},
		{context.DeadlineExceeded, core.ErrTimeout},
	} {
		got := classify("op", tc.err)
		if !errors.Is(got, tc.want) {
			t.Errorf("classify(%v) = %v, want class %v", tc.err, got, tc.want)
		}
		if !errors.Is(got, tc.err) {
			t.Errorf("classify(%v) lost the original error", tc.err)
		}
		if !strings.HasPrefix(got.Error(), "op: ") {
			t.Errorf("classify(%v) = %q, want the operation first", tc.err, got)
		}
	}
	// A failed start whose message says "not found" is not an unknown ID.
	for _, plain := range []error{
		status.Error(codes.Internal, "boom"),
		status.Error(codes.Unknown, `failed to create containerd task: OCI runtime create failed: exec: "nope": executable file not found in $PATH`),
		errors.New("image not found somewhere"),
	} {
		got := classify("op", plain)
		for _, class := range []error{core.ErrNotFound, core.ErrInvalid, core.ErrUnavailable, core.ErrTimeout, core.ErrAlreadyExists} {
			if errors.Is(got, class) {
				t.Errorf("classify(%v) is %v", plain, class)
			}
		}
	}
	plain := status.Error(codes.Internal, "boom")
	got := classify("op", plain)
	if st, ok := status.FromError(got); !ok || st.Code() != codes.Internal {
		t.Errorf("gRPC status not reachable through the wrapped error: %v", got)
	}
	if classify("op", nil) != nil {
		t.Error("classify(nil) is not nil")
	}
}

func TestClientLogsAtDebugLevel(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := zap.New(core).WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return debugCore{c} }))
	l.With(zap.String("k", "v")).Error("ContainerStatus from runtime service failed")
	entries := logs.All()
	if len(entries) != 1 || entries[0].Level != zapcore.DebugLevel || entries[0].ContextMap()["k"] != "v" {
		t.Fatalf("entries %+v, want one debug entry with its fields", entries)
	}
	quiet, logs := observer.New(zapcore.InfoLevel)
	zap.New(quiet).WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return debugCore{c} })).Error("noise")
	if logs.Len() != 0 {
		t.Errorf("an info-level logger kept %d demoted entries", logs.Len())
	}
}
