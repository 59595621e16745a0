package eviction

import (
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/nodekit/nodekit/core"
)

const (
	lowPriority     = -1
	defaultPriority = 0
	highPriority    = 1
)

// withLocalVolume is the volume every disk ranking pod has.
var withLocalVolume = []v1.Volume{emptyDir("local-volume", "")}

func TestRank(t *testing.T) {
	// Pods are listed in input order; want is the ranking.
	type pod = PodStats
	one := func(name string, priority int32, requests string, volumes []v1.Volume) *v1.Pod {
		return newPod(name, priority, []v1.Container{container(name, requests, "")}, volumes)
	}
	tests := []struct {
		name   string
		signal Signal
		obs    Observations
		want   []string
	}{
		{
			name:   "memory: exceeding the request goes first, whatever the priority",
			signal: SignalMemoryAvailable,
			obs: Observations{Pods: []pod{
				memoryUse(one("below-requests", -1, "memory=200Mi", nil), 199*mi),
				memoryUse(one("exceeds-requests", 1, "memory=100Mi", nil), 101*mi),
			}},
			want: []string{"exceeds-requests", "below-requests"},
		},
		{
			name:   "memory: then by priority",
			signal: SignalMemoryAvailable,
			obs: Observations{Pods: []pod{
				memoryUse(one("high-priority", 12534, "cpu=200m,memory=200Mi", nil), 0),
				memoryUse(one("medium-priority", 1, "cpu=100m,memory=100Mi", nil), 0),
				memoryUse(one("low-priority", -134, "", nil), 0),
			}},
			want: []string{"low-priority", "medium-priority", "high-priority"},
		},
		{
			name:   "memory: then by usage above the request",
			signal: SignalMemoryAvailable,
			obs: Observations{Pods: []pod{
				memoryUse(one("best-effort-high", defaultPriority, "", nil), 500*mi),           // 500Mi above
				memoryUse(one("best-effort-low", defaultPriority, "", nil), 300*mi),            // 300Mi above
				memoryUse(one("burstable-high", defaultPriority, "memory=100Mi", nil), 800*mi), // 700Mi above
				memoryUse(one("burstable-low", defaultPriority, "memory=100Mi", nil), 300*mi),  // 200Mi above
				memoryUse(one("guaranteed-high", defaultPriority, "memory=1Gi", nil), 800*mi),  // 224Mi below
				memoryUse(one("guaranteed-low", defaultPriority, "memory=1Gi", nil), 200*mi),   // 824Mi below
			}},
			want: []string{"burstable-high", "best-effort-high", "best-effort-low", "burstable-low", "guaranteed-high", "guaranteed-low"},
		},
		{
			name:   "memory: exceeds, priority, usage",
			signal: SignalAllocatableMemoryAvailable,
			obs: Observations{Pods: []pod{
				memoryUse(one("below-requests-high-priority-low-usage", highPriority, "memory=1Gi", nil), 200*mi),
				memoryUse(one("below-requests-high-priority-high-usage", highPriority, "memory=1Gi", nil), 800*mi),
				memoryUse(one("below-requests-low-priority-low-usage", lowPriority, "memory=1Gi", nil), 200*mi),
				memoryUse(one("below-requests-low-priority-high-usage", lowPriority, "memory=1Gi", nil), 800*mi),
				memoryUse(one("above-requests-high-priority-low-usage", highPriority, "memory=100Mi", nil), 150*mi),
				memoryUse(one("above-requests-high-priority-high-usage", highPriority, "memory=100Mi", nil), 600*mi),
				memoryUse(one("above-requests-low-priority-low-usage", lowPriority, "", nil), 50*mi),
				memoryUse(one("above-requests-low-priority-high-usage", lowPriority, "", nil), 500*mi),
			}},
			want: []string{
				"above-requests-low-priority-high-usage", "above-requests-low-priority-low-usage",
				"above-requests-high-priority-high-usage", "above-requests-high-priority-low-usage",
				"below-requests-low-priority-high-usage", "below-requests-low-priority-low-usage",
				"below-requests-high-priority-high-usage", "below-requests-high-priority-low-usage",
			},
		},
		{
			name:   "disk: exceeding the ephemeral-storage request goes first",
			signal: SignalNodeFsAvailable,
			obs: Observations{Pods: []pod{
				diskUse(one("below-requests", -1, "ephemeral-storage=200Mi", nil), 100*mi, 99*mi, 0),
				diskUse(one("exceeds-requests", 1, "ephemeral-storage=100Mi", nil), 90*mi, 11*mi, 0),
			}},
			want: []string{"exceeds-requests", "below-requests"},
		},
		{
			name:   "disk: by usage above the request",
			signal: SignalNodeFsAvailable,
			obs: Observations{Pods: []pod{
				diskUse(one("best-effort-high", defaultPriority, "", withLocalVolume), 50*mi, 100*mi, 150*mi),                       // 300Mi
				diskUse(one("best-effort-low", defaultPriority, "", withLocalVolume), 25*mi, 25*mi, 50*mi),                          // 100Mi
				diskUse(one("burstable-high", defaultPriority, "ephemeral-storage=100Mi", withLocalVolume), 150*mi, 150*mi, 50*mi),  // 250Mi
				diskUse(one("burstable-low", defaultPriority, "ephemeral-storage=100Mi", withLocalVolume), 25*mi, 35*mi, 50*mi),     // 10Mi
				diskUse(one("guaranteed-high", defaultPriority, "ephemeral-storage=400Mi", withLocalVolume), 225*mi, 100*mi, 50*mi), // -25Mi
				diskUse(one("guaranteed-low", defaultPriority, "ephemeral-storage=400Mi", withLocalVolume), 25*mi, 45*mi, 50*mi),    // -280Mi
			}},
			want: []string{"best-effort-high", "burstable-high", "best-effort-low", "burstable-low", "guaranteed-high", "guaranteed-low"},
		},
		{
			name:   "disk: exceeds, priority, usage",
			signal: SignalImageFsAvailable,
			obs: Observations{Pods: []pod{
				diskUse(one("below-requests-high-priority-low-usage", highPriority, "ephemeral-storage=1Gi", withLocalVolume), 100*mi, 60*mi, 40*mi),
				diskUse(one("below-requests-high-priority-high-usage", highPriority, "ephemeral-storage=1Gi", withLocalVolume), 250*mi, 500*mi, 50*mi),
				diskUse(one("below-requests-low-priority-low-usage", lowPriority, "ephemeral-storage=1Gi", withLocalVolume), 50*mi, 100*mi, 50*mi),
				diskUse(one("below-requests-low-priority-high-usage", lowPriority, "ephemeral-storage=1Gi", withLocalVolume), 500*mi, 200*mi, 100*mi),
				diskUse(one("above-requests-high-priority-low-usage", highPriority, "ephemeral-storage=100Mi", withLocalVolume), 90*mi, 50*mi, 10*mi),
				diskUse(one("above-requests-high-priority-high-usage", highPriority, "ephemeral-storage=100Mi", withLocalVolume), 200*mi, 150*mi, 250*mi),
				diskUse(one("above-requests-low-priority-low-usage", lowPriority, "", withLocalVolume), 10*mi, 10*mi, 30*mi),
				diskUse(one("above-requests-low-priority-high-usage", lowPriority, "", withLocalVolume), 200*mi, 100*mi, 200*mi),
			}},
			want: []string{
				"above-requests-low-priority-high-usage", "above-requests-low-priority-low-usage",
				"above-requests-high-priority-high-usage", "above-requests-high-priority-low-usage",
				"below-requests-low-priority-high-usage", "below-requests-low-priority-low-usage",
				"below-requests-high-priority-high-usage", "below-requests-high-priority-low-usage",
			},
		},
		{
			name:   "inodes: by inodes used",
			signal: SignalNodeFsInodesFree,
			obs: Observations{Pods: []pod{
				inodeUse(one("low", defaultPriority, "", withLocalVolume), 50000, 100000, 50000),
				inodeUse(one("medium", defaultPriority, "", withLocalVolume), 100000, 150000, 50000),
				inodeUse(one("high", defaultPriority, "", withLocalVolume), 200000, 150000, 50000),
			}},
			want: []string{"high", "medium", "low"},
		},
		{
			name:   "inodes: priority, then inodes used",
			signal: SignalImageFsInodesFree,
			obs: Observations{Pods: []pod{
				inodeUse(one("high-priority-low-usage", highPriority, "", withLocalVolume), 10000, 40000, 100000),
				inodeUse(one("high-priority-high-usage", highPriority, "", withLocalVolume), 150000, 150000, 50000),
				inodeUse(one("low-priority-low-usage", lowPriority, "", withLocalVolume), 60000, 30000, 10000),
				inodeUse(one("low-priority-high-usage", lowPriority, "", withLocalVolume), 50000, 100000, 250000),
			}},
			want: []string{"low-priority-high-usage", "low-priority-low-usage", "high-priority-high-usage", "high-priority-low-usage"},
		},
		{
			name:   "pids: priority, then processes",
			signal: SignalPIDAvailable,
			obs: Observations{Pods: []pod{
				{Pod: one("high-priority-low-usage", highPriority, "", nil), Time: t0, ProcessCount: 5},
				{Pod: one("high-priority-high-usage", highPriority, "", nil), Time: t0, ProcessCount: 20},
				{Pod: one("low-priority-low-usage", lowPriority, "", nil), Time: t0, ProcessCount: 6},
				{Pod: one("low-priority-high-usage", lowPriority, "", nil), Time: t0, ProcessCount: 20},
			}},
			want: []string{"low-priority-high-usage", "low-priority-low-usage", "high-priority-high-usage", "high-priority-low-usage"},
		},
		{
			name:   "memory: pods without stats first, even of high priority",
			signal: SignalMemoryAvailable,
			obs: Observations{Pods: []pod{
				memoryUse(one("hungry", lowPriority, "", nil), 10*gi),
				{Pod: one("unmeasured", highPriority, "memory=1Gi", nil)},
			}},
			want: []string{"unmeasured", "hungry"},
		},
		{
			name:   "disk: pods without stats first",
			signal: SignalNodeFsAvailable,
			obs: Observations{Pods: []pod{
				diskUse(one("hungry", lowPriority, "", nil), 10*gi, 0, 0),
				{Pod: one("unmeasured", highPriority, "", nil)},
			}},
			want: []string{"unmeasured", "hungry"},
		},
		{
			name:   "pids: priority before missing stats",
			signal: SignalPIDAvailable,
			obs: Observations{Pods: []pod{
				{Pod: one("unmeasured-high", highPriority, "", nil)},
				{Pod: one("low", lowPriority, "", nil), Time: t0, ProcessCount: 100},
				{Pod: one("unmeasured-low", lowPriority, "", nil)},
			}},
			want: []string{"unmeasured-low", "low", "unmeasured-high"},
		},
		{
			name:   "ties keep the input order",
			signal: SignalMemoryAvailable,
			obs: Observations{Pods: []pod{
				memoryUse(one("c", 0, "", nil), mi),
				memoryUse(one("a", 0, "", nil), mi),
				{Pod: one("y", 0, "", nil)},
				memoryUse(one("b", 0, "", nil), mi),
				{Pod: one("x", 0, "", nil)},
			}},
			want: []string{"y", "x", "c", "a", "b"},
		},
		{
			name:   "dedicated imagefs: nodefs counts logs and volumes, not writable layers",
			signal: SignalNodeFsAvailable,
			obs: Observations{DedicatedImageFs: true, Pods: []pod{
				diskUse(one("big-rootfs", 0, "", withLocalVolume), 900*mi, 10*mi, 10*mi),
				diskUse(one("big-logs", 0, "", withLocalVolume), 10*mi, 100*mi, 10*mi),
				diskUse(one("big-volume", 0, "", withLocalVolume), 10*mi, 10*mi, 50*mi),
			}},
			want: []string{"big-logs", "big-volume", "big-rootfs"},
		},
		{
			name:   "dedicated imagefs: imagefs and containerfs count writable layers only",
			signal: SignalContainerFsAvailable,
			obs: Observations{DedicatedImageFs: true, Pods: []pod{
				diskUse(one("big-logs", 0, "", withLocalVolume), 10*mi, 900*mi, 900*mi),
				diskUse(one("big-rootfs", 0, "", withLocalVolume), 100*mi, 10*mi, 10*mi),
			}},
			want: []string{"big-rootfs", "big-logs"},
		},
		{
			name:   "split filesystems: imagefs counts no pod usage, so the smallest request goes first",
			signal: SignalImageFsAvailable,
			obs: Observations{DedicatedImageFs: true, DedicatedContainerFs: true, Pods: []pod{
				diskUse(one("big-request", 0, "ephemeral-storage=1Gi", withLocalVolume), 900*mi, 900*mi, 900*mi),
				diskUse(one("small-request", 0, "ephemeral-storage=1Mi", withLocalVolume), 0, 0, 0),
			}},
			want: []string{"small-request", "big-request"},
		},
		{
			name:   "split filesystems: containerfs counts writable layers, logs and volumes",
			signal: SignalContainerFsAvailable,
			obs: Observations{DedicatedImageFs: true, DedicatedContainerFs: true, Pods: []pod{
				diskUse(one("small", 0, "", withLocalVolume), 10*mi, 10*mi, 10*mi),
				diskUse(one("big-rootfs", 0, "", withLocalVolume), 100*mi, 10*mi, 10*mi),
			}},
			want: []string{"big-rootfs", "small"},
		},
		{
			name:   "memory-backed, secret and PVC volumes are not local disk",
			signal: SignalNodeFsAvailable,
			obs: Observations{Pods: []pod{
				{Pod: one("tmpfs", 0, "", []v1.Volume{
					{Name: "mem", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory}}},
					{Name: "secret", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{}}},
					{Name: "pvc", VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{}}},
				}), Time: t0, Volumes: []VolumeStats{{Name: "mem", UsedBytes: gi}, {Name: "secret", UsedBytes: gi}, {Name: "pvc", UsedBytes: gi}}},
				{Pod: one("disk", 0, "", []v1.Volume{
					{Name: "host", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{}}},
					{Name: "cm", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{}}},
				}), Time: t0, Volumes: []VolumeStats{{Name: "host", UsedBytes: mi}, {Name: "cm", UsedBytes: mi}}},
			}},
			want: []string{"disk", "tmpfs"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := names(Rank(tc.signal, tc.obs))
			if !slices.Equal(got, tc.want) {
				t.Errorf("Rank(%s):\n got %q\nwant %q", tc.signal, got, tc.want)
			}
		})
	}
}

