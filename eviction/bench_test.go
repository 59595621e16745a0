package eviction

import (
	"fmt"
	"math/rand/v2"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// benchNode is a node of 256 GiB running n pods, with stats as a stats
// provider reports them: a mix of QoS classes (a fifth BestEffort, a
// fifth Guaranteed), priorities (most 0, some 1000, a few system-critical
// and static pods), one to three containers, emptyDir and configMap
// volumes, and a few pods without stats yet. Nothing is under pressure.
func benchNode(n int) Observations {
	rnd := rand.New(rand.NewPCG(1, 2))
	between := func(lo, hi uint64) uint64 { return lo + rnd.Uint64N(hi-lo) }
	obs := Observations{
		Memory:            MemoryStats{Time: t0, AvailableBytes: 64 * gi, WorkingSetBytes: 192 * gi},
		AllocatableMemory: MemoryStats{Time: t0, AvailableBytes: 60 * gi, WorkingSetBytes: 192 * gi},
		NodeFs:            FsStats{Time: t0, CapacityBytes: 2000 * gi, AvailableBytes: 1200 * gi, Inodes: 128 << 20, InodesFree: 100 << 20},
		PIDs:              PIDStats{Time: t0, MaxPID: 4 << 20, NumProcesses: 60000},
	}
	for i := range n {
		var priority int32
		switch {
		case i%100 == 7:
			priority = SystemCriticalPriority
		case i%10 == 3:
			priority = 1000
		}
		var containers []v1.Container
		for j := range 1 + i%3 {
			name := fmt.Sprintf("c%d", j)
			switch i % 5 {
			case 0: // BestEffort
				containers = append(containers, container(name, "", ""))
			case 1: // Guaranteed
				containers = append(containers, container(name, "cpu=500m,memory=512Mi", "cpu=500m,memory=512Mi"))
			default: // Burstable
				containers = append(containers, container(name, "cpu=100m,memory=128Mi,ephemeral-storage=1Gi", "memory=1Gi,ephemeral-storage=20Gi"))
			}
		}
		volumes := []v1.Volume{
			emptyDir("scratch", ""),
			{Name: "config", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "app-config"}}}},
			{Name: "kube-api-access", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{}}},
		}
		if i%4 == 0 {
			volumes = append(volumes, emptyDir("cache", "10Gi"))
		}
		pod := newPod(fmt.Sprintf("pod-%d", i), priority, containers, volumes)
		if i%100 == 11 {
			staticPod(pod)
		}
		ps := PodStats{Pod: pod}
		if i%200 != 199 { // a few pods have no stats yet
			ps.Time = t0
			ps.ProcessCount = between(1, 200)
			for _, c := range containers {
				cs := ContainerStats{
					Name:                  c.Name,
					MemoryWorkingSetBytes: between(20*mi, 400*mi),
					RootfsBytes:           between(1*mi, 1*gi), RootfsInodes: between(10, 20000),
					LogsBytes: between(10*ki, 100*mi), LogsInodes: between(1, 10),
				}
				ps.MemoryWorkingSetBytes += cs.MemoryWorkingSetBytes
				ps.EphemeralStorageBytes += cs.RootfsBytes + cs.LogsBytes
				ps.Containers = append(ps.Containers, cs)
			}
			for _, name := range localVolumeNames(pod) {
				vs := VolumeStats{Name: name, UsedBytes: between(4*ki, 2*gi), InodesUsed: between(1, 5000)}
				ps.EphemeralStorageBytes += vs.UsedBytes
				ps.Volumes = append(ps.Volumes, vs)
			}
		}
		obs.Pods = append(obs.Pods, ps)
	}
	return obs
}

// Ranking 1,000 pods for each kind of starved resource.
func BenchmarkRank(b *testing.B) {
	obs := benchNode(1000)
	for _, s := range []Signal{SignalMemoryAvailable, SignalNodeFsAvailable, SignalNodeFsInodesFree, SignalPIDAvailable} {
		b.Run(string(s), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if r := Rank(s, obs); len(r) != len(obs.Pods) {
					b.Fatalf("ranked %d pods", len(r))
				}
			}
		})
	}
}

// One round of eviction over 1,000 pods with the kubelet's default hard
// thresholds and pid.available 10 %: "none" is the usual round (nothing
// met; the local storage limits of every pod checked); the others meet
// one hard threshold, so the round ranks every pod and words the victim's
// eviction.
func BenchmarkDecide(b *testing.B) {
	policy, err := NewPolicy(Config{
		EvictionHard:                 map[string]string{string(SignalPIDAvailable): "10%"},
		MergeDefaultEvictionSettings: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		pressure func(*Observations)
		want     Signal
	}{
		{"none", func(*Observations) {}, ""},
		{"memory", func(o *Observations) { o.Memory.AvailableBytes, o.Memory.WorkingSetBytes = 50*mi, 256*gi-50*mi }, SignalMemoryAvailable},
		{"disk", func(o *Observations) { o.NodeFs.AvailableBytes = 100 * gi }, SignalNodeFsAvailable},
		{"pids", func(o *Observations) { o.PIDs.NumProcesses = o.PIDs.MaxPID - 1000 }, SignalPIDAvailable},
	} {
		b.Run(tc.name, func(b *testing.B) {
			obs := benchNode(1000)
			tc.pressure(&obs)
			b.ReportAllocs()
			for b.Loop() {
				d := Decide(State{}, t0, obs, policy)
				if len(d.LocalStorage) != 0 {
					b.Fatalf("local storage evictions: %v", d.LocalStorage)
				}
				switch {
				case tc.want == "" && d.Starved != nil:
					b.Fatalf("starved: %v", d.Starved.Threshold)
				case tc.want != "" && (d.Starved == nil || d.Starved.Threshold.Signal != tc.want || d.Starved.Victim == nil):
					b.Fatalf("want a victim for %s, got %v", tc.want, d)
				}
			}
		})
	}
}
