package statusmgr

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"sigs.k8s.io/yaml"

	"github.com/nodekit/nodekit/core"
)

var update = flag.Bool("update", false, "rewrite testdata/*.yaml with the statuses generated")

// golden compares the status, rendered as `kubectl get pod -o yaml` shows
// it, with testdata/name.
func golden(t *testing.T, name string, s v1.PodStatus) {
	t.Helper()
	got, err := yaml.Marshal(struct {
		Status v1.PodStatus `json:"status"`
	}{s})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("status differs from %s (run with -update to accept it):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// crashPod is what `kubectl run crash --image=busybox -- sh -c 'echo
// starting; exit 1'` creates, as the apiserver defaults it, bound to the
// node.
func crashPod() *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "crash", Namespace: "default", UID: "6f1c1d0e-5b7a-4c47-9d0a-3f1f2a9b7c11", Generation: 1},
		Spec: v1.PodSpec{
			Containers: []v1.Container{{
				Name:                     "crash",
				Image:                    "busybox",
				Args:                     []string{"sh", "-c", "echo starting; exit 1"},
				ImagePullPolicy:          v1.PullAlways,
				TerminationMessagePath:   v1.TerminationMessagePathDefault,
				TerminationMessagePolicy: v1.TerminationMessageReadFile,
				VolumeMounts: []v1.VolumeMount{{
					Name: "kube-api-access-x7k2p", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true,
				}},
			}},
			RestartPolicy:      v1.RestartPolicyAlways,
			DNSPolicy:          v1.DNSClusterFirst,
			NodeName:           "node-1",
			ServiceAccountName: "default",
		},
		Status: v1.PodStatus{
			Phase: v1.PodPending,
			Conditions: []v1.PodCondition{{
				Type: v1.PodScheduled, Status: v1.ConditionTrue, LastTransitionTime: mt(0), ObservedGeneration: 1,
			}},
			QOSClass: v1.PodQOSBestEffort,
		},
	}
}

// crashInstance is the attempt-th run of the crash container, created at
// created seconds and exited with code 1 two seconds later.
func crashInstance(attempt, created int) *runtimeapi.ContainerStatus {
	cs := exited("crash", "", created, 1, "Error", created+2, restarts(attempt))
	cs.Id = []string{
		"3b1f0c9a7d2e4f6a8b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a",
		"9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b",
		"5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c",
		"e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d2",
	}[attempt]
	cs.Image = &runtimeapi.ImageSpec{Image: "docker.io/library/busybox:latest"}
	cs.ImageRef = "docker.io/library/busybox@sha256:f85340bf132ae937d2c2a763b8335c9bab35d6e8293f70f606b9c6178d84f42b"
	cs.Labels[core.LabelPodName] = "crash"
	cs.Labels[core.LabelPodUID] = "6f1c1d0e-5b7a-4c47-9d0a-3f1f2a9b7c11"
	cs.User = &runtimeapi.ContainerUser{Linux: &runtimeapi.LinuxContainerUser{Uid: 0, Gid: 0, SupplementalGroups: []int64{0, 10}}}
	cs.Mounts = []*runtimeapi.Mount{{ContainerPath: "/dev/termination-log", HostPath: "/var/lib/kubelet/pods/6f1c/containers/crash/0"}}
	return cs
}

// The status of a crash-looping pod, as the kubelet would have it after
// the container's fourth exit: the pod Running, not ready, the container
// waiting in CrashLoopBackOff with 3 restarts and the last exit code 1.
func TestGoldenCrashLoop(t *testing.T) {
	pod := crashPod()
	sb := sandbox("b7d3f9a1c5e2", true, 1, "10.244.1.17")
	sb.Metadata.Name, sb.Metadata.Uid = "crash", string(pod.UID)
	host := []string{"172.18.0.3"}

	// The statuses the kubelet would have generated before, each from the
	// one before it.
	var prev *v1.PodStatus
	step := func(now int, in Input) v1.PodStatus {
		in.Pod, in.Previous, in.HostIPs, in.Now = pod, prev, host, at(now)
		s := Generate(in)
		prev = &s
		return s
	}
	step(1, Input{})
	step(4, Input{Runtime: runtimeStatus([]*runtimeapi.PodSandboxStatus{sb})})
	first := running("crash", "", 5)
	first.Id, first.Image, first.ImageRef = crashInstance(0, 5).Id, crashInstance(0, 5).Image, crashInstance(0, 5).ImageRef
	if s := step(6, Input{Runtime: runtimeStatus([]*runtimeapi.PodSandboxStatus{sb}, first)}); s.Phase != v1.PodRunning || condition(s, v1.PodReady).Status != v1.ConditionTrue {
		t.Fatalf("running: phase %s, Ready %+v", s.Phase, condition(s, v1.PodReady))
	}
	step(8, Input{Runtime: runtimeStatus([]*runtimeapi.PodSandboxStatus{sb}, crashInstance(0, 5))})
	step(20, Input{Runtime: runtimeStatus([]*runtimeapi.PodSandboxStatus{sb}, crashInstance(1, 9), crashInstance(0, 5))})
	step(30, Input{Runtime: runtimeStatus([]*runtimeapi.PodSandboxStatus{sb}, crashInstance(2, 25), crashInstance(1, 9), crashInstance(0, 5))})

	// The fourth run exited; the runtime's garbage collection left the
	// newest two; the sync loop holds the restart back.
	rt := runtimeStatus([]*runtimeapi.PodSandboxStatus{sb}, crashInstance(3, 60), crashInstance(2, 25))
	got := step(70, Input{
		Runtime: rt,
		Waiting: []Waiting{{Name: "crash", Reason: "CrashLoopBackOff",
			Message: "back-off 40s restarting failed container=crash pod=crash_default(6f1c1d0e-5b7a-4c47-9d0a-3f1f2a9b7c11)"}},
	})
	golden(t, "crashloop.yaml", got)

	cs := got.ContainerStatuses[0]
	if cs.RestartCount != 3 || cs.State.Waiting.Reason != "CrashLoopBackOff" || cs.LastTerminationState.Terminated.ExitCode != 1 {
		t.Errorf("restartCount %d, state %+v, last state %+v", cs.RestartCount, cs.State, cs.LastTerminationState)
	}
}
