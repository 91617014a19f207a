#!/usr/bin/env bash
# Stands up a one-node Kubernetes on this machine from Debian packages and
# binaries built from Go modules, for the end-to-end suite in
# integration/cluster (make cluster-test). Everything listens on 127.0.0.1;
# nothing is pulled: the node's images are imported from tarballs that
# hack/cluster/build-images.sh made.
#
#   etcd                      Debian etcd-server, 127.0.0.1:23790, data in tmpfs-like state dir
#   kube-apiserver            127.0.0.1:6443, own CA, real service-account signing keys
#   kube-controller-manager   service accounts, root CA ConfigMaps, DaemonSets, Jobs
#   kube-scheduler
#   containerd 1.6 + runc     Debian; own config, root and state; CRI on a private socket
#   kubelet                   node csspa-e2e, root dir /var/lib/kubelet (the chart's default)
#
# Writes ${CLUSTER_STATE}/env (KUBECONFIG, CONTAINERD_ADDRESS, API server
# URL, node name) for the tests and for a person:
#   source /var/lib/csspa-e2e/env && kubectl get pods -A
# Idempotent in the sense that it refuses to start over a running cluster:
# run hack/cluster/down.sh first. Needs root.
#
# Settings this machine needs are explained next to each; the reasons are in
# docs/cluster-tests.md.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${repo}/.tools/bin"
images="${CLUSTER_IMAGES:-${repo}/.tools/cluster/images}"
# Short absolute paths: unix socket paths are limited to 108 bytes.
S="${CLUSTER_STATE:-/var/lib/csspa-e2e}"
R="${CLUSTER_RUN:-/run/csspa-e2e}"
NODE="${CLUSTER_NODE:-csspa-e2e}"
APISERVER_PORT="${APISERVER_PORT:-6443}"
ETCD_PORT="${ETCD_PORT:-23790}"
ETCD_PEER_PORT="${ETCD_PEER_PORT:-23800}"
KUBELET_ROOT=/var/lib/kubelet

fail() { echo "cluster up: $*" >&2; exit 1; }
step() { echo "== $(date +%T) $*"; }
start=$(date +%s)

[ "$(id -u)" = 0 ] || fail "run as root"
for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do
  [ -x "${bin}/${b}" ] || fail "${bin}/${b} missing: run hack/k8s/build-kube.sh"
done
for c in etcd containerd ctr runc openssl; do
  command -v "${c}" >/dev/null || fail "${c} missing: run hack/cluster/install.sh"
done
[ -d /usr/lib/cni ] || fail "/usr/lib/cni missing: run hack/cluster/install.sh (containernetworking-plugins)"
[ -f "${images}/images.env" ] || fail "${images}/images.env missing: run hack/cluster/build-images.sh"
if [ -f "${R}/pids" ] && while read -r name pid; do kill -0 "${pid}" 2>/dev/null && exit 0; done < "${R}/pids"; then
  fail "a cluster is already running (${R}/pids): run hack/cluster/down.sh first"
fi

rm -rf "${S}" "${R}"
# Mount propagation as on a systemd host (systemd makes / shared at boot):
# a hostPath with mountPropagation Bidirectional (the driver's kubelet dir,
# the FUSE view's mountpoint) must lie on a shared mount, or containerd
# refuses the container ("is mounted on / but it is not a shared mount").
if ! awk '$5 == "/" {for (i = 7; $i != "-"; i++) if ($i ~ /^shared:/) f = 1} END {exit !f}' /proc/self/mountinfo; then
  mount --make-rshared /
fi
mkdir -p "${S}"/{pki,etcd,containerd/root,cni,logs,kubelet} "${R}/containerd"
: > "${R}/pids"
log="${S}/logs"

# The node name must resolve to 127.0.0.1 so the API server reaches kubelet
# (logs, exec) on loopback (--kubelet-preferred-address-types=Hostname).
if ! getent hosts "${NODE}" | grep -q '^127\.'; then
  echo "127.0.0.1 ${NODE}" >> /etc/hosts
