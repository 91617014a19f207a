#!/usr/bin/env bash
# Builds kube-apiserver from the Go module proxy into <repo>/.tools/bin (ignored
# by git) for the envtest tests in integration/driver.
#
# Why build it: no Debian package ships kube-apiserver and this machine reaches
# no download site, but k8s.io/kubernetes is on the module proxy. The wrapper
# module integration/kube-apiserver pins the version and maps the staging
# modules to their published versions.
#
# Cost: a cold build takes about 8 minutes and 2 GB of RAM on two cores; the
# script does nothing when a binary of the right version is already there.
# The version ldflags matter: without them the server reports
# v0.0.0-master+$Format:%H$, which kubectl and discovery clients cannot parse.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
mod="${repo}/integration/kube-apiserver"
bin="${repo}/.tools/bin"
out="${bin}/kube-apiserver"

# The version is the one the wrapper module requires.
version="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "${mod}/go.mod")"
if [ -z "${version}" ]; then
  echo "no 'require k8s.io/kubernetes vX.Y.Z' line in ${mod}/go.mod" >&2
  exit 1
fi
major="${version#v}"; major="${major%%.*}"
minor="${version#v*.}"; minor="${minor%%.*}"

if [ -x "${out}" ] && [ "$("${out}" --version 2>/dev/null)" = "Kubernetes ${version}" ]; then
  echo "kube-apiserver ${version} already in ${out}"
  exit 0
fi

mkdir -p "${bin}"
start=$(date +%s)
pkg=k8s.io/component-base/version
ldflags="-s -w -X ${pkg}.gitVersion=${version} -X ${pkg}.gitMajor=${major} -X ${pkg}.gitMinor=${minor}"
ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
# GOFLAGS from the environment (e.g. -mod=vendor) must not leak into this
# module; CGO off gives the static binary Kubernetes releases ship.
(cd "${mod}" && GOFLAGS=-buildvcs=false CGO_ENABLED=0 go build -trimpath -ldflags "${ldflags}" \
  -o "${out}.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
mv "${out}.tmp" "${out}"
echo "built kube-apiserver ${version} into ${out} in $(( $(date +%s) - start ))s"
"${out}" --version
