//go:build !linux

package eviction

import (
	"fmt"
	"os"
	"runtime"

	"github.com/nodekit/nodekit/core"
)

// notLinux: cgroups, statfs and the kernel's counters are Linux's.
func notLinux() error {
	return fmt.Errorf("eviction: stats: %w on %s", core.ErrUnimplemented, runtime.GOOS)
}

func detectCgroupVersion(string) (int, error) { return 0, notLinux() }

func readCgroupMemory(string, int, string) (cgroupMemory, bool, error) {
	return cgroupMemory{}, false, notLinux()
}

func readCgroupTasks(string, int, string) (uint64, bool, error) { return 0, false, notLinux() }

func statFilesystem(string) (FsStats, uint64, error) { return FsStats{}, 0, notLinux() }

// fileUsage counts the length of the entry where the allocated blocks are
// not known.
func fileUsage(path string) (uint64, bool, error) {
	st, err := os.Lstat(path)
	if os.IsNotExist(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return uint64(st.Size()), true, nil
}

func sysinfoProcs() (uint64, error) { return 0, notLinux() }
