#!/usr/bin/env bash
# Build the Pulumi engine (CLI, Node.js language host, resource providers)
# offline from Go modules, one wrapper module per binary under lab/engine/<name>/.
#
#   bash lab/engine/build.sh            build what changed, install the providers
#                                   as plugins into .cache/engine/pulumi-home
#   bash lab/engine/build.sh --force    rebuild everything
#   bash lab/engine/build.sh --cold     measure a cold build: every binary built
#                                   with empty GOCACHE/GOMODCACHE in a temp
#                                   dir, then report times and sizes and
#                                   delete it all (.cache/engine is untouched)
#   bash lab/engine/build.sh --only NAME [--only NAME...]   restrict to binaries
#
# Each lab/engine/<name>/build.env pins the binary: PKG (package to build, relative
# to the wrapper module), VERSION (what it reports) and LDFLAGS_X (-X flags).
# A binary is rebuilt only when the hash of its wrapper dir (plus local
# replace dirs), build.env, Go version and this script's build flags differs
# from its stamp in .cache/engine/stamps/. Uses the default Go module and
# build caches, so a fresh clone on a warm machine rebuilds quickly.
set -euo pipefail

ENGINE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$ENGINE_DIR/../.." && pwd)"
CACHE_DIR="$REPO_DIR/.cache/engine"
BIN_DIR="$CACHE_DIR/bin"
STAMP_DIR="$CACHE_DIR/stamps"
PULUMI_HOME_DIR="$CACHE_DIR/pulumi-home"

# Order matters only for readability: the CLI first, providers last.
ALL_BINARIES=(
  pulumi
  pulumi-language-nodejs
  pulumi-resource-command
  pulumi-resource-random
  pulumi-resource-hcloud
  pulumi-resource-docker
)

# Build flags that are part of every stamp.
GO_BUILD_FLAGS=(-mod=readonly -trimpath -buildvcs=false)
GO_LDFLAGS_BASE="-s -w"

force=false
cold=false
only=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --force) force=true ;;
    --cold) cold=true ;;
    --only)
      [[ $# -ge 2 ]] || { echo "build.sh: --only needs a binary name" >&2; exit 2; }
      only+=("$2")
      shift
      ;;
    -h | --help)
      sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) echo "build.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

