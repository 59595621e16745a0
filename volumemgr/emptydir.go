package volumemgr

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"
	mountutils "k8s.io/mount-utils"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
)

// emptyDirPerm is the mode of an emptyDir directory: the kubelet makes it
// world-writable whatever the umask, so that any container user can write.
const emptyDirPerm os.FileMode = 0o777

// volumeReadyFile is the file the kubelet keeps in a volume's plugin
// directory once the volume is set up.
const volumeReadyFile = "ready"

const (
	defaultHugePagesDir = "/sys/kernel/mm/hugepages"
	selfMountInfoPath   = "/proc/self/mountinfo"
	tmpfsNoswapOption   = "noswap"
)

// EmptyDirConfig configures an EmptyDir. Only Layout is required.
type EmptyDirConfig struct {
	// Layout says where volumes live. Required: Root must be absolute.
	Layout Layout
	// Mounter mounts tmpfs and hugetlbfs. Nil: a SystemMounter.
	Mounter Mounter
	// NodeAllocatable is the node's allocatable resources; its memory
	// bounds the size of a Memory emptyDir. Nil or without memory: the
	// machine's memory.
	NodeAllocatable v1.ResourceList
	// HugePagesDir lists the huge page sizes the kernel offers, one
	// hugepages-<n>kB directory each. Empty: /sys/kernel/mm/hugepages.
	HugePagesDir string
	// VolumeMode honours emptyDir.mode (the kubelet's EmptyDirVolumeMode
	// feature, off by default): the directory gets that mode instead of
	// 0777.
	VolumeMode bool
	// TmpfsNoswap says whether tmpfs mounts get the noswap option. Nil:
	// as the kubelet decides, yes on Linux 6.4 or newer outside a user
	// namespace.
	TmpfsNoswap *bool
	// Logger receives what the kubelet logs. Nil: none.
	Logger *zap.Logger
}

// EmptyDir sets up and tears down the emptyDir volumes of pods as the
// kubelet's empty-dir plugin does, in
// Layout.VolumeDir(uid, PluginEmptyDir, name), with the "ready" file in
// Layout.PodPluginDir(uid, PluginEmptyDir, name):
//
//   - medium "": a directory with mode 0777 whatever the umask;
//   - medium Memory: that directory with a tmpfs mounted on it, of size
//     MemoryVolumeSize (the smallest of sizeLimit, the pod's memory limit
//     and node allocatable memory);
//   - medium HugePages or HugePages-<size>: hugetlbfs with the page size
//     the pod requests huge pages of, when the kernel offers that size.
//
// It also mounts the tmpfs of secret and projected volumes (SetUpTmpfs),
// which the kubelet backs with a Memory emptyDir. It does not change
// ownership for fsGroup, nor assign filesystem quotas. Calls for
// different volumes may run concurrently; the caller serialises calls for
// one volume, as the kubelet's operation executor does.
type EmptyDir struct {
	layout       Layout
	mounter      Mounter
	allocatable  resource.Quantity
	hugePagesDir string
	volumeMode   bool
	noswap       bool
	log          *zap.Logger
}

