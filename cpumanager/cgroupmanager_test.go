package cpumanager_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	cgroups "github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/cpumanager"
)

const cgMount = "/sys/fs/cgroup"

// cgV1Root creates a cgroup with a random name in every v1 hierarchy, to
// serve as the cgroup root of a test, and removes everything below it and
// itself when the test ends, deepest first. It skips the test unless it
// runs as root on a cgroup v1 (or hybrid) host.
func cgV1Root(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: creating cgroups needs root")
	}
	if mode := cgroups.Mode(); mode != cgroups.Legacy && mode != cgroups.Hybrid {
		t.Skipf("skipped: needs cgroup v1 hierarchies (legacy or hybrid mode); the host's mode is %s", cgModeNames[mode])
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	root := "/nodekit-test-" + hex.EncodeToString(b)
	t.Cleanup(func() { cgRemoveTree(t, root) })
	if _, err := cgroup1.New(cgroup1.StaticPath(root), &specs.LinuxResources{}); err != nil {
		t.Fatalf("create the test's cgroup root %s: %v", root, err)
	}
	return root
}

// cgV1Hierarchies lists the mounted v1 hierarchies' directories.
func cgV1Hierarchies(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(cgMount)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		dir := filepath.Join(cgMount, e.Name())
		if e.Name() == "unified" {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err == nil {
			out = append(out, dir)
		}
	}
	return out
}

// cgRemoveTree removes root and the cgroups below it in every hierarchy,
// deepest first.
func cgRemoveTree(t *testing.T, root string) {
	for _, h := range cgV1Hierarchies(t) {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(h, root), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
		for _, d := range dirs {
			if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("cleanup: remove cgroup %s: %v", d, err)
			}
		}
	}
}

// cgRead reads a cgroup file of a controller.
func cgRead(t *testing.T, controller, cgroup, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cgMount, controller, cgroup, file))
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	return strings.TrimSpace(string(b))
}

// cgExpect checks cgroup files: controller, file, value.
func cgExpect(t *testing.T, cgroup string, want ...string) {
	t.Helper()
	for i := 0; i+2 < len(want); i += 3 {
		if got := cgRead(t, want[i], cgroup, want[i+1]); got != want[i+2] {
			t.Errorf("%s %s = %s, want %s", cgroup, want[i+1], got, want[i+2])
		}
	}
}

// cgUnlimitedMemory checks that the memory limit is the kernel's "none".
func cgUnlimitedMemory(t *testing.T, cgroup string) {
	t.Helper()
	v, err := strconv.ParseInt(cgRead(t, "memory", cgroup, "memory.limit_in_bytes"), 10, 64)
	if err != nil || v < 1<<62 {
		t.Errorf("%s memory.limit_in_bytes = %d (%v), want no limit", cgroup, v, err)
	}
}

func cgNewManager(t *testing.T, cfg cpumanager.CgroupManagerConfig) *cpumanager.CgroupManager {
	t.Helper()
	m, err := cpumanager.NewCgroupManager(cfg)
	if err != nil {
		t.Fatalf("NewCgroupManager: %v", err)
	}
	return m
}

// cgOps counts the cgroup operations of one type in the metric.
func cgOps(t *testing.T, reg *prometheus.Registry, op string) uint64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "kubelet_cgroup_manager_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "operation_type" && l.GetValue() == op {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

