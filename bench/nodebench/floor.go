package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/crispec"
)

// floorPods are the pods the floor runs itself.
type floorPods struct {
	b    *bench
	tr   *crispec.Translator
	pods []*v1.Pod

	mu        sync.Mutex
	sandboxes []string // sandbox ID by pod index
	configs   []*runtimeapi.PodSandboxConfig
}

// cmdFloor measures the runtime's own floor: the benchmark drives the CRI
// itself, with -workers workers and no agent, through the same start,
// restart and teardown as the agents (the same pods, translated as the
// kubelet does by crispec), and records them with agent "floor".
func cmdFloor(ctx context.Context, b *bench, args []string) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	n := fs.Int("pods", 0, "how many pods (required)")
	workers := fs.Int("workers", 4, "how many pods are started at once (and stopped, unless -teardown-workers)")
	downWorkers := fs.Int("teardown-workers", 0, "how many pods are stopped at once (default: -workers; -pods: all at once, as an agent stops them)")
	logs := fs.String("pod-logs-root", "", "directory for the pods' logs (default: a temporary directory, removed afterwards)")
	var o restartOptions
	o.register(fs, 10)
	lists := fs.Int("lists", 0, "also measure the CPU cost of this many relists (every sandbox and container listed, as a PLEG does) with the pods running")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *n <= 0 || *n > maxPods || *workers <= 0 || *downWorkers < 0 {
		return fmt.Errorf("floor: need -pods between 1 and %d, -workers above 0 and -teardown-workers not below 0", maxPods)
	}
	if *downWorkers == 0 {
		*downWorkers = *workers
	}
	if b.agent == "" {
		b.agent = "floor"
	}
	if *logs == "" {
		dir, err := os.MkdirTemp("", "nodebench-floor-logs-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		*logs = dir
	}
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return err
	}
	tr, err := crispec.New(crispec.Config{PodLogsRoot: *logs, MemoryCapacity: int64(si.Totalram) * int64(si.Unit)})
	if err != nil {
		return err
	}
	if err := b.ensureEmpty(ctx, b.namespace); err != nil {
		return err
	}
	f := &floorPods{b: b, tr: tr, sandboxes: make([]string, *n), configs: make([]*runtimeapi.PodSandboxConfig, *n)}
	nonce := newNonce()
	for i := range *n {
		p := benchPod(b.namespace, b.image, nonce, i)
		p.UID = types.UID(fmt.Sprintf("%s-%s", nonce, podName(i)))
		f.pods = append(f.pods, p)
	}
	// Whatever happens, the floor leaves no pod behind.
	defer func() {
		if err := b.removePods(context.WithoutCancel(ctx), b.namespace); err != nil {
			fmt.Fprintln(os.Stderr, "nodebench: floor:", err)
		}
	}()

	// Start: the workers run sandbox, create and start for each pod while
	// the runtime is polled as for an agent.
	span := startCPUSpan(b.runtimeCgroup, 0)
	t0 := time.Now()
	startErrs := make(chan []error, 1)
	go func() { startErrs <- pool(ctx, *workers, *n, f.start) }()
	lat, waitErr := b.waitFor(ctx, b.namespace, upTo(*n), false, t0, isRunning)
	r := withCPU(latencyRecord(b, "start", *n, lat), span)
	if err := errors.Join(<-startErrs...); err != nil {
		return fmt.Errorf("floor: start: %w", err)
	}
	if waitErr != nil {
		return fmt.Errorf("floor: start: %w", waitErr)
	}
	r.Workers = *workers
	if err := b.emit(r); err != nil {
		return err
	}

	if o.kill > 0 {
		r, err := b.measureRestart(ctx, o, f.replace)
		if err != nil {
			return fmt.Errorf("floor: %w", err)
		}
		if err := b.emit(r); err != nil {
			return err
		}
	}
	if *lists > 0 {
		r, err := b.measureLists(ctx, *n, *lists)
		if err != nil {
			return fmt.Errorf("floor: %w", err)
		}
		if err := b.emit(r); err != nil {
			return err
		}
	}

	// Teardown: each pod's container is stopped with the pod's grace
	// period (it exits on SIGTERM), then its sandbox, as an agent does;
	// the time each call took is reported too.
	p, err := b.list(ctx, b.namespace, false)
	if err != nil {
		return err
	}
	var (
		callMu        sync.Mutex
		stopC, stopSB []time.Duration
	)
	timed := func(into *[]time.Duration, call func() error) error {
		t := time.Now()
		err := call()
		callMu.Lock()
		*into = append(*into, time.Since(t))
		callMu.Unlock()
		return err
	}
	span = startCPUSpan(b.runtimeCgroup, 0)
	t0 = time.Now()
	stopErrs := make(chan []error, 1)
	go func() {
		stopErrs <- pool(ctx, *downWorkers, *n, func(ctx context.Context, i int) error {
			if c, ok := p.running[i]; ok {
				if err := timed(&stopC, func() error { return b.rt.StopContainer(ctx, c.GetId(), gracePeriod) }); err != nil {
					return err
				}
			}
			return timed(&stopSB, func() error { return b.rt.StopPodSandbox(ctx, f.sandboxes[i]) })
		})
	}()
	lat, waitErr = b.waitFor(ctx, b.namespace, upTo(*n), true, t0, isStopped)
	r = withCPU(latencyRecord(b, "teardown", *n, lat), span)
	if err := errors.Join(<-stopErrs...); err != nil {
		return fmt.Errorf("floor: teardown: %w", err)
	}
	if waitErr != nil {
		return fmt.Errorf("floor: teardown: %w", waitErr)
	}
	r.Workers = *downWorkers
	if err := b.emit(r); err != nil {
		return err
	}
	fmt.Fprintf(b.out, "floor    teardown calls with %d workers: StopContainer %s, StopPodSandbox %s\n", *downWorkers, callSummary(stopC), callSummary(stopSB))
	return nil
}

