package syncloop

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	resourcehelper "k8s.io/component-helpers/resource"
	schedulingcorev1 "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
)

// Reasons of a rejected pod, with the kubelet's spelling. They become the
// pod's status.reason and the reason of its Warning event.
const (
	// ReasonInvalidNodeInfo: the node object could not be had.
	ReasonInvalidNodeInfo = "InvalidNodeInfo"
	// ReasonPodOSSelectorNodeLabelDoesNotMatch: the pod's kubernetes.io/os
	// label names another operating system than the node's.
	ReasonPodOSSelectorNodeLabelDoesNotMatch = "PodOSSelectorNodeLabelDoesNotMatch"
	// ReasonPodOSNotSupported: the pod's spec.os names another operating
	// system than the node's.
	ReasonPodOSNotSupported = "PodOSNotSupported"
	// ReasonSupplementalGroupsPolicyNotSupported: the pod asks for
	// supplementalGroupsPolicy Strict and the node does not declare support
	// for it.
	ReasonSupplementalGroupsPolicyNotSupported = "SupplementalGroupsPolicyNotSupported"
	// ReasonUnexpectedAdmissionError: freeing resources for a critical pod
	// failed (NodeFitConfig.Preempt).
	ReasonUnexpectedAdmissionError = "UnexpectedAdmissionError"
	// ReasonOutOfCPU, ReasonOutOfMemory, ReasonOutOfEphemeralStorage and
	// ReasonOutOfPods: the node's allocatable amount, less what the other
	// pods request, is smaller than what the pod requests. Any other
	// resource is InsufficientResourcePrefix followed by its name
	// ("OutOfexample.com/gpu", "OutOfhugepages-2Mi").
	ReasonOutOfCPU              = "OutOfcpu"
	ReasonOutOfMemory           = "OutOfmemory"
	ReasonOutOfEphemeralStorage = "OutOfephemeral-storage"
	ReasonOutOfPods             = "OutOfpods"
	// InsufficientResourcePrefix starts the reason of every resource
	// shortage.
	InsufficientResourcePrefix = "OutOf"
	// ReasonNodeAffinity: the node does not match the pod's nodeSelector or
	// its required node affinity.
	ReasonNodeAffinity = "NodeAffinity"
	// ReasonNodeName: the pod is bound to another node.
	ReasonNodeName = "NodeName"
	// ReasonNodePorts: a host port of the pod is taken by another pod.
	ReasonNodePorts = "NodePorts"
	// ReasonTaintToleration: the node has a NoExecute taint the pod does
	// not tolerate.
	ReasonTaintToleration = "TaintToleration"
)

// RejectedMessagePrefix starts the status message of a rejected pod.
const RejectedMessagePrefix = "Pod was rejected: "

// AdmitAttributes is what an admission decision looks at. Handlers must
// not modify the pods.
type AdmitAttributes struct {
	// Pod asks to be admitted.
	Pod *v1.Pod
	// OtherPods are the pods already admitted whose phase is not terminal:
	// what the kubelet calls its active pods. A pod with Pod's UID among
	// them is ignored.
	OtherPods []*v1.Pod
}

// AdmitResult is the outcome of an admission decision.
type AdmitResult struct {
	// Admit is true when the pod may run.
	Admit bool
	// Reason is one CamelCase word saying why the pod was rejected.
	Reason string
	// Message says it in a sentence.
	Message string
}

// AdmitHandler decides whether a pod may run on the node. Admit must
// return soon: it is called for every new pod, one pod at a time.
type AdmitHandler interface {
	Admit(a AdmitAttributes) AdmitResult
}

// AdmitFunc is an AdmitHandler made of a function.
type AdmitFunc func(AdmitAttributes) AdmitResult

// Admit calls f.
func (f AdmitFunc) Admit(a AdmitAttributes) AdmitResult { return f(a) }

var (
	_ AdmitHandler = AdmitFunc(nil)
	_ AdmitHandler = (*NodeFit)(nil)
)

