package eviction

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/nodekit/nodekit/core"
)

// ThresholdValue is an amount of a signal: a quantity, or a fraction of the
// signal's capacity. The zero value is no amount.
type ThresholdValue struct {
	// Quantity is the amount in the signal's unit (bytes, inodes,
	// processes). It is used when Percentage is zero.
	Quantity resource.Quantity
	// Percentage is a fraction of the signal's capacity, between 0 and 1:
	// 0.1 for "10%". It is single precision, as the kubelet keeps it, so
	// that the amounts it gives are the kubelet's to the byte.
	Percentage float32
}

// IsZero reports whether v is no amount.
func (v ThresholdValue) IsZero() bool { return v.Percentage == 0 && v.Quantity.IsZero() }

// Amount is the amount v stands for when the signal's capacity is
// capacity. A percentage is taken of the capacity and rounded down.
func (v ThresholdValue) Amount(capacity int64) int64 {
	if v.Percentage != 0 {
		return int64(float64(capacity) * float64(v.Percentage))
	}
	return v.Quantity.Value()
}

// String formats v as it is written in the configuration: "100Mi" or "10%".
func (v ThresholdValue) String() string {
	if v.Percentage != 0 {
		// Six significant digits undo the single precision: 15%, not
		// 15.000001%.
		return strconv.FormatFloat(float64(v.Percentage)*100, 'g', 6, 64) + "%"
	}
	return v.Quantity.String()
}

// quantityString is the amount v stands for as the kubelet prints it in an
// eviction message: a quantity as written, a percentage as bytes of the
// capacity in binary units, whatever the signal counts.
func (v ThresholdValue) quantityString(capacity int64) string {
	if v.Percentage != 0 {
		return formatAmount(v.Amount(capacity), resource.BinarySI)
	}
	return v.Quantity.String()
}

// Threshold is a level of a signal below which the node is under pressure.
// Every signal is an amount available, so a threshold is met when the
// observed amount is less than the threshold's.
type Threshold struct {
	// Signal is the signal the threshold is set on.
	Signal Signal
	// Value is the threshold's amount.
	Value ThresholdValue
	// GracePeriod is how long the threshold must stay met before pods are
	// evicted for it: zero for a hard threshold (evictionHard), the
	// signal's evictionSoftGracePeriod for a soft one.
	GracePeriod time.Duration
	// MinReclaim, when not zero, is how much more than Value must be
	// available before a threshold that was acted on counts as cleared:
	// eviction goes on until the signal is above Value plus MinReclaim
	// (evictionMinimumReclaim).
	MinReclaim ThresholdValue
}

// Hard reports whether t is acted on as soon as it is met.
func (t Threshold) Hard() bool { return t.GracePeriod == 0 }

// String formats t as "memory.available<100Mi", followed by the grace
// period of a soft threshold (" for 1m30s") and the minimum reclaim
// (" reclaim 500Mi").
func (t Threshold) String() string {
	s := string(t.Signal) + "<" + t.Value.String()
	if !t.Hard() {
		s += " for " + t.GracePeriod.String()
	}
	if !t.MinReclaim.IsZero() {
		s += " reclaim " + t.MinReclaim.String()
	}
	return s
}

// key identifies a threshold across rounds: its signal, value and grace
// period, as the kubelet tells thresholds apart.
func (t Threshold) key() string {
	return string(t.Signal) + "<" + t.Value.String() + "/" + t.GracePeriod.String()
}

// same reports whether a and b are the same threshold: the kubelet's
// hasThreshold, which leaves the minimum reclaim out.
func (t Threshold) same(o Threshold) bool {
	return t.Signal == o.Signal && t.GracePeriod == o.GracePeriod && sameValue(t.Value, o.Value)
}

func sameValue(a, b ThresholdValue) bool {
	if a.Percentage != 0 || b.Percentage != 0 {
		return a.Percentage == b.Percentage
	}
	return a.Quantity.Cmp(b.Quantity) == 0
}

