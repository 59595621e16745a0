package syncloop

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
)

// GCPolicy says which dead containers the garbage collector keeps. A dead
// container is one the runtime does not report running: exited, created
// but never started, or in an unknown state.
//
// The zero value keeps no dead container at all; DefaultGCPolicy is the
// kubelet's default.
type GCPolicy struct {
	// MinAge is how long ago a dead container must have been created
	// before it may be removed. 0: no minimum. Negative is invalid.
	MinAge time.Duration
	// MaxPerPodContainer is how many dead instances of one container of
	// one pod (pod UID and container name) are kept, the newest ones.
	// 0 keeps none; negative is no limit.
	MaxPerPodContainer int
	// MaxContainers is how many dead containers are kept on the node in
	// all. 0 keeps none; negative is no limit. When over the limit, each
	// pod container is first cut to an equal share (at least one), then
	// the oldest go until the node is within the limit.
	MaxContainers int
}

// DefaultGCPolicy is the kubelet's default policy: no minimum age, one dead
// instance kept per pod container, no limit on the node.
func DefaultGCPolicy() GCPolicy {
	return GCPolicy{MinAge: 0, MaxPerPodContainer: 1, MaxContainers: -1}
}

// Validate reports a negative MinAge, as an error wrapping core.ErrInvalid.
func (p GCPolicy) Validate() error {
	if p.MinAge < 0 {
		return fmt.Errorf("syncloop: gc policy: MinAge %s is negative: %w", p.MinAge, core.ErrInvalid)
	}
	return nil
}

// GCPodState tells the garbage collector what is left of the pods: it is
// asked about every pod UID found in the runtime and in the pod log
// directories. The pod workers and the pod sources answer it together.
type GCPodState interface {
	// ShouldPodContentBeRemoved reports whether nothing of the pod need
	// be kept, not even its dead containers and logs: the pod was deleted
	// (or evicted) and has terminated, or it is unknown to the workers and
	// every pod source has been seen.
	ShouldPodContentBeRemoved(uid types.UID) bool
	// ShouldPodRuntimeBeRemoved reports whether none of the pod's
	// containers and sandboxes need be kept: the pod has terminated,
	// deleted or not, or it is unknown to the workers and every pod source
	// has been seen.
	ShouldPodRuntimeBeRemoved(uid types.UID) bool
}

// GCReason says why the garbage collector removes something.
type GCReason string

// Reasons of GCPlan entries.
const (
	// GCPodDeleted: the pod was deleted and has terminated, or no source
	// has it (GCPodState.ShouldPodContentBeRemoved).
	GCPodDeleted GCReason = "PodDeleted"
	// GCPodTerminated: the pod has terminated and the collection was asked
	// to evict the dead containers of pods not yet deleted
	// (GCInput.EvictNonDeletedPods, GCPodState.ShouldPodRuntimeBeRemoved).
	GCPodTerminated GCReason = "PodTerminated"
	// GCNotPod: the container or sandbox was not made for a pod (it lacks
	// the pod labels, or the sandbox's metadata has no UID); no source can
	// want it once every source has been seen.
	GCNotPod GCReason = "NotPod"
	// GCMaxPerPodContainer: older than the GCPolicy.MaxPerPodContainer
	// newest dead instances of its pod container.
	GCMaxPerPodContainer GCReason = "MaxPerPodContainer"
	// GCMaxContainers: removed to bring the node within
	// GCPolicy.MaxContainers.
	GCMaxContainers GCReason = "MaxContainers"
	// GCOldSandbox: a sandbox that is not ready, holds no container and is
	// not its live pod's newest sandbox.
	GCOldSandbox GCReason = "OldSandbox"
)

