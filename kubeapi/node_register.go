package kubeapi

import (
	"context"
	"maps"
	goruntime "runtime"
	"slices"

	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	nodeutil "k8s.io/component-helpers/node/util"
	kubeletapis "k8s.io/kubelet/pkg/apis"
)

// defaultLabels are the labels the kubelet owns on its Node: those of an
// existing Node are reconciled with the ones it would be created with.
var defaultLabels = [...]string{
	v1.LabelHostname,
	v1.LabelTopologyZone,
	v1.LabelTopologyRegion,
	v1.LabelFailureDomainBetaZone,
	v1.LabelFailureDomainBetaRegion,
	v1.LabelInstanceTypeStable,
	v1.LabelInstanceType,
	v1.LabelOSStable,
	v1.LabelArchStable,
	v1.LabelWindowsBuild,
	kubeletapis.LabelOS,
	kubeletapis.LabelArch,
}

// Register registers the node with the apiserver, as the kubelet: it
// creates the Node with its labels, taints, annotations and a first
// status; if a Node of that name exists (or creating it is forbidden, as
// it is for a node whose Node exists), it reconciles that one instead: the
// kubelet's labels and the attach/detach annotation as configured, missing
// capacity and allocatable, and the huge page sizes of capacity; its
// taints, other labels and spec stay. Attempts are retried with back-off
// from 100 ms to 7 s until one works or ctx ends (then ctx's error is
// returned). Once registered, Register returns at once.
func (s *NodeStatus) Register(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.registered {
		return nil
	}
	step := registerBackoffInitial
	for {
		if s.tryRegister(ctx) {
			s.registered = true
			return nil
		}
		t := s.cfg.Clock.NewTimer(step)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C():
		}
		step = min(2*step, registerBackoffMax)
	}
}

// tryRegister makes one attempt at registering the node.
func (s *NodeStatus) tryRegister(ctx context.Context) bool {
	node, events := s.initialNode(ctx)
	nodes := s.cfg.Client.CoreV1().Nodes()
	created, err := nodes.Create(ctx, node, metav1.CreateOptions{})
	if err == nil {
		s.setUID(created.UID)
		s.log.Info("node registered", zap.String("uid", string(created.UID)))
		s.recordSchedulable(created)
		s.record(events)
		return true
	}
	if !apierrors.IsAlreadyExists(err) && !apierrors.IsForbidden(err) {
		s.log.Warn("node not registered", zap.Error(err))
		return false
	}
	existing, gerr := nodes.Get(ctx, s.cfg.NodeName, metav1.GetOptions{})
	if gerr != nil {
		s.log.Warn("node not registered, and the existing node not read", zap.NamedError("create", err), zap.Error(gerr))
		return false
	}
	original := existing.DeepCopy()
	if reconcileNode(node, existing) {
		if _, _, err := nodeutil.PatchNodeStatus(ctxCoreV1{s.cfg.Client.CoreV1(), ctx}, types.NodeName(s.cfg.NodeName), original, existing); err != nil {
			s.log.Warn("existing node not reconciled", zap.Error(err))
			return false
		}
		s.log.Info("existing node reconciled", zap.String("uid", string(existing.UID)))
	} else {
		s.log.Info("node was registered before", zap.String("uid", string(existing.UID)))
	}
	s.setUID(existing.UID)
	return true
}

// initialNode is the Node as registration creates it, with the events to
// record once it is.
func (s *NodeStatus) initialNode(ctx context.Context) (*v1.Node, []nodeEvent) {
	node := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: s.cfg.NodeName,
			Labels: map[string]string{
				v1.LabelHostname:      s.cfg.Hostname,
				v1.LabelOSStable:      goruntime.GOOS,
				v1.LabelArchStable:    goruntime.GOARCH,
				kubeletapis.LabelOS:   goruntime.GOOS,
				kubeletapis.LabelArch: goruntime.GOARCH,
			},
		},
		Spec: v1.NodeSpec{Taints: slices.Clone(s.cfg.Taints), Unschedulable: s.cfg.Unschedulable},
	}
	maps.Copy(node.Labels, s.cfg.Labels)
	if s.cfg.ControllerManagedAttachDetach {
		node.Annotations = map[string]string{annotationControllerManagedAttach: "true"}
	}
	events := setNodeStatus(node, s.read(ctx), s.cfg.Clock.Now())
	return node, events
}

// reconcileNode brings existing, a Node registered before, in line with
// initial, the Node registration would create, in what the kubelet
// reconciles; it reports whether anything changed.
func reconcileNode(initial, existing *v1.Node) bool {
	changed := false
	// The attach/detach annotation.
	want, set := initial.Annotations[annotationControllerManagedAttach]
	if have, ok := existing.Annotations[annotationControllerManagedAttach]; have != want || ok != set {
		if set {
			if existing.Annotations == nil {
				existing.Annotations = map[string]string{}
			}
			existing.Annotations[annotationControllerManagedAttach] = want
		} else {
			delete(existing.Annotations, annotationControllerManagedAttach)
		}
		changed = true
	}
	// The kubelet's labels, those registration sets.
	if existing.Labels == nil {
		existing.Labels = map[string]string{}
	}
	for _, key := range defaultLabels {
		value, ok := initial.Labels[key]
		if !ok {
			continue
		}
		if existing.Labels[key] != value {
			existing.Labels[key] = value
			changed = true
		}
		if value == "" {
			delete(existing.Labels, key)
		}
	}
	// Capacity and allocatable, if missing.
	st, fresh := &existing.Status, &initial.Status
	if st.Capacity == nil {
		st.Capacity = fresh.Capacity.DeepCopy()
		changed = changed || st.Capacity != nil
	}
	if st.Allocatable == nil {
		st.Allocatable = fresh.Allocatable.DeepCopy()
		changed = changed || st.Allocatable != nil
	}
	if st.Capacity == nil {
		st.Capacity = v1.ResourceList{}
	}
	if st.Allocatable == nil {
		st.Allocatable = v1.ResourceList{}
	}
	// Huge pages: the sizes the machine has now, and only those.
	for name, c := range fresh.Capacity {
		if !isHugePages(name) {
			continue
		}
		have, ok := st.Capacity[name]
		if !ok || have.Cmp(c) != 0 {
			st.Capacity[name] = c.DeepCopy()
			changed = true
		}
		if a, ha := st.Allocatable[name]; !ok || !ha || a.Cmp(fresh.Allocatable[name]) != 0 {
			st.Allocatable[name] = fresh.Allocatable[name].DeepCopy()
			changed = true
		}
	}
	for name := range st.Capacity {
		if _, ok := fresh.Capacity[name]; isHugePages(name) && !ok {
			delete(st.Capacity, name)
			delete(st.Allocatable, name)
			changed = true
		}
	}
	return changed
}

// setOSLabels sets the kubernetes.io/os and kubernetes.io/arch labels if
// they are missing or wrong, as every status update of the kubelet does,
// and reports whether it did.
func setOSLabels(node *v1.Node) bool {
	changed := false
	for key, value := range map[string]string{v1.LabelOSStable: goruntime.GOOS, v1.LabelArchStable: goruntime.GOARCH} {
		if have, ok := node.Labels[key]; !ok || have != value {
			if node.Labels == nil {
				node.Labels = map[string]string{}
			}
			node.Labels[key] = value
			changed = true
		}
	}
	return changed
}