// AdmissionConfig configures an Admission.
type AdmissionConfig struct {
	// Handlers are asked in order. More can be added with AddHandler.
	Handlers []AdmitHandler
	// Registerer receives kubelet_admission_rejections_total. Default:
	// none; rejections are still counted.
	Registerer prometheus.Registerer
	// Logger receives one line for each rejection. Default: none.
	Logger *zap.Logger
}

// Admission decides whether new pods may run: the kubelet's canAdmitPod.
// It asks its handlers in the order they were given and added; the first
// that rejects the pod decides, and the rest are not asked.
//
// Each rejection is counted in kubelet_admission_rejections_total{reason},
// under the kubelet's rules: the reasons the kubelet knows (those of this
// file, "Evicted", "SysctlForbidden", "TopologyAffinityError",
// "NodeShutdown", "AppArmor", ...) count under their own name, other
// shortages of a resource under "OutOfExtendedResources", and everything
// else under "Other". As in the kubelet, that includes ReasonNodeAffinity,
// ReasonNodeName, ReasonNodePorts and ReasonTaintToleration.
//
// Admit is meant for new pods only (the kubelet's pod additions): a pod
// whose termination was requested or whose phase is terminal is not
// admitted at all, and a rejected pod is not started but failed with
// RejectedStatus.
//
// An Admission is safe for concurrent use: AddHandler may run while Admit
// does, and affects the calls of Admit that start after it.
type Admission struct {
	log        *zap.Logger
	rejections *prometheus.CounterVec

	mu       sync.Mutex
	handlers []AdmitHandler // replaced, never modified, once published
}

// NewAdmission returns an Admission for cfg. A nil handler is an error
// wrapping core.ErrInvalid.
func NewAdmission(cfg AdmissionConfig) (*Admission, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	for i, h := range cfg.Handlers {
		if h == nil {
			return nil, fmt.Errorf("syncloop: admission: Handlers[%d] is nil: %w", i, core.ErrInvalid)
		}
	}
	a := &Admission{
		log: cfg.Logger,
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kubelet", Name: "admission_rejections_total",
			Help: "Cumulative number pod admission rejections by the Kubelet."}, []string{"reason"}),
		handlers: slices.Clone(cfg.Handlers),
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(a.rejections); err != nil {
			return nil, fmt.Errorf("syncloop: admission: register metrics: %w", err)
		}
	}
	return a, nil
}

// AddHandler appends h to the handlers: other subsystems (eviction, CPU
// and memory managers, node shutdown) plug in their checks here. A nil h
// is ignored.
func (a *Admission) AddHandler(h AdmitHandler) {
	if h == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	// A new slice, so that an Admit in flight keeps the one it read.
	a.handlers = append(slices.Clip(a.handlers), h)
}

// Admit asks the handlers about attrs.Pod and returns the first rejection,
// or an admitting result when none rejects it. OtherPods is passed on
// without the pod itself (nor nil entries). A nil pod is rejected with
// ReasonUnexpectedAdmissionError, uncounted.
func (a *Admission) Admit(attrs AdmitAttributes) AdmitResult {
	if attrs.Pod == nil {
		return AdmitResult{Reason: ReasonUnexpectedAdmissionError, Message: "no pod to admit"}
	}
	a.mu.Lock()
	handlers := a.handlers
	a.mu.Unlock()

	notOther := func(p *v1.Pod) bool { return p == nil || p.UID == attrs.Pod.UID }
	if slices.ContainsFunc(attrs.OtherPods, notOther) {
		attrs.OtherPods = slices.DeleteFunc(slices.Clone(attrs.OtherPods), notOther)
	}
	for _, h := range handlers {
		r := h.Admit(attrs)
		if r.Admit {
			continue
		}
		a.log.Info("pod admission denied", zap.String("pod", attrs.Pod.Namespace+"/"+attrs.Pod.Name),
			zap.String("podUID", string(attrs.Pod.UID)), zap.String("reason", r.Reason), zap.String("message", r.Message))
		a.rejections.WithLabelValues(rejectionLabel(r.Reason)).Inc()
		return r
	}
	return AdmitResult{Admit: true}
}

