package core

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
)

// PodOp says what a PodUpdate reports about its pods, as the kubelet's
// pod config names the operations.
type PodOp int

const (
	// OpAdd: the pods are new to their source.
	OpAdd PodOp = iota + 1
	// OpUpdate: the pods' specs changed.
	OpUpdate
	// OpRemove: the pods are gone from their source; stop them at once
	// (with their own grace period).
	OpRemove
	// OpDelete: the pods are being deleted gracefully (their
	// DeletionTimestamp is set); stop them within their deletion grace
	// period.
	OpDelete
	// OpReconcile: only the pods' status changed at the source.
	OpReconcile
)

// String returns the kubelet's name of the operation: ADD, UPDATE,
// REMOVE, DELETE, RECONCILE.
func (o PodOp) String() string {
	switch o {
	case OpAdd:
		return "ADD"
	case OpUpdate:
		return "UPDATE"
	case OpRemove:
		return "REMOVE"
	case OpDelete:
		return "DELETE"
	case OpReconcile:
		return "RECONCILE"
	}
	return fmt.Sprintf("PodOp(%d)", int(o))
}

// Pod sources, as the kubelet names them in the kubernetes.io/config.source
// annotation.
const (
	SourceFile = "file"
	SourceHTTP = "http"
	SourceAPI  = "api"
)

// PodUpdate is one change of the pods a source wants on the node: what
// pod sources (staticpod) send and the sync loop consumes.
type PodUpdate struct {
	Op   PodOp
	Pods []*v1.Pod
	// Source is the source the pods come from (SourceFile, SourceHTTP,
	// SourceAPI or another name).
	Source string
}
