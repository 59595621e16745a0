package runtimetest_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/runtimetest"
)

var hexID = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestNewDefaults(t *testing.T) {
	rt, err := runtimetest.New(runtimetest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v, err := rt.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.RuntimeName != runtimetest.DefaultRuntimeName || v.RuntimeVersion != runtimetest.DefaultVersion || v.RuntimeApiVersion != "v1" {
		t.Errorf("Version: %+v", v)
	}
	st, err := rt.Status(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.GetStatus().GetConditions() {
		if !c.Status {
			t.Errorf("condition %s is false", c.Type)
		}
	}
	if len(st.GetStatus().GetConditions()) != 2 {
		t.Errorf("conditions %v, want RuntimeReady and NetworkReady", st.GetStatus().GetConditions())
	}
	if err := rt.GetContainerEvents(ctx, make(chan *runtimeapi.ContainerEventResponse), nil); !errors.Is(err, core.ErrUnimplemented) {
		t.Errorf("GetContainerEvents without Config.Events: %v, want core.ErrUnimplemented", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []runtimetest.Config{
		{Images: []string{"Busybox"}},
		{PullableImages: []string{"busybox:"}},
		{EventBuffer: -1},
	} {
		if _, err := runtimetest.New(cfg); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("New(%+v): %v, want core.ErrInvalid", cfg, err)
		}
	}
}

func TestSandboxLifecycle(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	cfg := sandboxConfig("web", false)
	id, err := e.rt.RunPodSandbox(e.ctx, cfg, "runc")
	if err != nil {
		t.Fatal(err)
	}
	if !hexID.MatchString(id) {
		t.Errorf("sandbox ID %q is not 64 hex digits", id)
	}
	if _, err := e.rt.RunPodSandbox(e.ctx, sandboxConfig("web", false), ""); !errors.Is(err, core.ErrAlreadyExists) {
		t.Errorf("second sandbox with the same name and attempt: %v, want core.ErrAlreadyExists", err)
	}
	cfg.Labels["app"] = "changed after the call" // the runtime kept a copy

	resp, err := e.rt.PodSandboxStatus(e.ctx, id[:12], false)
	if err != nil {
		t.Fatalf("PodSandboxStatus by prefix: %v", err)
	}
	st := resp.GetStatus()
	if st.Id != id || st.State != runtimeapi.PodSandboxState_SANDBOX_READY || st.CreatedAt != epoch.UnixNano() || st.RuntimeHandler != "runc" {
		t.Errorf("status %+v", st)
	}
	if st.Metadata.Name != "web" || st.Metadata.Namespace != "ns" || st.Metadata.Uid != "uid-web" {
		t.Errorf("metadata %+v", st.Metadata)
	}
	if st.Labels["app"] != "web" || st.Annotations["note"] != "kept" {
		t.Errorf("labels %v annotations %v", st.Labels, st.Annotations)
	}
	if !strings.HasPrefix(st.GetNetwork().GetIp(), "10.88.") {
		t.Errorf("pod-network sandbox IP %q, want one in 10.88.0.0/16", st.GetNetwork().GetIp())
	}
	if got := st.GetLinux().GetNamespaces().GetOptions(); got.Network != runtimeapi.NamespaceMode_POD || got.Pid != runtimeapi.NamespaceMode_CONTAINER {
		t.Errorf("namespace options %+v", got)
	}

	e.clk.Step(time.Minute)
	if err := e.rt.StopPodSandbox(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.StopPodSandbox(e.ctx, id); err != nil {
		t.Errorf("second stop: %v", err)
	}
	resp, err = e.rt.PodSandboxStatus(e.ctx, id, false)
	if err != nil || resp.GetStatus().GetState() != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("after stop: %v, %v; want SANDBOX_NOTREADY", resp.GetStatus().GetState(), err)
	}
	if err := e.rt.RemovePodSandbox(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.RemovePodSandbox(e.ctx, id); err != nil {
		t.Errorf("second remove: %v", err)
	}
	if _, err := e.rt.PodSandboxStatus(e.ctx, id, false); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("status of a removed sandbox: %v, want core.ErrNotFound", err)
	}
	if _, err := e.rt.RunPodSandbox(e.ctx, sandboxConfig("web", false), ""); err != nil {
		t.Errorf("the name is free again after removal: %v", err)
	}
}

func TestHostNetworkSandboxHasNoAddress(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	id, err := e.rt.RunPodSandbox(e.ctx, sandboxConfig("host", true), "")
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := e.rt.PodSandboxStatus(e.ctx, id, false)
	if ip := resp.GetStatus().GetNetwork().GetIp(); ip != "" {
		t.Errorf("host-network sandbox IP %q, want none", ip)
	}
	if got := resp.GetStatus().GetLinux().GetNamespaces().GetOptions().GetNetwork(); got != runtimeapi.NamespaceMode_NODE {
		t.Errorf("network mode %s, want NODE", got)
	}
}

func TestSandboxAddressesAreUnique(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	seen := map[string]bool{}
	for i := range 300 {
		id, _ := e.runSandbox(fmt.Sprint("p", i))
		resp, _ := e.rt.PodSandboxStatus(e.ctx, id, false)
		ip := resp.GetStatus().GetNetwork().GetIp()
		if seen[ip] {
			t.Fatalf("address %s given twice", ip)
		}
		seen[ip] = true
	}
}

func TestNetworkNotReady(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	e.rt.SetCondition(runtimeapi.NetworkReady, false, "NetworkPluginNotReady", "cni config uninitialized")
	st, _ := e.rt.Status(e.ctx, false)
	for _, c := range st.GetStatus().GetConditions() {
		if c.Type == runtimeapi.NetworkReady && (c.Status || c.Reason != "NetworkPluginNotReady") {
			t.Errorf("NetworkReady %+v", c)
		}
	}
	if _, err := e.rt.RunPodSandbox(e.ctx, sandboxConfig("pod", false), ""); !errors.Is(err, core.ErrUnavailable) {
		t.Errorf("pod-network sandbox without network: %v, want core.ErrUnavailable", err)
	}
	if _, err := e.rt.RunPodSandbox(e.ctx, sandboxConfig("host", true), ""); err != nil {
		t.Errorf("host-network sandbox without network: %v", err)
	}
	e.rt.SetCondition(runtimeapi.NetworkReady, true, "", "")
	if _, err := e.rt.RunPodSandbox(e.ctx, sandboxConfig("pod", false), ""); err != nil {
		t.Errorf("pod-network sandbox once the network is ready: %v", err)
	}
}

func TestContainerLifecycle(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	sbID, sb := e.runSandbox("web")
	cfg := containerConfig("app", "sleep", "infinity")
	cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "/var/lib/data", Readonly: true}}
	cfg.Annotations = map[string]string{core.AnnotationContainerHash: "abc"}
	cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{CpuShares: 512, MemoryLimitInBytes: 64 << 20}
	id := e.create(sbID, sb, cfg)
	if !hexID.MatchString(id) {
		t.Errorf("container ID %q is not 64 hex digits", id)
	}
	if _, err := e.rt.CreateContainer(e.ctx, sbID, cfg, sb); !errors.Is(err, core.ErrAlreadyExists) {
		t.Errorf("same name and attempt: %v, want core.ErrAlreadyExists", err)
	}
	st := e.wantState(id, runtimeapi.ContainerState_CONTAINER_CREATED, 0, "")
	if st.CreatedAt != epoch.UnixNano() || st.StartedAt != 0 {
		t.Errorf("created %d started %d", st.CreatedAt, st.StartedAt)
	}

	e.clk.Step(time.Second)
	if err := e.rt.StartContainer(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	st = e.wantState(id, runtimeapi.ContainerState_CONTAINER_RUNNING, 0, "")
	if st.StartedAt != epoch.Add(time.Second).UnixNano() {
		t.Errorf("started at %d", st.StartedAt)
	}
	if st.Metadata.Name != "app" || st.Labels[core.LabelContainerName] != "app" || st.Annotations[core.AnnotationContainerHash] != "abc" {
		t.Errorf("metadata %+v labels %v annotations %v", st.Metadata, st.Labels, st.Annotations)
	}
	if st.LogPath != "/var/log/pods/web/app/0.log" {
		t.Errorf("log path %q", st.LogPath)
	}
	if len(st.Mounts) != 1 || st.Mounts[0].ContainerPath != "/data" || !st.Mounts[0].Readonly {
		t.Errorf("mounts %v", st.Mounts)
	}
	if l := st.GetResources().GetLinux(); l.GetCpuShares() != 512 || l.GetMemoryLimitInBytes() != 64<<20 {
		t.Errorf("resources %v", st.GetResources())
	}
	if st.Image.GetImage() != busybox || !strings.HasPrefix(st.ImageRef, "localhost/busybox@sha256:") || !strings.HasPrefix(st.ImageId, "sha256:") {
		t.Errorf("image %q ref %q id %q", st.Image.GetImage(), st.ImageRef, st.ImageId)
	}
	if err := e.rt.StartContainer(e.ctx, id); err == nil {
		t.Error("starting a running container succeeded")
	}

	e.clk.Step(time.Second)
	if err := e.rt.StopContainer(e.ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	st = e.wantState(id, runtimeapi.ContainerState_CONTAINER_EXITED, 137, "Error")
	if st.FinishedAt != epoch.Add(2*time.Second).UnixNano() {
		t.Errorf("finished at %d", st.FinishedAt)
	}
	if err := e.rt.StopContainer(e.ctx, id, 10); err != nil {
		t.Errorf("stopping an exited container: %v", err)
	}
	if err := e.rt.StartContainer(e.ctx, id); err == nil {
		t.Error("starting an exited container succeeded")
	}
	if err := e.rt.RemoveContainer(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.ContainerStatus(e.ctx, id, false); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("status of a removed container: %v, want core.ErrNotFound", err)
	}
	if _, err := e.rt.CreateContainer(e.ctx, sbID, cfg, sb); err != nil {
		t.Errorf("the name is free again after removal: %v", err)
	}
}

func TestCreateContainerErrors(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	sbID, sb := e.runSandbox("web")
	ghost := containerConfig("ghost")
	ghost.Image.Image = "example.com/nothing:v1"
	_, err := e.rt.CreateContainer(e.ctx, sbID, ghost, sb)
	if !errors.Is(err, core.ErrNotFound) {
		t.Errorf("unknown image: %v, want core.ErrNotFound", err)
	}
	for _, part := range []string{"ghost", "ns/web", "example.com/nothing:v1"} {
		if err != nil && !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not name %q", err, part)
		}
	}
	if _, err := e.rt.CreateContainer(e.ctx, strings.Repeat("0", 64), containerConfig("app"), sb); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("unknown sandbox: %v, want core.ErrNotFound", err)
	}
	if _, err := e.rt.CreateContainer(e.ctx, sbID, &runtimeapi.ContainerConfig{}, sb); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("no metadata: %v, want core.ErrInvalid", err)
	}
	if _, err := e.rt.RunPodSandbox(e.ctx, &runtimeapi.PodSandboxConfig{}, ""); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("sandbox without metadata: %v, want core.ErrInvalid", err)
	}
	created := e.create(sbID, sb, containerConfig("early"))
	if err := e.rt.StopPodSandbox(e.ctx, sbID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.CreateContainer(e.ctx, sbID, containerConfig("late"), sb); err == nil {
		t.Error("creating a container in a stopped sandbox succeeded")
	}
	if err := e.rt.StartContainer(e.ctx, created); err == nil {
		t.Error("starting a container of a stopped sandbox succeeded")
	}
}

