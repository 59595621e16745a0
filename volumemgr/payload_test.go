package volumemgr_test

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/volumemgr"
)

// renderPayload prints a payload one file a line, sorted by path:
// "path mode user=N data", user "-" when unset, so that tests compare
// whole payloads as text.
func renderPayload(p map[string]volumemgr.FileProjection) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(p)) {
		f := p[k]
		user := "-"
		if f.FsUser != nil {
			user = fmt.Sprint(*f.FsUser)
		}
		fmt.Fprintf(&b, "%s %#o user=%s %q\n", k, f.Mode, user, f.Data)
	}
	return b.String()
}

// payloadWant is the expected outcome of a payload function: the payload
// rendered by renderPayload, or an error class and fragments of its
// message.
type payloadWant struct {
	payload string
	class   error
	msg     []string
}

func (w payloadWant) check(t *testing.T, got map[string]volumemgr.FileProjection, err error) {
	t.Helper()
	if w.class != nil {
		if err == nil {
			t.Fatalf("got payload\n%s\nwant an error matching %v", renderPayload(got), w.class)
		}
		if !errors.Is(err, w.class) {
			t.Errorf("error %q does not match %v", err, w.class)
		}
		for _, m := range w.msg {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("error %q does not mention %q", err, m)
			}
		}
		if got != nil {
			t.Errorf("payload %v returned with an error", got)
		}
		return
	}
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if g := renderPayload(got); g != w.payload {
		t.Errorf("payload:\n%s\nwant:\n%s", g, w.payload)
	}
}

func payloadTestConfigMap() *v1.ConfigMap {
	return &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cfg"},
		Data:       map[string]string{"foo": "foo", "bar": "bar"},
		BinaryData: map[string][]byte{"bin": {0, 1, 2}},
	}
}

