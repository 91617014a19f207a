#!/usr/bin/env bash
# make cluster-test: the end-to-end suite against a real one-node Kubernetes.
#   1. installs the Debian packages and helm (nothing when present);
#   2. builds kube-apiserver, kubelet, kube-controller-manager, kube-scheduler
#      and kubectl from the Go module proxy (cached in .tools/bin by version);
#   3. builds the node's images with buildah (cached in .tools/cluster/images
#      by content);
#   4. stands the cluster up (hack/cluster/up.sh), runs integration/cluster
#      (helm install of the chart, pods mounting through kubelet, the driver
#      and the provider image), and tears it down (hack/cluster/down.sh),
#      also when the tests fail.
# Set KEEP_CLUSTER=1 to leave the cluster running afterwards (then
# `source /var/lib/csspa-e2e/env` gives kubectl; hack/cluster/down.sh ends it).
# Extra arguments go to go test, e.g. hack/cluster/test.sh -run 'TestCluster/GuideExample'.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "${repo}"
t0=$(date +%s)
phase() { echo "== cluster-test: $1 done in $(( $(date +%s) - t0 ))s"; t0=$(date +%s); }

bash hack/cluster/install.sh
bash hack/chart/install-helm.sh
phase "packages and helm"
bash hack/k8s/build-kube.sh all
phase "Kubernetes binaries"
bash hack/cluster/build-images.sh
phase "images"

bash hack/cluster/down.sh >/dev/null 2>&1 || true
if [ "${KEEP_CLUSTER:-0}" != 1 ]; then
  trap 'bash hack/cluster/down.sh' EXIT
fi
bash hack/cluster/up.sh
phase "cluster up"
(cd integration/cluster && go test -count=1 -timeout 45m -v "$@" ./...)
phase "suite"
