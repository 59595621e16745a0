package statusmgr

import (
	"context"
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// benchPod is a typical application pod: an init container that ran, a
// sidecar, and three regular containers with requests, limits, probes and
// volume mounts.
func benchPod() *v1.Pod {
	res := v1.ResourceRequirements{
		Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("100m"), v1.ResourceMemory: resource.MustParse("128Mi")},
		Limits:   v1.ResourceList{v1.ResourceMemory: resource.MustParse("256Mi")},
	}
	mounts := []v1.VolumeMount{
		{Name: "data", MountPath: "/data"},
		{Name: "kube-api-access-x7k2p", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true},
	}
	probe := &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/healthz"}}, PeriodSeconds: 10}
	c := func(name string) v1.Container {
		return v1.Container{Name: name, Image: name + ":1", Resources: res, VolumeMounts: mounts, ReadinessProbe: probe,
			TerminationMessagePath: v1.TerminationMessagePathDefault, TerminationMessagePolicy: v1.TerminationMessageReadFile}
	}
	proxy := c("proxy")
	proxy.RestartPolicy = &policyAlways
	return newPod(v1.PodSpec{
		InitContainers: []v1.Container{c("migrate"), proxy},
		Containers:     []v1.Container{c("app"), c("worker"), c("metrics")},
		RestartPolicy:  v1.RestartPolicyAlways,
		Volumes:        []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}},
	})
}

// benchRuntime is benchPod's runtime status: its init container
// completed, the others running; crashLoop makes "app" exit for the
// fifth time, the instance before it kept.
func benchRuntime(crashLoop bool) *core.PodStatus {
	sb := []*runtimeapi.PodSandboxStatus{sandbox("sb1", true, 0, "10.244.1.17")}
	app := running("app", "a1", 4)
	if crashLoop {
		app = exited("app", "a5", 60, 1, "Error", 62, restarts(5))
	}
	containers := []*runtimeapi.ContainerStatus{
		app,
		exited("migrate", "m1", 1, 0, "Completed", 2),
		running("proxy", "p1", 3),
		running("worker", "w1", 4),
		running("metrics", "x1", 4),
	}
	if crashLoop {
		containers = append(containers, exited("app", "a4", 30, 1, "Error", 32, restarts(4)))
	}
	return runtimeStatus(sb, containers...)
}

// benchProbes says every running instance has started and is ready.
var benchProbes = probes{
	ready:   map[string]bool{"a1": true, "p1": true, "w1": true, "x1": true},
	started: map[string]bool{"a1": true, "p1": true, "w1": true, "x1": true},
}

// benchInput is the input of a sync of benchPod at second now, after
// the status generated at second now-10 (Previous).
func benchInput(pod *v1.Pod, crashLoop bool) Input {
	in := Input{Pod: pod, Runtime: benchRuntime(crashLoop), Probes: benchProbes, HostIPs: []string{"172.18.0.3"}, Now: at(90)}
	if crashLoop {
		in.Waiting = []Waiting{{Name: "app", Reason: "CrashLoopBackOff",
			Message: "back-off 1m20s restarting failed container=app pod=web_default(uid-1)"}}
	}
	prev := Generate(in)
	in.Previous, in.Now = &prev, at(100)
	return in
}

// Generate for a pod of two init and three regular containers, as each
// sync and each PLEG event of the pod makes it: "running" with every
// container up, "crashloop" with one waiting in CrashLoopBackOff after
// five exits (two instances of it at the runtime).
func BenchmarkGenerate(b *testing.B) {
	for _, tc := range []struct {
		name      string
		crashLoop bool
	}{{"running", false}, {"crashloop", true}} {
		b.Run(tc.name, func(b *testing.B) {
			in := benchInput(benchPod(), tc.crashLoop)
			b.ReportAllocs()
			for b.Loop() {
				s := Generate(in)
				if len(s.ContainerStatuses) != 3 {
					b.Fatalf("%d container statuses", len(s.ContainerStatuses))
				}
			}
		})
	}
}

// Cache.Set of benchPod's status: "unchanged" is the usual case (a sync
// that found nothing new: the status is normalized, compared and
// dropped), "changed" alternates between two statuses (a readiness
// flip), each stored as a new version.
func BenchmarkCacheSet(b *testing.B) {
	pod := benchPod()
	in := benchInput(pod, false)
	ready := Generate(in)
	in.Probes = probes{started: benchProbes.started}
	unready := Generate(in)
	for _, tc := range []struct {
		name     string
		statuses []v1.PodStatus
	}{{"unchanged", []v1.PodStatus{ready}}, {"changed", []v1.PodStatus{ready, unready}}} {
		b.Run(tc.name, func(b *testing.B) {
			c, err := NewCache(CacheConfig{Clock: clock.RealClock{}})
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := c.Set(pod, tc.statuses[0]); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				_, changed, err := c.Set(pod, tc.statuses[i%len(tc.statuses)])
				if err != nil || changed != (len(tc.statuses) > 1) {
					b.Fatalf("changed %v, err %v", changed, err)
				}
			}
		})
	}
}

// One status update pushed through: Cache.Set of one pod's changed
// status, then the Syncer's pass that writes it to a MemorySink, on a
// node of 10, 100 and 1,000 pods (each of benchPod's shape).
func BenchmarkSyncerUpdate(b *testing.B) {
	ctx := context.Background()
	base := benchPod()
	in := benchInput(base, false)
	ready := Generate(in)
	in.Probes = probes{started: benchProbes.started}
	unready := Generate(in)
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			cache, err := NewCache(CacheConfig{})
			if err != nil {
				b.Fatal(err)
			}
			sink := NewMemorySink()
			syncer, err := NewSyncer(SyncerConfig{Source: cache, Sink: sink})
			if err != nil {
				b.Fatal(err)
			}
			pods := make([]*v1.Pod, n)
			for i := range pods {
				p := base.DeepCopy()
				p.Name, p.UID = fmt.Sprintf("web-%d", i), types.UID(fmt.Sprintf("uid-%d", i))
				pods[i] = p
				if _, _, err := cache.Set(p, ready); err != nil {
					b.Fatal(err)
				}
			}
			if err := syncer.Sync(ctx, false); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				pod := pods[i%n]
				status := unready
				if (i/n)%2 == 1 {
					status = ready
				}
				i++
				v, changed, err := cache.Set(pod, status)
				if err != nil || !changed {
					b.Fatalf("changed %v, err %v", changed, err)
				}
				if err := syncer.Sync(ctx, false); err != nil {
					b.Fatal(err)
				}
				if syncer.Written(pod.UID) != v {
					b.Fatalf("version %d not written", v)
				}
			}
		})
	}
}
