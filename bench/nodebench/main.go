// Command nodebench measures a node agent from the outside: it writes static
// pod manifests into the agent's manifest directory and watches the
// container runtime through the CRI, so that any agent that runs a
// directory's static pods on a CRI runtime (the kubelet, nodekit's example
// agent) is measured the same way. It also measures the runtime's own floor
// by driving the CRI itself, with no agent.
//
//	nodebench [flags] start    -manifest-dir DIR -pods N   N pods at once → all running
//	nodebench [flags] steady   -pid PID [-runtime-pid PID]  the agent's CPU and RSS with N pods
//	nodebench [flags] restart  -kill K                       K killed containers → running again
//	nodebench [flags] teardown -manifest-dir DIR             manifests removed → pods stopped
//	nodebench [flags] floor    -pods N [-kill K]             start, restart, teardown by the CRI alone
//	nodebench [flags] warmup   -manifest-dir DIR             one pod through the agent, untimed
//	nodebench [flags] cleanup  [-manifest-dir DIR]           remove the benchmark's manifests and pods
//	nodebench [flags] runtime-ready                          wait until the runtime is ready
//	nodebench report FILE...                                 summary tables of recorded runs
//
// Every measurement prints a human-readable line and appends one JSON line
// to -json (default: none). hack/bench.sh runs the whole comparison.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nodekit/nodekit/cri"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "nodebench:", err)
		os.Exit(1)
	}
}

// globals are the flags every measuring command takes.
type globals struct {
	endpoint  string
	namespace string
	image     string
	agent     string
	runNo     int
	jsonPath  string
	// runtimeCgroup holds the runtime's processes, to measure their CPU
	// use; empty: not measured.
	runtimeCgroup string
	poll          time.Duration
	timeout       time.Duration
	out           io.Writer
}

const usage = `usage: nodebench [flags] start|steady|restart|teardown|floor|warmup|cleanup|runtime-ready [command flags]
       nodebench report FILE...
flags:`

func run(args []string, out io.Writer) error {
	g := globals{out: out}
	fs := flag.NewFlagSet("nodebench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&g.endpoint, "runtime-endpoint", cri.DefaultEndpoint, "CRI socket of the runtime the agent uses")
	fs.StringVar(&g.namespace, "namespace", "nodebench", "namespace of the benchmark's pods (the warm-up pod uses NAMESPACE-warmup)")
	fs.StringVar(&g.image, "image", "localhost/busybox:latest", "image of the pods' containers, present in the runtime (imagePullPolicy Never); it needs sh and sleep")
	fs.StringVar(&g.agent, "agent", "", "name of the agent measured, recorded with each measurement (e.g. kubelet, nodekit)")
	fs.IntVar(&g.runNo, "run", 0, "number of the repeat, recorded with each measurement")
	fs.StringVar(&g.jsonPath, "json", "", "append one JSON line per measurement to this file (- for standard output)")
	fs.StringVar(&g.runtimeCgroup, "runtime-cgroup", "", "cgroup directory of the runtime's processes (containerd and its shims), to report their CPU use during start and teardown")
	fs.DurationVar(&g.poll, "poll", 20*time.Millisecond, "how often the runtime is listed while waiting")
	fs.DurationVar(&g.timeout, "timeout", 5*time.Minute, "give up on a measurement after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no command")
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	if cmd == "report" {
		return report(rest, out)
	}
	if g.poll <= 0 || g.poll > time.Second {
		return fmt.Errorf("-poll %s: want more than 0 and at most 1s", g.poll)
	}
	commands := map[string]func(context.Context, *bench, []string) error{
		"start":         cmdStart,
		"steady":        cmdSteady,
		"restart":       cmdRestart,
		"teardown":      cmdTeardown,
		"floor":         cmdFloor,
		"warmup":        cmdWarmup,
		"cleanup":       cmdCleanup,
		"runtime-ready": cmdRuntimeReady,
	}
	f, ok := commands[cmd]
	if !ok {
		fs.Usage()
		return fmt.Errorf("unknown command %q", cmd)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cmd == "runtime-ready" {
		return cmdRuntimeReady(ctx, &bench{globals: g}, rest)
	}
	b, err := newBench(ctx, g)
	if err != nil {
		return err
	}
	defer b.close()
	return f(ctx, b, rest)
}

// parseFlags parses a command's flags and rejects stray arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", fs.Name(), fs.Args())
	}
	return nil
}
