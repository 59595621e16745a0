package kubeapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	nodeutil "k8s.io/component-helpers/node/util"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// Defaults of NodeStatusConfig, the kubelet's.
const (
	// DefaultNodeStatusUpdateFrequency is how often the status is computed
	// and sent if it changed (nodeStatusUpdateFrequency).
	DefaultNodeStatusUpdateFrequency = 10 * time.Second
	// DefaultNodeStatusReportFrequency is how often the status is sent
	// even if nothing changed (nodeStatusReportFrequency).
	DefaultNodeStatusReportFrequency = 5 * time.Minute
	// DefaultMaxPods is the pods capacity (maxPods).
	DefaultMaxPods = 110
	// DefaultMaxImages is how many images the status lists, the largest
	// first (nodeStatusMaxImages).
	DefaultMaxImages = 50
)

const (
	// nodeStatusUpdateRetry is how many times an update is tried at once.
	nodeStatusUpdateRetry = 5
	// runtimeDownAfter: a runtime not seen ready for this long is down.
	runtimeDownAfter = 30 * time.Second
	// maxNamesPerImage bounds the names listed for one image.
	maxNamesPerImage = 5
	// registerBackoffInitial and registerBackoffMax bound the waits
	// between registration attempts.
	registerBackoffInitial = 100 * time.Millisecond
	registerBackoffMax     = 7 * time.Second
	// annotationControllerManagedAttach asks the attach/detach controller,
	// not the node, to attach the node's volumes.
	annotationControllerManagedAttach = "volumes.kubernetes.io/controller-managed-attach-detach"
)

// MachineInfo is what the machine is: its resources and identity.
type MachineInfo struct {
	// Capacity is the machine's cpu, memory and ephemeral-storage (the
	// node is not ready without them), its huge pages (hugepages-<size>)
	// and any extended resources. The pods capacity is
	// NodeStatusConfig.MaxPods.
	Capacity v1.ResourceList
	// MachineID, SystemUUID and BootID identify the machine and its
	// current boot; a new BootID is recorded as a Rebooted event.
	MachineID, SystemUUID, BootID string
	// KernelVersion and OSImage (e.g. "Debian GNU/Linux 12 (bookworm)").
	KernelVersion, OSImage string
}

// MachineInfoer reports the machine's capacity and identity.
type MachineInfoer interface {
	MachineInfo(ctx context.Context) (MachineInfo, error)
}

// MachineInfoFunc adapts a function to MachineInfoer.
type MachineInfoFunc func(ctx context.Context) (MachineInfo, error)

// MachineInfo calls f.
func (f MachineInfoFunc) MachineInfo(ctx context.Context) (MachineInfo, error) { return f(ctx) }

// Addresser reports the node's addresses, in the kubelet's order: the
// node IPs (InternalIP), then the hostname (Hostname).
type Addresser interface {
	NodeAddresses(ctx context.Context) ([]v1.NodeAddress, error)
}

// AddressesFunc adapts a function to Addresser.
type AddressesFunc func(ctx context.Context) ([]v1.NodeAddress, error)

// NodeAddresses calls f.
func (f AddressesFunc) NodeAddresses(ctx context.Context) ([]v1.NodeAddress, error) { return f(ctx) }

// HealthCheck is a check of a part of the node agent that must be healthy
// for the node to be ready; PLEG.Healthy is one. Check must be quick and
// must not call the runtime. An unhealthy check makes the node not ready
// with the message "<Name> is not healthy: <error>".
type HealthCheck struct {
	Name  string
	Check func() (bool, error)
}

// PressureReporter reports whether the node is under resource pressure,
// as the eviction manager decides it.
type PressureReporter interface {
	IsUnderMemoryPressure() bool
	IsUnderDiskPressure() bool
	IsUnderPIDPressure() bool
}

// ImageLister lists the runtime's images; core.ImageManager has it.
type ImageLister interface {
	ListImages(ctx context.Context, filter *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error)
}

