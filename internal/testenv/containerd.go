package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Version names a containerd the test environment can run.
type Version string

const (
	// Containerd16 is containerd 1.6 from Debian 12 (/usr/bin/containerd).
	Containerd16 Version = "1.6"
	// Containerd2 is containerd 2.4.2 built from the Go module proxy by
	// hack/testenv.sh install.
	Containerd2 Version = "2.4"
)

// Versions lists every containerd version, for tests that run against each.
var Versions = []Version{Containerd16, Containerd2}

// containerd2Release is the release hack/testenv.sh builds for Containerd2.
const containerd2Release = "v2.4.2"

var (
	// ErrNotRoot is returned by Start when the process is not root: a private
	// containerd needs root. StartContainerd turns it into t.Skip.
	ErrNotRoot = errors.New("testenv: requires root")
	// ErrNotInstalled is returned when a binary the environment needs is
	// missing; `hack/testenv.sh install` installs them all.
	ErrNotInstalled = errors.New("testenv: not installed (run hack/testenv.sh install as root)")
)

// Options configures Start.
type Options struct {
	// Version selects the containerd to run. Required.
	Version Version
}

// Containerd is a private containerd started by Start. Its fields are
// read-only.
type Containerd struct {
	// Version is the containerd that runs.
	Version Version
	// Dir holds everything of this instance: config.toml, root/, state/,
	// cni/, the socket and containerd.log. Stop removes it.
	Dir string
	// Bridge is the Linux bridge the instance's CNI config attaches
	// non-host-network pods to; unique among running instances.
	Bridge string
	// Subnet is the pod subnet of the instance's CNI config (CIDR); unique
	// among running instances. Never send traffic to it.
	Subnet string
	// CgroupParent is a cgroup parent (cgroupfs path) unique to this
	// instance: pods created with it as their CgroupParent are placed below
	// it, and Stop removes it from every hierarchy.
	CgroupParent string

	network string // CNI network name
	slot    *slot
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the containerd process has exited

	stopOnce sync.Once
	stopErr  error
}

// Endpoint is the CRI endpoint of the instance, e.g. "unix:///tmp/nk123/containerd.sock".
func (c *Containerd) Endpoint() string { return "unix://" + c.Address() }

// Address is the path of the instance's gRPC socket.
func (c *Containerd) Address() string { return filepath.Join(c.Dir, "containerd.sock") }

// Logs returns what containerd wrote to stdout and stderr so far (the file
// containerd.log in Dir), or "" once Stop has removed Dir.
func (c *Containerd) Logs() string {
	b, _ := os.ReadFile(c.logPath())
	return string(b)
}

func (c *Containerd) logPath() string { return filepath.Join(c.Dir, "containerd.log") }

// StartContainerd starts a private containerd for the test and stops it (see
// Containerd.Stop) in t.Cleanup; when the test failed, the tail of
// containerd's log is logged first. It calls t.Skip when the process is not
// root and t.Fatal on any other error, in particular when containerd is not
// installed: as root, missing prerequisites are a failure, not a skip.
func StartContainerd(t testing.TB, opts Options) *Containerd {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, opts)
	switch {
	case errors.Is(err, ErrNotRoot):
		t.Skipf("containerd %s: %v", opts.Version, err)
	case err != nil:
		t.Fatalf("start containerd %s: %v", opts.Version, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd %s log (%s), last lines:\n%s", c.Version, c.logPath(), tail(c.Logs(), 40))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("stop containerd %s: %v", c.Version, err)
		}
	})
	return c
}

// Start starts a private containerd of opts.Version: its own config, root,
// state, socket and CNI config under a fresh directory, a bridge and subnet
// unique among running instances (in any process). It returns once the CRI
// service reports the runtime and network ready and BusyboxImage is imported
// and visible through CRI.
//
// Start returns an error wrapping ErrNotRoot when not root and one wrapping
// ErrNotInstalled when a binary is missing. On any error nothing is left
// behind. The caller must call Stop.
func Start(ctx context.Context, opts Options) (*Containerd, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: a private containerd mounts, creates cgroups and network devices", ErrNotRoot)
	}
	bins, err := findBinaries(opts.Version)
	if err != nil {
		return nil, err
	}
	image, err := BuildBusyboxImage(filepath.Join(cacheDir(), "images"))
	if err != nil {
		return nil, fmt.Errorf("build test image: %w", err)
	}

	s, err := acquireSlot()
	if err != nil {
		return nil, err
	}
	// Short: unix socket paths are limited to 108 bytes, and the shims'
	// paths are longer than the socket's.
	dir, err := os.MkdirTemp("/tmp", "nk")
	if err != nil {
		s.release()
		return nil, err
	}
	c := &Containerd{
		Version:      opts.Version,
		Dir:          dir,
		Bridge:       s.bridge(),
		Subnet:       s.subnet(),
		CgroupParent: cgroupParentFor(dir),
		network:      s.network(),
		slot:         s,
		exited:       make(chan struct{}),
	}
	err = s.record(dir)
	if err == nil {
		err = c.start(ctx, bins, image)
	}
	if err != nil {
		logs := tail(c.Logs(), 30)
		if stopErr := c.Stop(context.Background()); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return nil, fmt.Errorf("containerd %s in %s: %w\ncontainerd log, last lines:\n%s", opts.Version, dir, err, logs)
	}
	return c, nil
}

