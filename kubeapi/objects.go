package kubeapi

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// Defaults of ObjectsConfig.
const (
	// DefaultObjectIdleTimeout is how long an object nobody asked for
	// stays watched.
	DefaultObjectIdleTimeout = 10 * time.Minute
	// DefaultObjectSyncTimeout bounds the wait for an object's first list.
	DefaultObjectSyncTimeout = 30 * time.Second
)

// ObjectsConfig configures Objects.
type ObjectsConfig struct {
	// Client of the apiserver. Required.
	Client kubernetes.Interface
	// IdleTimeout: default DefaultObjectIdleTimeout.
	IdleTimeout time.Duration
	// SyncTimeout: default DefaultObjectSyncTimeout.
	SyncTimeout time.Duration
	Clock       clock.WithTicker
	Logger      *zap.Logger
}

// Objects answers ConfigMaps and Secrets from the apiserver as the
// kubelet's watch-based managers do (configMapAndSecretChangeDetectionStrategy
// Watch, its default): the first request for an object starts a watch of
// that one object (a field selector on its name, which the Node authorizer
// allows for objects the node's pods reference), waits for its first list,
// and every later request is answered from the watch's store, so updates
// arrive as the apiserver sends them. An object nobody asked for during
// IdleTimeout stops being watched (Run). A missing object is an error for
// which apierrors.IsNotFound holds.
//
// It has the method sets of volumemgr's and crispec's ConfigMapGetter
// and SecretGetter.
type Objects struct {
	cfg ObjectsConfig
	log *zap.Logger

	mu      sync.Mutex
	watches map[objectKey]*objectWatch
}

type objectKey struct {
	resource, namespace, name string
}

type objectWatch struct {
	store    cache.Store
	synced   chan struct{} // closed after the first list
	stop     chan struct{}
	lastUsed time.Time
	informer cache.SharedInformer
}

// NewObjects returns Objects for cfg.
func NewObjects(cfg ObjectsConfig) (*Objects, error) {
	if cfg.Client == nil {
		return nil, fmt.Errorf("kubeapi: objects: Client is required: %w", core.ErrInvalid)
	}
	if cfg.IdleTimeout < 0 || cfg.SyncTimeout < 0 {
		return nil, fmt.Errorf("kubeapi: objects: IdleTimeout and SyncTimeout must not be negative: %w", core.ErrInvalid)
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultObjectIdleTimeout
	}
	if cfg.SyncTimeout == 0 {
		cfg.SyncTimeout = DefaultObjectSyncTimeout
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &Objects{cfg: cfg, log: cfg.Logger, watches: map[objectKey]*objectWatch{}}, nil
}

// GetConfigMap returns the ConfigMap namespace/name.
func (o *Objects) GetConfigMap(namespace, name string) (*v1.ConfigMap, error) {
	obj, err := o.get(objectKey{"configmaps", namespace, name}, &v1.ConfigMap{})
	if err != nil {
		return nil, err
	}
	return obj.(*v1.ConfigMap).DeepCopy(), nil
}

// GetSecret returns the Secret namespace/name.
func (o *Objects) GetSecret(namespace, name string) (*v1.Secret, error) {
	obj, err := o.get(objectKey{"secrets", namespace, name}, &v1.Secret{})
	if err != nil {
		return nil, err
	}
	return obj.(*v1.Secret).DeepCopy(), nil
}

// get answers key from its watch, starting the watch if needed.
func (o *Objects) get(key objectKey, example runtime.Object) (runtime.Object, error) {
	w := o.watch(key, example)
	timer := o.cfg.Clock.NewTimer(o.cfg.SyncTimeout)
	defer timer.Stop()
	select {
	case <-w.synced:
	case <-timer.C():
		return nil, fmt.Errorf("%s %s/%s: no answer from the apiserver within %s: %w", key.resource, key.namespace, key.name, o.cfg.SyncTimeout, core.ErrUnavailable)
	}
	obj, ok, err := w.store.GetByKey(key.namespace + "/" + key.name)
	if err != nil {
		return nil, err
	}
	if !ok {
		gr := v1.Resource(key.resource)
		return nil, apierrors.NewNotFound(gr, key.name)
	}
	return obj.(runtime.Object), nil
}

// watch returns key's watch, started now if there is none.
func (o *Objects) watch(key objectKey, example runtime.Object) *objectWatch {
	o.mu.Lock()
	defer o.mu.Unlock()
	if w := o.watches[key]; w != nil {
		w.lastUsed = o.cfg.Clock.Now()
		return w
	}
	lw := cache.NewListWatchFromClient(o.cfg.Client.CoreV1().RESTClient(), key.resource, key.namespace,
		fields.OneTermEqualSelector("metadata.name", key.name))
	inf := cache.NewSharedInformer(lw, example, 0)
	w := &objectWatch{store: inf.GetStore(), synced: make(chan struct{}), stop: make(chan struct{}), lastUsed: o.cfg.Clock.Now(), informer: inf}
	o.watches[key] = w
	go inf.Run(w.stop)
	go func() {
		if cache.WaitForCacheSync(w.stop, inf.HasSynced) {
			close(w.synced)
		}
	}()
	o.log.Debug("watching object", zap.String("resource", key.resource), zap.String("object", key.namespace+"/"+key.name))
	return w
}

// Run stops the watches of objects nobody asked for during IdleTimeout,
// checking every minute (or IdleTimeout, if shorter), until ctx ends; then
// it stops every watch.
func (o *Objects) Run(ctx context.Context) error {
	t := o.cfg.Clock.NewTicker(min(time.Minute, o.cfg.IdleTimeout))
	defer t.Stop()
	defer o.stopAll()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C():
			o.expire()
		}
	}
}

// Watched is how many objects are being watched.
func (o *Objects) Watched() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.watches)
}

func (o *Objects) expire() {
	now := o.cfg.Clock.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	for key, w := range o.watches {
		if now.Sub(w.lastUsed) >= o.cfg.IdleTimeout {
			close(w.stop)
			delete(o.watches, key)
		}
	}
}

func (o *Objects) stopAll() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for key, w := range o.watches {
		close(w.stop)
		delete(o.watches, key)
	}
}
