// Package cpumanager places pods in the QoS cgroup hierarchy and, under the
// static policy, pins exclusive CPUs to Guaranteed pods, with a checkpoint
// compatible with the kubelet's.
//
// The package holds no code yet.
package cpumanager
