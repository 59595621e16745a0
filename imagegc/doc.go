// Package imagegc is the kubelet's image garbage collector: it removes the
// images no container uses, least recently used first, when the image
// filesystem fills up, when they have gone unused for too long, and when
// the eviction manager asks for every byte it can get.
//
// # What it remembers
//
// The runtime does not say when an image was last used, so the collector
// watches: at each detection (every DetectPeriod, 5 minutes, and at the
// start of every collection) it lists the images and the containers, in
// any state, and, given Sandboxes, the image each sandbox runs. An image
// seen for the first time is first detected now; one in use is last used
// now; one gone is forgotten. A sandbox whose status fails (other than
// being gone) is counted as running the image last seen for it, so that
// one stuck sandbox neither stops the detection nor frees its image. This
// is kept in memory, as the kubelet keeps it: after a restart every image
// is new again, and so protected by MinAge for its first minutes.
//
// # Deciding
//
// Decide is the whole policy as a pure function: given the images with
// their times, the set in use, now, the Policy and the bytes to free, it
// returns a Plan listing each image to delete, in order, with its Reason
// (the reason label of kubelet_image_garbage_collected_total), and each
// image kept with why. Images in use or pinned (CRI Image.Pinned, or
// Config.PinnedImages) are never deleted. The others are taken least
// recently used first (never used before used; ties by first detection,
// then by ID): with a MaxAge, every one unused for longer goes by age
// (ReasonAge) whatever the space; then, while less than the bytes to free
// is freed, the next goes for space (ReasonSpace), unless it was first
// detected less than MinAge ago. SpaceToFree turns a measured filesystem
// into the bytes to free: nothing below HighThresholdPercent (85), down
// to LowThresholdPercent (80) at or above it, in the kubelet's integer
// arithmetic.
//
// # The driver
//
//	gc, err := imagegc.New(imagegc.Config{
//		Images: rt, Containers: rt, Sandboxes: rt, ImageFs: rt, // a core.Runtime is all four
//		Policy:   &imagegc.Policy{HighThresholdPercent: 85, LowThresholdPercent: 80, MinAge: 2 * time.Minute},
//		Recorder: recorder, Node: nodeRef, Registerer: registry, Logger: log,
//	})
//	go gc.Run(ctx)                                   // collect every 5 minutes
//	m, _ := eviction.NewManager(eviction.ManagerConfig{..., Images: gc}) // reclaim under imagefs pressure
//
// GarbageCollect is one periodic collection: detect, delete by age,
// measure the image filesystem (statfs of the first image filesystem's
// mount point the runtime's ImageFsInfo names, as cAdvisor measures it),
// and at or above the high threshold delete for space. An image that
// cannot be removed is reported (*RemoveError, naming it) and the next
// one is tried in its place. Freeing less than needed is a *SpaceError
// and a FreeDiskSpaceFailed event with the kubelet's message; a zero
// capacity is ErrInvalidCapacity and an InvalidDiskCapacity event.
// DeleteUnusedImages, the eviction manager's node-level reclaim
// (eviction.ImageGC), deletes every image the policy lets go for space,
// without measuring. Each returns, or keeps for Last, a Result: what was
// deleted, why, and the bytes freed.
//
// Run collects at once and every Period (5 minutes, the kubelet's
// ImageGCPeriod) and detects in between whenever DetectPeriod has passed
// since the latest detection, a collection's included: with the defaults
// the collections' own detections are all there is. The second failed
// collection in a row, and each one after, is an ImageGCFailed event. With HighThresholdPercent 100 and no MaxAge, the kubelet's way
// to turn image garbage collection off, Run only detects, so that
// DeleteUnusedImages still knows the images' ages.
//
// # Embedder's duties
//
// Pass the runtime for Images, Containers and ImageFs; pass it for
// Sandboxes too when it names its sandboxes' images in their verbose
// status (containerd 1.6 and 2 do), or else put the sandbox image in
// PinnedImages unless the runtime pins it. Give every collector its own
// Registerer, or one registry per process: the counter is registered once.
//
// # Concurrency
//
// A GC is safe for concurrent use. Collections run one at a time, each
// deciding on its own detection, so no image is removed or counted by
// two: the eviction manager's DeleteUnusedImages waits for a periodic
// collection under way, and the other way round, but only until its ctx
// ends. Detections run one at a time too, and go on while a collection
// removes images (which may take minutes on a busy runtime). No
// goroutine is started but by Run, which returns when ctx ends.
//
// # Differences from the kubelet
//
//   - An image never seen in use is as old as its first detection for
//     MaxAge. The kubelet counts from the zero time, and so removes an
//     image pulled a moment ago, before its container is created, once it
//     has itself run longer than MaxAge.
//   - A sandbox's image is in use when the runtime names it in the
//     sandbox's verbose status; the kubelet relies on the runtime pinning
//     it, which containerd 1.6 does not.
//   - A container's image is matched by ID, tag and digest (its ImageId,
//     ImageRef and image spec), whatever the runtime puts where.
//   - Ties are broken by image ID, so plans are reproducible.
//
// # Not done
//
// Images mounted as volumes (the ImageVolume feature) are not looked for
// in containers' mounts; images are not told apart by runtime handler
// (RuntimeClassInImageCriAPI); the kubelet's cached image list for node
// status and its post-collection hooks (the pulled-image records of
// ensure-secret-pulled-images) are not part of this package.
package imagegc
