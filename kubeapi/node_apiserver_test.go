package kubeapi_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/internal/testenv"
	"github.com/nodekit/nodekit/kubeapi"
	"github.com/nodekit/nodekit/runtimetest"
)

// nodeAgentFlags are the health and pressure a test sets for its node.
type nodeAgentFlags struct {
	plegWhy        atomic.Pointer[string]
	memoryPressure atomic.Bool
}

func (f *nodeAgentFlags) plegHealthy() (bool, error) {
	if w := f.plegWhy.Load(); w != nil && *w != "" {
		return false, errors.New(*w)
	}
	return true, nil
}

func (f *nodeAgentFlags) IsUnderMemoryPressure() bool { return f.memoryPressure.Load() }
func (f *nodeAgentFlags) IsUnderDiskPressure() bool   { return false }
func (f *nodeAgentFlags) IsUnderPIDPressure() bool    { return false }

// nodeClients starts a kube-apiserver and returns an admin client and
// one of the node n1, which the Node authorizer restricts as a kubelet.
func nodeClients(t *testing.T) (admin, node kubernetes.Interface) {
	t.Helper()
	api := testenv.StartAPIServer(t)
	admin, err := kubernetes.NewForConfig(api.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := api.RESTConfigAs("system:node:n1", "system:nodes")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Timeout = 5 * time.Second // the kubelet's heartbeat client has one
	node, err = kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return admin, node
}

func nodeCondition(n *v1.Node, t v1.NodeConditionType) v1.NodeCondition {
	for _, c := range n.Status.Conditions {
		if c.Type == t {
			return c
		}
	}
	return v1.NodeCondition{}
}

func machine(hugepages string) kubeapi.MachineInfoFunc {
	return func(context.Context) (kubeapi.MachineInfo, error) {
		c := v1.ResourceList{v1.ResourceCPU: resource.MustParse("4"), v1.ResourceMemory: resource.MustParse("8Gi"),
			v1.ResourceEphemeralStorage: resource.MustParse("100Gi")}
		if hugepages != "" {
			c["hugepages-2Mi"] = resource.MustParse(hugepages)
		}
		return kubeapi.MachineInfo{Capacity: c, MachineID: "m1", SystemUUID: "u1", BootID: "b1", KernelVersion: "6.1.0", OSImage: "Debian GNU/Linux 12 (bookworm)"}, nil
	}
}

// A node agent's Node on a real kube-apiserver, acting as the node n1
// (Node authorizer): registration creates it with its labels, taints,
// capacity, allocatable, addresses and conditions; the status is sent when
// it changes, within an update period, and otherwise only when the report
// period has passed; Ready follows the PLEG and the runtime's network,
// MemoryPressure the eviction manager, with the kubelet's reasons; the
// events reach the apiserver about the Node, from the kubelet on n1; the
// lease in kube-node-lease is held by n1, owned by its Node and renewed.
// After a restart the existing Node is reconciled.
func TestNodeStatusOnAPIServer(t *testing.T) {
	admin, kc := nodeClients(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	rt, err := runtimetest.New(runtimetest.Config{RuntimeName: "containerd", Version: "2.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	flags := &nodeAgentFlags{}
	recorder, err := kubeapi.NewEventRecorder(kubeapi.EventRecorderConfig{Client: kc, NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	recDone := make(chan error, 1)
	go func() { recDone <- recorder.Run(ctx) }()
	defer func() { cancel(); <-recDone }()

	const update, report = 300 * time.Millisecond, 4 * time.Second
	cfg := kubeapi.NodeStatusConfig{
		Client: kc, NodeName: "n1",
		Labels:  map[string]string{"node.kubernetes.io/pool": "a"},
		Taints:  []v1.Taint{{Key: "example.com/dedicated", Value: "db", Effect: v1.TaintEffectNoSchedule}},
		Machine: machine(""), Runtime: rt,
		Addresses: kubeapi.AddressesFunc(func(context.Context) ([]v1.NodeAddress, error) {
			return []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "10.0.0.5"}, {Type: v1.NodeHostName, Address: "n1"}}, nil
		}),
		HealthChecks:   []kubeapi.HealthCheck{{Name: "PLEG", Check: flags.plegHealthy}},
		Pressure:       flags,
		SystemReserved: v1.ResourceList{v1.ResourceCPU: resource.MustParse("500m")},
		EvictionHard:   map[string]string{"memory.available": "1Gi"},
		KubeletVersion: "v1.37.2", KubeletPort: 10250,
		UpdateFrequency: update, ReportFrequency: report,
		Recorder: recorder,
	}
	ns, err := kubeapi.NewNodeStatus(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Register(ctx); err != nil {
		t.Fatal(err)
	}
	getNode := func() *v1.Node {
		t.Helper()
		n, err := admin.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	node := getNode()
	if l := node.Labels; l[v1.LabelHostname] != "n1" || l[v1.LabelOSStable] == "" || l[v1.LabelArchStable] == "" || l["node.kubernetes.io/pool"] != "a" {
		t.Errorf("labels %v", l)
	}
	if !slices.ContainsFunc(node.Spec.Taints, func(tn v1.Taint) bool { return tn.Key == "example.com/dedicated" && tn.Value == "db" }) {
		t.Errorf("taints %v", node.Spec.Taints)
	}
	st := node.Status
	if cpu, mem := st.Allocatable[v1.ResourceCPU], st.Allocatable[v1.ResourceMemory]; cpu.String() != "3500m" || mem.String() != "7Gi" {
		t.Errorf("allocatable cpu %s memory %s", cpu.String(), mem.String())
	}
	if pods := st.Capacity[v1.ResourcePods]; pods.Value() != 110 {
		t.Errorf("pods %s", pods.String())
	}
	if len(st.Addresses) != 2 || st.Addresses[0].Address != "10.0.0.5" || st.NodeInfo.ContainerRuntimeVersion != "containerd://2.1.0" ||
		st.NodeInfo.KubeletVersion != "v1.37.2" || st.NodeInfo.BootID != "b1" || st.DaemonEndpoints.KubeletEndpoint.Port != 10250 {
		t.Errorf("addresses %v info %+v endpoints %+v", st.Addresses, st.NodeInfo, st.DaemonEndpoints)
	}
	var types []string
	for _, c := range st.Conditions {
		types = append(types, string(c.Type)+"="+string(c.Status))
	}
	if !slices.Equal(types, []string{"MemoryPressure=False", "DiskPressure=False", "PIDPressure=False", "Ready=True"}) {
		t.Errorf("conditions %v", types)
	}
	created := nodeCondition(node, v1.NodeReady).LastHeartbeatTime

	lease, err := kubeapi.NewNodeLease(kubeapi.NodeLeaseConfig{Client: kc, NodeName: "n1", RenewInterval: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	leaseDone, statusDone := make(chan error, 1), make(chan error, 1)
	runCtx, stopRun := context.WithCancel(ctx)
	go func() { leaseDone <- lease.Run(runCtx) }()
	go func() { statusDone <- ns.Run(runCtx) }()

	// The first update reports; then nothing is sent while nothing
	// changes, until the report period (± 50 %) has passed.
	eventually(t, "the first report", func() bool { return nodeCondition(getNode(), v1.NodeReady).LastHeartbeatTime.After(created.Time) })
	first := getNode()
	time.Sleep(4 * update)
	if again := getNode(); again.ResourceVersion != first.ResourceVersion {
		t.Fatalf("the node changed with nothing to report: %v", again.Status.Conditions)
	}
	eventually(t, "the next report", func() bool { return getNode().ResourceVersion != first.ResourceVersion })
	reported := getNode()
	for i, c := range reported.Status.Conditions {
		was := first.Status.Conditions[i]
		if !c.LastHeartbeatTime.After(was.LastHeartbeatTime.Time) || c.Status != was.Status || !c.LastTransitionTime.Equal(&was.LastTransitionTime) {
			t.Errorf("%s reported: %+v, was %+v", c.Type, c, was)
		}
	}

	// Changes arrive at the next update.
	changed := func(what string, cond v1.NodeConditionType, status v1.ConditionStatus, reason, message string) {
		t.Helper()
		start := time.Now()
		eventually(t, what, func() bool {
			c := nodeCondition(getNode(), cond)
			return c.Status == status && c.Reason == reason && (message == "" || c.Message == message)
		})
		if took := time.Since(start); took > 2*update+time.Second {
			t.Errorf("%s took %v to arrive, with updates every %v", what, took, update)
		}
	}
	plegWhy := "pleg was last seen active 3m10s ago; threshold is 3m0s"
	flags.plegWhy.Store(&plegWhy)
	changed("PLEG unhealthy", v1.NodeReady, v1.ConditionFalse, "KubeletNotReady", "PLEG is not healthy: pleg was last seen active 3m10s ago; threshold is 3m0s")
	flags.plegWhy.Store(new(""))
	changed("PLEG healthy", v1.NodeReady, v1.ConditionTrue, "KubeletReady", "kubelet is posting ready status")
	rt.SetCondition(runtimeapi.NetworkReady, false, "NetworkPluginNotReady", "Network plugin returns error: cni plugin not initialized")
	changed("network not ready", v1.NodeReady, v1.ConditionFalse, "KubeletNotReady",
		"container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized")
	rt.SetCondition(runtimeapi.NetworkReady, true, "", "")
	changed("network ready", v1.NodeReady, v1.ConditionTrue, "KubeletReady", "")
	flags.memoryPressure.Store(true)
	changed("memory pressure", v1.NodeMemoryPressure, v1.ConditionTrue, "KubeletHasInsufficientMemory", "kubelet has insufficient memory available")

	// The events, about the Node, from the kubelet on n1.
	uid := node.UID
	want := []string{"NodeHasSufficientMemory", "NodeHasNoDiskPressure", "NodeHasSufficientPID", "NodeNotReady", "NodeReady", "NodeHasInsufficientMemory"}
	var seen map[string]v1.Event
	eventually(t, "the node's events", func() bool {
		l, err := admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		seen = map[string]v1.Event{}
		for _, e := range l.Items {
			seen[e.Reason] = e
		}
		for _, r := range want {
			if _, ok := seen[r]; !ok {
				return false
			}
		}
		return true
	})
	for _, r := range want {
		e := seen[r]
		if o := e.InvolvedObject; o.Kind != "Node" || o.Name != "n1" || o.UID != uid || e.Source.Component != "kubelet" || e.Source.Host != "n1" ||
			e.Message != "Node n1 status is now: "+r {
			t.Errorf("event %s: involved %+v source %+v message %q", r, o, e.Source, e.Message)
		}
	}
	if e := seen["NodeNotReady"]; e.Count != 2 {
		t.Errorf("NodeNotReady counted %d times, want 2", e.Count)
	}

	// The lease.
	var first2 *coordinationv1.Lease
	eventually(t, "the lease", func() bool {
		l, err := admin.CoordinationV1().Leases(v1.NamespaceNodeLease).Get(ctx, "n1", metav1.GetOptions{})
		first2 = l
		return err == nil
	})
	own := first2.OwnerReferences
	if *first2.Spec.HolderIdentity != "n1" || *first2.Spec.LeaseDurationSeconds != 40 || len(own) != 1 || own[0].Kind != "Node" || own[0].UID != uid {
		t.Errorf("lease %+v owners %+v", first2.Spec, own)
	}
	eventually(t, "the lease renewed", func() bool {
		l, err := admin.CoordinationV1().Leases(v1.NamespaceNodeLease).Get(ctx, "n1", metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime.After(first2.Spec.RenewTime.Time)
	})

	// The agent restarts with another hostname and huge pages; meanwhile
	// the cluster's admin tainted and labelled the node: the existing Node
	// is reconciled, the admin's changes stay.
	stopRun()
	for _, ch := range []chan error{leaseDone, statusDone} {
		if err := <-ch; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	}
	node = getNode()
	node.Labels["team"] = "a"
	node.Spec.Taints = append(node.Spec.Taints, v1.Taint{Key: "example.com/maintenance", Effect: v1.TaintEffectNoExecute})
	if _, err := admin.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg.Hostname, cfg.Machine, cfg.Taints = "n1.example", machine("1Gi"), nil
	again, err := kubeapi.NewNodeStatus(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Register(ctx); err != nil {
		t.Fatal(err)
	}
	node = getNode()
	if node.UID != uid || node.Labels[v1.LabelHostname] != "n1.example" || node.Labels["team"] != "a" || len(node.Spec.Taints) < 2 {
		t.Errorf("reconciled node: uid %s labels %v taints %v", node.UID, node.Labels, node.Spec.Taints)
	}
	if hp := node.Status.Capacity["hugepages-2Mi"]; hp.String() != "1Gi" {
		t.Errorf("huge pages capacity %q", hp.String())
	}
	if again.NodeRef().UID != uid {
		t.Errorf("node ref %+v", again.NodeRef())
	}
}