func (c *Containerd) start(ctx context.Context, bins binaries, image string) error {
	for _, d := range []string{"root", "state", "cni", "opt"} {
		if err := os.Mkdir(filepath.Join(c.Dir, d), 0o711); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "config.toml"), []byte(c.config()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "cni", "10-"+c.network+".conflist"), []byte(c.cniConfig()), 0o644); err != nil {
		return err
	}
	log, err := os.OpenFile(c.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the child has its own copy
	cmd := exec.Command(bins.containerd, "--config", filepath.Join(c.Dir, "config.toml"))
	cmd.Env = []string{"PATH=" + bins.path}
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = log, log
	// If the test binary dies without running Stop (a panic, a -timeout),
	// containerd dies with it; the next Start on the slot sweeps the rest.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	c.cmd = cmd
	go func() {
		_ = cmd.Wait()
		close(c.exited)
	}()

	conn, err := c.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	if err := c.waitReady(ctx, rt); err != nil {
		return err
	}
	if err := c.importImage(ctx, bins.ctr, image); err != nil {
		return err
	}
	return c.waitImage(ctx, runtimeapi.NewImageServiceClient(conn))
}

// waitReady polls the CRI Status until the runtime and the network are
// ready, then checks that the expected containerd answered.
func (c *Containerd) waitReady(ctx context.Context, rt runtimeapi.RuntimeServiceClient) error {
	var last error
	var version string
	err := poll(ctx, 30*time.Second, c.exited, func(ctx context.Context) bool {
		v, err := rt.Version(ctx, &runtimeapi.VersionRequest{})
		if err != nil {
			last = err
			return false
		}
		version = v.RuntimeVersion
		st, err := rt.Status(ctx, &runtimeapi.StatusRequest{})
		if err != nil {
			last = err
			return false
		}
		// Only the two required conditions: containerd 2 on cgroup v1 also
		// reports ContainerdHasNoDeprecationWarnings=false, for good.
		ready := map[string]bool{}
		for _, cond := range st.GetStatus().GetConditions() {
			ready[cond.Type] = cond.Status
			if !cond.Status {
				last = fmt.Errorf("CRI condition %s is false: %s %s", cond.Type, cond.Reason, cond.Message)
			}
		}
		return ready[runtimeapi.RuntimeReady] && ready[runtimeapi.NetworkReady]
	})
	if err != nil {
		return fmt.Errorf("waiting for CRI to be ready: %w (last: %v)", err, last)
	}
	if want := string(c.Version) + "."; !strings.HasPrefix(strings.TrimPrefix(version, "v"), want) {
		return fmt.Errorf("the containerd started reports version %s, want %s*", version, want)
	}
	return nil
}

func (c *Containerd) importImage(ctx context.Context, ctr, image string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	name, _, _ := strings.Cut(BusyboxImage, ":")
	cmd := exec.CommandContext(ctx, ctr, "--address", c.Address(), "--namespace", "k8s.io",
		"images", "import", "--base-name", name, "--digests=false", image)
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("import %s: %s: %w\n%s", image, strings.Join(cmd.Args, " "), err, out)
	}
	return nil
}

// waitImage polls until CRI knows the imported image: containerd 1.6 learns
// of it through an event, shortly after the import returns.
func (c *Containerd) waitImage(ctx context.Context, images runtimeapi.ImageServiceClient) error {
	var last error
	err := poll(ctx, 10*time.Second, c.exited, func(ctx context.Context) bool {
		st, err := images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: BusyboxImage}})
		last = err
		return err == nil && st.GetImage() != nil
	})
	if err != nil {
		return fmt.Errorf("waiting for CRI to list %s: %w (last: %v)", BusyboxImage, err, last)
	}
	return nil
}

