package imagegc

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/nodekit/nodekit/core"
)

// Policy is the kubelet's image garbage collection policy: the band of
// image filesystem usage collection keeps to, and the ages that protect
// and expire images. The zero Policy is valid (collect whenever asked,
// protect nothing by age); DefaultPolicy is the kubelet's.
type Policy struct {
	// HighThresholdPercent: image filesystem usage at or above it starts
	// a collection by space (imageGCHighThresholdPercent). 100 with MaxAge
	// 0 turns periodic collection off, as in the kubelet.
	HighThresholdPercent int
	// LowThresholdPercent: a collection by space frees bytes until usage
	// would be down to it (imageGCLowThresholdPercent).
	LowThresholdPercent int
	// MinAge: an image detected less than MinAge ago is not removed for
	// space (imageMinimumGCAge): it may have just been pulled for a
	// container about to start.
	MinAge time.Duration
	// MaxAge: an image unused for longer is removed whatever the usage
	// (imageMaximumGCAge). 0 turns it off.
	MaxAge time.Duration
}

// Defaults of Policy, the kubelet's.
const (
	DefaultHighThresholdPercent = 85
	DefaultLowThresholdPercent  = 80
	DefaultMinAge               = 2 * time.Minute
)

// DefaultPolicy returns the kubelet's default policy: high 85 %, low 80 %,
// minimum age 2 minutes, no maximum age.
func DefaultPolicy() Policy {
	return Policy{HighThresholdPercent: DefaultHighThresholdPercent, LowThresholdPercent: DefaultLowThresholdPercent, MinAge: DefaultMinAge}
}

// Validate checks the policy as the kubelet's image GC manager does:
// thresholds within 0..100 and low not above high, ages not negative.
// Errors wrap core.ErrInvalid and name the field.
func (p Policy) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("imagegc: Policy.%s: %w: %s", field, core.ErrInvalid, fmt.Sprintf(format, args...))
	}
	switch {
	case p.HighThresholdPercent < 0 || p.HighThresholdPercent > 100:
		return bad("HighThresholdPercent", "%d is not within 0..100", p.HighThresholdPercent)
	case p.LowThresholdPercent < 0 || p.LowThresholdPercent > 100:
		return bad("LowThresholdPercent", "%d is not within 0..100", p.LowThresholdPercent)
	case p.LowThresholdPercent > p.HighThresholdPercent:
		return bad("LowThresholdPercent", "%d is above HighThresholdPercent %d", p.LowThresholdPercent, p.HighThresholdPercent)
	case p.MinAge < 0:
		return bad("MinAge", "%s is negative", p.MinAge)
	case p.MaxAge < 0:
		return bad("MaxAge", "%s is negative", p.MaxAge)
	}
	return nil
}

// clamped is p with the thresholds within 0..100 and the ages not
// negative: what SpaceToFree and Decide make of a policy Validate would
// refuse.
func (p Policy) clamped() Policy {
	p.HighThresholdPercent = min(max(p.HighThresholdPercent, 0), 100)
	p.LowThresholdPercent = min(max(p.LowThresholdPercent, 0), 100)
	p.MinAge = max(p.MinAge, 0)
	p.MaxAge = max(p.MaxAge, 0)
	return p
}

// Periodic reports whether the policy asks for periodic collection: not
// when HighThresholdPercent is 100 and MaxAge is 0, the kubelet's way of
// turning image garbage collection off. DeleteUnusedImages, the eviction
// manager's reclaim, works either way.
func (p Policy) Periodic() bool { return p.HighThresholdPercent < 100 || p.MaxAge > 0 }

// Image is what the collector knows of one image: what the runtime lists
// and when it was first detected and last seen in use.
type Image struct {
	// ID is the runtime's image ID ("sha256:...").
	ID string
	// RepoTags name the image, for people: the plan and the logs show
	// them.
	RepoTags []string
	// Size in bytes, as the runtime reports it.
	Size uint64
	// Pinned images are never removed: the runtime pinned them (CRI
	// Image.Pinned, containerd's sandbox image) or the configuration
	// did (Config.PinnedImages).
	Pinned bool
	// FirstDetected is when the collector first listed the image.
	FirstDetected time.Time
	// LastUsed is when a container (or sandbox) last used it; zero when
	// none was ever seen to.
	LastUsed time.Time
}

// String is the image's first tag, or its ID.
func (img Image) String() string {
	if len(img.RepoTags) > 0 {
		return img.RepoTags[0]
	}
	return img.ID
}

// Reason is why an image is deleted; it is the reason label of
// kubelet_image_garbage_collected_total.
type Reason string

