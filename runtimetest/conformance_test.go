package runtimetest_test

import (
	"context"
	"testing"

	"github.com/nodekit/nodekit/runtimetest"
	"github.com/nodekit/nodekit/runtimetest/conformance"
)

// The simulation passes the suite that real containerd passes, with and
// without an event stream. The suite runs in real time, so the runtime
// uses the real clock.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("the conformance suite runs in real time")
	}
	for _, events := range []bool{true, false} {
		rt, err := runtimetest.New(runtimetest.Config{Images: []string{busybox}, Events: events})
		if err != nil {
			t.Fatal(err)
		}
		name := map[bool]string{true: "Events", false: "NoEvents"}[events]
		t.Run(name, func(t *testing.T) {
			conformance.Run(t, conformance.Target{
				Runtime: rt,
				Image:   busybox,
				Events:  events,
				Cgroup: func(ctx context.Context, id string) (conformance.Cgroup, error) {
					// The simulated cgroup is what ContainerStatus reports:
					// this checks that updates merge as in containerd.
					resp, err := rt.ContainerStatus(ctx, id, false)
					if err != nil {
						return conformance.Cgroup{}, err
					}
					l := resp.GetStatus().GetResources().GetLinux()
					return conformance.Cgroup{
						MemoryLimitBytes: l.GetMemoryLimitInBytes(),
						CPUShares:        l.GetCpuShares(),
						CPUQuota:         l.GetCpuQuota(),
						CPUPeriod:        l.GetCpuPeriod(),
					}, nil
				},
			})
		})
	}
}
