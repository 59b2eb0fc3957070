# shellcheck shell=bash
# Which Pulumi CLI this checkout runs, decided in one place (sourced by env.sh and prereqs.sh):
#
#   installed  a `pulumi` found on PATH (Pulumi's published CLI, which installs the plugins it needs):
#              the default when there is one. Its own PULUMI_HOME and plugin handling are left alone.
#   built      the engine lab/engine/build.sh builds offline from Go modules into .cache/engine: the
#              fallback when no `pulumi` is on PATH, or when CITADEL_ENGINE=built forces it.
#
# CITADEL_ENGINE=installed insists on an installed CLI (an error when there is none).
# Sets CITADEL_ENGINE_KIND (installed|built) and CITADEL_PULUMI (the CLI's path); returns 1 with a
# message on stderr when CITADEL_ENGINE has a value it does not know, or insists on what is missing.

_citadel_engine_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CITADEL_BUILT_PULUMI="$_citadel_engine_root/.cache/engine/bin/pulumi"

# The first `pulumi` on PATH that is not the lab build itself (env.sh may have put that on PATH).
_citadel_installed_pulumi() {
  local dir IFS=:
  for dir in $PATH; do
    [ -n "$dir" ] || continue
    [ "$(cd "$dir" 2>/dev/null && pwd)" = "$_citadel_engine_root/.cache/engine/bin" ] && continue
    if [ -x "$dir/pulumi" ] && [ ! -d "$dir/pulumi" ]; then
      printf '%s\n' "$dir/pulumi"
      return 0
    fi
  done
  return 1
}

citadel_select_engine() {
  local installed=""
  installed=$(_citadel_installed_pulumi) || installed=""
  case "${CITADEL_ENGINE:-}" in
    "")
      if [ -n "$installed" ]; then CITADEL_ENGINE_KIND=installed CITADEL_PULUMI=$installed
      else CITADEL_ENGINE_KIND=built CITADEL_PULUMI=$CITADEL_BUILT_PULUMI; fi ;;
    built) CITADEL_ENGINE_KIND=built CITADEL_PULUMI=$CITADEL_BUILT_PULUMI ;;
    installed)
      if [ -z "$installed" ]; then
        echo "citadel: CITADEL_ENGINE=installed but no pulumi is on PATH; install Pulumi's CLI, or unset CITADEL_ENGINE to build the lab engine" >&2
        return 1
      fi
      CITADEL_ENGINE_KIND=installed CITADEL_PULUMI=$installed ;;
    *)
      echo "citadel: CITADEL_ENGINE=${CITADEL_ENGINE} is not known; use installed (the pulumi on PATH) or built (lab/engine/build.sh)" >&2
      return 1 ;;
  esac
  export CITADEL_ENGINE_KIND CITADEL_PULUMI
}

# `bash lab/engine/select.sh`: prints "KIND PATH" (what the tests ask).
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  citadel_select_engine
  printf '%s %s\n' "$CITADEL_ENGINE_KIND" "$CITADEL_PULUMI"
fi
