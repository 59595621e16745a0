package imagegc_test

import (
	"context"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/nodekit/nodekit/imagegc"
	"github.com/nodekit/nodekit/runtimetest"
)

// Deciding a collection needs no runtime: the images with their times,
// those in use, and what must be freed.
func ExampleDecide() {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	plan := imagegc.Decide(imagegc.Input{
		Images: []imagegc.Image{
			{ID: "sha256:01", RepoTags: []string{"docker.io/library/nginx:1.27"}, Size: 70 << 20, FirstDetected: ago(48 * time.Hour), LastUsed: ago(time.Hour)},
			{ID: "sha256:02", RepoTags: []string{"docker.io/library/redis:7"}, Size: 40 << 20, FirstDetected: ago(24 * time.Hour)},
			{ID: "sha256:03", RepoTags: []string{"docker.io/library/app:2"}, Size: 90 << 20, FirstDetected: ago(time.Minute)},
			{ID: "sha256:04", RepoTags: []string{"docker.io/library/app:1"}, Size: 90 << 20, FirstDetected: ago(48 * time.Hour), LastUsed: now},
			{ID: "sha256:05", RepoTags: []string{"registry.k8s.io/pause:3.10"}, Size: 1 << 20, FirstDetected: ago(48 * time.Hour), Pinned: true},
		},
		InUse:       map[string]bool{"sha256:04": true},
		Now:         now,
		Policy:      imagegc.DefaultPolicy(),
		BytesToFree: 100 << 20,
	})
	fmt.Println(plan)
	// Output:
	// to free for space: 100.0 MiB; deleting 2 (0 B by age, 110.0 MiB for space), keeping 3
	//   delete docker.io/library/redis:7 (40.0 MiB): space
	//   delete docker.io/library/nginx:1.27 (70.0 MiB): space
	//   keep registry.k8s.io/pause:3.10 (1.0 MiB): pinned
	//   keep docker.io/library/app:2 (90.0 MiB): younger than the minimum age
	//   keep docker.io/library/app:1 (90.0 MiB): in use
}

// The thresholds turn a measured filesystem into bytes to free.
func ExampleSpaceToFree() {
	fs := imagegc.FsStats{CapacityBytes: 100 << 30, AvailableBytes: 10 << 30}
	usage, over, bytes := imagegc.SpaceToFree(fs, imagegc.DefaultPolicy())
	fmt.Printf("%d%% used, over the high threshold: %v, to free: %s\n", usage, over, imagegc.FormatSize(bytes))
	// Output:
	// 90% used, over the high threshold: true, to free: 10.0 GiB
}

// A collector over a runtime: the eviction manager's reclaim removes
// every image nothing uses, once it is older than the minimum age.
func ExampleGC_DeleteUnusedImages() {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	rt, _ := runtimetest.New(runtimetest.Config{Clock: clk, Images: []string{"busybox", "nginx:1.27", "registry.k8s.io/pause:3.10"}})
	ctx := context.Background()
	sb, _ := rt.RunPodSandbox(ctx, &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "1"}}, "")
	ctr, _ := rt.CreateContainer(ctx, sb, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "web"},
		Image: &runtimeapi.ImageSpec{Image: "nginx:1.27"}}, nil)
	_ = rt.StartContainer(ctx, ctr)

	gc, err := imagegc.New(imagegc.Config{Images: rt, Containers: rt, ImageFs: rt, Clock: clk,
		PinnedImages: []string{"registry.k8s.io/pause:3.10"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, _, _ = gc.Detect(ctx) // what the periodic detection does: busybox is first seen now
	_ = gc.DeleteUnusedImages(ctx)
	res, _ := gc.Last()
	fmt.Println("at once:", res)

	clk.Step(imagegc.DefaultMinAge)
	_ = gc.DeleteUnusedImages(ctx)
	res, _ = gc.Last()
	fmt.Println("2 minutes later:", res)
	// Output:
	// at once: deleted 0 images, freed 0 B
	// 2 minutes later: deleted 1 images, freed 4.0 MiB; docker.io/library/busybox:latest space
}

// A periodic collection measures the image filesystem and frees down to
// the low threshold only above the high one.
func ExampleGC_GarbageCollect() {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	rt, _ := runtimetest.New(runtimetest.Config{Clock: clk})
	ctx := context.Background()
	gc, _ := imagegc.New(imagegc.Config{Images: rt, Containers: rt, ImageFs: rt, Clock: clk,
		// A 64 MiB filesystem holding the runtime's images.
		Statfs: func(string) (imagegc.FsStats, error) {
			info, err := rt.ImageFsInfo(ctx)
			if err != nil {
				return imagegc.FsStats{}, err
			}
			used := info.GetImageFilesystems()[0].GetUsedBytes().GetValue()
			return imagegc.FsStats{CapacityBytes: 64 << 20, AvailableBytes: 64<<20 - used}, nil
		},
	})
	_ = rt.AddImage("docker.io/library/old:1", 30<<20)
	res, err := gc.GarbageCollect(ctx)
	fmt.Println(res, err)

	clk.Step(10 * time.Minute)
	_ = rt.AddImage("docker.io/library/new:1", 30<<20) // just pulled: younger than MinAge
	res, err = gc.GarbageCollect(ctx)
	fmt.Println(res, err)
	// Output:
	// deleted 0 images, freed 0 B (usage 47%) <nil>
	// deleted 1 images, freed 30.0 MiB (usage 94%, 8.8 MiB to free); docker.io/library/old:1 space <nil>
}
