package syncloop_test

import (
	"cmp"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
	"github.com/nodekit/nodekit/syncloop"
)

var update = flag.Bool("update", false, "rewrite testdata/plan/*.txt with the plans computed")

// TestPlan runs the cases of testdata/plan/*.txt. Each case is
//
//	case <name>
//	<input lines>
//	----
//	<the plan, as formatPlan writes it>
//
// with these input lines (# starts a comment line):
//
//	pod [restartPolicy=Always|OnFailure|Never] [hostNetwork] [deleted] [restartAll]
//	init|sidecar|container|ephemeral NAME [image=I] [restartPolicy=P] [startupProbe] [livenessProbe]
//	    [rule=Restart|RestartAllContainers:In|NotIn:CODE,CODE…]
//	sandbox ID [attempt=N] [notready] [noip] [netns=pod|node] [created=T]
//	ctr ID NAME running|exited|created|unknown [exit=N] [reason=R] [restarts=N] [stale] [nohash]
//	    [created=T] [liveness=success|failure] [startup=success|failure]
//	backoff NAME
//
// A sidecar is an init container with restartPolicy Always. Sandboxes
// and containers are created in the order listed unless created= says
// otherwise; a container's hash annotation is its spec's, or one of an
// older image with stale, or absent with nohash. A sandbox's network
// namespace matches the pod unless netns= says otherwise. backoff holds
// the restart of NAME back for 10 s.
func TestPlan(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "plan", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/plan/*.txt")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			cases, err := parseCases(string(data))
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			var out strings.Builder
			for i, tc := range cases {
				got, err := runCase(tc.input)
				if err != nil {
					t.Fatalf("%s: case %s: %v", file, tc.name, err)
				}
				if !*update && got != tc.want {
					t.Errorf("case %s:\n%s\n---- got\n%s---- want\n%s", tc.name, tc.input, got, tc.want)
				}
				if i > 0 {
					out.WriteString("\n")
				}
				if tc.header != "" {
					out.WriteString(tc.header + "\n")
				}
				fmt.Fprintf(&out, "case %s\n%s----\n%s", tc.name, tc.input, got)
			}
			if *update {
				if err := os.WriteFile(file, []byte(out.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

type planCase struct {
	header string // comment lines before the case
	name   string
	input  string
	want   string
}

func parseCases(data string) ([]planCase, error) {
	var cases []planCase
	var comments strings.Builder
	const (
		outside = iota
		input
		want
	)
	state := outside
	for n, line := range strings.Split(data, "\n") {
		if name, ok := strings.CutPrefix(line, "case "); ok {
			cases = append(cases, planCase{header: comments.String(), name: strings.TrimSpace(name)})
			comments.Reset()
			state = input
			continue
		}
		cur := &planCase{}
		if len(cases) > 0 {
			cur = &cases[len(cases)-1]
		}
		switch {
		case state == input && line == "----":
			state = want
		case state == input:
			cur.input += line + "\n"
		case state == want && line != "" && !strings.HasPrefix(line, "#"):
			cur.want += line + "\n"
		case strings.HasPrefix(line, "#"):
			comments.WriteString(line + "\n")
			state = outside
		case line == "":
			state = outside
		default:
			return nil, fmt.Errorf("line %d: %q outside a case", n+1, line)
		}
	}
	if state == input {
		return nil, fmt.Errorf("case %s has no ----", cases[len(cases)-1].name)
	}
	return cases, nil
}

// runCase plans a case and formats the plan, followed by the containers
// whose back-off was asked about.
func runCase(input string) (string, error) {
	pod, status, in, err := buildCase(input)
	if err != nil {
		return "", err
	}
	var asked []string
	held := in.BackOff
	in.BackOff = func(c *v1.Container, last *runtimeapi.ContainerStatus) (time.Duration, string) {
		asked = append(asked, c.Name+"@"+last.GetId())
		return held(c, last)
	}
	out := formatPlan(syncloop.Plan(pod, status, in))
	if len(asked) > 0 {
		out += "back-off asked " + strings.Join(asked, " ") + "\n"
	}
	return out, nil
}

// buildCase builds the pod, the runtime status and the input of a case.
func buildCase(input string) (*v1.Pod, *core.PodStatus, syncloop.PlanInput, error) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-1"}}
	pod.Spec.RestartPolicy = v1.RestartPolicyAlways
	status := &core.PodStatus{UID: pod.UID, Name: pod.Name, Namespace: pod.Namespace}
	in := syncloop.PlanInput{Liveness: map[string]syncloop.ProbeResult{}, Startup: map[string]syncloop.ProbeResult{}}
	backOff := map[string]bool{}
	var clock int64
	for n, line := range strings.Split(strings.TrimSpace(input), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		fail := func(format string, args ...any) (*v1.Pod, *core.PodStatus, syncloop.PlanInput, error) {
			return nil, nil, in, fmt.Errorf("line %d %q: %s", n+1, line, fmt.Sprintf(format, args...))
		}
		opts, flags := splitOpts(f[1:])
		clock++
		created := clock
		if s, ok := opts["created"]; ok {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return fail("created: %v", err)
			}
			created = v
		}
		switch f[0] {
		case "pod":
			if p, ok := opts["restartPolicy"]; ok {
				pod.Spec.RestartPolicy = v1.RestartPolicy(p)
			}
			pod.Spec.HostNetwork = flags["hostNetwork"]
			if flags["deleted"] {
				pod.DeletionTimestamp = &metav1.Time{Time: time.Unix(1, 0)}
			}
			in.RestartAllContainers = flags["restartAll"]
		case "init", "sidecar", "container", "ephemeral":
			if len(f) < 2 {
				return fail("no name")
			}
			c, err := specContainer(f[1], opts, flags)
			if err != nil {
				return fail("%v", err)
			}
			switch f[0] {
			case "sidecar":
				always := v1.ContainerRestartPolicyAlways
				c.RestartPolicy = &always
				fallthrough
			case "init":
				pod.Spec.InitContainers = append(pod.Spec.InitContainers, c)
			case "container":
				pod.Spec.Containers = append(pod.Spec.Containers, c)
			case "ephemeral":
				pod.Spec.EphemeralContainers = append(pod.Spec.EphemeralContainers, v1.EphemeralContainer{EphemeralContainerCommon: v1.EphemeralContainerCommon(c)})
			}
		case "sandbox":
			if len(f) < 2 {
				return fail("no ID")
			}
			sb := &runtimeapi.PodSandboxStatus{
				Id:        f[1],
				Metadata:  &runtimeapi.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID)},
				State:     runtimeapi.PodSandboxState_SANDBOX_READY,
				CreatedAt: created,
				Network:   &runtimeapi.PodSandboxNetworkStatus{Ip: "10.0.0.1"},
				Linux:     &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: &runtimeapi.NamespaceOption{}}},
			}
			if s, ok := opts["attempt"]; ok {
				v, err := strconv.ParseUint(s, 10, 32)
				if err != nil {
					return fail("attempt: %v", err)
				}
				sb.Metadata.Attempt = uint32(v)
			}
			if flags["notready"] {
				sb.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
			}
			if flags["noip"] {
				sb.Network.Ip = ""
			}
			netns := map[bool]string{false: "pod", true: "node"}[pod.Spec.HostNetwork]
			if s, ok := opts["netns"]; ok {
				netns = s
			}
			if netns == "node" {
				sb.Linux.Namespaces.Options.Network = runtimeapi.NamespaceMode_NODE
			}
			status.SandboxStatuses = append(status.SandboxStatuses, sb)
		case "ctr":
			if len(f) < 4 {
				return fail("want ctr ID NAME STATE")
			}
			cs, err := runtimeContainer(pod, f[1], f[2], f[3], created, opts, flags, in)
			if err != nil {
				return fail("%v", err)
			}
			status.ContainerStatuses = append(status.ContainerStatuses, cs)
		case "backoff":
			if len(f) != 2 {
				return fail("want backoff NAME")
			}
			backOff[f[1]] = true
		default:
			return fail("unknown directive")
		}
	}
	// Newest first, as the PLEG publishes them.
	slices.SortStableFunc(status.SandboxStatuses, func(a, b *runtimeapi.PodSandboxStatus) int { return cmp.Compare(b.CreatedAt, a.CreatedAt) })
	slices.SortStableFunc(status.ContainerStatuses, func(a, b *runtimeapi.ContainerStatus) int { return cmp.Compare(b.CreatedAt, a.CreatedAt) })
	in.BackOff = func(c *v1.Container, last *runtimeapi.ContainerStatus) (time.Duration, string) {
		if !backOff[c.Name] {
			return 0, ""
		}
		return 10 * time.Second, syncloop.CrashLoopBackOffMessage(10*time.Second, c.Name, pod.Name, pod.Namespace, pod.UID)
	}
	return pod, status, in, nil
}

func splitOpts(args []string) (map[string]string, map[string]bool) {
	opts, flags := map[string]string{}, map[string]bool{}
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			opts[k] = v
		} else {
			flags[a] = true
		}
	}
	return opts, flags
}

func specContainer(name string, opts map[string]string, flags map[string]bool) (v1.Container, error) {
	c := v1.Container{Name: name, Image: name + ":1"}
	if s, ok := opts["image"]; ok {
		c.Image = s
	}
	if s, ok := opts["restartPolicy"]; ok {
		p := v1.ContainerRestartPolicy(s)
		c.RestartPolicy = &p
	}
	probe := &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"true"}}}}
	if flags["startupProbe"] {
		c.StartupProbe = probe
	}
	if flags["livenessProbe"] {
		c.LivenessProbe = probe
	}
	if s, ok := opts["rule"]; ok {
		parts := strings.Split(s, ":")
		if len(parts) != 3 {
			return c, fmt.Errorf("rule %q: want ACTION:OP:CODES", s)
		}
		rule := v1.ContainerRestartRule{
			Action:    v1.ContainerRestartRuleAction(parts[0]),
			ExitCodes: &v1.ContainerRestartRuleOnExitCodes{Operator: v1.ContainerRestartRuleOnExitCodesOperator(parts[1])},
		}
		for _, code := range strings.Split(parts[2], ",") {
			v, err := strconv.ParseInt(code, 10, 32)
			if err != nil {
				return c, fmt.Errorf("rule %q: %v", s, err)
			}
			rule.ExitCodes.Values = append(rule.ExitCodes.Values, int32(v))
		}
		c.RestartPolicyRules = append(c.RestartPolicyRules, rule)
	}
	return c, nil
}

func runtimeContainer(pod *v1.Pod, id, name, state string, created int64, opts map[string]string, flags map[string]bool, in syncloop.PlanInput) (*runtimeapi.ContainerStatus, error) {
	states := map[string]runtimeapi.ContainerState{
		"created": runtimeapi.ContainerState_CONTAINER_CREATED,
		"running": runtimeapi.ContainerState_CONTAINER_RUNNING,
		"exited":  runtimeapi.ContainerState_CONTAINER_EXITED,
		"unknown": runtimeapi.ContainerState_CONTAINER_UNKNOWN,
	}
	st, ok := states[state]
	if !ok {
		return nil, fmt.Errorf("state %q", state)
	}
	spec := &v1.Container{Name: name, Image: name + ":1"}
	for _, list := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if list[i].Name == name {
				spec = &list[i]
			}
		}
	}
	hashed := *spec
	if flags["stale"] {
		hashed.Image = "old:0"
	}
	cs := &runtimeapi.ContainerStatus{
		Id:          id,
		Metadata:    &runtimeapi.ContainerMetadata{Name: name},
		State:       st,
		CreatedAt:   created,
		Reason:      opts["reason"],
		Labels:      map[string]string{core.LabelContainerName: name, core.LabelPodUID: string(pod.UID)},
		Annotations: map[string]string{core.AnnotationContainerHash: strconv.FormatUint(crispec.ContainerHash(&hashed), 16)},
	}
	if flags["nohash"] {
		delete(cs.Annotations, core.AnnotationContainerHash)
	}
	if st == runtimeapi.ContainerState_CONTAINER_EXITED {
		cs.FinishedAt = created + 1
	}
	if s, ok := opts["exit"]; ok {
		v, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("exit: %v", err)
		}
		cs.ExitCode = int32(v)
	}
	if s, ok := opts["restarts"]; ok {
		cs.Annotations[core.AnnotationContainerRestartCount] = s
	}
	results := map[string]syncloop.ProbeResult{"success": syncloop.ProbeSuccess, "failure": syncloop.ProbeFailure, "unknown": syncloop.ProbeUnknown}
	for key, m := range map[string]map[string]syncloop.ProbeResult{"liveness": in.Liveness, "startup": in.Startup} {
		if s, ok := opts[key]; ok {
			r, ok := results[s]
			if !ok {
				return nil, fmt.Errorf("%s=%s", key, s)
			}
			m[id] = r
		}
	}
	return cs, nil
}

// formatPlan writes a plan one action a line, in the order a driver
// carries them out.
func formatPlan(a syncloop.PodActions) string {
	var b strings.Builder
	if a.KillPod {
		b.WriteString("kill-pod\n")
	}
	switch {
	case a.CreateSandbox:
		fmt.Fprintf(&b, "create-sandbox attempt=%d", a.Attempt)
		if a.SandboxID != "" {
			fmt.Fprintf(&b, " replacing %s", a.SandboxID)
		}
		fmt.Fprintf(&b, ": %s\n", a.SandboxReason)
	case !a.KillPod:
		fmt.Fprintf(&b, "sandbox %s attempt=%d\n", a.SandboxID, a.Attempt)
	}
	for _, id := range slices.Sorted(maps.Keys(a.ContainersToKill)) {
		k := a.ContainersToKill[id]
		fmt.Fprintf(&b, "kill %s %s %s: %s\n", id, k.Name, k.Reason, k.Message)
	}
	for _, r := range a.ContainersToReset {
		fmt.Fprintf(&b, "reset %s %s", r.ID, r.Name)
		if r.Kill {
			b.WriteString(" kill")
		}
		b.WriteString("\n")
	}
	for _, i := range a.EphemeralContainersToStart {
		fmt.Fprintf(&b, "start-ephemeral %d\n", i)
	}
	start := func(kind string, s syncloop.ContainerToStart) {
		fmt.Fprintf(&b, "%s %d %s restarts=%d", kind, s.Index, s.Name, s.RestartCount)
		if s.FirstRun {
			b.WriteString(" first-run")
		}
		b.WriteString("\n")
	}
	for _, s := range a.InitContainersToStart {
		start("start-init", s)
	}
	for _, s := range a.ContainersToStart {
		start("start", s)
	}
	for _, w := range a.Waiting {
		kind := "container"
		if w.Init {
			kind = "init"
		}
		fmt.Fprintf(&b, "wait %s %d %s %s %s: %s\n", kind, w.Index, w.Name, w.Reason, w.Wait, w.Message)
	}
	if o := a.Outcome; o != nil {
		fmt.Fprintf(&b, "outcome %s %s: %s\n", o.Phase, o.Reason, o.Message)
	}
	return b.String()
}

// Plan never starts a container twice, keeps indexes in range, never
// starts anything in a pod that is done, reports an Outcome exactly when
// the pod is done, and lists every held-back container exactly once, for
// every combination of the states of a sidecar, an init container and a
// regular container under each restart policy, with and without back-off.
func TestPlanInvariants(t *testing.T) {
	states := []string{"", "running", "exited exit=0", "exited exit=1", "exited exit=137 reason=OOMKilled", "created", "unknown",
		"running stale", "running liveness=failure", "running startup=failure", "running startup=success"}
	n := 0
	for _, policy := range []string{"Always", "OnFailure", "Never"} {
		for _, backoff := range []string{"", "backoff proxy\nbackoff setup\nbackoff app\n"} {
			for _, s1 := range states {
				for _, s2 := range states {
					for _, s3 := range states {
						input := "pod restartPolicy=" + policy + "\nsidecar proxy startupProbe livenessProbe\ninit setup\ncontainer app\nsandbox sb1\n" + backoff
						for i, st := range []struct{ name, state string }{{"proxy", s1}, {"setup", s2}, {"app", s3}} {
							if st.state != "" {
								input += fmt.Sprintf("ctr c%d %s %s\n", i, st.name, st.state)
							}
						}
						pod, status, in, err := buildCase(input)
						if err != nil {
							t.Fatal(err)
						}
						asked := map[string]int{}
						held := in.BackOff
						in.BackOff = func(c *v1.Container, last *runtimeapi.ContainerStatus) (time.Duration, string) {
							asked[c.Name]++
							return held(c, last)
						}
						a := syncloop.Plan(pod, status, in)
						n++
						fail := func(what string) {
							t.Helper()
							t.Errorf("%s:\n%s----\n%s", what, input, formatPlan(a))
						}
						started := map[string]bool{}
						for _, list := range []struct {
							specs []v1.Container
							start []syncloop.ContainerToStart
						}{{pod.Spec.InitContainers, a.InitContainersToStart}, {pod.Spec.Containers, a.ContainersToStart}} {
							for _, s := range list.start {
								if s.Index < 0 || s.Index >= len(list.specs) || list.specs[s.Index].Name != s.Name {
									fail(fmt.Sprintf("bad index %d for %s", s.Index, s.Name))
								}
								if started[s.Name] {
									fail(s.Name + " started twice")
								}
								started[s.Name] = true
							}
						}
						for _, w := range a.Waiting {
							if started[w.Name] {
								fail(w.Name + " both waits and starts")
							}
							if asked[w.Name] != 1 {
								fail(fmt.Sprintf("%s waits but back-off was asked %d times", w.Name, asked[w.Name]))
							}
						}
						for name, k := range asked {
							if k != 1 {
								fail(fmt.Sprintf("back-off asked %d times about %s", k, name))
							}
						}
						done := a.KillPod && !a.CreateSandbox
						if done && len(started)+len(a.EphemeralContainersToStart)+len(a.Waiting) > 0 {
							fail("a pod that is done starts containers")
						}
						if (a.Outcome != nil) != done {
							fail("outcome without the pod being done, or the reverse")
						}
						for id, k := range a.ContainersToKill {
							if k.Reason == "" || k.Message == "" || id == "" {
								fail("kill without a reason")
							}
						}
					}
				}
			}
		}
	}
	if n != 3*2*11*11*11 {
		t.Errorf("%d combinations", n)
	}
}

func TestPlanNilStatus(t *testing.T) {
	pod := &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app", Image: "nginx"}}}}
	a := syncloop.Plan(pod, nil, syncloop.PlanInput{})
	if !a.CreateSandbox || !a.KillPod || a.Attempt != 0 || len(a.ContainersToStart) != 1 || !a.ContainersToStart[0].FirstRun {
		t.Errorf("nil status: %+v", a)
	}
}

func TestPlanHash(t *testing.T) {
	pod := &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app", Image: "nginx"}}}}
	status := &core.PodStatus{
		SandboxStatuses: []*runtimeapi.PodSandboxStatus{{Id: "sb", State: runtimeapi.PodSandboxState_SANDBOX_READY, Network: &runtimeapi.PodSandboxNetworkStatus{Ip: "10.0.0.1"}}},
		ContainerStatuses: []*runtimeapi.ContainerStatus{{
			Id: "c1", Metadata: &runtimeapi.ContainerMetadata{Name: "app"}, State: runtimeapi.ContainerState_CONTAINER_RUNNING,
			Annotations: map[string]string{core.AnnotationContainerHash: "2a"},
		}},
	}
	a := syncloop.Plan(pod, status, syncloop.PlanInput{Hash: func(*v1.Container) uint64 { return 42 }})
	if len(a.ContainersToKill) != 0 || len(a.ContainersToStart) != 0 {
		t.Errorf("hash 0x2a = 42 but the plan restarts: %+v", a)
	}
	a = syncloop.Plan(pod, status, syncloop.PlanInput{})
	if a.ContainersToKill["c1"].Reason != syncloop.KillSpecChanged {
		t.Errorf("default hash: %+v", a)
	}
}

func TestRestartBackOff(t *testing.T) {
	b, err := syncloop.NewBackOff(syncloop.BackOffConfig{})
	if err != nil {
		t.Fatal(err)
	}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u1"}}
	c := &v1.Container{Name: "app", Image: "nginx"}
	f := syncloop.RestartBackOff(b, pod)
	last := &runtimeapi.ContainerStatus{Id: "c1", FinishedAt: time.Now().UnixNano()}
	if wait, msg := f(c, last); wait != 0 || msg != "" {
		t.Fatalf("first restart: wait %v %q, want at once", wait, msg)
	}
	wait, msg := f(c, last)
	if wait <= 0 || wait > 10*time.Second {
		t.Errorf("second restart: wait %v, want up to 10s", wait)
	}
	if want := "back-off 10s restarting failed container=app pod=web_shop(u1)"; msg != want {
		t.Errorf("message %q, want %q", msg, want)
	}
	other := &v1.Container{Name: "app", Image: "nginx:2"}
	if wait, _ := f(other, last); wait != 0 {
		t.Errorf("a new image is a new key, but it waits %v", wait)
	}
}

// A pod whose init container completed and whose app crashed twice: the
// app's restart waits, the sidecar that exited is restarted at once.
func ExamplePlan() {
	always := v1.ContainerRestartPolicyAlways
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "8d1c"},
		Spec: v1.PodSpec{
			RestartPolicy:  v1.RestartPolicyAlways,
			InitContainers: []v1.Container{{Name: "setup", Image: "busybox"}, {Name: "proxy", Image: "envoy", RestartPolicy: &always}},
			Containers:     []v1.Container{{Name: "app", Image: "nginx"}},
		},
	}
	ctr := func(id, name string, state runtimeapi.ContainerState, created int64, exit int32, restarts string) *runtimeapi.ContainerStatus {
		return &runtimeapi.ContainerStatus{
			Id: id, Metadata: &runtimeapi.ContainerMetadata{Name: name}, State: state, CreatedAt: created, ExitCode: exit,
			FinishedAt:  created + 1,
			Annotations: map[string]string{core.AnnotationContainerRestartCount: restarts},
		}
	}
	status := &core.PodStatus{
		SandboxStatuses: []*runtimeapi.PodSandboxStatus{{
			Id: "sb1", State: runtimeapi.PodSandboxState_SANDBOX_READY, CreatedAt: 1,
			Metadata: &runtimeapi.PodSandboxMetadata{Attempt: 0},
			Network:  &runtimeapi.PodSandboxNetworkStatus{Ip: "10.0.0.7"},
		}},
		ContainerStatuses: []*runtimeapi.ContainerStatus{ // newest first
			ctr("c5", "app", runtimeapi.ContainerState_CONTAINER_EXITED, 50, 1, "1"),
			ctr("c4", "proxy", runtimeapi.ContainerState_CONTAINER_EXITED, 40, 137, "0"),
			ctr("c3", "app", runtimeapi.ContainerState_CONTAINER_EXITED, 30, 1, "0"),
			ctr("c2", "setup", runtimeapi.ContainerState_CONTAINER_EXITED, 20, 0, "0"),
		},
	}
	actions := syncloop.Plan(pod, status, syncloop.PlanInput{
		BackOff: func(c *v1.Container, last *runtimeapi.ContainerStatus) (time.Duration, string) {
			if c.Name != "app" {
				return 0, "" // first restart: at once
			}
			return 10 * time.Second, syncloop.CrashLoopBackOffMessage(10*time.Second, c.Name, pod.Name, pod.Namespace, pod.UID)
		},
	})
	fmt.Println("sandbox:", actions.SandboxID, "kill pod:", actions.KillPod)
	for _, s := range actions.InitContainersToStart {
		fmt.Printf("start init container %s, restart %d\n", s.Name, s.RestartCount)
	}
	for _, s := range actions.ContainersToStart {
		fmt.Printf("start container %s, restart %d\n", s.Name, s.RestartCount)
	}
	for _, w := range actions.Waiting {
		fmt.Printf("%s waits %s: %s\n", w.Name, w.Reason, w.Message)
	}
	// Output:
	// sandbox: sb1 kill pod: false
	// start init container proxy, restart 1
	// app waits CrashLoopBackOff: back-off 10s restarting failed container=app pod=web_shop(8d1c)
}
