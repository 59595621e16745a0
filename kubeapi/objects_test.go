package kubeapi_test

import (
	"context"
	"errors"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/kubeapi"
)

// ConfigMaps and Secrets from a real kube-apiserver, asked for as the
// node: an object a pod of the node references is answered and kept
// current by its watch; a missing one is NotFound; one no pod of the node
// references is refused by the Node authorizer and reported as such.
func TestObjectsOnAPIServer(t *testing.T) {
	admin, _, api := clusterAPI(t)
	ctx := t.Context()
	cfg, err := api.RESTConfigAs("system:node:n1", "system:nodes")
	if err != nil {
		t.Fatal(err)
	}
	nodeClient, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "default"}, Data: map[string]string{"k": "v1"}}
	if _, err := admin.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sec := &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: "default"}, Data: map[string][]byte{"t": []byte("s")}}
	if _, err := admin.CoreV1().Secrets("default").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := pod("web", "n1", nil)
	p.Spec.Volumes = []v1.Volume{
		{Name: "cfg", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "app"}}}},
		{Name: "gone", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "missing"}}}},
		{Name: "sec", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "creds"}}},
	}
	if _, err := admin.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	objs, err := kubeapi.NewObjects(kubeapi.ObjectsConfig{Client: nodeClient, SyncTimeout: 3 * time.Second, IdleTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- objs.Run(runCtx) }()
	defer func() { stop(); <-done }()

	// The Node authorizer learns of the pod's references asynchronously.
	var got *v1.ConfigMap
	eventually(t, "the configMap as the node", func() bool {
		got, err = objs.GetConfigMap("default", "app")
		return err == nil
	})
	if got.Data["k"] != "v1" {
		t.Fatalf("configMap: %v", got.Data)
	}
	if s, err := objs.GetSecret("default", "creds"); err != nil || string(s.Data["t"]) != "s" {
		t.Fatalf("secret: %v %v", s, err)
	}
	if _, err := objs.GetConfigMap("default", "missing"); !apierrors.IsNotFound(err) {
		t.Fatalf("missing: %v", err)
	}
	// Updates arrive through the watch.
	cm.Data["k"] = "v2"
	if _, err := admin.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the update", func() bool {
		got, err := objs.GetConfigMap("default", "app")
		return err == nil && got.Data["k"] == "v2"
	})
	// Deleted: NotFound.
	if err := admin.CoreV1().ConfigMaps("default").Delete(ctx, "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deletion", func() bool {
		_, err := objs.GetConfigMap("default", "app")
		return apierrors.IsNotFound(err)
	})
	// Not referenced by any pod of the node: the Node authorizer refuses.
	if _, err := admin.CoreV1().ConfigMaps("default").Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "default"}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := objs.GetConfigMap("default", "other"); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("an object the node may not read: %v", err)
	}
	if n := objs.Watched(); n != 4 {
		t.Errorf("watching %d objects, want 4", n)
	}
	// Nobody asks any more: the watches stop.
	eventually(t, "idle watches to stop", func() bool { return objs.Watched() == 0 })
}