// The kubelet's reasons.
const (
	// ReasonAge: unused for longer than MaxAge.
	ReasonAge Reason = "age"
	// ReasonSpace: the image filesystem is above the high threshold, or
	// the eviction manager asked for every unused image.
	ReasonSpace Reason = "space"
)

// KeepReason is why an image is not deleted.
type KeepReason string

// Why images are kept.
const (
	// KeepInUse: a container (in any state) or sandbox uses it.
	KeepInUse KeepReason = "in use"
	// KeepPinned: the runtime or the configuration pinned it.
	KeepPinned KeepReason = "pinned"
	// KeepUsedNow: its last use is not before now.
	KeepUsedNow KeepReason = "used now"
	// KeepTooYoung: first detected less than MinAge ago.
	KeepTooYoung KeepReason = "younger than the minimum age"
	// KeepNotNeeded: no space was wanted, or enough is freed without it.
	KeepNotNeeded KeepReason = "not needed"
)

// Deletion is one image the plan deletes, and why.
type Deletion struct {
	Image  Image
	Reason Reason
}

// Kept is one image the plan keeps, and why.
type Kept struct {
	Image  Image
	Reason KeepReason
}

// AllBytes as Input.BytesToFree frees every image the policy lets go: the
// eviction manager's DeleteUnusedImages.
const AllBytes = math.MaxUint64

// Input is everything one collection is decided on.
type Input struct {
	// Images are the images present, with their times.
	Images []Image
	// InUse holds the IDs of the images containers or sandboxes use now.
	InUse map[string]bool
	// Now is the time of the collection.
	Now time.Time
	// Policy holds the ages; the thresholds were turned into BytesToFree
	// (see SpaceToFree).
	Policy Policy
	// BytesToFree is what deletions for space must free: 0 for none,
	// AllBytes for every image they may take.
	BytesToFree uint64
}

// Plan is a decided collection: the images to delete, in the order to
// delete them, and every other image with why it stays.
type Plan struct {
	// Delete lists the deletions in order: by age first, then for
	// space, each least recently used first.
	Delete []Deletion
	// Keep lists the images kept, least recently used first.
	Keep []Kept
	// BytesToFree is Input.BytesToFree.
	BytesToFree uint64
	// SpaceBytes adds up the sizes of the deletions for space; AgeBytes
	// those by age.
	SpaceBytes, AgeBytes uint64
}

// Decide plans one collection as the kubelet's image garbage collector
// does. Images in use or pinned are kept. Every other is considered least
// recently used first (an image never used before any that was; ties by
// first detection, then by ID). With a MaxAge, each unused for longer is
// deleted by age, whatever the space. Then, while the deletions for space
// have freed less than BytesToFree, the next is deleted for space, unless
// it was used now or first detected less than MinAge ago. Decide does no
// I/O and reads no clock.
//
// An image never seen in use is as old as its first detection for MaxAge
// (the kubelet counts from the zero time, and so removes an image pulled
// a moment ago once it has run MaxAge).
//
// The policy is taken as given, not validated: a negative MinAge or
// MaxAge counts as 0 (no minimum age, no maximum age); the thresholds play
// no part here.
func Decide(in Input) Plan {
	in.Policy = in.Policy.clamped()
	order := slices.Clone(in.Images)
	sortLRU(order)
	plan := Plan{BytesToFree: in.BytesToFree}
	// Keep reads least recently used first, whatever the reason: each
	// kept image remembers its place in order.
	type kept struct {
		Kept
		pos int
	}
	var keeps []kept
	keep := func(pos int, why KeepReason) { keeps = append(keeps, kept{Kept{Image: order[pos], Reason: why}, pos}) }
	var candidates []int
	for pos, img := range order {
		switch {
		case in.InUse[img.ID]:
			keep(pos, KeepInUse)
		case img.Pinned:
			keep(pos, KeepPinned)
		default:
			candidates = append(candidates, pos)
		}
	}
	var rest []int
	for _, pos := range candidates {
		img := order[pos]
		if in.Policy.MaxAge > 0 && in.Now.Sub(lastSeen(img)) > in.Policy.MaxAge {
			plan.Delete = append(plan.Delete, Deletion{Image: img, Reason: ReasonAge})
			plan.AgeBytes = addSat(plan.AgeBytes, img.Size)
			continue
		}
		rest = append(rest, pos)
	}
	for _, pos := range rest {
		img := order[pos]
		switch {
		case in.BytesToFree == 0 || plan.SpaceBytes >= in.BytesToFree:
			keep(pos, KeepNotNeeded)
		case !img.LastUsed.Before(in.Now):
			keep(pos, KeepUsedNow)
		case in.Now.Sub(img.FirstDetected) < in.Policy.MinAge:
			keep(pos, KeepTooYoung)
		default:
			plan.Delete = append(plan.Delete, Deletion{Image: img, Reason: ReasonSpace})
			plan.SpaceBytes = addSat(plan.SpaceBytes, img.Size)
		}
	}
	slices.SortFunc(keeps, func(a, b kept) int { return cmp.Compare(a.pos, b.pos) })
	for _, k := range keeps {
		plan.Keep = append(plan.Keep, k.Kept)
	}
	return plan
}

