package cpumanager

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"

	"k8s.io/utils/cpuset"
)

// CheckpointFileName is the name of the CPU manager's checkpoint in the
// kubelet's root directory (/var/lib/kubelet/cpu_manager_state).
const CheckpointFileName = "cpu_manager_state"

// ErrCorruptCheckpoint marks a checkpoint that cannot be read: a checksum
// that does not match its content, malformed JSON or an unparsable CPU
// list. Test with errors.Is.
var ErrCorruptCheckpoint = errors.New("checkpoint is corrupted")

// ErrCheckpointMismatch marks a readable checkpoint that does not fit the
// running configuration or machine: written under another policy, with
// other reserved CPUs, or naming CPUs the machine does not have (or
// lacking some it has). Test with errors.Is.
var ErrCheckpointMismatch = errors.New("checkpoint does not match the node")

// The checkpoint is byte-compatible with the kubelet's cpu_manager_state
// (v1.37). A kubelet writes the "v4" layout: the legacy v2 fields with
// their checksum, for older kubelets, and the authoritative copy of the
// content as a JSON string in "data" with its own checksum:
//
//	{"policyName":"static","defaultCpuSet":"0,6-11","entries":{"<pod UID>":{"<container>":"1-5"}},
//	 "checksum":<v2 checksum>,"data":"{\"policyName\":...}","dataChecksum":<data checksum>}
//
// Both checksums are FNV-32a hashes of the text that
// k8s.io/utils/dump.ForHash prints for a Go value (go-spew's %#v with
// sorted map keys): for data, of the string itself; for the v2 checksum,
// of the v2 struct with its checksum field zero, under the struct name
// state.CPUManagerCheckpoint. That text is reproduced here for the few
// types involved.
//
// Reading follows the kubelet: the v4 layout, else (only if it carries no
// data at all) the v3 layout (v2 plus podEntries, whose checksum covers
// them), else v2 (where a zero checksum is accepted). The original v1
// layout, with entries keyed by container ID, is rejected, as the kubelet
// rejects it. Pod-level entries and resize baselines, written only by
// kubelets with alpha or beta features on, are read and ignored.

// checkpointV2 is the legacy layout, embedded inline in v4.
type checkpointV2 struct {
	PolicyName    string                       `json:"policyName"`
	DefaultCPUSet string                       `json:"defaultCpuSet"`
	Entries       map[string]map[string]string `json:"entries,omitempty"`
	Checksum      uint64                       `json:"checksum"`
}

// checkpointV3 adds the pod-level entries of PodLevelResourceManagers.
type checkpointV3 struct {
	PolicyName    string                       `json:"policyName"`
	DefaultCPUSet string                       `json:"defaultCpuSet"`
	Entries       map[string]map[string]string `json:"entries,omitempty"`
	PodEntries    map[string]podCPUEntry       `json:"podEntries,omitempty"`
	Checksum      uint64                       `json:"checksum"`
}

// checkpointV4 is what current kubelets (v1.37) write.
type checkpointV4 struct {
	checkpointV2
	Data         string `json:"data"`
	DataChecksum uint64 `json:"dataChecksum"`
}

// checkpointData is the JSON held in checkpointV4.Data.
type checkpointData struct {
	PolicyName    string                                `json:"policyName"`
	DefaultCPUSet string                                `json:"defaultCpuSet"`
	Entries       map[string]map[string]string          `json:"entries,omitempty"`
	PodEntries    map[string]podCPUEntry                `json:"podEntries,omitempty"`
	Baselines     map[string]map[string]containerCPUsV4 `json:"baselines,omitempty"`
}

type containerCPUsV4 struct {
	Baseline string `json:"baseline"`
}

// podCPUEntry is a pod-level assignment, a CPU list in JSON.
type podCPUEntry struct {
	cpus cpuset.CPUSet
}

func (p podCPUEntry) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		CPUSet string `json:"cpuSet,omitempty"`
	}{p.cpus.String()})
}

