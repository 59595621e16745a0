package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"

	"github.com/nodekit/nodekit/kubeapi"
)

// servers are the agent's HTTP endpoints, in the kubelet's conventions:
//
//   - healthz (healthzBindAddress:healthzPort, 127.0.0.1:10248): plain
//     HTTP, /healthz only;
//   - the read-only port (address:readOnlyPort, off unless configured):
//     plain HTTP without authentication, /healthz, /pods and /metrics;
//   - the server (address:port, 10250, when enableServer): TLS (at least
//     1.2, tlsMinVersion honoured) with authentication and authorization
//     (kubeapi.ServerAuth: client certificates, TokenReview,
//     SubjectAccessReview; anonymous only if enabled).
type servers struct {
	a    *agent
	list []*namedServer
}

type namedServer struct {
	name string
	srv  *http.Server
	lis  net.Listener
	tls  bool
}

func newServers(a *agent) (*servers, error) {
	s := &servers{a: a}
	cfg := a.cfg
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", a.healthz)
	mux.Handle("/pods", a.node.PodsHandler())
	mux.Handle("/metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}))
	if ev := a.node.Evictions; ev != nil {
		// "What would you evict now?": a dry run of node-pressure eviction.
		mux.HandleFunc("/eviction", func(w http.ResponseWriter, r *http.Request) {
			d, err := ev.DryRun(r.Context())
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			if err != nil {
				fmt.Fprintf(w, "measurement incomplete: %v\n", err)
			}
			fmt.Fprintln(w, d.String())
		})
	}

	if hp := *cfg.HealthzPort; hp > 0 {
		h := http.NewServeMux()
		h.HandleFunc("/healthz", a.healthz)
		if err := s.listen("healthz", net.JoinHostPort(cfg.HealthzBindAddress, strconv.Itoa(int(hp))), h, nil); err != nil {
			return nil, err
		}
	}
	if cfg.ReadOnlyPort > 0 {
		a.log.Warn("the read-only port serves pods and metrics without authentication", zap.Int32("readOnlyPort", cfg.ReadOnlyPort))
		if err := s.listen("read-only", net.JoinHostPort(cfg.Address, strconv.Itoa(int(cfg.ReadOnlyPort))), mux, nil); err != nil {
			return nil, err
		}
	}
	if *cfg.EnableServer {
		auth, err := s.auth()
		if err != nil {
			s.close()
			return nil, err
		}
		certFile, keyFile := cfg.TLSCertFile, cfg.TLSPrivateKeyFile
		if certFile == "" {
			if certFile, keyFile, err = selfSignedCert(filepath.Join(a.rootDir, "pki"), a.name); err != nil {
				s.close()
				return nil, err
			}
		}
		tlsCfg, err := kubeapi.ServerTLSConfig(certFile, keyFile, cfg.Authentication.X509.ClientCAFile, cfg.TLSMinVersion, cfg.TLSCipherSuites)
		if err != nil {
			s.close()
			return nil, err
		}
		if err := s.listen("server", net.JoinHostPort(cfg.Address, strconv.Itoa(int(cfg.Port))), auth.Wrap(mux), tlsCfg); err != nil {
			s.close()
			return nil, err
		}
		a.runners = append(a.runners, runner{"server auth", auth.Run})
	}
	return s, nil
}

// auth builds the server's authentication and authorization; without a
// cluster only client certificates and AlwaysAllow can work.
func (s *servers) auth() (*kubeapi.ServerAuth, error) {
	cfg := s.a.cfg
	if s.a.cluster == nil {
		if *cfg.Authentication.Webhook.Enabled || cfg.Authorization.Mode == kubeletv1beta1.KubeletAuthorizationModeWebhook {
			return nil, errors.New("enableServer without --kubeconfig: webhook authentication and authorization need an apiserver; " +
				"set authentication.webhook.enabled: false and authorization.mode: AlwaysAllow (with authentication.x509.clientCAFile), or enableServer: false")
		}
	}
	ac := kubeapi.ServerAuthConfig{Authentication: cfg.Authentication, Authorization: cfg.Authorization, NodeName: s.a.name, Logger: s.a.log.Named("auth")}
	if s.a.cluster != nil {
		ac.Client = s.a.cluster.client
	}
	return kubeapi.NewServerAuth(ac)
}

func (s *servers) listen(name, addr string, h http.Handler, tlsCfg *tls.Config) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, TLSConfig: tlsCfg,
		ErrorLog: zap.NewStdLog(s.a.log.Named(name))}
	s.list = append(s.list, &namedServer{name: name, srv: srv, lis: lis, tls: tlsCfg != nil})
	return nil
}

func (s *servers) close() {
	for _, ns := range s.list {
		ns.lis.Close()
	}
}

// runners serve each server until ctx ends, then shut it down.
func (s *servers) runners() []runner {
	var out []runner
	for _, ns := range s.list {
		out = append(out, runner{ns.name + " server", func(ctx context.Context) error {
			errc := make(chan error, 1)
			go func() {
				if ns.tls {
					errc <- ns.srv.ServeTLS(ns.lis, "", "")
				} else {
					errc <- ns.srv.Serve(ns.lis)
				}
			}()
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = ns.srv.Shutdown(sctx)
				return ctx.Err()
			}
		}})
	}
	return out
}

// describe says where the servers listen.
func (s *servers) describe() string {
	if len(s.list) == 0 {
		return "no servers"
	}
	var parts []string
	for _, ns := range s.list {
		scheme := "http"
		if ns.tls {
			scheme = "https"
		}
		parts = append(parts, fmt.Sprintf("%s on %s://%s", ns.name, scheme, ns.lis.Addr()))
	}
	return strings.Join(parts, ", ")
}

// addr is where the named server listens, "" if it does not.
func (s *servers) addr(name string) string {
	for _, ns := range s.list {
		if ns.name == name {
			return ns.lis.Addr().String()
		}
	}
	return ""
}

// healthz answers ok while the PLEG is healthy, as the kubelet's syncloop
// check.
func (a *agent) healthz(w http.ResponseWriter, _ *http.Request) {
	if ok, err := a.node.PLEG.Healthy(); !ok {
		http.Error(w, fmt.Sprintf("[-]syncloop failed: %v", err), http.StatusInternalServerError)
		return
	}
	fmt.Fprint(w, "ok")
}

// selfSignedCert makes (once) a self-signed serving certificate for the
// node in dir, as the kubelet does without tlsCertFile.
func selfSignedCert(dir, host string) (string, string, error) {
	certFile, keyFile := filepath.Join(dir, "nodekit.crt"), filepath.Join(dir, "nodekit.key")
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil {
		return certFile, keyFile, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: host + "@" + strconv.FormatInt(now.Unix(), 10)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0), DNSNames: []string{host, "localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}
