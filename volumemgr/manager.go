package volumemgr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
)

// Defaults of ManagerConfig, the kubelet's values.
const (
	// DefaultMountTimeout bounds WaitForAttachAndMount (the kubelet's
	// podAttachAndMountTimeout).
	DefaultMountTimeout = 2*time.Minute + 3*time.Second
	// DefaultReconcilePeriod is how often the reconciler looks at every
	// volume besides when it is woken (the kubelet loops every 100 ms;
	// ours is woken by every change, so it can wait longer).
	DefaultReconcilePeriod = time.Second
	// DefaultResyncPeriod is how often configMap, secret, downwardAPI and
	// projected volumes are written again from their sources (the
	// kubelet's syncFrequency).
	DefaultResyncPeriod = time.Minute
	// DefaultRetryInitial and DefaultRetryMax bound the back-off of a
	// volume whose set-up or tear-down failed (the kubelet's exponential
	// back-off of volume operations: 500 ms doubling to 2m2s).
	DefaultRetryInitial = 500 * time.Millisecond
	DefaultRetryMax     = 2*time.Minute + 2*time.Second
)

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// Root is the agent's root directory (the kubelet's --root-dir,
	// /var/lib/kubelet): volumes live under Root/pods (see Layout).
	// Required, absolute.
	Root string
	// Mounter mounts tmpfs, hugetlbfs and subPath bind mounts. Nil: a
	// SystemMounter.
	Mounter Mounter
	// ConfigMaps, Secrets and Tokens answer configMap, secret and
	// serviceAccountToken (projected) volumes; a pod using one whose
	// source is nil fails to mount with an error naming it.
	ConfigMaps ConfigMapGetter
	Secrets    SecretGetter
	Tokens     TokenGetter
	// NodeAllocatable bounds Memory emptyDirs and answers downwardAPI
	// limits a container does not set.
	NodeAllocatable v1.ResourceList
	// PodKnown reports whether a pod is still wanted by a source or
	// handled by a worker. Volumes found on disk (after an agent restart)
	// of pods it does not know are torn down, and the directories of such
	// pods removed, once SourcesReady says every source delivered. Nil:
	// nothing found on disk is ever torn down.
	PodKnown func(types.UID) bool
	// SourcesReady: nil means always.
	SourcesReady func() bool
	// MountTimeout: default DefaultMountTimeout.
	MountTimeout time.Duration
	// ReconcilePeriod: default DefaultReconcilePeriod.
	ReconcilePeriod time.Duration
	// ResyncPeriod: default DefaultResyncPeriod.
	ResyncPeriod time.Duration
	// RetryInitial and RetryMax: defaults DefaultRetryInitial and
	// DefaultRetryMax.
	RetryInitial, RetryMax time.Duration
	// NoSharedRoot leaves Root as it is: Run does not make it a shared
	// mount (containers asking for mount propagation from emptyDir volumes
	// then fail to start). For agents without the right to mount.
	NoSharedRoot bool
	// Registerer receives volume_manager_total_volumes and the orphan
	// cleanup metrics. Nil: none.
	Registerer prometheus.Registerer
	Clock      clock.WithTicker
	Logger     *zap.Logger
}

// Manager mounts the volumes pods need and unmounts those they no longer
// do, as the kubelet's volume manager: a desired state (the pods whose
// containers may run, with their volumes), an actual state (what is set
// up on disk) and a reconciler that moves the second toward the first.
//
//   - WaitForAttachAndMount adds a pod to the desired state and waits until
//     its volumes are set up; the sync loop calls it before it creates the
//     pod's sandbox (syncloop's Volumes).
//   - WaitForUnmount removes a pod from the desired state and waits until
//     its volumes are torn down; the sync loop calls it once nothing of the
//     pod runs (syncloop's VolumeUnmounter), so a volume is never
//     unmounted under a running container.
//   - PodVolumes and PrepareSubPath give the containers' mounts their
//     host paths (crispec.ContainerOptions).
//   - Run is the reconciler. At start it rebuilds the actual state from
//     disk: volumes of pods that still run are adopted, not set up again,
//     so an agent restart unmounts nothing; those of pods no source wants
//     are torn down once every source is ready.
//
// Volume kinds: emptyDir (disk, Memory as a tmpfs, huge pages), hostPath
// (with its type check), configMap, secret, downwardAPI and projected
// (written atomically, refreshed every ResyncPeriod). Other kinds
// (persistentVolumeClaim, csi, nfs, image, ...) fail to mount with an
// error wrapping core.ErrUnimplemented.
type Manager struct {
	cfg      ManagerConfig
	log      *zap.Logger
	layout   Layout
	emptyDir *EmptyDir
	subpaths *Subpaths
	dirs     *PodDirs
	metrics  *managerMetrics

	mu      sync.Mutex
	pods    map[types.UID]*podVolumes
	changed chan struct{} // closed and replaced at every change of state
	kick    chan struct{}
	rebuilt bool
}

