// Command agent is nodekit's example node agent: every subsystem wired
// into a node agent that runs from a kubelet's configuration file.
//
// With no flags it runs the bundled demo configuration (demo.yaml) on the
// simulated runtime, with the bundled static pods (manifests/), healthz on
// 127.0.0.1:10248 and a read-only port on 127.0.0.1:10255 serving /pods and
// /metrics; it needs no setup:
//
//	go run ./examples/agent
//
// On a node, as root, with containerd and a kubelet configuration file
// (hardened.yaml is the hardened one):
//
//	agent --config /etc/nodekit/config.yaml --root-dir /var/lib/nodekit
//
// With --kubeconfig it joins a cluster: it registers the Node, keeps its
// lease and status, runs the pods bound to it and reports their statuses.
// See README.md for the wiring, in order.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nodekit/nodekit/examples/agent/kubeletconfig"
)

//go:embed demo.yaml
var demoConfig []byte

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}

// options are the command line's; each one set wins over the
// configuration file, as the kubelet's flags do.
type options struct {
	config          string
	kubeconfig      string
	rootDir         string
	hostname        string
	runtimeEndpoint string
	manifestDir     string
	podLogsDir      string
	readOnlyPort    int
	healthzPort     int
	port            int
	verbose         bool
	runFor          time.Duration
	set             map[string]bool
}

func parseFlags(args []string, out io.Writer) (*options, error) {
	o := &options{set: map[string]bool{}}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.config, "config", "", "KubeletConfiguration file (default: the bundled demo configuration)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to join (default: standalone, static pods only)")
	fs.StringVar(&o.rootDir, "root-dir", "", "directory of the agent's state: pods' volumes, the CPU manager's checkpoint (default: /var/lib/nodekit; a temporary directory on the simulated runtime)")
	fs.StringVar(&o.hostname, "hostname-override", "", "node name (default: the host name)")
	fs.StringVar(&o.runtimeEndpoint, "runtime-endpoint", "", "CRI socket, overriding containerRuntimeEndpoint (empty in both: the simulated runtime)")
	fs.StringVar(&o.manifestDir, "manifest-dir", "", "static pod directory or file, overriding staticPodPath")
	fs.StringVar(&o.podLogsDir, "pod-logs-dir", "", "pod logs root, overriding podLogsDir")
	fs.IntVar(&o.readOnlyPort, "read-only-port", 0, "read-only port, overriding readOnlyPort (0 disables it)")
	fs.IntVar(&o.healthzPort, "healthz-port", 0, "healthz port, overriding healthzPort (0 disables it)")
	fs.IntVar(&o.port, "port", 0, "port of the authenticated server, overriding port")
	fs.BoolVar(&o.verbose, "v", false, "debug logging")
	fs.DurationVar(&o.runFor, "run-for", 0, "stop after this long (default: until interrupted)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	return o, nil
}

// loadConfig reads the configuration file (or the bundled demo one),
// applies the command line over it, and validates the result.
func loadConfig(o *options) (*kubeletconfig.Config, func(), error) {
	cleanup := func() {}
	var cfg *kubeletconfig.Config
	var err error
	if o.config == "" {
		cfg, err = kubeletconfig.Parse(demoConfig, "the bundled demo.yaml")
		if err != nil {
			return nil, cleanup, err
		}
		if !o.set["manifest-dir"] {
			dir, err := writeDemoManifests()
			if err != nil {
				return nil, cleanup, err
			}
			cleanup = func() { os.RemoveAll(dir) }
			cfg.StaticPodPath = dir
		}
	} else {
		cfg, err = kubeletconfig.Load(o.config)
		if err != nil {
			return nil, cleanup, err
		}
		// Relative paths in the file are relative to the file, as for the
		// kubelet.
		base := filepath.Dir(o.config)
		for _, p := range []*string{&cfg.StaticPodPath, &cfg.TLSCertFile, &cfg.TLSPrivateKeyFile, &cfg.Authentication.X509.ClientCAFile} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(base, *p)
			}
		}
	}
	if o.set["runtime-endpoint"] {
		cfg.ContainerRuntimeEndpoint = o.runtimeEndpoint
	}
	if o.set["manifest-dir"] {
		cfg.StaticPodPath = o.manifestDir
	}
	if o.set["pod-logs-dir"] {
		cfg.PodLogsDir = o.podLogsDir
	}
	if o.set["read-only-port"] {
		cfg.ReadOnlyPort = int32(o.readOnlyPort)
	}
	if o.set["healthz-port"] {
		hp := int32(o.healthzPort)
		cfg.HealthzPort = &hp
	}
	if o.set["port"] {
		cfg.Port = int32(o.port)
	}
	if err := cfg.Validate(); err != nil {
		cleanup()
		return nil, func() {}, err
	}
	return cfg, cleanup, nil
}

func run(ctx context.Context, args []string, out io.Writer) error {
	o, err := parseFlags(args, out)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg, cleanup, err := loadConfig(o)
	if err != nil {
		return err
	}
	defer cleanup()
	if o.runFor > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.runFor)
		defer cancel()
	}
	a, err := newAgent(ctx, o, cfg, out)
	if err != nil {
		return err
	}
	return a.run(ctx)
}