fi

step "certificates and service-account keys"
pki="${S}/pki"
(
  cd "${pki}"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=csspa-e2e-ca" 2>/dev/null
  cert() { # name subject [san]
    openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
    if [ -n "${3:-}" ]; then printf 'subjectAltName=%s\n' "$3" > "$1.ext"; else : > "$1.ext"; fi
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 2 -extfile "$1.ext" 2>/dev/null
  }
  cert apiserver "/CN=kube-apiserver" "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert admin "/O=system:masters/CN=kubernetes-admin"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  cert kubelet "/O=system:nodes/CN=system:node:${NODE}"
  cert controller-manager "/CN=system:kube-controller-manager"
  cert scheduler "/CN=system:kube-scheduler"
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
)

kubeconfig() { # file user
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: csspa-e2e
  cluster:
    server: https://127.0.0.1:${APISERVER_PORT}
    certificate-authority: ${pki}/ca.crt
users:
- name: $2
  user:
    client-certificate: ${pki}/$2.crt
    client-key: ${pki}/$2.key
contexts:
- name: csspa-e2e
  context: {cluster: csspa-e2e, user: $2}
current-context: csspa-e2e
EOF
}
kubeconfig "${S}/admin.kubeconfig" admin
kubeconfig "${S}/kubelet.kubeconfig" kubelet
kubeconfig "${S}/controller-manager.kubeconfig" controller-manager
kubeconfig "${S}/scheduler.kubeconfig" scheduler

run() { # name command...
  local name="$1"; shift
  "$@" > "${log}/${name}.log" 2>&1 &
  echo "${name} $!" >> "${R}/pids"
}
wait_for() { # what seconds command...
  local what="$1" secs="$2"; shift 2
  local i
  for ((i = 0; i < secs * 5; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "cluster up: ${what} not ready after ${secs}s; last log lines:" >&2
  tail -n 30 "${log}/${what}.log" >&2 || true
  exit 1
}

step "etcd"
run etcd etcd --name csspa-e2e --data-dir "${S}/etcd" \
  --listen-client-urls "http://127.0.0.1:${ETCD_PORT}" --advertise-client-urls "http://127.0.0.1:${ETCD_PORT}" \
  --listen-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" \
  --initial-cluster "csspa-e2e=http://127.0.0.1:${ETCD_PEER_PORT}" --unsafe-no-fsync
wait_for etcd 30 curl -fsS "http://127.0.0.1:${ETCD_PORT}/health"

step "kube-apiserver"
# --allow-privileged: the driver and the FUSE view run privileged with
# Bidirectional propagation. The issuer is the API server itself, so its
# discovery document and JWKS (/openid/v1/jwks) are the keys that verify
# projected tokens. --endpoint-reconciler-type=none: a loopback advertise
# address cannot go into the kubernetes EndpointSlice, and nothing here uses
# the service IP (pods reach the API server on 127.0.0.1).
run kube-apiserver "${bin}/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:${ETCD_PORT}" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="${APISERVER_PORT}" \
  --endpoint-reconciler-type=none \
  --tls-cert-file="${pki}/apiserver.crt" --tls-private-key-file="${pki}/apiserver.key" \
  --client-ca-file="${pki}/ca.crt" \
  --kubelet-client-certificate="${pki}/apiserver-kubelet-client.crt" \
  --kubelet-client-key="${pki}/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types=Hostname \
  --service-account-issuer="https://127.0.0.1:${APISERVER_PORT}" \
  --service-account-signing-key-file="${pki}/sa.key" \
  --service-account-key-file="${pki}/sa.pub" \
  --service-cluster-ip-range=10.96.0.0/24 \
  --authorization-mode=Node,RBAC \
  --enable-admission-plugins=NodeRestriction \
  --allow-privileged=true \
  --profiling=false
K=("${bin}/kubectl" --kubeconfig "${S}/admin.kubeconfig")
wait_for kube-apiserver 90 "${K[@]}" get --raw /readyz

step "kube-controller-manager, kube-scheduler"
run kube-controller-manager "${bin}/kube-controller-manager" \
  --kubeconfig="${S}/controller-manager.kubeconfig" \
  --authentication-kubeconfig="${S}/controller-manager.kubeconfig" \
  --authorization-kubeconfig="${S}/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=10257 --leader-elect=false \
  --service-account-private-key-file="${pki}/sa.key" --root-ca-file="${pki}/ca.crt" \
  --use-service-account-credentials=true \
  --controllers='*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle,-route'
run kube-scheduler "${bin}/kube-scheduler" \
  --kubeconfig="${S}/scheduler.kubeconfig" \
  --authentication-kubeconfig="${S}/scheduler.kubeconfig" \
  --authorization-kubeconfig="${S}/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false

step "containerd"
# restrict_oom_score_adj: root here lacks CAP_SYS_RESOURCE, so runc cannot
# set oom_score_adj -998 and every sandbox fails without it. cgroupfs, not
# systemd. The sandbox image is our pause image, imported below, never pulled.
# The CNI config (a bridge without masquerade or port maps) only makes the
# node Ready: every pod of the suite runs on the host network.
. "${images}/images.env"
cat > "${S}/containerd/config.toml" <<EOF
version = 2
root = "${S}/containerd/root"
state = "${R}/containerd"
[grpc]
  address = "${R}/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  enable_unprivileged_ports = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${S}/cni"
EOF
cat > "${S}/cni/10-csspa-e2e.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "csspa-e2e",
  "plugins": [
    {"type": "bridge", "bridge": "csspa0", "isGateway": false, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]], "dataDir": "${S}/cni/ipam"}}
  ]
}
EOF
run containerd containerd --config "${S}/containerd/config.toml"
C=(ctr --address "${R}/containerd.sock" -n k8s.io)
wait_for containerd 30 "${C[@]}" version

