package volumemgr

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"
)

// DiskVolume is a volume directory of a pod found on disk:
// <root>/pods/<uid>/volumes/<escaped plugin>/<name>.
type DiskVolume struct {
	PodUID types.UID
	// Plugin is the plugin name, unescaped ("kubernetes.io/empty-dir").
	Plugin string
	// Name is the volume's name in the pod spec.
	Name string
	// Path is the volume directory.
	Path string
	// Mounted says something is mounted on Path (a tmpfs, say). A mount
	// point that cannot be checked (a stale mount) counts as mounted.
	Mounted bool
}

// PodMountedError is RemoveOrphanedPod's refusal: volumes or subPaths of
// the pod are still mounted, and removing the pod directory could remove
// their content.
type PodMountedError struct {
	PodUID types.UID
	// Paths are the mount points, volumes then subPaths.
	Paths []string
}

// Error names the pod and every mount point still there.
func (e *PodMountedError) Error() string {
	return fmt.Sprintf("orphaned pod %q found, but volumes are still mounted: %s", e.PodUID, strings.Join(e.Paths, ", "))
}

// PodDirsConfig configures PodDirs. Only Layout is required.
type PodDirsConfig struct {
	// Layout says where the pod directories are. Required: Root must be
	// absolute.
	Layout Layout
	// Mounter says what is mounted. Nil: a SystemMounter.
	Mounter Mounter
	// Logger receives what the kubelet logs. Nil: none.
	Logger *zap.Logger
	// Registerer receives the kubelet's orphan cleanup gauges,
	// kubelet_orphan_pod_cleaned_volumes and
	// kubelet_orphan_pod_cleaned_volumes_errors. Nil: none.
	Registerer prometheus.Registerer
}

// PodDirs reads the pod directories on disk, for the state an agent
// rebuilds after a restart (which volumes of which pods are set up, and
// which are mounted), and removes the directories of orphaned pods as the
// kubelet does: only when nothing under them is mounted, never following
// a symlink, never crossing into another mount. It is safe for concurrent
// use, but removing a pod while its volumes are being set up is the
// caller's race to avoid.
type PodDirs struct {
	layout  Layout
	mounter Mounter
	log     *zap.Logger

	cleaned, cleanErrors prometheus.Gauge
}

// NewPodDirs returns PodDirs. A Layout without an absolute Root is an
// error wrapping core.ErrInvalid.
func NewPodDirs(cfg PodDirsConfig) (*PodDirs, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if err := checkLayoutRoot("PodDirsConfig.Layout", cfg.Layout); err != nil {
		return nil, fmt.Errorf("volumemgr: pod dirs: %w", err)
	}
	if cfg.Mounter == nil {
		m, err := NewMounter(MounterConfig{Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("volumemgr: pod dirs: %w", err)
		}
		cfg.Mounter = m
	}
	d := &PodDirs{
		layout:  cfg.Layout,
		mounter: cfg.Mounter,
		log:     cfg.Logger,
		cleaned: prometheus.NewGauge(prometheus.GaugeOpts{
			Subsystem: "kubelet", Name: "orphan_pod_cleaned_volumes",
			Help: "The total number of orphaned Pods whose volumes were cleaned in the last periodic sweep.",
		}),
		cleanErrors: prometheus.NewGauge(prometheus.GaugeOpts{
			Subsystem: "kubelet", Name: "orphan_pod_cleaned_volumes_errors",
			Help: "The number of orphaned Pods whose volumes failed to be cleaned in the last periodic sweep.",
		}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{d.cleaned, d.cleanErrors} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("volumemgr: pod dirs: register metrics: %w", err)
			}
		}
	}
	return d, nil
}

