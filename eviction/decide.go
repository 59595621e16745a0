package eviction

import (
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
)

// Reason is the reason of an eviction: the evicted pod's status.reason and
// the reason of its Warning event, and the reason of an admission refused
// under pressure.
const Reason = "Evicted"

// EventReasonThresholdMet is the reason of the Warning event recorded on
// the node when a threshold drives eviction (Starvation.Event).
const EventReasonThresholdMet = "EvictionThresholdMet"

// Keys of the annotations of an eviction's event (Eviction.Annotations),
// with the kubelet's names.
const (
	// AnnotationOffendingContainers lists, comma separated, the containers
	// that used more of the starved resource than they request.
	AnnotationOffendingContainers = "offending_containers"
	// AnnotationOffendingContainersUsage lists their usage, in the same
	// order ("300Mi,120Mi").
	AnnotationOffendingContainersUsage = "offending_containers_usage"
	// AnnotationOffendingPod names the pod, when it has pod-level memory
	// requests.
	AnnotationOffendingPod = "offending_pod"
	// AnnotationOffendingPodUsage is then the pod's memory usage.
	AnnotationOffendingPodUsage = "offending_pod_usage"
	// AnnotationStarvedResource names the starved resource.
	AnnotationStarvedResource = "starved_resource"
)

// ImmediateGracePeriodSeconds is the grace period, in seconds, of a pod
// evicted for a hard threshold or a local storage limit: the kubelet's
// immediate eviction gives containers one second to stop.
const ImmediateGracePeriodSeconds int64 = 1

// ReclaimAction is a way to free node resources without evicting a pod.
type ReclaimAction string

// The node-level reclaim actions, with the names of the kubelet's garbage
// collector calls.
const (
	// ReclaimContainers removes every container that is not running, even
	// those of pods that terminated but were not deleted.
	ReclaimContainers ReclaimAction = "DeleteAllUnusedContainers"
	// ReclaimImages removes every image no container uses.
	ReclaimImages ReclaimAction = "DeleteUnusedImages"
)

// nodeReclaimFor is what frees the filesystem of a disk signal, by the
// node's layout: the kubelet's buildSignalToNodeReclaimFuncs. Memory and
// PIDs have none.
func nodeReclaimFor(s Signal, dedicatedImageFs, dedicatedContainerFs bool) []ReclaimAction {
	both := []ReclaimAction{ReclaimContainers, ReclaimImages}
	switch s {
	case SignalMemoryAvailable, SignalAllocatableMemoryAvailable, SignalPIDAvailable:
		return nil
	}
	switch {
	case dedicatedImageFs && !dedicatedContainerFs:
		// The nodefs holds logs and volumes: nothing to collect there.
		if s == SignalNodeFsAvailable || s == SignalNodeFsInodesFree {
			return nil
		}
		return both
	case dedicatedImageFs && dedicatedContainerFs:
		if s == SignalImageFsAvailable || s == SignalImageFsInodesFree {
			return []ReclaimAction{ReclaimImages}
		}
		return []ReclaimAction{ReclaimContainers}
	default:
		return both
	}
}

// State is what Decide remembers between rounds: when each threshold was
// first met, which thresholds were acted on and are not yet reclaimed past
// their minimum, when each node condition was last seen, and when each
// signal was last measured. The zero State is the start of a node's life.
// Decide never modifies the State it is given; keep the one of the last
// Decision for the next round.
type State struct {
	firstMet   []thresholdSince
	acted      []Threshold
	conditions []conditionSince
	measured   []SignalObservation
}

type thresholdSince struct {
	threshold Threshold
	since     time.Time
}

type conditionSince struct {
	condition v1.NodeConditionType
	at        time.Time
}

