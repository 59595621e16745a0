package main

import (
	"context"
	"os"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/cri"
	"github.com/nodekit/nodekit/crispec"
	"github.com/nodekit/nodekit/runtimetest"
)

// openRuntime returns the runtime, its pod log root and how to close it:
// a CRI runtime at endpoint, or the simulated one with its pod logs in a
// temporary directory.
func openRuntime(ctx context.Context, endpoint string) (core.Runtime, string, func(), error) {
	if endpoint != "" {
		rt, err := cri.New(ctx, cri.Config{Endpoint: endpoint})
		if err != nil {
			return nil, "", nil, err
		}
		return rt, crispec.DefaultPodLogsRoot, func() { rt.Close() }, nil
	}
	logs, err := os.MkdirTemp("", "minimal-pod-logs-")
	if err != nil {
		return nil, "", nil, err
	}
	// The simulated runtime has the image of the bundled manifest.
	rt, err := runtimetest.New(runtimetest.Config{Images: []string{"busybox:1.36"}})
	if err != nil {
		os.RemoveAll(logs)
		return nil, "", nil, err
	}
	return rt, logs, func() { os.RemoveAll(logs) }, nil
}
