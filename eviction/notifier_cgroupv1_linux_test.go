package eviction

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// helperEnv makes the test binary a child that allocates memory on
// command: a line "N" allocates and touches N MiB, "free" gives it all
// back to the kernel; each answered with "ok".
const helperEnv = "NODEKIT_EVICTION_MEMORY_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		memoryHelper()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func memoryHelper() {
	var held [][]byte
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch cmd := sc.Text(); cmd {
		case "free":
			held = nil
			debug.FreeOSMemory()
		default:
			mib, err := strconv.Atoi(cmd)
			if err != nil {
				fmt.Println("bad command", cmd)
				continue
			}
			b := make([]byte, mib<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			held = append(held, b)
		}
		fmt.Println("ok")
	}
	runtime.KeepAlive(held)
}

// child is a running memory helper.
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func (c *child) do(t *testing.T, cmd string) {
	t.Helper()
	if _, err := fmt.Fprintln(c.in, cmd); err != nil {
		t.Fatal(err)
	}
	if !c.out.Scan() || c.out.Text() != "ok" {
		t.Fatalf("helper answered %q to %q (%v)", c.out.Text(), cmd, c.out.Err())
	}
}

// v1MemoryMount is where this test expects the host's cgroup v1
// hierarchies.
const v1Mount = "/sys/fs/cgroup"

func requireCgroupV1(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make cgroups")
	}
	if v, err := detectCgroupVersion(v1Mount); err != nil || v != 1 {
		t.Skipf("needs cgroup v1 at %s (version %d, %v)", v1Mount, v, err)
	}
	for _, c := range []string{"memory", "pids"} {
		if _, err := os.Stat(filepath.Join(v1Mount, c, "cgroup.procs")); err != nil {
			t.Skipf("no v1 %s hierarchy: %v", c, err)
		}
	}
}

// readNumber reads a cgroup file holding a number.
func readNumber(t *testing.T, path string) uint64 {
	t.Helper()
	v, err := readUintFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func statValue(t *testing.T, path, key string) uint64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in %s", key, path)
	return 0
}

func between(v, lo, hi uint64) bool { return v >= lo && v <= hi }

