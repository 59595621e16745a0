package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat: 100
// on every Linux architecture Go supports.
const clockTicks = 100

// cpuTicks returns the CPU time pid has used, user and system, including
// that of its children it has waited for, in clock ticks
// (/proc/<pid>/stat fields 14 to 17).
func cpuTicks(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatTicks(data)
}

// parseStatTicks reads utime, stime, cutime and cstime from the content of
// /proc/<pid>/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from its last ')'.
func parseStatTicks(stat []byte) (int64, error) {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, errors.New("/proc/<pid>/stat: no command name")
	}
	// After ") ": field 3 (state) is rest[0], so field k is rest[k-3].
	rest := strings.Fields(string(stat[end+1:]))
	if len(rest) < 15 {
		return 0, fmt.Errorf("/proc/<pid>/stat: %d fields after the command name, want at least 15", len(rest))
	}
	var sum int64
	for k := 14; k <= 17; k++ {
		v, err := strconv.ParseInt(rest[k-3], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/<pid>/stat field %d: %w", k, err)
		}
		sum += v
	}
	return sum, nil
}

// rssBytes returns pid's resident set size (VmRSS of /proc/<pid>/status)
// and the anonymous part of it (RssAnon: the heap and stacks, without the
// pages of the executable and other files it maps).
func rssBytes(pid int) (rss, anon int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	if rss, err = parseStatusKB(data, "VmRSS"); err != nil {
		return 0, 0, err
	}
	if anon, err = parseStatusKB(data, "RssAnon"); err != nil {
		return 0, 0, err
	}
	return rss, anon, nil
}

func parseVmRSS(status []byte) (int64, error) { return parseStatusKB(status, "VmRSS") }

// parseStatusKB reads the field "name:  N kB" of /proc/<pid>/status, in
// bytes.
func parseStatusKB(status []byte, name string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%s: unexpected %q", name, rest)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s line (a kernel thread or a zombie?)", name)
}

// cmdSteady samples the agent's CPU use and RSS over a window while the
// benchmark's pods run and nothing changes, and the runtime's CPU use with
// -runtime-pid.
func cmdSteady(ctx context.Context, b *bench, args []string) error {
	fs := flag.NewFlagSet("steady", flag.ContinueOnError)
	pid := fs.Int("pid", 0, "the agent's process ID (required)")
	rtPid := fs.Int("runtime-pid", 0, "the runtime's process ID, to measure its CPU use too")
	window := fs.Duration("window", 30*time.Second, "how long to measure")
	every := fs.Duration("sample", time.Second, "how often to sample the RSS")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *pid <= 0 || *window <= 0 || *every <= 0 {
		return errors.New("steady: need -pid, and -window and -sample above 0")
	}
	before, err := b.list(ctx, b.namespace, false)
	if err != nil {
		return err
	}
	if len(before.running) == 0 {
		return fmt.Errorf("steady: no pod of namespace %s runs", b.namespace)
	}
	var rtTicks0 int64
	if *rtPid > 0 {
		if rtTicks0, err = cpuTicks(*rtPid); err != nil {
			return fmt.Errorf("steady: runtime: %w", err)
		}
	}
	ticks0, err := cpuTicks(*pid)
	if err != nil {
		return fmt.Errorf("steady: agent: %w", err)
	}
	t0 := time.Now()
	var rss, anon []int64
	sample := func() error {
		r, a, err := rssBytes(*pid)
		if err != nil {
			return fmt.Errorf("steady: agent: %w", err)
		}
		rss, anon = append(rss, r), append(anon, a)
		return nil
	}
	if err := sample(); err != nil {
		return err
	}
	tick := time.NewTicker(*every)
	defer tick.Stop()
	end := time.NewTimer(*window)
	defer end.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if err := sample(); err != nil {
				return err
			}
		case <-end.C:
			break loop
		}
	}
	ticks1, err := cpuTicks(*pid)
	if err != nil {
		return fmt.Errorf("steady: agent: %w", err)
	}
	elapsed := time.Since(t0)
	var rtTicks1 int64
	if *rtPid > 0 {
		if rtTicks1, err = cpuTicks(*rtPid); err != nil {
			return fmt.Errorf("steady: runtime: %w", err)
		}
	}
	if err := sample(); err != nil {
		return err
	}
	after, err := b.list(ctx, b.namespace, false)
	if err != nil {
		return err
	}
	if len(after.running) != len(before.running) {
		return fmt.Errorf("steady: %d containers ran at the start of the window and %d at its end: not a steady state", len(before.running), len(after.running))
	}
	pct := func(ticks int64) *float64 {
		v := float64(ticks) / clockTicks / elapsed.Seconds() * 100
		return &v
	}
	var sum, peak int64
	for _, r := range rss {
		sum += r
		peak = max(peak, r)
	}
	mean := float64(sum) / float64(len(rss)) / (1 << 20)
	peakMiB := float64(peak) / (1 << 20)
	r := b.newRecord("steady", len(before.running))
	r.WindowS = elapsed.Seconds()
	r.CPUPercent = pct(ticks1 - ticks0)
	var anonSum int64
	for _, a := range anon {
		anonSum += a
	}
	anonMean := float64(anonSum) / float64(len(anon)) / (1 << 20)
	r.RSSMiB = &mean
	r.RSSMaxMiB = &peakMiB
	r.RSSAnonMiB = &anonMean
	if *rtPid > 0 {
		r.RuntimeCPUPercent = pct(rtTicks1 - rtTicks0)
	}
	return b.emit(r)
}