// knownRejectionReasons are the reasons the kubelet counts under their own
// name. The taint reason is the predicate's description, not its name, as
// in the kubelet: a pod rejected for a taint counts as "Other".
var knownRejectionReasons = []string{
	"AppArmor",
	ReasonPodOSSelectorNodeLabelDoesNotMatch,
	ReasonPodOSNotSupported,
	ReasonInvalidNodeInfo,
	"InitContainerRestartPolicyForbidden",
	ReasonSupplementalGroupsPolicyNotSupported,
	ReasonUnexpectedAdmissionError,
	"UnknownReason",
	"UnexpectedPredicateFailureType",
	ReasonOutOfCPU,
	ReasonOutOfMemory,
	ReasonOutOfEphemeralStorage,
	ReasonOutOfPods,
	"PodLevelResourcesNotSupported",
	"PodFeatureUnsupported",
	taintPredicateDesc,
	"Evicted",
	"SysctlForbidden",
	"TopologyAffinityError",
	"NodeShutdown",
	"VolumeAttachmentLimitExceeded",
}

// rejectionLabel is the reason label a rejection is counted under.
func rejectionLabel(reason string) string {
	switch {
	case slices.Contains(knownRejectionReasons, reason):
		return reason
	case strings.HasPrefix(reason, InsufficientResourcePrefix):
		return "OutOfExtendedResources"
	default:
		return "Other"
	}
}

// RejectedStatus is the status the kubelet sets on a pod it rejected, as
// its status manager keeps it: phase Failed, the result's reason, its
// message after RejectedMessagePrefix, the pod's QoS class, its
// generation as observedGeneration, and its start time (now, to the
// second, if it has none). The volume health the pod reports is kept.
// Conditions are left to the status manager, which merges them with
// those of the API.
func RejectedStatus(pod *v1.Pod, r AdmitResult, now time.Time) v1.PodStatus {
	if pod == nil {
		pod = &v1.Pod{}
	}
	start := metav1.NewTime(now).Rfc3339Copy()
	if t := pod.Status.StartTime; t != nil && !t.IsZero() {
		start = t.Rfc3339Copy()
	}
	return v1.PodStatus{
		ObservedGeneration: max(pod.Generation, pod.Status.ObservedGeneration),
		Phase:              v1.PodFailed,
		Reason:             r.Reason,
		Message:            RejectedMessagePrefix + r.Message,
		StartTime:          &start,
		QOSClass:           crispec.PodQOS(pod),
		VolumeHealth:       slices.Clone(pod.Status.VolumeHealth),
	}
}

// InsufficientResource is a resource the node lacks for a pod. Amounts are
// in millicores for cpu and in the resource's units for the rest (bytes,
// pods, devices).
type InsufficientResource struct {
	Name v1.ResourceName
	// Requested by the pod (1 for pods).
	Requested int64
	// Used: requested by the other pods.
	Used int64
	// Capacity: the node's allocatable amount.
	Capacity int64
}

// Shortfall is how much more of the resource the node would need.
func (r InsufficientResource) Shortfall() int64 { return r.Requested - (r.Capacity - r.Used) }

func (r InsufficientResource) reason() string {
	return InsufficientResourcePrefix + string(r.Name)
}

func (r InsufficientResource) message() string {
	return fmt.Sprintf("Node didn't have enough resource: %s, requested: %d, used: %d, capacity: %d",
		r.Name, r.Requested, r.Used, r.Capacity)
}

// NodeFitConfig configures a NodeFit.
type NodeFitConfig struct {
	// Node returns the node's object, with its labels, taints and
	// allocatable resources. Required. It is called once per pod, and once
	// more when the node's labels are the only thing that does not fit,
	// as the kubelet then fetches the node again in case they just
	// changed. An error, or a nil node, rejects the pod with
	// ReasonInvalidNodeInfo.
	Node func() (*v1.Node, error)
	// OS is the node's operating system, as in kubernetes.io/os. Default:
	// runtime.GOOS.
	OS string
	// Preempt, if set, frees resources for a critical pod (a static or
	// mirror pod, or one of priority 2000000000 or more) that does not fit
	// for resources alone: the kubelet evicts other pods then. It is given
	// what was short, and returns once enough is free; the pod is then
	// admitted. An error rejects the pod with
	// ReasonUnexpectedAdmissionError. Default: none; critical pods are
	// rejected for resources like the others.
	Preempt func(a AdmitAttributes, short []InsufficientResource) error
	// Logger receives the reason of each failed node lookup. Default: none.
	Logger *zap.Logger
}

