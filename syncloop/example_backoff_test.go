package syncloop_test

import (
	"fmt"
	"time"

	testingclock "k8s.io/utils/clock/testing"

	"github.com/nodekit/nodekit/syncloop"
)

// A container that crashes a second after each start, restarted as the
// kubelet restarts it: at once the first time, then after 10 s, 20 s, …
// up to 5 min; a run of more than 10 min starts the back-off over.
func ExampleBackOff() {
	clk := testingclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b, err := syncloop.NewBackOff(syncloop.BackOffConfig{Clock: clk})
	if err != nil {
		panic(err)
	}
	key := syncloop.ContainerKey{PodName: "web", PodNamespace: "shop", PodUID: "8d1c0f2e", Container: "app", Image: "nginx:1.27"}.String()

	// exit is one sync of the pod after the container ran for run.
	exit := func(run time.Duration) {
		clk.Step(run)
		finishedAt := clk.Now()
		if held, wait := b.InBackOff(key, finishedAt); held {
			fmt.Printf("%s: %s\n", syncloop.ReasonCrashLoopBackOff,
				syncloop.CrashLoopBackOffMessage(b.Delay(key), "app", "web", "shop", "8d1c0f2e"))
			clk.Step(wait) // the pod worker syncs again when the back-off ends
		} else {
			fmt.Println("restart at once")
		}
		b.Next(key, finishedAt)
	}
	for range 8 {
		exit(time.Second)
	}
	exit(11 * time.Minute)
	exit(time.Second)
	// Output:
	// restart at once
	// CrashLoopBackOff: back-off 10s restarting failed container=app pod=web_shop(8d1c0f2e)
	// CrashLoopBackOff: back-off 20s restarting failed container=app pod=web_shop(8d1c0f2e)
	// CrashLoopBackOff: back-off 40s restarting failed container=app pod=web_shop(8d1c0f2e)
	// CrashLoopBackOff: back-off 1m20s restarting failed container=app pod=web_shop(8d1c0f2e)
	// CrashLoopBackOff: back-off 2m40s restarting failed container=app pod=web_shop(8d1c0f2e)
	// CrashLoopBackOff: back-off 5m0s restarting failed container=app pod=web_shop(8d1c0f2e)
	// CrashLoopBackOff: back-off 5m0s restarting failed container=app pod=web_shop(8d1c0f2e)
	// restart at once
	// CrashLoopBackOff: back-off 10s restarting failed container=app pod=web_shop(8d1c0f2e)
}

// Image pulls wait from the failed pull; the message carries its error.
func ExampleBackOff_imagePull() {
	clk := testingclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b, err := syncloop.NewBackOff(syncloop.BackOffConfig{Clock: clk})
	if err != nil {
		panic(err)
	}
	key := syncloop.ImageKey{PodUID: "8d1c0f2e", Image: "nginx:nope"}.String()

	fmt.Println(syncloop.ReasonErrImagePull, "then wait", b.Next(key, clk.Now()))
	clk.Step(4 * time.Second)
	held, wait := b.InBackOffSinceUpdate(key)
	fmt.Println(held, wait, syncloop.ReasonImagePullBackOff+":",
		syncloop.ImagePullBackOffMessage("nginx:nope", "ErrImagePull: not found"))
	clk.Step(wait)
	held, _ = b.InBackOffSinceUpdate(key)
	fmt.Println(held, "pull again; on failure wait", b.Next(key, clk.Now()))
	// Output:
	// ErrImagePull then wait 10s
	// true 6s ImagePullBackOff: Back-off pulling image "nginx:nope": ErrImagePull: not found
	// false pull again; on failure wait 20s
}
