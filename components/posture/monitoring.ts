// Monitoring, as declared: what is scraped, which alerts exist and what they mean, where alerts go
// (receiver names and kinds, never their URLs: those are secrets), how the UIs are reached, how
// often drift is looked for. The audit's in-monitoring check and the README read this slice.
import type { StackConfig } from "../config";
import { promDurationSeconds } from "../config/validators";
import { alertRules, BLACKBOX_CONF_CONTAINER_PATH, MONITORING_CONF_CONTAINER_DIR, PROMETHEUS_CONFIG_CONTAINER_PATH, monitoringFiles, renderAlertmanagerConfig, scrapeTargets, watchesTls } from "../render/monitoring";
import { sha256 } from "../render/script";
import { hardened, monitoringNeedsEgress } from "./containers";
import {
    ALERTMANAGER_CONTAINER,
    ALERTMANAGER_DATA_VOLUME,
    ALERTMANAGER_PORT,
    BLACKBOX_CONTAINER,
    BLACKBOX_PORT,
    EGRESS_NETWORK,
    METRICS_TEXTFILE_DIR,
    MONITORING_ALERTMANAGER_IP,
    MONITORING_CONF_HOST_DIR,
    MONITORING_NETWORK,
    MONITORING_PROMETHEUS_IP,
    MONITORING_SUBNET,
    MONITORING_UID,
    ALERTMANAGER_UI,
    PROMETHEUS_UI,
    NODE_EXPORTER_CONTAINER,
    NODE_EXPORTER_PORT,
    PROMETHEUS_CONTAINER,
    PROMETHEUS_DATA_VOLUME,
    PROMETHEUS_PORT,
    SECRET_FILE_MODE,
    secretFilePath,
    secretMountPath,
} from "./facts";
import type { ContainerPosture, MonitoringPosture, SecretFilePosture } from "./types";


/** The one SSH command that brings both UIs to the operator's machine (http://localhost:9090, :9093). */
export function tunnelCommand(user: string, host: string): string {
    return `ssh -N -L ${PROMETHEUS_PORT}:${PROMETHEUS_UI} -L ${ALERTMANAGER_PORT}:${ALERTMANAGER_UI} ${user}@${host}`;
}

const ALERTMANAGER_CONFIG_NAME = "alertmanager.yml";

/** alertmanager.yml carries the receivers' URLs: a secret file, 0400, Alertmanager's uid. */
export function monitoringSecretFiles(c: StackConfig): SecretFilePosture[] {
    if (!c.monitoring.enabled) return [];
    return [
        {
            secret: "alertReceivers",
            content: "alertmanager-config",
            consumer: ALERTMANAGER_CONTAINER,
            name: ALERTMANAGER_CONFIG_NAME,
            path: secretFilePath(ALERTMANAGER_CONTAINER, ALERTMANAGER_CONFIG_NAME),
            ownerUid: MONITORING_UID,
            mode: SECRET_FILE_MODE,
            readers: [ALERTMANAGER_CONTAINER],
            step: `secret-${ALERTMANAGER_CONTAINER}-${ALERTMANAGER_CONFIG_NAME.replace(".", "-")}`,
            // Alertmanager reads its configuration at start: a changed receiver URL (a rotated
            // webhook token) would otherwise keep alerts going to the old one until a restart.
            reloadOnChange: ALERTMANAGER_CONTAINER,
        },
    ];
}


