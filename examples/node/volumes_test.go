package node_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/examples/node"
	"github.com/nodekit/nodekit/internal/testenv"
	"github.com/nodekit/nodekit/kubeapi"
	"github.com/nodekit/nodekit/volumemgr"
)

// volumeRoot is a root directory for the volume manager whose mounts are
// all undone when the test ends (before the directory is removed).
func volumeRoot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting volumes needs root")
	}
	root := t.TempDir()
	t.Cleanup(func() {
		for range 10 {
			mps := mountsUnder(t, root)
			if len(mps) == 0 {
				return
			}
			for i := len(mps) - 1; i >= 0; i-- {
				_ = syscall.Unmount(mps[i], syscall.MNT_DETACH)
			}
		}
	})
	return root
}

// mountsUnder lists the mount points at or below dir, in mount order.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			out = append(out, fields[4])
		}
	}
	return out
}

// exec runs cmd in the pod's container name and returns its output.
func (e *env) exec(t *testing.T, uid types.UID, name string, cmd ...string) (string, error) {
	t.Helper()
	for _, c := range e.containers(t, uid) {
		if c.GetMetadata().GetName() == name && c.GetState() == 1 { // running
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			res, err := e.rt.ExecSync(ctx, c.GetId(), cmd, 10*time.Second)
			return string(res.Stdout) + string(res.Stderr), err
		}
	}
	return "", os.ErrNotExist
}

