#!/usr/bin/env bash
# Installs the helm v3 client the chart tests use into <repo>/.tools/bin.
#
# Why go install: the machines that run CI reach the Go module proxy but not
# get.helm.sh, so helm is built from source. A cold build takes several
# minutes on two cores; the script does nothing when the right version is
# already there, so running it twice is cheap.
#
# A go-installed helm has no version ldflags, so it believes the cluster is
# Kubernetes v1.20. Always pass --kube-version to `helm lint` / `helm template`
# (the Go tests under integration/k8s do).
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${repo}/.tools/bin"
helm="${bin}/helm"

# `go version -m` shows the module version go install recorded in the binary.
if [ -x "${helm}" ]; then
  have="$(go version -m "${helm}" 2>/dev/null | awk '$1 == "mod" && $2 == "helm.sh/helm/v3" {print $3}')"
  if [ "${have}" = "${HELM_VERSION}" ]; then
    echo "helm ${HELM_VERSION} already in ${helm}"
    exit 0
  fi
  echo "replacing helm ${have:-unknown} in ${helm} with ${HELM_VERSION}"
fi

mkdir -p "${bin}"
start=$(date +%s)
# GOFLAGS from the environment (e.g. -mod=vendor) must not leak into a build
# of another module; -trimpath keeps the binary independent of this machine.
GOFLAGS= GOBIN="${bin}" go install -trimpath "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
echo "installed helm ${HELM_VERSION} into ${helm} in $(( $(date +%s) - start ))s"
"${helm}" version --short
