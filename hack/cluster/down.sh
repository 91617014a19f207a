#!/usr/bin/env bash
# Tears down what hack/cluster/up.sh started: every pod's containers, the
# node's processes, the mounts under the kubelet root, the CNI bridge, the
# provider's host paths and the state. Safe to run twice, and after a failed
# or half-done up. Keeps ${CLUSTER_STATE}/logs unless KEEP_LOGS=0.
set -uo pipefail

S="${CLUSTER_STATE:-/var/lib/csspa-e2e}"
R="${CLUSTER_RUN:-/run/csspa-e2e}"
KUBELET_ROOT=/var/lib/kubelet
start=$(date +%s)

# Stop kubelet first so it does not restart what we stop next, then the pods
# (through containerd, which also ends their shims), then the control plane.
stop() { # name
  local pid
  pid="$(awk -v n="$1" '$1 == n {print $2}' "${R}/pids" 2>/dev/null)"
  [ -n "${pid}" ] || return 0
  kill "${pid}" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "${pid}" 2>/dev/null || return 0; sleep 0.2; done
  kill -9 "${pid}" 2>/dev/null || true
}
stop kubelet
if [ -S "${R}/containerd.sock" ]; then
  C=(ctr --address "${R}/containerd.sock" -n k8s.io)
  for t in $("${C[@]}" tasks ls -q 2>/dev/null); do "${C[@]}" tasks kill -s SIGKILL "${t}" >/dev/null 2>&1; done
  sleep 1
  for t in $("${C[@]}" tasks ls -q 2>/dev/null); do "${C[@]}" tasks delete -f "${t}" >/dev/null 2>&1; done
fi
stop containerd
# Shims and container processes left behind by a killed containerd.
pkill -9 -f "containerd-shim-runc-v2 -namespace k8s.io -address ${R}/containerd.sock" 2>/dev/null || true
for name in kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "${name}"; done

# Mounts: pod volumes (CSI, projected, secrets), the FUSE view, containerd's
# rootfs and shm mounts; deepest first, lazily when busy.
for root in "${KUBELET_ROOT}" "${R}" "${S}" /var/run/csi-secrets-store-provider-alibabacloud /run/csi-secrets-store-provider-alibabacloud; do
  awk -v r="${root}/" 'index($5, r) == 1 || $5 == substr(r, 1, length(r)-1) {print $5}' /proc/self/mountinfo | sort -r | uniq |
    while read -r m; do umount "${m}" 2>/dev/null || umount -l "${m}" 2>/dev/null || true; done
done
ip link delete csspa0 2>/dev/null || true
# Cgroups that the pods left (cgroupfs driver: /kubepods under each hierarchy).
for h in /sys/fs/cgroup/*/; do
  [ -d "${h}kubepods" ] && find "${h}kubepods" -depth -type d -exec rmdir {} \; 2>/dev/null
done
rm -rf "${KUBELET_ROOT}" /var/run/secrets-store-csi-providers /etc/kubernetes/secrets-store-csi-providers "${R}"
if [ "${KEEP_LOGS:-1}" = 1 ] && [ -d "${S}/logs" ]; then
  find "${S}" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} + 2>/dev/null
else
  rm -rf "${S}"
fi
echo "cluster down in $(( $(date +%s) - start ))s"
