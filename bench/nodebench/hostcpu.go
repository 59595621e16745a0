package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

// machineBusyTicks is the CPU time the whole machine has been busy, in
// clock ticks summed over all CPUs: user, nice, system, irq, softirq and
// steal of the aggregate "cpu" line of /proc/stat.
func machineBusyTicks() (int64, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseBusyTicks(data)
}

// parseBusyTicks reads the "cpu" line of the content of /proc/stat: user
// nice system idle iowait irq softirq steal [guest guest_nice]; the guest
// times are already counted in user and nice.
func parseBusyTicks(stat []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(stat))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "cpu" {
			continue
		}
		if len(f) < 9 {
			return 0, fmt.Errorf("/proc/stat: %d fields on the cpu line, want at least 9", len(f))
		}
		var busy int64
		for _, k := range []int{1, 2, 3, 6, 7, 8} {
			n, err := strconv.ParseInt(f[k], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/stat cpu field %d: %w", k, err)
			}
			busy += n
		}
		return busy, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("/proc/stat: no cpu line")
}

// cgroupCPU returns the CPU time used by the processes of a cgroup (and
// its descendants): cpuacct.usage on cgroup v1, usage_usec of cpu.stat on
// v2.
func cgroupCPU(dir string) (time.Duration, error) {
	if data, err := os.ReadFile(filepath.Join(dir, "cpuacct.usage")); err == nil {
		ns, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s/cpuacct.usage: %w", dir, err)
		}
		return time.Duration(ns), nil
	}
	data, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return 0, fmt.Errorf("cgroup %s: neither cpuacct.usage nor cpu.stat: %w", dir, err)
	}
	return parseCPUStatUsage(data)
}

func parseCPUStatUsage(stat []byte) (time.Duration, error) {
	sc := bufio.NewScanner(bytes.NewReader(stat))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "usage_usec "); ok {
			us, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("cpu.stat usage_usec: %w", err)
			}
			return time.Duration(us) * time.Microsecond, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("cpu.stat: no usage_usec")
}

// cpuSpan measures where the CPU time went during one measurement: the
// whole machine, the runtime (its cgroup, -runtime-cgroup: containerd, its
// shims and the runc they run), the agent (-pid) and the benchmark itself.
type cpuSpan struct {
	t0                       time.Time
	machine, agent, self     int64 // ticks
	runtime                  time.Duration
	agentPid                 int
	runtimeCgroup            string
	okMachine, okAgent, okRT bool
}

// startCPUSpan starts a span. What cannot be read is left out of it.
func startCPUSpan(runtimeCgroup string, agentPid int) cpuSpan {
	s := cpuSpan{t0: time.Now(), agentPid: agentPid, runtimeCgroup: runtimeCgroup}
	var err error
	s.machine, err = machineBusyTicks()
	if err == nil {
		s.self, err = cpuTicks(os.Getpid())
	}
	s.okMachine = err == nil
	if agentPid > 0 {
		s.agent, err = cpuTicks(agentPid)
		s.okAgent = err == nil
	}
	if runtimeCgroup != "" {
		s.runtime, err = cgroupCPU(runtimeCgroup)
		s.okRT = err == nil
	}
	return s
}

// fill sets r's CPU figures: the CPU-seconds each part used from the
// span's start until now, and the span's length.
func (s cpuSpan) fill(r *record) {
	secs := func(ticks int64) *float64 { v := float64(ticks) / clockTicks; return &v }
	r.WindowS = time.Since(s.t0).Seconds()
	if s.okMachine {
		m, err1 := machineBusyTicks()
		me, err2 := cpuTicks(os.Getpid())
		if err1 == nil && err2 == nil {
			r.MachineCPUS, r.BenchCPUS = secs(m-s.machine), secs(me-s.self)
		}
	}
	if s.okAgent {
		if a, err := cpuTicks(s.agentPid); err == nil {
			r.AgentCPUS = secs(a - s.agent)
		}
	}
	if s.okRT {
		if u, err := cgroupCPU(s.runtimeCgroup); err == nil {
			v := (u - s.runtime).Seconds()
			r.RuntimeCPUS = &v
		}
	}
}

