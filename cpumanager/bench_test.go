package cpumanager_test

import (
	"fmt"
	"strconv"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/cpumanager"
)

// benchTopology is a large server: 2 sockets of 64 cores with 2 threads
// each (256 CPUs), 4 NUMA nodes per socket of 16 cores, an uncore cache
// per 8 cores.
func benchTopology(b *testing.B) *cpumanager.Topology {
	b.Helper()
	topo, err := cpumanager.NewTopology(cpumanager.TopologyDescription{
		Sockets: 2, NUMANodesPerSocket: 4, CoresPerNUMANode: 16, ThreadsPerCore: 2, CoresPerUncoreCache: 8,
	})
	if err != nil {
		b.Fatal(err)
	}
	return topo
}

// benchPod is a Guaranteed pod whose one container "app" requests cpus
// whole CPUs.
func benchPod(name string, cpus int) *v1.Pod {
	rl := v1.ResourceList{v1.ResourceCPU: resource.MustParse(strconv.Itoa(cpus)), v1.ResourceMemory: resource.MustParse("1Gi")}
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: v1.PodSpec{Containers: []v1.Container{{
			Name: "app", Resources: v1.ResourceRequirements{Requests: rl, Limits: rl},
		}}},
	}
}

// fill allocates pods of 2 to 16 CPUs until about half the CPUs are
// exclusive, then removes every third, leaving the holes pods that came
// and went leave on a busy node.
func fill(b *testing.B, alloc func(*v1.Pod) error, remove func(*v1.Pod)) {
	b.Helper()
	sizes := []int{2, 4, 8, 6, 16, 2, 10}
	var pods []*v1.Pod
	for used, i := 0, 0; used < 128; i++ {
		pod := benchPod(fmt.Sprintf("fill-%d", i), sizes[i%len(sizes)])
		if err := alloc(pod); err != nil {
			b.Fatal(err)
		}
		pods = append(pods, pod)
		used += sizes[i%len(sizes)]
	}
	for i := 0; i < len(pods); i += 3 {
		remove(pods[i])
	}
}

var benchPolicies = []struct {
	name    string
	options map[string]string
}{
	{"default", nil},
	{"full-pcpus-only", map[string]string{cpumanager.FullPCPUsOnlyOption: "true"}},
}

// benchPolicy is a static policy on benchTopology with 2 reserved CPUs
// and its state, either empty or filled half.
func benchPolicy(b *testing.B, options map[string]string, half bool) (*cpumanager.StaticPolicy, *cpumanager.State) {
	b.Helper()
	p, err := cpumanager.NewStaticPolicy(cpumanager.StaticPolicyConfig{Topology: benchTopology(b), NumReservedCPUs: 2, Options: options})
	if err != nil {
		b.Fatal(err)
	}
	s := &cpumanager.State{}
	if err := p.Start(s); err != nil {
		b.Fatal(err)
	}
	if half {
		fill(b, func(pod *v1.Pod) error {
			_, err := p.Allocate(s, pod, &pod.Spec.Containers[0])
			return err
		}, func(pod *v1.Pod) {
			p.RemoveContainer(s, string(pod.UID), "app")
		})
	}
	return p, s
}

// StaticPolicy.Allocate then RemoveContainer of one container of 2 to 96
// exclusive CPUs (96: three NUMA nodes), on an empty node and on one
// whose CPUs are half taken with holes, with the default options and
// with full-pcpus-only.
func BenchmarkStaticPolicyAllocate(b *testing.B) {
	for _, pol := range benchPolicies {
		for _, node := range []string{"empty", "half"} {
			for _, cpus := range []int{2, 8, 32, 96} {
				b.Run(fmt.Sprintf("%s/%s/cpus=%d", pol.name, node, cpus), func(b *testing.B) {
					p, s := benchPolicy(b, pol.options, node == "half")
					pod := benchPod("bench", cpus)
					b.ReportAllocs()
					for b.Loop() {
						got, err := p.Allocate(s, pod, &pod.Spec.Containers[0])
						if err != nil || got.Size() != cpus {
							b.Fatalf("got %s, %v", got, err)
						}
						p.RemoveContainer(s, string(pod.UID), "app")
					}
				})
			}
		}
	}
}

// StaticPolicy.TopologyHints for a container of 2, 32 and 96 CPUs on
// the half-taken node: every combination of the 8 NUMA nodes is weighed.
func BenchmarkStaticPolicyTopologyHints(b *testing.B) {
	p, s := benchPolicy(b, nil, true)
	for _, cpus := range []int{2, 32, 96} {
		b.Run(fmt.Sprintf("cpus=%d", cpus), func(b *testing.B) {
			pod := benchPod("bench", cpus)
			b.ReportAllocs()
			for b.Loop() {
				if h := p.TopologyHints(s, pod, &pod.Spec.Containers[0]); len(h[string(v1.ResourceCPU)]) == 0 {
					b.Fatal("no hints")
				}
			}
		})
	}
}

// Allocator.Allocate then RemoveContainer of 8 CPUs on the half-taken
// node: "memory" keeps the state in memory only (the lock and the copy
// of the state each change is made on), "checkpoint" also writes the
// checkpoint file atomically after each change, as on a node.
func BenchmarkAllocator(b *testing.B) {
	for _, mode := range []string{"memory", "checkpoint"} {
		b.Run(mode, func(b *testing.B) {
			p, err := cpumanager.NewStaticPolicy(cpumanager.StaticPolicyConfig{Topology: benchTopology(b), NumReservedCPUs: 2})
			if err != nil {
				b.Fatal(err)
			}
			cfg := cpumanager.AllocatorConfig{Policy: p}
			if mode == "checkpoint" {
				cfg.StateDir = b.TempDir()
			}
			a, err := cpumanager.NewAllocator(cfg)
			if err != nil {
				b.Fatal(err)
			}
			fill(b, func(pod *v1.Pod) error {
				_, err := a.Allocate(pod, &pod.Spec.Containers[0])
				return err
			}, func(pod *v1.Pod) {
				if _, err := a.RemoveContainer(string(pod.UID), "app"); err != nil {
					b.Fatal(err)
				}
			})
			pod := benchPod("bench", 8)
			b.ReportAllocs()
			for b.Loop() {
				got, err := a.Allocate(pod, &pod.Spec.Containers[0])
				if err != nil || got.Size() != 8 {
					b.Fatalf("got %s, %v", got, err)
				}
				if _, err := a.RemoveContainer(string(pod.UID), "app"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
