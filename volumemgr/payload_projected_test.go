package volumemgr_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/volumemgr"
)

// recordingTokens answers token requests with a token that spells the
// request, "<namespace>:<name>:<expiration>:<audiences>", and records
// each request.
type recordingTokens struct {
	requests []*authenticationv1.TokenRequest
	err      error
}

func (r *recordingTokens) GetServiceAccountToken(_ context.Context, namespace, name string, tr *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	r.requests = append(r.requests, tr.DeepCopy())
	if r.err != nil {
		return nil, r.err
	}
	exp := int64(3600)
	if tr.Spec.ExpirationSeconds != nil {
		exp = *tr.Spec.ExpirationSeconds
	}
	out := tr.DeepCopy()
	out.Status.Token = fmt.Sprintf("%s:%s:%d:%v", namespace, name, exp, tr.Spec.Audiences)
	return out, nil
}

func projectedTestPod() *v1.Pod {
	pod := downwardTestPod()
	pod.Spec.ServiceAccountName = "sa"
	return pod
}

func projectedTestObjects(t *testing.T) *volumemgr.Objects {
	t.Helper()
	o, err := volumemgr.NewObjects(volumemgr.ObjectsConfig{
		ConfigMaps: []*v1.ConfigMap{payloadTestConfigMap()},
		Secrets:    []*v1.Secret{payloadTestSecret()},
	})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestProjectedPayload(t *testing.T) {
	cfg := v1.LocalObjectReference{Name: "cfg"}
	creds := v1.LocalObjectReference{Name: "creds"}
	token := func(p v1.ServiceAccountTokenProjection) v1.VolumeProjection {
		return v1.VolumeProjection{ServiceAccountToken: &p}
	}
	cases := []struct {
		name string
		src  v1.ProjectedVolumeSource
		// pod changes the test pod.
		pod  func(*v1.Pod)
		in   func(*volumemgr.ProjectedInputs)
		want payloadWant
	}{{
		name: "configMap, secret, downwardAPI and token together",
		src: v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: cfg, Items: []v1.KeyToPath{{Key: "foo", Path: "cfg/foo"}}}},
			{Secret: &v1.SecretProjection{LocalObjectReference: creds, Items: []v1.KeyToPath{{Key: "pass", Path: "creds/pass", Mode: ptr.To[int32](0o400)}}}},
			{DownwardAPI: &v1.DownwardAPIProjection{Items: []v1.DownwardAPIVolumeFile{downwardFieldItem("name", "metadata.name"), downwardResourceItem("cpu", "app", "limits.cpu", "1m")}}},
			token(v1.ServiceAccountTokenProjection{Path: "token", Audience: "https://example.com", ExpirationSeconds: ptr.To[int64](600)}),
		}},
		want: payloadWant{payload: `cfg/foo 0644 user=- "foo"
cpu 0644 user=- "1500"
creds/pass 0400 user=- "s3cret"
name 0644 user=- "web"
token 0644 user=- "ns:sa:600:[https://example.com]"
`},
	}, {
		name: "all keys of both objects, the volume's defaultMode and defaultUser",
		src: v1.ProjectedVolumeSource{DefaultMode: ptr.To[int32](0o440), DefaultUser: ptr.To[int64](9), Sources: []v1.VolumeProjection{
			{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: cfg}},
			{Secret: &v1.SecretProjection{LocalObjectReference: creds}},
		}},
		want: payloadWant{payload: `bar 0440 user=9 "bar"
bin 0440 user=9 "\x00\x01\x02"
foo 0440 user=9 "foo"
pass 0440 user=9 "s3cret"
user 0440 user=9 "admin"
`},
	}, {
		name: "a later source at the same path wins",
		src: v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: cfg, Items: []v1.KeyToPath{{Key: "foo", Path: "x/file"}}}},
			{Secret: &v1.SecretProjection{LocalObjectReference: creds, Items: []v1.KeyToPath{{Key: "user", Path: "x//file"}}}},
		}},
		want: payloadWant{payload: "x/file 0644 user=- \"admin\"\n"},
	}, {
		name: "optional sources whose objects are missing give nothing",
		src: v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: v1.LocalObjectReference{Name: "gone"}, Optional: ptr.To(true)}},
			{Secret: &v1.SecretProjection{LocalObjectReference: v1.LocalObjectReference{Name: "gone"}, Optional: ptr.To(true), Items: []v1.KeyToPath{{Key: "a", Path: "a"}}}},
			{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: cfg, Optional: ptr.To(true), Items: []v1.KeyToPath{{Key: "foo", Path: "foo"}, {Key: "nope", Path: "nope"}}}},
		}},
		want: payloadWant{payload: "foo 0644 user=- \"foo\"\n"},
	}, {
		name: "an API NotFound from a getter is a missing object",
		src: v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: cfg, Optional: ptr.To(true)}},
		}},
		in: func(in *volumemgr.ProjectedInputs) {
			in.ConfigMaps = volumemgr.ConfigMapGetterFunc(func(ns, name string) (*v1.ConfigMap, error) {
				return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
			})
		},
		want: payloadWant{payload: ""},
	}, {
		name: "a nil object with no error is a missing object",
		src: v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{Secret: &v1.SecretProjection{LocalObjectReference: creds}},
		}},
		in: func(in *volumemgr.ProjectedInputs) {
			in.Secrets = volumemgr.SecretGetterFunc(func(ns, name string) (*v1.Secret, error) { return nil, nil })
		},
		want: payloadWant{class: core.ErrNotFound, msg: []string{`projected sources[0] Secret "creds" not found`}},
	}, {
		name: "missing objects and keys of non-optional sources, each reported",
		src: v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: v1.LocalObjectReference{Name: "gone"}}},
			{Secret: &v1.SecretProjection{LocalObjectReference: creds, Items: []v1.KeyToPath{{Key: "nope", Path: "nope"}}}},
		}},
		want: payloadWant{class: core.ErrNotFound, msg: []string{`sources[0] ConfigMap "gone" not found`, `sources[1] Secret ns/creds: items[0]: no key "nope"`}},
	}, {
		name: "a getter's failure is passed on, naming the source",
		src: v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: cfg, Optional: ptr.To(true)}},
		}},
		in: func(in *volumemgr.ProjectedInputs) {
			in.ConfigMaps = volumemgr.ConfigMapGetterFunc(func(ns, name string) (*v1.ConfigMap, error) { return nil, errProjectedTest })
		},
		want: payloadWant{class: errProjectedTest, msg: []string{`sources[0] configMap ns/cfg`}},
	}, {
		name: "no getter for a source that needs one",
		src: v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: cfg}},
			{Secret: &v1.SecretProjection{LocalObjectReference: creds}},
			token(v1.ServiceAccountTokenProjection{Path: "token"}),
		}},
		in:   func(in *volumemgr.ProjectedInputs) { *in = volumemgr.ProjectedInputs{} },
		want: payloadWant{class: core.ErrInvalid, msg: []string{"sources[0] configMap", "ProjectedInputs.ConfigMaps", "sources[1] secret", "ProjectedInputs.Secrets", `sources[2] serviceAccountToken "token"`, "ProjectedInputs.Tokens"}},
	}, {
		name: "token without audience or expiration: the API server's defaults",
		src:  v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{token(v1.ServiceAccountTokenProjection{Path: "t"})}},
		want: payloadWant{payload: "t 0644 user=- \"ns:sa:3600:[]\"\n"},
	}, {
		name: "token: the volume's defaultMode when there is no owner nor fsGroup",
		src:  v1.ProjectedVolumeSource{DefaultMode: ptr.To[int32](0o444), Sources: []v1.VolumeProjection{token(v1.ServiceAccountTokenProjection{Path: "t"})}},
		want: payloadWant{payload: "t 0444 user=- \"ns:sa:3600:[]\"\n"},
	}, {
		name: "token: 0600 when the pod has an fsGroup",
		src:  v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{token(v1.ServiceAccountTokenProjection{Path: "t"})}},
		pod:  func(p *v1.Pod) { p.Spec.SecurityContext = &v1.PodSecurityContext{FSGroup: ptr.To[int64](2000)} },
		want: payloadWant{payload: "t 0600 user=- \"ns:sa:3600:[]\"\n"},
	}, {
		name: "token: owned by the user all containers run as, 0600",
		src:  v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{token(v1.ServiceAccountTokenProjection{Path: "t"})}},
		pod:  func(p *v1.Pod) { p.Spec.SecurityContext = &v1.PodSecurityContext{RunAsUser: ptr.To[int64](1000)} },
		want: payloadWant{payload: "t 0600 user=1000 \"ns:sa:3600:[]\"\n"},
	}, {
		name: "token: the volume's defaultUser over the pod's user",
		src:  v1.ProjectedVolumeSource{DefaultUser: ptr.To[int64](1001), Sources: []v1.VolumeProjection{token(v1.ServiceAccountTokenProjection{Path: "t"})}},
		pod:  func(p *v1.Pod) { p.Spec.SecurityContext = &v1.PodSecurityContext{RunAsUser: ptr.To[int64](1000)} },
		want: payloadWant{payload: "t 0600 user=1001 \"ns:sa:3600:[]\"\n"},
	}, {
		name: "token: the item's user over both",
		src: v1.ProjectedVolumeSource{DefaultUser: ptr.To[int64](1001), Sources: []v1.VolumeProjection{
			token(v1.ServiceAccountTokenProjection{Path: "t", User: ptr.To[int64](1002)}),
		}},
		pod:  func(p *v1.Pod) { p.Spec.SecurityContext = &v1.PodSecurityContext{RunAsUser: ptr.To[int64](1000)} },
		want: payloadWant{payload: "t 0600 user=1002 \"ns:sa:3600:[]\"\n"},
	}, {
		name: "the pod's user does not own configMap files",
		src: v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: cfg, Items: []v1.KeyToPath{{Key: "foo", Path: "foo"}}}},
		}},
		pod: func(p *v1.Pod) {
			p.Spec.SecurityContext = &v1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), FSGroup: ptr.To[int64](1)}
		},
		want: payloadWant{payload: "foo 0644 user=- \"foo\"\n"},
	}, {
		name: "token: a failing token source",
		src:  v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{token(v1.ServiceAccountTokenProjection{Path: "t"})}},
		in:   func(in *volumemgr.ProjectedInputs) { in.Tokens = &recordingTokens{err: errProjectedTest} },
		want: payloadWant{class: errProjectedTest, msg: []string{`sources[0] serviceAccountToken "t"`, "ns/sa"}},
	}, {
		name: "token: a bad path",
		src:  v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{token(v1.ServiceAccountTokenProjection{Path: "../t"})}},
		want: payloadWant{class: core.ErrInvalid, msg: []string{`sources[0] serviceAccountToken "../t"`}},
	}, {
		name: "clusterTrustBundle and podCertificate are not supported",
		src: v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{ClusterTrustBundle: &v1.ClusterTrustBundleProjection{Name: ptr.To("b"), Path: "ca.crt"}},
			{PodCertificate: &v1.PodCertificateProjection{SignerName: "example.com/s", CredentialBundlePath: "cred"}},
		}},
		want: payloadWant{class: core.ErrUnimplemented, msg: []string{`sources[0] clusterTrustBundle "ca.crt"`, `sources[1] podCertificate (signer "example.com/s")`, "not supported"}},
	}, {
		name: "a projection with no source",
		src:  v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{{}}},
		want: payloadWant{class: core.ErrInvalid, msg: []string{"sources[0] sets no source"}},
	}, {
		name: "a downwardAPI error names the source and the item",
		src: v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{DownwardAPI: &v1.DownwardAPIProjection{Items: []v1.DownwardAPIVolumeFile{downwardFieldItem("n", "spec.nodeName")}}},
		}},
		want: payloadWant{class: core.ErrInvalid, msg: []string{`projected sources[0] downwardAPI items[0] "n"`}},
	}, {
		name: "a file that is another source's directory",
		src: v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: cfg, Items: []v1.KeyToPath{{Key: "foo", Path: "a"}}}},
			token(v1.ServiceAccountTokenProjection{Path: "a/token"}),
		}},
		want: payloadWant{class: core.ErrInvalid, msg: []string{`"a"`, `"a/token"`}},
	}, {
		name: "a bad defaultMode",
		src:  v1.ProjectedVolumeSource{DefaultMode: ptr.To[int32](-1)},
		want: payloadWant{class: core.ErrInvalid, msg: []string{"defaultMode"}},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := projectedTestPod()
			if tc.pod != nil {
				tc.pod(pod)
			}
			objects := projectedTestObjects(t)
			in := volumemgr.ProjectedInputs{
				ConfigMaps:      objects,
				Secrets:         objects,
				Tokens:          &recordingTokens{},
				NodeAllocatable: downwardTestAllocatable(),
			}
			if tc.in != nil {
				tc.in(&in)
			}
			src := tc.src.DeepCopy()
			podBefore := pod.DeepCopy()
			got, err := volumemgr.ProjectedPayload(context.Background(), src, pod, in)
			tc.want.check(t, got, err)
			if !reflect.DeepEqual(src, &tc.src) || !reflect.DeepEqual(pod, podBefore) {
				t.Error("the source or the pod was modified")
			}
		})
	}
}