// Decision is what one round of eviction decides: a plain value to act on
// or, for a dry run, to print. Its plan, in the order a driver carries it
// out:
//
//  1. Report Conditions as the node's MemoryPressure, DiskPressure and
//     PIDPressure, and admit new pods by them (AdmitPod).
//  2. If LocalStorage holds evictions, evict every one of them, and stop
//     there for this round.
//  3. If Starved is set: record its Event on the node; run its NodeReclaim
//     actions in order (a failing one does not stop the others); if there
//     were any, measure again and stop if Policy.Relieved; otherwise evict
//     its Victim, if any.
//  4. After evicting, wait for the evicted pods to be cleaned up (the
//     kubelet waits up to 30 s) before the next round; otherwise wait the
//     monitoring interval.
//
// To evict is to kill the pod with the eviction's grace period and set its
// status to phase Failed with Reason and Message (and Condition, when
// set), and to record a Warning event on the pod with that reason, message
// and Annotations. Keep State for the next round either way.
type Decision struct {
	// Time is the now Decide was given.
	Time time.Time
	// Signals are the signals the observations gave, in signal order.
	Signals []SignalObservation
	// Thresholds are the thresholds met, grace periods aside, in the order
	// the kubelet reclaims them.
	Thresholds []MetThreshold
	// Conditions are the node conditions that hold: those of the
	// thresholds met, and those of thresholds met within the pressure
	// transition period. Always in the order MemoryPressure, DiskPressure,
	// PIDPressure.
	Conditions []v1.NodeConditionType
	// LocalStorage are the pods to evict for outgrowing an emptyDir
	// sizeLimit or an ephemeral-storage limit. When there are any, no
	// threshold is acted on this round.
	LocalStorage []Eviction
	// Protected are the local storage evictions that were due but are not
	// made because the pod is critical.
	Protected []Eviction
	// Starved is the threshold acted on and what to do about it; nil when
	// none is (no threshold met past its grace period with stats newer
	// than the last round's, or LocalStorage evictions come first).
	Starved *Starvation
	// State is the state to give the next round.
	State State
}

// MetThreshold is a threshold met in a round.
type MetThreshold struct {
	Threshold Threshold
	// Observed is the observation that meets it.
	Observed SignalObservation
	// Amount is the threshold's amount against the signal's capacity, plus
	// its minimum reclaim when HeldByMinReclaim.
	Amount int64
	// HeldByMinReclaim is true when the signal is back above the threshold
	// but not yet above it plus its minimum reclaim, and the threshold was
	// acted on in the last round: it still counts as met.
	HeldByMinReclaim bool
	// FirstMet is when the threshold was first met in this run of rounds.
	FirstMet time.Time
	// GracePeriodMet is true when the threshold has been met for its grace
	// period (at once for a hard threshold): it may be acted on.
	GracePeriodMet bool
	// StaleStats is true when the grace period is met but the signal was
	// not measured again since the last round: it is not acted on, so that
	// one measurement does not evict twice.
	StaleStats bool
}

// Starvation is the threshold acted on in a round and the plan for it.
type Starvation struct {
	// Threshold is the threshold acted on: the first met past its grace
	// period with fresh stats, memory first.
	Threshold Threshold
	// Resource is the starved resource: memory, ephemeral-storage, inodes
	// or pids.
	Resource v1.ResourceName
	// Observed is the signal's value.
	Observed SignalObservation
	// Amount is the threshold's amount against the signal's capacity.
	Amount int64
	// Event is the Warning event to record on the node.
	Event Event
	// NodeReclaim are the actions to try, in order, before evicting a pod.
	NodeReclaim []ReclaimAction
	// Ranking is every active pod in the order of eviction.
	Ranking []RankedPod
	// Victim is the pod to evict: the first of Ranking that is not
	// critical. One pod per round, as the kubelet. Nil when there is none.
	Victim *Eviction
}

// Event is a Kubernetes event to record.
type Event struct {
	// Reason is one CamelCase word.
	Reason string
	// Message says it in a sentence.
	Message string
}