// NewEmptyDir returns an EmptyDir. A Layout without an absolute Root is
// an error wrapping core.ErrInvalid.
func NewEmptyDir(cfg EmptyDirConfig) (*EmptyDir, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.HugePagesDir == "" {
		cfg.HugePagesDir = defaultHugePagesDir
	}
	if err := checkLayoutRoot("EmptyDirConfig.Layout", cfg.Layout); err != nil {
		return nil, fmt.Errorf("volumemgr: empty dir: %w", err)
	}
	if cfg.Mounter == nil {
		m, err := NewMounter(MounterConfig{Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("volumemgr: empty dir: %w", err)
		}
		cfg.Mounter = m
	}
	e := &EmptyDir{
		layout:       cfg.Layout,
		mounter:      cfg.Mounter,
		hugePagesDir: cfg.HugePagesDir,
		volumeMode:   cfg.VolumeMode,
		log:          cfg.Logger,
	}
	if q, ok := cfg.NodeAllocatable[v1.ResourceMemory]; ok && q.Sign() > 0 {
		e.allocatable = q.DeepCopy()
	} else {
		var si unix.Sysinfo_t
		if err := unix.Sysinfo(&si); err != nil {
			return nil, fmt.Errorf("volumemgr: empty dir: machine memory: %w", err)
		}
		e.allocatable = *resource.NewQuantity(int64(si.Totalram)*int64(si.Unit), resource.BinarySI)
	}
	if cfg.TmpfsNoswap != nil {
		e.noswap = *cfg.TmpfsNoswap
	} else {
		e.noswap = kernelHasTmpfsNoswap() && !inUserNamespace()
	}
	return e, nil
}

// Path is where the emptyDir volume name of pod uid is set up.
func (e *EmptyDir) Path(uid types.UID, name string) string {
	return e.layout.VolumeDir(uid, PluginEmptyDir, name)
}

// SetUp sets up the emptyDir volume vol of pod and returns its path (see
// EmptyDir). It is idempotent: a volume set up already, with its ready
// file and, for Memory, its tmpfs still mounted, is left as it is. A
// volume that is not an emptyDir, an unknown medium or huge pages the pod
// does not request or the node does not have are errors wrapping
// core.ErrInvalid.
func (e *EmptyDir) SetUp(pod *v1.Pod, vol *v1.Volume) (string, error) {
	if pod == nil || vol == nil || vol.EmptyDir == nil {
		return "", fmt.Errorf("emptyDir set-up needs a pod and an emptyDir volume: %w", core.ErrInvalid)
	}
	if err := checkPodUID(pod.UID); err != nil {
		return "", err
	}
	if err := checkPathName("volume name", vol.Name); err != nil {
		return "", err
	}
	dir := e.Path(pod.UID, vol.Name)
	medium := vol.EmptyDir.Medium
	if err := e.setUp(pod, vol, dir); err != nil {
		return "", fmt.Errorf("emptyDir volume %q (medium %q) of pod %s: %w", vol.Name, medium, pod.UID, err)
	}
	return dir, nil
}

func (e *EmptyDir) setUp(pod *v1.Pod, vol *v1.Volume, dir string) error {
	medium := vol.EmptyDir.Medium
	mounted, err := mountedOrAbsent(e.mounter, dir)
	if err != nil {
		return err
	}
	readyDir := e.layout.PodPluginDir(pod.UID, PluginEmptyDir, vol.Name)
	if isVolumeReady(readyDir) {
		switch {
		case medium == v1.StorageMediumMemory && mounted:
			return nil
		case medium == v1.StorageMediumDefault:
			if _, err := os.Lstat(dir); err == nil {
				return nil
			}
			e.log.Warn("emptyDir ready file present but its directory is gone; setting it up again",
				zap.String("readyDir", readyDir), zap.String("dir", dir))
			if err := os.RemoveAll(readyDir); err != nil {
				return err
			}
		}
	}

	switch {
	case medium == v1.StorageMediumDefault:
		err = e.setUpDir(pod.UID, dir, vol.EmptyDir.Mode)
	case medium == v1.StorageMediumMemory:
		err = e.setUpTmpfsVolume(pod, vol, dir)
	case isHugePageMedium(medium):
		err = e.setUpHugePages(pod, vol, dir)
	default:
		err = fmt.Errorf("unknown storage medium %q: %w", medium, core.ErrInvalid)
	}
	if err != nil {
		return err
	}
	return setVolumeReady(readyDir)
}

// setUpDir creates dir, its missing pod directories with the kubelet's
// 0750 (less the umask), and gives dir 0777 whatever the umask, or
// exactly emptyDir.mode with VolumeMode.
func (e *EmptyDir) setUpDir(uid types.UID, dir string, mode *int32) error {
	if err := os.MkdirAll(e.layout.PodVolumesDir(uid), 0o750); err != nil {
		return err
	}
	if e.volumeMode && mode != nil {
		fm := os.FileMode(*mode & 0o777)
		if *mode&0o1000 != 0 {
			fm |= os.ModeSticky
		}
		if err := os.MkdirAll(dir, emptyDirPerm); err != nil {
			return err
		}
		return os.Chmod(dir, fm)
	}
	return makeWorldWritableDir(dir)
}

// makeWorldWritableDir creates dir (and missing parents with 0777 less
// the umask, as MkdirAll does) and gives it the permission bits 0777 when
// the umask took some; like the kubelet, it leaves them alone otherwise,
// and so keeps the sticky bit of a tmpfs mounted there.
func makeWorldWritableDir(dir string) error {
	if err := os.MkdirAll(dir, emptyDirPerm); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if fi.Mode().Perm() != emptyDirPerm {
		return os.Chmod(dir, emptyDirPerm)
	}
	return nil
}

func (e *EmptyDir) setUpTmpfsVolume(pod *v1.Pod, vol *v1.Volume, dir string) error {
	if err := e.setUpDir(pod.UID, dir, vol.EmptyDir.Mode); err != nil {
		return err
	}
	size := MemoryVolumeSize(e.allocatable, pod, vol.EmptyDir.SizeLimit)
	return e.mountTmpfs(dir, size.Value())
}

// mountTmpfs mounts a tmpfs of size bytes (0: the kernel's default, half
// the memory) on dir unless a tmpfs is mounted there already.
func (e *EmptyDir) mountTmpfs(dir string, size int64) error {
	medium, mounted, err := mountMedium(e.mounter, dir)
	if err != nil {
		return err
	}
	if mounted && medium == v1.StorageMediumMemory {
		return nil
	}
	var opts []string
	if size > 0 {
		opts = append(opts, "size="+strconv.FormatInt(size, 10))
	}
	if e.noswap {
		opts = append(opts, tmpfsNoswapOption)
	}
	e.log.Info("mounting tmpfs", zap.String("dir", dir), zap.Strings("options", opts))
	return e.mounter.Mount("tmpfs", dir, "tmpfs", opts)
}

func (e *EmptyDir) setUpHugePages(pod *v1.Pod, vol *v1.Volume, dir string) error {
	medium := vol.EmptyDir.Medium
	if err := e.setUpDir(pod.UID, dir, vol.EmptyDir.Mode); err != nil {
		return err
	}
	mediumNow, mounted, err := mountMedium(e.mounter, dir)
	if err != nil {
		return err
	}
	if mounted && mediumNow == v1.StorageMediumHugePages {
		if medium == v1.StorageMediumHugePages {
			return nil
		}
		want, err := mediumPageSize(medium)
		if err != nil {
			return err
		}
		have, err := mountedPageSize(dir)
		if err != nil {
			return err
		}
		if have.Cmp(want) != 0 {
			return fmt.Errorf("mounted dir %s has page size %s, medium %q asks for %s", dir, have.String(), medium, want.String())
		}
		return nil
	}
	pageSize, err := hugePageSize(medium, pod)
	if err != nil {
		return err
	}
	if err := e.checkNodeHugePages(medium, pageSize); err != nil {
		return err
	}
	e.log.Info("mounting hugetlbfs", zap.String("dir", dir), zap.String("pagesize", pageSize.String()))
	return e.mounter.Mount("nodev", dir, "hugetlbfs", []string{"pagesize=" + pageSize.String()})
}

// checkNodeHugePages fails unless the kernel offers huge pages of size.
func (e *EmptyDir) checkNodeHugePages(medium v1.StorageMedium, size resource.Quantity) error {
	name := "hugepages-" + strconv.FormatInt(size.Value()/1024, 10) + "kB"
	fi, err := os.Stat(filepath.Join(e.hugePagesDir, name))
	if err == nil && fi.IsDir() {
		return nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("medium %q: look for the node's huge pages: %w", medium, err)
	}
	return fmt.Errorf("medium %q: the node has no huge pages of size %s: %w", medium, size.String(), core.ErrInvalid)
}

// TearDown tears down the emptyDir volume name of pod uid as the kubelet
// does: it removes the ready file, unmounts whatever is mounted on the
// volume directory and removes the directory with its content, never
// crossing into another mount. A volume that is not there is torn down.
func (e *EmptyDir) TearDown(uid types.UID, name string) error {
	if err := checkPodUID(uid); err != nil {
		return err
	}
	if err := checkPathName("volume name", name); err != nil {
		return err
	}
	readyDir := e.layout.PodPluginDir(uid, PluginEmptyDir, name)
	if err := os.RemoveAll(readyDir); err != nil {
		return fmt.Errorf("emptyDir volume %q of pod %s: remove ready dir: %w", name, uid, err)
	}
	if err := e.TearDownTmpfs(e.Path(uid, name)); err != nil {
		return fmt.Errorf("emptyDir volume %q of pod %s: %w", name, uid, err)
	}
	return nil
}

// SetUpTmpfs makes dir a directory (mode 0777, parents as MkdirAll makes
// them) with a tmpfs of size bytes mounted on it (0: the kernel's
// default, half the memory), for the secret and projected volumes the
// kubelet backs with a Memory emptyDir; size is then TmpfsSize(pod). A
// tmpfs mounted on dir already is left as it is.
func (e *EmptyDir) SetUpTmpfs(dir string, size int64) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("tmpfs directory %q must be absolute: %w", dir, core.ErrInvalid)
	}
	if err := makeWorldWritableDir(dir); err != nil {
		return err
	}
	return e.mountTmpfs(dir, size)
}

