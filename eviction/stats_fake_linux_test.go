package eviction_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/runtimetest"
)

// fakeNode is a directory tree standing for a node's /sys/fs/cgroup,
// /proc, kubelet root directory and pod logs directory, in the layout the
// kernel and the kubelet give them.
type fakeNode struct {
	Mount, Proc, RootDir, Logs string
}

// unlimitedV1 is what cgroup v1 reports as the limit of a cgroup without
// one.
const unlimitedV1 = 9223372036854771712

func newFakeNode(dir string) *fakeNode {
	n := &fakeNode{
		Mount:   filepath.Join(dir, "cgroup"),
		Proc:    filepath.Join(dir, "proc"),
		RootDir: filepath.Join(dir, "kubelet"),
		Logs:    filepath.Join(dir, "pods-logs"),
	}
	for _, d := range []string{n.Mount, n.Proc, n.RootDir, n.Logs} {
		must(os.MkdirAll(d, 0o755))
	}
	return n
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// write writes a file below the tree, making its directories. The file
// is replaced at once, as the kernel's files change: a reader never sees
// it half written.
func write(path, content string) {
	must(os.MkdirAll(filepath.Dir(path), 0o755))
	must(os.WriteFile(path+".new", []byte(content), 0o644))
	must(os.Rename(path+".new", path))
}

func u(v uint64) string { return strconv.FormatUint(v, 10) + "\n" }

// proc writes meminfo, loadavg and the kernel's task limits.
func (n *fakeNode) proc(memTotal uint64, loadavg string, pidMax, threadsMax uint64) {
	write(filepath.Join(n.Proc, "meminfo"), fmt.Sprintf(
		"MemTotal:       %d kB\nMemFree:         1000 kB\nMemAvailable:   2000 kB\nBuffers:        4096 kB\nCached:         8192 kB\nSwapCached:        0 kB\nInactive(file): 2048 kB\nAnonPages:     16384 kB\n",
		memTotal/1024))
	write(filepath.Join(n.Proc, "loadavg"), loadavg+"\n")
	write(filepath.Join(n.Proc, "sys", "kernel", "pid_max"), u(pidMax))
	write(filepath.Join(n.Proc, "sys", "kernel", "threads-max"), u(threadsMax))
}

// memoryV1 writes a cgroup of the v1 memory hierarchy with every file
// the kernel has there that the stats read.
func (n *fakeNode) memoryV1(cgroup string, usage, totalInactiveFile, limit uint64) {
	dir := filepath.Join(n.Mount, "memory", cgroup)
	write(filepath.Join(dir, "memory.usage_in_bytes"), u(usage))
	write(filepath.Join(dir, "memory.max_usage_in_bytes"), u(usage))
	write(filepath.Join(dir, "memory.limit_in_bytes"), u(limit))
	write(filepath.Join(dir, "memory.failcnt"), "0\n")
	write(filepath.Join(dir, "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
	write(filepath.Join(dir, "memory.stat"), fmt.Sprintf(
		"cache 4096\nrss 8192\ninactive_file 1024\nactive_file 2048\ntotal_cache %d\ntotal_rss %d\ntotal_inactive_file %d\ntotal_active_file 0\n",
		totalInactiveFile, usage-totalInactiveFile, totalInactiveFile))
	write(filepath.Join(dir, "tasks"), "")
	write(filepath.Join(dir, "cgroup.procs"), "")
}

// pidsV1 writes a cgroup of the v1 pids hierarchy.
func (n *fakeNode) pidsV1(cgroup string, current uint64) {
	dir := filepath.Join(n.Mount, "pids", cgroup)
	write(filepath.Join(dir, "pids.current"), u(current))
	write(filepath.Join(dir, "pids.max"), "max\n")
}

// memoryV2 writes a cgroup of the unified hierarchy. The root cgroup has
// no memory.current nor memory.max: pass current < 0.
func (n *fakeNode) memoryV2(cgroup string, current int64, anon, file, inactiveFile uint64, max string) {
	dir := filepath.Join(n.Mount, cgroup)
	if current >= 0 {
		write(filepath.Join(dir, "memory.current"), strconv.FormatInt(current, 10)+"\n")
		write(filepath.Join(dir, "memory.max"), max+"\n")
	}
	write(filepath.Join(dir, "memory.stat"), fmt.Sprintf(
		"anon %d\nfile %d\nkernel 0\ninactive_anon 0\nactive_anon %d\ninactive_file %d\nactive_file %d\n",
		anon, file, anon, inactiveFile, file-inactiveFile))
	write(filepath.Join(dir, "cgroup.procs"), "")
	write(filepath.Join(dir, "cgroup.threads"), "")
}

// pidsV2 writes pids.current in a cgroup of the unified hierarchy.
func (n *fakeNode) pidsV2(cgroup string, current uint64) {
	write(filepath.Join(n.Mount, cgroup, "pids.current"), u(current))
	write(filepath.Join(n.Mount, cgroup, "pids.max"), "max\n")
}

// runContainer runs a container of the pod in rt, labelled as the
// kubelet labels it, with the given usage, and returns its ID.
func runContainer(ctx context.Context, rt *runtimetest.Runtime, pod *v1.Pod, name string, usage runtimetest.Usage) string {
	sbConfig := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID)},
		Labels:   map[string]string{core.LabelPodName: pod.Name, core.LabelPodNamespace: pod.Namespace, core.LabelPodUID: string(pod.UID)},
	}
	sandboxes, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{core.LabelPodUID: string(pod.UID)}})
	must(err)
	var sandboxID string
	if len(sandboxes) > 0 {
		sandboxID = sandboxes[0].Id
	} else {
		sandboxID, err = rt.RunPodSandbox(ctx, sbConfig, "")
		must(err)
	}
	id, err := rt.CreateContainer(ctx, sandboxID, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Labels: map[string]string{
			core.LabelPodName: pod.Name, core.LabelPodNamespace: pod.Namespace,
			core.LabelPodUID: string(pod.UID), core.LabelContainerName: name,
		},
	}, sbConfig)
	must(err)
	must(rt.StartContainer(ctx, id))
	must(rt.SetUsage(id, usage))
	return id
}
