package syncloop

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/crispec"
	"github.com/nodekit/nodekit/runtimetest"
)

// fakeVolumes mounts after failing while mountErr is set, and records
// what the driver asked.
type fakeVolumes struct {
	mu        sync.Mutex
	mountErr  error
	mounts    int
	subPaths  []string
	unmounted []string
}

func (f *fakeVolumes) WaitForAttachAndMount(_ context.Context, pod *v1.Pod) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mounts++
	return f.mountErr
}

func (f *fakeVolumes) PodVolumes(pod *v1.Pod) map[string]crispec.Volume {
	return map[string]crispec.Volume{"data": {HostPath: "/var/lib/pods/" + string(pod.UID) + "/volumes/data"}}
}

func (f *fakeVolumes) PrepareSubPath(pod *v1.Pod, c *v1.Container, p crispec.SubPath) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subPaths = append(f.subPaths, c.Name+":"+p.Path)
	return "/var/lib/pods/" + string(pod.UID) + "/volume-subpaths/data/" + c.Name + "/0", nil
}

func (f *fakeVolumes) WaitForUnmount(_ context.Context, pod *v1.Pod) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unmounted = append(f.unmounted, pod.Name)
	return nil
}

// The driver mounts a pod's volumes before anything of it starts: while
// they fail, no sandbox exists and the containers wait in
// ContainerCreating with the mount error; once mounted, the containers'
// mounts carry the volumes' host paths (a subPath prepared by the volume
// manager); a terminated pod's volumes are unmounted before its worker is
// done.
func TestDriverMountsVolumesFirst(t *testing.T) {
	rt := simRuntime(t)
	tr, err := crispec.New(crispec.Config{PodLogsRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	vols := &fakeVolumes{mountErr: errors.New(`volume "data": hostPath type check failed: /srv/data is not a directory`)}
	d, err := NewDriver(DriverConfig{Runtime: rt, Translator: tr, Volumes: vols})
	if err != nil {
		t.Fatal(err)
	}
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-web"},
		Spec: v1.PodSpec{
			Volumes: []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}},
			Containers: []v1.Container{
				{Name: "app", Image: testImage, VolumeMounts: []v1.VolumeMount{{Name: "data", MountPath: "/data"}}},
				{Name: "side", Image: testImage, VolumeMounts: []v1.VolumeMount{{Name: "data", MountPath: "/cfg", SubPath: "conf"}}},
			},
		},
	}
	ctx := context.Background()
	if _, err := d.SyncPod(ctx, pod, nil); err == nil || !strings.Contains(err.Error(), "is not a directory") {
		t.Fatalf("sync with failing volumes: %v", err)
	}
	if sbs, _ := rt.ListPodSandbox(ctx, nil); len(sbs) != 0 {
		t.Fatalf("a sandbox was created before the volumes were mounted: %d", len(sbs))
	}
	w := d.Waiting(pod.UID)
	if len(w) != 2 || w[0].Reason != ReasonContainerCreating || !strings.Contains(w[0].Message, `volume "data"`) {
		t.Fatalf("waiting: %+v", w)
	}

	vols.mu.Lock()
	vols.mountErr = nil
	vols.mu.Unlock()
	if _, err := d.SyncPod(ctx, pod, nil); err != nil {
		t.Fatal(err)
	}
	st := statusOf(t, rt, pod)
	if got := summary(st); got != "app#0:running side#0:running" {
		t.Fatalf("containers: %s", got)
	}
	mounts := map[string]string{}
	for _, cs := range st.ContainerStatuses {
		full, err := rt.ContainerStatus(ctx, cs.GetId(), false)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range full.GetStatus().GetMounts() {
			mounts[cs.GetMetadata().GetName()+":"+m.GetContainerPath()] = m.GetHostPath()
		}
	}
	if mounts["app:/data"] != "/var/lib/pods/uid-web/volumes/data" || mounts["side:/cfg"] != "/var/lib/pods/uid-web/volume-subpaths/data/side/0" {
		t.Fatalf("mounts: %v", mounts)
	}
	if len(vols.subPaths) != 1 || vols.subPaths[0] != "side:/var/lib/pods/uid-web/volumes/data/conf" {
		t.Fatalf("subPaths prepared: %v", vols.subPaths)
	}
	if len(d.Waiting(pod.UID)) != 0 {
		t.Fatalf("still waiting: %+v", d.Waiting(pod.UID))
	}

	// Every sync asks, nothing to start or not: the volume manager learns
	// of running pods (after an agent restart, say).
	before := vols.mounts
	if _, err := d.SyncPod(ctx, pod, statusOf(t, rt, pod)); err != nil {
		t.Fatal(err)
	}
	if vols.mounts != before+1 {
		t.Errorf("volumes asked %d times by a sync with nothing to start", vols.mounts-before)
	}

	if err := d.SyncTerminatingPod(ctx, pod, statusOf(t, rt, pod), 1); err != nil {
		t.Fatal(err)
	}
	if err := d.SyncTerminatedPod(ctx, pod, statusOf(t, rt, pod)); err != nil {
		t.Fatal(err)
	}
	if len(vols.unmounted) != 1 || vols.unmounted[0] != "web" {
		t.Fatalf("unmounted: %v", vols.unmounted)
	}
}

