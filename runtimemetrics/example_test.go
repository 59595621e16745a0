package runtimemetrics_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/runtimemetrics"
	"github.com/nodekit/nodekit/runtimetest"
)

// Wrap the runtime once and give the wrapper to everything that calls the
// runtime: each call is counted under the kubelet's operation type, and
// errors come back as the runtime returned them.
func Example() {
	sim, err := runtimetest.New(runtimetest.Config{Events: true})
	if err != nil {
		panic(err)
	}
	reg := prometheus.NewRegistry()
	rt, err := runtimemetrics.New(runtimemetrics.Config{Runtime: sim, Registerer: reg})
	if err != nil {
		panic(err)
	}
	_, isStreamer := rt.(core.EventStreamer)
	fmt.Println("event streamer:", isStreamer)

	ctx := context.Background()
	_, _ = rt.ListPodSandbox(ctx, nil)
	_, _ = rt.ListContainers(ctx, nil)
	_, err = rt.ContainerStatus(ctx, "gone", false)
	fmt.Println("not found:", errors.Is(err, core.ErrNotFound))

	mfs, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		if mf.GetType().String() != "COUNTER" {
			continue
		}
		for _, m := range mf.GetMetric() {
			fmt.Printf("%s{%s=%q} %v\n", mf.GetName(), m.GetLabel()[0].GetName(), m.GetLabel()[0].GetValue(), m.GetCounter().GetValue())
		}
	}
	// Output:
	// event streamer: true
	// not found: true
	// kubelet_runtime_operations_errors_total{operation_type="container_status"} 1
	// kubelet_runtime_operations_total{operation_type="container_status"} 1
	// kubelet_runtime_operations_total{operation_type="list_containers"} 1
	// kubelet_runtime_operations_total{operation_type="list_podsandbox"} 1
}