// podVolumes is one pod's volumes, desired and actual.
type podVolumes struct {
	pod *v1.Pod // nil for a pod known only from disk
	// wanted: the pod is in the desired state (its containers may run).
	wanted bool
	vols   map[string]*volume
}

// volume is one volume of a pod.
type volume struct {
	spec   *v1.Volume // nil for a volume known only from disk
	plugin string
	path   string // host path once set up
	// mounted: set up and usable by containers.
	mounted bool
	// fromDisk: found on disk at start, not set up by this manager.
	fromDisk bool
	// ownFS: a filesystem of its own (tmpfs), for the stats.
	ownFS bool
	// readOnly: mounted read-only into containers.
	readOnly bool
	err      error
	failures int
	retryAt  time.Time
	syncedAt time.Time // content volumes: last written
}

// NewManager returns a Manager for cfg.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Root == "" || !filepath.IsAbs(cfg.Root) {
		return nil, fmt.Errorf("volumemgr: Root %q must be an absolute path: %w", cfg.Root, core.ErrInvalid)
	}
	for name, d := range map[string]time.Duration{"MountTimeout": cfg.MountTimeout, "ReconcilePeriod": cfg.ReconcilePeriod,
		"ResyncPeriod": cfg.ResyncPeriod, "RetryInitial": cfg.RetryInitial, "RetryMax": cfg.RetryMax} {
		if d < 0 {
			return nil, fmt.Errorf("volumemgr: %s %s must not be negative: %w", name, d, core.ErrInvalid)
		}
	}
	if cfg.MountTimeout == 0 {
		cfg.MountTimeout = DefaultMountTimeout
	}
	if cfg.ReconcilePeriod == 0 {
		cfg.ReconcilePeriod = DefaultReconcilePeriod
	}
	if cfg.ResyncPeriod == 0 {
		cfg.ResyncPeriod = DefaultResyncPeriod
	}
	if cfg.RetryInitial == 0 {
		cfg.RetryInitial = DefaultRetryInitial
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = max(DefaultRetryMax, cfg.RetryInitial)
	}
	if cfg.SourcesReady == nil {
		cfg.SourcesReady = func() bool { return true }
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Mounter == nil {
		m, err := NewMounter(MounterConfig{Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		cfg.Mounter = m
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, layout: Layout{Root: cfg.Root},
		pods: map[types.UID]*podVolumes{}, changed: make(chan struct{}), kick: make(chan struct{}, 1)}
	var err error
	if m.emptyDir, err = NewEmptyDir(EmptyDirConfig{Layout: m.layout, Mounter: cfg.Mounter, NodeAllocatable: cfg.NodeAllocatable, Logger: cfg.Logger}); err != nil {
		return nil, err
	}
	if m.subpaths, err = NewSubpaths(SubpathsConfig{Layout: m.layout, Mounter: cfg.Mounter, Logger: cfg.Logger}); err != nil {
		return nil, err
	}
	if m.dirs, err = NewPodDirs(PodDirsConfig{Layout: m.layout, Mounter: cfg.Mounter, Logger: cfg.Logger, Registerer: cfg.Registerer}); err != nil {
		return nil, err
	}
	if m.metrics, err = newManagerMetrics(m, cfg.Registerer); err != nil {
		return nil, err
	}
	return m, nil
}

// Layout is where the manager keeps pods' volumes.
func (m *Manager) Layout() Layout { return m.layout }

// WaitForAttachAndMount puts pod in the desired state (or updates its
// spec there) and waits until every volume of it is set up. It returns
// early with an error once each volume not set up has failed at least once
// (the reconciler goes on trying, with back-off): the error names each
// such volume with its failure, as the kubelet's "MountVolume.SetUp failed
// for volume ..." events do. After MountTimeout it gives up with an error
// naming the volumes still not set up.
func (m *Manager) WaitForAttachAndMount(ctx context.Context, pod *v1.Pod) error {
	if len(pod.Spec.Volumes) == 0 {
		m.want(pod)
		return nil
	}
	m.want(pod)
	m.wake()
	ctx, cancel := context.WithTimeout(ctx, m.cfg.MountTimeout)
	defer cancel()
	for {
		m.mu.Lock()
		pending, failed := m.pendingLocked(pod.UID)
		changed := m.changed
		m.mu.Unlock()
		if len(pending) == 0 {
			return nil
		}
		if len(failed) == len(pending) {
			return fmt.Errorf("%w: %s", ErrNotMounted, strings.Join(failed, "; "))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: unmounted volumes=[%s]: %w", ErrNotMounted, strings.Join(pending, " "), ctx.Err())
		case <-changed:
		}
	}
}

// ErrNotMounted is wrapped by the errors of WaitForAttachAndMount.
var ErrNotMounted = errors.New("volumes not mounted")

// pendingLocked lists the volumes of pod uid that are not set up, and the
// failures of those that failed.
func (m *Manager) pendingLocked(uid types.UID) (pending, failed []string) {
	p := m.pods[uid]
	if p == nil {
		return nil, nil
	}
	for _, name := range sortedNames(p.vols) {
		v := p.vols[name]
		if v.spec == nil || v.mounted {
			continue
		}
		pending = append(pending, name)
		if v.err != nil {
			failed = append(failed, fmt.Sprintf("MountVolume.SetUp failed for volume %q: %v", name, v.err))
		}
	}
	return pending, failed
}

// want puts pod in the desired state with the volumes of its spec.
func (m *Manager) want(pod *v1.Pod) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pods[pod.UID]
	if p == nil {
		p = &podVolumes{vols: map[string]*volume{}}
		m.pods[pod.UID] = p
	}
	p.pod, p.wanted = pod, true
	for i := range pod.Spec.Volumes {
		spec := &pod.Spec.Volumes[i]
		v := p.vols[spec.Name]
		plugin := pluginOf(spec)
		if v != nil && v.plugin != plugin && (v.mounted || v.fromDisk) {
			// The same name, another kind: the old one is torn down under
			// an entry of its own.
			p.vols[spec.Name+oldSuffix] = v
			v = nil
		}
		if v == nil {
			v = &volume{plugin: plugin}
			p.vols[spec.Name] = v
		}
		if v.spec == nil || v.fromDisk {
			// A volume found on disk becomes this spec's; the reconciler
			// adopts what is set up there.
			v.retryAt = time.Time{}
		}
		v.spec = spec
	}
}

// oldSuffix marks the entry of a volume replaced by another of the same
// name and another kind.
const oldSuffix = "\x00old"

// WaitForUnmount takes pod out of the desired state (nothing of it runs
// any more) and waits until its volumes are torn down, or ctx ends. The
// pod's directory stays until the pod is forgotten (Housekeep).
func (m *Manager) WaitForUnmount(ctx context.Context, pod *v1.Pod) error {
	m.mu.Lock()
	if p := m.pods[pod.UID]; p != nil {
		p.wanted = false
		if p.pod == nil {
			p.pod = pod // known only from disk until now
		}
	}
	m.mu.Unlock()
	m.wake()
	for {
		m.mu.Lock()
		left := m.mountedLocked(pod.UID)
		changed := m.changed
		m.mu.Unlock()
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("volumes of pod %s/%s still mounted: %s: %w", pod.Namespace, pod.Name, strings.Join(left, ", "), ctx.Err())
		case <-changed:
		}
	}
}

