package kubeapi

import (
	"errors"
	"fmt"
	goruntime "runtime"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func rl(pairs ...string) v1.ResourceList {
	out := v1.ResourceList{}
	for i := 0; i < len(pairs); i += 2 {
		out[v1.ResourceName(pairs[i])] = resource.MustParse(pairs[i+1])
	}
	return out
}

// listString writes a resource list in order of name, for comparisons.
func listString(l v1.ResourceList) string {
	var parts []string
	for name, q := range l {
		parts = append(parts, fmt.Sprintf("%s=%s", name, q.String()))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func mustHard(t *testing.T, m map[string]string) []hardEvictionThreshold {
	t.Helper()
	h, err := parseEvictionHard(m)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Allocatable is capacity less reservations and what hard eviction keeps
// free, never negative, huge pages out of memory, as the kubelet's.
func TestAllocatable(t *testing.T) {
	for _, tc := range []struct {
		name                string
		capacity, old, resv v1.ResourceList
		hard                map[string]string
		want                string
	}{{
		name:     "nothing reserved",
		capacity: rl("cpu", "4", "memory", "8Gi", "pods", "110"),
		want:     "cpu=4 memory=8Gi pods=110",
	}, {
		name:     "system and kube reserved, hard eviction by quantity and percentage",
		capacity: rl("cpu", "4", "memory", "8Gi", "ephemeral-storage", "100Gi", "pods", "110"),
		resv:     rl("cpu", "500m", "memory", "1Gi"),
		hard:     map[string]string{"memory.available": "100Mi", "nodefs.available": "50%", "imagefs.available": "15%"},
		want:     "cpu=3500m ephemeral-storage=50Gi memory=7068Mi pods=110",
	}, {
		name:     "never below zero",
		capacity: rl("cpu", "1", "memory", "1Gi"),
		resv:     rl("cpu", "2"),
		hard:     map[string]string{"memory.available": "2Gi"},
		want:     "cpu=0 memory=0",
	}, {
		name:     "huge pages are not allocatable as memory",
		capacity: rl("memory", "8Gi", "hugepages-2Mi", "1Gi"),
		want:     "hugepages-2Mi=1Gi memory=7Gi",
	}, {
		name:     "an extended resource gone from capacity leaves allocatable; other entries stay",
		capacity: rl("cpu", "4"),
		old:      rl("example.com/gpu", "2", "cpu", "3", "kubernetes.io/legacy", "1"),
		want:     "cpu=4 kubernetes.io/legacy=1",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := allocatable(tc.capacity, tc.old, tc.resv, mustHard(t, tc.hard))
			if s := listString(got); s != tc.want {
				t.Errorf("allocatable %s, want %s", s, tc.want)
			}
		})
	}
}

func TestParseEvictionHard(t *testing.T) {
	for _, bad := range []map[string]string{
		{"memory.available": "lots"},
		{"memory.available": "-1Mi"},
		{"nodefs.available": "120%"},
		{"nodefs.available": "x%"},
	} {
		if _, err := parseEvictionHard(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	// Signals that do not reserve allocatable are not this package's
	// business.
	if h, err := parseEvictionHard(map[string]string{"imagefs.available": "whatever", "pid.available": "10%"}); err != nil || len(h) != 0 {
		t.Errorf("other signals: %v %v", h, err)
	}
}

func healthyReading() *nodeReading {
	return &nodeReading{
		nodeName: "n1", hostname: "n1", maxPods: 110,
		machine: MachineInfo{Capacity: rl("cpu", "4", "memory", "8Gi", "ephemeral-storage", "100Gi"),
			MachineID: "m", SystemUUID: "u", BootID: "b1", KernelVersion: "6.1.0", OSImage: "Debian"},
		addresses:      []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "10.0.0.5"}, {Type: v1.NodeHostName, Address: "n1"}},
		runtimeVersion: "containerd://2.1.0", kubeletVersion: "v1.37.2", kubeletPort: 10250,
	}
}

// conds writes conditions as "Type=Status/Reason" in their order.
func conds(st *v1.NodeStatus) string {
	var parts []string
	for _, c := range st.Conditions {
		parts = append(parts, fmt.Sprintf("%s=%s/%s", c.Type, c.Status, c.Reason))
	}
	return strings.Join(parts, " ")
}

func eventReasons(evs []nodeEvent) string {
	var parts []string
	for _, e := range evs {
		parts = append(parts, e.eventtype+":"+e.reason)
	}
	return strings.Join(parts, " ")
}

func condition(st *v1.NodeStatus, t v1.NodeConditionType) v1.NodeCondition {
	if i := conditionIndex(st, t); i >= 0 {
		return st.Conditions[i]
	}
	return v1.NodeCondition{}
}

// A status applied step by step, as the kubelet's setters apply it.
func TestSetNodeStatus(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	node.Status.Conditions = []v1.NodeCondition{{Type: "NetworkUnavailable", Status: v1.ConditionFalse, Reason: "RouteCreated"}}

	// A new node: the pressure conditions appear (their events too), then
	// Ready, last; the others' condition stays.
	evs := setNodeStatus(node, healthyReading(), t0)
	st := &node.Status
	if got, want := conds(st), "NetworkUnavailable=False/RouteCreated MemoryPressure=False/KubeletHasSufficientMemory "+
		"DiskPressure=False/KubeletHasNoDiskPressure PIDPressure=False/KubeletHasSufficientPID Ready=True/KubeletReady"; got != want {
		t.Fatalf("conditions\n got %s\nwant %s", got, want)
	}
	if got, want := eventReasons(evs), "Normal:NodeHasSufficientMemory Normal:NodeHasNoDiskPressure Normal:NodeHasSufficientPID"; got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	if evs[0].message != "Node n1 status is now: NodeHasSufficientMemory" {
		t.Errorf("event message %q", evs[0].message)
	}
	if got, want := listString(st.Capacity), "cpu=4 ephemeral-storage=100Gi memory=8Gi pods=110"; got != want {
		t.Errorf("capacity %s, want %s", got, want)
	}
	info := st.NodeInfo
	if info.BootID != "b1" || info.MachineID != "m" || info.KernelVersion != "6.1.0" || info.OSImage != "Debian" ||
		info.ContainerRuntimeVersion != "containerd://2.1.0" || info.KubeletVersion != "v1.37.2" ||
		info.OperatingSystem != goruntime.GOOS || info.Architecture != goruntime.GOARCH {
		t.Errorf("node info %+v", info)
	}
	if st.DaemonEndpoints.KubeletEndpoint.Port != 10250 || len(st.Addresses) != 2 {
		t.Errorf("endpoints %+v addresses %+v", st.DaemonEndpoints, st.Addresses)
	}
	for _, c := range st.Conditions[1:] {
		if !c.LastHeartbeatTime.Time.Equal(t0) || !c.LastTransitionTime.Time.Equal(t0) {
			t.Errorf("%s: heartbeat %v transition %v, want both %v", c.Type, c.LastHeartbeatTime, c.LastTransitionTime, t0)
		}
	}

	// Nothing changed: new heartbeats, same transitions, no events.
	t1 := t0.Add(10 * time.Second)
	before := node.Status.DeepCopy()
	if evs := setNodeStatus(node, healthyReading(), t1); len(evs) != 0 {
		t.Errorf("events without a change: %s", eventReasons(evs))
	}
	if nodeStatusChanged(before, &node.Status) {
		t.Error("a status whose heartbeats alone moved counts as changed")
	}
	if r := condition(st, v1.NodeReady); !r.LastHeartbeatTime.Time.Equal(t1) || !r.LastTransitionTime.Time.Equal(t0) {
		t.Errorf("Ready heartbeat %v transition %v", r.LastHeartbeatTime, r.LastTransitionTime)
	}

	// The PLEG turns unhealthy and memory runs short.
	t2 := t1.Add(10 * time.Second)
	r := healthyReading()
	r.notReady = []error{errors.New("PLEG is not healthy: pleg was last seen active 3m5s ago; threshold is 3m0s")}
	r.underPressure[0] = true
	evs = setNodeStatus(node, r, t2)
	if !nodeStatusChanged(before, &node.Status) {
		t.Error("a change does not count")
	}
	if got, want := eventReasons(evs), "Normal:NodeHasInsufficientMemory Normal:NodeNotReady"; got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	ready := condition(st, v1.NodeReady)
	if ready.Status != v1.ConditionFalse || ready.Reason != "KubeletNotReady" ||
		ready.Message != "PLEG is not healthy: pleg was last seen active 3m5s ago; threshold is 3m0s" || !ready.LastTransitionTime.Time.Equal(t2) {
		t.Errorf("Ready %+v", ready)
	}
	mem := condition(st, v1.NodeMemoryPressure)
	if mem.Status != v1.ConditionTrue || mem.Reason != "KubeletHasInsufficientMemory" || mem.Message != "kubelet has insufficient memory available" ||
		!mem.LastTransitionTime.Time.Equal(t2) {
		t.Errorf("MemoryPressure %+v", mem)
	}

	// Several reasons, and capacity the machine cannot tell: all in one
	// message, as the kubelet writes them.
	r = healthyReading()
	r.machineErr = errors.New("no cadvisor")
	r.machine = MachineInfo{}
	r.notReady = []error{errors.New("container runtime is down"), errors.New("container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:cni plugin not initialized")}
	delete(node.Status.Capacity, v1.ResourceEphemeralStorage)
	evs = setNodeStatus(node, r, t2.Add(time.Second))
	ready = condition(st, v1.NodeReady)
	want := "[container runtime is down, container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:cni plugin not initialized, " +
		"missing node capacity for resources: ephemeral-storage]"
	if ready.Message != want || !ready.LastTransitionTime.Time.Equal(t2) {
		t.Errorf("Ready message\n got %q\nwant %q (transition %v)", ready.Message, want, ready.LastTransitionTime)
	}
	if got := eventReasons(evs); got != "Normal:NodeHasSufficientMemory" {
		t.Errorf("events %q", got)
	}
	if got := listString(st.Capacity); got != "cpu=0 memory=0 pods=110" {
		t.Errorf("capacity without machine info: %s", got)
	}
	if st.NodeInfo.BootID != "b1" {
		t.Errorf("node info lost without machine info: %+v", st.NodeInfo)
	}

	// Ready again, after a reboot.
	r = healthyReading()
	r.machine.BootID = "b2"
	evs = setNodeStatus(node, r, t2.Add(2*time.Second))
	if got, want := eventReasons(evs), "Warning:Rebooted Normal:NodeReady"; got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	if evs[0].message != "Node n1 has been rebooted, boot id: b2" {
		t.Errorf("reboot message %q", evs[0].message)
	}
}

// Registration of a node that exists reconciles what the kubelet
// reconciles and nothing else.
func TestReconcileNode(t *testing.T) {
	initial := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1",
			Labels:      map[string]string{v1.LabelHostname: "n1-new", v1.LabelOSStable: "linux", "example.com/role": "db"},
			Annotations: map[string]string{annotationControllerManagedAttach: "true"}},
		Spec: v1.NodeSpec{Taints: []v1.Taint{{Key: "mine", Effect: v1.TaintEffectNoSchedule}}},
		Status: v1.NodeStatus{
			Capacity:    rl("cpu", "4", "memory", "8Gi", "hugepages-2Mi", "1Gi"),
			Allocatable: rl("cpu", "4", "memory", "7Gi", "hugepages-2Mi", "1Gi"),
		},
	}
	existing := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{v1.LabelHostname: "n1", "team": "a"}},
		Spec:       v1.NodeSpec{Taints: []v1.Taint{{Key: "theirs", Effect: v1.TaintEffectNoExecute}}},
		Status: v1.NodeStatus{
			Capacity:    rl("cpu", "2", "hugepages-1Gi", "2Gi"),
			Allocatable: rl("cpu", "2", "hugepages-1Gi", "2Gi"),
		},
	}
	if !reconcileNode(initial, existing) {
		t.Fatal("nothing to reconcile?")
	}
	if l := existing.Labels; l[v1.LabelHostname] != "n1-new" || l[v1.LabelOSStable] != "linux" || l["team"] != "a" || l["example.com/role"] != "" {
		t.Errorf("labels %v: the kubelet's reconciled, others kept, the configured ones only at creation", l)
	}
	if existing.Annotations[annotationControllerManagedAttach] != "true" {
		t.Errorf("annotations %v", existing.Annotations)
	}
	if len(existing.Spec.Taints) != 1 || existing.Spec.Taints[0].Key != "theirs" {
		t.Errorf("taints %v: an existing node keeps its own", existing.Spec.Taints)
	}
	if got := listString(existing.Status.Capacity); got != "cpu=2 hugepages-2Mi=1Gi" {
		t.Errorf("capacity %s: the huge page sizes of now, the rest left to the status updates", got)
	}
	if got := listString(existing.Status.Allocatable); got != "cpu=2 hugepages-2Mi=1Gi" {
		t.Errorf("allocatable %s", got)
	}
	if reconcileNode(initial, existing) {
		t.Error("reconciled twice")
	}
	// Attach/detach by the node now: the annotation goes.
	delete(initial.Annotations, annotationControllerManagedAttach)
	if !reconcileNode(initial, existing) || len(existing.Annotations) != 0 {
		t.Errorf("annotation kept: %v", existing.Annotations)
	}
	// An existing node without capacity gets the initial one.
	bare := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	if !reconcileNode(initial, bare) || listString(bare.Status.Capacity) != listString(initial.Status.Capacity) {
		t.Errorf("bare node's capacity %s", listString(bare.Status.Capacity))
	}
}