// Eviction is one pod to evict and how.
type Eviction struct {
	// Pod is the pod to evict.
	Pod *v1.Pod
	// Signal is what caused the eviction: the threshold's signal, or one of
	// the local storage limit signals (SignalEmptyDirFsLimit, ...). It is
	// the label of kubelet_evictions.
	Signal Signal
	// GracePeriodSeconds is the grace period to kill the pod with:
	// ImmediateGracePeriodSeconds for a hard threshold or a local storage
	// limit, the smaller of the policy's maximum and the pod's
	// terminationGracePeriodSeconds for a soft threshold.
	GracePeriodSeconds int64
	// Reason is the status reason and event reason: always Reason.
	Reason string
	// Message is the status message and event message, worded as the
	// kubelet words it.
	Message string
	// Annotations are the annotations of the pod's event, for a threshold
	// eviction: the offending containers, their usage and the starved
	// resource. Nil for a local storage eviction.
	Annotations map[string]string
	// Condition is the pod condition to set, for a threshold eviction:
	// DisruptionTarget, reason TerminationByKubelet, with Message. Nil for a
	// local storage eviction.
	Condition *v1.PodCondition
}

// Decide runs one round of node-pressure eviction as the kubelet's
// eviction manager does: from what the previous round left (state), the
// time, a snapshot of the node (obs) and the policy, it returns what to do.
// It is pure: it does no I/O, reads no clock and modifies none of its
// arguments, so calling it and acting on nothing is a dry run. The caller
// owns the clock, the measurements and the acting, and keeps
// Decision.State for the next round.
//
// The round goes as the kubelet's synchronize:
//
//  1. The thresholds for the node's filesystem layout (Policy.ThresholdsFor)
//     are checked against the signals observed; those acted on last round
//     stay met until their minimum reclaim is available.
//  2. Each met threshold's first time is kept; node conditions hold for
//     the thresholds met now and, for the pressure transition period,
//     those met before.
//  3. Thresholds met for their grace period are acted on, if their signal
//     was measured again since the last round.
//  4. With local storage isolation, pods over an emptyDir sizeLimit, their
//     pod's ephemeral-storage limit or a container's are evicted, all of
//     them; the round stops there if there is any.
//  5. Otherwise the first threshold to act on (memory first) names the
//     starved resource; the plan is node-level reclaim, then the first
//     non-critical pod of the ranking.
//
// A nil policy decides nothing.
func Decide(state State, now time.Time, obs Observations, policy *Policy) Decision {
	d := Decision{Time: now, State: state}
	if policy == nil || (len(policy.thresholds) == 0 && !policy.localStorage) {
		return d
	}
	thresholds := policy.ThresholdsFor(obs)
	signals := obs.signals()
	d.Signals = signals

	metNow := thresholdsMet(thresholds, signals, false)
	met := metNow
	if len(state.acted) > 0 {
		met = mergeThresholds(met, thresholdsMet(state.acted, signals, true))
	}
	slices.SortStableFunc(met, compareForReclaim)

	// When each threshold was first met.
	firstMet := make([]thresholdSince, 0, len(met))
	for _, t := range met {
		since := now
		if i := slices.IndexFunc(state.firstMet, func(s thresholdSince) bool { return s.threshold.key() == t.key() }); i >= 0 {
			since = state.firstMet[i].since
		}
		firstMet = append(firstMet, thresholdSince{threshold: t, since: since})
	}

	// Node conditions, held for the transition period.
	var seen []conditionSince
	for _, t := range met {
		c := t.Signal.NodeCondition()
		if !slices.ContainsFunc(seen, func(s conditionSince) bool { return s.condition == c }) {
			seen = append(seen, conditionSince{condition: c, at: now})
		}
	}
	for _, old := range state.conditions {
		if !slices.ContainsFunc(seen, func(s conditionSince) bool { return s.condition == old.condition }) {
			seen = append(seen, old)
		}
	}
	for _, s := range seen {
		if now.Sub(s.at) < policy.transition {
			d.Conditions = append(d.Conditions, s.condition)
		}
	}
	sortConditions(d.Conditions)

	// Thresholds past their grace period, and those of them with fresh
	// stats.
	var acted, act []Threshold
	for _, f := range firstMet {
		t := f.threshold
		o, _ := observed(signals, t.Signal)
		held := !slices.ContainsFunc(metNow, t.same)
		mt := MetThreshold{
			Threshold:        t,
			Observed:         o,
			Amount:           t.amount(o.Capacity, held),
			HeldByMinReclaim: held,
			FirstMet:         f.since,
			GracePeriodMet:   now.Sub(f.since) >= t.GracePeriod,
		}
		if mt.GracePeriodMet {
			acted = append(acted, t)
			last, ok := observed(state.measured, t.Signal)
			if ok && !o.Time.After(last.Time) {
				mt.StaleStats = true
			} else {
				act = append(act, t)
			}
		}
		d.Thresholds = append(d.Thresholds, mt)
	}

	d.State = State{firstMet: firstMet, acted: acted, conditions: seen, measured: signals}

	if policy.localStorage {
		d.LocalStorage, d.Protected = localStorageEvictions(obs)
		if len(d.LocalStorage) > 0 {
			return d
		}
	}
	if len(act) == 0 {
		return d
	}

	t := act[0]
	o, _ := observed(signals, t.Signal)
	res := t.Signal.Resource()
	s := &Starvation{
		Threshold:   t,
		Resource:    res,
		Observed:    o,
		Amount:      t.Value.Amount(o.Capacity),
		Event:       Event{Reason: EventReasonThresholdMet, Message: fmt.Sprintf("Attempting to reclaim %s", res)},
		NodeReclaim: nodeReclaimFor(t.Signal, obs.DedicatedImageFs, obs.DedicatedContainerFs),
		Ranking:     Rank(t.Signal, obs),
	}
	for _, rp := range s.Ranking {
		if rp.Critical {
			continue
		}
		grace := ImmediateGracePeriodSeconds
		if !t.Hard() {
			grace = policy.maxGrace
			if tgp := rp.Pod.Spec.TerminationGracePeriodSeconds; tgp != nil {
				grace = min(grace, *tgp)
			}
		}
		ps, hasStats := podStatsOf(obs, rp.Pod)
		msg, annotations := evictionMessage(res, t, o, rp.Pod, ps, hasStats)
		s.Victim = &Eviction{
			Pod:                rp.Pod,
			Signal:             t.Signal,
			GracePeriodSeconds: grace,
			Reason:             Reason,
			Message:            msg,
			Annotations:        annotations,
			Condition: &v1.PodCondition{
				Type:               v1.DisruptionTarget,
				ObservedGeneration: rp.Pod.Generation,
				Status:             v1.ConditionTrue,
				Reason:             v1.PodReasonTerminationByKubelet,
				Message:            msg,
			},
		}
		break
	}
	d.Starved = s
	return d
}