// fakeCgroups records the pods whose cgroup was made.
type fakeCgroups struct{ ensured []string }

func (f *fakeCgroups) EnsurePod(_ context.Context, pod *v1.Pod) error {
	f.ensured = append(f.ensured, pod.Name)
	return nil
}

func (f *fakeCgroups) CgroupParent(pod *v1.Pod) string {
	return "/kubepods/besteffort/pod" + string(pod.UID)
}

// parentRecorder is a runtime that remembers the cgroup parent of every
// sandbox it runs.
type parentRecorder struct {
	DriverRuntime
	parents []string
}

func (p *parentRecorder) RunPodSandbox(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, handler string) (string, error) {
	p.parents = append(p.parents, cfg.GetLinux().GetCgroupParent())
	return p.DriverRuntime.RunPodSandbox(ctx, cfg, handler)
}

// With a pod cgroup manager the driver makes the pod's cgroup once, before
// the sandbox, and runs the sandbox in it.
func TestDriverPodCgroups(t *testing.T) {
	rt := &parentRecorder{DriverRuntime: simRuntime(t)}
	tr, err := crispec.New(crispec.Config{PodLogsRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	cg := &fakeCgroups{}
	d, err := NewDriver(DriverConfig{Runtime: rt, Translator: tr, Cgroups: cg, CgroupParent: "/ignored"})
	if err != nil {
		t.Fatal(err)
	}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-web"},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app", Image: testImage}}}}
	ctx := context.Background()
	if _, err := d.SyncPod(ctx, pod, nil); err != nil {
		t.Fatal(err)
	}
	st, err := runtimetest.PodStatus(ctx, rt.DriverRuntime.(*runtimetest.Runtime), pod.UID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.SyncPod(ctx, pod, st); err != nil {
		t.Fatal(err)
	}
	if len(cg.ensured) != 1 || len(rt.parents) != 1 || rt.parents[0] != "/kubepods/besteffort/poduid-web" {
		t.Fatalf("ensured %v, sandbox parents %v", cg.ensured, rt.parents)
	}
}

type fixedCPUs map[string]string

func (f fixedCPUs) ContainerCPUs(_ *v1.Pod, c *v1.Container) (string, bool) {
	cpus, ok := f[c.Name]
	return cpus, ok && cpus != "0-1"
}

// With a CPU manager each container is created on the CPUs it was given;
// one pinned to exclusive CPUs gets no CFS quota.
func TestDriverCPUSets(t *testing.T) {
	rt := simRuntime(t)
	tr, err := crispec.New(crispec.Config{PodLogsRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDriver(DriverConfig{Runtime: rt, Translator: tr, CPUs: fixedCPUs{"pinned": "1", "shared": "0-1"}})
	if err != nil {
		t.Fatal(err)
	}
	rl := v1.ResourceList{v1.ResourceCPU: resource.MustParse("1"), v1.ResourceMemory: resource.MustParse("64Mi")}
	limits := v1.ResourceRequirements{Limits: rl, Requests: rl} // Guaranteed
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-web"},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "pinned", Image: testImage, Resources: limits}, {Name: "shared", Image: testImage, Resources: limits}}}}
	ctx := context.Background()
	if _, err := d.SyncPod(ctx, pod, nil); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, cs := range statusOf(t, rt, pod).ContainerStatuses {
		st, err := rt.ContainerStatus(ctx, cs.GetId(), false)
		if err != nil {
			t.Fatal(err)
		}
		l := st.GetStatus().GetResources().GetLinux()
		got[cs.GetMetadata().GetName()] = fmt.Sprintf("%s quota=%d", l.GetCpusetCpus(), l.GetCpuQuota())
	}
	if got["pinned"] != "1 quota=-1" || got["shared"] != "0-1 quota=100000" {
		t.Fatalf("container cpusets: %v", got)
	}
}
