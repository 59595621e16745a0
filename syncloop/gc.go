package syncloop

import (
	"cmp"
	"context"
	"errors"
	"fmt"
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
)

// GCPolicy says which dead containers garbage collection keeps, as the
// kubelet's container GC policy.
type GCPolicy struct {
	// MinAge: a container created less than MinAge ago is kept.
	MinAge time.Duration
	// MaxPerPodContainer is how many dead instances of each container of
	// a pod are kept; negative: all.
	MaxPerPodContainer int
	// MaxContainers is how many dead containers are kept in all;
	// negative: no limit.
	MaxContainers int
}

// DefaultGCPolicy is the kubelet's: no minimum age, the newest dead
// instance of each container kept (its exit code and logs stay
// readable), no global limit.
func DefaultGCPolicy() GCPolicy {
	return GCPolicy{MinAge: 0, MaxPerPodContainer: 1, MaxContainers: -1}
}

// GCPodState tells garbage collection what may go of a pod. The loop
// implements it.
type GCPodState interface {
	// ShouldPodContentBeRemoved: nothing of the pod runs or will, and no
	// source wants it: all of its dead containers, sandboxes and logs
	// may go.
	ShouldPodContentBeRemoved(uid types.UID) bool
	// ShouldPodRuntimeBeRemoved: nothing of the pod runs or will, though
	// a source may still want it (a completed pod): its dead containers
	// and sandboxes may go when space is short.
	ShouldPodRuntimeBeRemoved(uid types.UID) bool
}

// GCPlan is what one garbage collection round removes.
type GCPlan struct {
	// Containers to remove, oldest first within each pod container; an
	// Unknown one is stopped first.
	Containers []GCContainer
	// Sandboxes to stop and remove: not ready and without containers.
	Sandboxes []GCSandbox
	// LogDirs are pod log directories (names under the log root) of pods
	// whose content may go.
	LogDirs []string
}

// GCContainer is one container a GCPlan removes.
type GCContainer struct {
	ID      string
	PodUID  types.UID
	Name    string
	Created time.Time
	// Unknown: the runtime reports it in an unknown state; stop it before
	// removing it, as the kubelet does.
	Unknown bool
}

// GCSandbox is one sandbox a GCPlan removes.
type GCSandbox struct {
	ID     string
	PodUID types.UID
}

// GCInput is what a garbage collection plan depends on.
type GCInput struct {
	Sandboxes  []*runtimeapi.PodSandbox
	Containers []*runtimeapi.Container
	// LogDirs are the names of the directories under the pod log root
	// (<namespace>_<name>_<uid>).
	LogDirs []string
	Policy  GCPolicy
	Pods    GCPodState
	// AllSourcesReady: every pod source delivered its pods once. Until
	// then no pod's content is removed for lack of a source.
	AllSourcesReady bool
	// EvictNonDeletedPods also removes everything of pods that no longer
	// run but are still wanted (eviction does, to reclaim disk).
	EvictNonDeletedPods bool
	// Now is the time MinAge counts back from.
	Now time.Time
}

type gcUnit struct {
	uid  types.UID
	name string
}

