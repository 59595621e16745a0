#!/usr/bin/env bash
# The project's test command; CI runs exactly this (.ci/run). As root it
# first installs the test environment (hack/testenv.sh install and
# hack/promtool.sh install, for the alerting rules' tests), then runs
# go vet and every test, including those against real containerd. Extra
# arguments go to go test, e.g. hack/test.sh -run Conformance -v.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then
	hack/testenv.sh install
	hack/promtool.sh install
else
	echo "test.sh: not root: skipping hack/testenv.sh and hack/promtool.sh install; the tests that need containerd, a kube-apiserver or promtool will skip" >&2
fi
echo "+ gofmt -l ."
unformatted="$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"
if [ -n "$unformatted" ]; then
	echo "test.sh: gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi
echo "+ go vet ./..."
go vet ./...
echo "+ go test -race -count=1 -timeout 30m ./... $*"
go test -race -count=1 -timeout 30m ./... "$@"
