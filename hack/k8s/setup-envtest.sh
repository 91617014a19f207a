#!/usr/bin/env bash
# Prepares the binaries controller-runtime's envtest needs for the tests in
# integration/driver, in <repo>/.tools/k8s-assets (ignored by git):
#   etcd            from Debian (hack/k8s/install-etcd.sh)
#   kube-apiserver  built from the Go module proxy (hack/k8s/build-kube.sh; with kubelet and the rest of the one-node cluster, in one build)
#   kubectl         linked when one is on PATH (envtest does not need it; the
#                   tests do not use it)
# Point envtest at the folder with KUBEBUILDER_ASSETS; the tests default to it.
# Idempotent: a second run only checks.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
assets="${repo}/.tools/k8s-assets"

bash "${repo}/hack/k8s/install-etcd.sh"
bash "${repo}/hack/k8s/build-kube.sh" all

mkdir -p "${assets}"
ln -sfn "$(command -v etcd)" "${assets}/etcd"
ln -sfn "${repo}/.tools/bin/kube-apiserver" "${assets}/kube-apiserver"
if command -v kubectl >/dev/null 2>&1; then
  ln -sfn "$(command -v kubectl)" "${assets}/kubectl"
fi
echo "envtest assets in ${assets}:"
ls -l "${assets}"
echo "export KUBEBUILDER_ASSETS=${assets}"