func TestCgroupManagerV1Hierarchy(t *testing.T) {
	root := cgV1Root(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	na := cpumanager.NodeAllocatable{
		Capacity:       cgList("cpu", "2", "memory", "4Gi", "pid", "4096"),
		SystemReserved: cgList("cpu", "500m", "memory", "512Mi"),
		KubeReserved:   cgList("memory", "512Mi"),
		CPUSet:         "0",
	}
	m := cgNewManager(t, cpumanager.CgroupManagerConfig{Root: root, CgroupVersion: 1, NodeAllocatable: na, Registerer: reg})
	if m.Version() != 1 {
		t.Fatalf("Version = %d", m.Version())
	}
	if err := m.EnsureHierarchy(ctx); err != nil {
		t.Fatalf("EnsureHierarchy: %v", err)
	}
	kubepods := root + "/kubepods"
	check := func() {
		t.Helper()
		cgExpect(t, kubepods,
			"cpu", "cpu.shares", "1536",
			"memory", "memory.limit_in_bytes", "3221225472",
			"pids", "pids.max", "4096")
		cgExpect(t, kubepods+"/besteffort", "cpu", "cpu.shares", "2")
		// Burstable's shares wait for UpdateQOS: the kernel's default.
		cgExpect(t, kubepods+"/burstable", "cpu", "cpu.shares", "1024")
		cgUnlimitedMemory(t, kubepods+"/burstable")
		// Every hierarchy has the three cgroups, as the kubelet creates them.
		for _, h := range cgV1Hierarchies(t) {
			for _, c := range []string{kubepods, kubepods + "/burstable", kubepods + "/besteffort"} {
				if _, err := os.Stat(filepath.Join(h, c)); err != nil {
					t.Errorf("%s: %v", filepath.Base(h), err)
				}
			}
		}
		// cpuset needs CPUs and memory nodes before anything can join:
		// the children start with their parent's.
		cgExpect(t, kubepods, "cpuset", "cpuset.cpus", "0")
		cgExpect(t, kubepods+"/besteffort", "cpuset", "cpuset.cpus", "0")
		if cgRead(t, "cpuset", kubepods+"/besteffort", "cpuset.mems") == "" {
			t.Error("besteffort's cpuset.mems is empty")
		}
	}
	check()
	if got := cgOps(t, reg, "create"); got != 3 {
		t.Errorf("create operations = %d, want 3", got)
	}

	// Idempotent.
	if err := m.EnsureHierarchy(ctx); err != nil {
		t.Fatalf("EnsureHierarchy again: %v", err)
	}
	check()
	if got, updates := cgOps(t, reg, "create"), cgOps(t, reg, "update"); got != 3 || updates != 3 {
		t.Errorf("after a second EnsureHierarchy: %d creates and %d updates, want 3 and 3", got, updates)
	}

	// A changed node allocatable is applied. (A cpuset can grow; it
	// cannot shrink below its children's.)
	na.Capacity = cgList("cpu", "1", "memory", "2Gi", "pid", "2048")
	na.SystemReserved = nil
	na.CPUSet = cgRead(t, "cpuset", "/", "cpuset.cpus")
	// A second manager on the same registry shares the metric.
	m2 := cgNewManager(t, cpumanager.CgroupManagerConfig{Root: root, CgroupVersion: 1, NodeAllocatable: na, Registerer: reg})
	if err := m2.EnsureHierarchy(ctx); err != nil {
		t.Fatalf("EnsureHierarchy with new allocatable: %v", err)
	}
	if got := cgOps(t, reg, "update"); got != 6 {
		t.Errorf("update operations = %d, want 6", got)
	}
	cgExpect(t, kubepods,
		"cpu", "cpu.shares", "1024",
		"memory", "memory.limit_in_bytes", "1610612736",
		"pids", "pids.max", "2048",
		"cpuset", "cpuset.cpus", na.CPUSet)
}

func TestCgroupManagerV1MissingRoot(t *testing.T) {
	root := cgV1Root(t)
	ctx := context.Background()
	m := cgNewManager(t, cpumanager.CgroupManagerConfig{Root: root + "/missing", CgroupVersion: 1})
	if err := m.EnsureHierarchy(ctx); !errors.Is(err, core.ErrNotFound) || !strings.Contains(err.Error(), root+"/missing") {
		t.Errorf("EnsureHierarchy under a missing root = %v, want core.ErrNotFound naming it", err)
	}
	if err := m.EnsurePod(ctx, cgPod("x", cgReq("", "", "", ""))); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("EnsurePod before EnsureHierarchy = %v, want core.ErrNotFound", err)
	}
	if err := m.UpdateQOS(ctx, nil); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("UpdateQOS before EnsureHierarchy = %v, want core.ErrNotFound", err)
	}
	if _, err := os.Stat(filepath.Join(cgMount, "cpu", root, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the missing root was created: %v", err)
	}
}