func TestConfigMapPayload(t *testing.T) {
	cases := []struct {
		name string
		src  v1.ConfigMapVolumeSource
		cm   *v1.ConfigMap
		want payloadWant
	}{{
		name: "all keys, data and binaryData, default mode",
		src:  v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}},
		cm:   payloadTestConfigMap(),
		want: payloadWant{payload: "bar 0644 user=- \"bar\"\nbin 0644 user=- \"\\x00\\x01\\x02\"\nfoo 0644 user=- \"foo\"\n"},
	}, {
		name: "only binaryData",
		src:  v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}},
		cm:   &v1.ConfigMap{BinaryData: map[string][]byte{"foo": []byte("foo"), "bar": []byte("bar")}},
		want: payloadWant{payload: "bar 0644 user=- \"bar\"\nfoo 0644 user=- \"foo\"\n"},
	}, {
		name: "defaultMode and defaultUser for every key",
		src:  v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, DefaultMode: ptr.To[int32](0o400), DefaultUser: ptr.To[int64](1001)},
		cm:   &v1.ConfigMap{Data: map[string]string{"foo": "foo"}},
		want: payloadWant{payload: "foo 0400 user=1001 \"foo\"\n"},
	}, {
		name: "items map keys to paths, unlisted keys left out",
		src: v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Items: []v1.KeyToPath{
			{Key: "foo", Path: "path/to/foo.txt"},
			{Key: "bin", Path: "bin.dat"},
		}},
		cm:   payloadTestConfigMap(),
		want: payloadWant{payload: "bin.dat 0644 user=- \"\\x00\\x01\\x02\"\npath/to/foo.txt 0644 user=- \"foo\"\n"},
	}, {
		name: "item mode and user override the defaults",
		src: v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, DefaultMode: ptr.To[int32](0o640), DefaultUser: ptr.To[int64](1001), Items: []v1.KeyToPath{
			{Key: "foo", Path: "foo.txt", Mode: ptr.To[int32](0o400), User: ptr.To[int64](1002)},
			{Key: "bar", Path: "bar.txt"},
		}},
		cm:   payloadTestConfigMap(),
		want: payloadWant{payload: "bar.txt 0640 user=1001 \"bar\"\nfoo.txt 0400 user=1002 \"foo\"\n"},
	}, {
		name: "one key at two paths",
		src: v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Items: []v1.KeyToPath{
			{Key: "foo", Path: "a/foo"}, {Key: "foo", Path: "b/foo"},
		}},
		cm:   payloadTestConfigMap(),
		want: payloadWant{payload: "a/foo 0644 user=- \"foo\"\nb/foo 0644 user=- \"foo\"\n"},
	}, {
		name: "paths are cleaned, and a later item at the same path wins",
		src: v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Items: []v1.KeyToPath{
			{Key: "foo", Path: "this//x/"}, {Key: "bar", Path: "./this/x"},
		}},
		cm:   payloadTestConfigMap(),
		want: payloadWant{payload: "this/x 0644 user=- \"bar\"\n"},
	}, {
		name: "missing key, not optional",
		src: v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Items: []v1.KeyToPath{
			{Key: "foo", Path: "foo"}, {Key: "nope", Path: "nope"},
		}},
		cm:   payloadTestConfigMap(),
		want: payloadWant{class: core.ErrNotFound, msg: []string{`ConfigMap ns/cfg`, `items[1]`, `"nope"`}},
	}, {
		name: "missing key, optional: skipped",
		src: v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Optional: ptr.To(true), Items: []v1.KeyToPath{
			{Key: "foo", Path: "foo"}, {Key: "nope", Path: "nope"},
		}},
		cm:   payloadTestConfigMap(),
		want: payloadWant{payload: "foo 0644 user=- \"foo\"\n"},
	}, {
		name: "missing ConfigMap, not optional",
		src:  v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}},
		want: payloadWant{class: core.ErrNotFound, msg: []string{`ConfigMap "cfg" not found`}},
	}, {
		name: "missing ConfigMap, optional: empty",
		src:  v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Optional: ptr.To(true)},
		want: payloadWant{payload: ""},
	}, {
		name: "missing ConfigMap, optional, with items: empty",
		src: v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Optional: ptr.To(true), Items: []v1.KeyToPath{
			{Key: "foo", Path: "foo"},
		}},
		want: payloadWant{payload: ""},
	}, {
		name: "empty ConfigMap: empty payload",
		src:  v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}},
		cm:   &v1.ConfigMap{},
		want: payloadWant{payload: ""},
	}, {
		name: "absolute path",
		src: v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Items: []v1.KeyToPath{
			{Key: "foo", Path: "/etc/passwd"},
		}},
		cm:   payloadTestConfigMap(),
		want: payloadWant{class: core.ErrInvalid, msg: []string{`items[0]`, `"/etc/passwd"`, "relative"}},
	}, {
		name: "a '..' element",
		src: v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Items: []v1.KeyToPath{
			{Key: "foo", Path: "foo"}, {Key: "bar", Path: "hello/../../etc/passwd"},
		}},
		cm:   payloadTestConfigMap(),
		want: payloadWant{class: core.ErrInvalid, msg: []string{`items[1]`, `'..'`}},
	}, {
		name: "a path starting with '..'",
		src: v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Items: []v1.KeyToPath{
			{Key: "foo", Path: "..data/foo"},
		}},
		cm:   payloadTestConfigMap(),
		want: payloadWant{class: core.ErrInvalid, msg: []string{`items[0]`, `start with '..'`}},
	}, {
		name: "a file that is another's directory",
		src: v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Items: []v1.KeyToPath{
			{Key: "foo", Path: "a"}, {Key: "bar", Path: "a/b"},
		}},
		cm:   payloadTestConfigMap(),
		want: payloadWant{class: core.ErrInvalid, msg: []string{`"a"`, `"a/b"`}},
	}, {
		name: "a mode beyond 0777",
		src: v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Items: []v1.KeyToPath{
			{Key: "foo", Path: "foo", Mode: ptr.To[int32](0o4755)},
		}},
		cm:   payloadTestConfigMap(),
		want: payloadWant{class: core.ErrInvalid, msg: []string{`items[0]`, "04755"}},
	}, {
		name: "a defaultMode beyond 0777",
		src:  v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, DefaultMode: ptr.To[int32](0o1000)},
		cm:   payloadTestConfigMap(),
		want: payloadWant{class: core.ErrInvalid, msg: []string{"defaultMode"}},
	}, {
		name: "a key that cannot be a file name",
		src:  v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}},
		cm:   &v1.ConfigMap{Data: map[string]string{"..x": "x"}},
		want: payloadWant{class: core.ErrInvalid, msg: []string{`key "..x"`}},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.src.DeepCopy()
			var cm *v1.ConfigMap
			if tc.cm != nil {
				cm = tc.cm.DeepCopy()
			}
			got, err := volumemgr.ConfigMapPayload(src, cm)
			tc.want.check(t, got, err)
			if !reflect.DeepEqual(src, &tc.src) {
				t.Error("the source was modified")
			}
			if tc.cm != nil && !reflect.DeepEqual(cm, tc.cm) {
				t.Error("the ConfigMap was modified")
			}
		})
	}
}

func TestConfigMapPayloadNilSource(t *testing.T) {
	_, err := volumemgr.ConfigMapPayload(nil, payloadTestConfigMap())
	if !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("got %v, want an error matching core.ErrInvalid", err)
	}
}

