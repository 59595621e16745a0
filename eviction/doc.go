// Package eviction watches node resource signals (memory, disk, PIDs)
// against soft and hard thresholds and chooses which pods to evict under
// pressure, explaining each decision.
//
// The package holds no code yet.
package eviction
