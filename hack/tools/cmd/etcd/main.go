// Command etcd runs a single-member etcd server for tests
// (internal/testenv): the etcd server of the release k8s.io/kubernetes
// uses, embedded, with only the flags a private test instance needs.
//
//	etcd --data-dir DIR --listen-client-url http://127.0.0.1:PORT --listen-peer-url http://127.0.0.1:PORT
//
// It prints "etcd ready" to stderr once it serves clients, and stops cleanly
// on SIGTERM or SIGINT (exit status 0). Any other stop is an error
// (status 1).
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "etcd:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		dataDir   = flag.String("data-dir", "", "directory for the member's data (required)")
		name      = flag.String("name", "default", "member name")
		clientURL = flag.String("listen-client-url", "http://127.0.0.1:2379", "URL to serve clients on; also advertised")
		peerURL   = flag.String("listen-peer-url", "http://127.0.0.1:2380", "URL to serve peers on; also advertised")
		noFsync   = flag.Bool("unsafe-no-fsync", false, "disable fsync: faster, loses data on a crash")
		logLevel  = flag.String("log-level", "warn", "debug, info, warn, error, panic or fatal")
		timeout   = flag.Duration("ready-timeout", time.Minute, "give up when not ready to serve after this long")
	)
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if *dataDir == "" {
		return errors.New("--data-dir is required")
	}
	client, err := url.Parse(*clientURL)
	if err != nil {
		return fmt.Errorf("--listen-client-url: %w", err)
	}
	peer, err := url.Parse(*peerURL)
	if err != nil {
		return fmt.Errorf("--listen-peer-url: %w", err)
	}

	cfg := embed.NewConfig()
	cfg.Name = *name
	cfg.Dir = *dataDir
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	cfg.ListenPeerUrls = []url.URL{*peer}
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.UnsafeNoFsync = *noFsync
	cfg.LogLevel = *logLevel
	cfg.LogOutputs = []string{"stderr"}

	// Registered before starting so that a SIGTERM during start-up is not
	// lost.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
		fmt.Fprintln(os.Stderr, "etcd ready")
	case err := <-e.Err():
		return err
	case <-e.Server.StopNotify():
		return errors.New("server stopped before it was ready")
	case s := <-signals:
		fmt.Fprintf(os.Stderr, "etcd: %v before ready, stopping\n", s)
		return nil
	case <-time.After(*timeout):
		return fmt.Errorf("not ready after %v", *timeout)
	}
	select {
	case s := <-signals:
		fmt.Fprintf(os.Stderr, "etcd: %v, stopping\n", s)
		return nil
	case err := <-e.Err():
		return err
	case <-e.Server.StopNotify():
		return errors.New("server stopped")
	}
}
