package crispec

import (
	"path/filepath"
	"strconv"

	"k8s.io/apimachinery/pkg/types"
)

// PodLogDir is the log directory of a pod, <root>/<namespace>_<name>_<uid>,
// the sandbox's log_directory. Log collectors parse the three parts back
// out of the directory name.
func PodLogDir(root, namespace, name string, uid types.UID) string {
	return filepath.Join(root, namespace+"_"+name+"_"+string(uid))
}

// ContainerLogDir is the directory holding the logs of every attempt of one
// container: PodLogDir/<containerName>. The caller creates it before
// creating the container, as the kubelet does.
func ContainerLogDir(root, namespace, name string, uid types.UID, containerName string) string {
	return filepath.Join(PodLogDir(root, namespace, name, uid), containerName)
}

// ContainerLogPath is a container's log_path: <containerName>/<restartCount>.log,
// relative to the sandbox's log_directory.
func ContainerLogPath(containerName string, restartCount int) string {
	return filepath.Join(containerName, strconv.Itoa(restartCount)+".log")
}