step "import images"
for tar in "${images}"/*.tar; do
  # The arm64 provider image is built and checked, never run on this node.
  [ -e "${tar}" ] || continue
  case "${tar}" in *arm64*) continue ;; esac
  "${C[@]}" images import "${tar}" >/dev/null
done
"${C[@]}" images ls -q | sed 's/^/  /'

step "kubelet"
# failCgroupV1: kubelet 1.35 refuses cgroup v1 otherwise. imageGC at 100%:
# imported images cannot be pulled again. Authentication by client
# certificate (the API server's) and webhook authorization, as on a real node.
cat > "${S}/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${pki}/ca.crt}
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://${R}/containerd.sock
imageServiceEndpoint: unix://${R}/containerd.sock
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
syncFrequency: 10s
resolvConf: /etc/resolv.conf
serializeImagePulls: false
EOF
run kubelet "${bin}/kubelet" \
  --config="${S}/kubelet/config.yaml" \
  --kubeconfig="${S}/kubelet.kubeconfig" \
  --hostname-override="${NODE}" \
  --root-dir="${KUBELET_ROOT}" \
  --v=2
wait_for kubelet 120 "${K[@]}" get node "${NODE}"
node_ready() { [ "$("${K[@]}" get node "${NODE}" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]; }
wait_for kubelet 120 node_ready
# The default ServiceAccount and kube-root-ca.crt come from the controller manager.
wait_for kube-controller-manager 60 "${K[@]}" -n default get serviceaccount default

cat > "${S}/env" <<EOF
export KUBECONFIG=${S}/admin.kubeconfig
export CLUSTER_STATE=${S}
export CLUSTER_NODE=${NODE}
export CLUSTER_APISERVER=https://127.0.0.1:${APISERVER_PORT}
export CONTAINERD_ADDRESS=${R}/containerd.sock
export PATH=${bin}:\$PATH
EOF
step "cluster up in $(( $(date +%s) - start ))s: source ${S}/env"
