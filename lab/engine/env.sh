# shellcheck shell=bash
# Source this file (`source lab/engine/env.sh`) to use the engine built by
# lab/engine/build.sh, fully offline, with a local file backend.
#
# The CLI loads a provider from PATH first when one is there ("ambient"
# plugin, with a warning) and otherwise from $PULUMI_HOME/plugins for the
# exact version the npm SDK asks for. We ignore ambient plugins, so the
# providers that build.sh installed into .cache/engine/pulumi-home are used,
# version-matched. The language host is found next to the `pulumi` binary.

_citadel_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

case ":$PATH:" in
  *":$_citadel_root/.cache/engine/bin:"*) ;;
  *) export PATH="$_citadel_root/.cache/engine/bin:$PATH" ;;
esac
export PULUMI_HOME="$_citadel_root/.cache/engine/pulumi-home"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_IGNORE_AMBIENT_PLUGINS=true
export PULUMI_BACKEND_URL="file://$_citadel_root/.cache/state"
mkdir -p "$_citadel_root/.cache/state" "$PULUMI_HOME"

# No default passphrase here: lab/pulumi-stack.sh gives one to the lab stacks only.

unset _citadel_root
