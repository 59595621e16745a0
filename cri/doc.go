// Package cri connects nodekit to a real container runtime over the
// Container Runtime Interface: containerd, CRI-O, or anything else that
// serves the CRI v1 gRPC API on a unix socket.
//
// A *Runtime implements core.Runtime and core.EventStreamer on top of
// k8s.io/cri-client. Every error it returns is classified with one of the
// core error classes (core.ErrNotFound, core.ErrInvalid, core.ErrUnavailable,
// ...) and names the object the call was about, while the gRPC status stays
// reachable with status.FromError.
//
//	rt, err := cri.New(ctx, cri.Config{Endpoint: "unix:///run/containerd/containerd.sock"})
//	if err != nil {
//		return err // names the socket and says whether it is missing or not ready
//	}
//	defer rt.Close()
//
// New fails fast when the socket does not exist, when nothing answers on it
// within ConnectTimeout, and when the runtime reports that it is not ready
// (its RuntimeReady condition is false). A runtime whose network is not
// ready yet is accepted: host-network pods can still run.
//
// # What it does not do
//
// It does not translate pods into CRI configs: package crispec does that,
// deterministically and without I/O. It keeps no state besides the
// connection and does not retry; retry policy belongs to callers, guided by
// the error class.
//
// # Event stream
//
// GetContainerEvents streams container events on runtimes that offer them
// (containerd 2.x). On containerd 1.6 the stream is opened and then
// rejected; the call returns an error wrapping core.ErrUnimplemented, after
// onConnected may already have been called. Callers fall back to polling.
//
// # Logging
//
// cri-client logs through the logr logger it finds in the context. The
// adapter puts Config.Logger there on every call, so the client's messages
// go to the embedder's zap logger and never to a global one.
package cri
