package runtimetest

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.uber.org/zap"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

type container struct {
	id          string
	seq         uint64 // creation order, to break ties between exits due together
	sandbox     *sandbox
	name        string
	attempt     uint32
	image       *runtimeapi.ImageSpec // as requested; private copies, never handed out
	imageID     string
	labels      map[string]string
	annotations map[string]string
	mounts      []*runtimeapi.Mount
	resources   *runtimeapi.ContainerResources
	logPath     string
	stopSignal  runtimeapi.Signal
	nameKey     string
	prog        program

	state     runtimeapi.ContainerState
	created   time.Time
	started   time.Time // zero until started
	finished  time.Time // zero until exited
	exitCode  int32
	reason    string
	message   string
	signalled bool          // the stop signal was sent
	exited    chan struct{} // closed when the container exits
	removed   bool

	// While running, the scheduled ends of the container: its own exit,
	// its answer to the stop signal, and one kill per waiting
	// StopContainer. The earliest is queued in Runtime.exits as dueAt and
	// dueExit, so that every call sees it once due. timer settles the
	// earliest end that no StopContainer times itself.
	ends      []*end
	dueAt     time.Time
	dueExit   exitStatus
	heapIndex int // in Runtime.exits; -1 when not queued
	timer     clock.Timer

	usage    Usage
	cpuTotal uint64    // core-nanoseconds used up to cpuSince
	cpuSince time.Time // when usage.CPUNanoCores last started counting
}

func (c *container) ident() string { return c.id }
func (c *container) gone() bool    { return c.removed }

type end struct {
	at   time.Time
	exit exitStatus
	// kill: the kill of a StopContainer call, which waits for it on a
	// timer of its own.
	kill bool
}

// exitStatus is how a process ended.
type exitStatus struct {
	code int32
	oom  bool
}

// killed is the end of a process killed with SIGKILL.
func killed() exitStatus { return exitStatus{code: 137} }

func statusOf(e Exit) exitStatus {
	if e.OOMKilled {
		return exitStatus{code: 137, oom: true}
	}
	return exitStatus{code: e.Code}
}

// reason is the status reason containerd gives an exit.
func (s exitStatus) reason() string {
	switch {
	case s.oom:
		return "OOMKilled"
	case s.code == 0:
		return "Completed"
	}
	return "Error"
}

// unixNanos is a CRI timestamp: 0 for a time that has not come.
func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func (r *Runtime) containerLocked(id string) (*container, error) {
	return resolve("container", r.containers, r.containerOrder, id)
}

// containerKey is the name containerd reserves for a container: unique
// per pod, metadata name and attempt.
func containerKey(md *runtimeapi.ContainerMetadata, pod *runtimeapi.PodSandboxMetadata) string {
	return fmt.Sprintf("%s_%s_%s_%s_%d", md.GetName(), pod.GetName(), pod.GetNamespace(), pod.GetUid(), md.GetAttempt())
}