// NodeStatusConfig configures a NodeStatus. The sources (Machine, Runtime,
// Addresses, HealthChecks, Pressure, Images) are small interfaces, each
// sized to what one part of the node agent knows, so that the agent wires
// each to its own subsystem.
type NodeStatusConfig struct {
	// Client of the apiserver. Required. The status patch is sent with
	// the context of the call but, as the kubelet's heartbeat client, it
	// should have a timeout (rest.Config.Timeout) of about UpdateFrequency.
	Client kubernetes.Interface
	// NodeName is the Node's name. Required.
	NodeName string
	// Hostname is the node's kubernetes.io/hostname label and Hostname
	// address. Default NodeName.
	Hostname string

	// Labels are added to the kubelet's (kubernetes.io/hostname,
	// kubernetes.io/os, kubernetes.io/arch and their beta.kubernetes.io
	// twins) when the Node is created, and win over them. Of an existing
	// Node only the kubelet's labels are reconciled.
	Labels map[string]string
	// Taints are the Node's taints when it is created
	// (registerWithTaints); an existing Node keeps its own.
	Taints []v1.Taint
	// Unschedulable creates the Node cordoned (spec.unschedulable).
	Unschedulable bool
	// ControllerManagedAttachDetach marks the Node so that the
	// attach/detach controller attaches its volumes, as the kubelet does
	// by default; without it the node is expected to attach them itself.
	// Reconciled on an existing Node.
	ControllerManagedAttachDetach bool

	// Machine reports the machine's capacity and identity. Required.
	Machine MachineInfoer
	// Runtime is asked for its readiness (RuntimeReady and NetworkReady),
	// handlers and features, name and version at every update. Required;
	// a *cri.Runtime has it.
	Runtime core.StatusChecker
	// Addresses reports the node's addresses. Nil: the Hostname address
	// alone.
	Addresses Addresser
	// HealthChecks must all pass for the node to be ready (the PLEG's,
	// named "PLEG").
	HealthChecks []HealthCheck
	// Pressure reports the node's resource pressure. Nil: none.
	Pressure PressureReporter
	// Images lists the images the status reports. Nil: none reported.
	Images ImageLister
	// MaxImages bounds the images reported, the largest first. Default
	// DefaultMaxImages; negative: all.
	MaxImages int

	// MaxPods is the pods capacity. Default DefaultMaxPods.
	MaxPods int64
	// SystemReserved and KubeReserved are taken from capacity to give
	// allocatable.
	SystemReserved, KubeReserved v1.ResourceList
	// EvictionHard are the hard eviction thresholds, in the kubelet's
	// form ({"memory.available": "100Mi", "nodefs.available": "10%"});
	// what memory.available and nodefs.available keep free is taken from
	// allocatable memory and ephemeral-storage. Other signals are ignored
	// here. Nil: none (the kubelet's default is memory.available 100Mi,
	// nodefs.available 10%, imagefs.available 15%, nodefs.inodesFree 5%).
	EvictionHard map[string]string

	// KubeletVersion is the version the node reports (what kubectl shows
	// as VERSION).
	KubeletVersion string
	// KubeletPort is the port of the node's kubelet API, if it serves one
	// (10250 for a kubelet).
	KubeletPort int32

	// UpdateFrequency is how often Run computes the status and sends it
	// if it changed. Default DefaultNodeStatusUpdateFrequency.
	UpdateFrequency time.Duration
	// ReportFrequency is how often the status is sent even if nothing
	// changed, renewing the conditions' heartbeat times; after a change
	// the next report comes after ReportFrequency ± 50 % (random), as the
	// kubelet spreads its nodes' reports. Default
	// DefaultNodeStatusReportFrequency.
	ReportFrequency time.Duration
	// Recorder records the node's events (NodeReady, NodeNotReady,
	// NodeHasSufficientMemory, ..., NodeSchedulable, Rebooted). Nil: none.
	Recorder Recorder
	Clock    clock.WithTicker
	Logger   *zap.Logger
}

