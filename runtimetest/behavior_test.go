package runtimetest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/runtimetest"
)

const (
	created = runtimeapi.ContainerState_CONTAINER_CREATED
	running = runtimeapi.ContainerState_CONTAINER_RUNNING
	exited  = runtimeapi.ContainerState_CONTAINER_EXITED
)

func TestCommandsEndOnTheClock(t *testing.T) {
	for _, tc := range []struct {
		cmd    []string
		after  time.Duration // when it exits; 0: at once; -1: never
		code   int32
		reason string
	}{
		{[]string{"sh", "-c", "exit 3"}, 0, 3, "Error"},
		{[]string{"true"}, 0, 0, "Completed"},
		{[]string{"/bin/false"}, 0, 1, "Error"},
		{[]string{"echo", "hello"}, 0, 0, "Completed"},
		{[]string{"sleep", "10"}, 10 * time.Second, 0, "Completed"},
		{[]string{"sleep", "1.5m"}, 90 * time.Second, 0, "Completed"},
		{[]string{"busybox", "sleep", "2"}, 2 * time.Second, 0, "Completed"},
		{[]string{"sleep", "forever"}, 0, 1, "Error"},
		{[]string{"sh", "-c", "sleep 5; exit 2"}, 5 * time.Second, 2, "Error"},
		{[]string{"sh", "-c", "sleep 1 && false || exit 4"}, time.Second, 4, "Error"},
		{[]string{"sh", "-c", "false && sleep 9; echo done"}, 0, 0, "Completed"},
		{[]string{"bash", "-c", "for i in 1 2 3; do sleep 2; done"}, 6 * time.Second, 0, "Completed"},
		{[]string{"sh", "-c", "if false; then exit 1; elif true; then sleep 3; exit 5; fi"}, 3 * time.Second, 5, "Error"},
		{[]string{"sh", "-c", "while true; do sleep 1; exit 7; done"}, time.Second, 7, "Error"},
		{[]string{"sh", "-c", "until false; do sleep 1; break; done; exit 8"}, time.Second, 8, "Error"},
		{[]string{"sh", "-c", "sh -c 'exit 9'; echo $?"}, 0, 0, "Completed"},
		{[]string{"sh", "-c", "exec sleep 4"}, 4 * time.Second, 0, "Completed"},
		{[]string{"sh", "-c", "exit 'oops"}, 0, 2, "Error"},
		{[]string{"sh", "-c", "done"}, 0, 2, "Error"},
		{[]string{"sleep", "infinity"}, -1, 0, ""},
		{[]string{"sh", "-c", "while true; do sleep 1; done"}, -1, 0, ""},
		{[]string{"nginx", "-g", "daemon off;"}, -1, 0, ""},
		{nil, -1, 0, ""},
	} {
		t.Run(fmt.Sprint(tc.cmd), func(t *testing.T) {
			e := newEnv(t, runtimetest.Config{})
			id := e.start(containerConfig("app", tc.cmd...))
			switch {
			case tc.after < 0:
				e.clk.Step(1000 * time.Hour)
				e.wantState(id, running, 0, "")
				return
			case tc.after > 0:
				e.clk.Step(tc.after - time.Millisecond)
				e.wantState(id, running, 0, "")
				e.clk.Step(time.Millisecond)
			}
			st := e.wantState(id, exited, tc.code, tc.reason)
			if want := epoch.Add(tc.after).UnixNano(); st.FinishedAt != want {
				t.Errorf("finished at %s, want %s", time.Unix(0, st.FinishedAt).UTC(), time.Unix(0, want).UTC())
			}
		})
	}
}

