package staticpod

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/nodekit/nodekit/core"
)

// benchManifest is a typical static pod manifest, as kubeadm writes the
// API server's (3.8 KB of YAML): one container with a long command line,
// probes, resources and host path volumes.
func benchManifest(name string) string {
	return strings.ReplaceAll(`apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: 172.18.0.3:6443
  labels:
    component: NAME
    tier: control-plane
  name: NAME
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --advertise-address=172.18.0.3
    - --allow-privileged=true
    - --authorization-mode=Node,RBAC
    - --client-ca-file=/etc/kubernetes/pki/ca.crt
    - --enable-admission-plugins=NodeRestriction
    - --enable-bootstrap-token-auth=true
    - --etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt
    - --etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt
    - --etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key
    - --etcd-servers=https://127.0.0.1:2379
    - --kubelet-client-certificate=/etc/kubernetes/pki/apiserver-kubelet-client.crt
    - --kubelet-client-key=/etc/kubernetes/pki/apiserver-kubelet-client.key
    - --kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname
    - --proxy-client-cert-file=/etc/kubernetes/pki/front-proxy-client.crt
    - --proxy-client-key-file=/etc/kubernetes/pki/front-proxy-client.key
    - --requestheader-allowed-names=front-proxy-client
    - --requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt
    - --requestheader-extra-headers-prefix=X-Remote-Extra-
    - --requestheader-group-headers=X-Remote-Group
    - --requestheader-username-headers=X-Remote-User
    - --secure-port=6443
    - --service-account-issuer=https://kubernetes.default.svc.cluster.local
    - --service-account-key-file=/etc/kubernetes/pki/sa.pub
    - --service-account-signing-key-file=/etc/kubernetes/pki/sa.key
    - --service-cluster-ip-range=10.96.0.0/16
    - --tls-cert-file=/etc/kubernetes/pki/apiserver.crt
    - --tls-private-key-file=/etc/kubernetes/pki/apiserver.key
    image: registry.k8s.io/kube-apiserver:v1.37.2
    imagePullPolicy: IfNotPresent
    livenessProbe:
      failureThreshold: 8
      httpGet:
        host: 172.18.0.3
        path: /livez
        port: 6443
        scheme: HTTPS
      initialDelaySeconds: 10
      periodSeconds: 10
      timeoutSeconds: 15
    name: kube-apiserver
    readinessProbe:
      failureThreshold: 3
      httpGet:
        host: 172.18.0.3
        path: /readyz
        port: 6443
        scheme: HTTPS
      periodSeconds: 1
      timeoutSeconds: 15
    resources:
      requests:
        cpu: 250m
    startupProbe:
      failureThreshold: 24
      httpGet:
        host: 172.18.0.3
        path: /livez
        port: 6443
        scheme: HTTPS
      initialDelaySeconds: 10
      periodSeconds: 10
      timeoutSeconds: 15
    volumeMounts:
    - mountPath: /etc/ssl/certs
      name: ca-certs
      readOnly: true
    - mountPath: /etc/ca-certificates
      name: etc-ca-certificates
      readOnly: true
    - mountPath: /etc/kubernetes/pki
      name: k8s-certs
      readOnly: true
    - mountPath: /usr/local/share/ca-certificates
      name: usr-local-share-ca-certificates
      readOnly: true
    - mountPath: /usr/share/ca-certificates
      name: usr-share-ca-certificates
      readOnly: true
  hostNetwork: true
  priority: 2000001000
  priorityClassName: system-node-critical
  securityContext:
    seccompProfile:
      type: RuntimeDefault
  volumes:
  - hostPath:
      path: /etc/ssl/certs
      type: DirectoryOrCreate
    name: ca-certs
  - hostPath:
      path: /etc/ca-certificates
      type: DirectoryOrCreate
    name: etc-ca-certificates
  - hostPath:
      path: /etc/kubernetes/pki
      type: DirectoryOrCreate
    name: k8s-certs
  - hostPath:
      path: /usr/local/share/ca-certificates
      type: DirectoryOrCreate
    name: usr-local-share-ca-certificates
  - hostPath:
      path: /usr/share/ca-certificates
      type: DirectoryOrCreate
    name: usr-share-ca-certificates
status: {}
`, "NAME", name)
}

// Decode of one typical manifest, as YAML and as JSON: parsing,
// validation and the static pod defaults.
func BenchmarkDecode(b *testing.B) {
	y := []byte(benchManifest("kube-apiserver"))
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		b.Fatal(err)
	}
	opts := DecodeOptions{NodeName: "node-1", Source: core.SourceFile, Location: "/etc/kubernetes/manifests/kube-apiserver.yaml"}
	for _, tc := range []struct {
		name string
		data []byte
	}{{"yaml", y}, {"json", j}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.data)))
			b.ReportAllocs()
			for b.Loop() {
				pods, err := Decode(tc.data, opts)
				if err != nil || len(pods) != 1 {
					b.Fatalf("%d pods, %v", len(pods), err)
				}
			}
		})
	}
}

// A FileSource's read of a directory of 100 manifests (YAML, as above):
// "first" is the read at start (every file decoded), "unchanged" a
// periodic read after it (every file read and compared with its last
// content, nothing decoded).
func BenchmarkFileSourceRead(b *testing.B) {
	const n = 100
	dir := b.TempDir()
	for i := range n {
		name := fmt.Sprintf("pod-%03d", i)
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(benchManifest(name)), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	newSource := func(b *testing.B) *FileSource {
		s, err := NewFileSource(FileConfig{Path: dir, NodeName: "node-1"})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	read := func(b *testing.B, s *FileSource) {
		if pods := s.read(); len(pods) != n {
			b.Fatalf("%d pods", len(pods))
		}
	}
	b.Run("first", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			read(b, newSource(b))
		}
	})
	b.Run("unchanged", func(b *testing.B) {
		s := newSource(b)
		read(b, s)
		b.ReportAllocs()
		for b.Loop() {
			read(b, s)
		}
	})
}
