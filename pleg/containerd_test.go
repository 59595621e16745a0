package pleg_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/cri"
	"github.com/nodekit/nodekit/internal/testenv"
	"github.com/nodekit/nodekit/pleg"
)

// On real containerd, following the event stream (2.x) and relisting
// (1.6) report the same events for the same life of a pod.
func TestSameEventsOnContainerd(t *testing.T) {
	want := "ContainerStarted[sandbox] ContainerStarted ContainerDied(137) ContainerRemoved ContainerDied[sandbox] ContainerRemoved[sandbox]"
	for _, v := range testenv.Versions {
		t.Run("containerd-"+string(v), func(t *testing.T) {
			t.Parallel()
			cd := testenv.StartContainerd(t, testenv.Options{Version: v})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			rt, err := cri.New(ctx, cri.Config{Endpoint: cd.Endpoint()})
			if err != nil {
				t.Fatal(err)
			}
			defer rt.Close()
			p, err := pleg.New(pleg.Config{Runtime: rt, Logger: zaptest.NewLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			sub := p.Watch()
			defer sub.Close()
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- p.Run(runCtx) }()
			defer func() { stop(); <-done }()
			waitFor(t, "the first relist", func() bool { ok, _ := p.Healthy(); return ok })
			if v != testenv.Containerd16 {
				waitFor(t, "the event stream", p.Streaming)
			}

			const uid = "e2e-pod-uid"
			sb := &runtimeapi.PodSandboxConfig{
				Metadata:     &runtimeapi.PodSandboxMetadata{Name: "e2e", Namespace: "pleg", Uid: uid},
				Labels:       map[string]string{core.LabelPodName: "e2e", core.LabelPodNamespace: "pleg", core.LabelPodUID: uid},
				LogDirectory: t.TempDir(),
				Linux: &runtimeapi.LinuxPodSandboxConfig{CgroupParent: cd.CgroupParent, SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
					NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER},
				}},
			}
			var got []string
			expect := func(n int) {
				t.Helper()
				timeout := time.After(30 * time.Second)
				for range n {
					select {
					case ev := <-sub.Events():
						if ev.PodUID != uid {
							t.Errorf("event of another pod: %+v", ev)
						}
						got = append(got, describe(ev))
					case <-timeout:
						t.Fatalf("events so far: %s", strings.Join(got, " "))
					}
				}
			}
			sbID, err := rt.RunPodSandbox(ctx, sb, "")
			if err != nil {
				t.Fatal(err)
			}
			expect(1)
			cID, err := rt.CreateContainer(ctx, sbID, &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
				Image:    &runtimeapi.ImageSpec{Image: testenv.BusyboxImage},
				Command:  []string{"sleep", "3600"},
				Labels:   map[string]string{core.LabelPodName: "e2e", core.LabelPodNamespace: "pleg", core.LabelPodUID: uid, core.LabelContainerName: "app"},
			}, sb)
			if err != nil {
				t.Fatal(err)
			}
			if err := rt.StartContainer(ctx, cID); err != nil {
				t.Fatal(err)
			}
			expect(1)
			if err := rt.StopContainer(ctx, cID, 0); err != nil {
				t.Fatal(err)
			}
			expect(1)
			if err := rt.RemoveContainer(ctx, cID); err != nil {
				t.Fatal(err)
			}
			expect(1)
			if err := rt.StopPodSandbox(ctx, sbID); err != nil {
				t.Fatal(err)
			}
			expect(1)
			if err := rt.RemovePodSandbox(ctx, sbID); err != nil {
				t.Fatal(err)
			}
			expect(1)
			if s := strings.Join(got, " "); s != want {
				t.Errorf("events:\n got %s\nwant %s", s, want)
			}
			select {
			case ev := <-sub.Events():
				t.Errorf("extra event %s", describe(ev))
			case <-time.After(1500 * time.Millisecond):
			}
		})
	}
}

func describe(ev core.PodLifecycleEvent) string {
	s := string(ev.Type)
	if ev.Sandbox {
		s += "[sandbox]"
	}
	if ev.ExitCode != nil {
		s += "(" + strconv.Itoa(int(*ev.ExitCode)) + ")"
	}
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
