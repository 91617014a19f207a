#!/usr/bin/env bash
# Installs what hack/image/test.sh needs, and nothing that is already there:
#   - buildah (Debian package): builds the Dockerfile's final stage FROM
#     scratch offline, with vfs storage and chroot isolation; needs root.
#   - dockerfilelint 1.8.0 (npm) into <repo>/.tools/node: a Dockerfile linter
#     that works offline (hadolint's npm package downloads a binary).
# Measured on the 2-core CI machine: apt-get update + buildah ~11 s,
# dockerfilelint with an empty npm cache ~4 s.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
DOCKERFILELINT_VERSION="${DOCKERFILELINT_VERSION:-1.8.0}"

if ! command -v buildah >/dev/null 2>&1; then
  start=$(date +%s)
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq buildah >/dev/null
  echo "installed $(buildah --version) in $(( $(date +%s) - start ))s"
else
  echo "$(buildah --version) already installed"
fi

# node/npm (dockerfilelint) and python3 (test.sh) come with the CI image;
# install them from Debian when a machine lacks them.
missing=()
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  echo "installed ${missing[*]}"
fi

lint="${repo}/.tools/node/node_modules/.bin/dockerfilelint"
have="$(node -p "require('${repo}/.tools/node/node_modules/dockerfilelint/package.json').version" 2>/dev/null || true)"
if [ "${have}" != "${DOCKERFILELINT_VERSION}" ]; then
  start=$(date +%s)
  mkdir -p "${repo}/.tools/node"
  npm install --prefix "${repo}/.tools/node" --no-audit --no-fund --no-save --loglevel=error \
    "dockerfilelint@${DOCKERFILELINT_VERSION}"
  echo "installed dockerfilelint ${DOCKERFILELINT_VERSION} in $(( $(date +%s) - start ))s"
else
  echo "dockerfilelint ${have} already installed"
fi
test -x "${lint}"
