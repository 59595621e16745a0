package eviction

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
)

// containerSample is a running container of a pod with its CRI stats.
type containerSample struct {
	name                      string
	workingSet                uint64
	rootfsBytes, rootfsInodes uint64
}

// pods measures every active pod, in the order ActivePods gives them.
func (p *StatsProvider) pods(ctx context.Context, version int) ([]PodStats, []error) {
	if p.cfg.ActivePods == nil {
		return nil, nil
	}
	active := p.cfg.ActivePods()
	if len(active) == 0 {
		return nil, nil
	}
	var errs []error
	running, err := p.runningContainers(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	// The sandboxes' process counts are asked for once, and only when a
	// pod without a pod cgroup needs them.
	var sandboxProcs map[types.UID]uint64
	sandboxAsked := false
	processes := func(uid types.UID) uint64 {
		if !sandboxAsked {
			sandboxAsked = true
			var err error
			if sandboxProcs, err = p.sandboxProcesses(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		return sandboxProcs[uid]
	}
	out := make([]PodStats, 0, len(active))
	for _, pod := range active {
		if pod == nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		ps, podErrs := p.podStats(ctx, version, pod, running[pod.UID], processes)
		out = append(out, ps)
		errs = append(errs, podErrs...)
	}
	return out, errs
}

// podStats measures one pod:
//
//   - its memory working set and tasks from its pod cgroup; without one
//     (the pod runs below the runtime's own cgroup parent), the sum of
//     its running containers' working sets and its sandbox's process
//     count;
//   - its running containers' working set and writable layer from the
//     runtime, and their log files;
//   - its volumes from PodVolumes;
//   - its local ephemeral storage as the kubelet sums it: the containers'
//     writable layers and logs, the pod's own log files, its etc-hosts
//     file and its local ephemeral volumes (emptyDir on disk, configMap,
//     gitRepo; not secret, downwardAPI or projected volumes, which are
//     tmpfs).
//
// Its Time is set when its memory was measured: from its cgroup or from
// a running container.
func (p *StatsProvider) podStats(ctx context.Context, version int, pod *v1.Pod, containers []containerSample, processes func(types.UID) uint64) (PodStats, []error) {
	ps := PodStats{Pod: pod}
	var errs []error
	measured := false
	if version != 0 && pod.UID != "" {
		ws, tasks, found, err := p.podCgroup(version, pod)
		if err != nil {
			errs = append(errs, err)
		}
		if found {
			ps.MemoryWorkingSetBytes, ps.ProcessCount, measured = ws, tasks, true
		}
	}
	if !measured && len(containers) > 0 {
		for _, c := range containers {
			ps.MemoryWorkingSetBytes += c.workingSet
		}
		ps.ProcessCount = processes(pod.UID)
		measured = true
	}

	logsDir := filepath.Join(p.cfg.PodLogsDir, pod.Namespace+"_"+pod.Name+"_"+string(pod.UID))
	var ephemeral uint64
	for _, c := range orderContainers(pod, containers) {
		cs := ContainerStats{
			Name:                  c.name,
			MemoryWorkingSetBytes: c.workingSet,
			RootfsBytes:           c.rootfsBytes,
			RootfsInodes:          c.rootfsInodes,
		}
		b, n, err := dirFilesUsage(ctx, filepath.Join(logsDir, c.name))
		if err != nil {
			errs = append(errs, fmt.Errorf("eviction: stats: pod %s: logs of container %q: %w", podName(pod), c.name, err))
		}
		cs.LogsBytes, cs.LogsInodes = b, n
		ps.Containers = append(ps.Containers, cs)
		ephemeral += cs.RootfsBytes + cs.LogsBytes
	}
	if b, _, err := dirFilesUsage(ctx, logsDir); err != nil {
		errs = append(errs, fmt.Errorf("eviction: stats: pod %s: logs: %w", podName(pod), err))
	} else {
		ephemeral += b
	}
	if pod.UID != "" {
		etcHosts := filepath.Join(p.cfg.RootDir, "pods", string(pod.UID), "etc-hosts")
		b, _, err := fileUsage(etcHosts)
		if err != nil {
			errs = append(errs, fmt.Errorf("eviction: stats: pod %s: etc-hosts: %w", podName(pod), err))
		}
		ephemeral += b
	}
	if p.cfg.PodVolumes != nil {
		ps.Volumes = orderVolumes(pod, p.cfg.PodVolumes(pod.UID))
		for _, v := range ps.Volumes {
			if isLocalEphemeralVolume(pod, v.Name) {
				ephemeral += v.UsedBytes
			}
		}
	}
	ps.EphemeralStorageBytes = ephemeral
	if measured {
		ps.Time = p.cfg.Clock.Now()
	} else {
		p.log.Debug("no stats for pod: neither a pod cgroup nor a running container", zap.String("pod", podName(pod)), zap.String("podUID", string(pod.UID)))
	}
	return ps, errs
}

// podCgroup reads the working set and tasks of the pod's cgroup, looked
// for under the kubelet's names (podCgroupCandidates).
func (p *StatsProvider) podCgroup(version int, pod *v1.Pod) (ws, tasks uint64, found bool, err error) {
	for _, cg := range p.podCgroupCandidates(pod, crispec.PodQOS(pod)) {
		m, ok, err := readCgroupMemory(p.cfg.CgroupMount, version, cg)
		if err != nil {
			return 0, 0, false, fmt.Errorf("eviction: stats: pod %s: cgroup %s: %w", podName(pod), cg, err)
		}
		if !ok {
			continue
		}
		n, _, err := readCgroupTasks(p.cfg.CgroupMount, version, cg)
		if err != nil {
			return 0, 0, false, fmt.Errorf("eviction: stats: pod %s: tasks of cgroup %s: %w", podName(pod), cg, err)
		}
		return m.workingSet(), n, true, nil
	}
	return 0, 0, false, nil
}

// runningContainers lists the running containers of pods with their CRI
// stats, by pod UID. As the kubelet, containers that are not running, or
// that the runtime has no stats for, are left out.
func (p *StatsProvider) runningContainers(ctx context.Context) (map[types.UID][]containerSample, error) {
	if p.cfg.Runtime == nil {
		return nil, nil
	}
	list, err := p.cfg.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
	})
	if err != nil {
		return nil, fmt.Errorf("eviction: stats: list running containers: %w", err)
	}
	stats, err := p.cfg.Runtime.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{})
	if err != nil {
		return nil, fmt.Errorf("eviction: stats: list container stats: %w", err)
	}
	byID := make(map[string]*runtimeapi.ContainerStats, len(stats))
	for _, s := range stats {
		if id := s.GetAttributes().GetId(); id != "" {
			byID[id] = s
		}
	}
	out := make(map[types.UID][]containerSample)
	for _, c := range list {
		if c.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		uid := types.UID(c.GetLabels()[core.LabelPodUID])
		if uid == "" {
			continue // not a pod's container
		}
		s, ok := byID[c.GetId()]
		if !ok {
			continue
		}
		name := c.GetLabels()[core.LabelContainerName]
		if name == "" {
			name = c.GetMetadata().GetName()
		}
		out[uid] = append(out[uid], containerSample{
			name:         name,
			workingSet:   s.GetMemory().GetWorkingSetBytes().GetValue(),
			rootfsBytes:  s.GetWritableLayer().GetUsedBytes().GetValue(),
			rootfsInodes: s.GetWritableLayer().GetInodesUsed().GetValue(),
		})
	}
	return out, nil
}

