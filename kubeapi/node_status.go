package kubeapi

import (
	"fmt"
	goruntime "runtime"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
)

// The reasons of the Ready condition, and the events recorded about the
// node besides those of the pressure conditions (NodeHasSufficientMemory,
// NodeHasInsufficientMemory, NodeHasNoDiskPressure, NodeHasDiskPressure,
// NodeHasSufficientPID, NodeHasInsufficientPID), as the kubelet's.
const (
	// ReasonKubeletReady: Ready is True.
	ReasonKubeletReady = "KubeletReady"
	// ReasonKubeletNotReady: Ready is False; the message says why.
	ReasonKubeletNotReady = "KubeletNotReady"

	// EventNodeReady and EventNodeNotReady: Ready changed.
	EventNodeReady    = "NodeReady"
	EventNodeNotReady = "NodeNotReady"
	// EventNodeSchedulable and EventNodeNotSchedulable: the node was
	// uncordoned or cordoned (spec.unschedulable).
	EventNodeSchedulable    = "NodeSchedulable"
	EventNodeNotSchedulable = "NodeNotSchedulable"
	// EventNodeRebooted (a warning): the machine's boot ID changed.
	EventNodeRebooted = "Rebooted"
)

// pressure describes one of the kubelet's pressure conditions: its
// reasons and messages without and with pressure, which are also the
// reasons of the events recorded when it changes (with "Kubelet" replaced
// by "Node").
type pressure struct {
	cond                  v1.NodeConditionType
	okReason, okMessage   string
	badReason, badMessage string
}

var pressures = [...]pressure{
	{v1.NodeMemoryPressure, "KubeletHasSufficientMemory", "kubelet has sufficient memory available",
		"KubeletHasInsufficientMemory", "kubelet has insufficient memory available"},
	{v1.NodeDiskPressure, "KubeletHasNoDiskPressure", "kubelet has no disk pressure",
		"KubeletHasDiskPressure", "kubelet has disk pressure"},
	{v1.NodePIDPressure, "KubeletHasSufficientPID", "kubelet has sufficient PID available",
		"KubeletHasInsufficientPID", "kubelet has insufficient PID available"},
}

// nodeReading is one reading of everything the node's status reports, as
// NodeStatus takes it from its sources; setNodeStatus applies it.
type nodeReading struct {
	nodeName, hostname string

	// machine and machineErr: the machine's capacity and identity, or why
	// they could not be read.
	machine    MachineInfo
	machineErr error
	maxPods    int64
	// reserved is taken from capacity (system-reserved + kube-reserved);
	// hardEviction too, computed against capacity.
	reserved     v1.ResourceList
	hardEviction []hardEvictionThreshold

	// addresses, unless addressesErr.
	addresses    []v1.NodeAddress
	addressesErr error

	// runtimeVersion is "<name>://<version>"; "" leaves it as it is.
	runtimeVersion  string
	runtimeHandlers []v1.NodeRuntimeHandler
	runtimeFeatures *v1.NodeFeatures
	kubeletVersion  string
	kubeletPort     int32

	// images is reported when reportImages is set.
	images       []v1.ContainerImage
	reportImages bool

	// notReady are the reasons the node is not ready, in the kubelet's
	// words ("container runtime network not ready: ...", "PLEG is not
	// healthy: ..."); missing capacity is added by setNodeStatus.
	notReady []error
	// underPressure tells, for each of pressures, whether the node is
	// under that pressure.
	underPressure [len(pressures)]bool
}

// hardEvictionThreshold is a hard eviction threshold that allocatable
// keeps free: of memory (memory.available) or of ephemeral storage
// (nodefs.available), a quantity or a fraction of the capacity.
type hardEvictionThreshold struct {
	resource   v1.ResourceName
	quantity   *resource.Quantity
	percentage float32
}

// nodeEvent is an event setNodeStatus asks to record about the node.
type nodeEvent struct {
	eventtype, reason, message string
}