func TestRankNumbers(t *testing.T) {
	overhead := newPod("overhead", 5, []v1.Container{container("c", "memory=100Mi,ephemeral-storage=1Gi", "")}, withLocalVolume)
	overhead.Spec.Overhead = resources("memory=10Mi")
	noRequestOverhead := newPod("no-request", 0, []v1.Container{container("c", "", "")}, nil)
	noRequestOverhead.Spec.Overhead = resources("memory=10Mi")
	podLevel := newPod("pod-level", 0, []v1.Container{container("a", "memory=1Gi,ephemeral-storage=1Gi", ""), container("b", "memory=1Gi", "")}, nil)
	podLevel.Spec.Resources = &v1.ResourceRequirements{Requests: resources("memory=300Mi")}
	initPeak := newPod("init-peak", 0, []v1.Container{container("c", "memory=100Mi", "")}, nil)
	initPeak.Spec.InitContainers = []v1.Container{container("init", "memory=500Mi", "")}
	critical := newPod("critical", SystemCriticalPriority, []v1.Container{container("c", "", "")}, nil)

	obs := Observations{Pods: []PodStats{
		memoryUse(overhead, 150*mi),
		memoryUse(noRequestOverhead, 20*mi),
		memoryUse(podLevel, 400*mi),
		memoryUse(initPeak, 450*mi),
		memoryUse(critical, 10*mi),
		{Pod: newPod("no-stats", 0, nil, nil)},
	}}
	got := Rank(SignalMemoryAvailable, obs)
	want := []RankedPod{
		{Pod: obs.Pods[5].Pod, HasStats: false},
		{Pod: podLevel, HasStats: true, Usage: 400 * mi, Request: 300 * mi, ExceedsRequest: true, AboveRequest: 100 * mi},
		{Pod: noRequestOverhead, HasStats: true, Usage: 20 * mi, Request: 0, ExceedsRequest: true, AboveRequest: 20 * mi},
		{Pod: overhead, HasStats: true, Priority: 5, Usage: 150 * mi, Request: 110 * mi, ExceedsRequest: true, AboveRequest: 40 * mi},
		{Pod: critical, HasStats: true, Priority: SystemCriticalPriority, Usage: 10 * mi, ExceedsRequest: true, AboveRequest: 10 * mi, Critical: true},
		{Pod: initPeak, HasStats: true, Usage: 450 * mi, Request: 500 * mi, ExceedsRequest: false, AboveRequest: -50 * mi},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Rank(memory):")
		for i := range max(len(got), len(want)) {
			var g, w RankedPod
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			t.Errorf("  %d: got  %s %+v\n     want %s %+v", i, podName(g.Pod), g, podName(w.Pod), w)
		}
	}

	// Inodes: no request to exceed, but the ephemeral-storage request is
	// taken off the usage, as the kubelet does.
	inodes := Rank(SignalNodeFsInodesFree, Observations{Pods: []PodStats{inodeUse(overhead, 100, 200, 300)}})
	if len(inodes) != 1 {
		t.Fatalf("Rank(inodes) = %v", inodes)
	}
	if r := inodes[0]; r.Usage != 600 || r.Request != 0 || !r.ExceedsRequest || r.AboveRequest != 600-gi {
		t.Errorf("Rank(inodes) = %+v", r)
	}
	// A pod with pod-level resources has no container-level ephemeral-storage
	// request.
	disk := Rank(SignalNodeFsAvailable, Observations{Pods: []PodStats{diskUse(podLevel, 100, 0, 0)}})
	if r := disk[0]; r.Usage != 200 || r.Request != 0 || !r.ExceedsRequest {
		t.Errorf("Rank(disk) with pod-level resources = %+v", r)
	}
	if got := Rank("memory.used", obs); got != nil {
		t.Errorf("Rank of an unknown signal = %v, want nil", got)
	}
}

