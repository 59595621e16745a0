package testenv

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/client-go/rest"
)

// KubernetesRelease is the release of kube-apiserver (and of the etcd it
// uses) that hack/testenv.sh builds from the tools module hack/tools.
const KubernetesRelease = "v1.37.2"

// ServiceClusterIPRange is the service IP range of every APIServer.
const ServiceClusterIPRange = "10.96.0.0/16"

// ServiceAccountIssuer is the issuer of the service account tokens of every
// APIServer, also the audience it accepts.
const ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// apiserverDirPrefix starts the name of an APIServer's directory in /tmp;
// "nk" makes ownDir accept it.
const apiserverDirPrefix = "nkapi"

// APIServer is a private kube-apiserver with its own etcd, started by
// StartAPIServer or StartAPIServerContext. Its fields are read-only.
type APIServer struct {
	// URL is where the apiserver serves, https://127.0.0.1:<port>.
	URL string
	// Token is a bearer token of the user "admin" in the group
	// system:masters, which every authorizer allows everything.
	Token string
	// CAData is the PEM certificate of the instance's CA: it signed the
	// apiserver's serving certificate, and the apiserver accepts client
	// certificates it signed (see RESTConfigAs).
	CAData []byte
	// EtcdURL is the client URL of the instance's etcd,
	// http://127.0.0.1:<port>.
	EtcdURL string
	// Dir holds everything of the instance: etcd's data, keys and
	// certificates, the token file, the kubeconfig and the logs
	// (kube-apiserver.log, etcd.log). Stop removes it.
	Dir string

	ca        *x509.Certificate
	caKey     *ecdsa.PrivateKey
	lock      *os.File // flock held while the instance lives; see sweepAPIServerDirs
	etcd      *process
	apiserver *process
	// apiserverBin is the binary launch started, for StartAgain.
	apiserverBin string
	procMu       sync.Mutex // guards apiserver across StopAPIServer and StartAgain

	stopOnce sync.Once
	stopErr  error

	mu        sync.Mutex
	finalLogs *[2]string // the logs' last lines when Stop removed Dir
}

// APIServerBinDir is where the kube-apiserver and etcd binaries are:
// $NODEKIT_APISERVER_BIN if set, else <cache>/kube-apiserver-v1.37.2/bin,
// where hack/testenv.sh install builds them.
func APIServerBinDir() string {
	if d := os.Getenv("NODEKIT_APISERVER_BIN"); d != "" {
		return d
	}
	return filepath.Join(cacheDir(), "kube-apiserver-"+KubernetesRelease, "bin")
}

// StartAPIServer starts a private kube-apiserver and etcd for the test (see
// StartAPIServerContext) and stops them in t.Cleanup; when the test failed,
// the tails of both logs are logged first. When the binaries are missing it
// calls t.Skip if the process is not root (hack/test.sh installs them only
// as root) and t.Fatal if it is: as root, a missing apiserver is a broken
// environment. Any other error is fatal.
func StartAPIServer(t testing.TB) *APIServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	a, err := StartAPIServerContext(ctx)
	switch {
	case errors.Is(err, ErrNotInstalled) && os.Geteuid() != 0:
		t.Skipf("kube-apiserver: %v", err)
	case err != nil:
		t.Fatalf("start kube-apiserver: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kube-apiserver log (%s), last lines:\n%s", a.apiserver.log, tail(a.Logs(), 40))
			t.Logf("etcd log (%s), last lines:\n%s", a.etcd.log, tail(a.EtcdLogs(), 20))
		}
		if err := a.Stop(); err != nil {
			t.Errorf("stop kube-apiserver: %v", err)
		}
	})
	return a
}