// podStatsOf finds the stats of pod in obs; ok is false when it has none.
func podStatsOf(obs Observations, pod *v1.Pod) (PodStats, bool) {
	for _, ps := range obs.Pods {
		if ps.Pod == pod {
			return ps, !ps.Time.IsZero()
		}
	}
	return PodStats{}, false
}

// Messages of evictions, as the kubelet words them.
const (
	nodeLowMessageFmt          = "The node was low on resource: %v. "
	thresholdMetMessageFmt     = "Threshold quantity: %v, available: %v. "
	containerMessageFmt        = "Container %s was using %s, request is %s, has larger consumption of %v. "
	podMessageFmt              = "Pod %s was using %s, request is %s, has larger consumption of %v. "
	containerStorageMessageFmt = "Container %s exceeded its local ephemeral storage limit %q. "
	podStorageMessageFmt       = "Pod ephemeral local storage usage exceeds the total limit of containers %s. "
	emptyDirMessageFmt         = "Usage of EmptyDir volume %q exceeds the limit %q. "
)

// evictionMessage words the eviction of pod for the starved resource, and
// the annotations of its event: the kubelet's evictionMessage.
func evictionMessage(res v1.ResourceName, t Threshold, o SignalObservation, pod *v1.Pod, ps PodStats, hasStats bool) (string, map[string]string) {
	var msg strings.Builder
	fmt.Fprintf(&msg, nodeLowMessageFmt, res)
	fmt.Fprintf(&msg, thresholdMetMessageFmt, t.Value.quantityString(o.Capacity), formatAmount(o.Available, o.Signal.quantityFormat()))
	annotations := make(map[string]string)
	if !hasStats {
		return msg.String(), annotations
	}
	if res == v1.ResourceMemory && resourcehelper.IsPodLevelResourcesSet(pod) {
		if req, ok := pod.Spec.Resources.Requests[v1.ResourceMemory]; ok {
			usage := formatAmount(int64(ps.MemoryWorkingSetBytes), resource.BinarySI)
			fmt.Fprintf(&msg, podMessageFmt, pod.Name, usage, req.String(), res)
			annotations[AnnotationOffendingPod] = pod.Name
			annotations[AnnotationOffendingPodUsage] = usage
		}
	}
	// Ephemeral containers cannot have requests: they are left out.
	containers := slices.Concat(pod.Spec.Containers, pod.Spec.InitContainers)
	var offenders, usages []string
	for _, cs := range ps.Containers {
		i := slices.IndexFunc(containers, func(c v1.Container) bool { return c.Name == cs.Name })
		if i < 0 {
			continue
		}
		req := containers[i].Resources.Requests[res]
		var usage *resource.Quantity
		switch res {
		case v1.ResourceMemory:
			usage = resource.NewQuantity(int64(cs.MemoryWorkingSetBytes), resource.BinarySI)
		case v1.ResourceEphemeralStorage:
			usage = resource.NewQuantity(int64(cs.RootfsBytes+cs.LogsBytes), resource.BinarySI)
		}
		if usage != nil && usage.Cmp(req) > 0 {
			fmt.Fprintf(&msg, containerMessageFmt, cs.Name, usage.String(), req.String(), res)
			offenders = append(offenders, cs.Name)
			usages = append(usages, usage.String())
		}
	}
	annotations[AnnotationOffendingContainers] = strings.Join(offenders, ",")
	annotations[AnnotationOffendingContainersUsage] = strings.Join(usages, ",")
	annotations[AnnotationStarvedResource] = string(res)
	return msg.String(), annotations
}

