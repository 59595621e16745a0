// Package embedtest shows, in its tests, how to embed nodekit's
// subsystems in a Go test: the simulated runtime (runtimetest), the PLEG
// and the sync loop run inside a testing/synctest bubble, where the real
// clock they use by default is virtual. Minutes of a pod's life — a
// crash-looping container's whole back-off schedule, a termination grace
// period — pass in milliseconds, and happen at exactly the times the
// kubelet's rules say, so a test can assert them to the nanosecond.
//
// The package has no code of its own: read agent_test.go (the wiring),
// crashloop_test.go and edit_test.go (the tests), and README.md (the
// technique, and what not to do).
package embedtest
