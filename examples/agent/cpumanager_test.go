package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/nodekit/nodekit/cpumanager"
)

// The static CPU manager from the configuration, on the simulated
// runtime: with reservedSystemCPUs "0" a Guaranteed static pod asking for
// one CPU fits the allocatable CPUs left (the machine's less the one
// reserved) and gets CPU 1 to itself, in the checkpoint at
// rootDir/cpu_manager_state and in the metrics.
func TestStaticCPUManagerFromTheConfiguration(t *testing.T) {
	topo, err := cpumanager.DiscoverTopology("/")
	if err != nil {
		t.Fatal(err)
	}
	if topo.NumCPUs < 2 {
		t.Skipf("%d CPU: exclusive CPUs need a second one", topo.NumCPUs)
	}
	dir, root := t.TempDir(), t.TempDir()
	ro := freePort(t)
	path := writeFile(t, dir, "k.yaml", fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: %s
enableServer: false
healthzPort: 0
readOnlyPort: %s
address: 127.0.0.1
cpuManagerPolicy: static
reservedSystemCPUs: "0"
cpuManagerReconcilePeriod: 5s
`, dir, ro))
	writeFile(t, dir, "pinned.yaml", `apiVersion: v1
kind: Pod
metadata: {name: pinned, labels: {app: pinned}}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: "`+simulatedImage+`"
    imagePullPolicy: Never
    resources:
      requests: {cpu: "1", memory: 64Mi}
      limits: {cpu: "1", memory: 64Mi}
`)
	out, _ := started(t, "-config", path, "-root-dir", root)
	eventually(t, 20*time.Second, "the pinned pod running", func() bool {
		_, b := get("http://127.0.0.1:" + ro + "/pods")
		return podPhases(b)["pinned"] == v1.PodRunning
	})
	policy, s, err := cpumanager.ReadCheckpoint(filepath.Join(root, cpumanager.CheckpointFileName))
	if err != nil {
		t.Fatal(err)
	}
	if policy != "static" || !strings.Contains(s.Assignments.String(), `{"app":"1"}`) {
		t.Errorf("checkpoint: policy %s, pool %s, assignments %s\n%s", policy, s.DefaultCPUSet, s.Assignments, out.String())
	}
	_, metrics := get("http://127.0.0.1:" + ro + "/metrics")
	for _, want := range []string{"\nkubelet_cpu_manager_exclusive_cpu_allocation_count 1\n", "\nkubelet_cpu_manager_pinning_requests_total 1\n"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", strings.TrimSpace(want))
		}
	}
}

// A static policy without any reserved CPU is refused before anything
// starts, naming the field.
func TestStaticCPUManagerNeedsAReservation(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "k.yaml", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nhealthzPort: 0\nenableServer: false\n"+
		"staticPodPath: "+dir+"\ncpuManagerPolicy: static\n")
	err := run(context.Background(), []string{"-config", path, "-root-dir", t.TempDir()}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "reservedSystemCPUs: the static policy requires") {
		t.Errorf("got %v", err)
	}
}
