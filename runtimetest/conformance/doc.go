// Package conformance is the test suite every implementation of the runtime
// port (core.Runtime) must pass: the real CRI adapter against containerd
// 1.6 and 2.x, and the simulated runtime in package runtimetest alike. It
// keeps the simulation honest: a behaviour the suite checks is one that
// embedders can rely on whichever runtime they run.
//
// Run it from a test of the implementation:
//
//	func TestConformance(t *testing.T) {
//		rt := newMyRuntime(t)
//		conformance.Run(t, conformance.Target{
//			Runtime: rt,
//			Image:   "localhost/busybox:latest",
//			Cgroup:  readCgroup, // or nil to skip the cgroup checks
//			Events:  true,       // the runtime streams container events
//		})
//	}
//
// The suite runs in real time: containers exit, stop and time out as real
// processes do, so a simulated runtime under test must use a real clock.
// Every case creates its own sandboxes with names unique to the run and
// removes them when it ends, so the suite may share a runtime with other
// tests.
//
// What is checked: runtime status and version; sandbox lifecycle (run,
// list, status, stop, remove, idempotent stop and remove); container
// lifecycle (create, start, exit codes and reasons, stop with a grace
// period that is honoured, removal); labels and annotations that round-trip
// to core.SandboxInfoFromLabels and core.ContainerInfoFromLabels; list
// filters; exec-sync results and exit codes; resource limits visible in the
// container's cgroup and changed by UpdateContainerResources; container
// stats; core.ErrNotFound for unknown IDs and images; and, when the runtime
// offers it, the container event stream.
package conformance
