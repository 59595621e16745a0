#!/usr/bin/env bash
# Compares node agents on real containerd, measured from the outside by
# bench/nodebench (manifests in, the CRI watched): the kubelet v1.37.2 run
# standalone, and nodekit's example agent (examples/agent -manifest-dir),
# each running static pods from a manifest directory on the same private
# containerd; and the runtime's own floor, nodebench driving the CRI itself.
#
# For each pod count, in rounds (floor, kubelet, nodekit, floor, kubelet,
# nodekit, ...), each agent is started fresh and nodebench measures:
#   start     N manifests written at once → every container running (after
#             a warm-up pod and 10 s of quiet)
#   steady    the agent's CPU and RSS, and containerd's CPU, over a window
#   restart   K containers killed at random moments → running again
#   teardown  the manifests removed → no container running, no sandbox ready
# then the agent is stopped and its pods, files and mounts removed. The floor
# does start, restart and teardown itself through the CRI with 4 workers;
# "floor-all" is the same floor but stops every pod at once (as the agents
# do), the runtime's best teardown. The floor also measures what a relist
# of every pod (as a PLEG's) costs the client and the runtime in CPU.
# containerd runs in a cgroup of its own, so that nodebench reports the
# runtime's CPU (containerd, shims, runc) as well as the agent's during
# start and teardown. Other builds of the example agent (-B NAME=PATH) are
# measured as nodekit is, for A/B comparisons in one run.
# A failed measurement is recorded (measure "failed"), with goroutine dumps
# of containerd and the agent in the logs, and the next run goes on; the
# script then exits 1.
#
# Usage, as root (Debian 12; installs what it needs with hack/testenv.sh):
#   hack/bench.sh [-c 2.4|1.6] [-a "floor kubelet nodekit"] [-n "30 100"]
#                 [-r 2] [-k 10] [-w 30s] [-W 4] [-p 20ms] [-B NAME=PATH]
#                 [-A FLAGS] [-o DIR]
#     -c  containerd: 2.4 (2.4.2, built by hack/testenv.sh; default) or
#         1.6 (Debian's)
#     -a  what to measure, in this order in each round (default "floor
#         kubelet nodekit"; also floor-all, and the names given with -B)
#     -n  pod counts (default "30 100")
#     -r  rounds per pod count (default 2: A B A B)
#     -k  containers killed per restart measurement (default 10)
#     -w  steady-state window (default 30s)
#     -W  workers of the floor (default 4)
#     -p  how often nodebench lists the runtime while it waits (default
#         20ms; the listing costs the runtime CPU too)
#     -B  NAME=PATH: another build of examples/agent, measured as agent
#         NAME (e.g. base=/tmp/agent-old for an A/B comparison); repeatable
#     -A  extra flags of the example agent (every build), e.g. "-v"
#     -o  output directory (default /tmp/nodebench-<date>): results.jsonl
#         (one JSON line per measurement), report.md (the tables: medians
#         over the rounds, ratios), and the logs of every process
#
# Everything runs under one fresh directory in /tmp: containerd's config,
# root, state and socket, the agents' root and log directories, the
# manifest directory. Every process the script starts is stopped by its
# PID; on exit (also on failure or interrupt) the pods are removed through
# the CRI, containerd is stopped, whatever still refers to the directory is
# killed, mounts under it are unmounted, the kubelet's kubepods cgroups and
# the kernel settings the kubelet changes (vm.overcommit_memory,
# kernel.panic, kernel.panic_on_oops, ...) are restored.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"

VERSION=2.4
AGENTS="floor kubelet nodekit"
SIZES="30 100"
ROUNDS=2
KILLS=10
WINDOW=30s
OUT="/tmp/nodebench-$(date +%Y%m%d-%H%M%S)"
WORKERS=4
POLL=20ms
declare -A BUILDS=()
AGENT_FLAGS=""
SETTLE=10     # seconds of quiet before start and before steady: containerd
              # removes the previous run's snapshots in the background
