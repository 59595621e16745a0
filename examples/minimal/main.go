// Command minimal runs the static pods of a manifest directory with the
// fewest of nodekit's pieces, wired by hand: a staticpod FileSource feeds
// a Merger, whose updates the syncloop Loop hands to one worker per pod;
// the Driver carries out each worker's plan on the runtime, and the PLEG
// watches the runtime and wakes the workers. Every pod's status is printed
// as it changes, one line per step of its life.
//
//	go run ./examples/minimal                          # simulated runtime
//	go run ./examples/minimal -runtime-endpoint unix:///run/containerd/containerd.sock
//
// Add, edit or remove a manifest in the directory while it runs.
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

	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
	"github.com/nodekit/nodekit/pleg"
	"github.com/nodekit/nodekit/staticpod"
	"github.com/nodekit/nodekit/syncloop"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "minimal:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("minimal", flag.ContinueOnError)
	dir := fs.String("manifest-dir", "examples/minimal/manifests", "directory of static pod manifests")
	endpoint := fs.String("runtime-endpoint", "", "CRI socket of a real runtime (default: the simulated runtime)")
	nodeName := fs.String("node-name", "", "the node's name, suffixed to the pods' names (default: the hostname)")
	runFor := fs.Duration("run-for", 0, "stop after this long (default: until interrupted)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if *runFor > 0 {
		time.AfterFunc(*runFor, cancel)
	}
	if *nodeName == "" {
		*nodeName, _ = os.Hostname()
	}

	// 1. A runtime: simulated (pod logs in a temporary directory), or CRI.
	rt, logsRoot, closeRuntime, err := openRuntime(ctx, *endpoint)
	if err != nil {
		return err
	}
	defer closeRuntime()
	// 2. Pod sources: the manifests' pods, merged into ADD/UPDATE/REMOVE.
	merger, err := staticpod.NewMerger(staticpod.MergerConfig{Sources: []string{core.SourceFile}})
	if err != nil {
		return err
	}
	files, err := staticpod.NewFileSource(staticpod.FileConfig{Path: *dir, NodeName: *nodeName})
	if err != nil {
		return err
	}
	// 3. The PLEG: relists the runtime, caches pod statuses, sends events.
	p, err := pleg.New(pleg.Config{Runtime: rt})
	if err != nil {
		return err
	}
	// 4. The driver carries out a pod's plan; the workers run one per pod.
	tr, err := crispec.New(crispec.Config{PodLogsRoot: logsRoot})
	if err != nil {
		return err
	}
	driver, err := syncloop.NewDriver(syncloop.DriverConfig{Runtime: rt, Translator: tr})
	if err != nil {
		return err
	}
	workers, err := syncloop.NewWorkers(syncloop.WorkersConfig{Syncer: driver, Status: plegStatus{p}})
	if err != nil {
		return err
	}
	// 5. The loop: pod updates and PLEG events in, work for the workers out.
	loop, err := syncloop.NewLoop(syncloop.LoopConfig{Updates: merger.Updates(), Events: p.Watch().Events(),
		Workers: workers, Runtime: rt, SourcesReady: merger.AllReady, Housekeepers: []syncloop.Housekeeper{driver}})
	if err != nil {
		return err
	}
	// 6. Run everything until ctx ends; print statuses meanwhile.
	fmt.Fprintf(out, "running the static pods of %s on node %s\n", *dir, *nodeName)
	runs := []func(context.Context) error{p.Run, workers.Run, loop.Run,
		func(ctx context.Context) error { return files.Run(ctx, merger) }}
	errs := make(chan error, len(runs))
	for _, r := range runs {
		go func() {
			err := r(ctx)
			cancel() // one stops: all stop
			errs <- err
		}()
	}
	printStatuses(ctx, out, p, driver, workers, loop)
	var all []error
	for range runs {
		if err := <-errs; err != nil && !errors.Is(err, context.Canceled) {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

// plegStatus is the workers' StatusSource: the PLEG's cache, and, by
// RelistPod, a fresh status of one pod right after each of its syncs.
type plegStatus struct{ *pleg.PLEG }

func (s plegStatus) GetNewerThan(ctx context.Context, uid types.UID, t time.Time) (*core.PodStatus, error) {
	return s.Cache().GetNewerThan(ctx, uid, t)
}
