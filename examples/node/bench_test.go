package node_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
	"github.com/nodekit/nodekit/examples/node"
	"github.com/nodekit/nodekit/internal/testenv"
	"github.com/nodekit/nodekit/pleg"
)

// benchPods is how many pods the start benchmarks run at once.
const benchPods = 100

// benchPod is the i-th pod of a benchmark round: host network, one
// service container.
func benchPod(round, i int) *v1.Pod {
	p := hostPod(fmt.Sprintf("bench-%d-%03d", round, i), service("app"))
	p.UID = types.UID(fmt.Sprintf("bench-%d-%03d", round, i))
	return p
}

// allRunning polls the runtime until n containers run.
func allRunning(b *testing.B, e *env, n int) {
	b.Helper()
	for {
		list, err := e.rt.ListContainers(context.Background(), &runtimeapi.ContainerFilter{
			State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
		if err != nil {
			b.Fatal(err)
		}
		if len(list) >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// clear stops and removes every sandbox, not timed.
func clear(b *testing.B, e *env) {
	b.Helper()
	ctx := context.Background()
	sbs, err := e.rt.ListPodSandbox(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, sb := range sbs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := e.rt.StopPodSandbox(ctx, sb.GetId()); err != nil {
				b.Error(err)
			}
			if err := e.rt.RemovePodSandbox(ctx, sb.GetId()); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
}

// BenchmarkStart100Pods starts 100 host-network pods on containerd 1.6
// two ways in each op, one after the other: "runtime" drives the CRI
// directly with a pool of 4 workers (sandbox, create, start: the floor),
// "agent" hands the pods to the node agent as one ADD. Each is timed until
// all 100 containers run, as the runtime lists them, and reported as
// runtime-s and agent-s; ratio is agent over runtime for the op.
//
//	sudo go test -run '^$' -bench Start100Pods -benchtime 5x ./examples/node/
func BenchmarkStart100Pods(b *testing.B) {
	e := startEnvB(b, testenv.Containerd16)
	tr, err := crispec.New(crispec.Config{PodLogsRoot: e.logsRoot})
	if err != nil {
		b.Fatal(err)
	}
	var floor, agent time.Duration
	for round := range b.N {
		// Alternate which goes first, so that neither always runs on a
		// warmer (or more fragmented) runtime.
		runs := []func() time.Duration{
			func() time.Duration { return startAllDirect(b, e, tr, round) },
			func() time.Duration { return startAllAgent(b, e, tr, round) },
		}
		if round%2 == 1 {
			runs[0], runs[1] = runs[1], runs[0]
		}
		var took [2]time.Duration
		for k, run := range runs {
			took[k] = run()
			clear(b, e)
		}
		if round%2 == 1 {
			took[0], took[1] = took[1], took[0]
		}
		floor += took[0]
		agent += took[1]
		b.Logf("round %d: runtime %s, agent %s, ratio %.2f", round, took[0].Round(time.Millisecond), took[1].Round(time.Millisecond), took[1].Seconds()/took[0].Seconds())
	}
	b.ReportMetric(floor.Seconds()/float64(b.N), "runtime-s")
	b.ReportMetric(agent.Seconds()/float64(b.N), "agent-s")
	b.ReportMetric(agent.Seconds()/floor.Seconds(), "ratio")
}

func roundPods(round int) []*v1.Pod {
	pods := make([]*v1.Pod, benchPods)
	for i := range pods {
		pods[i] = benchPod(round, i)
	}
	return pods
}

func startAllDirect(b *testing.B, e *env, tr *crispec.Translator, round int) time.Duration {
	pods := roundPods(2 * round)
	start := time.Now()
	work := make(chan *v1.Pod)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for p := range work {
				startDirect(b, e, tr, p)
			}
		})
	}
	for _, p := range pods {
		work <- p
	}
	close(work)
	wg.Wait()
	allRunning(b, e, benchPods)
	return time.Since(start)
}

func startAllAgent(b *testing.B, e *env, tr *crispec.Translator, round int) time.Duration {
	pods := roundPods(2*round + 1)
	updates := make(chan core.PodUpdate, 1)
	n, err := node.New(node.Config{Runtime: e.rt, Updates: updates, Translator: tr, PodLogsRoot: e.logsRoot, CgroupParent: e.cd.CgroupParent})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	start := time.Now()
	updates <- core.PodUpdate{Op: core.OpAdd, Pods: pods, Source: core.SourceFile}
	allRunning(b, e, benchPods)
	took := time.Since(start)
	cancel()
	<-done
	return took
}

// startDirect runs one pod through the CRI the shortest way.
func startDirect(b *testing.B, e *env, tr *crispec.Translator, p *v1.Pod) {
	ctx := context.Background()
	sb, err := tr.SandboxConfig(p, 0, crispec.SandboxOptions{CgroupParent: e.cd.CgroupParent})
	if err != nil {
		b.Error(err)
		return
	}
	id, err := e.rt.RunPodSandbox(ctx, sb, "")
	if err != nil {
		b.Error(err)
		return
	}
	cfg, err := tr.ContainerConfig(p, &p.Spec.Containers[0], crispec.ContainerOptions{})
	if err != nil {
		b.Error(err)
		return
	}
	cid, err := e.rt.CreateContainer(ctx, id, cfg, sb)
	if err != nil {
		b.Error(err)
		return
	}
	if err := e.rt.StartContainer(ctx, cid); err != nil {
		b.Error(err)
	}
}

// BenchmarkRestartAfterKill measures, with 100 pods running, how long
// after a container is killed (stopped through the runtime with no grace:
// SIGKILL, its first death, so no back-off) a new instance runs: one op per
// kill, at a random moment. The latency is from the old instance's
// finished_at to the new one's started_at, both the runtime's: the median
// and p90 over the run are reported.
// "agent" is the node agent finding the death (event stream on 2.x,
// relist at the given period on 1.6) and restarting the container;
// "runtime" is the floor: the benchmark itself creating and starting the
// replacement right after the kill.
//
//	sudo go test -run '^$' -bench RestartAfterKill -benchtime 40x ./examples/node/
func BenchmarkRestartAfterKill(b *testing.B) {
	for _, v := range testenv.Versions {
		b.Run("containerd-"+string(v)+"/runtime", func(b *testing.B) {
			e := startEnvB(b, v)
			tr, err := crispec.New(crispec.Config{PodLogsRoot: e.logsRoot})
			if err != nil {
				b.Fatal(err)
			}
			defer clear(b, e)
			pods := roundPods(0)
			for _, p := range pods {
				startDirect(b, e, tr, p)
			}
			measureRestarts(b, e, pods, func(p *v1.Pod) {
				ctx := context.Background()
				sbs := e.sandboxes(b, p.UID)
				sb, err := tr.SandboxConfig(p, 0, crispec.SandboxOptions{CgroupParent: e.cd.CgroupParent})
				if err != nil {
					b.Fatal(err)
				}
				cfg, err := tr.ContainerConfig(p, &p.Spec.Containers[0], crispec.ContainerOptions{RestartCount: 1})
				if err != nil {
					b.Fatal(err)
				}
				id, err := e.rt.CreateContainer(ctx, sbs[0].GetId(), cfg, sb)
				if err != nil {
					b.Fatal(err)
				}
				if err := e.rt.StartContainer(ctx, id); err != nil {
					b.Fatal(err)
				}
			})
		})
		relists := []time.Duration{time.Second}
		if v == testenv.Containerd16 {
			relists = append(relists, node.DefaultRelistPeriod, 250*time.Millisecond)
		}
		for _, relist := range relists {
			b.Run(fmt.Sprintf("containerd-%s/agent-relist-%s", v, relist), func(b *testing.B) {
				e := startEnvB(b, v)
				tr, err := crispec.New(crispec.Config{PodLogsRoot: e.logsRoot})
				if err != nil {
					b.Fatal(err)
				}
				updates := make(chan core.PodUpdate, 1)
				n, err := node.New(node.Config{Runtime: e.rt, Updates: updates, Translator: tr, PodLogsRoot: e.logsRoot, CgroupParent: e.cd.CgroupParent,
					RelistPeriod: relist, Events: pleg.EventsAuto})
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- n.Run(ctx) }()
				defer func() { cancel(); <-done; clear(b, e) }()
				pods := roundPods(0)
				updates <- core.PodUpdate{Op: core.OpAdd, Pods: pods, Source: core.SourceFile}
				allRunning(b, e, benchPods)
				time.Sleep(2 * time.Second) // let the start settle
				measureRestarts(b, e, pods, nil)
			})
		}
	}
}

// measureRestarts kills the running container of one pod per op, at a
// random moment, calls restart (nil: the agent restarts it), and records
// the time from the death to the start of the pod's second instance.
func measureRestarts(b *testing.B, e *env, pods []*v1.Pod, restart func(*v1.Pod)) {
	if b.N > len(pods) {
		b.Fatalf("-benchtime %dx: at most %d, one kill per pod (a second death would be held back)", b.N, len(pods))
	}
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		p := pods[i]
		var id string
		for _, c := range e.containers(b, p.UID) {
			if c.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
				id = c.GetId()
			}
		}
		b.StopTimer()
		time.Sleep(time.Duration(rand.Int64N(int64(time.Second))))
		b.StartTimer()
		killed := time.Now()
		if err := e.rt.StopContainer(context.Background(), id, 0); err != nil {
			b.Fatal(err)
		}
		if restart != nil {
			restart(p)
		}
		for {
			cs := e.containers(b, p.UID)
			if len(cs) == 2 && cs[1].GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
				// From the death to the new start, by the runtime's clock.
				lat = append(lat, time.Duration(cs[1].GetStartedAt()-cs[0].GetFinishedAt()))
				break
			}
			if time.Since(killed) > time.Minute {
				b.Fatalf("pod %s: no new instance a minute after the kill: %s", p.Name, summary(cs))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*9/10].Milliseconds()), "p90-ms")
}

// BenchmarkRelist100Pods is the price of one PLEG relist on containerd 1.6
// with 100 running pods where nothing changed: what a shorter relist
// period costs.
//
//	sudo go test -run '^$' -bench Relist100Pods ./examples/node/
func BenchmarkRelist100Pods(b *testing.B) {
	e := startEnvB(b, testenv.Containerd16)
	tr, err := crispec.New(crispec.Config{PodLogsRoot: e.logsRoot})
	if err != nil {
		b.Fatal(err)
	}
	defer clear(b, e)
	for _, p := range roundPods(0) {
		startDirect(b, e, tr, p)
	}
	p, err := pleg.New(pleg.Config{Runtime: e.rt})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Relist(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if err := p.Relist(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
