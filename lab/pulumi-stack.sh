#!/usr/bin/env bash
# Runs the real Pulumi engine (lab/engine/build.sh) on one stack from a scratch copy of the project, so
# `pulumi stack init` / `config set` never edit the repo's Pulumi.<stack>.yaml:
#
#   lab/pulumi-stack.sh [--fresh] [--reset] [--init] [--stack-file PATH] [--set citadel:key=VALUE]... [--unset citadel:key]... [--secret key=VALUE]... [--secret-file key=PATH]... STACK -- PULUMI-ARGS...
#
# --fresh    start from an empty backend (previews); otherwise the stack's state persists in
#            .cache/state (the local VPS stack: a second `up` must find the first one's state).
# --reset    forget the stack's state first (the local VPS was re-created: the old state describes
#            a host that no longer exists).
# --set      `pulumi config set --path` on the scratch copy (values from the caller, e.g. the VPS's
#            host key); --secret does the same with --secret; --secret-file reads the value from
#            PATH on stdin (a private key: never in a command line). --unset removes a key from the
#            scratch copy (`pulumi config rm --path`): its default applies (e.g. admin.sourceIps: []).
# --init     create STACK when it does not exist yet (only the lab stacks and --fresh do so by
#            themselves: a typo in a real stack's name must not become a new, empty stack).
# --stack-file  the stack's settings from PATH instead of Pulumi.STACK.yaml (a generated config, e.g.
#            the bench's 50-app preview); with --fresh only.
#
# Only the lab stacks (LAB_STACKS) get a default passphrase; any other stack needs
# PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE, or the script stops before Pulumi runs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage="usage: lab/pulumi-stack.sh [--fresh] [--reset] [--init] [--stack-file PATH] [--set citadel:key=VALUE]... [--unset citadel:key]... [--secret key=VALUE]... [--secret-file key=PATH]... STACK -- PULUMI-ARGS...

Runs the lab's Pulumi engine on STACK from a scratch copy of the project.
  --fresh     start from an empty backend (previews)
  --reset     forget the stack's state first (the local VPS was re-created)
  --init      create STACK if it does not exist (lab stacks and --fresh do this anyway)
  --stack-file PATH  the stack's settings from PATH instead of Pulumi.STACK.yaml (with --fresh)
  --set       pulumi config set --path on the scratch copy (repeatable)
  --secret    the same with --secret (repeatable)
  --secret-file  key=PATH: the same, the value read from PATH on stdin (repeatable)
  -h, --help  show this help"
# The stacks of the lab's own VPSes: their state is disposable and their passphrase is no secret.
LAB_STACKS=(local hcloud)
fresh=0
reset=0
init=0
sets=()
secrets=()
secret_files=()
unsets=()
stack_file=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) echo "$usage"; exit 0 ;;
    --fresh) fresh=1; shift ;;
    --reset) reset=1; shift ;;
    --init) init=1; shift ;;
    --stack-file)
      if [ $# -lt 2 ] || [ ! -f "$2" ]; then echo "citadel: pulumi-stack: --stack-file needs an existing file" >&2; echo "$usage" >&2; exit 2; fi
      stack_file=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
    --set|--secret|--secret-file)
      [ $# -ge 2 ] || { echo "citadel: pulumi-stack: $1 needs key=VALUE" >&2; echo "$usage" >&2; exit 2; }
      case "$1" in --set) sets+=("$2") ;; --secret) secrets+=("$2") ;; *) secret_files+=("$2") ;; esac
      shift 2 ;;
    --unset)
      [ $# -ge 2 ] || { echo "citadel: pulumi-stack: --unset needs a key" >&2; echo "$usage" >&2; exit 2; }
      unsets+=("$2"); shift 2 ;;
    --) shift; break ;;
    -*) echo "citadel: pulumi-stack: unknown option $1" >&2; echo "$usage" >&2; exit 2 ;;
    *) stack=$1; shift ;;
  esac
done
if [ -z "${stack:-}" ]; then
  echo "citadel: pulumi-stack: no STACK given" >&2
  echo "$usage" >&2
  exit 2
fi

lab_stack=0
for s in "${LAB_STACKS[@]}"; do [ "$s" = "$stack" ] && lab_stack=1; done
if [ -n "$stack_file" ] && [ "$fresh" != 1 ]; then
  echo "citadel: pulumi-stack: --stack-file is for --fresh runs only (a generated config has no state to keep)" >&2
  exit 2
fi
if [ -z "$stack_file" ] && [ ! -f "$root/Pulumi.$stack.yaml" ]; then
  known=()
  for f in "$root"/Pulumi.*.yaml; do known+=("$(basename "$f" .yaml | sed 's/^Pulumi\.//')"); done
  echo "citadel: no stack file Pulumi.$stack.yaml in $root (stacks here: ${known[*]})" >&2
  exit 2