// TmpfsSize is the size SetUpTmpfs is given for a volume of pod that the
// kubelet backs with a Memory emptyDir without sizeLimit (a secret or
// projected volume): MemoryVolumeSize of node allocatable memory and the
// pod, in bytes.
func (e *EmptyDir) TmpfsSize(pod *v1.Pod) int64 {
	size := MemoryVolumeSize(e.allocatable, pod, nil)
	return size.Value()
}

// TearDownTmpfs unmounts whatever is mounted on dir and removes dir with
// its content, never crossing into another mount. A dir that does not
// exist is torn down.
func (e *EmptyDir) TearDownTmpfs(dir string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("tmpfs directory %q must be absolute: %w", dir, core.ErrInvalid)
	}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := unmountAll(e.mounter, dir); err != nil {
		return err
	}
	return removeOneFilesystem(dir, false)
}

// MemoryVolumeSize is the size of the tmpfs of a Memory emptyDir as the
// kubelet computes it: node allocatable memory, lowered to the pod's
// memory limit (PodMemoryLimit) when that is positive and smaller, lowered
// again to sizeLimit when that is positive and smaller.
func MemoryVolumeSize(allocatable resource.Quantity, pod *v1.Pod, sizeLimit *resource.Quantity) resource.Quantity {
	size := allocatable.DeepCopy()
	if limit, ok := PodMemoryLimit(pod); ok && limit > 0 && limit <= size.Value() {
		size = *resource.NewQuantity(limit, resource.BinarySI)
	}
	if sizeLimit != nil && sizeLimit.Sign() > 0 && sizeLimit.Cmp(size) <= 0 {
		size = sizeLimit.DeepCopy()
	}
	return size
}