// NodeFit admits the pods that fit the node: the kubelet's predicate
// admission handler. It checks, in this order, and rejects with the
// kubelet's reason and message:
//
//   - the node can be had (ReasonInvalidNodeInfo);
//   - the pod's kubernetes.io/os label, if any, and its spec.os, if set,
//     name the node's OS (ReasonPodOSSelectorNodeLabelDoesNotMatch,
//     ReasonPodOSNotSupported);
//   - supplementalGroupsPolicy Strict is declared supported by the node
//     (node.status.features) if the pod asks for it
//     (ReasonSupplementalGroupsPolicyNotSupported);
//   - resources: one pod more than OtherPods fits allocatable "pods"; and
//     for cpu, memory, ephemeral-storage, hugepages and extended
//     resources, the pod's requests fit allocatable less the requests of
//     OtherPods (ReasonOutOfCPU, ..., "OutOf"+name). Requests are summed as
//     the scheduler does (k8s.io/component-helpers/resource.PodRequests):
//     init containers count at their peak, sidecars all along, pod-level
//     requests replace the containers' and the pod overhead is added; the
//     other pods count at the largest of their spec, allocated and actual
//     requests. A request of an extended resource the node does not
//     list, or one that DRA provides, is not checked;
//   - the node matches the pod's nodeSelector and required node affinity
//     (ReasonNodeAffinity), and spec.nodeName if set (ReasonNodeName);
//   - no host port of the pod's containers and sidecars is taken by
//     OtherPods, 0.0.0.0 conflicting with every address (ReasonNodePorts);
//   - the pod tolerates every NoExecute taint of the node; NoSchedule and
//     PreferNoSchedule are the scheduler's business, and static pods are
//     not checked (ReasonTaintToleration).
//
// The first failure in that order decides; shortages of extended
// resources come in the order of their names. Except as Preempt allows,
// critical pods are checked like the others.
type NodeFit struct {
	node    func() (*v1.Node, error)
	os      string
	preempt func(AdmitAttributes, []InsufficientResource) error
	log     *zap.Logger
}