func TestUnknownIDs(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	unknown := strings.Repeat("ab", 32)
	notFound := map[string]error{}
	_, notFound["ContainerStatus"] = e.rt.ContainerStatus(e.ctx, unknown, false)
	_, notFound["PodSandboxStatus"] = e.rt.PodSandboxStatus(e.ctx, unknown, false)
	notFound["StartContainer"] = e.rt.StartContainer(e.ctx, unknown)
	notFound["StopContainer"] = e.rt.StopContainer(e.ctx, unknown, 10)
	notFound["StopPodSandbox"] = e.rt.StopPodSandbox(e.ctx, unknown)
	notFound["UpdateContainerResources"] = e.rt.UpdateContainerResources(e.ctx, unknown, &runtimeapi.ContainerResources{})
	_, notFound["ExecSync"] = e.rt.ExecSync(e.ctx, unknown, []string{"true"}, 0)
	notFound["SetUsage"] = e.rt.SetUsage(unknown, runtimetest.Usage{})
	notFound["ExitContainer"] = e.rt.ExitContainer(unknown, runtimetest.Exit{})
	for call, err := range notFound {
		if !errors.Is(err, core.ErrNotFound) {
			t.Errorf("%s: %v, want core.ErrNotFound", call, err)
		}
	}
	if err := e.rt.RemoveContainer(e.ctx, unknown); err != nil {
		t.Errorf("RemoveContainer: %v, want success", err)
	}
	if err := e.rt.RemovePodSandbox(e.ctx, unknown); err != nil {
		t.Errorf("RemovePodSandbox: %v, want success", err)
	}
}

