package imagegc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// ImageService lists and removes images (core.ImageManager). ListImages
// with a nil filter lists every image; removing an absent image
// succeeds.
type ImageService interface {
	ListImages(ctx context.Context, filter *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error)
	RemoveImage(ctx context.Context, image *runtimeapi.ImageSpec) error
}

// ContainerLister lists containers (core.ContainerLister). With a nil
// filter it lists every container, running or not: an image any of them
// uses is in use.
type ContainerLister interface {
	ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error)
}

// SandboxLister lists sandboxes and reports their verbose status
// (core.SandboxLister and core.SandboxStatuser): the image a sandbox runs
// is in use when the runtime names it there (containerd's verbose info
// has it as "image").
type SandboxLister interface {
	ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error)
	PodSandboxStatus(ctx context.Context, sandboxID string, verbose bool) (*runtimeapi.PodSandboxStatusResponse, error)
}

// ImageFsInfoer names the image filesystem (core.ImageFsInfoer): the
// mount point of its first image filesystem is measured with Statfs.
type ImageFsInfoer interface {
	ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error)
}

// Recorder records Kubernetes events (kubeapi's recorder has this
// method).
type Recorder interface {
	Eventf(object runtime.Object, eventtype, reason, messageFmt string, args ...any)
}

// The kubelet's event reasons, on the node.
const (
	// EventInvalidDiskCapacity: the image filesystem reports no capacity.
	EventInvalidDiskCapacity = "InvalidDiskCapacity"
	// EventFreeDiskSpaceFailed: a collection by space freed less than it
	// had to.
	EventFreeDiskSpaceFailed = "FreeDiskSpaceFailed"
	// EventImageGCFailed: periodic collection failed twice or more in a
	// row.
	EventImageGCFailed = "ImageGCFailed"
)

// Defaults of Config.
const (
	// DefaultPeriod is how often Run collects (the kubelet's
	// ImageGCPeriod).
	DefaultPeriod = 5 * time.Minute
	// DefaultDetectPeriod is how long Run lets pass without listing the
	// images and what uses them, so that last-used times stay current.
	DefaultDetectPeriod = 5 * time.Minute
)

// Config configures a GC.
type Config struct {
	// Images lists and removes images. Required.
	Images ImageService
	// Containers lists every container; their images are in use.
	// Required.
	Containers ContainerLister
	// Sandboxes, if set, are asked for the image each sandbox runs
	// (verbose status), which is then in use too. Nil: sandboxes are not
	// looked at; pin the sandbox image (PinnedImages) unless the runtime
	// pins it.
	Sandboxes SandboxLister
	// ImageFs names the image filesystem, for collections by space
	// (GarbageCollect). Required.
	ImageFs ImageFsInfoer
	// Statfs measures the filesystem mounted at a path. Default statfs(2)
	// of that path on this host, as cAdvisor measures it for the kubelet.
	Statfs func(path string) (FsStats, error)
	// Policy: nil is DefaultPolicy(). A policy given is taken as it is
	// (a zero MinAge is no minimum age).
	Policy *Policy
	// PinnedImages are never removed: image IDs (with or without
	// "sha256:"), tags or digests, as the runtime lists them
	// ("docker.io/library/busybox:latest", not "busybox"). Put the sandbox
	// image here when the runtime neither pins it nor names it in a
	// sandbox's status. Images the runtime marks Pinned are kept as well.
	PinnedImages []string
	// Period of Run's collections: default DefaultPeriod.
	Period time.Duration
	// DetectPeriod: Run detects between collections once this long has
	// passed since the latest detection, whoever made it: default
	// DefaultDetectPeriod.
	DetectPeriod time.Duration
	// Recorder records the kubelet's events (InvalidDiskCapacity,
	// FreeDiskSpaceFailed, ImageGCFailed) about Node. Nil Recorder or
	// Node: none.
	Recorder Recorder
	Node     *v1.ObjectReference
	// Registerer receives kubelet_image_garbage_collected_total{reason}.
	// Nil: none.
	Registerer prometheus.Registerer
	Clock      clock.WithTicker
	Logger     *zap.Logger
}

