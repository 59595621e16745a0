package core_test

import (
	"fmt"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

func TestSandboxIPs(t *testing.T) {
	for _, tc := range []struct {
		sb   *runtimeapi.PodSandboxStatus
		want string
	}{
		{nil, "[]"},
		{&runtimeapi.PodSandboxStatus{}, "[]"},
		{&runtimeapi.PodSandboxStatus{Network: &runtimeapi.PodSandboxNetworkStatus{Ip: "10.1.0.5"}}, "[10.1.0.5]"},
		{&runtimeapi.PodSandboxStatus{Network: &runtimeapi.PodSandboxNetworkStatus{
			Ip: "10.1.0.5", AdditionalIps: []*runtimeapi.PodIP{{Ip: "fd00::5"}},
		}}, "[10.1.0.5 fd00::5]"},
	} {
		if got := fmt.Sprint(core.SandboxIPs(tc.sb)); got != tc.want {
			t.Errorf("SandboxIPs(%v) = %s, want %s", tc.sb, got, tc.want)
		}
	}
}
