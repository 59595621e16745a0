// Package runtimetest is an in-memory CRI runtime: a core.Runtime and
// core.EventStreamer that behaves as containerd's CRI plugin does, as far
// as the runtime port can tell, without processes, images or a network.
// Use it to test code that drives a runtime, and to run node agents on a
// machine without containerd. The conformance suite in
// runtimetest/conformance runs against it and against real containerd
// alike, which keeps it honest.
//
//	rt, err := runtimetest.New(runtimetest.Config{
//		Clock:  fakeClock, // k8s.io/utils/clock/testing; nil: the real clock
//		Images: []string{"busybox"},
//		Events: true,
//	})
//
// # What it simulates
//
// Sandboxes run at once and get an address from 10.88.0.0/16, unless they
// use the host network. Containers are created, started, stopped and
// removed with containerd's states, timestamps, exit codes and reasons
// ("Completed", "Error", "OOMKilled", "StartError"), and containerd's
// rules: a container needs a ready sandbox and a present image; a pod's
// container name and attempt are reserved until the container is removed;
// stopping a sandbox kills its containers; removing a running container or
// a ready sandbox stops it first; removing what is not there succeeds;
// IDs may be abbreviated to a unique prefix. Images are references
// normalised as containerd does ("busybox" is
// "docker.io/library/busybox:latest") with IDs and repo digests derived
// from the reference. Stats report what tests set with SetUsage; CPU time
// accumulates on the injected clock.
//
// # What containers do
//
// A container's process is read from its command (Command then Args) when
// it is created. The simulated shell understands:
//
//	sleep N                   runs N seconds (suffixes s m h d; "infinity")
//	true, false, echo ...     end at once with 0, 1, 0
//	sh -c SCRIPT              (also bash, ash, dash; busybox APPLET ...)
//
// and in scripts, statements joined by ; && || and newlines: exit [N],
// sleep, true, false, :, echo (with >&2), trap ACTION TERM, exec,
// while/until CONDITION; do ...; done, for NAME in ...; do ...; done,
// if ...; then ...; elif ...; else ...; fi, and break. Anything else
// succeeds at once. Nothing in the simulation changes while a loop runs,
// so a loop whose body ran once runs forever. A syntax error ends the shell
// with status 2. So:
//
//	["sh", "-c", "exit 3"]                 exits at once with 3, reason Error
//	["sh", "-c", "sleep 5; exit 1"]        runs 5 s, then exits with 1
//	["sleep", "3600"]                      exits with 0 after an hour
//	["sh", "-c", "while true; do sleep 1; done"]   runs until stopped
//	no command, or a program of its own    a service: runs until stopped
//
// The stop signal (SIGTERM) is answered as by real processes. A trap runs
// its action once the current foreground sleep ends, and ends the process
// if the action exits; an empty action ignores the signal. Without a trap,
// PID 1 of its own PID namespace (the container's NamespaceOptions.Pid is
// CONTAINER, as the kubelet sets it) ignores the signal, so StopContainer
// waits out its timeout and kills it (137); a process in the pod's PID
// namespace (Pid POD, the zero value) dies of it (143). Services end on
// the signal with 143.
//
// # Scripting containers
//
// SetBehavior overrides the command for the containers it matches by
// image, pod name and container name, created from then on:
//
//	rt.SetBehavior(runtimetest.Match{Container: "app"}, runtimetest.Behavior{
//		Exit:       &runtimetest.Exit{After: 5 * time.Second, Code: 1}, // crash after 5 s
//		IgnoreStop: true, // stopping waits out the grace period
//	})
//
// Exit{OOMKilled: true} ends it as the OOM killer does, OnStop says how it
// ends after the stop signal, StartError makes StartContainer fail, and
// Exec answers ExecSync. As every new container (a restart, to the
// kubelet: the next attempt) is matched again, a Behavior with an Exit is a
// crash loop. ExitContainer ends one running container now.
//
// ExecSync runs Behavior.Exec or DefaultExec, the simulated shell: echo
// writes its output, exit N sets the exit code, sleep takes simulated
// time; the call times out as the real one does.
//
// # Time
//
// Every time comes from Config.Clock: timestamps, when containers exit,
// stop grace periods, exec durations and injected delays. With a fake
// clock, a test steps time and the runtime follows: every call sees the
// state at the clock's current time, and the events of exits are emitted
// when the clock reaches them. To know when to step, count the clock's
// waiters: each running container due to end by itself (or by its answer
// to a stop signal) holds one, and so does each StopContainer waiting for
// its grace period, each ExecSync running a command that takes time, and
// each call held by an injected delay. The runtime starts no goroutine of
// its own except to apply an exit when its timer fires.
//
// # Faults
//
// InjectFault makes calls of a method slow, fail, or both, once, a number
// of times or until ClearFaults; Calls counts calls. SetCondition makes
// the runtime or its network not ready, as Status reports it. To simulate
// a runtime that is down:
//
//	err := rt.InjectFault(runtimetest.AllMethods, runtimetest.Fault{Err: core.ErrUnavailable})
//
// # Events
//
// With Config.Events, GetContainerEvents streams what containerd 2 sends:
// created, started, stopped and deleted events for containers and for
// sandboxes, with the sandbox status and the statuses of its containers.
// Without it the call fails with core.ErrUnimplemented, as on containerd
// 1.6. Each stream buffers Config.EventBuffer events; a consumer that falls
// further behind has its stream dropped with core.ErrUnavailable, as a
// server drops a stalled stream, and should relist and subscribe again.
// BreakEventStreams drops every stream at once.
//
// # Reading a pod back
//
// PodStatus reads one pod's core.PodStatus from any runtime, as the PLEG
// would cache it, for tests in which no PLEG runs.
//
// # Guarantees
//
// A Runtime is safe for concurrent use; one mutex guards it, and no call
// holds it while it waits. Every object a call returns is freshly
// allocated, and the runtime keeps copies of what it is given: callers may
// modify both. Listing is linear in the number of objects: a list of n
// containers takes three allocations plus copies of their labels and
// annotations.
//
// It does not run processes, write container logs, enforce resource
// limits, pull from registries, or report network or per-interface stats.
package runtimetest
