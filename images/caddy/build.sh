#!/usr/bin/env bash
# Builds Caddy with the rate-limit module (github.com/mholt/caddy-ratelimit) from this directory's
# Go module into <repo>/.cache/bin/caddy, for the render tests and the local VPS image.
# Debian's caddy package lacks the `rate_limit` handler (TESTBED.md), hence this build.
#
# Idempotent: skips the build when the binary is newer than go.mod, go.sum and main.go.
# Versions are exactly those in go.mod/go.sum (-mod=readonly: the build never edits them).
# Uses the default Go caches, so a second checkout or a rebuild reuses downloads and objects.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out_dir="$repo/.cache/bin"
out="$out_dir/caddy"

log() { printf '[caddy] %s\n' "$*"; }
fail() { printf 'citadel: caddy build: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || fail "go is not installed (Go >= $(sed -n 's/^go //p' "$here/go.mod") is needed)"

up_to_date() {
  [ -x "$out" ] || return 1
  local src
  for src in go.mod go.sum main.go; do
    [ "$out" -nt "$here/$src" ] || return 1
  done
  return 0
}

if up_to_date; then
  log "up to date: $out ($("$out" version))"
  exit 0
fi

mkdir -p "$out_dir"
log "building $out (Go $(go env GOVERSION); a cold build downloads the modules and takes minutes)"
start=$(date +%s)
# Build to a temp name and rename: an interrupted build never leaves a half-written binary that
# would later look "up to date".
tmp="$(mktemp "$out_dir/.caddy.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
(
  cd "$here"
  # -trimpath/-buildvcs=false: no local paths or commit stamps (reproducible); CGO off: static.
  CGO_ENABLED=0 nice -n 10 go build -mod=readonly -trimpath -buildvcs=false -ldflags '-s -w' -o "$tmp" .
) || fail "go build failed in $here"
chmod 0755 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
end=$(date +%s)

"$out" list-modules | grep -qx 'http.handlers.rate_limit' || fail "the built binary lacks http.handlers.rate_limit"
log "built $out: $("$out" version) in $((end - start)) s"
