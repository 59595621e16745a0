package kubeletconfig_test

import (
	"maps"
	"strings"
	"testing"

	"github.com/nodekit/nodekit/cpumanager"
	"github.com/nodekit/nodekit/examples/agent/kubeletconfig"
)

func parse(t *testing.T, body string) *kubeletconfig.Config {
	t.Helper()
	c, err := kubeletconfig.Parse([]byte("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"+body), "kubelet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCPUPolicy(t *testing.T) {
	// CPUs 0-3: one socket, two cores of two threads (core 0 = 0,2).
	topo, err := cpumanager.NewTopology(cpumanager.TopologyDescription{Sockets: 1, NUMANodesPerSocket: 1, CoresPerNUMANode: 2, ThreadsPerCore: 2, Interleaved: true})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		body         string
		wantReserved string // "" for the none policy
		wantFullPCPU bool
	}{
		"default":            {body: "", wantReserved: ""},
		"none":               {body: "cpuManagerPolicy: none\n", wantReserved: ""},
		"reservedSystemCPUs": {body: "cpuManagerPolicy: static\nreservedSystemCPUs: \"0\"\n", wantReserved: "0"},
		// ceil(0.5 + 0.7) = 2 CPUs, a whole core.
		"kube and system reserved": {body: "cpuManagerPolicy: static\nkubeReserved: {cpu: 500m}\nsystemReserved: {cpu: 700m, memory: 1Gi}\n", wantReserved: "0,2"},
		"reservedSystemCPUs wins":  {body: "cpuManagerPolicy: static\nkubeReserved: {cpu: \"3\"}\nreservedSystemCPUs: \"1\"\n", wantReserved: "1"},
		"options": {body: "cpuManagerPolicy: static\nreservedSystemCPUs: 0,2\ncpuManagerPolicyOptions: {full-pcpus-only: \"true\", distribute-cpus-across-numa: \"false\"}\n",
			wantReserved: "0,2", wantFullPCPU: true},
	} {
		t.Run(name, func(t *testing.T) {
			p, err := parse(t, tc.body).CPUPolicy(topo)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantReserved == "" {
				if _, ok := p.(*cpumanager.NonePolicy); !ok {
					t.Fatalf("policy %T, want none", p)
				}
				return
			}
			sp, ok := p.(*cpumanager.StaticPolicy)
			if !ok {
				t.Fatalf("policy %T, want static", p)
			}
			if got := sp.ReservedCPUs().String(); got != tc.wantReserved {
				t.Errorf("reserved %s, want %s", got, tc.wantReserved)
			}
			if sp.Options().FullPhysicalCPUsOnly != tc.wantFullPCPU {
				t.Errorf("options %+v", sp.Options())
			}
		})
	}
}

func TestCPUPolicyErrors(t *testing.T) {
	topo, err := cpumanager.NewTopology(cpumanager.TopologyDescription{Sockets: 1, NUMANodesPerSocket: 1, CoresPerNUMANode: 4, ThreadsPerCore: 1})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ body, want string }{
		"none with options":            {"cpuManagerPolicyOptions: {full-pcpus-only: \"true\"}\n", "cpuManagerPolicyOptions: "},
		"no reservation":               {"cpuManagerPolicy: static\n", "reservedSystemCPUs: the static policy requires"},
		"zero reservation":             {"cpuManagerPolicy: static\nkubeReserved: {cpu: \"0\"}\n", "reservedSystemCPUs: the static policy requires"},
		"CPU the machine lacks":        {"cpuManagerPolicy: static\nreservedSystemCPUs: 3-4\n", `reservedSystemCPUs: "3-4" is not a subset of the online CPUs 0-3`},
		"system more than the machine": {"cpuManagerPolicy: static\nsystemReserved: {cpu: \"5\"}\n", "kubelet.yaml: kubeReserved.cpu + systemReserved.cpu: 5 is more than the machine's 4 CPUs"},
		"kube more than the machine":   {"cpuManagerPolicy: static\nkubeReserved: {cpu: \"4500m\"}\n", "kubelet.yaml: kubeReserved.cpu + systemReserved.cpu: 4500m is more than the machine's 4 CPUs"},
		"sum more than the machine":    {"cpuManagerPolicy: static\nkubeReserved: {cpu: \"2\"}\nsystemReserved: {cpu: \"3\"}\n", "kubelet.yaml: kubeReserved.cpu + systemReserved.cpu: 5 is more than the machine's 4 CPUs"},
		"unknown option":               {"cpuManagerPolicy: static\nreservedSystemCPUs: \"0\"\ncpuManagerPolicyOptions: {pin-harder: \"true\"}\n", `cpuManagerPolicyOptions: cpumanager: static policy: Options: unknown CPU Manager Policy option: "pin-harder"`},
		"alpha option":                 {"cpuManagerPolicy: static\nreservedSystemCPUs: \"0\"\ncpuManagerPolicyOptions: {align-by-socket: \"true\"}\n", "cpuManagerPolicyOptions: cpumanager: static policy: Options: CPU Manager Policy Alpha-level Options not enabled"},
		"option not a boolean":         {"cpuManagerPolicy: static\nreservedSystemCPUs: \"0\"\ncpuManagerPolicyOptions: {full-pcpus-only: \"yes\"}\n", `cpuManagerPolicyOptions: cpumanager: static policy: Options: bad value for option "full-pcpus-only"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parse(t, tc.body).CPUPolicy(topo)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "kubelet.yaml") {
				t.Errorf("error %v, want one naming kubelet.yaml and containing %q", err, tc.want)
			}
		})
	}
	// Validate refuses a policy of another name.
	c, err := kubeletconfig.Parse([]byte("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncpuManagerPolicy: dynamic\n"), "kubelet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `cpuManagerPolicy: "dynamic"`) {
		t.Errorf("Validate: %v", err)
	}
	if _, err := c.CPUPolicy(topo); err == nil || !strings.Contains(err.Error(), "cpuManagerPolicy") {
		t.Errorf("CPUPolicy: %v", err)
	}
}

func TestReserved(t *testing.T) {
	c := parse(t, "kubeReserved: {cpu: \"1\", memory: 1Gi}\nsystemReserved: {cpu: 500m}\n")
	kube, system := c.Reserved()
	if !maps.Equal(kube, map[string]string{"cpu": "1", "memory": "1Gi"}) || !maps.Equal(system, map[string]string{"cpu": "500m"}) {
		t.Errorf("without reservedSystemCPUs: %v %v", kube, system)
	}
	c = parse(t, "reservedSystemCPUs: 0-1\nkubeReserved: {cpu: \"1\", memory: 1Gi}\n")
	kube, system = c.Reserved()
	if !maps.Equal(kube, map[string]string{"memory": "1Gi"}) || !maps.Equal(system, map[string]string{"cpu": "2"}) {
		t.Errorf("with reservedSystemCPUs: %v %v", kube, system)
	}
	if c.KubeReserved["cpu"] != "1" {
		t.Error("Reserved changed the configuration")
	}
}