/** Prometheus, Alertmanager, the node exporter and (with sites on a public CA) the blackbox exporter. */
export function monitoringContainers(c: StackConfig): ContainerPosture[] {
    const m = c.monitoring;
    if (!m.enabled) return [];
    const user = `${MONITORING_UID}:${MONITORING_UID}`;
    const base = (name: string, image: string, resources: typeof m.exporterResources) => ({
        name,
        role: "monitoring" as const,
        image,
        build: false,
        ...hardened(c, user, resources, ["/tmp"]),
        publishedPorts: [],
        secretMounts: [] as ContainerPosture["secretMounts"],
        binds: [] as ContainerPosture["binds"],
        volumes: [] as ContainerPosture["volumes"],
        env: [] as string[],
        labels: {} as Record<string, string>,
        rotatesWith: [] as string[],
    });
    const confHash = sha256(monitoringFiles(c).map((f) => f.content).join("\0"));
    const out: ContainerPosture[] = [
        {
            ...base(PROMETHEUS_CONTAINER, m.images.prometheus, m.prometheusResources),
            networks: [{ network: MONITORING_NETWORK, aliases: [], ipv4Address: MONITORING_PROMETHEUS_IP }],
            binds: [{ source: MONITORING_CONF_HOST_DIR, target: MONITORING_CONF_CONTAINER_DIR, readOnly: true }],
            volumes: [{ name: PROMETHEUS_DATA_VOLUME, target: "/prometheus" }],
            command: [
                `--config.file=${PROMETHEUS_CONFIG_CONTAINER_PATH}`,
                "--storage.tsdb.path=/prometheus",
                `--storage.tsdb.retention.time=${m.retention}`,
                `--web.listen-address=:${PROMETHEUS_PORT}`,
            ],
            // A changed prometheus.yml or rule file re-creates the container, so what runs is what was validated.
            labels: { "citadel.config-sha256": confHash },
        },
        {
            ...base(ALERTMANAGER_CONTAINER, m.images.alertmanager, m.exporterResources),
            networks: [
                { network: MONITORING_NETWORK, aliases: [], ipv4Address: MONITORING_ALERTMANAGER_IP },
                ...(monitoringNeedsEgress(c) ? [{ network: EGRESS_NETWORK, aliases: [] }] : []),
            ],
            secretMounts: [{ source: secretFilePath(ALERTMANAGER_CONTAINER, ALERTMANAGER_CONFIG_NAME), target: secretMountPath(ALERTMANAGER_CONFIG_NAME) }],
            volumes: [{ name: ALERTMANAGER_DATA_VOLUME, target: "/alertmanager" }],
            command: [
                `--config.file=${secretMountPath(ALERTMANAGER_CONFIG_NAME)}`,
                "--storage.path=/alertmanager",
                `--web.listen-address=:${ALERTMANAGER_PORT}`,
                // One instance: no gossip port for a cluster that does not exist.
                "--cluster.listen-address=",
            ],
            // The routing without the URLs (a changed URL rewrites the secret file; see README).
            labels: { "citadel.config-sha256": sha256(renderAlertmanagerConfig(c)) },
        },
        {
            ...base(NODE_EXPORTER_CONTAINER, m.images.nodeExporter, m.exporterResources),
            networks: [{ network: MONITORING_NETWORK, aliases: [] }],
            // The host's root, read-only, for filesystem usage; the textfile directory for Citadel's own metrics.
            binds: [
                { source: "/", target: "/host", readOnly: true },
                { source: METRICS_TEXTFILE_DIR, target: METRICS_TEXTFILE_DIR, readOnly: true },
            ],
            command: [
                "--path.rootfs=/host",
                `--web.listen-address=:${NODE_EXPORTER_PORT}`,
                "--collector.disable-defaults",
                "--collector.filesystem",
                "--collector.textfile",
                `--collector.textfile.directory=${METRICS_TEXTFILE_DIR}`,
            ],
        },
    ];
    if (watchesTls(c)) {
        out.push({
            ...base(BLACKBOX_CONTAINER, m.images.blackboxExporter, m.exporterResources),
            networks: [{ network: MONITORING_NETWORK, aliases: [] }],
            binds: [{ source: MONITORING_CONF_HOST_DIR, target: MONITORING_CONF_CONTAINER_DIR, readOnly: true }],
            command: [`--config.file=${BLACKBOX_CONF_CONTAINER_PATH}`, `--web.listen-address=:${BLACKBOX_PORT}`],
            labels: { "citadel.config-sha256": confHash },
        });
    }
    return out;
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
            prometheus: PROMETHEUS_UI,
            alertmanager: ALERTMANAGER_UI,
            tunnel: tunnelCommand(c.admin.user, c.target === "existing" && c.existing ? c.existing.address : "<address>"),
        },
    };
}