// GCInput is everything a garbage collection plan depends on.
type GCInput struct {
	// Sandboxes and Containers are everything the runtime lists.
	Sandboxes  []*runtimeapi.PodSandbox
	Containers []*runtimeapi.Container
	// PodLogDirs are the names of the directories in the pod logs root,
	// which crispec.PodLogDir names <namespace>_<name>_<uid>. Other names
	// are left alone.
	PodLogDirs []string
	// PodLogsRoot, if set, is the pod logs root the containers' logs were
	// written under, in crispec's layout; the plan then names the log file
	// of each container it removes.
	PodLogsRoot string
	Policy      GCPolicy
	// Pods answers for the pods. Nil: no pod counts as deleted or
	// terminated, so only the policy's limits remove containers.
	Pods GCPodState
	// AllSourcesReady: every pod source has been seen, so a pod no source
	// has is gone for good. Until then no container is removed for its
	// pod's sake (only the policy's limits apply) and no log directory is
	// removed.
	AllSourcesReady bool
	// EvictNonDeletedPods also removes the dead containers and sandboxes
	// of pods that terminated but are not deleted, as under disk pressure.
	EvictNonDeletedPods bool
	// Now is when the plan is made; MinAge counts back from it.
	Now time.Time
}

// GCContainer is a container the plan removes.
type GCContainer struct {
	ID        string
	SandboxID string
	// PodUID is the pod the container's labels name; empty when it was
	// not made for a pod.
	PodUID    types.UID
	Name      string
	CreatedAt time.Time
	// Stop: the runtime reports the container in an unknown state, so it
	// may still run; it is stopped, within GracePeriod seconds, before it
	// is removed, and kept if it cannot be stopped.
	Stop        bool
	GracePeriod int64
	// LogPath is the container's log file, removed with the container
	// together with its rotated copies (the files whose names start with
	// it). Empty when GCInput.PodLogsRoot is empty or the container's
	// labels do not name a safe path.
	LogPath string
	Reason  GCReason
}

// GCSandbox is a sandbox the plan removes.
type GCSandbox struct {
	ID        string
	PodUID    types.UID
	CreatedAt time.Time
	Reason    GCReason
}

// GCPodLogDir is a pod log directory the plan removes.
type GCPodLogDir struct {
	// Name is the directory's name in the pod logs root.
	Name   string
	PodUID types.UID
	Reason GCReason
}

// GCPlan is what one garbage collection removes, each list oldest first
// (ties by ID; log directories by name). Containers go first, then sandboxes, then
// log directories.
type GCPlan struct {
	Containers []GCContainer
	Sandboxes  []GCSandbox
	PodLogDirs []GCPodLogDir
}

// Empty reports whether the plan removes nothing.
func (p GCPlan) Empty() bool {
	return len(p.Containers) == 0 && len(p.Sandboxes) == 0 && len(p.PodLogDirs) == 0
}

// unitKey is a pod container: the dead instances of one container of one
// pod are kept or removed together.
type unitKey struct {
	uid  types.UID
	name string
}

// newestFirst orders by creation time, newest first, then by ID.
func newestFirst(aCreated, bCreated time.Time, aID, bID string) int {
	if c := bCreated.Compare(aCreated); c != 0 {
		return c
	}
	return cmp.Compare(aID, bID)
}

// oldestFirst orders by creation time, oldest first, then by ID.
func oldestFirst(aCreated, bCreated time.Time, aID, bID string) int {
	if c := aCreated.Compare(bCreated); c != 0 {
		return c
	}
	return cmp.Compare(aID, bID)
}

