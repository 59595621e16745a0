package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/nodekit/nodekit/internal/testenv"
)

// writeKubeconfig writes rc as a kubeconfig file.
func writeKubeconfig(t *testing.T, dir string, rc *rest.Config) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: rc.Host, CertificateAuthorityData: rc.CAData}
	kc.AuthInfos["u"] = &clientcmdapi.AuthInfo{ClientCertificateData: rc.CertData, ClientKeyData: rc.KeyData, Token: rc.BearerToken}
	kc.Contexts["x"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	kc.CurrentContext = "x"
	p := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// unmountUnder undoes, when the test ends, every mount the agent's volume
// manager made below dir (before t.TempDir removes it).
func unmountUnder(t *testing.T, dir string) {
	t.Cleanup(func() {
		for range 10 {
			f, err := os.Open("/proc/self/mountinfo")
			if err != nil {
				return
			}
			var mps []string
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				fs := strings.Fields(sc.Text())
				if len(fs) > 4 && (fs[4] == dir || strings.HasPrefix(fs[4], dir+"/")) {
					mps = append(mps, fs[4])
				}
			}
			f.Close()
			if len(mps) == 0 {
				return
			}
			for i := len(mps) - 1; i >= 0; i-- {
				_ = syscall.Unmount(mps[i], syscall.MNT_DETACH)
			}
		}
	})
}

// Cluster mode on a real kube-apiserver and containerd: the agent
// registers its Node (Ready) and keeps its lease; a pod created with
// spec.nodeName runs on containerd, with its service account token
// volume, and its status becomes Running in the apiserver; a static
// pod's mirror pod shows its status; the hardened server refuses
// anonymous and TLS 1.1 clients and serves the cluster's admin.
func TestClusterModeOnAPIServerAndContainerd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (containerd, mounts)")
	}
	cd := testenv.StartContainerd(t, testenv.Options{Version: testenv.Containerd16})
	api := testenv.StartAPIServer(t)
	ctx := t.Context()
	admin, err := kubernetes.NewForConfig(api.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	// What a controller manager would have made: the default service
	// account and the root CA's ConfigMap every pod's token volume names.
	if _, err := admin.CoreV1().ServiceAccounts("default").Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().ConfigMaps("default").Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt"},
		Data: map[string]string{"ca.crt": string(api.CAData)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	unmountUnder(t, root)
	manifests := filepath.Join(dir, "manifests")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, manifests, "etcd.yaml", `apiVersion: v1
kind: Pod
metadata: {name: static, labels: {app: static}}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers: [{name: app, image: "`+testenv.BusyboxImage+`", imagePullPolicy: Never, command: [sleep, "3600"]}]
`)
	nodeCfg, err := api.RESTConfigAs("system:node:n1", "system:nodes")
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := writeKubeconfig(t, dir, nodeCfg)
	caFile := writeFile(t, dir, "ca.crt", string(api.CAData))
	port := freePort(t)
	config := writeFile(t, dir, "kubelet.yaml", fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: %s
staticPodPath: %s
podLogsDir: %s
address: 127.0.0.1
port: %s
readOnlyPort: 0
healthzPort: 0
enableServer: true
tlsMinVersion: VersionTLS12
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %s}
authorization: {mode: Webhook}
cgroupsPerQOS: false
cgroupRoot: %s
nodeStatusUpdateFrequency: 2s
`, cd.Endpoint(), manifests, filepath.Join(dir, "logs"), port, caFile, cd.CgroupParent))
	out, _ := started(t, "-config", config, "-kubeconfig", kubeconfig, "-hostname-override", "n1", "-root-dir", root)

	// The Node, Ready, and its lease.
	eventually(t, time.Minute, "the Node Ready", func() bool {
		n, err := admin.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range n.Status.Conditions {
			if c.Type == v1.NodeReady {
				return c.Status == v1.ConditionTrue
			}
		}
		return false
	})
	var lease *coordinationv1.Lease
	eventually(t, 30*time.Second, "the node's lease", func() bool {
		lease, err = admin.CoordinationV1().Leases("kube-node-lease").Get(ctx, "n1", metav1.GetOptions{})
		return err == nil
	})
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != "n1" {
		t.Errorf("lease: %+v", lease.Spec)
	}

	// A pod bound to the node runs and reports Running.
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: v1.PodSpec{NodeName: "n1", HostNetwork: true, TerminationGracePeriodSeconds: new(int64(1)),
			Containers: []v1.Container{{Name: "app", Image: testenv.BusyboxImage, ImagePullPolicy: v1.PullNever,
				Command: []string{"sh", "-c", "test -s /var/run/secrets/kubernetes.io/serviceaccount/token && sleep 3600"}}}}}
	if _, err := admin.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "the pod Running in the apiserver", func() bool {
		p, err := admin.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && p.Status.Phase == v1.PodRunning && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready
	})
	// The static pod's mirror pod carries its status.
	eventually(t, 90*time.Second, "the static pod's mirror Running", func() bool {
		p, err := admin.CoreV1().Pods("default").Get(ctx, "static-n1", metav1.GetOptions{})
		return err == nil && p.Status.Phase == v1.PodRunning
	})

	// The hardened server.
	url := "https://127.0.0.1:" + port + "/pods"
	anon := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	res, err := anon.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous: %d, want 401", res.StatusCode)
	}
	old := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}}}
	if res, err := old.Get(url); err == nil {
		res.Body.Close()
		t.Errorf("a TLS 1.1 client was served: %d", res.StatusCode)
	}
	adminCfg, err := api.RESTConfigAs("admin", "system:masters")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(adminCfg.CertData, adminCfg.KeyData)
	if err != nil {
		t.Fatal(err)
	}
	authed := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}}}}
	res, err = authed.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("the cluster admin: %d", res.StatusCode)
	}

	// Deleted in the apiserver: the pod stops and its object goes once its
	// final status is written.
	if err := admin.CoreV1().Pods("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the deleted pod gone from the apiserver", func() bool {
		_, err := admin.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	t.Logf("agent output:\n%s", out.String())
}
