package node

import (
	"fmt"
	"os"
	goruntime "runtime"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultMaxPods is how many pods a LocalNode takes, as the kubelet's
// maxPods default.
const DefaultMaxPods = 110

// LocalNode describes this machine as a Node object, for an agent without
// an apiserver: its hostname, OS and architecture labels, and its CPUs,
// memory and DefaultMaxPods as capacity and allocatable (nothing reserved).
func LocalNode() (*v1.Node, error) {
	name, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("node: hostname: %w", err)
	}
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return nil, fmt.Errorf("node: sysinfo: %w", err)
	}
	capacity := v1.ResourceList{
		v1.ResourceCPU:    *resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI),
		v1.ResourceMemory: *resource.NewQuantity(int64(si.Totalram)*int64(si.Unit), resource.BinarySI),
		v1.ResourcePods:   *resource.NewQuantity(DefaultMaxPods, resource.DecimalSI),
	}
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			v1.LabelHostname: name, v1.LabelOSStable: goruntime.GOOS, v1.LabelArchStable: goruntime.GOARCH,
		}},
		Status: v1.NodeStatus{Capacity: capacity, Allocatable: capacity.DeepCopy()},
	}, nil
}
