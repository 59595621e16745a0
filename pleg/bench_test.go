package pleg

import (
	"context"
	"fmt"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/runtimetest"
)

// frozen serves the lists it was given, the same slices every time, and
// asks the simulated runtime for statuses: it takes the runtime's own
// listing cost out of the measurement of the PLEG's.
type frozen struct {
	*runtimetest.Runtime
	sandboxes  []*runtimeapi.PodSandbox
	containers []*runtimeapi.Container
}

func (f *frozen) ListPodSandbox(context.Context, *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	return f.sandboxes, nil
}

func (f *frozen) ListContainers(context.Context, *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	return f.containers, nil
}

// populate runs pods × containers sleeping containers on a simulated runtime.
func populate(b *testing.B, pods, containers int) *runtimetest.Runtime {
	b.Helper()
	ctx := context.Background()
	rt, err := runtimetest.New(runtimetest.Config{Images: []string{image}})
	if err != nil {
		b.Fatal(err)
	}
	for i := range pods {
		name := fmt.Sprintf("pod-%d", i)
		uid := "uid-" + name
		labels := map[string]string{core.LabelPodName: name, core.LabelPodNamespace: "bench", core.LabelPodUID: uid}
		sb := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "bench", Uid: uid}, Labels: labels}
		sbID, err := rt.RunPodSandbox(ctx, sb, "")
		if err != nil {
			b.Fatal(err)
		}
		for j := range containers {
			cname := fmt.Sprintf("c%d", j)
			cl := map[string]string{core.LabelPodName: name, core.LabelPodNamespace: "bench", core.LabelPodUID: uid, core.LabelContainerName: cname}
			id, err := rt.CreateContainer(ctx, sbID, &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: cname}, Image: &runtimeapi.ImageSpec{Image: image},
				Command: []string{"sleep", "3600"}, Labels: cl,
			}, sb)
			if err != nil {
				b.Fatal(err)
			}
			if err := rt.StartContainer(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	}
	return rt
}

func benchPLEG(b *testing.B, rt Runtime) *PLEG {
	b.Helper()
	p, err := New(Config{Runtime: rt})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Relist(context.Background()); err != nil {
		b.Fatal(err)
	}
	return p
}

// A relist where nothing changed, over 100, 1,000 and 10,000 pods of three
// containers: "sim" includes the simulated runtime's listing (fresh copies
// of every object), "pleg" only the PLEG's own work.
func BenchmarkRelistUnchanged(b *testing.B) {
	ctx := context.Background()
	for _, pods := range []int{100, 1000, 10000} {
		rt := populate(b, pods, 3)
		b.Run(fmt.Sprintf("sim/pods=%d", pods), func(b *testing.B) {
			p := benchPLEG(b, rt)
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Relist(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
		sandboxes, _ := rt.ListPodSandbox(ctx, nil)
		containers, _ := rt.ListContainers(ctx, nil)
		f := &frozen{Runtime: rt, sandboxes: sandboxes, containers: containers}
		b.Run(fmt.Sprintf("pleg/pods=%d", pods), func(b *testing.B) {
			p := benchPLEG(b, f)
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Relist(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(pods), "ns/pod")
		})
	}
}

// ready serves, besides frozen lists, statuses read once from the
// simulated runtime: it takes the runtime's status cost out of the
// measurement too.
type ready struct {
	*frozen
	sandboxStatus   map[string]*runtimeapi.PodSandboxStatusResponse
	containerStatus map[string]*runtimeapi.ContainerStatusResponse
}

func newReady(b *testing.B, f *frozen) *ready {
	b.Helper()
	ctx := context.Background()
	r := &ready{frozen: f, sandboxStatus: map[string]*runtimeapi.PodSandboxStatusResponse{}, containerStatus: map[string]*runtimeapi.ContainerStatusResponse{}}
	for _, sb := range f.sandboxes {
		resp, err := f.Runtime.PodSandboxStatus(ctx, sb.GetId(), false)
		if err != nil {
			b.Fatal(err)
		}
		r.sandboxStatus[sb.GetId()] = resp
	}
	for _, c := range f.containers {
		resp, err := f.Runtime.ContainerStatus(ctx, c.GetId(), false)
		if err != nil {
			b.Fatal(err)
		}
		r.containerStatus[c.GetId()] = resp
	}
	return r
}

func (r *ready) PodSandboxStatus(_ context.Context, id string, _ bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	return r.sandboxStatus[id], nil
}

func (r *ready) ContainerStatus(_ context.Context, id string, _ bool) (*runtimeapi.ContainerStatusResponse, error) {
	return r.containerStatus[id], nil
}

// A relist where some pods changed, over 100, 1,000 and 10,000 pods of
// three containers: one container of each changed pod flips between
// running and exited in the list, so the PLEG reads those pods' statuses
// (a sandbox and three containers each), computes their events and
// publishes them to a subscriber. pct=1 is a busy node's usual relist;
// pct=100 is every pod changing at once (a node coming back, the runtime
// restarting). "pleg" serves the statuses ready-made (the PLEG's own
// work); "sim" asks the simulated runtime for them, fresh copies each
// time, as a real runtime answers.
func BenchmarkRelistChanged(b *testing.B) {
	ctx := context.Background()
	for _, pods := range []int{100, 1000, 10000} {
		rt := populate(b, pods, 3)
		for _, mode := range []string{"pleg", "sim"} {
			for _, pct := range []int{1, 100} {
				b.Run(fmt.Sprintf("%s/pct=%d/pods=%d", mode, pct, pods), func(b *testing.B) {
					sandboxes, _ := rt.ListPodSandbox(ctx, nil)
					containers, _ := rt.ListContainers(ctx, nil)
					f := &frozen{Runtime: rt, sandboxes: sandboxes, containers: containers}
					var src Runtime = f
					if mode == "pleg" {
						src = newReady(b, f)
					}
					flip := changedContainers(containers, pods, max(1, pods*pct/100))
					p := benchPLEG(b, src)
					sub := p.Watch()
					defer sub.Close()
					done := make(chan int)
					go func() {
						n := 0
						for range sub.Events() {
							n++
						}
						done <- n
					}()
					b.ReportAllocs()
					for b.Loop() {
						for _, c := range flip {
							if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
								c.State = runtimeapi.ContainerState_CONTAINER_EXITED
							} else {
								c.State = runtimeapi.ContainerState_CONTAINER_RUNNING
							}
						}
						if err := p.Relist(ctx); err != nil {
							b.Fatal(err)
						}
					}
					sub.Close()
					if n := <-done; n == 0 {
						b.Fatal("no event published")
					}
				})
			}
		}
	}
}

// changedContainers picks the first container of n of the pods, spread
// evenly over them.
func changedContainers(containers []*runtimeapi.Container, pods, n int) []*runtimeapi.Container {
	first := map[string]*runtimeapi.Container{}
	var order []string
	for _, c := range containers {
		uid := c.GetLabels()[core.LabelPodUID]
		if _, ok := first[uid]; !ok {
			first[uid] = c
			order = append(order, uid)
		}
	}
	out := make([]*runtimeapi.Container, 0, n)
	for i := range n {
		out = append(out, first[order[i*pods/n]])
	}
	return out
}
