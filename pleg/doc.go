// Package pleg is the pod lifecycle event generator: it watches the
// container runtime, turns what changed into events per pod, and keeps the
// pod status cache that the sync loop and the status manager read.
//
// # The loop
//
// Run repeats one duty, a relist:
//
//  1. List every sandbox and container (core.SandboxLister,
//     core.ContainerLister) and compare each one's state with the last
//     observation: running, exited, created, unknown or gone.
//  2. For each pod where something changed, and each pod whose last status
//     read failed or was asked for with Reinspect, read the status of
//     everything the runtime has of it (core.SandboxStatuser,
//     core.ContainerStatuser) and store it in the Cache.
//  3. Publish that pod's events: ContainerStarted, ContainerDied (with the
//     exit code), ContainerRemoved, ContainerChanged, for containers and,
//     marked Sandbox, for sandboxes. A pod whose status could not be read
//     publishes nothing and is retried on the next relist, so every event
//     comes with a cached status that explains it.
//  4. Raise the cache's global time, so that GetNewerThan waits end even
//     for pods that did not change, and update the metrics.
//
// The event logic is one pure function of the old and the new state (see
// the table on transition in events.go); everything else is bookkeeping,
// which allocates nothing for a pod that did not change.
//
// # Event stream
//
// When the runtime implements core.EventStreamer (containerd 2.x), Run
// follows its container events and relists just the pod each event names,
// at once (RelistPod); the full relist then runs only every
// EventedRelistPeriod as a safety net, and after every (re)connection.
// Events that come while the PLEG is busy are batched; a batch naming
// more than 2 pods plus a twentieth of those the PLEG knows (a node
// starting or stopping many pods at once) is relisted in one full relist
// that inspects each of them, two list calls instead of two per pod. A
// runtime without the stream (containerd 1.6, core.ErrUnimplemented) is
// relisted every RelistPeriod, and the log says so. A broken stream is
// reconnected with exponential back-off, relisting every RelistPeriod
// meanwhile. Without the stream, the relists list the containers alone
// while nothing changes, and the sandboxes too once SandboxRelistPeriod
// (1 s) has passed or a container appeared, changed or went: a
// container's death, what a short RelistPeriod is for, is found at once,
// and a quiet node costs one list call per period instead of two; a
// sandbox's death alone waits for the next full relist. Events are the
// same in both modes:
// creating a container makes no event, so it does not matter whether the
// runtime was observed between create and start.
//
// # Consumers
//
// Watch returns a Subscription; any number may exist. A subscriber that
// falls behind never blocks the PLEG and never loses a pod silently: once
// MaxPendingPerPod events of one pod wait for it, they are replaced by one
// PodSync for that pod, counted in Subscription.Coalesced and in
// kubelet_pleg_discard_events.
//
// The sync loop calls RelistPod right after it acted on a pod, then waits
// with Cache().GetNewerThan for a status observed after its action. The
// node status uses Healthy, which fails with the kubelet's wording before
// the first relist and when the last one is older than the threshold.
//
// # Wiring
//
//	p, err := pleg.New(pleg.Config{Runtime: rt, Logger: log, Registerer: reg})
//	if err != nil {
//		return err
//	}
//	events := p.Watch()
//	go p.Run(ctx)
//	for ev := range events.Events() {
//		status, err := p.Cache().Get(ev.PodUID)
//		...
//	}
//
// Metrics, with the kubelet's names: kubelet_pleg_relist_duration_seconds,
// kubelet_pleg_relist_interval_seconds, kubelet_pleg_pod_relist_duration_seconds,
// kubelet_pleg_discard_events, kubelet_pleg_last_seen_seconds,
// kubelet_running_pods, kubelet_running_containers{container_state},
// kubelet_evented_pleg_connection_{success,error}_count and
// kubelet_evented_pleg_connection_latency_seconds.
//
// # What it does not do
//
// It does not act on anything: it never starts, stops or removes
// containers. It does not turn runtime statuses into v1.PodStatus (package
// statusmgr does).
package pleg
