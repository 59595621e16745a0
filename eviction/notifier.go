package eviction

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// DefaultNotifierInterval is how often a Notifier reads its cgroup's
// memory usage on cgroup v2, unless NotifierConfig.Interval says
// otherwise: often enough that a crossing is reported well within a
// second.
const DefaultNotifierInterval = 100 * time.Millisecond

// NotifierConfig configures a Notifier.
type NotifierConfig struct {
	// Cgroup is the memory cgroup to watch, as a path below the cgroup
	// root of the host in the cgroup driver's spelling: "" or "/" for the
	// root cgroup (the node's memory, memory.available),
	// StatsProvider.AllocatableCgroup for the pods' cgroup
	// (allocatableMemory.available).
	Cgroup string
	// Mount is where the cgroup file system is mounted; on cgroup v1 the
	// memory hierarchy is <Mount>/memory. Default DefaultCgroupMount.
	Mount string
	// Version is 1 or 2; 0 detects it from the file system at Mount, as
	// StatsConfig.CgroupVersion.
	Version int
	// Threshold is the memory usage, in bytes, whose crossing is
	// reported: memory.usage_in_bytes on cgroup v1, memory.current on v2
	// (anon plus file of memory.stat for the root). Zero: nothing is
	// reported until SetThreshold or UpdateThreshold sets one.
	Threshold uint64
	// Interval between two readings of the usage on cgroup v2. Default
	// DefaultNotifierInterval; negative is invalid.
	Interval time.Duration
	// Clock times the readings on cgroup v2. Default the real clock.
	Clock clock.WithTicker
	// Logger receives the notifier's start and its re-arming, at debug
	// level. Default none.
	Logger *zap.Logger
}

// Notifier reports when the memory usage of a cgroup crosses a threshold,
// so that an eviction round can run at once instead of at its next tick:
// the kubelet's memory threshold notifier.
//
// On cgroup v1 it asks the kernel: an eventfd registered through the
// cgroup's cgroup.event_control on memory.usage_in_bytes, which the kernel
// signals when usage crosses the threshold, either way. Cgroup v2 has no
// such events (the kubelet turns its notifier off there); the Notifier
// reads the usage every Interval instead and reports a crossing, either
// way, at the next reading. Neither memory.high events nor PSI triggers
// (/proc/pressure/memory) stand in for it: the first would throttle the
// cgroup, the second measures stalls, not usage.
//
// Arming a threshold (at Run, SetThreshold, UpdateThreshold) reports
// nothing for the side the usage is already on: only crossings after it.
//
// Its methods are safe for concurrent use; Run runs once at a time.
type Notifier struct {
	cfg   NotifierConfig
	group string
	log   *zap.Logger

	c       chan struct{}
	changed chan struct{}
	running atomic.Bool

	mu        sync.Mutex
	threshold uint64
	version   int

	// armed, when set by tests, is called from Run each time a threshold
	// is armed.
	armed func(threshold uint64)
}

// NewMemoryNotifier returns a Notifier for cfg. It does no I/O: Run finds
// the cgroup. A negative Interval, a relative Mount, an unknown Version or
// a Cgroup with ".." is an error wrapping core.ErrInvalid.
func NewMemoryNotifier(cfg NotifierConfig) (*Notifier, error) {
	if cfg.Mount == "" {
		cfg.Mount = DefaultCgroupMount
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultNotifierInterval
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	var errs []error
	if !filepath.IsAbs(cfg.Mount) {
		errs = append(errs, fmt.Errorf("Mount %q is not absolute", cfg.Mount))
	}
	if cfg.Version < 0 || cfg.Version > 2 {
		errs = append(errs, fmt.Errorf("Version %d is neither 0, 1 nor 2", cfg.Version))
	}
	if cfg.Interval < 0 {
		errs = append(errs, fmt.Errorf("Interval %v is negative", cfg.Interval))
	}
	if slices.Contains(strings.Split(cfg.Cgroup, "/"), "..") {
		errs = append(errs, fmt.Errorf("Cgroup %q has a \"..\" component", cfg.Cgroup))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("eviction: notifier: %w: %w", core.ErrInvalid, errors.Join(errs...))
	}
	return &Notifier{
		cfg:       cfg,
		group:     filepath.Clean("/" + cfg.Cgroup),
		log:       cfg.Logger,
		c:         make(chan struct{}, 1),
		changed:   make(chan struct{}, 1),
		threshold: cfg.Threshold,
		version:   cfg.Version,
	}, nil
}

// C delivers a value each time the usage crosses the threshold, either
// way. It holds one value at most: crossings while one waits are merged
// into it. It is never closed.
func (n *Notifier) C() <-chan struct{} { return n.c }

// Threshold is the usage, in bytes, crossings of which are reported; zero
// when none is set.
func (n *Notifier) Threshold() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.threshold
}

// SetThreshold sets the usage, in bytes, crossings of which are reported;
// zero stops reporting. A running Run re-arms at once.
func (n *Notifier) SetThreshold(usage uint64) {
	n.mu.Lock()
	same := n.threshold == usage
	n.threshold = usage
	n.mu.Unlock()
	if same {
		return
	}
	n.log.Debug("memory threshold notifier re-armed", zap.String("cgroup", n.group), zap.Uint64("threshold", usage))
	select {
	case n.changed <- struct{}{}:
	default:
	}
}

