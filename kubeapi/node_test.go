package kubeapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/runtimetest"
)

// testPressure is a PressureReporter set by the test.
type testPressure struct{ memory, disk, pid atomic.Bool }

func (p *testPressure) IsUnderMemoryPressure() bool { return p.memory.Load() }
func (p *testPressure) IsUnderDiskPressure() bool   { return p.disk.Load() }
func (p *testPressure) IsUnderPIDPressure() bool    { return p.pid.Load() }

// testPLEG is a health check whose answer the test sets: "" is healthy.
type testPLEG struct{ why atomic.Pointer[string] }

func (p *testPLEG) check() (bool, error) {
	if w := p.why.Load(); w != nil && *w != "" {
		return false, errors.New(*w)
	}
	return true, nil
}

func (p *testPLEG) set(why string) { p.why.Store(&why) }

func testMachine(context.Context) (MachineInfo, error) {
	return MachineInfo{Capacity: rl("cpu", "4", "memory", "8Gi", "ephemeral-storage", "100Gi"),
		MachineID: "m1", SystemUUID: "u1", BootID: "b1", KernelVersion: "6.1.0", OSImage: "Debian GNU/Linux 12 (bookworm)"}, nil
}

// statusPatches counts the patches of the node's status the fake
// clientset received.
func statusPatches(cs *fake.Clientset) int {
	n := 0
	for _, a := range cs.Actions() {
		if a.GetVerb() == "patch" && a.GetResource().Resource == "nodes" && a.GetSubresource() == "status" {
			n++
		}
	}
	return n
}