// PlanGC decides one round of container garbage collection, as the
// kubelet's container GC: dead containers (every state but running)
// created more than MinAge ago are grouped by pod and container name; all
// of a group go when its pod's content (or, with EvictNonDeletedPods, its
// runtime) may be removed and all sources are ready; of the others the
// newest MaxPerPodContainer are kept, and when more than MaxContainers
// dead containers remain in all, each group is cut to an equal share (at
// least one) and then the oldest go until MaxContainers remain. Sandboxes
// that are not ready and that no remaining container uses go, except the
// newest of each pod whose content may not be removed. Pod log
// directories go with their pod's content, once all sources are ready.
// Containers and sandboxes without a pod's labels are not the agent's and
// are left alone. PlanGC does no I/O.
func PlanGC(in GCInput) GCPlan {
	var plan GCPlan
	removed := map[string]bool{}
	remove := func(cs []GCContainer, n int) []GCContainer {
		// cs is newest first; the oldest n go.
		n = max(0, min(n, len(cs)))
		for _, c := range slices.Backward(cs[len(cs)-n:]) {
			plan.Containers = append(plan.Containers, c)
			removed[c.ID] = true
		}
		return cs[:len(cs)-n]
	}
	podGone := func(uid types.UID) bool {
		return in.Pods.ShouldPodContentBeRemoved(uid) || in.EvictNonDeletedPods && in.Pods.ShouldPodRuntimeBeRemoved(uid)
	}

	units := map[gcUnit][]GCContainer{}
	for _, c := range in.Containers {
		if c.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		created := time.Unix(0, c.GetCreatedAt())
		if in.Now.Add(-in.Policy.MinAge).Before(created) {
			continue
		}
		info, ok, _ := core.ContainerInfoFromLabels(c.GetLabels(), c.GetAnnotations())
		if !ok {
			continue
		}
		k := gcUnit{uid: info.PodUID, name: c.GetMetadata().GetName()}
		units[k] = append(units[k], GCContainer{ID: c.GetId(), PodUID: info.PodUID, Name: k.name, Created: created,
			Unknown: c.GetState() == runtimeapi.ContainerState_CONTAINER_UNKNOWN})
	}
	keys := make([]gcUnit, 0, len(units))
	for k, cs := range units {
		slices.SortStableFunc(cs, func(a, b GCContainer) int { return cmp.Or(b.Created.Compare(a.Created), strings.Compare(a.ID, b.ID)) })
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b gcUnit) int {
		return cmp.Or(strings.Compare(string(a.uid), string(b.uid)), strings.Compare(a.name, b.name))
	})

	if in.AllSourcesReady {
		for _, k := range keys {
			if podGone(k.uid) {
				units[k] = remove(units[k], len(units[k]))
			}
		}
	}
	if in.Policy.MaxPerPodContainer >= 0 {
		for _, k := range keys {
			units[k] = remove(units[k], len(units[k])-in.Policy.MaxPerPodContainer)
		}
	}
	count := func() (n, groups int) {
		for _, k := range keys {
			if len(units[k]) > 0 {
				n += len(units[k])
				groups++
			}
		}
		return n, groups
	}
	if n, groups := count(); in.Policy.MaxContainers >= 0 && n > in.Policy.MaxContainers {
		share := max(in.Policy.MaxContainers/groups, 1)
		for _, k := range keys {
			units[k] = remove(units[k], len(units[k])-share)
		}
		if n, _ := count(); n > in.Policy.MaxContainers {
			var all []GCContainer
			for _, k := range keys {
				all = append(all, units[k]...)
			}
			slices.SortStableFunc(all, func(a, b GCContainer) int { return b.Created.Compare(a.Created) })
			remove(all, n-in.Policy.MaxContainers)
		}
	}

	used := map[string]bool{}
	for _, c := range in.Containers {
		if !removed[c.GetId()] {
			used[c.GetPodSandboxId()] = true
		}
	}
	byPod := map[types.UID][]*runtimeapi.PodSandbox{}
	var uids []types.UID
	for _, sb := range in.Sandboxes {
		info, ok := core.SandboxInfoFromLabels(sb.GetLabels())
		if !ok {
			continue
		}
		if byPod[info.PodUID] == nil {
			uids = append(uids, info.PodUID)
		}
		byPod[info.PodUID] = append(byPod[info.PodUID], sb)
	}
	slices.Sort(uids)
	for _, uid := range uids {
		sbs := byPod[uid]
		slices.SortStableFunc(sbs, func(a, b *runtimeapi.PodSandbox) int { return cmp.Compare(b.GetCreatedAt(), a.GetCreatedAt()) })
		keep := 1
		if podGone(uid) {
			keep = 0
		}
		for _, sb := range sbs[min(keep, len(sbs)):] {
			if sb.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY || used[sb.GetId()] {
				continue
			}
			plan.Sandboxes = append(plan.Sandboxes, GCSandbox{ID: sb.GetId(), PodUID: uid})
		}
	}

	if in.AllSourcesReady {
		for _, dir := range in.LogDirs {
			uid := podUIDOfLogDir(dir)
			if uid != "" && in.Pods.ShouldPodContentBeRemoved(uid) {
				plan.LogDirs = append(plan.LogDirs, dir)
			}
		}
	}
	return plan
}

// podUIDOfLogDir reads the pod UID out of a pod log directory's name,
// <namespace>_<name>_<uid>; "" when the name is not one.
func podUIDOfLogDir(name string) types.UID {
	parts := strings.Split(name, "_")
	if len(parts) != 3 || parts[2] == "" {
		return ""
	}
	return types.UID(parts[2])
}

// GCRuntime is what garbage collection asks of the runtime.
type GCRuntime interface {
	core.SandboxLister
	core.ContainerLister
	core.ContainerStopper
	core.ContainerRemover
	core.SandboxStopper
	core.SandboxRemover
}