// sortLRU sorts images least recently used first: never used before
// used, ties by first detection, then by ID.
func sortLRU(images []Image) {
	slices.SortStableFunc(images, func(a, b Image) int {
		if c := a.LastUsed.Compare(b.LastUsed); c != 0 {
			return c
		}
		if c := a.FirstDetected.Compare(b.FirstDetected); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

// lastSeen is when the image was last used, or first detected if it was
// never seen in use.
func lastSeen(img Image) time.Time {
	if img.LastUsed.After(img.FirstDetected) {
		return img.LastUsed
	}
	return img.FirstDetected
}

func addSat(a, b uint64) uint64 {
	if s, carry := bits.Add64(a, b, 0); carry == 0 {
		return s
	}
	return math.MaxUint64
}

// String renders the plan one line per image, deletions first.
func (p Plan) String() string {
	var b strings.Builder
	want := "none"
	switch {
	case p.BytesToFree == AllBytes:
		want = "all it may"
	case p.BytesToFree > 0:
		want = FormatSize(p.BytesToFree)
	}
	fmt.Fprintf(&b, "to free for space: %s; deleting %d (%s by age, %s for space), keeping %d",
		want, len(p.Delete), FormatSize(p.AgeBytes), FormatSize(p.SpaceBytes), len(p.Keep))
	for _, d := range p.Delete {
		fmt.Fprintf(&b, "\n  delete %s (%s): %s", d.Image, FormatSize(d.Image.Size), d.Reason)
	}
	for _, k := range p.Keep {
		fmt.Fprintf(&b, "\n  keep %s (%s): %s", k.Image, FormatSize(k.Image.Size), k.Reason)
	}
	return b.String()
}

// FsStats is the image filesystem's size and free space, as statfs
// reports them: capacity is every block, available what an unprivileged
// user may still allocate.
type FsStats struct {
	CapacityBytes  uint64
	AvailableBytes uint64
}

// SpaceToFree applies the thresholds to the image filesystem as the
// kubelet does: usage is 100 less the available percentage (rounded
// down), and at or above HighThresholdPercent the bytes to free are what
// brings the available space up to 100 − LowThresholdPercent of the
// capacity. over reports usage at or above the high threshold; bytes is
// 0 below it (and may be 0 above it, when rounding put usage over the
// line). Available space beyond the capacity counts as the capacity. A
// zero capacity is the caller's to refuse.
//
// The policy is taken as given, not validated: each threshold below 0
// counts as 0 and each above 100 as 100, so that the bytes to free never
// exceed the space in use.
func SpaceToFree(fs FsStats, p Policy) (usagePercent int, over bool, bytes uint64) {
	p = p.clamped()
	capacity, available := fs.CapacityBytes, min(fs.AvailableBytes, fs.CapacityBytes)
	if capacity == 0 {
		return 0, false, 0
	}
	usagePercent = 100 - int(mulDiv(available, 100, capacity))
	if usagePercent < p.HighThresholdPercent {
		return usagePercent, false, 0
	}
	goal := mulDiv(capacity, uint64(100-p.LowThresholdPercent), 100)
	if goal > available {
		bytes = goal - available
	}
	return usagePercent, true, bytes
}

// mulDiv is a*b/c rounded down, without overflow for c > 0 and a*b/c
// within 64 bits (here b ≤ 100 and a ≤ c, or c is 100).
func mulDiv(a, b, c uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	if hi >= c {
		return math.MaxUint64
	}
	q, _ := bits.Div64(hi, lo, c)
	return q
}

// FormatSize renders a byte count as the kubelet's events do: "512 B",
// "1.5 KiB", "3.0 MiB", "2.1 GiB", "1.0 TiB".
func FormatSize(n uint64) string {
	const (
		kib = 1 << 10
		mib = 1 << 20
		gib = 1 << 30
		tib = 1 << 40
	)
	f := float64(n)
	switch {
	case n < kib:
		return fmt.Sprintf("%d B", n)
	case n < mib:
		return fmt.Sprintf("%.1f KiB", f/kib)
	case n < gib:
		return fmt.Sprintf("%.1f MiB", f/mib)
	case n < tib:
		return fmt.Sprintf("%.1f GiB", f/gib)
	}
	return fmt.Sprintf("%.1f TiB", f/tib)
}