// setNodeStatus applies reading r to node's status as the kubelet's
// setters do, at time now, and returns the events to record about it.
// Every condition the kubelet owns gets now as its heartbeat; whether that
// alone is worth sending is nodeStatusChanged's business.
func setNodeStatus(node *v1.Node, r *nodeReading, now time.Time) []nodeEvent {
	var events []nodeEvent
	statusEvent := func(reason string) {
		events = append(events, nodeEvent{v1.EventTypeNormal, reason, fmt.Sprintf("Node %s status is now: %s", r.nodeName, reason)})
	}
	st := &node.Status

	if r.addressesErr == nil {
		st.Addresses = r.addresses
	}

	// Capacity: entries others added (extended resources advertised by
	// hand) stay.
	if st.Capacity == nil {
		st.Capacity = v1.ResourceList{}
	}
	if r.machineErr != nil {
		st.Capacity[v1.ResourceCPU] = *resource.NewMilliQuantity(0, resource.DecimalSI)
		st.Capacity[v1.ResourceMemory] = resource.MustParse("0Gi")
	} else {
		for name, q := range r.machine.Capacity {
			st.Capacity[name] = q.DeepCopy()
		}
		info := &st.NodeInfo
		if info.BootID != "" && r.machine.BootID != "" && info.BootID != r.machine.BootID {
			events = append(events, nodeEvent{v1.EventTypeWarning, EventNodeRebooted,
				fmt.Sprintf("Node %s has been rebooted, boot id: %s", r.nodeName, r.machine.BootID)})
		}
		info.MachineID, info.SystemUUID, info.BootID = r.machine.MachineID, r.machine.SystemUUID, r.machine.BootID
		info.KernelVersion, info.OSImage = r.machine.KernelVersion, r.machine.OSImage
	}
	st.Capacity[v1.ResourcePods] = *resource.NewQuantity(r.maxPods, resource.DecimalSI)
	st.Allocatable = allocatable(st.Capacity, st.Allocatable, r.reserved, r.hardEviction)

	if r.runtimeVersion != "" {
		st.NodeInfo.ContainerRuntimeVersion = r.runtimeVersion
	}
	st.NodeInfo.KubeletVersion = r.kubeletVersion
	st.NodeInfo.KubeProxyVersion = ""
	st.NodeInfo.OperatingSystem, st.NodeInfo.Architecture = goruntime.GOOS, goruntime.GOARCH
	if r.runtimeHandlers != nil {
		st.RuntimeHandlers = r.runtimeHandlers
	}
	if r.runtimeFeatures != nil {
		st.Features = r.runtimeFeatures
	}
	st.DaemonEndpoints = v1.NodeDaemonEndpoints{KubeletEndpoint: v1.DaemonEndpoint{Port: r.kubeletPort}}
	if r.reportImages {
		st.Images = r.images
	}

	ts := metav1.NewTime(now)
	for i, p := range pressures {
		if reason := setPressure(st, p, r.underPressure[i], ts); reason != "" {
			statusEvent(reason)
		}
	}
	if reason := setReady(st, r.notReady, ts); reason != "" {
		statusEvent(reason)
	}
	return events
}

// setPressure sets the pressure condition p, and returns the reason of
// the event to record when its status changed (from Unknown too).
func setPressure(st *v1.NodeStatus, p pressure, under bool, now metav1.Time) string {
	i := conditionIndex(st, p.cond)
	if i < 0 {
		st.Conditions = append(st.Conditions, v1.NodeCondition{Type: p.cond, Status: v1.ConditionUnknown})
		i = len(st.Conditions) - 1
	}
	c := &st.Conditions[i]
	c.LastHeartbeatTime = now
	want, reason, message := v1.ConditionFalse, p.okReason, p.okMessage
	if under {
		want, reason, message = v1.ConditionTrue, p.badReason, p.badMessage
	}
	if c.Status == want {
		return ""
	}
	c.Status, c.Reason, c.Message, c.LastTransitionTime = want, reason, message, now
	return "Node" + strings.TrimPrefix(reason, "Kubelet")
}