func TestIDPrefixes(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	sbID, sb := e.runSandbox("web")
	// Among 17 IDs two share their first hex digit.
	byFirst := map[byte][]string{}
	for i := range 17 {
		id := e.create(sbID, sb, containerConfig(fmt.Sprint("c", i)))
		byFirst[id[0]] = append(byFirst[id[0]], id)
	}
	for first, ids := range byFirst {
		if len(ids) > 1 {
			if _, err := e.rt.ContainerStatus(e.ctx, string(first), false); !errors.Is(err, core.ErrInvalid) {
				t.Errorf("ambiguous prefix %q: %v, want core.ErrInvalid", first, err)
			}
			continue
		}
		if st := e.status(string(first)); st.Id != ids[0] {
			t.Errorf("prefix %q resolved to %s, want %s", first, st.Id, ids[0])
		}
	}
}

func TestListFilters(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	sb1, cfg1 := e.runSandbox("one")
	sb2, cfg2 := e.runSandbox("two")
	a := e.create(sb1, cfg1, containerConfig("a"))
	b := e.create(sb1, cfg1, containerConfig("b"))
	c := e.create(sb2, cfg2, containerConfig("c"))
	if err := e.rt.StartContainer(e.ctx, b); err != nil {
		t.Fatal(err)
	}
	running := &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}
	created := &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_CREATED}
	for _, tc := range []struct {
		name   string
		filter *runtimeapi.ContainerFilter
		want   []string
	}{
		{"nil", nil, []string{a, b, c}},
		{"empty", &runtimeapi.ContainerFilter{}, []string{a, b, c}},
		{"id", &runtimeapi.ContainerFilter{Id: b}, []string{b}},
		{"id prefix", &runtimeapi.ContainerFilter{Id: c[:10]}, []string{c}},
		{"unknown id", &runtimeapi.ContainerFilter{Id: "zz"}, nil},
		{"sandbox", &runtimeapi.ContainerFilter{PodSandboxId: sb1}, []string{a, b}},
		{"sandbox prefix", &runtimeapi.ContainerFilter{PodSandboxId: sb2[:10]}, []string{c}},
		{"unknown sandbox", &runtimeapi.ContainerFilter{PodSandboxId: "zz"}, nil},
		{"id in another sandbox", &runtimeapi.ContainerFilter{Id: c, PodSandboxId: sb1}, nil},
		{"running", &runtimeapi.ContainerFilter{State: running}, []string{b}},
		{"created in sandbox", &runtimeapi.ContainerFilter{PodSandboxId: sb1, State: created}, []string{a}},
		{"label", &runtimeapi.ContainerFilter{LabelSelector: map[string]string{core.LabelContainerName: "c"}}, []string{c}},
		{"labels that no container has", &runtimeapi.ContainerFilter{LabelSelector: map[string]string{core.LabelContainerName: "c", "x": "y"}}, nil},
	} {
		list, err := e.rt.ListContainers(e.ctx, tc.filter)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got []string
		for _, ctr := range list {
			got = append(got, ctr.Id)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}

	list, _ := e.rt.ListContainers(e.ctx, &runtimeapi.ContainerFilter{Id: b})
	got := list[0]
	if got.PodSandboxId != sb1 || got.Metadata.Name != "b" || got.State != runtimeapi.ContainerState_CONTAINER_RUNNING ||
		got.Image.Image != busybox || !strings.HasPrefix(got.ImageRef, "sha256:") || got.CreatedAt != epoch.UnixNano() ||
		got.Labels[core.LabelContainerName] != "b" {
		t.Errorf("listed container %+v", got)
	}

	if err := e.rt.StopPodSandbox(e.ctx, sb2); err != nil {
		t.Fatal(err)
	}
	notReady := &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}
	for _, tc := range []struct {
		name   string
		filter *runtimeapi.PodSandboxFilter
		want   []string
	}{
		{"nil", nil, []string{sb1, sb2}},
		{"id", &runtimeapi.PodSandboxFilter{Id: sb2}, []string{sb2}},
		{"unknown id", &runtimeapi.PodSandboxFilter{Id: "zz"}, nil},
		{"not ready", &runtimeapi.PodSandboxFilter{State: notReady}, []string{sb2}},
		{"label", &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"app": "one"}}, []string{sb1}},
	} {
		list, err := e.rt.ListPodSandbox(e.ctx, tc.filter)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got []string
		for _, s := range list {
			got = append(got, s.Id)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("sandboxes %s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	sandboxes, _ := e.rt.ListPodSandbox(e.ctx, &runtimeapi.PodSandboxFilter{Id: sb1})
	if s := sandboxes[0]; s.Metadata.Name != "one" || s.State != runtimeapi.PodSandboxState_SANDBOX_READY || s.Labels["app"] != "one" || s.Annotations["note"] != "kept" || s.CreatedAt == 0 {
		t.Errorf("listed sandbox %+v", s)
	}
}

func TestStopSandboxKillsItsContainers(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	sbID, sb := e.runSandbox("web")
	running := e.create(sbID, sb, containerConfig("running", "sleep", "infinity"))
	created := e.create(sbID, sb, containerConfig("created"))
	if err := e.rt.StartContainer(e.ctx, running); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.StopPodSandbox(e.ctx, sbID); err != nil {
		t.Fatal(err)
	}
	e.wantState(running, runtimeapi.ContainerState_CONTAINER_EXITED, 137, "Error")
	// As in containerd, a container that never started stays created.
	e.wantState(created, runtimeapi.ContainerState_CONTAINER_CREATED, 0, "")

	if err := e.rt.RemovePodSandbox(e.ctx, sbID); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{running, created} {
		if _, err := e.rt.ContainerStatus(e.ctx, id, false); !errors.Is(err, core.ErrNotFound) {
			t.Errorf("container of a removed sandbox: %v, want core.ErrNotFound", err)
		}
	}
}

func TestRemoveStopsWhatRuns(t *testing.T) {
	e := newEnv(t, runtimetest.Config{Events: true})
	events := e.subscribe()
	id := e.start(containerConfig("app", "sleep", "infinity"))
	sandboxID := e.sandboxOf(id)
	e.expect(events, sandboxID, "CREATED", sandboxID, "STARTED", id, "CREATED", id, "STARTED")

	// Removing a ready sandbox stops it and removes its running container.
	if err := e.rt.RemovePodSandbox(e.ctx, sandboxID); err != nil {
		t.Fatal(err)
	}
	e.expect(events, id, "STOPPED", sandboxID, "STOPPED", id, "DELETED", sandboxID, "DELETED")

	// Removing a running container kills it first.
	id = e.start(containerConfig("other", "sleep", "infinity"))
	if err := e.rt.RemoveContainer(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	e.skip(events, 4)
	e.expect(events, id, "STOPPED", id, "DELETED")
}

func TestUpdateContainerResources(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	cfg := containerConfig("app")
	cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000, MemoryLimitInBytes: 64 << 20, OomScoreAdj: 100}
	id := e.start(cfg)
	err := e.rt.UpdateContainerResources(e.ctx, id, &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{
		CpuShares: 1024, CpusetCpus: "0-1", OomScoreAdj: -1000, Unified: map[string]string{"memory.high": "1G"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := e.status(id).GetResources().GetLinux()
	// As containerd: zero fields keep their value, the OOM score stays.
	if got.CpuShares != 1024 || got.CpusetCpus != "0-1" || got.CpuQuota != 50000 || got.CpuPeriod != 100000 ||
		got.MemoryLimitInBytes != 64<<20 || got.OomScoreAdj != 100 || got.Unified["memory.high"] != "1G" {
		t.Errorf("resources after update: %+v", got)
	}
}

func TestResultsAreFreshCopies(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	cfg := containerConfig("app")
	cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data"}}
	cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{CpuShares: 2}
	id := e.start(cfg)
	cfg.Labels[core.LabelContainerName] = "mutated"
	cfg.Mounts[0].ContainerPath = "/mutated"
	cfg.Linux.Resources.CpuShares = 3

	list, _ := e.rt.ListContainers(e.ctx, nil)
	list[0].Labels[core.LabelContainerName] = "mutated"
	list[0].Metadata.Name = "mutated"
	list[0].Image.Image = "mutated"
	st := e.status(id)
	st.Labels[core.LabelContainerName] = "mutated"
	st.Mounts[0].ContainerPath = "/mutated"
	st.Resources.Linux.CpuShares = 4
	sandboxes, _ := e.rt.ListPodSandbox(e.ctx, nil)
	sandboxes[0].Labels["app"] = "mutated"
	sandboxes[0].Metadata.Name = "mutated"

	st = e.status(id)
	if st.Labels[core.LabelContainerName] != "app" || st.Metadata.Name != "app" || st.Mounts[0].ContainerPath != "/data" || st.Resources.Linux.CpuShares != 2 {
		t.Errorf("the runtime's state changed with a caller's objects: %+v", st)
	}
	list, _ = e.rt.ListContainers(e.ctx, nil)
	if list[0].Labels[core.LabelContainerName] != "app" || list[0].Image.Image != busybox {
		t.Errorf("listed %+v", list[0])
	}
	sandboxes, _ = e.rt.ListPodSandbox(e.ctx, nil)
	if sandboxes[0].Labels["app"] != "pod-app" || sandboxes[0].Metadata.Name != "pod-app" {
		t.Errorf("listed sandbox %+v", sandboxes[0])
	}
}

// Many callers at once: run with -race.
func TestConcurrentCalls(t *testing.T) {
	e := newEnv(t, runtimetest.Config{Events: true})
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	events := make(chan *runtimeapi.ContainerEventResponse, 1)
	streamDone := async(func() error { return e.rt.GetContainerEvents(ctx, events, nil) })
	go func() {
		for range events {
		}
	}()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			sbID, sb := e.runSandbox(fmt.Sprint("w", w))
			for i := range 20 {
				id := e.create(sbID, sb, containerConfig(fmt.Sprint("c", i), "sleep", "1"))
				if err := e.rt.StartContainer(e.ctx, id); err != nil {
					t.Error(err)
				}
				if _, err := e.rt.ListContainers(e.ctx, nil); err != nil {
					t.Error(err)
				}
				if _, err := e.rt.ListContainerStats(e.ctx, nil); err != nil {
					t.Error(err)
				}
				if err := e.rt.StopContainer(e.ctx, id, 0); err != nil {
					t.Error(err)
				}
			}
			if err := e.rt.RemovePodSandbox(e.ctx, sbID); err != nil {
				t.Error(err)
			}
		})
		go e.clk.Step(time.Second)
	}
	wg.Wait()
	cancel()
	if err := e.result(streamDone); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, core.ErrUnavailable) {
		t.Errorf("event stream: %v", err)
	}
	if list, _ := e.rt.ListContainers(e.ctx, nil); len(list) != 0 {
		t.Errorf("%d containers left", len(list))
	}
}