// callSummary describes the durations of one kind of call: p50, p90, max.
func callSummary(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := make([]float64, len(ds))
	for k, d := range ds {
		s[k] = float64(d) / float64(time.Millisecond)
	}
	slices.Sort(s)
	return fmt.Sprintf("p50 %s p90 %s max %s", msf(percentile(s, 50)), msf(percentile(s, 90)), msf(s[len(s)-1]))
}

// start runs pod i the shortest way: its sandbox, then its container.
func (f *floorPods) start(ctx context.Context, i int) error {
	p := f.pods[i]
	sb, err := f.tr.SandboxConfig(p, 0, crispec.SandboxOptions{})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(sb.GetLogDirectory(), 0o755); err != nil {
		return err
	}
	id, err := f.b.rt.RunPodSandbox(ctx, sb, "")
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.sandboxes[i], f.configs[i] = id, sb
	f.mu.Unlock()
	return f.create(ctx, i, id, sb, 0)
}

func (f *floorPods) create(ctx context.Context, i int, sandbox string, sb *runtimeapi.PodSandboxConfig, restarts int) error {
	p := f.pods[i]
	cfg, err := f.tr.ContainerConfig(p, &p.Spec.Containers[0], crispec.ContainerOptions{RestartCount: restarts})
	if err != nil {
		return err
	}
	cid, err := f.b.rt.CreateContainer(ctx, sandbox, cfg, sb)
	if err != nil {
		return err
	}
	return f.b.rt.StartContainer(ctx, cid)
}

// replace starts the replacement of pod i's killed container at once, as
// an agent that learnt of the death instantly would.
func (f *floorPods) replace(ctx context.Context, i int, old *runtimeapi.Container) error {
	f.mu.Lock()
	id, sb := f.sandboxes[i], f.configs[i]
	f.mu.Unlock()
	return f.create(ctx, i, id, sb, int(old.GetMetadata().GetAttempt())+1)
}

// cmdRuntimeReady waits until the runtime answers and reports itself ready
// (and, with -image, has the benchmark's image), and prints its name and
// version.
func cmdRuntimeReady(ctx context.Context, b *bench, args []string) error {
	fs := flag.NewFlagSet("runtime-ready", flag.ContinueOnError)
	image := fs.Bool("image", false, "also wait until the runtime has the image of -image")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	ready := func() (string, error) {
		nb, err := newBench(ctx, b.globals)
		if err != nil {
			return "", err
		}
		defer nb.close()
		if *image {
			st, err := nb.rt.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: b.image}, false)
			if err != nil {
				return "", err
			}
			if st.GetImage() == nil {
				return "", fmt.Errorf("image %s not present", b.image)
			}
		}
		return nb.runtime, nil
	}
	for {
		name, err := ready()
		if err == nil {
			fmt.Fprintln(b.out, name)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("runtime-ready: %w (last: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