// localStorageEvictions finds the pods over a local storage limit, in the
// order of obs.Pods: the kubelet's localStorageEviction. For each pod the
// first limit exceeded counts, checked in this order: emptyDir sizeLimits,
// the pod's ephemeral-storage limit, its containers' limits. Critical pods
// are not evicted but returned apart.
func localStorageEvictions(obs Observations) (evict, protected []Eviction) {
	for _, ps := range obs.Pods {
		if ps.Pod == nil || ps.Time.IsZero() {
			continue
		}
		signal, msg, ok := localStorageExceeded(ps, obs.DedicatedImageFs)
		if !ok {
			continue
		}
		e := Eviction{Pod: ps.Pod, Signal: signal, GracePeriodSeconds: ImmediateGracePeriodSeconds, Reason: Reason, Message: msg}
		if IsCritical(ps.Pod) {
			protected = append(protected, e)
		} else {
			evict = append(evict, e)
		}
	}
	return evict, protected
}

// localStorageExceeded reports the first local storage limit the pod
// exceeds, and the kubelet's message for it.
func localStorageExceeded(ps PodStats, dedicatedImageFs bool) (Signal, string, bool) {
	pod := ps.Pod
	for _, vol := range pod.Spec.Volumes {
		ed := vol.EmptyDir
		if ed == nil || ed.SizeLimit == nil || ed.SizeLimit.Sign() != 1 {
			continue
		}
		i := slices.IndexFunc(ps.Volumes, func(v VolumeStats) bool { return v.Name == vol.Name })
		if i < 0 {
			continue
		}
		if resource.NewQuantity(int64(ps.Volumes[i].UsedBytes), resource.BinarySI).Cmp(*ed.SizeLimit) > 0 {
			return SignalEmptyDirFsLimit, fmt.Sprintf(emptyDirMessageFmt, vol.Name, ed.SizeLimit.String()), true
		}
	}

	if limit, ok := resourcehelper.PodLimits(pod, resourcehelper.PodResourcesOptions{})[v1.ResourceEphemeralStorage]; ok {
		used := resource.NewQuantity(int64(ps.EphemeralStorageBytes), resource.BinarySI)
		if used.Cmp(limit) > 0 {
			return SignalEphemeralPodFsLimit, fmt.Sprintf(podStorageMessageFmt, limit.String()), true
		}
	}

	limits := make(map[string]resource.Quantity)
	for _, c := range pod.Spec.Containers {
		if l, ok := c.Resources.Limits[v1.ResourceEphemeralStorage]; ok && l.Value() != 0 {
			limits[c.Name] = l
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy == nil || *c.RestartPolicy != v1.ContainerRestartPolicyAlways {
			continue // only sidecars run beside the others
		}
		if l, ok := c.Resources.Limits[v1.ResourceEphemeralStorage]; ok && l.Value() != 0 {
			limits[c.Name] = l
		}
	}
	for _, cs := range ps.Containers {
		used := int64(cs.LogsBytes)
		if !dedicatedImageFs {
			// The writable layer counts only when it is on the nodefs.
			used += int64(cs.RootfsBytes)
		}
		if l, ok := limits[cs.Name]; ok && l.Cmp(*resource.NewQuantity(used, resource.BinarySI)) < 0 {
			return SignalEphemeralContainerFsLimit, fmt.Sprintf(containerStorageMessageFmt, cs.Name, l.String()), true
		}
	}
	return "", "", false
}

// String formats d for a log, one line per fact.
func (d Decision) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "eviction round at %s", d.Time.UTC().Format(time.RFC3339))
	if len(d.Conditions) > 0 {
		fmt.Fprintf(&b, ": %v", d.Conditions)
	}
	b.WriteString("\n")
	for _, o := range d.Signals {
		fmt.Fprintf(&b, "  signal %s\n", o)
	}
	for _, mt := range d.Thresholds {
		state := "met"
		switch {
		case mt.StaleStats:
			state = "met, stats not updated"
		case mt.GracePeriodMet:
			state = "met, acting"
		case !mt.Threshold.Hard():
			state = fmt.Sprintf("met, grace period until %s", mt.FirstMet.Add(mt.Threshold.GracePeriod).UTC().Format(time.RFC3339))
		}
		if mt.HeldByMinReclaim {
			state += ", held until minimum reclaim"
		}
		fmt.Fprintf(&b, "  threshold %s: available %s, %s\n", mt.Threshold,
			formatAmount(mt.Observed.Available, mt.Observed.Signal.quantityFormat()), state)
	}
	for _, e := range d.LocalStorage {
		fmt.Fprintf(&b, "  evict %s\n", e)
	}
	for _, e := range d.Protected {
		fmt.Fprintf(&b, "  spare critical %s\n", e)
	}
	if s := d.Starved; s != nil {
		fmt.Fprintf(&b, "  reclaim %s for %s", s.Resource, s.Threshold)
		if len(s.NodeReclaim) > 0 {
			fmt.Fprintf(&b, ", first %v", s.NodeReclaim)
		}
		b.WriteString("\n")
		for i, rp := range s.Ranking {
			fmt.Fprintf(&b, "  rank %d %s\n", i+1, rp)
		}
		if s.Victim != nil {
			fmt.Fprintf(&b, "  evict %s\n", s.Victim)
		} else {
			b.WriteString("  no pod to evict\n")
		}
	}
	return b.String()
}

// String formats the eviction as "ns/name (signal, grace 1s): message".
func (e Eviction) String() string {
	return fmt.Sprintf("%s (%s, grace %ds): %s", podName(e.Pod), e.Signal, e.GracePeriodSeconds, strings.TrimSpace(e.Message))
}
