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

// A relist where 1 % of 1,000 pods changed: one container of each of ten
// pods flips between running and exited, so those pods' statuses are read
// and their events published.
func BenchmarkRelistOnePercentChanged(b *testing.B) {
	ctx := context.Background()
	const pods = 1000
	rt := populate(b, pods, 3)
	sandboxes, _ := rt.ListPodSandbox(ctx, nil)
	containers, _ := rt.ListContainers(ctx, nil)
	f := &frozen{Runtime: rt, sandboxes: sandboxes, containers: containers}
	p := benchPLEG(b, f)
	sub := p.Watch()
	defer sub.Close()
	go func() {
		for range sub.Events() {
		}
	}()
	b.ReportAllocs()
	for b.Loop() {
		for i := 0; i < len(containers); i += len(containers) / (pods / 100) {
			c := containers[i]
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
}
