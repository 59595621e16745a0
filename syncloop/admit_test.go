package syncloop

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/core"
)

// fitNode has 2 CPUs, 4 GiB, 10 GiB of ephemeral storage, room for 3
// pods, 2 example.com/gpu and 8 MiB of 2 MiB huge pages.
func fitNode() *v1.Node {
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", Labels: map[string]string{
			v1.LabelOSStable: "linux", v1.LabelHostname: "node-1", "zone": "a",
		}},
		Status: v1.NodeStatus{Allocatable: v1.ResourceList{
			v1.ResourceCPU:              resource.MustParse("2"),
			v1.ResourceMemory:           resource.MustParse("4Gi"),
			v1.ResourceEphemeralStorage: resource.MustParse("10Gi"),
			v1.ResourcePods:             resource.MustParse("3"),
			"example.com/gpu":           resource.MustParse("2"),
			"hugepages-2Mi":             resource.MustParse("8Mi"),
		}},
	}
}

// rl builds a resource list from name=quantity pairs.
func rl(kv ...string) v1.ResourceList {
	l := v1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[v1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

// fitPod is a pod with one container requesting reqs.
func fitPod(name string, reqs v1.ResourceList) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: v1.PodSpec{Containers: []v1.Container{{
			Name: "app", Image: "app", Resources: v1.ResourceRequirements{Requests: reqs},
		}}},
	}
}

func withPod(p *v1.Pod, f func(p *v1.Pod)) *v1.Pod {
	f(p)
	return p
}

func portPod(name string, ports ...v1.ContainerPort) *v1.Pod {
	return withPod(fitPod(name, nil), func(p *v1.Pod) { p.Spec.Containers[0].Ports = ports })
}

var always = v1.ContainerRestartPolicyAlways

