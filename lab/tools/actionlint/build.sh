#!/usr/bin/env bash
# Builds actionlint (github.com/rhysd/actionlint, the GitHub Actions workflow linter) from this
# directory's Go module into <repo>/.cache/bin/actionlint, for test/workflow (lint of
# .github/workflows; actionlint also runs shellcheck on every `run:` block when it is on PATH).
#
# Idempotent: skips the build when the binary is newer than go.mod, go.sum, tools.go and this script.
# Versions are exactly those in go.mod/go.sum (-mod=readonly: the build never edits them).
# Uses the default Go caches, so a rebuild reuses downloads and objects.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
out_dir="$repo/.cache/bin"
out="$out_dir/actionlint"
pkg=github.com/rhysd/actionlint/cmd/actionlint

log() { printf '[actionlint] %s\n' "$*"; }
fail() { printf 'citadel: actionlint build: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || fail "go is not installed (Go >= $(sed -n 's/^go //p' "$here/go.mod") is needed)"

up_to_date() {
  [ -x "$out" ] || return 1
  local src
  for src in go.mod go.sum tools.go build.sh; do
    [ "$out" -nt "$here/$src" ] || return 1
  done
  return 0
}

if up_to_date; then
  log "up to date: $out ($("$out" -version | head -n 1))"
  exit 0
fi

mkdir -p "$out_dir"
log "building $out (Go $(go env GOVERSION))"
start=$(date +%s)
# Build to a temp name and rename: an interrupted build never leaves a half-written binary that
# would later look "up to date".
tmp="$(mktemp "$out_dir/.actionlint.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
(
  cd "$here"
  # -trimpath/-buildvcs=false: no local paths or commit stamps; CGO off: static.
  CGO_ENABLED=0 go build -mod=readonly -trimpath -buildvcs=false -ldflags '-s -w' -o "$tmp" "$pkg"
) || fail "go build failed in $here"
chmod 0755 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
end=$(date +%s)

want="$(sed -n 's|^require github.com/rhysd/actionlint \(v[^ ]*\)$|\1|p' "$here/go.mod")"
"$out" -version | head -n 1 | grep -qx "${want}" || fail "the built binary reports $("$out" -version | head -n 1), go.mod pins ${want:-?}"
log "built $out: $("$out" -version | head -n 1) in $((end - start)) s"
