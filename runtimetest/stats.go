package runtimetest

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/bits"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Usage is the resource usage a container reports in its stats, set with
// SetUsage. A new container uses nothing.
type Usage struct {
	// CPUNanoCores is the rate of CPU use (1e9 is one core). While the
	// container runs, its cumulative usage_core_nano_seconds grows at this
	// rate on the injected clock.
	CPUNanoCores          uint64
	MemoryWorkingSetBytes uint64
	MemoryUsageBytes      uint64
	MemoryRSSBytes        uint64
	WritableLayerBytes    uint64
	WritableLayerInodes   uint64
}

// fsUsage overrides the image filesystem usage.
type fsUsage struct{ bytes, inodes uint64 }

// SetUsage sets what a container's stats report from now on. An unknown ID
// is core.ErrNotFound.
func (r *Runtime) SetUsage(containerID string, u Usage) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.settleLocked()
	c, err := r.containerLocked(containerID)
	if err != nil {
		return fmt.Errorf("set usage: %w", err)
	}
	c.cpuTotal, c.cpuSince = c.cpuAt(now), now
	c.usage = u
	return nil
}

// SetImageFsUsage fixes what ImageFsInfo reports. Until it is called, the
// image filesystem holds the images and the containers' writable layers.
func (r *Runtime) SetImageFsUsage(usedBytes, inodesUsed uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.imageFs = &fsUsage{bytes: usedBytes, inodes: inodesUsed}
}

// cpuAt is the container's cumulative CPU use at t, in core-nanoseconds.
func (c *container) cpuAt(t time.Time) uint64 {
	if c.state != runtimeapi.ContainerState_CONTAINER_RUNNING || !t.After(c.cpuSince) {
		return c.cpuTotal
	}
	hi, lo := bits.Mul64(c.usage.CPUNanoCores, uint64(t.Sub(c.cpuSince)))
	if hi >= uint64(time.Second) {
		return math.MaxUint64
	}
	used, _ := bits.Div64(hi, lo, uint64(time.Second))
	if used > math.MaxUint64-c.cpuTotal {
		return math.MaxUint64
	}
	return c.cpuTotal + used
}

func u64(v uint64) *runtimeapi.UInt64Value { return &runtimeapi.UInt64Value{Value: v} }

// ListContainerStats implements core.StatsLister. As in containerd, every
// container selected is listed with its writable layer; only running ones
// report CPU and memory.
func (r *Runtime) ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	if err := r.enter(ctx, "ListContainerStats"); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.settleLocked()
	matches, _ := r.filterContainersLocked(filter.GetId(), filter.GetPodSandboxId(), filter.GetLabelSelector())
	out := make([]*runtimeapi.ContainerStats, len(matches))
	for i, c := range matches {
		out[i] = c.stats(now)
	}
	return out, nil
}

func (c *container) stats(now time.Time) *runtimeapi.ContainerStats {
	ts := now.UnixNano()
	cs := &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{
			Id:          c.id,
			Metadata:    &runtimeapi.ContainerMetadata{Name: c.name, Attempt: c.attempt},
			Labels:      maps.Clone(c.labels),
			Annotations: maps.Clone(c.annotations),
		},
		WritableLayer: &runtimeapi.FilesystemUsage{
			Timestamp:  ts,
			FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: imageFsMountpoint},
			UsedBytes:  u64(c.usage.WritableLayerBytes),
			InodesUsed: u64(c.usage.WritableLayerInodes),
		},
	}
	if c.state != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return cs
	}
	cs.Cpu = &runtimeapi.CpuUsage{
		Timestamp:            ts,
		UsageCoreNanoSeconds: u64(c.cpuAt(now)),
		UsageNanoCores:       u64(c.usage.CPUNanoCores),
	}
	cs.Memory = &runtimeapi.MemoryUsage{
		Timestamp:       ts,
		WorkingSetBytes: u64(c.usage.MemoryWorkingSetBytes),
		UsageBytes:      u64(c.usage.MemoryUsageBytes),
		RssBytes:        u64(c.usage.MemoryRSSBytes),
		PageFaults:      u64(0),
		MajorPageFaults: u64(0),
	}
	// As containerd: what is left under the limit, when there is one.
	if limit := uint64(max(c.resources.GetLinux().GetMemoryLimitInBytes(), 0)); limit > 0 {
		cs.Memory.AvailableBytes = u64(limit - min(limit, c.usage.MemoryWorkingSetBytes))
	}
	return cs
}

