package cpumanager

import (
	"errors"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/cpuset"

	"github.com/nodekit/nodekit/core"
)

// ctr is a container requesting cpu (and 1Gi of memory) with limits
// equal to requests when guaranteed.
func ctr(name, cpu string, guaranteed bool) v1.Container {
	req := v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu), v1.ResourceMemory: resource.MustParse("1Gi")}
	c := v1.Container{Name: name, Resources: v1.ResourceRequirements{Requests: req}}
	if guaranteed {
		c.Resources.Limits = req.DeepCopy()
	}
	return c
}

func sidecar(c v1.Container) v1.Container {
	always := v1.ContainerRestartPolicyAlways
	c.RestartPolicy = &always
	return c
}

func podOf(uid string, init []v1.Container, apps ...v1.Container) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: uid, Namespace: "default", UID: types.UID(uid)},
		Spec:       v1.PodSpec{InitContainers: init, Containers: apps},
	}
}

func guaranteedPod(uid, cpu string) *v1.Pod { return podOf(uid, nil, ctr("app", cpu, true)) }

func mustStatic(t testing.TB, cfg StaticPolicyConfig) *StaticPolicy {
	t.Helper()
	p, err := NewStaticPolicy(cfg)
	if err != nil {
		t.Fatalf("NewStaticPolicy: %v", err)
	}
	return p
}

func startedState(t testing.TB, p Policy) *State {
	t.Helper()
	s := &State{}
	if err := p.Start(s); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return s
}

func TestStaticPolicyReserved(t *testing.T) {
	for _, tc := range []struct {
		name     string
		desc     TopologyDescription
		n        int
		list     string
		options  map[string]string
		want     string
		wantCore string
	}{
		{"two on an SMT machine: one whole core", descSingleSocketHT, 2, "", nil, "0,4", "0,4"},
		{"one on an SMT machine: its sibling is kept off full cores", descSingleSocketHT, 1, "", nil, "0", "0,4"},
		{"three on interleaved sockets", descDualSocketHT, 3, "", nil, "0,2,6", "0,2,6,8"},
		{"a NUMA node's worth", descDualSocketMultiNUMAHT, 20, "", nil, "0-9,40-49", "0-9,40-49"},
		{"explicit list", descDualSocketHT, 0, "1,7", nil, "1,7", "1,7"},
		{"explicit list with matching count", descDualSocketHT, 2, "5,11", nil, "5,11", "5,11"},
		{"more than a NUMA node, spread over two", descDualSocketMultiNUMAHT, 24, "", map[string]string{DistributeCPUsAcrossNUMAOption: "true"}, "0-5,10-15,40-45,50-55", "0-5,10-15,40-45,50-55"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var list cpuset.CPUSet
			if tc.list != "" {
				list = mustParse(t, tc.list)
			}
			p := mustStatic(t, StaticPolicyConfig{Topology: mustTopology(t, tc.desc), NumReservedCPUs: tc.n, ReservedCPUs: list, Options: tc.options})
			if got := p.ReservedCPUs().String(); got != mustParse(t, tc.want).String() {
				t.Errorf("reserved = %s, want %s", got, tc.want)
			}
			if got := p.reservedCores.String(); got != mustParse(t, tc.wantCore).String() {
				t.Errorf("reserved cores = %s, want %s", got, tc.wantCore)
			}
			if got := p.AllocatableCPUs(); !got.Equals(p.topo.CPUs().Difference(p.ReservedCPUs())) {
				t.Errorf("allocatable = %s", got)
			}
		})
	}
}

