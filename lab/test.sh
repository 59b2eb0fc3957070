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
files=(test/unit/*.test.ts test/hcloud/*.test.ts test/render/*.test.ts test/audit/*.test.ts test/review/*.test.ts test/workflow/*.test.ts test/policy/*.test.ts test/engine/*.test.ts test/vps/*.test.ts test/images/*.test.ts)
# The e2e files that take the local stack as declared share one converged VPS (test/e2e/shared-vps.ts),
# in this order: argv watches the converge from scratch; monitoring comes before audit, whose SSH brute
# force would leave CitadelFailedSshLogins firing (and already notified) when monitoring's own 12
# failed logins must raise it; backup throws the VPS away and rebuilds it; local ends with
# `pulumi destroy`. The others (rotation: its own config; hcloud: another target)
# converge their own. node --test sorts the files it is given, so the e2e files run one invocation
# each, in this order.
shared=(argv monitoring audit survival sshd-rollback interrupted backup local)
e2e=()
for f in "${shared[@]}"; do e2e+=("test/e2e/$f.test.ts"); done
for f in test/e2e/*.test.ts; do
  case " ${shared[*]} " in *" $(basename "$f" .test.ts) "*) ;; *) e2e+=("$f") ;; esac
done
export CITADEL_E2E_SHARED_VPS=citadel-e2e
engine_before=0
docker info >/dev/null 2>&1 && engine_before=1
shared_down() {
  # A run stopped half-way leaves the shared VPS up: the next run starts from scratch. At the start the
  # Docker engine comes up (once, for every file); at the end it is stopped, when the tests started it
  # (its pid file) and nothing else runs on it.
  local stop=() action=down
  [ "$1" = start ] && action=start
  [ "$1" = end ] && [ "$engine_before" = 0 ] && stop=(--stop-dockerd)
  node_modules/.bin/tsx test/e2e/shared-vps.ts "$action" "${stop[@]}" || echo "[test] could not start Docker or remove the shared VPS $CITADEL_E2E_SHARED_VPS (tests that need them fail under CI=true, skip elsewhere)" >&2
}
shared_down start
# The non-e2e files two at a time (2 cores; each file keeps to its own names, namespaces, ports and
# lab addresses): 322 s on this machine, where the last full run one at a time took 506 s.
# The e2e files one at a time: they share the lab network (and some a VPS).
rc=0
node_modules/.bin/tsx --test --test-concurrency=2 --test-reporter=spec "${files[@]}" || rc=1
for f in "${e2e[@]}"; do
  echo "[test] $f"
  node_modules/.bin/tsx --test --test-reporter=spec "$f" || rc=1
done
shared_down end
exit "$rc"