func TestNodeFit(t *testing.T) {
	const (
		affinityMsg = "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"
		portsMsg    = "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports"
		taintMsg    = "Predicate TaintToleration failed: node(s) had taints that the pod didn't tolerate"
	)
	tests := []struct {
		name    string
		node    func(n *v1.Node) // changes fitNode
		pod     *v1.Pod
		others  []*v1.Pod
		reason  string // "": admitted
		message string
	}{
		{name: "fits", pod: fitPod("p", rl("cpu", "500m", "memory", "1Gi")),
			others: []*v1.Pod{fitPod("o", rl("cpu", "1500m", "memory", "3Gi"))}},
		{name: "no requests", pod: fitPod("p", nil)},
		{name: "cpu", pod: fitPod("p", rl("cpu", "500m")), others: []*v1.Pod{fitPod("o", rl("cpu", "1600m"))},
			reason: "OutOfcpu", message: "Node didn't have enough resource: cpu, requested: 500, used: 1600, capacity: 2000"},
		{name: "memory", pod: fitPod("p", rl("memory", "5Gi")),
			reason: "OutOfmemory", message: "Node didn't have enough resource: memory, requested: 5368709120, used: 0, capacity: 4294967296"},
		{name: "ephemeral storage", pod: fitPod("p", rl("ephemeral-storage", "6Gi")), others: []*v1.Pod{fitPod("o", rl("ephemeral-storage", "5Gi"))},
			reason: "OutOfephemeral-storage", message: "Node didn't have enough resource: ephemeral-storage, requested: 6442450944, used: 5368709120, capacity: 10737418240"},
		{name: "pods", pod: fitPod("p", nil), others: []*v1.Pod{fitPod("a", nil), fitPod("b", nil), fitPod("c", nil)},
			reason: "OutOfpods", message: "Node didn't have enough resource: pods, requested: 1, used: 3, capacity: 3"},
		{name: "no pods allocatable", node: func(n *v1.Node) { delete(n.Status.Allocatable, v1.ResourcePods) }, pod: fitPod("p", nil),
			reason: "OutOfpods", message: "Node didn't have enough resource: pods, requested: 1, used: 0, capacity: 0"},
		{name: "pods before cpu", pod: fitPod("p", rl("cpu", "3")), others: []*v1.Pod{fitPod("a", nil), fitPod("b", nil), fitPod("c", nil)},
			reason: "OutOfpods", message: "Node didn't have enough resource: pods, requested: 1, used: 3, capacity: 3"},
		{name: "the pod itself among the others", pod: fitPod("p", rl("cpu", "2")), others: []*v1.Pod{fitPod("p", rl("cpu", "2"))}},
		{name: "extended resource", pod: fitPod("p", rl("example.com/gpu", "2")), others: []*v1.Pod{fitPod("o", rl("example.com/gpu", "1"))},
			reason: "OutOfexample.com/gpu", message: "Node didn't have enough resource: example.com/gpu, requested: 2, used: 1, capacity: 2"},
		{name: "extended resources in name order", pod: fitPod("p", rl("example.com/gpu", "3", "example.com/fpga", "1", "acme.io/nic", "1")),
			node: func(n *v1.Node) {
				n.Status.Allocatable["example.com/fpga"] = resource.MustParse("0")
				n.Status.Allocatable["acme.io/nic"] = resource.MustParse("0")
			},
			reason: "OutOfacme.io/nic", message: "Node didn't have enough resource: acme.io/nic, requested: 1, used: 0, capacity: 0"},
		{name: "hugepages", pod: fitPod("p", rl("hugepages-2Mi", "10Mi", "memory", "64Mi")),
			reason: "OutOfhugepages-2Mi", message: "Node didn't have enough resource: hugepages-2Mi, requested: 10485760, used: 0, capacity: 8388608"},
		{name: "extended resource the node does not list", pod: fitPod("p", rl("example.com/fpga", "1"))},
		{name: "extended resource provided by DRA", pod: withPod(fitPod("p", rl("example.com/gpu", "5")), func(p *v1.Pod) {
			p.Status.ExtendedResourceClaimStatus = &v1.PodExtendedResourceClaimStatus{ResourceClaimName: "c",
				RequestMappings: []v1.ContainerExtendedResourceRequest{{ContainerName: "app", ResourceName: "example.com/gpu", RequestName: "r"}}}
		})},
		{name: "DRA mapping of another container", pod: withPod(fitPod("p", rl("example.com/gpu", "5")), func(p *v1.Pod) {
			p.Status.ExtendedResourceClaimStatus = &v1.PodExtendedResourceClaimStatus{ResourceClaimName: "c",
				RequestMappings: []v1.ContainerExtendedResourceRequest{{ContainerName: "other", ResourceName: "example.com/gpu", RequestName: "r"}}}
		}), reason: "OutOfexample.com/gpu", message: "Node didn't have enough resource: example.com/gpu, requested: 5, used: 0, capacity: 2"},
		{name: "init containers count at their peak", pod: withPod(fitPod("p", rl("cpu", "500m")), func(p *v1.Pod) {
			p.Spec.InitContainers = []v1.Container{{Name: "init", Resources: v1.ResourceRequirements{Requests: rl("cpu", "1500m")}}}
		}), others: []*v1.Pod{fitPod("o", rl("cpu", "600m"))},
			reason: "OutOfcpu", message: "Node didn't have enough resource: cpu, requested: 1500, used: 600, capacity: 2000"},
		{name: "sidecars count all along", pod: withPod(fitPod("p", rl("cpu", "1500m")), func(p *v1.Pod) {
			p.Spec.InitContainers = []v1.Container{{Name: "proxy", RestartPolicy: &always, Resources: v1.ResourceRequirements{Requests: rl("cpu", "300m")}}}
		}), others: []*v1.Pod{fitPod("o", rl("cpu", "300m"))},
			reason: "OutOfcpu", message: "Node didn't have enough resource: cpu, requested: 1800, used: 300, capacity: 2000"},
		{name: "overhead", pod: withPod(fitPod("p", rl("cpu", "1500m")), func(p *v1.Pod) { p.Spec.Overhead = rl("cpu", "250m") }),
			others: []*v1.Pod{fitPod("o", rl("cpu", "300m"))},
			reason: "OutOfcpu", message: "Node didn't have enough resource: cpu, requested: 1750, used: 300, capacity: 2000"},
		{name: "pod-level requests", pod: withPod(fitPod("p", rl("cpu", "100m")), func(p *v1.Pod) {
			p.Spec.Resources = &v1.ResourceRequirements{Requests: rl("cpu", "1")}
		}), others: []*v1.Pod{fitPod("o", rl("cpu", "1500m"))},
			reason: "OutOfcpu", message: "Node didn't have enough resource: cpu, requested: 1000, used: 1500, capacity: 2000"},
		{name: "other pods at their allocated resources", pod: fitPod("p", rl("cpu", "1")), others: []*v1.Pod{withPod(fitPod("o", rl("cpu", "500m")), func(p *v1.Pod) {
			p.Status.ContainerStatuses = []v1.ContainerStatus{{Name: "app", AllocatedResources: rl("cpu", "1500m")}}
		})}, reason: "OutOfcpu", message: "Node didn't have enough resource: cpu, requested: 1000, used: 1500, capacity: 2000"},
		{name: "other pods' overhead", pod: fitPod("p", rl("memory", "1Gi")), others: []*v1.Pod{withPod(fitPod("o", rl("memory", "3Gi")), func(p *v1.Pod) {
			p.Spec.Overhead = rl("memory", "512Mi")
		})}, reason: "OutOfmemory", message: "Node didn't have enough resource: memory, requested: 1073741824, used: 3758096384, capacity: 4294967296"},

		{name: "node selector", pod: withPod(fitPod("p", nil), func(p *v1.Pod) { p.Spec.NodeSelector = map[string]string{"zone": "b"} }),
			reason: "NodeAffinity", message: affinityMsg},
		{name: "node selector matches", pod: withPod(fitPod("p", nil), func(p *v1.Pod) { p.Spec.NodeSelector = map[string]string{"zone": "a"} })},
		{name: "required node affinity", pod: withPod(fitPod("p", nil), func(p *v1.Pod) {
			p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
				NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{{Key: "zone", Operator: v1.NodeSelectorOpNotIn, Values: []string{"a"}}}}},
			}}}
		}), reason: "NodeAffinity", message: affinityMsg},
		{name: "required node affinity on a field", pod: withPod(fitPod("p", nil), func(p *v1.Pod) {
			p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
				NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchFields: []v1.NodeSelectorRequirement{{Key: "metadata.name", Operator: v1.NodeSelectorOpIn, Values: []string{"node-1"}}}}},
			}}}
		})},
		{name: "preferred node affinity is not checked", pod: withPod(fitPod("p", nil), func(p *v1.Pod) {
			p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []v1.PreferredSchedulingTerm{{
				Weight: 1, Preference: v1.NodeSelectorTerm{MatchExpressions: []v1.NodeSelectorRequirement{{Key: "zone", Operator: v1.NodeSelectorOpIn, Values: []string{"b"}}}},
			}}}}
		})},
		{name: "resources before affinity", pod: withPod(fitPod("p", rl("cpu", "3")), func(p *v1.Pod) { p.Spec.NodeSelector = map[string]string{"zone": "b"} }),
			reason: "OutOfcpu", message: "Node didn't have enough resource: cpu, requested: 3000, used: 0, capacity: 2000"},
		{name: "node name", pod: withPod(fitPod("p", nil), func(p *v1.Pod) { p.Spec.NodeName = "node-2" }),
			reason: "NodeName", message: "Predicate NodeName failed: node(s) didn't match the requested node name"},
		{name: "node name matches", pod: withPod(fitPod("p", nil), func(p *v1.Pod) { p.Spec.NodeName = "node-1" })},

		{name: "host port taken on all addresses", pod: portPod("p", v1.ContainerPort{ContainerPort: 80, HostPort: 80, HostIP: "10.0.0.1"}),
			others: []*v1.Pod{portPod("o", v1.ContainerPort{ContainerPort: 80, HostPort: 80})},
			reason: "NodePorts", message: portsMsg},
		{name: "host port on all addresses taken on one", pod: portPod("p", v1.ContainerPort{ContainerPort: 80, HostPort: 8080}),
			others: []*v1.Pod{portPod("o", v1.ContainerPort{ContainerPort: 80, HostPort: 8080, HostIP: "10.0.0.2", Protocol: v1.ProtocolTCP})},
			reason: "NodePorts", message: portsMsg},
		{name: "host port on other addresses", pod: portPod("p", v1.ContainerPort{ContainerPort: 80, HostPort: 8080, HostIP: "10.0.0.1"}),
			others: []*v1.Pod{portPod("o", v1.ContainerPort{ContainerPort: 80, HostPort: 8080, HostIP: "10.0.0.2"})}},
		{name: "host port with other protocol", pod: portPod("p", v1.ContainerPort{ContainerPort: 53, HostPort: 53, Protocol: v1.ProtocolUDP}),
			others: []*v1.Pod{portPod("o", v1.ContainerPort{ContainerPort: 53, HostPort: 53})}},
		{name: "container ports without host port", pod: portPod("p", v1.ContainerPort{ContainerPort: 80}),
			others: []*v1.Pod{portPod("o", v1.ContainerPort{ContainerPort: 80})}},
		{name: "host port of a sidecar", pod: portPod("p", v1.ContainerPort{ContainerPort: 80, HostPort: 9000}),
			others: []*v1.Pod{withPod(fitPod("o", nil), func(p *v1.Pod) {
				p.Spec.InitContainers = []v1.Container{{Name: "proxy", RestartPolicy: &always, Ports: []v1.ContainerPort{{ContainerPort: 9000, HostPort: 9000}}}}
			})},
			reason: "NodePorts", message: portsMsg},
		{name: "host port of an init container", pod: portPod("p", v1.ContainerPort{ContainerPort: 80, HostPort: 9000}),
			others: []*v1.Pod{withPod(fitPod("o", nil), func(p *v1.Pod) {
				p.Spec.InitContainers = []v1.Container{{Name: "setup", Ports: []v1.ContainerPort{{ContainerPort: 9000, HostPort: 9000}}}}
			})}},

		{name: "untolerated NoExecute taint", node: func(n *v1.Node) {
			n.Spec.Taints = []v1.Taint{{Key: "dedicated", Value: "infra", Effect: v1.TaintEffectNoExecute}}
		}, pod: fitPod("p", nil), reason: "TaintToleration", message: taintMsg},
		{name: "tolerated NoExecute taint", node: func(n *v1.Node) {
			n.Spec.Taints = []v1.Taint{{Key: "dedicated", Value: "infra", Effect: v1.TaintEffectNoExecute}}
		}, pod: withPod(fitPod("p", nil), func(p *v1.Pod) {
			p.Spec.Tolerations = []v1.Toleration{{Key: "dedicated", Operator: v1.TolerationOpEqual, Value: "infra", Effect: v1.TaintEffectNoExecute}}
		})},
		{name: "NoSchedule taints are not checked", node: func(n *v1.Node) {
			n.Spec.Taints = []v1.Taint{{Key: "dedicated", Effect: v1.TaintEffectNoSchedule}, {Key: "spot", Effect: v1.TaintEffectPreferNoSchedule}}
		}, pod: fitPod("p", nil)},
		{name: "static pods are not checked for taints", node: func(n *v1.Node) {
			n.Spec.Taints = []v1.Taint{{Key: "dedicated", Effect: v1.TaintEffectNoExecute}}
		}, pod: withPod(fitPod("p", nil), func(p *v1.Pod) { p.Annotations = map[string]string{"kubernetes.io/config.source": "file"} })},
		{name: "pods of the API server are", node: func(n *v1.Node) {
			n.Spec.Taints = []v1.Taint{{Key: "dedicated", Effect: v1.TaintEffectNoExecute}}
		}, pod: withPod(fitPod("p", nil), func(p *v1.Pod) { p.Annotations = map[string]string{"kubernetes.io/config.source": "api"} }),
			reason: "TaintToleration", message: taintMsg},
		{name: "ports before taints", node: func(n *v1.Node) {
			n.Spec.Taints = []v1.Taint{{Key: "dedicated", Effect: v1.TaintEffectNoExecute}}
		}, pod: portPod("p", v1.ContainerPort{ContainerPort: 80, HostPort: 80}), others: []*v1.Pod{portPod("o", v1.ContainerPort{ContainerPort: 80, HostPort: 80})},
			reason: "NodePorts", message: portsMsg},

		{name: "OS label", pod: withPod(fitPod("p", rl("cpu", "3")), func(p *v1.Pod) { p.Labels = map[string]string{v1.LabelOSStable: "windows"} }),
			reason: "PodOSSelectorNodeLabelDoesNotMatch", message: "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label"},
		{name: "OS label matches the OS, not the node's label", node: func(n *v1.Node) { n.Labels[v1.LabelOSStable] = "windows" },
			pod: withPod(fitPod("p", nil), func(p *v1.Pod) { p.Labels = map[string]string{v1.LabelOSStable: "linux"} })},
		{name: "OS field", pod: withPod(fitPod("p", nil), func(p *v1.Pod) { p.Spec.OS = &v1.PodOS{Name: v1.Windows} }),
			reason: "PodOSNotSupported", message: "Failed to admit pod as the OS field doesn't match node OS"},
		{name: "OS field matches", pod: withPod(fitPod("p", nil), func(p *v1.Pod) { p.Spec.OS = &v1.PodOS{Name: v1.Linux} })},
		{name: "strict supplemental groups", pod: withPod(fitPod("p", nil), func(p *v1.Pod) {
			strict := v1.SupplementalGroupsPolicyStrict
			p.Spec.SecurityContext = &v1.PodSecurityContext{SupplementalGroupsPolicy: &strict}
		}), reason: "SupplementalGroupsPolicyNotSupported", message: "SupplementalGroupsPolicy=Strict is not supported in this node"},
		{name: "strict supplemental groups on a node that supports them", node: func(n *v1.Node) {
			yes := true
			n.Status.Features = &v1.NodeFeatures{SupplementalGroupsPolicy: &yes}
		}, pod: withPod(fitPod("p", nil), func(p *v1.Pod) {
			strict := v1.SupplementalGroupsPolicyStrict
			p.Spec.SecurityContext = &v1.PodSecurityContext{SupplementalGroupsPolicy: &strict}
		})},
		{name: "merged supplemental groups", pod: withPod(fitPod("p", nil), func(p *v1.Pod) {
			merge := v1.SupplementalGroupsPolicyMerge
			p.Spec.SecurityContext = &v1.PodSecurityContext{SupplementalGroupsPolicy: &merge}
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			node := fitNode()
			if tc.node != nil {
				tc.node(node)
			}
			f, err := NewNodeFit(NodeFitConfig{Node: func() (*v1.Node, error) { return node, nil }, OS: "linux"})
			if err != nil {
				t.Fatal(err)
			}
			got := f.Admit(AdmitAttributes{Pod: tc.pod, OtherPods: tc.others})
			want := AdmitResult{Admit: tc.reason == "", Reason: tc.reason, Message: tc.message}
			if got != want {
				t.Errorf("Admit:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestNodeFitNodeLookup(t *testing.T) {
	pod := fitPod("p", nil)
	invalid := AdmitResult{Reason: "InvalidNodeInfo", Message: "Kubelet cannot get node info."}
	for name, get := range map[string]func() (*v1.Node, error){
		"error":   func() (*v1.Node, error) { return nil, errors.New("no cache yet") },
		"no node": func() (*v1.Node, error) { return nil, nil },
	} {
		f, err := NewNodeFit(NodeFitConfig{Node: get, OS: "linux"})
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Admit(AdmitAttributes{Pod: pod}); got != invalid {
			t.Errorf("%s: Admit = %+v, want %+v", name, got, invalid)
		}
	}

	// When the node's labels are all that does not fit, the node is
	// fetched again, in case they just changed.
	stale, fresh := fitNode(), fitNode()
	fresh.Labels["zone"] = "b"
	var calls int
	f, err := NewNodeFit(NodeFitConfig{OS: "linux", Node: func() (*v1.Node, error) {
		calls++
		if calls == 1 {
			return stale, nil
		}
		return fresh, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	zoneB := withPod(fitPod("p", nil), func(p *v1.Pod) { p.Spec.NodeSelector = map[string]string{"zone": "b"} })
	if got := f.Admit(AdmitAttributes{Pod: zoneB}); !got.Admit || calls != 2 {
		t.Errorf("Admit = %+v after %d lookups, want admitted after 2", got, calls)
	}
	// Not when something else fails too, nor when all fits.
	calls = 0
	bigZoneB := withPod(fitPod("p", rl("cpu", "3")), func(p *v1.Pod) { p.Spec.NodeSelector = map[string]string{"zone": "b"} })
	if got := f.Admit(AdmitAttributes{Pod: bigZoneB}); got.Reason != "OutOfcpu" || calls != 1 {
		t.Errorf("Admit = %+v after %d lookups, want OutOfcpu after 1", got, calls)
	}
	calls = 0
	if got := f.Admit(AdmitAttributes{Pod: pod}); !got.Admit || calls != 1 {
		t.Errorf("Admit = %+v after %d lookups, want admitted after 1", got, calls)
	}
	// A failed second lookup keeps the first answer.
	f, err = NewNodeFit(NodeFitConfig{OS: "linux", Node: func() (*v1.Node, error) {
		calls++
		if calls == 1 {
			return stale, nil
		}
		return nil, errors.New("gone")
	}})
	if err != nil {
		t.Fatal(err)
	}
	calls = 0
	if got := f.Admit(AdmitAttributes{Pod: zoneB}); got.Reason != "NodeAffinity" || calls != 2 {
		t.Errorf("Admit = %+v after %d lookups, want NodeAffinity after 2", got, calls)
	}
}

func TestNodeFitCriticalPods(t *testing.T) {
	node := fitNode()
	others := []*v1.Pod{fitPod("o", rl("cpu", "1500m", "memory", "3Gi"))}
	static := func(p *v1.Pod) { p.Annotations = map[string]string{"kubernetes.io/config.source": "file"} }
	mirror := func(p *v1.Pod) { p.Annotations = map[string]string{v1.MirrorPodAnnotationKey: "x"} }
	critical := func(p *v1.Pod) { prio := int32(2000000000); p.Spec.Priority = &prio }
	nearly := func(p *v1.Pod) { prio := int32(1999999999); p.Spec.Priority = &prio }
	type call struct {
		pod   string
		short []InsufficientResource
	}
	tests := []struct {
		name       string
		pod        *v1.Pod
		preemptErr error
		noPreempt  bool
		want       AdmitResult
		wantCalls  []call
	}{
		{name: "static pod short of resources preempts", pod: withPod(fitPod("s", rl("cpu", "1", "memory", "2Gi")), static),
			want: AdmitResult{Admit: true},
			wantCalls: []call{{"s", []InsufficientResource{
				{Name: "cpu", Requested: 1000, Used: 1500, Capacity: 2000},
				{Name: "memory", Requested: 2 << 30, Used: 3 << 30, Capacity: 4 << 30},
			}}}},
		{name: "mirror pod", pod: withPod(fitPod("m", rl("cpu", "1")), mirror), want: AdmitResult{Admit: true},
			wantCalls: []call{{"m", []InsufficientResource{{Name: "cpu", Requested: 1000, Used: 1500, Capacity: 2000}}}}},
		{name: "critical priority", pod: withPod(fitPod("c", rl("cpu", "1")), critical), want: AdmitResult{Admit: true},
			wantCalls: []call{{"c", []InsufficientResource{{Name: "cpu", Requested: 1000, Used: 1500, Capacity: 2000}}}}},
		{name: "below critical priority", pod: withPod(fitPod("c", rl("cpu", "1")), nearly),
			want: AdmitResult{Reason: "OutOfcpu", Message: "Node didn't have enough resource: cpu, requested: 1000, used: 1500, capacity: 2000"}},
		{name: "failed preemption", pod: withPod(fitPod("c", rl("cpu", "1")), critical), preemptErr: errors.New("no pods to preempt"),
			want:      AdmitResult{Reason: "UnexpectedAdmissionError", Message: "Unexpected error while attempting to recover from admission failure: no pods to preempt"},
			wantCalls: []call{{"c", []InsufficientResource{{Name: "cpu", Requested: 1000, Used: 1500, Capacity: 2000}}}}},
		{name: "other reasons win over resources", pod: withPod(fitPod("c", rl("cpu", "1")), func(p *v1.Pod) { critical(p); p.Spec.NodeName = "node-2" }),
			want: AdmitResult{Reason: "NodeName", Message: "Predicate NodeName failed: node(s) didn't match the requested node name"}},
		{name: "critical pod that fits", pod: withPod(fitPod("c", rl("cpu", "100m")), critical), want: AdmitResult{Admit: true}},
		{name: "without Preempt", pod: withPod(fitPod("s", rl("cpu", "1")), static), noPreempt: true,
			want: AdmitResult{Reason: "OutOfcpu", Message: "Node didn't have enough resource: cpu, requested: 1000, used: 1500, capacity: 2000"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls []call
			cfg := NodeFitConfig{Node: func() (*v1.Node, error) { return node, nil }, OS: "linux"}
			if !tc.noPreempt {
				cfg.Preempt = func(a AdmitAttributes, short []InsufficientResource) error {
					if len(a.OtherPods) != len(others) {
						t.Errorf("Preempt saw %d other pods, want %d", len(a.OtherPods), len(others))
					}
					calls = append(calls, call{a.Pod.Name, short})
					return tc.preemptErr
				}
			}
			f, err := NewNodeFit(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Admit(AdmitAttributes{Pod: tc.pod, OtherPods: others}); got != tc.want {
				t.Errorf("Admit:\n got %+v\nwant %+v", got, tc.want)
			}
			if fmt.Sprint(calls) != fmt.Sprint(tc.wantCalls) {
				t.Errorf("Preempt calls %v, want %v", calls, tc.wantCalls)
			}
		})
	}
}

func TestInsufficientResourceShortfall(t *testing.T) {
	r := InsufficientResource{Name: v1.ResourceCPU, Requested: 1000, Used: 1500, Capacity: 2000}
	if got := r.Shortfall(); got != 500 {
		t.Errorf("Shortfall = %d, want 500", got)
	}
}

func TestNewNodeFitValidation(t *testing.T) {
	if _, err := NewNodeFit(NodeFitConfig{}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("NewNodeFit without Node: %v, want ErrInvalid", err)
	}
}

// reject is a handler that rejects with reason and counts its calls.
type reject struct {
	reason string
	calls  int
	seen   []string // names of the other pods
}

func (r *reject) Admit(a AdmitAttributes) AdmitResult {
	r.calls++
	r.seen = nil
	for _, p := range a.OtherPods {
		r.seen = append(r.seen, p.Name)
	}
	if r.reason == "" {
		return AdmitResult{Admit: true}
	}
	return AdmitResult{Reason: r.reason, Message: "because " + r.reason}
}

func TestAdmissionFirstRejectionWins(t *testing.T) {
	first, second, third := &reject{}, &reject{reason: "Evicted"}, &reject{reason: "NodeShutdown"}
	a, err := NewAdmission(AdmissionConfig{Handlers: []AdmitHandler{first, second}})
	if err != nil {
		t.Fatal(err)
	}
	a.AddHandler(third)
	a.AddHandler(nil)
	pod := fitPod("p", nil)
	others := []*v1.Pod{fitPod("a", nil), fitPod("p", nil), nil, fitPod("b", nil)}
	got := a.Admit(AdmitAttributes{Pod: pod, OtherPods: others})
	if want := (AdmitResult{Reason: "Evicted", Message: "because Evicted"}); got != want {
		t.Errorf("Admit = %+v, want %+v", got, want)
	}
	if first.calls != 1 || second.calls != 1 || third.calls != 0 {
		t.Errorf("calls %d %d %d, want 1 1 0", first.calls, second.calls, third.calls)
	}
	if want := []string{"a", "b"}; !slices.Equal(first.seen, want) {
		t.Errorf("handler saw other pods %v, want %v", first.seen, want)
	}
	if others[0].Name != "a" || others[1].Name != "p" || others[2] != nil || others[3].Name != "b" {
		t.Errorf("caller's OtherPods changed: %v", others)
	}

	a, err = NewAdmission(AdmissionConfig{Handlers: []AdmitHandler{AdmitFunc(func(AdmitAttributes) AdmitResult { return AdmitResult{Admit: true} })}})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Admit(AdmitAttributes{Pod: pod}); got != (AdmitResult{Admit: true}) {
		t.Errorf("Admit with an admitting handler = %+v", got)
	}
	if got := a.Admit(AdmitAttributes{}); got.Admit || got.Reason != "UnexpectedAdmissionError" {
		t.Errorf("Admit without a pod = %+v, want rejected", got)
	}
}

func TestAdmissionValidation(t *testing.T) {
	if _, err := NewAdmission(AdmissionConfig{Handlers: []AdmitHandler{&reject{}, nil}}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("nil handler: %v, want ErrInvalid", err)
	}
	a, err := NewAdmission(AdmissionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Admit(AdmitAttributes{Pod: fitPod("p", nil)}); !got.Admit {
		t.Errorf("Admit without handlers = %+v, want admitted", got)
	}
	reg := prometheus.NewRegistry()
	if _, err := NewAdmission(AdmissionConfig{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewAdmission(AdmissionConfig{Registerer: reg}); err == nil {
		t.Error("a second Admission registered the same metric")
	}
}

func TestAdmissionRejectionMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	var reason string
	a, err := NewAdmission(AdmissionConfig{Registerer: reg, Handlers: []AdmitHandler{AdmitFunc(func(AdmitAttributes) AdmitResult {
		return AdmitResult{Admit: reason == "", Reason: reason}
	})}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{
		"", "OutOfcpu", "OutOfcpu", "OutOfmemory", "OutOfpods", "OutOfephemeral-storage",
		"OutOfexample.com/gpu", "OutOfhugepages-2Mi", "Evicted", "NodeShutdown", "TopologyAffinityError",
		"SysctlForbidden", "VolumeAttachmentLimitExceeded", "InvalidNodeInfo", "UnexpectedAdmissionError",
		"PodOSNotSupported", "PodOSSelectorNodeLabelDoesNotMatch", "SupplementalGroupsPolicyNotSupported",
		"NodeAffinity", "NodeName", "NodePorts", "TaintToleration", "node(s) had taints that the pod didn't tolerate",
		"SomethingElse",
	} {
		reason = r
		a.Admit(AdmitAttributes{Pod: fitPod("p", nil)})
	}
	want := map[string]float64{
		"OutOfcpu": 2, "OutOfmemory": 1, "OutOfpods": 1, "OutOfephemeral-storage": 1, "OutOfExtendedResources": 2,
		"Evicted": 1, "NodeShutdown": 1, "TopologyAffinityError": 1, "SysctlForbidden": 1, "VolumeAttachmentLimitExceeded": 1,
		"InvalidNodeInfo": 1, "UnexpectedAdmissionError": 1, "PodOSNotSupported": 1, "PodOSSelectorNodeLabelDoesNotMatch": 1,
		"SupplementalGroupsPolicyNotSupported": 1, "node(s) had taints that the pod didn't tolerate": 1,
		"Other": 5,
	}
	if got := counterValues(t, reg, "kubelet_admission_rejections_total", "reason"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("kubelet_admission_rejections_total:\n got %v\nwant %v", got, want)
	}
}

// counterValues reads the counters of a metric family by the value of one
// label.
func counterValues(t *testing.T, reg *prometheus.Registry, name, label string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label {
					got[lp.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return got
}

// Handlers added while pods are being admitted apply to the admissions
// that start after; none is lost (run with -race).
func TestAdmissionAddHandlerConcurrently(t *testing.T) {
	a, err := NewAdmission(AdmissionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	calls := 0
	count := AdmitFunc(func(AdmitAttributes) AdmitResult {
		mu.Lock()
		calls++
		mu.Unlock()
		return AdmitResult{Admit: true}
	})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				a.AddHandler(count)
			}
		})
		wg.Go(func() {
			for range 50 {
				a.Admit(AdmitAttributes{Pod: fitPod("p", nil)})
			}
		})
	}
	wg.Wait()
	mu.Lock()
	calls = 0
	mu.Unlock()
	a.Admit(AdmitAttributes{Pod: fitPod("p", nil)})
	if calls != 200 {
		t.Errorf("one admission after adding 200 handlers called %d", calls)
	}
}

func TestRejectedStatus(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 500_000_000, time.UTC)
	earlier := metav1.NewTime(time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC))
	r := AdmitResult{Reason: "OutOfcpu", Message: "Node didn't have enough resource: cpu, requested: 500, used: 1600, capacity: 2000"}
	guaranteed := rl("cpu", "1", "memory", "1Gi")
	tests := []struct {
		name  string
		pod   *v1.Pod
		want  v1.PodStatus
		start time.Time
	}{
		{name: "best effort, new", pod: withPod(fitPod("p", nil), func(p *v1.Pod) { p.Generation = 3 }),
			want:  v1.PodStatus{ObservedGeneration: 3, QOSClass: v1.PodQOSBestEffort},
			start: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
		{name: "burstable, started", pod: withPod(fitPod("p", rl("cpu", "1")), func(p *v1.Pod) {
			p.Generation = 2
			p.Status.StartTime = &earlier
			p.Status.VolumeHealth = []v1.PodVolumeHealth{{Name: "data"}}
		}), want: v1.PodStatus{ObservedGeneration: 2, QOSClass: v1.PodQOSBurstable, VolumeHealth: []v1.PodVolumeHealth{{Name: "data"}}},
			start: earlier.Time},
		{name: "guaranteed", pod: withPod(fitPod("p", nil), func(p *v1.Pod) {
			p.Spec.Containers[0].Resources = v1.ResourceRequirements{Requests: guaranteed, Limits: guaranteed}
		}), want: v1.PodStatus{QOSClass: v1.PodQOSGuaranteed}, start: now.Truncate(time.Second)},
		{name: "guaranteed and best effort containers", pod: withPod(fitPod("p", nil), func(p *v1.Pod) {
			p.Spec.InitContainers = []v1.Container{{Name: "init", Resources: v1.ResourceRequirements{Requests: guaranteed, Limits: guaranteed}}}
		}), want: v1.PodStatus{QOSClass: v1.PodQOSBurstable}, start: now.Truncate(time.Second)},
		{name: "pod-level resources", pod: withPod(fitPod("p", rl("cpu", "1")), func(p *v1.Pod) {
			p.Spec.Resources = &v1.ResourceRequirements{Requests: guaranteed, Limits: guaranteed}
		}), want: v1.PodStatus{QOSClass: v1.PodQOSGuaranteed}, start: now.Truncate(time.Second)},
		{name: "class kept", pod: withPod(fitPod("p", nil), func(p *v1.Pod) {
			p.Status.QOSClass = v1.PodQOSGuaranteed
			p.Status.ObservedGeneration = 5
			p.Generation = 4
		}), want: v1.PodStatus{ObservedGeneration: 5, QOSClass: v1.PodQOSGuaranteed}, start: now.Truncate(time.Second)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := RejectedStatus(tc.pod, r, now)
			want := tc.want
			want.Phase = v1.PodFailed
			want.Reason = "OutOfcpu"
			want.Message = "Pod was rejected: Node didn't have enough resource: cpu, requested: 500, used: 1600, capacity: 2000"
			if got.StartTime == nil || !got.StartTime.Time.Equal(tc.start) {
				t.Errorf("StartTime = %v, want %v", got.StartTime, tc.start)
			}
			if got.StartTime != nil && got.StartTime == tc.pod.Status.StartTime {
				t.Error("RejectedStatus shares the pod's start time")
			}
			got.StartTime = nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("RejectedStatus:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}