// mountedLocked names the volumes of pod uid still set up.
func (m *Manager) mountedLocked(uid types.UID) []string {
	p := m.pods[uid]
	if p == nil {
		return nil
	}
	var out []string
	for _, name := range sortedNames(p.vols) {
		v := p.vols[name]
		if v.mounted || v.fromDisk {
			msg := strings.TrimSuffix(name, oldSuffix)
			if v.err != nil {
				msg += " (" + v.err.Error() + ")"
			}
			out = append(out, msg)
		}
	}
	return out
}

// PodVolumes returns pod's volumes that are set up, by name, as the
// containers' mounts need them.
func (m *Manager) PodVolumes(pod *v1.Pod) map[string]crispec.Volume {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]crispec.Volume{}
	if p := m.pods[pod.UID]; p != nil {
		for name, v := range p.vols {
			if v.mounted && v.spec != nil {
				out[name] = crispec.Volume{HostPath: v.path, ReadOnly: v.readOnly}
			}
		}
	}
	return out
}

// PrepareSubPath makes the subPath of one of c's volume mounts safe and
// returns the host path to bind-mount (see Subpaths.Prepare): syncloop's
// SubPathPreparer.
func (m *Manager) PrepareSubPath(pod *v1.Pod, c *v1.Container, p crispec.SubPath) (string, error) {
	return m.subpaths.Prepare(pod.UID, c.Name, p)
}

