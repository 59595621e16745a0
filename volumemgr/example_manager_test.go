package volumemgr_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodekit/nodekit/volumemgr"
)

// A Manager mounts a pod's volumes before its containers start and tears
// them down once it is done: here a configMap and an emptyDir on disk,
// which need no mount privileges.
func ExampleManager() {
	root, _ := os.MkdirTemp("", "nodekit-volumes-")
	defer os.RemoveAll(root)
	objects, _ := volumemgr.NewObjects(volumemgr.ObjectsConfig{ConfigMaps: []*v1.ConfigMap{
		{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}, Data: map[string]string{"index.html": "hello"}}}})
	// NoSharedRoot: this example mounts nothing (a real agent lets Run
	// make its root a shared mount, as the kubelet does).
	m, err := volumemgr.NewManager(volumemgr.ManagerConfig{Root: root, ConfigMaps: objects, NoSharedRoot: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)

	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-1"}, Spec: v1.PodSpec{Volumes: []v1.Volume{
		{Name: "html", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "web"}}}},
		{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
	}}}
	if err := m.WaitForAttachAndMount(ctx, pod); err != nil {
		fmt.Println(err)
		return
	}
	for _, name := range []string{"html", "scratch"} {
		path := m.PodVolumes(pod)[name].HostPath
		fmt.Println(name, strings.TrimPrefix(path, root))
	}
	b, _ := os.ReadFile(filepath.Join(m.PodVolumes(pod)["html"].HostPath, "index.html"))
	fmt.Println(string(b))
	if err := m.WaitForUnmount(ctx, pod); err != nil {
		fmt.Println(err)
	}
	_, err = os.Stat(filepath.Join(root, "pods/uid-1/volumes/kubernetes.io~configmap/html"))
	fmt.Println("after unmount:", os.IsNotExist(err))
	// Output:
	// html /pods/uid-1/volumes/kubernetes.io~configmap/html
	// scratch /pods/uid-1/volumes/kubernetes.io~empty-dir/scratch
	// hello
	// after unmount: true
}
