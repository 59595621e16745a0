package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// metric is one row of the report: a value of each record of one measure.
type metric struct {
	label   string
	measure string
	value   func(record) (float64, bool)
	format  string // of the value, e.g. "%.2f"
	ratio   bool   // a ratio to the floor and between agents means something
}

func ms2s(f func(record) float64) func(record) (float64, bool) {
	return func(r record) (float64, bool) { return f(r) / 1000, r.N > 0 }
}

func msv(f func(record) float64) func(record) (float64, bool) {
	return func(r record) (float64, bool) { return f(r), r.N > 0 }
}

func ptrv(f func(record) *float64) func(record) (float64, bool) {
	return func(r record) (float64, bool) {
		p := f(r)
		if p == nil {
			return 0, false
		}
		return *p, true
	}
}

// busyCPUs is how many CPUs the machine kept busy on average.
func busyCPUs(r record) (float64, bool) {
	if r.MachineCPUS == nil || r.WindowS <= 0 {
		return 0, false
	}
	return *r.MachineCPUS / r.WindowS, true
}

var metrics = []metric{
	{"start: all running (s)", "start", ms2s(func(r record) float64 { return r.TotalMS }), "%.2f", true},
	{"start: per pod p50 (s)", "start", ms2s(func(r record) float64 { return r.P50MS }), "%.2f", true},
	{"start: per pod p90 (s)", "start", ms2s(func(r record) float64 { return r.P90MS }), "%.2f", true},
	{"start: per pod p99 (s)", "start", ms2s(func(r record) float64 { return r.P99MS }), "%.2f", true},
	{"start: machine busy (CPUs)", "start", busyCPUs, "%.2f", false},
	{"start: runtime CPU (CPU-s)", "start", ptrv(func(r record) *float64 { return r.RuntimeCPUS }), "%.1f", true},
	{"start: agent CPU (CPU-s)", "start", ptrv(func(r record) *float64 { return r.AgentCPUS }), "%.1f", true},
	{"restart: death → running p50 (ms)", "restart", msv(func(r record) float64 { return r.P50MS }), "%.0f", true},
	{"restart: p90 (ms)", "restart", msv(func(r record) float64 { return r.P90MS }), "%.0f", true},
	{"restart: p99 (ms)", "restart", msv(func(r record) float64 { return r.P99MS }), "%.0f", true},
	{"restart: death → created p50 (ms)", "restart", ptrv(func(r record) *float64 { return r.CreatedP50MS }), "%.0f", true},
	{"relist of every pod: client CPU (ms)", "relist", ptrv(func(r record) *float64 { return r.ListClientMS }), "%.2f", false},
	{"relist of every pod: runtime CPU (ms)", "relist", ptrv(func(r record) *float64 { return r.ListRuntimeMS }), "%.2f", false},
	{"relist of one pod: runtime CPU (ms)", "relist", ptrv(func(r record) *float64 { return r.PodRelistRuntimeMS }), "%.2f", false},
	{"teardown: all stopped (s)", "teardown", ms2s(func(r record) float64 { return r.TotalMS }), "%.2f", true},
	{"teardown: per pod p50 (s)", "teardown", ms2s(func(r record) float64 { return r.P50MS }), "%.2f", true},
	{"teardown: per pod p99 (s)", "teardown", ms2s(func(r record) float64 { return r.P99MS }), "%.2f", true},
	{"teardown: machine busy (CPUs)", "teardown", busyCPUs, "%.2f", false},
	{"teardown: runtime CPU (CPU-s)", "teardown", ptrv(func(r record) *float64 { return r.RuntimeCPUS }), "%.1f", true},
	{"teardown: agent CPU (CPU-s)", "teardown", ptrv(func(r record) *float64 { return r.AgentCPUS }), "%.1f", true},
	{"steady: agent CPU (% of one CPU)", "steady", ptrv(func(r record) *float64 { return r.CPUPercent }), "%.1f", true},
	{"steady: agent RSS, mean (MiB)", "steady", ptrv(func(r record) *float64 { return r.RSSMiB }), "%.1f", true},
	{"steady: agent RSS, peak (MiB)", "steady", ptrv(func(r record) *float64 { return r.RSSMaxMiB }), "%.1f", true},
	{"steady: agent RSS anonymous, mean (MiB)", "steady", ptrv(func(r record) *float64 { return r.RSSAnonMiB }), "%.1f", true},
	{"steady: runtime CPU (% of one CPU)", "steady", ptrv(func(r record) *float64 { return r.RuntimeCPUPercent }), "%.1f", true},
}

