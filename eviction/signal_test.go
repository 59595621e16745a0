package eviction

import (
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

func TestSignalMapping(t *testing.T) {
	tests := []struct {
		signal    Signal
		resource  v1.ResourceName
		condition v1.NodeConditionType
	}{
		{SignalMemoryAvailable, v1.ResourceMemory, v1.NodeMemoryPressure},
		{SignalAllocatableMemoryAvailable, v1.ResourceMemory, v1.NodeMemoryPressure},
		{SignalNodeFsAvailable, v1.ResourceEphemeralStorage, v1.NodeDiskPressure},
		{SignalNodeFsInodesFree, ResourceInodes, v1.NodeDiskPressure},
		{SignalImageFsAvailable, v1.ResourceEphemeralStorage, v1.NodeDiskPressure},
		{SignalImageFsInodesFree, ResourceInodes, v1.NodeDiskPressure},
		{SignalContainerFsAvailable, v1.ResourceEphemeralStorage, v1.NodeDiskPressure},
		{SignalContainerFsInodesFree, ResourceInodes, v1.NodeDiskPressure},
		{SignalPIDAvailable, ResourcePIDs, v1.NodePIDPressure},
		// Not thresholds.
		{SignalEmptyDirFsLimit, "", ""},
		{SignalEphemeralPodFsLimit, "", ""},
		{SignalEphemeralContainerFsLimit, "", ""},
		{"memory.used", "", ""},
	}
	for _, tc := range tests {
		if got := tc.signal.Resource(); got != tc.resource {
			t.Errorf("%s.Resource() = %q, want %q", tc.signal, got, tc.resource)
		}
		if got := tc.signal.NodeCondition(); got != tc.condition {
			t.Errorf("%s.NodeCondition() = %q, want %q", tc.signal, got, tc.condition)
		}
		if got, want := tc.signal.Valid(), tc.resource != ""; got != want {
			t.Errorf("%s.Valid() = %t, want %t", tc.signal, got, want)
		}
	}
	want := []Signal{SignalMemoryAvailable, SignalAllocatableMemoryAvailable, SignalNodeFsAvailable, SignalNodeFsInodesFree,
		SignalImageFsAvailable, SignalImageFsInodesFree, SignalContainerFsAvailable, SignalContainerFsInodesFree, SignalPIDAvailable}
	if got := Signals(); !slices.Equal(got, want) {
		t.Errorf("Signals() = %v, want %v", got, want)
	}
}

func TestObservationsSignals(t *testing.T) {
	t1 := t0.Add(time.Second)
	t2 := t0.Add(2 * time.Second)
	nodefs := FsStats{Time: t0, CapacityBytes: 100, AvailableBytes: 40, Inodes: 1000, InodesFree: 300}
	imagefs := FsStats{Time: t1, CapacityBytes: 200, AvailableBytes: 50, Inodes: 2000, InodesFree: 400}
	containerfs := FsStats{Time: t2, CapacityBytes: 300, AvailableBytes: 60, Inodes: 3000, InodesFree: 500}
	tests := []struct {
		name string
		in   Observations
		want []SignalObservation
	}{
		{
			name: "nothing measured",
			in:   Observations{},
		},
		{
			name: "every signal",
			in: Observations{
				Memory:            MemoryStats{Time: t0, AvailableBytes: 300, WorkingSetBytes: 700},
				AllocatableMemory: MemoryStats{Time: t1, AvailableBytes: 100, WorkingSetBytes: 500},
				NodeFs:            nodefs, ImageFs: imagefs, ContainerFs: containerfs,
				PIDs:             PIDStats{Time: t2, MaxPID: 4194304, NumProcesses: 1000},
				DedicatedImageFs: true, DedicatedContainerFs: true,
			},
			want: []SignalObservation{
				{SignalMemoryAvailable, 300, 1000, t0},
				{SignalAllocatableMemoryAvailable, 100, 600, t1},
				{SignalNodeFsAvailable, 40, 100, t0},
				{SignalNodeFsInodesFree, 300, 1000, t0},
				{SignalImageFsAvailable, 50, 200, t1},
				{SignalImageFsInodesFree, 400, 2000, t1},
				{SignalContainerFsAvailable, 60, 300, t2},
				{SignalContainerFsInodesFree, 500, 3000, t2},
				{SignalPIDAvailable, 4193304, 4194304, t2},
			},
		},
		{
			name: "one filesystem: imagefs and containerfs are the nodefs",
			in:   Observations{NodeFs: nodefs},
			want: []SignalObservation{
				{SignalNodeFsAvailable, 40, 100, t0},
				{SignalNodeFsInodesFree, 300, 1000, t0},
				{SignalImageFsAvailable, 40, 100, t0},
				{SignalImageFsInodesFree, 300, 1000, t0},
				{SignalContainerFsAvailable, 40, 100, t0},
				{SignalContainerFsInodesFree, 300, 1000, t0},
			},
		},
		{
			name: "dedicated imagefs holds the writable layers",
			in:   Observations{NodeFs: nodefs, ImageFs: imagefs, DedicatedImageFs: true},
			want: []SignalObservation{
				{SignalNodeFsAvailable, 40, 100, t0},
				{SignalNodeFsInodesFree, 300, 1000, t0},
				{SignalImageFsAvailable, 50, 200, t1},
				{SignalImageFsInodesFree, 400, 2000, t1},
				{SignalContainerFsAvailable, 50, 200, t1},
				{SignalContainerFsInodesFree, 400, 2000, t1},
			},
		},
		{
			name: "split filesystems: writable layers beside the nodefs",
			in:   Observations{NodeFs: nodefs, ImageFs: imagefs, DedicatedImageFs: true, DedicatedContainerFs: true},
			want: []SignalObservation{
				{SignalNodeFsAvailable, 40, 100, t0},
				{SignalNodeFsInodesFree, 300, 1000, t0},
				{SignalImageFsAvailable, 50, 200, t1},
				{SignalImageFsInodesFree, 400, 2000, t1},
				{SignalContainerFsAvailable, 40, 100, t0},
				{SignalContainerFsInodesFree, 300, 1000, t0},
			},
		},
		{
			name: "dedicated imagefs not measured: no imagefs signal",
			in:   Observations{NodeFs: nodefs, DedicatedImageFs: true},
			want: []SignalObservation{
				{SignalNodeFsAvailable, 40, 100, t0},
				{SignalNodeFsInodesFree, 300, 1000, t0},
			},
		},
		{
			name: "a filesystem without inode counts has no inodesFree signal",
			in:   Observations{NodeFs: FsStats{Time: t0, CapacityBytes: 100, AvailableBytes: 40}, ImageFs: imagefs, ContainerFs: containerfs},
			want: []SignalObservation{
				{SignalNodeFsAvailable, 40, 100, t0},
				{SignalImageFsAvailable, 50, 200, t1},
				{SignalImageFsInodesFree, 400, 2000, t1},
				{SignalContainerFsAvailable, 60, 300, t2},
				{SignalContainerFsInodesFree, 500, 3000, t2},
			},
		},
		{
			name: "sections without a time are not measured",
			in: Observations{
				Memory: MemoryStats{AvailableBytes: 300, WorkingSetBytes: 700},
				NodeFs: FsStats{CapacityBytes: 100, AvailableBytes: 40},
				PIDs:   PIDStats{MaxPID: 100, NumProcesses: 10},
			},
		},
		{
			name: "pid.available without a maximum is not measured",
			in:   Observations{PIDs: PIDStats{Time: t0, NumProcesses: 10}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.in.signals()
			if !slices.Equal(got, tc.want) {
				t.Errorf("signals:\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestSignalObservationString(t *testing.T) {
	tests := []struct {
		in   SignalObservation
		want string
	}{
		{SignalObservation{Signal: SignalMemoryAvailable, Available: 50 * mi, Capacity: gi}, "memory.available: 50Mi of 1Gi"},
		{SignalObservation{Signal: SignalNodeFsInodesFree, Available: 5000, Capacity: 1000000}, "nodefs.inodesFree: 5k of 1M"},
		{SignalObservation{Signal: SignalPIDAvailable, Available: 12, Capacity: 4096}, "pid.available: 12 of 4096"},
	}
	for _, tc := range tests {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}
