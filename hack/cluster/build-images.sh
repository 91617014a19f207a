#!/usr/bin/env bash
# Builds the container images of the one-node e2e cluster (hack/cluster/up.sh,
# integration/cluster) as docker-archive tarballs under
# .tools/cluster/images/, plus images.env naming them. No image registry is
# reachable here, so every image is built FROM scratch out of binaries
# compiled locally (Go module proxy) and Debian's busybox-static, with buildah
# (vfs storage in a temp dir, nothing run inside an image), and the cluster
# imports the tarballs with `ctr -n k8s.io images import`.
#
#   image (localhost/NAME:e2e)              tarball            contents
#   csi-secrets-store-provider-alibabacloud provider-amd64.tar the Dockerfile's final stage, built the way
#                                           provider-arm64.tar   hack/image/test.sh does (tag e2e-arm64: built
#                                                                and checked for arm64, never run here)
#   secrets-store-csi-driver                driver.tar         sigs.k8s.io/secrets-store-csi-driver@v1.6.0's
#                                                                command (via integration/cluster's go.mod) at
#                                                                /secrets-store-csi, upstream's entrypoint (the
#                                                                chart sets only args); busybox as /bin/mount,
#                                                                /bin/umount and /bin/sh, which k8s.io/mount-utils
#                                                                execs; /tmp (its umount probe); a CA bundle
#   node-driver-registrar                   registrar.tar      integration/cluster/cmd/registrar
#   livenessprobe                           livenessprobe.tar  integration/cluster/cmd/livenessprobe
#   pause                                   pause.tar          integration/cluster/cmd/pause (sandbox_image)
#   app                                     app.tar            busybox: sh, cat, sleep, ls, env, echo, test, ...
#                                                                (entrypoint /bin/sh) for the suite's pods
#
# Each tarball is rebuilt only when its key changes: a hash of every file in
# the image (mode, link target, content), its config and this script, written
# beside it as NAME.key. The Go binaries are always rebuilt (the build cache
# makes that cheap) and are reproducible (-trimpath), so an unchanged tree
# gives unchanged keys. After building, every tarball's config is checked
# (name, os, architecture, entrypoint) and a table of sizes and seconds is
# printed. images.env holds KEY=reference lines (PAUSE_IMAGE, PROVIDER_IMAGE
# = the node's architecture, PROVIDER_IMAGE_AMD64, PROVIDER_IMAGE_ARM64,
# DRIVER_IMAGE, REGISTRAR_IMAGE, LIVENESSPROBE_IMAGE, APP_IMAGE) for up.sh
# (sandbox_image) and the suite (helm values). The provider's binary carries
# the commit (as the Dockerfile's does), so each commit rebuilds its images.
#
#   hack/cluster/build-images.sh                  build what changed, check all, write images.env
#   hack/cluster/build-images.sh --print-values   also print `helm --set` flags for charts/ with these images
#
# Measured cost on the 2-core machine: with an empty Go build cache the
# driver's command took 6 min 14 s (beside a Kubernetes build: load 15) and the
# provider for amd64 + arm64 107 s; each buildah image then takes 0-2 s, and
# the seven tarballs total 126 MiB (driver 45, provider 26 + 24, registrar 14,
# livenessprobe 13, pause 2, app 2). A rerun with nothing changed takes 6 s
# (Go builds hit the cache, every image is skipped); after an edit to this
# script, which rebuilds every image, 15 s. Needs root (buildah), Go,
# busybox-static, ca-certificates and python3 (hack/cluster/install.sh).
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "${repo}"
out="${repo}/.tools/cluster/images"
print_values=false
for arg in "$@"; do
  case "${arg}" in
    --print-values) print_values=true ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument ${arg}" >&2; exit 2 ;;
  esac
done

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

[ "$(id -u)" = 0 ] || fail "run as root (buildah)"
for c in buildah go python3 sha256sum; do
  command -v "${c}" >/dev/null || fail "${c} missing: run hack/cluster/install.sh"
done
busybox=/bin/busybox
ca_bundle=/etc/ssl/certs/ca-certificates.crt
# grep reads the whole list: busybox writes it one name a write, and with
# pipefail an early-exiting grep -q could fail the check by SIGPIPE.
"${busybox}" --list 2>/dev/null | grep -x mount >/dev/null || fail "${busybox} missing (Debian busybox-static)"
# Debian's busybox package (dynamic) installs the same path; it would not run FROM scratch.
! command -v dpkg >/dev/null || dpkg -S "${busybox}" 2>/dev/null | grep -q '^busybox-static:' ||
  fail "${busybox} is not from busybox-static (a dynamic busybox cannot run in these images)"
