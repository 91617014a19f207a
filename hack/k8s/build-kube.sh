#!/usr/bin/env bash
# Builds the Kubernetes binaries the suite needs from the Go module proxy into
# <repo>/.tools/bin (ignored by git), keyed by version:
#   kube-apiserver                       envtest (integration/driver) and the cluster
#   kubelet, kube-controller-manager,    the one-node cluster (hack/cluster)
#   kube-scheduler, kubectl
# Usage: build-kube.sh [all|apiserver]   (default all)
#
# Why build them: no Debian package ships them and this machine reaches no
# download site, but k8s.io/kubernetes is on the module proxy. The wrapper
# module integration/kube-apiserver pins the version and maps the staging
# modules to their published versions. All binaries come from ONE go build so
# they share compilation.
#
# Cost (2 cores, cold build cache): kube-apiserver alone about 8 min; all five
# 6-10 min, 1.9 GB RSS, +3 GB build cache. Nothing is done when binaries of the
# right version are already there.
# The version ldflags matter: without them the server reports
# v0.0.0-master+$Format:%H$, which kubectl and discovery clients cannot parse.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
mod="${repo}/integration/kube-apiserver"
bin="${repo}/.tools/bin"
what="${1:-all}"
case "${what}" in
  all) cmds=(kube-apiserver kubelet kube-controller-manager kube-scheduler kubectl) ;;
  apiserver) cmds=(kube-apiserver) ;;
  *) echo "usage: $0 [all|apiserver]" >&2; exit 2 ;;
esac

# The version is the one the wrapper module requires.
version="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "${mod}/go.mod")"
if [ -z "${version}" ]; then
  echo "no 'require k8s.io/kubernetes vX.Y.Z' line in ${mod}/go.mod" >&2
  exit 1
fi
major="${version#v}"; major="${major%%.*}"
minor="${version#v*.}"; minor="${minor%%.*}"

# One version stamp per binary: a binary is rebuilt when it is missing or
# was built from another version.
missing=()
for c in "${cmds[@]}"; do
  if [ ! -x "${bin}/${c}" ] || [ "$(cat "${bin}/.${c}.version" 2>/dev/null)" != "${version}" ]; then
    missing+=("${c}")
  fi
done
if [ "${#missing[@]}" = 0 ]; then
  echo "${cmds[*]} ${version} already in ${bin}"
  exit 0
fi

mkdir -p "${bin}"
start=$(date +%s)
pkg=k8s.io/component-base/version
ldflags="-s -w -X ${pkg}.gitVersion=${version} -X ${pkg}.gitMajor=${major} -X ${pkg}.gitMinor=${minor}"
ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
pkgs=()
for c in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/${c}"); done
tmp="$(mktemp -d "${bin}/.build.XXXXXX")"
trap 'rm -rf "${tmp}"' EXIT
# GOFLAGS from the environment (e.g. -mod=vendor) must not leak into this
# module; CGO off gives the static binaries Kubernetes releases ship.
(cd "${mod}" && GOFLAGS=-buildvcs=false CGO_ENABLED=0 go build -trimpath -ldflags "${ldflags}" \
  -o "${tmp}/" "${pkgs[@]}")
for c in "${missing[@]}"; do
  mv "${tmp}/${c}" "${bin}/${c}"
  echo "${version}" > "${bin}/.${c}.version"
done
echo "built ${missing[*]} ${version} into ${bin} in $(( $(date +%s) - start ))s"
"${bin}/kube-apiserver" --version 2>/dev/null || true
