package volumemgr_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
	"github.com/nodekit/nodekit/volumemgr"
)

// One object serves both packages: the interfaces are the same.
var (
	_ crispec.ConfigMapGetter   = (*volumemgr.Objects)(nil)
	_ crispec.SecretGetter      = (*volumemgr.Objects)(nil)
	_ crispec.ConfigMapGetter   = volumemgr.ConfigMapGetter(nil)
	_ volumemgr.ConfigMapGetter = crispec.ConfigMapGetter(nil)
	_ crispec.SecretGetter      = volumemgr.SecretGetter(nil)
	_ volumemgr.SecretGetter    = crispec.SecretGetter(nil)
)

func TestObjectsGetSetDelete(t *testing.T) {
	o, err := volumemgr.NewObjects(volumemgr.ObjectsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.GetConfigMap("ns", "cfg"); !errors.Is(err, core.ErrNotFound) || !apierrors.IsNotFound(err) {
		t.Fatalf("empty store: got %v, want an error matching core.ErrNotFound and apierrors.IsNotFound", err)
	}

	cm := payloadTestConfigMap()
	if err := o.SetConfigMap(cm); err != nil {
		t.Fatal(err)
	}
	cm.Data["foo"] = "changed after Set"
	got, err := o.GetConfigMap("ns", "cfg")
	if err != nil {
		t.Fatal(err)
	}
	if got.Data["foo"] != "foo" {
		t.Errorf("stored ConfigMap changed with the caller's copy: %q", got.Data["foo"])
	}
	got.Data["foo"] = "changed after Get"
	again, _ := o.GetConfigMap("ns", "cfg")
	if again.Data["foo"] != "foo" {
		t.Errorf("stored ConfigMap changed with a reader's copy: %q", again.Data["foo"])
	}
	if _, err := o.GetConfigMap("other", "cfg"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("another namespace: got %v, want not found", err)
	}
	// A Secret of the same name is another object.
	if _, err := o.GetSecret("ns", "cfg"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("Secret of the ConfigMap's name: got %v, want not found", err)
	}

	s := payloadTestSecret()
	if err := o.SetSecret(s); err != nil {
		t.Fatal(err)
	}
	s.Data["user"][0] = 'X'
	gs, err := o.GetSecret("ns", "creds")
	if err != nil {
		t.Fatal(err)
	}
	if string(gs.Data["user"]) != "admin" {
		t.Errorf("stored Secret shares bytes with the caller's: %q", gs.Data["user"])
	}

	replacement := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cfg"}, Data: map[string]string{"new": "1"}}
	if err := o.SetConfigMap(replacement); err != nil {
		t.Fatal(err)
	}
	if got, _ := o.GetConfigMap("ns", "cfg"); len(got.Data) != 1 || got.Data["new"] != "1" {
		t.Errorf("after replacing: %v", got.Data)
	}

	o.DeleteConfigMap("ns", "cfg")
	o.DeleteSecret("ns", "creds")
	o.DeleteSecret("ns", "never-there")
	if _, err := o.GetConfigMap("ns", "cfg"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("deleted ConfigMap: got %v", err)
	}
	_, err = o.GetSecret("ns", "creds")
	if !errors.Is(err, core.ErrNotFound) || !apierrors.IsNotFound(err) {
		t.Errorf("deleted Secret: got %v", err)
	}
	if !strings.Contains(err.Error(), "Secret ns/creds not found") {
		t.Errorf("message %q does not name the Secret", err)
	}
}

func TestObjectsRefusesNilAndUnnamed(t *testing.T) {
	o, _ := volumemgr.NewObjects(volumemgr.ObjectsConfig{})
	for name, err := range map[string]error{
		"nil ConfigMap":     o.SetConfigMap(nil),
		"unnamed ConfigMap": o.SetConfigMap(&v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns"}}),
		"nil Secret":        o.SetSecret(nil),
		"unnamed Secret":    o.SetSecret(&v1.Secret{}),
	} {
		if !errors.Is(err, core.ErrInvalid) {
			t.Errorf("%s: got %v, want core.ErrInvalid", name, err)
		}
	}

	_, err := volumemgr.NewObjects(volumemgr.ObjectsConfig{
		ConfigMaps: []*v1.ConfigMap{payloadTestConfigMap(), nil},
		Secrets:    []*v1.Secret{{}},
	})
	if !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("got %v, want core.ErrInvalid", err)
	}
	for _, m := range []string{"ObjectsConfig.ConfigMaps[1]", "ObjectsConfig.Secrets[0]"} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not name %s", err, m)
		}
	}
}

func TestObjectsInitialObjects(t *testing.T) {
	o, err := volumemgr.NewObjects(volumemgr.ObjectsConfig{ConfigMaps: []*v1.ConfigMap{payloadTestConfigMap()}, Secrets: []*v1.Secret{payloadTestSecret()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.GetConfigMap("ns", "cfg"); err != nil {
		t.Error(err)
	}
	if _, err := o.GetSecret("ns", "creds"); err != nil {
		t.Error(err)
	}
}

// Concurrent setters, getters and deleters; run with -race.
func TestObjectsConcurrentUse(t *testing.T) {
	o, _ := volumemgr.NewObjects(volumemgr.ObjectsConfig{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				name := fmt.Sprintf("o%d", i%5)
				_ = o.SetConfigMap(&v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Data: map[string]string{"g": fmt.Sprint(g)}})
				_ = o.SetSecret(&v1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}})
				if cm, err := o.GetConfigMap("ns", name); err == nil {
					cm.Data["mine"] = "x"
				} else if !errors.Is(err, core.ErrNotFound) {
					t.Error(err)
				}
				if _, err := o.GetSecret("ns", name); err != nil && !errors.Is(err, core.ErrNotFound) {
					t.Error(err)
				}
				if i%7 == 0 {
					o.DeleteConfigMap("ns", name)
					o.DeleteSecret("ns", name)
				}
			}
		})
	}
	wg.Wait()
	for i := range 5 {
		if cm, err := o.GetConfigMap("ns", fmt.Sprintf("o%d", i)); err == nil && cm.Data["mine"] != "" {
			t.Error("a reader's change reached the store")
		}
	}
}
