package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// record is one measurement, written as one JSON line.
type record struct {
	Time    time.Time `json:"time"`
	Runtime string    `json:"runtime"` // e.g. "containerd v2.4.2"
	Agent   string    `json:"agent"`   // "floor", "kubelet", "nodekit", ...
	Run     int       `json:"run"`
	Measure string    `json:"measure"` // start, restart, steady, teardown
	Pods    int       `json:"pods"`    // how many pods the agent had

	// start, restart, teardown: N samples (pods started or stopped,
	// containers restarted) and their latencies; TotalMS is the time until
	// the last one (not for restart, whose kills are spread out).
	N       int     `json:"n,omitempty"`
	TotalMS float64 `json:"total_ms,omitempty"`
	P50MS   float64 `json:"p50_ms,omitempty"`
	P90MS   float64 `json:"p90_ms,omitempty"`
	P99MS   float64 `json:"p99_ms,omitempty"`
	MaxMS   float64 `json:"max_ms,omitempty"`
	// start, teardown: the CPU-seconds used over the WindowS seconds from
	// the first manifest written or removed to the last pod seen done: by
	// the whole machine (busy time summed over its CPUs), the runtime
	// (its cgroup: containerd, its shims and the runc they run; with
	// -runtime-cgroup), the agent (with -pid) and nodebench itself
	// (polling, and for the floor driving the runtime). A machine busy on
	// every CPU throughout is saturated: the work, not a wait, sets the
	// time.
	MachineCPUS *float64 `json:"machine_cpu_s,omitempty"`
	RuntimeCPUS *float64 `json:"runtime_cpu_s,omitempty"`
	AgentCPUS   *float64 `json:"agent_cpu_s,omitempty"`
	BenchCPUS   *float64 `json:"bench_cpu_s,omitempty"`
	// restart: from the death to the replacement's creation (created_at,
	// the runtime's clock), p50 and p90: the part of the restart before
	// the runtime creates and starts the new container (the agent
	// learning of the death and deciding).
	CreatedP50MS *float64 `json:"created_p50_ms,omitempty"`
	CreatedP90MS *float64 `json:"created_p90_ms,omitempty"`
	// relist: per relist (every sandbox and container listed once), the
	// CPU milliseconds of the client (nodebench, through nodekit's CRI
	// client; of it, for the sandboxes' list) and of the runtime, and the
	// wall milliseconds.
	ListClientMS          *float64 `json:"list_client_ms,omitempty"`
	ListSandboxesClientMS *float64 `json:"list_sandboxes_client_ms,omitempty"`
	ListRuntimeMS         *float64 `json:"list_runtime_ms,omitempty"`
	ListWallMS            *float64 `json:"list_wall_ms,omitempty"`
	// PodRelistClientMS and PodRelistRuntimeMS: the CPU milliseconds of
	// one pod's relist (its sandboxes and containers listed by its UID,
	// and their statuses), the client's and the runtime's.
	PodRelistClientMS  *float64 `json:"pod_relist_client_ms,omitempty"`
	PodRelistRuntimeMS *float64 `json:"pod_relist_runtime_ms,omitempty"`
	// Workers: for the floor, how many pods it started or stopped at once.
	Workers int `json:"workers,omitempty"`

	// steady: over WindowS seconds, the agent's CPU use in percent of one
	// CPU, its mean and peak RSS, and the runtime's CPU use (its main
	// process).
	WindowS    float64  `json:"window_s,omitempty"`
	CPUPercent *float64 `json:"cpu_pct,omitempty"`
	RSSMiB     *float64 `json:"rss_mib,omitempty"`
	RSSMaxMiB  *float64 `json:"rss_max_mib,omitempty"`
	// RSSAnonMiB is the mean of the RSS's anonymous part (RssAnon): the
	// agent's own memory, without the pages of its executable, which
	// depend on how the file sits in the page cache (a binary just
	// written by the linker maps about 10 MiB more than a copy of it).
	RSSAnonMiB        *float64 `json:"rss_anon_mib,omitempty"`
	RuntimeCPUPercent *float64 `json:"runtime_cpu_pct,omitempty"`
}

func (b *bench) newRecord(measure string, pods int) record {
	agent := b.agent
	if agent == "" {
		agent = "agent"
	}
	return record{Time: time.Now().UTC().Round(time.Millisecond), Runtime: b.runtime, Agent: agent, Run: b.runNo, Measure: measure, Pods: pods}
}

