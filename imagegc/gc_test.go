package imagegc_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/imagegc"
	"github.com/nodekit/nodekit/runtimetest"
)

const mi = 1 << 20

// imageFsMount is where the simulated runtime says its images are.
const imageFsMount = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs"

// simFs measures the simulated runtime's image filesystem as a
// filesystem of capacity bytes holding its images and writable layers.
func simFs(t *testing.T, rt *runtimetest.Runtime, capacity uint64) func(string) (imagegc.FsStats, error) {
	return func(path string) (imagegc.FsStats, error) {
		if path != imageFsMount {
			t.Errorf("statfs of %q, want the runtime's image filesystem %q", path, imageFsMount)
		}
		resp, err := rt.ImageFsInfo(context.Background())
		if err != nil {
			return imagegc.FsStats{}, err
		}
		used := resp.GetImageFilesystems()[0].GetUsedBytes().GetValue()
		return imagegc.FsStats{CapacityBytes: capacity, AvailableBytes: capacity - min(used, capacity)}, nil
	}
}

type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) Eventf(obj runtime.Object, eventtype, reason, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	name := obj.(*v1.ObjectReference).Name
	l.events = append(l.events, fmt.Sprintf("%s %s %s: %s", name, eventtype, reason, fmt.Sprintf(format, args...)))
}

func (l *eventLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// env is a simulated runtime, a GC over it and what the GC reports to.
type env struct {
	t      *testing.T
	rt     *runtimetest.Runtime
	gc     *imagegc.GC
	events *eventLog
	reg    *prometheus.Registry
	ids    map[string]string // reference → image ID
}

func newEnv(t *testing.T, clk clock.WithTicker, rt *runtimetest.Runtime, mutate func(*imagegc.Config)) *env {
	t.Helper()
	e := &env{t: t, rt: rt, ids: map[string]string{}}
	e.start(clk, mutate)
	return e
}

// start builds the env's GC: over the runtime, on a filesystem of 100 MiB,
// reporting to a fresh registry and event log, as mutate changes it.
func (e *env) start(clk clock.WithTicker, mutate func(*imagegc.Config)) {
	e.t.Helper()
	e.events, e.reg = &eventLog{}, prometheus.NewRegistry()
	cfg := imagegc.Config{Images: e.rt, Containers: e.rt, ImageFs: e.rt, Statfs: simFs(e.t, e.rt, 100*mi),
		Recorder: e.events, Node: &v1.ObjectReference{Kind: "Node", Name: "node-1"},
		Registerer: e.reg, Clock: clk}
	if mutate != nil {
		mutate(&cfg)
	}
	e.gc = mustNew(e.t, cfg)
}

func newSim(t *testing.T, clk *clocktesting.FakeClock) *runtimetest.Runtime {
	t.Helper()
	var c clock.WithDelayedExecution = clock.RealClock{}
	if clk != nil {
		c = clk
	}
	rt, err := runtimetest.New(runtimetest.Config{Clock: c})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// add makes an image of size MiB present and remembers its ID.
func (e *env) add(ref string, sizeMi uint64) {
	e.t.Helper()
	if err := e.rt.AddImage(ref, sizeMi*mi); err != nil {
		e.t.Fatal(err)
	}
	st, err := e.rt.ImageStatus(context.Background(), &runtimeapi.ImageSpec{Image: ref}, false)
	if err != nil || st.GetImage() == nil {
		e.t.Fatalf("image %s: %v", ref, err)
	}
	e.ids[ref] = st.GetImage().GetId()
}

// run starts a container of the image in a new pod and returns its ID.
func (e *env) run(pod, ref string) string {
	e.t.Helper()
	ctx := context.Background()
	sb, err := e.rt.RunPodSandbox(ctx, &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: pod, Namespace: "default", Uid: pod}}, "")
	if err != nil {
		e.t.Fatal(err)
	}
	id, err := e.rt.CreateContainer(ctx, sb, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
		Image: &runtimeapi.ImageSpec{Image: ref}}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.rt.StartContainer(ctx, id); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// present lists the references of the images the runtime has, sorted.
func (e *env) present() []string {
	e.t.Helper()
	imgs, err := e.rt.ListImages(context.Background(), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, img := range imgs {
		out = append(out, img.GetRepoTags()...)
	}
	slices.Sort(out)
	return out
}

func deleted(r imagegc.Result) []string {
	var out []string
	for _, d := range r.Deleted {
		out = append(out, d.Image.String()+" "+string(d.Reason))
	}
	return out
}

func collected(t *testing.T, reg *prometheus.Registry, want string) {
	t.Helper()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`# HELP kubelet_image_garbage_collected_total Total number of images garbage collected by the kubelet, whether through disk usage or image age.
# TYPE kubelet_image_garbage_collected_total counter
`+want), "kubelet_image_garbage_collected_total"); err != nil {
		t.Error(err)
	}
}

