// `citadel alerts test --stack <name>`: sends a test alert end to end. On the host (over SSH, as the
// audit connects), it posts CitadelTestAlert to Alertmanager's API on the monitoring network, then
// waits (bounded) until Alertmanager reports a successful notification of the route's receiver in its
// own counters (an attempt, and no failure in the 5 s after it), or a failed one. Exit 0 delivered, 1 not delivered, 2 usage or setup error.
import { ALERTMANAGER_UI, posture } from "../components/posture";
import type { AuditCliHooks } from "../audit/cli";
import { readStackOutputs, remoteTarget } from "../audit/target";
import type { AuditTarget } from "../audit/types";

export const ALERTS_USAGE = `usage: citadel alerts test --stack <name>

  Sends CitadelTestAlert through Alertmanager to the route's receiver (citadel:monitoring.receivers)
  and waits until Alertmanager reports it delivered (up to 90 s).

Exit status: 0 delivered, 1 not delivered, 2 usage or setup error.
`;

export const TEST_ALERT = "CitadelTestAlert";

/** Runs on the host: Alertmanager's notification counters, the post, then the counters again. */
const SEND_PY = `
import json, sys, time, urllib.request, datetime
am, stamp = sys.argv[1], sys.argv[2]
def counters():
    text = urllib.request.urlopen("http://%s/metrics" % am, timeout=10).read().decode()
    total = failed = 0.0
    for line in text.splitlines():
        if line.startswith("alertmanager_notifications_total{"): total += float(line.split()[-1])
        if line.startswith("alertmanager_notifications_failed_total{"): failed += float(line.split()[-1])
    return total, failed
t0, f0 = counters()
now = datetime.datetime.now(datetime.timezone.utc)
alert = [{"labels": {"alertname": "${TEST_ALERT}", "severity": "info", "stamp": stamp},
          "annotations": {"summary": "Test alert from citadel alerts test (%s)" % stamp, "runbook": "Nothing to do: it shows that alerts reach you."},
          "startsAt": now.isoformat(), "endsAt": (now + datetime.timedelta(minutes=5)).isoformat()}]
req = urllib.request.Request("http://%s/api/v2/alerts" % am, data=json.dumps(alert).encode(), headers={"Content-Type": "application/json"}, method="POST")
urllib.request.urlopen(req, timeout=10).read()
for _ in range(90):
    time.sleep(1)
    t, f = counters()
    if f > f0:
        print(json.dumps({"delivered": False, "why": "Alertmanager's notification to the receiver failed (docker logs citadel-alertmanager)"})); sys.exit(0)
    if t > t0:
        # Alertmanager counts an attempt before it is made: a failure shows within its retry.
        sent = round(time.time() - now.timestamp(), 1)
        time.sleep(5)
        if counters()[1] > f0:
            print(json.dumps({"delivered": False, "why": "Alertmanager's notification to the receiver failed (docker logs citadel-alertmanager)"})); sys.exit(0)
        print(json.dumps({"delivered": True, "seconds": sent})); sys.exit(0)
print(json.dumps({"delivered": False, "why": "no notification within 90 s"}))
`;

/** Sends the test alert on the target's host; says whether Alertmanager delivered it. */
export function sendTestAlert(t: Pick<AuditTarget, "config" | "inside">, stamp = new Date().toISOString()): { delivered: boolean; seconds?: number; why?: string; receiver?: string } {
    const m = posture(t.config).monitoring;
    if (!m.enabled) return { delivered: false, why: "citadel:monitoring.enabled is false" };
    if (!m.routeReceiver) return { delivered: false, why: "citadel:monitoring.receivers is empty: alerts reach nobody" };
    const r = t.inside.sh(`python3 - ${ALERTMANAGER_UI} ${stamp}`, { stdin: SEND_PY, timeoutMs: 150_000 });
    if (r.code !== 0) throw new Error(`posting to Alertmanager on the host failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-300)}`);
    return { ...(JSON.parse(r.stdout) as { delivered: boolean; seconds?: number; why?: string }), receiver: m.routeReceiver };
}

export async function runAlertsCli(argv: string[], hooks: AuditCliHooks = {}): Promise<number> {
    const value = (f: string) => {
        const i = argv.indexOf(f);
        return i >= 0 ? argv[i + 1] : undefined;
    };
    if (argv.includes("--help") || argv.includes("-h")) {
        process.stdout.write(ALERTS_USAGE);
        return 0;
    }
    const stack = value("--stack");
    if (argv[0] !== "test" || !stack) {
        process.stderr.write(ALERTS_USAGE);
        return 2;
    }
    try {
        const outputs = (hooks.readOutputs ?? readStackOutputs)(stack);
        const target = (await hooks.target?.(stack, outputs)) ?? (outputs ? remoteTarget(stack, outputs) : undefined);
        if (!target) throw new Error(`stack ${stack} has no outputs (pulumi up first)`);
        const r = sendTestAlert(target);
        process.stdout.write(r.delivered ? `citadel: alerts: ${TEST_ALERT} delivered to ${r.receiver} in ${r.seconds} s\n` : `citadel: alerts: not delivered: ${r.why}\n`);
        return r.delivered ? 0 : 1;
    } catch (e) {
        process.stderr.write(`citadel: alerts: ${(e as Error).message}\n`);
        return 2;
    }
}

if (require.main === module) runAlertsCli(process.argv.slice(2)).then((code) => process.exit(code));