// PlanGC decides, as the kubelet's container garbage collector does, which
// dead containers, sandboxes and pod log directories to remove:
//
//  1. Dead containers created at least Policy.MinAge before Now are
//     candidates, grouped by pod container (pod UID and container name).
//     Running containers are never removed.
//  2. Once AllSourcesReady, every candidate of a pod whose content may be
//     removed (or, with EvictNonDeletedPods, whose runtime may be
//     removed) goes, and so does every candidate not made for a pod.
//  3. Each pod container keeps its Policy.MaxPerPodContainer newest
//     candidates.
//  4. If more than Policy.MaxContainers candidates remain, each pod
//     container keeps MaxContainers divided by the number of pod
//     containers (at least one), then the oldest go until MaxContainers
//     remain.
//  5. A sandbox goes when it is not ready and no container is left in it,
//     unless it is its pod's newest sandbox and the pod is alive (neither
//     step 2 condition holds; AllSourcesReady is not required here, as
//     GCPodState already answers for unknown pods).
//  6. Once AllSourcesReady, a pod log directory goes when the pod's
//     content may be removed and none of its containers is left.
//
// A negative MinAge counts as 0. Ties in creation time are broken by ID,
// so the plan is the same for the same input.
func PlanGC(in GCInput) GCPlan {
	var plan GCPlan
	removed := map[string]bool{} // container IDs

	podGone := func(uid types.UID) GCReason {
		switch {
		case uid == "":
			if in.AllSourcesReady {
				return GCNotPod
			}
		case in.Pods == nil:
		case in.Pods.ShouldPodContentBeRemoved(uid):
			return GCPodDeleted
		case in.EvictNonDeletedPods && in.Pods.ShouldPodRuntimeBeRemoved(uid):
			return GCPodTerminated
		}
		return ""
	}

	// 1. Candidates by pod container.
	cutoff := in.Now.Add(-max(in.Policy.MinAge, 0))
	units := map[unitKey][]GCContainer{}
	for _, c := range in.Containers {
		if c.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		created := time.Unix(0, c.GetCreatedAt())
		if created.After(cutoff) {
			continue
		}
		// Malformed annotations only lose the fields they hold.
		info, ok, _ := core.ContainerInfoFromLabels(c.GetLabels(), c.GetAnnotations())
		gc := GCContainer{
			ID:        c.GetId(),
			SandboxID: c.GetPodSandboxId(),
			PodUID:    info.PodUID,
			Name:      c.GetMetadata().GetName(),
			CreatedAt: created,
		}
		if c.GetState() == runtimeapi.ContainerState_CONTAINER_UNKNOWN {
			gc.Stop = true
			gc.GracePeriod = unknownStopGracePeriod(info)
		}
		if ok && in.PodLogsRoot != "" {
			gc.LogPath = containerLogPath(in.PodLogsRoot, info)
		}
		key := unitKey{gc.PodUID, gc.Name}
		units[key] = append(units[key], gc)
	}
	for _, u := range units {
		slices.SortFunc(u, func(a, b GCContainer) int { return newestFirst(a.CreatedAt, b.CreatedAt, a.ID, b.ID) })
	}
	remove := func(cs []GCContainer, reason GCReason) {
		for _, c := range cs {
			c.Reason = reason
			plan.Containers = append(plan.Containers, c)
			removed[c.ID] = true
		}
	}
	// keep cuts every pod container to its n newest candidates.
	keep := func(n int, reason GCReason) {
		for key, u := range units {
			if len(u) > n {
				remove(u[n:], reason)
				units[key] = u[:n]
			}
		}
	}

	// 2. Pods that are gone.
	if in.AllSourcesReady {
		for key, u := range units {
			if reason := podGone(key.uid); reason != "" {
				remove(u, reason)
				delete(units, key)
			}
		}
	}
	// 3. Per pod container.
	if in.Policy.MaxPerPodContainer >= 0 {
		keep(in.Policy.MaxPerPodContainer, GCMaxPerPodContainer)
	}
	// 4. On the node.
	if limit := in.Policy.MaxContainers; limit >= 0 {
		total := 0
		for _, u := range units {
			total += len(u)
		}
		if total > limit {
			keep(max(limit/len(units), 1), GCMaxContainers)
			var rest []GCContainer
			for _, u := range units {
				rest = append(rest, u...)
			}
			if len(rest) > limit {
				slices.SortFunc(rest, func(a, b GCContainer) int { return newestFirst(a.CreatedAt, b.CreatedAt, a.ID, b.ID) })
				remove(rest[limit:], GCMaxContainers)
			}
		}
	}

	// What is left in the runtime once the containers are gone.
	occupied := map[string]bool{}   // sandbox IDs
	podLeft := map[types.UID]bool{} // pods with a container left
	for _, c := range in.Containers {
		if removed[c.GetId()] {
			continue
		}
		occupied[c.GetPodSandboxId()] = true
		if uid := c.GetLabels()[core.LabelPodUID]; uid != "" {
			podLeft[types.UID(uid)] = true
		}
	}

	// 5. Sandboxes.
	byPod := map[types.UID][]*runtimeapi.PodSandbox{}
	for _, s := range in.Sandboxes {
		uid := types.UID(s.GetMetadata().GetUid())
		byPod[uid] = append(byPod[uid], s)
	}
	for uid, sbs := range byPod {
		slices.SortFunc(sbs, func(a, b *runtimeapi.PodSandbox) int {
			return newestFirst(time.Unix(0, a.GetCreatedAt()), time.Unix(0, b.GetCreatedAt()), a.GetId(), b.GetId())
		})
		reason := podGone(uid)
		if reason == "" {
			sbs, reason = sbs[1:], GCOldSandbox
		}
		for _, s := range sbs {
			if s.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY || occupied[s.GetId()] {
				continue
			}
			plan.Sandboxes = append(plan.Sandboxes, GCSandbox{
				ID:        s.GetId(),
				PodUID:    uid,
				CreatedAt: time.Unix(0, s.GetCreatedAt()),
				Reason:    reason,
			})
		}
	}

	// 6. Pod log directories.
	if in.AllSourcesReady && in.Pods != nil {
		for _, name := range in.PodLogDirs {
			uid, ok := podUIDFromLogDir(name)
			if !ok || podLeft[uid] || !in.Pods.ShouldPodContentBeRemoved(uid) {
				continue
			}
			plan.PodLogDirs = append(plan.PodLogDirs, GCPodLogDir{Name: name, PodUID: uid, Reason: GCPodDeleted})
		}
	}

	slices.SortFunc(plan.Containers, func(a, b GCContainer) int { return oldestFirst(a.CreatedAt, b.CreatedAt, a.ID, b.ID) })
	slices.SortFunc(plan.Sandboxes, func(a, b GCSandbox) int { return oldestFirst(a.CreatedAt, b.CreatedAt, a.ID, b.ID) })
	slices.SortFunc(plan.PodLogDirs, func(a, b GCPodLogDir) int { return cmp.Compare(a.Name, b.Name) })
	return plan
}

