#!/usr/bin/env bash
# Installs what the tests need to run real containerd instances
# (internal/testenv), on Debian 12 as root:
#   - containerd 1.6, runc, the CNI plugins and busybox-static from Debian,
#     and gcc (go test -race needs cgo);
#   - containerd 2.4.2 (containerd, containerd-shim-runc-v2, ctr) built from
#     the Go module proxy into $NODEKIT_CONTAINERD2_BIN, by default
#     ${NODEKIT_CACHE:-$HOME/.cache/nodekit}/containerd-v2.4.2/bin;
#   - crictl (cri-tools v1.37.0), built from the Go module proxy into
#     ${NODEKIT_CACHE:-$HOME/.cache/nodekit}/crictl-v1.37.0/bin: tests check
#     that pods made through nodekit look right to the tool operators use;
#   - kube-apiserver and etcd of Kubernetes v1.37.2, built from the tools
#     module hack/tools (its own go.mod, never the library's) into
#     $NODEKIT_APISERVER_BIN, by default
#     ${NODEKIT_CACHE:-$HOME/.cache/nodekit}/kube-apiserver-v1.37.2/bin
#     (about 6 minutes on 2 cores, once).
# Idempotent: installs or builds only what is missing.
#
# install-kubelet builds the kubelet of the same release from the same tools
# module into $NODEKIT_KUBELET_BIN, by default
# ${NODEKIT_CACHE:-$HOME/.cache/nodekit}/kubelet-v1.37.2/bin: the comparison
# of the node benchmarks (hack/bench.sh). No test needs it, so install
# leaves it out and CI does not pay for it (about 10 minutes on 2 cores,
# once).
#
# Usage: hack/testenv.sh install | install-kubelet
set -euo pipefail

CONTAINERD2_VERSION=v2.4.2
CACHE="${NODEKIT_CACHE:-${HOME:-/root}/.cache/nodekit}"
BIN2="${NODEKIT_CONTAINERD2_BIN:-$CACHE/containerd-$CONTAINERD2_VERSION/bin}"
PACKAGES=(containerd runc containernetworking-plugins busybox-static gcc libc6-dev)
# What internal/testenv runs; checked after installing.
REQUIRED=(/usr/bin/containerd /usr/bin/ctr /usr/bin/containerd-shim-runc-v2 /usr/sbin/runc
	/usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/loopback /bin/busybox)
BINARIES2=(containerd containerd-shim-runc-v2 ctr)
CRICTL_VERSION=v1.37.0
CRICTL_BIN="$CACHE/crictl-$CRICTL_VERSION/bin"
# Must match the k8s.io/kubernetes version hack/tools/go.mod requires (checked
# before building) and the version internal/testenv looks for.
KUBE_VERSION=v1.37.2
KUBE_BIN="${NODEKIT_APISERVER_BIN:-$CACHE/kube-apiserver-$KUBE_VERSION/bin}"
KUBE_BINARIES=(kube-apiserver etcd)
KUBELET_BIN="${NODEKIT_KUBELET_BIN:-$CACHE/kubelet-$KUBE_VERSION/bin}"
TOOLS="$(cd "$(dirname "$0")" && pwd)/tools"

log() { printf 'testenv.sh: %s\n' "$*"; }
die() {
	printf 'testenv.sh: error: %s\n' "$*" >&2
	exit 1
}

install_packages() {
	local missing=() p
	for p in "${PACKAGES[@]}"; do
		if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
			missing+=("$p")
		fi
	done
	if [ "${#missing[@]}" -eq 0 ]; then
		log "Debian packages already installed: ${PACKAGES[*]}"
	else
		[ "$(id -u)" -eq 0 ] || die "must run as root to install the Debian packages ${missing[*]}"
		command -v apt-get >/dev/null || die "apt-get not found: this script supports Debian 12; install ${missing[*]} yourself"
		log "installing Debian packages: ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q || die "apt-get update failed"
		apt-get install -y -q "${missing[@]}" </dev/null || die "apt-get install ${missing[*]} failed"
	fi
	for p in "${REQUIRED[@]}"; do
		[ -x "$p" ] || die "$p is missing after installing ${PACKAGES[*]}"
	done
	log "$(/usr/bin/containerd --version)"
}

build_containerd2() {
	local b missing=()
	for b in "${BINARIES2[@]}"; do
		[ -x "$BIN2/$b" ] || missing+=("$b")
	done
	if [ "${#missing[@]}" -eq 0 ]; then
		log "containerd $CONTAINERD2_VERSION already built in $BIN2"
		return
	fi
	command -v go >/dev/null || die "go not found in PATH: building containerd $CONTAINERD2_VERSION needs Go"
	mkdir -p "$BIN2" || die "cannot create $BIN2"
	tmp="$(mktemp -d "$BIN2/.build.XXXXXX")" # global: the EXIT trap needs it
	trap 'rm -rf "$tmp"' EXIT
	local pkgs=()
	for b in "${BINARIES2[@]}"; do
		pkgs+=("github.com/containerd/containerd/v2/cmd/$b@$CONTAINERD2_VERSION")
	done
	log "building containerd $CONTAINERD2_VERSION from the Go module proxy into $BIN2 (a few minutes)"
	# Outside any module; static binaries, as containerd releases them.
	(cd "$tmp" && GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 GOBIN="$tmp" go install "${pkgs[@]}") ||
		die "building containerd $CONTAINERD2_VERSION failed"
	for b in "${BINARIES2[@]}"; do
		mv -f "$tmp/$b" "$BIN2/$b" || die "cannot move $b into $BIN2"
	done
	log "$("$BIN2/containerd" --version)"
}

