package cri_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/cri"
)

// New says plainly when the runtime is not there.
func ExampleNew() {
	_, err := cri.New(context.Background(), cri.Config{Endpoint: "unix:///run/nodekit-example/absent.sock"})
	fmt.Println(errors.Is(err, core.ErrUnavailable))
	fmt.Println(err)
	// Output:
	// true
	// cri: socket /run/nodekit-example/absent.sock does not exist (is the runtime running?): runtime unavailable
}
