// Package core is nodekit's shared vocabulary: the runtime port that every
// subsystem talks to, the labels and annotations that tie runtime objects to
// pods, and the error classes that cross package boundaries.
//
// It is the leaf of the dependency graph. Subsystem packages (pleg, syncloop,
// statusmgr, volumemgr, eviction, cpumanager, staticpod) import core and never
// each other; core imports only Kubernetes API and CRI types.
//
// # The runtime port
//
// The port is a set of small role interfaces over CRI (k8s.io/cri-api
// runtime/v1) types, each sized to what one kind of consumer calls:
//
//	SandboxLister, ContainerLister       listing (the PLEG's relist)
//	SandboxRunner, SandboxStopper, SandboxRemover
//	                                     sandbox lifecycle
//	ContainerCreator, ContainerStarter, ContainerStopper, ContainerRemover
//	                                     container lifecycle
//	SandboxStatuser, ContainerStatuser   status of one object
//	ExecSyncer                           run a command in a container (exec probes, hooks)
//	ResourceUpdater                      change a container's resources (CPU manager)
//	StatsLister                          CPU, memory and filesystem usage (eviction)
//	ImageStatuser, ImagePuller, ImageManager, ImageFsInfoer
//	                                     images and image filesystem usage
//	StatusChecker                        runtime readiness and version
//
// SandboxManager, ContainerManager and ImageService group them by object,
// and Runtime is the union of all of them. Consumers should declare the narrowest
// interface they call, usually one of the roles above or a local interface of
// one to three methods; a *cri.Runtime or a *runtimetest.Runtime satisfies
// them all.
//
// EventStreamer is optional: a runtime that can push container events
// implements it, and a consumer discovers it with a type assertion:
//
//	if es, ok := rt.(core.EventStreamer); ok {
//		err := es.GetContainerEvents(ctx, ch, onConnected)
//		if errors.Is(err, core.ErrUnimplemented) {
//			// the runtime (containerd 1.6, say) has no event stream: poll instead
//		}
//	}
//
// # Errors
//
// Every implementation of the port reports failures in one of a few classes,
// wrapped with %w so that errors.Is works across packages:
//
//	ErrNotFound        the object does not exist; retrying will not help
//	ErrAlreadyExists   the name is taken; retrying will not help
//	ErrInvalid         the request cannot be expressed; retrying will not help
//	ErrUnimplemented   the runtime lacks the call; fall back
//	ErrUnavailable     the runtime cannot be reached or is not ready; retry later
//	ErrTimeout         the call or the command it ran took too long; may be retried
//
// A failure that fits none of them carries no class: treat it as transient.
// The message around the class names the pod, the container and the cause.
// A call cut short by its context wraps the context's error.
//
// # Labels
//
// Sandboxes and containers carry the kubelet's labels (io.kubernetes.pod.name,
// .namespace, .uid, io.kubernetes.container.name) and annotations (container
// hash, restart count, termination message path and policy, grace periods).
// SandboxInfoFromLabels and ContainerInfoFromLabels read them back, so an agent
// that restarts can rebuild its view of the node from the runtime alone, and
// tools such as crictl show pods by name.
//
// # Pods and their changes
//
// PodStatus is the runtime's view of one pod, as the PLEG caches it, and
// PodLifecycleEvent one observed change of it. PodUpdate is one change of
// what a pod source wants (OpAdd, OpUpdate, OpRemove, OpDelete,
// OpReconcile): pod sources send them, the sync loop consumes them.
package core