// On the host's cgroup v1: a kubelet-style hierarchy below a test cgroup,
// a child process allocating memory in a pod cgroup, the StatsProvider
// reading it all, and the eventfd notifier firing when the child's usage
// crosses a threshold set just above it.
func TestCgroupV1Host(t *testing.T) {
	requireCgroupV1(t)
	ctx := context.Background()
	suffix := make([]byte, 6)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	root := "nodekit-test-" + hex.EncodeToString(suffix)
	uid := types.UID("0d1c7a4e-" + hex.EncodeToString(suffix[:2]) + "-4f7e-9c1b-3a5d2e6f8b90")
	podCg := filepath.Join("/", root, "kubepods", "besteffort", "pod"+string(uid))

	var made []string // cgroup directories, parents first
	t.Cleanup(func() {
		for i := len(made) - 1; i >= 0; i-- {
			if err := os.Remove(made[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("remove test cgroup: %v", err)
			}
		}
	})
	for _, ctrl := range []string{"memory", "pids"} {
		dir := filepath.Join(v1Mount, ctrl)
		for _, c := range strings.Split(strings.TrimPrefix(podCg, "/"), "/") {
			dir = filepath.Join(dir, c)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			made = append(made, dir)
		}
	}
	const allocatable = 2 << 30
	if err := os.WriteFile(filepath.Join(v1Mount, "memory", root, "kubepods", "memory.limit_in_bytes"), []byte(strconv.Itoa(allocatable)), 0o644); err != nil {
		t.Fatal(err)
	}

	// The child, moved into the pod cgroup: what it allocates from now on
	// is charged there.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Registered after the directories, so it runs before they are
	// removed.
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	c := &child{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	for _, ctrl := range []string{"memory", "pids"} {
		procs := filepath.Join(v1Mount, ctrl, podCg, "cgroup.procs")
		if err := os.WriteFile(procs, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.do(t, "50")

	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "hog", UID: uid}, Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c"}}}}
	rootDir := t.TempDir()
	p, err := NewStatsProvider(StatsConfig{
		ActivePods: func() []*v1.Pod { return []*v1.Pod{pod} },
		RootDir:    rootDir,
		PodLogsDir: t.TempDir(),
		CgroupRoot: "/" + root,
	})
	if err != nil {
		t.Fatal(err)
	}

	memDir := filepath.Join(v1Mount, "memory")
	workingSet := func(cg string) uint64 {
		usage := readNumber(t, filepath.Join(memDir, cg, "memory.usage_in_bytes"))
		inactive := statValue(t, filepath.Join(memDir, cg, "memory.stat"), "total_inactive_file")
		return usage - min(usage, inactive)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(rootDir, &sfs); err != nil {
		t.Fatal(err)
	}
	loadavgBefore, err := readLoadavgTasks("/proc/loadavg")
	if err != nil {
		t.Fatal(err)
	}
	nodeWSBefore, podWSBefore := workingSet("/"), workingSet(podCg)
	obs, err := p.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nodeWSAfter, podWSAfter := workingSet("/"), workingSet(podCg)
	loadavgAfter, err := readLoadavgTasks("/proc/loadavg")
	if err != nil {
		t.Fatal(err)
	}
	const slack = 64 << 20 // the rest of the machine moves meanwhile

	// The node.
	info, err := readMeminfo("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	m := obs.Memory
	if m.Time.IsZero() || m.AvailableBytes+m.WorkingSetBytes != info["MemTotal"] {
		t.Errorf("Memory = %+v: capacity %d, want MemTotal %d", m, m.AvailableBytes+m.WorkingSetBytes, info["MemTotal"])
	}
	if lo, hi := min(nodeWSBefore, nodeWSAfter), max(nodeWSBefore, nodeWSAfter); !between(m.WorkingSetBytes, lo-min(lo, slack), hi+slack) {
		t.Errorf("node working set %d, the root cgroup's was %d then %d", m.WorkingSetBytes, nodeWSBefore, nodeWSAfter)
	}
	a := obs.AllocatableMemory
	if a.Time.IsZero() || a.AvailableBytes+a.WorkingSetBytes != allocatable || a.WorkingSetBytes < 50<<20 {
		t.Errorf("AllocatableMemory = %+v, want capacity %d and the child's 50Mi in the working set", a, allocatable)
	}
	if obs.NodeFs.CapacityBytes != sfs.Blocks*uint64(sfs.Frsize) || obs.NodeFs.Inodes != sfs.Files {
		t.Errorf("NodeFs = %+v, statfs: %d blocks of %d, %d inodes", obs.NodeFs, sfs.Blocks, sfs.Frsize, sfs.Files)
	}
	pidMax, threadsMax := readNumber(t, "/proc/sys/kernel/pid_max"), readNumber(t, "/proc/sys/kernel/threads-max")
	if obs.PIDs.MaxPID != min(pidMax, threadsMax) {
		t.Errorf("MaxPID = %d, want min(%d, %d)", obs.PIDs.MaxPID, pidMax, threadsMax)
	}
	if lo, hi := min(loadavgBefore, loadavgAfter), max(loadavgBefore, loadavgAfter); !between(obs.PIDs.NumProcesses, lo-min(lo, 100), hi+100) {
		t.Errorf("NumProcesses = %d, loadavg said %d then %d", obs.PIDs.NumProcesses, loadavgBefore, loadavgAfter)
	}

	// The pod: the child's cgroup.
	if len(obs.Pods) != 1 || obs.Pods[0].Time.IsZero() {
		t.Fatalf("pods = %+v, want the pod measured", obs.Pods)
	}
	ps := obs.Pods[0]
	if lo, hi := min(podWSBefore, podWSAfter), max(podWSBefore, podWSAfter); ps.MemoryWorkingSetBytes < 50<<20 || !between(ps.MemoryWorkingSetBytes, lo-min(lo, 1<<20), hi+1<<20) {
		t.Errorf("pod working set %d, want at least 50Mi and usage less total_inactive_file (%d then %d)", ps.MemoryWorkingSetBytes, podWSBefore, podWSAfter)
	}
	tasks := readNumber(t, filepath.Join(v1Mount, "pids", podCg, "pids.current"))
	if ps.ProcessCount == 0 || ps.ProcessCount > tasks+8 || ps.ProcessCount+8 < tasks {
		t.Errorf("pod tasks %d, pids.current is %d", ps.ProcessCount, tasks)
	}

	// The notifier, armed just above the child's usage, fires within a
	// second of the child crossing it, and again when it falls back.
	n, err := NewMemoryNotifier(NotifierConfig{Cgroup: podCg})
	if err != nil {
		t.Fatal(err)
	}
	armed := make(chan uint64, 4)
	n.armed = func(th uint64) { armed <- th }
	usage := readNumber(t, filepath.Join(memDir, podCg, "memory.usage_in_bytes"))
	n.SetThreshold(usage + 20<<20)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- n.Run(runCtx) }()
	select {
	case <-armed:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the notifier was not armed")
	}
	if v, _ := n.cgroupVersion(); v != 1 {
		t.Fatalf("notifier detected cgroup v%d, want v1", v)
	}
	select {
	case <-n.C():
		t.Fatal("a crossing was reported before the usage moved")
	default:
	}
	c.do(t, "50")
	select {
	case <-n.C():
	case <-time.After(time.Second):
		t.Fatalf("no crossing reported within 1s; usage %d, threshold %d",
			readNumber(t, filepath.Join(memDir, podCg, "memory.usage_in_bytes")), n.Threshold())
	}
	c.do(t, "free")
	select {
	case <-n.C():
	case <-time.After(time.Second):
		t.Errorf("no crossing reported within 1s of the usage falling; usage %d, threshold %d",
			readNumber(t, filepath.Join(memDir, podCg, "memory.usage_in_bytes")), n.Threshold())
	}

	// A new threshold re-registers the event.
	n.SetThreshold(readNumber(t, filepath.Join(memDir, podCg, "memory.usage_in_bytes")) + 10<<20)
	select {
	case <-armed:
	case <-time.After(5 * time.Second):
		t.Fatal("the notifier was not re-armed")
	}
	c.do(t, "30")
	select {
	case <-n.C():
	case <-time.After(time.Second):
		t.Error("no crossing reported within 1s after re-arming")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
}
