package runtimetest_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/runtimetest"
)

func TestContainerStats(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	sbID, sb := e.runSandbox("web")
	cfg := containerConfig("app", "sleep", "60")
	cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 100 << 20}
	id := e.create(sbID, sb, cfg)
	idle := e.create(sbID, sb, containerConfig("idle"))
	if err := e.rt.StartContainer(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.SetUsage(id, runtimetest.Usage{
		CPUNanoCores: 500_000_000, MemoryWorkingSetBytes: 40 << 20, MemoryUsageBytes: 50 << 20, MemoryRSSBytes: 30 << 20,
		WritableLayerBytes: 1 << 20, WritableLayerInodes: 10,
	}); err != nil {
		t.Fatal(err)
	}
	e.clk.Step(10 * time.Second)
	stats, err := e.rt.ListContainerStats(e.ctx, &runtimeapi.ContainerStatsFilter{Id: id})
	if err != nil || len(stats) != 1 {
		t.Fatalf("ListContainerStats: %v, %v", stats, err)
	}
	s := stats[0]
	if s.Attributes.Id != id || s.Attributes.Metadata.Name != "app" || s.Attributes.Labels[core.LabelContainerName] != "app" {
		t.Errorf("attributes %+v", s.Attributes)
	}
	// Half a core for ten seconds.
	if got := s.GetCpu().GetUsageCoreNanoSeconds().GetValue(); got != uint64(5*time.Second) {
		t.Errorf("CPU %d core-ns, want %d", got, uint64(5*time.Second))
	}
	if s.GetCpu().GetUsageNanoCores().GetValue() != 500_000_000 || s.GetCpu().Timestamp != epoch.Add(10*time.Second).UnixNano() {
		t.Errorf("CPU %+v", s.Cpu)
	}
	m := s.GetMemory()
	if m.GetWorkingSetBytes().GetValue() != 40<<20 || m.GetUsageBytes().GetValue() != 50<<20 || m.GetRssBytes().GetValue() != 30<<20 ||
		m.GetAvailableBytes().GetValue() != 60<<20 {
		t.Errorf("memory %+v", m)
	}
	if w := s.GetWritableLayer(); w.GetUsedBytes().GetValue() != 1<<20 || w.GetInodesUsed().GetValue() != 10 || w.GetFsId().GetMountpoint() == "" {
		t.Errorf("writable layer %+v", w)
	}

	// The rate changes; usage accumulates until the container exits.
	if err := e.rt.SetUsage(id, runtimetest.Usage{CPUNanoCores: 2_000_000_000}); err != nil {
		t.Fatal(err)
	}
	e.clk.Step(time.Hour) // it exits 50 s later
	stats, _ = e.rt.ListContainerStats(e.ctx, &runtimeapi.ContainerStatsFilter{PodSandboxId: sbID})
	if len(stats) != 2 || stats[0].Cpu != nil || stats[0].Memory != nil || stats[0].WritableLayer == nil || stats[1].Attributes.Id != idle {
		t.Fatalf("stats of an exited and a created container: %v", stats)
	}
	sandboxStats, err := e.rt.ListPodSandboxStats(e.ctx, nil)
	if err != nil || len(sandboxStats) != 1 {
		t.Fatalf("ListPodSandboxStats: %v, %v", sandboxStats, err)
	}
	ps := sandboxStats[0]
	if got, want := ps.GetLinux().GetCpu().GetUsageCoreNanoSeconds().GetValue(), uint64(105*time.Second); got != want {
		t.Errorf("pod CPU %d, want %d", got, want)
	}
	if ps.GetAttributes().GetId() != sbID || len(ps.GetLinux().GetContainers()) != 2 || ps.GetLinux().GetProcess().GetProcessCount().GetValue() != 1 {
		t.Errorf("pod stats %+v", ps)
	}
}