// Errors of a collection.
var (
	// ErrInvalidCapacity: the image filesystem reports a capacity of 0.
	ErrInvalidCapacity = errors.New("invalid capacity 0 on image filesystem")
)

// RemoveError is the failure to remove one image.
type RemoveError struct {
	Image  Image
	Reason Reason
	Err    error
}

// Error names the image, its tags and the reason it was to go.
func (e *RemoveError) Error() string {
	name := e.Image.ID
	if len(e.Image.RepoTags) > 0 {
		name += " (" + strings.Join(e.Image.RepoTags, ", ") + ")"
	}
	return fmt.Sprintf("remove image %s for %s: %v", name, e.Reason, e.Err)
}

// Unwrap is the runtime's error.
func (e *RemoveError) Unwrap() error { return e.Err }

// SpaceError is a collection by space that freed less than it had to:
// the disk is full of something other than unused images (logs, volumes,
// writable layers, images in use). Its message is the kubelet's
// FreeDiskSpaceFailed event's.
type SpaceError struct {
	UsagePercent  int
	CapacityBytes uint64
	BytesToFree   uint64
	BytesFreed    uint64
}

// Error is the kubelet's FreeDiskSpaceFailed message.
func (e *SpaceError) Error() string {
	return fmt.Sprintf("Insufficient free disk space on the node's image filesystem (%d%% of %s used). "+
		"Failed to free sufficient space by deleting unused images (freed %d bytes). "+
		"Investigate disk usage, as it could be used by active images, logs, volumes, or other data.",
		e.UsagePercent, FormatSize(e.CapacityBytes), e.BytesFreed)
}

// Result is what one collection did.
type Result struct {
	// Time the collection started.
	Time time.Time
	// UsagePercent of the image filesystem when measured (after the
	// deletions by age), -1 when not measured; BytesToFree is what the
	// thresholds asked for (AllBytes for DeleteUnusedImages).
	UsagePercent int
	BytesToFree  uint64
	// Deleted are the images removed, in order, and BytesFreed their
	// sizes added up.
	Deleted    []Deletion
	BytesFreed uint64
}

// String is one line: what was freed and why.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "deleted %d images, freed %s", len(r.Deleted), FormatSize(r.BytesFreed))
	if r.UsagePercent >= 0 {
		fmt.Fprintf(&b, " (usage %d%%", r.UsagePercent)
		if r.BytesToFree > 0 && r.BytesToFree != AllBytes {
			fmt.Fprintf(&b, ", %s to free", FormatSize(r.BytesToFree))
		}
		b.WriteString(")")
	}
	for _, d := range r.Deleted {
		fmt.Fprintf(&b, "; %s %s", d.Image, d.Reason)
	}
	return b.String()
}

// GC is the kubelet's image garbage collector. It remembers when each
// image was first detected and last seen in use, in memory, as the
// kubelet does. Its methods are safe for concurrent use. Collections run
// one at a time, and so do detections; a detection runs while a
// collection is removing images. A call waiting for another's collection
// or detection returns when its ctx ends.
type GC struct {
	cfg     Config
	policy  Policy
	pinned  map[string]bool
	log     *zap.Logger
	removed *prometheus.CounterVec

	// collecting is held through a collection, from its detection to its
	// last removal, so that two never decide on the same images.
	collecting chan struct{}
	// mu is held through a detection, calls to the runtime included, and
	// to read or change what follows; never through a removal.
	mu      chan struct{}
	records map[string]*Image // what is remembered between detections
	// sandboxImage is the image last seen in each sandbox's status.
	sandboxImage map[string]string

	lastMu     sync.Mutex
	last       *Result
	lastDetect time.Time // when the latest detection ended
}

