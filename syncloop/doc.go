// Package syncloop drives each pod toward its spec: one worker per pod
// creates the sandbox, runs init, sidecar and regular containers under the
// restart policy with back-off, runs probes and lifecycle hooks, admits or
// rejects pods, and terminates them gracefully.
//
// The package holds no code yet; its API is being designed against the
// runtime port in package core.
package syncloop
