#!/usr/bin/env bash
# `npm run preview [-- --json] [-- --set citadel:key=VALUE]...`: the real `pulumi preview` of the prod
# example stack, fully offline — the engine built by lab/engine/build.sh, a fresh local file backend, the
# passphrase secrets provider, a placeholder 64-character Hetzner token and a throwaway operator key.
# Creates need no API, so nothing leaves this machine.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage="usage: npm run preview -- [--json] [--set citadel:key=VALUE]... [--policy-pack DIR] [--stack-file PATH]   (or: bash lab/preview.sh ...)

The real 'pulumi preview' of the prod example stack, offline (the pulumi on PATH, else the engine from lab/engine/build.sh).
  --json                  pulumi's JSON output
  --set citadel:key=VALUE override one config value (repeatable)
  --policy-pack DIR       also run a policy pack (e.g. policy: Citadel's own)
  --stack-file PATH       the stack's settings from PATH instead of Pulumi.prod.yaml (a generated config)
  -h, --help              show this help"
json=()
sets=()
policy=()
stack_file=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) echo "$usage"; exit 0 ;;
    --json) json=(--json); shift ;;
    --set)
      [ $# -ge 2 ] || { echo "preview.sh: --set needs citadel:key=VALUE" >&2; echo "$usage" >&2; exit 2; }
      sets+=(--set "$2"); shift 2 ;;
    --policy-pack)
      [ $# -ge 2 ] && [ -d "$2" ] || { echo "preview.sh: --policy-pack needs a directory" >&2; echo "$usage" >&2; exit 2; }
      policy=(--policy-pack "$(cd "$2" && pwd)"); shift 2 ;;
    --stack-file)
      [ $# -ge 2 ] || { echo "preview.sh: --stack-file needs a path" >&2; echo "$usage" >&2; exit 2; }
      stack_file=(--stack-file "$2"); shift 2 ;;
    *) echo "preview.sh: unknown argument $1" >&2; echo "$usage" >&2; exit 2 ;;
  esac
done
# What a Pulumi run needs, as `npm start` sets it up: node_modules and the engine (a pulumi on PATH, or
# the lab build). Its progress goes to stderr: stdout is the preview (JSON with --json).
bash "$root/lab/prereqs.sh" engine >&2
# A throwaway operator key: the preview connects nowhere, but the program reads the key file.
# One per CITADEL_STATE_SCOPE (previews side by side), made under a temporary name and renamed: a
# second preview never sees half a key, nor meets ssh-keygen's overwrite prompt.
key="$root/.cache/preview/operator_key${CITADEL_STATE_SCOPE:+-$CITADEL_STATE_SCOPE}"
mkdir -p "$(dirname "$key")"
if [ ! -f "$key" ]; then
  tmp_key="$key.tmp.$$"
  ssh-keygen -q -t ed25519 -N '' -C citadel-preview -f "$tmp_key" </dev/null
  mv -f "$tmp_key.pub" "$key.pub" && mv -f "$tmp_key" "$key"
fi
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE:-citadel-preview}"
exec bash "$root/lab/pulumi-stack.sh" --fresh "${stack_file[@]}" \
  --secret "hcloud:token=$(printf 'p%.0s' $(seq 64))" \
  --set "citadel:admin.privateKeyPath=$key" \
  "${sets[@]}" prod -- preview --non-interactive --diff "${json[@]}" "${policy[@]}"