// StartAPIServerContext starts a single-member etcd and a kube-apiserver
// using it, both listening on free ports of 127.0.0.1 and keeping all
// their files under a fresh directory, and returns once the apiserver's
// /readyz answers ok (a few seconds; 3 to 5 on two cores).
//
// The apiserver authenticates Token (an admin in system:masters) and client
// certificates signed by CAData, authorizes with Node and RBAC, runs the
// default admission plugins and signs service account tokens for
// ServiceAccountIssuer; services get IPs in ServiceClusterIPRange. No
// controller-manager or scheduler runs: namespaces get no "default"
// service account (the ServiceAccount admission plugin rejects pods naming
// a missing one, so create it), and pods stay where they are created (set
// spec.nodeName).
//
// It returns an error wrapping ErrNotInstalled when a binary is missing
// (hack/testenv.sh install builds them); root is not needed. On any error
// nothing is left behind. The caller must call Stop.
func StartAPIServerContext(ctx context.Context) (*APIServer, error) {
	bins := APIServerBinDir()
	etcdBin, apiserverBin := filepath.Join(bins, "etcd"), filepath.Join(bins, "kube-apiserver")
	var missing []string
	for _, p := range []string{etcdBin, apiserverBin} {
		if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: kube-apiserver %s needs %s", ErrNotInstalled, KubernetesRelease, strings.Join(missing, ", "))
	}
	sweepAPIServerDirs()

	dir, err := os.MkdirTemp("/tmp", apiserverDirPrefix)
	if err != nil {
		return nil, err
	}
	a := &APIServer{Dir: dir}
	err = a.lockDir()
	if err == nil {
		err = a.writeFiles()
	}
	// A free port can be taken by someone else between choosing it and
	// the server binding it; that is worth a few more tries.
	for attempt := 1; err == nil; attempt++ {
		err = a.launch(ctx, etcdBin, apiserverBin)
		if err == nil || attempt == 3 || ctx.Err() != nil || !a.portTaken() {
			break
		}
		err = a.stopProcesses()
		if err == nil {
			err = a.resetForRetry(attempt)
		}
	}
	if err != nil {
		var logs string
		if a.apiserver != nil {
			logs += "\nkube-apiserver log, last lines:\n" + tail(a.Logs(), 30)
		}
		if a.etcd != nil {
			logs += "\netcd log, last lines:\n" + tail(a.EtcdLogs(), 15)
		}
		if stopErr := a.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return nil, fmt.Errorf("kube-apiserver %s in %s: %w%s", KubernetesRelease, dir, err, logs)
	}
	return a, nil
}

// Kubeconfig is the path of a kubeconfig file in Dir for the admin user
// (Token), trusting CAData.
func (a *APIServer) Kubeconfig() string { return filepath.Join(a.Dir, "kubeconfig") }

// RESTConfig returns a new client configuration for the admin user
// (Token), trusting CAData, without client-side rate limit.
func (a *APIServer) RESTConfig() *rest.Config {
	return &rest.Config{
		Host:            a.URL,
		BearerToken:     a.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: slices.Clone(a.CAData)},
		QPS:             -1,
	}
}

// RESTConfigAs returns a new client configuration authenticating as user in
// groups with a fresh client certificate signed by the instance's CA, e.g.
// RESTConfigAs("system:node:n1", "system:nodes") for a kubelet on node n1,
// which the Node authorizer and RBAC then restrict as in a cluster.
func (a *APIServer) RESTConfigAs(user string, groups ...string) (*rest.Config, error) {
	if user == "" {
		return nil, errors.New("testenv: RESTConfigAs needs a user name")
	}
	cert, key, err := a.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: user, Organization: groups},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, err
	}
	return &rest.Config{
		Host:            a.URL,
		TLSClientConfig: rest.TLSClientConfig{CAData: slices.Clone(a.CAData), CertData: cert, KeyData: key},
		QPS:             -1,
	}, nil
}

// Logs returns what kube-apiserver wrote so far (kube-apiserver.log in
// Dir); after Stop, its last 64 KiB.
func (a *APIServer) Logs() string { return a.readLog(0, "kube-apiserver.log") }

// EtcdLogs returns what etcd wrote so far (etcd.log in Dir); after Stop, its
// last 64 KiB.
func (a *APIServer) EtcdLogs() string { return a.readLog(1, "etcd.log") }

func (a *APIServer) readLog(i int, name string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.finalLogs != nil {
		return a.finalLogs[i]
	}
	b, _ := os.ReadFile(filepath.Join(a.Dir, name))
	return string(b)
}