func TestCgroupManagerV1Pods(t *testing.T) {
	root := cgV1Root(t)
	ctx := context.Background()
	g := cgPod("g-1", cgReq("500m", "256Mi", "500m", "256Mi"))
	b := cgPod("b-1", cgReq("250m", "", "1", "128Mi"), cgReq("100m", "64Mi", "", ""))
	be := cgPod("be-1", cgReq("", "", "", ""))
	cfg := cpumanager.CgroupManagerConfig{Root: root, CgroupVersion: 1, PodPidsLimit: 1024}
	m := cgNewManager(t, cfg)
	if err := m.EnsureHierarchy(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*v1.Pod{g, b, be} {
		if err := m.EnsurePod(ctx, p); err != nil {
			t.Fatalf("EnsurePod %s: %v", p.UID, err)
		}
	}
	gPath, bPath, bePath := root+"/kubepods/podg-1", root+"/kubepods/burstable/podb-1", root+"/kubepods/besteffort/podbe-1"
	if got := m.CgroupParent(g); got != gPath {
		t.Errorf("CgroupParent = %q, want %q", got, gPath)
	}
	checkG := func(shares, quota, memory string) {
		t.Helper()
		cgExpect(t, gPath,
			"cpu", "cpu.shares", shares,
			"cpu", "cpu.cfs_quota_us", quota,
			"cpu", "cpu.cfs_period_us", "100000",
			"memory", "memory.limit_in_bytes", memory,
			"pids", "pids.max", "1024")
	}
	checkG("512", "50000", "268435456")
	// One container has no CPU limit, one no memory limit: neither is set.
	cgExpect(t, bPath,
		"cpu", "cpu.shares", "358",
		"cpu", "cpu.cfs_quota_us", "-1",
		"pids", "pids.max", "1024")
	cgUnlimitedMemory(t, bPath)
	cgExpect(t, bePath,
		"cpu", "cpu.shares", "2",
		"cpu", "cpu.cfs_quota_us", "-1",
		"pids", "pids.max", "1024")
	cgUnlimitedMemory(t, bePath)

	// Idempotent.
	if err := m.EnsurePod(ctx, g); err != nil {
		t.Fatal(err)
	}
	checkG("512", "50000", "268435456")

	// Resized: the values follow.
	g.Spec.Containers[0].Resources = cgReq("1", "512Mi", "1", "512Mi")
	if err := m.EnsurePod(ctx, g); err != nil {
		t.Fatalf("EnsurePod after a resize: %v", err)
	}
	checkG("1024", "100000", "536870912")

	// Exclusive CPUs lift the quota.
	cfg.ExclusiveCPUs = func(p *v1.Pod) bool { return p.UID == g.UID }
	if err := cgNewManager(t, cfg).EnsurePod(ctx, g); err != nil {
		t.Fatal(err)
	}
	checkG("1024", "-1", "536870912")

	// The QoS cgroups follow the active pods.
	if err := m.UpdateQOS(ctx, []*v1.Pod{g, b, be}); err != nil {
		t.Fatalf("UpdateQOS: %v", err)
	}
	cgExpect(t, root+"/kubepods/burstable", "cpu", "cpu.shares", "358")
	cgExpect(t, root+"/kubepods/besteffort", "cpu", "cpu.shares", "2")
	if err := m.UpdateQOS(ctx, []*v1.Pod{g, be}); err != nil {
		t.Fatalf("UpdateQOS: %v", err)
	}
	cgExpect(t, root+"/kubepods/burstable", "cpu", "cpu.shares", "2")

	got, err := m.ListPodCgroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []cpumanager.PodCgroup{
		{UID: "b-1", QOSClass: v1.PodQOSBurstable, Name: cpumanager.ParseCgroupfsName(bPath), Path: bPath},
		{UID: "be-1", QOSClass: v1.PodQOSBestEffort, Name: cpumanager.ParseCgroupfsName(bePath), Path: bePath},
		{UID: "g-1", QOSClass: v1.PodQOSGuaranteed, Name: cpumanager.ParseCgroupfsName(gPath), Path: gPath},
	}
	if !slices.EqualFunc(got, want, func(a, b cpumanager.PodCgroup) bool {
		return a.UID == b.UID && a.QOSClass == b.QOSClass && a.Path == b.Path && slices.Equal(a.Name, b.Name)
	}) {
		t.Errorf("ListPodCgroups = %+v\nwant %+v", got, want)
	}
}

// cgSleep starts a process and moves it into a cgroup in every hierarchy;
// it is killed when the test ends if it still runs.
func cgSleep(t *testing.T, cgroup string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sleep: %v", err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	cg, err := cgroup1.Load(cgroup1.StaticPath(cgroup))
	if err != nil {
		t.Fatal(err)
	}
	if err := cg.AddProc(uint64(cmd.Process.Pid)); err != nil {
		t.Fatalf("move pid %d into %s: %v", cmd.Process.Pid, cgroup, err)
	}
	return cmd
}

func cgExists(cgroup string) bool {
	_, err := os.Stat(filepath.Join(cgMount, "memory", cgroup))
	return err == nil
}

func TestCgroupManagerV1DestroyAndOrphans(t *testing.T) {
	root := cgV1Root(t)
	ctx := context.Background()
	m := cgNewManager(t, cpumanager.CgroupManagerConfig{Root: root, CgroupVersion: 1})
	if err := m.EnsureHierarchy(ctx); err != nil {
		t.Fatal(err)
	}
	busy := cgPod("busy", cgReq("250m", "", "", ""))
	kept := cgPod("kept", cgReq("", "", "", ""))
	withChild := cgPod("child", cgReq("1", "64Mi", "1", "64Mi"))
	orphan := cgPod("orphan", cgReq("1", "64Mi", "1", "64Mi"))
	for _, p := range []*v1.Pod{busy, kept, withChild, orphan} {
		if err := m.EnsurePod(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	busyPath := root + "/kubepods/burstable/podbusy"
	sleep := cgSleep(t, busyPath)
	pid := sleep.Process.Pid

	// A process in the cgroup: DestroyPod refuses, naming the cgroup and
	// the pid, and leaves it in place.
	err := m.DestroyPod(ctx, busy.UID)
	var notEmpty *cpumanager.CgroupNotEmptyError
	if !errors.As(err, &notEmpty) {
		t.Fatalf("DestroyPod of a cgroup with a process = %v, want a CgroupNotEmptyError", err)
	}
	if notEmpty.Cgroup != busyPath || !slices.Equal(notEmpty.PIDs, []int{pid}) {
		t.Errorf("CgroupNotEmptyError = %+v, want cgroup %s and pid %d", notEmpty, busyPath, pid)
	}
	if msg := err.Error(); !strings.Contains(msg, busyPath) || !strings.Contains(msg, strconv.Itoa(pid)) {
		t.Errorf("error %q names neither the cgroup nor the pid", msg)
	}
	if !cgExists(busyPath) {
		t.Fatal("DestroyPod removed a cgroup with a process in it")
	}

	// A pod cgroup with a container cgroup below it goes, child first.
	childPath := root + "/kubepods/podchild"
	if _, err := cgroup1.New(cgroup1.StaticPath(childPath+"/container"), &specs.LinuxResources{}); err != nil {
		t.Fatal(err)
	}
	if err := m.DestroyPod(ctx, withChild.UID); err != nil {
		t.Fatalf("DestroyPod: %v", err)
	}
	for _, h := range cgV1Hierarchies(t) {
		if _, err := os.Stat(filepath.Join(h, childPath)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %s is still there (%v)", filepath.Base(h), childPath, err)
		}
	}
	// Gone already: not an error.
	if err := m.DestroyPod(ctx, withChild.UID); err != nil {
		t.Errorf("DestroyPod of a removed cgroup = %v", err)
	}

	// Orphans: the empty one goes, the busy one stays with minimum
	// shares, the active one is not touched.
	report, err := m.CleanupOrphans(ctx, func(uid types.UID) bool { return uid == kept.UID })
	if err != nil {
		t.Fatalf("CleanupOrphans: %v", err)
	}
	if len(report.Removed) != 1 || report.Removed[0].UID != orphan.UID {
		t.Errorf("Removed = %+v, want the orphan", report.Removed)
	}
	if len(report.NotEmpty) != 1 || report.NotEmpty[0].UID != busy.UID || !slices.Equal(report.NotEmpty[0].PIDs, []int{pid}) {
		t.Errorf("NotEmpty = %+v, want the busy pod with pid %d", report.NotEmpty, pid)
	}
	if cgExists(root + "/kubepods/podorphan") {
		t.Error("the orphan's cgroup is still there")
	}
	cgExpect(t, busyPath, "cpu", "cpu.shares", "2")
	if !cgExists(root + "/kubepods/besteffort/podkept") {
		t.Error("the active pod's cgroup was removed")
	}

	// Once the process is gone, the cgroup goes.
	if err := sleep.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = sleep.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err = m.DestroyPod(ctx, busy.UID)
		if err == nil || !errors.As(err, &notEmpty) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("DestroyPod after the process exited: %v", err)
	}
	list, err := m.ListPodCgroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].UID != kept.UID {
		t.Errorf("ListPodCgroups = %+v, want the kept pod only", list)
	}
	report, err = m.CleanupOrphans(ctx, func(types.UID) bool { return false })
	if err != nil || len(report.Removed) != 1 || len(report.NotEmpty) != 0 {
		t.Errorf("CleanupOrphans of everything = %+v, %v", report, err)
	}
	if list, _ := m.ListPodCgroups(ctx); len(list) != 0 {
		t.Errorf("pod cgroups left: %+v", list)
	}
}

func TestNewCgroupManagerRejects(t *testing.T) {
	for _, cfg := range []cpumanager.CgroupManagerConfig{
		{Root: "relative"},
		{Root: "/a/../b"},
		{Root: "/a/"},
		{Driver: cpumanager.SystemdDriver},
		{Driver: "other"},
		{CgroupVersion: 3},
		{MountPoint: "sys/fs/cgroup"},
		{CPUCFSQuotaPeriod: time.Microsecond},
		{CPUCFSQuotaPeriod: 2 * time.Second},
		{MemoryThrottlingFactor: 1.5},
		{QOSReservedMemoryPercent: 101},
	} {
		if _, err := cpumanager.NewCgroupManager(cfg); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("NewCgroupManager(%+v) = %v, want core.ErrInvalid", cfg, err)
		}
	}
}

