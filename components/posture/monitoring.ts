// Monitoring, as declared: what is scraped, which alerts exist and what they mean, where alerts go
// (receiver names and kinds, never their URLs: those are secrets), how the UIs are reached, how
// often drift is looked for. The audit's in-monitoring check and the README read this slice.
import type { StackConfig } from "../config";
import { promDurationSeconds } from "../config/validators";
import { alertRules, scrapeTargets } from "../render/monitoring";
import { ALERTMANAGER_PORT, LOOPBACK, METRICS_TEXTFILE_DIR, MONITORING_NETWORK, MONITORING_SUBNET, PROMETHEUS_PORT } from "./facts";
import type { MonitoringPosture } from "./types";

/** The one SSH command that brings both UIs to the operator's machine. */
export function tunnelCommand(user: string, host: string): string {
    return `ssh -N -L ${PROMETHEUS_PORT}:${LOOPBACK}:${PROMETHEUS_PORT} -L ${ALERTMANAGER_PORT}:${LOOPBACK}:${ALERTMANAGER_PORT} ${user}@${host}`;
}

export function monitoringPosture(c: StackConfig): MonitoringPosture {
    const m = c.monitoring;
    if (!m.enabled) return { enabled: false };
    return {
        enabled: true,
        network: { name: MONITORING_NETWORK, subnet: MONITORING_SUBNET },
        scrapeIntervalSeconds: promDurationSeconds(m.scrapeInterval) ?? 30,
        driftIntervalSeconds: promDurationSeconds(m.driftInterval) ?? 900,
        textfileDir: METRICS_TEXTFILE_DIR,
        targets: scrapeTargets(c),
        rules: alertRules(c).map((r) => ({ alert: r.alert, severity: r.severity, summary: r.summary, ...(r.for ? { for: r.for } : {}) })),
        thresholds: structuredClone(m.thresholds),
        receivers: m.receivers.map((r) => ({ name: r.name, kind: r.kind, sendResolved: r.sendResolved })),
        routeReceiver: m.route.receiver ?? m.receivers[0]?.name,
        ui: {
            prometheus: `${LOOPBACK}:${PROMETHEUS_PORT}`,
            alertmanager: `${LOOPBACK}:${ALERTMANAGER_PORT}`,
            tunnel: tunnelCommand(c.admin.user, c.target === "existing" && c.existing ? c.existing.address : "<address>"),
        },
    };
}