// amount is what the signal must stay at or above for t not to be met,
// given the signal's capacity; with minReclaim, the minimum reclaim is
// added.
func (t Threshold) amount(capacity int64, minReclaim bool) int64 {
	a := t.Value.Amount(capacity)
	if minReclaim && !t.MinReclaim.IsZero() {
		a += t.MinReclaim.Amount(capacity)
	}
	return a
}

// DefaultEvictionHard returns the kubelet's hard thresholds on Linux, used
// when Config.EvictionHard is nil:
//
//	memory.available<100Mi
//	nodefs.available<10%
//	nodefs.inodesFree<5%
//	imagefs.available<15%
//	imagefs.inodesFree<5%
//
// Each call returns a new map.
func DefaultEvictionHard() map[string]string {
	return map[string]string{
		string(SignalMemoryAvailable):   "100Mi",
		string(SignalNodeFsAvailable):   "10%",
		string(SignalNodeFsInodesFree):  "5%",
		string(SignalImageFsAvailable):  "15%",
		string(SignalImageFsInodesFree): "5%",
	}
}

// ParseThresholds parses thresholds written as in the kubelet's
// configuration (KubeletConfiguration evictionHard, evictionSoft,
// evictionSoftGracePeriod and evictionMinimumReclaim): maps from a signal's
// name to a quantity ("100Mi", "1000"), a percentage of the signal's
// capacity ("10%"), a grace period ("1m30s"), or a minimum reclaim
// (quantity or percentage). It applies no defaults: see Config for those.
//
// Hard thresholds come first, then soft ones, each in the order of
// Signals. The rules are the kubelet's:
//
//   - every key names a signal of Signals;
//   - a threshold is a positive quantity or a percentage from 0% to 100%;
//     "0%" and "100%" disable the signal's threshold;
//   - each soft threshold needs a grace period, which is not negative; a
//     grace period without a soft threshold is ignored, and one of zero
//     makes the soft threshold hard;
//   - a minimum reclaim is a quantity that is not negative or a
//     percentage above 0%; it applies to the hard and the soft threshold of
//     its signal.
//
// Every mistake is reported, each naming the setting, the signal and the
// value, joined in one error that wraps core.ErrInvalid.
func ParseThresholds(hard, soft, gracePeriods, minReclaim map[string]string) ([]Threshold, error) {
	var errs []error
	bad := func(field, signal, value, format string, args ...any) {
		errs = append(errs, fmt.Errorf("eviction: %s[%q] = %q: %s: %w", field, signal, value, fmt.Sprintf(format, args...), core.ErrInvalid))
	}
	hardT := parseStatements("evictionHard", hard, bad)
	softT := parseStatements("evictionSoft", soft, bad)

	graces := make(map[Signal]time.Duration)
	for _, name := range sortedKeys(gracePeriods) {
		val := gracePeriods[name]
		if !Signal(name).Valid() {
			bad("evictionSoftGracePeriod", name, val, "unsupported eviction signal")
			continue
		}
		d, err := time.ParseDuration(val)
		switch {
		case err != nil:
			bad("evictionSoftGracePeriod", name, val, "not a duration")
		case d < 0:
			bad("evictionSoftGracePeriod", name, val, "grace period must not be negative")
		default:
			graces[Signal(name)] = d
		}
	}
	for i := range softT {
		d, ok := graces[softT[i].Signal]
		if !ok {
			bad("evictionSoft", string(softT[i].Signal), soft[string(softT[i].Signal)],
				"soft eviction threshold needs a grace period in evictionSoftGracePeriod")
		}
		softT[i].GracePeriod = d
	}

	reclaims := make(map[Signal]ThresholdValue)
	for _, name := range sortedKeys(minReclaim) {
		val := minReclaim[name]
		if !Signal(name).Valid() {
			bad("evictionMinimumReclaim", name, val, "unsupported eviction signal")
			continue
		}
		if strings.HasSuffix(val, "%") {
			p, err := parsePercentage(val)
			switch {
			case err != nil:
				bad("evictionMinimumReclaim", name, val, "not a percentage")
			case p <= 0:
				bad("evictionMinimumReclaim", name, val, "percentage must be above 0%%")
			default:
				reclaims[Signal(name)] = ThresholdValue{Percentage: p}
			}
			continue
		}
		q, err := resource.ParseQuantity(val)
		switch {
		case err != nil:
			bad("evictionMinimumReclaim", name, val, "not a quantity")
		case q.Sign() < 0:
			bad("evictionMinimumReclaim", name, val, "minimum reclaim must not be negative")
		default:
			reclaims[Signal(name)] = ThresholdValue{Quantity: q}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	out := append(hardT, softT...)
	for i := range out {
		out[i].MinReclaim = reclaims[out[i].Signal]
	}
	return out, nil
}

// parseStatements parses one map of thresholds, in signal order.
func parseStatements(field string, statements map[string]string, bad func(field, signal, value, format string, args ...any)) []Threshold {
	var out []Threshold
	for _, name := range sortedKeys(statements) {
		val := statements[name]
		s := Signal(name)
		if !s.Valid() {
			bad(field, name, val, "unsupported eviction signal")
			continue
		}
		if strings.HasSuffix(val, "%") {
			if val == "0%" || val == "100%" {
				continue // disabled
			}
			p, err := parsePercentage(val)
			switch {
			case err != nil:
				bad(field, name, val, "not a percentage")
			case p < 0:
				bad(field, name, val, "percentage must be at least 0%%")
			case p > 1:
				bad(field, name, val, "percentage must be at most 100%%")
			case p == 0:
				// 0.0% is no threshold, like 0%.
			default:
				out = append(out, Threshold{Signal: s, Value: ThresholdValue{Percentage: p}})
			}
			continue
		}
		q, err := resource.ParseQuantity(val)
		switch {
		case err != nil:
			bad(field, name, val, "not a quantity")
		case q.Sign() <= 0:
			bad(field, name, val, "threshold must be positive")
		default:
			out = append(out, Threshold{Signal: s, Value: ThresholdValue{Quantity: q}})
		}
	}
	return out
}

// parsePercentage parses "12.5%" into 0.125, in single precision as the
// kubelet does.
func parsePercentage(s string) (float32, error) {
	v, err := strconv.ParseFloat(strings.TrimRight(s, "%"), 32)
	if err != nil {
		return 0, err
	}
	return float32(v) / 100, nil
}

// sortedKeys returns the keys of m, known signals first in signal order,
// then the others by name, so that parsing is deterministic.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if d := Signal(a).order() - Signal(b).order(); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	return keys
}

// formatAmount prints an amount as the kubelet does, through a
// resource.Quantity in the given format.
func formatAmount(v int64, f resource.Format) string {
	return resource.NewQuantity(v, f).String()
}

// thresholdsMet returns the thresholds met by the observations, ignoring
// grace periods: the kubelet's thresholdsMet. With minReclaim, a threshold
// counts as met until its signal is above its amount plus its minimum
// reclaim. Thresholds on signals not observed are left out.
func thresholdsMet(thresholds []Threshold, obs []SignalObservation, minReclaim bool) []Threshold {
	var out []Threshold
	for _, t := range thresholds {
		o, ok := observed(obs, t.Signal)
		if !ok {
			continue
		}
		if t.amount(o.Capacity, minReclaim) > o.Available {
			out = append(out, t)
		}
	}
	return out
}

// mergeThresholds appends to a the thresholds of b it does not hold.
func mergeThresholds(a, b []Threshold) []Threshold {
	out := slices.Clip(a)
	for _, t := range b {
		if !slices.ContainsFunc(out, t.same) {
			out = append(out, t)
		}
	}
	return out
}

// compareForReclaim orders thresholds by which the kubelet reclaims first:
// memory before everything else. The rest follow signal order, and a hard
// threshold goes before a soft one on the same signal, so that the choice
// is always the same (the kubelet leaves it to map order).
func compareForReclaim(a, b Threshold) int {
	if d := cmp.Compare(a.Signal.order(), b.Signal.order()); d != 0 {
		return d // memory signals come first in signal order
	}
	return cmp.Compare(a.GracePeriod, b.GracePeriod)
}
