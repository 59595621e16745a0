// Package runtimemetrics records every call to the container runtime under
// the kubelet's runtime operation metrics, so that dashboards and alerts
// written for the kubelet work unchanged. It is a decorator of the runtime
// port: New wraps a core.Runtime and returns one that passes each call on
// and records it.
//
//	remote, err := cri.New(ctx, cri.Config{...}) // or runtimetest.New in tests
//	rt, err := runtimemetrics.New(runtimemetrics.Config{Runtime: remote, Registerer: reg})
//	// give rt to the PLEG, the sync loop, image GC, ...
//
// # Metrics
//
// Each call counts once in kubelet_runtime_operations_total and observes
// its duration in kubelet_runtime_operations_duration_seconds (buckets
// 5 ms × 2.5ⁿ, n = 0…13, up to about 745 s); a call that returned an error
// also counts in kubelet_runtime_operations_errors_total. All three have
// one label, operation_type, with the kubelet's names of the calls:
//
//	ListPodSandbox            list_podsandbox
//	RunPodSandbox             run_podsandbox
//	StopPodSandbox            stop_podsandbox
//	RemovePodSandbox          remove_podsandbox
//	PodSandboxStatus          podsandbox_status
//	ListContainers            list_containers
//	CreateContainer           create_container
//	StartContainer            start_container
//	StopContainer             stop_container
//	RemoveContainer           remove_container
//	ContainerStatus           container_status
//	ExecSync                  exec_sync
//	UpdateContainerResources  update_container
//	ListContainerStats        list_container_stats
//	ListPodSandboxStats       list_podsandbox_stats
//	ImageStatus               image_status
//	PullImage                 pull_image
//	ListImages                list_images
//	RemoveImage               remove_image
//	ImageFsInfo               image_fs_info
//	Version                   version
//	Status                    status
//	GetContainerEvents        get_container_events
//	Close                     close
//
// RunPodSandbox also observes kubelet_run_podsandbox_duration_seconds and
// counts failures in kubelet_run_podsandbox_errors_total, both by
// runtime_handler ("" for the default handler).
//
// Two rules come from the kubelet and may surprise: an ExecSync whose
// command exited non-zero counts as an error (the kubelet's CRI client
// makes it one), though the wrapper returns the runtime's result and nil
// error; and GetContainerEvents is recorded when its stream ends, so its
// duration is the stream's life, and the end of ctx counts as an error.
//
// # What is kept
//
// Results and errors are the runtime's, unchanged: errors.Is still finds
// the core error classes. The result implements the optional interfaces
// that the wrapped runtime implements, and only those: core.EventStreamer
// and io.Closer. Find them by type assertion, as on the runtime itself.
//
// Several runtimes wrapped with one Registerer share the metrics. With no
// Registerer, New returns the runtime itself: there is nothing to record
// to.
//
// # Concurrency and time
//
// The wrapper adds no locking and no goroutine; it is as safe for
// concurrent use as the runtime it wraps. Durations are read from
// Config.Clock (default the real clock), so tests can fix them.
//
// It does not retry, time out or log calls: that is for the runtime or its
// callers.
package runtimemetrics
