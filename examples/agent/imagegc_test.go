package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/nodekit/nodekit/imagegc"
	"github.com/nodekit/nodekit/internal/testenv"
)

// On a real runtime the agent collects images by the configuration's
// image GC fields, which are acted on and so not reported as unsupported;
// the fields it leaves out take the kubelet's defaults.
func TestImageGCFromKubeletConfiguration(t *testing.T) {
	cd := testenv.StartContainerd(t, testenv.Options{Version: testenv.Containerd16})
	dir := t.TempDir()
	config := writeFile(t, dir, "kubelet.yaml", fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: %s
staticPodPath: %s
enableServer: false
healthzPort: 0
cgroupsPerQOS: false
cgroupRoot: %s
imageGCHighThresholdPercent: 90
imageGCLowThresholdPercent: 70
imageMaximumGCAge: 24h
`, cd.Endpoint(), dir, cd.CgroupParent))
	root := filepath.Join(dir, "root")
	unmountUnder(t, root)
	o, err := parseFlags([]string{"-config", config, "-root-dir", root, "-hostname-override", "n1", "-pod-logs-dir", filepath.Join(dir, "logs")}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg, cleanup, err := loadConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if len(cfg.Unsupported) != 0 {
		t.Errorf("unsupported: %q", cfg.Unsupported)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := newAgent(ctx, o, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	want := imagegc.Policy{HighThresholdPercent: 90, LowThresholdPercent: 70, MinAge: 2 * time.Minute, MaxAge: 24 * time.Hour}
	if a.node.Images == nil || a.node.Images.Policy() != want {
		t.Fatalf("image GC %v, want one with %+v", a.node.Images, want)
	}
	// It runs over the agent's runtime: the test image is there.
	images, _, err := a.node.Images.Detect(ctx)
	if err != nil || len(images) != 1 || images[0].String() != testenv.BusyboxImage {
		t.Errorf("detected %v, %v", images, err)
	}
}
