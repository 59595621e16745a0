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

	// steady: over WindowS seconds, the agent's CPU use in percent of one
	// CPU, its mean and peak RSS, and the runtime's CPU use.
	WindowS           float64  `json:"window_s,omitempty"`
	CPUPercent        *float64 `json:"cpu_pct,omitempty"`
	RSSMiB            *float64 `json:"rss_mib,omitempty"`
	RSSMaxMiB         *float64 `json:"rss_max_mib,omitempty"`
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
		fmt.Fprintf(&sb, "over %.0f s: agent CPU %.1f %%, RSS %.1f MiB (peak %.1f)", r.WindowS, deref(r.CPUPercent), deref(r.RSSMiB), deref(r.RSSMaxMiB))
		if r.RuntimeCPUPercent != nil {
			fmt.Fprintf(&sb, ", runtime CPU %.1f %%", *r.RuntimeCPUPercent)
		}
	case "restart":
		fmt.Fprintf(&sb, "%d killed, death → running again: p50 %s  p90 %s  p99 %s", r.N, msf(r.P50MS), msf(r.P90MS), msf(r.P99MS))
	default:
		fmt.Fprintf(&sb, "all %d in %s; per pod p50 %s  p90 %s  p99 %s", r.N, msf(r.TotalMS), msf(r.P50MS), msf(r.P90MS), msf(r.P99MS))
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