// Pods lists the pods with a directory under Layout.PodsDir, in name
// order. No pods directory: none.
func (d *PodDirs) Pods() ([]types.UID, error) {
	entries, err := os.ReadDir(d.layout.PodsDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var uids []types.UID
	for _, e := range entries {
		if e.IsDir() {
			uids = append(uids, types.UID(e.Name()))
		}
	}
	return uids, nil
}

// Volumes lists the volume directories of every pod on disk, as the
// kubelet's reconciler reconstructs them after a restart: pods in name
// order, then plugins, then volumes.
func (d *PodDirs) Volumes() ([]DiskVolume, error) {
	uids, err := d.Pods()
	if err != nil {
		return nil, err
	}
	var all []DiskVolume
	for _, uid := range uids {
		vols, err := d.PodVolumes(uid)
		if err != nil {
			return nil, err
		}
		all = append(all, vols...)
	}
	return all, nil
}

// PodVolumes lists the volume directories of pod uid, plugins and
// volumes in name order. Symlinks are skipped (logged), never followed.
func (d *PodDirs) PodVolumes(uid types.UID) ([]DiskVolume, error) {
	if err := checkPodUID(uid); err != nil {
		return nil, err
	}
	volsDir := d.layout.PodVolumesDir(uid)
	plugins, err := os.ReadDir(volsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var vols []DiskVolume
	for _, p := range plugins {
		if !p.IsDir() {
			d.log.Warn("skipping a non-directory in a pod's volumes directory", zap.String("path", filepath.Join(volsDir, p.Name())))
			continue
		}
		pluginDir := filepath.Join(volsDir, p.Name())
		entries, err := os.ReadDir(pluginDir)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			path := filepath.Join(pluginDir, e.Name())
			if e.Type()&fs.ModeSymlink != 0 {
				d.log.Warn("skipping a symlink in a pod's volumes directory", zap.String("path", path))
				continue
			}
			vols = append(vols, DiskVolume{
				PodUID:  uid,
				Plugin:  UnescapePluginName(p.Name()),
				Name:    e.Name(),
				Path:    path,
				Mounted: d.mountedForSure(path),
			})
		}
	}
	return vols, nil
}

// mountedForSure says whether path is a mount point, taking a failed
// check for one.
func (d *PodDirs) mountedForSure(path string) bool {
	mounted, err := mountedOrAbsent(d.mounter, path)
	if err != nil {
		d.log.Warn("cannot tell whether a volume path is mounted; taking it for mounted", zap.String("path", path), zap.Error(err))
		return true
	}
	return mounted
}

// subpathMounts lists the subPath bind mount paths of pod uid:
// volume-subpaths/<volume>/<container>/<index>.
func (d *PodDirs) subpathMounts(uid types.UID) ([]string, error) {
	base := d.layout.PodSubpathsDir(uid)
	vols, err := os.ReadDir(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, v := range vols {
		if !v.IsDir() {
			continue
		}
		containers, err := os.ReadDir(filepath.Join(base, v.Name()))
		if err != nil {
			return nil, err
		}
		for _, c := range containers {
			if !c.IsDir() {
				continue
			}
			cdir := filepath.Join(base, v.Name(), c.Name())
			entries, err := os.ReadDir(cdir)
			if err != nil {
				return nil, err
			}
			for _, e := range entries {
				paths = append(paths, filepath.Join(cdir, e.Name()))
			}
		}
	}
	return paths, nil
}

// MountedPaths lists what is still mounted in the directory of pod uid:
// its volume directories, then its subPath bind mounts.
func (d *PodDirs) MountedPaths(uid types.UID) ([]string, error) {
	_, _, mounted, err := d.scanPod(uid)
	return mounted, err
}

// scanPod lists the volumes and subPath mount points of pod uid, and
// which of them are mounted.
func (d *PodDirs) scanPod(uid types.UID) (vols []DiskVolume, subs, mounted []string, err error) {
	if vols, err = d.PodVolumes(uid); err != nil {
		return nil, nil, nil, err
	}
	for _, v := range vols {
		if v.Mounted {
			mounted = append(mounted, v.Path)
		}
	}
	if subs, err = d.subpathMounts(uid); err != nil {
		return nil, nil, nil, err
	}
	for _, s := range subs {
		if d.mountedForSure(s) {
			mounted = append(mounted, s)
		}
	}
	return vols, subs, mounted, nil
}

// RemoveOrphanedPod removes the directory of pod uid, a pod that no
// longer runs and should not, as the kubelet does:
//
//  1. if a volume directory or subPath bind mount is still mounted, it
//     refuses with a *PodMountedError naming them, and removes nothing;
//  2. it removes the volume directories, which must be empty (a volume
//     not torn down keeps the pod directory: its content is not removed),
//     and the subPath mount points, then the volumes directory;
//  3. it removes everything else in the pod directory (plugin state,
//     container directories, etc-hosts), then the pod directory.
//
// It never follows a symlink and never removes across a mount point (an
// error names it). A pod directory that does not exist is removed.
func (d *PodDirs) RemoveOrphanedPod(uid types.UID) error {
	if err := checkPodUID(uid); err != nil {
		return err
	}
	podDir := d.layout.PodDir(uid)
	fi, err := os.Lstat(podDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("orphaned pod %q: %s is not a directory, refusing to remove it", uid, podDir)
	}
	vols, subs, mounted, err := d.scanPod(uid)
	if err != nil {
		return fmt.Errorf("orphaned pod %q found, but error occurred during checking mounted volumes from disk: %w", uid, err)
	}
	if len(mounted) > 0 {
		return &PodMountedError{PodUID: uid, Paths: mounted}
	}

	var errs []error
	for _, v := range vols {
		if err := unix.Rmdir(v.Path); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("orphaned pod %q found, but failed to rmdir() volume at path %s: %w", uid, v.Path, err))
		}
	}
	for _, s := range subs {
		if err := os.Remove(s); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("orphaned pod %q found, but failed to remove subpath at path %s: %w", uid, s, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := removeOneFilesystem(d.layout.PodVolumesDir(uid), true); err != nil {
		return fmt.Errorf("orphaned pod %q found, but error occurred when trying to remove the volumes dir: %w", uid, err)
	}

	entries, err := os.ReadDir(podDir)
	if err != nil {
		return fmt.Errorf("orphaned pod %q found, but error occurred during reading the pod dir from disk: %w", uid, err)
	}
	for _, e := range entries {
		path := filepath.Join(podDir, e.Name())
		if e.Name() == "volumes" {
			errs = append(errs, fmt.Errorf("orphaned pod %q found, but the volumes dir %s was found after it was removed", uid, path))
			continue
		}
		if err := removeOneFilesystem(path, false); err != nil {
			errs = append(errs, fmt.Errorf("orphaned pod %q found, but error occurred when trying to remove subdir %s: %w", uid, path, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := unix.Rmdir(podDir); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("orphaned pod %q found, but error occurred when trying to remove the pod directory: %w", uid, err)
	}
	d.log.Info("removed orphaned pod directory", zap.String("podUID", string(uid)))
	return nil
}

// CleanupOrphanedPods runs RemoveOrphanedPod for every pod on disk that
// keep does not keep (the kubelet keeps the pods it should run and the
// pods the runtime still runs), sets the orphan gauges, and returns every
// pod's error joined.
func (d *PodDirs) CleanupOrphanedPods(keep func(types.UID) bool) error {
	uids, err := d.Pods()
	if err != nil {
		return err
	}
	var errs []error
	var total, failed int
	for _, uid := range uids {
		if keep != nil && keep(uid) {
			continue
		}
		total++
		if err := d.RemoveOrphanedPod(uid); err != nil {
			failed++
			errs = append(errs, err)
		}
	}
	d.cleaned.Set(float64(total))
	d.cleanErrors.Set(float64(failed))
	if len(errs) > 0 {
		d.log.Info("orphaned pods not cleaned up yet", zap.Int("pods", failed), zap.Error(errs[0]))
	}
	return errors.Join(errs...)
}
