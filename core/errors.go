package core

import "errors"

// Error classes of the runtime port. Implementations wrap them with %w and a
// message that names the object and the cause; callers test with errors.Is.
var (
	// ErrNotFound: the sandbox, container or image does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: a sandbox or container with the same name exists.
	ErrAlreadyExists = errors.New("already exists")
	// ErrInvalid: the request cannot be expressed or was rejected as
	// malformed. Retrying the same request will fail again.
	ErrInvalid = errors.New("invalid")
	// ErrUnimplemented: the runtime does not offer this call.
	ErrUnimplemented = errors.New("unimplemented")
	// ErrUnavailable: the runtime cannot be reached or is not ready. Retry
	// later.
	ErrUnavailable = errors.New("runtime unavailable")
	// ErrTimeout: the call, or the command it ran, did not finish in time.
	ErrTimeout = errors.New("timed out")
)
