#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian 12 machine; a second run does nothing.
# Idempotent: each step checks before it acts. Runs as root (the dev and CI machines are root).
#
#   bash lab/prereqs.sh          everything (npm start, npm test)
#   bash lab/prereqs.sh engine   only what a Pulumi run needs: node_modules and the engine (npm run preview)
#
# The engine: a `pulumi` on PATH (Pulumi's published CLI) is used as it is; only without one (or with
# CITADEL_ENGINE=built) is the lab engine built from Go modules (lab/engine/select.sh decides).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[prereqs] %s\n' "$*"; }

only_engine=0
case "${1:-}" in
  "") ;;
  engine) only_engine=1 ;;
  *) echo "usage: bash lab/prereqs.sh [engine]" >&2; exit 2 ;;
esac

# npm ci (exactly as locked) and the Pulumi CLI: what every entry point needs.
node_and_engine() {
  if [ ! -d node_modules/@pulumi/pulumi ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "npm ci"
    npm ci --ignore-scripts --no-audit --no-fund >/dev/null
  else
    log "node_modules: up to date"
  fi
  # shellcheck source=lab/engine/select.sh disable=SC1091
  source lab/engine/select.sh
  citadel_select_engine
  if [ "$CITADEL_ENGINE_KIND" = installed ]; then
    log "Pulumi CLI: $CITADEL_PULUMI (installed; CITADEL_ENGINE=built builds the lab engine instead)"
  else
    # The Pulumi CLI, language host and providers, built offline from Go modules (lab/engine/README.md).
    bash lab/engine/build.sh
  fi
}
if [ "$only_engine" = 1 ]; then
  node_and_engine
  exit 0
fi

# The real programs that read our rendered files. Daemons must not start on this machine while
# installing (no systemd here anyway): a temporary policy-rc.d refuses service starts.
APT_PACKAGES=(
  openssh-server openssh-client ssh-audit shellcheck cloud-init
  nftables iptables ufw docker.io
  crowdsec crowdsec-firewall-bouncer ipset fail2ban python3-systemd
  redis-server postgresql
  prometheus prometheus-alertmanager
  curl openssl jq iproute2 debootstrap zstd
  age rclone python3-aiosmtpd systemd kmod
  qemu-system-x86 busybox-static
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  # CrowdSec's postinst tries to register with the online API unless credentials exist (TESTBED.md).
  mkdir -p /etc/crowdsec
  [ -e /etc/crowdsec/online_api_credentials.yaml ] || echo '# offline: no Central API' > /etc/crowdsec/online_api_credentials.yaml
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$own_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
else
  log "Debian packages: all present"
fi


# Caddy with the rate-limit module, built from Go modules (Debian's Caddy lacks it).
bash images/caddy/build.sh
bash lab/tools/actionlint/build.sh # the workflow linter for test/workflow, from Go modules too

node_and_engine