// acquire takes the one slot of sem, or returns ctx's error if ctx ends
// first.
func acquire(ctx context.Context, sem chan struct{}) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// New returns a GC for cfg. Nothing runs until Run or a collection is
// called.
func New(cfg Config) (*GC, error) {
	switch {
	case cfg.Images == nil:
		return nil, fmt.Errorf("imagegc: Images is required: %w", core.ErrInvalid)
	case cfg.Containers == nil:
		return nil, fmt.Errorf("imagegc: Containers is required: %w", core.ErrInvalid)
	case cfg.ImageFs == nil:
		return nil, fmt.Errorf("imagegc: ImageFs is required: %w", core.ErrInvalid)
	case cfg.Period < 0:
		return nil, fmt.Errorf("imagegc: Period %s: %w: must not be negative", cfg.Period, core.ErrInvalid)
	case cfg.DetectPeriod < 0:
		return nil, fmt.Errorf("imagegc: DetectPeriod %s: %w: must not be negative", cfg.DetectPeriod, core.ErrInvalid)
	}
	policy := DefaultPolicy()
	if cfg.Policy != nil {
		policy = *cfg.Policy
	}
	if err := policy.Validate(); err != nil {
		return nil, err
	}
	if cfg.Statfs == nil {
		cfg.Statfs = statfs
	}
	if cfg.Period == 0 {
		cfg.Period = DefaultPeriod
	}
	if cfg.DetectPeriod == 0 {
		cfg.DetectPeriod = DefaultDetectPeriod
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	pinned := map[string]bool{}
	for i, ref := range cfg.PinnedImages {
		if ref == "" {
			return nil, fmt.Errorf("imagegc: PinnedImages[%d]: %w: empty", i, core.ErrInvalid)
		}
		pinned[ref] = true
	}
	g := &GC{cfg: cfg, policy: policy, pinned: pinned, log: cfg.Logger,
		collecting: make(chan struct{}, 1), mu: make(chan struct{}, 1), records: map[string]*Image{}, sandboxImage: map[string]string{},
		removed: prometheus.NewCounterVec(prometheus.CounterOpts{Subsystem: "kubelet", Name: "image_garbage_collected_total",
			Help: "Total number of images garbage collected by the kubelet, whether through disk usage or image age."}, []string{"reason"}),
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(g.removed); err != nil {
			return nil, fmt.Errorf("imagegc: register metrics: %w", err)
		}
	}
	return g, nil
}

// Policy is the policy in force.
func (g *GC) Policy() Policy { return g.policy }

// Detect lists the images and what uses them, and updates the images'
// times: a new image is first detected now, one in use is last used now,
// one gone is forgotten. It returns the images as they now stand, least
// recently used first, and the IDs of those in use. Collections detect
// first; Run also detects when DetectPeriod has passed since the latest
// detection, so that an image used only between collections is known to
// have been used. A detection under way is waited for until ctx ends.
func (g *GC) Detect(ctx context.Context) ([]Image, map[string]bool, error) {
	_, images, inUse, err := g.detect(ctx)
	if err != nil {
		return nil, nil, err
	}
	sortLRU(images)
	return images, inUse, nil
}

// detect waits for the detection under way, if any, and detects; now is
// when it started.
func (g *GC) detect(ctx context.Context) (now time.Time, images []Image, inUse map[string]bool, err error) {
	if err := acquire(ctx, g.mu); err != nil {
		return time.Time{}, nil, nil, fmt.Errorf("imagegc: waiting for the detection under way: %w", err)
	}
	defer func() { <-g.mu }()
	now = g.cfg.Clock.Now()
	images, inUse, err = g.detectLocked(ctx, now)
	end := g.cfg.Clock.Now()
	g.lastMu.Lock()
	g.lastDetect = end
	g.lastMu.Unlock()
	return now, images, inUse, err
}

// untilDetect is how long until a detection is due: DetectPeriod after
// the latest one ended, whoever made it.
func (g *GC) untilDetect() time.Duration {
	g.lastMu.Lock()
	last := g.lastDetect
	g.lastMu.Unlock()
	return g.cfg.DetectPeriod - g.cfg.Clock.Since(last)
}

// detectLocked updates the records at now and returns them with the IDs
// in use; called with mu held.
func (g *GC) detectLocked(ctx context.Context, now time.Time) ([]Image, map[string]bool, error) {
	listed, err := g.cfg.Images.ListImages(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("imagegc: list images: %w", err)
	}
	containers, err := g.cfg.Containers.ListContainers(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("imagegc: list containers: %w", err)
	}
	var refs []string
	for _, c := range containers {
		refs = append(refs, c.GetImageId(), c.GetImageRef(), c.GetImage().GetImage())
	}
	if g.cfg.Sandboxes != nil {
		sandboxRefs, err := g.sandboxImages(ctx)
		if err != nil {
			return nil, nil, err
		}
		refs = append(refs, sandboxRefs...)
	}

	// Every name of an image leads to its ID.
	byRef := make(map[string]string, 3*len(listed))
	for _, img := range listed {
		id := img.GetId()
		byRef[id] = id
		byRef[strings.TrimPrefix(id, "sha256:")] = id
		for _, r := range img.GetRepoTags() {
			byRef[r] = id
		}
		for _, r := range img.GetRepoDigests() {
			byRef[r] = id
		}
	}
	inUse := map[string]bool{}
	for _, r := range refs {
		if id, ok := byRef[r]; ok && r != "" {
			inUse[id] = true
		}
	}
	pinnedIDs := map[string]bool{}
	for r := range g.pinned {
		if id, ok := byRef[r]; ok {
			pinnedIDs[id] = true
		}
	}

	present := make(map[string]bool, len(listed))
	out := make([]Image, 0, len(listed))
	for _, img := range listed {
		id := img.GetId()
		if id == "" || present[id] {
			continue
		}
		present[id] = true
		rec, ok := g.records[id]
		if !ok {
			rec = &Image{ID: id, FirstDetected: now}
			g.records[id] = rec
			g.log.Debug("image detected", zap.String("imageID", id), zap.Strings("repoTags", img.GetRepoTags()), zap.Uint64("size", img.GetSize()))
		}
		if inUse[id] {
			rec.LastUsed = now
		}
		rec.RepoTags = append([]string(nil), img.GetRepoTags()...)
		rec.Size = img.GetSize()
		rec.Pinned = img.GetPinned() || pinnedIDs[id]
		cp := *rec
		cp.RepoTags = slices.Clone(rec.RepoTags) // callers may keep and change what they get
		out = append(out, cp)
	}
	for id := range g.records {
		if !present[id] {
			g.log.Debug("image gone", zap.String("imageID", id))
			delete(g.records, id)
		}
	}
	return out, inUse, nil
}

// sandboxImages returns the images the runtime names in its sandboxes'
// verbose statuses, and remembers each by sandbox. A sandbox removed
// meanwhile is skipped; one whose status fails otherwise is logged and
// counted as running the image last seen for it, so that one stuck
// sandbox neither stops the detection nor lets its image go. Sandboxes
// no longer listed are forgotten.
func (g *GC) sandboxImages(ctx context.Context) ([]string, error) {
	sandboxes, err := g.cfg.Sandboxes.ListPodSandbox(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("imagegc: list sandboxes: %w", err)
	}
	var refs []string
	listed := make(map[string]bool, len(sandboxes))
	for _, s := range sandboxes {
		id := s.GetId()
		listed[id] = true
		resp, err := g.cfg.Sandboxes.PodSandboxStatus(ctx, id, true)
		if errors.Is(err, core.ErrNotFound) {
			delete(g.sandboxImage, id)
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("imagegc: status of sandbox %s: %w", id, err)
			}
			last, known := g.sandboxImage[id]
			g.log.Warn("failed to get the status of a sandbox; counting it as running the image last seen for it",
				zap.String("sandboxID", id), zap.String("image", last), zap.Error(err))
			if known {
				refs = append(refs, last)
			}
			continue
		}
		var info struct {
			Image string `json:"image"`
		}
		if raw := resp.GetInfo()["info"]; raw != "" && json.Unmarshal([]byte(raw), &info) == nil && info.Image != "" {
			refs = append(refs, info.Image)
			g.sandboxImage[id] = info.Image
		} else {
			delete(g.sandboxImage, id)
		}
	}
	for id := range g.sandboxImage {
		if !listed[id] {
			delete(g.sandboxImage, id)
		}
	}
	return refs, nil
}

