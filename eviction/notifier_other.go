//go:build !linux

package eviction

import "context"

// runEventfd: memory cgroup events are Linux's.
func (n *Notifier) runEventfd(context.Context) error { return notLinux() }