var errProjectedTest = errors.New("apiserver unreachable")

func TestProjectedPayloadTokenRequest(t *testing.T) {
	tokens := &recordingTokens{}
	pod := projectedTestPod()
	src := &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
		{ServiceAccountToken: &v1.ServiceAccountTokenProjection{Path: "a", Audience: "vault", ExpirationSeconds: ptr.To[int64](7200)}},
		{ServiceAccountToken: &v1.ServiceAccountTokenProjection{Path: "b"}},
	}}
	if _, err := volumemgr.ProjectedPayload(context.Background(), src, pod, volumemgr.ProjectedInputs{Tokens: tokens}); err != nil {
		t.Fatal(err)
	}
	bound := &authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: "web", UID: "uid-1"}
	want := []*authenticationv1.TokenRequest{
		{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"vault"}, ExpirationSeconds: ptr.To[int64](7200), BoundObjectRef: bound}},
		{Spec: authenticationv1.TokenRequestSpec{BoundObjectRef: bound}},
	}
	if !reflect.DeepEqual(tokens.requests, want) {
		t.Errorf("token requests:\n%+v\nwant\n%+v", tokens.requests, want)
	}
	// The request must not alias the source.
	*tokens.requests[0].Spec.ExpirationSeconds = 1
	if *src.Sources[0].ServiceAccountToken.ExpirationSeconds != 7200 {
		t.Error("the token request shares the source's expirationSeconds")
	}
}