// report prints, for each runtime and pod count in the given JSON-lines
// files, one Markdown table: each metric's median over the runs of each
// agent (with the range when there are several), the ratio of each agent
// to the floor, and of the last agent to the first.
func report(files []string, out io.Writer) error {
	if len(files) == 0 {
		return errors.New("report: name one or more files of JSON lines (nodebench -json)")
	}
	var recs []record
	for _, name := range files {
		rs, err := readRecords(name)
		if err != nil {
			return err
		}
		recs = append(recs, rs...)
	}
	if len(recs) == 0 {
		return errors.New("report: no measurements")
	}
	type group struct {
		runtime string
		pods    int
	}
	var groups []group
	for _, r := range recs {
		if r.Measure == "steady" {
			continue // steady records count the pods that ran; the start of the run names the size
		}
		if g := (group{r.Runtime, r.Pods}); !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	slices.SortFunc(groups, func(a, b group) int {
		if c := strings.Compare(a.runtime, b.runtime); c != 0 {
			return c
		}
		return a.pods - b.pods
	})
	for k, g := range groups {
		if k > 0 {
			fmt.Fprintln(out)
		}
		var in []record
		for _, r := range recs {
			if r.Runtime == g.runtime && r.Pods == g.pods {
				in = append(in, r)
			}
		}
		writeTable(out, g.runtime, g.pods, in)
	}
	return nil
}

func readRecords(name string) ([]record, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var recs []record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		recs = append(recs, r)
	}
	return recs, sc.Err()
}

// isFloor reports whether agent is one of the runtime's floors ("floor",
// "floor-all"): nodebench itself, no agent.
func isFloor(agent string) bool { return agent == "floor" || strings.HasPrefix(agent, "floor-") }

// agentsOf orders the agents of recs: the floor first, then the other
// floors, then the agents, each in the order they first appear.
func agentsOf(recs []record) []string {
	var agents []string
	for _, r := range recs {
		if !slices.Contains(agents, r.Agent) {
			agents = append(agents, r.Agent)
		}
	}
	rank := func(a string) int {
		switch {
		case a == "floor":
			return 0
		case isFloor(a):
			return 1
		}
		return 2
	}
	slices.SortStableFunc(agents, func(a, b string) int { return rank(a) - rank(b) })
	return agents
}

func writeTable(out io.Writer, runtime string, pods int, recs []record) {
	agents := agentsOf(recs)
	var others []string
	hasFloor := false
	for _, a := range agents {
		switch {
		case a == "floor":
			hasFloor = true
		case !isFloor(a):
			others = append(others, a)
		}
	}
	runs := make([]string, len(agents))
	for k, a := range agents {
		seen := map[int]bool{}
		for _, r := range recs {
			if r.Agent == a {
				seen[r.Run] = true
			}
		}
		runs[k] = fmt.Sprintf("%s %d", a, len(seen))
	}
	fmt.Fprintf(out, "%d pods on %s; median over runs (range); runs: %s\n\n", pods, runtime, strings.Join(runs, ", "))

	head := []string{"metric"}
	head = append(head, agents...)
	if hasFloor {
		for _, a := range others {
			head = append(head, a+" / floor")
		}
	}
	if len(others) >= 2 {
		head = append(head, others[len(others)-1]+" / "+others[0])
	}
	fmt.Fprintf(out, "| %s |\n", strings.Join(head, " | "))
	fmt.Fprintf(out, "|%s\n", strings.Repeat("---|", len(head)))

	for _, m := range metrics {
		med := map[string]float64{}
		cells := []string{m.label}
		any := false
		for _, a := range agents {
			var vs []float64
			for _, r := range recs {
				if r.Agent == a && r.Measure == m.measure {
					if v, ok := m.value(r); ok {
						vs = append(vs, v)
					}
				}
			}
			if len(vs) == 0 {
				cells = append(cells, "–")
				continue
			}
			any = true
			slices.Sort(vs)
			med[a] = median(vs)
			cell := fmt.Sprintf(m.format, med[a])
			if len(vs) > 1 {
				cell += fmt.Sprintf(" ("+m.format+"–"+m.format+")", vs[0], vs[len(vs)-1])
			}
			cells = append(cells, cell)
		}
		if !any {
			continue
		}
		ratio := func(a, b string) string {
			va, okA := med[a]
			vb, okB := med[b]
			if !m.ratio || !okA || !okB || vb == 0 {
				return "–"
			}
			return fmt.Sprintf("%.2f", va/vb)
		}
		if hasFloor {
			for _, a := range others {
				cells = append(cells, ratio(a, "floor"))
			}
		}
		if len(others) >= 2 {
			cells = append(cells, ratio(others[len(others)-1], others[0]))
		}
		fmt.Fprintf(out, "| %s |\n", strings.Join(cells, " | "))
	}
	// Runs that failed (hack/bench.sh records measure "failed") have no
	// numbers above; say how many there were.
	failed := []string{"failed runs"}
	anyFailed := false
	for _, a := range agents {
		n := 0
		for _, r := range recs {
			if r.Agent == a && r.Measure == "failed" {
				n++
			}
		}
		anyFailed = anyFailed || n > 0
		failed = append(failed, fmt.Sprint(n))
	}
	if anyFailed {
		for len(failed) < len(head) {
			failed = append(failed, "")
		}
		fmt.Fprintf(out, "| %s |\n", strings.Join(failed, " | "))
	}
}

// median of the sorted vs.
func median(vs []float64) float64 {
	n := len(vs)
	if n == 0 {
		return math.NaN()
	}
	if n%2 == 1 {
		return vs[n/2]
	}
	return (vs[n/2-1] + vs[n/2]) / 2
}
