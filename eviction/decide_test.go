package eviction

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

func TestDecideHardMemoryThreshold(t *testing.T) {
	app := newPod("app", 0, []v1.Container{container("app", "memory=100Mi", "")}, nil)
	app.Generation = 3
	quiet := newPod("quiet", 0, []v1.Container{container("quiet", "memory=1Gi", "")}, nil)
	static := staticPod(newPod("etcd", 0, []v1.Container{container("etcd", "", "")}, nil))
	policy := mustPolicy(t, Config{EvictionHard: map[string]string{"memory.available": "100Mi"}})

	obs := memoryNode(t0, 4*gi, 50*mi, memoryUse(quiet, 500*mi), memoryUse(app, 300*mi), memoryUse(static, 2*gi))
	d := Decide(State{}, t0, obs, policy)

	if want := []v1.NodeConditionType{v1.NodeMemoryPressure}; !slices.Equal(d.Conditions, want) {
		t.Errorf("Conditions = %v, want %v", d.Conditions, want)
	}
	s := d.Starved
	if s == nil {
		t.Fatalf("nothing starved:\n%s", d)
	}
	if s.Threshold.String() != "memory.available<100Mi" || s.Resource != v1.ResourceMemory || s.Amount != 100*mi || s.Observed.Available != 50*mi {
		t.Errorf("Starved = %s on %s, amount %d, observed %v", s.Threshold, s.Resource, s.Amount, s.Observed)
	}
	if s.Event != (Event{Reason: "EvictionThresholdMet", Message: "Attempting to reclaim memory"}) {
		t.Errorf("Event = %+v", s.Event)
	}
	if len(s.NodeReclaim) != 0 {
		t.Errorf("NodeReclaim = %v, want none for memory", s.NodeReclaim)
	}
	// The static pod exceeds its (absent) request the most, but is passed
	// over.
	if got, want := names(s.Ranking), []string{"etcd", "app", "quiet"}; !slices.Equal(got, want) {
		t.Errorf("Ranking = %v, want %v", got, want)
	}
	v := s.Victim
	if v == nil {
		t.Fatalf("no victim:\n%s", d)
	}
	wantMsg := "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. Container app was using 300Mi, request is 100Mi, has larger consumption of memory. "
	if v.Pod != app || v.GracePeriodSeconds != 1 || v.Reason != "Evicted" || v.Message != wantMsg || v.Signal != SignalMemoryAvailable {
		t.Errorf("Victim = %s (grace %d, reason %q, signal %s)\nmessage %q\n   want %q", podName(v.Pod), v.GracePeriodSeconds, v.Reason, v.Signal, v.Message, wantMsg)
	}
	wantAnn := map[string]string{"offending_containers": "app", "offending_containers_usage": "300Mi", "starved_resource": "memory"}
	if !maps.Equal(v.Annotations, wantAnn) {
		t.Errorf("Annotations = %v, want %v", v.Annotations, wantAnn)
	}
	wantCond := v1.PodCondition{Type: v1.DisruptionTarget, Status: v1.ConditionTrue, Reason: "TerminationByKubelet", Message: wantMsg, ObservedGeneration: 3}
	if v.Condition == nil || !reflect.DeepEqual(*v.Condition, wantCond) {
		t.Errorf("Condition = %+v, want %+v", v.Condition, wantCond)
	}
}

func TestDecideCriticalPodsAreNotEvicted(t *testing.T) {
	policy := mustPolicy(t, Config{EvictionHard: map[string]string{"memory.available": "100Mi"}})
	static := staticPod(newPod("static", 0, []v1.Container{container("c", "", "")}, nil))
	mirror := newPod("mirror", 0, []v1.Container{container("c", "", "")}, nil)
	mirror.Annotations = map[string]string{v1.MirrorPodAnnotationKey: "hash"}
	critical := newPod("critical", SystemCriticalPriority, []v1.Container{container("c", "", "")}, nil)
	plain := newPod("plain", 1000, []v1.Container{container("c", "memory=1Gi", "")}, nil)

	d := Decide(State{}, t0, memoryNode(t0, 4*gi, 0, memoryUse(static, gi), memoryUse(mirror, gi), memoryUse(critical, gi)), policy)
	if d.Starved == nil || len(d.Starved.Ranking) != 3 {
		t.Fatalf("Starved = %+v", d.Starved)
	}
	for _, rp := range d.Starved.Ranking {
		if !rp.Critical {
			t.Errorf("%s not marked critical", podName(rp.Pod))
		}
	}
	if d.Starved.Victim != nil {
		t.Errorf("Victim = %s, want none: every pod is critical", d.Starved.Victim)
	}

	d = Decide(State{}, t0, memoryNode(t0, 4*gi, 0, memoryUse(static, gi), memoryUse(plain, 10*mi), memoryUse(critical, gi)), policy)
	if d.Starved == nil || d.Starved.Victim == nil || d.Starved.Victim.Pod != plain {
		t.Errorf("want the one non-critical pod evicted:\n%s", d)
	}
}

