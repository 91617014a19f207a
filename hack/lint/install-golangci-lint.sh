#!/usr/bin/env bash
# Installs golangci-lint v2 into <repo>/.tools/bin from the Go module proxy
# (the only registry CI reaches; its makers prefer binaries, but this builds
# and runs fine here: ~3 min cold on two cores). Does nothing when present.
set -euo pipefail
VERSION="${GOLANGCI_LINT_VERSION:-v2.15.0}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${repo}/.tools/bin/golangci-lint"
if [ -x "${bin}" ] && "${bin}" version 2>/dev/null | grep -q "${VERSION#v}"; then
  echo "golangci-lint ${VERSION} already in ${bin}"
  exit 0
fi
mkdir -p "${repo}/.tools/bin"
start=$(date +%s)
GOFLAGS= GOBIN="${repo}/.tools/bin" go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@${VERSION}"
echo "installed golangci-lint ${VERSION} in $(( $(date +%s) - start ))s"