// sandboxProcesses are the process counts of the pods' sandboxes, by pod
// UID, when the runtime reports them.
func (p *StatsProvider) sandboxProcesses(ctx context.Context) (map[types.UID]uint64, error) {
	sl, ok := p.cfg.Runtime.(sandboxStatsLister)
	if !ok {
		return nil, nil
	}
	list, err := sl.ListPodSandboxStats(ctx, &runtimeapi.PodSandboxStatsFilter{})
	if errors.Is(err, core.ErrUnimplemented) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("eviction: stats: list pod sandbox stats: %w", err)
	}
	out := make(map[types.UID]uint64, len(list))
	for _, s := range list {
		uid := types.UID(s.GetAttributes().GetMetadata().GetUid())
		out[uid] += s.GetLinux().GetProcess().GetProcessCount().GetValue()
	}
	return out, nil
}

// orderContainers puts a pod's containers in the order of its spec: its
// containers, then its init containers (sidecars run beside them), then
// its ephemeral containers; any other name goes last, by name.
func orderContainers(pod *v1.Pod, cs []containerSample) []containerSample {
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	for _, c := range pod.Spec.InitContainers {
		names = append(names, c.Name)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		names = append(names, c.Name)
	}
	out := slices.Clone(cs)
	slices.SortStableFunc(out, func(a, b containerSample) int {
		return compareBySpec(names, a.name, b.name)
	})
	return out
}

// orderVolumes puts a pod's volumes in the order of its spec; any other
// name goes last, by name.
func orderVolumes(pod *v1.Pod, vs []VolumeStats) []VolumeStats {
	if len(vs) == 0 {
		return nil
	}
	names := make([]string, len(pod.Spec.Volumes))
	for i, v := range pod.Spec.Volumes {
		names[i] = v.Name
	}
	out := slices.Clone(vs)
	slices.SortStableFunc(out, func(a, b VolumeStats) int {
		return compareBySpec(names, a.Name, b.Name)
	})
	return out
}

// compareBySpec orders names by their place in spec, those not in it last
// and by name.
func compareBySpec(spec []string, a, b string) int {
	ia, ib := slices.Index(spec, a), slices.Index(spec, b)
	switch {
	case ia >= 0 && ib >= 0:
		return cmp.Compare(ia, ib)
	case ia >= 0:
		return -1
	case ib >= 0:
		return 1
	default:
		return cmp.Compare(a, b)
	}
}

// isLocalEphemeralVolume reports whether the pod's volume of that name
// counts against its ephemeral storage, as the kubelet's
// IsLocalEphemeralVolume: an emptyDir on disk, a configMap or a gitRepo.
func isLocalEphemeralVolume(pod *v1.Pod, name string) bool {
	for _, v := range pod.Spec.Volumes {
		if v.Name == name {
			return v.GitRepo != nil || v.ConfigMap != nil ||
				(v.EmptyDir != nil && v.EmptyDir.Medium == v1.StorageMediumDefault)
		}
	}
	return false
}

// dirFilesUsage sums what the files directly in dir use, as the kubelet
// measures log directories: each entry that is not a directory counts its
// allocated blocks and one inode; subdirectories are not entered. A
// missing dir uses nothing.
func dirFilesUsage(ctx context.Context, dir string) (bytes, inodes uint64, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		if e.IsDir() {
			continue
		}
		b, ok, err := fileUsage(filepath.Join(dir, e.Name()))
		if err != nil {
			return 0, 0, err
		}
		if ok {
			bytes += b
			inodes++
		}
	}
	return bytes, inodes, nil
}
