// Package kubeapi is where nodekit talks to a Kubernetes apiserver, and the
// only package that imports client-go. It imports no subsystem: each piece
// answers a narrow interface a subsystem or the agent declares.
//
// # Pods
//
// PodSource delivers the pods the apiserver binds to the node (an informer
// on spec.nodeName) to any Sink (the staticpod Merger is one), under
// core.SourceAPI, and keeps mirror pods apart. Mirrors makes a node's static
// pods visible there: mirror pods owned by the Node, created, recreated,
// replaced and deleted as the static pods change. StatusWriter writes pod
// statuses as the kubelet's status manager: the node's status merged into
// the API's (core.MergePodStatus: others' conditions kept, a terminal phase
// held back until nothing runs), sent as a strategic merge patch of the
// status that names the pod's UID (so a pod created again under the same
// name never gets the old one's status), nothing sent when nothing
// differs, a static pod's status written to its mirror pod, and a pod being
// deleted deleted once its final status is written. It is a statusmgr Sink.
//
//	src, _ := kubeapi.NewPodSource(kubeapi.PodSourceConfig{Client: cs, NodeName: node})
//	go src.Run(ctx, merger)
//	mirrors, _ := kubeapi.NewMirrors(kubeapi.MirrorsConfig{Client: cs, NodeName: node})
//	go mirrors.Run(ctx, changed, staticPods, src.MirrorPods)
//	writer, _ := kubeapi.NewStatusWriter(kubeapi.StatusWriterConfig{Client: cs})
//	syncer, _ := statusmgr.NewSyncer(statusmgr.SyncerConfig{Source: cache, Sink: writer})
//	go syncer.Run(ctx)
//
// Objects answers ConfigMaps and Secrets (volumemgr's and crispec's
// getters) as the kubelet's watch-based managers: one watch per object
// asked for, stopped when idle.
//
// # The node's own objects
//
// NodeStatus registers the Node and keeps its status as the kubelet does.
// Register creates the Node (the kubelet's labels, then Labels, Taints,
// Unschedulable, a first status) or reconciles an existing one, retrying
// with back-off. Run then computes the status every UpdateFrequency (10 s)
// from small sources the agent wires: Machine (capacity, identity),
// Runtime (RuntimeReady, NetworkReady, version), Addresses, HealthChecks
// (the PLEG's Healthy), Pressure (the eviction manager) and Images.
// Allocatable is capacity less SystemReserved, KubeReserved and
// EvictionHard. The conditions MemoryPressure, DiskPressure, PIDPressure
// and Ready carry the kubelet's reasons and messages ("PLEG is not
// healthy: ...", "container runtime network not ready: ..."). The status is
// sent with component-helpers' PatchNodeStatus only when something other
// than the heartbeat times changed, or every ReportFrequency (5 m).
// NodeLease keeps the heartbeat lease in kube-node-lease (component-helpers'
// lease controller: 40 s, renewed every 10 s, owned by the Node).
// EventRecorder records events as the kubelet does (client-go's record
// broadcaster, source "kubelet" on the node); subsystems declare the
// one-method Recorder interface instead, and tests use a MemoryRecorder.
//
//	rec, _ := kubeapi.NewEventRecorder(kubeapi.EventRecorderConfig{Client: cs, NodeName: node})
//	go rec.Run(ctx)
//	ns, _ := kubeapi.NewNodeStatus(kubeapi.NodeStatusConfig{Client: cs, NodeName: node,
//		Machine: probe, Runtime: rt, Pressure: pressure, Recorder: rec,
//		HealthChecks: []kubeapi.HealthCheck{{Name: "PLEG", Check: pleg.Healthy}}})
//	go ns.Run(ctx) // registers first
//	lease, _ := kubeapi.NewNodeLease(kubeapi.NodeLeaseConfig{Client: cs, NodeName: node})
//	go lease.Run(ctx)
//
// # The node's server
//
// ServerAuth guards a node agent's server as the kubelet's: built from the
// kubelet configuration's KubeletAuthentication and KubeletAuthorization
// with the kubelet's defaults (k8s.io/apiserver's delegating authenticator
// and authorizer): client certificates of X509.ClientCAFile, bearer tokens
// checked by TokenReview (cached 2m), anonymous requests only when
// enabled, and authorization by SubjectAccessReview (allowed cached 5m,
// denied 30s), or AlwaysAllow. Each request is authorized as access to a
// subresource of the node's Node object, as ServerRequestAttributes maps
// it: /stats, /metrics, /logs, /checkpoint, /statusz and /flagz to their
// own subresource, /pods, /healthz and /configz to theirs and then proxy,
// anything else to proxy. Wrap answers 401, 403 and 500 with the kubelet's
// bodies and gives the handler the user (UserFrom). Run keeps the client
// CA current. ServerTLSConfig builds the matching tls.Config: TLS 1.2 at
// least, and client certificates requested but left to ServerAuth to
// verify, so a certificate of another CA gets a 401.
//
//	auth, _ := kubeapi.NewServerAuth(kubeapi.ServerAuthConfig{Authentication: kc.Authentication,
//		Authorization: kc.Authorization, Client: cs, NodeName: node})
//	tlsCfg, _ := kubeapi.ServerTLSConfig(kc.TLSCertFile, kc.TLSPrivateKeyFile,
//		kc.Authentication.X509.ClientCAFile, kc.TLSMinVersion, kc.TLSCipherSuites)
//	go auth.Run(ctx)
//	srv := &http.Server{Handler: auth.Wrap(mux), TLSConfig: tlsCfg}
//
// # Not done
//
// Certificate bootstrap and rotation; the serving certificate is read once.
// k8s.io/apiserver registers its authentication and authorization metrics
// in component-base's global registry, and client-go and apiserver log
// through klog: neither can be turned off from here.
package kubeapi
