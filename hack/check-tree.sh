#!/usr/bin/env bash
# Checks that the tree is clean in the ways a review should never have to
# point out, and says how to fix each failure:
#
#   - every Go module (the root one and each nested module under integration/)
#     is tidy: `go mod tidy -diff` prints nothing;
#   - no tracked file is over 1 MiB (MAX_FILE_BYTES overrides the limit); a
#     binary or a data dump belongs in a release or a registry, not in git;
#   - gofmt has nothing to change in any Go file that is tracked or about to
#     be (untracked and not ignored).
#
# It runs every check, then exits 1 if any failed. Needs go and git; tidy may
# reach the module proxy for go.mod files missing from the module cache.
set -euo pipefail
cd "$(dirname "$0")/.."

max_bytes="${MAX_FILE_BYTES:-1048576}"
failed=0
fail() {
  failed=1
  printf 'check-tree: FAIL: %s\n' "$1" >&2
}

# 1. go mod tidy -diff, per module.
modules=(.)
while IFS= read -r mod; do
  modules+=("$(dirname "${mod}")")
done < <(find integration -name go.mod -not -path '*/testdata/*' -not -path '*/bin/*' 2>/dev/null | sort)
for dir in "${modules[@]}"; do
  if ! out="$(cd "${dir}" && go mod tidy -diff 2>&1)"; then
    fail "${dir}/go.mod is not tidy; run: (cd ${dir} && go mod tidy) and commit go.mod and go.sum. go mod tidy -diff says:"
    printf '%s\n' "${out}" | grep -v '^go: downloading ' | sed 's/^/    /' |
      awk 'NR <= 60 { print } END { if (NR > 60) printf "    ... (%d more lines)\n", NR - 60 }' >&2
  fi
done

# 2. No tracked file over the limit. Sizes are the blobs in the index, so a
# file that is staged counts even if the working copy has since changed;
# submodules (mode 160000) have no blob and are skipped.
big="$(git -c core.quotePath=false ls-files --stage |
  awk -F '\t' '{ split($1, m, " "); if (m[1] != "160000") print m[2], $2 }' |
  git cat-file --batch-check='%(objectsize) %(rest)' |
  awk -v max="${max_bytes}" '$1 > max { printf "    %s (%.1f MB)\n", substr($0, index($0, " ") + 1), $1 / 1000000 }')"
if [ -n "${big}" ]; then
  fail "tracked files over ${max_bytes} bytes; remove them with git rm (and keep build output out with .gitignore):"
  printf '%s\n' "${big}" >&2
fi

# 3. gofmt, over Go files that are tracked or untracked but not ignored (so
# .tools/, _out/ and the like are never read), and still exist.
unformatted="$(git ls-files -z --cached --others --exclude-standard -- '*.go' |
  while IFS= read -r -d '' f; do [ -f "${f}" ] && printf '%s\0' "${f}"; done |
  xargs -0 -r gofmt -l)"
if [ -n "${unformatted}" ]; then
  fail "gofmt would change these files; run gofmt -w on them:"
  printf '%s\n' "${unformatted}" | sed 's/^/    /' >&2
fi

if [ "${failed}" -ne 0 ]; then
  exit 1
fi
echo "check-tree: ok (${#modules[@]} modules tidy, no tracked file over ${max_bytes} bytes, gofmt clean)"