// CreateContainer implements core.ContainerCreator. The sandbox must exist
// (else core.ErrNotFound) and be ready, the image must be present (else
// core.ErrNotFound naming it), and no other container of the pod may have
// the same metadata name and attempt (else core.ErrAlreadyExists). What the
// container will do is fixed now, from the behaviour rules or its command;
// see the package documentation.
func (r *Runtime) CreateContainer(ctx context.Context, sandboxID string, config *runtimeapi.ContainerConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error) {
	if err := r.enter(ctx, "CreateContainer"); err != nil {
		return "", err
	}
	md := config.GetMetadata()
	if md == nil {
		return "", fmt.Errorf("create container in sandbox %s: %w: config has no metadata", sandboxID, core.ErrInvalid)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.settleLocked()
	s, err := r.sandboxLocked(sandboxID)
	if err != nil {
		return "", fmt.Errorf("create container %q: %w", md.GetName(), err)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("create container %q of pod %s: %w", md.GetName(), s.podRef(), fmt.Errorf(format, args...))
	}
	if s.state != runtimeapi.PodSandboxState_SANDBOX_READY {
		return "", fail("sandbox %s is not ready", s.id)
	}
	key := containerKey(md, s.meta)
	if other, ok := r.containerNames[key]; ok {
		return "", fail("%w: name %q is reserved for container %s", core.ErrAlreadyExists, key, other)
	}
	requested := config.GetImage().GetImage()
	img := r.images.resolve(requested)
	if img == nil {
		return "", fail("image %q: %w", requested, core.ErrNotFound)
	}
	var prog program
	if b, ok := r.behaviorLocked(img, requested, s.meta.GetName(), md.GetName()); ok {
		prog = behaviorProgram(b)
	} else {
		pid1 := config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid() == runtimeapi.NamespaceMode_CONTAINER
		prog = commandProgram(append(slices.Clone(config.GetCommand()), config.GetArgs()...), pid1)
	}
	var logPath string
	if config.GetLogPath() != "" && s.logDir != "" {
		logPath = s.logDir + "/" + config.GetLogPath()
	}
	resources := &runtimeapi.ContainerResources{Linux: copyLinuxResources(config.GetLinux().GetResources())}
	if w := config.GetWindows().GetResources(); w != nil {
		resources = &runtimeapi.ContainerResources{Windows: copyWindowsResources(w)}
	}
	r.seq++
	c := &container{
		id:          newID(),
		seq:         r.seq,
		sandbox:     s,
		name:        md.GetName(),
		attempt:     md.GetAttempt(),
		image:       copyImageSpec(config.GetImage()),
		imageID:     img.id,
		labels:      maps.Clone(config.GetLabels()),
		annotations: maps.Clone(config.GetAnnotations()),
		mounts:      copyMounts(config.GetMounts()),
		resources:   resources,
		logPath:     logPath,
		stopSignal:  config.GetStopSignal(),
		nameKey:     key,
		prog:        prog,
		state:       runtimeapi.ContainerState_CONTAINER_CREATED,
		created:     now,
		exited:      make(chan struct{}),
		heapIndex:   -1,
	}
	r.containers[c.id] = c
	r.containerOrder = append(r.containerOrder, c)
	r.containerNames[key] = c.id
	s.containers = append(s.containers, c)
	r.emitLocked(c.id, c.sandbox, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, now)
	r.debugContainer("container created", c)
	return c.id, nil
}

// StartContainer implements core.ContainerStarter. Only a created
// container in a ready sandbox can start. A container whose behaviour has
// a StartError is left exited with code 128 and reason "StartError".
func (r *Runtime) StartContainer(ctx context.Context, containerID string) error {
	if err := r.enter(ctx, "StartContainer"); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.settleLocked()
	c, err := r.containerLocked(containerID)
	if err != nil {
		return fmt.Errorf("start container: %w", err)
	}
	if c.state != runtimeapi.ContainerState_CONTAINER_CREATED {
		return fmt.Errorf("start container %s: container is in %s state", c.id, c.state)
	}
	if c.sandbox.state != runtimeapi.PodSandboxState_SANDBOX_READY {
		return fmt.Errorf("start container %s: sandbox %s is not ready", c.id, c.sandbox.id)
	}
	if err := c.prog.startErr; err != nil {
		c.state, c.finished = runtimeapi.ContainerState_CONTAINER_EXITED, now
		c.exitCode, c.reason, c.message = 128, "StartError", err.Error()
		close(c.exited)
		r.debugContainer("container failed to start", c)
		return fmt.Errorf("start container %s: %w", c.id, err)
	}
	c.state, c.started, c.cpuSince = runtimeapi.ContainerState_CONTAINER_RUNNING, now, now
	r.emitLocked(c.id, c.sandbox, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, now)
	r.debugContainer("container started", c)
	if e := c.prog.exit; e != nil {
		r.addEndLocked(c, *e, now)
		r.settleLocked() // it may end at once
	}
	return nil
}

// maxStopTimeout bounds StopContainer's timeout so that deadlines stay
// representable.
const maxStopTimeout = int64(100 * 365 * 24 * time.Hour / time.Second)

// StopContainer implements core.ContainerStopper. With a timeout it sends
// the stop signal, which the container answers as its behaviour or command
// says, and kills it (exit code 137) if it still runs when timeout seconds
// have passed on the injected clock; with timeout 0 it kills at once. It
// returns once the container has exited. If ctx ends first, it returns
// ctx's error and the kill is called off, as in containerd. Stopping a
// container that is not running succeeds; an unknown ID is
// core.ErrNotFound.
func (r *Runtime) StopContainer(ctx context.Context, containerID string, timeout int64) error {
	if err := r.enter(ctx, "StopContainer"); err != nil {
		return err
	}
	r.mu.Lock()
	now := r.settleLocked()
	c, err := r.containerLocked(containerID)
	if err != nil {
		r.mu.Unlock()
		return fmt.Errorf("stop container: %w", err)
	}
	if c.state != runtimeapi.ContainerState_CONTAINER_RUNNING {
		r.mu.Unlock()
		return nil
	}
	if timeout <= 0 {
		r.exitLocked(c, now, killed())
		r.mu.Unlock()
		return nil
	}
	// The signal is sent once, however many stops wait (as in containerd).
	if !c.signalled {
		c.signalled = true
		if e, ok := c.prog.onStop(now.Sub(c.started)); ok {
			r.addEndLocked(c, e, now)
		}
	}
	grace := time.Duration(min(timeout, maxStopTimeout)) * time.Second
	kill := &end{at: now.Add(grace), exit: killed(), kill: true}
	c.ends = append(c.ends, kill)
	r.rescheduleLocked(c, now)
	r.settleLocked()
	exited := c.exited
	r.mu.Unlock()

	// A fake clock fires a timer that is already due only when it is next
	// stepped: settle such a kill now.
	d := kill.at.Sub(r.clock.Now())
	if d <= 0 {
		r.settleNow()
		return nil
	}
	t := r.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-exited:
		return nil
	case <-t.C():
		r.settleNow() // the kill is due
		return nil
	case <-ctx.Done():
		r.mu.Lock()
		r.dropEndLocked(c, kill, r.clock.Now())
		r.mu.Unlock()
		return fmt.Errorf("stop container %s: %w", c.id, ctxErr(ctx))
	}
}

