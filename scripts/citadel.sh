#!/usr/bin/env bash
# The package's bin: `npx citadel audit --stack <name> ...` is `npm run audit -- --stack <name> ...`.
set -euo pipefail
root=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
case "${1:-}" in
    audit)
        shift
        exec "$root/node_modules/.bin/tsx" "$root/audit/cli.ts" "$@"
        ;;
    *)
        echo "usage: citadel audit --stack <name> [--json] [--attack] [--only <id-prefix>[,...]] [--no-outputs] [--keep-probe]" >&2
        exit 2
        ;;
esac
