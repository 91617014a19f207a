#!/usr/bin/env bash
# Installs the Debian packages the one-node cluster needs, and nothing that is
# already there: containerd 1.6, runc, the CNI plugins (/usr/lib/cni), etcd,
# buildah (node images), busybox-static (mount/umount/sh inside the driver and
# test images), openssl (the cluster's CA), iproute2 and curl.
# RUNLEVEL=1 keeps the packaged containerd and etcd services from starting:
# hack/cluster/up.sh runs its own, with its own config and state.
# Measured: about 25 s on a fresh machine (apt-get update included).
set -euo pipefail

want=(containerd runc containernetworking-plugins etcd-server buildah busybox-static openssl iproute2 curl)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "${p}" 2>/dev/null | grep -q 'install ok installed' || missing+=("${p}")
done
if [ "${#missing[@]}" = 0 ]; then
  echo "cluster packages already installed"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "installing ${missing[*]} needs root" >&2; exit 1; }
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed ${missing[*]} in $(( $(date +%s) - start ))s"
