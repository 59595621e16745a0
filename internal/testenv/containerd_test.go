package testenv_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/internal/testenv"
)

// TestContainerd runs both versions at the same time, each with a
// host-network pod running a container and a pod on the bridge network, then
// stops them and checks that nothing is left.
func TestContainerd(t *testing.T) {
	for _, v := range testenv.Versions {
		t.Run(string(v), func(t *testing.T) {
			t.Parallel()
			began := time.Now()
			c := testenv.StartContainerd(t, testenv.Options{Version: v})
			t.Logf("containerd %s ready with %s in %v: %s", v, testenv.BusyboxImage, time.Since(began).Round(time.Millisecond), c.Endpoint())
			rt := runtimeClient(t, c)
			ctx := t.Context()

			ver, err := rt.Version(ctx, &runtimeapi.VersionRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if ver.RuntimeName != "containerd" || !strings.HasPrefix(strings.TrimPrefix(ver.RuntimeVersion, "v"), string(v)+".") {
				t.Errorf("CRI version: %s %s, want containerd %s.*", ver.RuntimeName, ver.RuntimeVersion, v)
			}

			p := runPod(t, rt, c, "host", runtimeapi.NamespaceMode_NODE)
			bridged := runPod(t, rt, c, "bridged", runtimeapi.NamespaceMode_POD)
			ip, err := netip.ParseAddr(bridged.status.GetNetwork().GetIp())
			if err != nil || !netip.MustParsePrefix(c.Subnet).Contains(ip) {
				t.Errorf("bridged pod IP %q (%v), want one in %s", bridged.status.GetNetwork().GetIp(), err, c.Subnet)
			}
			if _, err := net.InterfaceByName(c.Bridge); err != nil {
				t.Errorf("bridge %s: %v", c.Bridge, err)
			}
			if netns := netnsPath(t, bridged.info); !strings.HasPrefix(netns, c.Dir+"/") {
				t.Errorf("bridged pod's network namespace %q is not under %s", netns, c.Dir)
			}
			if host := p.status.GetNetwork().GetIp(); host != "" && ip.String() == host {
				t.Errorf("host-network pod got the bridged pod's IP %s", host)
			}

			// The same checks that must find nothing after Stop find the
			// running pods now, so they are not vacuous.
			ids := []string{p.id, p.container, bridged.id}
			running := leftovers(c, ids)
			t.Logf("traces of the running pods:\n%s", strings.Join(running, "\n"))
			if left := running; len(left) < 4 {
				t.Errorf("with pods running, expected processes, mounts, cgroups and the bridge; found only:\n%s", strings.Join(left, "\n"))
			}

			stopAndCheck(t, c, ids)
		})
	}
}

// TestStopAfterContainerdDied kills containerd under running pods: Stop can
// no longer remove them through CRI and must find and remove their shims,
// containers, mounts and cgroups itself.
func TestStopAfterContainerdDied(t *testing.T) {
	for _, v := range testenv.Versions {
		t.Run(string(v), func(t *testing.T) {
			t.Parallel()
			c := testenv.StartContainerd(t, testenv.Options{Version: v})
			rt := runtimeClient(t, c)
			p := runPod(t, rt, c, "host", runtimeapi.NamespaceMode_NODE)
			bridged := runPod(t, rt, c, "bridged", runtimeapi.NamespaceMode_POD)

			pid := containerdPID(t, c)
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "containerd to die", func() bool { return syscall.Kill(pid, 0) != nil || isZombie(pid) })

			stopAndCheck(t, c, []string{p.id, p.container, bridged.id})
		})
	}
}

type pod struct {
	id, container string
	status        *runtimeapi.PodSandboxStatus
	info          map[string]string // verbose status
}

