package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/cri"
	"github.com/nodekit/nodekit/internal/testenv"
)

// TestMain runs the agent itself when the test binary is started as the
// agent (for the tests that kill it).
func TestMain(m *testing.M) {
	if os.Getenv("NODEKIT_TEST_RUN_AGENT") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// startProcess runs the agent as a process of its own.
func startProcess(t *testing.T, log string, args ...string) *exec.Cmd {
	t.Helper()
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "NODEKIT_TEST_RUN_AGENT=1")
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// Standalone on real containerd: the agent runs a directory's static
// pods; killed with SIGKILL and started again, it adopts them without
// restarting a container; stopped with SIGTERM, it leaves them running.
func TestKillAndRestartAdoptsOnContainerd(t *testing.T) {
	cd := testenv.StartContainerd(t, testenv.Options{Version: testenv.Containerd16})
	dir := t.TempDir()
	manifests := filepath.Join(dir, "manifests")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, manifests, "web.yaml", `apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers: [{name: app, image: "`+testenv.BusyboxImage+`", imagePullPolicy: Never, command: [sleep, "3600"]}]
`)
	config := writeFile(t, dir, "kubelet.yaml", fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: %s
staticPodPath: %s
podLogsDir: %s
enableServer: false
readOnlyPort: 0
healthzPort: 0
cgroupsPerQOS: false
cgroupRoot: %s
`, cd.Endpoint(), manifests, filepath.Join(dir, "logs"), cd.CgroupParent))
	root := filepath.Join(dir, "root")
	unmountUnder(t, root)
	log := filepath.Join(dir, "agent.log")
	args := []string{"-config", config, "-root-dir", root, "-hostname-override", "n1"}

	ctx := context.Background()
	rt, err := cri.New(ctx, cri.Config{Endpoint: cd.Endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	running := func() []string {
		cs, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{core.LabelPodName: "web-n1"}})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, c := range cs {
			if c.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
				ids = append(ids, c.GetId())
			}
		}
		return ids
	}
	first := startProcess(t, log, args...)
	var before []string
	eventually(t, time.Minute, "the static pod's container running", func() bool { before = running(); return len(before) == 1 })

	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	second := startProcess(t, log, args...)
	time.Sleep(3 * time.Second) // relists and syncs of the new agent
	after := running()
	if len(after) != 1 || after[0] != before[0] {
		b, _ := os.ReadFile(log)
		t.Fatalf("after kill -9 and restart: running %v, before %v\n%s", after, before, b)
	}
	// SIGTERM: a graceful stop that leaves the pods running.
	if err := second.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(); err != nil {
		b, _ := os.ReadFile(log)
		t.Fatalf("the agent's exit after SIGTERM: %v\n%s", err, b)
	}
	if ids := running(); len(ids) != 1 || ids[0] != before[0] {
		t.Errorf("after a graceful stop: %v", ids)
	}
}
