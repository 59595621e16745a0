package volumemgr

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/nodekit/nodekit/core"
)

// FileProjection is one file of a content volume (configMap, secret,
// downwardAPI, projected): its bytes, its permission bits (0 to 0777) and,
// if FsUser is set, the user that owns it. Payloads map a path relative to
// the volume's directory to the file written there; AtomicWriter writes
// them.
type FileProjection struct {
	Data   []byte
	Mode   int32
	FsUser *int64
}

// Limits on the paths of a payload, as the kubelet's atomic writer sets
// them.
const (
	maxPayloadPathLength     = 4096
	maxPayloadFileNameLength = 255
)

// payloadError is an error of one class (core.ErrInvalid, ErrNotFound,
// ErrUnimplemented) with a message that names the item at fault.
type payloadError struct {
	class error
	msg   string
}

func (e *payloadError) Error() string        { return e.msg }
func (e *payloadError) Is(target error) bool { return target == e.class }

func payloadErrorf(class error, format string, args ...any) error {
	return &payloadError{class: class, msg: fmt.Sprintf(format, args...)}
}

// ConfigMapPayload returns the files of a configMap volume, as the
// kubelet's configMap plugin projects them. cm is the ConfigMap the source
// names, nil when it does not exist.
//
// Without items, every key of data and binaryData becomes a file of that
// name; with items, each listed key becomes the file at its path, and
// unlisted keys are left out. A file's mode is the item's mode, else
// defaultMode, else v1.ConfigMapVolumeSourceDefaultMode (0644); its owner
// is the item's user, else defaultUser, else left as written (user and
// defaultUser are alpha fields that the API server keeps only with the
// AtomicWriteVolumeUserFields gate on, so they are honoured whenever set).
//
// A missing ConfigMap, or a listed key it does not have, is an error
// wrapping core.ErrNotFound that names the ConfigMap and the key, unless
// the source is optional: then a missing ConfigMap gives an empty payload
// and a missing key is skipped. A path that is absolute, contains a ".."
// element or starts with "..", or collides with another file's directory,
// is an error wrapping core.ErrInvalid that names the item. Paths are
// cleaned ("a//b/" is "a/b"). Neither argument is modified, and the
// payload shares no memory with cm.
func ConfigMapPayload(src *v1.ConfigMapVolumeSource, cm *v1.ConfigMap) (map[string]FileProjection, error) {
	if src == nil {
		return nil, payloadErrorf(core.ErrInvalid, "configMap volume source is nil")
	}
	payload := map[string]FileProjection{}
	err := addKeyedPayload(payload, keyedSource{
		kind:        "ConfigMap",
		name:        src.Name,
		items:       src.Items,
		optional:    src.Optional != nil && *src.Optional,
		defaultMode: payloadModeOr(src.DefaultMode, v1.ConfigMapVolumeSourceDefaultMode),
		defaultUser: src.DefaultUser,
	}, configMapData(cm))
	if err != nil {
		return nil, err
	}
	if err := checkPayloadTree(payload); err != nil {
		return nil, err
	}
	return payload, nil
}

// SecretPayload returns the files of a secret volume, as the kubelet's
// secret plugin projects them, with the rules of ConfigMapPayload: s is
// the Secret that src.SecretName names, nil when it does not exist; its
// data (not stringData, which only the API server reads) gives the files;
// the default mode is v1.SecretVolumeSourceDefaultMode (0644).
func SecretPayload(src *v1.SecretVolumeSource, s *v1.Secret) (map[string]FileProjection, error) {
	if src == nil {
		return nil, payloadErrorf(core.ErrInvalid, "secret volume source is nil")
	}
	payload := map[string]FileProjection{}
	err := addKeyedPayload(payload, keyedSource{
		kind:        "Secret",
		name:        src.SecretName,
		items:       src.Items,
		optional:    src.Optional != nil && *src.Optional,
		defaultMode: payloadModeOr(src.DefaultMode, v1.SecretVolumeSourceDefaultMode),
		defaultUser: src.DefaultUser,
	}, secretData(s))
	if err != nil {
		return nil, err
	}
	if err := checkPayloadTree(payload); err != nil {
		return nil, err
	}
	return payload, nil
}

// keyedSource is a configMap or secret source: the object's kind and name
// for messages, the items, and the defaults that apply.
type keyedSource struct {
	kind, name  string
	items       []v1.KeyToPath
	optional    bool
	defaultMode int32
	defaultUser *int64
	// where prefixes messages ("sources[2] "), empty for a volume of its
	// own.
	where string
}

// keyedData is the data of a ConfigMap or Secret: nil when the object
// does not exist.
type keyedData struct {
	namespace string
	keys      map[string][]byte
}

func configMapData(cm *v1.ConfigMap) *keyedData {
	if cm == nil {
		return nil
	}
	d := &keyedData{namespace: cm.Namespace, keys: make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))}
	for k, v := range cm.Data {
		d.keys[k] = []byte(v)
	}
	// binaryData wins over data, as the kubelet writes it second (the API
	// server refuses a key in both).
	for k, v := range cm.BinaryData {
		d.keys[k] = bytes.Clone(v)
	}
	return d
}

func secretData(s *v1.Secret) *keyedData {
	if s == nil {
		return nil
	}
	d := &keyedData{namespace: s.Namespace, keys: make(map[string][]byte, len(s.Data))}
	for k, v := range s.Data {
		d.keys[k] = bytes.Clone(v)
	}
	return d
}