fi
if [[ -z "${PULUMI_CONFIG_PASSPHRASE+x}" && -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]]; then
  if [ "$lab_stack" = 1 ]; then
    export PULUMI_CONFIG_PASSPHRASE="citadel-local-only"
  else
    echo "citadel: stack $stack needs its passphrase: set PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE (only the lab stacks, ${LAB_STACKS[*]}, have a default)" >&2
    exit 2
  fi
fi

# The Pulumi CLI on PATH, or the lab build (lab/engine/select.sh).
# shellcheck source=lab/engine/env.sh disable=SC1091
source "$root/lab/engine/env.sh" || exit 2
if [ ! -x "$CITADEL_PULUMI" ]; then
  echo "citadel: no pulumi on PATH and the lab engine is not built; run: bash lab/prereqs.sh engine (or install Pulumi's CLI)" >&2
  exit 1
fi
[ -n "${CITADEL_QUIET_ENGINE:-}" ] || echo "citadel: Pulumi CLI: $CITADEL_PULUMI ($CITADEL_ENGINE_KIND)" >&2
# CITADEL_STATE_SCOPE keeps one checkout's several local VPSes apart (each e2e file has its own VPS
# and must not share, or lock, another's state).
scope=${CITADEL_STATE_SCOPE:+-$CITADEL_STATE_SCOPE}
state="$root/.cache/state$scope"
[ "$fresh" = 1 ] && state="$root/.cache/state-$stack-fresh$scope" && rm -rf "$state"
mkdir -p "$state"
export PULUMI_BACKEND_URL="file://$state"

work="$root/.cache/stacks/$stack$scope"
rm -rf "$work"
mkdir -p "$work"
for f in index.ts components templates images node_modules package.json tsconfig.json tsconfig.pulumi.json; do
  ln -s "$root/$f" "$work/$f"
done
cp "$root/Pulumi.yaml" "$work/Pulumi.yaml"
cp "${stack_file:-$root/Pulumi.$stack.yaml}" "$work/Pulumi.$stack.yaml"
# Keep the salt of an existing stack's secrets (it lives in the stack file the scratch copy replaces).
[ -f "$state/salt-$stack" ] && printf 'encryptionsalt: %s\n' "$(cat "$state/salt-$stack")" >> "$work/Pulumi.$stack.yaml"

cd "$work"
if [ "$reset" = 1 ] && pulumi stack select "$stack" >/dev/null 2>&1; then
  pulumi stack rm --yes --force --preserve-config "$stack" >/dev/null
  rm -f "$state/salt-$stack"
  cp "$root/Pulumi.$stack.yaml" "Pulumi.$stack.yaml"
fi
if ! pulumi stack select "$stack" >/dev/null 2>&1; then
  if [ "$lab_stack" = 1 ] || [ "$fresh" = 1 ] || [ "$init" = 1 ]; then
    pulumi stack init "$stack" --secrets-provider passphrase >/dev/null
  else
    echo "citadel: stack $stack does not exist in $PULUMI_BACKEND_URL; create it with: bash lab/pulumi-stack.sh --init $stack -- stack ls" >&2
    exit 2
  fi
fi
sed -n 's/^encryptionsalt: //p' "Pulumi.$stack.yaml" > "$state/salt-$stack"
for key in "${unsets[@]}"; do
  pulumi config rm --stack "$stack" --path "$key"
done
for kv in "${sets[@]}"; do
  pulumi config set --stack "$stack" --path "${kv%%=*}" "${kv#*=}"
done
for kv in "${secrets[@]}"; do
  pulumi config set --stack "$stack" --secret --path "${kv%%=*}" "${kv#*=}"
done
for kv in "${secret_files[@]}"; do
  pulumi config set --stack "$stack" --secret --path "${kv%%=*}" < "${kv#*=}"
done
# CITADEL_ENGINE_SECONDS_FILE: the wall time of this last command alone, without the lab's set-up
# above (the bench compares it with the engine floor, which has no set-up either).
if [ -n "${CITADEL_ENGINE_SECONDS_FILE:-}" ]; then
  started=$EPOCHREALTIME
  rc=0
  pulumi "$@" --stack "$stack" || rc=$?
  # EPOCHREALTIME takes the locale's decimal separator; awk reads it in the C locale.
  finished=$EPOCHREALTIME
  LC_ALL=C awk -v a="${started/,/.}" -v b="${finished/,/.}" 'BEGIN { printf "%.3f\n", b - a }' > "$CITADEL_ENGINE_SECONDS_FILE"
  exit "$rc"
fi
pulumi "$@" --stack "$stack"
