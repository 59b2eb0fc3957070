# shellcheck shell=bash
# Source this file (`source lab/engine/env.sh`) to run the Pulumi CLI that lab/engine/select.sh picks:
# the one installed on PATH (Pulumi's published CLI), or the engine lab/engine/build.sh built offline.
# Either way the state is a local file backend under .cache/state.
#
# For the built engine: the CLI loads a provider from PATH first when one is there ("ambient" plugin,
# with a warning) and otherwise from $PULUMI_HOME/plugins for the exact version the npm SDK asks for.
# We ignore ambient plugins, so the providers that build.sh installed into .cache/engine/pulumi-home
# are used, version-matched, and nothing is downloaded. The language host is found next to the
# `pulumi` binary. An installed CLI keeps its own PULUMI_HOME and installs the plugins it needs.

_citadel_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=lab/engine/select.sh disable=SC1091
source "$_citadel_root/lab/engine/select.sh"
citadel_select_engine || return 1

if [ "$CITADEL_ENGINE_KIND" = built ]; then
  case ":$PATH:" in
    *":$_citadel_root/.cache/engine/bin:"*) ;;
    *) export PATH="$_citadel_root/.cache/engine/bin:$PATH" ;;
  esac
  export PULUMI_HOME="$_citadel_root/.cache/engine/pulumi-home"
  export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
  export PULUMI_IGNORE_AMBIENT_PLUGINS=true
fi
# `pulumi` in the sourcing script is the selected CLI, whatever else PATH holds.
pulumi() { "$CITADEL_PULUMI" "$@"; }
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_BACKEND_URL="file://$_citadel_root/.cache/state"
mkdir -p "$_citadel_root/.cache/state"

# No default passphrase here: lab/pulumi-stack.sh gives one to the lab stacks only.

unset _citadel_root