func TestNewStaticPolicyErrors(t *testing.T) {
	topo := mustTopology(t, descDualSocketHT)
	for _, tc := range []struct {
		name string
		cfg  StaticPolicyConfig
		want string
	}{
		{"no topology", StaticPolicyConfig{NumReservedCPUs: 1}, "Topology is required"},
		{"no reservation", StaticPolicyConfig{Topology: topo}, "greater than zero"},
		{"list and count disagree", StaticPolicyConfig{Topology: topo, NumReservedCPUs: 3, ReservedCPUs: cpuset.New(0, 1)}, "did not equal 3"},
		{"more than the machine", StaticPolicyConfig{Topology: topo, NumReservedCPUs: 13}, "did not equal 13"},
		{"unknown reserved CPU", StaticPolicyConfig{Topology: topo, ReservedCPUs: cpuset.New(0, 99)}, "unknown CPU ID: 99"},
		{"unknown option", StaticPolicyConfig{Topology: topo, NumReservedCPUs: 1, Options: map[string]string{"pin-everything": "true"}}, `unknown CPU Manager Policy option: "pin-everything"`},
		{"alpha option without alpha", StaticPolicyConfig{Topology: topo, NumReservedCPUs: 1, Options: map[string]string{AlignBySocketOption: "true"}}, `Alpha-level Options not enabled, but option "align-by-socket"`},
		{"beta option with beta disabled", StaticPolicyConfig{Topology: topo, NumReservedCPUs: 1, DisableBetaOptions: true, Options: map[string]string{DistributeCPUsAcrossNUMAOption: "true"}}, `Beta-level Options not enabled, but option "distribute-cpus-across-numa"`},
		{"not a boolean", StaticPolicyConfig{Topology: topo, NumReservedCPUs: 1, Options: map[string]string{FullPCPUsOnlyOption: "yes please"}}, `bad value for option "full-pcpus-only"`},
		{"full cores and spread cores", StaticPolicyConfig{Topology: topo, NumReservedCPUs: 1, EnableAlphaOptions: true, Options: map[string]string{FullPCPUsOnlyOption: "true", DistributeCPUsAcrossCoresOption: "true"}}, "full-pcpus-only and distribute-cpus-across-cores can not be used at the same time"},
		{"uncore and NUMA spread", StaticPolicyConfig{Topology: topo, NumReservedCPUs: 1, Options: map[string]string{PreferAlignByUncoreCacheOption: "true", DistributeCPUsAcrossNUMAOption: "true"}}, "prefer-align-cpus-by-uncorecache and distribute-cpus-across-numa"},
		{"align-by-socket with single-numa-node", StaticPolicyConfig{Topology: topo, NumReservedCPUs: 1, EnableAlphaOptions: true, TopologyManagerPolicy: "single-numa-node", Options: map[string]string{AlignBySocketOption: "true"}}, "align-by-socket: topology manager policy single-numa-node"},
		{"align-by-socket with more sockets than nodes", StaticPolicyConfig{Topology: mustTopology(t, TopologyDescription{CPUs: CPUDetails{0: {SocketID: 0}, 1: {SocketID: 1, CoreID: 1}}}), NumReservedCPUs: 1, EnableAlphaOptions: true, Options: map[string]string{AlignBySocketOption: "true"}}, "number of sockets (2) is more than number of NUMA nodes (1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewStaticPolicy(tc.cfg)
			if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want ErrInvalid containing %q", err, tc.want)
			}
		})
	}
	// Options set to false are still checked for availability, but
	// impose nothing.
	p := mustStatic(t, StaticPolicyConfig{Topology: topo, NumReservedCPUs: 1, Options: map[string]string{FullPCPUsOnlyOption: "false", StrictCPUReservationOption: "true"}})
	if p.Options() != (StaticPolicyOptions{StrictCPUReservation: true}) {
		t.Errorf("options = %+v", p.Options())
	}
}