func TestPodSandboxStatsSumRunningContainers(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	sbID, sb := e.runSandbox("web")
	for _, name := range []string{"a", "b"} {
		id := e.create(sbID, sb, containerConfig(name))
		if err := e.rt.StartContainer(e.ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := e.rt.SetUsage(id, runtimetest.Usage{CPUNanoCores: 100, MemoryWorkingSetBytes: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	other, _ := e.runSandbox("other")
	if err := e.rt.StopPodSandbox(e.ctx, other); err != nil {
		t.Fatal(err)
	}
	stats, _ := e.rt.ListPodSandboxStats(e.ctx, &runtimeapi.PodSandboxStatsFilter{LabelSelector: map[string]string{"app": "web"}})
	if len(stats) != 1 {
		t.Fatalf("%d sandboxes, want the ready one", len(stats))
	}
	l := stats[0].GetLinux()
	if l.GetMemory().GetWorkingSetBytes().GetValue() != 2000 || l.GetCpu().GetUsageNanoCores().GetValue() != 200 || l.GetProcess().GetProcessCount().GetValue() != 3 {
		t.Errorf("pod stats %+v", l)
	}
	if stats, _ := e.rt.ListPodSandboxStats(e.ctx, &runtimeapi.PodSandboxStatsFilter{Id: other}); len(stats) != 0 {
		t.Errorf("stats of a stopped sandbox: %v", stats)
	}
}

func TestImageFsInfo(t *testing.T) {
	e := newEnv(t, runtimetest.Config{})
	if err := e.rt.AddImage("app:v1", 10<<20); err != nil {
		t.Fatal(err)
	}
	id := e.start(containerConfig("app"))
	if err := e.rt.SetUsage(id, runtimetest.Usage{WritableLayerBytes: 1 << 20, WritableLayerInodes: 7}); err != nil {
		t.Fatal(err)
	}
	fs := func() *runtimeapi.FilesystemUsage {
		resp, err := e.rt.ImageFsInfo(e.ctx)
		if err != nil || len(resp.GetImageFilesystems()) != 1 {
			t.Fatalf("ImageFsInfo: %v, %v", resp, err)
		}
		return resp.GetImageFilesystems()[0]
	}
	if got := fs(); got.GetUsedBytes().GetValue() != runtimetest.DefaultImageSize+10<<20+1<<20 || got.GetInodesUsed().GetValue() != 7 {
		t.Errorf("computed usage %+v", got)
	}
	e.rt.SetImageFsUsage(90<<30, 1e6)
	if got := fs(); got.GetUsedBytes().GetValue() != 90<<30 || got.GetInodesUsed().GetValue() != 1e6 {
		t.Errorf("fixed usage %+v", got)
	}
}

func TestImages(t *testing.T) {
	e := newEnv(t, runtimetest.Config{Images: []string{"busybox"}, PullableImages: []string{"registry.example.com/team/app:v2"}})
	status := func(ref string) *runtimeapi.Image {
		t.Helper()
		resp, err := e.rt.ImageStatus(e.ctx, &runtimeapi.ImageSpec{Image: ref}, false)
		if err != nil {
			t.Fatalf("ImageStatus %s: %v", ref, err)
		}
		return resp.GetImage()
	}
	img := status("docker.io/library/busybox:latest")
	if img == nil || len(img.RepoTags) != 1 || img.RepoTags[0] != "docker.io/library/busybox:latest" ||
		len(img.RepoDigests) != 1 || img.Size != runtimetest.DefaultImageSize {
		t.Fatalf("busybox %+v", img)
	}
	for _, ref := range []string{"busybox", "busybox:latest", "library/busybox", img.Id, img.Id[len("sha256:"):], img.RepoDigests[0]} {
		if got := status(ref); got == nil || got.Id != img.Id {
			t.Errorf("ImageStatus(%q) = %v, want busybox", ref, got)
		}
	}
	if got := status("busybox:1.36"); got != nil {
		t.Errorf("another tag: %v", got)
	}

	if _, err := e.rt.PullImage(e.ctx, &runtimeapi.ImageSpec{Image: "nothing:v1"}, nil, nil); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("pull of an image not in the registry: %v, want core.ErrNotFound", err)
	}
	ref, err := e.rt.PullImage(e.ctx, &runtimeapi.ImageSpec{Image: "registry.example.com/team/app:v2"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := status("registry.example.com/team/app:v2"); got == nil || got.Id != ref {
		t.Errorf("pulled image %v, want ID %s", got, ref)
	}
	list, _ := e.rt.ListImages(e.ctx, nil)
	if len(list) != 2 {
		t.Errorf("ListImages: %d images, want 2", len(list))
	}
	list, _ = e.rt.ListImages(e.ctx, &runtimeapi.ImageFilter{Image: &runtimeapi.ImageSpec{Image: "busybox"}})
	if len(list) != 1 || list[0].Id != img.Id {
		t.Errorf("ListImages by reference: %v", list)
	}

	// A container made from the image ID, as the kubelet does.
	sbID, sb := e.runSandbox("web")
	cfg := containerConfig("app")
	cfg.Image = &runtimeapi.ImageSpec{Image: ref, UserSpecifiedImage: "registry.example.com/team/app:v2"}
	id := e.create(sbID, sb, cfg)
	if st := e.status(id); st.Image.Image != "registry.example.com/team/app:v2" || !strings.HasPrefix(st.ImageRef, "registry.example.com/team/app@sha256:") || st.ImageId != ref {
		t.Errorf("status image %q ref %q id %q", st.Image.Image, st.ImageRef, st.ImageId)
	}
	if err := e.rt.RemoveImage(e.ctx, &runtimeapi.ImageSpec{Image: ref}); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.RemoveImage(e.ctx, &runtimeapi.ImageSpec{Image: ref}); err != nil {
		t.Errorf("removing an absent image: %v", err)
	}
	if got := status("registry.example.com/team/app:v2"); got != nil {
		t.Errorf("removed image still present: %v", got)
	}
	// Without its image, the status names the image as the container was made.
	if st := e.status(id); st.Image.Image != ref || st.ImageRef != ref {
		t.Errorf("status image %q ref %q after the image was removed", st.Image.Image, st.ImageRef)
	}
	if err := e.rt.AddImage("Bad:Ref", 1); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("AddImage of a bad reference: %v, want core.ErrInvalid", err)
	}
}
