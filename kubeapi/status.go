package kubeapi

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/nodekit/nodekit/core"
)

// StatusEntry is one pod's status to write, with the version its source
// gave it; statusmgr's Cache.List gives them.
type StatusEntry struct {
	Pod     *v1.Pod
	Status  v1.PodStatus
	Version uint64
	// Finished says nothing of the pod runs any more (its worker
	// terminated). With a terminal phase in Status and the pod being
	// deleted (a deletion timestamp in the apiserver), the writer then
	// deletes the pod object once the status is written, as the kubelet
	// finishes a graceful deletion: never before its final status is
	// there for others to read.
	Finished bool
}

// DefaultStatusReconcilePeriod is how often a StatusWriter writes every
// status again, whether or not it changed: the safety net for statuses
// the apiserver lost or someone else changed, as the kubelet's status
// manager reconciles.
const DefaultStatusReconcilePeriod = 10 * time.Second

// StatusWriterConfig configures a StatusWriter.
type StatusWriterConfig struct {
	// Client of the apiserver. Required.
	Client kubernetes.Interface
	// ReconcilePeriod: default DefaultStatusReconcilePeriod.
	ReconcilePeriod time.Duration
	Clock           clock.WithTicker
	Logger          *zap.Logger
}

// StatusWriter writes pod statuses to the apiserver, as the kubelet's
// status manager: a strategic merge patch of the pod's status subresource
// that names the pod's UID, so that a pod deleted and created again under
// the same name is never given the old one's status. The status of a
// static pod (from a file or HTTP source) is written to its mirror pod. A
// pod being deleted whose worker finished is deleted once its final status
// is written (StatusEntry.Finished). A
// pod that is gone is not written again; a failed write is tried again at
// the next change or reconcile.
type StatusWriter struct {
	cfg StatusWriterConfig
	log *zap.Logger

	mu      sync.Mutex
	written map[types.UID]uint64 // version last written, by source pod UID
}

// NewStatusWriter returns a StatusWriter for cfg.
func NewStatusWriter(cfg StatusWriterConfig) (*StatusWriter, error) {
	if cfg.Client == nil {
		return nil, fmt.Errorf("kubeapi: status writer: Client is required: %w", core.ErrInvalid)
	}
	if cfg.ReconcilePeriod < 0 {
		return nil, fmt.Errorf("kubeapi: status writer: ReconcilePeriod %s must not be negative: %w", cfg.ReconcilePeriod, core.ErrInvalid)
	}
	if cfg.ReconcilePeriod == 0 {
		cfg.ReconcilePeriod = DefaultStatusReconcilePeriod
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &StatusWriter{cfg: cfg, log: cfg.Logger, written: map[types.UID]uint64{}}, nil
}

// Run writes the statuses list gives whenever changed receives and every
// ReconcilePeriod (then all of them, written or not), until ctx ends.
func (w *StatusWriter) Run(ctx context.Context, changed <-chan struct{}, list func() []StatusEntry) error {
	t := w.cfg.Clock.NewTicker(w.cfg.ReconcilePeriod)
	defer t.Stop()
	all := false
	for {
		for _, e := range list() {
			if err := w.Write(ctx, e, all); err != nil && ctx.Err() == nil {
				w.log.Warn("pod status not written; trying again later", zap.Error(err))
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
			all = false
		case <-t.C():
			all = true
		}
	}
}

// Write writes one pod's status unless that version was written already
// (force writes it anyway). A pod that is gone, or was replaced by another
// of the same name, is not an error: there is nothing to write to.
func (w *StatusWriter) Write(ctx context.Context, e StatusEntry, force bool) error {
	w.mu.Lock()
	done := w.written[e.Pod.UID] >= e.Version && e.Version != 0
	w.mu.Unlock()
	if done && !force {
		return nil
	}
	target, err := w.target(ctx, e.Pod)
	if err != nil {
		return err
	}
	if target == nil {
		w.markWritten(e)
		return nil
	}
	err = w.patch(ctx, target, e.Status)
	if err == nil {
		err = w.finishDeletion(ctx, target, e)
	}
	switch {
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		// Deleted, or replaced under the same name (the UID in the patch
		// no longer matches): nothing to write to any more.
		w.log.Debug("pod gone before its status was written", zap.String("pod", e.Pod.Namespace+"/"+e.Pod.Name), zap.Error(err))
		w.markWritten(e)
		return nil
	case err != nil:
		return fmt.Errorf("write status of pod %s/%s: %w", e.Pod.Namespace, e.Pod.Name, err)
	}
	w.markWritten(e)
	return nil
}

func (w *StatusWriter) markWritten(e StatusEntry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.written[e.Pod.UID] = max(w.written[e.Pod.UID], e.Version)
}

// Forget drops what the writer remembers of a pod that is gone for good.
func (w *StatusWriter) Forget(uid types.UID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.written, uid)
}

// target is the API object that carries pod's status, as the apiserver
// has it now: the pod itself, or a static pod's mirror pod; nil when there
// is none (the pod was deleted or replaced under its name, the static pod
// has no mirror yet).
func (w *StatusWriter) target(ctx context.Context, pod *v1.Pod) (*v1.Pod, error) {
	got, err := w.cfg.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	if src := pod.Annotations[core.AnnotationConfigSource]; src != "" && src != core.SourceAPI {
		if !IsMirrorPod(got) || got.Annotations[core.AnnotationConfigMirror] != pod.Annotations[core.AnnotationConfigHash] {
			return nil, nil // not this static pod's mirror (yet)
		}
		return got, nil
	}
	if got.UID != pod.UID {
		return nil, nil // another pod of the same name
	}
	return got, nil
}

// finishDeletion deletes a pod being deleted once its final status is
// written: at once, with its UID as precondition. Mirror pods are the
// mirror manager's business.
func (w *StatusWriter) finishDeletion(ctx context.Context, target *v1.Pod, e StatusEntry) error {
	terminal := e.Status.Phase == v1.PodSucceeded || e.Status.Phase == v1.PodFailed
	if !e.Finished || !terminal || target.DeletionTimestamp == nil || IsMirrorPod(target) {
		return nil
	}
	zero := int64(0)
	uid := target.UID
	if err := w.cfg.Client.CoreV1().Pods(target.Namespace).Delete(ctx, target.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}}); err != nil {
		return err
	}
	w.log.Info("pod deleted after its final status", zap.String("pod", target.Namespace+"/"+target.Name))
	return nil
}

// patch sends status as a strategic merge patch from target's status (the
// apiserver's) that names target's UID, so that the apiserver refuses it
// (Conflict) if the pod of that name has become another one meanwhile.
func (w *StatusWriter) patch(ctx context.Context, target *v1.Pod, status v1.PodStatus) error {
	oldJSON, err := json.Marshal(v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: target.UID}, Status: target.Status})
	if err != nil {
		return err
	}
	newJSON, err := json.Marshal(v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: target.UID}, Status: status})
	if err != nil {
		return err
	}
	patch, err := strategicpatch.CreateTwoWayMergePatch(oldJSON, newJSON, v1.Pod{})
	if err != nil {
		return err
	}
	// The UID makes the apiserver refuse the patch (Conflict) when the
	// pod of that name is another one now.
	var withUID map[string]any
	if err := json.Unmarshal(patch, &withUID); err != nil {
		return err
	}
	withUID["metadata"] = map[string]any{"uid": string(target.UID)}
	patch, err = json.Marshal(withUID)
	if err != nil {
		return err
	}
	_, err = w.cfg.Client.CoreV1().Pods(target.Namespace).Patch(ctx, target.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	return err
}