// GarbageCollect runs one collection as the kubelet's periodic one: it
// detects the images, deletes those unused for longer than MaxAge, then
// measures the image filesystem and, at or above HighThresholdPercent,
// deletes unused images least recently used first until usage would be
// down to LowThresholdPercent. Images in use, pinned, used now or younger
// than MinAge stay.
//
// A collection under way (this one's or DeleteUnused's) is waited for,
// until ctx ends; then the collection decides on its own detection.
//
// Errors: ctx's error when it ends while waiting; listing or measuring
// failed (the runtime's error class wrapped); a *RemoveError for each
// image that could not be removed (the others are still tried);
// ErrInvalidCapacity; a *SpaceError when not enough could be freed. The
// Result lists what was deleted in every case.
func (g *GC) GarbageCollect(ctx context.Context) (Result, error) {
	res := Result{Time: g.cfg.Clock.Now(), UsagePercent: -1}
	if err := acquire(ctx, g.collecting); err != nil {
		return res, fmt.Errorf("imagegc: waiting for the collection under way: %w", err)
	}
	defer func() { <-g.collecting }()
	defer g.keep(&res)
	now, images, inUse, err := g.detect(ctx)
	if err != nil {
		return res, err
	}
	res.Time = now
	if g.policy.MaxAge > 0 {
		plan := Decide(Input{Images: images, InUse: inUse, Now: now, Policy: g.policy})
		if errs := g.remove(ctx, plan.Delete, &res); len(errs) > 0 {
			return res, fmt.Errorf("imagegc: wanted to free images unused for longer than %s: %w", g.policy.MaxAge, errors.Join(errs...))
		}
		images = slices.DeleteFunc(images, func(img Image) bool {
			return slices.ContainsFunc(plan.Delete, func(d Deletion) bool { return d.Image.ID == img.ID })
		})
	}
	fs, err := g.measure(ctx)
	if err != nil {
		return res, err
	}
	if fs.CapacityBytes == 0 {
		g.event(EventInvalidDiskCapacity, ErrInvalidCapacity.Error())
		return res, fmt.Errorf("imagegc: %w", ErrInvalidCapacity)
	}
	usage, over, toFree := SpaceToFree(fs, g.policy)
	res.UsagePercent, res.BytesToFree = usage, toFree
	if !over {
		g.log.Debug("image filesystem below the high threshold", zap.Int("usage", usage), zap.Int("highThreshold", g.policy.HighThresholdPercent))
		return res, nil
	}
	g.log.Info("disk usage on image filesystem is over the high threshold, trying to free bytes down to the low threshold",
		zap.Int("usage", usage), zap.Int("highThreshold", g.policy.HighThresholdPercent), zap.Uint64("amountToFree", toFree),
		zap.Int("lowThreshold", g.policy.LowThresholdPercent))
	freed, err := g.freeSpace(ctx, now, images, inUse, max(toFree, 1), &res)
	if err != nil {
		return res, err
	}
	if freed < toFree {
		serr := &SpaceError{UsagePercent: usage, CapacityBytes: fs.CapacityBytes, BytesToFree: toFree, BytesFreed: freed}
		g.event(EventFreeDiskSpaceFailed, serr.Error())
		return res, serr
	}
	return res, nil
}