// PodMemoryLimit is the memory limit the kubelet gives the pod's cgroup,
// in bytes, and whether it sets one: Guaranteed pods always, Burstable
// pods when every init and regular container has a memory limit or the
// pod has a pod-level one, BestEffort pods never. The limit is the pod's
// effective limit (the pod-level limit if set, else the containers',
// sidecars and init containers counted as the scheduler does) plus the
// pod overhead.
func PodMemoryLimit(pod *v1.Pod) (int64, bool) {
	if pod == nil {
		return 0, false
	}
	qos := crispec.PodQOS(pod)
	if qos == v1.PodQOSBestEffort {
		return 0, false
	}
	if qos == v1.PodQOSBurstable {
		declared := true
		for _, cs := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
			for i := range cs {
				if cs[i].Resources.Limits.Memory().IsZero() {
					declared = false
				}
			}
		}
		if resourcehelper.IsPodLevelResourcesSet(pod) && !pod.Spec.Resources.Limits.Memory().IsZero() {
			declared = true
		}
		if !declared {
			return 0, false
		}
	}
	limits := resourcehelper.PodLimits(pod, resourcehelper.PodResourcesOptions{})
	q := limits[v1.ResourceMemory]
	return q.Value(), true
}

func isHugePageMedium(m v1.StorageMedium) bool {
	return m == v1.StorageMediumHugePages || strings.HasPrefix(string(m), string(v1.StorageMediumHugePagesPrefix))
}

// mediumPageSize is the page size a HugePages-<size> medium names.
func mediumPageSize(medium v1.StorageMedium) (resource.Quantity, error) {
	s, ok := strings.CutPrefix(string(medium), string(v1.StorageMediumHugePagesPrefix))
	if !ok {
		return resource.Quantity{}, fmt.Errorf("medium %q names no page size: %w", medium, core.ErrInvalid)
	}
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return resource.Quantity{}, fmt.Errorf("medium %q: bad page size: %w: %w", medium, core.ErrInvalid, err)
	}
	return q, nil
}