// Mounted reports whether pod uid's volume name is set up, and where.
func (m *Manager) Mounted(uid types.UID, name string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.pods[uid]; p != nil {
		if v := p.vols[name]; v != nil && v.mounted {
			return v.path, true
		}
	}
	return "", false
}

// wake makes the reconciler run soon.
func (m *Manager) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// notifyLocked wakes every waiter. m.mu is held.
func (m *Manager) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Run prepares the root directory (Root/pods, and Root a shared mount, as
// the kubelet makes its root directory, so that mountPropagation works),
// rebuilds the actual state from disk, then reconciles whenever woken and
// every ReconcilePeriod until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	if err := os.MkdirAll(m.layout.PodsDir(), 0o750); err != nil {
		return fmt.Errorf("volumemgr: %w", err)
	}
	if !m.cfg.NoSharedRoot {
		if err := MakeRShared(m.cfg.Root); err != nil {
			return fmt.Errorf("volumemgr: root directory: %w", err)
		}
	}
	if err := m.Rebuild(); err != nil {
		m.log.Warn("volumes on disk could not all be read", zap.Error(err))
	}
	t := m.cfg.Clock.NewTicker(m.cfg.ReconcilePeriod)
	defer t.Stop()
	for {
		m.Reconcile(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.kick:
		case <-t.C():
		}
	}
}

// Rebuild reads the volumes set up on disk into the actual state, as
// found there: the reconciler adopts them for pods that want them and
// tears them down for pods no one wants. Run calls it first; calling it
// again does nothing.
func (m *Manager) Rebuild() error {
	m.mu.Lock()
	if m.rebuilt {
		m.mu.Unlock()
		return nil
	}
	m.rebuilt = true
	m.mu.Unlock()
	found, err := m.dirs.Volumes()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, dv := range found {
		p := m.pods[dv.PodUID]
		if p == nil {
			p = &podVolumes{vols: map[string]*volume{}}
			m.pods[dv.PodUID] = p
		}
		if v := p.vols[dv.Name]; v != nil {
			if v.plugin == dv.Plugin {
				v.fromDisk = true // adopted at the next reconcile
			}
			continue
		}
		p.vols[dv.Name] = &volume{plugin: dv.Plugin, path: dv.Path, fromDisk: true, ownFS: dv.Mounted}
	}
	if len(found) > 0 {
		m.log.Info("volumes found on disk", zap.Int("volumes", len(found)))
		m.notifyLocked()
	}
	return err
}

// op is one set-up or tear-down the reconciler runs outside the lock.
type op struct {
	uid   types.UID
	name  string
	pod   *v1.Pod
	v     volume // a copy, as it was when planned
	setUp bool
}

