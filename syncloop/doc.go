// Package syncloop drives each pod toward its spec: one worker per pod
// creates the sandbox, runs init, sidecar and regular containers under the
// restart policy with back-off, and terminates the pod gracefully.
//
// It is built in layers, each usable alone:
//
//   - Loop is the kubelet's sync loop: it takes the pod sources'
//     core.PodUpdates (ADD, UPDATE, REMOVE, DELETE, RECONCILE), admits each
//     new pod against the active ones (Admitter; a rejected pod never runs
//     and gets a Failed status through a PodStatusSetter), routes updates
//     to the pods' workers, wakes a pod's worker for each PLEG event and
//     probe change (SyncPod), and at housekeeping forgets terminated pods
//     that no source wants, kills runtime pods that no source wants (left
//     by an agent that restarted; OrphanPods rebuilds them from their
//     labels) once every source is ready, and runs its Housekeepers. It
//     answers IsPodDeleted and IsPodTerminated for garbage collection and
//     the status manager, and SourcesReady: the sources are ready and
//     every pod they sent was handled, which is what other cleanups of
//     things no source wants (container GC, volumes, CPUs) should wait for.
//   - Workers: one goroutine per pod. Updates from pod sources, PLEG
//     events and probes are coalesced (the newest spec wins, a kill is
//     never lost), a pod's syncs never overlap, and its state moves one
//     way: Syncing → Terminating → Terminated (State, States). Each sync
//     waits for a runtime status observed after the previous sync ended
//     (StatusSource, satisfied by pleg.Cache; a source that can refresh one
//     pod, StatusRefresher, is asked to rather than waited for). A kill
//     interrupts a sync in flight; a shorter grace period interrupts a
//     termination in flight and restarts it (EffectiveGracePeriod: a grace
//     period only shrinks, never below 1 s). A pod never starts while
//     another pod of its name has not terminated (an edited static pod).
//     Failed syncs are retried after BackOffPeriod, healthy pods resynced
//     every ResyncInterval, both with up to 50 % jitter; a pod whose
//     restarts are held back (WaitError) syncs again when the back-off
//     ends.
//   - Plan is the deterministic core: the kubelet's computePodActions as a
//     pure function of the pod, its runtime status (core.PodStatus) and
//     probe and back-off results. It returns PodActions: kill the pod,
//     replace the sandbox, kill or reset containers, start init containers
//     one at a time, sidecars and regular containers per restart policy,
//     with the restart counts, the containers held back and, when nothing
//     more will run, the pod's outcome.
//   - The work itself is a Syncer: SyncPod, SyncTerminatingPod,
//     SyncTerminatedPod, called only from the pod's worker. Driver is the
//     Syncer over the runtime: SyncPod carries out one Plan (pulling images
//     the pull policy allows, with image-pull back-off; translating with
//     crispec; counting restarts on from the log directory when the runtime
//     lost a container; running postStart hooks and killing the container
//     when one fails), and SyncTerminatingPod runs each running
//     container's preStop hook and stops it within what is left of the
//     grace period (never less than MinimumStopGracePeriod), regular
//     containers in parallel, then sidecars last-declared first
//     (TerminationOrder), then the sandbox. Waiting tells the status
//     manager which containers wait, with the kubelet's reasons. With
//     DriverConfig.Volumes (volumemgr's Manager) SyncPod mounts the pod's
//     volumes before it creates anything (the containers wait in
//     ContainerCreating with the mount error until they are), the
//     containers' mounts get the volumes' host paths and safe subPaths,
//     and SyncTerminatedPod waits for the volumes to be unmounted.
//   - Admission decides whether a new pod may run, as the kubelet's
//     canAdmitPod: AdmitHandlers asked in order, the first rejection wins,
//     and rejections are counted in kubelet_admission_rejections_total.
//     Other subsystems (eviction, cpumanager) plug in with AddHandler.
//     NodeFit is the kubelet's predicate handler: OS, resources summed as
//     the scheduler sums them (OutOfcpu, OutOfmemory, OutOfpods, ...), node
//     selector and required affinity, node name, host ports and NoExecute
//     taints, with the kubelet's reasons and messages; the loop fails a
//     rejected pod with RejectedStatus and never starts it.
//   - HookRunner runs lifecycle handlers as the kubelet: exec, httpGet (any
//     HTTP answer succeeds) and sleep.
//   - ProbeManager runs each running container's liveness, readiness and
//     startup probes as the kubelet's prober does: one worker per probe of
//     each container instance, every periodSeconds after
//     initialDelaySeconds (with first-round jitter after an agent
//     restart), successThreshold/failureThreshold in a row, liveness and
//     readiness held until the startup probe succeeds, no more probing
//     after a liveness failure or a startup decision. The driver starts and
//     stops its workers from each sync's status (ProbeSource) and plans
//     with its Results; Ready and Started feed the pod's status
//     (statusmgr.ProbeState); OnChange
//     wakes the pod's worker. Each attempt is a Prober call (ProbeRunner:
//     exec through core.ExecSyncer, httpGet, tcpSocket, grpc).
//   - PlanGC is the container garbage collector's deterministic core: from
//     the runtime's listing, the pod log directories, a GCPolicy (the
//     kubelet's MinAge, MaxPerPodContainer, MaxContainers) and what
//     GCPodState says of each pod (the Loop answers), it returns the dead
//     containers, sandboxes and pod log directories to remove, each with
//     its reason. ContainerGC carries a plan out on the runtime
//     (GarbageCollect, every minute in the kubelet), stopping containers
//     in an unknown state first and removing each container's log files
//     with it.
//   - OrphanPods finds, after a restart, the pods running in the runtime
//     that no source wants, rebuilt from labels and annotations (name,
//     namespace, UID, grace periods, containers with their preStop
//     handlers); the Loop has the workers kill them within 1 s, as the
//     kubelet does.
//   - BackOff holds back restarts of crashing containers (CrashLoopBackOff:
//     a first restart at once, then 10 s doubling to 300 s, reset by a run
//     of 10 min) and image pulls that failed (ImagePullBackOff), with the
//     kubelet's keys and messages (CrashLoopBackOffMessage,
//     ImagePullBackOffMessage).
//
// # Wiring
//
//	probes, _ := syncloop.NewProbeManager(syncloop.ProbeManagerConfig{Runner: &syncloop.ProbeRunner{Exec: rt},
//		OnChange: func(uid types.UID, _ syncloop.ProbeKind, _ string, _ syncloop.ProbeResult) { loop.SyncPod(uid) }})
//	driver, _ := syncloop.NewDriver(syncloop.DriverConfig{Runtime: rt, Probes: probes})
//	workers, _ := syncloop.NewWorkers(syncloop.WorkersConfig{Syncer: driver, Status: p.Cache()})
//	fit, _ := syncloop.NewNodeFit(syncloop.NodeFitConfig{Node: getNode})
//	adm, _ := syncloop.NewAdmission(syncloop.AdmissionConfig{Handlers: []syncloop.AdmitHandler{fit}})
//	loop, _ := syncloop.NewLoop(syncloop.LoopConfig{Updates: updates, Events: p.Watch().Events(),
//		Workers: workers, Admission: adm, Runtime: rt, Housekeepers: []syncloop.Housekeeper{driver}})
//	go probes.Run(ctx); go workers.Run(ctx); go loop.Run(ctx)
//
// examples/node wires all of it with the PLEG.
//
// # Metrics
//
// Through each Config's Registerer (nil: none), with the kubelet's names:
// kubelet_pod_start_duration_seconds (observed once per pod, when a sync
// first sees one of its regular containers running, counted from the
// kubernetes.io/config.seen annotation or the pod's first update),
// kubelet_pod_worker_duration_seconds{operation_type},
// kubelet_pod_worker_start_duration_seconds, kubelet_started_pods_total,
// kubelet_started_containers_total{container_type} and their _errors_total,
// prober_probe_total and prober_probe_duration_seconds,
// kubelet_admission_rejections_total{reason}. The runtime's operations
// are counted by wrapping it with runtimemetrics.
package syncloop
