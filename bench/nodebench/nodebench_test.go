package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

func TestPodIndex(t *testing.T) {
	for _, tc := range []struct {
		name string
		i    int
		ok   bool
	}{
		{"nb-000", 0, true},
		{"nb-042", 42, true},
		{"nb-042-vm", 42, true},              // a static pod's name on node "vm"
		{"nb-999-node-1.example", 999, true}, // node names have dashes and dots
		{"nb-42", 0, false},
		{"nb-0421", 0, false},
		{"xnb-042", 0, false},
		{"nb-04a", 0, false},
		{"", 0, false},
	} {
		i, ok := podIndex(tc.name)
		if i != tc.i || ok != tc.ok {
			t.Errorf("podIndex(%q) = %d, %v; want %d, %v", tc.name, i, ok, tc.i, tc.ok)
		}
	}
	for _, i := range []int{0, 7, 99, maxPods - 1} {
		if got, ok := podIndex(podName(i)); !ok || got != i {
			t.Errorf("podIndex(podName(%d)) = %d, %v", i, got, ok)
		}
	}
}

func TestStagedManifests(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "manifests")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Not ours: cleanup and teardown must leave it.
	if err := os.WriteFile(filepath.Join(dir, "other.yaml"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	stage, err := stageManifests(dir, "ns", "img", 3)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(stage) != root || !strings.HasPrefix(filepath.Base(stage), ".") {
		t.Errorf("staged in %s, want a hidden directory in %s", stage, root)
	}
	if files, _ := benchManifests(dir); len(files) != 0 {
		t.Fatalf("before publish, %s holds %v", dir, files)
	}
	if err := publish(stage, dir, 3); err != nil {
		t.Fatal(err)
	}
	files, err := benchManifests(dir)
	if err != nil || len(files) != 3 {
		t.Fatalf("benchManifests = %v, %v; want 3 files", files, err)
	}
	var nonce string
	for i, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var p v1.Pod
		if err := json.Unmarshal(data, &p); err != nil {
			t.Fatal(err)
		}
		c := p.Spec.Containers[0]
		if p.Kind != "Pod" || p.Name != podName(i) || p.Namespace != "ns" || c.Name != podName(i) || c.Image != "img" ||
			c.ImagePullPolicy != v1.PullNever || !p.Spec.HostNetwork || c.Resources.Requests.Cpu().MilliValue() != 5 {
			t.Errorf("%s: unexpected pod %+v", f, p)
		}
		if i == 0 {
			nonce = p.Annotations[runAnnotation]
		} else if p.Annotations[runAnnotation] != nonce || nonce == "" {
			t.Errorf("%s: run annotation %q, want %q as the other pods of the run", f, p.Annotations[runAnnotation], nonce)
		}
	}
}

func TestParseStatTicks(t *testing.T) {
	// Fields 14-17: utime 1200, stime 300, cutime 40, cstime 2; the
	// command name holds a space and a parenthesis.
	stat := "4242 (kube let) x) S 1 4242 4242 0 -1 4194560 12345 0 0 0 1200 300 40 2 20 0 17 0 1000 123456789 4567 18446744073709551615\n"
	got, err := parseStatTicks([]byte(stat))
	if err != nil || got != 1542 {
		t.Errorf("parseStatTicks = %d, %v; want 1542", got, err)
	}
	if _, err := parseStatTicks([]byte("4242 (short) S 1 2")); err == nil {
		t.Error("parseStatTicks of a truncated line: no error")
	}
	self, err := cpuTicks(os.Getpid())
	if err != nil || self < 0 {
		t.Errorf("cpuTicks(self) = %d, %v", self, err)
	}
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tkubelet\nVmPeak:\t  900000 kB\nVmRSS:\t   74124 kB\nRssAnon:\t   20480 kB\nRssFile:\t   53644 kB\nThreads:\t20\n"
	got, err := parseVmRSS([]byte(status))
	if err != nil || got != 74124<<10 {
		t.Errorf("parseVmRSS = %d, %v; want %d", got, err, 74124<<10)
	}
	if anon, err := parseStatusKB([]byte(status), "RssAnon"); err != nil || anon != 20480<<10 {
		t.Errorf("RssAnon = %d, %v; want %d", anon, err, 20480<<10)
	}
	if _, err := parseVmRSS([]byte("Name:\tkthreadd\n")); err == nil {
		t.Error("parseVmRSS without VmRSS: no error")
	}
	if r, a, err := rssBytes(os.Getpid()); err != nil || r <= 0 || a <= 0 || a > r {
		t.Errorf("rssBytes(self) = %d, %d, %v", r, a, err)
	}
}

