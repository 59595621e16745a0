// Package statusmgr generates v1.PodStatus from the runtime status cache and
// the sync loop's decisions, keeps a versioned cache of it, and pushes
// changes to status sinks such as an apiserver.
//
// The package holds no code yet.
package statusmgr
