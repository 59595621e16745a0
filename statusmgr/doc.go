// Package statusmgr generates a pod's v1.PodStatus as the kubelet does:
// from the pod's spec, its runtime status, probe results and what the
// sync loop held back, with Kubernetes 1.37's rules and default feature
// gates. It is a deterministic core: Generate is a pure function of its
// Input (time comes in as Input.Now), so the status of any situation can
// be computed, compared and tested without a node.
//
// # What it owns
//
//   - Generate: the whole status. Phase (Pending, Running, Succeeded,
//     Failed) under pod and container restart policies, restartPolicyRules
//     and sidecars; the conditions PodReadyToStartContainers, Initialized,
//     Ready (with readiness gates), ContainersReady, PodScheduled,
//     AllContainersRestarting and DisruptionTarget with reasons, messages,
//     observedGeneration and lastTransitionTime; init, regular and
//     ephemeral container statuses; podIP(s), hostIP(s), startTime, QoS
//     class, pod-level resources.
//   - Phase: the phase alone, from container statuses (the kubelet's
//     getPhase).
//   - CheckTransition: the check the kubelet's status manager makes before
//     it caches a status (no container leaves a terminated state its
//     restart policy keeps it in).
//   - ActiveDeadlineExceeded: the kubelet's activeDeadlineSeconds check,
//     as an Eviction for Generate.
//   - ReadTerminationMessage: the one function here that does I/O: it reads
//     an exited container's termination message from its file or, with
//     FallbackToLogsOnError, from the tail of its CRI log, with the
//     kubelet's limits. Generate calls it through Input.TerminationMessage.
//   - Cache: the newest status of each pod, versioned (see "The cache").
//   - Syncer: pushes the Cache to a Sink, coalesced, batched, retried with
//     back-off and reconciled periodically, measuring
//     kubelet_pod_status_sync_duration_seconds (see "Sinks").
//   - MemorySink: a Sink that keeps what it is given, for standalone
//     agents and tests. kubeapi.StatusWriter is the apiserver's.
//
// # How a container status is made
//
// For each container of the spec, Generate looks at the runtime's
// instances of it (core.PodStatus.ContainerStatuses, matched by the
// io.kubernetes.container.name label):
//
//   - The newest instance gives state (running with startedAt; terminated
//     with the runtime's exit code, reason — Completed, Error, OOMKilled,
//     StartError — and message, with the termination message appended
//     after ": "; a created one waits with no reason), restartCount (its
//     io.kubernetes.container.restartCount annotation, never below the
//     previous status's), containerID (RuntimeName://id), image (as the
//     runtime names it), imageID (the runtime's image ref), resources
//     (the CPU and memory the runtime reports for a running instance, the
//     spec's otherwise), allocatedResources and user. The instance before
//     it gives lastState. The kubelet sets no signal on terminated states;
//     neither does Generate.
//   - Without an instance a container waits: ContainerCreating, or
//     PodInitializing in a pod with init containers. One that was running
//     in the previous status gets lastState ContainerStatusUnknown (exit
//     code 137) and one more restart; an init container lost after the
//     pod's regular containers were created is taken as Completed.
//   - A container the next sync will start (its newest instance exited
//     and the restart policy runs it again, or it has none) waits with the
//     reason the sync loop reported for it in Input.Waiting —
//     CrashLoopBackOff, ImagePullBackOff, ErrImagePull,
//     CreateContainerConfigError, RunContainerError, ... — and its
//     terminated state becomes its lastState. So a crash-looping container
//     shows as kubectl shows it: waiting in CrashLoopBackOff with the
//     back-off message, restartCount, and lastState terminated with the
//     last exit code (see testdata/crashloop.yaml).
//   - started and ready come from Input.Probes for running regular
//     containers and sidecars; an init container is ready once it exited
//     0; ephemeral containers are neither.
//
// Init container statuses are in spec order, the others sorted by name;
// times are cut to the second; each terminated message to its share of
// MaxPodTerminationMessageLength.
//
// # What it consumes
//
//   - core.PodStatus, the runtime's view of the pod, as the PLEG caches it.
//   - ProbeState (Ready, Started by container ID): syncloop's ProbeManager
//     satisfies it. Nil means no prober: the kubelet's values before any
//     probe result.
//   - Waiting: the containers the last sync held back, as syncloop's
//     Driver.Waiting reports them (copy Name, Reason and Message).
//   - The previous status (Input.Previous), for transition times, start
//     time, restart counts, DisruptionTarget and terminal phases, and the
//     API's status in Input.Pod.Status for the conditions others own.
//
// # Wiring
//
//	rt, _ := plegCache.Get(pod.UID)
//	var waiting []statusmgr.Waiting
//	for _, w := range driver.Waiting(pod.UID) {
//		waiting = append(waiting, statusmgr.Waiting{Name: w.Name, Reason: w.Reason, Message: w.Message})
//	}
//	state, _ := workers.State(pod.UID)
//	status := statusmgr.Generate(statusmgr.Input{
//		Pod: pod, Previous: last[pod.UID], Runtime: rt, Probes: probes, Waiting: waiting,
//		HostIPs: nodeIPs, RuntimeName: runtimeName, // VersionResponse.RuntimeName
//		TerminationMessage: func(cs *runtimeapi.ContainerStatus) string { return statusmgr.ReadTerminationMessage(ctx, cs) },
//		Evict:    statusmgr.ActiveDeadlineExceeded(pod, last[pod.UID], clk.Now()),
//		Finished: state == syncloop.Terminated,
//		Now:      clk.Now(),
//	})
//	if err := statusmgr.CheckTransition(pod, last[pod.UID], &status); err == nil {
//		last[pod.UID] = &status
//	}
//
// # The embedder's duties
//
//  1. Keep the last status of each pod and pass it as Previous: without
//     it, transition times and restart counts start over from the API's
//     status.
//  2. Generate again whenever the runtime status, a probe result or the
//     sync loop's waiting containers change.
//  3. Say Terminal once the pod's containers were stopped for good, and
//     Finished once its worker is done: the kubelet's podIsTerminal and
//     TerminatePod.
//  4. Pass Evict once when the pod is evicted (its reason, message and
//     DisruptionTarget then stay in Previous) or while its active deadline
//     is exceeded.
//  5. Read the clock for Now; Generate reads none.
//
// # Concurrency
//
// Every function is safe for concurrent use; Generate modifies none of its
// input and shares no memory with it, so a result may be stored and
// changed freely. It calls Input.Probes and Input.TerminationMessage from
// the calling goroutine.
//
// # The cache
//
// Cache keeps the newest status of each pod with a version that grows at
// every change: times cut to the second, equal statuses dropped, a status
// that takes a container out of a terminated state its restart policy
// does not leave refused (CheckTransition). SetContainerReadiness applies
// a readiness probe's flip between syncs (the container's ready flag and
// the ContainersReady and Ready conditions). Changed signals a sink that
// there is something to push. The sync loop hands it the Failed status of
// rejected pods (it is a syncloop PodStatusSetter).
//
// Finish stores the status of a pod whose worker is done, marked
// Finished (core.PodStatusEntry): a sink may then publish its terminal
// phase and complete its deletion. Delete forgets a pod no one wants any
// more.
//
// # Sinks
//
// A Sink writes one pod's status (core.PodStatusEntry) somewhere. A
// Syncer reads a StatusSource (the Cache) and drives a Sink as the
// kubelet's status manager drives the apiserver:
//
//	cache, _ := statusmgr.NewCache(statusmgr.CacheConfig{})
//	writer, _ := kubeapi.NewStatusWriter(kubeapi.StatusWriterConfig{Client: cs}) // or statusmgr.NewMemorySink()
//	syncer, _ := statusmgr.NewSyncer(statusmgr.SyncerConfig{Source: cache, Sink: writer, Registerer: reg})
//	go syncer.Run(ctx)
//	// ... cache.Set(pod, statusmgr.Generate(in)) as statuses change
//
// Only the newest version of each pod is written, and only once; a
// failed write is tried again after 200 ms, doubling to 30 s (a newer
// version goes at once); every 10 s everything is written again, which a
// sink that compares with what it has makes cheap (kubeapi.StatusWriter
// sends nothing when nothing differs). Where the kubelet waits for its
// next 10 s batch after a failed write, the Syncer retries within
// 200 ms, so a status reaches an apiserver that comes back from an
// outage as soon as it answers.
//
// A pass after a change copies only the statuses it writes: the Cache is
// a VersionSource, whose versions the Syncer reads alone before it asks
// for the entries that changed. A source with List alone works too, at
// the cost of a copy of every status per pass.
//
// # What it does not do yet
//
// It does not count kubelet_terminated_containers_total and does not
// carry in-place resize conditions. Generate does not read the pod's
// cgroup: a running pod's status.resources is what its spec allocates. It
// leaves out image volume digests and container stop signals (alpha in
// 1.37).
package statusmgr
