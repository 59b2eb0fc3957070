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
  rotate <secret> --stack <name>
        force a rotation (incident response): raises citadel:secrets.rotateNow.<secret> by one;
        the next `pulumi up` rotates that secret
  restore --stack <name> --identity <age-key-file> [--backup <id>] [--force]
        restore a backup onto the stack's host; the key stays here (citadel restore --help)

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
    rotate)
        shift
        secret=${1:-}
        [ $# -gt 0 ] && shift
        stack=
        while [ $# -gt 0 ]; do
            case "$1" in
                --stack)
                    stack=${2:-}
                    shift 2 || shift
                    ;;
                *)
                    echo "citadel: rotate: unknown option $1" >&2
                    exit 2
                    ;;
            esac
        done
        if ! [[ $secret =~ ^[a-z][a-zA-Z0-9]{1,40}$ ]] || [ -z "$stack" ]; then
            echo "citadel: rotate: usage: citadel rotate <secret> --stack <name> (e.g. citadel rotate jwtSecret --stack prod)" >&2
            exit 2
        fi
        key="citadel:secrets.rotateNow.$secret"
        current=$(pulumi config get --stack "$stack" --path "$key" 2>/dev/null || echo 0)
        if ! [[ $current =~ ^[0-9]+$ ]]; then
            echo "citadel: rotate: $key is \"$current\", not a whole number; fix it with pulumi config set --path $key <N>" >&2
            exit 1
        fi
        pulumi config set --stack "$stack" --path "$key" "$((current + 1))"
        echo "citadel: rotate: $key = $((current + 1)); run \`pulumi up --stack $stack\` to rotate $secret now (the config check names any secret the stack does not generate)"
        ;;
    restore)
        shift
        exec "$root/node_modules/.bin/tsx" "$root/restore/cli.ts" "$@"
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
