// Package staticpod turns pod sources into one stream of pod updates for
// the sync loop: manifests in a directory (FileSource) or at a URL
// (HTTPSource) — the static pods a node runs without an apiserver — and,
// through the same Merger, any other source that can say which pods it
// wants.
//
// Every source delivers complete snapshots: "these are all my pods now".
// The Merger compares each snapshot with the source's previous one and
// sends core.PodUpdates as the kubelet's pod config does: ADD for a new
// pod (stamped with kubernetes.io/config.source and
// kubernetes.io/config.seen), UPDATE for a changed spec, labels or
// annotations, DELETE for a newly set deletion timestamp, RECONCILE for a
// change of status alone, REMOVE for a pod gone. AllReady says whether
// every source has been heard from once: until then the sync loop cleans
// nothing up for lack of a source.
//
//	m, _ := staticpod.NewMerger(staticpod.MergerConfig{Sources: []string{core.SourceFile}})
//	files, _ := staticpod.NewFileSource(staticpod.FileConfig{Path: "/etc/kubernetes/manifests", NodeName: node})
//	go files.Run(ctx, m)
//	loop, _ := syncloop.NewLoop(syncloop.LoopConfig{Updates: m.Updates(), SourcesReady: m.AllReady, ...})
//
// # Manifests
//
// Decode reads one manifest (YAML or JSON; a Pod, or from HTTP also a
// PodList), refuses what may not run as a static pod (Validate: names,
// containers and images, resource quantities, ports, references to API
// objects such as secrets, config maps, service accounts and persistent
// volume claims) with an error naming the manifest and the field
// (ErrInvalidManifest), and gives each pod the kubelet's static pod
// defaults (Defaults): a UID derived from the content, the node and the
// location, so that an edited manifest is a new pod whose predecessor
// terminates first; the name <name>-<node>; namespace default;
// spec.nodeName; the kubernetes.io/config.hash annotation; a toleration of
// every NoExecute taint; phase Pending; and the API server's defaults for
// the fields the node acts on.
//
// Sources read at most MaxManifestSize per manifest, report each bad
// manifest once (logged, counted in staticpod_manifest_errors_total) until
// it changes, and never let one bad manifest stop the others.
package staticpod
