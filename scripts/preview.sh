#!/usr/bin/env bash
# `npm run preview [-- --json] [-- --set KEY=JSON ...]`: the real `pulumi preview` of the prod example
# stack, fully offline — the engine built by engine/build.sh, a local file backend, the passphrase
# secrets provider, a placeholder 64-character Hetzner token and a throwaway operator key.
# Creates need no API, so nothing leaves this machine.
#
# The stack runs from a scratch copy of the project under .cache/preview/, so `pulumi stack init`
# (which writes an encryption salt into the stack file) never edits the repo's Pulumi.prod.yaml.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
stack=prod
json=()
sets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --json) json=(--json); shift ;;
    --stack) stack=$2; shift 2 ;;
    --set) sets+=("$2"); shift 2 ;;
    *) echo "usage: preview.sh [--json] [--stack NAME] [--set citadel:key=JSON]..." >&2; exit 2 ;;
  esac
done

if [ ! -x "$root/.cache/engine/bin/pulumi" ]; then
  echo "citadel: preview: the Pulumi engine is not built; run: bash engine/build.sh" >&2
  exit 1
fi
# shellcheck source=engine/env.sh disable=SC1091
source "$root/engine/env.sh"
# A fresh backend each run: the preview never depends on (or edits) earlier state.
export PULUMI_BACKEND_URL="file://$root/.cache/preview-state"
rm -rf "$root/.cache/preview-state"
mkdir -p "$root/.cache/preview-state"

work="$root/.cache/preview/$stack"
rm -rf "$work"
mkdir -p "$work"
for f in index.ts components templates images node_modules package.json tsconfig.json; do
  ln -s "$root/$f" "$work/$f"
done
cp "$root/Pulumi.yaml" "$work/Pulumi.yaml"
cp "$root/Pulumi.$stack.yaml" "$work/Pulumi.$stack.yaml"

# A throwaway operator key: the preview connects nowhere, but the program reads the key file.
ssh-keygen -q -t ed25519 -N '' -C citadel-preview -f "$work/operator_key"

cd "$work"
pulumi stack init "$stack" --secrets-provider passphrase >/dev/null
pulumi config set --stack "$stack" --secret hcloud:token "$(printf 'p%.0s' $(seq 64))"
pulumi config set --stack "$stack" --path citadel:admin.privateKeyPath "$work/operator_key"
for kv in "${sets[@]}"; do
  pulumi config set --stack "$stack" --path "${kv%%=*}" "${kv#*=}"
done
exec pulumi preview --stack "$stack" --non-interactive --diff "${json[@]}"
