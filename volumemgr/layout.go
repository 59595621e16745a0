package volumemgr

import (
	"path/filepath"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/types"
)

// Plugin names, as the kubelet names its in-tree volume plugins. On disk
// the "/" becomes "~" (EscapePluginName): a configMap volume "cfg" of pod
// u lives in pods/u/volumes/kubernetes.io~configmap/cfg.
const (
	PluginEmptyDir    = "kubernetes.io/empty-dir"
	PluginHostPath    = "kubernetes.io/host-path"
	PluginConfigMap   = "kubernetes.io/configmap"
	PluginSecret      = "kubernetes.io/secret"
	PluginDownwardAPI = "kubernetes.io/downward-api"
	PluginProjected   = "kubernetes.io/projected"
)

// EscapePluginName turns a plugin name into the directory name the kubelet
// gives it: "kubernetes.io/empty-dir" becomes "kubernetes.io~empty-dir".
func EscapePluginName(name string) string { return strings.ReplaceAll(name, "/", "~") }

// UnescapePluginName reverses EscapePluginName.
func UnescapePluginName(dir string) string { return strings.ReplaceAll(dir, "~", "/") }

// Layout is the kubelet's directory layout under a root directory
// (/var/lib/kubelet on a kubelet's node), so that operators and tools find
// a pod's volumes where they expect them:
//
//	<root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<volume>
//	<root>/pods/<uid>/volume-subpaths/<volume>/<container>/<index>
//	<root>/pods/<uid>/plugins/kubernetes.io~<plugin>/<volume>
//	<root>/pods/<uid>/containers/<container>
//	<root>/pods/<uid>/etc-hosts
//
// The zero value is not usable; Root must be an absolute path.
type Layout struct {
	Root string
}

// PodsDir is <root>/pods.
func (l Layout) PodsDir() string { return filepath.Join(l.Root, "pods") }

// PodDir is <root>/pods/<uid>.
func (l Layout) PodDir(uid types.UID) string { return filepath.Join(l.PodsDir(), string(uid)) }

// PodVolumesDir is <root>/pods/<uid>/volumes.
func (l Layout) PodVolumesDir(uid types.UID) string { return filepath.Join(l.PodDir(uid), "volumes") }

// VolumeDir is where a volume of a pod is set up:
// <root>/pods/<uid>/volumes/<escaped plugin>/<volume>.
func (l Layout) VolumeDir(uid types.UID, plugin, volume string) string {
	return filepath.Join(l.PodVolumesDir(uid), EscapePluginName(plugin), volume)
}

// PodSubpathsDir is <root>/pods/<uid>/volume-subpaths.
func (l Layout) PodSubpathsDir(uid types.UID) string {
	return filepath.Join(l.PodDir(uid), "volume-subpaths")
}

// SubpathDir is the bind mount of one subPath mount of a container:
// <root>/pods/<uid>/volume-subpaths/<volume>/<container>/<index>, index
// being the mount's position in the container's volumeMounts.
func (l Layout) SubpathDir(uid types.UID, volume, container string, index int) string {
	return filepath.Join(l.PodSubpathsDir(uid), volume, container, strconv.Itoa(index))
}

// PodPluginsDir is <root>/pods/<uid>/plugins.
func (l Layout) PodPluginsDir(uid types.UID) string { return filepath.Join(l.PodDir(uid), "plugins") }

// PodPluginDir is a plugin's private state for one volume of a pod:
// <root>/pods/<uid>/plugins/<escaped plugin>/<volume> (emptyDir keeps its
// "ready" file there).
func (l Layout) PodPluginDir(uid types.UID, plugin, volume string) string {
	return filepath.Join(l.PodPluginsDir(uid), EscapePluginName(plugin), volume)
}

// ContainerDir is <root>/pods/<uid>/containers/<container>, where the
// termination message files of the container's instances are.
func (l Layout) ContainerDir(uid types.UID, container string) string {
	return filepath.Join(l.PodDir(uid), "containers", container)
}

// EtcHostsPath is <root>/pods/<uid>/etc-hosts, the pod's managed hosts
// file.
func (l Layout) EtcHostsPath(uid types.UID) string { return filepath.Join(l.PodDir(uid), "etc-hosts") }
