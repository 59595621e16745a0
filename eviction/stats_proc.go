package eviction

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// cgroupMemory is what a memory cgroup reports.
type cgroupMemory struct {
	// usage is memory.usage_in_bytes (v1) or memory.current (v2).
	usage uint64
	// inactiveFile is total_inactive_file (v1, the cgroup and its
	// descendants) or inactive_file (v2) of memory.stat.
	inactiveFile uint64
	// limit is memory.limit_in_bytes (v1) or memory.max (v2); above 2^62
	// it is no limit.
	limit uint64
}

// workingSet is the memory that cannot easily be reclaimed, as cAdvisor
// defines it for the kubelet: usage less inactive file-backed pages, and
// never below zero.
func (m cgroupMemory) workingSet() uint64 {
	return m.usage - min(m.usage, m.inactiveFile)
}

// readMeminfo reads /proc/meminfo into bytes by field ("MemTotal").
// Fields without a unit (HugePages_Total) are kept as they are.
func readMeminfo(path string) (map[string]uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseMeminfo(data)
}

// parseMeminfo parses the text of /proc/meminfo: "MemTotal:  24731708 kB".
func parseMeminfo(data []byte) (map[string]uint64, error) {
	out := make(map[string]uint64, 64)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("meminfo: %s: %w", key, err)
		}
		if len(fields) > 1 && fields[1] == "kB" {
			v *= 1024
		}
		out[key] = v
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// meminfoMemory stands for the root cgroup of a unified hierarchy that
// has no memory.stat, from what /proc/meminfo says of the whole machine,
// in the terms the root's memory.stat would use: usage is anonymous plus
// file-backed pages (AnonPages; Buffers, Cached and SwapCached), inactive
// file pages are Inactive(file).
func meminfoMemory(info map[string]uint64) cgroupMemory {
	return cgroupMemory{
		usage:        info["AnonPages"] + info["Buffers"] + info["Cached"] + info["SwapCached"],
		inactiveFile: info["Inactive(file)"],
		limit:        info["MemTotal"],
	}
}

// readUintFile reads a file holding one unsigned number.
func readUintFile(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
}

// readLoadavgTasks reads the number of tasks from /proc/loadavg.
func readLoadavgTasks(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return parseLoadavgTasks(string(data))
}

// parseLoadavgTasks reads the total of the fourth field of /proc/loadavg
// ("1.36 3.49 4.53 2/3518 3715089" has 3518 tasks): every thread of every
// process, as the kubelet counts them. The kernel's sysinfo cuts the count
// at 65535, loadavg does not.
func parseLoadavgTasks(s string) (uint64, error) {
	fields := strings.Fields(s)
	if len(fields) < 5 {
		return 0, fmt.Errorf("loadavg %q has %d fields, want 5", strings.TrimSpace(s), len(fields))
	}
	_, total, ok := strings.Cut(fields[3], "/")
	if !ok {
		return 0, fmt.Errorf("loadavg %q: fourth field is not running/total", strings.TrimSpace(s))
	}
	n, err := strconv.ParseUint(total, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("loadavg %q: %w", strings.TrimSpace(s), err)
	}
	return n, nil
}