func getNode(t *testing.T, cs *fake.Clientset) *v1.Node {
	t.Helper()
	n, err := cs.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func recorded(r *MemoryRecorder) string {
	var parts []string
	for _, e := range r.Events() {
		parts = append(parts, e.Reason)
	}
	return strings.Join(parts, " ")
}

// Registration and status updates on the fake clientset, stepping a fake
// clock: the node is created as configured; the status is sent when it
// changes and when the report period has passed, not otherwise; the
// conditions follow the sources with the kubelet's reasons, and their
// events are recorded against the Node.
func TestNodeStatusFake(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	clk := testingclock.NewFakeClock(t0)
	cs := fake.NewClientset()
	rt, err := runtimetest.New(runtimetest.Config{Clock: clk, RuntimeName: "containerd", Version: "2.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	pleg, press, rec := &testPLEG{}, &testPressure{}, &MemoryRecorder{}
	ns, err := NewNodeStatus(NodeStatusConfig{
		Client: cs, NodeName: "n1", Hostname: "host1",
		Labels:        map[string]string{"node.kubernetes.io/pool": "a", v1.LabelHostname: "custom"},
		Taints:        []v1.Taint{{Key: "example.com/dedicated", Value: "db", Effect: v1.TaintEffectNoSchedule}},
		Unschedulable: true, ControllerManagedAttachDetach: true,
		Machine: MachineInfoFunc(testMachine), Runtime: rt,
		Addresses: AddressesFunc(func(context.Context) ([]v1.NodeAddress, error) {
			return []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "10.0.0.5"}, {Type: v1.NodeHostName, Address: "host1"}}, nil
		}),
		HealthChecks:   []HealthCheck{{Name: "PLEG", Check: pleg.check}},
		Pressure:       press,
		Images:         rt,
		SystemReserved: rl("cpu", "500m"), KubeReserved: rl("memory", "512Mi"),
		EvictionHard:   map[string]string{"memory.available": "512Mi"},
		KubeletVersion: "v1.37.2", KubeletPort: 10250,
		Recorder: rec, Clock: clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.AddImage("registry.example/app:1", 100<<20); err != nil {
		t.Fatal(err)
	}
	if err := ns.Register(ctx); err != nil {
		t.Fatal(err)
	}
	node := getNode(t, cs)
	if l := node.Labels; l[v1.LabelHostname] != "custom" || l[v1.LabelOSStable] == "" || l[v1.LabelArchStable] == "" ||
		l["beta.kubernetes.io/os"] == "" || l["node.kubernetes.io/pool"] != "a" {
		t.Errorf("labels %v", l)
	}
	if !node.Spec.Unschedulable || len(node.Spec.Taints) != 1 || node.Annotations[annotationControllerManagedAttach] != "true" {
		t.Errorf("spec %+v annotations %v", node.Spec, node.Annotations)
	}
	st := node.Status
	if got := listString(st.Allocatable); got != "cpu=3500m ephemeral-storage=100Gi memory=7Gi pods=110" {
		t.Errorf("allocatable %s", got)
	}
	if got := conds(&st); got != "MemoryPressure=False/KubeletHasSufficientMemory DiskPressure=False/KubeletHasNoDiskPressure "+
		"PIDPressure=False/KubeletHasSufficientPID Ready=True/KubeletReady" {
		t.Errorf("conditions %s", got)
	}
	if st.NodeInfo.ContainerRuntimeVersion != "containerd://2.1.0" || len(st.Addresses) != 2 || len(st.Images) != 1 ||
		len(st.Images[0].Names) != 2 || st.Images[0].Names[1] != "registry.example/app:1" || st.Images[0].SizeBytes != 100<<20 {
		t.Errorf("runtime version %q addresses %v images %v", st.NodeInfo.ContainerRuntimeVersion, st.Addresses, st.Images)
	}
	if got := recorded(rec); got != "NodeNotSchedulable NodeHasSufficientMemory NodeHasNoDiskPressure NodeHasSufficientPID" {
		t.Errorf("events at registration: %s", got)
	}
	if ev := rec.Events()[0]; ev.Object.(*v1.ObjectReference).Kind != "Node" || ev.Object.(*v1.ObjectReference).Name != "n1" {
		t.Errorf("event about %+v", ev.Object)
	}
	actions := len(cs.Actions())
	if err := ns.Register(ctx); err != nil || len(cs.Actions()) != actions {
		t.Errorf("a second Register did something: %v, %v", err, cs.Actions()[actions:])
	}
	rec.Reset()

	// The first update reports (no report yet); the next ones only when
	// something changed, or the period has passed.
	update := func() {
		t.Helper()
		if err := ns.UpdateStatus(ctx); err != nil {
			t.Fatal(err)
		}
	}
	update()
	if n := statusPatches(cs); n != 1 {
		t.Fatalf("%d patches after the first update", n)
	}
	lastReport := clk.Now()
	for range 14 { // 140 s: less than half the report period
		clk.Step(10 * time.Second)
		update()
	}
	if n := statusPatches(cs); n != 1 {
		t.Fatalf("%d patches with nothing changed", n)
	}
	// The report comes within the period ± 50 %, with new heartbeats and
	// nothing else new.
	for clk.Since(lastReport) < 451*time.Second && statusPatches(cs) == 1 {
		clk.Step(10 * time.Second)
		update()
	}
	if n := statusPatches(cs); n != 2 {
		t.Fatalf("%d patches after %v", n, clk.Since(lastReport))
	}
	node = getNode(t, cs)
	ready := condition(&node.Status, v1.NodeReady)
	if !ready.LastHeartbeatTime.Time.Equal(clk.Now()) || !ready.LastTransitionTime.Time.Equal(t0) {
		t.Errorf("after a report: heartbeat %v transition %v (now %v)", ready.LastHeartbeatTime, ready.LastTransitionTime, clk.Now())
	}
	// Then exactly every period.
	lastReport = clk.Now()
	clk.Step(299 * time.Second)
	update()
	if n := statusPatches(cs); n != 2 {
		t.Fatalf("reported after %v", clk.Since(lastReport))
	}
	clk.Step(time.Second)
	update()
	if n := statusPatches(cs); n != 3 {
		t.Fatalf("not reported after the period: %d patches", n)
	}
	if len(rec.Events()) != 0 {
		t.Errorf("events without a change: %s", recorded(rec))
	}

	// Changes go at once.
	check := func(what string, cond v1.NodeConditionType, status v1.ConditionStatus, reason, message string) {
		t.Helper()
		before := statusPatches(cs)
		clk.Step(10 * time.Second)
		update()
		if statusPatches(cs) != before+1 {
			t.Fatalf("%s: not sent", what)
		}
		c := condition(&getNode(t, cs).Status, cond)
		if c.Status != status || c.Reason != reason || (message != "" && c.Message != message) || !c.LastTransitionTime.Time.Equal(clk.Now()) {
			t.Errorf("%s: %s %+v", what, cond, c)
		}
	}
	pleg.set("pleg was last seen active 3m10s ago; threshold is 3m0s")
	check("PLEG unhealthy", v1.NodeReady, v1.ConditionFalse, "KubeletNotReady", "PLEG is not healthy: pleg was last seen active 3m10s ago; threshold is 3m0s")
	pleg.set("")
	check("PLEG healthy", v1.NodeReady, v1.ConditionTrue, "KubeletReady", "kubelet is posting ready status")
	press.disk.Store(true)
	check("disk pressure", v1.NodeDiskPressure, v1.ConditionTrue, "KubeletHasDiskPressure", "kubelet has disk pressure")
	press.disk.Store(false)
	check("no disk pressure", v1.NodeDiskPressure, v1.ConditionFalse, "KubeletHasNoDiskPressure", "")
	rt.SetCondition(runtimeapi.NetworkReady, false, "NetworkPluginNotReady", "cni plugin not initialized")
	check("network not ready", v1.NodeReady, v1.ConditionFalse, "KubeletNotReady",
		"container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:cni plugin not initialized")
	rt.SetCondition(runtimeapi.NetworkReady, true, "", "")
	check("network ready", v1.NodeReady, v1.ConditionTrue, "KubeletReady", "")
	uid := getNode(t, cs).UID
	if got := recorded(rec); got != "NodeNotReady NodeReady NodeHasDiskPressure NodeHasNoDiskPressure NodeNotReady NodeReady" {
		t.Errorf("events: %s", got)
	}
	if ref := rec.Events()[0].Object.(*v1.ObjectReference); ref.UID != uid || ns.NodeRef().UID != uid {
		t.Errorf("events about %+v, want the node's UID %s", ref, uid)
	}

	// The runtime stops answering: the node is not ready once it has not
	// been seen ready for 30 s.
	if err := rt.InjectFault("Status", runtimetest.Fault{Err: fmt.Errorf("connection refused: %w", core.ErrUnavailable)}); err != nil {
		t.Fatal(err)
	}
	clk.Step(10 * time.Second)
	update()
	clk.Step(10 * time.Second)
	update()
	if c := condition(&getNode(t, cs).Status, v1.NodeReady); c.Status != v1.ConditionTrue {
		t.Errorf("not ready after 20 s without runtime status: %+v", c)
	}
	check("runtime down", v1.NodeReady, v1.ConditionFalse, "KubeletNotReady", "container runtime is down")
	rt.ClearFaults()
	check("runtime back", v1.NodeReady, v1.ConditionTrue, "KubeletReady", "")

	// Cordoned by someone: recorded with the next update.
	node = getNode(t, cs)
	node.Spec.Unschedulable = false
	if _, err := cs.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.Reset()
	update()
	if got := recorded(rec); got != "NodeSchedulable" {
		t.Errorf("events after uncordon: %q", got)
	}
}

// The configuration is checked.
func TestNodeStatusConfig(t *testing.T) {
	_, err := NewNodeStatus(NodeStatusConfig{EvictionHard: map[string]string{"memory.available": "plenty"}, MaxPods: -1,
		HealthChecks: []HealthCheck{{Name: "PLEG"}}})
	if !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("error %v", err)
	}
	for _, field := range []string{"Client", "NodeName", "Machine", "Runtime", "HealthChecks[0]", "MaxPods", "EvictionHard[memory.available]"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
}

// Register retries with back-off (100 ms, doubling) until the apiserver
// takes the node; it ends with its context.
func TestNodeStatusRegisterRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fake.NewClientset()
		var creates atomic.Int32
		cs.PrependReactor("create", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
			if creates.Add(1) <= 3 {
				return true, nil, apierrors.NewServiceUnavailable("etcd is away")
			}
			return false, nil, nil
		})
		rt, err := runtimetest.New(runtimetest.Config{})
		if err != nil {
			t.Fatal(err)
		}
		ns, err := NewNodeStatus(NodeStatusConfig{Client: cs, NodeName: "n1", Machine: MachineInfoFunc(testMachine), Runtime: rt})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := ns.Register(t.Context()); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != 700*time.Millisecond || creates.Load() != 4 {
			t.Errorf("registered after %v and %d attempts, want 700ms (0, 100, 300, 700 ms) and 4", took, creates.Load())
		}

		// Never taken: Register gives up when its context ends.
		cs2 := fake.NewClientset()
		cs2.PrependReactor("create", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewInternalError(errors.New("no"))
		})
		ns2, err := NewNodeStatus(NodeStatusConfig{Client: cs2, NodeName: "n1", Machine: MachineInfoFunc(testMachine), Runtime: rt})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if err := ns2.Register(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Register: %v", err)
		}
		if err := ns2.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Run: %v", err)
		}
	})
}