// keepLogs keeps the logs' last 64 KiB for Logs and EtcdLogs once Dir is
// gone.
func (a *APIServer) keepLogs() {
	logs := [2]string{a.Logs(), a.EtcdLogs()}
	for i, l := range logs {
		if len(l) > 64<<10 {
			l = l[len(l)-64<<10:]
			logs[i] = l[strings.IndexByte(l, '\n')+1:]
		}
	}
	a.mu.Lock()
	a.finalLogs = &logs
	a.mu.Unlock()
}

// Stop stops kube-apiserver, then etcd, each by its process group (SIGTERM,
// then SIGKILL), kills any process still referring to Dir, and removes Dir,
// keeping the end of the logs in memory. It is idempotent; later calls
// return the first call's result.
func (a *APIServer) Stop() error {
	a.stopOnce.Do(func() {
		errs := []error{a.stopProcesses()}
		a.keepLogs()
		if ownDir(a.Dir) {
			errs = append(errs, killProcesses(a.Dir, ""), os.RemoveAll(a.Dir))
		}
		if a.lock != nil {
			_ = a.lock.Close()
		}
		a.stopErr = errors.Join(errs...)
	})
	return a.stopErr
}

func (a *APIServer) stopProcesses() error {
	a.procMu.Lock()
	defer a.procMu.Unlock()
	var errs []error
	// The apiserver first: without etcd it would only log errors until it
	// is stopped.
	for _, p := range []*process{a.apiserver, a.etcd} {
		if p != nil {
			errs = append(errs, p.stop())
		}
	}
	return errors.Join(errs...)
}

