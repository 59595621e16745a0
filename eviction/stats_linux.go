package eviction

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"golang.org/x/sys/unix"
)

// detectCgroupVersion tells the cgroup version from the file system
// mounted at mount: cgroup2 is the unified hierarchy (v2); anything else
// (the tmpfs that holds one directory per v1 controller, with perhaps a
// spare unified hierarchy beside them) is v1.
func detectCgroupVersion(mount string) (int, error) {
	var s unix.Statfs_t
	if err := unix.Statfs(mount, &s); err != nil {
		return 0, err
	}
	if s.Type == unix.CGROUP2_SUPER_MAGIC {
		return 2, nil
	}
	return 1, nil
}

// hierarchyOf lists the v1 controllers a cgroup is loaded with.
func hierarchyOf(subsystems ...cgroup1.Subsystem) cgroup1.Hierarchy {
	return func() ([]cgroup1.Subsystem, error) { return subsystems, nil }
}

// readCgroupMemory reads the memory of the cgroup at cgPath (a path below
// the cgroup root of the host, "/" for the root). found is false when
// the cgroup does not exist, or has no memory controller.
func readCgroupMemory(mount string, version int, cgPath string) (m cgroupMemory, found bool, err error) {
	if version == 2 {
		return readMemoryV2(mount, cgPath)
	}
	return readMemoryV1(mount, cgPath)
}

// readMemoryV1 reads the cgroup in the v1 memory hierarchy
// (<mount>/memory): memory.usage_in_bytes, memory.limit_in_bytes and the
// hierarchical total_inactive_file of memory.stat.
func readMemoryV1(mount, cgPath string) (cgroupMemory, bool, error) {
	mem := cgroup1.NewMemory(mount, cgroup1.IgnoreModules("memsw", "kmem", "kmem.tcp"))
	cg, err := cgroup1.Load(cgroup1.StaticPath(filepath.Clean("/"+cgPath)), cgroup1.WithHierarchy(hierarchyOf(mem)))
	if errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return cgroupMemory{}, false, nil
	}
	if err != nil {
		return cgroupMemory{}, false, err
	}
	st, err := cg.Stat()
	if errors.Is(err, fs.ErrNotExist) {
		return cgroupMemory{}, false, nil // removed while it was read
	}
	if err != nil {
		return cgroupMemory{}, false, err
	}
	if st.Memory == nil || st.Memory.Usage == nil {
		return cgroupMemory{}, false, nil
	}
	return cgroupMemory{
		usage:        st.Memory.Usage.Usage,
		inactiveFile: st.Memory.TotalInactiveFile,
		limit:        st.Memory.Usage.Limit,
	}, true, nil
}

// readMemoryV2 reads the cgroup in the unified hierarchy: memory.current,
// memory.max and inactive_file of memory.stat. The root cgroup has no
// memory.current: its usage is anon plus file of its memory.stat, as runc
// reports it.
func readMemoryV2(mount, cgPath string) (cgroupMemory, bool, error) {
	group := filepath.Clean("/" + cgPath)
	dir := filepath.Join(mount, group)
	if _, err := os.Stat(filepath.Join(dir, "memory.stat")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return cgroupMemory{}, false, nil
		}
		return cgroupMemory{}, false, err
	}
	mgr, err := cgroup2.Load(group, cgroup2.WithMountpoint(mount))
	if err != nil {
		return cgroupMemory{}, false, err
	}
	st, err := mgr.StatFiltered(cgroup2.StatMemory)
	if err != nil {
		return cgroupMemory{}, false, err
	}
	if st.Memory == nil {
		return cgroupMemory{}, false, nil
	}
	usage := st.Memory.Usage
	if _, err := os.Stat(filepath.Join(dir, "memory.current")); errors.Is(err, fs.ErrNotExist) {
		usage = st.Memory.Anon + st.Memory.File
	}
	return cgroupMemory{usage: usage, inactiveFile: st.Memory.InactiveFile, limit: st.Memory.UsageLimit}, true, nil
}

// readCgroupTasks counts the tasks (threads) in the cgroup at cgPath and
// its descendants: pids.current of the pids controller, or the tasks
// listed in the cgroup's memory hierarchy (v1) or cgroup.threads files
// (v2) where the pids controller is not there. found is false when the
// cgroup does not exist.
func readCgroupTasks(mount string, version int, cgPath string) (uint64, bool, error) {
	group := filepath.Clean("/" + cgPath)
	if version == 2 {
		dir := filepath.Join(mount, group)
		if _, err := os.Stat(dir); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return 0, false, nil
			}
			return 0, false, err
		}
		mgr, err := cgroup2.Load(group, cgroup2.WithMountpoint(mount))
		if err != nil {
			return 0, false, err
		}
		if _, err := os.Stat(filepath.Join(dir, "pids.current")); err == nil {
			st, err := mgr.StatFiltered(cgroup2.StatPids)
			if err != nil {
				return 0, false, err
			}
			return st.Pids.Current, true, nil
		}
		threads, err := mgr.Threads(true)
		if err != nil {
			return 0, false, err
		}
		return uint64(len(threads)), true, nil
	}

	pids := cgroup1.NewPids(mount)
	cg, err := cgroup1.Load(cgroup1.StaticPath(group), cgroup1.WithHierarchy(hierarchyOf(pids)))
	switch {
	case err == nil:
		st, err := cg.Stat()
		if err == nil && st.Pids != nil {
			return st.Pids.Current, true, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, false, err
		}
	case !errors.Is(err, cgroup1.ErrCgroupDeleted):
		return 0, false, err
	}
	mem := cgroup1.NewMemory(mount)
	cg, err = cgroup1.Load(cgroup1.StaticPath(group), cgroup1.WithHierarchy(hierarchyOf(mem)))
	if errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	tasks, err := cg.Tasks(cgroup1.Memory, true)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return uint64(len(tasks)), true, nil
}

// statFilesystem measures the filesystem holding path with statfs, as
// cAdvisor does for the kubelet: capacity is all blocks, available those
// an unprivileged user may still allocate, each times the fragment size
// (the block size where there is none). dev is the device of path, to
// tell filesystems apart.
func statFilesystem(path string) (FsStats, uint64, error) {
	var s unix.Statfs_t
	if err := unix.Statfs(path, &s); err != nil {
		return FsStats{}, 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return FsStats{}, 0, fmt.Errorf("stat %s: %w", path, err)
	}
	bs := uint64(s.Frsize)
	if bs == 0 {
		bs = uint64(s.Bsize)
	}
	return FsStats{
		CapacityBytes:  s.Blocks * bs,
		AvailableBytes: s.Bavail * bs,
		Inodes:         s.Files,
		InodesFree:     s.Ffree,
	}, uint64(st.Dev), nil
}

// fileUsage is what one entry uses as du counts it, without following a
// symbolic link: its allocated 512-byte blocks, and one inode. ok is false
// when it does not exist.
func fileUsage(path string) (bytes uint64, ok bool, err error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return 0, false, nil
		}
		return 0, false, fmt.Errorf("stat %s: %w", path, err)
	}
	return uint64(st.Blocks) * 512, true, nil
}

// sysinfoProcs is the number of processes sysinfo(2) reports (at most
// 65535).
func sysinfoProcs() (uint64, error) {
	var info unix.Sysinfo_t
	if err := unix.Sysinfo(&info); err != nil {
		return 0, fmt.Errorf("sysinfo: %w", err)
	}
	return uint64(info.Procs), nil
}
