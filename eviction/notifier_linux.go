package eviction

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/containerd/cgroups/v3/cgroup1"
	"golang.org/x/sys/unix"

	"github.com/nodekit/nodekit/core"
)

// runEventfd has the kernel watch the threshold (cgroup v1): an eventfd
// registered on memory.usage_in_bytes through cgroup.event_control, which
// the kernel signals each time usage crosses the threshold. A new
// threshold closes the eventfd, which unregisters it, and registers
// another.
func (n *Notifier) runEventfd(ctx context.Context) error {
	dir := filepath.Join(n.cfg.Mount, string(cgroup1.Memory), n.group)
	for {
		th := n.Threshold()
		if th == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-n.changed:
				continue
			}
		}
		f, err := registerThreshold(n.cfg.Mount, n.group, th)
		if err != nil {
			return fmt.Errorf("eviction: notifier: cgroup %s: threshold %d: %w", n.group, th, err)
		}
		n.armedHook(th)
		done := make(chan error, 1)
		go func() { done <- n.readEvents(f, dir) }()
		for rearm := false; !rearm; {
			select {
			case <-ctx.Done():
				f.Close()
				<-done
				return ctx.Err()
			case <-n.changed:
				rearm = n.Threshold() != th
			case err := <-done:
				f.Close()
				return err
			}
		}
		f.Close()
		<-done
	}
}

// readEvents reports a crossing for each read of the eventfd, until the
// eventfd is closed (nil) or the cgroup is removed (the kernel signals the
// eventfd once more then; an error wrapping core.ErrNotFound).
func (n *Notifier) readEvents(f *os.File, dir string) error {
	buf := make([]byte, 8) // the eventfd's counter
	for {
		if _, err := f.Read(buf); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return nil
			}
			return fmt.Errorf("eviction: notifier: cgroup %s: read eventfd: %w", n.group, err)
		}
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("eviction: notifier: cgroup %s was removed: %w", n.group, core.ErrNotFound)
		}
		n.notify()
	}
}

// registerThreshold registers a memory threshold event for the cgroup at
// group in the v1 memory hierarchy below mount and returns its eventfd,
// non-blocking so that reading it waits in Go's poller and closing it
// ends the read.
func registerThreshold(mount, group string, threshold uint64) (*os.File, error) {
	cg, err := cgroup1.Load(cgroup1.StaticPath(group), cgroup1.WithHierarchy(hierarchyOf(cgroup1.NewMemory(mount))))
	if errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return nil, fmt.Errorf("no memory cgroup %s below %s: %w", group, mount, core.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	efd, err := cg.RegisterMemoryEvent(cgroup1.MemoryThresholdEvent(threshold, false))
	if err != nil {
		return nil, fmt.Errorf("register memory threshold event: %w", err)
	}
	fd := int(efd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	return os.NewFile(uintptr(fd), "memory threshold eventfd"), nil
}
