package syncloop

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
)

func TestTerminationOrder(t *testing.T) {
	always := v1.ContainerRestartPolicyAlways
	pod := &v1.Pod{Spec: v1.PodSpec{
		InitContainers: []v1.Container{{Name: "setup"}, {Name: "proxy", RestartPolicy: &always}, {Name: "logs", RestartPolicy: &always}},
		Containers:     []v1.Container{{Name: "app"}, {Name: "worker"}},
	}}
	for _, tc := range []struct {
		running []string
		want    string
	}{
		{[]string{"app", "worker", "proxy", "logs"}, "[[app worker] [logs] [proxy]]"},
		{[]string{"proxy", "app"}, "[[app] [proxy]]"},
		{[]string{"logs", "proxy"}, "[[logs] [proxy]]"},
		{[]string{"app", "stray"}, "[[app stray]]"},
		{nil, "[]"},
	} {
		if got := fmt.Sprint(TerminationOrder(pod, tc.running)); got != tc.want {
			t.Errorf("running %v: %s, want %s", tc.running, got, tc.want)
		}
	}
}
