#!/usr/bin/env bash
# promtool (Prometheus v3.16.0) for the alerting rules in examples/operations.
#
#   hack/promtool.sh install   build promtool once, from the tools module
#                              hack/promtool (its own go.mod, never the
#                              library's), into $NODEKIT_PROMTOOL, by default
#                              ${NODEKIT_CACHE:-$HOME/.cache/nodekit}/promtool-v3.16.0/bin/promtool
#                              (about 9 minutes on 2 cores, once); idempotent
#   hack/promtool.sh test      install, then check and unit-test the rules
#                              (promtool check rules, promtool test rules)
#   hack/promtool.sh path      print where promtool is (or would be built)
#
# Needs Go and the Go module proxy, not root. The Go test in
# examples/operations runs the same checks with the same promtool.
set -euo pipefail

# Must match the github.com/prometheus/prometheus version hack/promtool/go.mod
# requires (v0.3XX.Y is the module version of Prometheus v3.XX.Y; checked
# before building) and the path examples/operations looks for.
PROMETHEUS_VERSION=v3.16.0
MODULE_VERSION=v0.316.0
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="$ROOT/hack/promtool"
CACHE="${NODEKIT_CACHE:-${HOME:-/root}/.cache/nodekit}"
PROMTOOL="${NODEKIT_PROMTOOL:-$CACHE/promtool-$PROMETHEUS_VERSION/bin/promtool}"
OPS="$ROOT/examples/operations"

log() { printf 'promtool.sh: %s\n' "$*"; }
die() {
	printf 'promtool.sh: error: %s\n' "$*" >&2
	exit 1
}

install() {
	if [ -x "$PROMTOOL" ]; then
		log "promtool $PROMETHEUS_VERSION already built: $PROMTOOL"
		return
	fi
	command -v go >/dev/null || die "go not found in PATH: building promtool $PROMETHEUS_VERSION needs Go"
	[ -f "$TOOLS/go.mod" ] || die "$TOOLS/go.mod not found"
	grep -qE "^[[:space:]]*github.com/prometheus/prometheus $MODULE_VERSION( |\$)" "$TOOLS/go.mod" ||
		die "$TOOLS/go.mod does not require github.com/prometheus/prometheus $MODULE_VERSION: update PROMETHEUS_VERSION and MODULE_VERSION here and in examples/operations together with it"
	local bin dir
	bin="$(dirname "$PROMTOOL")"
	mkdir -p "$bin" || die "cannot create $bin"
	dir="$(mktemp -d "$bin/.build.XXXXXX")"
	log "building promtool $PROMETHEUS_VERSION from $TOOLS into $bin (about 9 minutes on 2 cores, once)"
	# The tools module alone (GOWORK=off), exactly as its go.sum pins it; a
	# static binary, as Prometheus releases it, reporting its version.
	(cd "$TOOLS" && GOWORK=off GOFLAGS='-mod=readonly -buildvcs=false' CGO_ENABLED=0 \
		go build -trimpath -ldflags "-s -w -X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION#v}" \
		-o "$dir/promtool" github.com/prometheus/prometheus/cmd/promtool) ||
		{ rm -rf "$dir"; die "building promtool $PROMETHEUS_VERSION failed"; }
	mv -f "$dir/promtool" "$PROMTOOL" || { rm -rf "$dir"; die "cannot move promtool to $PROMTOOL"; }
	rm -rf "$dir"
	log "$("$PROMTOOL" --version | head -n 1)"
}

run_tests() {
	install
	cd "$OPS"
	log "+ promtool check rules --lint=all --lint-fatal alerts.yaml"
	"$PROMTOOL" check rules --lint=all --lint-fatal alerts.yaml
	log "+ promtool test rules alerts_test.yaml"
	"$PROMTOOL" test rules alerts_test.yaml
}

case "${1:-}" in
install) install ;;
test) run_tests ;;
path) echo "$PROMTOOL" ;;
*)
	echo "usage: $0 install|test|path" >&2
	exit 2
	;;
esac