// DeleteUnused detects the images and deletes every one the policy lets
// go for space: not in use, not pinned, not younger than MinAge. It is
// the eviction manager's node-level reclaim for the image filesystem;
// MaxAge plays no part. Like GarbageCollect, it waits for a collection
// under way only until ctx ends. Errors are GarbageCollect's, less the
// space ones.
func (g *GC) DeleteUnused(ctx context.Context) (Result, error) {
	res := Result{Time: g.cfg.Clock.Now(), UsagePercent: -1, BytesToFree: AllBytes}
	if err := acquire(ctx, g.collecting); err != nil {
		return res, fmt.Errorf("imagegc: waiting for the collection under way: %w", err)
	}
	defer func() { <-g.collecting }()
	defer g.keep(&res)
	now, images, inUse, err := g.detect(ctx)
	if err != nil {
		return res, err
	}
	res.Time = now
	_, err = g.freeSpace(ctx, now, images, inUse, AllBytes, &res)
	return res, err
}

// DeleteUnusedImages is DeleteUnused for the eviction manager
// (eviction.ImageGC): it logs what was freed and returns the error.
func (g *GC) DeleteUnusedImages(ctx context.Context) error {
	g.log.Info("attempting to delete unused images")
	res, err := g.DeleteUnused(ctx)
	g.log.Info("unused images deleted", zap.Stringer("result", res), zap.Error(err))
	return err
}

