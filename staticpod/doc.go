// Package staticpod is a pod source: it reads pod manifests from a
// directory, over HTTP or from an apiserver and sends pod updates to a
// consumer such as the sync loop.
//
// The package holds no code yet.
package staticpod
