package kubeapi

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/nodekit/nodekit/core"
)

// The TLS versions ServerTLSConfig takes, by the names of the kubelet
// configuration's tlsMinVersion.
var tlsVersionNames = []struct {
	name    string
	version uint16
}{
	{"VersionTLS10", tls.VersionTLS10},
	{"VersionTLS11", tls.VersionTLS11},
	{"VersionTLS12", tls.VersionTLS12},
	{"VersionTLS13", tls.VersionTLS13},
}

// ServerTLSConfig returns the TLS configuration of a kubelet's server, as
// the kubelet builds it from its tlsCertFile, tlsPrivateKeyFile,
// authentication.x509.clientCAFile, tlsMinVersion and tlsCipherSuites:
//
//   - it serves the certificate of certFile with the key of keyFile
//     (PEM; both required), read once;
//   - minVersion is "VersionTLS12" or "VersionTLS13", "" meaning TLS 1.2;
//     "VersionTLS10" and "VersionTLS11", which the kubelet still takes,
//     are refused;
//   - cipherSuites are names of crypto/tls (tls.CipherSuites, or the
//     older TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305 and
//     TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305), in order of preference,
//     nil meaning Go's; they bind TLS 1.2 only (TLS 1.3's are fixed).
//     Those crypto/tls deems insecure (tls.InsecureCipherSuites) are
//     refused;
//   - with a clientCAFile, clients are asked for a certificate, and told
//     the authorities of clientCAFile: one is taken when given but not
//     required and not verified here, as the kubelet does, so that a
//     request with a certificate of another authority reaches the
//     ServerAuth and is answered 401 rather than failing the handshake.
//     ServerAuth verifies certificates against the same file.
//
// Errors of configuration wrap core.ErrInvalid and name the argument.
func ServerTLSConfig(certFile, keyFile, clientCAFile string, minVersion string, cipherSuites []string) (*tls.Config, error) {
	var errs []error
	if certFile == "" {
		errs = append(errs, errors.New("certFile is required"))
	}
	if keyFile == "" {
		errs = append(errs, errors.New("keyFile is required"))
	}
	version, err := tlsMinVersion(minVersion)
	if err != nil {
		errs = append(errs, err)
	}
	suites, err := tlsCipherSuites(cipherSuites)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("kubeapi: server TLS: %w: %w", core.ErrInvalid, errors.Join(errs...))
	}

	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("kubeapi: server TLS: certFile %s, keyFile %s: %w", certFile, keyFile, err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   version,
		CipherSuites: suites,
	}
	if clientCAFile != "" {
		pem, err := os.ReadFile(clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("kubeapi: server TLS: clientCAFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kubeapi: server TLS: %w: clientCAFile %s holds no PEM certificate", core.ErrInvalid, clientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequestClientCert
	}
	return cfg, nil
}

// tlsMinVersion is the version named by the kubelet's tlsMinVersion.
func tlsMinVersion(name string) (uint16, error) {
	if name == "" {
		return tls.VersionTLS12, nil
	}
	var names []string
	for _, v := range tlsVersionNames {
		if v.name != name {
			names = append(names, v.name)
			continue
		}
		if v.version < tls.VersionTLS12 {
			return 0, fmt.Errorf("minVersion %s is below TLS 1.2, the lowest a kubelet's server may take: use VersionTLS12 or VersionTLS13", name)
		}
		return v.version, nil
	}
	return 0, fmt.Errorf("minVersion %q is no TLS version (VersionTLS12 or VersionTLS13)", name)
}

// tlsCipherSuites are the IDs of the cipher suites named, in order.
func tlsCipherSuites(names []string) ([]uint16, error) {
	if len(names) == 0 {
		return nil, nil
	}
	known := map[string]uint16{
		"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	}
	for _, s := range tls.CipherSuites() {
		known[s.Name] = s.ID
	}
	insecure := map[string]bool{}
	for _, s := range tls.InsecureCipherSuites() {
		insecure[s.Name] = true
	}
	var ids []uint16
	var unknown, weak []string
	for _, n := range names {
		id, ok := known[n]
		switch {
		case insecure[n]:
			weak = append(weak, n)
		case !ok:
			unknown = append(unknown, n)
		case !slices.Contains(ids, id):
			ids = append(ids, id)
		}
	}
	var errs []error
	if len(unknown) > 0 {
		errs = append(errs, fmt.Errorf("cipherSuites: unknown %s", strings.Join(unknown, ", ")))
	}
	if len(weak) > 0 {
		errs = append(errs, fmt.Errorf("cipherSuites: insecure %s", strings.Join(weak, ", ")))
	}
	return ids, errors.Join(errs...)
}