// Last returns the latest collection's Result; false before the first.
func (g *GC) Last() (Result, bool) {
	g.lastMu.Lock()
	defer g.lastMu.Unlock()
	if g.last == nil {
		return Result{}, false
	}
	return *g.last, true
}

// keep makes res the latest result.
func (g *GC) keep(res *Result) {
	r := *res
	g.lastMu.Lock()
	defer g.lastMu.Unlock()
	g.last = &r
}

// freeSpace deletes images, of those the collection detected, for space,
// least recently used first, until the deletions have freed toFree; an
// image that cannot be removed is left and the next one is tried, as the
// kubelet does. It returns the bytes freed and the removal errors joined.
func (g *GC) freeSpace(ctx context.Context, now time.Time, images []Image, inUse map[string]bool, toFree uint64, res *Result) (uint64, error) {
	p := g.policy
	p.MaxAge = 0 // ages were dealt with already
	tried := map[string]bool{}
	var freed uint64
	var errs []error
	for freed < toFree {
		var left []Image
		for _, img := range images {
			if !tried[img.ID] {
				left = append(left, img)
			}
		}
		plan := Decide(Input{Images: left, InUse: inUse, Now: now, Policy: p, BytesToFree: toFree - freed})
		if len(plan.Delete) == 0 {
			break
		}
		before := res.BytesFreed
		more := g.remove(ctx, plan.Delete, res)
		freed += res.BytesFreed - before
		for _, d := range plan.Delete {
			tried[d.Image.ID] = true // removed, or failed to be
		}
		errs = append(errs, more...)
		if len(more) == 0 || ctx.Err() != nil {
			break
		}
	}
	if len(errs) > 0 {
		return freed, fmt.Errorf("imagegc: wanted to free %s, but freed %d bytes with errors in image deletion: %w", describeBytes(toFree), freed, errors.Join(errs...))
	}
	return freed, nil
}

func describeBytes(n uint64) string {
	if n == AllBytes {
		return "every unused image"
	}
	return fmt.Sprintf("%d bytes", n)
}

// remove removes the images of dels in order, forgetting and counting
// each one removed; it returns one *RemoveError per failure.
func (g *GC) remove(ctx context.Context, dels []Deletion, res *Result) []error {
	var errs []error
	for _, d := range dels {
		g.log.Info("removing image to free bytes", zap.String("imageID", d.Image.ID), zap.Strings("repoTags", d.Image.RepoTags),
			zap.Uint64("size", d.Image.Size), zap.String("reason", string(d.Reason)))
		if err := g.cfg.Images.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: d.Image.ID}); err != nil {
			errs = append(errs, &RemoveError{Image: d.Image, Reason: d.Reason, Err: err})
			continue
		}
		// Forgotten, so that the image pulled again is new. Should ctx
		// end first, the next detection forgets it, not finding it.
		if acquire(ctx, g.mu) == nil {
			delete(g.records, d.Image.ID)
			<-g.mu
		}
		g.removed.WithLabelValues(string(d.Reason)).Inc()
		res.Deleted = append(res.Deleted, d)
		res.BytesFreed = addSat(res.BytesFreed, d.Image.Size)
	}
	return errs
}