// ContainerGCConfig configures a ContainerGC.
type ContainerGCConfig struct {
	// Runtime to collect. Required.
	Runtime GCRuntime
	// Pods says what may go of each pod; the loop. Required.
	Pods GCPodState
	// Policy: default DefaultGCPolicy().
	Policy *GCPolicy
	// PodLogsRoot is the directory of the pod log directories, as given
	// to crispec. Empty: log directories are not collected.
	PodLogsRoot string
	Clock       clock.PassiveClock
	Logger      *zap.Logger
}

// ContainerGC removes dead containers, sandboxes and pod logs by PlanGC.
// The kubelet runs it every minute.
type ContainerGC struct {
	cfg ContainerGCConfig
	log *zap.Logger
}

// NewContainerGC returns a ContainerGC for cfg.
func NewContainerGC(cfg ContainerGCConfig) (*ContainerGC, error) {
	var errs []error
	if cfg.Runtime == nil {
		errs = append(errs, errors.New("Runtime is required"))
	}
	if cfg.Pods == nil {
		errs = append(errs, errors.New("Pods is required"))
	}
	if cfg.Policy == nil {
		p := DefaultGCPolicy()
		cfg.Policy = &p
	}
	if cfg.Policy.MinAge < 0 {
		errs = append(errs, fmt.Errorf("Policy.MinAge %s must not be negative", cfg.Policy.MinAge))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("syncloop: container gc: %w: %w", core.ErrInvalid, errors.Join(errs...))
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &ContainerGC{cfg: cfg, log: cfg.Logger}, nil
}

// GarbageCollect lists the runtime and the pod log root, plans with
// PlanGC and removes what the plan says. A removal that fails does not
// stop the others; the errors are joined. It returns the plan it carried
// out.
func (g *ContainerGC) GarbageCollect(ctx context.Context, allSourcesReady, evictNonDeletedPods bool) (GCPlan, error) {
	in := GCInput{Policy: *g.cfg.Policy, Pods: g.cfg.Pods, AllSourcesReady: allSourcesReady,
		EvictNonDeletedPods: evictNonDeletedPods, Now: g.cfg.Clock.Now()}
	var err error
	if in.Containers, err = g.cfg.Runtime.ListContainers(ctx, nil); err != nil {
		return GCPlan{}, fmt.Errorf("container gc: %w", err)
	}
	if in.Sandboxes, err = g.cfg.Runtime.ListPodSandbox(ctx, nil); err != nil {
		return GCPlan{}, fmt.Errorf("container gc: %w", err)
	}
	if g.cfg.PodLogsRoot != "" && allSourcesReady {
		entries, err := os.ReadDir(g.cfg.PodLogsRoot)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return GCPlan{}, fmt.Errorf("container gc: %w", err)
		}
		for _, e := range entries {
			if e.IsDir() {
				in.LogDirs = append(in.LogDirs, e.Name())
			}
		}
	}
	plan := PlanGC(in)
	var errs []error
	for _, c := range plan.Containers {
		if c.Unknown {
			if err := g.cfg.Runtime.StopContainer(ctx, c.ID, 0); err != nil && !errors.Is(err, core.ErrNotFound) {
				errs = append(errs, fmt.Errorf("stop container %s in an unknown state: %w", c.ID, err))
				continue
			}
		}
		if err := g.cfg.Runtime.RemoveContainer(ctx, c.ID); err != nil {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.ID, err))
		}
	}
	for _, sb := range plan.Sandboxes {
		if err := g.cfg.Runtime.StopPodSandbox(ctx, sb.ID); err != nil && !errors.Is(err, core.ErrNotFound) {
			errs = append(errs, fmt.Errorf("stop sandbox %s: %w", sb.ID, err))
			continue
		}
		if err := g.cfg.Runtime.RemovePodSandbox(ctx, sb.ID); err != nil {
			errs = append(errs, fmt.Errorf("remove sandbox %s: %w", sb.ID, err))
		}
	}
	for _, dir := range plan.LogDirs {
		if err := os.RemoveAll(filepath.Join(g.cfg.PodLogsRoot, dir)); err != nil {
			errs = append(errs, fmt.Errorf("remove pod logs: %w", err))
		}
	}
	if n := len(plan.Containers) + len(plan.Sandboxes) + len(plan.LogDirs); n > 0 {
		g.log.Debug("garbage collected", zap.Int("containers", len(plan.Containers)), zap.Int("sandboxes", len(plan.Sandboxes)), zap.Int("logDirs", len(plan.LogDirs)))
	}
	return plan, errors.Join(errs...)
}