// latencyRecord summarizes per-pod latencies.
func latencyRecord(b *bench, measure string, pods int, lat map[int]time.Duration) record {
	r := b.newRecord(measure, pods)
	s := make([]float64, 0, len(lat))
	for _, d := range lat {
		s = append(s, float64(d)/float64(time.Millisecond))
	}
	slices.Sort(s)
	r.N = len(s)
	if len(s) > 0 {
		r.P50MS, r.P90MS, r.P99MS = percentile(s, 50), percentile(s, 90), percentile(s, 99)
		r.MaxMS = s[len(s)-1]
		r.TotalMS = r.MaxMS
	}
	return r
}

// percentile is the nearest-rank percentile p of the sorted s: the
// smallest value that at least p % of the samples do not exceed.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(k, 0), len(sorted)-1)]
}

// emit prints r for people and appends it to -json.
func (b *bench) emit(r record) error {
	fmt.Fprintln(b.out, r.human())
	if b.jsonPath == "" {
		return nil
	}
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	if b.jsonPath == "-" {
		_, err = os.Stdout.Write(line)
		return err
	}
	f, err := os.OpenFile(b.jsonPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(line); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (r record) human() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-8s run %d  %-8s %3d pods  ", r.Agent, r.Run, r.Measure, r.Pods)
	switch r.Measure {
	case "steady":
		fmt.Fprintf(&sb, "over %.0f s: agent CPU %.1f %%, RSS %.1f MiB (peak %.1f", r.WindowS, deref(r.CPUPercent), deref(r.RSSMiB), deref(r.RSSMaxMiB))
		if r.RSSAnonMiB != nil {
			fmt.Fprintf(&sb, ", anonymous %.1f", *r.RSSAnonMiB)
		}
		sb.WriteString(")")
		if r.RuntimeCPUPercent != nil {
			fmt.Fprintf(&sb, ", runtime CPU %.1f %%", *r.RuntimeCPUPercent)
		}
	case "relist":
		fmt.Fprintf(&sb, "%d relists: each %.2f ms of the client's CPU (sandboxes %.2f), %.2f ms of the runtime's, %.2f ms wall", r.N, deref(r.ListClientMS), deref(r.ListSandboxesClientMS), deref(r.ListRuntimeMS), deref(r.ListWallMS))
		if r.PodRelistClientMS != nil {
			fmt.Fprintf(&sb, "; one pod's relist: %.2f ms of the client's CPU, %.2f ms of the runtime's", *r.PodRelistClientMS, deref(r.PodRelistRuntimeMS))
		}
	case "restart":
		fmt.Fprintf(&sb, "%d killed, death → running again: p50 %s  p90 %s  p99 %s", r.N, msf(r.P50MS), msf(r.P90MS), msf(r.P99MS))
		if r.CreatedP50MS != nil {
			fmt.Fprintf(&sb, "; death → created: p50 %s  p90 %s", msf(*r.CreatedP50MS), msf(deref(r.CreatedP90MS)))
		}
	default:
		fmt.Fprintf(&sb, "all %d in %s; per pod p50 %s  p90 %s  p99 %s", r.N, msf(r.TotalMS), msf(r.P50MS), msf(r.P90MS), msf(r.P99MS))
		if r.MachineCPUS != nil && r.WindowS > 0 {
			fmt.Fprintf(&sb, "; CPU-s: machine %.1f (%.2f CPUs busy)", *r.MachineCPUS, *r.MachineCPUS/r.WindowS)
			if r.RuntimeCPUS != nil {
				fmt.Fprintf(&sb, ", runtime %.1f", *r.RuntimeCPUS)
			}
			if r.AgentCPUS != nil {
				fmt.Fprintf(&sb, ", agent %.1f", *r.AgentCPUS)
			}
			fmt.Fprintf(&sb, ", nodebench %.1f", deref(r.BenchCPUS))
		}
		if r.Workers > 0 {
			fmt.Fprintf(&sb, "; %d workers", r.Workers)
		}
	}
	return sb.String()
}

func deref(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

// msf formats milliseconds.
func msf(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f s", v/1000)
	}
	return fmt.Sprintf("%.0f ms", v)
}