func TestPercentile(t *testing.T) {
	s := make([]float64, 100)
	for i := range s {
		s[i] = float64(i + 1)
	}
	for _, tc := range []struct{ p, want float64 }{{50, 50}, {90, 90}, {99, 99}, {100, 100}, {1, 1}} {
		if got := percentile(s, tc.p); got != tc.want {
			t.Errorf("percentile(1..100, %v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	ten := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if got := percentile(ten, 99); got != 10 {
		t.Errorf("p99 of 10 samples = %v, want the largest", got)
	}
	if got := percentile(ten, 50); got != 5 {
		t.Errorf("p50 of 1..10 = %v, want 5", got)
	}
}

func TestLatencyRecord(t *testing.T) {
	b := &bench{globals: globals{agent: "nodekit", runNo: 2}, runtime: "containerd v2.4.2"}
	lat := map[int]time.Duration{}
	for i := range 10 {
		lat[i] = time.Duration(i+1) * 100 * time.Millisecond
	}
	r := latencyRecord(b, "start", 10, lat)
	if r.Agent != "nodekit" || r.Run != 2 || r.N != 10 || r.P50MS != 500 || r.P90MS != 900 || r.P99MS != 1000 || r.TotalMS != 1000 {
		t.Errorf("latencyRecord = %+v", r)
	}
}

func TestReport(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	recs := []record{
		{Runtime: "rt", Agent: "floor", Run: 1, Measure: "start", Pods: 30, N: 30, TotalMS: 4000, P50MS: 2000},
		{Runtime: "rt", Agent: "floor", Run: 2, Measure: "start", Pods: 30, N: 30, TotalMS: 6000, P50MS: 3000},
		{Runtime: "rt", Agent: "kubelet", Run: 1, Measure: "start", Pods: 30, N: 30, TotalMS: 10000, P50MS: 5000},
		{Runtime: "rt", Agent: "kubelet", Run: 2, Measure: "start", Pods: 30, N: 30, TotalMS: 12000, P50MS: 7000},
		{Runtime: "rt", Agent: "nodekit", Run: 1, Measure: "start", Pods: 30, N: 30, TotalMS: 5500, P50MS: 2500},
		{Runtime: "rt", Agent: "nodekit", Run: 2, Measure: "start", Pods: 30, N: 30, TotalMS: 5500, P50MS: 2500},
		{Runtime: "rt", Agent: "kubelet", Run: 1, Measure: "steady", Pods: 30, WindowS: 30, CPUPercent: f(4), RSSMiB: f(80), RSSMaxMiB: f(81)},
		{Runtime: "rt", Agent: "nodekit", Run: 1, Measure: "steady", Pods: 30, WindowS: 30, CPUPercent: f(1), RSSMiB: f(30), RSSMaxMiB: f(31)},
		{Runtime: "rt", Agent: "nodekit", Run: 1, Measure: "start", Pods: 100, N: 100, TotalMS: 9000},
		{Runtime: "rt", Agent: "nodekit", Run: 2, Measure: "failed", Pods: 100},
	}
	got := reportOf(t, recs)
	for _, want := range []string{
		"30 pods on rt; median over runs (range); runs: floor 2, kubelet 2, nodekit 2",
		"| metric | floor | kubelet | nodekit | kubelet / floor | nodekit / floor | nodekit / kubelet |",
		// medians 5, 11, 5.5; ratios 11/5, 5.5/5, 5.5/11
		"| start: all running (s) | 5.00 (4.00–6.00) | 11.00 (10.00–12.00) | 5.50 (5.50–5.50) | 2.20 | 1.10 | 0.50 |",
		"| steady: agent CPU (% of one CPU) | – | 4.0 | 1.0 | – | – | 0.25 |",
		"100 pods on rt; median over runs (range); runs: nodekit 2",
		"| start: all running (s) | 9.00 |",
		"| failed runs | 1 |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q; got:\n%s", want, got)
		}
	}
	if strings.Count(got, "failed runs") != 1 {
		t.Errorf("want a failed-runs row for 100 pods only; got:\n%s", got)
	}
	if strings.Contains(got, "restart") {
		t.Errorf("report has restart rows without restart measurements:\n%s", got)
	}
}

