package kubeapi_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/kubeapi"
)

func TestServerTLSConfigInvalid(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := newTestCA(t, "serving").servingFiles(t, dir)
	for _, tc := range []struct {
		name          string
		cert, key, ca string
		minVersion    string
		suites        []string
		want          []string
	}{
		{"no files", "", "", "", "", nil, []string{"certFile is required", "keyFile is required"}},
		{"TLS 1.0", certFile, keyFile, "", "VersionTLS10", nil, []string{"minVersion VersionTLS10 is below TLS 1.2"}},
		{"TLS 1.1", certFile, keyFile, "", "VersionTLS11", nil, []string{"minVersion VersionTLS11 is below TLS 1.2"}},
		{"not a name", certFile, keyFile, "", "TLS12", nil, []string{`minVersion "TLS12" is no TLS version`}},
		{"ciphers", certFile, keyFile, "", "", []string{"TLS_RSA_WITH_RC4_128_SHA", "TLS_NOPE", "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"},
			[]string{"cipherSuites: unknown TLS_NOPE", "cipherSuites: insecure TLS_RSA_WITH_RC4_128_SHA, TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"}},
		{"no certificate in the CA file", certFile, keyFile, keyFile, "", nil, []string{"holds no PEM certificate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := kubeapi.ServerTLSConfig(tc.cert, tc.key, tc.ca, tc.minVersion, tc.suites)
			if !errors.Is(err, core.ErrInvalid) {
				t.Fatalf("error %v, want core.ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if _, err := kubeapi.ServerTLSConfig(filepath.Join(dir, "none.crt"), keyFile, "", "", nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing certificate: %v", err)
	}
	if _, err := kubeapi.ServerTLSConfig(certFile, keyFile, filepath.Join(dir, "none.crt"), "", nil); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "clientCAFile") {
		t.Errorf("a missing client CA file: %v", err)
	}
}

func TestServerTLSConfig(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "clients")
	caFile := writeFile(t, dir, "ca.crt", ca.pem)
	certFile, keyFile := newTestCA(t, "serving").servingFiles(t, dir)

	cfg, err := kubeapi.ServerTLSConfig(certFile, keyFile, caFile, "", []string{
		"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion %x, want TLS 1.2", cfg.MinVersion)
	}
	// The older name and the newer one are the same suite, taken once.
	if want := []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}; !slices.Equal(cfg.CipherSuites, want) {
		t.Errorf("CipherSuites %x, want %x", cfg.CipherSuites, want)
	}
	if cfg.ClientAuth != tls.RequestClientCert || cfg.ClientCAs == nil || !cfg.ClientCAs.Equal(pool(ca.cert)) {
		t.Errorf("ClientAuth %v, ClientCAs %v", cfg.ClientAuth, cfg.ClientCAs)
	}
	if len(cfg.Certificates) != 1 || cfg.Certificates[0].Leaf == nil || cfg.Certificates[0].Leaf.Subject.CommonName != "kubelet" {
		t.Errorf("Certificates %+v", cfg.Certificates)
	}

	cfg, err = kubeapi.ServerTLSConfig(certFile, keyFile, "", "VersionTLS13", nil)
	if err != nil || cfg.MinVersion != tls.VersionTLS13 || cfg.CipherSuites != nil || cfg.ClientAuth != tls.NoClientCert || cfg.ClientCAs != nil {
		t.Errorf("TLS 1.3 without client CA: %+v %v", cfg, err)
	}
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// Handshakes with servers of the configuration: clients below the
// minimum version, or without a common cipher suite, are refused.
func TestServerTLSConfigHandshake(t *testing.T) {
	serving := newTestCA(t, "serving")
	certFile, keyFile := serving.servingFiles(t, t.TempDir())
	serve := func(minVersion string, suites []string) string {
		cfg, err := kubeapi.ServerTLSConfig(certFile, keyFile, "", minVersion, suites)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(http.NotFoundHandler())
		srv.TLS = cfg
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().String()
	}
	dial := func(addr string, minV, maxV uint16, suites ...uint16) (tls.ConnectionState, error) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool(serving.cert), MinVersion: minV, MaxVersion: maxV, CipherSuites: suites})
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer conn.Close()
		return conn.ConnectionState(), nil
	}

	dflt := serve("", nil)
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		if _, err := dial(dflt, v, v); err == nil || !strings.Contains(err.Error(), "protocol version") {
			t.Errorf("a %s client: %v, want refused", tls.VersionName(v), err)
		}
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		if st, err := dial(dflt, v, v); err != nil || st.Version != v {
			t.Errorf("a %s client: %v", tls.VersionName(v), err)
		}
	}

	only13 := serve("VersionTLS13", nil)
	if _, err := dial(only13, tls.VersionTLS12, tls.VersionTLS12); err == nil {
		t.Error("a TLS 1.2 client of a TLS 1.3 server was taken")
	}

	one := serve("VersionTLS12", []string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"})
	if _, err := dial(one, tls.VersionTLS12, tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384); err == nil {
		t.Error("a client without the server's cipher suite was taken")
	}
	if st, err := dial(one, tls.VersionTLS12, tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256); err != nil ||
		st.CipherSuite != tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 {
		t.Errorf("the server's cipher suite: %v %s", err, tls.CipherSuiteName(st.CipherSuite))
	}
}
