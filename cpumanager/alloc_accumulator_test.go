package cpumanager

import (
	"slices"
	"testing"
)

type takeCase struct {
	name      string
	desc      TopologyDescription
	available string
	n         int
	wantErr   bool
	want      string
}

func runTakeCases(t *testing.T, cases []takeCase, take func(topo *Topology, tc takeCase) (string, error)) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			topo := mustTopology(t, tc.desc)
			got, err := take(topo, tc)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if got != mustParse(t, tc.want).String() {
				t.Errorf("took %q, want %q", got, mustParse(t, tc.want).String())
			}
		})
	}
}

// Cases every picking mode agrees on.
var commonTakeCases = []takeCase{
	{"more than available", descSingleSocketHT, "0,2,4,6", 5, true, ""},
	{"zero", descSingleSocketHT, "0-7", 0, false, ""},
	{"one from an empty machine: lowest core", descSingleSocketHT, "0-7", 1, false, "0"},
	{"one, some taken: the fullest core's free thread", descSingleSocketHT, "1,3,5-7", 1, false, "6"},
	{"two: a whole core", descSingleSocketHT, "0-7", 2, false, "0,4"},
	{"all", descSingleSocketHT, "0-7", 8, false, "0-7"},
	{"two with one whole core free", descSingleSocketHT, "0-3,6", 2, false, "2,6"},
	{"a whole socket (alternating numbering)", descDualSocketHT, "0-11", 6, false, "0,2,4,6,8,10"},
	{"a whole socket of two NUMA nodes", descDualSocketMultiNUMAHT, "0-79", 40, false, "0-19,40-59"},
	{"a whole NUMA node", descDualSocketMultiNUMAHT, "0-79", 20, false, "0-9,40-49"},
	{"a whole NUMA node, node 0 in use", descDualSocketMultiNUMAHT, "10-39,50-79", 20, false, "10-19,50-59"},
	{"a socket and a NUMA node", descDualSocketMultiNUMAHT, "0-79", 60, false, "0-29,40-69"},
	{"a socket and a NUMA node, one core in use", descDualSocketMultiNUMAHT, "1-39,41-79", 60, false, "10-39,50-79"},
	{"whole sockets without SMT", descDualSocketNoHT, "0-7", 4, false, "0-3"},
}

func TestTakeByTopologyPacked(t *testing.T) {
	cases := append(slices.Clone(commonTakeCases), []takeCase{
		{"one, the machine in use on socket 0: socket 0 first", descDualSocketHT, "1-5,7-11", 1, false, "2"},
		{"four cores: fill NUMA node 0, then one core of node 1", descDualSocketHT, "0-11", 8, false, "0-2,4,6-8,10"},
		{"32 cores: three NUMA nodes and two cores of the fourth", descDualSocketMultiNUMAHT, "0-79", 64, false, "0-31,40-71"},
		{"odd request on SMT: a core and a thread", descTripleSocketOddHT, "0-29", 3, false, "0,1,15"},
		{"a full socket of an odd machine", descTripleSocketOddHT, "0-29", 10, false, "0-4,15-19"},
		{"threads of the fullest socket first", descTripleSocketOddHT, "0-3,5-9,15-18,20-24", 2, false, "0,15"},
	}...)
	runTakeCases(t, cases, func(topo *Topology, tc takeCase) (string, error) {
		got, err := takeByTopologyNUMAPacked(topo, mustParse(t, tc.available), tc.n, sortPacked, false)
		return got.String(), err
	})
}

func TestTakeByTopologyPreferUncore(t *testing.T) {
	runTakeCases(t, []takeCase{
		{"two full L3 groups and part of a third", descUncoreSingleSocketNoHT, "1-15", 10, false, "1-2,4-11"},
		{"the best L3 group with SMT", descUncoreSingleSocketHT, "2-7,10-15", 6, false, "4-6,12-14"},
		{"several L3 groups with SMT", descUncoreSingleSocketHT, "1-7,9-15", 10, false, "1,4-7,9,12-15"},
		{"a request that fits one group stays in it", descUncoreSingleSocketNoHT, "0-15", 3, false, "0-2"},
	}, func(topo *Topology, tc takeCase) (string, error) {
		got, err := takeByTopologyNUMAPacked(topo, mustParse(t, tc.available), tc.n, sortPacked, true)
		return got.String(), err
	})
}

func TestTakeByTopologySpread(t *testing.T) {
	runTakeCases(t, []takeCase{
		{"three threads on three cores", descSingleSocketHT, "0-7", 3, false, "0-2"},
		{"two on one socket, different cores", descDualSocketHT, "0-11", 2, false, "0,2"},
		{"a socket", descDualSocketHT, "0-11", 6, false, "0,2,4,6,8,10"},
		{"a socket and two more", descDualSocketHT, "0-11", 8, false, "0-4,6,8,10"},
		{"no SMT", descDualSocketNoHT, "0-7", 2, false, "0-1"},
		{"many NUMA nodes: CPU order within the socket", descDualSocketMultiNUMAHT, "0-79", 8, false, "0-7"},
	}, func(topo *Topology, tc takeCase) (string, error) {
		got, err := takeByTopologyNUMAPacked(topo, mustParse(t, tc.available), tc.n, sortSpread, false)
		return got.String(), err
	})
}