// NewNodeFit returns a NodeFit for cfg. A missing Node is an error
// wrapping core.ErrInvalid.
func NewNodeFit(cfg NodeFitConfig) (*NodeFit, error) {
	if cfg.Node == nil {
		return nil, fmt.Errorf("syncloop: node fit: Node is required: %w", core.ErrInvalid)
	}
	if cfg.OS == "" {
		cfg.OS = runtime.GOOS
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &NodeFit{node: cfg.Node, os: cfg.OS, preempt: cfg.Preempt, log: cfg.Logger}, nil
}

// Messages of NodeFit's rejections, as the kubelet words them.
const (
	invalidNodeInfoMessage      = "Kubelet cannot get node info."
	osSelectorMismatchMessage   = "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label"
	osFieldMismatchMessage      = "Failed to admit pod as the OS field doesn't match node OS"
	nodeAffinityPredicateDesc   = "node(s) didn't match Pod's node affinity/selector"
	nodeNamePredicateDesc       = "node(s) didn't match the requested node name"
	nodePortsPredicateDesc      = "node(s) didn't have free ports for the requested pod ports"
	taintPredicateDesc          = "node(s) had taints that the pod didn't tolerate"
	supplementalGroupsPolicyMsg = "SupplementalGroupsPolicy=" + string(v1.SupplementalGroupsPolicyStrict) + " is not supported in this node"
)

// fitFailure is one reason a pod does not fit: a shortage or a failed
// predicate.
type fitFailure struct {
	short     *InsufficientResource
	predicate string // name, when short is nil
	desc      string
}

func (f fitFailure) result() AdmitResult {
	if f.short != nil {
		return AdmitResult{Reason: f.short.reason(), Message: f.short.message()}
	}
	return AdmitResult{Reason: f.predicate, Message: fmt.Sprintf("Predicate %s failed: %s", f.predicate, f.desc)}
}

// Admit checks that a.Pod fits the node next to a.OtherPods.
func (f *NodeFit) Admit(a AdmitAttributes) AdmitResult {
	pod := a.Pod
	if pod == nil {
		return AdmitResult{Reason: ReasonUnexpectedAdmissionError, Message: "no pod to admit"}
	}
	node, err := f.getNode()
	if err != nil {
		f.log.Error("cannot get node info", zap.Error(err))
		return AdmitResult{Reason: ReasonInvalidNodeInfo, Message: invalidNodeInfoMessage}
	}
	// What preemption cannot help comes first.
	if os, ok := pod.Labels[v1.LabelOSStable]; ok && os != f.os {
		// The node's own label does not matter: a node always runs the
		// OS the kubelet was built for.
		return AdmitResult{Reason: ReasonPodOSSelectorNodeLabelDoesNotMatch, Message: osSelectorMismatchMessage}
	}
	if pod.Spec.OS != nil && string(pod.Spec.OS.Name) != f.os {
		return AdmitResult{Reason: ReasonPodOSNotSupported, Message: osFieldMismatchMessage}
	}
	if strictGroupsUnsupported(pod, node) {
		return AdmitResult{Reason: ReasonSupplementalGroupsPolicyNotSupported, Message: supplementalGroupsPolicyMsg}
	}

	used := usage(a.OtherPods, pod.UID)
	fitPod := withoutUncheckedRequests(pod, node)
	failures := fit(fitPod, node, used)
	if len(failures) == 1 && failures[0].predicate == ReasonNodeAffinity {
		if fresh, err := f.getNode(); err != nil {
			f.log.Error("cannot get node info again", zap.Error(err))
		} else {
			failures = fit(fitPod, fresh, used)
		}
	}
	if len(failures) == 0 {
		return AdmitResult{Admit: true}
	}
	if f.preempt != nil && core.IsCriticalPod(pod) {
		var short []InsufficientResource
		var other []fitFailure
		for _, ff := range failures {
			if ff.short != nil {
				short = append(short, *ff.short)
			} else {
				other = append(other, ff)
			}
		}
		if len(other) > 0 {
			return other[0].result()
		}
		if err := f.preempt(a, short); err != nil {
			return AdmitResult{Reason: ReasonUnexpectedAdmissionError,
				Message: fmt.Sprintf("Unexpected error while attempting to recover from admission failure: %v", err)}
		}
		return AdmitResult{Admit: true}
	}
	return failures[0].result()
}

func (f *NodeFit) getNode() (*v1.Node, error) {
	node, err := f.node()
	if err == nil && node == nil {
		err = errors.New("no node object")
	}
	return node, err
}

// strictGroupsUnsupported: the pod asks for supplementalGroupsPolicy Strict
// and the node does not declare that it supports it.
func strictGroupsUnsupported(pod *v1.Pod, node *v1.Node) bool {
	sc := pod.Spec.SecurityContext
	if sc == nil || sc.SupplementalGroupsPolicy == nil || *sc.SupplementalGroupsPolicy != v1.SupplementalGroupsPolicyStrict {
		return false
	}
	feat := node.Status.Features
	return feat == nil || feat.SupplementalGroupsPolicy == nil || !*feat.SupplementalGroupsPolicy
}

// amounts are quantities of resources in the units the checks compare:
// millicores for cpu, the resource's unit for the rest.
type amounts struct {
	milliCPU, memory, ephemeralStorage, pods int64
	scalar                                   map[v1.ResourceName]int64
}

func (m *amounts) add(list v1.ResourceList) {
	for name, q := range list {
		switch name {
		case v1.ResourceCPU:
			m.milliCPU += q.MilliValue()
		case v1.ResourceMemory:
			m.memory += q.Value()
		case v1.ResourceEphemeralStorage:
			m.ephemeralStorage += q.Value()
		case v1.ResourcePods:
			m.pods += q.Value()
		default:
			if isScalarResource(name) {
				if m.scalar == nil {
					m.scalar = make(map[v1.ResourceName]int64)
				}
				m.scalar[name] += q.Value()
			}
		}
	}
}

// nodeUsage is what the other pods take from the node.
type nodeUsage struct {
	pods      int64
	requested amounts
	ports     map[string]map[hostPort]bool // by host IP
}

type hostPort struct {
	protocol string
	port     int32
}

// usage sums the requests and host ports of the pods, leaving out the one
// with UID self.
func usage(pods []*v1.Pod, self types.UID) nodeUsage {
	u := nodeUsage{ports: make(map[string]map[hostPort]bool)}
	for _, p := range pods {
		if p == nil || p.UID == self {
			continue
		}
		u.pods++
		u.requested.add(resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{
			UseStatusResources: true,
			InPlacePodLevelResourcesVerticalScalingEnabled: true,
		}))
		for _, cp := range hostPorts(p) {
			ip, hp := sanitizePort(cp)
			if u.ports[ip] == nil {
				u.ports[ip] = make(map[hostPort]bool)
			}
			u.ports[ip][hp] = true
		}
	}
	return u
}