func TestIsCritical(t *testing.T) {
	pod := func(priority *int32, annotations map[string]string) *v1.Pod {
		p := &v1.Pod{}
		p.Spec.Priority = priority
		p.Annotations = annotations
		return p
	}
	tests := []struct {
		name string
		pod  *v1.Pod
		want bool
	}{
		{"plain pod", pod(nil, nil), false},
		{"high priority", pod(ptr(int32(1999999999)), nil), false},
		{"system-cluster-critical", pod(ptr(SystemCriticalPriority), nil), true},
		{"system-node-critical", pod(ptr(SystemCriticalPriority+1000), nil), true},
		{"static pod from a file", pod(nil, map[string]string{core.AnnotationConfigSource: "file"}), true},
		{"static pod from a URL", pod(nil, map[string]string{core.AnnotationConfigSource: "http"}), true},
		{"pod from the API", pod(nil, map[string]string{core.AnnotationConfigSource: "api"}), false},
		{"mirror pod", pod(nil, map[string]string{core.AnnotationConfigMirror: "abc"}), true},
		{"nil", nil, false},
	}
	for _, tc := range tests {
		if got := IsCritical(tc.pod); got != tc.want {
			t.Errorf("%s: IsCritical = %t, want %t", tc.name, got, tc.want)
		}
	}
}