// withCPU adds a span's figures to a start or teardown record.
func withCPU(r record, s cpuSpan) record {
	s.fill(&r)
	return r
}

// measureLists lists every sandbox and every container k times, as a
// PLEG's relist does, and reports what one such relist costs: the CPU
// time of nodebench (the client: the calls and decoding the answers,
// through the same CRI client as nodekit's agent), of the runtime (with
// -runtime-cgroup) and the wall time; and the client's CPU time of each
// of the two lists. Then it relists one pod k times as a PLEG does after
// an event or a sync (the pod's sandboxes and containers listed by its
// UID, and their statuses) and reports what that costs.
func (b *bench) measureLists(ctx context.Context, pods, k int) (record, error) {
	span := startCPUSpan(b.runtimeCgroup, 0)
	t0 := time.Now()
	var client [2]int64
	for step, list := range []func() error{
		func() error { _, err := b.rt.ListPodSandbox(ctx, nil); return err },
		func() error { _, err := b.rt.ListContainers(ctx, nil); return err },
	} {
		self0, err := cpuTicks(os.Getpid())
		if err != nil {
			return record{}, err
		}
		for range k {
			if err := list(); err != nil {
				return record{}, fmt.Errorf("relist: %w", err)
			}
		}
		self1, err := cpuTicks(os.Getpid())
		if err != nil {
			return record{}, err
		}
		client[step] = self1 - self0
	}
	wall := time.Since(t0)
	r := b.newRecord("relist", pods)
	span.fill(&r)
	per := func(v float64) *float64 { v = v / float64(k) * 1000; return &v }
	r.N = k
	r.ListClientMS = per(float64(client[0]+client[1]) / clockTicks)
	r.ListSandboxesClientMS = per(float64(client[0]) / clockTicks)
	r.ListWallMS = per(wall.Seconds())
	if r.RuntimeCPUS != nil {
		r.ListRuntimeMS = per(*r.RuntimeCPUS)
	}
	r.MachineCPUS, r.RuntimeCPUS, r.BenchCPUS, r.WindowS = nil, nil, nil, 0

	// One pod's relist, as a PLEG refreshes a pod after an event or a
	// sync: its sandboxes and containers listed by its UID, and their
	// statuses.
	sbs, err := b.rt.ListPodSandbox(ctx, nil)
	if err != nil || len(sbs) == 0 {
		return r, err
	}
	pod := &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{core.LabelPodUID: sbs[0].GetMetadata().GetUid()}}
	cpod := &runtimeapi.ContainerFilter{LabelSelector: pod.LabelSelector}
	one := startCPUSpan(b.runtimeCgroup, 0)
	self0, err := cpuTicks(os.Getpid())
	if err != nil {
		return record{}, err
	}
	for range k {
		sb, err := b.rt.ListPodSandbox(ctx, pod)
		if err != nil {
			return record{}, fmt.Errorf("relist of one pod: %w", err)
		}
		cs, err := b.rt.ListContainers(ctx, cpod)
		if err != nil {
			return record{}, fmt.Errorf("relist of one pod: %w", err)
		}
		for _, s := range sb {
			if _, err := b.rt.PodSandboxStatus(ctx, s.GetId(), false); err != nil {
				return record{}, fmt.Errorf("relist of one pod: %w", err)
			}
		}
		for _, c := range cs {
			if _, err := b.rt.ContainerStatus(ctx, c.GetId(), false); err != nil {
				return record{}, fmt.Errorf("relist of one pod: %w", err)
			}
		}
	}
	self1, err := cpuTicks(os.Getpid())
	if err != nil {
		return record{}, err
	}
	var o record
	one.fill(&o)
	r.PodRelistClientMS = per(float64(self1-self0) / clockTicks)
	if o.RuntimeCPUS != nil {
		r.PodRelistRuntimeMS = per(*o.RuntimeCPUS)
	}
	return r, nil
}