const (
	imgA     = "docker.io/library/a:1"
	imgB     = "docker.io/library/b:1"
	imgNew   = "docker.io/library/new:1"
	imgBusy  = "docker.io/library/busy:1"
	imgPause = "registry.k8s.io/pause:3.10"
)

// Above the high threshold, the collector frees down to the low one,
// least recently used first, past an image too young, keeping the image
// in use and the pinned sandbox image.
func TestGarbageCollectFreesDownToLowThreshold(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	rt := newSim(t, clk)
	e := newEnv(t, clk, rt, func(c *imagegc.Config) { c.PinnedImages = []string{imgPause} })
	ctx := context.Background()
	e.add(imgA, 20)
	e.add(imgB, 10)
	e.add(imgBusy, 30)
	e.add(imgPause, 5)
	// a was used by a container that has since exited and been removed.
	old := e.run("old", imgA)
	if err := rt.StopContainer(ctx, old, 0); err != nil {
		t.Fatal(err)
	}
	e.run("web", imgBusy)
	if _, _, err := e.gc.Detect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rt.RemoveContainer(ctx, old); err != nil {
		t.Fatal(err)
	}
	clk.Step(10 * time.Minute)
	e.add(imgNew, 30) // 95 MiB of 100 now
	if _, _, err := e.gc.Detect(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Step(time.Minute)

	res, err := e.gc.GarbageCollect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 95 % used: 15 MiB to free. b (never used) goes first, new is too
	// young (1 minute), a (used 11 minutes ago) goes next.
	if got, want := deleted(res), []string{imgB + " space", imgA + " space"}; !slices.Equal(got, want) {
		t.Errorf("deleted %q, want %q", got, want)
	}
	if res.UsagePercent != 95 || res.BytesToFree != 15*mi || res.BytesFreed != 30*mi || !res.Time.Equal(t0.Add(11*time.Minute)) {
		t.Errorf("result %+v", res)
	}
	if got, want := e.present(), []string{imgBusy, imgNew, imgPause}; !slices.Equal(got, want) {
		t.Errorf("images left %q, want %q", got, want)
	}
	collected(t, e.reg, "kubelet_image_garbage_collected_total{reason=\"space\"} 2\n")
	if last, ok := e.gc.Last(); !ok || len(last.Deleted) != 2 {
		t.Errorf("Last: %v %v", last, ok)
	}

	// Now at 65 %: nothing more to do.
	res, err = e.gc.GarbageCollect(ctx)
	if err != nil || len(res.Deleted) != 0 || res.UsagePercent != 65 || res.BytesToFree != 0 {
		t.Errorf("second collection: %v %+v", err, res)
	}
	if ev := e.events.list(); len(ev) != 0 {
		t.Errorf("events %q", ev)
	}
}

// When the unused images are not enough, the collection fails with the
// kubelet's FreeDiskSpaceFailed event and message.
func TestGarbageCollectNotEnoughFreed(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	rt := newSim(t, clk)
	e := newEnv(t, clk, rt, nil)
	ctx := context.Background()
	e.add(imgA, 10)
	e.add(imgBusy, 80)
	e.run("web", imgBusy)
	c := e.run("logs", imgBusy)
	if err := rt.SetUsage(c, runtimetest.Usage{WritableLayerBytes: 5 * mi}); err != nil {
		t.Fatal(err)
	}
	clk.Step(time.Hour)
	if _, _, err := e.gc.Detect(ctx); err != nil { // a is new now: too young
		t.Fatal(err)
	}
	res, err := e.gc.GarbageCollect(ctx)
	var serr *imagegc.SpaceError
	if !errors.As(err, &serr) || len(res.Deleted) != 0 || serr.UsagePercent != 95 || serr.BytesToFree != 15*mi || serr.BytesFreed != 0 {
		t.Fatalf("young image: %v, %+v", err, res)
	}

	clk.Step(2 * time.Minute)
	res, err = e.gc.GarbageCollect(ctx)
	if !errors.As(err, &serr) || serr.BytesFreed != 10*mi || !slices.Equal(deleted(res), []string{imgA + " space"}) {
		t.Fatalf("got %v, %+v", err, res)
	}
	msg := "Insufficient free disk space on the node's image filesystem (95% of 100.0 MiB used). " +
		"Failed to free sufficient space by deleting unused images (freed 10485760 bytes). " +
		"Investigate disk usage, as it could be used by active images, logs, volumes, or other data."
	if err.Error() != msg {
		t.Errorf("message %q", err)
	}
	if ev := e.events.list(); len(ev) != 2 || ev[1] != "node-1 Warning FreeDiskSpaceFailed: "+msg {
		t.Errorf("events %q", ev)
	}
}

// MaxAge removes an image unused for longer, whatever the space.
func TestGarbageCollectMaxAge(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	rt := newSim(t, clk)
	e := newEnv(t, clk, rt, func(c *imagegc.Config) {
		c.Policy = &imagegc.Policy{HighThresholdPercent: 85, LowThresholdPercent: 80, MinAge: 2 * time.Minute, MaxAge: time.Hour}
	})
	ctx := context.Background()
	e.add(imgA, 1)
	e.add(imgBusy, 1)
	ctr := e.run("web", imgBusy)
	res, err := e.gc.GarbageCollect(ctx)
	if err != nil || len(res.Deleted) != 0 || res.UsagePercent != 2 {
		t.Fatalf("first: %v %+v", err, res)
	}
	clk.Step(30 * time.Minute)
	if err := rt.StopContainer(ctx, ctr, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.gc.Detect(ctx); err != nil { // busy last used now: t0+30m
		t.Fatal(err)
	}
	if err := rt.RemoveContainer(ctx, ctr); err != nil {
		t.Fatal(err)
	}
	clk.Step(time.Hour) // a unused for 90 min, busy for 60
	res, err = e.gc.GarbageCollect(ctx)
	if err != nil || !slices.Equal(deleted(res), []string{imgA + " age"}) {
		t.Fatalf("second: %v %v", err, deleted(res))
	}
	clk.Step(time.Second)
	res, err = e.gc.GarbageCollect(ctx)
	if err != nil || !slices.Equal(deleted(res), []string{imgBusy + " age"}) {
		t.Fatalf("third: %v %v", err, deleted(res))
	}
	collected(t, e.reg, "kubelet_image_garbage_collected_total{reason=\"age\"} 2\n")
}

// pinning marks images Pinned as a runtime that pins them does.
type pinning struct {
	*runtimetest.Runtime
	pinned string
}

func (p pinning) ListImages(ctx context.Context, f *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	imgs, err := p.Runtime.ListImages(ctx, f)
	for _, img := range imgs {
		img.Pinned = slices.Contains(img.GetRepoTags(), p.pinned)
	}
	return imgs, err
}

// sandboxImage reports an image in every sandbox's verbose status, as
// containerd does.
type sandboxImage struct {
	*runtimetest.Runtime
	image string
}

func (s sandboxImage) PodSandboxStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	resp, err := s.Runtime.PodSandboxStatus(ctx, id, verbose)
	if err == nil && verbose {
		resp.Info = map[string]string{"info": `{"pid":42,"image":"` + s.image + `"}`}
	}
	return resp, err
}

// DeleteUnusedImages removes every image not in use, not pinned (by the
// runtime, the configuration, or as a sandbox's image) and old enough,
// whatever the usage.
func TestDeleteUnusedImages(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	rt := newSim(t, clk)
	const runtimePinned, sandbox = "docker.io/library/pinned:1", "docker.io/library/sandbox:1"
	e := &env{t: t, rt: rt, ids: map[string]string{}}
	ctx := context.Background()
	for _, ref := range []string{imgA, imgB, imgNew, imgBusy, runtimePinned, sandbox, imgPause} {
		e.add(ref, 1)
	}
	e.start(clk, func(c *imagegc.Config) {
		c.Images = pinning{rt, runtimePinned}
		c.Sandboxes = sandboxImage{rt, sandbox}
		// Pinned by ID, without "sha256:"; a pin nothing matches is
		// harmless.
		c.PinnedImages = []string{strings.TrimPrefix(e.ids[imgPause], "sha256:"), "docker.io/library/gone:1"}
		c.Statfs = func(string) (imagegc.FsStats, error) { return imagegc.FsStats{}, errors.New("not measured") }
	})
	ctr := e.run("web", imgBusy)
	if err := rt.StopContainer(ctx, ctr, 0); err != nil { // exited, not removed: still in use
		t.Fatal(err)
	}
	if _, _, err := e.gc.Detect(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Step(2 * time.Minute)
	e.add("docker.io/library/newer:1", 1)
	if _, _, err := e.gc.Detect(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Step(time.Minute)
	if err := e.gc.DeleteUnusedImages(ctx); err != nil {
		t.Fatal(err)
	}
	res, _ := e.gc.Last()
	if got, want := deleted(res), []string{imgA + " space", imgB + " space", imgNew + " space"}; !equalSet(got, want) {
		t.Errorf("deleted %q, want %q", got, want)
	}
	if res.BytesToFree != imagegc.AllBytes || res.BytesFreed != 3*mi || res.UsagePercent != -1 {
		t.Errorf("result %+v", res)
	}
	if got, want := e.present(), []string{imgBusy, "docker.io/library/newer:1", runtimePinned, sandbox, imgPause}; !equalSet(got, want) {
		t.Errorf("left %q, want %q", got, want)
	}
	if n := rt.Calls("ImageFsInfo"); n != 0 {
		t.Errorf("DeleteUnusedImages measured the filesystem %d times", n)
	}
}

// A sandbox whose status cannot be had is skipped, not the whole
// detection; the image last seen for it stays in use, so the sandbox
// image is not removed meanwhile. Once the sandbox is gone, so is its use.
func TestSandboxStatusFailureKeepsLastImage(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	rt := newSim(t, clk)
	const sandbox = "docker.io/library/sandbox:1"
	e := &env{t: t, rt: rt, ids: map[string]string{}}
	ctx := context.Background()
	for _, ref := range []string{imgA, imgBusy, sandbox} {
		e.add(ref, 1)
	}
	e.start(clk, func(c *imagegc.Config) { c.Sandboxes = sandboxImage{rt, sandbox} })
	e.run("web", imgBusy)
	if _, _, err := e.gc.Detect(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Step(time.Hour)
	if err := rt.InjectFault("PodSandboxStatus", runtimetest.Fault{Err: fmt.Errorf("context deadline exceeded: %w", core.ErrUnavailable)}); err != nil {
		t.Fatal(err)
	}
	if err := e.gc.DeleteUnusedImages(ctx); err != nil {
		t.Fatalf("one sandbox's status failing: %v", err)
	}
	if got, want := e.present(), []string{imgBusy, sandbox}; !slices.Equal(got, want) {
		t.Errorf("left %q, want %q", got, want)
	}
	if n := rt.Calls("PodSandboxStatus"); n != 2 {
		t.Errorf("PodSandboxStatus called %d times, want 2", n)
	}

	if err := rt.RemovePodSandbox(ctx, mustSandbox(t, rt)); err != nil {
		t.Fatal(err)
	}
	clk.Step(time.Minute)
	if err := e.gc.DeleteUnusedImages(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.present(); len(got) != 0 {
		t.Errorf("left %q once the sandbox is gone", got)
	}
}

// The eviction manager's reclaim does not wait behind a periodic
// collection stuck removing an image: it gives up when its ctx ends.
// Detections go on meanwhile. A reclaim that does wait runs after the
// collection, on what is left: no image is removed or counted twice.
func TestReclaimDoesNotWaitBehindSlowRemoval(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	rt := newSim(t, clk)
	e := newEnv(t, clk, rt, func(c *imagegc.Config) {
		c.Policy = &imagegc.Policy{HighThresholdPercent: 85, LowThresholdPercent: 80}
		c.Statfs = simFs(t, rt, 10*mi)
	})
	e.add(imgA, 5)
	e.add(imgB, 4) // 90 % used: 1 MiB to free, one image
	if clk.HasWaiters() {
		t.Fatal("the clock has waiters before the collection")
	}
	if err := rt.InjectFault("RemoveImage", runtimetest.Fault{Delay: 10 * time.Minute, Times: 1}); err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		res imagegc.Result
		err error
	}
	periodic := make(chan outcome, 1)
	go func() {
		res, err := e.gc.GarbageCollect(context.Background())
		periodic <- outcome{res, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !clk.HasWaiters() { // the removal waits on the clock
		if time.Now().After(deadline) {
			t.Fatal("the collection never reached RemoveImage")
		}
		time.Sleep(time.Millisecond)
	}

	// Meanwhile, within a (real) moment: detections run, and a reclaim
	// whose ctx ends returns ctx's error.
	within := func(what string, timeout time.Duration, f func(ctx context.Context) error) error {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- f(ctx) }()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			clk.Step(10 * time.Minute) // let the collection end, and f with it
			<-done
			t.Fatalf("%s waited for the collection's removal", what)
			return nil
		}
	}
	if err := within("Detect", 10*time.Second, func(ctx context.Context) error { _, _, err := e.gc.Detect(ctx); return err }); err != nil {
		t.Errorf("Detect during the removal: %v", err)
	}
	if err := within("DeleteUnusedImages", 50*time.Millisecond, e.gc.DeleteUnusedImages); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("DeleteUnusedImages whose ctx ended: %v, want context.DeadlineExceeded", err)
	}
	if _, ok := e.gc.Last(); ok {
		t.Error("a reclaim that never ran is the last result")
	}

	reclaim := make(chan outcome, 1)
	go func() {
		res, err := e.gc.DeleteUnused(context.Background())
		reclaim <- outcome{res, err}
	}()
	clk.Step(10 * time.Minute)
	first := <-periodic
	second := <-reclaim
	if first.err != nil || len(first.res.Deleted) != 1 || second.err != nil || len(second.res.Deleted) != 1 {
		t.Fatalf("collection: %v %v; reclaim after it: %v %v", first.err, deleted(first.res), second.err, deleted(second.res))
	}
	if a, b := first.res.Deleted[0].Image.ID, second.res.Deleted[0].Image.ID; a == b {
		t.Errorf("both deleted %s", a)
	}
	if got := first.res.BytesFreed + second.res.BytesFreed; got != 9*mi {
		t.Errorf("freed %d bytes in all, want %d", got, 9*mi)
	}
	if n := rt.Calls("RemoveImage"); n != 2 {
		t.Errorf("RemoveImage called %d times, want 2", n)
	}
	if len(e.present()) != 0 {
		t.Errorf("left %q", e.present())
	}
	collected(t, e.reg, "kubelet_image_garbage_collected_total{reason=\"space\"} 2\n")
}

func equalSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// An image that cannot be removed is reported by name; the next one is
// removed in its place.
func TestRemoveFailureTriesTheNext(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	rt := newSim(t, clk)
	e := newEnv(t, clk, rt, func(c *imagegc.Config) {
		c.Statfs = simFs(t, rt, 40*mi)
		c.Policy = &imagegc.Policy{HighThresholdPercent: 70, LowThresholdPercent: 70}
	})
	ctx := context.Background()
	e.add(imgA, 10)
	e.add(imgB, 20)
	e.run("web", imgA)
	if _, _, err := e.gc.Detect(ctx); err != nil { // a used at t0, b never
		t.Fatal(err)
	}
	if err := rt.RemovePodSandbox(ctx, mustSandbox(t, rt)); err != nil {
		t.Fatal(err)
	}
	clk.Step(time.Hour)
	// 75 % used, high 70: 30 % of 40 MiB (12 MiB) should be available,
	// 10 is: free 2 MiB. b goes first but cannot; a goes instead.
	if err := rt.InjectFault("RemoveImage", runtimetest.Fault{Err: fmt.Errorf("image is busy: %w", core.ErrUnavailable), Times: 1}); err != nil {
		t.Fatal(err)
	}
	res, err := e.gc.GarbageCollect(ctx)
	var re *imagegc.RemoveError
	if !errors.As(err, &re) || re.Image.ID != e.ids[imgB] || !errors.Is(err, core.ErrUnavailable) ||
		!strings.Contains(err.Error(), "remove image "+e.ids[imgB]+" ("+imgB+") for space") {
		t.Fatalf("error %v", err)
	}
	if !slices.Equal(deleted(res), []string{imgA + " space"}) {
		t.Errorf("deleted %q", deleted(res))
	}
	if got := e.present(); !slices.Equal(got, []string{imgB}) {
		t.Errorf("left %q", got)
	}
}

func mustSandbox(t *testing.T, rt *runtimetest.Runtime) string {
	t.Helper()
	sbs, err := rt.ListPodSandbox(context.Background(), nil)
	if err != nil || len(sbs) != 1 {
		t.Fatalf("sandboxes %v %v", sbs, err)
	}
	return sbs[0].GetId()
}

func mustNew(t *testing.T, cfg imagegc.Config) *imagegc.GC {
	t.Helper()
	gc, err := imagegc.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return gc
}

// A filesystem without capacity is refused with the kubelet's event.
func TestInvalidCapacity(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	rt := newSim(t, clk)
	e := newEnv(t, clk, rt, func(c *imagegc.Config) {
		c.Statfs = func(string) (imagegc.FsStats, error) { return imagegc.FsStats{}, nil }
	})
	_, err := e.gc.GarbageCollect(context.Background())
	if !errors.Is(err, imagegc.ErrInvalidCapacity) {
		t.Fatalf("error %v", err)
	}
	if ev := e.events.list(); !slices.Equal(ev, []string{"node-1 Warning InvalidDiskCapacity: invalid capacity 0 on image filesystem"}) {
		t.Errorf("events %q", ev)
	}
}

// Listing failures keep the runtime's error class.
func TestListFailure(t *testing.T) {
	rt := newSim(t, nil)
	gc := mustNew(t, imagegc.Config{Images: rt, Containers: rt, ImageFs: rt})
	if err := rt.InjectFault("ListContainers", runtimetest.Fault{Err: core.ErrUnavailable, Times: 1}); err != nil {
		t.Fatal(err)
	}
	if err := gc.DeleteUnusedImages(context.Background()); !errors.Is(err, core.ErrUnavailable) || !strings.Contains(err.Error(), "list containers") {
		t.Errorf("error %v", err)
	}
	if err := rt.InjectFault("ImageFsInfo", runtimetest.Fault{Err: core.ErrUnimplemented, Times: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := gc.GarbageCollect(context.Background()); !errors.Is(err, core.ErrUnimplemented) || !strings.Contains(err.Error(), "image filesystem") {
		t.Errorf("error %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	rt := newSim(t, nil)
	ok := imagegc.Config{Images: rt, Containers: rt, ImageFs: rt}
	for field, mutate := range map[string]func(*imagegc.Config){
		"Images":               func(c *imagegc.Config) { c.Images = nil },
		"Containers":           func(c *imagegc.Config) { c.Containers = nil },
		"ImageFs":              func(c *imagegc.Config) { c.ImageFs = nil },
		"Period":               func(c *imagegc.Config) { c.Period = -time.Second },
		"DetectPeriod":         func(c *imagegc.Config) { c.DetectPeriod = -time.Second },
		"PinnedImages[1]":      func(c *imagegc.Config) { c.PinnedImages = []string{"x", ""} },
		"HighThresholdPercent": func(c *imagegc.Config) { c.Policy = &imagegc.Policy{HighThresholdPercent: -1} },
		"LowThresholdPercent":  func(c *imagegc.Config) { c.Policy = &imagegc.Policy{HighThresholdPercent: 50, LowThresholdPercent: 60} },
	} {
		cfg := ok
		mutate(&cfg)
		_, err := imagegc.New(cfg)
		if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v, want core.ErrInvalid naming it", field, err)
		}
	}
	gc := mustNew(t, ok)
	if gc.Policy() != imagegc.DefaultPolicy() {
		t.Errorf("default policy %+v", gc.Policy())
	}
	reg := prometheus.NewRegistry()
	ok.Registerer = reg
	mustNew(t, ok)
	if _, err := imagegc.New(ok); err == nil {
		t.Error("a second GC on one registry: want the registration error")
	}
}

// Run collects at once and every Period, detects every DetectPeriod in
// between (so a container living only between two collections keeps its
// image young), and reports the second failure in a row as ImageGCFailed.
func TestRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newSim(t, nil)
		var failing sync.Mutex
		fail, collections := false, 0
		e := newEnv(t, clock.RealClock{}, rt, func(c *imagegc.Config) {
			c.Policy = &imagegc.Policy{HighThresholdPercent: 85, LowThresholdPercent: 80, MaxAge: 10 * time.Minute}
			c.Period, c.DetectPeriod = 5*time.Minute, time.Minute
			inner := c.Statfs
			c.Statfs = func(p string) (imagegc.FsStats, error) {
				failing.Lock()
				defer failing.Unlock()
				collections++
				if fail {
					return imagegc.FsStats{}, errors.New("statfs: input/output error")
				}
				return inner(p)
			}
		})
		e.add(imgA, 1)
		e.add(imgB, 1)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.gc.Run(ctx) }()
		defer func() { cancel(); <-done }()
		count := func() int {
			failing.Lock()
			defer failing.Unlock()
			return collections
		}
		synctest.Wait()
		if n := count(); n != 1 {
			t.Fatalf("collections at start: %d, want 1", n)
		}
		// b is used from 6m30s to 7m30s, between two collections: only
		// the detection at 7m sees it.
		time.Sleep(6*time.Minute + 30*time.Second)
		e.run("short", imgB)
		time.Sleep(time.Minute)
		if err := rt.RemovePodSandbox(context.Background(), mustSandbox(t, rt)); err != nil {
			t.Fatal(err)
		}
		// At 10m, a has been unused for 10m: not longer. At 15m it goes;
		// b, last used at 7m, stays until the collection at 20m.
		time.Sleep(3 * time.Minute) // 10m30s
		synctest.Wait()
		if got := e.present(); !slices.Equal(got, []string{imgA, imgB}) {
			t.Fatalf("at 10m30s: %q", got)
		}
		time.Sleep(5 * time.Minute) // 15m30s
		synctest.Wait()
		if got := e.present(); !slices.Equal(got, []string{imgB}) {
			t.Fatalf("at 15m30s: %q, want b alone: it was used at 7m", got)
		}
		time.Sleep(5 * time.Minute) // 20m30s
		synctest.Wait()
		if got := e.present(); len(got) != 0 {
			t.Fatalf("at 20m30s: %q", got)
		}
		if n := count(); n != 5 {
			t.Errorf("collections by 20m30s: %d, want 5 (0, 5, 10, 15, 20m)", n)
		}
		collected(t, e.reg, "kubelet_image_garbage_collected_total{reason=\"age\"} 2\n")

		failing.Lock()
		fail = true
		failing.Unlock()
		time.Sleep(5 * time.Minute) // 25m30s: first failure, no event
		synctest.Wait()
		if ev := e.events.list(); len(ev) != 0 {
			t.Fatalf("events after one failure: %q", ev)
		}
		time.Sleep(10 * time.Minute) // 30m and 35m: two more
		synctest.Wait()
		want := "node-1 Warning ImageGCFailed: imagegc: image filesystem " + imageFsMount + ": statfs: input/output error"
		if ev := e.events.list(); len(ev) != 2 || ev[0] != want || ev[1] != want {
			t.Fatalf("events %q", ev)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
		done <- nil // for the deferred wait
	})
}

// With high 100 and no MaxAge, Run only detects: the ages stay known for
// DeleteUnusedImages, nothing is collected.
func TestRunDetectsOnlyWhenOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newSim(t, nil)
		e := newEnv(t, clock.RealClock{}, rt, func(c *imagegc.Config) {
			c.Policy = &imagegc.Policy{HighThresholdPercent: 100, LowThresholdPercent: 80, MinAge: 2 * time.Minute}
			c.Statfs = func(string) (imagegc.FsStats, error) {
				return imagegc.FsStats{CapacityBytes: 100, AvailableBytes: 0}, nil
			}
		})
		e.add(imgA, 1)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.gc.Run(ctx) }()
		defer func() { cancel(); <-done }()
		time.Sleep(time.Minute)
		synctest.Wait()
		if err := e.gc.DeleteUnusedImages(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := e.present(); len(got) != 1 {
			t.Fatalf("a is 1 minute old: %q", got)
		}
		time.Sleep(11 * time.Minute)
		synctest.Wait()
		if n, l := rt.Calls("ImageFsInfo"), rt.Calls("ListImages"); n != 0 || l != 5 {
			t.Errorf("ImageFsInfo %d, ListImages %d: want 0 and 5 (detections at 0, 6 and 11 min, 5 after the reclaim at 1 min; the reclaim; the test's look)", n, l)
		}
		if err := e.gc.DeleteUnusedImages(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := e.present(); len(got) != 0 {
			t.Fatalf("left %q", got)
		}
	})
}

// With the default periods, collections and detections fall due together:
// a collection detects, and no detection follows it. A detection made
// otherwise (here the caller's) puts the next one off by DetectPeriod.
func TestRunDetectsOncePerDetectPeriod(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rt := newSim(t, nil)
			e := newEnv(t, clock.RealClock{}, rt, func(c *imagegc.Config) {
				c.Statfs = func(string) (imagegc.FsStats, error) {
					return imagegc.FsStats{CapacityBytes: 100 * mi, AvailableBytes: 90 * mi}, nil
				}
			})
			e.add(imgA, 1)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- e.gc.Run(ctx) }()
			time.Sleep(20*time.Minute + 30*time.Second)
			synctest.Wait()
			if l, f := rt.Calls("ListImages"), rt.Calls("ImageFsInfo"); l != 5 || f != 5 {
				t.Errorf("by 20m30s: ListImages %d, ImageFsInfo %d; want 5 and 5 (collections at 0, 5, 10, 15, 20m, each detecting once)", l, f)
			}
			cancel()
			<-done
		})
	})
	t.Run("after a detection of the caller's", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rt := newSim(t, nil)
			e := newEnv(t, clock.RealClock{}, rt, func(c *imagegc.Config) { c.Period, c.DetectPeriod = time.Hour, time.Minute })
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- e.gc.Run(ctx) }()
			time.Sleep(30 * time.Second)
			if _, _, err := e.gc.Detect(ctx); err != nil {
				t.Fatal(err)
			}
			time.Sleep(45 * time.Second) // 1m15s
			synctest.Wait()
			if n := rt.Calls("ListImages"); n != 2 {
				t.Errorf("by 1m15s: ListImages %d, want 2 (the collection at 0 and the caller's detection at 30s)", n)
			}
			time.Sleep(30 * time.Second) // 1m45s
			synctest.Wait()
			if n := rt.Calls("ListImages"); n != 3 {
				t.Errorf("by 1m45s: ListImages %d, want 3 (and Run's detection at 1m30s)", n)
			}
			time.Sleep(time.Minute) // 2m45s
			synctest.Wait()
			if n := rt.Calls("ListImages"); n != 4 {
				t.Errorf("by 2m45s: ListImages %d, want 4 (and Run's detection at 2m30s)", n)
			}
			cancel()
			<-done
		})
	})
}
