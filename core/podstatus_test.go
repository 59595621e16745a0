package core_test

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodekit/nodekit/core"
)

func TestMergePodStatus(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	now := time.Date(2026, 11, 26, 12, 0, 0, 500, time.UTC)
	at := metav1.NewTime(now.Truncate(time.Second))
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Generation: 3}}
	cond := func(t v1.PodConditionType, s v1.ConditionStatus, reason string, when metav1.Time) v1.PodCondition {
		return v1.PodCondition{Type: t, Status: s, Reason: reason, LastTransitionTime: when}
	}
	claims := []v1.PodResourceClaimStatus{{Name: "gpu", ResourceClaimName: new("gpu-claim")}}
	for _, tc := range []struct {
		name     string
		api      v1.PodStatus
		ours     v1.PodStatus
		couldRun bool
		want     v1.PodStatus
	}{{
		name: "conditions of others are kept, the node's replaced",
		api: v1.PodStatus{Phase: v1.PodRunning, Conditions: []v1.PodCondition{
			cond("example.com/Warm", v1.ConditionTrue, "", t0), cond(v1.PodReady, v1.ConditionFalse, "", t0)}},
		ours: v1.PodStatus{Phase: v1.PodRunning, Conditions: []v1.PodCondition{
			cond(v1.PodReady, v1.ConditionTrue, "", at), cond(v1.PodScheduled, v1.ConditionTrue, "", t0)}},
		want: v1.PodStatus{Phase: v1.PodRunning, Conditions: []v1.PodCondition{
			cond("example.com/Warm", v1.ConditionTrue, "", t0), cond(v1.PodReady, v1.ConditionTrue, "", at), cond(v1.PodScheduled, v1.ConditionTrue, "", t0)}},
	}, {
		name: "a node condition the API lost is written again; one the node dropped is dropped",
		api:  v1.PodStatus{Phase: v1.PodPending, Conditions: []v1.PodCondition{cond(v1.PodResizePending, v1.ConditionTrue, "", t0)}},
		ours: v1.PodStatus{Phase: v1.PodPending, Conditions: []v1.PodCondition{cond(v1.PodInitialized, v1.ConditionTrue, "", t0)}},
		want: v1.PodStatus{Phase: v1.PodPending, Conditions: []v1.PodCondition{cond(v1.PodInitialized, v1.ConditionTrue, "", t0)}},
	}, {
		name:     "a terminal phase is held back while containers could run",
		api:      v1.PodStatus{Phase: v1.PodRunning, Reason: "", Message: ""},
		ours:     v1.PodStatus{Phase: v1.PodFailed, Reason: "Evicted", Message: "out of memory", Conditions: []v1.PodCondition{cond(v1.DisruptionTarget, v1.ConditionTrue, "TerminationByKubelet", t0)}},
		couldRun: true,
		want:     v1.PodStatus{Phase: v1.PodRunning, Conditions: []v1.PodCondition{}},
	}, {
		name: "terminal once nothing runs: DisruptionTarget added at its transition, readiness False",
		api:  v1.PodStatus{Phase: v1.PodRunning, Conditions: []v1.PodCondition{cond(v1.PodReady, v1.ConditionTrue, "", t0)}},
		ours: v1.PodStatus{Phase: v1.PodFailed, Reason: "Evicted", Conditions: []v1.PodCondition{
			cond(v1.PodReady, v1.ConditionTrue, "", t0), cond(v1.ContainersReady, v1.ConditionFalse, "PodFailed", t0), cond(v1.DisruptionTarget, v1.ConditionTrue, "TerminationByKubelet", t0)}},
		want: v1.PodStatus{Phase: v1.PodFailed, Reason: "Evicted", Conditions: []v1.PodCondition{
			{Type: v1.PodReady, Status: v1.ConditionFalse, Reason: core.ReasonPodFailed, ObservedGeneration: 3, LastTransitionTime: at},
			cond(v1.ContainersReady, v1.ConditionFalse, "PodFailed", t0), cond(v1.DisruptionTarget, v1.ConditionTrue, "TerminationByKubelet", at)}},
	}, {
		name: "a DisruptionTarget the API has keeps its transition time",
		api:  v1.PodStatus{Phase: v1.PodRunning, Conditions: []v1.PodCondition{cond(v1.DisruptionTarget, v1.ConditionTrue, "PreemptionByScheduler", t0)}},
		ours: v1.PodStatus{Phase: v1.PodSucceeded, Conditions: []v1.PodCondition{cond(v1.DisruptionTarget, v1.ConditionTrue, "TerminationByKubelet", at)}},
		want: v1.PodStatus{Phase: v1.PodSucceeded, Conditions: []v1.PodCondition{cond(v1.DisruptionTarget, v1.ConditionTrue, "TerminationByKubelet", t0)}},
	}, {
		name: "a DisruptionTarget is not sent again once the API is terminal",
		api:  v1.PodStatus{Phase: v1.PodFailed},
		ours: v1.PodStatus{Phase: v1.PodFailed, Conditions: []v1.PodCondition{cond(v1.DisruptionTarget, v1.ConditionTrue, "TerminationByKubelet", at)}},
		want: v1.PodStatus{Phase: v1.PodFailed, Conditions: []v1.PodCondition{}},
	}, {
		name: "resource claim statuses are the API's",
		api:  v1.PodStatus{Phase: v1.PodRunning, ResourceClaimStatuses: claims},
		ours: v1.PodStatus{Phase: v1.PodRunning},
		want: v1.PodStatus{Phase: v1.PodRunning, Conditions: []v1.PodCondition{}, ResourceClaimStatuses: claims},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			apiCopy, oursCopy := tc.api.DeepCopy(), tc.ours.DeepCopy()
			got := core.MergePodStatus(pod, tc.api, tc.ours, tc.couldRun, now)
			if !equality.Semantic.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if !equality.Semantic.DeepEqual(*apiCopy, tc.api) || !equality.Semantic.DeepEqual(*oursCopy, tc.ours) {
				t.Error("an input was modified")
			}
		})
	}
}
