package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

// waitFor polls the runtime every b.poll until done(i) holds for every
// index of want, and returns for each the time from t0 to the first list
// that showed it done. On timeout it names the indices still waiting.
func (b *bench) waitFor(ctx context.Context, namespace string, want map[int]bool, sandboxes bool, t0 time.Time, done func(pods, int) bool) (map[int]time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	seen := make(map[int]time.Duration, len(want))
	tick := time.NewTicker(b.poll)
	defer tick.Stop()
	for {
		p, err := b.list(ctx, namespace, sandboxes)
		if err != nil && ctx.Err() == nil {
			return nil, err
		}
		now := time.Since(t0)
		if err == nil {
			for i := range want {
				if _, ok := seen[i]; !ok && done(p, i) {
					seen[i] = now
				}
			}
		}
		if len(seen) == len(want) {
			return seen, nil
		}
		select {
		case <-ctx.Done():
			var missing []int
			for i := range want {
				if _, ok := seen[i]; !ok {
					missing = append(missing, i)
				}
			}
			sort.Ints(missing)
			return nil, fmt.Errorf("%d of %d pods not there after %s (%v): %w", len(missing), len(want), b.timeout, missing, ctx.Err())
		case <-tick.C:
		}
	}
}

func isRunning(p pods, i int) bool { _, ok := p.running[i]; return ok }
func isStopped(p pods, i int) bool { _, ok := p.running[i]; return !ok && !p.ready[i] }

func upTo(n int) map[int]bool {
	m := make(map[int]bool, n)
	for i := range n {
		m[i] = true
	}
	return m
}

// ensureEmpty fails when namespace still has running pods: measurements
// start from nothing.
func (b *bench) ensureEmpty(ctx context.Context, namespace string) error {
	p, err := b.list(ctx, namespace, true)
	if err != nil {
		return err
	}
	if n := len(p.indices()); n > 0 {
		return fmt.Errorf("%d pods of namespace %s are still there: run nodebench cleanup first", n, namespace)
	}
	return nil
}

// cmdStart writes N manifests into the agent's directory at once and times
// until every pod's container runs.
func cmdStart(ctx context.Context, b *bench, args []string) error {
	fs := flag.NewFlagSet("start", flag.ContinueOnError)
	dir := fs.String("manifest-dir", "", "the agent's static pod directory (required)")
	n := fs.Int("pods", 0, "how many pods (required)")
	pid := fs.Int("pid", 0, "the agent's process ID, to report its CPU use")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" || *n <= 0 || *n > maxPods {
		return fmt.Errorf("start: need -manifest-dir and -pods between 1 and %d", maxPods)
	}
	if err := b.ensureEmpty(ctx, b.namespace); err != nil {
		return err
	}
	stage, err := stageManifests(*dir, b.namespace, b.image, *n)
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	span := startCPUSpan(b.runtimeCgroup, *pid)
	t0 := time.Now()
	if err := publish(stage, *dir, *n); err != nil {
		return err
	}
	lat, err := b.waitFor(ctx, b.namespace, upTo(*n), false, t0, isRunning)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	return b.emit(withCPU(latencyRecord(b, "start", *n, lat), span))
}

// cmdTeardown removes the benchmark's manifests from the agent's directory
// at once and times until no container of theirs runs and no sandbox of
// theirs is ready.
func cmdTeardown(ctx context.Context, b *bench, args []string) error {
	fs := flag.NewFlagSet("teardown", flag.ContinueOnError)
	dir := fs.String("manifest-dir", "", "the agent's static pod directory (required)")
	pid := fs.Int("pid", 0, "the agent's process ID, to report its CPU use")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("teardown: need -manifest-dir")
	}
	files, err := benchManifests(*dir)
	if err != nil {
		return err
	}
	p, err := b.list(ctx, b.namespace, true)
	if err != nil {
		return err
	}
	want := p.indices()
	if len(want) == 0 || len(files) == 0 {
		return fmt.Errorf("teardown: %d pods of namespace %s run and %d manifests are in %s: nothing to tear down", len(want), b.namespace, len(files), *dir)
	}
	span := startCPUSpan(b.runtimeCgroup, *pid)
	t0 := time.Now()
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	lat, err := b.waitFor(ctx, b.namespace, want, true, t0, isStopped)
	if err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	return b.emit(withCPU(latencyRecord(b, "teardown", len(files), lat), span))
}