// NodeStatus registers the node's Node object and keeps its status, as
// the kubelet does. It is one type because the two share what they do and
// know: registration creates the Node with the status the updates compute,
// and both read the same sources.
//
// Register creates the Node (labels, taints, status), or reconciles the
// one that exists, retrying with back-off. Run then computes the status
// every UpdateFrequency from the sources: capacity and allocatable
// (capacity less SystemReserved, KubeReserved and the hard eviction
// thresholds), addresses, node info, runtime handlers, daemon endpoints,
// images, and the conditions the kubelet owns (MemoryPressure,
// DiskPressure, PIDPressure and Ready, which is KubeletNotReady with every
// reason in the kubelet's words: "container runtime network not ready:
// ...", "PLEG is not healthy: ..."). It sends the status, with
// component-helpers' PatchNodeStatus, only when something changed (the
// heartbeat times aside) or when ReportFrequency has passed since the last
// time; conditions others own are kept. Events about the node are recorded
// once the status that caused them is in the apiserver.
//
// Register, UpdateStatus and Run are safe to call concurrently; they take
// turns.
type NodeStatus struct {
	cfg      NodeStatusConfig
	log      *zap.Logger
	reserved v1.ResourceList
	hard     []hardEvictionThreshold
	uid      atomic.Pointer[types.UID]

	mu                sync.Mutex // serializes Register and UpdateStatus; guards what follows
	registered        bool
	lastReport        time.Time
	reportDelay       time.Duration
	lastUnschedulable bool
	rt                runtimeState
}

// runtimeState is what the runtime last said, as the kubelet keeps it.
type runtimeState struct {
	lastReady  time.Time // when the runtime last reported RuntimeReady
	runtimeErr error
	networkErr error
	name       string // from Version
	handlers   []v1.NodeRuntimeHandler
	features   *v1.NodeFeatures
}

// NewNodeStatus returns a NodeStatus for cfg.
func NewNodeStatus(cfg NodeStatusConfig) (*NodeStatus, error) {
	var errs []error
	if cfg.Client == nil {
		errs = append(errs, errors.New("Client is required"))
	}
	if cfg.NodeName == "" {
		errs = append(errs, errors.New("NodeName is required"))
	}
	if cfg.Machine == nil {
		errs = append(errs, errors.New("Machine is required"))
	}
	if cfg.Runtime == nil {
		errs = append(errs, errors.New("Runtime is required"))
	}
	for i, h := range cfg.HealthChecks {
		if h.Name == "" || h.Check == nil {
			errs = append(errs, fmt.Errorf("HealthChecks[%d] needs a Name and a Check", i))
		}
	}
	if cfg.MaxPods < 0 {
		errs = append(errs, fmt.Errorf("MaxPods %d must not be negative", cfg.MaxPods))
	}
	if cfg.UpdateFrequency < 0 {
		errs = append(errs, fmt.Errorf("UpdateFrequency %s must not be negative", cfg.UpdateFrequency))
	}
	if cfg.ReportFrequency < 0 {
		errs = append(errs, fmt.Errorf("ReportFrequency %s must not be negative", cfg.ReportFrequency))
	}
	hard, err := parseEvictionHard(cfg.EvictionHard)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("kubeapi: node status: %w: %w", core.ErrInvalid, errors.Join(errs...))
	}
	if cfg.Hostname == "" {
		cfg.Hostname = cfg.NodeName
	}
	if cfg.MaxImages == 0 {
		cfg.MaxImages = DefaultMaxImages
	}
	if cfg.MaxPods == 0 {
		cfg.MaxPods = DefaultMaxPods
	}
	if cfg.UpdateFrequency == 0 {
		cfg.UpdateFrequency = DefaultNodeStatusUpdateFrequency
	}
	if cfg.ReportFrequency == 0 {
		cfg.ReportFrequency = DefaultNodeStatusReportFrequency
	}
	if cfg.Recorder == nil {
		cfg.Recorder = NopRecorder{}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	reserved := v1.ResourceList{}
	for _, l := range []v1.ResourceList{cfg.SystemReserved, cfg.KubeReserved} {
		for name, q := range l {
			sum := reserved[name]
			sum.Add(q)
			reserved[name] = sum
		}
	}
	s := &NodeStatus{cfg: cfg, log: cfg.Logger.With(zap.String("node", cfg.NodeName)), reserved: reserved, hard: hard}
	s.rt.networkErr = errors.New("network state unknown")
	return s, nil
}