// hostPorts are the ports with a host port of the containers that run as
// long as the pod: its sidecars and its regular containers.
func hostPorts(pod *v1.Pod) []v1.ContainerPort {
	var ports []v1.ContainerPort
	add := func(c *v1.Container) {
		for _, p := range c.Ports {
			if p.HostPort > 0 {
				ports = append(ports, p)
			}
		}
	}
	for i := range pod.Spec.InitContainers {
		if isRestartable(&pod.Spec.InitContainers[i]) {
			add(&pod.Spec.InitContainers[i])
		}
	}
	for i := range pod.Spec.Containers {
		add(&pod.Spec.Containers[i])
	}
	return ports
}

func isRestartable(c *v1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
}

// allAddresses is the host IP that binds every address.
const allAddresses = "0.0.0.0"

func sanitizePort(p v1.ContainerPort) (string, hostPort) {
	ip, proto := p.HostIP, string(p.Protocol)
	if ip == "" {
		ip = allAddresses
	}
	if proto == "" {
		proto = string(v1.ProtocolTCP)
	}
	return ip, hostPort{protocol: proto, port: p.HostPort}
}

// portsConflict: a host port of the pod is taken on the same address, on
// 0.0.0.0, or, for a port on 0.0.0.0, on any address.
func portsConflict(pod *v1.Pod, used map[string]map[hostPort]bool) bool {
	for _, p := range hostPorts(pod) {
		ip, hp := sanitizePort(p)
		if ip == allAddresses {
			for _, taken := range used {
				if taken[hp] {
					return true
				}
			}
			continue
		}
		if used[allAddresses][hp] || used[ip][hp] {
			return true
		}
	}
	return false
}

// fit lists every reason the pod does not fit the node next to the other
// pods, in the kubelet's order.
func fit(pod *v1.Pod, node *v1.Node, used nodeUsage) []fitFailure {
	var failures []fitFailure
	short := func(name v1.ResourceName, requested, usedAmount, capacity int64) {
		failures = append(failures, fitFailure{short: &InsufficientResource{Name: name, Requested: requested, Used: usedAmount, Capacity: capacity}})
	}
	var alloc amounts
	alloc.add(node.Status.Allocatable)
	if used.pods+1 > alloc.pods {
		short(v1.ResourcePods, 1, used.pods, alloc.pods)
	}
	var req amounts
	req.add(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}))
	if req.milliCPU > 0 && req.milliCPU > alloc.milliCPU-used.requested.milliCPU {
		short(v1.ResourceCPU, req.milliCPU, used.requested.milliCPU, alloc.milliCPU)
	}
	if req.memory > 0 && req.memory > alloc.memory-used.requested.memory {
		short(v1.ResourceMemory, req.memory, used.requested.memory, alloc.memory)
	}
	if req.ephemeralStorage > 0 && req.ephemeralStorage > alloc.ephemeralStorage-used.requested.ephemeralStorage {
		short(v1.ResourceEphemeralStorage, req.ephemeralStorage, used.requested.ephemeralStorage, alloc.ephemeralStorage)
	}
	names := make([]v1.ResourceName, 0, len(req.scalar))
	for name := range req.scalar {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if q := req.scalar[name]; q > 0 && q > alloc.scalar[name]-used.requested.scalar[name] {
			short(name, q, used.requested.scalar[name], alloc.scalar[name])
		}
	}

	if ok, _ := nodeaffinity.GetRequiredNodeAffinity(pod).Match(node); !ok {
		failures = append(failures, fitFailure{predicate: ReasonNodeAffinity, desc: nodeAffinityPredicateDesc})
	}
	if pod.Spec.NodeName != "" && pod.Spec.NodeName != node.Name {
		failures = append(failures, fitFailure{predicate: ReasonNodeName, desc: nodeNamePredicateDesc})
	}
	if portsConflict(pod, used.ports) {
		failures = append(failures, fitFailure{predicate: ReasonNodePorts, desc: nodePortsPredicateDesc})
	}
	if !core.IsStaticPod(pod) {
		noExecute := func(t *v1.Taint) bool { return t.Effect == v1.TaintEffectNoExecute }
		if _, untolerated := schedulingcorev1.FindMatchingUntoleratedTaint(logr.Discard(), node.Spec.Taints, pod.Spec.Tolerations, noExecute, false); untolerated {
			failures = append(failures, fitFailure{predicate: ReasonTaintToleration, desc: taintPredicateDesc})
		}
	}
	return failures
}

