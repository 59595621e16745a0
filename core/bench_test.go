package core_test

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodekit/nodekit/core"
)

// benchStatus is the status a node generates for a running pod of two
// init containers (one completed, one sidecar) and three regular
// containers, with the conditions the node owns.
func benchStatus(t0 metav1.Time) v1.PodStatus {
	yes := true
	res := v1.ResourceList{v1.ResourceCPU: resource.MustParse("100m"), v1.ResourceMemory: resource.MustParse("128Mi")}
	running := func(name string) v1.ContainerStatus {
		return v1.ContainerStatus{
			Name: name, Ready: true, Started: &yes, RestartCount: 0,
			State:              v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: t0}},
			Image:              "docker.io/library/" + name + ":1",
			ImageID:            "docker.io/library/" + name + "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			ContainerID:        "containerd://0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			Resources:          &v1.ResourceRequirements{Requests: res, Limits: v1.ResourceList{v1.ResourceMemory: resource.MustParse("256Mi")}},
			AllocatedResources: res,
			VolumeMounts: []v1.VolumeMountStatus{{Name: "data", MountPath: "/data"},
				{Name: "kube-api-access-x7k2p", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}},
			User: &v1.ContainerUser{Linux: &v1.LinuxContainerUser{UID: 1000, GID: 1000, SupplementalGroups: []int64{1000}}},
		}
	}
	completed := running("migrate")
	completed.Ready, completed.Started = true, new(false)
	completed.State = v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: t0, FinishedAt: t0, ContainerID: completed.ContainerID}}
	cond := func(t v1.PodConditionType) v1.PodCondition {
		return v1.PodCondition{Type: t, Status: v1.ConditionTrue, LastTransitionTime: t0, ObservedGeneration: 1}
	}
	return v1.PodStatus{
		Phase:                 v1.PodRunning,
		Conditions:            []v1.PodCondition{cond(v1.PodReadyToStartContainers), cond(v1.PodInitialized), cond(v1.PodReady), cond(v1.ContainersReady), cond(v1.PodScheduled)},
		HostIP:                "172.18.0.3",
		HostIPs:               []v1.HostIP{{IP: "172.18.0.3"}},
		PodIP:                 "10.244.1.17",
		PodIPs:                []v1.PodIP{{IP: "10.244.1.17"}},
		StartTime:             &t0,
		InitContainerStatuses: []v1.ContainerStatus{completed, running("proxy")},
		ContainerStatuses:     []v1.ContainerStatus{running("app"), running("metrics"), running("worker")},
		QOSClass:              v1.PodQOSBurstable,
	}
}

// MergePodStatus as a status writer calls it for each write of a pod's
// status (kubeapi.StatusWriter): "running" merges a running pod's status
// into the API's, which carries a condition of another controller;
// "terminal" is the pod's last status, Succeeded, with its containers
// stopped.
func BenchmarkMergePodStatus(b *testing.B) {
	t0 := metav1.NewTime(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-1", Generation: 1}}
	ours := benchStatus(t0)
	api := *ours.DeepCopy()
	api.Conditions = append(api.Conditions, v1.PodCondition{Type: "example.com/Warm", Status: v1.ConditionTrue, LastTransitionTime: t0})
	done := *ours.DeepCopy()
	done.Phase = v1.PodSucceeded
	for _, tc := range []struct {
		name string
		ours v1.PodStatus
	}{{"running", ours}, {"terminal", done}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				out := core.MergePodStatus(pod, api, tc.ours, false, now)
				if len(out.Conditions) != 6 {
					b.Fatalf("%d conditions", len(out.Conditions))
				}
			}
		})
	}
}
