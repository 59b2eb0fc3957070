#!/usr/bin/env bash
# Packs the two archives of citadel/golang:1-lab (lab harness; see Dockerfile here):
#   $1  this machine's GOROOT
#   $2  a module cache holding exactly the source the Caddy build (images/caddy) compiles
# Run in images/caddy. The module cache gets what the Dockerfile's `go mod download` fetches (from
# this machine's module cache, then Go's own proxy setting for anything missing). Each module the
# build compiles from is then pruned to the package directories `go list -deps` names, their
# embedded files, and the module's go.mod and LICENSE; the download cache stays whole (its zips are
# what `go mod download` checks against go.sum), and modules the build never compiles are unpacked
# from it by a `go mod download` with GOPROXY=off, the Dockerfile's own first step. Whole modules
# were 940 MB (one Google API module alone is 400 MB, of which the build reads a few packages); the
# pruned cache is about 260 MB and builds a byte-identical binary. The image's own RUN compiles
# images/caddy with GOPROXY=off from it, so a pruned-away file fails the image build, not a server.
set -euo pipefail
go_tar=$1 mod_tar=$2
root=$(go env GOROOT) host_cache=$(go env GOMODCACHE) host_proxy=$(go env GOPROXY)
tar -C "$root" -cf "$go_tar.tmp" . && mv "$go_tar.tmp" "$go_tar"

tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT
full=$tmp/full pruned=$tmp/pruned
mkdir -p "$pruned"
# The same platform as the image's build (CGO_ENABLED=0): the same package set.
export GOMODCACHE=$full GOPROXY="file://$host_cache/cache/download,$host_proxy" GOFLAGS=-mod=mod CGO_ENABLED=0
go mod download
# One line per package of a dependency (not the standard library, not images/caddy itself): its
# directory, its module's directory, its embedded files.
go list -deps -f '{{if and .Module (not .Module.Main)}}{{.Dir}}{{"\t"}}{{.Module.Dir}}{{range .EmbedFiles}}{{"\t"}}{{.}}{{end}}{{end}}' . > "$tmp/packages"
[ -s "$tmp/packages" ] || { echo "pack: go list named no package" >&2; exit 1; }
while IFS=$'\t' read -r dir module embeds; do
  rel=${dir#"$full"/} mrel=${module#"$full"/}
  mkdir -p "$pruned/$rel" "$pruned/$mrel"
  # The package's own files (sources, assembly, headers), not its tests or sub-packages.
  find "$dir" -maxdepth 1 -type f ! -name '*_test.go' -exec cp -p -t "$pruned/$rel/" {} +
  for f in go.mod LICENSE; do [ ! -f "$module/$f" ] || cp -p "$module/$f" "$pruned/$mrel/"; done
  if [ -n "$embeds" ]; then
    IFS=$'\t' read -r -a files <<< "$embeds"
    (cd "$dir" && cp -p --parents -t "$pruned/$rel/" -- "${files[@]}")
  fi
done < "$tmp/packages"
mkdir -p "$pruned/cache"
cp -a "$full/cache/download" "$pruned/cache/"
GOMODCACHE=$pruned GOPROXY=off GOFLAGS=-mod=readonly go mod download
tar -C "$pruned" -cf "$mod_tar.tmp" . && mv "$mod_tar.tmp" "$mod_tar"
echo "pack: $(wc -l < "$tmp/packages") packages; module cache $(du -sh "$full" | cut -f1) pruned to $(du -sh "$pruned" | cut -f1)"