// runPod runs a sandbox in c.CgroupParent and, for a host-network pod, a
// container of the test image in it, and waits until both run.
func runPod(t *testing.T, rt runtimeapi.RuntimeServiceClient, c *testenv.Containerd, name string, network runtimeapi.NamespaceMode) pod {
	t.Helper()
	ctx := t.Context()
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "testenv", Uid: name + "-uid"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent:    c.CgroupParent,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Network: network}},
		},
	}
	sb, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("run pod sandbox %s: %v", name, err)
	}
	p := pod{id: sb.PodSandboxId}
	st, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	p.status = st.Status
	if p.status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("pod %s: %v", name, p.status.State)
	}
	p.info = st.Info
	if network != runtimeapi.NamespaceMode_NODE {
		return p
	}
	ctr, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId:  p.id,
		SandboxConfig: cfg,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "sleep"},
			Image:    &runtimeapi.ImageSpec{Image: testenv.BusyboxImage},
		},
	})
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	p.container = ctr.ContainerId
	if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: p.container}); err != nil {
		t.Fatalf("start container: %v", err)
	}
	waitFor(t, 10*time.Second, "the container to run", func() bool {
		st, err := rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: p.container})
		return err == nil && st.GetStatus().GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING
	})
	return p
}

func runtimeClient(t *testing.T, c *testenv.Containerd) runtimeapi.RuntimeServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(c.Endpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return runtimeapi.NewRuntimeServiceClient(conn)
}

// netnsPath digs the network namespace out of a verbose sandbox status.
func netnsPath(t *testing.T, verbose map[string]string) string {
	t.Helper()
	var info struct {
		RuntimeSpec struct {
			Linux struct {
				Namespaces []struct{ Type, Path string }
			}
		}
	}
	if err := json.Unmarshal([]byte(verbose["info"]), &info); err != nil {
		t.Fatalf("verbose sandbox info: %v", err)
	}
	for _, ns := range info.RuntimeSpec.Linux.Namespaces {
		if ns.Type == "network" {
			return ns.Path
		}
	}
	return ""
}

// stopAndCheck stops c and fails the test for anything it left behind.
func stopAndCheck(t *testing.T, c *testenv.Containerd, ids []string) {
	t.Helper()
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	t.Logf("stopped and cleaned up in %v", time.Since(began).Round(time.Millisecond))
	if left := leftovers(c, ids); len(left) > 0 {
		t.Errorf("left behind after Stop:\n%s", strings.Join(left, "\n"))
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists (%v)", c.Dir, err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// leftovers describes every trace of c and of the pods and containers ids:
// processes, mounts, cgroups, shim sockets, CNI result caches, the bridge.
func leftovers(c *testenv.Containerd, ids []string) []string {
	var left []string
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || isZombie(pid) {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		cgroups, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		args := strings.ReplaceAll(string(cmdline), "\x00", " ")
		refers := strings.Contains(args, c.Dir) || strings.Contains(string(cgroups), ":"+c.CgroupParent+"/")
		for _, id := range ids {
			refers = refers || (id != "" && strings.Contains(args, id))
		}
		if refers {
			left = append(left, fmt.Sprintf("process %d: %s", pid, args))
		}
	}
	mountinfo, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mountinfo), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], c.Dir+"/") {
			left = append(left, "mount "+f[4])
		}
	}
	_ = filepath.WalkDir("/sys/fs/cgroup", func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		named := strings.HasSuffix(path, c.CgroupParent)
		for _, id := range ids {
			named = named || (id != "" && strings.Contains(d.Name(), id))
		}
		if named {
			left = append(left, "cgroup "+path)
			return filepath.SkipDir
		}
		return nil
	})
	for _, id := range ids {
		sum := sha256.Sum256([]byte(filepath.Join(c.Address(), "k8s.io", id)))
		if _, err := os.Stat(fmt.Sprintf("/run/containerd/s/%x", sum)); err == nil {
			left = append(left, "shim socket of "+id)
		}
	}
	results, _ := filepath.Glob("/var/lib/cni/results/*")
	for _, f := range results {
		for _, id := range ids {
			if id != "" && strings.Contains(filepath.Base(f), id) {
				left = append(left, "CNI result cache "+f)
			}
		}
	}
	if _, err := net.InterfaceByName(c.Bridge); err == nil {
		left = append(left, "bridge "+c.Bridge)
	}
	return left
}

// containerdPID finds the containerd process of c.
func containerdPID(t *testing.T, c *testenv.Containerd) int {
	t.Helper()
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.Contains(string(cmdline), filepath.Join(c.Dir, "config.toml")) {
			return pid
		}
	}
	t.Fatalf("no containerd process for %s", c.Dir)
	return 0
}

func isZombie(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i > 0 && strings.HasPrefix(string(stat[i+1:]), " Z")
}

// waitFor polls cond every 50ms until it holds, failing the test after
// timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