// RemoveContainer implements core.ContainerRemover. A running container is
// killed first, as containerd does. Removing an unknown container
// succeeds.
func (r *Runtime) RemoveContainer(ctx context.Context, containerID string) error {
	if err := r.enter(ctx, "RemoveContainer"); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.settleLocked()
	c, err := r.containerLocked(containerID)
	if errors.Is(err, core.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove container: %w", err)
	}
	r.removeContainerLocked(c, now)
	return nil
}

func (r *Runtime) removeContainerLocked(c *container, now time.Time) {
	if c.state == runtimeapi.ContainerState_CONTAINER_RUNNING {
		r.exitLocked(c, now, killed())
	}
	c.removed = true
	delete(r.containers, c.id)
	delete(r.containerNames, c.nameKey)
	c.sandbox.containers = slices.DeleteFunc(c.sandbox.containers, func(x *container) bool { return x == c })
	if len(r.containerOrder) > 2*len(r.containers)+16 {
		r.containerOrder = slices.DeleteFunc(r.containerOrder, (*container).gone)
	}
	r.emitLocked(c.id, c.sandbox, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT, now)
	r.debugContainer("container removed", c)
}

// ExitContainer makes a running container end as e says, e.After from
// now: a crash, or an OOM kill, driven by the test. A container that is
// not running is left alone.
func (r *Runtime) ExitContainer(containerID string, e Exit) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.settleLocked()
	c, err := r.containerLocked(containerID)
	if err != nil {
		return fmt.Errorf("exit container: %w", err)
	}
	if c.state == runtimeapi.ContainerState_CONTAINER_RUNNING {
		r.addEndLocked(c, e, now)
		r.settleLocked()
	}
	return nil
}

// addEndLocked schedules a running container to end as e says, e.After
// from now. An end Forever away never comes.
func (r *Runtime) addEndLocked(c *container, e Exit, now time.Time) {
	if e.After >= Forever {
		return
	}
	c.ends = append(c.ends, &end{at: now.Add(max(e.After, 0)), exit: statusOf(e)})
	r.rescheduleLocked(c, now)
}

