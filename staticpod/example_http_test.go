package staticpod_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/staticpod"
)

// An HTTP source reading a PodList and handing it to a Merger: the first
// read makes an ADD of every pod, named after the node.
func ExampleHTTPSource() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `apiVersion: v1
kind: PodList
items:
- metadata: {name: etcd}
  spec:
    containers: [{name: etcd, image: "registry.k8s.io/etcd:3.6.4-0"}]
- metadata: {name: proxy, namespace: kube-system}
  spec:
    containers: [{name: proxy, image: "registry.k8s.io/kube-proxy:v1.37.2"}]
`)
	}))
	defer srv.Close()

	merger, err := staticpod.NewMerger(staticpod.MergerConfig{Sources: []string{core.SourceHTTP}})
	if err != nil {
		panic(err)
	}
	src, err := staticpod.NewHTTPSource(staticpod.HTTPConfig{URL: srv.URL + "/pods", NodeName: "node-a"})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, merger) }()

	u := <-merger.Updates()
	fmt.Println(u.Op, "from", u.Source)
	for _, p := range u.Pods {
		fmt.Println(p.Namespace + "/" + p.Name)
	}
	fmt.Println("all sources heard from:", merger.AllReady())

	cancel()
	fmt.Println(<-done)
	// Output:
	// ADD from http
	// default/etcd-node-a
	// kube-system/proxy-node-a
	// all sources heard from: true
	// context canceled
}