// Reconcile makes one pass: it sets up the volumes the desired state has
// and the actual state lacks (or whose content is due for a refresh), and
// tears down those no pod wants. Failures are kept per volume and retried
// with back-off.
func (m *Manager) Reconcile(ctx context.Context) {
	now := m.cfg.Clock.Now()
	ready := m.cfg.SourcesReady()
	var ops []op
	m.mu.Lock()
	for uid, p := range m.pods {
		for name, v := range p.vols {
			if now.Before(v.retryAt) {
				continue
			}
			busy := v.mounted || v.fromDisk
			switch {
			case strings.HasSuffix(name, oldSuffix) || (!p.wanted && p.pod != nil):
				if busy {
					ops = append(ops, op{uid: uid, name: name, pod: p.pod, v: *v})
				}
			case p.wanted && v.spec != nil:
				if !v.mounted || v.fromDisk || (isContent(v.plugin) && now.Sub(v.syncedAt) >= m.cfg.ResyncPeriod) {
					ops = append(ops, op{uid: uid, name: name, pod: p.pod, v: *v, setUp: true})
				}
			case p.pod == nil && busy && ready && m.cfg.PodKnown != nil && !m.cfg.PodKnown(uid):
				ops = append(ops, op{uid: uid, name: name, v: *v})
			}
		}
	}
	m.mu.Unlock()
	sort.Slice(ops, func(i, j int) bool {
		return ops[i].uid < ops[j].uid || ops[i].uid == ops[j].uid && ops[i].name < ops[j].name
	})
	for _, o := range ops {
		if ctx.Err() != nil {
			return
		}
		var (
			path     string
			ownFS    bool
			readOnly bool
			err      error
		)
		if o.setUp {
			path, ownFS, readOnly, err = m.setUp(ctx, o.pod, o.v.spec)
		} else {
			err = m.tearDown(o.uid, strings.TrimSuffix(o.name, oldSuffix), &o.v)
		}
		m.record(o, path, ownFS, readOnly, err, m.cfg.Clock.Now())
	}
}

// record applies the outcome of an op to the state.
func (m *Manager) record(o op, path string, ownFS, readOnly bool, err error, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.notifyLocked()
	p := m.pods[o.uid]
	if p == nil {
		return
	}
	v := p.vols[o.name]
	if v == nil {
		return
	}
	if err != nil {
		v.err = err
		v.failures++
		d := m.cfg.RetryInitial
		for i := 1; i < v.failures && d < m.cfg.RetryMax; i++ {
			d *= 2
		}
		v.retryAt = now.Add(min(d, m.cfg.RetryMax))
		what := "set up"
		if !o.setUp {
			what = "tear down"
		}
		m.log.Warn("volume failed to "+what, zap.String("pod", podName(o.pod, o.uid)), zap.String("volume", o.name),
			zap.Int("failures", v.failures), zap.Time("retryAt", v.retryAt), zap.Error(err))
		return
	}
	v.err, v.failures, v.retryAt = nil, 0, time.Time{}
	if o.setUp {
		if !v.mounted {
			m.log.Info("volume set up", zap.String("pod", podName(o.pod, o.uid)), zap.String("volume", o.name), zap.String("path", path))
		}
		v.mounted, v.fromDisk, v.path, v.ownFS, v.readOnly, v.syncedAt = true, false, path, ownFS, readOnly, now
		return
	}
	m.log.Info("volume torn down", zap.String("pod", podName(o.pod, o.uid)), zap.String("volume", strings.TrimSuffix(o.name, oldSuffix)))
	if v.spec == nil || strings.HasSuffix(o.name, oldSuffix) {
		delete(p.vols, o.name)
	} else {
		v.mounted, v.fromDisk, v.path = false, false, ""
	}
	if p.pod == nil && len(p.vols) == 0 {
		delete(m.pods, o.uid)
	}
}

func podName(pod *v1.Pod, uid types.UID) string {
	if pod == nil {
		return string(uid)
	}
	return pod.Namespace + "/" + pod.Name
}

// Housekeep forgets pods no one knows any more whose volumes are torn
// down and removes their directories, as the kubelet's
// cleanupOrphanedPodDirs: only when nothing under them is mounted. It
// needs Config.PodKnown and ready sources; without them it does nothing.
func (m *Manager) Housekeep(ctx context.Context) error {
	if m.cfg.PodKnown == nil || !m.cfg.SourcesReady() {
		return nil
	}
	m.mu.Lock()
	for uid, p := range m.pods {
		if m.cfg.PodKnown(uid) {
			continue
		}
		busy := false
		for _, v := range p.vols {
			busy = busy || v.mounted || v.fromDisk
		}
		if busy {
			p.wanted = false // torn down by the reconciler first
			continue
		}
		delete(m.pods, uid)
	}
	known := func(uid types.UID) bool {
		_, tracked := m.pods[uid]
		return tracked || m.cfg.PodKnown(uid)
	}
	m.mu.Unlock()
	m.wake()
	return m.dirs.CleanupOrphanedPods(known)
}

