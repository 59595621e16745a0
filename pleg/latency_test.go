package pleg_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/cri"
	"github.com/nodekit/nodekit/internal/testenv"
	"github.com/nodekit/nodekit/pleg"
)

// BenchmarkDeathToEvent measures, on real containerd, how long after a
// container exits (its finished_at, the runtime's own clock) the PLEG
// delivers its ContainerDied event, at default settings: the event stream
// on 2.x, relisting every second on 1.6. Each iteration is one container
// that exits by itself after a random 0.3–1.3 s; run it with
// -benchtime=50x.
func BenchmarkDeathToEvent(b *testing.B) {
	for _, v := range testenv.Versions {
		b.Run("containerd-"+string(v), func(b *testing.B) {
			cd := testenv.StartContainerd(b, testenv.Options{Version: v})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			rt, err := cri.New(ctx, cri.Config{Endpoint: cd.Endpoint()})
			if err != nil {
				b.Fatal(err)
			}
			defer rt.Close()
			p, err := pleg.New(pleg.Config{Runtime: rt})
			if err != nil {
				b.Fatal(err)
			}
			sub := p.Watch()
			defer sub.Close()
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			defer func() { cancel(); <-done }()

			const uid = "latency-pod"
			labels := map[string]string{core.LabelPodName: "latency", core.LabelPodNamespace: "bench", core.LabelPodUID: uid}
			sb := &runtimeapi.PodSandboxConfig{
				Metadata:     &runtimeapi.PodSandboxMetadata{Name: "latency", Namespace: "bench", Uid: uid},
				Labels:       labels,
				LogDirectory: b.TempDir(),
				Linux: &runtimeapi.LinuxPodSandboxConfig{CgroupParent: cd.CgroupParent, SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
					NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
				}},
			}
			sbID, err := rt.RunPodSandbox(ctx, sb, "")
			if err != nil {
				b.Fatal(err)
			}
			if v != testenv.Containerd16 {
				for !p.Streaming() {
					time.Sleep(10 * time.Millisecond)
				}
			}
			var lat []time.Duration
			i := 0
			for b.Loop() {
				i++
				cl := map[string]string{core.LabelPodName: "latency", core.LabelPodNamespace: "bench", core.LabelPodUID: uid, core.LabelContainerName: fmt.Sprint("c", i)}
				id, err := rt.CreateContainer(ctx, sbID, &runtimeapi.ContainerConfig{
					Metadata: &runtimeapi.ContainerMetadata{Name: fmt.Sprint("c", i)},
					Image:    &runtimeapi.ImageSpec{Image: testenv.BusyboxImage},
					// A random lifetime, so deaths fall anywhere in the relist period.
					Command: []string{"sh", "-c", fmt.Sprintf("sleep %.3f; exit 3", 0.3+rand.Float64())},
					Labels:  cl,
				}, sb)
				if err != nil {
					b.Fatal(err)
				}
				if err := rt.StartContainer(ctx, id); err != nil {
					b.Fatal(err)
				}
				for {
					ev := <-sub.Events()
					if ev.Type != core.ContainerDied || ev.ContainerID != id {
						continue
					}
					got := time.Now()
					st, err := rt.ContainerStatus(ctx, id, false)
					if err != nil {
						b.Fatal(err)
					}
					lat = append(lat, got.Sub(time.Unix(0, st.GetStatus().GetFinishedAt())))
					break
				}
				if err := rt.RemoveContainer(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
			slices.Sort(lat)
			pct := func(q float64) float64 { return lat[int(q*float64(len(lat)-1))].Seconds() * 1000 }
			b.ReportMetric(pct(0.5), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}