TIMEOUT=2m    # for each measurement; 100 pods start in about 15 s
FAILURES=0
while getopts "c:a:n:r:k:w:W:p:B:A:o:h" opt; do
	case "$opt" in
	c) VERSION="$OPTARG" ;;
	a) AGENTS="$OPTARG" ;;
	n) SIZES="$OPTARG" ;;
	r) ROUNDS="$OPTARG" ;;
	k) KILLS="$OPTARG" ;;
	w) WINDOW="$OPTARG" ;;
	W) WORKERS="$OPTARG" ;;
	p) POLL="$OPTARG" ;;
	B)
		[[ "$OPTARG" =~ ^([a-z][a-z0-9-]*)=(.+)$ ]] || die "-B: NAME=PATH, got $OPTARG"
		BUILDS[${BASH_REMATCH[1]}]="${BASH_REMATCH[2]}"
		;;
	A) AGENT_FLAGS="$OPTARG" ;;
	o) OUT="$OPTARG" ;;
	*)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
		exit 2
		;;
	esac
done

log() { printf 'bench.sh: %s\n' "$*" >&2; }
die() {
	printf 'bench.sh: error: %s\n' "$*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || die "must run as root: it runs containerd and a kubelet"
for n in $SIZES; do
	[[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 110 ] || die "-n: pod counts between 1 and 110 (the kubelet's maxPods), got $n"
	[ "$KILLS" -le "$n" ] || die "-k $KILLS: more kills than the $n pods"
done
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "-r: a number of rounds, got $ROUNDS"
for a in $AGENTS; do
	case "$a" in
	floor | floor-all | kubelet | nodekit) ;;
	*) [ -n "${BUILDS[$a]:-}" ] || die "-a: floor, floor-all, kubelet, nodekit or a name given with -B, got $a" ;;
	esac
done
for b in "${!BUILDS[@]}"; do
	case "$b" in floor | floor-all | kubelet | nodekit | agent | nodebench) die "-B $b: a name of its own, please" ;; esac
	[ -x "${BUILDS[$b]}" ] || die "-B $b=${BUILDS[$b]}: not an executable"
done

CACHE="${NODEKIT_CACHE:-${HOME:-/root}/.cache/nodekit}"
KUBELET="${NODEKIT_KUBELET_BIN:-$CACHE/kubelet-v1.37.2/bin}/kubelet"
case "$VERSION" in
1.6)
	CTRD_BIN=/usr/bin
	SYS_PATH=/usr/sbin:/usr/bin:/sbin:/bin
	;;
2.4)
	CTRD_BIN="${NODEKIT_CONTAINERD2_BIN:-$CACHE/containerd-v2.4.2/bin}"
	SYS_PATH="$CTRD_BIN:/usr/sbin:/usr/bin:/sbin:/bin"
	;;
*) die "-c: 1.6 or 2.4, got $VERSION" ;;
esac

# Nothing else may own the kubelet's cgroups or ports.
for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
	if [ -d "$d" ] && [ -n "$(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null)" ]; then
		die "$d has processes: another kubelet runs on this machine"
	fi
done

log "installing what is missing (hack/testenv.sh install, install-kubelet)"
hack/testenv.sh install >&2
hack/testenv.sh install-kubelet >&2

mkdir -p "$OUT/logs" "$OUT/bin"
OUT="$(cd "$OUT" && pwd)"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
log "building nodebench and the example agent into $OUT/bin"
go build -o "$OUT/bin/nodebench" ./bench/nodebench
# Every build of the agent is a copy: a binary just written by the linker
# maps about 10 MiB more of its file into memory than a copy of it, which
# would show in the RSS (not in its anonymous part).
go build -o "$OUT/bin/.agent" ./examples/agent
cp "$OUT/bin/.agent" "$OUT/bin/agent"
rm "$OUT/bin/.agent"
for b in "${!BUILDS[@]}"; do
	cp "${BUILDS[$b]}" "$OUT/bin/$b"
done
NB="$OUT/bin/nodebench"

# Short: unix socket paths are limited to 108 bytes, and the shims' are
# longer than containerd's.
WORK="$(mktemp -d /tmp/nkb.XXXXXX)"
SOCK="$WORK/containerd.sock"
ENDPOINT="unix://$SOCK"
MANIFESTS="$WORK/manifests"
IMAGE=localhost/busybox:latest
NETWORK=nodebench
BRIDGE=nkbench0
SUBNET=10.88.64.0/24 # outside internal/testenv's 10.88.128.0/17
CTRD_PID=""
AGENT_PID=""
# containerd runs in a cgroup of its own, which its shims (and the runc
# they run) inherit: nodebench reports the runtime's CPU use from it.
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
	RT_CGROUP="/sys/fs/cgroup/$(basename "$WORK")"