func (p *podCPUEntry) UnmarshalJSON(b []byte) error {
	var raw struct {
		CPUSet string `json:"cpuSet,omitempty"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	cpus, err := cpuset.Parse(raw.CPUSet)
	if err != nil {
		return fmt.Errorf("failed to parse cpuset: %w", err)
	}
	p.cpus = cpus
	return nil
}

// checksumText hashes text as the kubelet's checkpoints do.
func checksumText(text string) uint64 {
	h := fnv.New32a()
	h.Write([]byte(text))
	return uint64(h.Sum32())
}

// dataChecksum is the checksum of v4's data string.
func dataChecksum(data string) uint64 { return checksumText("(string)" + data) }

// spewEntries prints container assignments as go-spew does inside a
// struct field (after the field's type).
func spewEntries(entries map[string]map[string]string) string {
	if entries == nil {
		return "<nil>"
	}
	var b strings.Builder
	b.WriteString("map[")
	for i, pod := range slices.Sorted(maps.Keys(entries)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(pod)
		b.WriteByte(':')
		containers := entries[pod]
		if containers == nil {
			b.WriteString("<nil>")
			continue
		}
		b.WriteString("map[")
		for j, name := range slices.Sorted(maps.Keys(containers)) {
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(name)
			b.WriteByte(':')
			b.WriteString(containers[name])
		}
		b.WriteByte(']')
	}
	b.WriteByte(']')
	return b.String()
}

// spewPodEntries prints pod-level assignments as go-spew does.
func spewPodEntries(entries map[string]podCPUEntry) string {
	if entries == nil {
		return "<nil>"
	}
	var b strings.Builder
	b.WriteString("map[")
	for i, pod := range slices.Sorted(maps.Keys(entries)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(pod)
		b.WriteString(":{CPUSet:(cpuset.CPUSet){elems:(map[int]struct {})")
		// Decoding always yields a set with its map, never a nil one.
		b.WriteString("map[")
		for j, cpu := range entries[pod].cpus.List() {
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.Itoa(cpu))
			b.WriteString(":{}")
		}
		b.WriteByte(']')
		b.WriteString("}}")
	}
	b.WriteByte(']')
	return b.String()
}

// v2Checksum is the checksum of a v2 struct under the given type name.
func v2Checksum(typeName string, c *checkpointV2) uint64 {
	return checksumText("(*state." + typeName + "){PolicyName:(string)" + c.PolicyName +
		" DefaultCPUSet:(string)" + c.DefaultCPUSet +
		" Entries:(map[string]map[string]string)" + spewEntries(c.Entries) +
		" Checksum:(checksum.Checksum)0}")
}

// v3Checksum is the checksum of a v3 struct under the given type name.
func v3Checksum(typeName string, c *checkpointV3) uint64 {
	return checksumText("(*state." + typeName + "){PolicyName:(string)" + c.PolicyName +
		" DefaultCPUSet:(string)" + c.DefaultCPUSet +
		" Entries:(map[string]map[string]string)" + spewEntries(c.Entries) +
		" PodEntries:(state.PodCPUAssignments)" + spewPodEntries(c.PodEntries) +
		" Checksum:(checksum.Checksum)0}")
}

// MarshalCheckpoint encodes a state as the kubelet writes its
// cpu_manager_state file, byte for byte.
func MarshalCheckpoint(policyName string, s *State) ([]byte, error) {
	data := checkpointData{
		PolicyName:    policyName,
		DefaultCPUSet: s.DefaultCPUSet.String(),
		Entries:       make(map[string]map[string]string, len(s.Assignments)),
	}
	for pod, containers := range s.Assignments {
		data.Entries[pod] = make(map[string]string, len(containers))
		for name, cset := range containers {
			data.Entries[pod][name] = cset.String()
		}
	}
	blob, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("failed to serialize cpu manager checkpoint data: %w", err)
	}
	cp := checkpointV4{
		checkpointV2: checkpointV2{PolicyName: data.PolicyName, DefaultCPUSet: data.DefaultCPUSet, Entries: data.Entries},
		Data:         string(blob),
		DataChecksum: dataChecksum(string(blob)),
	}
	cp.Checksum = v2Checksum("CPUManagerCheckpoint", &cp.checkpointV2)
	return json.Marshal(cp)
}

// corrupt marks err as a corrupt-checkpoint error.
func corrupt(err error) error {
	if errors.Is(err, ErrCorruptCheckpoint) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrCorruptCheckpoint, err)
}

// UnmarshalCheckpoint decodes a cpu_manager_state file written by a
// kubelet (layouts v2 to v4) or by MarshalCheckpoint, verifying its
// checksum. Every failure wraps ErrCorruptCheckpoint. It returns the
// policy the file was written under and the state; the state's shared
// pool is empty for a file written under the none policy.
func UnmarshalCheckpoint(b []byte) (policyName string, s State, err error) {
	return unmarshalCheckpoint(b, "")
}

// unmarshalCheckpoint decodes b and, when wantPolicy is set, checks the
// policy before parsing the CPU lists, in the kubelet's order. A policy
// mismatch wraps ErrCheckpointMismatch.
func unmarshalCheckpoint(b []byte, wantPolicy string) (policyName string, s State, err error) {
	data, err := decodeCheckpoint(b)
	if err != nil {
		return "", State{}, corrupt(err)
	}
	if wantPolicy != "" && wantPolicy != data.PolicyName {
		return "", State{}, fmt.Errorf("%w: configured policy %q differs from state checkpoint policy %q",
			ErrCheckpointMismatch, wantPolicy, data.PolicyName)
	}
	s.DefaultCPUSet, err = cpuset.Parse(data.DefaultCPUSet)
	if err != nil {
		return "", State{}, corrupt(fmt.Errorf("could not parse default CPU set %q: %w", data.DefaultCPUSet, err))
	}
	for _, pod := range slices.Sorted(maps.Keys(data.Entries)) {
		if s.Assignments == nil {
			s.Assignments = ContainerCPUAssignments{}
		}
		s.Assignments[pod] = make(map[string]cpuset.CPUSet, len(data.Entries[pod]))
		for _, name := range slices.Sorted(maps.Keys(data.Entries[pod])) {
			text := data.Entries[pod][name]
			cset, err := cpuset.Parse(text)
			if err != nil {
				return "", State{}, corrupt(fmt.Errorf("could not parse cpuset %q for container %q in pod %q: %w", text, name, pod, err))
			}
			s.Assignments[pod][name] = cset
		}
	}
	return data.PolicyName, s, nil
}

// decodeCheckpoint finds the layout and checks its checksum, in the
// kubelet's order.
func decodeCheckpoint(b []byte) (*checkpointData, error) {
	v4 := checkpointV4{checkpointV2: checkpointV2{Entries: map[string]map[string]string{}}}
	data := checkpointData{
		Entries:    map[string]map[string]string{},
		PodEntries: map[string]podCPUEntry{},
		Baselines:  map[string]map[string]containerCPUsV4{},
	}
	err := json.Unmarshal(b, &v4)
	if err != nil {
		err = fmt.Errorf("failed to deserialize cpu manager checkpoint: %w", err)
	} else if err = json.Unmarshal([]byte(v4.Data), &data); err != nil {
		err = fmt.Errorf("failed to deserialize cpu manager checkpoint data: %w", err)
	} else if sum := dataChecksum(v4.Data); sum != v4.DataChecksum {
		err = fmt.Errorf("%w: data checksum %d, computed %d", ErrCorruptCheckpoint, v4.DataChecksum, sum)
	}
	if err == nil {
		return &data, nil
	}
	if v4.Data != "" || v4.DataChecksum != 0 {
		// A v4 file that is damaged: older layouts would misread it.
		return nil, fmt.Errorf("could not load v4 checkpoint: %w", err)
	}

	v3 := checkpointV3{Entries: map[string]map[string]string{}, PodEntries: map[string]podCPUEntry{}}
	if err := json.Unmarshal(b, &v3); err == nil {
		sum := v3.Checksum
		if sum == v3Checksum("CPUManagerCheckpointV3", &v3) || sum == v3Checksum("CPUManagerCheckpoint", &v3) {
			return &checkpointData{PolicyName: v3.PolicyName, DefaultCPUSet: v3.DefaultCPUSet, Entries: v3.Entries}, nil
		}
	}

	v2 := checkpointV2{Entries: map[string]map[string]string{}}
	if err := json.Unmarshal(b, &v2); err != nil {
		return nil, err
	}
	if v2.Checksum != 0 {
		// The kubelet accepts a zero checksum from its oldest file backend.
		if sum := v2Checksum("CPUManagerCheckpoint", &v2); v2.Checksum != sum && v2.Checksum != v2Checksum("CPUManagerCheckpointV2", &v2) {
			return nil, fmt.Errorf("%w: checksum %d, computed %d", ErrCorruptCheckpoint, v2.Checksum, sum)
		}
	}
	return &checkpointData{PolicyName: v2.PolicyName, DefaultCPUSet: v2.DefaultCPUSet, Entries: v2.Entries}, nil
}
