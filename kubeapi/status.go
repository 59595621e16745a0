package kubeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

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

// StatusWriterConfig configures a StatusWriter.
type StatusWriterConfig struct {
	// Client of the apiserver. Required.
	Client kubernetes.Interface
	// CouldHaveRunningContainers reports whether anything of the pod
	// may still run: while it does, a terminal phase is held back (see
	// core.MergePodStatus). Nil: until the entry is Finished.
	CouldHaveRunningContainers func(types.UID) bool
	Clock                      clock.PassiveClock
	Logger                     *zap.Logger
}

// StatusWriter writes pod statuses to the apiserver, as the kubelet's
// status manager: it reads the pod as the apiserver has it now, merges
// the node's status into the API's (core.MergePodStatus: conditions
// others own are kept, a terminal phase waits until nothing runs), and
// sends the difference as a strategic merge patch of the status
// subresource that names the pod's UID, so that a pod deleted and created
// again under the same name is never given the old one's status. Nothing
// is sent when nothing differs. The status of a static pod (from a file or
// HTTP source) is written to its mirror pod. A pod being deleted whose
// entry is Finished is deleted once its terminal status is written.
//
// It is a statusmgr Sink: a statusmgr.Syncer gives it the statuses of a
// statusmgr.Cache, coalesced, batched and retried with back-off.
type StatusWriter struct {
	cfg StatusWriterConfig
	log *zap.Logger
}

// NewStatusWriter returns a StatusWriter for cfg.
func NewStatusWriter(cfg StatusWriterConfig) (*StatusWriter, error) {
	if cfg.Client == nil {
		return nil, fmt.Errorf("kubeapi: status writer: Client is required: %w", core.ErrInvalid)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &StatusWriter{cfg: cfg, log: cfg.Logger}, nil
}

// WriteStatus writes one pod's status. A pod that is gone, or was
// replaced by another of the same name, or a static pod without its mirror
// yet, is not an error: there is nothing to write to.
func (w *StatusWriter) WriteStatus(ctx context.Context, e core.PodStatusEntry) error {
	target, err := w.target(ctx, e.Pod)
	if err != nil || target == nil {
		return err
	}
	couldRun := !e.Finished
	if w.cfg.CouldHaveRunningContainers != nil {
		couldRun = w.cfg.CouldHaveRunningContainers(e.Pod.UID)
	}
	merged := core.MergePodStatus(target, target.Status, e.Status, couldRun, w.cfg.Clock.Now())
	err = w.patch(ctx, target, merged)
	if err == nil && !couldRun {
		err = w.finishDeletion(ctx, target, merged)
	}
	switch {
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		// Deleted, or replaced under the same name (the UID in the patch
		// no longer matches): nothing to write to any more.
		w.log.Debug("pod gone before its status was written", zap.String("pod", e.Pod.Namespace+"/"+e.Pod.Name), zap.Error(err))
		return nil
	case err != nil:
		return fmt.Errorf("write status of pod %s/%s: %w", e.Pod.Namespace, e.Pod.Name, err)
	}
	return nil
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

// finishDeletion deletes a pod being deleted once its terminal status is
// written: at once, with its UID as precondition. Mirror pods are the
// mirror manager's business.
func (w *StatusWriter) finishDeletion(ctx context.Context, target *v1.Pod, status v1.PodStatus) error {
	terminal := status.Phase == v1.PodSucceeded || status.Phase == v1.PodFailed
	if !terminal || target.DeletionTimestamp == nil || IsMirrorPod(target) {
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
// Nothing is sent when the statuses do not differ.
func (w *StatusWriter) patch(ctx context.Context, target *v1.Pod, status v1.PodStatus) error {
	oldJSON, err := json.Marshal(v1.Pod{Status: target.Status})
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
	if bytes.Equal(patch, fmt.Appendf(nil, `{"metadata":{"uid":%q}}`, target.UID)) {
		return nil // only the UID: nothing to change
	}
	_, err = w.cfg.Client.CoreV1().Pods(target.Namespace).Patch(ctx, target.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	return err
}