// cmdWarmup runs one pod through the agent and removes it again, untimed,
// so that measurements start on an agent that has started every part of
// itself. Its pod is in the namespace NAMESPACE-warmup, and is removed from
// the runtime once the agent has stopped it.
func cmdWarmup(ctx context.Context, b *bench, args []string) error {
	fs := flag.NewFlagSet("warmup", flag.ContinueOnError)
	dir := fs.String("manifest-dir", "", "the agent's static pod directory (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("warmup: need -manifest-dir")
	}
	ns := b.namespace + "-warmup"
	if err := b.removePods(ctx, ns); err != nil {
		return err
	}
	stage, err := stageManifests(*dir, ns, b.image, 1)
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	t0 := time.Now()
	if err := publish(stage, *dir, 1); err != nil {
		return err
	}
	up, err := b.waitFor(ctx, ns, upTo(1), false, t0, isRunning)
	if err != nil {
		return fmt.Errorf("warmup: the agent did not start its pod: %w", err)
	}
	t1 := time.Now()
	if err := os.Remove(fmt.Sprintf("%s/%s", *dir, manifestFile(0))); err != nil {
		return err
	}
	down, err := b.waitFor(ctx, ns, upTo(1), true, t1, isStopped)
	if err != nil {
		return fmt.Errorf("warmup: the agent did not stop its pod: %w", err)
	}
	fmt.Fprintf(b.out, "warm-up pod: running after %s, stopped %s after its manifest was removed\n", ms(up[0]), ms(down[0]))
	return b.removePods(ctx, ns)
}

// cmdCleanup removes the benchmark's manifests (with -manifest-dir) and
// then every pod of the benchmark's namespaces from the runtime. Stop the
// agent first, or it starts them again.
func cmdCleanup(ctx context.Context, b *bench, args []string) error {
	fs := flag.NewFlagSet("cleanup", flag.ContinueOnError)
	dir := fs.String("manifest-dir", "", "also remove the benchmark's manifests from this directory")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir != "" {
		files, err := benchManifests(*dir)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		for _, f := range files {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	for _, ns := range []string{b.namespace, b.namespace + "-warmup"} {
		if err := b.removePods(ctx, ns); err != nil {
			return err
		}
	}
	return nil
}

// removePods stops and removes every sandbox of namespace (taking its
// containers along) and then any container left, with a few workers, and
// checks that nothing is left.
func (b *bench) removePods(ctx context.Context, namespace string) error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	sel := map[string]string{core.LabelPodNamespace: namespace}
	sbs, err := b.rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: sel})
	if err != nil {
		return err
	}
	errs := pool(ctx, 8, len(sbs), func(ctx context.Context, k int) error {
		id := sbs[k].GetId()
		// A sandbox being stopped by an agent at the same time may fail
		// to stop; only a failed removal counts.
		_ = b.rt.StopPodSandbox(ctx, id)
		return b.rt.RemovePodSandbox(ctx, id)
	})
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove pods of %s: %w", namespace, err)
	}
	// Containers whose sandbox is gone (an agent stopped while creating
	// them) are removed one by one.
	left, err := b.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: sel})
	if err != nil {
		return err
	}
	errs = pool(ctx, 8, len(left), func(ctx context.Context, k int) error {
		id := left[k].GetId()
		_ = b.rt.StopContainer(ctx, id, 0)
		return b.rt.RemoveContainer(ctx, id)
	})
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove containers of %s: %w", namespace, err)
	}
	if left, err = b.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: sel}); err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("remove pods of %s: %d containers remain", namespace, len(left))
	}
	if len(sbs) > 0 {
		fmt.Fprintf(b.out, "removed %d pods of namespace %s from the runtime\n", len(sbs), namespace)
	}
	return nil
}