// withoutUncheckedRequests returns the pod, or a copy of it without the
// container requests of extended resources that the node does not list
// (resources of the cluster, or provided by DRA) or that DRA provides to
// that container.
func withoutUncheckedRequests(pod *v1.Pod, node *v1.Node) *v1.Pod {
	drop := func(c *v1.Container, name v1.ResourceName) bool {
		if isDRAExtendedResource(name) && draBacked(pod, c.Name, name) {
			return true
		}
		if isExtendedResource(name) {
			_, listed := node.Status.Allocatable[name]
			return !listed
		}
		return false
	}
	needed := false
	for _, cs := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			for name := range cs[i].Resources.Requests {
				needed = needed || drop(&cs[i], name)
			}
		}
	}
	if !needed {
		return pod
	}
	cp := pod.DeepCopy()
	for _, cs := range [][]v1.Container{cp.Spec.InitContainers, cp.Spec.Containers} {
		for i := range cs {
			for name := range cs[i].Resources.Requests {
				if drop(&cs[i], name) {
					delete(cs[i].Resources.Requests, name)
				}
			}
		}
	}
	return cp
}

// draBacked: DRA provides the extended resource to the container.
func draBacked(pod *v1.Pod, container string, name v1.ResourceName) bool {
	st := pod.Status.ExtendedResourceClaimStatus
	if st == nil {
		return false
	}
	for _, m := range st.RequestMappings {
		if v1.ResourceName(m.ResourceName) == name && m.ContainerName == container {
			return true
		}
	}
	return false
}

// deviceClassResourcePrefix starts the implicit extended resource name of
// a DRA device class.
const deviceClassResourcePrefix = "deviceclass.resource.kubernetes.io/"

func isDRAExtendedResource(name v1.ResourceName) bool {
	return isExtendedResource(name) || strings.HasPrefix(string(name), deviceClassResourcePrefix)
}

// isExtendedResource: a resource outside the kubernetes.io/ domain, with a
// name that is valid in a quota.
func isExtendedResource(name v1.ResourceName) bool {
	if isNativeResource(name) || strings.HasPrefix(string(name), v1.DefaultResourceRequestsPrefix) {
		return false
	}
	return len(validation.IsQualifiedName(v1.DefaultResourceRequestsPrefix+string(name))) == 0
}

func isNativeResource(name v1.ResourceName) bool {
	return !strings.Contains(string(name), "/") || strings.Contains(string(name), v1.ResourceDefaultNamespacePrefix)
}

// isScalarResource: a resource counted by name: extended resources,
// hugepages, other kubernetes.io/ resources and attachable volumes.
func isScalarResource(name v1.ResourceName) bool {
	s := string(name)
	return isExtendedResource(name) || strings.HasPrefix(s, v1.ResourceHugePagesPrefix) ||
		strings.Contains(s, v1.ResourceDefaultNamespacePrefix) || strings.HasPrefix(s, v1.ResourceAttachableVolumesPrefix)
}