// dropEndLocked calls off a scheduled end, if the container still runs.
func (r *Runtime) dropEndLocked(c *container, e *end, now time.Time) {
	if i := slices.Index(c.ends, e); i >= 0 {
		c.ends = slices.Delete(c.ends, i, i+1)
		r.rescheduleLocked(c, now)
	}
}

// rescheduleLocked queues the earliest end of c and arms its timer.
func (r *Runtime) rescheduleLocked(c *container, now time.Time) {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	var first, timed *end
	for _, e := range c.ends {
		if first == nil || e.at.Before(first.at) {
			first = e
		}
		if !e.kill && (timed == nil || e.at.Before(timed.at)) {
			timed = e
		}
	}
	switch {
	case first != nil:
		c.dueAt, c.dueExit = first.at, first.exit
		if c.heapIndex >= 0 {
			heap.Fix(&r.exits, c.heapIndex)
		} else {
			heap.Push(&r.exits, c)
		}
	case c.heapIndex >= 0:
		heap.Remove(&r.exits, c.heapIndex)
	}
	if timed != nil && timed.at.After(now) {
		c.timer = r.clock.AfterFunc(timed.at.Sub(now), r.fire)
	}
}

// exitLocked ends a running container at the given time.
func (r *Runtime) exitLocked(c *container, at time.Time, st exitStatus) {
	if c.heapIndex >= 0 {
		heap.Remove(&r.exits, c.heapIndex)
	}
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.ends = nil
	c.cpuTotal = c.cpuAt(at)
	c.state, c.finished = runtimeapi.ContainerState_CONTAINER_EXITED, at
	c.exitCode, c.reason = st.code, st.reason()
	close(c.exited)
	r.emitLocked(c.id, c.sandbox, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, at)
	r.debugContainer("container exited", c)
}

// ContainerStatus implements core.ContainerStatuser. verbose is ignored.
func (r *Runtime) ContainerStatus(ctx context.Context, containerID string, verbose bool) (*runtimeapi.ContainerStatusResponse, error) {
	if err := r.enter(ctx, "ContainerStatus"); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.settleLocked()
	c, err := r.containerLocked(containerID)
	if err != nil {
		return nil, fmt.Errorf("status of container: %w", err)
	}
	return &runtimeapi.ContainerStatusResponse{Status: r.containerStatusLocked(c)}, nil
}

func (r *Runtime) containerStatusLocked(c *container) *runtimeapi.ContainerStatus {
	// As containerd: the image is named by its tag and referred to by its
	// digest while it is present.
	spec, ref := copyImageSpec(c.image), c.imageID
	if img := r.images.byID[c.imageID]; img != nil {
		if len(img.tags) > 0 {
			spec = &runtimeapi.ImageSpec{Image: img.tags[0]}
		}
		if len(img.digests) > 0 {
			ref = img.digests[0]
		}
	}
	return &runtimeapi.ContainerStatus{
		Id:          c.id,
		Metadata:    &runtimeapi.ContainerMetadata{Name: c.name, Attempt: c.attempt},
		State:       c.state,
		CreatedAt:   c.created.UnixNano(),
		StartedAt:   unixNanos(c.started),
		FinishedAt:  unixNanos(c.finished),
		ExitCode:    c.exitCode,
		Image:       spec,
		ImageRef:    ref,
		ImageId:     c.imageID,
		Reason:      c.reason,
		Message:     c.message,
		Labels:      maps.Clone(c.labels),
		Annotations: maps.Clone(c.annotations),
		Mounts:      copyMounts(c.mounts),
		LogPath:     c.logPath,
		Resources:   copyResources(c.resources),
		StopSignal:  c.stopSignal,
	}
}

