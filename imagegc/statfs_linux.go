package imagegc

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// statfs measures the filesystem holding path as cAdvisor does for the
// kubelet: capacity is every block, available those an unprivileged user
// may still allocate, each times the fragment size (the block size where
// there is none).
func statfs(path string) (FsStats, error) {
	var s unix.Statfs_t
	if err := unix.Statfs(path, &s); err != nil {
		return FsStats{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	bs := uint64(s.Frsize)
	if bs == 0 {
		bs = uint64(s.Bsize)
	}
	return FsStats{CapacityBytes: s.Blocks * bs, AvailableBytes: s.Bavail * bs}, nil
}
