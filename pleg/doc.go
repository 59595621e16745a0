// Package pleg is the pod lifecycle event generator: it compares successive
// views of the runtime (relisting it, or following its event stream where the
// runtime offers one), emits container started, died, removed and changed
// events per pod, and keeps the per-pod runtime status cache that the sync
// loop and the status manager read.
//
// The package holds no code yet; its API is being designed against the
// runtime port in package core.
package pleg