// setUp sets up one volume and returns its host path, whether it is a
// filesystem of its own and whether containers mount it read-only.
func (m *Manager) setUp(ctx context.Context, pod *v1.Pod, spec *v1.Volume) (path string, ownFS, readOnly bool, err error) {
	src := &spec.VolumeSource
	switch {
	case src.EmptyDir != nil:
		path, err = m.emptyDir.SetUp(pod, spec)
		return path, src.EmptyDir.Medium != v1.StorageMediumDefault, false, err
	case src.HostPath != nil:
		return src.HostPath.Path, false, false, CheckHostPath(src.HostPath.Path, src.HostPath.Type)
	case src.ConfigMap != nil:
		dir := m.layout.VolumeDir(pod.UID, PluginConfigMap, spec.Name)
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return "", false, true, err
		}
		if m.cfg.ConfigMaps == nil {
			return "", false, true, fmt.Errorf("configMap %q: no ConfigMap source is configured: %w", src.ConfigMap.Name, core.ErrUnimplemented)
		}
		cm, err := getObject(func() (*v1.ConfigMap, error) { return m.cfg.ConfigMaps.GetConfigMap(pod.Namespace, src.ConfigMap.Name) })
		if err != nil {
			return "", false, true, fmt.Errorf("configMap %q: %w", src.ConfigMap.Name, err)
		}
		payload, err := ConfigMapPayload(src.ConfigMap, cm)
		if err != nil {
			return "", false, true, err
		}
		return dir, false, true, m.write(dir, payload)
	case src.Secret != nil, src.DownwardAPI != nil, src.Projected != nil:
		plugin := pluginOf(spec)
		dir := m.layout.VolumeDir(pod.UID, plugin, spec.Name)
		if err := m.emptyDir.SetUpTmpfs(dir, m.emptyDir.TmpfsSize(pod)); err != nil {
			return "", true, true, err
		}
		var payload map[string]FileProjection
		switch {
		case src.Secret != nil:
			if m.cfg.Secrets == nil {
				return dir, true, true, fmt.Errorf("secret %q: no Secret source is configured: %w", src.Secret.SecretName, core.ErrUnimplemented)
			}
			s, gerr := getObject(func() (*v1.Secret, error) { return m.cfg.Secrets.GetSecret(pod.Namespace, src.Secret.SecretName) })
			if gerr != nil {
				return dir, true, true, fmt.Errorf("secret %q: %w", src.Secret.SecretName, gerr)
			}
			payload, err = SecretPayload(src.Secret, s)
		case src.DownwardAPI != nil:
			payload, err = DownwardAPIPayload(src.DownwardAPI, pod, m.cfg.NodeAllocatable)
		default:
			payload, err = ProjectedPayload(ctx, src.Projected, pod, ProjectedInputs{ConfigMaps: m.cfg.ConfigMaps, Secrets: m.cfg.Secrets,
				Tokens: m.cfg.Tokens, NodeAllocatable: m.cfg.NodeAllocatable})
		}
		if err != nil {
			return dir, true, true, err
		}
		return dir, true, true, m.write(dir, payload)
	}
	return "", false, false, fmt.Errorf("%s volumes are not supported: %w", pluginOf(spec), core.ErrUnimplemented)
}

// getObject calls get, a not-found answer being a nil object (the payload
// functions decide whether it is optional).
func getObject[T any](get func() (*T, error)) (*T, error) {
	o, err := get()
	if err != nil && isNotFound(err) {
		return nil, nil
	}
	return o, err
}

func isNotFound(err error) bool { return errors.Is(err, core.ErrNotFound) || apierrors.IsNotFound(err) }

// write publishes payload into dir atomically.
func (m *Manager) write(dir string, payload map[string]FileProjection) error {
	w, err := NewAtomicWriter(AtomicWriterConfig{Dir: dir, Clock: m.cfg.Clock, Logger: m.log})
	if err != nil {
		return err
	}
	_, err = w.Write(payload)
	return err
}