// setReady sets the Ready condition, last of the kubelet's, from the
// reasons the node is not ready and the capacity it needs; it returns the
// reason of the event to record when its status changed (not when it is
// new).
func setReady(st *v1.NodeStatus, notReady []error, now metav1.Time) string {
	errs := append([]error(nil), notReady...)
	var missing []string
	for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory, v1.ResourcePods, v1.ResourceEphemeralStorage} {
		if _, ok := st.Capacity[name]; !ok {
			missing = append(missing, string(name))
		}
	}
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("missing node capacity for resources: %s", strings.Join(missing, ", ")))
	}
	ready := v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: ReasonKubeletReady,
		Message: "kubelet is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now}
	if agg := utilerrors.NewAggregate(errs); agg != nil {
		ready.Status, ready.Reason, ready.Message = v1.ConditionFalse, ReasonKubeletNotReady, agg.Error()
	}
	i := conditionIndex(st, v1.NodeReady)
	if i < 0 {
		st.Conditions = append(st.Conditions, ready)
		return ""
	}
	old := st.Conditions[i]
	st.Conditions[i] = ready
	if old.Status == ready.Status {
		st.Conditions[i].LastTransitionTime = old.LastTransitionTime
		return ""
	}
	if ready.Status == v1.ConditionTrue {
		return EventNodeReady
	}
	return EventNodeNotReady
}

func conditionIndex(st *v1.NodeStatus, t v1.NodeConditionType) int {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return i
		}
	}
	return -1
}

// allocatable computes the node's allocatable resources, as the kubelet:
// for every resource of capacity, the capacity less what is reserved for
// the system and the kubelet and what hard eviction keeps free, never
// below zero; the memory of huge pages is not allocatable as memory.
// Extended resources gone from capacity leave it; other entries of old
// stay.
func allocatable(capacity, old, reserved v1.ResourceList, hard []hardEvictionThreshold) v1.ResourceList {
	out := v1.ResourceList{}
	for name, q := range old {
		if _, ok := capacity[name]; ok || !isExtendedResource(name) {
			out[name] = q
		}
	}
	for name, c := range capacity {
		value := c.DeepCopy()
		if r, ok := reserved[name]; ok {
			value.Sub(r)
		}
		for _, t := range hard {
			if t.resource == name {
				value.Sub(t.of(c))
			}
		}
		if value.Sign() < 0 {
			value.Set(0)
		}
		out[name] = value
	}
	for name, c := range capacity {
		if !isHugePages(name) {
			continue
		}
		mem := out[v1.ResourceMemory]
		mem.Sub(c)
		if mem.Sign() < 0 {
			mem.Set(0)
		}
		out[v1.ResourceMemory] = mem
	}
	return out
}

// of is the amount the threshold keeps free of capacity c.
func (t hardEvictionThreshold) of(c resource.Quantity) resource.Quantity {
	if t.quantity != nil {
		return *t.quantity
	}
	return *resource.NewQuantity(int64(float64(c.Value())*float64(t.percentage)), resource.BinarySI)
}

func isHugePages(name v1.ResourceName) bool {
	return strings.HasPrefix(string(name), v1.ResourceHugePagesPrefix)
}

// isExtendedResource reports whether name is an extended resource, such
// as a device plugin's: a domain-qualified name outside kubernetes.io.
func isExtendedResource(name v1.ResourceName) bool {
	s := string(name)
	return strings.Contains(s, "/") && !strings.Contains(s, "kubernetes.io/") && !strings.HasPrefix(s, v1.DefaultResourceRequestsPrefix)
}

// nodeStatusChanged reports whether status differs from old in anything
// but the conditions' heartbeat times, as the kubelet decides whether a
// status is worth sending before the report period ends.
func nodeStatusChanged(old, status *v1.NodeStatus) bool {
	if len(old.Conditions) != len(status.Conditions) {
		return true
	}
	seen := map[v1.NodeConditionType]v1.NodeCondition{}
	for _, c := range old.Conditions {
		c.LastHeartbeatTime = metav1.Time{}
		seen[c.Type] = c
	}
	for _, c := range status.Conditions {
		c.LastHeartbeatTime = metav1.Time{}
		o, ok := seen[c.Type]
		if !ok || !equality.Semantic.DeepEqual(o, c) {
			return true
		}
	}
	a, b := old.DeepCopy(), status.DeepCopy()
	a.Conditions, b.Conditions = nil, nil
	return !equality.Semantic.DeepEqual(a, b)
}
