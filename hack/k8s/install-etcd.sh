#!/usr/bin/env bash
# Installs etcd from Debian (package etcd-server) for the envtest tests in
# integration/driver. envtest starts its own etcd on free loopback ports with
# a temporary data dir; the packaged service must not run, so the install
# asks invoke-rc.d not to start it (RUNLEVEL=1; containers usually also have a
# policy-rc.d that refuses).
set -euo pipefail

if command -v etcd >/dev/null 2>&1; then
  echo "etcd already installed: $(command -v etcd) ($(etcd --version 2>/dev/null | head -1))"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "installing etcd-server needs root (apt-get)" >&2
  exit 1
fi
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
# The package lists may be missing or stale on a fresh machine.
apt-get update -qq
RUNLEVEL=1 apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
echo "installed etcd-server in $(( $(date +%s) - start ))s: $(etcd --version | head -1)"
