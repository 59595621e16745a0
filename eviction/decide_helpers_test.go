package eviction

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/core"
)

// t0 is the start of every test's time.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

const (
	ki = 1024
	mi = 1024 * ki
	gi = 1024 * mi
)

// newPod builds a pod with the given priority, containers and volumes.
func newPod(name string, priority int32, containers []v1.Container, volumes []v1.Volume) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name + "-uid")},
		Spec: v1.PodSpec{
			Priority:   &priority,
			Containers: containers,
			Volumes:    volumes,
		},
	}
}

// container builds a container; requests and limits are "memory=100Mi,
// ephemeral-storage=1Gi" lists (see resources).
func container(name, requests, limits string) v1.Container {
	return v1.Container{Name: name, Resources: v1.ResourceRequirements{Requests: resources(requests), Limits: resources(limits)}}
}

// resources parses "cpu=100m,memory=1Gi,ephemeral-storage=2Gi".
func resources(s string) v1.ResourceList {
	if s == "" {
		return nil
	}
	out := v1.ResourceList{}
	for len(s) > 0 {
		var item string
		item, s, _ = cut(s, ',')
		name, val, _ := cut(item, '=')
		out[v1.ResourceName(name)] = resource.MustParse(val)
	}
	return out
}

func cut(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// emptyDir is an emptyDir volume on disk, with a size limit when not "".
func emptyDir(name, sizeLimit string) v1.Volume {
	v := v1.Volume{Name: name, VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}
	if sizeLimit != "" {
		q := resource.MustParse(sizeLimit)
		v.EmptyDir.SizeLimit = &q
	}
	return v
}

// staticPod marks pod as coming from a file.
func staticPod(pod *v1.Pod) *v1.Pod {
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[core.AnnotationConfigSource] = "file"
	return pod
}

// memoryUse is pod stats with a working set, split evenly between the
// pod's containers.
func memoryUse(pod *v1.Pod, workingSet uint64) PodStats {
	ps := PodStats{Pod: pod, Time: t0, MemoryWorkingSetBytes: workingSet}
	for _, c := range pod.Spec.Containers {
		ps.Containers = append(ps.Containers, ContainerStats{Name: c.Name, MemoryWorkingSetBytes: workingSet / uint64(len(pod.Spec.Containers))})
	}
	return ps
}

// diskUse is pod stats where each container uses rootfs and logs bytes and
// each local volume perVolume bytes.
func diskUse(pod *v1.Pod, rootfs, logs, perVolume uint64) PodStats {
	ps := PodStats{Pod: pod, Time: t0}
	for _, c := range pod.Spec.Containers {
		ps.Containers = append(ps.Containers, ContainerStats{Name: c.Name, RootfsBytes: rootfs, LogsBytes: logs})
	}
	for _, name := range localVolumeNames(pod) {
		ps.Volumes = append(ps.Volumes, VolumeStats{Name: name, UsedBytes: perVolume})
	}
	ps.EphemeralStorageBytes = rootfs*uint64(len(pod.Spec.Containers)) + logs*uint64(len(pod.Spec.Containers)) + perVolume*uint64(len(ps.Volumes))
	return ps
}

// inodeUse is like diskUse, in inodes.
func inodeUse(pod *v1.Pod, rootfs, logs, perVolume uint64) PodStats {
	ps := PodStats{Pod: pod, Time: t0}
	for _, c := range pod.Spec.Containers {
		ps.Containers = append(ps.Containers, ContainerStats{Name: c.Name, RootfsInodes: rootfs, LogsInodes: logs})
	}
	for _, name := range localVolumeNames(pod) {
		ps.Volumes = append(ps.Volumes, VolumeStats{Name: name, InodesUsed: perVolume})
	}
	return ps
}

// names lists the pods of a ranking.
func names(ranking []RankedPod) []string {
	out := make([]string, len(ranking))
	for i, rp := range ranking {
		out[i] = rp.Pod.Name
	}
	return out
}

// mustPolicy builds a policy or fails the test.
func mustPolicy(t *testing.T, cfg Config) *Policy {
	t.Helper()
	p, err := NewPolicy(cfg)
	if err != nil {
		t.Fatalf("NewPolicy: %v", err)
	}
	return p
}

// memoryNode is a node with the given memory capacity and available memory
// at time at, and plenty of everything else.
func memoryNode(at time.Time, capacity, available uint64, pods ...PodStats) Observations {
	return Observations{
		Memory:            MemoryStats{Time: at, AvailableBytes: available, WorkingSetBytes: capacity - available},
		AllocatableMemory: MemoryStats{Time: at, AvailableBytes: available, WorkingSetBytes: capacity - available},
		NodeFs:            FsStats{Time: at, CapacityBytes: 100 * gi, AvailableBytes: 90 * gi, Inodes: 1000000, InodesFree: 900000},
		PIDs:              PIDStats{Time: at, MaxPID: 4096, NumProcesses: 100},
		Pods:              pods,
	}
}

func ptr[T any](v T) *T { return &v }

func resourceQuantity(s string) *resource.Quantity {
	q := resource.MustParse(s)
	return &q
}