// Volumes on real containerd: a file one container writes into an
// emptyDir is read by another; a configMap update appears in the running
// container; an agent restart unmounts nothing of a running pod; a bad
// hostPath type keeps the pod from starting, with the reason in its
// status; a removed pod's volumes are unmounted.
func TestVolumesOnContainerd(t *testing.T) {
	e := startEnv(t, testenv.Containerd16)
	root := volumeRoot(t)
	objects, err := volumemgr.NewObjects(volumemgr.ObjectsConfig{ConfigMaps: []*v1.ConfigMap{
		{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "e2e"}, Data: map[string]string{"app.conf": "v1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	events := &kubeapi.MemoryRecorder{}
	withVolumes := func(c *node.Config) {
		c.RootDir, c.ConfigMaps, c.Secrets, c.VolumeResyncPeriod, c.VolumeStatsPeriod = root, objects, objects, time.Second, time.Second
		c.Registerer, c.Recorder = reg, events
	}
	pod := hostPod("vols",
		v1.Container{Name: "writer", Command: []string{"sh", "-c", "echo hello > /shared/msg; trap 'exit 0' TERM; while true; do sleep 0.1; done"},
			VolumeMounts: []v1.VolumeMount{{Name: "shared", MountPath: "/shared"}}},
		v1.Container{Name: "reader", Command: []string{"sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"},
			VolumeMounts: []v1.VolumeMount{{Name: "shared", MountPath: "/shared", ReadOnly: true}, {Name: "config", MountPath: "/config"},
				{Name: "host", MountPath: "/host", MountPropagation: ptr.To(v1.MountPropagationHostToContainer)}}},
	)
	// A host directory under the agent's root, which the volume manager
	// makes a shared mount: mounts made there later reach the container.
	hostDir := filepath.Join(root, "host-share")
	pod.Spec.Volumes = []v1.Volume{
		{Name: "shared", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory, SizeLimit: ptr.To(resource.MustParse("4Mi"))}}},
		{Name: "config", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "app"}}}},
		{Name: "host", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: hostDir, Type: ptr.To(v1.HostPathDirectoryOrCreate)}}},
	}
	first := e.start(t, withVolumes)
	first.send(core.OpAdd, pod)
	e.waitSummary(t, pod.UID, time.Minute, "reader#0:running writer#0:running")
	waitFor(t, 20*time.Second, "the reader to see the writer's file", func() bool {
		out, err := e.exec(t, pod.UID, "reader", "cat", "/shared/msg")
		return err == nil && out == "hello\n"
	})
	if out, _ := e.exec(t, pod.UID, "reader", "sh", "-c", "echo x > /shared/other"); !strings.Contains(out, "Read-only file system") {
		t.Errorf("a readOnly mount was writable: %q", out)
	}
	if out, err := e.exec(t, pod.UID, "reader", "cat", "/config/app.conf"); err != nil || out != "v1" {
		t.Fatalf("config: %q %v", out, err)
	}
	if err := objects.SetConfigMap(&v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "e2e"}, Data: map[string]string{"app.conf": "v2"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the configMap update inside the container", func() bool {
		out, err := e.exec(t, pod.UID, "reader", "cat", "/config/app.conf")
		return err == nil && out == "v2"
	})

	// mountPropagation HostToContainer: a tmpfs mounted on the host after
	// the container started shows inside it.
	late := filepath.Join(hostDir, "late")
	if err := os.MkdirAll(late, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", late, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(late, syscall.MNT_DETACH)
	if err := os.WriteFile(filepath.Join(late, "news"), []byte("propagated"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the host's new mount inside the container", func() bool {
		out, err := e.exec(t, pod.UID, "reader", "cat", "/host/late/news")
		return err == nil && out == "propagated"
	})

	// The volumes' usage is measured and exported with the kubelet's
	// metric names, for emptyDirs too.
	waitFor(t, 20*time.Second, "kubelet_volume_stats_used_bytes of the emptyDir", func() bool {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "kubelet_volume_stats_used_bytes" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["volume"] == "shared" && labels["pod"] == "vols" && labels["namespace"] == "e2e" && m.GetGauge().GetValue() > 0 {
					return true
				}
			}
		}
		return false
	})

	// The agent restarts: nothing is unmounted, no container replaced.
	shared := filepath.Join(root, "pods", string(pod.UID), "volumes", "kubernetes.io~empty-dir", "shared")
	before := e.containers(t, pod.UID)
	first.stop()
	reg = prometheus.NewRegistry()
	second := e.start(t, withVolumes)
	second.send(core.OpAdd, pod)
	waitFor(t, 30*time.Second, "the adopted pod's volumes", func() bool {
		_, ok := second.Volumes.Mounted(pod.UID, "shared")
		return ok
	})
	time.Sleep(2 * time.Second) // syncs and reconciles after the adoption
	if n := len(mountsUnder(t, shared)); n != 1 {
		t.Errorf("the emptyDir is mounted %d times after the restart", n)
	}
	after := e.containers(t, pod.UID)
	for i := range before {
		if before[i].GetId() != after[i].GetId() {
			t.Errorf("container %s was replaced by the restart", before[i].GetMetadata().GetName())
		}
	}
	if out, err := e.exec(t, pod.UID, "reader", "cat", "/shared/msg"); err != nil || out != "hello\n" {
		t.Errorf("after the restart the reader sees %q (%v)", out, err)
	}

	// A hostPath of the wrong type: the pod never starts, and says why.
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := hostPod("badpath", v1.Container{Name: "app", Command: []string{"true"}, VolumeMounts: []v1.VolumeMount{{Name: "data", MountPath: "/data"}}})
	bad.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: file, Type: ptr.To(v1.HostPathDirectory)}}}}
	second.send(core.OpAdd, bad)
	waitFor(t, 30*time.Second, "the bad pod's waiting reason", func() bool {
		st, _, ok := second.Statuses.Get(bad.UID)
		if !ok || len(st.ContainerStatuses) != 1 || st.ContainerStatuses[0].State.Waiting == nil {
			return false
		}
		w := st.ContainerStatuses[0].State.Waiting
		return w.Reason == "ContainerCreating" && strings.Contains(w.Message, `volume "data"`) && strings.Contains(w.Message, "is not a directory")
	})
	if sbs := e.sandboxes(t, bad.UID); len(sbs) != 0 {
		t.Errorf("the pod with a bad hostPath got a sandbox")
	}
	// And a Warning event on the pod, as the kubelet records it.
	found := false
	for _, ev := range events.Events() {
		found = found || (ev.Reason == "FailedMount" && strings.Contains(ev.Message, "is not a directory"))
	}
	if !found {
		t.Errorf("no FailedMount event: %v", events.Events())
	}

	// Removed: its containers stop, then its volumes are unmounted.
	second.send(core.OpRemove, pod, bad)
	waitFor(t, time.Minute, "the removed pod's volumes to be unmounted", func() bool {
		return len(mountsUnder(t, filepath.Join(root, "pods", string(pod.UID)))) == 0
	})
	if out := summary(e.containers(t, pod.UID)); out != "reader#0:exited(0) writer#0:exited(0)" {
		t.Errorf("containers when the volumes went: %s", out)
	}
}