// addKeyedPayload adds the files of a configMap or secret source to
// payload; a file at a path already there replaces it.
func addKeyedPayload(payload map[string]FileProjection, src keyedSource, data *keyedData) error {
	object := fmt.Sprintf("%s %q", src.kind, src.name)
	if data != nil && data.namespace != "" {
		object = fmt.Sprintf("%s %s/%s", src.kind, data.namespace, src.name)
	}
	if err := checkPayloadMode(src.defaultMode); err != nil {
		return payloadErrorf(core.ErrInvalid, "%s%s: defaultMode: %v", src.where, object, err)
	}
	if data == nil {
		if !src.optional {
			return payloadErrorf(core.ErrNotFound, "%s%s not found", src.where, object)
		}
		data = &keyedData{}
	}
	if len(src.items) == 0 {
		// Keys are file names: the API server allows no "/" in them, so
		// each is one path element.
		var errs []error
		for _, key := range slices.Sorted(maps.Keys(data.keys)) {
			p, err := cleanPayloadPath(key)
			if err != nil {
				errs = append(errs, payloadErrorf(core.ErrInvalid, "%s%s: key %q as a file name: %v", src.where, object, key, err))
				continue
			}
			payload[p] = FileProjection{Data: data.keys[key], Mode: src.defaultMode, FsUser: clonePayloadUser(src.defaultUser)}
		}
		return errors.Join(errs...)
	}
	var errs []error
	for i, item := range src.items {
		p, err := cleanPayloadPath(item.Path)
		if err != nil {
			errs = append(errs, payloadErrorf(core.ErrInvalid, "%s%s: items[%d] (key %q) path %q: %v", src.where, object, i, item.Key, item.Path, err))
			continue
		}
		mode := payloadModeOr(item.Mode, src.defaultMode)
		if err := checkPayloadMode(mode); err != nil {
			errs = append(errs, payloadErrorf(core.ErrInvalid, "%s%s: items[%d] (key %q) mode: %v", src.where, object, i, item.Key, err))
			continue
		}
		content, ok := data.keys[item.Key]
		if !ok {
			if src.optional {
				continue
			}
			errs = append(errs, payloadErrorf(core.ErrNotFound, "%s%s: items[%d]: no key %q", src.where, object, i, item.Key))
			continue
		}
		payload[p] = FileProjection{Data: content, Mode: mode, FsUser: resolveItemUser(src.defaultUser, item.User)}
	}
	return errors.Join(errs...)
}

// resolveItemUser is the owner of an item's file: the item's user, else
// the volume's defaultUser, else nil (left as written).
func resolveItemUser(defaultUser, itemUser *int64) *int64 {
	if itemUser != nil {
		return clonePayloadUser(itemUser)
	}
	return clonePayloadUser(defaultUser)
}

func clonePayloadUser(p *int64) *int64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func payloadModeOr(mode *int32, def int32) int32 {
	if mode != nil {
		return *mode
	}
	return def
}

// checkPayloadMode accepts the permission bits the API server accepts: 0 to 0777.
func checkPayloadMode(mode int32) error {
	if mode < 0 || mode > 0o777 {
		return fmt.Errorf("%#o is not between 0 and 0777", mode)
	}
	return nil
}

// cleanPayloadPath checks a payload path as the kubelet's atomic writer
// does and returns it cleaned. A path must not be empty or absolute, must
// not contain a ".." element, must not start with ".." (those names are
// the writer's own), and must fit the length limits.
func cleanPayloadPath(p string) (string, error) {
	if p == "" {
		return "", errors.New("must not be empty")
	}
	if filepath.IsAbs(p) || strings.HasPrefix(p, "/") {
		return "", errors.New("must be a relative path")
	}
	if len(p) > maxPayloadPathLength {
		return "", fmt.Errorf("must be at most %d characters", maxPayloadPathLength)
	}
	elems := strings.Split(p, "/")
	for _, e := range elems {
		if e == ".." {
			return "", errors.New("must not contain '..'")
		}
		if len(e) > maxPayloadFileNameLength {
			return "", fmt.Errorf("file names must be at most %d characters", maxPayloadFileNameLength)
		}
	}
	if strings.HasPrefix(elems[0], "..") {
		return "", errors.New("must not start with '..'")
	}
	c := filepath.Clean(p)
	if c == "." {
		return "", errors.New("must name a file, not the volume's directory")
	}
	return c, nil
}

// checkPayloadTree reports a path of the payload that is also the
// directory of another (a file "a" and a file "a/b"): the files cannot
// both be written.
func checkPayloadTree(payload map[string]FileProjection) error {
	var errs []error
	for _, p := range slices.Sorted(maps.Keys(payload)) {
		for dir := filepath.Dir(p); dir != "."; dir = filepath.Dir(dir) {
			if _, ok := payload[dir]; ok {
				errs = append(errs, payloadErrorf(core.ErrInvalid, "path %q is a file and the directory of %q", dir, p))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// isObjectNotFound tells a missing object from other getter failures, as
// ConfigMapGetter and SecretGetter report it.
func isObjectNotFound(err error) bool {
	return errors.Is(err, core.ErrNotFound) || apierrors.IsNotFound(err)
}