func TestStopAnswersAsTheProcessWould(t *testing.T) {
	const grace = 30
	for _, tc := range []struct {
		name  string
		cfg   *runtimeapi.ContainerConfig
		after time.Duration // how long StopContainer takes
		code  int32
	}{
		{"PID 1 ignores SIGTERM", containerConfig("app", "sleep", "3600"), grace * time.Second, 137},
		{"a shell as PID 1 ignores SIGTERM", containerConfig("app", "sh", "-c", "while true; do sleep 1; done"), grace * time.Second, 137},
		{"in the pod's PID namespace SIGTERM kills", podPID(containerConfig("app", "sleep", "3600")), 0, 143},
		{"a service ends on SIGTERM", containerConfig("app"), 0, 143},
		{"a trap ends the shell", containerConfig("app", "sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"), time.Second, 0},
		{"a trap waits for the foreground sleep", containerConfig("app", "sh", "-c", "trap 'exit 0' TERM; sleep 3600"), grace * time.Second, 137},
		{"a trap that does not exit", containerConfig("app", "sh", "-c", "trap 'echo bye' TERM; while :; do sleep 1; done"), grace * time.Second, 137},
		{"an ignoring trap", podPID(containerConfig("app", "sh", "-c", "trap '' TERM; sleep 3600")), grace * time.Second, 137},
		{"a trap that takes time", containerConfig("app", "sh", "-c", "trap 'sleep 5; exit 4' 15; while :; do sleep 1; done"), 6 * time.Second, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, runtimetest.Config{})
			id := e.start(tc.cfg)
			waiters := e.clk.Waiters()
			done := async(func() error { return e.rt.StopContainer(e.ctx, id, grace) })
			if tc.after == 0 {
				if err := e.result(done); err != nil {
					t.Fatal(err)
				}
			} else {
				e.waitWaiters(waiters + 1 + boolInt(tc.after < grace*time.Second))
				e.clk.Step(tc.after - time.Millisecond)
				e.pending(done)
				e.wantState(id, running, 0, "")
				e.clk.Step(time.Millisecond)
				if err := e.result(done); err != nil {
					t.Fatal(err)
				}
			}
			reason := map[bool]string{true: "Completed", false: "Error"}[tc.code == 0]
			st := e.wantState(id, exited, tc.code, reason)
			if want := epoch.Add(tc.after).UnixNano(); st.FinishedAt != want {
				t.Errorf("finished at +%s, want +%s", time.Duration(st.FinishedAt-epoch.UnixNano()), tc.after)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func podPID(cfg *runtimeapi.ContainerConfig) *runtimeapi.ContainerConfig {
	cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	return cfg
}

func TestStopWithoutTimeoutKills(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	id := e.start(containerConfig("app", "sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"))
	if err := e.rt.StopContainer(e.ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	e.wantState(id, exited, 137, "Error")
}

func TestStopCalledOff(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	id := e.start(containerConfig("app", "sleep", "infinity"))
	ctx, cancel := context.WithCancel(e.ctx)
	done := async(func() error { return e.rt.StopContainer(ctx, id, 10) })
	e.waitWaiters(1)
	cancel()
	if err := e.result(done); !errors.Is(err, context.Canceled) {
		t.Fatalf("StopContainer with a cancelled context: %v", err)
	}
	// As in containerd, the kill was never sent.
	e.clk.Step(time.Minute)
	e.wantState(id, running, 0, "")
	// The signal was: a second stop does not send it again, and kills.
	done = async(func() error { return e.rt.StopContainer(e.ctx, id, 10) })
	e.waitWaiters(1)
	e.clk.Step(10 * time.Second)
	if err := e.result(done); err != nil {
		t.Fatal(err)
	}
	e.wantState(id, exited, 137, "Error")
}

func TestConcurrentStopsKillAtTheFirstDeadline(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	id := e.start(containerConfig("app", "sleep", "infinity"))
	long := async(func() error { return e.rt.StopContainer(e.ctx, id, 60) })
	e.waitWaiters(1)
	short := async(func() error { return e.rt.StopContainer(e.ctx, id, 5) })
	e.waitWaiters(2)
	e.clk.Step(5 * time.Second)
	for _, done := range []<-chan error{short, long} {
		if err := e.result(done); err != nil {
			t.Fatal(err)
		}
	}
	e.wantState(id, exited, 137, "Error")
}

func TestBehaviorRules(t *testing.T) {
	e := newEnv(t, runtimetest.Config{Images: []string{busybox, "nginx:1.27"}})
	e.rt.SetBehavior(runtimetest.Match{Image: "nginx:1.27"}, runtimetest.Behavior{Exit: &runtimetest.Exit{After: time.Second, Code: 1}})
	e.rt.SetBehavior(runtimetest.Match{Container: "oom"}, runtimetest.Behavior{Exit: &runtimetest.Exit{After: 2 * time.Second, OOMKilled: true}})
	e.rt.SetBehavior(runtimetest.Match{Pod: "pod-slow", Container: "slow"}, runtimetest.Behavior{OnStop: &runtimetest.Exit{After: 3 * time.Second}})
	exit := &runtimetest.Exit{After: time.Hour}
	e.rt.SetBehavior(runtimetest.Match{Container: "kept"}, runtimetest.Behavior{Exit: exit})
	exit.After = time.Second // SetBehavior kept a copy

	web := containerConfig("web", "sleep", "infinity")
	web.Image.Image = "docker.io/library/nginx:1.27"
	webID := e.start(web)
	oomID := e.start(containerConfig("oom", "sleep", "infinity"))
	slowID := e.start(containerConfig("slow"))
	keptID := e.start(containerConfig("kept"))

	e.clk.Step(time.Second)
	e.wantState(webID, exited, 1, "Error")
	e.wantState(keptID, running, 0, "")
	e.clk.Step(time.Second)
	e.wantState(oomID, exited, 137, "OOMKilled")

	done := async(func() error { return e.rt.StopContainer(e.ctx, slowID, 10) })
	e.waitWaiters(3) // kept's exit, slow's answer to the signal, the stop
	e.clk.Step(3 * time.Second)
	if err := e.result(done); err != nil {
		t.Fatal(err)
	}
	e.wantState(slowID, exited, 0, "Completed")
}

func TestBehaviorReplacesAndClears(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	sbID, sb := e.runSandbox("web")
	m := runtimetest.Match{Container: "app"}
	e.rt.SetBehavior(m, runtimetest.Behavior{Exit: &runtimetest.Exit{Code: 1}})
	e.rt.SetBehavior(m, runtimetest.Behavior{Exit: &runtimetest.Exit{Code: 2}})
	e.rt.SetBehavior(runtimetest.Match{}, runtimetest.Behavior{Exit: &runtimetest.Exit{Code: 3}})
	startAttempt := func(attempt uint32) string {
		cfg := containerConfig("app", "sleep", "infinity")
		cfg.Metadata.Attempt = attempt
		id := e.create(sbID, sb, cfg)
		if err := e.rt.StartContainer(e.ctx, id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	e.wantState(startAttempt(0), exited, 3, "Error") // the last rule set wins
	e.rt.SetBehavior(m, runtimetest.Behavior{Exit: &runtimetest.Exit{Code: 2}})
	e.wantState(startAttempt(1), exited, 2, "Error") // setting a Match again moves it last
	e.rt.ClearBehaviors()
	e.wantState(startAttempt(2), running, 0, "") // the command again
}

func TestCrashLoop(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	e.rt.SetBehavior(runtimetest.Match{Container: "app"}, runtimetest.Behavior{Exit: &runtimetest.Exit{After: 10 * time.Second, Code: 2}})
	sbID, sb := e.runSandbox("web")
	for attempt := range uint32(3) {
		cfg := containerConfig("app")
		cfg.Metadata.Attempt = attempt
		id := e.create(sbID, sb, cfg)
		if err := e.rt.StartContainer(e.ctx, id); err != nil {
			t.Fatal(err)
		}
		e.clk.Step(10 * time.Second)
		e.wantState(id, exited, 2, "Error")
	}
}

func TestStartError(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	boom := errors.New("exec: \"app\": executable file not found in $PATH")
	e.rt.SetBehavior(runtimetest.Match{Container: "app"}, runtimetest.Behavior{StartError: boom})
	sbID, sb := e.runSandbox("web")
	id := e.create(sbID, sb, containerConfig("app"))
	if err := e.rt.StartContainer(e.ctx, id); !errors.Is(err, boom) {
		t.Fatalf("StartContainer: %v, want the start error", err)
	}
	st := e.wantState(id, exited, 128, "StartError")
	if st.Message != boom.Error() || st.StartedAt != 0 || st.FinishedAt != epoch.UnixNano() {
		t.Errorf("status %+v", st)
	}
}

func TestExitContainer(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	id := e.start(containerConfig("app", "sleep", "3600"))
	if err := e.rt.ExitContainer(id, runtimetest.Exit{OOMKilled: true}); err != nil {
		t.Fatal(err)
	}
	e.wantState(id, exited, 137, "OOMKilled")
	if err := e.rt.ExitContainer(id, runtimetest.Exit{Code: 1}); err != nil {
		t.Errorf("ExitContainer of an exited container: %v", err)
	}
	e.wantState(id, exited, 137, "OOMKilled")

	id = e.start(containerConfig("other", "sleep", "3600"))
	if err := e.rt.ExitContainer(id, runtimetest.Exit{After: time.Minute, Code: 5}); err != nil {
		t.Fatal(err)
	}
	e.clk.Step(time.Minute)
	e.wantState(id, exited, 5, "Error")
}

func TestExecSync(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	id := e.start(containerConfig("app", "sleep", "infinity"))
	for _, tc := range []struct {
		cmd            []string
		stdout, stderr string
		code           int32
	}{
		{[]string{"echo", "hello", "world"}, "hello world\n", "", 0},
		{[]string{"true"}, "", "", 0},
		{[]string{"false"}, "", "", 1},
		{[]string{"cat", "/tmp/healthy"}, "", "", 0},
		{[]string{"sh", "-c", "echo oops >&2; exit 7"}, "", "oops\n", 7},
		{[]string{"sh", "-c", `echo -n "a b"; echo 'c;d' > /dev/null; echo e\ f`}, "a be f\n", "", 0},
		{[]string{"sh", "-c", "exit 300"}, "", "", 44},
		{[]string{"sleep", "x"}, "", "sleep: invalid number 'x'\n", 1},
		{[]string{"sh", "-c", "if"}, "", "sh: syntax error: end of file while expecting \"then\"\n", 2},
	} {
		res, err := e.rt.ExecSync(e.ctx, id, tc.cmd, time.Second)
		if err != nil {
			t.Errorf("%q: %v", tc.cmd, err)
			continue
		}
		if string(res.Stdout) != tc.stdout || string(res.Stderr) != tc.stderr || res.ExitCode != tc.code {
			t.Errorf("%q: stdout %q stderr %q exit %d; want %q %q %d", tc.cmd, res.Stdout, res.Stderr, res.ExitCode, tc.stdout, tc.stderr, tc.code)
		}
	}
	if _, err := e.rt.ExecSync(e.ctx, id, nil, 0); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("empty command: %v, want core.ErrInvalid", err)
	}
}

func TestExecSyncTakesTime(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	id := e.start(containerConfig("app", "sleep", "infinity"))

	done := make(chan core.ExecResult, 1)
	errs := async(func() error {
		res, err := e.rt.ExecSync(e.ctx, id, []string{"sh", "-c", "sleep 2; echo slow"}, 5*time.Second)
		done <- res
		return err
	})
	e.waitWaiters(1)
	e.clk.Step(2*time.Second - time.Millisecond)
	e.pending(errs)
	e.clk.Step(time.Millisecond)
	if err := e.result(errs); err != nil || string((<-done).Stdout) != "slow\n" {
		t.Fatalf("ExecSync: %v", err)
	}

	errs = async(func() error {
		_, err := e.rt.ExecSync(e.ctx, id, []string{"sh", "-c", "while true; do sleep 1; done"}, 3*time.Second)
		return err
	})
	e.waitWaiters(1)
	e.clk.Step(3 * time.Second)
	if err := e.result(errs); !errors.Is(err, core.ErrTimeout) {
		t.Errorf("a command that never ends: %v, want core.ErrTimeout", err)
	}

	// A command dies with its container.
	results := make(chan core.ExecResult, 1)
	errs = async(func() error {
		res, err := e.rt.ExecSync(e.ctx, id, []string{"sleep", "infinity"}, time.Hour)
		results <- res
		return err
	})
	e.waitWaiters(1)
	if err := e.rt.StopContainer(e.ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.result(errs); err != nil || (<-results).ExitCode != 137 {
		t.Errorf("exec in a killed container: %v, want exit code 137", err)
	}
	if _, err := e.rt.ExecSync(e.ctx, id, []string{"true"}, 0); err == nil || errors.Is(err, core.ErrNotFound) {
		t.Errorf("exec in an exited container: %v, want an error", err)
	}
}

func TestExecHook(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	var got []string
	e.rt.SetBehavior(runtimetest.Match{Container: "app"}, runtimetest.Behavior{
		Exec: func(containerID string, cmd []string) (core.ExecResult, time.Duration, error) {
			got = append(got, containerID)
			switch cmd[0] {
			case "probe":
				return core.ExecResult{Stdout: []byte("ok")}, 500 * time.Millisecond, nil
			case "hang":
				return core.ExecResult{}, runtimetest.Forever, nil
			case "broken":
				return core.ExecResult{}, 0, core.ErrUnavailable
			}
			return runtimetest.DefaultExec(containerID, cmd)
		},
	})
	id := e.start(containerConfig("app"))
	errs := async(func() error {
		res, err := e.rt.ExecSync(e.ctx, id, []string{"probe"}, time.Second)
		if err == nil && string(res.Stdout) != "ok" {
			err = fmt.Errorf("stdout %q", res.Stdout)
		}
		return err
	})
	e.waitWaiters(1)
	e.clk.Step(500 * time.Millisecond)
	if err := e.result(errs); err != nil {
		t.Error(err)
	}
	errs = async(func() error { _, err := e.rt.ExecSync(e.ctx, id, []string{"hang"}, time.Second); return err })
	e.waitWaiters(1)
	e.clk.Step(time.Second)
	if err := e.result(errs); !errors.Is(err, core.ErrTimeout) {
		t.Errorf("hanging probe: %v, want core.ErrTimeout", err)
	}
	if _, err := e.rt.ExecSync(e.ctx, id, []string{"broken"}, 0); !errors.Is(err, core.ErrUnavailable) {
		t.Errorf("failing hook: %v, want its error", err)
	}
	if res, err := e.rt.ExecSync(e.ctx, id, []string{"false"}, 0); err != nil || res.ExitCode != 1 {
		t.Errorf("fallback to DefaultExec: %v %v", res, err)
	}
	if len(got) != 4 || got[0] != id {
		t.Errorf("the hook saw containers %v", got)
	}
}
