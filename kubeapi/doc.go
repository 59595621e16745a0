// Package kubeapi is where nodekit talks to a Kubernetes apiserver, and the
// only package that imports client-go: a pod source for the pods the
// apiserver binds to the node (PodSource), the mirror pods that make a
// node's static pods visible there (Mirrors), and the writer of pod
// statuses (StatusWriter: the node's status merged into the API's as the
// kubelet merges it, sent as a strategic merge patch of the status that
// names the pod's UID, a static pod's status written to its mirror pod).
//
// It imports no subsystem. A PodSource hands its pods to any Sink (the
// staticpod Merger is one), under core.SourceAPI:
//
//	src, _ := kubeapi.NewPodSource(kubeapi.PodSourceConfig{Client: cs, NodeName: node})
//	go src.Run(ctx, merger)
//	mirrors, _ := kubeapi.NewMirrors(kubeapi.MirrorsConfig{Client: cs, NodeName: node})
//	go mirrors.Run(ctx, changed, staticPods, src.MirrorPods) // or Sync once
//	writer, _ := kubeapi.NewStatusWriter(kubeapi.StatusWriterConfig{Client: cs})
//	syncer, _ := statusmgr.NewSyncer(statusmgr.SyncerConfig{Source: cache, Sink: writer})
//	go syncer.Run(ctx) // the StatusWriter is a statusmgr Sink
package kubeapi