build_crictl() {
	if [ -x "$CRICTL_BIN/crictl" ]; then
		log "crictl $CRICTL_VERSION already built in $CRICTL_BIN"
		return
	fi
	command -v go >/dev/null || die "go not found in PATH: building crictl $CRICTL_VERSION needs Go"
	mkdir -p "$CRICTL_BIN" || die "cannot create $CRICTL_BIN"
	local dir
	dir="$(mktemp -d "$CRICTL_BIN/.build.XXXXXX")"
	log "building crictl $CRICTL_VERSION from the Go module proxy into $CRICTL_BIN"
	(cd "$dir" && GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 GOBIN="$dir" go install "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION") ||
		{ rm -rf "$dir"; die "building crictl $CRICTL_VERSION failed"; }
	mv -f "$dir/crictl" "$CRICTL_BIN/crictl" && rm -rf "$dir" || die "cannot move crictl into $CRICTL_BIN"
	log "$("$CRICTL_BIN/crictl" --version)"
}

build_apiserver() {
	local b missing=()
	for b in "${KUBE_BINARIES[@]}"; do
		[ -x "$KUBE_BIN/$b" ] || missing+=("$b")
	done
	if [ "${#missing[@]}" -eq 0 ]; then
		log "kube-apiserver and etcd $KUBE_VERSION already built in $KUBE_BIN"
		return
	fi
	command -v go >/dev/null || die "go not found in PATH: building kube-apiserver $KUBE_VERSION needs Go"
	[ -f "$TOOLS/go.mod" ] || die "$TOOLS/go.mod not found"
	grep -qE "^[[:space:]]*k8s.io/kubernetes $KUBE_VERSION\$" "$TOOLS/go.mod" ||
		die "$TOOLS/go.mod does not require k8s.io/kubernetes $KUBE_VERSION: update KUBE_VERSION here and in internal/testenv/apiserver.go together with it"
	mkdir -p "$KUBE_BIN" || die "cannot create $KUBE_BIN"
	local dir
	dir="$(mktemp -d "$KUBE_BIN/.build.XXXXXX")"
	log "building kube-apiserver and etcd $KUBE_VERSION from $TOOLS into $KUBE_BIN (about 6 minutes on 2 cores)"
	# The version the release binaries report (/version, metrics).
	local pkg=k8s.io/component-base/version major minor
	IFS=. read -r major minor _ <<<"${KUBE_VERSION#v}"
	local ldflags="-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
	# The tools module alone (GOWORK=off), exactly as its go.sum pins it;
	# static binaries, as Kubernetes releases them.
	(cd "$TOOLS" && GOWORK=off GOFLAGS='-mod=readonly -buildvcs=false' CGO_ENABLED=0 \
		go build -trimpath -ldflags "$ldflags" -o "$dir/" ./cmd/kube-apiserver ./cmd/etcd) ||
		{ rm -rf "$dir"; die "building kube-apiserver and etcd $KUBE_VERSION failed"; }
	for b in "${KUBE_BINARIES[@]}"; do
		mv -f "$dir/$b" "$KUBE_BIN/$b" || { rm -rf "$dir"; die "cannot move $b into $KUBE_BIN"; }
	done
	rm -rf "$dir"
	log "$("$KUBE_BIN/kube-apiserver" --version)"
}

build_kubelet() {
	if [ -x "$KUBELET_BIN/kubelet" ] && "$KUBELET_BIN/kubelet" --version 2>/dev/null | grep -qx "Kubernetes $KUBE_VERSION"; then
		log "kubelet $KUBE_VERSION already built in $KUBELET_BIN"
		return
	fi
	command -v go >/dev/null || die "go not found in PATH: building the kubelet $KUBE_VERSION needs Go"
	command -v gcc >/dev/null || die "gcc not found: the kubelet is built with cgo, as released (hack/testenv.sh install installs gcc)"
	[ -f "$TOOLS/go.mod" ] || die "$TOOLS/go.mod not found"
	grep -qE "^[[:space:]]*k8s.io/kubernetes $KUBE_VERSION\$" "$TOOLS/go.mod" ||
		die "$TOOLS/go.mod does not require k8s.io/kubernetes $KUBE_VERSION: update KUBE_VERSION here and in internal/testenv/apiserver.go together with it"
	mkdir -p "$KUBELET_BIN" || die "cannot create $KUBELET_BIN"
	local dir
	dir="$(mktemp -d "$KUBELET_BIN/.build.XXXXXX")"
	log "building the kubelet $KUBE_VERSION from $TOOLS into $KUBELET_BIN (about 10 minutes on 2 cores)"
	local pkg=k8s.io/component-base/version major minor
	IFS=. read -r major minor _ <<<"${KUBE_VERSION#v}"
	local ldflags="-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
	# The release builds the kubelet with cgo (it is not among Kubernetes'
	# static binaries) and with these tags.
	(cd "$TOOLS" && GOWORK=off GOFLAGS='-mod=readonly -buildvcs=false' CGO_ENABLED=1 \
		go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "$ldflags" -o "$dir/" ./cmd/kubelet) ||
		{ rm -rf "$dir"; die "building the kubelet $KUBE_VERSION failed"; }
	mv -f "$dir/kubelet" "$KUBELET_BIN/kubelet" || { rm -rf "$dir"; die "cannot move the kubelet into $KUBELET_BIN"; }
	rm -rf "$dir"
	log "$("$KUBELET_BIN/kubelet" --version)"
}

case "${1:-}" in
install)
	install_packages
	build_containerd2
	build_crictl
	build_apiserver
	log "test environment ready"
	;;
install-kubelet)
	install_packages
	build_kubelet
	;;
*)
	echo "usage: $0 install | install-kubelet" >&2
	exit 2
	;;
esac
