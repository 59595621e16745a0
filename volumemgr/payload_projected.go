package volumemgr

import (
	"context"
	"errors"
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"

	"github.com/nodekit/nodekit/core"
)

// TokenGetter returns a service account token for a TokenRequest, as the
// kubelet's token manager does (it caches tokens and asks the API server
// for the serviceaccounts/token subresource). The returned request's
// Status.Token is the token.
type TokenGetter interface {
	GetServiceAccountToken(ctx context.Context, namespace, name string, tr *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error)
}

// TokenGetterFunc adapts a function to TokenGetter.
type TokenGetterFunc func(ctx context.Context, namespace, name string, tr *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error)

// GetServiceAccountToken calls f.
func (f TokenGetterFunc) GetServiceAccountToken(ctx context.Context, namespace, name string, tr *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	return f(ctx, namespace, name, tr)
}

var _ TokenGetter = TokenGetterFunc(nil)

// ProjectedInputs are what ProjectedPayload reads besides the pod. Each is
// needed only by the sources that use it; a source whose input is nil is
// an error naming the source.
type ProjectedInputs struct {
	// ConfigMaps and Secrets answer configMap and secret sources, looked
	// up in the pod's namespace.
	ConfigMaps ConfigMapGetter
	Secrets    SecretGetter
	// Tokens answers serviceAccountToken sources.
	Tokens TokenGetter
	// NodeAllocatable is the node's allocatable resources, which
	// downwardAPI resourceFieldRef items read for limits a container does
	// not set.
	NodeAllocatable v1.ResourceList
}