// pool runs f(0..n-1) on workers goroutines and returns the errors.
func pool(ctx context.Context, workers, n int, f func(context.Context, int) error) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	work := make(chan int)
	for range workers {
		wg.Go(func() {
			for k := range work {
				if err := f(ctx, k); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for k := range n {
		work <- k
	}
	close(work)
	wg.Wait()
	return errs
}

// restartOptions are the flags of a restart measurement.
type restartOptions struct {
	kill   int
	spread time.Duration
}

func (o *restartOptions) register(fs *flag.FlagSet, defKill int) {
	fs.IntVar(&o.kill, "kill", defKill, "how many containers to kill, each of another pod")
	fs.DurationVar(&o.spread, "spread", 0, "kill them at random moments over this long (default 300ms per kill), so that each death falls at a random point of the agent's relist period")
}

// cmdRestart kills -kill running containers of the benchmark's pods
// (StopContainer with timeout 0: SIGKILL) at random moments and measures,
// for each, the time from the death (the dead container's finished_at) to
// the start of its replacement (the new container's started_at), both by
// the runtime's clock.
func cmdRestart(ctx context.Context, b *bench, args []string) error {
	fs := flag.NewFlagSet("restart", flag.ContinueOnError)
	var o restartOptions
	o.register(fs, 10)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	rec, err := b.measureRestart(ctx, o, nil)
	if err != nil {
		return err
	}
	return b.emit(rec)
}

// measureRestart kills o.kill containers and waits for their
// replacements; replace, if not nil, is called right after each kill (the
// floor makes the replacement itself).
func (b *bench) measureRestart(ctx context.Context, o restartOptions, replace func(ctx context.Context, i int, old *runtimeapi.Container) error) (record, error) {
	p, err := b.list(ctx, b.namespace, false)
	if err != nil {
		return record{}, err
	}
	if o.kill <= 0 || o.kill > len(p.running) {
		return record{}, fmt.Errorf("restart: -kill %d: want between 1 and the %d running containers", o.kill, len(p.running))
	}
	if o.spread == 0 {
		o.spread = time.Duration(o.kill) * 300 * time.Millisecond
	}
	var running []int
	for i := range p.running {
		running = append(running, i)
	}
	sort.Ints(running)
	rand.Shuffle(len(running), func(a, c int) { running[a], running[c] = running[c], running[a] })
	victims := running[:o.kill]
	at := make([]time.Duration, o.kill)
	for k := range at {
		at[k] = rand.N(o.spread)
	}
	slices.Sort(at)

	type death struct {
		old      *runtimeapi.Container
		finished int64 // the old container's finished_at, ns
	}
	var (
		mu     sync.Mutex
		deaths = map[int]death{}
		errs   []error
		wg     sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	t0 := time.Now()
	wg.Go(func() {
		for k, i := range victims {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(t0.Add(at[k]))):
			}
			old := p.running[i]
			err := b.rt.StopContainer(ctx, old.GetId(), 0)
			var finished int64
			if err == nil {
				var st *runtimeapi.ContainerStatusResponse
				st, err = b.rt.ContainerStatus(ctx, old.GetId(), false)
				finished = st.GetStatus().GetFinishedAt()
			}
			mu.Lock()
			if err != nil {
				errs = append(errs, fmt.Errorf("kill %s: %w", old.GetId(), err))
			} else {
				deaths[i] = death{old: old, finished: finished}
			}
			mu.Unlock()
			if err == nil && replace != nil {
				wg.Go(func() {
					if err := replace(ctx, i, old); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				})
			}
		}
	})

	lat := map[int]time.Duration{}
	created := map[int]time.Duration{} // death → replacement created
	tick := time.NewTicker(b.poll)
	defer tick.Stop()
	for len(lat) < o.kill {
		mu.Lock()
		failed := errors.Join(errs...)
		pending := map[int]death{}
		for i, d := range deaths {
			if _, ok := lat[i]; !ok {
				pending[i] = d
			}
		}
		mu.Unlock()
		if failed != nil {
			cancel()
			wg.Wait()
			return record{}, fmt.Errorf("restart: %w", failed)
		}
		if len(pending) > 0 {
			now, err := b.list(ctx, b.namespace, false)
			if err != nil && ctx.Err() == nil {
				return record{}, err
			}
			for i, d := range pending {
				c, ok := now.running[i]
				if !ok || c.GetId() == d.old.GetId() {
					continue
				}
				st, err := b.rt.ContainerStatus(ctx, c.GetId(), false)
				if err != nil {
					return record{}, fmt.Errorf("restart: status of %s: %w", c.GetId(), err)
				}
				lat[i] = time.Duration(st.GetStatus().GetStartedAt() - d.finished)
				created[i] = time.Duration(st.GetStatus().GetCreatedAt() - d.finished)
			}
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return record{}, fmt.Errorf("restart: %d of %d killed containers not running again after %s: %w", o.kill-len(lat), o.kill, b.timeout, ctx.Err())
		case <-tick.C:
		}
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return record{}, fmt.Errorf("restart: %w", err)
	}
	r := latencyRecord(b, "restart", len(p.running), lat)
	r.TotalMS = 0 // the kills are spread out: no meaningful total
	c := latencyRecord(b, "restart", len(p.running), created)
	r.CreatedP50MS, r.CreatedP90MS = &c.P50MS, &c.P90MS
	return r, nil
}

func ms(d time.Duration) string {
	if d >= 10*time.Second {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}
