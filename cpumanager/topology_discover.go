package cpumanager

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/bits"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/utils/cpuset"
)

var (
	sysfsCPUDirRE  = regexp.MustCompile(`^cpu([0-9]+)$`)
	sysfsNodeDirRE = regexp.MustCompile(`^node([0-9]+)$`)
)

// DiscoverTopology reads the CPU topology of the machine from sysfs under
// root ("/" for the running machine; a directory holding a copy of
// sys/devices/system/cpu and sys/devices/system/node in tests). It sees
// what the kubelet sees through cAdvisor:
//
//   - only online CPUs count (cpu/online; every CPU when the file is absent);
//   - NUMA nodes are the node<N> directories and their cpu<M> entries
//     (or cpulist); without them each socket is a NUMA node;
//   - threads with the same core_id on the same socket and node form a
//     core, whose ID is its lowest CPU;
//   - a CPU's uncore cache is its first cache above level 2 that is shared
//     by fewer CPUs than its NUMA node has; without one, its socket.
//
// A CPU lacking core_id or physical_package_id is left out, as cAdvisor
// leaves it out.
func DiscoverTopology(root string) (*Topology, error) {
	cpuRoot := filepath.Join(root, "sys", "devices", "system", "cpu")
	nodeRoot := filepath.Join(root, "sys", "devices", "system", "node")

	online, err := readOnlineCPUs(cpuRoot)
	if err != nil {
		return nil, err
	}
	nodes, err := readNUMANodes(nodeRoot)
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		// No NUMA information: each socket stands for a node.
		nodes, err = nodesFromSockets(cpuRoot)
		if err != nil {
			return nil, err
		}
	}

	details := CPUDetails{}
	for _, node := range nodes {
		cores, err := readCores(cpuRoot, node.cpus, online)
		if err != nil {
			return nil, err
		}
		uncore := readUncoreCaches(cpuRoot, cores)
		for i, c := range cores {
			coreID := slices.Min(c.threads)
			uncoreID := c.socket
			if id, ok := uncore[i]; ok {
				uncoreID = id
			}
			for _, cpu := range c.threads {
				if _, dup := details[cpu]; dup {
					return nil, fmt.Errorf("cpumanager: discover topology under %s: CPU %d appears in more than one NUMA node", root, cpu)
				}
				details[cpu] = CPUInfo{NUMANodeID: node.id, SocketID: c.socket, CoreID: coreID, UncoreCacheID: uncoreID}
			}
		}
	}
	if len(details) == 0 {
		return nil, fmt.Errorf("cpumanager: discover topology under %s: could not detect number of cpus", root)
	}
	return topologyFromDetails(details), nil
}

type sysfsNode struct {
	id   int
	cpus []int
}

type sysfsCore struct {
	coreID, socket int
	threads        []int
}

// readOnlineCPUs returns the online CPUs, or nil meaning "all" when the
// kernel has no CPU hotplug (no online file).
func readOnlineCPUs(cpuRoot string) (*cpuset.CPUSet, error) {
	b, err := os.ReadFile(filepath.Join(cpuRoot, "online"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cpumanager: discover topology: %w", err)
	}
	set, err := cpuset.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("cpumanager: discover topology: parse %s: %w", filepath.Join(cpuRoot, "online"), err)
	}
	return &set, nil
}

