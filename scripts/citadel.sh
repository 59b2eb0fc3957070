#!/usr/bin/env bash
# The package's bin: `npx citadel audit --stack <name> ...` is `npm run audit -- --stack <name> ...`.
set -euo pipefail
root=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
usage() {
    cat <<'EOF'
usage: citadel <command> [options]

commands:
  audit --stack <name> [--json] [--attack] [--only <id-prefix>[,...]] [--no-outputs] [--keep-probe]
        check a live host against its declared posture (citadel audit --help for details)
  alerts test --stack <name>
        send a test alert through Alertmanager to the stack's receiver, end to end
  review --base <git-ref|dir> --head <git-ref|dir> --stack <name> [--json] [--accept weakens:<id>]...
        the security diff of a change, stateless (citadel review --help for details)

options:
  -h, --help    show this help
EOF
}
case "${1:-}" in
    audit)
        shift
        exec "$root/node_modules/.bin/tsx" "$root/audit/cli.ts" "$@"
        ;;
    alerts)
        shift
        exec "$root/node_modules/.bin/tsx" "$root/alerts/cli.ts" "$@"
        ;;
    review)
        shift
        exec "$root/node_modules/.bin/tsx" "$root/review/cli.ts" "$@"
        ;;
    -h | --help | help)
        usage
        exit 0
        ;;
    *)
        if [ -n "${1:-}" ]; then echo "citadel: unknown command ${1}" >&2; fi
        usage >&2
        exit 2
        ;;
esac