func TestDecideGracePeriods(t *testing.T) {
	tests := []struct {
		name     string
		hard     bool
		maxGrace int32
		podGrace *int64
		want     int64
	}{
		{"hard: immediate", true, 30, ptr(int64(600)), 1},
		{"soft: the pod's when shorter", false, 30, ptr(int64(10)), 10},
		{"soft: the maximum when the pod's is longer", false, 30, ptr(int64(60)), 30},
		{"soft: the maximum when the pod has none", false, 30, nil, 30},
		{"soft: the kubelet's default maximum, 0", false, 0, ptr(int64(30)), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{EvictionHard: map[string]string{}, EvictionMaxPodGracePeriod: tc.maxGrace}
			if tc.hard {
				cfg.EvictionHard = map[string]string{"memory.available": "1Gi"}
			} else {
				cfg.EvictionSoft = map[string]string{"memory.available": "1Gi"}
				cfg.EvictionSoftGracePeriod = map[string]string{"memory.available": "30s"}
			}
			policy := mustPolicy(t, cfg)
			pod := newPod("p", 0, []v1.Container{container("c", "", "")}, nil)
			pod.Spec.TerminationGracePeriodSeconds = tc.podGrace
			d := Decide(State{}, t0, memoryNode(t0, 4*gi, 0, memoryUse(pod, gi)), policy)
			later := t0.Add(30 * time.Second)
			d = Decide(d.State, later, memoryNode(later, 4*gi, 0, memoryUse(pod, gi)), policy)
			if d.Starved == nil || d.Starved.Victim == nil {
				t.Fatalf("no victim:\n%s", d)
			}
			if got := d.Starved.Victim.GracePeriodSeconds; got != tc.want {
				t.Errorf("GracePeriodSeconds = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestDecideSoftThresholdGracePeriod(t *testing.T) {
	policy := mustPolicy(t, Config{
		EvictionHard:            map[string]string{},
		EvictionSoft:            map[string]string{"memory.available": "1Gi"},
		EvictionSoftGracePeriod: map[string]string{"memory.available": "1m"},
	})
	pod := newPod("p", 0, []v1.Container{container("c", "", "")}, nil)
	var st State
	round := func(at time.Duration, available uint64) Decision {
		now := t0.Add(at)
		d := Decide(st, now, memoryNode(now, 4*gi, available, memoryUse(pod, gi)), policy)
		st = d.State
		return d
	}
	d := round(0, 500*mi)
	if len(d.Thresholds) != 1 || d.Thresholds[0].GracePeriodMet || !d.Thresholds[0].FirstMet.Equal(t0) || d.Starved != nil {
		t.Fatalf("round 1: want the soft threshold met, waiting:\n%s", d)
	}
	if !slices.Equal(d.Conditions, []v1.NodeConditionType{v1.NodeMemoryPressure}) {
		t.Errorf("round 1: the condition is reported before the grace period passes, got %v", d.Conditions)
	}
	if d = round(59*time.Second, 500*mi); d.Starved != nil || d.Thresholds[0].GracePeriodMet {
		t.Fatalf("round 2: acted before the grace period:\n%s", d)
	}
	if d = round(60*time.Second, 500*mi); d.Starved == nil || d.Starved.Victim == nil || !d.Thresholds[0].FirstMet.Equal(t0) {
		t.Fatalf("round 3: want an eviction once the grace period passed:\n%s", d)
	}
	// Recovered: the threshold is forgotten; met again, it waits anew.
	round(70*time.Second, 2*gi)
	d = round(80*time.Second, 500*mi)
	if d.Starved != nil || !d.Thresholds[0].FirstMet.Equal(t0.Add(80*time.Second)) {
		t.Fatalf("round 5: want a new grace period:\n%s", d)
	}
}

func TestDecidePressureTransitionPeriod(t *testing.T) {
	policy := mustPolicy(t, Config{
		EvictionHard:                     map[string]string{"memory.available": "1Gi", "pid.available": "100"},
		EvictionPressureTransitionPeriod: time.Minute,
		EnforceNodeAllocatable:           []string{},
	})
	mem, pid := v1.NodeMemoryPressure, v1.NodePIDPressure
	rounds := []struct {
		at        time.Duration
		memLow    bool
		pidLow    bool
		want      []v1.NodeConditionType
		wantState int // conditions remembered
	}{
		{0, false, false, nil, 0},
		{10 * time.Second, true, false, []v1.NodeConditionType{mem}, 1},
		{20 * time.Second, false, true, []v1.NodeConditionType{mem, pid}, 2},
		{69 * time.Second, false, false, []v1.NodeConditionType{mem, pid}, 2},
		{70 * time.Second, false, false, []v1.NodeConditionType{pid}, 2}, // a minute after memory was last low
		{79 * time.Second, false, false, []v1.NodeConditionType{pid}, 2},
		{80 * time.Second, false, false, nil, 2},
		{90 * time.Second, false, true, []v1.NodeConditionType{pid}, 2},
	}
	var st State
	for _, r := range rounds {
		now := t0.Add(r.at)
		obs := memoryNode(now, 4*gi, 3*gi)
		if r.memLow {
			obs.Memory.AvailableBytes = 100 * mi
		}
		if r.pidLow {
			obs.PIDs.NumProcesses = obs.PIDs.MaxPID - 10
		}
		d := Decide(st, now, obs, policy)
		st = d.State
		if !slices.Equal(d.Conditions, r.want) {
			t.Errorf("at %v: Conditions = %v, want %v", r.at, d.Conditions, r.want)
		}
		if len(st.conditions) != r.wantState {
			t.Errorf("at %v: %d conditions remembered, want %d", r.at, len(st.conditions), r.wantState)
		}
	}
}

func TestDecideMinimumReclaim(t *testing.T) {
	policy := mustPolicy(t, Config{
		EvictionHard:           map[string]string{"memory.available": "100Mi"},
		EvictionMinimumReclaim: map[string]string{"memory.available": "200Mi"},
		EnforceNodeAllocatable: []string{},
	})
	pod := newPod("p", 0, []v1.Container{container("c", "", "")}, nil)
	var st State
	round := func(at time.Duration, available uint64) Decision {
		now := t0.Add(at)
		d := Decide(st, now, memoryNode(now, 4*gi, available, memoryUse(pod, gi)), policy)
		st = d.State
		return d
	}
	if d := round(0, 150*mi); d.Starved != nil || len(d.Thresholds) != 0 {
		t.Fatalf("not met yet, but:\n%s", d)
	}
	if d := round(10*time.Second, 50*mi); d.Starved == nil || d.Thresholds[0].HeldByMinReclaim || d.Thresholds[0].Amount != 100*mi {
		t.Fatalf("want met and acted on:\n%s", d)
	}
	// Above the threshold, below threshold + minimum reclaim: still met.
	d := round(20*time.Second, 250*mi)
	if d.Starved == nil || len(d.Thresholds) != 1 || !d.Thresholds[0].HeldByMinReclaim || d.Thresholds[0].Amount != 300*mi {
		t.Fatalf("want held by the minimum reclaim:\n%s", d)
	}
	if !d.Thresholds[0].FirstMet.Equal(t0.Add(10 * time.Second)) {
		t.Errorf("FirstMet = %v, want the first time", d.Thresholds[0].FirstMet)
	}
	// The message tells the threshold, not the threshold plus reclaim.
	if !strings.Contains(d.Starved.Victim.Message, "Threshold quantity: 100Mi, available: 250Mi. ") {
		t.Errorf("message = %q", d.Starved.Victim.Message)
	}
	if d := round(30*time.Second, 300*mi); d.Starved != nil || len(d.Thresholds) != 0 {
		t.Fatalf("want reclaimed:\n%s", d)
	}
	// Cleared: the minimum reclaim no longer holds it.
	if d := round(40*time.Second, 250*mi); d.Starved != nil || len(d.Thresholds) != 0 {
		t.Fatalf("want nothing met:\n%s", d)
	}
}

func TestDecideStaleStats(t *testing.T) {
	policy := mustPolicy(t, Config{EvictionHard: map[string]string{"memory.available": "100Mi"}, EnforceNodeAllocatable: []string{}})
	pod := newPod("p", 0, []v1.Container{container("c", "", "")}, nil)
	obs := memoryNode(t0, 4*gi, 50*mi, memoryUse(pod, gi))
	d := Decide(State{}, t0, obs, policy)
	if d.Starved == nil {
		t.Fatalf("round 1: want eviction:\n%s", d)
	}
	// The same measurement again: no second eviction on it.
	d = Decide(d.State, t0.Add(10*time.Second), obs, policy)
	if d.Starved != nil || len(d.Thresholds) != 1 || !d.Thresholds[0].StaleStats {
		t.Fatalf("round 2: want the threshold met on stale stats, not acted on:\n%s", d)
	}
	if !slices.Equal(d.Conditions, []v1.NodeConditionType{v1.NodeMemoryPressure}) {
		t.Errorf("round 2: Conditions = %v", d.Conditions)
	}
	obs.Memory.Time = t0.Add(10 * time.Second)
	if d = Decide(d.State, t0.Add(20*time.Second), obs, policy); d.Starved == nil {
		t.Fatalf("round 3: fresh stats, want eviction:\n%s", d)
	}
}

func TestDecideThresholdOrder(t *testing.T) {
	policy := mustPolicy(t, Config{
		EvictionHard:            map[string]string{"memory.available": "1Gi", "nodefs.available": "50%", "pid.available": "100"},
		EvictionSoft:            map[string]string{"nodefs.available": "60%"},
		EvictionSoftGracePeriod: map[string]string{"nodefs.available": "0s"},
	})
	obs := memoryNode(t0, 4*gi, 100*mi)
	obs.NodeFs.AvailableBytes = 10 * gi
	obs.PIDs.NumProcesses = obs.PIDs.MaxPID
	d := Decide(State{}, t0, obs, policy)
	if d.Starved == nil || d.Starved.Threshold.Signal != SignalMemoryAvailable {
		t.Fatalf("want memory first:\n%s", d)
	}
	want := []v1.NodeConditionType{v1.NodeMemoryPressure, v1.NodeDiskPressure, v1.NodePIDPressure}
	if !slices.Equal(d.Conditions, want) {
		t.Errorf("Conditions = %v, want %v", d.Conditions, want)
	}
	obs.Memory.AvailableBytes, obs.AllocatableMemory.AvailableBytes = 3*gi, 3*gi
	d = Decide(State{}, t0, obs, policy)
	if d.Starved == nil || d.Starved.Threshold.String() != "nodefs.available<50%" {
		t.Fatalf("want the hard nodefs threshold next:\n%s", d)
	}
}

func TestDecideNodeReclaim(t *testing.T) {
	cr, im := ReclaimContainers, ReclaimImages
	both := []ReclaimAction{cr, im}
	tests := []struct {
		signal                Signal
		dedicatedImage, split bool
		want                  []ReclaimAction
	}{
		{SignalMemoryAvailable, false, false, nil},
		{SignalPIDAvailable, true, true, nil},
		// One filesystem: everything frees it.
		{SignalNodeFsAvailable, false, false, both},
		{SignalNodeFsInodesFree, false, false, both},
		{SignalImageFsAvailable, false, false, both},
		{SignalImageFsInodesFree, false, false, both},
		{SignalContainerFsAvailable, false, false, both},
		// Dedicated imagefs with the writable layers: nothing frees the nodefs.
		{SignalNodeFsAvailable, true, false, nil},
		{SignalNodeFsInodesFree, true, false, nil},
		{SignalImageFsAvailable, true, false, both},
		{SignalImageFsInodesFree, true, false, both},
		{SignalContainerFsInodesFree, true, false, both},
		// Split: images free the imagefs, containers the rest.
		{SignalImageFsAvailable, true, true, []ReclaimAction{im}},
		{SignalImageFsInodesFree, true, true, []ReclaimAction{im}},
		{SignalNodeFsAvailable, true, true, []ReclaimAction{cr}},
		{SignalContainerFsAvailable, true, true, []ReclaimAction{cr}},
		{SignalContainerFsInodesFree, true, true, []ReclaimAction{cr}},
	}
	for _, tc := range tests {
		if got := nodeReclaimFor(tc.signal, tc.dedicatedImage, tc.split); !slices.Equal(got, tc.want) {
			t.Errorf("nodeReclaimFor(%s, imagefs=%t, split=%t) = %v, want %v", tc.signal, tc.dedicatedImage, tc.split, got, tc.want)
		}
	}

	// In a decision: disk pressure on a dedicated imagefs.
	policy := mustPolicy(t, Config{})
	obs := Observations{
		NodeFs:           FsStats{Time: t0, CapacityBytes: 100 * gi, AvailableBytes: 50 * gi, Inodes: 1000, InodesFree: 1000},
		ImageFs:          FsStats{Time: t0, CapacityBytes: 100 * gi, AvailableBytes: 5 * gi, Inodes: 1000, InodesFree: 1000},
		DedicatedImageFs: true,
		Pods:             []PodStats{diskUse(newPod("p", 0, []v1.Container{container("c", "", "")}, nil), gi, mi, 0)},
	}
	d := Decide(State{}, t0, obs, policy)
	s := d.Starved
	if s == nil || s.Threshold.String() != "imagefs.available<15%" || !slices.Equal(s.NodeReclaim, both) || s.Resource != v1.ResourceEphemeralStorage {
		t.Fatalf("want imagefs reclaimed by garbage collection first:\n%s", d)
	}
	if !slices.Equal(d.Conditions, []v1.NodeConditionType{v1.NodeDiskPressure}) {
		t.Errorf("Conditions = %v", d.Conditions)
	}
	if s.Event.Message != "Attempting to reclaim ephemeral-storage" {
		t.Errorf("Event = %+v", s.Event)
	}
	// After the garbage collection, the driver measures again.
	obs.ImageFs.AvailableBytes = 20 * gi
	if !policy.Relieved(obs) {
		t.Error("not relieved after reclaim")
	}
}

func TestEvictionMessage(t *testing.T) {
	memThreshold := Threshold{Signal: SignalMemoryAvailable, Value: ThresholdValue{Quantity: *resourceQuantity("100Mi")}}
	memObs := SignalObservation{Signal: SignalMemoryAvailable, Available: 50 * mi, Capacity: 4 * gi}
	const memHead = "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. "

	sidecar := func(name, requests string) v1.Container {
		c := container(name, requests, "")
		c.RestartPolicy = ptr(v1.ContainerRestartPolicyAlways)
		return c
	}
	podWith := func(init, regular []v1.Container) *v1.Pod {
		p := newPod("pod-eviction-message", 1, regular, nil)
		p.Spec.InitContainers = init
		return p
	}
	use := func(pod *v1.Pod, usage ...any) PodStats {
		ps := PodStats{Pod: pod, Time: t0, MemoryWorkingSetBytes: 600 * mi}
		for i := 0; i < len(usage); i += 2 {
			ps.Containers = append(ps.Containers, ContainerStats{Name: usage[i].(string), MemoryWorkingSetBytes: uint64(usage[i+1].(int))})
		}
		return ps
	}
	podLevel := podWith(nil, []v1.Container{container("regular1", "", ""), container("regular2", "", "")})
	podLevel.Spec.Resources = &v1.ResourceRequirements{Requests: resources("memory=250Mi"), Limits: resources("memory=1000Mi")}
	ephemeral := podWith(nil, []v1.Container{container("regular1", "memory=200Mi", "")})
	ephemeral.Spec.EphemeralContainers = []v1.EphemeralContainer{{EphemeralContainerCommon: v1.EphemeralContainerCommon{Name: "debug"}}}

	tests := []struct {
		name    string
		stats   PodStats
		noStats bool
		want    string
		ann     map[string]string
	}{
		{
			name: "no container exceeds its request",
			stats: use(podWith([]v1.Container{container("init1", "memory=100Mi", ""), sidecar("sidecar1", "memory=200Mi")},
				[]v1.Container{container("regular1", "memory=200Mi", "")}), "sidecar1", 150*mi, "regular1", 100*mi),
			want: memHead,
			ann:  map[string]string{"offending_containers": "", "offending_containers_usage": "", "starved_resource": "memory"},
		},
		{
			name: "a running init container exceeds its request",
			stats: use(podWith([]v1.Container{container("init1", "memory=100Mi", ""), sidecar("sidecar1", "memory=200Mi")},
				[]v1.Container{container("regular1", "memory=200Mi", "")}), "init1", 150*mi),
			want: memHead + "Container init1 was using 150Mi, request is 100Mi, has larger consumption of memory. ",
			ann:  map[string]string{"offending_containers": "init1", "offending_containers_usage": "150Mi", "starved_resource": "memory"},
		},
		{
			name: "sidecars and regular containers, in the order of the stats",
			stats: use(podWith([]v1.Container{sidecar("sidecar1", ""), sidecar("sidecar2", "memory=300Mi")},
				[]v1.Container{container("regular1", "", ""), container("regular2", "memory=300Mi", "")}),
				"regular1", 200*mi, "sidecar1", 250*mi, "sidecar2", 250*mi, "regular2", 400*mi),
			want: memHead + "Container regular1 was using 200Mi, request is 0, has larger consumption of memory. " +
				"Container sidecar1 was using 250Mi, request is 0, has larger consumption of memory. " +
				"Container regular2 was using 400Mi, request is 300Mi, has larger consumption of memory. ",
			ann: map[string]string{"offending_containers": "regular1,sidecar1,regular2", "offending_containers_usage": "200Mi,250Mi,400Mi", "starved_resource": "memory"},
		},
		{
			name:  "ephemeral containers are left out",
			stats: use(ephemeral, "regular1", 150*mi, "debug", 250*mi),
			want:  memHead,
			ann:   map[string]string{"offending_containers": "", "offending_containers_usage": "", "starved_resource": "memory"},
		},
		{
			name:  "pod-level requests",
			stats: use(podLevel, "regular1", 250*mi, "regular2", 350*mi),
			want: memHead + "Pod pod-eviction-message was using 600Mi, request is 250Mi, has larger consumption of memory. " +
				"Container regular1 was using 250Mi, request is 0, has larger consumption of memory. " +
				"Container regular2 was using 350Mi, request is 0, has larger consumption of memory. ",
			ann: map[string]string{"offending_pod": "pod-eviction-message", "offending_pod_usage": "600Mi",
				"offending_containers": "regular1,regular2", "offending_containers_usage": "250Mi,350Mi", "starved_resource": "memory"},
		},
		{
			name:    "no stats: the node's part only",
			stats:   PodStats{Pod: podWith(nil, []v1.Container{container("regular1", "", "")})},
			noStats: true,
			want:    memHead,
			ann:     map[string]string{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg, ann := evictionMessage(v1.ResourceMemory, memThreshold, memObs, tc.stats.Pod, tc.stats, !tc.noStats)
			if msg != tc.want {
				t.Errorf("message:\n got %q\nwant %q", msg, tc.want)
			}
			if !maps.Equal(ann, tc.ann) {
				t.Errorf("annotations = %v, want %v", ann, tc.ann)
			}
		})
	}
}

func TestEvictionMessageOtherResources(t *testing.T) {
	pct := func(signal Signal, p float32) Threshold {
		return Threshold{Signal: signal, Value: ThresholdValue{Percentage: p}}
	}
	pod := newPod("p", 0, []v1.Container{container("writer", "ephemeral-storage=1Gi", ""), container("quiet", "ephemeral-storage=1Gi", "")}, nil)
	stats := PodStats{Pod: pod, Time: t0, ProcessCount: 500, Containers: []ContainerStats{
		{Name: "writer", RootfsBytes: gi, LogsBytes: 512 * mi, RootfsInodes: 1000, LogsInodes: 10},
		{Name: "quiet", RootfsBytes: 512 * mi, LogsBytes: 512 * mi},
	}}
	tests := []struct {
		name string
		res  v1.ResourceName
		t    Threshold
		o    SignalObservation
		want string
	}{
		{
			name: "ephemeral storage: writable layer and logs against the request",
			res:  v1.ResourceEphemeralStorage,
			t:    pct(SignalNodeFsAvailable, 0.1),
			o:    SignalObservation{Signal: SignalNodeFsAvailable, Available: 5 * gi, Capacity: 100 * gi},
			// 10% in single precision is not quite 10Gi, and the kubelet
			// says so.
			want: "The node was low on resource: ephemeral-storage. Threshold quantity: 10737418400, available: 5Gi. " +
				"Container writer was using 1536Mi, request is 1Gi, has larger consumption of ephemeral-storage. ",
		},
		{
			name: "inodes: no container part; the percentage in binary units",
			res:  ResourceInodes,
			t:    pct(SignalNodeFsInodesFree, 0.05),
			o:    SignalObservation{Signal: SignalNodeFsInodesFree, Available: 40000, Capacity: 1000000},
			want: "The node was low on resource: inodes. Threshold quantity: 50000, available: 40k. ",
		},
		{
			name: "pids",
			res:  ResourcePIDs,
			t:    Threshold{Signal: SignalPIDAvailable, Value: ThresholdValue{Quantity: *resourceQuantity("1k")}},
			o:    SignalObservation{Signal: SignalPIDAvailable, Available: 900, Capacity: 32768},
			want: "The node was low on resource: pids. Threshold quantity: 1k, available: 900. ",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg, ann := evictionMessage(tc.res, tc.t, tc.o, pod, stats, true)
			if msg != tc.want {
				t.Errorf("message:\n got %q\nwant %q", msg, tc.want)
			}
			if ann["starved_resource"] != string(tc.res) {
				t.Errorf("annotations = %v", ann)
			}
		})
	}
}

func TestDecideLocalStorage(t *testing.T) {
	sidecar := container("sidecar", "", "ephemeral-storage=100Mi")
	sidecar.RestartPolicy = ptr(v1.ContainerRestartPolicyAlways)
	initC := container("init", "", "ephemeral-storage=100Mi")
	tests := []struct {
		name          string
		pod           *v1.Pod
		stats         func(*v1.Pod) PodStats
		dedicated     bool
		wantSignal    Signal
		wantMsg       string
		wantProtected bool
	}{
		{
			name:       "emptyDir over its size limit",
			pod:        newPod("p", 0, []v1.Container{container("c", "", "")}, []v1.Volume{emptyDir("cache", "100Mi")}),
			stats:      func(p *v1.Pod) PodStats { return diskUse(p, 0, 0, 101*mi) },
			wantSignal: SignalEmptyDirFsLimit,
			wantMsg:    `Usage of EmptyDir volume "cache" exceeds the limit "100Mi". `,
		},
		{
			name:  "emptyDir at its size limit",
			pod:   newPod("p", 0, []v1.Container{container("c", "", "")}, []v1.Volume{emptyDir("cache", "100Mi")}),
			stats: func(p *v1.Pod) PodStats { return diskUse(p, 0, 0, 100*mi) },
		},
		{
			name: "emptyDir with a zero size limit has none",
			pod:  newPod("p", 0, []v1.Container{container("c", "", "")}, []v1.Volume{emptyDir("cache", "0")}),
			stats: func(p *v1.Pod) PodStats {
				return PodStats{Pod: p, Time: t0, Volumes: []VolumeStats{{Name: "cache", UsedBytes: gi}}}
			},
		},
		{
			name: "memory-backed emptyDir over its size limit",
			pod: newPod("p", 0, []v1.Container{container("c", "", "")}, []v1.Volume{{Name: "shm", VolumeSource: v1.VolumeSource{
				EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory, SizeLimit: resourceQuantity("64Mi")}}}}),
			stats: func(p *v1.Pod) PodStats {
				return PodStats{Pod: p, Time: t0, Volumes: []VolumeStats{{Name: "shm", UsedBytes: 65 * mi}}}
			},
			wantSignal: SignalEmptyDirFsLimit,
			wantMsg:    `Usage of EmptyDir volume "shm" exceeds the limit "64Mi". `,
		},
		{
			name: "emptyDir not measured",
			pod:  newPod("p", 0, []v1.Container{container("c", "", "")}, []v1.Volume{emptyDir("cache", "1Mi")}),
			stats: func(p *v1.Pod) PodStats {
				return PodStats{Pod: p, Time: t0}
			},
		},
		{
			name:       "pod over the sum of its containers' limits",
			pod:        newPod("p", 0, []v1.Container{container("a", "", "ephemeral-storage=1Gi"), container("b", "", "ephemeral-storage=1Gi")}, nil),
			stats:      func(p *v1.Pod) PodStats { return PodStats{Pod: p, Time: t0, EphemeralStorageBytes: 2*gi + 1} },
			wantSignal: SignalEphemeralPodFsLimit,
			wantMsg:    "Pod ephemeral local storage usage exceeds the total limit of containers 2Gi. ",
		},
		{
			name:       "container over its limit, writable layer and logs on one filesystem",
			pod:        newPod("p", 0, []v1.Container{container("a", "", "ephemeral-storage=100Mi"), container("b", "", "ephemeral-storage=1Gi")}, nil),
			stats:      func(p *v1.Pod) PodStats { return diskUse(p, 60*mi, 41*mi, 0) },
			wantSignal: SignalEphemeralContainerFsLimit,
			wantMsg:    `Container a exceeded its local ephemeral storage limit "100Mi". `,
		},
		{
			name:      "container: with a dedicated imagefs only logs count",
			pod:       newPod("p", 0, []v1.Container{container("a", "", "ephemeral-storage=100Mi"), container("b", "", "ephemeral-storage=1Gi")}, nil),
			stats:     func(p *v1.Pod) PodStats { return diskUse(p, 60*mi, 41*mi, 0) },
			dedicated: true,
		},
		{
			name: "sidecar over its limit",
			pod: func() *v1.Pod {
				p := newPod("p", 0, []v1.Container{container("c", "", "")}, nil)
				p.Spec.InitContainers = []v1.Container{sidecar}
				return p
			}(),
			stats: func(p *v1.Pod) PodStats {
				return PodStats{Pod: p, Time: t0, Containers: []ContainerStats{{Name: "sidecar", LogsBytes: 101 * mi}}}
			},
			wantSignal: SignalEphemeralContainerFsLimit,
			wantMsg:    `Container sidecar exceeded its local ephemeral storage limit "100Mi". `,
		},
		{
			name: "init container limits are not checked",
			pod: func() *v1.Pod {
				p := newPod("p", 0, []v1.Container{container("c", "", "")}, nil)
				p.Spec.InitContainers = []v1.Container{initC}
				return p
			}(),
			stats: func(p *v1.Pod) PodStats {
				return PodStats{Pod: p, Time: t0, Containers: []ContainerStats{{Name: "init", LogsBytes: 101 * mi}}}
			},
		},
		{
			name:       "the emptyDir limit is checked before the pod's",
			pod:        newPod("p", 0, []v1.Container{container("a", "", "ephemeral-storage=100Mi")}, []v1.Volume{emptyDir("cache", "10Mi")}),
			stats:      func(p *v1.Pod) PodStats { return diskUse(p, 200*mi, 0, 20*mi) },
			wantSignal: SignalEmptyDirFsLimit,
			wantMsg:    `Usage of EmptyDir volume "cache" exceeds the limit "10Mi". `,
		},
		{
			name:  "no stats, no eviction",
			pod:   newPod("p", 0, []v1.Container{container("a", "", "ephemeral-storage=1Mi")}, nil),
			stats: func(p *v1.Pod) PodStats { return PodStats{Pod: p, EphemeralStorageBytes: gi} },
		},
		{
			name:          "a static pod is protected",
			pod:           staticPod(newPod("p", 0, []v1.Container{container("a", "", "ephemeral-storage=1Mi")}, nil)),
			stats:         func(p *v1.Pod) PodStats { return PodStats{Pod: p, Time: t0, EphemeralStorageBytes: gi} },
			wantSignal:    SignalEphemeralPodFsLimit,
			wantMsg:       "Pod ephemeral local storage usage exceeds the total limit of containers 1Mi. ",
			wantProtected: true,
		},
	}
	policy := mustPolicy(t, Config{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obs := memoryNode(t0, 4*gi, 3*gi, tc.stats(tc.pod))
			obs.DedicatedImageFs = tc.dedicated
			d := Decide(State{}, t0, obs, policy)
			got, other := d.LocalStorage, d.Protected
			if tc.wantProtected {
				got, other = other, got
			}
			if len(other) != 0 {
				t.Errorf("unexpected evictions %v", other)
			}
			if tc.wantSignal == "" {
				if len(got) != 0 {
					t.Errorf("LocalStorage = %v, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("evictions = %v, want one", got)
			}
			e := got[0]
			if e.Pod != tc.pod || e.Signal != tc.wantSignal || e.Message != tc.wantMsg || e.GracePeriodSeconds != 1 || e.Reason != "Evicted" ||
				e.Annotations != nil || e.Condition != nil {
				t.Errorf("eviction = %+v\nwant signal %s, message %q", e, tc.wantSignal, tc.wantMsg)
			}
		})
	}
}

func TestDecideLocalStorageComesFirst(t *testing.T) {
	over1 := newPod("over1", 0, []v1.Container{container("c", "", "ephemeral-storage=1Mi")}, nil)
	fine := newPod("fine", 0, []v1.Container{container("c", "", "")}, nil)
	over2 := newPod("over2", 0, []v1.Container{container("c", "", "")}, []v1.Volume{emptyDir("v", "1Mi")})
	obs := memoryNode(t0, 4*gi, 10*mi, diskUse(over1, 0, 2*mi, 0), memoryUse(fine, gi), diskUse(over2, 0, 0, 2*mi))

	d := Decide(State{}, t0, obs, mustPolicy(t, Config{}))
	var got []string
	for _, e := range d.LocalStorage {
		got = append(got, e.Pod.Name)
	}
	if !slices.Equal(got, []string{"over1", "over2"}) {
		t.Errorf("LocalStorage = %v, want every pod over a limit", got)
	}
	if d.Starved != nil {
		t.Errorf("Starved = %+v, want none in a round with local storage evictions", d.Starved)
	}
	if !slices.Equal(d.Conditions, []v1.NodeConditionType{v1.NodeMemoryPressure}) {
		t.Errorf("Conditions = %v, want the memory pressure reported all the same", d.Conditions)
	}

	// Without local storage capacity isolation, the memory threshold acts.
	d = Decide(State{}, t0, obs, mustPolicy(t, Config{LocalStorageCapacityIsolation: ptr(false)}))
	if len(d.LocalStorage) != 0 || d.Starved == nil || d.Starved.Victim == nil || d.Starved.Victim.Pod != fine {
		t.Errorf("want the memory hog evicted:\n%s", d)
	}
	// And with no threshold and no isolation, nothing at all.
	d = Decide(State{}, t0, obs, mustPolicy(t, Config{EvictionHard: map[string]string{}, LocalStorageCapacityIsolation: ptr(false)}))
	if d.Signals != nil || d.Conditions != nil || d.LocalStorage != nil || d.Starved != nil {
		t.Errorf("want nothing decided:\n%s", d)
	}
}

func TestDecideIsPure(t *testing.T) {
	policy := mustPolicy(t, Config{
		EvictionHard:            map[string]string{"memory.available": "1Gi"},
		EvictionSoft:            map[string]string{"nodefs.available": "50%"},
		EvictionSoftGracePeriod: map[string]string{"nodefs.available": "1m"},
	})
	pod := newPod("p", 0, []v1.Container{container("c", "", "")}, nil)
	obs := memoryNode(t0, 4*gi, 100*mi, memoryUse(pod, gi))
	obs.NodeFs.AvailableBytes = 10 * gi
	first := Decide(State{}, t0, obs, policy)

	later := t0.Add(time.Minute)
	obs2 := memoryNode(later, 4*gi, 100*mi, memoryUse(pod, gi))
	obs2.NodeFs.AvailableBytes = 10 * gi
	a := Decide(first.State, later, obs2, policy)
	b := Decide(first.State, later, obs2, policy)
	if a.String() != b.String() || !reflect.DeepEqual(a.State, b.State) {
		t.Errorf("two calls with the same input differ:\n%s\n%s", a, b)
	}
	again := Decide(State{}, t0, obs, policy)
	if !reflect.DeepEqual(first.State, again.State) {
		t.Error("the first state changed under a later Decide")
	}
	if d := Decide(first.State, later, obs2, nil); !reflect.DeepEqual(d.State, first.State) || d.Starved != nil {
		t.Errorf("a nil policy decided something:\n%s", d)
	}
}

// TestDecideSequence runs the eviction rounds of a node under memory
// pressure, as a driver would, and checks each decision.
func TestDecideSequence(t *testing.T) {
	policy := mustPolicy(t, Config{
		EvictionHard:              map[string]string{"memory.available": "100Mi"},
		EvictionSoft:              map[string]string{"memory.available": "500Mi"},
		EvictionSoftGracePeriod:   map[string]string{"memory.available": "1m"},
		EvictionMaxPodGracePeriod: 30,
	})
	bestEffort := newPod("best-effort", 0, []v1.Container{container("be", "", "")}, nil)
	burstable := newPod("burstable", 0, []v1.Container{container("web", "memory=200Mi", "memory=1Gi")}, nil)
	burstable.Spec.TerminationGracePeriodSeconds = ptr(int64(10))
	guaranteed := newPod("guaranteed", 0, []v1.Container{container("db", "memory=1Gi", "memory=1Gi")}, nil)
	usage := map[*v1.Pod]uint64{bestEffort: 300 * mi, burstable: 250 * mi, guaranteed: 500 * mi}
	running := []*v1.Pod{bestEffort, burstable, guaranteed}

	rounds := []struct {
		at         time.Duration
		available  uint64
		conditions bool
		starved    string // threshold acted on, or ""
		victim     string // pod evicted, or ""
		grace      int64
	}{
		{at: 0, available: gi},
		{at: 10 * time.Second, available: 400 * mi, conditions: true}, // soft met: pressure at once
		{at: 40 * time.Second, available: 400 * mi, conditions: true}, // grace period running
		{at: 70 * time.Second, available: 400 * mi, conditions: true, starved: "memory.available<500Mi for 1m0s", victim: "best-effort", grace: 30},
		{at: 80 * time.Second, available: 700 * mi, conditions: true},                                                                 // relieved; condition held
		{at: 6*time.Minute + 9*time.Second, available: 700 * mi, conditions: true},                                                    // within 5m of the last pressure
		{at: 6*time.Minute + 10*time.Second, available: 700 * mi},                                                                     // transition period over
		{at: 7 * time.Minute, available: 50 * mi, conditions: true, starved: "memory.available<100Mi", victim: "burstable", grace: 1}, // hard: at once
		{at: 7*time.Minute + 10*time.Second, available: 300 * mi, conditions: true},                                                   // the soft threshold, met since 7m, waits out its grace period
		{at: 8*time.Minute + 10*time.Second, available: 300 * mi, conditions: true, starved: "memory.available<500Mi for 1m0s", victim: "guaranteed", grace: 30},
		{at: 8*time.Minute + 20*time.Second, available: 800 * mi, conditions: true},
		{at: 13*time.Minute + 20*time.Second, available: 800 * mi},
	}
	var st State
	for _, r := range rounds {
		now := t0.Add(r.at)
		var pods []PodStats
		for _, p := range running {
			pods = append(pods, memoryUse(p, usage[p]))
		}
		d := Decide(st, now, memoryNode(now, 4*gi, r.available, pods...), policy)
		st = d.State

		if got := len(d.Conditions) > 0; got != r.conditions {
			t.Errorf("at %v: Conditions = %v, want pressure %t", r.at, d.Conditions, r.conditions)
		}
		var starved, victim string
		var grace int64
		if d.Starved != nil {
			starved = d.Starved.Threshold.String()
			if v := d.Starved.Victim; v != nil {
				victim, grace = v.Pod.Name, v.GracePeriodSeconds
			}
		}
		if starved != r.starved || victim != r.victim || grace != r.grace {
			t.Errorf("at %v: acted on %q, evicting %q (grace %d); want %q, %q (grace %d)\n%s",
				r.at, starved, victim, grace, r.starved, r.victim, r.grace, d)
		}
		if victim != "" {
			// The driver evicts it; the next round no longer sees it.
			running = slices.DeleteFunc(running, func(p *v1.Pod) bool { return p.Name == victim })
		}
	}
}

func TestDecisionString(t *testing.T) {
	policy := mustPolicy(t, Config{EvictionHard: map[string]string{"memory.available": "100Mi"}, EnforceNodeAllocatable: []string{}})
	app := newPod("app", 0, []v1.Container{container("app", "memory=100Mi", "")}, nil)
	d := Decide(State{}, t0, memoryNode(t0, 4*gi, 50*mi, memoryUse(app, 300*mi), PodStats{Pod: staticPod(newPod("static", 0, nil, nil))}), policy)
	want := `eviction round at 2030-01-02T03:04:05Z: [MemoryPressure]
  signal memory.available: 50Mi of 4Gi
  signal allocatableMemory.available: 50Mi of 4Gi
  signal nodefs.available: 90Gi of 100Gi
  signal nodefs.inodesFree: 900k of 1M
  signal imagefs.available: 90Gi of 100Gi
  signal imagefs.inodesFree: 900k of 1M
  signal containerfs.available: 90Gi of 100Gi
  signal containerfs.inodesFree: 900k of 1M
  signal pid.available: 3996 of 4096
  threshold memory.available<100Mi: available 50Mi, met, acting
  reclaim memory for memory.available<100Mi
  rank 1 default/static priority=0 no-stats critical
  rank 2 default/app priority=0 usage=314572800 request=104857600 exceeds=true above=209715200
  evict default/app (memory.available, grace 1s): The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. Container app was using 300Mi, request is 100Mi, has larger consumption of memory.
`
	if got := d.String(); got != want {
		t.Errorf("String():\n%s\nwant:\n%s", got, want)
	}
}
