// Package nodekit is a library of composable kubelet subsystems: each part of
// a node agent is its own package, with one constructor, one Config, narrow
// interfaces for what it consumes, an injected clock and logger, and no
// package-level state. Import one package into a custom node agent or a test,
// or run the agents under examples/ that wire them all.
//
// # The map
//
//	core        shared vocabulary: the runtime port (small role interfaces
//	            over CRI types, composed into core.Runtime), error classes,
//	            the kubelet's labels and annotations. The leaf of the graph.
//	crispec     Pod → CRI sandbox and container configs, as the kubelet
//	            computes them (labels, env, mounts, cgroup resources, security
//	            context). Pure functions, no I/O.
//	cri         the real runtime: core.Runtime over a CRI socket
//	            (containerd, CRI-O) through k8s.io/cri-client.
//	runtimetest an in-memory simulated runtime with an injected clock,
//	            scripted containers and fault injection, and the conformance
//	            suite that every core.Runtime must pass.
//	runtimemetrics
//	            the kubelet's runtime operation metrics, as a decorator of
//	            any core.Runtime.
//	kubeapi     the one package that talks to an apiserver (client-go):
//	            the node's pods as a pod source, mirror pods, pod statuses,
//	            the Node and its lease, events, ConfigMaps, Secrets and
//	            tokens for volumes, the server's authn/authz.
//
//	staticpod   pod sources: manifests on disk or over HTTP, merged with
//	            any other source into one stream of pod updates.
//	syncloop    the sync loop: admits pods, gives each a worker that drives
//	            the runtime until it matches the spec (sandboxes, init and
//	            sidecar containers, restarts and back-off, probes, hooks,
//	            graceful termination), kills pods no source wants, and
//	            collects dead containers.
//	pleg        the pod lifecycle event generator: relists the runtime (or
//	            follows its event stream) and keeps the pod status cache.
//	statusmgr   turns runtime state into v1.PodStatus (Generate), keeps it
//	            versioned (Cache) and pushes it to a sink (Syncer).
//	volumemgr   mounts and unmounts pod volumes, reports their usage.
//	eviction    node-pressure eviction: stats, signals, thresholds, the
//	            kubelet's ranking, a driver that explains its decisions.
//	imagegc     the image garbage collector: unused images, least recently
//	            used first, by age and disk usage; eviction's image reclaim.
//	cpumanager  pod cgroups, the QoS hierarchy and exclusive CPUs.
//	examples    working node agents that wire everything together.
//
// Subsystem packages never import one another; they meet only in examples/,
// through the interfaces each one declares. A test in this package keeps
// the dependency graph so and keeps k8s.io/kubernetes out of it.
//
// # How data flows
//
// Pod sources (staticpod, an apiserver watch) send pod updates to the sync
// loop. The sync loop gives each pod a worker; the worker asks crispec for
// CRI configs and calls the runtime (cri or runtimetest) to create and stop
// sandboxes and containers. The PLEG observes the runtime, emits lifecycle
// events that wake the workers, and caches each pod's runtime status. The
// status manager reads that cache, builds v1.PodStatus and hands it to its
// sinks (an apiserver, a file, a test). The volume manager prepares volumes
// before a worker starts containers; the eviction manager watches node
// usage, has the image collector free unused images and asks the sync loop
// to kill pods under pressure; the CPU manager places pods in cgroups and
// pins exclusive CPUs.
package nodekit
