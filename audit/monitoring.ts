// in-monitoring: the monitoring that tells someone is itself watched. From the host (over SSH, as
// every inside check), Prometheus' and Alertmanager's APIs on their monitoring-network addresses:
// Prometheus up, every declared target scraped and healthy, exactly the declared rules loaded, and
// Alertmanager routing to a declared receiver. Only names leave the host: Alertmanager's receivers
// API gives names, never the URLs (secrets) its configuration holds.
import { ALERTMANAGER_UI, posture, PROMETHEUS_UI } from "../components/posture";
import { AuditTarget, CheckDef, Drift, fromDrift, skip } from "./types";

/** Runs on the host: fetches the three API answers and prints only what the check judges. */
const PROBE_PY = `
import json, sys, urllib.request
def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except Exception as e:
        return {"error": type(e).__name__ + ": " + str(e)[:200]}
import time
p, a = sys.argv[1], sys.argv[2]
# A Prometheus that has just started has not scraped yet ("unknown"): wait for a first verdict (bounded).
for _ in range(12):
    t = get("http://%s/api/v1/targets" % p)
    if "error" in t or all(x.get("health") != "unknown" for x in t["data"]["activeTargets"]):
        break
    time.sleep(5)
r = get("http://%s/api/v1/rules" % p)
rc = get("http://%s/api/v2/receivers" % a)
out = {}
out["targets"] = t.get("error") or [{"job": x["labels"].get("job"), "instance": x["labels"].get("instance"), "health": x.get("health"), "error": x.get("lastError", "")[:160]} for x in t["data"]["activeTargets"]]
out["rules"] = r.get("error") or sorted(x["name"] for g in r["data"]["groups"] for x in g["rules"])
out["receivers"] = rc.get("error") if isinstance(rc, dict) else sorted(x["name"] for x in rc)
print(json.dumps(out))
`;

interface Probe {
    targets: string | { job: string; instance: string; health: string; error: string }[];
    rules: string | string[];
    receivers: string | string[];
}

export const inMonitoring: CheckDef = {
    id: "in-monitoring",
    title: "Prometheus up, every declared target scraped, the declared rules loaded; Alertmanager routes to a declared receiver",
    group: "inside",
    run(t: AuditTarget) {
        const m = posture(t.config).monitoring;
        if (!m.enabled) return skip("citadel:monitoring.enabled is false");
        const r = t.inside.sh(`python3 - ${PROMETHEUS_UI} ${ALERTMANAGER_UI}`, { stdin: PROBE_PY, timeoutMs: 120_000 });
        if (r.code !== 0) throw new Error(`the probe on the host failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-300)}`);
        const live = JSON.parse(r.stdout) as Probe;
        const drift: Drift[] = [];
        if (typeof live.targets === "string") drift.push({ what: "Prometheus", expected: `answers on ${PROMETHEUS_UI}`, actual: live.targets });
        else {
            for (const d of m.targets) {
                const x = live.targets.find((y) => y.job === d.job && y.instance === d.target);
                if (!x) drift.push({ what: `target ${d.job}`, expected: `${d.target} scraped`, actual: "(not a target)" });
                else if (x.health !== "up") drift.push({ what: `target ${d.job}`, expected: `${d.target} up`, actual: `${x.health}${x.error ? `: ${x.error}` : ""}` });
            }
        }
        if (typeof live.rules === "string") drift.push({ what: "rules", expected: "loaded", actual: live.rules });
        else {
            const declared = m.rules.map((x) => x.alert).sort();
            for (const d of declared) if (!live.rules.includes(d)) drift.push({ what: `rule ${d}`, expected: "loaded", actual: "(missing)" });
            for (const l of live.rules) if (!declared.includes(l)) drift.push({ what: `rule ${l}`, expected: "(not declared)", actual: "loaded" });
        }
        if (typeof live.receivers === "string") drift.push({ what: "Alertmanager", expected: `answers on ${ALERTMANAGER_UI}`, actual: live.receivers });
        else if (!m.routeReceiver) drift.push({ what: "receiver", expected: "a receiver in citadel:monitoring.receivers (alerts reach nobody)", actual: live.receivers.join(", ") || "(none)" });
        else if (!live.receivers.includes(m.routeReceiver)) drift.push({ what: "receiver", expected: m.routeReceiver, actual: live.receivers.join(", ") || "(none)" });
        return fromDrift(drift, `${m.targets.length} targets up, ${m.rules.length} rules loaded, alerts go to ${m.routeReceiver ?? "nobody"}`);
    },
};
