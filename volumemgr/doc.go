// Package volumemgr mounts the volumes pods need before their containers
// start, reconciles desired and actual mounts, unmounts what is no longer
// needed, and reports volume usage.
//
// The package holds no code yet.
package volumemgr
