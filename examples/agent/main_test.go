package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/component-helpers/node/util/sysctl"

	"github.com/nodekit/nodekit/examples/agent/kernel"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// started runs the agent with args until the test ends and returns its
// output.
func started(t *testing.T, args ...string) (*syncBuffer, func() error) {
	t.Helper()
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, out) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(time.Minute):
				err = errors.New("the agent did not stop within a minute")
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("agent: %v\n%s", err, out.String())
		}
	})
	return out, stop
}

func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get(url string) (int, string) {
	c := &http.Client{Timeout: 5 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func podPhases(body string) map[string]v1.PodPhase {
	var list v1.PodList
	if json.Unmarshal([]byte(body), &list) != nil {
		return nil
	}
	out := map[string]v1.PodPhase{}
	for _, p := range list.Items {
		out[p.Labels["app"]] = p.Status.Phase
	}
	return out
}

// The README's first command, as a contract: with no flags the agent runs
// the bundled demo on the simulated runtime, healthz answers on
// 127.0.0.1:10248 and the read-only port on 127.0.0.1:10255 serves the
// bundled pods, Running, and metrics with kubelet_running_pods.
func TestReadmeFirstCommand(t *testing.T) {
	out, stop := started(t)
	eventually(t, 20*time.Second, "the bundled pods running in /pods", func() bool {
		code, body := get("http://127.0.0.1:10255/pods")
		p := podPhases(body)
		return code == 200 && p["hello"] == v1.PodRunning && p["web"] == v1.PodRunning
	})
	if code, body := get("http://127.0.0.1:10248/healthz"); code != 200 || body != "ok" {
		t.Errorf("healthz: %d %q", code, body)
	}
	code, metrics := get("http://127.0.0.1:10255/metrics")
	if code != 200 || !strings.Contains(metrics, "\nkubelet_running_pods 2\n") || !strings.Contains(metrics, "kubelet_pod_start_duration_seconds_count") {
		t.Errorf("metrics: %d\n%.2000s", code, metrics)
	}
	if !strings.Contains(out.String(), "running on the simulated runtime") {
		t.Errorf("the agent does not say it runs on the simulated runtime:\n%s", out.String())
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// freePort is a free TCP port on 127.0.0.1.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A manifest dropped into the static pod directory starts its pod;
// removing it stops it.
func TestManifestDirOnSimulatedRuntime(t *testing.T) {
	dir := t.TempDir()
	ro := freePort(t)
	started(t, "-manifest-dir", dir, "-read-only-port", ro, "-healthz-port", "0")
	manifest := writeFile(t, dir, "db.yaml", `apiVersion: v1
kind: Pod
metadata: {name: db, labels: {app: db}}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers: [{name: app, image: "`+simulatedImage+`", imagePullPolicy: Never}]
`)
	url := "http://127.0.0.1:" + ro + "/pods"
	eventually(t, 20*time.Second, "db running", func() bool { _, b := get(url); return podPhases(b)["db"] == v1.PodRunning })
	if err := os.Remove(manifest); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "db gone", func() bool { _, b := get(url); p := podPhases(b); return p != nil && p["db"] == "" })
}

// Bad configurations are refused before anything starts, with errors that
// name the file and the field.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct{ config, want string }{
		"unknown field": {"staticPodPth: /x\n", `unknown field "staticPodPth"`},
		"bad value":     {"readOnlyPort: -5\n", "readOnlyPort: -5 is not a port"},
		"old TLS":       {"tlsMinVersion: VersionTLS11\n", `tlsMinVersion: "VersionTLS11"`},
		"webhook without a cluster": {"staticPodPath: " + dir + "\nenableServer: true\nport: " + freePort(t) + "\n",
			"webhook authentication and authorization need an apiserver"},
		"no pod source": {"enableServer: false\n", "no pod source"},
	} {
		path := writeFile(t, dir, strings.ReplaceAll(name, " ", "-")+".yaml",
			"apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nhealthzPort: 0\n"+tc.config)
		err := run(context.Background(), []string{"-config", path}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, tc.want)
		}
	}
}

// protectKernelDefaults: the agent starts only when the kernel's settings
// are the ones the node needs, and otherwise says which differ.
func TestProtectKernelDefaults(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "k.yaml", fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: %s
enableServer: false
healthzPort: 0
protectKernelDefaults: true
`, dir))
	diffs := kernel.Check(sysctl.New(), kernel.Defaults)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := run(ctx, []string{"-config", path}, io.Discard)
	if len(diffs) == 0 {
		if err != nil {
			t.Fatalf("the kernel has the settings, yet: %v", err)
		}
		return
	}
	if !errors.Is(err, kernel.ErrDefaultsDiffer) || !strings.Contains(err.Error(), diffs[0].Name) {
		t.Fatalf("kernel settings differ (%s), the agent said: %v", diffs[0].Name, err)
	}
}

// The hardened server, standalone (client certificates and AlwaysAllow):
// anonymous requests get 401, TLS 1.1 clients are refused, a client
// certificate of the client CA is served.
func TestServerRefusesAnonymousAndOldTLS(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	ca, clientCert := testCA(t, dir)
	path := writeFile(t, dir, "k.yaml", fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: %s
enableServer: true
address: 127.0.0.1
port: %s
healthzPort: 0
readOnlyPort: 0
tlsMinVersion: VersionTLS12
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %s}
authorization: {mode: AlwaysAllow}
`, dir, port, ca))
	started(t, "-config", path, "-root-dir", dir)
	url := "https://127.0.0.1:" + port + "/pods"
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	var code int
	eventually(t, 20*time.Second, "the server", func() bool {
		res, err := insecure.Get(url)
		if err != nil {
			return false
		}
		res.Body.Close()
		code = res.StatusCode
		return true
	})
	if code != http.StatusUnauthorized {
		t.Errorf("anonymous request: %d, want 401", code)
	}
	old := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true,
		MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}}}
	if res, err := old.Get(url); err == nil {
		res.Body.Close()
		t.Errorf("a TLS 1.1 client was served: %d", res.StatusCode)
	}
	withCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true,
		Certificates: []tls.Certificate{clientCert}}}}
	res, err := withCert.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("a client certificate of the CA: %d", res.StatusCode)
	}
}

// testCA writes a CA certificate to dir and returns its path and a client
// certificate it signed.
func testCA(t *testing.T, dir string) (string, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"}, IsCA: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	path := writeFile(t, dir, "ca.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})))
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return path, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
