// Package testenv runs real containerd instances, and a private
// kube-apiserver with its etcd, for tests: each test (or TestMain) gets a
// private containerd with its own config, root, state,
// socket, CNI network, bridge and cgroup parent, and Stop leaves no process,
// mount, cgroup, network device or file behind.
//
// Two versions are available: Containerd16 (containerd 1.6 from Debian 12)
// and Containerd2 (containerd 2.4.2 built from the Go module proxy). Both
// need root and what `hack/testenv.sh install` installs; hack/test.sh runs
// it before the tests.
//
// # Use
//
//	func TestSomething(t *testing.T) {
//		for _, v := range testenv.Versions {
//			t.Run(string(v), func(t *testing.T) {
//				t.Parallel()
//				c := testenv.StartContainerd(t, testenv.Options{Version: v})
//				rt, err := cri.New(t.Context(), cri.Config{Endpoint: c.Endpoint()})
//				...
//			})
//		}
//	}
//
// StartContainerd skips the test when not root and fails it when root but
// something is not installed (the message says to run hack/testenv.sh
// install): as root, a missing runtime is a broken environment, not a reason
// to pass. It stops the instance in t.Cleanup and, if the test failed, logs
// the tail of containerd's log first. In TestMain, where there is no
// testing.TB, call Start and Stop directly; Start's error wraps ErrNotRoot or
// ErrNotInstalled so the caller can tell those apart.
//
// # What an instance offers
//
// The image BusyboxImage ("localhost/busybox:latest", see BuildBusyboxImage)
// is imported into the k8s.io namespace before Start returns and is also the
// sandbox image, so pods run without any registry. Its default command is
// /bin/sleep infinity; busybox brings sh, nc, httpd, dd and the rest.
//
// Non-host-network pods get an address in Subnet on Bridge; nothing routes
// there from the host, and tests must not send traffic to it. Probe tests use
// host-network pods on 127.0.0.1.
//
// Pods whose Linux.CgroupParent is the instance's CgroupParent have their
// cgroups under it; Stop removes that subtree from every hierarchy. Pods with
// another parent get whatever containerd gives them; removing them through
// CRI (as Stop does) removes their cgroups too.
//
// # Cleanup
//
// Stop removes every pod sandbox through CRI, stops containerd by its PID
// (SIGTERM, then SIGKILL) and then removes by force whatever is left:
// processes that refer to Dir or run under CgroupParent (leftover shims and
// containers, found through /proc, never by name), mounts under Dir (the
// network namespaces are mounted there too), cgroups, the bridge, libcni's
// cached results for its pods, and Dir. If a test binary dies without
// calling Stop, containerd dies with it (parent-death signal), and the next
// instance given the same slot (see below) removes the rest.
//
// # Concurrency
//
// Any number of instances, of either version, may run at once, in one
// process or in several (go test runs packages in parallel). Each holds one
// of 64 slots, an flock on a file in /run/nodekit-testenv, which gives it
// its bridge (nkbr<n>), subnet (10.88.<128+n>.0/24) and CNI network name.
// Start and Stop may be called from any goroutine.
//
// # kube-apiserver
//
// StartAPIServer (StartAPIServerContext outside a test) runs a private
// kube-apiserver of KubernetesRelease with its own single-member etcd, both
// on free ports of 127.0.0.1 and with all their files in one directory
// under /tmp; it returns once /readyz answers ok, a few seconds after
// start, and stops in about one. RESTConfig and Kubeconfig give an admin's access (Token, in
// system:masters); RESTConfigAs gives any user and groups a client
// certificate, e.g. a node's, for the Node authorizer and RBAC to restrict.
// No controller-manager or scheduler runs: create a namespace's "default"
// service account before its pods, and set spec.nodeName. Stop (in
// t.Cleanup) signals both process groups by PID and removes the directory;
// a later start removes what a test binary that died left. Neither needs
// root; the binaries are built by hack/testenv.sh install from the tools
// module hack/tools into $NODEKIT_APISERVER_BIN (default
// $NODEKIT_CACHE/kube-apiserver-v1.37.2/bin), and StartAPIServer skips the
// test without them unless root, where it fails.
//
// # Environment
//
//	NODEKIT_CACHE            cache directory (default $HOME/.cache/nodekit):
//	                         the containerd 2 build and the test image
//	NODEKIT_CONTAINERD2_BIN  directory with containerd, containerd-shim-runc-v2
//	                         and ctr of containerd 2 (default
//	                         $NODEKIT_CACHE/containerd-v2.4.2/bin)
//	NODEKIT_APISERVER_BIN    directory with kube-apiserver and etcd (default
//	                         $NODEKIT_CACHE/kube-apiserver-v1.37.2/bin)
//
// Starting an instance takes a second or two; a test package that needs
// many may share one from TestMain, removing its pods between tests.
package testenv
