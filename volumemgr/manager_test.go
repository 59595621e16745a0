package volumemgr

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/nodekit/nodekit/core"
)

// mgrPod is a pod with one volume of each kind the manager sets up.
func mgrPod(uid string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-" + uid, Namespace: "ns", UID: types.UID(uid), Labels: map[string]string{"app": "web"}},
		Spec: v1.PodSpec{
			Containers: []v1.Container{{Name: "app", Resources: v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceMemory: resource.MustParse("64Mi")}}}},
			Volumes: []v1.Volume{
				{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
				{Name: "cache", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory, SizeLimit: ptr.To(resource.MustParse("8Mi"))}}},
				{Name: "config", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "web"}}}},
				{Name: "creds", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "web"}}},
				{Name: "info", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
					{Path: "labels", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}}},
			},
		},
	}
}

type mgrEnv struct {
	root    string
	objects *Objects
	known   sync.Map // types.UID → bool
}

func newMgrEnv(t *testing.T) *mgrEnv {
	t.Helper()
	needRootForMounts(t)
	e := &mgrEnv{root: mntTestRoot(t)}
	t.Cleanup(func() { unmountAllUnder(t, e.root) })
	var err error
	e.objects, err = NewObjects(ObjectsConfig{
		ConfigMaps: []*v1.ConfigMap{{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"}, Data: map[string]string{"app.conf": "v1"}}},
		Secrets:    []*v1.Secret{{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"}, Data: map[string][]byte{"token": []byte("s3cret")}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// start runs a Manager on e's root until the test ends (or stop is
// called).
func (e *mgrEnv) start(t *testing.T, resync time.Duration) (*Manager, func()) {
	t.Helper()
	m, err := NewManager(ManagerConfig{Root: e.root, ConfigMaps: e.objects, Secrets: e.objects,
		NodeAllocatable: v1.ResourceList{v1.ResourceMemory: resource.MustParse("1Gi")},
		PodKnown:        func(uid types.UID) bool { _, ok := e.known.Load(uid); return ok },
		ResyncPeriod:    resync, ReconcilePeriod: 50 * time.Millisecond, RetryInitial: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	return m, stop
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func isMounted(t *testing.T, path string) bool {
	t.Helper()
	for _, mp := range mountPointsUnder(t, filepath.Dir(path)) {
		if mp == path {
			return true
		}
	}
	return false
}

// The manager sets up every kind of volume a pod names where the kubelet
// would, refreshes content volumes from their sources, and tears all of
// it down when the pod is done.
func TestManagerMountsAndUnmounts(t *testing.T) {
	e := newMgrEnv(t)
	m, _ := e.start(t, 200*time.Millisecond)
	pod := mgrPod("uid-1")
	e.known.Store(pod.UID, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.WaitForAttachAndMount(ctx, pod); err != nil {
		t.Fatal(err)
	}
	vols := m.PodVolumes(pod)
	l := m.Layout()
	want := map[string]string{
		"scratch": l.VolumeDir(pod.UID, PluginEmptyDir, "scratch"),
		"cache":   l.VolumeDir(pod.UID, PluginEmptyDir, "cache"),
		"config":  l.VolumeDir(pod.UID, PluginConfigMap, "config"),
		"creds":   l.VolumeDir(pod.UID, PluginSecret, "creds"),
		"info":    l.VolumeDir(pod.UID, PluginDownwardAPI, "info"),
	}
	for name, path := range want {
		if vols[name].HostPath != path {
			t.Errorf("volume %s at %q, want %q", name, vols[name].HostPath, path)
		}
	}
	if !vols["config"].ReadOnly || !vols["creds"].ReadOnly || vols["scratch"].ReadOnly {
		t.Errorf("read-only flags: %+v", vols)
	}
	if got := readFile(t, filepath.Join(want["config"], "app.conf")); got != "v1" {
		t.Errorf("app.conf = %q", got)
	}
	if got := readFile(t, filepath.Join(want["creds"], "token")); got != "s3cret" {
		t.Errorf("token = %q", got)
	}
	if got := readFile(t, filepath.Join(want["info"], "labels")); got != `app="web"` {
		t.Errorf("labels = %q", got)
	}
	for _, name := range []string{"cache", "creds", "info"} {
		if !isMounted(t, want[name]) {
			t.Errorf("%s is not a tmpfs mount", name)
		}
	}

	// The volumes set up are what Stats measures; the tmpfs ones are
	// filesystems of their own.
	refs := m.VolumeRefs()
	if len(refs) != 5 {
		t.Fatalf("VolumeRefs: %+v", refs)
	}
	stats, err := NewStats(StatsConfig{Volumes: m.VolumeRefs})
	if err != nil {
		t.Fatal(err)
	}
	if err := stats.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	got := stats.PodVolumeStats(pod.UID)
	if c := got["cache"]; c.CapacityBytes != 8<<20 || got["config"].UsedBytes <= 0 || len(got) != 5 {
		t.Errorf("stats: %+v", got)
	}
	for _, r := range refs {
		if r.OwnFS != (r.Volume == "cache" || r.Volume == "creds" || r.Volume == "info") || r.Namespace != "ns" || r.Pod != pod.Name {
			t.Errorf("ref %+v", r)
		}
	}

	// A configMap update reaches the volume at the next resync.
	if err := e.objects.SetConfigMap(&v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"}, Data: map[string]string{"app.conf": "v2"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for readFile(t, filepath.Join(want["config"], "app.conf")) != "v2" {
		if time.Now().After(deadline) {
			t.Fatal("the configMap update never reached the volume")
		}
		time.Sleep(50 * time.Millisecond)
	}

	if err := m.WaitForUnmount(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if mps := mountPointsUnder(t, e.root+"/pods"); len(mps) != 0 {
		t.Errorf("still mounted after WaitForUnmount: %v", mps)
	}
	for name, path := range want {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("volume %s still on disk: %v", name, err)
		}
	}
	if len(m.PodVolumes(pod)) != 0 {
		t.Errorf("PodVolumes after unmount: %v", m.PodVolumes(pod))
	}
	// Forgotten by every source: Housekeep removes the pod's directory.
	e.known.Delete(pod.UID)
	if err := m.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.PodDir(pod.UID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod directory left: %v", err)
	}
}

// A hostPath whose type check fails fails the mount at once with the
// check's message, naming the volume; a kind the manager does not set up
// says so.
func TestManagerMountErrors(t *testing.T) {
	e := newMgrEnv(t)
	m, _ := e.start(t, time.Minute)
	file := filepath.Join(e.root, "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: "ns", UID: "uid-bad"},
		Spec: v1.PodSpec{Volumes: []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{
			Path: file, Type: ptr.To(v1.HostPathDirectory)}}}}}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err := m.WaitForAttachAndMount(ctx, pod)
	if !errors.Is(err, ErrNotMounted) || !strings.Contains(err.Error(), `volume "data"`) || !strings.Contains(err.Error(), "is not a directory") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("the failure took %s to report", time.Since(start))
	}
	claim := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pvc", Namespace: "ns", UID: "uid-pvc"},
		Spec: v1.PodSpec{Volumes: []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}}}}}}
	if err := m.WaitForAttachAndMount(ctx, claim); err == nil || !strings.Contains(err.Error(), "persistent-claim volumes are not supported") {
		t.Fatalf("pvc: %v", err)
	}
	// A hostPath that passes its check is the path itself.
	good := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ok", Namespace: "ns", UID: "uid-ok"},
		Spec: v1.PodSpec{Volumes: []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{
			Path: filepath.Join(e.root, "made"), Type: ptr.To(v1.HostPathDirectoryOrCreate)}}}}}}
	if err := m.WaitForAttachAndMount(ctx, good); err != nil {
		t.Fatal(err)
	}
	if got := m.PodVolumes(good)["data"].HostPath; got != filepath.Join(e.root, "made") {
		t.Errorf("hostPath volume at %q", got)
	}
	if _, err := os.Stat(filepath.Join(e.root, "made")); err != nil {
		t.Errorf("DirectoryOrCreate did not create: %v", err)
	}
	if _, err := NewManager(ManagerConfig{Root: "relative"}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("relative root: %v", err)
	}
}