// The floors come first, the floor itself before the others; ratios are
// to the floor, and the last agent's to the first agent's, floors aside.
func TestReportFloors(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	recs := []record{
		{Runtime: "rt", Agent: "kubelet", Run: 1, Measure: "teardown", Pods: 10, N: 10, TotalMS: 6000, WindowS: 6, MachineCPUS: f(12), RuntimeCPUS: f(10), AgentCPUS: f(0.5)},
		{Runtime: "rt", Agent: "floor-all", Run: 1, Measure: "teardown", Pods: 10, N: 10, TotalMS: 5000, WindowS: 5, MachineCPUS: f(9.5), RuntimeCPUS: f(9)},
		{Runtime: "rt", Agent: "nodekit", Run: 1, Measure: "teardown", Pods: 10, N: 10, TotalMS: 4500, WindowS: 4.5, MachineCPUS: f(9), RuntimeCPUS: f(8.5), AgentCPUS: f(0.2)},
		{Runtime: "rt", Agent: "floor", Run: 1, Measure: "teardown", Pods: 10, N: 10, TotalMS: 4000, WindowS: 4, MachineCPUS: f(8), RuntimeCPUS: f(7)},
		{Runtime: "rt", Agent: "floor", Run: 1, Measure: "relist", Pods: 10, N: 300, ListClientMS: f(2), ListSandboxesClientMS: f(0.8), ListRuntimeMS: f(1)},
	}
	got := reportOf(t, recs)
	for _, want := range []string{
		"| metric | floor | floor-all | kubelet | nodekit | kubelet / floor | nodekit / floor | nodekit / kubelet |",
		"| teardown: all stopped (s) | 4.00 | 5.00 | 6.00 | 4.50 | 1.50 | 1.12 | 0.75 |",
		"| teardown: machine busy (CPUs) | 2.00 | 1.90 | 2.00 | 2.00 | – | – | – |",
		"| teardown: runtime CPU (CPU-s) | 7.0 | 9.0 | 10.0 | 8.5 | 1.43 | 1.21 | 0.85 |",
		"| relist of every pod: client CPU (ms) | 2.00 | – | – | – | – | – | – |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q; got:\n%s", want, got)
		}
	}
}

func TestParseCPUCounters(t *testing.T) {
	stat := "cpu  100 5 50 1000 20 3 7 2 9 0\ncpu0 50 2 25 500 10 1 3 1 4 0\nintr 1\n"
	if got, err := parseBusyTicks([]byte(stat)); err != nil || got != 167 {
		t.Errorf("parseBusyTicks = %d, %v; want 167 (user nice system irq softirq steal)", got, err)
	}
	if _, err := parseBusyTicks([]byte("cpu0 1 2 3\n")); err == nil {
		t.Error("parseBusyTicks without a cpu line: no error")
	}
	if got, err := parseCPUStatUsage([]byte("usage_usec 2500000\nuser_usec 2000000\n")); err != nil || got != 2500*time.Millisecond {
		t.Errorf("parseCPUStatUsage = %v, %v; want 2.5s", got, err)
	}
	if _, err := parseCPUStatUsage([]byte("user_usec 1\n")); err == nil {
		t.Error("parseCPUStatUsage without usage_usec: no error")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cpuacct.usage"), []byte("1500000000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := cgroupCPU(dir); err != nil || got != 1500*time.Millisecond {
		t.Errorf("cgroupCPU(v1) = %v, %v; want 1.5s", got, err)
	}
	if b, err := machineBusyTicks(); err != nil || b <= 0 {
		t.Errorf("machineBusyTicks = %d, %v", b, err)
	}
}

// reportOf writes recs to a results file, as nodebench appends them, and
// returns the report made of it.
func reportOf(t *testing.T, recs []record) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "results.jsonl")
	var buf bytes.Buffer
	for _, r := range recs {
		line, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(append(line, '\n'))
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := report([]string{path}, &out); err != nil {
		t.Fatal(err)
	}
	return out.String()
}