[ -f "${ca_bundle}" ] || fail "${ca_bundle} missing (Debian ca-certificates)"

node_arch="$(go env GOARCH)" # the images run on this node, so they are built for its architecture
case "${node_arch}" in amd64 | arm64) ;; *) fail "unsupported node architecture ${node_arch}" ;; esac
provider=csi-secrets-store-provider-alibabacloud
VERSION="${VERSION:-v0.0.0-e2e}"
COMMIT="${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
driver_pkg=sigs.k8s.io/secrets-store-csi-driver/cmd/secrets-store-csi-driver
driver_version="$(cd integration/cluster && go list -m -f '{{.Version}}' sigs.k8s.io/secrets-store-csi-driver)"
recipe="$(sha256sum "$0" | cut -c1-64)"

work="$(mktemp -d /tmp/cluster-images.XXXXXX)"
store=(--root "${work}/storage" --runroot "${work}/run" --storage-driver vfs)
cleanup() {
  buildah "${store[@]}" rm --all >/dev/null 2>&1 || true
  buildah "${store[@]}" rmi --all --force >/dev/null 2>&1 || true
  rm -rf "${work}"
}
trap cleanup EXIT
mkdir -p "${out}" "${work}/bin"
declare -A seconds=()

step "go build: provider (linux/amd64, linux/arm64), as the Dockerfile's build stage"
# The same command as the Dockerfile's build stage; fail if the two drift.
for want in 'CGO_ENABLED=0' 'go build -trimpath' \
  '-ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}"' \
  "-o /out/rootfs/${provider}" "./cmd/${provider}" \
  'cp /etc/ssl/certs/ca-certificates.crt /out/rootfs/etc/ssl/certs/ca-certificates.crt'; do
  grep -qF -- "${want}" Dockerfile || fail "the Dockerfile's build stage no longer has: ${want}"
done
t0=${SECONDS}
for arch in amd64 arm64; do
  rootfs="${work}/provider-${arch}/rootfs"
  mkdir -p "${rootfs}/etc/ssl/certs"
  cp "${ca_bundle}" "${rootfs}/etc/ssl/certs/ca-certificates.crt"
  CGO_ENABLED=0 GOOS=linux GOARCH="${arch}" go build -trimpath \
    -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
    -o "${rootfs}/${provider}" "./cmd/${provider}"
done
seconds[gobuild-provider]=$((SECONDS - t0))

step "go build: driver ${driver_version}, registrar, livenessprobe, pause (linux/${node_arch}, static)"
t0=${SECONDS}
# One build, so the four commands share compilation. The driver's version
# variable is set as upstream's Makefile does.
(cd integration/cluster && CGO_ENABLED=0 GOOS=linux GOARCH="${node_arch}" go build -trimpath \
  -ldflags "-s -w -X sigs.k8s.io/secrets-store-csi-driver/pkg/version.BuildVersion=${driver_version}" \
  -o "${work}/bin/" "${driver_pkg}" ./cmd/registrar ./cmd/livenessprobe ./cmd/pause)
seconds[gobuild-node]=$((SECONDS - t0))
for b in secrets-store-csi-driver registrar livenessprobe pause; do
  go version -m "${work}/bin/${b}" | grep -q 'CGO_ENABLED=0' || fail "${b} was not built with CGO_ENABLED=0"
done