// tearDown tears one volume down: its subPath mounts first, then the
// volume itself.
func (m *Manager) tearDown(uid types.UID, name string, v *volume) error {
	if err := m.subpaths.CleanVolume(uid, name); err != nil {
		return fmt.Errorf("subPath mounts: %w", err)
	}
	switch v.plugin {
	case PluginHostPath:
		return nil
	case PluginEmptyDir:
		return m.emptyDir.TearDown(uid, name)
	case PluginConfigMap:
		return os.RemoveAll(m.layout.VolumeDir(uid, v.plugin, name))
	case PluginSecret, PluginDownwardAPI, PluginProjected:
		return m.emptyDir.TearDownTmpfs(m.layout.VolumeDir(uid, v.plugin, name))
	}
	// A kind this manager does not set up, found on disk: only an empty
	// directory can go.
	dir := m.layout.VolumeDir(uid, v.plugin, name)
	if mounted, err := m.cfg.Mounter.IsMountPoint(dir); err == nil && mounted {
		return fmt.Errorf("%s is mounted by a %s volume this agent does not manage", dir, v.plugin)
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// pluginOf is the plugin name of a volume source.
func pluginOf(v *v1.Volume) string {
	s := &v.VolumeSource
	switch {
	case s.EmptyDir != nil:
		return PluginEmptyDir
	case s.HostPath != nil:
		return PluginHostPath
	case s.ConfigMap != nil:
		return PluginConfigMap
	case s.Secret != nil:
		return PluginSecret
	case s.DownwardAPI != nil:
		return PluginDownwardAPI
	case s.Projected != nil:
		return PluginProjected
	case s.PersistentVolumeClaim != nil:
		return "kubernetes.io/persistent-claim"
	case s.CSI != nil:
		return "kubernetes.io/csi"
	case s.NFS != nil:
		return "kubernetes.io/nfs"
	case s.Image != nil:
		return "kubernetes.io/image"
	case s.Ephemeral != nil:
		return "kubernetes.io/ephemeral"
	}
	return "unknown"
}

// isContent says a plugin's volumes are written from sources and
// refreshed.
func isContent(plugin string) bool {
	switch plugin {
	case PluginConfigMap, PluginSecret, PluginDownwardAPI, PluginProjected:
		return true
	}
	return false
}

func sortedNames(vols map[string]*volume) []string {
	names := make([]string, 0, len(vols))
	for n := range vols {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// managerMetrics is volume_manager_total_volumes, as the kubelet exports
// it: the volumes of the desired and the actual state by plugin.
type managerMetrics struct {
	m    *Manager
	desc *prometheus.Desc
}

func newManagerMetrics(m *Manager, reg prometheus.Registerer) (*managerMetrics, error) {
	mm := &managerMetrics{m: m, desc: prometheus.NewDesc("volume_manager_total_volumes",
		"Number of volumes in Volume Manager", []string{"plugin_name", "state"}, nil)}
	if reg != nil {
		if err := reg.Register(mm); err != nil {
			return nil, fmt.Errorf("volumemgr: register metrics: %w", err)
		}
	}
	return mm, nil
}

func (mm *managerMetrics) Describe(ch chan<- *prometheus.Desc) { ch <- mm.desc }

func (mm *managerMetrics) Collect(ch chan<- prometheus.Metric) {
	type key struct{ plugin, state string }
	counts := map[key]int{}
	mm.m.mu.Lock()
	for _, p := range mm.m.pods {
		for name, v := range p.vols {
			if p.wanted && v.spec != nil && !strings.HasSuffix(name, oldSuffix) {
				counts[key{v.plugin, "desired_state_of_world"}]++
			}
			if v.mounted || v.fromDisk {
				counts[key{v.plugin, "actual_state_of_world"}]++
			}
		}
	}
	mm.m.mu.Unlock()
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(mm.desc, prometheus.GaugeValue, float64(n), k.plugin, k.state)
	}
}

// VolumeRefs lists the volumes set up, for Stats (StatsConfig.Volumes).
func (m *Manager) VolumeRefs() []VolumeRef {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []VolumeRef
	for uid, p := range m.pods {
		for name, v := range p.vols {
			if !v.mounted || strings.HasSuffix(name, oldSuffix) {
				continue
			}
			ref := VolumeRef{PodUID: uid, Volume: name, Plugin: v.plugin, Path: v.path, OwnFS: v.ownFS}
			if p.pod != nil {
				ref.Namespace, ref.Pod = p.pod.Namespace, p.pod.Name
			}
			out = append(out, ref)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].PodUID < out[j].PodUID || out[i].PodUID == out[j].PodUID && out[i].Volume < out[j].Volume
	})
	return out
}
