package runtimetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

type sandbox struct {
	id             string
	meta           *runtimeapi.PodSandboxMetadata // private copies, never handed out
	labels         map[string]string
	annotations    map[string]string
	nsOpts         *runtimeapi.NamespaceOption
	runtimeHandler string
	logDir         string
	nameKey        string
	createdAt      int64

	state      runtimeapi.PodSandboxState
	ip         string
	ipOffset   uint32 // in the address pool; 0 when the address was released
	containers []*container
	removed    bool
}

func (s *sandbox) ident() string { return s.id }
func (s *sandbox) gone() bool    { return s.removed }

// podRef names a sandbox's pod in messages.
func (s *sandbox) podRef() string { return s.meta.GetNamespace() + "/" + s.meta.GetName() }

// record is a sandbox or a container: an object found by ID.
type record interface {
	ident() string
	gone() bool
}

// resolve finds an object by its ID or, as containerd does, by an
// unambiguous prefix of it.
func resolve[T record](kind string, byID map[string]T, order []T, id string) (T, error) {
	if v, ok := byID[id]; ok {
		return v, nil
	}
	var found T
	n := 0
	if id != "" {
		for _, v := range order {
			if !v.gone() && strings.HasPrefix(v.ident(), id) {
				found = v
				n++
			}
		}
	}
	switch n {
	case 0:
		return found, fmt.Errorf("%s %q: %w", kind, id, core.ErrNotFound)
	case 1:
		return found, nil
	}
	var zero T
	return zero, fmt.Errorf("%s ID prefix %q: %w: it matches %d objects", kind, id, core.ErrInvalid, n)
}

func (r *Runtime) sandboxLocked(id string) (*sandbox, error) {
	return resolve("sandbox", r.sandboxes, r.sandboxOrder, id)
}

// sandboxKey is the name containerd reserves for a sandbox.
func sandboxKey(md *runtimeapi.PodSandboxMetadata) string {
	return fmt.Sprintf("%s_%s_%s_%d", md.GetName(), md.GetNamespace(), md.GetUid(), md.GetAttempt())
}

// RunPodSandbox implements core.SandboxRunner. The sandbox is ready at
// once. A sandbox on the pod network gets an address from 10.88.0.0/16; a
// host-network one (network namespace mode NODE) has none. Another sandbox
// with the same name, namespace, UID and attempt is core.ErrAlreadyExists.
func (r *Runtime) RunPodSandbox(ctx context.Context, config *runtimeapi.PodSandboxConfig, runtimeHandler string) (string, error) {
	if err := r.enter(ctx, "RunPodSandbox"); err != nil {
		return "", err
	}
	md := config.GetMetadata()
	if md == nil {
		return "", fmt.Errorf("run pod sandbox: %w: config has no metadata", core.ErrInvalid)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("run sandbox of pod %s/%s (uid %s, attempt %d): %w",
			md.GetNamespace(), md.GetName(), md.GetUid(), md.GetAttempt(), fmt.Errorf(format, args...))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.settleLocked()
	key := sandboxKey(md)
	if other, ok := r.sandboxNames[key]; ok {
		return "", fail("%w: name %q is reserved for sandbox %s", core.ErrAlreadyExists, key, other)
	}
	nsOpts := copyNamespaceOption(config.GetLinux().GetSecurityContext().GetNamespaceOptions())
	if nsOpts == nil {
		nsOpts = &runtimeapi.NamespaceOption{}
	}
	s := &sandbox{
		id:             newID(),
		meta:           copyPodSandboxMetadata(md),
		labels:         maps.Clone(config.GetLabels()),
		annotations:    maps.Clone(config.GetAnnotations()),
		nsOpts:         nsOpts,
		runtimeHandler: runtimeHandler,
		logDir:         config.GetLogDirectory(),
		nameKey:        key,
		createdAt:      now.UnixNano(),
		state:          runtimeapi.PodSandboxState_SANDBOX_READY,
	}
	if nsOpts.GetNetwork() != runtimeapi.NamespaceMode_NODE {
		if ready, reason := r.conditionLocked(runtimeapi.NetworkReady); !ready {
			return "", fail("%w: network is not ready: %s", core.ErrUnavailable, reason)
		}
		var ok bool
		if s.ip, s.ipOffset, ok = r.ips.allocate(); !ok {
			return "", fail("%w: no pod address left", core.ErrUnavailable)
		}
	}
	r.sandboxes[s.id] = s
	r.sandboxOrder = append(r.sandboxOrder, s)
	r.sandboxNames[key] = s.id
	r.emitLocked(s.id, s, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, now)
	r.emitLocked(s.id, s, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, now)
	r.debugSandbox("sandbox running", s)
	return s.id, nil
}

// StopPodSandbox implements core.SandboxStopper. It kills the sandbox's
// running containers at once (exit code 137), as containerd does, and
// releases its address. An unknown ID is core.ErrNotFound, as in
// containerd.
func (r *Runtime) StopPodSandbox(ctx context.Context, sandboxID string) error {
	if err := r.enter(ctx, "StopPodSandbox"); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.settleLocked()
	s, err := r.sandboxLocked(sandboxID)
	if err != nil {
		return fmt.Errorf("stop pod sandbox: %w", err)
	}
	r.stopSandboxLocked(s, now)
	return nil
}

func (r *Runtime) stopSandboxLocked(s *sandbox, now time.Time) {
	if s.state != runtimeapi.PodSandboxState_SANDBOX_READY {
		return
	}
	for _, c := range s.containers {
		if c.state == runtimeapi.ContainerState_CONTAINER_RUNNING {
			r.exitLocked(c, now, killed())
		}
	}
	s.state = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	r.ips.release(s.ipOffset)
	s.ipOffset = 0
	r.emitLocked(s.id, s, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, now)
	r.debugSandbox("sandbox stopped", s)
}

// RemovePodSandbox implements core.SandboxRemover. It stops a ready
// sandbox first and removes its containers, as containerd does. Removing
// an unknown sandbox succeeds.
func (r *Runtime) RemovePodSandbox(ctx context.Context, sandboxID string) error {
	if err := r.enter(ctx, "RemovePodSandbox"); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.settleLocked()
	s, err := r.sandboxLocked(sandboxID)
	if errors.Is(err, core.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove pod sandbox: %w", err)
	}
	r.stopSandboxLocked(s, now)
	for _, c := range slices.Clone(s.containers) {
		r.removeContainerLocked(c, now)
	}
	s.removed = true
	delete(r.sandboxes, s.id)
	delete(r.sandboxNames, s.nameKey)
	if len(r.sandboxOrder) > 2*len(r.sandboxes)+16 {
		r.sandboxOrder = slices.DeleteFunc(r.sandboxOrder, (*sandbox).gone)
	}
	r.emitLocked(s.id, s, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT, now)
	r.debugSandbox("sandbox removed", s)
	return nil
}

// PodSandboxStatus implements core.SandboxStatuser. The response also
// carries the statuses of the sandbox's containers, as containerd 2
// does. verbose is ignored.
func (r *Runtime) PodSandboxStatus(ctx context.Context, sandboxID string, verbose bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	if err := r.enter(ctx, "PodSandboxStatus"); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.settleLocked()
	s, err := r.sandboxLocked(sandboxID)
	if err != nil {
		return nil, fmt.Errorf("status of pod sandbox: %w", err)
	}
	return &runtimeapi.PodSandboxStatusResponse{
		Status:             r.sandboxStatusLocked(s),
		ContainersStatuses: r.containerStatusesLocked(s),
		Timestamp:          now.UnixNano(),
	}, nil
}

func (r *Runtime) sandboxStatusLocked(s *sandbox) *runtimeapi.PodSandboxStatus {
	return &runtimeapi.PodSandboxStatus{
		Id:             s.id,
		Metadata:       copyPodSandboxMetadata(s.meta),
		State:          s.state,
		CreatedAt:      s.createdAt,
		Network:        &runtimeapi.PodSandboxNetworkStatus{Ip: s.ip},
		Linux:          &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: copyNamespaceOption(s.nsOpts)}},
		Labels:         maps.Clone(s.labels),
		Annotations:    maps.Clone(s.annotations),
		RuntimeHandler: s.runtimeHandler,
	}
}

