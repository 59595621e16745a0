package eviction_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/eviction"
	"github.com/nodekit/nodekit/runtimetest"
)

const (
	ki = uint64(1) << 10
	gi = uint64(1) << 30
)

func testPod(name, uid string, memRequest, memLimit string) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID(uid)}}
	c := v1.Container{Name: "app"}
	if memRequest != "" {
		c.Resources.Requests = v1.ResourceList{v1.ResourceMemory: resource.MustParse(memRequest)}
	}
	if memLimit != "" {
		c.Resources.Limits = v1.ResourceList{v1.ResourceMemory: resource.MustParse(memLimit)}
	}
	p.Spec.Containers = []v1.Container{c}
	return p
}

// blocks is what du counts for a file: its allocated blocks.
func blocks(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return uint64(st.Blocks) * 512
}

func newRuntime(t *testing.T, clk *testingclock.FakeClock) *runtimetest.Runtime {
	t.Helper()
	rt, err := runtimetest.New(runtimetest.Config{Clock: clk, Images: []string{"busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func newProvider(t *testing.T, cfg eviction.StatsConfig) *eviction.StatsProvider {
	t.Helper()
	p, err := eviction.NewStatsProvider(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A node on cgroup v1 with the kubelet's hierarchy: the node's memory from
// the root cgroup and /proc/meminfo, allocatable memory from kubepods,
// PIDs from /proc, and each pod from its cgroup, the runtime, its logs,
// its etc-hosts file and its volumes.
func TestObserveCgroupV1(t *testing.T) {
	ctx := context.Background()
	node := newFakeNode(t.TempDir())
	node.proc(16*gi, "0.10 0.20 0.30 3/412 5123", 4194304, 63704)
	node.memoryV1("/", 10*gi, 3*gi, unlimitedV1)
	node.memoryV1("/kubepods", 5*gi, gi, 12*gi)

	guaranteed := testPod("db", "uid-db", "1Gi", "1Gi")
	guaranteed.Spec.Volumes = []v1.Volume{
		{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
		{Name: "token", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "s"}}},
		{Name: "data", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/srv"}}},
	}
	node.memoryV1("/kubepods/poduid-db", 900<<20, 100<<20, gi)
	node.pidsV1("/kubepods/poduid-db", 17)
	// A pod whose QoS class says besteffort, found where the kubelet put
	// it before its class was known.
	moved := testPod("moved", "uid-moved", "", "")
	node.memoryV1("/kubepods/burstable/poduid-moved", 50<<20, 0, unlimitedV1)
	node.pidsV1("/kubepods/burstable/poduid-moved", 2)
	// Pods without a pod cgroup: one with running containers, one with
	// none.
	nocgroup := testPod("nocgroup", "uid-nocgroup", "", "")
	nocgroup.Spec.Containers = append(nocgroup.Spec.Containers, v1.Container{Name: "helper"})
	idle := testPod("idle", "uid-idle", "", "")

	clk := testingclock.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	rt := newRuntime(t, clk)
	runContainer(ctx, rt, guaranteed, "app", runtimetest.Usage{MemoryWorkingSetBytes: 700 << 20, WritableLayerBytes: 3 << 20, WritableLayerInodes: 30})
	runContainer(ctx, rt, nocgroup, "helper", runtimetest.Usage{MemoryWorkingSetBytes: 10 << 20, WritableLayerBytes: 1 << 20, WritableLayerInodes: 2})
	runContainer(ctx, rt, nocgroup, "app", runtimetest.Usage{MemoryWorkingSetBytes: 20 << 20, WritableLayerBytes: 2 << 20, WritableLayerInodes: 4})
	stopped := runContainer(ctx, rt, idle, "app", runtimetest.Usage{MemoryWorkingSetBytes: 99 << 20, WritableLayerBytes: 99 << 20})
	if err := rt.StopContainer(ctx, stopped, 0); err != nil {
		t.Fatal(err)
	}

	// Logs: two files of the container, a directory it holds (not
	// entered), a file of the pod; and the pod's etc-hosts file.
	podLogs := filepath.Join(node.Logs, "ns_db_uid-db")
	write(filepath.Join(podLogs, "app", "0.log"), strings.Repeat("x", 10000))
	write(filepath.Join(podLogs, "app", "0.log.20300101-000000"), strings.Repeat("y", 5000))
	write(filepath.Join(podLogs, "app", "nested", "ignored.log"), strings.Repeat("z", 50000))
	write(filepath.Join(podLogs, "pod.log"), "p")
	etcHosts := filepath.Join(node.RootDir, "pods", "uid-db", "etc-hosts")
	write(etcHosts, "127.0.0.1 localhost\n")
	logsBytes := blocks(t, filepath.Join(podLogs, "app", "0.log")) + blocks(t, filepath.Join(podLogs, "app", "0.log.20300101-000000"))

	p := newProvider(t, eviction.StatsConfig{
		ActivePods: func() []*v1.Pod { return []*v1.Pod{guaranteed, moved, nil, nocgroup, idle} },
		Runtime:    rt,
		PodVolumes: func(uid types.UID) []eviction.VolumeStats {
			if uid != "uid-db" {
				return nil
			}
			return []eviction.VolumeStats{
				{Name: "token", UsedBytes: 4 * ki, InodesUsed: 3},
				{Name: "data", UsedBytes: 5 * gi, InodesUsed: 100},
				{Name: "scratch", UsedBytes: 64 << 20, InodesUsed: 10},
			}
		},
		RootDir:       node.RootDir,
		PodLogsDir:    node.Logs,
		CgroupMount:   node.Mount,
		CgroupVersion: 1,
		ProcDir:       node.Proc,
		Clock:         clk,
	})
	obs, err := p.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := clk.Now()

	if want := (eviction.MemoryStats{Time: now, WorkingSetBytes: 7 * gi, AvailableBytes: 9 * gi}); obs.Memory != want {
		t.Errorf("Memory = %+v, want %+v", obs.Memory, want)
	}
	if want := (eviction.MemoryStats{Time: now, WorkingSetBytes: 4 * gi, AvailableBytes: 8 * gi}); obs.AllocatableMemory != want {
		t.Errorf("AllocatableMemory = %+v, want %+v", obs.AllocatableMemory, want)
	}
	if want := (eviction.PIDStats{Time: now, MaxPID: 63704, NumProcesses: 412}); obs.PIDs != want {
		t.Errorf("PIDs = %+v, want %+v", obs.PIDs, want)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(node.RootDir, &sfs); err != nil {
		t.Fatal(err)
	}
	if obs.NodeFs.Time != now || obs.NodeFs.CapacityBytes != sfs.Blocks*uint64(sfs.Frsize) || obs.NodeFs.Inodes != sfs.Files {
		t.Errorf("NodeFs = %+v, statfs says %d blocks of %d, %d inodes", obs.NodeFs, sfs.Blocks, sfs.Frsize, sfs.Files)
	}
	if !obs.ImageFs.Time.IsZero() || !obs.ContainerFs.Time.IsZero() || obs.DedicatedImageFs || obs.DedicatedContainerFs {
		t.Errorf("image filesystems measured without ImageFs: %+v %+v", obs.ImageFs, obs.ContainerFs)
	}

	if len(obs.Pods) != 4 {
		t.Fatalf("got %d pods, want the 4 active ones", len(obs.Pods))
	}
	db := obs.Pods[0]
	if db.Pod != guaranteed || db.Time != now || db.MemoryWorkingSetBytes != 800<<20 || db.ProcessCount != 17 {
		t.Errorf("db: %s at %v, working set %d, %d tasks; want from its cgroup 800Mi, 17", db.Pod.Name, db.Time, db.MemoryWorkingSetBytes, db.ProcessCount)
	}
	wantDB := eviction.ContainerStats{Name: "app", MemoryWorkingSetBytes: 700 << 20, RootfsBytes: 3 << 20, RootfsInodes: 30, LogsBytes: logsBytes, LogsInodes: 2}
	if len(db.Containers) != 1 || db.Containers[0] != wantDB {
		t.Errorf("db containers = %+v, want [%+v]", db.Containers, wantDB)
	}
	if got := volumeNames(db.Volumes); got != "scratch,token,data" {
		t.Errorf("db volumes in order %s, want the spec's scratch,token,data", got)
	}
	// The writable layer and logs, the pod's log file, etc-hosts and the
	// emptyDir on disk; not the secret (tmpfs) nor the hostPath.
	wantEphemeral := 3<<20 + logsBytes + blocks(t, filepath.Join(podLogs, "pod.log")) + blocks(t, etcHosts) + 64<<20
	if db.EphemeralStorageBytes != wantEphemeral {
		t.Errorf("db ephemeral storage = %d, want %d", db.EphemeralStorageBytes, wantEphemeral)
	}

	if m := obs.Pods[1]; m.Pod != moved || m.Time != now || m.MemoryWorkingSetBytes != 50<<20 || m.ProcessCount != 2 {
		t.Errorf("moved: %+v; want its burstable cgroup's 50Mi and 2 tasks", m)
	}

	nc := obs.Pods[2]
	// No pod cgroup: the containers' working sets, and the sandbox's
	// processes (runtimetest counts the pause process and each running
	// container).
	if nc.Pod != nocgroup || nc.Time != now || nc.MemoryWorkingSetBytes != 30<<20 || nc.ProcessCount != 3 {
		t.Errorf("nocgroup: at %v working set %d, %d processes; want 30Mi from its containers and 3 from its sandbox", nc.Time, nc.MemoryWorkingSetBytes, nc.ProcessCount)
	}
	if len(nc.Containers) != 2 || nc.Containers[0].Name != "app" || nc.Containers[1].Name != "helper" {
		t.Errorf("nocgroup containers = %+v, want app then helper, as in the spec", nc.Containers)
	}
	if nc.EphemeralStorageBytes != 3<<20 {
		t.Errorf("nocgroup ephemeral storage = %d, want its writable layers 3Mi", nc.EphemeralStorageBytes)
	}

	if i := obs.Pods[3]; i.Pod != idle || !i.Time.IsZero() || len(i.Containers) != 0 {
		t.Errorf("idle pod, whose only container exited: %+v; want no stats", i)
	}
}

func volumeNames(vs []eviction.VolumeStats) string {
	var names []string
	for _, v := range vs {
		names = append(names, v.Name)
	}
	return strings.Join(names, ",")
}

// On cgroup v2 with the systemd driver: the root cgroup has no
// memory.current, its usage is anon plus file of its memory.stat; pod
// cgroups are slices; a cgroup without the pids controller counts its
// threads.
func TestObserveCgroupV2(t *testing.T) {
	node := newFakeNode(t.TempDir())
	node.proc(8*gi, "0.00 0.00 0.00 1/99 1", 32768, 100000)
	node.memoryV2("/", -1, 3*gi, 2*gi, gi, "")
	node.memoryV2("/kubepods.slice", int64(2*gi), gi, gi, gi/2, "6442450944")
	withPids := testPod("a", "aa-bb", "1Gi", "1Gi")
	node.memoryV2("/kubepods.slice/kubepods-podaa_bb.slice", 300<<20, 200<<20, 100<<20, 50<<20, "1073741824")
	node.pidsV2("/kubepods.slice/kubepods-podaa_bb.slice", 7)
	threads := testPod("b", "cc-dd", "1Mi", "")
	dir := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podcc_dd.slice"
	node.memoryV2(dir, 10<<20, 10<<20, 0, 0, "max")
	write(filepath.Join(node.Mount, dir, "cgroup.threads"), "101\n102\n")
	write(filepath.Join(node.Mount, dir, "ctr", "cgroup.threads"), "103\n")

	clk := testingclock.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	p := newProvider(t, eviction.StatsConfig{
		ActivePods:    func() []*v1.Pod { return []*v1.Pod{withPids, threads} },
		RootDir:       node.RootDir,
		PodLogsDir:    node.Logs,
		CgroupMount:   node.Mount,
		CgroupVersion: 2,
		CgroupDriver:  eviction.CgroupDriverSystemd,
		ProcDir:       node.Proc,
		Clock:         clk,
	})
	obs, err := p.Observe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	now := clk.Now()
	if want := (eviction.MemoryStats{Time: now, WorkingSetBytes: 4 * gi, AvailableBytes: 4 * gi}); obs.Memory != want {
		t.Errorf("Memory = %+v, want %+v", obs.Memory, want)
	}
	if want := (eviction.MemoryStats{Time: now, WorkingSetBytes: 3 * gi / 2, AvailableBytes: 9 * gi / 2}); obs.AllocatableMemory != want {
		t.Errorf("AllocatableMemory = %+v, want %+v", obs.AllocatableMemory, want)
	}
	if want := (eviction.PIDStats{Time: now, MaxPID: 32768, NumProcesses: 99}); obs.PIDs != want {
		t.Errorf("PIDs = %+v, want %+v", obs.PIDs, want)
	}
	if a := obs.Pods[0]; a.Time != now || a.MemoryWorkingSetBytes != 250<<20 || a.ProcessCount != 7 {
		t.Errorf("pod a: %+v; want 250Mi and pids.current 7", a)
	}
	if b := obs.Pods[1]; b.Time != now || b.MemoryWorkingSetBytes != 10<<20 || b.ProcessCount != 3 {
		t.Errorf("pod b: %+v; want 10Mi and 3 threads", b)
	}
}

// A unified hierarchy whose root has no memory.stat: the node's memory
// comes from /proc/meminfo. A kubepods cgroup without a limit gives no
// allocatable memory, and is no error.
func TestObserveCgroupV2RootFromMeminfo(t *testing.T) {
	node := newFakeNode(t.TempDir())
	node.proc(8*gi, "0.00 0.00 0.00 1/99 1", 32768, 100000)
	node.memoryV2("/kubepods", int64(gi), gi, 0, 0, "max")
	p := newProvider(t, eviction.StatsConfig{
		RootDir: node.RootDir, CgroupMount: node.Mount, CgroupVersion: 2, ProcDir: node.Proc,
	})
	obs, err := p.Observe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// fakeNode.proc: AnonPages 16384 kB + Buffers 4096 kB + Cached 8192 kB,
	// Inactive(file) 2048 kB.
	if ws := (16384 + 4096 + 8192 - 2048) * ki; obs.Memory.WorkingSetBytes != ws || obs.Memory.AvailableBytes != 8*gi-ws {
		t.Errorf("Memory = %+v, want working set %d of 8Gi", obs.Memory, ws)
	}
	if !obs.AllocatableMemory.Time.IsZero() {
		t.Errorf("AllocatableMemory of an unlimited kubepods = %+v, want not measured", obs.AllocatableMemory)
	}
}

// What the node's layout leaves out is not an error; what cannot be read
// is, and the rest is measured all the same.
func TestObservePartial(t *testing.T) {
	t.Run("no kubepods, unlimited kubepods", func(t *testing.T) {
		node := newFakeNode(t.TempDir())
		node.proc(8*gi, "0.00 0.00 0.00 1/99 1", 32768, 100000)
		node.memoryV1("/", gi, 0, unlimitedV1)
		cfg := eviction.StatsConfig{RootDir: node.RootDir, CgroupMount: node.Mount, CgroupVersion: 1, ProcDir: node.Proc}
		obs, err := newProvider(t, cfg).Observe(context.Background())
		if err != nil || !obs.AllocatableMemory.Time.IsZero() || obs.Memory.Time.IsZero() {
			t.Errorf("without kubepods: %+v, %v; want memory only", obs, err)
		}
		node.memoryV1("/kubepods", gi, 0, unlimitedV1)
		obs, err = newProvider(t, cfg).Observe(context.Background())
		if err != nil || !obs.AllocatableMemory.Time.IsZero() {
			t.Errorf("unlimited kubepods: %+v, %v; want not measured", obs.AllocatableMemory, err)
		}
	})
	t.Run("nothing to read", func(t *testing.T) {
		node := newFakeNode(t.TempDir())
		obs, err := newProvider(t, eviction.StatsConfig{
			RootDir: filepath.Join(node.RootDir, "missing"), CgroupMount: node.Mount, CgroupVersion: 1, ProcDir: node.Proc,
		}).Observe(context.Background())
		for _, want := range []string{"node memory", "nodefs", "pids"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v does not tell that %s could not be measured", err, want)
			}
		}
		if !obs.Memory.Time.IsZero() || !obs.NodeFs.Time.IsZero() || !obs.PIDs.Time.IsZero() {
			t.Errorf("sections measured from nothing: %+v", obs)
		}
	})
	t.Run("no root memory cgroup", func(t *testing.T) {
		node := newFakeNode(t.TempDir())
		node.proc(8*gi, "garbage", 32768, 100000)
		obs, err := newProvider(t, eviction.StatsConfig{
			RootDir: node.RootDir, CgroupMount: node.Mount, CgroupVersion: 1, ProcDir: node.Proc,
		}).Observe(context.Background())
		if err == nil || !strings.Contains(err.Error(), "no memory cgroup hierarchy") {
			t.Errorf("error = %v, want the missing hierarchy", err)
		}
		if obs.NodeFs.Time.IsZero() || obs.PIDs.Time.IsZero() || obs.PIDs.NumProcesses == 0 {
			t.Errorf("nodefs and PIDs (tasks from sysinfo, loadavg being garbage) not measured: %+v %+v", obs.NodeFs, obs.PIDs)
		}
	})
	t.Run("context ended", func(t *testing.T) {
		node := newFakeNode(t.TempDir())
		node.proc(8*gi, "0.00 0.00 0.00 1/99 1", 32768, 100000)
		node.memoryV1("/", gi, 0, unlimitedV1)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		pod := testPod("a", "uid-a", "", "")
		obs, err := newProvider(t, eviction.StatsConfig{
			ActivePods: func() []*v1.Pod { return []*v1.Pod{pod} },
			RootDir:    node.RootDir, CgroupMount: node.Mount, CgroupVersion: 1, ProcDir: node.Proc,
		}).Observe(ctx)
		if !errors.Is(err, context.Canceled) || strings.Count(err.Error(), "context canceled") != 1 {
			t.Errorf("error = %v, want context.Canceled once", err)
		}
		if len(obs.Pods) != 0 {
			t.Errorf("pods measured after the context ended: %+v", obs.Pods)
		}
	})
	t.Run("runtime fails", func(t *testing.T) {
		node := newFakeNode(t.TempDir())
		node.proc(8*gi, "0.00 0.00 0.00 1/99 1", 32768, 100000)
		node.memoryV1("/", gi, 0, unlimitedV1)
		pod := testPod("a", "uid-a", "", "")
		node.memoryV1("/kubepods/besteffort/poduid-a", 10<<20, 0, unlimitedV1)
		clk := testingclock.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
		rt := newRuntime(t, clk)
		runContainer(context.Background(), rt, pod, "app", runtimetest.Usage{MemoryWorkingSetBytes: 1})
		if err := rt.InjectFault("ListContainerStats", runtimetest.Fault{Err: core.ErrUnavailable}); err != nil {
			t.Fatal(err)
		}
		obs, err := newProvider(t, eviction.StatsConfig{
			ActivePods: func() []*v1.Pod { return []*v1.Pod{pod} }, Runtime: rt,
			RootDir: node.RootDir, PodLogsDir: node.Logs, CgroupMount: node.Mount, CgroupVersion: 1, ProcDir: node.Proc, Clock: clk,
		}).Observe(context.Background())
		if !errors.Is(err, core.ErrUnavailable) {
			t.Errorf("error = %v, want the runtime's", err)
		}
		if len(obs.Pods) != 1 || obs.Pods[0].Time.IsZero() || obs.Pods[0].MemoryWorkingSetBytes != 10<<20 || len(obs.Pods[0].Containers) != 0 {
			t.Errorf("pods = %+v, want the pod from its cgroup alone", obs.Pods)
		}
	})
}

// imageFsFunc adapts a function to core.ImageFsInfoer.
type imageFsFunc func(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error)

func (f imageFsFunc) ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	return f(ctx)
}

func fsUsage(mountpoint string) *runtimeapi.FilesystemUsage {
	return &runtimeapi.FilesystemUsage{FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: mountpoint}, UsedBytes: &runtimeapi.UInt64Value{Value: 1}}
}

func device(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return uint64(st.Dev)
}

// The image and container filesystems are where the runtime says, and
// dedicated when they are on other devices, as the kubelet tells.
func TestObserveImageFs(t *testing.T) {
	node := newFakeNode(t.TempDir())
	node.proc(8*gi, "0.00 0.00 0.00 1/99 1", 32768, 100000)
	node.memoryV1("/", gi, 0, unlimitedV1)
	sameFs := t.TempDir()
	// Another filesystem than the temporary directory's.
	other := ""
	for _, cand := range []string{"/dev/shm", "/dev", "/proc"} {
		if _, err := os.Stat(cand); err == nil && device(t, cand) != device(t, sameFs) {
			other = cand
			break
		}
	}
	if other == "" {
		t.Fatal("no second filesystem to stand for a dedicated one")
	}

	observe := func(resp *runtimeapi.ImageFsInfoResponse, err error) (eviction.Observations, error) {
		return newProvider(t, eviction.StatsConfig{
			ImageFs: imageFsFunc(func(context.Context) (*runtimeapi.ImageFsInfoResponse, error) { return resp, err }),
			RootDir: node.RootDir, CgroupMount: node.Mount, CgroupVersion: 1, ProcDir: node.Proc,
		}).Observe(context.Background())
	}
	statfs := func(path string) (capacity, inodes uint64) {
		var s unix.Statfs_t
		if err := unix.Statfs(path, &s); err != nil {
			t.Fatal(err)
		}
		return s.Blocks * uint64(s.Frsize), s.Files
	}

	for _, tc := range []struct {
		name                          string
		images, containers            []*runtimeapi.FilesystemUsage
		wantDedicated, wantSplit      bool
		wantImageFrom, wantContainers string
	}{
		{name: "images beside the root directory", images: []*runtimeapi.FilesystemUsage{fsUsage(sameFs)}, wantImageFrom: sameFs},
		{name: "images on their own filesystem", images: []*runtimeapi.FilesystemUsage{fsUsage(other)}, wantDedicated: true, wantImageFrom: other},
		{
			name:   "writable layers split from images",
			images: []*runtimeapi.FilesystemUsage{fsUsage(other)}, containers: []*runtimeapi.FilesystemUsage{fsUsage(sameFs)},
			wantDedicated: true, wantSplit: true, wantImageFrom: other, wantContainers: sameFs,
		},
		{
			name:   "writable layers reported on the image filesystem",
			images: []*runtimeapi.FilesystemUsage{fsUsage(other)}, containers: []*runtimeapi.FilesystemUsage{fsUsage(other)},
			wantDedicated: true, wantImageFrom: other, wantContainers: other,
		},
	} {
		obs, err := observe(&runtimeapi.ImageFsInfoResponse{ImageFilesystems: tc.images, ContainerFilesystems: tc.containers}, nil)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if obs.DedicatedImageFs != tc.wantDedicated || obs.DedicatedContainerFs != tc.wantSplit {
			t.Errorf("%s: DedicatedImageFs %t, DedicatedContainerFs %t; want %t, %t", tc.name, obs.DedicatedImageFs, obs.DedicatedContainerFs, tc.wantDedicated, tc.wantSplit)
		}
		if c, i := statfs(tc.wantImageFrom); obs.ImageFs.Time.IsZero() || obs.ImageFs.CapacityBytes != c || obs.ImageFs.Inodes != i {
			t.Errorf("%s: ImageFs = %+v, want the statfs of %s", tc.name, obs.ImageFs, tc.wantImageFrom)
		}
		if tc.wantContainers == "" {
			if !obs.ContainerFs.Time.IsZero() {
				t.Errorf("%s: ContainerFs = %+v, want not measured", tc.name, obs.ContainerFs)
			}
		} else if c, i := statfs(tc.wantContainers); obs.ContainerFs.Time.IsZero() || obs.ContainerFs.CapacityBytes != c || obs.ContainerFs.Inodes != i {
			t.Errorf("%s: ContainerFs = %+v, want the statfs of %s", tc.name, obs.ContainerFs, tc.wantContainers)
		}
	}

	for _, tc := range []struct {
		name    string
		resp    *runtimeapi.ImageFsInfoResponse
		err     error
		wantErr error
	}{
		{name: "runtime without the call", err: core.ErrUnimplemented},
		{name: "no image filesystem reported", resp: &runtimeapi.ImageFsInfoResponse{}},
		{name: "runtime unavailable", err: core.ErrUnavailable, wantErr: core.ErrUnavailable},
		{name: "mount point missing", resp: &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{fsUsage(filepath.Join(sameFs, "gone"))}}, wantErr: unix.ENOENT},
	} {
		obs, err := observe(tc.resp, tc.err)
		if (tc.wantErr == nil) != (err == nil) || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.wantErr)
		}
		if !obs.ImageFs.Time.IsZero() || obs.DedicatedImageFs || obs.NodeFs.Time.IsZero() {
			t.Errorf("%s: ImageFs %+v, dedicated %t, NodeFs %+v; want the nodefs alone", tc.name, obs.ImageFs, obs.DedicatedImageFs, obs.NodeFs)
		}
	}
}

func TestNewStatsProviderInvalid(t *testing.T) {
	for _, tc := range []struct {
		cfg  eviction.StatsConfig
		want string
	}{
		{eviction.StatsConfig{RootDir: "var/lib/kubelet"}, "RootDir"},
		{eviction.StatsConfig{PodLogsDir: "logs"}, "PodLogsDir"},
		{eviction.StatsConfig{CgroupMount: "cgroup"}, "CgroupMount"},
		{eviction.StatsConfig{ProcDir: "proc"}, "ProcDir"},
		{eviction.StatsConfig{CgroupVersion: 3}, "CgroupVersion"},
		{eviction.StatsConfig{CgroupDriver: "cgroupfs2"}, "CgroupDriver"},
		{eviction.StatsConfig{CgroupRoot: "/a/../b"}, "CgroupRoot"},
	} {
		_, err := eviction.NewStatsProvider(tc.cfg)
		if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewStatsProvider(%+v) = %v, want an invalid %s", tc.cfg, err, tc.want)
		}
	}
}