// A node that exists is reconciled, not created: its taints stay, the
// kubelet's labels follow the configuration.
func TestNodeStatusRegisterExistingFake(t *testing.T) {
	existing := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "uid-1", Labels: map[string]string{v1.LabelHostname: "old", "team": "a"}},
		Spec:       v1.NodeSpec{Taints: []v1.Taint{{Key: "theirs", Effect: v1.TaintEffectNoSchedule}}},
	}
	cs := fake.NewClientset(existing)
	rt, err := runtimetest.New(runtimetest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &MemoryRecorder{}
	ns, err := NewNodeStatus(NodeStatusConfig{Client: cs, NodeName: "n1", Hostname: "new", Machine: MachineInfoFunc(testMachine), Runtime: rt,
		Taints: []v1.Taint{{Key: "mine", Effect: v1.TaintEffectNoSchedule}}, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Register(context.Background()); err != nil {
		t.Fatal(err)
	}
	node := getNode(t, cs)
	if node.Labels[v1.LabelHostname] != "new" || node.Labels["team"] != "a" || len(node.Spec.Taints) != 1 || node.Spec.Taints[0].Key != "theirs" {
		t.Errorf("reconciled node: labels %v taints %v", node.Labels, node.Spec.Taints)
	}
	if listString(node.Status.Capacity) != "cpu=4 ephemeral-storage=100Gi memory=8Gi pods=110" {
		t.Errorf("capacity %s", listString(node.Status.Capacity))
	}
	if ns.NodeRef().UID != "uid-1" || len(rec.Events()) != 0 {
		t.Errorf("node ref %+v, events %v", ns.NodeRef(), rec.Events())
	}
	// The first update brings the rest of the status, with the events of
	// the conditions that are new.
	if err := ns.UpdateStatus(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := conds(&getNode(t, cs).Status); !strings.HasSuffix(got, "Ready=True/KubeletReady") {
		t.Errorf("conditions %s", got)
	}
	if got := recorded(rec); got != "NodeHasSufficientMemory NodeHasNoDiskPressure NodeHasSufficientPID" {
		t.Errorf("events %q", got)
	}
}

// Run updates every UpdateFrequency, sending only changes; it fails over
// to the next update when the apiserver refuses one.
func TestNodeStatusRunFake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fake.NewClientset()
		var refuse atomic.Bool
		cs.PrependReactor("patch", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if refuse.Load() {
				return true, nil, apierrors.NewTooManyRequests("busy", 1)
			}
			return false, nil, nil
		})
		rt, err := runtimetest.New(runtimetest.Config{})
		if err != nil {
			t.Fatal(err)
		}
		press := &testPressure{}
		ns, err := NewNodeStatus(NodeStatusConfig{Client: cs, NodeName: "n1", Machine: MachineInfoFunc(testMachine), Runtime: rt,
			Pressure: press, UpdateFrequency: 10 * time.Second, ReportFrequency: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- ns.Run(ctx) }()
		synctest.Wait()
		if n := statusPatches(cs); n != 1 {
			t.Fatalf("%d patches after the start", n)
		}
		time.Sleep(25 * time.Second)
		synctest.Wait()
		if n := statusPatches(cs); n != 1 {
			t.Fatalf("%d patches without changes", n)
		}
		// A change, refused: tried 5 times, then again at the next update.
		press.pid.Store(true)
		refuse.Store(true)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := statusPatches(cs); n != 6 {
			t.Fatalf("%d patches, want 1 + 5 refused", n)
		}
		refuse.Store(false)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if c := condition(&getNode(t, cs).Status, v1.NodePIDPressure); c.Status != v1.ConditionTrue || c.Reason != "KubeletHasInsufficientPID" {
			t.Errorf("PIDPressure %+v", c)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	})
}