// An agent restart unmounts nothing of a pod that still runs: the new
// manager adopts its volumes, content written there survives; volumes of
// a pod no source wants any more are torn down once sources are ready.
func TestManagerRestartAdopts(t *testing.T) {
	e := newMgrEnv(t)
	first, stop := e.start(t, time.Minute)
	running, gone := mgrPod("uid-running"), mgrPod("uid-gone")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, p := range []*v1.Pod{running, gone} {
		e.known.Store(p.UID, true)
		if err := first.WaitForAttachAndMount(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	cache := first.PodVolumes(running)["cache"].HostPath
	if err := os.WriteFile(filepath.Join(cache, "state"), []byte("written by the container"), 0o644); err != nil {
		t.Fatal(err)
	}
	stop()
	// The agent is down; the pod "gone" is deleted meanwhile.
	e.known.Delete(gone.UID)
	second, _ := e.start(t, time.Minute)
	if err := second.WaitForAttachAndMount(ctx, running); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(cache, "state")); got != "written by the container" {
		t.Fatalf("the tmpfs was replaced: %q", got)
	}
	if n := strings.Count(strings.Join(mountPointsUnder(t, cache), "\n"), cache); n != 1 {
		t.Errorf("%s mounted %d times", cache, n)
	}
	goneDir := second.Layout().VolumeDir(gone.UID, PluginEmptyDir, "cache")
	deadline := time.Now().Add(10 * time.Second)
	for isMounted(t, goneDir) {
		if time.Now().After(deadline) {
			t.Fatal("the volumes of the pod no one wants were never torn down")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := second.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(second.Layout().PodDir(gone.UID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the gone pod's directory: %v", err)
	}
	if !isMounted(t, cache) {
		t.Error("the running pod's tmpfs was unmounted")
	}
}

// Run makes the root a shared mount, as the kubelet does, so that mounts
// under it can propagate into containers; a second time changes nothing.
func TestMakeRShared(t *testing.T) {
	e := newMgrEnv(t)
	if shared, err := onSharedMount(e.root); err != nil || shared {
		t.Skipf("the temporary directory is on a shared mount already (%v %v)", shared, err)
	}
	for range 2 {
		if err := MakeRShared(e.root); err != nil {
			t.Fatal(err)
		}
	}
	if shared, err := onSharedMount(e.root); err != nil || !shared {
		t.Fatalf("after MakeRShared: shared=%v %v", shared, err)
	}
	if n := len(mountPointsUnder(t, e.root)); n != 1 {
		t.Errorf("%d mounts at the root, want 1", n)
	}
}
