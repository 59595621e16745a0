// Package crispec translates a pod into the CRI configs a container runtime
// needs to run it, exactly as the kubelet computes them: the sandbox config
// for RunPodSandbox, the container config for CreateContainer, and the
// Linux resources for UpdateContainerResources. Runtimes, log collectors
// and a kubelet sharing the node cannot tell its output from the kubelet's:
// labels, annotations (including the container hash), log paths, cgroup
// values and security settings are the same.
//
// It is pure: no I/O, no clock, no goroutines. Everything the kubelet reads
// from the node or asks another subsystem for is an input.
//
// # What it owns
//
//	Translator.SandboxConfig     pod → PodSandboxConfig: metadata, labels, hostname,
//	                             log directory, DNS, port mappings, sysctls,
//	                             namespaces, sandbox security context, pod
//	                             resources and overhead
//	Translator.ContainerConfig   container → ContainerConfig: image, command and
//	                             args with $(VAR) expansion, environment (downward
//	                             API, ConfigMaps, Secrets), mounts, labels and
//	                             annotations, log path, resources, security context
//	Translator.ContainerResources  the Linux resources alone, for resizes
//	Translator.HostsFile         the /etc/hosts the kubelet writes for a pod
//	ContainerHash, PodLogDir, ContainerLogDir, ContainerLogPath,
//	MilliCPUToShares, MilliCPUToQuota, DefaultMaskedPaths, DefaultReadonlyPaths
//
// # What it consumes
//
// Config describes the node: log root, cluster domain, node IPs, allocatable
// resources, memory capacity, cgroup version and the kubelet settings that
// change the output (CFS quota, memory QoS, swap, seccomp default, huge page
// sizes, default sysctls). ConfigMapGetter and SecretGetter resolve
// configMapKeyRef, secretKeyRef and envFrom; the kubelet's ConfigMap and
// Secret managers have the right methods. SandboxOptions and ContainerOptions
// carry what other parts of a node agent know: the cgroup parent (QoS cgroup
// manager), DNS config, user namespace mappings, pod IPs (after the sandbox
// runs), the pulled image and its user (image service), mounted volumes
// (volume manager), device allocations, exclusive CPUs (CPU manager) and the
// restart count.
//
// # Wiring
//
//	tr, err := crispec.New(crispec.Config{
//		ClusterDomain:   "cluster.local",
//		NodeIPs:         []string{"10.0.0.5"},
//		NodeAllocatable: node.Status.Allocatable,
//		MemoryCapacity:  machine.MemoryCapacity,
//		CgroupV2:        true,
//		ConfigMaps:      configMapManager,
//		Secrets:         secretManager,
//	})
//	sb, err := tr.SandboxConfig(pod, attempt, crispec.SandboxOptions{CgroupParent: parent, DNS: dns})
//	// mkdir sb.LogDirectory, then RunPodSandbox(sb), PodSandboxStatus → pod IPs
//	cc, err := tr.ContainerConfig(pod, &pod.Spec.Containers[i], crispec.ContainerOptions{
//		RestartCount: n, PodIPs: ips, ImageRef: ref, ImageUser: user, Volumes: volumes,
//	})
//	// mkdir ContainerLogDir(...), then CreateContainer(sandboxID, cc, sb)
//
// # The embedder's duties
//
// The kubelet does a few things with side effects around these configs; a
// node agent using this package does them itself:
//
//  1. Create the pod's log directory, SandboxConfig's LogDirectory, before
//     RunPodSandbox, and ContainerLogDir before CreateContainer (mode 0755).
//  2. Count attempts: the sandbox attempt is one more than the last
//     sandbox's; the restart count one more than the last container's of
//     the same name (or, after a runtime lost its state, one more than the
//     highest <n>.log in ContainerLogDir).
//  3. Pass the same UserNamespace and ExtraSupplementalGroups to the sandbox
//     and to its containers.
//  4. For a terminationMessagePath, create an empty file, mode 0666, with a
//     fresh name per attempt under the pod's per-container directory, and
//     pass it as ContainerOptions.TerminationMessageHostPath.
//  5. Write HostsFile's content (mode 0644) to the pod's etc-hosts file and
//     pass its path as ContainerOptions.EtcHostsPath.
//  6. Give the image's user from ImageStatus: an image without one runs as
//     root, which matters for runAsNonRoot.
//
// # Inputs the way the kubelet receives them
//
// Pods are expected as the API server stores them, defaulted. Two defaults
// are applied here too, with the result the kubelet would have: a nil pod
// security context reads as an empty one, and an empty fieldRef apiVersion
// reads as "v1". The kubelet's own fallback of a missing CPU request to the
// limit is kept; nothing else is defaulted.
//
// The kubelet emits a container's environment in map order. Here the order
// is fixed: device variables, then the container's variables in the order
// they were first set (envFrom sources with their keys sorted, then env),
// then service variables sorted by name. Runtimes treat the list as a set
// of distinct names, so the difference is invisible to the container.
//
// # Errors
//
// Input the kubelet would refuse, or that CRI cannot express, is an error
// matching core.ErrInvalid; something the caller has not provided yet (a
// volume, a ConfigMap key) matches core.ErrNotFound; errors from the
// ConfigMap and Secret getters and from PrepareSubPath pass through with
// their class. Every error names the pod, the container and the field:
//
//	pod default/web container "app": env[2] "X": valueFrom.fieldRef.fieldPath "spec.bogus": unsupported field
//
// # Concurrency
//
// A Translator is immutable once built; any number of goroutines may use
// it. The getters and PrepareSubPath are called on the caller's goroutine.
//
// # What it does not do
//
// It does no I/O: it creates no directories or files, reads nothing from
// /sys or /proc, pulls no images and allocates nothing. It computes no
// service environment variables (pass them in), no DNS configuration, no
// cgroup names and no user namespace mappings. Windows configs, env files
// (fileKeyRef), container stop signals (an alpha feature), DRA
// node-allocatable resources and memory QoS at the pod level are left out.
package crispec