# rootfs DIR FILE... : copies each SRC=DEST into DIR (DEST absolute in the image).
rootfs() {
  local dir="$1" spec
  shift
  for spec in "$@"; do
    mkdir -p "$(dirname "${dir}${spec#*=}")"
    cp "${spec%%=*}" "${dir}${spec#*=}"
  done
}
# busybox_links DIR APPLET... : /bin/busybox plus a symlink /bin/APPLET per applet.
busybox_links() {
  local dir="$1" a
  shift
  rootfs "${dir}" "${busybox}=/bin/busybox"
  for a in "$@"; do ln -sf busybox "${dir}/bin/${a}"; done
  mkdir -p "${dir}/tmp" && chmod 1777 "${dir}/tmp"
}
# key DIR WORDS... : hash of the tree at DIR (type, mode, link target, content) and WORDS.
key() {
  local dir="$1"
  shift
  {
    printf '%s\n' "recipe ${recipe}" "$@"
    (cd "${dir}" && find . -mindepth 1 -printf '%y %m %p %l\n' | LC_ALL=C sort)
    (cd "${dir}" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
  } | sha256sum | cut -c1-64
}
# fresh TAR KEY: true when TAR exists and was built from KEY.
fresh() { [ -f "${out}/$1" ] && [ "$(cat "${out}/$1.key" 2>/dev/null)" = "$2" ]; }
# push IMAGE TAR KEY: writes the committed IMAGE to TAR and records its key.
push() {
  rm -f "${work}/push.tar"
  buildah "${store[@]}" push --quiet "$1" "docker-archive:${work}/push.tar:$1" >/dev/null
  mv "${work}/push.tar" "${out}/$2"
  echo "$3" > "${out}/$2.key"
}
path_env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# image NAME TAR ENTRYPOINT_JSON DIR [CONFIG_ARGS...]: FROM scratch, DIR's tree at /, for this node.
image() {
  local name="localhost/$1:e2e" tar="$2" entrypoint="$3" dir="$4" k ctr t0=${SECONDS}
  shift 4
  k="$(key "${dir}" "${name}" "${node_arch}" "${entrypoint}" "$@")"
  checks+=("${tar} ${name} ${node_arch} ${entrypoint}")
  if fresh "${tar}" "${k}"; then
    seconds[${tar}]=cached
    return
  fi
  step "buildah: ${name} -> ${tar}"
  ctr="$(buildah "${store[@]}" from --quiet --arch "${node_arch}" --os linux scratch)"
  buildah "${store[@]}" copy --quiet "${ctr}" "${dir}/" / >/dev/null
  buildah "${store[@]}" config --os linux --arch "${node_arch}" --entrypoint "${entrypoint}" \
    --user 0:0 "$@" "${ctr}"
  buildah "${store[@]}" commit --quiet --timestamp 0 "${ctr}" "${name}" >/dev/null
  buildah "${store[@]}" rm "${ctr}" >/dev/null
  push "${name}" "${tar}" "${k}"
  seconds[${tar}]=$((SECONDS - t0))
}
checks=()

# The provider: the Dockerfile's final stage, exactly as hack/image/test.sh
# builds it (its one COPY --from=build reads the rootfs from the context).
final="${work}/final.Dockerfile"
last_from="$(grep -n '^FROM ' Dockerfile | tail -n 1 | cut -d: -f1)"
tail -n "+${last_from}" Dockerfile > "${work}/final.orig"
grep -q '^FROM scratch' "${work}/final.orig" || fail "the Dockerfile's final stage is not FROM scratch"
sed 's#^COPY --from=build /out/rootfs/ /$#COPY rootfs/ /#' "${work}/final.orig" > "${final}"
[ "$(diff "${work}/final.orig" "${final}" | grep -c '^>' || true)" = 1 ] ||
  fail "expected exactly one 'COPY --from=build /out/rootfs/ /' in the Dockerfile's final stage"
! grep -q -- '--from=' "${final}" || fail "the final stage copies from another stage besides build's rootfs"
for arch in amd64 arm64; do
  tar="provider-${arch}.tar"
  # The node's architecture gets the plain tag; the other one is built and
  # checked only (tag e2e-ARCH, tarball *-ARCH.tar, which up.sh skips).
  name="localhost/${provider}:e2e"
  if [ "${arch}" = "${node_arch}" ]; then provider_image="${name}"; else name="${name}-${arch}"; fi
  declare "provider_image_${arch}=${name}"
  checks+=("${tar} ${name} ${arch} [\"/${provider}\"]")
  k="$(key "${work}/provider-${arch}/rootfs" "${name}" "${arch}" "$(cat "${final}")")"
  if fresh "${tar}" "${k}"; then
    seconds[${tar}]=cached
    continue
  fi
  step "buildah build (the Dockerfile's final stage): ${name} linux/${arch} -> ${tar}"
  t0=${SECONDS}
  buildah "${store[@]}" build --quiet --isolation chroot --os linux --arch "${arch}" --timestamp 0 \
    -f "${final}" -t "${name}" "${work}/provider-${arch}" >/dev/null
  push "${name}" "${tar}" "${k}"
  seconds[${tar}]=$((SECONDS - t0))
done

d="${work}/driver"
rootfs "${d}" "${work}/bin/secrets-store-csi-driver=/secrets-store-csi" "${ca_bundle}=${ca_bundle}"
busybox_links "${d}" mount umount sh
image secrets-store-csi-driver driver.tar '["/secrets-store-csi"]' "${d}" --env "${path_env}"

rootfs "${work}/registrar" "${work}/bin/registrar=/csi-node-driver-registrar"
image node-driver-registrar registrar.tar '["/csi-node-driver-registrar"]' "${work}/registrar"

rootfs "${work}/livenessprobe" "${work}/bin/livenessprobe=/livenessprobe"
image livenessprobe livenessprobe.tar '["/livenessprobe"]' "${work}/livenessprobe"

rootfs "${work}/pause" "${work}/bin/pause=/pause"
image pause pause.tar '["/pause"]' "${work}/pause"

busybox_links "${work}/app" sh cat sleep ls env echo test '[' true false id stat grep head wc find mount
image app app.tar '["/bin/sh"]' "${work}/app" --env "${path_env}"

step "check every tarball's config"
# Reads each docker-archive (manifest.json, then the config it names) and
# wants the name, os linux, the architecture and the entrypoint.
python3 - "${out}" "${checks[@]}" <<'EOF'
import json, sys, tarfile
out, bad = sys.argv[1], 0
for spec in sys.argv[2:]:
    tar, name, arch, entrypoint = spec.split(" ", 3)
    with tarfile.open(f"{out}/{tar}") as t:
        manifest = json.load(t.extractfile("manifest.json"))
        cfg = json.load(t.extractfile(manifest[0]["Config"]))
    got = (manifest[0].get("RepoTags"), cfg.get("os"), cfg.get("architecture"), cfg["config"].get("Entrypoint"))
    want = ([name], "linux", arch, json.loads(entrypoint))
    if got != want:
        print(f"FAIL: {tar}: got {got}, want {want}", file=sys.stderr)
        bad += 1
sys.exit(bad)
EOF

env="${out}/images.env"
cat > "${env}.tmp" <<EOF
# Written by hack/cluster/build-images.sh: the e2e node's images, one
# KEY=reference a line. Import ${out}/*.tar (not *arm64*) with
# \`ctr -n k8s.io images import\`; they can never be pulled.
PAUSE_IMAGE=localhost/pause:e2e
PROVIDER_IMAGE=${provider_image}
PROVIDER_IMAGE_AMD64=${provider_image_amd64}
PROVIDER_IMAGE_ARM64=${provider_image_arm64}
DRIVER_IMAGE=localhost/secrets-store-csi-driver:e2e
REGISTRAR_IMAGE=localhost/node-driver-registrar:e2e
LIVENESSPROBE_IMAGE=localhost/livenessprobe:e2e
APP_IMAGE=localhost/app:e2e
EOF
mv "${env}.tmp" "${env}"

printf '%-78s %-6s %9s %8s\n' image arch size seconds
for spec in "${checks[@]}"; do
  read -r tar name arch _ <<<"${spec}"
  printf '%-78s %-6s %6s MiB %8s\n' "${name} (${tar})" "${arch}" \
    "$(du -m "${out}/${tar}" | cut -f1)" "${seconds[${tar}]}"
done
echo "go build seconds: provider ${seconds[gobuild-provider]}, node binaries ${seconds[gobuild-node]}; total ${SECONDS} s"
echo "wrote ${env}"

if ${print_values}; then
  # helm --set flags for charts/ (which bundles the driver's chart) with these images.
  . "${env}"
  set_image() { echo "--set $1.repository=${2%:*} --set $1.tag=${2##*:} --set $1.pullPolicy=Never"; }
  set_image linux.image "${PROVIDER_IMAGE}"
  set_image secrets-store-csi-driver.linux.image "${DRIVER_IMAGE}"
  set_image secrets-store-csi-driver.linux.registrarImage "${REGISTRAR_IMAGE}"
  set_image secrets-store-csi-driver.linux.livenessProbeImage "${LIVENESSPROBE_IMAGE}"
  # The chart's CRD upgrade hook runs a kubectl image that does not exist here;
  # helm installs the CRDs from the chart's crds/ anyway.
  echo "--set secrets-store-csi-driver.linux.crds.enabled=false"
fi
