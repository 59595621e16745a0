package kubeapi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/nodekit/nodekit/core"
)

// DefaultMirrorPeriod is how often Mirrors.Run syncs the mirror pods.
const DefaultMirrorPeriod = 10 * time.Second

// MirrorsConfig configures Mirrors.
type MirrorsConfig struct {
	// Client of the apiserver. Required.
	Client kubernetes.Interface
	// NodeName: the node whose static pods are mirrored, and the owner of
	// the mirror pods. Required; the Node object must exist.
	NodeName string
	// Period of Run. Default DefaultMirrorPeriod.
	Period time.Duration
	Clock  clock.WithTicker
	Logger *zap.Logger
}

// Mirrors keeps a node's mirror pods: for each static pod (from a file or
// HTTP source) a copy in the apiserver, so that the cluster sees it, as
// the kubelet keeps them. A mirror pod carries the static pod's hash in
// core.AnnotationConfigMirror and is owned by the Node.
type Mirrors struct {
	cfg MirrorsConfig
	log *zap.Logger

	mu      sync.Mutex
	nodeUID types.UID
}

// NewMirrors returns Mirrors for cfg.
func NewMirrors(cfg MirrorsConfig) (*Mirrors, error) {
	var errs []error
	if cfg.Client == nil {
		errs = append(errs, errors.New("Client is required"))
	}
	if cfg.NodeName == "" {
		errs = append(errs, errors.New("NodeName is required"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("kubeapi: mirrors: %w: %w", core.ErrInvalid, errors.Join(errs...))
	}
	if cfg.Period < 0 {
		return nil, fmt.Errorf("kubeapi: mirrors: Period %s must not be negative: %w", cfg.Period, core.ErrInvalid)
	}
	if cfg.Period == 0 {
		cfg.Period = DefaultMirrorPeriod
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &Mirrors{cfg: cfg, log: cfg.Logger}, nil
}

// Run syncs the mirror pods every Period, and at once whenever changed
// receives, until ctx ends: static gives the node's static pods (those
// from file and HTTP sources), mirrors the mirror pods the apiserver has
// now (PodSource.MirrorPods). A deleted mirror pod comes back at the next
// sync. Failures are logged and retried at the next sync.
func (m *Mirrors) Run(ctx context.Context, changed <-chan struct{}, static, mirrors func() []*v1.Pod) error {
	t := m.cfg.Clock.NewTicker(m.cfg.Period)
	defer t.Stop()
	for {
		if _, err := m.Sync(ctx, static(), mirrors()); err != nil && ctx.Err() == nil {
			m.log.Warn("mirror pods not in sync", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C():
		case <-changed:
		}
	}
}

// MirrorResult counts what a Sync changed.
type MirrorResult struct {
	Created, Deleted int
}

// Sync makes the mirror pods match the static pods, given the mirror pods
// the apiserver has now (PodSource.MirrorPods): a static pod without a
// mirror gets one; a mirror whose static pod is gone (orphaned), whose
// hash is not its static pod's (stale: the manifest changed) or that is
// being deleted is deleted, with its UID as precondition, and a stale or
// deleted one is created again. Failures do not stop the other pods; the
// errors are joined.
func (m *Mirrors) Sync(ctx context.Context, static, mirrors []*v1.Pod) (MirrorResult, error) {
	var res MirrorResult
	var errs []error
	want := map[string]*v1.Pod{}
	for _, p := range static {
		want[p.Namespace+"/"+p.Name] = p
	}
	have := map[string]*v1.Pod{}
	for _, mp := range mirrors {
		key := mp.Namespace + "/" + mp.Name
		sp := want[key]
		if sp != nil && mp.DeletionTimestamp == nil && mp.Annotations[core.AnnotationConfigMirror] == sp.Annotations[core.AnnotationConfigHash] {
			have[key] = mp
			continue
		}
		why := "orphaned"
		switch {
		case sp != nil && mp.DeletionTimestamp != nil:
			why = "being deleted"
		case sp != nil:
			why = "stale"
		}
		if err := m.delete(ctx, mp); err != nil {
			errs = append(errs, err)
			continue
		}
		m.log.Info("mirror pod deleted", zap.String("pod", key), zap.String("why", why))
		res.Deleted++
	}
	for key, sp := range want {
		if have[key] != nil {
			continue
		}
		if err := m.create(ctx, sp); err != nil {
			errs = append(errs, err)
			continue
		}
		res.Created++
	}
	return res, errors.Join(errs...)
}

// create creates the mirror pod of static pod sp.
func (m *Mirrors) create(ctx context.Context, sp *v1.Pod) error {
	uid, err := m.nodeUIDOnce(ctx)
	if err != nil {
		return err
	}
	hash := sp.Annotations[core.AnnotationConfigHash]
	mp := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: sp.Name, Namespace: sp.Namespace,
			Labels:      maps.Clone(sp.Labels),
			Annotations: maps.Clone(sp.Annotations),
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: m.cfg.NodeName, UID: uid, Controller: ptr.To(true),
			}},
		},
		Spec: *sp.Spec.DeepCopy(),
	}
	if mp.Annotations == nil {
		mp.Annotations = map[string]string{}
	}
	mp.Annotations[core.AnnotationConfigMirror] = hash
	got, err := m.cfg.Client.CoreV1().Pods(mp.Namespace).Create(ctx, mp, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// Another writer was first; fine if it is the same mirror.
		got, gerr := m.cfg.Client.CoreV1().Pods(mp.Namespace).Get(ctx, mp.Name, metav1.GetOptions{})
		if gerr == nil && got.Annotations[core.AnnotationConfigMirror] == hash {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("create mirror pod %s/%s: %w", mp.Namespace, mp.Name, err)
	}
	m.log.Info("mirror pod created", zap.String("pod", got.Namespace+"/"+got.Name), zap.String("uid", string(got.UID)))
	return nil
}

// delete deletes a mirror pod at once, if it is still the one given.
func (m *Mirrors) delete(ctx context.Context, mp *v1.Pod) error {
	zero := int64(0)
	uid := mp.UID
	err := m.cfg.Client.CoreV1().Pods(mp.Namespace).Delete(ctx, mp.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete mirror pod %s/%s: %w", mp.Namespace, mp.Name, err)
	}
	return nil
}

// nodeUIDOnce reads the Node's UID, once it has one.
func (m *Mirrors) nodeUIDOnce(ctx context.Context) (types.UID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.nodeUID != "" {
		return m.nodeUID, nil
	}
	n, err := m.cfg.Client.CoreV1().Nodes().Get(ctx, m.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("node %s, owner of the mirror pods: %w", m.cfg.NodeName, err)
	}
	m.nodeUID = n.UID
	return n.UID, nil
}
