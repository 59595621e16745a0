package volumemgr_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/volumemgr"
)

// A configMap volume: look the ConfigMap up, compute the payload, publish
// it atomically; an update swaps the content, and an unchanged payload
// writes nothing.
func ExampleAtomicWriter() {
	dir, err := os.MkdirTemp("", "configmap-volume")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	objects, _ := volumemgr.NewObjects(volumemgr.ObjectsConfig{ConfigMaps: []*v1.ConfigMap{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "app"},
		Data:       map[string]string{"app.yaml": "replicas: 1", "level": "info"},
	}}})
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}}
	src := &v1.ConfigMapVolumeSource{
		LocalObjectReference: v1.LocalObjectReference{Name: "app"},
		Items:                []v1.KeyToPath{{Key: "app.yaml", Path: "conf/app.yaml"}, {Key: "level", Path: "level"}},
	}
	writer, _ := volumemgr.NewAtomicWriter(volumemgr.AtomicWriterConfig{Dir: dir})

	sync := func() {
		cm, err := objects.GetConfigMap(pod.Namespace, src.Name)
		if err != nil && !errors.Is(err, core.ErrNotFound) {
			fmt.Println(err)
			return
		}
		payload, err := volumemgr.ConfigMapPayload(src, cm) // cm is nil when not found
		if err != nil {
			fmt.Println(err)
			return
		}
		changed, err := writer.Write(payload)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("changed=%v:", changed)
		for _, p := range []string{"conf/app.yaml", "level"} {
			data, _ := os.ReadFile(filepath.Join(dir, p))
			fmt.Printf(" %s=%q", p, data)
		}
		link, _ := os.Readlink(filepath.Join(dir, "conf"))
		fmt.Printf(" (conf -> %s)\n", link)
	}

	sync()
	sync()
	_ = objects.SetConfigMap(&v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "app"},
		Data:       map[string]string{"app.yaml": "replicas: 3", "level": "debug"},
	})
	sync()
	objects.DeleteConfigMap("default", "app")
	sync()

	// Output:
	// changed=true: conf/app.yaml="replicas: 1" level="info" (conf -> ..data/conf)
	// changed=false: conf/app.yaml="replicas: 1" level="info" (conf -> ..data/conf)
	// changed=true: conf/app.yaml="replicas: 3" level="debug" (conf -> ..data/conf)
	// ConfigMap "app" not found
}

func ExampleDownwardAPIPayload() {
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "default", Name: "web",
			Labels: map[string]string{"tier": "front", "app": "web"},
		},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app"}}},
	}
	src := &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
		{Path: "labels", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
		{Path: "name", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}},
		// No memory limit: the node's allocatable memory, in MiB.
		{Path: "mem_limit", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "app", Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}},
	}}
	payload, err := volumemgr.DownwardAPIPayload(src, pod, v1.ResourceList{v1.ResourceMemory: resource.MustParse("1Gi")})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range slices.Sorted(maps.Keys(payload)) {
		fmt.Printf("%s (%#o):\n%s\n", p, payload[p].Mode, payload[p].Data)
	}
	// Output:
	// labels (0644):
	// app="web"
	// tier="front"
	// mem_limit (0644):
	// 1024
	// name (0644):
	// web
}

func ExampleProjectedPayload() {
	objects, _ := volumemgr.NewObjects(volumemgr.ObjectsConfig{ConfigMaps: []*v1.ConfigMap{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kube-root-ca.crt"},
		Data:       map[string]string{"ca.crt": "-----BEGIN CERTIFICATE-----..."},
	}}})
	tokens := volumemgr.TokenGetterFunc(func(ctx context.Context, namespace, name string, tr *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
		// A real agent asks the API server (serviceaccounts/token).
		out := tr.DeepCopy()
		out.Status.Token = fmt.Sprintf("token-for-%s/%s-bound-to-%s", namespace, name, tr.Spec.BoundObjectRef.Name)
		return out, nil
	})
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: "1234"},
		Spec: v1.PodSpec{
			ServiceAccountName: "default",
			SecurityContext:    &v1.PodSecurityContext{RunAsUser: ptr.To[int64](1000)},
			Containers:         []v1.Container{{Name: "app"}},
		},
	}
	// The volume the API server adds to every pod for its service account.
	src := &v1.ProjectedVolumeSource{
		DefaultMode: ptr.To[int32](0o644),
		Sources: []v1.VolumeProjection{
			{ServiceAccountToken: &v1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](3607)}},
			{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: v1.LocalObjectReference{Name: "kube-root-ca.crt"}, Items: []v1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &v1.DownwardAPIProjection{Items: []v1.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
		},
	}
	payload, err := volumemgr.ProjectedPayload(context.Background(), src, pod, volumemgr.ProjectedInputs{
		ConfigMaps: objects, Tokens: tokens,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range slices.Sorted(maps.Keys(payload)) {
		f := payload[p]
		owner := "-"
		if f.FsUser != nil {
			owner = fmt.Sprint(*f.FsUser)
		}
		fmt.Printf("%-9s %#o owner=%-4s %s\n", p, f.Mode, owner, strings.TrimSuffix(string(f.Data), "..."))
	}
	// Output:
	// ca.crt    0644 owner=-    -----BEGIN CERTIFICATE-----
	// namespace 0644 owner=-    default
	// token     0600 owner=1000 token-for-default/default-bound-to-web
}
