package cpumanager

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// cgroupBackend does the I/O of one cgroup version. Paths are cgroupfs
// paths below the cgroup root of the host ("/kubepods/burstable").
// Implementations go through github.com/containerd/cgroups/v3 for every
// cgroup read and write.
type cgroupBackend interface {
	version() int
	// exists reports whether the cgroup exists (in every hierarchy the
	// kubelet checks, on cgroup v1).
	exists(path string) (bool, error)
	// ensure creates the cgroup (and its missing ancestors) and writes rc,
	// or writes rc to the existing cgroup.
	ensure(path string, rc *ResourceConfig) error
	// pids lists the processes in the cgroup and its descendants, in any
	// hierarchy, sorted and without duplicates. A missing cgroup has none.
	pids(path string) ([]int, error)
	// remove deletes the cgroup and its descendants; they must hold no
	// process. A missing cgroup is not an error.
	remove(path string) error
	// children lists the names of the child cgroups, in any hierarchy,
	// sorted and without duplicates.
	children(path string) ([]string, error)
}

// hugePagesDir lists the huge page sizes of the kernel.
const hugePagesDir = "/sys/kernel/mm/hugepages"

// detectHugePageSizes reads the node's huge page sizes in bytes from dir
// ("hugepages-2048kB" entries). A missing dir means none.
func detectHugePageSizes(dir string) ([]int64, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read huge page sizes: %w", err)
	}
	var sizes []int64
	for _, e := range entries {
		kb, ok := strings.CutPrefix(e.Name(), "hugepages-")
		if !ok {
			continue
		}
		kb, ok = strings.CutSuffix(kb, "kB")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(kb, 10, 64)
		if err != nil || n <= 0 {
			continue
		}
		sizes = append(sizes, n*1024)
	}
	slices.Sort(sizes)
	return sizes, nil
}

// hugePageLimitList gives every node page size its limit from limits, zero
// for the sizes missing there, in size order. Sizes in limits the node
// does not have are dropped: the kernel has no file for them.
func hugePageLimitList(limits map[int64]int64, nodeSizes []int64) []hugePageLimit {
	if limits == nil {
		return nil
	}
	out := make([]hugePageLimit, 0, len(nodeSizes))
	for _, size := range nodeSizes {
		out = append(out, hugePageLimit{size: hugePageSizeName(size), limit: uint64(max(limits[size], 0))})
	}
	return out
}

type hugePageLimit struct {
	size  string
	limit uint64
}

// cgChildDirs lists the directories in dir; a missing dir has none.
func cgChildDirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func cgDirExists(p string) (bool, error) {
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return st.IsDir(), nil
}

// joinCgroupPath joins a mount point and a cgroupfs path.
func joinCgroupPath(mount, path string) string {
	return filepath.Join(mount, filepath.Clean("/"+path))
}
