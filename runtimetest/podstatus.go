package runtimetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

// PodStatusReader is what PodStatus reads; any core.Runtime is one.
type PodStatusReader interface {
	core.SandboxLister
	core.ContainerLister
	core.SandboxStatuser
	core.ContainerStatuser
}

// PodStatus reads a pod's runtime status straight from a runtime, as the
// PLEG would cache it: its sandboxes and containers, newest first, and the
// IPs of the newest sandbox. Tests use it where no PLEG runs. Objects that
// vanish between the list and their status are left out.
func PodStatus(ctx context.Context, rt PodStatusReader, uid types.UID) (*core.PodStatus, error) {
	sel := map[string]string{core.LabelPodUID: string(uid)}
	st := &core.PodStatus{UID: uid}
	sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", uid, err)
	}
	for _, sb := range sbs {
		resp, err := rt.PodSandboxStatus(ctx, sb.GetId(), false)
		if errors.Is(err, core.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("pod %s: %w", uid, err)
		}
		st.SandboxStatuses = append(st.SandboxStatuses, resp.GetStatus())
		st.Name, st.Namespace = sb.GetMetadata().GetName(), sb.GetMetadata().GetNamespace()
	}
	slices.SortStableFunc(st.SandboxStatuses, func(a, b *runtimeapi.PodSandboxStatus) int {
		return cmp.Compare(b.GetCreatedAt(), a.GetCreatedAt())
	})
	if len(st.SandboxStatuses) > 0 {
		st.IPs = core.SandboxIPs(st.SandboxStatuses[0])
	}
	cs, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", uid, err)
	}
	for _, c := range cs {
		resp, err := rt.ContainerStatus(ctx, c.GetId(), false)
		if errors.Is(err, core.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("pod %s: %w", uid, err)
		}
		st.ContainerStatuses = append(st.ContainerStatuses, resp.GetStatus())
	}
	slices.SortStableFunc(st.ContainerStatuses, func(a, b *runtimeapi.ContainerStatus) int {
		return cmp.Compare(b.GetCreatedAt(), a.GetCreatedAt())
	})
	return st, nil
}
