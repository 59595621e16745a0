package staticpod_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/staticpod"
)

// FuzzDecode checks Decode on any bytes: it never panics, and it either
// refuses the manifest with an error of class ErrInvalidManifest or gives
// pods with the static pod defaults, the same pods each time.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		httpPodYAML,
		httpPodJSON,
		httpPodListJSON,
		httpPodListYAML,
		httpPodNoImageYAML,
		"",
		"null",
		"{}",
		"[]",
		"kind: Pod\n",
		"apiVersion: v2\nkind: Pod\n",
		"kind: PodList\nitems: [{}]\n",
		`{"kind":"Pod","metadata":{"name":"Bad_Name"},"spec":{"containers":[{"name":"c","image":"i"}]}}`,
		`{"kind":"Pod","metadata":{"name":"p","uid":"fixed"},"spec":{"containers":[{"name":"c","image":"i","ports":[{"containerPort":70000}]}]}}`,
		`{"kind":"Pod","metadata":{"name":"p"},"spec":{"serviceAccountName":"sa","containers":[{"name":"c","image":"i"}]}}`,
		`{"kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i","resources":{"limits":{"cpu":"1"},"requests":{"cpu":"2"}}}]}}`,
		"kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: c, image: i}\n  - {name: c, image: i}\n",
		"a: &a [*a, *a]\n",
		"{\"kind\":\"Pod\",",
		"\t- : -",
	} {
		for _, source := range []string{core.SourceFile, core.SourceHTTP} {
			f.Add([]byte(seed), source == core.SourceFile)
		}
	}
	const node = "fuzz-node"
	f.Fuzz(func(t *testing.T, data []byte, file bool) {
		opts := staticpod.DecodeOptions{NodeName: node, Source: core.SourceHTTP, Location: "http://fuzz.example/pods"}
		if file {
			opts.Source, opts.Location = core.SourceFile, "/etc/kubernetes/manifests/fuzz.yaml"
		}
		pods, err := staticpod.Decode(data, opts)
		if err != nil {
			if !errors.Is(err, staticpod.ErrInvalidManifest) {
				t.Fatalf("error %v is not of class ErrInvalidManifest", err)
			}
			if pods != nil {
				t.Fatalf("error %v with %d pods", err, len(pods))
			}
			return
		}
		var uids []string
		for i, p := range pods {
			if p == nil {
				t.Fatalf("pod %d is nil", i)
			}
			if p.UID == "" {
				t.Errorf("pod %d (%s): no UID", i, p.Name)
			}
			if !strings.HasSuffix(p.Name, "-"+node) || p.Name == "-"+node {
				t.Errorf("pod %d: name %q, want <name>-%s", i, p.Name, node)
			}
			if msgs := validation.IsDNS1123Subdomain(p.Name); len(msgs) > 0 {
				t.Errorf("pod %d: name %q is not a DNS subdomain: %v", i, p.Name, msgs)
			}
			if p.Namespace == "" {
				t.Errorf("pod %d (%s): no namespace", i, p.Name)
			}
			if p.Spec.NodeName != node {
				t.Errorf("pod %d (%s): nodeName %q, want %q", i, p.Name, p.Spec.NodeName, node)
			}
			if !slices.ContainsFunc(p.Spec.Containers, func(c v1.Container) bool { return strings.TrimSpace(c.Image) != "" }) {
				t.Errorf("pod %d (%s): no container with an image", i, p.Name)
			}
			if p.Annotations[core.AnnotationConfigHash] != string(p.UID) {
				t.Errorf("pod %d (%s): config hash %q, want the UID %q", i, p.Name, p.Annotations[core.AnnotationConfigHash], p.UID)
			}
			uids = append(uids, string(p.UID))
		}
		again, err := staticpod.Decode(data, opts)
		if err != nil {
			t.Fatalf("second Decode of the same bytes: %v", err)
		}
		var uidsAgain []string
		for _, p := range again {
			uidsAgain = append(uidsAgain, string(p.UID))
		}
		if !slices.Equal(uids, uidsAgain) {
			t.Fatalf("UIDs %q, then %q for the same bytes", uids, uidsAgain)
		}
	})
}