// measure is the image filesystem's capacity and free space: statfs of
// the mount point of the first image filesystem the runtime reports.
func (g *GC) measure(ctx context.Context) (FsStats, error) {
	resp, err := g.cfg.ImageFs.ImageFsInfo(ctx)
	if err != nil {
		return FsStats{}, fmt.Errorf("imagegc: image filesystem: %w", err)
	}
	fss := resp.GetImageFilesystems()
	if len(fss) == 0 || fss[0].GetFsId().GetMountpoint() == "" {
		return FsStats{}, fmt.Errorf("imagegc: image filesystem: %w: the runtime reports no mount point", core.ErrUnavailable)
	}
	mount := fss[0].GetFsId().GetMountpoint()
	fs, err := g.cfg.Statfs(mount)
	if err != nil {
		return FsStats{}, fmt.Errorf("imagegc: image filesystem %s: %w", mount, err)
	}
	return fs, nil
}

// event records a Warning event about the node.
func (g *GC) event(reason, message string) {
	if g.cfg.Recorder != nil && g.cfg.Node != nil {
		g.cfg.Recorder.Eventf(g.cfg.Node, v1.EventTypeWarning, reason, "%s", message)
	}
}

// Run collects every Period, starting at once, and detects in between
// once DetectPeriod has passed since the latest detection (a collection's,
// a caller's or its own), until ctx ends; it returns ctx's error. When
// the policy turns periodic collection off (Policy.Periodic), it only
// detects, so that DeleteUnusedImages still knows the images' ages.
// Failures are logged; the second failed collection in a row and every
// one after it is an ImageGCFailed event, as in the kubelet.
func (g *GC) Run(ctx context.Context) error {
	periodic := g.policy.Periodic()
	if !periodic {
		g.log.Info("image garbage collection is off (HighThresholdPercent 100, no MaxAge): detecting only")
	}
	detect := g.cfg.Clock.NewTimer(g.cfg.DetectPeriod)
	defer detect.Stop()
	var collect <-chan time.Time
	if periodic {
		t := g.cfg.Clock.NewTicker(g.cfg.Period)
		defer t.Stop()
		collect = t.C()
	}
	failedBefore := false
	round := func() {
		if !periodic {
			g.detectOnly(ctx)
			return
		}
		res, err := g.GarbageCollect(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
		case err != nil && failedBefore:
			g.log.Error("image garbage collection failed multiple times in a row", zap.Error(err), zap.Stringer("result", res))
			g.event(EventImageGCFailed, err.Error())
		case err != nil:
			g.log.Warn("image garbage collection failed once; stats initialization may not have completed yet", zap.Error(err), zap.Stringer("result", res))
			failedBefore = true
		default:
			if failedBefore {
				g.log.Info("image garbage collection succeeded", zap.Stringer("result", res))
			} else {
				g.log.Debug("image garbage collection succeeded", zap.Stringer("result", res))
			}
			failedBefore = false
		}
	}
	round()
	for {
		detect.Reset(g.untilDetect())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-collect:
			round()
		case <-detect.C():
			select {
			case <-collect: // due as well: the collection detects
				round()
			default:
				if g.untilDetect() <= 0 { // else another detection came in between
					g.detectOnly(ctx)
				}
			}
		}
	}
}

func (g *GC) detectOnly(ctx context.Context) {
	if _, _, err := g.Detect(ctx); err != nil && ctx.Err() == nil {
		g.log.Info("failed to monitor images", zap.Error(err))
	}
}
