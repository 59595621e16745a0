//go:build !linux

package imagegc

import (
	"fmt"

	"github.com/nodekit/nodekit/core"
)

// statfs is Linux's; elsewhere Config.Statfs must be given.
func statfs(path string) (FsStats, error) {
	return FsStats{}, fmt.Errorf("statfs %s: %w: only on Linux; set Config.Statfs", path, core.ErrUnimplemented)
}
