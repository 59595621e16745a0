package embedtest_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
	"github.com/nodekit/nodekit/pleg"
	"github.com/nodekit/nodekit/runtimetest"
	"github.com/nodekit/nodekit/staticpod"
	"github.com/nodekit/nodekit/statusmgr"
	"github.com/nodekit/nodekit/syncloop"
)

// testImage is the one image the simulated runtime has, and can pull
// again (as imagePullPolicy Always, the default of an untagged image,
// does at every container start).
const testImage = "busybox"

// agent is the smallest set of nodekit's subsystems that runs pods, wired
// for a test: the simulated runtime, a staticpod Merger as the one pod
// source, the PLEG relisting the runtime, and the sync loop's driver,
// workers and loop. None of them is given a Clock: inside a synctest
// bubble the real clock is virtual.
type agent struct {
	t       *testing.T
	rt      *runtimetest.Runtime
	merger  *staticpod.Merger
	pleg    *pleg.PLEG
	driver  *syncloop.Driver
	workers *syncloop.Workers
	loop    *syncloop.Loop
	// last is each pod's last generated status, for the next one's
	// Previous.
	last map[types.UID]*v1.PodStatus
}

// startAgent wires and runs an agent until the test ends. Call it inside
// the test's synctest bubble, so that everything it creates (timers,
// channels, goroutines) belongs to the bubble.
func startAgent(t *testing.T) *agent {
	t.Helper()
	a := &agent{t: t, last: map[types.UID]*v1.PodStatus{}}
	var err error
	check := func(what string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	a.rt, err = runtimetest.New(runtimetest.Config{Images: []string{testImage}, PullableImages: []string{testImage}})
	check("runtime")
	a.merger, err = staticpod.NewMerger(staticpod.MergerConfig{Sources: []string{core.SourceFile}})
	check("merger")
	// The PLEG relists every second, the kubelet's period. Not the
	// runtime's event stream: see README.md ("What not to do").
	a.pleg, err = pleg.New(pleg.Config{Runtime: a.rt, RelistPeriod: time.Second})
	check("pleg")
	tr, err := crispec.New(crispec.Config{PodLogsRoot: t.TempDir()})
	check("translator")
	a.driver, err = syncloop.NewDriver(syncloop.DriverConfig{Runtime: a.rt, Translator: tr})
	check("driver")
	// Jitter 0: the workers' resyncs come at fixed times, so that every
	// run of the test sees the same sequence.
	a.workers, err = syncloop.NewWorkers(syncloop.WorkersConfig{Syncer: a.driver, Status: plegStatus{a.pleg},
		Jitter: func() float64 { return 0 }})
	check("workers")
	a.loop, err = syncloop.NewLoop(syncloop.LoopConfig{Updates: a.merger.Updates(), Events: a.pleg.Watch().Events(),
		Workers: a.workers, Runtime: a.rt, SourcesReady: a.merger.AllReady, Housekeepers: []syncloop.Housekeeper{a.driver}})
	check("loop")

	ctx, cancel := context.WithCancel(context.Background())
	runs := []func(context.Context) error{a.pleg.Run, a.workers.Run, a.loop.Run}
	errs := make(chan error, len(runs))
	for _, run := range runs {
		go func() { errs <- run(ctx) }()
	}
	// Cleanups run inside the bubble, which then waits for every one of
	// its goroutines to end: stop them all here.
	t.Cleanup(func() {
		cancel()
		for range runs {
			if err := <-errs; !errors.Is(err, context.Canceled) {
				t.Errorf("run: %v", err)
			}
		}
	})
	return a
}

// plegStatus is the workers' StatusSource: the PLEG's cache, and, by
// RelistPod, a fresh status of one pod right after each of its syncs (in
// a bubble, observed at the very instant the sync ended; see README.md).
type plegStatus struct{ *pleg.PLEG }

func (s plegStatus) GetNewerThan(ctx context.Context, uid types.UID, t time.Time) (*core.PodStatus, error) {
	return s.Cache().GetNewerThan(ctx, uid, t)
}

// set gives the file source's pods: all it wants now.
func (a *agent) set(pods ...*v1.Pod) {
	a.t.Helper()
	if err := a.merger.Set(a.t.Context(), core.SourceFile, pods); err != nil {
		a.t.Fatal(err)
	}
}

// status generates pod's status now, as the kubelet's status manager
// would: from the pod as the loop has it (or as given, once no source
// wants it), its runtime status in the PLEG's cache, the containers the
// driver holds back, and its worker's state.
func (a *agent) status(pod *v1.Pod) v1.PodStatus {
	if p, ok := a.loop.Pod(pod.UID); ok {
		pod = p
	}
	state, _ := a.workers.State(pod.UID)
	rt, _ := a.pleg.Cache().Get(pod.UID)
	in := statusmgr.Input{Pod: pod, Previous: a.last[pod.UID], Runtime: rt, Now: time.Now(),
		Terminal: state == syncloop.Terminated, Finished: state == syncloop.Terminated}
	for _, w := range a.driver.Waiting(pod.UID) {
		in.Waiting = append(in.Waiting, statusmgr.Waiting{Name: w.Name, Reason: w.Reason, Message: w.Message})
	}
	st := statusmgr.Generate(in)
	a.last[pod.UID] = &st
	return st
}

// instances returns the runtime's instances of a pod's container, first
// attempt first, read from the runtime itself.
func (a *agent) instances(uid types.UID, name string) []*runtimeapi.ContainerStatus {
	a.t.Helper()
	st, err := runtimetest.PodStatus(context.Background(), a.rt, uid)
	if err != nil {
		a.t.Fatal(err)
	}
	var out []*runtimeapi.ContainerStatus
	for _, c := range st.ContainerStatuses {
		if c.GetMetadata().GetName() == name {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(x, y *runtimeapi.ContainerStatus) int {
		return int(x.GetMetadata().GetAttempt()) - int(y.GetMetadata().GetAttempt())
	})
	return out
}
