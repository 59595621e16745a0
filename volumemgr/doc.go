// Package volumemgr mounts the volumes pods need before their containers
// start, keeps them as their sources change, unmounts them once nothing of
// the pod runs, and measures their usage: the kubelet's volume manager, in
// its directory layout, so that operators find a pod's volumes where they
// expect them (Layout: <root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>).
//
// # The loop
//
// Manager holds a desired state (the pods whose containers may run, with
// the volumes of their specs) and an actual state (what is set up on
// disk), and its reconciler (Run) moves the second toward the first:
//
//	m, _ := volumemgr.NewManager(volumemgr.ManagerConfig{Root: "/var/lib/kubelet",
//		ConfigMaps: objects, Secrets: objects, PodKnown: known, SourcesReady: ready})
//	go m.Run(ctx)
//	// before a pod's sandbox is created (syncloop's DriverConfig.Volumes):
//	err := m.WaitForAttachAndMount(ctx, pod)
//	mounts := m.PodVolumes(pod) // crispec.ContainerOptions.Volumes
//	// once nothing of the pod runs:
//	err = m.WaitForUnmount(ctx, pod)
//	// at every housekeeping round:
//	err = m.Housekeep(ctx)
//
// WaitForAttachAndMount returns as soon as every volume is set up, or as
// soon as each one that is not has failed at least once, with an error
// naming each volume and its failure ("MountVolume.SetUp failed for volume
// "data": hostPath type check failed: /srv/data is not a directory"); the
// reconciler goes on retrying with a back-off of 500 ms doubling to 2m2s,
// and the sync loop shows the error as the containers' waiting message
// (reason ContainerCreating). After MountTimeout (2m3s) it gives up.
//
// At start Run rebuilds the actual state from disk (PodDirs): volumes of
// pods that still run are adopted at their next WaitForAttachAndMount,
// not set up again, so an agent restart unmounts nothing; volumes of pods
// PodKnown no longer knows are torn down once every source is ready, and
// Housekeep removes such pods' directories when nothing under them is
// mounted. configMap, secret, downwardAPI and projected volumes are
// written again every ResyncPeriod (the kubelet's syncFrequency), so an
// update of their source reaches running containers.
//
// Volume kinds: emptyDir (disk, Memory, huge pages), hostPath,
// configMap, secret, downwardAPI and projected. The others
// (persistentVolumeClaim, csi, nfs, image, ephemeral, ...) fail with an
// error wrapping core.ErrUnimplemented.
//
// # Mounts on the node
//
// The volume plugins mount through Mounter, three calls wide; SystemMounter
// makes them with the host's mount(8) through k8s.io/mount-utils, never
// through a systemd scope, and tests substitute a recording fake. EmptyDir
// sets up emptyDir volumes exactly where and as the kubelet does: a 0777
// directory on disk, a tmpfs sized by the smallest of sizeLimit, the pod's
// memory limit (PodMemoryLimit) and node allocatable memory
// (MemoryVolumeSize), or a hugetlbfs with the page size the pod requests
// huge pages of; it keeps the kubelet's "ready" file, is idempotent, and
// tears down by unmounting and removing without ever crossing into another
// mount. Secret, downwardAPI and projected volumes get the Memory emptyDir
// the kubelet backs them with (SetUpTmpfs), configMap volumes a directory
// on disk. CheckHostPath performs the hostPath type checks and creations,
// failing with the kubelet's messages in a *HostPathTypeError. Subpaths
// makes subPaths safe: it resolves the subPath once, refuses one that
// leaves its volume, opens it without following symlinks and bind-mounts
// the open file under volume-subpaths, so that a container cannot redirect
// the mount by swapping in a symlink (Manager.PrepareSubPath). PodDirs
// reads the pod directories after a restart and removes orphaned ones only
// when nothing under them is mounted, never following a symlink, never
// removing across a mount point.
//
// # Content volumes
//
// ConfigMapPayload, SecretPayload, DownwardAPIPayload and ProjectedPayload
// turn a volume source, the pod and the objects it names into a payload (a
// map from relative path to FileProjection: bytes, mode, optional owner),
// as the kubelet's plugins do. They are pure apart from the getters:
// ConfigMapGetter and SecretGetter (the same interfaces as crispec's, so
// one object serves both; Objects is an in-memory implementation for tests
// and agents without an apiserver) and TokenGetter for service account
// tokens. An AtomicWriter publishes a payload as the kubelet does: the
// files go into a fresh ..<timestamp> directory, a ..data_tmp symlink to it
// is renamed over ..data, and the visible names are symlinks
// name -> ..data/name. A reader sees all of the old content or all of the
// new; an unchanged payload writes nothing; a crash at any step leaves the
// old or the new content visible, and the next Write clears what it left.
//
// # Volume usage
//
// Stats measures the volumes Manager.VolumeRefs lists every Period
// (default one minute, the kubelet's volumeStatsAggPeriod) and keeps each
// volume's last VolumeStats with the time it was measured; PodVolumeStats
// and All serve the eviction manager. A volume that is a filesystem of its
// own (a tmpfs) is measured with statfs alone; a volume sharing a
// filesystem takes capacity and available bytes from statfs and its used
// bytes and inodes from DiskUsage, which counts allocated blocks as du
// does, counts a hard-linked file once, follows no symbolic link and stays
// on the volume's filesystem. With a Registerer it exports the kubelet's
// gauges kubelet_volume_stats_{capacity_bytes,available_bytes,used_bytes,
// inodes,inodes_free,inodes_used} with the kubelet's labels namespace and
// persistentvolumeclaim plus pod and volume: unlike the kubelet, which
// reports only claims, every measured volume is exported (emptyDir,
// hostPath, configMap, ...), persistentvolumeclaim being empty where there
// is none.
//
// # Differences from the kubelet
//
//   - Modes of what hostPath *OrCreate and emptyDir create are exact,
//     whatever the umask; the type is checked after a creation too.
//   - emptyDir tear-down never deletes across a nested mount.
//   - Stricter payload validation (modes, empty projections); the writer
//     repairs what an interrupted write left behind.
//   - hostPath and emptyDir volumes are measured and exported.
//   - The alpha user/defaultUser fields of content volumes are honoured
//     whenever set.
//
// # Not done
//
// fsGroup ownership of volumes, SELinux relabeling, filesystem quotas,
// resizing a mounted tmpfs, persistent volumes (attach/detach, CSI) and
// image volumes. Mount failures are not yet recorded as pod events.
package volumemgr
