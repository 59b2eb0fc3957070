#!/usr/bin/env bash
# The test command (`npm test`, also what .ci/run calls): installs what is missing, type-checks,
# then runs every test file — unit (Pulumi mocks), render (each file checked by its real consumer,
# behaviour on loopback) and engine (the real Pulumi CLI and providers, built offline).
set -euo pipefail
cd "$(dirname "$0")/.."

bash lab/prereqs.sh
echo "[test] type-check"
node_modules/.bin/tsc --noEmit -p .
echo "[test] node --test"
shopt -s nullglob
files=(test/unit/*.test.ts test/hcloud/*.test.ts test/render/*.test.ts test/audit/*.test.ts test/review/*.test.ts test/workflow/*.test.ts test/policy/*.test.ts test/engine/*.test.ts test/vps/*.test.ts test/images/*.test.ts test/e2e/*.test.ts)
# One file at a time: the e2e files share the local stack's state and the lab network.
exec node_modules/.bin/tsx --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
