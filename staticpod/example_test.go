package staticpod_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/staticpod"
)

// A directory of manifests becomes pod updates: the running source sends
// an ADD for the pods it finds, and a REMOVE when a manifest goes.
func ExampleFileSource() {
	dir, err := os.MkdirTemp("", "manifests")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	manifest := filepath.Join(dir, "web.yaml")
	os.WriteFile(manifest, []byte(`apiVersion: v1
kind: Pod
metadata: {name: web, namespace: kube-system}
spec:
  containers: [{name: nginx, image: "nginx:1.27"}]
`), 0o644)

	m, err := staticpod.NewMerger(staticpod.MergerConfig{Sources: []string{core.SourceFile}})
	if err != nil {
		panic(err)
	}
	files, err := staticpod.NewFileSource(staticpod.FileConfig{Path: dir, NodeName: "node-1", Period: time.Hour})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go files.Run(ctx, m)

	u := <-m.Updates()
	p := u.Pods[0]
	fmt.Println(u.Op, p.Namespace+"/"+p.Name, "on", p.Spec.NodeName, "from", p.Annotations[core.AnnotationConfigSource])
	os.Remove(manifest)
	u = <-m.Updates()
	fmt.Println(u.Op, u.Pods[0].Name)
	// Output:
	// ADD kube-system/web-node-1 on node-1 from file
	// REMOVE web-node-1
}

// Decode shows what is wrong with a manifest, naming the field.
func ExampleDecode() {
	_, err := staticpod.Decode([]byte(`apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  serviceAccountName: builder
  containers: [{name: nginx}]
`), staticpod.DecodeOptions{NodeName: "node-1", Source: core.SourceFile, Location: "web.yaml"})
	fmt.Println(err)
	// Output:
	// web.yaml: pod "web": invalid manifest: invalid: [spec.containers[0].image: Required value, spec.serviceAccountName: Forbidden: static pods may not reference serviceaccounts]
}