// UpdateThreshold sets the threshold for an eviction threshold's value,
// as the kubelet recomputes it every round: the notifier is to fire when
// the working set reaches capacity less the threshold's amount, and since
// the kernel watches usage, not the working set, the cgroup's inactive
// file pages are added:
//
//	usage threshold = capacity − value.Amount(capacity) + inactive_file
//
// capacity is that of m (AvailableBytes plus WorkingSetBytes: for the
// root cgroup the machine's memory, for kubepods its limit), and
// inactive_file is read from the cgroup's memory.stat now. Call it with
// the cgroup's MemoryStats of every Observations. It returns the usage
// threshold set. A MemoryStats that was not measured is an error wrapping
// core.ErrInvalid; a missing cgroup, one wrapping core.ErrNotFound.
func (n *Notifier) UpdateThreshold(m MemoryStats, value ThresholdValue) (uint64, error) {
	if m.Time.IsZero() {
		return 0, fmt.Errorf("eviction: notifier: cgroup %s: %w: the memory stats were not measured", n.group, core.ErrInvalid)
	}
	version, err := n.cgroupVersion()
	if err != nil {
		return 0, err
	}
	mem, found, err := readCgroupMemory(n.cfg.Mount, version, n.group)
	if err != nil {
		return 0, fmt.Errorf("eviction: notifier: cgroup %s: %w", n.group, err)
	}
	if !found {
		return 0, fmt.Errorf("eviction: notifier: cgroup %s has no memory stats: %w", n.group, core.ErrNotFound)
	}
	th := notifierThreshold(m.AvailableBytes+m.WorkingSetBytes, mem.inactiveFile, value)
	n.SetThreshold(th)
	return th, nil
}

// notifierThreshold is the usage at which the working set reaches
// capacity less the threshold's amount: capacity − amount +
// inactiveFile, and at least 1 (0 would arm nothing).
func notifierThreshold(capacity, inactiveFile uint64, value ThresholdValue) uint64 {
	amount := uint64(max(value.Amount(int64(min(capacity, 1<<63-1))), 0))
	th := capacity - min(capacity, amount) + inactiveFile
	return max(th, 1)
}

// cgroupVersion is the configured cgroup version, or the one detected
// (once).
func (n *Notifier) cgroupVersion() (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.version != 0 {
		return n.version, nil
	}
	v, err := detectCgroupVersion(n.cfg.Mount)
	if err != nil {
		return 0, fmt.Errorf("eviction: notifier: cgroup version at %s: %w", n.cfg.Mount, err)
	}
	n.version = v
	return v, nil
}

// Run reports crossings on C until ctx ends, and returns ctx's error.
// It returns earlier with an error when the cgroup cannot be watched: it
// does not exist or was removed (wrapping core.ErrNotFound), or the
// kernel refuses the event. Calling Run while it runs is an error.
func (n *Notifier) Run(ctx context.Context) error {
	if !n.running.CompareAndSwap(false, true) {
		return fmt.Errorf("eviction: notifier: cgroup %s: Run is already running", n.group)
	}
	defer n.running.Store(false)
	// The threshold is read afresh below: a change signalled before Run
	// is not news.
	select {
	case <-n.changed:
	default:
	}
	version, err := n.cgroupVersion()
	if err != nil {
		return err
	}
	n.log.Debug("memory threshold notifier started", zap.String("cgroup", n.group),
		zap.Int("cgroupVersion", version), zap.Uint64("threshold", n.Threshold()))
	if version == 1 {
		return n.runEventfd(ctx)
	}
	return n.runPoll(ctx)
}

// notify puts a value on C unless one waits there.
func (n *Notifier) notify() {
	select {
	case n.c <- struct{}{}:
	default:
	}
}

func (n *Notifier) armedHook(th uint64) {
	if n.armed != nil {
		n.armed(th)
	}
}

// runPoll reads the usage every Interval and reports when it moved to the
// other side of the threshold since the last reading. The first reading
// is made before the ticker starts, so that a clock with waiters tells
// that the notifier is armed.
func (n *Notifier) runPoll(ctx context.Context) error {
	dir := filepath.Join(n.cfg.Mount, n.group)
	var armedAt uint64
	var above, known bool
	var t clock.Ticker
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		if th := n.Threshold(); th != armedAt {
			armedAt, known = th, false
		}
		if armedAt > 0 {
			usage, err := readUsageV2(dir)
			if err != nil {
				return fmt.Errorf("eviction: notifier: cgroup %s: %w", n.group, err)
			}
			now := usage >= armedAt
			if known && now != above {
				n.notify()
			}
			if !known {
				n.armedHook(armedAt)
			}
			above, known = now, true
		}
		if t == nil {
			t = n.cfg.Clock.NewTicker(n.cfg.Interval)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C():
		case <-n.changed:
		}
	}
}

// readUsageV2 reads the memory usage of a cgroup of the unified hierarchy:
// memory.current, or anon plus file of memory.stat for the root cgroup,
// which has no memory.current. A cgroup that does not exist is an error
// wrapping core.ErrNotFound.
func readUsageV2(dir string) (uint64, error) {
	v, err := readUintFile(filepath.Join(dir, "memory.current"))
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	data, err := os.ReadFile(filepath.Join(dir, "memory.stat"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("no memory.current nor memory.stat in %s: %w", dir, core.ErrNotFound)
	}
	if err != nil {
		return 0, err
	}
	var anon, file uint64
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || (key != "anon" && key != "file") {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(val), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %s: %w", filepath.Join(dir, "memory.stat"), key, err)
		}
		if key == "anon" {
			anon = v
		} else {
			file = v
		}
	}
	return anon + file, sc.Err()
}
