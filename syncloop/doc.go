// Package syncloop drives each pod toward its spec: one worker per pod
// creates the sandbox, runs init, sidecar and regular containers under the
// restart policy with back-off, and terminates the pod gracefully.
//
// It is built in layers, each usable alone:
//
//   - Workers: one goroutine per pod. Updates from pod sources, PLEG
//     events and probes are coalesced (the newest spec wins, a kill is
//     never lost), a pod's syncs never overlap, and its state moves one
//     way: Syncing → Terminating → Terminated. Each sync waits for a
//     runtime status observed after the previous one (StatusSource,
//     satisfied by pleg.Cache). A kill interrupts a sync in flight; a
//     shorter grace period interrupts a termination in flight and restarts
//     it (EffectiveGracePeriod: a grace period only shrinks, never below
//     1 s). Failed syncs are retried after BackOffPeriod, healthy pods
//     resynced every ResyncInterval, both with up to 50 % jitter.
//   - Plan is the deterministic core: the kubelet's computePodActions as a
//     pure function of the pod, its runtime status (core.PodStatus) and
//     probe and back-off results. It returns PodActions: kill the pod,
//     replace the sandbox, kill or reset containers, start init containers
//     one at a time, sidecars and regular containers per restart policy,
//     with the restart counts, the containers held back and, when nothing
//     more will run, the pod's outcome.
//   - The work itself is a Syncer: SyncPod, SyncTerminatingPod,
//     SyncTerminatedPod, called only from the pod's worker. Driver is the
//     Syncer over core.Runtime: SyncPod carries out one Plan (pulling
//     images the pull policy allows, translating with crispec), and
//     SyncTerminatingPod stops regular containers in parallel, then
//     sidecars last-declared first (TerminationOrder), all within one
//     grace period, then the sandbox.
//   - BackOff holds back restarts of crashing containers (CrashLoopBackOff:
//     a first restart at once, then 10 s doubling to 300 s, reset by a run
//     of 10 min) and image pulls that failed (ImagePullBackOff), with the
//     kubelet's keys and messages (CrashLoopBackOffMessage,
//     ImagePullBackOffMessage).
//
// # Wiring
//
//	w, err := syncloop.NewWorkers(syncloop.WorkersConfig{Syncer: driver, Status: p.Cache()})
//	go w.Run(ctx)
//	w.Update(syncloop.Update{Type: syncloop.UpdateCreate, Pod: pod})
//	state, _ := w.State(pod.UID) // syncing, terminating, terminated
//
// # Not yet here
//
//   - ProbeRunner runs one probe attempt as the kubelet's prober does:
//     exec through core.ExecSyncer, httpGet (2xx succeeds, redirects
//     followed on the same host only, 10 KiB of body kept, User-Agent
//     kube-probe/1.37), tcpSocket and grpc health.
//
// The probe workers that run probes on their period with thresholds and
// feed Plan, lifecycle hooks, admission, adoption of running containers
// after a restart, container garbage collection and the metrics are being
// built.
package syncloop