// lockDir creates Dir/lock and holds an flock on it until Stop: a Dir
// whose lock can be taken belongs to a process that died without Stop.
func (a *APIServer) lockDir() error {
	f, err := os.OpenFile(filepath.Join(a.Dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	a.lock = f
	return nil
}

// sweepAPIServerDirs removes what instances whose process died without
// Stop left behind: their directories and any process still referring to
// them (etcd and kube-apiserver die with the test binary, see process).
// Errors are ignored: it is only hygiene.
func sweepAPIServerDirs() {
	dirs, _ := filepath.Glob(filepath.Join("/tmp", apiserverDirPrefix+"*"))
	for _, dir := range dirs {
		if !ownDir(dir) {
			continue
		}
		f, err := os.Open(filepath.Join(dir, "lock"))
		if err != nil {
			// Between MkdirTemp and lockDir an instance has no lock yet.
			if fi, err := os.Stat(dir); err == nil && time.Since(fi.ModTime()) > 10*time.Minute {
				_ = killProcesses(dir, "")
				_ = os.RemoveAll(dir)
			}
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			_ = killProcesses(dir, "")
			_ = os.RemoveAll(dir)
		}
		f.Close()
	}
}

// writeFiles writes the instance's CA and serving certificate, the service
// account key, the token file and the kubeconfig.
func (a *APIServer) writeFiles() error {
	for _, d := range []string{"pki", "certs"} {
		if err := os.Mkdir(filepath.Join(a.Dir, d), 0o700); err != nil {
			return err
		}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "nodekit-testenv-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, caKey.Public(), caKey)
	if err != nil {
		return err
	}
	if a.ca, err = x509.ParseCertificate(der); err != nil {
		return err
	}
	a.caKey = caKey
	a.CAData = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})

	// The names a client in a pod would use too, as a cluster's apiserver
	// certificate has them.
	serving, servingKey, err := a.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(10, 96, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return err
	}

	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	saDER, err := x509.MarshalPKCS8PrivateKey(saKey)
	if err != nil {
		return err
	}
	saPub, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return err
	}

	token := make([]byte, 24)
	if _, err := rand.Read(token); err != nil {
		return err
	}
	a.Token = hex.EncodeToString(token)

	files := map[string][]byte{
		"pki/ca.crt":      a.CAData,
		"pki/serving.crt": serving,
		"pki/serving.key": servingKey,
		"pki/sa.key":      pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: saDER}),
		"pki/sa.pub":      pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub}),
		// token,user,uid,"group,..."
		"tokens.csv": fmt.Appendf(nil, "%s,admin,admin,\"system:masters\"\n", a.Token),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(a.Dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// issue creates a key and a certificate from template signed by the
// instance's CA, both PEM encoded.
func (a *APIServer) issue(template *x509.Certificate) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	t := *template
	t.SerialNumber = serial
	t.NotBefore = a.ca.NotBefore
	t.NotAfter = a.ca.NotAfter
	der, err := x509.CreateCertificate(rand.Reader, &t, a.ca, key.Public(), a.caKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// writeKubeconfig writes Kubeconfig for the current URL (JSON, which every
// kubeconfig reader accepts).
func (a *APIServer) writeKubeconfig() error {
	type named struct {
		Name    string         `json:"name"`
		Cluster map[string]any `json:"cluster,omitempty"`
		User    map[string]any `json:"user,omitempty"`
		Context map[string]any `json:"context,omitempty"`
	}
	b, err := json.MarshalIndent(map[string]any{
		"apiVersion":      "v1",
		"kind":            "Config",
		"clusters":        []named{{Name: "testenv", Cluster: map[string]any{"server": a.URL, "certificate-authority-data": a.CAData}}},
		"users":           []named{{Name: "admin", User: map[string]any{"token": a.Token}}},
		"contexts":        []named{{Name: "testenv", Context: map[string]any{"cluster": "testenv", "user": "admin"}}},
		"current-context": "testenv",
	}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(a.Kubeconfig(), append(b, '\n'), 0o600)
}

// launch starts etcd and kube-apiserver on fresh ports and waits until the
// apiserver is ready.
func (a *APIServer) launch(ctx context.Context, etcdBin, apiserverBin string) error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	a.EtcdURL = "http://127.0.0.1:" + strconv.Itoa(ports[0])
	a.URL = "https://127.0.0.1:" + strconv.Itoa(ports[2])
	if err := a.writeKubeconfig(); err != nil {
		return err
	}

	a.etcd, err = startProcess("etcd", etcdBin, filepath.Join(a.Dir, "etcd.log"), a.Dir,
		"--data-dir="+filepath.Join(a.Dir, "etcd"),
		"--listen-client-url="+a.EtcdURL,
		"--listen-peer-url=http://127.0.0.1:"+strconv.Itoa(ports[1]),
		"--unsafe-no-fsync", // the data dies with the test
	)
	if err != nil {
		return err
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	defer plain.CloseIdleConnections()
	err = waitFor(ctx, 30*time.Second, "etcd /health", []*process{a.etcd}, func(ctx context.Context) error {
		body, err := get(ctx, plain, a.EtcdURL+"/health", "")
		if err == nil && !bytes.Contains(body, []byte(`"health":"true"`)) {
			err = fmt.Errorf("not healthy: %s", body)
		}
		return err
	})
	if err != nil {
		return err
	}

	a.apiserverBin = apiserverBin
	return a.startAPIServerProcess(ctx)
}

// startAPIServerProcess starts kube-apiserver on the port of a.URL and
// waits until it is ready.
func (a *APIServer) startAPIServerProcess(ctx context.Context) error {
	port := a.URL[strings.LastIndexByte(a.URL, ':')+1:]
	pki := func(name string) string { return filepath.Join(a.Dir, "pki", name) }
	var err error
	a.apiserver, err = startProcess("kube-apiserver", a.apiserverBin, filepath.Join(a.Dir, "kube-apiserver.log"), a.Dir,
		"--etcd-servers="+a.EtcdURL,
		"--bind-address=127.0.0.1",
		"--secure-port="+port,
		"--cert-dir="+filepath.Join(a.Dir, "certs"),
		"--tls-cert-file="+pki("serving.crt"),
		"--tls-private-key-file="+pki("serving.key"),
		"--client-ca-file="+pki("ca.crt"),
		"--token-auth-file="+filepath.Join(a.Dir, "tokens.csv"),
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer="+ServiceAccountIssuer,
		"--service-account-key-file="+pki("sa.pub"),
		"--service-account-signing-key-file="+pki("sa.key"),
		"--service-cluster-ip-range="+ServiceClusterIPRange,
		"--allow-privileged=true",
		"--profiling=false",
		"--enable-admission-plugins=NodeRestriction",
	)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(a.ca)
	secure := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	defer secure.CloseIdleConnections()
	both := []*process{a.apiserver, a.etcd}
	err = waitFor(ctx, 90*time.Second, "kube-apiserver /readyz", both, func(ctx context.Context) error {
		_, err := get(ctx, secure, a.URL+"/readyz", a.Token)
		return err
	})
	if err != nil {
		return err
	}
	// The server that answered must be the one expected (and not, say,
	// another instance that took the port).
	body, err := get(ctx, secure, a.URL+"/version", a.Token)
	if err != nil {
		return err
	}
	var v struct{ GitVersion string }
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("/version: %w: %s", err, body)
	}
	if want := KubernetesRelease[:strings.LastIndexByte(KubernetesRelease, '.')+1]; !strings.HasPrefix(v.GitVersion, want) {
		return fmt.Errorf("the kube-apiserver started reports version %q, want %s* (rebuild it with hack/testenv.sh install)", v.GitVersion, want)
	}
	return nil
}

// StopAPIServer stops the kube-apiserver alone, as an outage its clients
// must ride out; etcd keeps the data. StartAgain brings it back.
func (a *APIServer) StopAPIServer() error {
	a.procMu.Lock()
	defer a.procMu.Unlock()
	return a.apiserver.stop()
}

// StartAgain starts the kube-apiserver stopped by StopAPIServer again, on
// the same address with the same data, and waits until it is ready.
func (a *APIServer) StartAgain(ctx context.Context) error {
	a.procMu.Lock()
	defer a.procMu.Unlock()
	if a.apiserver.running() {
		return fmt.Errorf("kube-apiserver (pid %d) is running", a.apiserver.cmd.Process.Pid)
	}
	return a.startAPIServerProcess(ctx)
}

// resetForRetry prepares a new launch after a failed one: a fresh etcd
// data directory, and the logs of the attempt kept aside (so that
// portTaken and Logs see only the next one's).
func (a *APIServer) resetForRetry(attempt int) error {
	for _, log := range []string{"etcd.log", "kube-apiserver.log"} {
		p := filepath.Join(a.Dir, log)
		if err := os.Rename(p, p+"."+strconv.Itoa(attempt)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return os.RemoveAll(filepath.Join(a.Dir, "etcd"))
}

// portTaken reports whether a process failed because its port was in use.
func (a *APIServer) portTaken() bool {
	return strings.Contains(a.Logs(), "address already in use") || strings.Contains(a.EtcdLogs(), "address already in use")
}

// freePorts returns n distinct TCP ports of 127.0.0.1 that were free a
// moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close() // all held until all are chosen, so they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// get returns the body of a GET of url that answered 200 OK.
func get(ctx context.Context, c *http.Client, url, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}

// waitFor calls f every 200ms until it returns nil; it gives up when ctx
// ends, timeout passes or one of procs exits.
func waitFor(ctx context.Context, timeout time.Duration, what string, procs []*process, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		last := f(ctx)
		if last == nil {
			return nil
		}
		for _, p := range procs {
			if !p.running() {
				return fmt.Errorf("waiting for %s: %s exited: %v", what, p.name, p.cmd.ProcessState)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: gave up after %v: %w (last: %v)", what, timeout, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// process is a child process in its own process group, killed with the
// test binary.
type process struct {
	name   string
	log    string
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has exited and been reaped
}

// startProcess starts bin with args in dir, its output appended to log.
func startProcess(name, bin, log, dir string, args ...string) (*process, error) {
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own copy
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	// Nothing of the caller's environment (KUBECONFIG, proxies, ...).
	cmd.Env = []string{"HOME=" + dir, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, so that Stop signals whatever it may have
	// started too; and it dies with the test binary if Stop never runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, log: log, cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after 10 seconds,
// and waits for the process to exit. The group is signalled only while its
// leader has not been seen to exit, so that its ID is not one reused since.
func (p *process) stop() error {
	pid := p.cmd.Process.Pid
	for _, s := range []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{syscall.SIGTERM, 10 * time.Second}, {syscall.SIGKILL, 10 * time.Second}} {
		if !p.running() {
			return nil
		}
		_ = syscall.Kill(-pid, s.sig)
		select {
		case <-p.exited:
			if s.sig == syscall.SIGKILL {
				return fmt.Errorf("%s (pid %d) ignored SIGTERM for 10s; killed", p.name, pid)
			}
			return nil
		case <-time.After(s.wait):
		}
	}
	return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, pid)
}