func TestPodRequest(t *testing.T) {
	p := newPod("p", 0, []v1.Container{container("a", "memory=100Mi", ""), container("b", "memory=50Mi", "")}, nil)
	p.Spec.InitContainers = []v1.Container{
		{Name: "sidecar", RestartPolicy: ptr(v1.ContainerRestartPolicyAlways), Resources: v1.ResourceRequirements{Requests: resources("memory=10Mi")}},
		container("init", "memory=120Mi", ""),
	}
	// Sidecars run beside everything: max(10+120, 10+100+50) = 160Mi.
	if got, want := podRequest(p, v1.ResourceMemory), resource.MustParse("160Mi"); got.Cmp(want) != 0 {
		t.Errorf("podRequest = %s, want %s", &got, &want)
	}
}

// Sorting allocates nothing per comparison: ranking by PIDs, where no
// request is summed, takes the same few allocations for 10 pods as for
// 1,000 (it took some 25 per pod when each comparison copied its pods to
// the heap).
func TestRankAllocations(t *testing.T) {
	allocs := func(n int) float64 {
		obs := benchNode(n)
		return testing.AllocsPerRun(5, func() { Rank(SignalPIDAvailable, obs) })
	}
	small, large := allocs(10), allocs(1000)
	if large > small || large > 10 {
		t.Errorf("Rank by PIDs: %v allocations for 10 pods, %v for 1,000; want the same few", small, large)
	}
}
