package testenv

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nodekit/nodekit/runtimetest/conformance"
)

// CrictlPath is the crictl that hack/testenv.sh builds, or $NODEKIT_CRICTL.
func CrictlPath() string {
	if p := os.Getenv("NODEKIT_CRICTL"); p != "" {
		return p
	}
	return filepath.Join(cacheDir(), "crictl-v1.37.0", "bin", "crictl")
}

// CgroupLimits reads the CPU and memory limits the kernel enforces on
// process pid, from the cgroups /proc/<pid>/cgroup names: cgroup v1
// controllers where they are mounted, else the unified (v2) hierarchy.
func CgroupLimits(pid int) (conformance.Cgroup, error) {
	paths, err := procCgroups(pid)
	if err != nil {
		return conformance.Cgroup{}, err
	}
	var cg conformance.Cgroup
	if mem, ok := paths["memory"]; ok {
		if cg.MemoryLimitBytes, err = readInt(filepath.Join("/sys/fs/cgroup/memory", mem, "memory.limit_in_bytes")); err != nil {
			return cg, err
		}
		cpu := paths["cpu"]
		dir := filepath.Join("/sys/fs/cgroup/cpu", cpu)
		for file, dst := range map[string]*int64{"cpu.shares": &cg.CPUShares, "cpu.cfs_quota_us": &cg.CPUQuota, "cpu.cfs_period_us": &cg.CPUPeriod} {
			if *dst, err = readInt(filepath.Join(dir, file)); err != nil {
				return cg, err
			}
		}
		return cg, nil
	}
	unified, ok := paths[""]
	if !ok {
		return cg, fmt.Errorf("process %d: no memory cgroup in /proc/%d/cgroup", pid, pid)
	}
	dir := filepath.Join("/sys/fs/cgroup", unified)
	b, err := os.ReadFile(filepath.Join(dir, "memory.max"))
	if err != nil {
		return cg, err
	}
	if s := strings.TrimSpace(string(b)); s != "max" {
		if cg.MemoryLimitBytes, err = strconv.ParseInt(s, 10, 64); err != nil {
			return cg, fmt.Errorf("%s/memory.max: %w", dir, err)
		}
	}
	weight, err := readInt(filepath.Join(dir, "cpu.weight"))
	if err != nil {
		return cg, err
	}
	cg.CPUWeight = weight
	b, err = os.ReadFile(filepath.Join(dir, "cpu.max"))
	if err != nil {
		return cg, err
	}
	quota, period, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	if quota != "max" {
		cg.CPUQuota, _ = strconv.ParseInt(quota, 10, 64)
	} else {
		cg.CPUQuota = -1
	}
	cg.CPUPeriod, _ = strconv.ParseInt(period, 10, 64)
	return cg, nil
}

// procCgroups maps each controller of pid (the unified hierarchy as "") to
// its cgroup path.
func procCgroups(pid int) (map[string]string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, ctrl := range strings.Split(parts[1], ",") {
			out[ctrl] = parts[2]
		}
	}
	return out, sc.Err()
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}