// numberedDirs lists the entries of dir whose names match re, by number.
func numberedDirs(dir string, re *regexp.Regexp) ([]int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cpumanager: discover topology: %w", err)
	}
	var ids []int
	for _, e := range entries {
		if m := re.FindStringSubmatch(e.Name()); m != nil {
			id, err := strconv.Atoi(m[1])
			if err != nil {
				return nil, fmt.Errorf("cpumanager: discover topology: %s/%s: %w", dir, e.Name(), err)
			}
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

func readNUMANodes(nodeRoot string) ([]sysfsNode, error) {
	ids, err := numberedDirs(nodeRoot, sysfsNodeDirRE)
	if err != nil {
		return nil, err
	}
	nodes := make([]sysfsNode, 0, len(ids))
	for _, id := range ids {
		dir := filepath.Join(nodeRoot, "node"+strconv.Itoa(id))
		cpus, err := numberedDirs(dir, sysfsCPUDirRE)
		if err != nil {
			return nil, err
		}
		if len(cpus) == 0 {
			// Some trees (and copies of them) carry the list alone.
			if b, err := os.ReadFile(filepath.Join(dir, "cpulist")); err == nil {
				set, err := cpuset.Parse(strings.TrimSpace(string(b)))
				if err != nil {
					return nil, fmt.Errorf("cpumanager: discover topology: parse %s/cpulist: %w", dir, err)
				}
				cpus = set.List()
			}
		}
		nodes = append(nodes, sysfsNode{id: id, cpus: cpus})
	}
	return nodes, nil
}

func nodesFromSockets(cpuRoot string) ([]sysfsNode, error) {
	cpus, err := numberedDirs(cpuRoot, sysfsCPUDirRE)
	if err != nil {
		return nil, err
	}
	bySocket := map[int][]int{}
	for _, cpu := range cpus {
		socket, ok, err := readSysfsInt(cpuRoot, cpu, "topology/physical_package_id")
		if err != nil {
			return nil, err
		}
		if ok {
			bySocket[socket] = append(bySocket[socket], cpu)
		}
	}
	var nodes []sysfsNode
	for _, socket := range slices.Sorted(maps.Keys(bySocket)) {
		nodes = append(nodes, sysfsNode{id: socket, cpus: bySocket[socket]})
	}
	return nodes, nil
}

// readSysfsInt reads cpu<cpu>/<file> as an integer; ok is false when the
// file does not exist.
func readSysfsInt(cpuRoot string, cpu int, file string) (v int, ok bool, err error) {
	path := filepath.Join(cpuRoot, "cpu"+strconv.Itoa(cpu), filepath.FromSlash(file))
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("cpumanager: discover topology: %w", err)
	}
	v, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, false, fmt.Errorf("cpumanager: discover topology: parse %s: %w", path, err)
	}
	return v, true, nil
}

// readCores groups the online CPUs among cpus into cores by (core_id,
// physical_package_id), in the order their first thread appears.
func readCores(cpuRoot string, cpus []int, online *cpuset.CPUSet) ([]sysfsCore, error) {
	var cores []sysfsCore
	for _, cpu := range cpus {
		if online != nil && !online.Contains(cpu) {
			continue
		}
		coreID, ok, err := readSysfsInt(cpuRoot, cpu, "topology/core_id")
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		socket, ok, err := readSysfsInt(cpuRoot, cpu, "topology/physical_package_id")
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		i := slices.IndexFunc(cores, func(c sysfsCore) bool { return c.coreID == coreID && c.socket == socket })
		if i < 0 {
			cores = append(cores, sysfsCore{coreID: coreID, socket: socket})
			i = len(cores) - 1
		}
		cores[i].threads = append(cores[i].threads, cpu)
	}
	return cores, nil
}

// readUncoreCaches finds, per core (by index), the ID of its first cache
// above level 2 that does not span the whole NUMA node. Like cAdvisor it
// stops at the first core whose cache information cannot be read.
func readUncoreCaches(cpuRoot string, cores []sysfsCore) map[int]int {
	out := map[int]int{}
	for i, c := range cores {
		threadsPerNode := len(cores) * len(c.threads)
		cacheDir := filepath.Join(cpuRoot, "cpu"+strconv.Itoa(c.threads[0]), "cache")
		entries, err := os.ReadDir(cacheDir)
		if err != nil {
			return out
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), "index") {
				continue
			}
			id, level, shared, err := readCache(filepath.Join(cacheDir, e.Name()))
			if err != nil {
				return out
			}
			if level <= 2 || shared == threadsPerNode {
				continue
			}
			if _, seen := out[i]; !seen {
				out[i] = id
			}
		}
	}
	return out
}

func readCache(dir string) (id, level, shared int, err error) {
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		return strings.TrimSpace(string(b)), err
	}
	s, err := read("id")
	if err != nil {
		return 0, 0, 0, err
	}
	if id, err = strconv.Atoi(s); err != nil {
		return 0, 0, 0, err
	}
	if s, err = read("level"); err != nil {
		return 0, 0, 0, err
	}
	if level, err = strconv.Atoi(s); err != nil {
		return 0, 0, 0, err
	}
	if s, err = read("shared_cpu_map"); err != nil {
		return 0, 0, 0, err
	}
	for _, word := range strings.Split(s, ",") {
		m, err := strconv.ParseUint(strings.TrimSpace(word), 16, 64)
		if err != nil {
			return 0, 0, 0, err
		}
		shared += bits.OnesCount64(m)
	}
	return id, level, shared, nil
}
