// Package eviction is the kubelet's node-pressure eviction, explaining
// itself: it watches the node's memory, disk and PIDs against hard and soft
// thresholds, frees what it can at node level, and otherwise evicts one
// pod at a time, chosen as the kubelet chooses, with every number that led
// there kept in a Decision.
//
// # The loop
//
//	policy, _ := eviction.NewPolicy(eviction.Config{EvictionHard: kc.EvictionHard, ...})
//	stats, _ := eviction.NewStatsProvider(eviction.StatsConfig{ActivePods: loop.ActivePods, Runtime: rt, ImageFs: rt})
//	m, _ := eviction.NewManager(eviction.ManagerConfig{Policy: policy, Observer: stats,
//		Evictor: evictor, Containers: gc, Images: images, Recorder: recorder, Node: nodeRef,
//		Notifiers: map[eviction.Signal]*eviction.Notifier{eviction.SignalMemoryAvailable: rootNotifier}})
//	go m.Run(ctx)
//	d, _ := m.DryRun(ctx) // what would be evicted now, without acting
//
// Every MonitoringInterval (10 s), or at once when a memory notifier
// fires, the Manager measures the node (Observer), decides a round
// (Decide) and carries the Decision out in the kubelet's order: node
// conditions, local storage evictions, the node's event, node-level
// reclaim (ContainerGC; ImageGC, which imagegc.GC implements), then at
// most one pod evicted through the
// PodEvictor (the sync loop kills it with the eviction's grace period and
// fails its status with reason Evicted, the kubelet's message and
// DisruptionTarget), a Warning event on the pod with the offending
// containers' usage, and a wait for its cleanup. It counts
// kubelet_evictions{eviction_signal} and
// kubelet_eviction_stats_age_seconds{eviction_signal}. Conditions and
// IsUnder*Pressure feed the Node's status; an Admitter on the same
// conditions refuses new pods under pressure (AdmitPod).
//
// # Deciding
//
// The deterministic core decides as the kubelet's eviction manager does,
// as pure functions. A Policy (NewPolicy from a Config shaped like
// KubeletConfiguration) holds the thresholds. When EvictionHard is nil they
// are the kubelet's defaults: memory.available<100Mi, nodefs.available<10%,
// nodefs.inodesFree<5%, imagefs.available<15%, imagefs.inodesFree<5%. A
// non-nil EvictionHard replaces them, as in the kubelet, unless
// MergeDefaultEvictionSettings is set: the choice is explicit. Each round,
// the embedder measures the node into Observations and calls
// Decide(state, now, obs, policy). Decide does no I/O and reads no clock,
// so calling it and acting on nothing is a dry run. The Decision lists the
// signals observed and the thresholds met, each with its grace period,
// minimum reclaim and stats freshness. It gives the node conditions, held
// for the pressure transition period, and any local storage limit
// evictions (emptyDir sizeLimit, container and pod ephemeral-storage
// limits). For the threshold acted on (memory first) it gives the
// node-level reclaim to try first, the full ranking with each pod's numbers
// (memory: exceeds requests, priority, usage above request; disk: the
// same over the relevant filesystem; PIDs: priority, usage), and at most
// one victim with its grace period (1 s for a hard threshold, as the
// kubelet's immediate eviction; the smaller of evictionMaxPodGracePeriod
// and the pod's for a soft one), the kubelet's message, its event
// annotations and a DisruptionTarget condition. Critical pods (static,
// mirror, priority ≥ 2000000000) are ranked but never evicted.
//
// # Measuring the node
//
// StatsProvider fills Observations as the kubelet's summary stats feed its
// eviction manager. memory.available is the machine's memory (MemTotal)
// less the root memory cgroup's working set (usage less inactive file
// pages); allocatableMemory.available is the limit of <CgroupRoot>/kubepods
// less its working set. The nodefs is statfs of the root directory; the
// imagefs and containerfs are statfs of the mount points the runtime's
// ImageFsInfo names. pid.available is min(kernel.pid_max,
// kernel.threads-max) less the tasks /proc/loadavg counts. Each active pod
// is read from its pod cgroup under the kubelet's names, or from its
// containers' CRI stats; its containers' writable layers, log files,
// etc-hosts and local ephemeral volumes make its ephemeral storage
// (volumes through StatsConfig.PodVolumes, wired to volumemgr's Stats).
//
// A Notifier wakes the loop as soon as memory usage crosses a threshold,
// instead of at its next tick: on cgroup v1 through an eventfd registered
// in cgroup.event_control on memory.usage_in_bytes; on cgroup v2, which
// has no such events (the kubelet turns its notifier off there), by
// reading memory.current every 100 ms. The Manager runs its notifiers and
// sets their thresholds after every measurement (capacity − threshold +
// inactive_file), so a crossed hard memory threshold is acted on within a
// second instead of the kubelet's 10 s poll.
//
// # Differences from the kubelet
//
//   - Ties are broken deterministically (signal order, then the order of
//     Observations.Pods).
//   - The memory notifier works on cgroup v2 too.
//   - A filesystem that reports no inodes (btrfs) leaves its inodesFree
//     signal unobserved.
//   - A negative evictionMaxPodGracePeriod is refused.
//
// # Not done
//
// Eviction for swap.
package eviction