// ProjectedPayload returns the files of a projected volume, as the
// kubelet's projected plugin collects them: each source in order, a later
// file at the same path replacing an earlier one.
//
//   - configMap and secret sources: as ConfigMapPayload and SecretPayload,
//     with the volume's defaultMode (default
//     v1.ProjectedVolumeSourceDefaultMode, 0644) and defaultUser; the
//     objects come from in.ConfigMaps and in.Secrets in the pod's
//     namespace, a NotFound answer counting as a missing object.
//   - downwardAPI sources: as DownwardAPIPayload, with in.NodeAllocatable.
//   - serviceAccountToken sources: a token of the pod's service account
//     from in.Tokens, requested for the source's audience (none: the API
//     server's) and expirationSeconds, bound to the pod. The file's owner
//     is the item's user, else the volume's defaultUser, else the user all
//     of the pod's containers run as (when they agree; FsUserOf). Its mode
//     is the defaultMode, except 0600 when the file has an owner or the
//     pod has an fsGroup (the embedder then gives the group read access,
//     as the kubelet's volume ownership step does).
//   - clusterTrustBundle and podCertificate sources are not supported:
//     an error wrapping core.ErrUnimplemented.
//
// Every failing source is reported, each error naming it by index: a
// missing object or key of a non-optional source wraps core.ErrNotFound,
// a bad path, mode, field or resource core.ErrInvalid, and a getter's
// failure is wrapped as it is. The payload is nil when there is any
// error. Neither src nor pod is modified.
func ProjectedPayload(ctx context.Context, src *v1.ProjectedVolumeSource, pod *v1.Pod, in ProjectedInputs) (map[string]FileProjection, error) {
	if src == nil {
		return nil, payloadErrorf(core.ErrInvalid, "projected volume source is nil")
	}
	if pod == nil {
		return nil, payloadErrorf(core.ErrInvalid, "projected volume: pod is nil")
	}
	defaultMode := payloadModeOr(src.DefaultMode, v1.ProjectedVolumeSourceDefaultMode)
	if err := checkPayloadMode(defaultMode); err != nil {
		return nil, payloadErrorf(core.ErrInvalid, "projected: defaultMode: %v", err)
	}
	var fsGroup *int64
	if pod.Spec.SecurityContext != nil {
		fsGroup = pod.Spec.SecurityContext.FSGroup
	}
	podUser := FsUserOf(pod)

	payload := map[string]FileProjection{}
	var errs []error
	for i, s := range src.Sources {
		where := fmt.Sprintf("projected sources[%d] ", i)
		var err error
		switch {
		case s.ConfigMap != nil:
			err = addProjectedConfigMap(payload, where, s.ConfigMap, pod, in.ConfigMaps, defaultMode, src.DefaultUser)
		case s.Secret != nil:
			err = addProjectedSecret(payload, where, s.Secret, pod, in.Secrets, defaultMode, src.DefaultUser)
		case s.DownwardAPI != nil:
			err = addDownwardAPIPayload(payload, where+"downwardAPI ", s.DownwardAPI.Items, pod, in.NodeAllocatable, defaultMode, src.DefaultUser)
		case s.ServiceAccountToken != nil:
			err = addProjectedToken(ctx, payload, where, s.ServiceAccountToken, pod, in.Tokens, tokenFile{
				defaultMode: defaultMode, defaultUser: src.DefaultUser, podUser: podUser, fsGroup: fsGroup,
			})
		case s.ClusterTrustBundle != nil:
			err = payloadErrorf(core.ErrUnimplemented, "%sclusterTrustBundle %q: clusterTrustBundle sources are not supported", where, s.ClusterTrustBundle.Path)
		case s.PodCertificate != nil:
			err = payloadErrorf(core.ErrUnimplemented, "%spodCertificate (signer %q): podCertificate sources are not supported", where, s.PodCertificate.SignerName)
		default:
			err = payloadErrorf(core.ErrInvalid, "%ssets no source", where)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := checkPayloadTree(payload); err != nil {
		return nil, err
	}
	return payload, nil
}

func addProjectedConfigMap(payload map[string]FileProjection, where string, p *v1.ConfigMapProjection, pod *v1.Pod, getter ConfigMapGetter, defaultMode int32, defaultUser *int64) error {
	if getter == nil {
		return payloadErrorf(core.ErrInvalid, "%sconfigMap %q: no ConfigMap source (ProjectedInputs.ConfigMaps is nil)", where, p.Name)
	}
	cm, err := getter.GetConfigMap(pod.Namespace, p.Name)
	if err != nil {
		if !isObjectNotFound(err) {
			return fmt.Errorf("%sconfigMap %s/%s: %w", where, pod.Namespace, p.Name, err)
		}
		cm = nil
	}
	return addKeyedPayload(payload, keyedSource{
		kind:        "ConfigMap",
		name:        p.Name,
		items:       p.Items,
		optional:    p.Optional != nil && *p.Optional,
		defaultMode: defaultMode,
		defaultUser: defaultUser,
		where:       where,
	}, configMapData(cm))
}

func addProjectedSecret(payload map[string]FileProjection, where string, p *v1.SecretProjection, pod *v1.Pod, getter SecretGetter, defaultMode int32, defaultUser *int64) error {
	if getter == nil {
		return payloadErrorf(core.ErrInvalid, "%ssecret %q: no Secret source (ProjectedInputs.Secrets is nil)", where, p.Name)
	}
	s, err := getter.GetSecret(pod.Namespace, p.Name)
	if err != nil {
		if !isObjectNotFound(err) {
			return fmt.Errorf("%ssecret %s/%s: %w", where, pod.Namespace, p.Name, err)
		}
		s = nil
	}
	return addKeyedPayload(payload, keyedSource{
		kind:        "Secret",
		name:        p.Name,
		items:       p.Items,
		optional:    p.Optional != nil && *p.Optional,
		defaultMode: defaultMode,
		defaultUser: defaultUser,
		where:       where,
	}, secretData(s))
}

// tokenFile is what decides a token file's owner and mode.
type tokenFile struct {
	defaultMode int32
	defaultUser *int64
	podUser     *int64
	fsGroup     *int64
}

func addProjectedToken(ctx context.Context, payload map[string]FileProjection, where string, p *v1.ServiceAccountTokenProjection, pod *v1.Pod, getter TokenGetter, f tokenFile) error {
	what := fmt.Sprintf("%sserviceAccountToken %q", where, p.Path)
	if getter == nil {
		return payloadErrorf(core.ErrInvalid, "%s: no token source (ProjectedInputs.Tokens is nil)", what)
	}
	path, err := cleanPayloadPath(p.Path)
	if err != nil {
		return payloadErrorf(core.ErrInvalid, "%s: path: %v", what, err)
	}
	var audiences []string
	if p.Audience != "" {
		audiences = []string{p.Audience}
	}
	req := &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			Audiences:         audiences,
			ExpirationSeconds: clonePayloadUser(p.ExpirationSeconds),
			BoundObjectRef: &authenticationv1.BoundObjectReference{
				APIVersion: "v1",
				Kind:       "Pod",
				Name:       pod.Name,
				UID:        pod.UID,
			},
		},
	}
	tr, err := getter.GetServiceAccountToken(ctx, pod.Namespace, pod.Spec.ServiceAccountName, req)
	if err != nil {
		return fmt.Errorf("%s: token of service account %s/%s: %w", what, pod.Namespace, pod.Spec.ServiceAccountName, err)
	}
	if tr == nil {
		return fmt.Errorf("%s: token of service account %s/%s: the token source returned no token", what, pod.Namespace, pod.Spec.ServiceAccountName)
	}

	owner := clonePayloadUser(f.podUser)
	if f.defaultUser != nil {
		owner = clonePayloadUser(f.defaultUser)
	}
	if p.User != nil {
		owner = clonePayloadUser(p.User)
	}
	mode := f.defaultMode
	if owner != nil || f.fsGroup != nil {
		mode = 0o600
	}
	payload[path] = FileProjection{Data: []byte(tr.Status.Token), Mode: mode, FsUser: owner}
	return nil
}

// FsUserOf returns the user every container of the pod (init, regular and
// ephemeral) runs as, from its own or the pod's securityContext.runAsUser,
// or nil when one sets none or two differ. It is the owner the kubelet
// gives a projected service account token, so that a non-root pod can
// read a 0600 token.
func FsUserOf(pod *v1.Pod) *int64 {
	var user *int64
	ok := true
	visit := func(sc *v1.SecurityContext) {
		if !ok {
			return
		}
		var u *int64
		if pod.Spec.SecurityContext != nil && pod.Spec.SecurityContext.RunAsUser != nil {
			u = pod.Spec.SecurityContext.RunAsUser
		}
		if sc != nil && sc.RunAsUser != nil {
			u = sc.RunAsUser
		}
		if u == nil || (user != nil && *user != *u) {
			user, ok = nil, false
			return
		}
		user = u
	}
	for i := range pod.Spec.InitContainers {
		visit(pod.Spec.InitContainers[i].SecurityContext)
	}
	for i := range pod.Spec.Containers {
		visit(pod.Spec.Containers[i].SecurityContext)
	}
	for i := range pod.Spec.EphemeralContainers {
		visit(pod.Spec.EphemeralContainers[i].SecurityContext)
	}
	return clonePayloadUser(user)
}
