package pleg

import (
	"fmt"
	"testing"

	"github.com/nodekit/nodekit/core"
)

// Every pair of states, against the table in transition's documentation.
func TestTransition(t *testing.T) {
	const (
		S = core.ContainerStarted
		D = core.ContainerDied
		R = core.ContainerRemoved
		C = core.ContainerChanged
	)
	want := map[[2]state][]core.PodLifecycleEventType{
		{nonExistent, nonExistent}: nil, {nonExistent, running}: {S}, {nonExistent, exited}: {D}, {nonExistent, created}: nil, {nonExistent, unknown}: {C},
		{running, nonExistent}: {D, R}, {running, running}: nil, {running, exited}: {D}, {running, created}: nil, {running, unknown}: {C},
		{exited, nonExistent}: {R}, {exited, running}: {S}, {exited, exited}: nil, {exited, created}: nil, {exited, unknown}: {C},
		{created, nonExistent}: {R}, {created, running}: {S}, {created, exited}: {D}, {created, created}: nil, {created, unknown}: {C},
		{unknown, nonExistent}: {D, R}, {unknown, running}: {S}, {unknown, exited}: {D}, {unknown, created}: nil, {unknown, unknown}: nil,
	}
	if len(want) != 25 {
		t.Fatalf("table has %d cases, want all 25", len(want))
	}
	for pair, w := range want {
		evs, n := transition(pair[0], pair[1])
		got := evs[:n]
		if fmt.Sprint(got) != fmt.Sprint(w) && !(len(got) == 0 && len(w) == 0) {
			t.Errorf("%s → %s: %v, want %v", pair[0], pair[1], got, w)
		}
	}
}
