package cpumanager

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/cpuset"

	"github.com/nodekit/nodekit/core"
)

func newTestAllocator(t *testing.T, dir string, desc TopologyDescription, reserved int, options map[string]string) (*Allocator, error) {
	t.Helper()
	p := mustStatic(t, StaticPolicyConfig{Topology: mustTopology(t, desc), NumReservedCPUs: reserved, Options: options})
	return NewAllocator(AllocatorConfig{Policy: p, StateDir: dir})
}

func TestAllocatorConfig(t *testing.T) {
	if _, err := NewAllocator(AllocatorConfig{}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("no policy: err = %v", err)
	}
	none, _ := NewNonePolicy(NonePolicyConfig{})
	if _, err := NewAllocator(AllocatorConfig{Policy: none, StateDir: t.TempDir(), StateFileName: "../x"}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("path as file name: err = %v", err)
	}
}

func TestAllocatorPersistsAndRestores(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, CheckpointFileName)
	a, err := newTestAllocator(t, dir, descDualSocketHT, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A fresh node writes its initial state at once.
	if _, s, err := ReadCheckpoint(path); err != nil || s.DefaultCPUSet.String() != "0-11" {
		t.Fatalf("initial checkpoint: %v %v", s.DefaultCPUSet, err)
	}
	pod := guaranteedPod("pod-a", "2")
	got, err := a.Allocate(pod, &pod.Spec.Containers[0])
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != "2,8" {
		t.Fatalf("allocated %s", got)
	}
	shared := podOf("pod-b", nil, ctr("web", "500m", true))
	if got, err := a.Allocate(shared, &shared.Spec.Containers[0]); err != nil || !got.IsEmpty() {
		t.Fatalf("shared container: %s %v", got, err)
	}
	if cs := a.CPUSet("pod-b", "web"); cs.String() != "0-1,3-7,9-11" {
		t.Errorf("shared container runs on %s", cs)
	}
	if cs := a.CPUSet("pod-a", "app"); cs.String() != "2,8" {
		t.Errorf("pinned container runs on %s", cs)
	}
	_, onDisk, err := ReadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := a.State(); !onDisk.equal(&st) {
		t.Errorf("checkpoint %s %s, memory %s %s", onDisk.DefaultCPUSet, onDisk.Assignments, st.DefaultCPUSet, st.Assignments)
	}

	// A restart restores the assignment; admitting the pod again keeps it.
	b, err := newTestAllocator(t, dir, descDualSocketHT, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Allocate(pod, &pod.Spec.Containers[0]); err != nil || got.String() != "2,8" {
		t.Errorf("after restart: %s %v", got, err)
	}
	if got := b.ExclusiveCPUs("pod-a", "app"); got.String() != "2,8" {
		t.Errorf("ExclusiveCPUs = %s", got)
	}
	released, err := b.RemoveContainer("pod-a", "app")
	if err != nil || released.String() != "2,8" {
		t.Fatalf("released %s: %v", released, err)
	}
	if _, s, _ := ReadCheckpoint(path); s.DefaultCPUSet.String() != "0-11" || len(s.Assignments) != 0 {
		t.Errorf("after removal the checkpoint holds %s %s", s.DefaultCPUSet, s.Assignments)
	}
}

func TestAllocatorKubeletCheckpoint(t *testing.T) {
	// A node a kubelet ran: its checkpoint is taken over as it is.
	dir := t.TempDir()
	path := filepath.Join(dir, CheckpointFileName)
	kubelet := readTestdata(t, "kubelet-static.json")
	if err := os.WriteFile(path, kubelet, 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := newTestAllocator(t, dir, descDualSocketHT, 2, nil) // reserved {0,6}
	if err != nil {
		t.Fatal(err)
	}
	if got := a.ExclusiveCPUs("6f1c2f2e-6b3d-4c55-9a8e-0a1b2c3d4e5f", "app"); got.String() != "2,8" {
		t.Errorf("app has %s", got)
	}
	// Nothing changed, so nothing was rewritten.
	if after, _ := os.ReadFile(path); !bytes.Equal(after, kubelet) {
		t.Errorf("checkpoint rewritten:\n%s", after)
	}
	st := a.Stats()
	if st.ExclusiveCPUs != 4 || st.ExclusiveContainers != 3 || st.SharedPoolCPUs != 6 {
		t.Errorf("stats = %+v", st)
	}
	// 2, 4, 8 and 10 are all on socket 0, NUMA node 0.
	if len(st.ExclusiveCPUsPerNUMA) != 1 || st.ExclusiveCPUsPerNUMA[0] != 4 {
		t.Errorf("per NUMA = %v", st.ExclusiveCPUsPerNUMA)
	}
}

func TestAllocatorRefusesMismatchingCheckpoints(t *testing.T) {
	write := func(t *testing.T, policy string, s State) string {
		dir := t.TempDir()
		if err := WriteCheckpoint(filepath.Join(dir, CheckpointFileName), policy, &s); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	withAssignment := func(def, pod, c, cpus string) State {
		s := State{DefaultCPUSet: mustParse(t, def)}
		s.SetCPUSet(pod, c, mustParse(t, cpus))
		return s
	}
	for _, tc := range []struct {
		name    string
		dir     func(t *testing.T) string
		desc    TopologyDescription
		is      error
		message string
	}{
		{
			name: "another policy",
			dir:  func(t *testing.T) string { return write(t, PolicyNone, State{}) },
			desc: descDualSocketHT, is: ErrCheckpointMismatch,
			message: `configured policy "static" differs from state checkpoint policy "none"`,
		},
		{
			name: "a machine with more CPUs",
			dir:  func(t *testing.T) string { return write(t, PolicyStatic, withAssignment("0-13", "p", "c", "14-15")) },
			desc: descDualSocketHT, is: ErrCheckpointMismatch,
			message: `current set of available CPUs "0-11" doesn't match with CPUs in state "0-15"`,
		},
		{
			name: "other reserved CPUs",
			dir:  func(t *testing.T) string { return write(t, PolicyStatic, withAssignment("1-10", "p", "c", "0,11")) },
			desc: descDualSocketHT, is: ErrCheckpointMismatch,
			message: `not all reserved cpus: "0" are present in defaultCpuSet: "1-10"`,
		},
		{
			name: "a damaged file",
			dir: func(t *testing.T) string {
				dir := t.TempDir()
				if err := os.WriteFile(filepath.Join(dir, CheckpointFileName), []byte(`{"policyName":"static","defaultCpuSet":"0-11","checksum":42}`), 0o600); err != nil {
					t.Fatal(err)
				}
				return dir
			},
			desc: descDualSocketHT, is: ErrCorruptCheckpoint, message: "checkpoint is corrupted",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir(t)
			before, _ := os.ReadFile(filepath.Join(dir, CheckpointFileName))
			_, err := newTestAllocator(t, dir, tc.desc, 1, nil)
			if !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
			for _, want := range []string{tc.message, "drain this node and delete the CPU manager checkpoint file", filepath.Join(dir, CheckpointFileName)} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if after, _ := os.ReadFile(filepath.Join(dir, CheckpointFileName)); !bytes.Equal(before, after) {
				t.Error("the refused checkpoint was changed")
			}
		})
	}
}

func TestAllocatorFailedWriteChangesNothing(t *testing.T) {
	dir := t.TempDir()
	a, err := newTestAllocator(t, dir, descSingleSocketHT, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, CheckpointFileName)
	before, _ := os.ReadFile(path)
	a.fsys = faultyFiles{failAt: "sync"}
	pod := guaranteedPod("p", "2")
	if _, err := a.Allocate(pod, &pod.Spec.Containers[0]); !errors.Is(err, errInjected) {
		t.Fatalf("err = %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("checkpoint changed")
	}
	if st := a.State(); len(st.Assignments) != 0 || st.DefaultCPUSet.String() != "0-7" {
		t.Errorf("memory changed: %s %s", st.DefaultCPUSet, st.Assignments)
	}
	// Once the disk works again the same admission succeeds.
	a.fsys = osFiles{}
	if got, err := a.Allocate(pod, &pod.Spec.Containers[0]); err != nil || got.String() != "1,5" {
		t.Errorf("retry: %s %v", got, err)
	}
}

func TestAllocatorRemoveStaleContainers(t *testing.T) {
	a, err := newTestAllocator(t, t.TempDir(), descDualSocketHT, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	keep := podOf("keep", []v1.Container{ctr("init", "2", true)}, ctr("app", "2", true))
	gone := guaranteedPod("gone", "4")
	for _, p := range []*v1.Pod{keep, gone} {
		for _, list := range [][]v1.Container{p.Spec.InitContainers, p.Spec.Containers} {
			for i := range list {
				if _, err := a.Allocate(p, &list[i]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	n, err := a.RemoveStaleContainers([]*v1.Pod{keep})
	if err != nil || n != 1 {
		t.Fatalf("removed %d: %v", n, err)
	}
	st := a.State()
	if _, ok := st.CPUSet("gone", "app"); ok || st.NumExclusiveContainers() != 2 {
		t.Errorf("after cleanup: %s", st.Assignments)
	}
	if n, _ := a.RemoveStaleContainers(nil); n != 2 {
		t.Errorf("removed %d with no active pods, want 2", n)
	}
	if st := a.State(); st.DefaultCPUSet.String() != "0-11" {
		t.Errorf("pool = %s", st.DefaultCPUSet)
	}
}

func TestAllocatorHints(t *testing.T) {
	a, err := newTestAllocator(t, "", descDualSocketHT, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	var hp HintProvider = a
	pod := guaranteedPod("p", "6")
	if got := hintsString(hp.GetTopologyHints(pod, &pod.Spec.Containers[0])); got != "[{1 true} {0-1 false}]" {
		t.Errorf("container hints = %s", got)
	}
	if got := hintsString(hp.GetPodTopologyHints(pod)); got != "[{1 true} {0-1 false}]" {
		t.Errorf("pod hints = %s", got)
	}
}

func TestAllocatorConcurrent(t *testing.T) {
	a, err := newTestAllocator(t, t.TempDir(), descDualSocketMultiNUMAHT, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]cpuset.CPUSet, 16)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pod := guaranteedPod(fmt.Sprintf("pod-%d", i), "4")
			got, err := a.Allocate(pod, &pod.Spec.Containers[0])
			if err != nil {
				t.Error(err)
			}
			results[i] = got
			_ = a.GetTopologyHints(pod, &pod.Spec.Containers[0])
			_ = a.Stats()
		}()
	}
	wg.Wait()
	all := cpuset.New()
	for i, r := range results {
		if r.Size() != 4 || !all.Intersection(r).IsEmpty() {
			t.Errorf("pod %d got %s, overlapping %s", i, r, all)
		}
		all = all.Union(r)
	}
	_, onDisk, err := ReadCheckpoint(filepath.Join(a.path))
	if err != nil || onDisk.NumExclusiveContainers() != 16 || !onDisk.ExclusiveCPUs().Equals(all) {
		t.Errorf("checkpoint holds %s: %v", onDisk.Assignments, err)
	}
}

func TestAllocatorNonePolicy(t *testing.T) {
	dir := t.TempDir()
	none, err := NewNonePolicy(NonePolicyConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAllocator(AllocatorConfig{Policy: none, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	pod := guaranteedPod("p", "2")
	if got, err := a.Allocate(pod, &pod.Spec.Containers[0]); err != nil || !got.IsEmpty() {
		t.Errorf("allocate: %s %v", got, err)
	}
	if got := a.CPUSet("p", "app"); !got.IsEmpty() {
		t.Errorf("none policy pins to %s", got)
	}
	if a.GetTopologyHints(pod, &pod.Spec.Containers[0]) != nil || a.GetPodTopologyHints(pod) != nil || !a.AllocatableCPUs().IsEmpty() {
		t.Error("none policy has preferences")
	}
	// Its checkpoint is the kubelet's, byte for byte.
	got, _ := os.ReadFile(filepath.Join(dir, CheckpointFileName))
	if want := readTestdata(t, "kubelet-none.json"); !bytes.Equal(got, want) {
		t.Errorf("checkpoint:\n%s\nwant\n%s", got, want)
	}
	if _, err := NewNonePolicy(NonePolicyConfig{Options: map[string]string{FullPCPUsOnlyOption: "true"}}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("none policy with options: %v", err)
	}
}

func TestNUMAMask(t *testing.T) {
	m, err := NewNUMAMask(3, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Count() != 3 || !m.IsSet(3) || m.IsSet(2) || m.IsSet(64) || m.String() != "0-1,3" {
		t.Errorf("mask %s count %d", m, m.Count())
	}
	if _, err := NewNUMAMask(64); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("node 64: %v", err)
	}
	var order []string
	forEachNUMAMask([]int{0, 1, 2}, func(m NUMAMask) { order = append(order, m.String()) })
	if got := strings.Join(order, " "); got != "0 1 2 0-1 0,2 1-2 0-2" {
		t.Errorf("order = %s", got)
	}
	if (TopologyHint{NUMANodeAffinity: m, Preferred: true}).String() != "{0-1,3 true}" {
		t.Error("hint string")
	}
}