// The payload must not alias the object: a getter's cache hands out the
// same object again.
func TestConfigMapPayloadSharesNoMemory(t *testing.T) {
	cm := payloadTestConfigMap()
	got, err := volumemgr.ConfigMapPayload(&v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}}, cm)
	if err != nil {
		t.Fatal(err)
	}
	got["bin"].Data[0] = 9
	if cm.BinaryData["bin"][0] != 0 {
		t.Error("writing to the payload changed the ConfigMap")
	}
}

func payloadTestSecret() *v1.Secret {
	return &v1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "creds"},
		Data:       map[string][]byte{"user": []byte("admin"), "pass": []byte("s3cret")},
		StringData: map[string]string{"ignored": "only the API server reads stringData"},
	}
}

func TestSecretPayload(t *testing.T) {
	ref := func(src v1.SecretVolumeSource) v1.SecretVolumeSource { src.SecretName = "creds"; return src }
	cases := []struct {
		name string
		src  v1.SecretVolumeSource
		s    *v1.Secret
		want payloadWant
	}{{
		name: "all keys of data, default mode",
		src:  ref(v1.SecretVolumeSource{}),
		s:    payloadTestSecret(),
		want: payloadWant{payload: "pass 0644 user=- \"s3cret\"\nuser 0644 user=- \"admin\"\n"},
	}, {
		name: "defaultMode 0400 and defaultUser",
		src:  ref(v1.SecretVolumeSource{DefaultMode: ptr.To[int32](0o400), DefaultUser: ptr.To[int64](7)}),
		s:    payloadTestSecret(),
		want: payloadWant{payload: "pass 0400 user=7 \"s3cret\"\nuser 0400 user=7 \"admin\"\n"},
	}, {
		name: "items with modes",
		src: ref(v1.SecretVolumeSource{Items: []v1.KeyToPath{
			{Key: "pass", Path: "db/password", Mode: ptr.To[int32](0o600)},
			{Key: "user", Path: "db/user"},
		}}),
		s:    payloadTestSecret(),
		want: payloadWant{payload: "db/password 0600 user=- \"s3cret\"\ndb/user 0644 user=- \"admin\"\n"},
	}, {
		name: "missing key, not optional",
		src:  ref(v1.SecretVolumeSource{Items: []v1.KeyToPath{{Key: "token", Path: "token"}}}),
		s:    payloadTestSecret(),
		want: payloadWant{class: core.ErrNotFound, msg: []string{"Secret ns/creds", `"token"`}},
	}, {
		name: "a stringData key is not a data key",
		src:  ref(v1.SecretVolumeSource{Items: []v1.KeyToPath{{Key: "ignored", Path: "x"}}}),
		s:    payloadTestSecret(),
		want: payloadWant{class: core.ErrNotFound, msg: []string{`"ignored"`}},
	}, {
		name: "missing key, optional",
		src:  ref(v1.SecretVolumeSource{Optional: ptr.To(true), Items: []v1.KeyToPath{{Key: "token", Path: "token"}, {Key: "user", Path: "u"}}}),
		s:    payloadTestSecret(),
		want: payloadWant{payload: "u 0644 user=- \"admin\"\n"},
	}, {
		name: "missing Secret, not optional",
		src:  ref(v1.SecretVolumeSource{}),
		want: payloadWant{class: core.ErrNotFound, msg: []string{`Secret "creds" not found`}},
	}, {
		name: "missing Secret, optional false",
		src:  ref(v1.SecretVolumeSource{Optional: ptr.To(false)}),
		want: payloadWant{class: core.ErrNotFound},
	}, {
		name: "missing Secret, optional true",
		src:  ref(v1.SecretVolumeSource{Optional: ptr.To(true), Items: []v1.KeyToPath{{Key: "user", Path: "u"}}}),
		want: payloadWant{payload: ""},
	}, {
		name: "bad paths are all reported",
		src: ref(v1.SecretVolumeSource{Items: []v1.KeyToPath{
			{Key: "user", Path: ""}, {Key: "pass", Path: "ok"}, {Key: "pass", Path: strings.Repeat("x", 256)},
		}}),
		s:    payloadTestSecret(),
		want: payloadWant{class: core.ErrInvalid, msg: []string{"items[0]", "empty", "items[2]", "255"}},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := volumemgr.SecretPayload(&tc.src, tc.s)
			tc.want.check(t, got, err)
		})
	}
}

func TestSecretPayloadSharesNoMemory(t *testing.T) {
	s := payloadTestSecret()
	got, err := volumemgr.SecretPayload(&v1.SecretVolumeSource{SecretName: "creds"}, s)
	if err != nil {
		t.Fatal(err)
	}
	got["user"].Data[0] = 'X'
	if string(s.Data["user"]) != "admin" {
		t.Error("writing to the payload changed the Secret")
	}
}