func (r *Runtime) containerStatusesLocked(s *sandbox) []*runtimeapi.ContainerStatus {
	out := make([]*runtimeapi.ContainerStatus, len(s.containers))
	for i, c := range s.containers {
		out[i] = r.containerStatusLocked(c)
	}
	return out
}

// ListPodSandbox implements core.SandboxLister. Sandboxes are listed in
// the order they were created. A filter ID may be a unique prefix.
func (r *Runtime) ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	if err := r.enter(ctx, "ListPodSandbox"); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.settleLocked()
	candidates := r.sandboxOrder
	if id := filter.GetId(); id != "" {
		s, err := r.sandboxLocked(id)
		if err != nil {
			return []*runtimeapi.PodSandbox{}, nil
		}
		candidates = []*sandbox{s}
	}
	matches := make([]*sandbox, 0, len(candidates))
	for _, s := range candidates {
		if s.removed ||
			(filter.GetState() != nil && filter.GetState().GetState() != s.state) ||
			!matchLabels(filter.GetLabelSelector(), s.labels) {
			continue
		}
		matches = append(matches, s)
	}
	// One allocation per kind of object for the whole list.
	out := make([]*runtimeapi.PodSandbox, len(matches))
	objs := make([]runtimeapi.PodSandbox, len(matches))
	metas := make([]runtimeapi.PodSandboxMetadata, len(matches))
	for i, s := range matches {
		m := &metas[i]
		m.Name, m.Namespace, m.Uid, m.Attempt = s.meta.GetName(), s.meta.GetNamespace(), s.meta.GetUid(), s.meta.GetAttempt()
		o := &objs[i]
		o.Id, o.Metadata, o.State, o.CreatedAt = s.id, m, s.state, s.createdAt
		o.Labels, o.Annotations, o.RuntimeHandler = maps.Clone(s.labels), maps.Clone(s.annotations), s.runtimeHandler
		out[i] = o
	}
	return out, nil
}

// matchLabels reports whether labels hold every pair of selector.
func matchLabels(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// ipPool hands out the addresses of 10.88.0.0/16 (containerd's default
// CNI range), skipping the network, gateway and broadcast addresses.
type ipPool struct {
	next uint32
	used map[uint32]bool
}

const ipPoolSize = 1 << 16

func newIPPool() ipPool { return ipPool{next: 2, used: make(map[uint32]bool)} }

func (p *ipPool) allocate() (string, uint32, bool) {
	for range ipPoolSize {
		off := p.next
		p.next = (p.next + 1) % ipPoolSize
		if off < 2 || off == ipPoolSize-1 || p.used[off] {
			continue
		}
		p.used[off] = true
		return fmt.Sprintf("10.88.%d.%d", off>>8, off&0xff), off, true
	}
	return "", 0, false
}

func (p *ipPool) release(off uint32) { delete(p.used, off) }