func TestStaticPolicyStart(t *testing.T) {
	topo := mustTopology(t, descDualSocketHT) // CPUs 0-11, reserved {0}
	assign := func(pod, c, set string) ContainerCPUAssignments {
		return ContainerCPUAssignments{pod: {c: mustParse(t, set)}}
	}
	for _, tc := range []struct {
		name    string
		strict  bool
		state   State
		want    string // default set after Start, or "" when an error is expected
		wantErr string
	}{
		{name: "empty state gets every CPU", state: State{}, want: "0-11"},
		{name: "strict reservation leaves the reserved CPU out", strict: true, state: State{}, want: "1-11"},
		{name: "restored state kept", state: State{DefaultCPUSet: mustParse(t, "0-9"), Assignments: assign("p", "c", "10-11")}, want: "0-9"},
		{name: "assignments without a pool", state: State{Assignments: assign("p", "c", "1")}, wantErr: "default cpuset cannot be empty"},
		{name: "reserved CPU missing from the pool", state: State{DefaultCPUSet: mustParse(t, "1-11")}, wantErr: "not all reserved cpus"},
		{name: "strictly reserved CPU in the pool", strict: true, state: State{DefaultCPUSet: mustParse(t, "0-11")}, wantErr: "some of strictly reserved cpus"},
		{name: "assignment overlapping the pool", state: State{DefaultCPUSet: mustParse(t, "0-11"), Assignments: assign("p", "c", "5")}, wantErr: `pod: p, container: c cpuset: "5" overlaps`},
		{name: "a CPU the machine lacks", state: State{DefaultCPUSet: mustParse(t, "0-9"), Assignments: assign("p", "c", "10-12")}, wantErr: "doesn't match with CPUs in state"},
		{name: "a CPU missing (offlined)", state: State{DefaultCPUSet: mustParse(t, "0-9")}, wantErr: "doesn't match with CPUs in state"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := map[string]string{}
			if tc.strict {
				opts[StrictCPUReservationOption] = "true"
			}
			p := mustStatic(t, StaticPolicyConfig{Topology: topo, NumReservedCPUs: 1, Options: opts})
			s := tc.state
			err := p.Start(&s)
			if tc.wantErr != "" {
				if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrInvalid containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.DefaultCPUSet.String(); got != tc.want {
				t.Errorf("default = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestStaticPolicyAllocate(t *testing.T) {
	type step struct {
		pod       *v1.Pod
		container string // default: the first app container
		want      string // exclusive CPUs expected
		wantErr   string
	}
	for _, tc := range []struct {
		name        string
		desc        TopologyDescription
		reserved    int
		options     map[string]string
		affinity    map[string]NUMAMask // pod UID → NUMA affinity
		steps       []step
		wantDefault string
	}{
		{
			name: "one core on a single socket", desc: descSingleSocketHT, reserved: 1,
			steps:       []step{{pod: guaranteedPod("a", "2"), want: "1,5"}},
			wantDefault: "0,2-4,6-7",
		},
		{
			name: "a whole socket of an interleaved dual socket machine", desc: descDualSocketHT, reserved: 1,
			// Socket 0 holds the reserved CPU 0: socket 1 is whole.
			steps:       []step{{pod: guaranteedPod("a", "6"), want: "1,3,5,7,9,11"}},
			wantDefault: "0,2,4,6,8,10",
		},
		{
			name: "successive pods fill the used socket first", desc: descDualSocketHT, reserved: 1,
			steps: []step{
				{pod: guaranteedPod("a", "1"), want: "6"}, // the reserved core's sibling
				{pod: guaranteedPod("b", "2"), want: "2,8"},
				{pod: guaranteedPod("c", "3"), want: "4,10,1"},
			},
			wantDefault: "0,3,5,7,9,11",
		},
		{
			name: "no SMT, two sockets", desc: descDualSocketNoHT, reserved: 1,
			steps:       []step{{pod: guaranteedPod("a", "4"), want: "4-7"}, {pod: guaranteedPod("b", "2"), want: "1-2"}},
			wantDefault: "0,3",
		},
		{
			name: "a NUMA node of a multi-NUMA socket", desc: descDualSocketMultiNUMAHT, reserved: 2,
			steps:       []step{{pod: guaranteedPod("a", "20"), want: "10-19,50-59"}},
			wantDefault: "0-9,20-49,60-79",
		},
		{
			name: "odd core count", desc: descTripleSocketOddHT, reserved: 2,
			steps:       []step{{pod: guaranteedPod("a", "10"), want: "5-9,20-24"}, {pod: guaranteedPod("b", "3"), want: "1-2,16"}},
			wantDefault: "0,3-4,10-15,17-19,25-29",
		},
		{
			name: "shared pool for everyone else", desc: descSingleSocketHT, reserved: 1,
			steps: []step{
				{pod: guaranteedPod("fraction", "1500m"), want: ""},
				{pod: podOf("burstable", nil, ctr("app", "2", false)), want: ""},
				{pod: podOf("besteffort", nil, v1.Container{Name: "app"}), want: ""},
				{pod: podOf("podlevel", nil, ctr("app", "2", true)), want: ""}, // given pod-level resources below
			},
			wantDefault: "0-7",
		},
		{
			name: "more than is free", desc: descSingleSocketHT, reserved: 1,
			steps: []step{
				{pod: guaranteedPod("a", "6"), want: "1-3,5-7"},
				{pod: guaranteedPod("b", "2"), wantErr: "not enough cpus available to satisfy request: requested=2, available=1"},
			},
			wantDefault: "0,4",
		},
		{
			name: "the same container twice gets the same CPUs", desc: descSingleSocketHT, reserved: 1,
			steps:       []step{{pod: guaranteedPod("a", "2"), want: "1,5"}, {pod: guaranteedPod("a", "2"), want: "1,5"}},
			wantDefault: "0,2-4,6-7",
		},
		{
			name: "full-pcpus-only: odd request", desc: descSingleSocketHT, reserved: 2,
			options:     map[string]string{FullPCPUsOnlyOption: "true"},
			steps:       []step{{pod: guaranteedPod("a", "3"), wantErr: "SMT Alignment Error: requested 3 cpus not multiple cpus per core = 2"}},
			wantDefault: "0-7",
		},
		{
			name: "full-pcpus-only: the reserved CPU's sibling does not count", desc: descSingleSocketHT, reserved: 1,
			options: map[string]string{FullPCPUsOnlyOption: "true"},
			steps: []step{
				{pod: guaranteedPod("a", "6"), want: "1-3,5-7"},
				{pod: guaranteedPod("b", "2"), wantErr: "not enough free physical CPUs: available physical CPUs = 0, requested CPUs = 2, CPUs per core = 2"},
			},
			wantDefault: "0,4",
		},
		{
			name: "full-pcpus-only: without SMT every request is whole", desc: descDualSocketNoHT, reserved: 1,
			options: map[string]string{FullPCPUsOnlyOption: "true"},
			// Socket 0, with the reserved CPU, is filled first.
			steps:       []step{{pod: guaranteedPod("a", "3"), want: "1-3"}},
			wantDefault: "0,4-7",
		},
		{
			name: "strict reservation keeps the reserved CPUs out of the pool", desc: descSingleSocketHT, reserved: 2,
			options:     map[string]string{StrictCPUReservationOption: "true"},
			steps:       []step{{pod: guaranteedPod("a", "2"), want: "1,5"}},
			wantDefault: "2-3,6-7",
		},
		{
			name: "NUMA affinity from a topology manager", desc: descDualSocketMultiNUMAHT, reserved: 2,
			affinity:    map[string]NUMAMask{"a": 1 << 3},
			steps:       []step{{pod: guaranteedPod("a", "4"), want: "30-31,70-71"}},
			wantDefault: "0-29,32-69,72-79",
		},
		{
			name: "NUMA affinity too small: the rest from elsewhere", desc: descDualSocketHT, reserved: 1,
			affinity:    map[string]NUMAMask{"a": 1 << 0},
			steps:       []step{{pod: guaranteedPod("a", "7"), want: "1-2,4,6-8,10"}},
			wantDefault: "0,3,5,9,11",
		},
		{
			name: "distribute across NUMA nodes", desc: descDualSocketMultiNUMAHT, reserved: 2,
			options: map[string]string{DistributeCPUsAcrossNUMAOption: "true"},
			// 24 CPUs need two nodes: 12 from each of the first two
			// that leave the free CPUs most even (node 0, which holds
			// the reserved CPUs, is spared).
			steps:       []step{{pod: guaranteedPod("a", "24"), want: "10-15,20-25,50-55,60-65"}},
			wantDefault: "0-9,16-19,26-49,56-59,66-79",
		},
		{
			name: "distribute across cores", desc: descSingleSocketHT, reserved: 1,
			options:     map[string]string{DistributeCPUsAcrossCoresOption: "true"},
			steps:       []step{{pod: guaranteedPod("a", "3"), want: "1-3"}},
			wantDefault: "0,4-7",
		},
		{
			name: "align by socket widens the NUMA affinity", desc: descDualSocketMultiNUMAHT, reserved: 2,
			options:  map[string]string{AlignBySocketOption: "true"},
			affinity: map[string]NUMAMask{"a": 1 << 2},
			// Node 2 has 20 CPUs; the other 4 come from node 3, on the
			// same socket, not from socket 0.
			steps:       []step{{pod: guaranteedPod("a", "24"), want: "20-31,60-71"}},
			wantDefault: "0-19,32-59,72-79",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := StaticPolicyConfig{Topology: mustTopology(t, tc.desc), NumReservedCPUs: tc.reserved, Options: tc.options, EnableAlphaOptions: true}
			if tc.affinity != nil {
				cfg.Affinity = AffinityStoreFunc(func(uid, _ string) TopologyHint {
					return TopologyHint{NUMANodeAffinity: tc.affinity[uid], Preferred: true}
				})
			}
			p := mustStatic(t, cfg)
			s := startedState(t, p)
			for i, st := range tc.steps {
				pod := st.pod
				if pod.UID == "podlevel" {
					pod.Spec.Resources = &v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceCPU: resource.MustParse("2"), v1.ResourceMemory: resource.MustParse("1Gi")}}
				}
				name := st.container
				if name == "" {
					name = pod.Spec.Containers[0].Name
				}
				c := findContainer(pod, name)
				before := s.Clone()
				got, err := p.Allocate(s, pod, c)
				if st.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), st.wantErr) {
						t.Fatalf("step %d: err = %v, want %q", i, err, st.wantErr)
					}
					if !s.equal(&before) {
						t.Errorf("step %d: failed allocation changed the state", i)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				want := cpuset.New()
				if st.want != "" {
					want = mustParse(t, st.want)
				}
				if !got.Equals(want) {
					t.Errorf("step %d (%s): got %s, want %s", i, pod.UID, got, want)
				}
				if held, ok := s.CPUSet(string(pod.UID), name); ok != !want.IsEmpty() || !sameCPUs(held, want) {
					t.Errorf("step %d: state holds %s (%v)", i, held, ok)
				}
			}
			if got := s.DefaultCPUSet.String(); got != mustParse(t, tc.wantDefault).String() {
				t.Errorf("default = %s, want %s", got, mustParse(t, tc.wantDefault))
			}
		})
	}
}

func findContainer(pod *v1.Pod, name string) *v1.Container {
	for _, list := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

func TestStaticPolicySMTAlignmentError(t *testing.T) {
	p := mustStatic(t, StaticPolicyConfig{Topology: mustTopology(t, descSingleSocketHT), NumReservedCPUs: 1, Options: map[string]string{FullPCPUsOnlyOption: "true"}})
	s := startedState(t, p)
	_, err := p.Allocate(s, guaranteedPod("a", "1"), &guaranteedPod("a", "1").Spec.Containers[0])
	var smt SMTAlignmentError
	if !errors.As(err, &smt) {
		t.Fatalf("err = %v, want an SMTAlignmentError", err)
	}
	if smt != (SMTAlignmentError{RequestedCPUs: 1, CpusPerCore: 2}) || smt.Type() != "SMTAlignmentError" {
		t.Errorf("error = %+v (%s)", smt, smt.Type())
	}
}

func TestStaticPolicyInitContainerReuse(t *testing.T) {
	p := mustStatic(t, StaticPolicyConfig{Topology: mustTopology(t, descDualSocketHT), NumReservedCPUs: 1})
	s := startedState(t, p)
	pod := podOf("pod",
		[]v1.Container{ctr("init-big", "4", true), sidecar(ctr("proxy", "2", true)), ctr("init-small", "1", true)},
		ctr("app", "4", true), ctr("helper", "1", true))

	want := map[string]string{
		// Whole cores of socket 0, which the reserved CPU 0 already uses.
		"init-big": "2,4,8,10",
		// The sidecar starts after init-big has finished and may take
		// its CPUs; it keeps them, so they are no longer reusable…
		"proxy": "2,8",
		// …while the rest of init-big's still are.
		"init-small": "6",
		// App containers take the reusable CPUs like any free ones:
		// the whole core 4,10 of the busier socket, then a core of the
		// other.
		"app":    "1,4,7,10",
		"helper": "6",
	}
	for _, name := range []string{"init-big", "proxy", "init-small", "app", "helper"} {
		got, err := p.Allocate(s, pod, findContainer(pod, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !got.Equals(mustParse(t, want[name])) {
			t.Errorf("%s got %s, want %s", name, got, want[name])
		}
	}
	if got := s.DefaultCPUSet.String(); got != "0,3,5,9,11" {
		t.Errorf("default = %s", got)
	}

	// Removing the init containers releases nothing the app holds.
	if got := p.RemoveContainer(s, "pod", "init-big"); !got.IsEmpty() {
		t.Errorf("released %s for init-big, want nothing", got)
	}
	if got := p.RemoveContainer(s, "pod", "init-small"); !got.IsEmpty() {
		t.Errorf("released %s for init-small, want nothing (helper holds it)", got)
	}
	if got := p.RemoveContainer(s, "pod", "app"); got.String() != "1,4,7,10" {
		t.Errorf("released %s for app", got)
	}
	if got := p.RemoveContainer(s, "pod", "nope"); !got.IsEmpty() {
		t.Errorf("released %s for an unknown container", got)
	}
	for _, name := range []string{"proxy", "helper"} {
		p.RemoveContainer(s, "pod", name)
	}
	if got := s.DefaultCPUSet.String(); got != "0-11" || len(s.Assignments) != 0 {
		t.Errorf("after removing all: default %s, assignments %s", got, s.Assignments)
	}
}

func TestStaticPolicyReuseIsPerPod(t *testing.T) {
	// Another pod's admission forgets the first pod's reusable CPUs, as
	// the kubelet does: its app container then takes fresh CPUs.
	p := mustStatic(t, StaticPolicyConfig{Topology: mustTopology(t, descSingleSocketHT), NumReservedCPUs: 1})
	s := startedState(t, p)
	a := podOf("a", []v1.Container{ctr("init", "2", true)}, ctr("app", "2", true))
	if _, err := p.Allocate(s, a, findContainer(a, "init")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Allocate(s, guaranteedPod("b", "2"), &guaranteedPod("b", "2").Spec.Containers[0]); err != nil {
		t.Fatal(err)
	}
	got, err := p.Allocate(s, a, findContainer(a, "app"))
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != "3,7" {
		t.Errorf("app got %s, want fresh CPUs 3,7", got)
	}
}

func TestGuaranteedCPUs(t *testing.T) {
	for _, tc := range []struct {
		name string
		pod  *v1.Pod
		want int // for the pod
		c    map[string]int
	}{
		{"integral", guaranteedPod("p", "3"), 3, map[string]int{"app": 3}},
		{"fractional", guaranteedPod("p", "2500m"), 0, map[string]int{"app": 0}},
		{"burstable", podOf("p", nil, ctr("app", "2", false)), 0, map[string]int{"app": 0}},
		{"QoS from the status wins", func() *v1.Pod {
			p := guaranteedPod("p", "2")
			p.Status.QOSClass = v1.PodQOSBurstable
			return p
		}(), 0, map[string]int{"app": 0}},
		{"apps add up", podOf("p", nil, ctr("a", "2", true), ctr("b", "3", true)), 5, map[string]int{"a": 2, "b": 3}},
		{"a big init container", podOf("p", []v1.Container{ctr("init", "8", true)}, ctr("a", "2", true)), 8, nil},
		{"sidecars add to later init containers and to apps", podOf("p",
			[]v1.Container{sidecar(ctr("s", "2", true)), ctr("init", "5", true)},
			ctr("a", "4", true)), 7, nil},
		{"sidecars and apps above init", podOf("p",
			[]v1.Container{ctr("init", "3", true), sidecar(ctr("s", "2", true))},
			ctr("a", "4", true)), 6, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := podGuaranteedCPUs(tc.pod); got != tc.want {
				t.Errorf("pod = %d, want %d", got, tc.want)
			}
			for name, want := range tc.c {
				if got := GuaranteedCPUs(tc.pod, findContainer(tc.pod, name)); got != want {
					t.Errorf("%s = %d, want %d", name, got, want)
				}
			}
		})
	}
}

func hintsString(h map[string][]TopologyHint) string {
	if h == nil {
		return "nil"
	}
	l, ok := h["cpu"]
	if !ok {
		return "none"
	}
	var parts []string
	for _, x := range l {
		parts = append(parts, x.String())
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func TestStaticPolicyHints(t *testing.T) {
	multi := mustStatic(t, StaticPolicyConfig{Topology: mustTopology(t, descDualSocketMultiNUMAHT), NumReservedCPUs: 2})
	dual := mustStatic(t, StaticPolicyConfig{Topology: mustTopology(t, descDualSocketHT), NumReservedCPUs: 1})

	for _, tc := range []struct {
		name  string
		p     *StaticPolicy
		setup func(s *State)
		pod   *v1.Pod
		want  string
	}{
		{name: "shared container: no preference", p: dual, pod: podOf("p", nil, ctr("app", "2", false)), want: "nil"},
		{name: "fits one node: single nodes preferred", p: dual, pod: guaranteedPod("p", "2"), want: "[{0 true} {1 true} {0-1 false}]"},
		{name: "needs both nodes", p: dual, pod: guaranteedPod("p", "7"), want: "[{0-1 true}]"},
		{name: "node 0 too full now: only wider hints, still not preferred", p: dual, pod: guaranteedPod("p", "6"),
			// Node 0 has 5 assignable CPUs (CPU 0 is reserved).
			want: "[{1 true} {0-1 false}]"},
		{name: "nothing fits", p: dual, pod: guaranteedPod("p", "12"), want: "[]"},
		{name: "already allocated: hints of its CPUs", p: dual, pod: guaranteedPod("p", "2"),
			setup: func(s *State) {
				s.SetCPUSet("p", "app", cpuset.New(1, 7))
				s.DefaultCPUSet = s.DefaultCPUSet.Difference(cpuset.New(1, 7))
			},
			want: "[{1 true} {0-1 false}]"},
		{name: "already allocated with another size: unsatisfiable", p: dual, pod: guaranteedPod("p", "4"),
			setup: func(s *State) {
				s.SetCPUSet("p", "app", cpuset.New(1, 7))
				s.DefaultCPUSet = s.DefaultCPUSet.Difference(cpuset.New(1, 7))
			},
			want: "[]"},
		{name: "four nodes, a socket's worth", p: multi, pod: guaranteedPod("p", "40"),
			// Two nodes would do on an empty machine, but with CPUs 0
			// and 40 reserved no pair with node 0 has 40 free.
			want: "[{1-2 true} {1,3 true} {2-3 true} {0-2 false} {0-1,3 false} {0,2-3 false} {1-3 false} {0-3 false}]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startedState(t, tc.p)
			if tc.setup != nil {
				tc.setup(s)
			}
			got := hintsString(tc.p.TopologyHints(s, tc.pod, &tc.pod.Spec.Containers[0]))
			if got != tc.want {
				t.Errorf("hints = %s\nwant    %s", got, tc.want)
			}
		})
	}
}

func TestStaticPolicyPodHints(t *testing.T) {
	p := mustStatic(t, StaticPolicyConfig{Topology: mustTopology(t, descDualSocketHT), NumReservedCPUs: 1})
	s := startedState(t, p)
	// 2 + 3 = 5 CPUs fit node 1 (6 free) but not node 0 (5 free).
	pod := podOf("p", nil, ctr("a", "2", true), ctr("b", "3", true))
	if got := hintsString(p.PodTopologyHints(s, pod)); got != "[{0 true} {1 true} {0-1 false}]" {
		t.Errorf("pod hints = %s", got)
	}
	// Once its containers hold CPUs, the pod's hints are those CPUs'.
	for _, name := range []string{"a", "b"} {
		if _, err := p.Allocate(s, pod, findContainer(pod, name)); err != nil {
			t.Fatal(err)
		}
	}
	if got := hintsString(p.PodTopologyHints(s, pod)); got != "[{0 true} {0-1 false}]" {
		t.Errorf("pod hints after allocation = %s (assignments %s)", got, s.Assignments)
	}
	if got := hintsString(p.PodTopologyHints(s, podOf("q", nil, ctr("a", "1", false)))); got != "nil" {
		t.Errorf("burstable pod hints = %s", got)
	}
}

func TestStaticPolicyHintsAlignBySocket(t *testing.T) {
	// Two sockets of three 2-CPU NUMA nodes; a 3-CPU request needs two
	// nodes. With align-by-socket, hints spanning one socket are also
	// preferred, however many nodes they use.
	desc := TopologyDescription{Sockets: 2, NUMANodesPerSocket: 3, CoresPerNUMANode: 2, ThreadsPerCore: 1}
	pod := guaranteedPod("p", "3")
	preferred := func(options map[string]string) map[string]bool {
		p := mustStatic(t, StaticPolicyConfig{Topology: mustTopology(t, desc), NumReservedCPUs: 1, EnableAlphaOptions: true, Options: options})
		out := map[string]bool{}
		for _, h := range p.TopologyHints(startedState(t, p), pod, &pod.Spec.Containers[0])["cpu"] {
			out[h.NUMANodeAffinity.String()] = h.Preferred
		}
		return out
	}
	plain := preferred(nil)
	aligned := preferred(map[string]string{AlignBySocketOption: "true"})
	for _, tc := range []struct {
		mask           string
		plain, aligned bool
	}{
		{"0-1", true, true},
		{"0,3", true, true},
		{"0-2", false, true},
		{"3-5", false, true},
		{"0-1,3", false, false},
		{"0-5", false, false},
	} {
		if p, ok := plain[tc.mask]; !ok || p != tc.plain {
			t.Errorf("without align-by-socket %s: preferred %v (present %v), want %v", tc.mask, p, ok, tc.plain)
		}
		if a, ok := aligned[tc.mask]; !ok || a != tc.aligned {
			t.Errorf("with align-by-socket %s: preferred %v (present %v), want %v", tc.mask, a, ok, tc.aligned)
		}
	}
	if len(plain) != 6+15+20+15+6+1-6 {
		// Every set of nodes but the six single ones can hold 3 CPUs.
		t.Errorf("%d hints", len(plain))
	}
}
