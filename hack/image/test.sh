#!/usr/bin/env bash
# Checks the container image offline:
#   1. lints the Dockerfile with dockerfilelint;
#   2. builds the provider binary exactly as the Dockerfile's build stage does
#      (CGO off, -trimpath, -s -w, main.version/main.commit stamped);
#   3. builds the Dockerfile's FINAL stage, unchanged except that its one
#      `COPY --from=build /out/rootfs/ /` reads that rootfs from the build
#      context (base images cannot be pulled here, and the final stage is
#      FROM scratch), with buildah (vfs storage, chroot isolation);
#   4. checks the image config (entrypoint, cmd, user 0:0) and contents (CA
#      bundle) and runs its `version` through the entrypoint.
# Needs root and the tools of hack/image/install-tools.sh.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "${repo}"
name=csi-secrets-store-provider-alibabacloud
cmd_dir="./cmd/${name}"
VERSION="${VERSION:-v0.0.0-imagetest}"
COMMIT="${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
lint="${repo}/.tools/node/node_modules/.bin/dockerfilelint"

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

[ "$(id -u)" = 0 ] || fail "run as root (buildah with chroot isolation)"
command -v buildah >/dev/null || fail "buildah missing: run hack/image/install-tools.sh"
[ -x "${lint}" ] || fail "dockerfilelint missing: run hack/image/install-tools.sh"
[ -d "${cmd_dir}" ] || fail "${cmd_dir} does not exist: there is no provider binary to put in the image yet"
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -f "${ca_bundle}" ] || fail "${ca_bundle} missing (Debian package ca-certificates); the image ships the same file"

step "dockerfilelint Dockerfile"
"${lint}" Dockerfile

work="$(mktemp -d /tmp/image-test.XXXXXX)"
store=(--root "${work}/storage" --runroot "${work}/run" --storage-driver vfs)
ctr=""
cleanup() {
  [ -n "${ctr}" ] && buildah "${store[@]}" rm "${ctr}" >/dev/null 2>&1 || true
  buildah "${store[@]}" rmi --all --force >/dev/null 2>&1 || true
  rm -rf "${work}"
}
trap cleanup EXIT

step "build ${cmd_dir} (static, version ${VERSION}, commit ${COMMIT})"
# The same command as the Dockerfile's build stage; fail if the two drift.
for want in 'CGO_ENABLED=0' 'go build -trimpath' \
  '-ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}"' \
  "-o /out/rootfs/${name}" "${cmd_dir}" \
  'cp /etc/ssl/certs/ca-certificates.crt /out/rootfs/etc/ssl/certs/ca-certificates.crt'; do
  grep -qF -- "${want}" Dockerfile || fail "the Dockerfile's build stage no longer has: ${want}"
done
rootfs="${work}/context/rootfs"
mkdir -p "${rootfs}/etc/ssl/certs"
cp "${ca_bundle}" "${rootfs}/etc/ssl/certs/ca-certificates.crt"
CGO_ENABLED=0 GOOS=linux go build -trimpath \
  -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
  -o "${rootfs}/${name}" "${cmd_dir}"
go version -m "${rootfs}/${name}" | grep -q 'CGO_ENABLED=0' || fail "the binary was not built with CGO_ENABLED=0"

step "extract the Dockerfile's final stage"
final="${work}/final.Dockerfile"
last_from="$(grep -n '^FROM ' Dockerfile | tail -n 1 | cut -d: -f1)"
tail -n "+${last_from}" Dockerfile > "${work}/final.orig"
grep -q '^FROM scratch' "${work}/final.orig" || fail "the final stage is not FROM scratch: it cannot be built offline"
sed 's#^COPY --from=build /out/rootfs/ /$#COPY rootfs/ /#' "${work}/final.orig" > "${final}"
changed="$(diff "${work}/final.orig" "${final}" | grep -c '^>' || true)"
[ "${changed}" = 1 ] || fail "expected exactly one 'COPY --from=build /out/rootfs/ /' in the final stage, replaced ${changed}"
! grep -q -- '--from=' "${final}" || fail "the final stage copies from another stage besides build's rootfs"
cat "${final}"

step "buildah build (final stage)"
image="localhost/${name}:test"
buildah "${store[@]}" build --isolation chroot --quiet -f "${final}" -t "${image}" "${work}/context" >/dev/null

step "inspect ${image}"
buildah "${store[@]}" inspect --type image "${image}" > "${work}/inspect.json"
cfg() { python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["OCIv1"]["config"].get(sys.argv[2]), separators=(",", ":")))' "${work}/inspect.json" "$1"; }
entrypoint="$(cfg Entrypoint)"
cmd="$(cfg Cmd)"
user="$(cfg User)"
echo "entrypoint=${entrypoint} cmd=${cmd} user=${user}"
[ "${entrypoint}" = "[\"/${name}\"]" ] || fail "entrypoint ${entrypoint}, want [\"/${name}\"]"
[ "${cmd}" = '["serve"]' ] || fail "cmd ${cmd}, want [\"serve\"] (the DaemonSet's job)"
[ "${user}" = '"0:0"' ] || fail "user ${user}, want 0:0 (the socket's hostPath is root-owned)"

ctr="$(buildah "${store[@]}" from --quiet "${image}")"
mnt="$(buildah "${store[@]}" mount "${ctr}")"
files="$(cd "${mnt}" && find . -mindepth 1 \( -type f -o -type l \) | sort | tr '\n' ' ')"
echo "files: ${files}"
[ "${files}" = "./${name} ./etc/ssl/certs/ca-certificates.crt " ] || fail "unexpected image contents: ${files}"
buildah "${store[@]}" umount "${ctr}" >/dev/null

step "run the image's entrypoint with 'version'"
out="$(buildah "${store[@]}" run --isolation chroot "${ctr}" -- "/${name}" version)"
echo "${out}"
grep -qF -- "${VERSION}" <<<"${out}" || fail "version output lacks ${VERSION}"
grep -qF -- "${COMMIT}" <<<"${out}" || fail "version output lacks ${COMMIT}"
grep -qF -- "$(go env GOVERSION)" <<<"${out}" || fail "version output lacks the Go version"

echo "image test: 1 passed, 0 failed"