var cgModeNames = map[cgroups.CGMode]string{
	cgroups.Unavailable: "unavailable", cgroups.Legacy: "legacy (v1)", cgroups.Hybrid: "hybrid", cgroups.Unified: "unified (v2)",
}

// cgV2Root finds a cgroup v2 hierarchy (the host's, or the one a hybrid
// host mounts at unified), creates a cgroup with a random name in it to
// serve as the cgroup root of a test, and removes everything below it and
// itself when the test ends, deepest first, and the controllers the test
// enabled in the hierarchy's root. It skips the test unless it runs as
// root on a host with cgroup v2.
func cgV2Root(t *testing.T) (mount, root string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: creating cgroups needs root")
	}
	switch mode := cgroups.Mode(); mode {
	case cgroups.Unified:
		mount = cgMount
	case cgroups.Hybrid:
		mount = filepath.Join(cgMount, "unified")
	default:
		t.Skipf("skipped: needs a cgroup v2 hierarchy (unified or hybrid mode); the host's mode is %s", cgModeNames[mode])
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	root = "/nodekit-test-" + hex.EncodeToString(b)
	subtree := filepath.Join(mount, "cgroup.subtree_control")
	before, err := os.ReadFile(subtree)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(mount, root), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
		for _, d := range dirs {
			if err := os.Remove(d); err != nil {
				t.Errorf("cleanup: remove cgroup %s: %v", d, err)
			}
		}
		after, err := os.ReadFile(subtree)
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		for _, c := range strings.Fields(string(after)) {
			if !slices.Contains(strings.Fields(string(before)), c) {
				if err := os.WriteFile(subtree, []byte("-"+c), 0o644); err != nil {
					t.Errorf("cleanup: disable controller %s in %s: %v", c, subtree, err)
				}
			}
		}
	})
	if err := os.Mkdir(filepath.Join(mount, root), 0o755); err != nil {
		t.Fatal(err)
	}
	return mount, root
}