// ListPodSandboxStats implements core.StatsLister. Ready sandboxes are
// listed with the stats of their containers; the pod's CPU is the sum of
// its containers' (exited ones included, as a pod cgroup counts them) and
// its memory that of its running containers. Network stats are not
// simulated.
func (r *Runtime) ListPodSandboxStats(ctx context.Context, filter *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error) {
	if err := r.enter(ctx, "ListPodSandboxStats"); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.settleLocked()
	candidates := r.sandboxOrder
	if id := filter.GetId(); id != "" {
		s, err := r.sandboxLocked(id)
		if err != nil {
			return []*runtimeapi.PodSandboxStats{}, nil
		}
		candidates = []*sandbox{s}
	}
	out := []*runtimeapi.PodSandboxStats{}
	ts := now.UnixNano()
	for _, s := range candidates {
		if s.removed || s.state != runtimeapi.PodSandboxState_SANDBOX_READY || !matchLabels(filter.GetLabelSelector(), s.labels) {
			continue
		}
		var cpu, rate, ws, usage, rss uint64
		procs := uint64(1) // the pause process
		containers := make([]*runtimeapi.ContainerStats, len(s.containers))
		for i, c := range s.containers {
			containers[i] = c.stats(now)
			cpu += c.cpuAt(now)
			if c.state == runtimeapi.ContainerState_CONTAINER_RUNNING {
				rate += c.usage.CPUNanoCores
				ws += c.usage.MemoryWorkingSetBytes
				usage += c.usage.MemoryUsageBytes
				rss += c.usage.MemoryRSSBytes
				procs++
			}
		}
		out = append(out, &runtimeapi.PodSandboxStats{
			Attributes: &runtimeapi.PodSandboxAttributes{
				Id:          s.id,
				Metadata:    copyPodSandboxMetadata(s.meta),
				Labels:      maps.Clone(s.labels),
				Annotations: maps.Clone(s.annotations),
			},
			Linux: &runtimeapi.LinuxPodSandboxStats{
				Cpu:        &runtimeapi.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: u64(cpu), UsageNanoCores: u64(rate)},
				Memory:     &runtimeapi.MemoryUsage{Timestamp: ts, WorkingSetBytes: u64(ws), UsageBytes: u64(usage), RssBytes: u64(rss), PageFaults: u64(0), MajorPageFaults: u64(0)},
				Process:    &runtimeapi.ProcessUsage{Timestamp: ts, ProcessCount: u64(procs)},
				Containers: containers,
			},
		})
	}
	return out, nil
}

// ImageFsInfo implements core.ImageFsInfoer: one filesystem that holds
// the images and the containers' writable layers, unless SetImageFsUsage
// fixed its usage.
func (r *Runtime) ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	if err := r.enter(ctx, "ImageFsInfo"); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.settleLocked()
	var used fsUsage
	if r.imageFs != nil {
		used = *r.imageFs
	} else {
		for _, img := range r.images.byID {
			used.bytes += img.size
		}
		for _, c := range r.containers {
			used.bytes += c.usage.WritableLayerBytes
			used.inodes += c.usage.WritableLayerInodes
		}
	}
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{{
		Timestamp:  now.UnixNano(),
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: imageFsMountpoint},
		UsedBytes:  u64(used.bytes),
		InodesUsed: u64(used.inodes),
	}}}, nil
}
