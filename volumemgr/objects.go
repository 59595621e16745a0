package volumemgr

import (
	"errors"
	"fmt"
	"sync"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/nodekit/nodekit/core"
)

// ConfigMapGetter returns a ConfigMap by namespace and name. A missing
// ConfigMap is an error matching core.ErrNotFound or an API NotFound error
// (apierrors.IsNotFound), or a nil ConfigMap with a nil error; any other
// error is a failure to look it up. The kubelet's ConfigMap manager has
// this method, and crispec.ConfigMapGetter is the same interface, so one
// object serves both packages.
type ConfigMapGetter interface {
	GetConfigMap(namespace, name string) (*v1.ConfigMap, error)
}

// ConfigMapGetterFunc adapts a function to ConfigMapGetter.
type ConfigMapGetterFunc func(namespace, name string) (*v1.ConfigMap, error)

// GetConfigMap calls f.
func (f ConfigMapGetterFunc) GetConfigMap(namespace, name string) (*v1.ConfigMap, error) {
	return f(namespace, name)
}

// SecretGetter returns a Secret by namespace and name, with the error
// contract of ConfigMapGetter. The kubelet's Secret manager has this
// method, and crispec.SecretGetter is the same interface.
type SecretGetter interface {
	GetSecret(namespace, name string) (*v1.Secret, error)
}

// SecretGetterFunc adapts a function to SecretGetter.
type SecretGetterFunc func(namespace, name string) (*v1.Secret, error)

// GetSecret calls f.
func (f SecretGetterFunc) GetSecret(namespace, name string) (*v1.Secret, error) {
	return f(namespace, name)
}

var (
	_ ConfigMapGetter = ConfigMapGetterFunc(nil)
	_ SecretGetter    = SecretGetterFunc(nil)
	_ ConfigMapGetter = (*Objects)(nil)
	_ SecretGetter    = (*Objects)(nil)
)

// ObjectsConfig configures Objects. The zero value is usable: an empty
// store.
type ObjectsConfig struct {
	// ConfigMaps and Secrets are stored at once, as by SetConfigMap and
	// SetSecret; each must be non-nil and named.
	ConfigMaps []*v1.ConfigMap
	Secrets    []*v1.Secret
}

// Objects is an in-memory store of ConfigMaps and Secrets, for tests and
// for agents without an API server: it is a ConfigMapGetter and a
// SecretGetter for this package and for crispec. It is safe for concurrent
// use. Objects are deep-copied on the way in and on the way out, so
// neither the caller nor a reader can change what is stored. A missing
// object is an error that matches both core.ErrNotFound and
// apierrors.IsNotFound.
type Objects struct {
	mu         sync.RWMutex
	configMaps map[objectKey]*v1.ConfigMap
	secrets    map[objectKey]*v1.Secret
}

type objectKey struct{ namespace, name string }

// NewObjects returns a store holding cfg's objects. A nil or unnamed
// object is an error wrapping core.ErrInvalid that names it.
func NewObjects(cfg ObjectsConfig) (*Objects, error) {
	o := &Objects{configMaps: map[objectKey]*v1.ConfigMap{}, secrets: map[objectKey]*v1.Secret{}}
	var errs []error
	for i, cm := range cfg.ConfigMaps {
		if err := o.SetConfigMap(cm); err != nil {
			errs = append(errs, fmt.Errorf("volumemgr: ObjectsConfig.ConfigMaps[%d]: %w", i, err))
		}
	}
	for i, s := range cfg.Secrets {
		if err := o.SetSecret(s); err != nil {
			errs = append(errs, fmt.Errorf("volumemgr: ObjectsConfig.Secrets[%d]: %w", i, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return o, nil
}

// SetConfigMap stores a copy of cm under its namespace and name, replacing
// any ConfigMap stored there. A nil or unnamed ConfigMap is an error
// wrapping core.ErrInvalid, and nothing is stored.
func (o *Objects) SetConfigMap(cm *v1.ConfigMap) error {
	if cm == nil {
		return payloadErrorf(core.ErrInvalid, "ConfigMap is nil")
	}
	if cm.Name == "" {
		return payloadErrorf(core.ErrInvalid, "ConfigMap in namespace %q has no name", cm.Namespace)
	}
	c := cm.DeepCopy()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.configMaps[objectKey{cm.Namespace, cm.Name}] = c
	return nil
}

// SetSecret stores a copy of s under its namespace and name, replacing any
// Secret stored there. A nil or unnamed Secret is an error wrapping
// core.ErrInvalid, and nothing is stored.
func (o *Objects) SetSecret(s *v1.Secret) error {
	if s == nil {
		return payloadErrorf(core.ErrInvalid, "Secret is nil")
	}
	if s.Name == "" {
		return payloadErrorf(core.ErrInvalid, "Secret in namespace %q has no name", s.Namespace)
	}
	c := s.DeepCopy()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.secrets[objectKey{s.Namespace, s.Name}] = c
	return nil
}

// DeleteConfigMap removes a ConfigMap; removing one not stored does
// nothing.
func (o *Objects) DeleteConfigMap(namespace, name string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.configMaps, objectKey{namespace, name})
}

// DeleteSecret removes a Secret; removing one not stored does nothing.
func (o *Objects) DeleteSecret(namespace, name string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.secrets, objectKey{namespace, name})
}

// GetConfigMap returns a copy of the stored ConfigMap, or an error
// matching core.ErrNotFound and apierrors.IsNotFound.
func (o *Objects) GetConfigMap(namespace, name string) (*v1.ConfigMap, error) {
	o.mu.RLock()
	cm, ok := o.configMaps[objectKey{namespace, name}]
	o.mu.RUnlock()
	if !ok {
		return nil, newObjectNotFound("configmaps", "ConfigMap", namespace, name)
	}
	return cm.DeepCopy(), nil
}

// GetSecret returns a copy of the stored Secret, or an error matching
// core.ErrNotFound and apierrors.IsNotFound.
func (o *Objects) GetSecret(namespace, name string) (*v1.Secret, error) {
	o.mu.RLock()
	s, ok := o.secrets[objectKey{namespace, name}]
	o.mu.RUnlock()
	if !ok {
		return nil, newObjectNotFound("secrets", "Secret", namespace, name)
	}
	return s.DeepCopy(), nil
}

// objectNotFound is a missing object: it matches core.ErrNotFound, and
// unwraps to the API's NotFound status so that apierrors.IsNotFound holds
// as well.
type objectNotFound struct {
	msg    string
	status *apierrors.StatusError
}

func newObjectNotFound(resource, kind, namespace, name string) error {
	return &objectNotFound{
		msg:    fmt.Sprintf("%s %s/%s not found", kind, namespace, name),
		status: apierrors.NewNotFound(schema.GroupResource{Resource: resource}, name),
	}
}

func (e *objectNotFound) Error() string        { return e.msg }
func (e *objectNotFound) Is(target error) bool { return target == core.ErrNotFound }
func (e *objectNotFound) Unwrap() error        { return e.status }
