package staticpod

import (
	"errors"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/nodekit/nodekit/core"
)

const webManifest = `apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: nginx
    image: nginx:1.27
    ports: [{containerPort: 80}]
    resources:
      limits: {cpu: 500m, memory: 64Mi}
    livenessProbe:
      httpGet: {port: 80}
  - name: side
    image: busybox
`

func fileOpts(path string) DecodeOptions {
	return DecodeOptions{NodeName: "Node-1", Source: core.SourceFile, Location: path}
}

// A static pod gets the kubelet's defaults: name-node, namespace, node
// name, hash annotation and UID, the NoExecute toleration, phase Pending,
// and the API server's defaults for what the node reads.
func TestDecodeDefaults(t *testing.T) {
	pods, err := Decode([]byte(webManifest), fileOpts("/etc/kubernetes/manifests/web.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 1 {
		t.Fatalf("%d pods", len(pods))
	}
	p := pods[0]
	if p.Name != "web-node-1" || p.Namespace != "default" || p.Spec.NodeName != "Node-1" || p.Status.Phase != v1.PodPending {
		t.Errorf("meta: %s/%s on %q, phase %s", p.Namespace, p.Name, p.Spec.NodeName, p.Status.Phase)
	}
	if len(p.UID) != 32 || p.Annotations[core.AnnotationConfigHash] != string(p.UID) {
		t.Errorf("UID %q, hash annotation %q", p.UID, p.Annotations[core.AnnotationConfigHash])
	}
	if len(p.Spec.Tolerations) != 1 || p.Spec.Tolerations[0].Operator != v1.TolerationOpExists || p.Spec.Tolerations[0].Effect != v1.TaintEffectNoExecute {
		t.Errorf("tolerations %+v", p.Spec.Tolerations)
	}
	if p.Spec.RestartPolicy != v1.RestartPolicyAlways || *p.Spec.TerminationGracePeriodSeconds != 30 || p.Spec.DNSPolicy != v1.DNSClusterFirst {
		t.Errorf("spec defaults: %s %d %s", p.Spec.RestartPolicy, *p.Spec.TerminationGracePeriodSeconds, p.Spec.DNSPolicy)
	}
	nginx, side := p.Spec.Containers[0], p.Spec.Containers[1]
	if nginx.ImagePullPolicy != v1.PullIfNotPresent || side.ImagePullPolicy != v1.PullAlways {
		t.Errorf("pull policies %s (tagged), %s (untagged)", nginx.ImagePullPolicy, side.ImagePullPolicy)
	}
	if nginx.TerminationMessagePath != "/dev/termination-log" || nginx.Ports[0].Protocol != v1.ProtocolTCP {
		t.Errorf("container defaults: %q %q", nginx.TerminationMessagePath, nginx.Ports[0].Protocol)
	}
	if got := nginx.Resources.Requests.Cpu().String(); got != "500m" {
		t.Errorf("cpu request from limit: %s", got)
	}
	lp := nginx.LivenessProbe
	if lp.PeriodSeconds != 10 || lp.TimeoutSeconds != 1 || lp.FailureThreshold != 3 || lp.SuccessThreshold != 1 || lp.HTTPGet.Path != "/" || lp.HTTPGet.Scheme != v1.URISchemeHTTP {
		t.Errorf("probe defaults: %+v", lp)
	}
	// The UID follows the content, the node and the path.
	again, _ := Decode([]byte(webManifest), fileOpts("/etc/kubernetes/manifests/web.yaml"))
	moved, _ := Decode([]byte(webManifest), fileOpts("/etc/kubernetes/manifests/web2.yaml"))
	edited, _ := Decode([]byte(strings.Replace(webManifest, "nginx:1.27", "nginx:1.28", 1)), fileOpts("/etc/kubernetes/manifests/web.yaml"))
	otherNode, _ := Decode([]byte(webManifest), DecodeOptions{NodeName: "node-2", Source: core.SourceFile, Location: "/etc/kubernetes/manifests/web.yaml"})
	if again[0].UID != p.UID {
		t.Error("the same manifest gave another UID")
	}
	for what, q := range map[string][]*v1.Pod{"moved": moved, "edited": edited, "other node": otherNode} {
		if q[0].UID == p.UID {
			t.Errorf("%s manifest kept the UID", what)
		}
	}
	// A UID in the manifest is kept; JSON works as YAML does.
	own, err := Decode([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x","uid":"my-uid","namespace":"kube-system"},"spec":{"containers":[{"name":"c","image":"busybox:1"}]}}`), fileOpts("x.json"))
	if err != nil || own[0].UID != "my-uid" || own[0].Namespace != "kube-system" {
		t.Errorf("own UID: %v %v", own, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name, manifest string
		opts           DecodeOptions
		want           []string
	}{
		{"malformed yaml", "kind: Pod\nspec: [\n", fileOpts("bad.yaml"), []string{"bad.yaml", "yaml"}},
		{"empty", "\n", fileOpts("empty.yaml"), []string{"empty.yaml", "empty"}},
		{"wrong kind", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n", fileOpts("svc.yaml"), []string{"svc.yaml", `kind "Service", want Pod`}},
		{"pod list from a file", "apiVersion: v1\nkind: PodList\nitems: []\n", fileOpts("list.yaml"), []string{`kind "PodList", want Pod`}},
		{"wrong apiVersion", "apiVersion: apps/v1\nkind: Pod\n", fileOpts("v.yaml"), []string{`apiVersion "apps/v1"`}},
		{"no name", "apiVersion: v1\nkind: Pod\nspec: {containers: [{name: c, image: i}]}\n", fileOpts("n.yaml"), []string{"metadata.name: Required value"}},
		{"bad name", "apiVersion: v1\nkind: Pod\nmetadata: {name: Web_1}\nspec: {containers: [{name: c, image: i}]}\n", fileOpts("n.yaml"),
			[]string{`metadata.name: Invalid value: "Web_1"`}},
		{"no containers", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {}\n", fileOpts("c.yaml"), []string{"spec.containers: Required value"}},
		{"no image", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c}]}\n", fileOpts("i.yaml"),
			[]string{"i.yaml", `pod "web"`, "spec.containers[0].image: Required value"}},
		{"duplicate container", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c, image: i}, {name: c, image: i}]}\n", fileOpts("d.yaml"),
			[]string{`spec.containers[1].name: Duplicate value: "c"`}},
		{"bad quantity", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c, image: i, resources: {limits: {cpu: lots}}}]}\n", fileOpts("q.yaml"),
			[]string{"q.yaml", `spec.containers[0].resources.limits[cpu]: Invalid value: "lots": quantities must match`}},
		{"request over limit", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c, image: i, resources: {requests: {memory: 2Gi}, limits: {memory: 1Gi}}}]}\n", fileOpts("r.yaml"),
			[]string{"spec.containers[0].resources.requests[memory]", "must be less than or equal to memory limit"}},
		{"secret env", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c, image: i, env: [{name: P, valueFrom: {secretKeyRef: {name: s, key: k}}}]}]}\n", fileOpts("s.yaml"),
			[]string{"spec.containers[0].env[0].valueFrom.secretKeyRef: Forbidden: static pods may not reference secrets"}},
		{"config map volume", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c, image: i}], volumes: [{name: v, configMap: {name: cm}}]}\n", fileOpts("v.yaml"),
			[]string{"spec.volumes[0].configMap: Forbidden: static pods may not reference configmaps"}},
		{"pvc", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c, image: i}], volumes: [{name: v, persistentVolumeClaim: {claimName: x}}]}\n", fileOpts("p.yaml"),
			[]string{"persistentvolumeclaims"}},
		{"service account", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {serviceAccountName: sa, containers: [{name: c, image: i}]}\n", fileOpts("sa.yaml"),
			[]string{"spec.serviceAccountName: Forbidden: static pods may not reference serviceaccounts"}},
		{"projected token", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c, image: i}], volumes: [{name: v, projected: {sources: [{serviceAccountToken: {path: t}}]}}]}\n", fileOpts("t.yaml"),
			[]string{"spec.volumes[0].projected.sources[0].serviceAccountToken"}},
		{"bad port", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c, image: i, ports: [{containerPort: 70000}]}]}\n", fileOpts("port.yaml"),
			[]string{"spec.containers[0].ports[0].containerPort: Invalid value: 70000"}},
		{"bad restart policy", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {restartPolicy: Sometimes, containers: [{name: c, image: i}]}\n", fileOpts("rp.yaml"),
			[]string{`spec.restartPolicy: Unsupported value: "Sometimes"`}},
		{"pod list item", "apiVersion: v1\nkind: PodList\nitems: [{metadata: {name: a}, spec: {containers: [{name: c, image: i}]}}, {metadata: {name: b}, spec: {containers: [{name: c}]}}]\n",
			DecodeOptions{NodeName: "n", Source: core.SourceHTTP, Location: "http://x/pods"}, []string{"http://x/pods: items[1]", `pod "b"`, "image: Required value"}},
		{"name too long with the node's", "apiVersion: v1\nkind: Pod\nmetadata: {name: " + strings.Repeat("a", 250) + "}\nspec: {containers: [{name: c, image: i}]}\n",
			fileOpts("long.yaml"), []string{"long.yaml", "metadata.name: Invalid value", "with the node's name appended"}},
		{"node name not a DNS name", manifestFor("web"), DecodeOptions{NodeName: "Node_1", Source: core.SourceFile, Location: "w.yaml"},
			[]string{`"web-node_1"`}},
		{"too large", "kind: Pod\n" + strings.Repeat("#", MaxManifestSize), fileOpts("big.yaml"), []string{"big.yaml", "more than 10485760"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pods, err := Decode([]byte(tc.manifest), tc.opts)
			if err == nil {
				t.Fatalf("decoded %d pods, want an error", len(pods))
			}
			if !errors.Is(err, ErrInvalidManifest) || !errors.Is(err, core.ErrInvalid) {
				t.Errorf("error %v is not ErrInvalidManifest", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if _, err := Decode([]byte(webManifest), DecodeOptions{Location: "x"}); !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "NodeName is required") {
		t.Errorf("no node name: %v", err)
	}
}

func manifestFor(name string) string {
	return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name + "}\nspec: {containers: [{name: c, image: i}]}\n"
}
