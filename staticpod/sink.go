package staticpod

import (
	"context"

	v1 "k8s.io/api/core/v1"
)

// Sink takes a source's complete set of pods each time it changes; Merger
// implements it.
type Sink interface {
	Set(ctx context.Context, source string, pods []*v1.Pod) error
}

var _ Sink = (*Merger)(nil)