else
	RT_CGROUP="/sys/fs/cgroup/cpuacct/$(basename "$WORK")"
fi
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
declare -A SAVED_SYSCTL=()
for s in "${SYSCTLS[@]}"; do
	SAVED_SYSCTL[$s]="$(sysctl -n "$s")"
done

nb() { "$NB" -runtime-endpoint "$ENDPOINT" -image "$IMAGE" -runtime-cgroup "$RT_CGROUP" "$@"; }

# stop_pid PID NAME: SIGTERM, then SIGKILL after 30 s; reaps it.
stop_pid() {
	local pid="$1" name="$2" i
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 300); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "$name (pid $pid) ignored SIGTERM for 30 s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

# refers_to_work PID: the process's command line, root, working directory
# or executable is under $WORK (shims, containers, agents).
refers_to_work() {
	local p="/proc/$1" l args
	args="$(tr '\0' '\n' 2>/dev/null <"$p/cmdline")" || return 1
	grep -qF "$WORK/" <<<"$args" && return 0
	grep -qxF "$WORK" <<<"$args" && return 0
	for l in root cwd exe; do
		case "$(readlink "$p/$l" 2>/dev/null)" in "$WORK" | "$WORK"/*) return 0 ;; esac
	done
	return 1
}

# kill_leftovers: once containerd is stopped, SIGKILL whatever still refers
# to $WORK, containers before their shims, and remove the sockets of killed
# shims.
kill_leftovers() {
	local pass pid pids shims exe
	for pass in 1 2 3 4 5; do
		pids=()
		shims=()
		for pid in $(ls /proc | grep -E '^[0-9]+$'); do
			[ "$pid" -ne $$ ] || continue
			refers_to_work "$pid" || continue
			exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
			case "$(basename "$exe")" in
			containerd-shim*) shims+=("$pid") ;;
			*) pids+=("$pid") ;;
			esac
		done
		[ "${#pids[@]}" -gt 0 ] || [ "${#shims[@]}" -gt 0 ] || return 0
		if [ "${#pids[@]}" -eq 0 ]; then
			for pid in "${shims[@]}"; do
				remove_shim_socket "$pid"
			done
			pids=("${shims[@]}")
		fi
		log "killing leftover processes: ${pids[*]}"
		kill -KILL "${pids[@]}" 2>/dev/null || true
		sleep 0.5
	done
}

# remove_shim_socket PID: the socket a killed shim leaves,
# /run/containerd/s/<sha256(address/namespace/id)>.
remove_shim_socket() {
	local args address="" namespace="" id="" i
	mapfile -t args < <(tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null)
	for ((i = 0; i + 1 < ${#args[@]}; i++)); do
		case "${args[$i]}" in
		-address) address="${args[$((i + 1))]}" ;;
		-namespace) namespace="${args[$((i + 1))]}" ;;
		-id) id="${args[$((i + 1))]}" ;;
		esac
	done
	case "$address" in "$WORK"/*) ;; *) return 0 ;; esac
	[ -n "$namespace" ] && [ -n "$id" ] || return 0
	rm -f "/run/containerd/s/$(printf '%s' "$address/$namespace/$id" | sha256sum | cut -d' ' -f1)"
}

# unmount_under DIR: every mount at or below DIR, deepest first.
unmount_under() {
	local dir="$1" m
	for _ in 1 2 3; do
		mapfile -t mounts < <(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-)
		[ "${#mounts[@]}" -gt 0 ] || return 0
		for m in "${mounts[@]}"; do
			umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
		done
	done
}

# remove_kubepods: the kubelet's QoS and pod cgroups, once their processes
# are gone.
remove_kubepods() {
	local root
	for root in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		[ -d "$root" ] || continue
		find "$root" -depth -type d -exec rmdir {} + 2>/dev/null || true
		[ -d "$root" ] && log "warning: $root remains"
	done
	return 0
}

stop_agent() {
	if [ -n "$AGENT_PID" ]; then
		stop_pid "$AGENT_PID" agent
		AGENT_PID=""
	fi
}

cleanup() {
	local rc=$?
	set +e
	stop_agent
	if [ -n "$CTRD_PID" ] && kill -0 "$CTRD_PID" 2>/dev/null; then
		nb -timeout 2m cleanup -manifest-dir "$MANIFESTS" >&2
		stop_pid "$CTRD_PID" containerd
	fi
	kill_leftovers
	[ ! -d "$RT_CGROUP" ] || rmdir "$RT_CGROUP" || log "warning: cannot remove $RT_CGROUP"
	unmount_under "$WORK"
	remove_kubepods
	ip link delete "$BRIDGE" 2>/dev/null
	rm -f /var/lib/cni/results/"$NETWORK"-*
	for s in "${SYSCTLS[@]}"; do
		if [ "$(sysctl -n "$s")" != "${SAVED_SYSCTL[$s]}" ]; then
			sysctl -q -w "$s=${SAVED_SYSCTL[$s]}" || log "warning: cannot restore $s=${SAVED_SYSCTL[$s]}"
		fi
	done
	[ -f "$WORK/containerd.log" ] && cp "$WORK/containerd.log" "$OUT/logs/"
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the test image: busybox-static as a Docker archive -------------------
build_image() {
	local d="$WORK/image" arch a
	arch="$(go env GOARCH)"
	mkdir -p "$d/rootfs/bin" "$d/rootfs/etc" "$d/rootfs/root" "$d/rootfs/tmp"
	chmod 700 "$d/rootfs/root"
	chmod 1777 "$d/rootfs/tmp"
	cp /bin/busybox "$d/rootfs/bin/busybox"
	for a in $(/bin/busybox --list); do
		[ "$a" = busybox ] || ln -s busybox "$d/rootfs/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$d/rootfs/etc/passwd"
	printf 'root:x:0:\nnobody:x:65534:\n' >"$d/rootfs/etc/group"
	tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$d/rootfs" -cf "$d/layer.tar" .
	cat >"$d/config.json" <<-EOF
		{"architecture":"$arch","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/sleep","infinity"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:$(sha256sum "$d/layer.tar" | cut -d' ' -f1)"]}}
	EOF
	printf '[{"Config":"config.json","RepoTags":["%s"],"Layers":["layer.tar"]}]\n' "$IMAGE" >"$d/manifest.json"
	tar -C "$d" -cf "$WORK/busybox.tar" manifest.json config.json layer.tar
	rm -rf "$d"
}

# --- containerd, configured as internal/testenv configures it -------------
start_containerd() {
	mkdir -p "$WORK/root" "$WORK/state" "$WORK/cni" "$WORK/opt" "$MANIFESTS"
	if [ "$VERSION" = 1.6 ]; then
		cat >"$WORK/config.toml" <<-EOF
			version = 2
			root = "$WORK/root"
			state = "$WORK/state"

			[grpc]
			  address = "$SOCK"

			[ttrpc]
			  address = "$SOCK.ttrpc"

			[plugins."io.containerd.internal.v1.opt"]
			  path = "$WORK/opt"

			[plugins."io.containerd.grpc.v1.cri"]
			  sandbox_image = "$IMAGE"
			  restrict_oom_score_adj = true
			  netns_mounts_under_state_dir = true
			  [plugins."io.containerd.grpc.v1.cri".containerd]
			    snapshotter = "overlayfs"
			  [plugins."io.containerd.grpc.v1.cri".cni]
			    bin_dir = "/usr/lib/cni"
			    conf_dir = "$WORK/cni"
		EOF
	else
		cat >"$WORK/config.toml" <<-EOF
			version = 3
			root = "$WORK/root"
			state = "$WORK/state"

			[grpc]
			  address = "$SOCK"

			[ttrpc]
			  address = "$SOCK.ttrpc"

			[plugins.'io.containerd.internal.v1.opt']
			  path = "$WORK/opt"

			[plugins.'io.containerd.nri.v1.nri']
			  disable = true

			[plugins.'io.containerd.cri.v1.images']
			  snapshotter = "overlayfs"
			  [plugins.'io.containerd.cri.v1.images'.pinned_images]
			    sandbox = "$IMAGE"

			[plugins.'io.containerd.cri.v1.runtime']
			  restrict_oom_score_adj = true
			  netns_mounts_under_state_dir = true
			  [plugins.'io.containerd.cri.v1.runtime'.cni]
			    bin_dirs = ["/usr/lib/cni"]
			    conf_dir = "$WORK/cni"
		EOF
	fi
	# Pods are host-network; the network only makes the runtime report
	# NetworkReady. A bridge without address, route or iptables rules.
	cat >"$WORK/cni/10-$NETWORK.conflist" <<-EOF
		{
		  "cniVersion": "0.4.0",
		  "name": "$NETWORK",
		  "plugins": [{
		    "type": "bridge",
		    "bridge": "$BRIDGE",
		    "isGateway": false,
		    "ipMasq": false,
		    "ipam": {"type": "host-local", "ranges": [[{"subnet": "$SUBNET"}]], "dataDir": "$WORK/cni-ipam"}
		  }]
		}
	EOF
	mkdir "$RT_CGROUP"
	(echo "$BASHPID" >"$RT_CGROUP/cgroup.procs" && cd "$WORK" && PATH="$SYS_PATH" exec "$CTRD_BIN/containerd" --config "$WORK/config.toml" >"$WORK/containerd.log" 2>&1) &
	CTRD_PID=$!
	nb -timeout 1m runtime-ready >/dev/null || die "containerd did not get ready; see $WORK/containerd.log"
	"$CTRD_BIN/ctr" --address "$SOCK" --namespace k8s.io images import --digests=false "$WORK/busybox.tar" >&2
	RUNTIME="$(nb -timeout 30s runtime-ready -image)"
	log "$RUNTIME ready (pid $CTRD_PID) on $SOCK with $IMAGE"
}

# --- the agents ------------------------------------------------------------
start_kubelet() {
	local d="$WORK/kubelet"
	mkdir -p "$d/root" "$d/logs" "$d/certs"
	# Standalone: no kubeconfig, so no apiserver and no node registration;
	# static pods only. cgroup v1 allowed, no swap check, the QoS cgroups
	# at the root with the cgroupfs driver as containerd uses it; the
	# servers on localhost only, without anonymous access.
	cat >"$d/config.yaml" <<-EOF
		apiVersion: kubelet.config.k8s.io/v1beta1
		kind: KubeletConfiguration
		staticPodPath: $MANIFESTS
		containerRuntimeEndpoint: $ENDPOINT
		imageServiceEndpoint: $ENDPOINT
		podLogsDir: $d/logs
		cgroupDriver: cgroupfs
		cgroupsPerQOS: true
		cgroupRoot: /
		failCgroupV1: false
		failSwapOn: false
		registerNode: false
		address: 127.0.0.1
		healthzBindAddress: 127.0.0.1
		readOnlyPort: 0
		authentication:
		  anonymous:
		    enabled: false
		  webhook:
		    enabled: false
		authorization:
		  mode: AlwaysAllow
		resolvConf: /etc/resolv.conf
	EOF
	"$KUBELET" --config="$d/config.yaml" --root-dir="$d/root" --cert-dir="$d/certs" >"$AGENT_LOG" 2>&1 &
	AGENT_PID=$!
}

start_nodekit() {
	local d="$WORK/nodekit" bin="${1:-$OUT/bin/agent}"
	mkdir -p "$d/root" "$d/logs"
	# The bundled configuration with the pod cgroups at the root (as the
	# kubelet's here), its state and logs under $WORK, no servers.
	# shellcheck disable=SC2086 # AGENT_FLAGS are words
	"$bin" -runtime-endpoint "$ENDPOINT" -manifest-dir "$MANIFESTS" -root-dir "$d/root" -pod-logs-dir "$d/logs" \
		-read-only-port 0 -healthz-port 0 $AGENT_FLAGS >"$AGENT_LOG" 2>&1 &
	AGENT_PID=$!
}

# start_build NAME: another build of the example agent, in nodekit's
# directories (one agent runs at a time).
start_build() { start_nodekit "$OUT/bin/$1"; }

# after_agent: the agent is stopped; remove its pods, files and mounts.
after_agent() {
	local name="$1"
	nb cleanup -manifest-dir "$MANIFESTS" >&2
	[ -z "${BUILDS[$name]:-}" ] || name=nodekit
	unmount_under "$WORK/$name"
	rm -rf "${WORK:?}/$name"
	remove_kubepods
}

# failed NAME N ROUND: a measurement of NAME failed. Records it, asks
# containerd (SIGUSR1) and the agent, a Go program (SIGQUIT, which ends it),
# for their goroutine dumps, and goes on with the next run.
failed() {
	local name="$1" n="$2" round="$3"
	log "$name, $n pods, round $round FAILED; goroutine dumps: containerd's in $OUT/logs, the agent's at the end of its log"
	FAILURES=$((FAILURES + 1))
	printf '{"time":"%s","runtime":"%s","agent":"%s","run":%d,"measure":"failed","pods":%d}\n' \
		"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$RUNTIME" "$name" "$round" "$n" >>"$RESULTS"
	kill -USR1 "$CTRD_PID" 2>/dev/null || true
	sleep 2
	mv -f /tmp/containerd."$CTRD_PID".stacks.log "$OUT/logs/containerd-stacks-$name-$n-$round.log" 2>/dev/null || true
	if [ -n "$AGENT_PID" ]; then
		kill -QUIT "$AGENT_PID" 2>/dev/null || true
		stop_pid "$AGENT_PID" "$name"
		AGENT_PID=""
	fi
}

run_agent() {
	local name="$1" n="$2" round="$3"
	AGENT_LOG="$OUT/logs/$name-$n-$round.log"
	log "$name, $n pods, round $round (log: $AGENT_LOG)"
	if [ -n "${BUILDS[$name]:-}" ]; then
		start_build "$name"
	else
		"start_$name"
	fi
	local m=(-agent "$name" -run "$round" -json "$RESULTS" -timeout "$TIMEOUT" -poll "$POLL")
	if nb -timeout "$TIMEOUT" warmup -manifest-dir "$MANIFESTS" >&2 &&
		sleep "$SETTLE" &&
		nb "${m[@]}" start -manifest-dir "$MANIFESTS" -pods "$n" -pid "$AGENT_PID" &&
		sleep "$SETTLE" &&
		nb "${m[@]}" steady -pid "$AGENT_PID" -runtime-pid "$CTRD_PID" -window "$WINDOW" &&
		nb "${m[@]}" restart -kill "$KILLS" &&
		nb "${m[@]}" teardown -manifest-dir "$MANIFESTS" -pid "$AGENT_PID"; then
		stop_agent
	else
		tail -n 20 "$AGENT_LOG" >&2
		failed "$name" "$n" "$round"
	fi
	after_agent "$name"
}

# run_floor NAME N ROUND: floor stops with as many workers as it starts
# with, floor-all stops every pod at once.
run_floor() {
	local name="$1" n="$2" round="$3" down="$WORKERS"
	[ "$name" = floor ] || down="$n"
	log "$name, $n pods, round $round"
	sleep "$SETTLE"
	nb -agent "$name" -run "$round" -json "$RESULTS" -timeout "$TIMEOUT" -poll "$POLL" floor -pods "$n" -workers "$WORKERS" -teardown-workers "$down" -kill "$KILLS" -lists 300 -pod-logs-root "$WORK/floor-logs" ||
		failed "$name" "$n" "$round"
	rm -rf "$WORK/floor-logs"
	nb cleanup >&2
}

machine() {
	echo "Machine: $(nproc) vCPU ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r), cgroup $([ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] && echo v2 || echo v1), $(go version | cut -d' ' -f3)"
	echo "Runtime: $RUNTIME; kubelet: $("$KUBELET" --version); nodekit: examples/agent at $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(for b in "${!BUILDS[@]}"; do printf '; %s: %s' "$b" "${BUILDS[$b]}"; done)${AGENT_FLAGS:+ (agent flags: $AGENT_FLAGS)}"
	echo "Pods: host network, one busybox container each (sh waiting on sleep), requests 5m CPU / 8Mi; floor with $WORKERS workers (floor-all: stops all at once); $KILLS kills per restart run; runtime listed every $POLL while waiting; steady window $WINDOW after ${SETTLE}s; $ROUNDS rounds per count"
}

build_image
start_containerd
# The agents run a warm-up pod first; so does the runtime, untimed.
log "warming up the runtime with one pod"
nb floor -pods 1 -kill 0 -pod-logs-root "$WORK/floor-logs" >&2
rm -rf "$WORK/floor-logs"
for n in $SIZES; do
	for round in $(seq "$ROUNDS"); do
		for a in $AGENTS; do
			if [ "$a" = floor ] || [ "$a" = floor-all ]; then
				run_floor "$a" "$n" "$round"
			else
				run_agent "$a" "$n" "$round"
			fi
		done
	done
done

{
	machine
	echo
	"$NB" report "$RESULTS"
} | tee "$OUT/report.md"
log "results in $OUT (results.jsonl, report.md, logs/)"
[ "$FAILURES" -eq 0 ] || die "$FAILURES runs failed; see report.md and the logs"
