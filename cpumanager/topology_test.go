package cpumanager

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/nodekit/nodekit/core"
)

// Machines used across the tests, numbered as real ones are (siblings of
// CPU c are c+cores).
var (
	// 1 socket, 4 cores, 2 threads: CPUs 0-7, core c = {c, c+4}.
	descSingleSocketHT = TopologyDescription{Sockets: 1, NUMANodesPerSocket: 1, CoresPerNUMANode: 4, ThreadsPerCore: 2}
	// 1 socket, 6 cores, no SMT.
	descSingleSocketNoHT = TopologyDescription{Sockets: 1, NUMANodesPerSocket: 1, CoresPerNUMANode: 6, ThreadsPerCore: 1}
	// 2 sockets, 3 cores each, 2 threads, CPU numbers alternating between
	// sockets: socket 0 = {0,2,4,6,8,10}, socket 1 = {1,3,5,7,9,11}.
	descDualSocketHT = TopologyDescription{Sockets: 2, NUMANodesPerSocket: 1, CoresPerNUMANode: 3, ThreadsPerCore: 2, Interleaved: true}
	// 2 sockets, 4 cores each, no SMT: socket 0 = 0-3, socket 1 = 4-7.
	descDualSocketNoHT = TopologyDescription{Sockets: 2, NUMANodesPerSocket: 1, CoresPerNUMANode: 4, ThreadsPerCore: 1}
	// 2 sockets × 2 NUMA nodes × 10 cores × 2 threads (a dual Xeon Gold
	// 6230): node n = 10n..10n+9 and 40+10n..40+10n+9.
	descDualSocketMultiNUMAHT = TopologyDescription{Sockets: 2, NUMANodesPerSocket: 2, CoresPerNUMANode: 10, ThreadsPerCore: 2}
	// 2 sockets × 4 NUMA nodes × 16 cores × 2 threads (a dual AMD EPYC
	// 7742, NPS=4): node n = 16n..16n+15 and 128+16n..128+16n+15.
	descDualSocketEightNUMAHT = TopologyDescription{Sockets: 2, NUMANodesPerSocket: 4, CoresPerNUMANode: 16, ThreadsPerCore: 2}
	// 1 socket, 8 cores × 2 threads, two L3 groups of 4 cores.
	descUncoreSingleSocketHT = TopologyDescription{Sockets: 1, NUMANodesPerSocket: 1, CoresPerNUMANode: 8, ThreadsPerCore: 2, CoresPerUncoreCache: 4}
	// 1 socket, 16 cores, no SMT, four L3 groups of 4 cores.
	descUncoreSingleSocketNoHT = TopologyDescription{Sockets: 1, NUMANodesPerSocket: 1, CoresPerNUMANode: 16, ThreadsPerCore: 1, CoresPerUncoreCache: 4}
	// 3 sockets, 5 cores each (odd), 2 threads.
	descTripleSocketOddHT = TopologyDescription{Sockets: 3, NUMANodesPerSocket: 1, CoresPerNUMANode: 5, ThreadsPerCore: 2}
)

func mustTopology(t testing.TB, d TopologyDescription) *Topology {
	t.Helper()
	topo, err := NewTopology(d)
	if err != nil {
		t.Fatalf("NewTopology(%+v): %v", d, err)
	}
	return topo
}