// hugePageSize is the page size of a hugetlbfs for medium: the size the
// medium names (HugePages-<size>), which the pod must request huge pages
// of, or (HugePages) the one size the pod requests huge pages of.
func hugePageSize(medium v1.StorageMedium, pod *v1.Pod) (resource.Quantity, error) {
	var want resource.Quantity
	if medium != v1.StorageMediumHugePages {
		q, err := mediumPageSize(medium)
		if err != nil {
			return resource.Quantity{}, err
		}
		want = q
	}
	lists := []v1.ResourceList{}
	if resourcehelper.IsPodLevelResourcesSet(pod) {
		lists = append(lists, pod.Spec.Resources.Requests)
	}
	for _, cs := range [][]v1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range cs {
			lists = append(lists, cs[i].Resources.Requests)
		}
	}
	var found bool
	var size resource.Quantity
	for _, l := range lists {
		for name := range l {
			s, ok := strings.CutPrefix(string(name), v1.ResourceHugePagesPrefix)
			if !ok {
				continue
			}
			q, err := resource.ParseQuantity(s)
			if err != nil {
				return resource.Quantity{}, fmt.Errorf("resource %q: bad page size: %w: %w", name, core.ErrInvalid, err)
			}
			if medium == v1.StorageMediumHugePages {
				if found && size.Cmp(q) != 0 {
					return resource.Quantity{}, fmt.Errorf("medium %q can't be used if container requests multiple huge page sizes: %w", medium, core.ErrInvalid)
				}
				found, size = true, q
			} else if q.Cmp(want) == 0 {
				found, size = true, q
			}
		}
	}
	if !found {
		return resource.Quantity{}, fmt.Errorf("medium %q: hugePages storage requested, but there is no resource request for huge pages: %w", medium, core.ErrInvalid)
	}
	return size, nil
}

// mountMedium says what backs path (Memory for tmpfs, HugePages for
// hugetlbfs, "" otherwise) and whether path is a mount point.
func mountMedium(m Mounter, path string) (v1.StorageMedium, bool, error) {
	mounted, err := mountedOrAbsent(m, path)
	if err != nil {
		return "", false, err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return "", false, &fs.PathError{Op: "statfs", Path: path, Err: err}
	}
	switch int64(st.Type) {
	case unix.TMPFS_MAGIC:
		return v1.StorageMediumMemory, mounted, nil
	case unix.HUGETLBFS_MAGIC:
		return v1.StorageMediumHugePages, mounted, nil
	}
	return v1.StorageMediumDefault, mounted, nil
}

// mountedPageSize reads the pagesize option of the hugetlbfs mounted on
// dir.
func mountedPageSize(dir string) (resource.Quantity, error) {
	infos, err := mountutils.ParseMountInfo(selfMountInfoPath)
	if err != nil {
		return resource.Quantity{}, err
	}
	for i := len(infos) - 1; i >= 0; i-- {
		if infos[i].MountPoint != dir {
			continue
		}
		for _, opts := range [][]string{infos[i].SuperOptions, infos[i].MountOptions} {
			for _, o := range opts {
				v, ok := strings.CutPrefix(strings.TrimSpace(o), "pagesize=")
				if !ok {
					continue
				}
				if !strings.HasSuffix(v, "i") {
					v += "i"
				}
				q, err := resource.ParseQuantity(v)
				if err != nil {
					return resource.Quantity{}, fmt.Errorf("mount of %s: bad option %q: %w", dir, o, err)
				}
				return q, nil
			}
		}
		return resource.Quantity{}, fmt.Errorf("mount of %s has no pagesize option", dir)
	}
	return resource.Quantity{}, fmt.Errorf("no mount on %s in %s", dir, selfMountInfoPath)
}

// isVolumeReady says whether dir holds the ready file as a regular file.
func isVolumeReady(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, volumeReadyFile))
	return err == nil && fi.Mode().IsRegular()
}

// setVolumeReady creates dir (0750) and the ready file in it.
func setVolumeReady(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, volumeReadyFile))
	if err != nil {
		return err
	}
	return f.Close()
}

// kernelHasTmpfsNoswap says whether the running kernel is Linux 6.4 or
// newer, the first to know tmpfs's noswap option.
func kernelHasTmpfsNoswap() bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	major, minor, ok := parseKernelRelease(unix.ByteSliceToString(u.Release[:]))
	return ok && (major > 6 || major == 6 && minor >= 4)
}

// parseKernelRelease reads major and minor from a release such as
// "6.8.0-45-generic".
func parseKernelRelease(rel string) (major, minor int, ok bool) {
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	digits := func(s string) string {
		end := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
		if end < 0 {
			return s
		}
		return s[:end]
	}
	var err1, err2 error
	major, err1 = strconv.Atoi(digits(parts[0]))
	minor, err2 = strconv.Atoi(digits(parts[1]))
	return major, minor, err1 == nil && err2 == nil
}

// inUserNamespace says whether the process runs in a user namespace other
// than the initial one, where tmpfs refuses noswap.
func inUserNamespace() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
}