// unknownStopGracePeriod is the grace period a container in an unknown
// state is stopped with before removal, as the kubelet reads it from the
// container's annotations: the pod's deletion grace period, else its
// termination grace period, never less than MinimumStopGracePeriod.
func unknownStopGracePeriod(info core.ContainerInfo) int64 {
	grace := int64(MinimumStopGracePeriod)
	switch {
	case info.PodDeletionGracePeriod != nil:
		grace = *info.PodDeletionGracePeriod
	case info.PodTerminationGracePeriod != nil:
		grace = *info.PodTerminationGracePeriod
	}
	return max(grace, MinimumStopGracePeriod)
}

// containerLogPath is where crispec put the container's log, or "" when
// the labels would make a path outside its pod's log directory.
func containerLogPath(root string, info core.ContainerInfo) string {
	for _, part := range []string{info.PodNamespace, info.PodName, string(info.PodUID), info.ContainerName} {
		if part == "" || part == "." || part == ".." || strings.ContainsAny(part, `/\`) {
			return ""
		}
	}
	return filepath.Join(crispec.ContainerLogDir(root, info.PodNamespace, info.PodName, info.PodUID, info.ContainerName),
		filepath.Base(crispec.ContainerLogPath(info.ContainerName, info.RestartCount)))
}

// podUIDFromLogDir reads the pod UID out of a crispec.PodLogDir name,
// <namespace>_<name>_<uid>; neither a namespace nor a pod name can hold
// an underscore.
func podUIDFromLogDir(name string) (types.UID, bool) {
	parts := strings.Split(name, "_")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", false
	}
	return types.UID(parts[2]), true
}

// GCRuntime is what the garbage collector asks of the container runtime.
type GCRuntime interface {
	core.SandboxLister
	core.SandboxStopper
	core.SandboxRemover
	core.ContainerLister
	core.ContainerStopper
	core.ContainerRemover
}

// ContainerGCConfig configures a ContainerGC.
type ContainerGCConfig struct {
	// Runtime to collect in. Required.
	Runtime GCRuntime
	// Pods answers for the pods. Required.
	Pods GCPodState
	// Policy of dead containers. Nil: DefaultGCPolicy.
	Policy *GCPolicy
	// PodLogsRoot is the directory of the pods' log directories, as given
	// to crispec. Default crispec.DefaultPodLogsRoot. Must be absolute.
	PodLogsRoot string
	Clock       clock.PassiveClock
	Logger      *zap.Logger
}

// ContainerGC removes dead containers, sandboxes and pod log directories
// from the runtime and the disk, as PlanGC decides. Its methods are safe
// to call concurrently, but two collections at once may both try to
// remove the same objects (which succeeds: removing what is gone is not
// an error).
type ContainerGC struct {
	cfg    ContainerGCConfig
	policy GCPolicy
	log    *zap.Logger
}

// NewContainerGC returns a ContainerGC for cfg.
func NewContainerGC(cfg ContainerGCConfig) (*ContainerGC, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.PodLogsRoot == "" {
		cfg.PodLogsRoot = crispec.DefaultPodLogsRoot
	}
	policy := DefaultGCPolicy()
	if cfg.Policy != nil {
		policy = *cfg.Policy
	}
	var errs []error
	if cfg.Runtime == nil {
		errs = append(errs, errors.New("Runtime is required"))
	}
	if cfg.Pods == nil {
		errs = append(errs, errors.New("Pods is required"))
	}
	if !filepath.IsAbs(cfg.PodLogsRoot) {
		errs = append(errs, fmt.Errorf("PodLogsRoot %q is not an absolute path", cfg.PodLogsRoot))
	}
	if policy.MinAge < 0 {
		errs = append(errs, fmt.Errorf("Policy.MinAge %s is negative", policy.MinAge))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("syncloop: container gc: %w: %w", core.ErrInvalid, errors.Join(errs...))
	}
	cfg.PodLogsRoot = filepath.Clean(cfg.PodLogsRoot)
	return &ContainerGC{cfg: cfg, policy: policy, log: cfg.Logger}, nil
}

// GarbageCollect lists the runtime's sandboxes and containers and the pod
// log directories, plans with PlanGC, and carries the plan out: it removes
// each container (stopping it first when its state is unknown) with its
// log files, then each sandbox (stopping it first, as a guard), then each
// log directory. A failing removal does not stop the others, but what
// depends on it is skipped: the sandbox of a container that could not be
// removed, and the log directory of its pod; the next collection tries
// again. It returns the plan and the failures joined; a failed listing
// returns before anything is removed.
//
// allSourcesReady says every pod source has been seen (GCInput.AllSourcesReady);
// evictNonDeletedPods also removes what terminated pods left, as the
// kubelet does under disk pressure.
func (g *ContainerGC) GarbageCollect(ctx context.Context, allSourcesReady, evictNonDeletedPods bool) (GCPlan, error) {
	containers, err := g.cfg.Runtime.ListContainers(ctx, nil)
	if err != nil {
		return GCPlan{}, fmt.Errorf("syncloop: container gc: list containers: %w", err)
	}
	sandboxes, err := g.cfg.Runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		return GCPlan{}, fmt.Errorf("syncloop: container gc: list sandboxes: %w", err)
	}
	var errs []error
	var dirs []string
	if allSourcesReady {
		dirs, err = g.podLogDirs()
		if err != nil {
			errs = append(errs, err)
		}
	}
	plan := PlanGC(GCInput{
		Sandboxes:           sandboxes,
		Containers:          containers,
		PodLogDirs:          dirs,
		PodLogsRoot:         g.cfg.PodLogsRoot,
		Policy:              g.policy,
		Pods:                g.cfg.Pods,
		AllSourcesReady:     allSourcesReady,
		EvictNonDeletedPods: evictNonDeletedPods,
		Now:                 g.cfg.Clock.Now(),
	})

	failedSandboxes := map[string]bool{}
	failedPods := map[types.UID]bool{}
	for _, c := range plan.Containers {
		if err := ctx.Err(); err != nil {
			return plan, errors.Join(append(errs, err)...)
		}
		if err := g.removeContainer(ctx, c); err != nil {
			errs = append(errs, err)
			failedSandboxes[c.SandboxID] = true
			failedPods[c.PodUID] = true
		}
	}
	for _, s := range plan.Sandboxes {
		if err := ctx.Err(); err != nil {
			return plan, errors.Join(append(errs, err)...)
		}
		if failedSandboxes[s.ID] {
			continue
		}
		g.log.Debug("removing sandbox", zap.String("sandbox", s.ID), zap.String("podUID", string(s.PodUID)), zap.String("reason", string(s.Reason)))
		if err := g.cfg.Runtime.StopPodSandbox(ctx, s.ID); err != nil && !errors.Is(err, core.ErrNotFound) {
			errs = append(errs, fmt.Errorf("syncloop: container gc: stop sandbox %s of pod %s: %w", s.ID, s.PodUID, err))
			continue
		}
		if err := g.cfg.Runtime.RemovePodSandbox(ctx, s.ID); err != nil {
			errs = append(errs, fmt.Errorf("syncloop: container gc: remove sandbox %s of pod %s: %w", s.ID, s.PodUID, err))
		}
	}
	for _, d := range plan.PodLogDirs {
		if failedPods[d.PodUID] {
			continue
		}
		g.log.Debug("removing pod logs", zap.String("dir", d.Name), zap.String("podUID", string(d.PodUID)))
		if err := os.RemoveAll(filepath.Join(g.cfg.PodLogsRoot, d.Name)); err != nil {
			errs = append(errs, fmt.Errorf("syncloop: container gc: remove pod log directory: %w", err))
		}
	}
	return plan, errors.Join(errs...)
}

// removeContainer stops a container in an unknown state, removes its log
// files, then the container.
func (g *ContainerGC) removeContainer(ctx context.Context, c GCContainer) error {
	g.log.Debug("removing container", zap.String("container", c.ID), zap.String("name", c.Name),
		zap.String("podUID", string(c.PodUID)), zap.String("reason", string(c.Reason)))
	if c.Stop {
		if err := g.cfg.Runtime.StopContainer(ctx, c.ID, c.GracePeriod); err != nil && !errors.Is(err, core.ErrNotFound) {
			return fmt.Errorf("syncloop: container gc: stop container %s (%s) in unknown state: %w", c.ID, c.Name, err)
		}
	}
	if c.LogPath != "" {
		logs, _ := filepath.Glob(globEscape(c.LogPath) + "*") // the only error is a bad pattern
		for _, l := range logs {
			if err := os.Remove(l); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("syncloop: container gc: remove log of container %s (%s): %w", c.ID, c.Name, err)
			}
		}
	}
	if err := g.cfg.Runtime.RemoveContainer(ctx, c.ID); err != nil {
		return fmt.Errorf("syncloop: container gc: remove container %s (%s): %w", c.ID, c.Name, err)
	}
	return nil
}

// podLogDirs lists the directories in the pod logs root; a root that does
// not exist holds none.
func (g *ContainerGC) podLogDirs() ([]string, error) {
	entries, err := os.ReadDir(g.cfg.PodLogsRoot)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("syncloop: container gc: read pod logs root: %w", err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	return dirs, nil
}

// globEscape quotes the characters filepath.Match treats specially.
func globEscape(path string) string {
	var b strings.Builder
	for _, r := range path {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