// The context reaches the token source.
func TestProjectedPayloadPassesContext(t *testing.T) {
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "here")
	var seen any
	tokens := volumemgr.TokenGetterFunc(func(ctx context.Context, namespace, name string, tr *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
		seen = ctx.Value(key{})
		return &authenticationv1.TokenRequest{Status: authenticationv1.TokenRequestStatus{Token: "tok"}}, nil
	})
	src := &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{{ServiceAccountToken: &v1.ServiceAccountTokenProjection{Path: "t"}}}}
	got, err := volumemgr.ProjectedPayload(ctx, src, projectedTestPod(), volumemgr.ProjectedInputs{Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	if seen != "here" || string(got["t"].Data) != "tok" {
		t.Errorf("context value %v, token %q", seen, got["t"].Data)
	}
}

func TestFsUserOf(t *testing.T) {
	c := func(user *int64) v1.Container {
		if user == nil {
			return v1.Container{}
		}
		return v1.Container{SecurityContext: &v1.SecurityContext{RunAsUser: user}}
	}
	cases := []struct {
		name string
		pod  v1.PodSpec
		want string
	}{
		{"no containers", v1.PodSpec{}, "nil"},
		{"no user anywhere", v1.PodSpec{Containers: []v1.Container{c(nil)}}, "nil"},
		{"the pod's user", v1.PodSpec{SecurityContext: &v1.PodSecurityContext{RunAsUser: ptr.To[int64](5)}, Containers: []v1.Container{c(nil), c(nil)}}, "5"},
		{"containers agree", v1.PodSpec{InitContainers: []v1.Container{c(ptr.To[int64](7))}, Containers: []v1.Container{c(ptr.To[int64](7))}}, "7"},
		{"a container overrides the pod's user for all", v1.PodSpec{SecurityContext: &v1.PodSecurityContext{RunAsUser: ptr.To[int64](5)}, Containers: []v1.Container{c(ptr.To[int64](6))}}, "6"},
		{"containers differ", v1.PodSpec{SecurityContext: &v1.PodSecurityContext{RunAsUser: ptr.To[int64](5)}, Containers: []v1.Container{c(nil), c(ptr.To[int64](6))}}, "nil"},
		{"one container sets none", v1.PodSpec{Containers: []v1.Container{c(ptr.To[int64](6)), c(nil)}}, "nil"},
		{"an init container differs", v1.PodSpec{InitContainers: []v1.Container{c(ptr.To[int64](0))}, Containers: []v1.Container{c(ptr.To[int64](6))}}, "nil"},
		{"an ephemeral container differs", v1.PodSpec{
			Containers:          []v1.Container{c(ptr.To[int64](6))},
			EphemeralContainers: []v1.EphemeralContainer{{EphemeralContainerCommon: v1.EphemeralContainerCommon{SecurityContext: &v1.SecurityContext{RunAsUser: ptr.To[int64](0)}}}},
		}, "nil"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: tc.pod}
			got := "nil"
			if u := volumemgr.FsUserOf(pod); u != nil {
				got = fmt.Sprint(*u)
				*u = 99 // must not write through to the pod
			}
			if got != tc.want {
				t.Errorf("FsUserOf = %s, want %s", got, tc.want)
			}
			if u := volumemgr.FsUserOf(pod); u != nil && *u == 99 {
				t.Error("the result aliases the pod")
			}
		})
	}
}