// parseEvictionHard reads the thresholds that reserve allocatable
// resources: memory.available and nodefs.available, each a quantity or a
// percentage of the capacity.
func parseEvictionHard(m map[string]string) ([]hardEvictionThreshold, error) {
	var out []hardEvictionThreshold
	var errs []error
	for signal, value := range m {
		t := hardEvictionThreshold{}
		switch signal {
		case "memory.available":
			t.resource = v1.ResourceMemory
		case "nodefs.available":
			t.resource = v1.ResourceEphemeralStorage
		default:
			continue
		}
		if p, ok := strings.CutSuffix(value, "%"); ok {
			f, err := strconv.ParseFloat(p, 32)
			if err != nil || f < 0 || f > 100 {
				errs = append(errs, fmt.Errorf("EvictionHard[%s] %q: a percentage must be between 0%% and 100%%", signal, value))
				continue
			}
			t.percentage = float32(f) / 100
		} else {
			q, err := resource.ParseQuantity(value)
			if err != nil || q.Sign() < 0 {
				errs = append(errs, fmt.Errorf("EvictionHard[%s] %q: not a quantity of at least 0", signal, value))
				continue
			}
			t.quantity = &q
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b hardEvictionThreshold) int { return cmp.Compare(a.resource, b.resource) })
	return out, errors.Join(errs...)
}

// NodeRef is the reference to record events about the node against: kind
// Node, its name and, once Register or an update has seen the Node, its
// UID.
func (s *NodeStatus) NodeRef() *v1.ObjectReference {
	var uid types.UID
	if p := s.uid.Load(); p != nil {
		uid = *p
	}
	return NodeReference(s.cfg.NodeName, uid)
}

func (s *NodeStatus) setUID(uid types.UID) {
	if uid != "" {
		s.uid.Store(&uid)
	}
}

