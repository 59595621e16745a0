package eviction

import (
	"errors"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/nodekit/nodekit/core"
)

func TestAdmitPod(t *testing.T) {
	guaranteed := newPod("guaranteed", 0, []v1.Container{container("c", "cpu=100m,memory=100Mi", "cpu=100m,memory=100Mi")}, nil)
	burstable := newPod("burstable", 0, []v1.Container{container("c", "memory=100Mi", "")}, nil)
	bestEffort := newPod("best-effort", 0, []v1.Container{container("c", "", "")}, nil)
	tolerant := newPod("tolerant", 0, []v1.Container{container("c", "", "")}, nil)
	tolerant.Spec.Tolerations = []v1.Toleration{{Key: v1.TaintNodeMemoryPressure, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoSchedule}}
	tolerantAll := newPod("tolerant-all", 0, []v1.Container{container("c", "", "")}, nil)
	tolerantAll.Spec.Tolerations = []v1.Toleration{{Operator: v1.TolerationOpExists}}
	diskTolerant := newPod("disk-tolerant", 0, []v1.Container{container("c", "", "")}, nil)
	diskTolerant.Spec.Tolerations = []v1.Toleration{{Key: v1.TaintNodeDiskPressure, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoSchedule}}
	static := staticPod(newPod("static", 0, []v1.Container{container("c", "", "")}, nil))
	critical := newPod("critical", SystemCriticalPriority, []v1.Container{container("c", "", "")}, nil)

	mem, disk, pid := v1.NodeMemoryPressure, v1.NodeDiskPressure, v1.NodePIDPressure
	pods := []*v1.Pod{guaranteed, burstable, bestEffort, tolerant, tolerantAll, diskTolerant, static, critical}
	tests := []struct {
		conditions []v1.NodeConditionType
		admit      []bool // in the order of pods
		message    string
	}{
		{nil, []bool{true, true, true, true, true, true, true, true}, ""},
		{[]v1.NodeConditionType{mem}, []bool{true, true, false, true, true, false, true, true}, "The node had condition: [MemoryPressure]. "},
		{[]v1.NodeConditionType{disk}, []bool{false, false, false, false, false, false, true, true}, "The node had condition: [DiskPressure]. "},
		{[]v1.NodeConditionType{pid}, []bool{false, false, false, false, false, false, true, true}, "The node had condition: [PIDPressure]. "},
		{[]v1.NodeConditionType{mem, disk}, []bool{false, false, false, false, false, false, true, true}, "The node had condition: [MemoryPressure DiskPressure]. "},
		{[]v1.NodeConditionType{mem, disk, pid}, []bool{false, false, false, false, false, false, true, true}, "The node had condition: [MemoryPressure DiskPressure PIDPressure]. "},
	}
	for _, tc := range tests {
		for i, pod := range pods {
			got := AdmitPod(pod, tc.conditions)
			want := AdmitResult{Admit: true}
			if !tc.admit[i] {
				want = AdmitResult{Reason: "Evicted", Message: tc.message}
			}
			if got != want {
				t.Errorf("%v: AdmitPod(%s) = %+v, want %+v", tc.conditions, pod.Name, got, want)
			}
		}
	}
}

func TestAdmitter(t *testing.T) {
	if _, err := NewAdmitter(AdmitterConfig{}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("NewAdmitter without Conditions: %v, want core.ErrInvalid", err)
	}
	var conds []v1.NodeConditionType
	a, err := NewAdmitter(AdmitterConfig{Conditions: func() []v1.NodeConditionType { return conds }})
	if err != nil {
		t.Fatal(err)
	}
	pod := newPod("p", 0, []v1.Container{container("c", "memory=1Gi", "")}, nil)
	if r := a.Admit(AdmitAttributes{Pod: pod}); !r.Admit {
		t.Errorf("no pressure: %+v", r)
	}
	conds = []v1.NodeConditionType{v1.NodeDiskPressure}
	if r := a.Admit(AdmitAttributes{Pod: pod}); r.Admit || r.Reason != Reason {
		t.Errorf("disk pressure: %+v", r)
	}
	if r := a.Admit(AdmitAttributes{}); r.Admit {
		t.Errorf("nil pod under pressure admitted: %+v", r)
	}
}
