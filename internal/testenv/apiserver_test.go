package testenv_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/nodekit/nodekit/internal/testenv"
)

// TestAPIServer starts an apiserver, creates a namespace and a pod through
// it, checks what the apiserver made of them and who may do what, then
// stops it and checks that its processes, ports and directory are gone.
func TestAPIServer(t *testing.T) {
	t.Parallel()
	began := time.Now()
	a := testenv.StartAPIServer(t)
	t.Logf("kube-apiserver ready in %v at %s", time.Since(began).Round(time.Millisecond), a.URL)
	ctx := t.Context()

	procs := processesIn(a.Dir)
	if len(procs) != 2 || !hasValue(procs, "etcd") || !hasValue(procs, "kube-apiserver") {
		t.Fatalf("processes referring to %s: %v, want etcd and kube-apiserver", a.Dir, procs)
	}

	admin := clientset(t, a.RESTConfig())
	ns, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "testenv"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// No controller-manager creates it.
	if _, err := admin.CoreV1().ServiceAccounts(ns.Name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = admin.CoreV1().Pods(ns.Name).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"app": "p"}},
		Spec: corev1.PodSpec{
			NodeName:   "n1",
			Containers: []corev1.Container{{Name: "c", Image: testenv.BusyboxImage}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	gotNS, err := admin.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if gotNS.UID == "" || gotNS.Status.Phase != corev1.NamespaceActive {
		t.Errorf("namespace read back: uid %q, phase %q; want a uid and Active", gotNS.UID, gotNS.Status.Phase)
	}
	pod, err := admin.CoreV1().Pods(ns.Name).Get(ctx, "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Defaulting and admission ran: what only a real apiserver adds.
	if pod.UID == "" || pod.Spec.NodeName != "n1" || pod.Labels["app"] != "p" {
		t.Errorf("pod read back: uid %q, node %q, labels %v", pod.UID, pod.Spec.NodeName, pod.Labels)
	}
	if c := pod.Spec.Containers[0]; pod.Spec.RestartPolicy != corev1.RestartPolicyAlways ||
		c.TerminationMessagePath != corev1.TerminationMessagePathDefault ||
		c.ImagePullPolicy != corev1.PullAlways { // the image's tag is "latest"
		t.Errorf("pod not defaulted: restartPolicy %q, terminationMessagePath %q, imagePullPolicy %q",
			pod.Spec.RestartPolicy, c.TerminationMessagePath, c.ImagePullPolicy)
	}
	if pod.Spec.ServiceAccountName != "default" || len(pod.Spec.Volumes) != 1 || pod.Spec.Volumes[0].Projected == nil {
		t.Errorf("ServiceAccount admission did not run: serviceAccountName %q, volumes %+v", pod.Spec.ServiceAccountName, pod.Spec.Volumes)
	}

	// Authentication and authorization are on.
	stranger := a.RESTConfig()
	stranger.BearerToken = "not-" + a.Token
	if _, err := clientset(t, stranger).CoreV1().Pods(ns.Name).Get(ctx, "p", metav1.GetOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("get with a wrong token: %v, want Unauthorized", err)
	}
	nodeConfig, err := a.RESTConfigAs("system:node:n1", "system:nodes")
	if err != nil {
		t.Fatal(err)
	}
	node := clientset(t, nodeConfig)
	if got, err := node.CoreV1().Pods(ns.Name).Get(ctx, "p", metav1.GetOptions{}); err != nil || got.UID != pod.UID {
		t.Errorf("node n1 gets its pod: %v", err)
	}
	if _, err := node.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "nope"}}, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("node n1 creates a namespace: %v, want Forbidden", err)
	}

	// The kubeconfig file works on its own.
	if body := getWithKubeconfig(t, a.Kubeconfig(), "/api/v1/namespaces/testenv/pods/p"); !strings.Contains(body, string(pod.UID)) {
		t.Errorf("pod through the kubeconfig lacks uid %s:\n%s", pod.UID, body)
	}

	stopping := time.Now()
	if err := a.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("stopped in %v", time.Since(stopping).Round(time.Millisecond))
	checkStopped(t, a, procs)
	if logs := a.Logs(); !strings.Contains(logs, "Serving securely") {
		t.Errorf("Logs after Stop lack the apiserver's start:\n%s", logs)
	}
}

// TestAPIServerStopAfterCrash kills kube-apiserver behind the instance's
// back: Stop must still stop etcd and remove everything. It runs next to
// TestAPIServer, so two instances share the machine.
func TestAPIServerStopAfterCrash(t *testing.T) {
	t.Parallel()
	a := testenv.StartAPIServer(t)
	procs := processesIn(a.Dir)
	killed := false
	for pid, name := range procs {
		if name == "kube-apiserver" {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	if !killed || len(procs) != 2 {
		t.Fatalf("processes referring to %s: %v, want etcd and kube-apiserver", a.Dir, procs)
	}
	if err := a.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	checkStopped(t, a, procs)
	if err := a.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func clientset(t *testing.T, c *rest.Config) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// checkStopped checks that the processes procs (found while a ran), a's
// ports and a's directory are gone.
func checkStopped(t *testing.T, a *testenv.APIServer, procs map[int]string) {
	t.Helper()
	for pid, name := range procs {
		// Gone, or the PID reused by a process that is not the instance's.
		if cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil && strings.Contains(string(cmdline), a.Dir) {
			t.Errorf("%s (pid %d) survived Stop", name, pid)
		}
	}
	if left := processesIn(a.Dir); len(left) > 0 {
		t.Errorf("processes referring to %s after Stop: %v", a.Dir, left)
	}
	for _, u := range []string{a.URL, a.EtcdURL} {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		if conn, err := net.DialTimeout("tcp", parsed.Host, time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts connections after Stop", u)
		}
	}
	if _, err := os.Stat(a.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after Stop: %v, want it removed", a.Dir, err)
	}
}

// processesIn maps the PID of every process with an argument under dir to
// the base name of its executable.
func processesIn(dir string) map[int]string {
	procs := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !strings.Contains(string(cmdline), dir+"/") {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		procs[pid] = filepath.Base(args[0])
	}
	return procs
}

func hasValue(m map[int]string, v string) bool {
	for _, x := range m {
		if x == v {
			return true
		}
	}
	return false
}

// getWithKubeconfig GETs path from the server of the kubeconfig file,
// trusting its CA and sending its token, and returns the body of a 200.
func getWithKubeconfig(t *testing.T, kubeconfig, path string) string {
	t.Helper()
	b, err := os.ReadFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Clusters []struct {
			Cluster struct {
				Server string `json:"server"`
				CA     []byte `json:"certificate-authority-data"`
			} `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			User struct {
				Token string `json:"token"`
			} `json:"user"`
		} `json:"users"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil || len(cfg.Clusters) != 1 || len(cfg.Users) != 1 {
		t.Fatalf("kubeconfig %s: %v\n%s", kubeconfig, err, b)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(cfg.Clusters[0].Cluster.CA) {
		t.Fatalf("kubeconfig %s: no CA certificate", kubeconfig)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.Clusters[0].Cluster.Server+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+cfg.Users[0].User.Token)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s with %s: %s %v\n%s", path, kubeconfig, resp.Status, err, body)
	}
	return string(body)
}