func cgReadV2(t *testing.T, mount, cgroup, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(mount, cgroup, file))
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	return strings.TrimSpace(string(b))
}

// The unified hierarchy: on a hybrid host it offers few controllers (here
// hugetlb), so the values checked are those of the controllers offered;
// the cgroups, processes, refusal and removal are checked in any case.
func TestCgroupManagerV2(t *testing.T) {
	mount, root := cgV2Root(t)
	ctx := context.Background()
	offered := strings.Fields(cgReadV2(t, mount, "/", "cgroup.controllers"))
	_, err := os.Stat("/sys/kernel/mm/hugepages/hugepages-2048kB")
	hugetlb := slices.Contains(offered, "hugetlb") && err == nil
	t.Logf("the cgroup v2 hierarchy at %s offers %v", mount, offered)
	m := cgNewManager(t, cpumanager.CgroupManagerConfig{
		Root: root, CgroupVersion: 2, MountPoint: mount,
		NodeAllocatable: cpumanager.NodeAllocatable{Capacity: cgList("cpu", "2", "memory", "4Gi", "hugepages-2Mi", "8Mi")},
	})
	if m.Version() != 2 {
		t.Fatalf("Version = %d", m.Version())
	}
	if err := m.EnsureHierarchy(ctx); err != nil {
		t.Fatalf("EnsureHierarchy: %v", err)
	}
	if err := m.EnsureHierarchy(ctx); err != nil {
		t.Fatalf("EnsureHierarchy again: %v", err)
	}
	kubepods := root + "/kubepods"
	expect := func(cgroup, file, want string) {
		t.Helper()
		if got := cgReadV2(t, mount, cgroup, file); got != want {
			t.Errorf("%s %s = %s, want %s", cgroup, file, got, want)
		}
	}
	const unbounded = "4611686018427387904"
	if hugetlb {
		expect(kubepods, "hugetlb.2MB.max", "8388608")
		expect(kubepods+"/burstable", "hugetlb.2MB.max", unbounded)
		expect(kubepods+"/besteffort", "hugetlb.2MB.max", unbounded)
	}
	if slices.Contains(offered, "cpu") {
		expect(kubepods, "cpu.weight", "79")
		expect(kubepods+"/besteffort", "cpu.weight", "1")
	}
	if slices.Contains(offered, "memory") {
		expect(kubepods, "memory.max", "4294967296")
	}

	r := cgReq("500m", "64Mi", "500m", "64Mi")
	r.Requests["hugepages-2Mi"] = resource.MustParse("2Mi")
	r.Limits["hugepages-2Mi"] = resource.MustParse("2Mi")
	g := cgPod("g", r)
	be := cgPod("be", cgReq("", "", "", ""))
	for _, p := range []*v1.Pod{g, be} {
		if err := m.EnsurePod(ctx, p); err != nil {
			t.Fatalf("EnsurePod %s: %v", p.UID, err)
		}
	}
	gPath, bePath := kubepods+"/podg", kubepods+"/besteffort/podbe"
	if hugetlb {
		expect(gPath, "hugetlb.2MB.max", "2097152")
		expect(bePath, "hugetlb.2MB.max", "0")
	}
	if slices.Contains(offered, "cpu") {
		expect(gPath, "cpu.weight", "20")
		expect(gPath, "cpu.max", "50000 100000")
	}
	if err := m.UpdateQOS(ctx, []*v1.Pod{g, be}); err != nil {
		t.Fatalf("UpdateQOS: %v", err)
	}
	if hugetlb {
		expect(kubepods, "hugetlb.2MB.max", unbounded)
	}

	// A process in a pod cgroup: refused; gone: removed.
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	if err := os.WriteFile(filepath.Join(mount, bePath, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	var notEmpty *cpumanager.CgroupNotEmptyError
	if err := m.DestroyPod(ctx, be.UID); !errors.As(err, &notEmpty) || !slices.Equal(notEmpty.PIDs, []int{cmd.Process.Pid}) || notEmpty.Cgroup != bePath {
		t.Fatalf("DestroyPod with a process = %v, want a CgroupNotEmptyError for %s with pid %d", err, bePath, cmd.Process.Pid)
	}
	report, err := m.CleanupOrphans(ctx, func(types.UID) bool { return false })
	if err != nil || len(report.Removed) != 1 || report.Removed[0].UID != "g" || len(report.NotEmpty) != 1 || report.NotEmpty[0].UID != "be" {
		t.Errorf("CleanupOrphans = %+v, %v; want g removed and be not empty", report, err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if err := m.DestroyPod(ctx, be.UID); err != nil {
		t.Fatalf("DestroyPod after the process exited: %v", err)
	}
	if list, err := m.ListPodCgroups(ctx); err != nil || len(list) != 0 {
		t.Errorf("ListPodCgroups = %+v, %v; want none", list, err)
	}
}