func mustParse(t testing.TB, s string) cpuset.CPUSet {
	t.Helper()
	set, err := cpuset.Parse(s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return set
}

func TestNewTopologyShapes(t *testing.T) {
	for _, tc := range []struct {
		name                                 string
		desc                                 TopologyDescription
		cpus, cores, sockets, nodes, uncores int
		// cpu → {node, socket, core, uncore}
		check map[int]CPUInfo
	}{
		{
			name: "single socket HT", desc: descSingleSocketHT,
			cpus: 8, cores: 4, sockets: 1, nodes: 1, uncores: 1,
			check: map[int]CPUInfo{0: {0, 0, 0, 0}, 4: {0, 0, 0, 0}, 3: {0, 0, 3, 0}, 7: {0, 0, 3, 0}},
		},
		{
			name: "dual socket HT interleaved", desc: descDualSocketHT,
			cpus: 12, cores: 6, sockets: 2, nodes: 2, uncores: 2,
			check: map[int]CPUInfo{0: {0, 0, 0, 0}, 1: {1, 1, 1, 1}, 6: {0, 0, 0, 0}, 7: {1, 1, 1, 1}, 10: {0, 0, 4, 0}, 11: {1, 1, 5, 1}},
		},
		{
			name: "dual socket no HT", desc: descDualSocketNoHT,
			cpus: 8, cores: 8, sockets: 2, nodes: 2, uncores: 2,
			check: map[int]CPUInfo{3: {0, 0, 3, 0}, 4: {1, 1, 4, 1}},
		},
		{
			name: "dual socket two NUMA nodes per socket", desc: descDualSocketMultiNUMAHT,
			cpus: 80, cores: 40, sockets: 2, nodes: 4, uncores: 2,
			check: map[int]CPUInfo{9: {0, 0, 9, 0}, 10: {1, 0, 10, 0}, 20: {2, 1, 20, 1}, 49: {0, 0, 9, 0}, 79: {3, 1, 39, 1}},
		},
		{
			name: "interleaved NUMA nodes", desc: TopologyDescription{Sockets: 2, NUMANodesPerSocket: 2, CoresPerNUMANode: 10, ThreadsPerCore: 2, Interleaved: true},
			cpus: 80, cores: 40, sockets: 2, nodes: 4, uncores: 2,
			check: map[int]CPUInfo{0: {0, 0, 0, 0}, 1: {1, 1, 1, 1}, 2: {2, 0, 2, 0}, 3: {3, 1, 3, 1}, 42: {2, 0, 2, 0}},
		},
		{
			name: "split L3", desc: descUncoreSingleSocketHT,
			cpus: 16, cores: 8, sockets: 1, nodes: 1, uncores: 2,
			check: map[int]CPUInfo{3: {0, 0, 3, 0}, 4: {0, 0, 4, 1}, 12: {0, 0, 4, 1}, 8: {0, 0, 0, 0}},
		},
		{
			name: "odd core count", desc: descTripleSocketOddHT,
			cpus: 30, cores: 15, sockets: 3, nodes: 3, uncores: 3,
			check: map[int]CPUInfo{4: {0, 0, 4, 0}, 5: {1, 1, 5, 1}, 14: {2, 2, 14, 2}, 29: {2, 2, 14, 2}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo := mustTopology(t, tc.desc)
			got := [5]int{topo.NumCPUs, topo.NumCores, topo.NumSockets, topo.NumNUMANodes, topo.NumUncoreCaches}
			want := [5]int{tc.cpus, tc.cores, tc.sockets, tc.nodes, tc.uncores}
			if got != want {
				t.Errorf("counts (cpus, cores, sockets, nodes, uncores) = %v, want %v", got, want)
			}
			for cpu, info := range tc.check {
				if topo.CPUDetails[cpu] != info {
					t.Errorf("CPU %d = %+v, want %+v", cpu, topo.CPUDetails[cpu], info)
				}
			}
			if topo.CPUsPerCore() != tc.cpus/tc.cores {
				t.Errorf("CPUsPerCore = %d", topo.CPUsPerCore())
			}
		})
	}
}

func TestNewTopologyExplicit(t *testing.T) {
	// NUMA nodes above sockets: two sockets share node 0.
	topo := mustTopology(t, TopologyDescription{CPUs: CPUDetails{
		0: {NUMANodeID: 0, SocketID: 0, CoreID: 0},
		1: {NUMANodeID: 0, SocketID: 1, CoreID: 1},
		2: {NUMANodeID: 1, SocketID: 2, CoreID: 2},
		3: {NUMANodeID: 1, SocketID: 3, CoreID: 3},
	}})
	if topo.NumSockets != 4 || topo.NumNUMANodes != 2 || topo.NumCores != 4 {
		t.Errorf("counts = %s", topo)
	}
	if got := topo.CPUDetails.SocketsInNUMANodes(1); !got.Equals(cpuset.New(2, 3)) {
		t.Errorf("SocketsInNUMANodes(1) = %s", got)
	}
}

func TestNewTopologyInvalid(t *testing.T) {
	for name, d := range map[string]TopologyDescription{
		"zero sockets":      {NUMANodesPerSocket: 1, CoresPerNUMANode: 1, ThreadsPerCore: 1},
		"zero threads":      {Sockets: 1, NUMANodesPerSocket: 1, CoresPerNUMANode: 1},
		"uncore not divide": {Sockets: 1, NUMANodesPerSocket: 1, CoresPerNUMANode: 6, ThreadsPerCore: 1, CoresPerUncoreCache: 4},
		"shape and CPUs":    {Sockets: 1, CPUs: CPUDetails{0: {}}},
		"negative CPU":      {CPUs: CPUDetails{-1: {}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewTopology(d); !errors.Is(err, core.ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

// fakeSysfs writes a sysfs tree under root.
type fakeSysfs struct {
	t    *testing.T
	root string
}

func (f fakeSysfs) write(rel, content string) {
	f.t.Helper()
	p := filepath.Join(f.root, "sys", "devices", "system", filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content+"\n"), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// cpu writes one CPU's topology and its L3 cache.
func (f fakeSysfs) cpu(cpu, socket, coreID, l3ID int, l3Shared cpuset.CPUSet) {
	d := "cpu/cpu" + strconv.Itoa(cpu)
	f.write(d+"/topology/physical_package_id", strconv.Itoa(socket))
	f.write(d+"/topology/core_id", strconv.Itoa(coreID))
	// L1d, shared by the core's threads alone: never an uncore cache.
	f.write(d+"/cache/index0/level", "1")
	f.write(d+"/cache/index0/id", strconv.Itoa(coreID))
	f.write(d+"/cache/index0/shared_cpu_map", "3")
	f.write(d+"/cache/index3/level", "3")
	f.write(d+"/cache/index3/id", strconv.Itoa(l3ID))
	f.write(d+"/cache/index3/shared_cpu_map", cpuMask(l3Shared))
}

// cpuMask prints a set as sysfs prints a CPU mask: 32-bit hex words,
// most significant first.
func cpuMask(set cpuset.CPUSet) string {
	words := make([]uint32, 4)
	for _, c := range set.List() {
		words[c/32] |= 1 << uint(c%32)
	}
	var parts []string
	for i := len(words) - 1; i >= 0; i-- {
		parts = append(parts, fmt.Sprintf("%08x", words[i]))
	}
	return strings.Join(parts, ",")
}

func (f fakeSysfs) node(id int, cpus ...int) {
	f.t.Helper()
	dir := filepath.Join(f.root, "sys", "devices", "system", "node", "node"+strconv.Itoa(id))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	for _, c := range cpus {
		// As in sysfs, node<N>/cpu<M> are links to the CPU directories.
		target := filepath.Join(f.root, "sys", "devices", "system", "cpu", "cpu"+strconv.Itoa(c))
		if err := os.Symlink(target, filepath.Join(dir, "cpu"+strconv.Itoa(c))); err != nil {
			f.t.Fatal(err)
		}
	}
	f.write("node/node"+strconv.Itoa(id)+"/cpulist", cpuset.New(cpus...).String())
}

func TestDiscoverTopologyDualSocketHT(t *testing.T) {
	// Two sockets, each one NUMA node of 2 cores × 2 threads, numbered
	// alternately; CPU 7 is offline; each socket's L3 spans its node.
	f := fakeSysfs{t, t.TempDir()}
	f.write("cpu/online", "0-6")
	// core_id repeats across sockets, as the kernel numbers them.
	layout := []struct{ cpu, socket, core int }{
		{0, 0, 0}, {1, 1, 0}, {2, 0, 1}, {3, 1, 1},
		{4, 0, 0}, {5, 1, 0}, {6, 0, 1}, {7, 1, 1},
	}
	for _, l := range layout {
		shared := cpuset.New(0, 2, 4, 6)
		if l.socket == 1 {
			shared = cpuset.New(1, 3, 5, 7)
		}
		f.cpu(l.cpu, l.socket, l.core, l.socket, shared)
	}
	f.node(0, 0, 2, 4, 6)
	f.node(1, 1, 3, 5, 7)

	topo, err := DiscoverTopology(f.root)
	if err != nil {
		t.Fatal(err)
	}
	want := CPUDetails{
		0: {NUMANodeID: 0, SocketID: 0, CoreID: 0, UncoreCacheID: 0},
		4: {NUMANodeID: 0, SocketID: 0, CoreID: 0, UncoreCacheID: 0},
		2: {NUMANodeID: 0, SocketID: 0, CoreID: 2, UncoreCacheID: 0},
		6: {NUMANodeID: 0, SocketID: 0, CoreID: 2, UncoreCacheID: 0},
		1: {NUMANodeID: 1, SocketID: 1, CoreID: 1, UncoreCacheID: 1},
		5: {NUMANodeID: 1, SocketID: 1, CoreID: 1, UncoreCacheID: 1},
		3: {NUMANodeID: 1, SocketID: 1, CoreID: 3, UncoreCacheID: 1},
	}
	if len(topo.CPUDetails) != len(want) {
		t.Fatalf("CPUs = %s, want %s", topo.CPUs(), want.CPUs())
	}
	for cpu, info := range want {
		if topo.CPUDetails[cpu] != info {
			t.Errorf("CPU %d = %+v, want %+v", cpu, topo.CPUDetails[cpu], info)
		}
	}
	if topo.NumCPUs != 7 || topo.NumCores != 4 || topo.NumSockets != 2 || topo.NumNUMANodes != 2 {
		t.Errorf("topology = %s", topo)
	}
}

func TestDiscoverTopologySplitL3(t *testing.T) {
	// One socket and node, 4 cores, no SMT, two L3 caches of 2 cores: the
	// L3 is an uncore cache, named by its id.
	f := fakeSysfs{t, t.TempDir()}
	f.write("cpu/online", "0-3")
	for cpu := 0; cpu < 4; cpu++ {
		l3 := cpu / 2
		f.cpu(cpu, 0, cpu, 10+l3, cpuset.New(2*l3, 2*l3+1))
	}
	f.node(0, 0, 1, 2, 3)
	topo, err := DiscoverTopology(f.root)
	if err != nil {
		t.Fatal(err)
	}
	for cpu, want := range map[int]int{0: 10, 1: 10, 2: 11, 3: 11} {
		if got := topo.CPUDetails[cpu].UncoreCacheID; got != want {
			t.Errorf("CPU %d uncore = %d, want %d", cpu, got, want)
		}
	}
	if topo.NumUncoreCaches != 2 || topo.CPUsPerUncoreCache() != 2 {
		t.Errorf("uncore caches = %d", topo.NumUncoreCaches)
	}
}

func TestDiscoverTopologyWithoutNUMA(t *testing.T) {
	// No node directory and no online file (no CPU hotplug): every CPU
	// counts and each socket is a NUMA node.
	f := fakeSysfs{t, t.TempDir()}
	for cpu := 0; cpu < 4; cpu++ {
		f.cpu(cpu, cpu/2, cpu%2, cpu/2, cpuset.New(cpu/2*2, cpu/2*2+1))
	}
	topo, err := DiscoverTopology(f.root)
	if err != nil {
		t.Fatal(err)
	}
	if topo.NumNUMANodes != 2 || topo.NumSockets != 2 || topo.NumCPUs != 4 || topo.NumCores != 4 {
		t.Fatalf("topology = %s", topo)
	}
	if topo.CPUDetails[3] != (CPUInfo{NUMANodeID: 1, SocketID: 1, CoreID: 3, UncoreCacheID: 1}) {
		t.Errorf("CPU 3 = %+v", topo.CPUDetails[3])
	}
}

func TestDiscoverTopologyEmpty(t *testing.T) {
	if _, err := DiscoverTopology(t.TempDir()); err == nil {
		t.Fatal("no error for a tree without CPUs")
	}
}

// TestDiscoverTopologyThisMachine reads the real /sys and checks it
// agrees with what the kernel reports, whatever the machine.
func TestDiscoverTopologyThisMachine(t *testing.T) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		t.Skipf("no sysfs: %v", err)
	}
	online := mustParse(t, strings.TrimSpace(string(b)))
	topo, err := DiscoverTopology("/")
	if err != nil {
		t.Fatal(err)
	}
	if !topo.CPUs().Equals(online) || topo.NumCPUs != online.Size() {
		t.Errorf("discovered CPUs %s (%d), online %s", topo.CPUs(), topo.NumCPUs, online)
	}
	if runtime.NumCPU() > topo.NumCPUs {
		t.Errorf("runtime.NumCPU() = %d exceeds the %d CPUs discovered", runtime.NumCPU(), topo.NumCPUs)
	}
	if topo.NumCores < 1 || topo.NumCores > topo.NumCPUs || topo.NumCPUs%topo.NumCores != 0 {
		t.Errorf("cores = %d for %d CPUs", topo.NumCores, topo.NumCPUs)
	}
	if topo.NumSockets < 1 || topo.NumNUMANodes < 1 {
		t.Errorf("topology = %s", topo)
	}
	// Every core's threads are the kernel's siblings.
	for cpu, info := range topo.CPUDetails {
		sib, err := os.ReadFile(fmt.Sprintf("/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list", cpu))
		if err != nil {
			continue
		}
		want := mustParse(t, strings.TrimSpace(string(sib))).Intersection(online)
		if got := topo.CPUDetails.CPUsInCores(info.CoreID); !got.Equals(want) {
			t.Errorf("core of CPU %d = %s, kernel siblings %s", cpu, got, want)
		}
	}
}

func TestUncoreCacheAligned(t *testing.T) {
	topo := mustTopology(t, descUncoreSingleSocketHT) // L3 groups: cores 0-3 and 4-7
	for set, want := range map[string]bool{"": true, "5": true, "0-3,8-11": true, "3-4": false, "0,99": false} {
		if got := topo.UncoreCacheAligned(mustParse(t, set)); got != want {
			t.Errorf("%q aligned = %v, want %v", set, got, want)
		}
	}
}