func TestTakeByTopologyDistributed(t *testing.T) {
	type groupCase struct {
		takeCase
		group int
	}
	var cases []groupCase
	for _, tc := range commonTakeCases {
		cases = append(cases, groupCase{tc, 1})
	}
	cases = append(cases, []groupCase{
		{takeCase{"four cores: two per NUMA node", descDualSocketHT, "0-11", 8, false, "0-3,6-9"}, 1},
		{takeCase{"32 cores: eight per NUMA node", descDualSocketMultiNUMAHT, "0-79", 64, false, "0-7,10-17,20-27,30-37,40-47,50-57,60-67,70-77"}, 1},
		{takeCase{"24 cores over the first three nodes", descDualSocketMultiNUMAHT, "0-79", 48, false, "0-7,10-17,20-27,40-47,50-57,60-67"}, 1},
		{takeCase{"24 cores over the last three nodes, the most even choice", descDualSocketMultiNUMAHT, "2-29,31-39,42-69,71-79", 48, false, "10-17,20-27,31-38,50-57,60-67,71-78"}, 1},
		{takeCase{"13 cores over two nodes", descDualSocketMultiNUMAHT, "0-79", 26, false, "0-6,10-16,40-45,50-55"}, 1},
		{takeCase{"13 cores over two nodes in whole cores", descDualSocketMultiNUMAHT, "0-79", 26, false, "0-6,10-15,40-46,50-55"}, 2},
		{takeCase{"31 cores, the remainder to nodes 0 and 1", descDualSocketMultiNUMAHT, "0-79", 62, false, "0-7,10-17,20-27,30-37,40-47,50-57,60-66,70-76"}, 1},
		{takeCase{"31 cores, the remainder where it keeps the balance", descDualSocketMultiNUMAHT, "0-8,10-18,20-39,40-48,50-58,60-79", 62, false, "0-7,10-17,20-27,30-37,40-46,50-56,60-67,70-77"}, 1},
		{takeCase{"one thread, group of 2 does not divide: packed", descDualSocketHT, "1-5,7-11", 1, false, "2"}, 2},
		{takeCase{"one thread", descDualSocketHT, "1-5,7-11", 1, false, "1"}, 1},
		{takeCase{"a fragmented eight-node machine", descDualSocketEightNUMAHT,
			"0,128,30,31,158,159,43-47,171-175,62,63,190,191,75-79,203-207,94,96,222,223,101-111,229-239,126,127,254,255",
			28, false, "43-47,75-79,96,101-105,171-174,203-206,229-232"}, 1},
		// Four nodes of eight: the search keeps its best combination in
		// storage that later combinations reuse, so the nodes used are
		// 0, 1, 2 and 7 rather than the 0, 1, 2 and 4 it rated best. The
		// kubelet picks exactly these CPUs.
		{takeCase{"four of eight nodes, as the kubelet picks them",
			TopologyDescription{Sockets: 2, NUMANodesPerSocket: 4, CoresPerNUMANode: 2, ThreadsPerCore: 1},
			"0-6,8-11,13-15", 8, false, "0-5,14-15"}, 1},
	}...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			topo := mustTopology(t, tc.desc)
			got, err := takeByTopologyNUMADistributed(topo, mustParse(t, tc.available), tc.n, tc.group, sortPacked, false)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if !got.Equals(mustParse(t, tc.want)) {
				t.Errorf("took %q, want %q", got, tc.want)
			}
		})
	}
}

func TestForEachCombinationOrder(t *testing.T) {
	var got [][]int
	forEachCombination([]int{4, 5, 6, 7}, 2, func(c []int) bool {
		got = append(got, slices.Clone(c))
		return true
	})
	want := [][]int{{4, 5}, {4, 6}, {4, 7}, {5, 6}, {5, 7}, {6, 7}}
	if !slices.EqualFunc(got, want, slices.Equal[[]int]) {
		t.Errorf("combinations = %v, want %v", got, want)
	}
	n := 0
	forEachCombination([]int{1, 2, 3}, 1, func([]int) bool { n++; return n < 2 })
	if n != 2 {
		t.Errorf("stopping: called %d times, want 2", n)
	}
}

func TestBalance(t *testing.T) {
	if b := balance(map[int]int{0: 4, 1: 4}); b != 0 {
		t.Errorf("balance of equal nodes = %v", b)
	}
	// Values 2 and 4: mean 3, deviation 1.
	if b := balance(map[int]int{0: 2, 1: 4}); b != 1 {
		t.Errorf("balance = %v, want 1", b)
	}
	// Values 0, 0, 1: mean 0.333, deviation sqrt((0.333²·2+0.667²)/3) = 0.471.
	if b := balance(map[int]int{0: 0, 1: 0, 2: 1}); b != 0.471 {
		t.Errorf("balance = %v, want 0.471", b)
	}
}