// ListContainers implements core.ContainerLister. Containers are listed in
// the order they were created. Filter IDs may be unique prefixes; an
// unknown one gives an empty list.
func (r *Runtime) ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	if err := r.enter(ctx, "ListContainers"); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.settleLocked()
	matches, ok := r.filterContainersLocked(filter.GetId(), filter.GetPodSandboxId(), filter.GetLabelSelector())
	if !ok {
		return []*runtimeapi.Container{}, nil
	}
	if st := filter.GetState(); st != nil {
		matches = slices.DeleteFunc(matches, func(c *container) bool { return c.state != st.GetState() })
	}
	// One allocation per kind of object for the whole list.
	out := make([]*runtimeapi.Container, len(matches))
	objs := make([]runtimeapi.Container, len(matches))
	metas := make([]runtimeapi.ContainerMetadata, len(matches))
	specs := make([]runtimeapi.ImageSpec, len(matches))
	for i, c := range matches {
		m := &metas[i]
		m.Name, m.Attempt = c.name, c.attempt
		spec := &specs[i]
		copyImageSpecInto(spec, c.image)
		o := &objs[i]
		o.Id, o.PodSandboxId, o.Metadata, o.Image = c.id, c.sandbox.id, m, spec
		o.ImageRef, o.ImageId, o.State, o.CreatedAt = c.imageID, c.imageID, c.state, c.created.UnixNano()
		o.Labels, o.Annotations = maps.Clone(c.labels), maps.Clone(c.annotations)
		out[i] = o
	}
	return out, nil
}

// filterContainersLocked returns the containers a list filter selects by
// ID, sandbox and labels, or false when an ID in it matches nothing.
func (r *Runtime) filterContainersLocked(id, sandboxID string, selector map[string]string) ([]*container, bool) {
	candidates := r.containerOrder
	var s *sandbox
	if sandboxID != "" {
		var err error
		if s, err = r.sandboxLocked(sandboxID); err != nil {
			return nil, false
		}
		candidates = s.containers
	}
	if id != "" {
		c, err := r.containerLocked(id)
		if err != nil || (s != nil && c.sandbox != s) {
			return nil, false
		}
		candidates = []*container{c}
	}
	matches := make([]*container, 0, len(candidates))
	for _, c := range candidates {
		if !c.removed && matchLabels(selector, c.labels) {
			matches = append(matches, c)
		}
	}
	return matches, true
}

// UpdateContainerResources implements core.ResourceUpdater. As in
// containerd, the non-zero Linux fields of resources replace the
// container's (OOM score adjustment excepted) and Windows resources replace
// the container's; ContainerStatus reports the result.
func (r *Runtime) UpdateContainerResources(ctx context.Context, containerID string, resources *runtimeapi.ContainerResources) error {
	if err := r.enter(ctx, "UpdateContainerResources"); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.settleLocked()
	c, err := r.containerLocked(containerID)
	if err != nil {
		return fmt.Errorf("update resources of container: %w", err)
	}
	if l := resources.GetLinux(); l != nil {
		c.resources = &runtimeapi.ContainerResources{Linux: mergeLinuxResources(c.resources.GetLinux(), l)}
	}
	if w := resources.GetWindows(); w != nil {
		c.resources = &runtimeapi.ContainerResources{Windows: copyWindowsResources(w)}
	}
	return nil
}

func (r *Runtime) debugSandbox(msg string, s *sandbox) {
	if ce := r.log.Check(zap.DebugLevel, msg); ce != nil {
		ce.Write(zap.String("sandbox", s.id), zap.String("pod", s.podRef()), zap.Stringer("state", s.state))
	}
}

func (r *Runtime) debugContainer(msg string, c *container) {
	if ce := r.log.Check(zap.DebugLevel, msg); ce != nil {
		ce.Write(zap.String("container", c.id), zap.String("name", c.name), zap.String("pod", c.sandbox.podRef()),
			zap.Stringer("state", c.state), zap.Int32("exitCode", c.exitCode), zap.String("reason", c.reason))
	}
}

// exitQueue is a min-heap of running containers by their earliest end.
type exitQueue []*container

func (q exitQueue) Len() int { return len(q) }
func (q exitQueue) Less(i, j int) bool {
	if !q[i].dueAt.Equal(q[j].dueAt) {
		return q[i].dueAt.Before(q[j].dueAt)
	}
	return q[i].seq < q[j].seq
}
func (q exitQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].heapIndex, q[j].heapIndex = i, j
}
func (q *exitQueue) Push(x any) {
	c := x.(*container)
	c.heapIndex = len(*q)
	*q = append(*q, c)
}
func (q *exitQueue) Pop() any {
	old := *q
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	c.heapIndex = -1
	return c
}
