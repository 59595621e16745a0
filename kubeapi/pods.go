package kubeapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/nodekit/nodekit/core"
)

// Sink takes a source's complete set of pods each time it changes;
// staticpod.Merger implements it.
type Sink interface {
	Set(ctx context.Context, source string, pods []*v1.Pod) error
}

// PodSourceConfig configures a PodSource.
type PodSourceConfig struct {
	// Client of the apiserver. Required.
	Client kubernetes.Interface
	// NodeName: the source wants the pods bound to this node. Required.
	NodeName string
	// Resync re-delivers the whole set every so often. Default: never
	// (the watch keeps the set current).
	Resync time.Duration
	Logger *zap.Logger
}

// PodSource delivers the pods an apiserver binds to the node (those with
// spec.nodeName = NodeName), as the kubelet's apiserver source: a list and
// watch kept in an informer, each change delivered as the complete set,
// changes that arrive together delivered once. Mirror pods (the
// apiserver's copies of this node's static pods) are left out of the set
// and kept apart for Mirrors.
type PodSource struct {
	cfg      PodSourceConfig
	log      *zap.Logger
	informer cache.SharedIndexInformer
}

// NewPodSource returns a PodSource for cfg.
func NewPodSource(cfg PodSourceConfig) (*PodSource, error) {
	var errs []error
	if cfg.Client == nil {
		errs = append(errs, errors.New("Client is required"))
	}
	if cfg.NodeName == "" {
		errs = append(errs, errors.New("NodeName is required"))
	}
	if cfg.Resync < 0 {
		errs = append(errs, fmt.Errorf("Resync %s must not be negative", cfg.Resync))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("kubeapi: pod source: %w: %w", core.ErrInvalid, errors.Join(errs...))
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	selector := fields.OneTermEqualSelector("spec.nodeName", cfg.NodeName).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = selector
			return cfg.Client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = selector
			return cfg.Client.CoreV1().Pods(metav1.NamespaceAll).Watch(ctx, o)
		},
	}
	// A client that cannot stream the initial list (a fake one) says so
	// through the wrapper.
	inf := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, cfg.Client), &v1.Pod{}, cfg.Resync, cache.Indexers{})
	return &PodSource{cfg: cfg, log: cfg.Logger, informer: inf}, nil
}

// Run keeps the set of the node's pods and hands it to sink under
// core.SourceAPI: once the first list is in (even when empty: the sink
// then knows the source was heard from), and after every change, until
// ctx ends.
func (s *PodSource) Run(ctx context.Context, sink Sink) error {
	dirty := make(chan struct{}, 1)
	mark := func() {
		select {
		case dirty <- struct{}{}:
		default:
		}
	}
	reg, err := s.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { mark() },
		UpdateFunc: func(any, any) { mark() },
		DeleteFunc: func(any) { mark() },
	})
	if err != nil {
		return fmt.Errorf("kubeapi: pod source: %w", err)
	}
	defer s.informer.RemoveEventHandler(reg)
	go s.informer.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), s.informer.HasSynced) {
		return ctx.Err()
	}
	mark()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-dirty:
		}
		if err := sink.Set(ctx, core.SourceAPI, s.Pods()); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.log.Warn("pods refused", zap.Error(err))
		}
	}
}

// Pods returns the node's pods the apiserver has, mirror pods left out,
// in order of namespace and name. They are copies.
func (s *PodSource) Pods() []*v1.Pod {
	return s.list(func(p *v1.Pod) bool { return !IsMirrorPod(p) })
}

// MirrorPods returns the node's mirror pods the apiserver has, in order
// of namespace and name. They are copies.
func (s *PodSource) MirrorPods() []*v1.Pod {
	return s.list(IsMirrorPod)
}

// HasSynced reports whether the first list is in.
func (s *PodSource) HasSynced() bool { return s.informer.HasSynced() }

func (s *PodSource) list(keep func(*v1.Pod) bool) []*v1.Pod {
	var out []*v1.Pod
	for _, o := range s.informer.GetStore().List() {
		if p, ok := o.(*v1.Pod); ok && keep(p) {
			out = append(out, p.DeepCopy())
		}
	}
	slices.SortFunc(out, func(a, b *v1.Pod) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// IsMirrorPod reports whether a pod is a mirror pod: the apiserver's copy
// of a static pod, marked with core.AnnotationConfigMirror.
func IsMirrorPod(p *v1.Pod) bool {
	_, ok := p.Annotations[core.AnnotationConfigMirror]
	return ok
}
