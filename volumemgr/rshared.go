package volumemgr

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// MakeRShared makes path a mount point with shared propagation, as the
// kubelet makes its root directory at start: bind-mounted onto itself if
// the mount it is on is not shared already. Mounts made under it (volumes)
// can then propagate into containers that ask for HostToContainer or
// Bidirectional propagation.
func MakeRShared(path string) error {
	shared, err := onSharedMount(path)
	if err != nil {
		return err
	}
	if shared {
		return nil
	}
	if err := unix.Mount(path, path, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mount %s onto itself: %w", path, err)
	}
	if err := unix.Mount("", path, "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make %s a shared mount: %w", path, err)
	}
	return nil
}

// onSharedMount reports whether the mount path is on has shared
// propagation.
func onSharedMount(path string) (bool, error) {
	path, err := filepath.EvalSymlinks(path)
	if err != nil {
		return false, err
	}
	mounts, err := mountinfo.GetMounts(nil)
	if err != nil {
		return false, fmt.Errorf("read the mount table: %w", err)
	}
	var best *mountinfo.Info
	for _, m := range mounts {
		if (path == m.Mountpoint || strings.HasPrefix(path, strings.TrimSuffix(m.Mountpoint, "/")+"/")) &&
			(best == nil || len(m.Mountpoint) >= len(best.Mountpoint)) {
			best = m
		}
	}
	if best == nil {
		return false, fmt.Errorf("no mount holds %s", path)
	}
	for _, opt := range strings.Fields(best.Optional) {
		if strings.HasPrefix(opt, "shared:") {
			return true, nil
		}
	}
	return false, nil
}
