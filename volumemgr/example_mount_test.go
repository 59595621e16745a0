package volumemgr_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/volumemgr"
)

func ExampleCheckHostPath() {
	dir, err := os.MkdirTemp("", "hostpath")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	logs := filepath.Join(dir, "logs")

	// DirectoryOrCreate creates the directory, mode 0755.
	err = volumemgr.CheckHostPath(logs, new(v1.HostPathDirectoryOrCreate))
	fi, _ := os.Stat(logs)
	fmt.Println(err, fi.Mode())

	// The error of a failed check says what was expected and what was
	// found, in the kubelet's words.
	err = volumemgr.CheckHostPath(logs, new(v1.HostPathFile))
	fmt.Println(strings.ReplaceAll(err.Error(), dir, "/host"))
	var te *volumemgr.HostPathTypeError
	fmt.Println(errors.As(err, &te), te.Found, errors.Is(err, core.ErrInvalid))

	// Nothing there yet: it may appear later.
	err = volumemgr.CheckHostPath(filepath.Join(dir, "agent.sock"), new(v1.HostPathSocket))
	fmt.Println(errors.Is(err, core.ErrNotFound))

	// Output:
	// <nil> drwxr-xr-x
	// hostPath type check failed: /host/logs is not a file, it's a Directory
	// true Directory true
	// true
}

// An emptyDir on disk from set-up to the removal of its pod's directory,
// with a restarted agent's view of the disk in between.
func ExampleEmptyDir() {
	root, err := os.MkdirTemp("", "kubelet")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(root)
	layout := volumemgr.Layout{Root: root}

	ed, err := volumemgr.NewEmptyDir(volumemgr.EmptyDirConfig{Layout: layout})
	if err != nil {
		panic(err)
	}
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "8f7e"},
		Spec: v1.PodSpec{Volumes: []v1.Volume{
			{Name: "cache", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
		}},
	}
	dir, err := ed.SetUp(pod, &pod.Spec.Volumes[0])
	if err != nil {
		panic(err)
	}
	rel, _ := filepath.Rel(root, dir)
	fi, _ := os.Stat(dir)
	fmt.Println(rel, fi.Mode())

	// After a restart, the disk tells which volumes exist.
	dirs, err := volumemgr.NewPodDirs(volumemgr.PodDirsConfig{Layout: layout})
	if err != nil {
		panic(err)
	}
	vols, _ := dirs.Volumes()
	for _, v := range vols {
		fmt.Println(v.PodUID, v.Plugin, v.Name, "mounted:", v.Mounted)
	}

	// The pod is gone: tear its volumes down, then remove its directory.
	fmt.Println(ed.TearDown(pod.UID, "cache"))
	fmt.Println(dirs.RemoveOrphanedPod(pod.UID))
	_, err = os.Stat(layout.PodDir(pod.UID))
	fmt.Println(errors.Is(err, fs.ErrNotExist))

	// Output:
	// pods/8f7e/volumes/kubernetes.io~empty-dir/cache drwxrwxrwx
	// 8f7e kubernetes.io/empty-dir cache mounted: false
	// <nil>
	// <nil>
	// true
}