binaries=("${ALL_BINARIES[@]}")
if [[ ${#only[@]} -gt 0 ]]; then
  binaries=()
  for name in "${only[@]}"; do
    [[ -f "$ENGINE_DIR/$name/build.env" ]] || { echo "build.sh: unknown binary: $name" >&2; exit 2; }
    binaries+=("$name")
  done
fi

command -v go >/dev/null || { echo "build.sh: Go is not installed (need Go >= 1.26.4)" >&2; exit 1; }
GO_VERSION="$(go env GOVERSION)"

# Never let go fetch another toolchain; never touch the sum database: every
# module is pinned by the committed go.sum of its wrapper.
export GOTOOLCHAIN=local
export GOFLAGS=-mod=readonly

# read_env FILE KEY: value of KEY=... in a build.env file.
read_env() {
  local file="$1" key="$2" line
  while IFS= read -r line || [[ -n "$line" ]]; do
    [[ "$line" =~ ^[[:space:]]*# ]] && continue
    if [[ "$line" == "$key="* ]]; then
      printf '%s\n' "${line#"$key"=}"
      return 0
    fi
  done <"$file"
  return 1
}

# local_replace_dirs DIR: directories of `=> ../x` local replaces in DIR/go.mod
# that lie outside DIR (their content is part of the stamp).
local_replace_dirs() {
  local dir="$1" target
  sed 's#//.*##' "$dir/go.mod" | grep -oE '=>[[:space:]]+\.\./[^[:space:]]+' | while read -r _ target; do
    (cd "$dir/$target" && pwd)
  done
}

# stamp_of NAME: hash of everything that determines the binary.
stamp_of() {
  local name="$1" dir="$ENGINE_DIR/$1" d
  {
    echo "go=$GO_VERSION $(go env GOOS)/$(go env GOARCH)"
    echo "flags=${GO_BUILD_FLAGS[*]} ldflags=$GO_LDFLAGS_BASE"
    local dirs
    mapfile -t dirs < <(local_replace_dirs "$dir")
    for d in "$dir" "${dirs[@]}"; do
      (cd "$d" && find . -type f ! -name '*.test' -print0 | sort -z | xargs -0 sha256sum | sed "s#  \./#  $(basename "$d")/#")
    done
  } | sha256sum | cut -d' ' -f1
}

fmt_secs() { awk -v s="$1" 'BEGIN { printf "%dm%04.1fs", int(s / 60), s - 60 * int(s / 60) }'; }
now() { date +%s.%N; }

# build_one NAME OUTDIR: go build the binary into OUTDIR; prints nothing else.
build_one() {
  local name="$1" out="$2" dir="$ENGINE_DIR/$1" pkg ldx
  pkg="$(read_env "$dir/build.env" PKG)"
  ldx="$(read_env "$dir/build.env" LDFLAGS_X)"
  local ldflags="$GO_LDFLAGS_BASE"
  local x
  for x in $ldx; do ldflags+=" -X $x"; done
  (cd "$dir" && nice -n 10 go build "${GO_BUILD_FLAGS[@]}" -ldflags "$ldflags" -o "$out/$name.tmp" "$pkg")
  mv -f "$out/$name.tmp" "$out/$name"
}

# reported_version NAME BINARY: the version the binary itself reports.
reported_version() {
  local name="$1" bin="$2"
  case "$name" in
    pulumi) PULUMI_SKIP_UPDATE_CHECK=true "$bin" version ;;
    *) "$bin" --version ;;
  esac
}

dir_size() { du -sb "$1" 2>/dev/null | cut -f1; }
human() { numfmt --to=iec --suffix=B "$1"; }

if $cold; then
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/citadel-engine-cold.XXXXXX")"
  trap 'chmod -R u+w "$tmp" 2>/dev/null || true; rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/bin" "$tmp/gocache" "$tmp/gomodcache"
  export GOCACHE="$tmp/gocache" GOMODCACHE="$tmp/gomodcache"
  echo "cold build: empty GOCACHE and GOMODCACHE under $tmp ($GO_VERSION, $(nproc) CPUs)"
  total_start="$(now)"
  for name in "${binaries[@]}"; do
    start="$(now)"
    build_one "$name" "$tmp/bin"
    secs="$(awk -v a="$start" -v b="$(now)" 'BEGIN { print b - a }')"
    printf '  %-24s %-10s built in %s  (%s; mod cache now %s, build cache now %s)\n' \
      "$name" "$(read_env "$ENGINE_DIR/$name/build.env" VERSION)" "$(fmt_secs "$secs")" \
      "$(human "$(stat -c %s "$tmp/bin/$name")")" \
      "$(human "$(dir_size "$GOMODCACHE")")" "$(human "$(dir_size "$GOCACHE")")"
  done
  total="$(awk -v a="$total_start" -v b="$(now)" 'BEGIN { print b - a }')"
  echo "cold total: $(fmt_secs "$total"); binaries $(human "$(dir_size "$tmp/bin")")," \
    "module cache $(human "$(dir_size "$GOMODCACHE")"), build cache $(human "$(dir_size "$GOCACHE")")"
  exit 0
fi

mkdir -p "$BIN_DIR" "$STAMP_DIR" "$PULUMI_HOME_DIR"
echo "engine: $GO_VERSION, binaries in ${BIN_DIR#"$REPO_DIR"/}"
total_start="$(now)"
built=0
for name in "${binaries[@]}"; do
  stamp="$(stamp_of "$name")"
  stamp_file="$STAMP_DIR/$name.stamp"
  version="$(read_env "$ENGINE_DIR/$name/build.env" VERSION)"
  if ! $force && [[ -x "$BIN_DIR/$name" && -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]]; then
    printf '  %-24s %-10s up to date (nothing to do)\n' "$name" "$version"
    continue
  fi
  start="$(now)"
  build_one "$name" "$BIN_DIR"
  secs="$(awk -v a="$start" -v b="$(now)" 'BEGIN { print b - a }')"
  reported="$(reported_version "$name" "$BIN_DIR/$name")"
  if [[ "${reported#v}" != "${version#v}" ]]; then
    echo "build.sh: $name reports version '$reported', expected '$version'" >&2
    exit 1
  fi
  echo "$stamp" >"$stamp_file"
  # Plugins are installed for an exact version; a rebuilt provider replaces it.
  rm -f "$STAMP_DIR/$name.installed"
  printf '  %-24s %-10s built in %s\n' "$name" "$reported" "$(fmt_secs "$secs")"
  built=$((built + 1))
done

# Install the providers into PULUMI_HOME: with
# PULUMI_IGNORE_AMBIENT_PLUGINS=true (lab/engine/env.sh) the CLI loads exactly
# these, matched by the version the npm SDKs ask for.
for name in "${binaries[@]}"; do
  [[ "$name" == pulumi-resource-* ]] || continue
  plugin="${name#pulumi-resource-}"
  version="$(read_env "$ENGINE_DIR/$name/build.env" VERSION)"
  marker="$STAMP_DIR/$name.installed"
  if [[ -f "$marker" && -x "$PULUMI_HOME_DIR/plugins/resource-$plugin-v$version/$name" ]]; then
    continue
  fi
  PULUMI_HOME="$PULUMI_HOME_DIR" PULUMI_SKIP_UPDATE_CHECK=true \
    "$BIN_DIR/pulumi" plugin install resource "$plugin" "$version" --file "$BIN_DIR/$name" --reinstall >/dev/null 2>&1
  touch "$marker"
  printf '  %-24s %-10s installed as plugin resource %s %s\n' "$name" "$version" "$plugin" "$version"
done

total="$(awk -v a="$total_start" -v b="$(now)" 'BEGIN { print b - a }')"
if [[ $built -eq 0 ]]; then
  echo "engine: nothing to do, all binaries up to date ($(fmt_secs "$total"))"
else
  echo "engine: built $built binaries in $(fmt_secs "$total"); bin $(human "$(dir_size "$BIN_DIR")")"
fi
echo "use it: source lab/engine/env.sh"