func (c *Containerd) dial() (*grpc.ClientConn, error) {
	return grpc.NewClient(c.Endpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// Stop removes every pod sandbox of the instance through CRI (taking their
// containers, network namespaces, mounts and cgroups with them), stops
// containerd (SIGTERM, then SIGKILL), and then removes whatever is left:
// processes referring to Dir (shims, containers), mounts under Dir, the
// cgroups under CgroupParent, the bridge, and Dir itself. ctx bounds the CRI
// part only; the rest always runs, with its own bounded waits. Stop is
// idempotent; later calls return the first call's result.
func (c *Containerd) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		var errs []error
		if c.running() {
			// When containerd has died, the sandboxes cannot be removed
			// through CRI; what they left is removed below.
			if err := c.removeSandboxes(ctx); err != nil && c.running() {
				errs = append(errs, err)
			}
			if err := c.terminate(); err != nil {
				errs = append(errs, err)
			}
		}
		if err := cleanupInstance(c.Dir, c.Bridge, c.network, c.CgroupParent); err != nil {
			errs = append(errs, err)
		}
		c.slot.release()
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

// removeSandboxes stops and removes every CRI pod sandbox.
func (c *Containerd) removeSandboxes(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	conn, err := c.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("list pod sandboxes: %w", err)
	}
	var errs []error
	for _, sb := range list.GetItems() {
		// RemovePodSandbox alone refuses a ready sandbox; StopPodSandbox
		// kills its containers first.
		// A stop can race the sandbox's own shutdown (a pod the test's
		// agent was stopping: "ttrpc: closed"); it only matters if the
		// sandbox then cannot be removed.
		_, stopErr := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id})
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			if stopErr != nil {
				errs = append(errs, fmt.Errorf("stop pod sandbox %s: %w", sb.Id, stopErr))
			}
			errs = append(errs, fmt.Errorf("remove pod sandbox %s: %w", sb.Id, err))
		}
	}
	return errors.Join(errs...)
}

// running reports whether the containerd process is alive (not exited, not
// a zombie waiting to be reaped).
func (c *Containerd) running() bool {
	if c.cmd == nil {
		return false
	}
	select {
	case <-c.exited:
		return false
	default:
	}
	return !isZombieOrGone(c.cmd.Process.Pid)
}

// terminate stops the containerd process: SIGTERM, then SIGKILL.
func (c *Containerd) terminate() error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return nil
	case <-time.After(15 * time.Second):
	}
	_ = c.cmd.Process.Kill()
	select {
	case <-c.exited:
		return fmt.Errorf("containerd (pid %d) ignored SIGTERM for 15s; killed", c.cmd.Process.Pid)
	case <-time.After(10 * time.Second):
		return fmt.Errorf("containerd (pid %d) did not exit after SIGKILL", c.cmd.Process.Pid)
	}
}

// poll calls f every 100ms until it returns true, ctx ends, timeout passes or
// exited is closed.
func poll(ctx context.Context, timeout time.Duration, exited <-chan struct{}, f func(context.Context) bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		callCtx, callCancel := context.WithTimeout(ctx, 5*time.Second)
		ok := f(callCtx)
		callCancel()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up after %v: %w", timeout, ctx.Err())
		case <-exited:
			return errors.New("containerd exited")
		case <-tick.C:
		}
	}
}

// binaries are the executables an instance runs.
type binaries struct {
	containerd, ctr string
	path            string // PATH for containerd: where it finds its shim and runc
}

// findBinaries locates the binaries of v and checks that everything else an
// instance needs is installed.
func findBinaries(v Version) (binaries, error) {
	const sysPath = "/usr/sbin:/usr/bin:/sbin:/bin"
	var b binaries
	var need []string
	switch v {
	case Containerd16:
		b = binaries{containerd: "/usr/bin/containerd", ctr: "/usr/bin/ctr", path: sysPath}
		need = []string{b.containerd, b.ctr, "/usr/bin/containerd-shim-runc-v2"}
	case Containerd2:
		dir := Containerd2BinDir()
		b = binaries{containerd: filepath.Join(dir, "containerd"), ctr: filepath.Join(dir, "ctr"), path: dir + ":" + sysPath}
		need = []string{b.containerd, b.ctr, filepath.Join(dir, "containerd-shim-runc-v2")}
	default:
		return binaries{}, fmt.Errorf("testenv: unknown containerd version %q (want one of %v)", v, Versions)
	}
	need = append(need, "/usr/sbin/runc", BusyboxBinary)
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		need = append(need, filepath.Join(cniBinDir, p))
	}
	var missing []string
	for _, p := range need {
		if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return binaries{}, fmt.Errorf("%w: containerd %s needs %s", ErrNotInstalled, v, strings.Join(missing, ", "))
	}
	return b, nil
}

// Containerd2BinDir is where the binaries of Containerd2 are:
// $NODEKIT_CONTAINERD2_BIN if set, else <cache>/containerd-v2.4.2/bin, where
// hack/testenv.sh install builds them.
func Containerd2BinDir() string {
	if d := os.Getenv("NODEKIT_CONTAINERD2_BIN"); d != "" {
		return d
	}
	return filepath.Join(cacheDir(), "containerd-"+containerd2Release, "bin")
}

// cacheDir is $NODEKIT_CACHE, else $HOME/.cache/nodekit, as in
// hack/testenv.sh.
func cacheDir() string {
	if d := os.Getenv("NODEKIT_CACHE"); d != "" {
		return d
	}
	if h := os.Getenv("HOME"); h != "" {
		return filepath.Join(h, ".cache", "nodekit")
	}
	return filepath.Join(os.TempDir(), "nodekit-cache")
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