// Run registers the node unless it is (Register), then updates its status
// at once and every UpdateFrequency until ctx ends, and returns ctx's
// error. Failed updates are logged and tried again at the next one. As
// the kubelet, it does not register the node again if the Node is deleted
// meanwhile.
func (s *NodeStatus) Run(ctx context.Context) error {
	if err := s.Register(ctx); err != nil {
		return err
	}
	t := s.cfg.Clock.NewTicker(s.cfg.UpdateFrequency)
	defer t.Stop()
	for {
		if err := s.UpdateStatus(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("node status not updated", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C():
		}
	}
}

// UpdateStatus computes the node's status from the sources once and sends
// it if it changed, the heartbeat times aside, or if the report period
// has passed; it tries up to 5 times at once, the first time reading the
// Node from the apiserver's cache, then from storage. The Node must
// exist.
func (s *NodeStatus) UpdateStatus(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.read(ctx)
	var err error
	for try := range nodeStatusUpdateRetry {
		if err = s.tryUpdate(ctx, try, r); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.log.Debug("node status update failed, trying again", zap.Int("try", try+1), zap.Error(err))
	}
	return fmt.Errorf("kubeapi: node %s: status not updated after %d tries: %w", s.cfg.NodeName, nodeStatusUpdateRetry, err)
}

func (s *NodeStatus) tryUpdate(ctx context.Context, try int, r *nodeReading) error {
	opts := metav1.GetOptions{}
	if try == 0 {
		opts.ResourceVersion = "0" // the apiserver's watch cache will do
	}
	old, err := s.cfg.Client.CoreV1().Nodes().Get(ctx, s.cfg.NodeName, opts)
	if err != nil {
		return fmt.Errorf("get node: %w", err)
	}
	s.setUID(old.UID)
	s.recordSchedulable(old)
	node := old.DeepCopy()
	labelsSet := setOSLabels(node)
	now := s.cfg.Clock.Now()
	events := setNodeStatus(node, r, now)
	changed := labelsSet || nodeStatusChanged(&old.Status, &node.Status)
	if !changed && now.Sub(s.lastReport) < s.cfg.ReportFrequency+s.reportDelay {
		return nil
	}
	// After a change, or at start, the next report comes at a random
	// point of the period, so that nodes that changed together do not
	// report together; then every period.
	if changed || s.lastReport.IsZero() {
		s.reportDelay = time.Duration(float64(s.cfg.ReportFrequency) * (rand.Float64() - 0.5))
	} else {
		s.reportDelay = 0
	}
	if _, _, err := nodeutil.PatchNodeStatus(ctxCoreV1{s.cfg.Client.CoreV1(), ctx}, types.NodeName(s.cfg.NodeName), old, node); err != nil {
		return err
	}
	s.lastReport = s.cfg.Clock.Now()
	s.log.Debug("node status sent", zap.Bool("changed", changed))
	s.record(events)
	return nil
}

// recordSchedulable records the node being cordoned or uncordoned.
func (s *NodeStatus) recordSchedulable(node *v1.Node) {
	if node.Spec.Unschedulable == s.lastUnschedulable {
		return
	}
	s.lastUnschedulable = node.Spec.Unschedulable
	reason := EventNodeSchedulable
	if node.Spec.Unschedulable {
		reason = EventNodeNotSchedulable
	}
	s.record([]nodeEvent{{v1.EventTypeNormal, reason, fmt.Sprintf("Node %s status is now: %s", s.cfg.NodeName, reason)}})
}

func (s *NodeStatus) record(events []nodeEvent) {
	if len(events) == 0 {
		return
	}
	ref := s.NodeRef()
	for _, e := range events {
		s.log.Info("node event", zap.String("type", e.eventtype), zap.String("reason", e.reason), zap.String("message", e.message))
		s.cfg.Recorder.Eventf(ref, e.eventtype, e.reason, "%s", e.message)
	}
}

// read takes one reading of every source.
func (s *NodeStatus) read(ctx context.Context) *nodeReading {
	r := &nodeReading{
		nodeName: s.cfg.NodeName, hostname: s.cfg.Hostname, maxPods: s.cfg.MaxPods,
		reserved: s.reserved, hardEviction: s.hard,
		kubeletVersion: s.cfg.KubeletVersion, kubeletPort: s.cfg.KubeletPort,
	}
	r.machine, r.machineErr = s.cfg.Machine.MachineInfo(ctx)
	if r.machineErr != nil {
		s.log.Warn("machine info not read", zap.Error(r.machineErr))
	}
	if s.cfg.Addresses != nil {
		r.addresses, r.addressesErr = s.cfg.Addresses.NodeAddresses(ctx)
		if r.addressesErr != nil {
			s.log.Warn("node addresses not read", zap.Error(r.addressesErr))
		}
	} else {
		r.addresses = []v1.NodeAddress{{Type: v1.NodeHostName, Address: s.cfg.Hostname}}
	}
	s.readRuntime(ctx, r)
	for _, h := range s.cfg.HealthChecks {
		if ok, err := h.Check(); !ok {
			r.notReady = append(r.notReady, fmt.Errorf("%s is not healthy: %v", h.Name, err))
		}
	}
	if s.rt.runtimeErr != nil {
		r.notReady = append(r.notReady, s.rt.runtimeErr)
	}
	if s.rt.networkErr != nil {
		r.notReady = append(r.notReady, s.rt.networkErr)
	}
	if p := s.cfg.Pressure; p != nil {
		r.underPressure = [len(pressures)]bool{p.IsUnderMemoryPressure(), p.IsUnderDiskPressure(), p.IsUnderPIDPressure()}
	}
	if s.cfg.Images != nil {
		imgs, err := s.cfg.Images.ListImages(ctx, nil)
		if err != nil {
			// Unlike the kubelet, which then reports no images, the
			// last list stays.
			s.log.Warn("images not listed", zap.Error(err))
		} else {
			r.images, r.reportImages = nodeImages(imgs, s.cfg.MaxImages), true
		}
	}
	return r
}

// readRuntime asks the runtime for its status and version, keeps what it
// said in s.rt, and adds to r the runtime's part of the status and the
// first reasons the node is not ready.
func (s *NodeStatus) readRuntime(ctx context.Context, r *nodeReading) {
	st, err := s.cfg.Runtime.Status(ctx, false)
	now := s.cfg.Clock.Now()
	switch {
	case err != nil:
		s.log.Warn("container runtime status check failed", zap.Error(err))
	default:
		conds := st.GetStatus().GetConditions()
		if c := runtimeCondition(conds, runtimeapi.NetworkReady); c == nil || !c.Status {
			s.rt.networkErr = fmt.Errorf("container runtime network not ready: %s", conditionString(c))
		} else {
			s.rt.networkErr = nil
		}
		if c := runtimeCondition(conds, runtimeapi.RuntimeReady); c == nil || !c.Status {
			s.rt.runtimeErr = fmt.Errorf("container runtime not ready: %s", conditionString(c))
			break
		}
		s.rt.runtimeErr = nil
		s.rt.handlers = runtimeHandlers(st.GetRuntimeHandlers())
		if f := st.GetFeatures(); f != nil {
			s.rt.features = &v1.NodeFeatures{SupplementalGroupsPolicy: new(f.GetSupplementalGroupsPolicy())}
		}
		s.rt.lastReady = now
	}
	switch {
	case s.rt.lastReady.IsZero():
		r.notReady = append(r.notReady, errors.New("container runtime status check may not have completed yet"))
	case !s.rt.lastReady.Add(runtimeDownAfter).After(now):
		r.notReady = append(r.notReady, errors.New("container runtime is down"))
	}
	r.runtimeHandlers, r.runtimeFeatures = s.rt.handlers, s.rt.features

	if v, err := s.cfg.Runtime.Version(ctx); err == nil {
		s.rt.name = v.GetRuntimeName()
		r.runtimeVersion = s.rt.name + "://" + v.GetRuntimeVersion()
	} else if s.rt.name != "" {
		r.runtimeVersion = s.rt.name + "://Unknown"
	}
}

func runtimeCondition(conds []*runtimeapi.RuntimeCondition, t string) *runtimeapi.RuntimeCondition {
	for _, c := range conds {
		if c.GetType() == t {
			return c
		}
	}
	return nil
}

// conditionString writes a runtime condition as the kubelet does in its
// messages.
func conditionString(c *runtimeapi.RuntimeCondition) string {
	if c == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%s=%t reason:%s message:%s", c.GetType(), c.GetStatus(), c.GetReason(), c.GetMessage())
}

// runtimeHandlers converts the runtime's handlers, in order of name.
func runtimeHandlers(hs []*runtimeapi.RuntimeHandler) []v1.NodeRuntimeHandler {
	out := make([]v1.NodeRuntimeHandler, 0, len(hs))
	for _, h := range hs {
		out = append(out, v1.NodeRuntimeHandler{Name: h.GetName(), Features: &v1.NodeRuntimeHandlerFeatures{
			RecursiveReadOnlyMounts: new(h.GetFeatures().GetRecursiveReadOnlyMounts()),
			UserNamespaces:          new(h.GetFeatures().GetUserNamespaces()),
		}})
	}
	slices.SortFunc(out, func(a, b v1.NodeRuntimeHandler) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// nodeImages lists images for the status: the largest first, at most
// limit of them (all if limit < 0), each with up to 5 names, digests
// first.
func nodeImages(imgs []*runtimeapi.Image, limit int) []v1.ContainerImage {
	sorted := slices.Clone(imgs)
	slices.SortStableFunc(sorted, func(a, b *runtimeapi.Image) int { return cmp.Compare(b.GetSize(), a.GetSize()) })
	if limit >= 0 && len(sorted) > limit {
		sorted = sorted[:limit]
	}
	out := make([]v1.ContainerImage, 0, len(sorted))
	for _, img := range sorted {
		names := append(slices.Clone(img.GetRepoDigests()), img.GetRepoTags()...)
		if len(names) > maxNamesPerImage {
			names = names[:maxNamesPerImage]
		}
		out = append(out, v1.ContainerImage{Names: names, SizeBytes: int64(img.GetSize())})
	}
	return out
}

// ctxCoreV1 gives PatchNodeStatus, which has no context parameter, the
// caller's context.
type ctxCoreV1 struct {
	corev1client.CoreV1Interface
	ctx context.Context
}

func (c ctxCoreV1) Nodes() corev1client.NodeInterface {
	return ctxNodes{c.CoreV1Interface.Nodes(), c.ctx}
}

type ctxNodes struct {
	corev1client.NodeInterface
	ctx context.Context
}

func (n ctxNodes) Patch(_ context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (*v1.Node, error) {
	return n.NodeInterface.Patch(n.ctx, name, pt, data, opts, subresources...)
}
