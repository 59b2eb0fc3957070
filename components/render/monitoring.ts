// Monitoring: the alert rules (templates/monitoring/rules.yml.hbs), Prometheus' scrape
// configuration and Alertmanager's routing, rendered from citadel:monitoring. Pure: no Pulumi.
//
// Where each metric comes from (real exporters, no hand-made counters for what a tool measures):
//  - failed SSH logins and bans: CrowdSec's own Prometheus endpoint. CrowdSec already reads sshd's
//    journal (bookworm logs sshd to journald only) with the hub's maintained sshd parser; every failed
//    authentication it parses is poured into the ssh-bf scenario's bucket (cs_bucket_poured_total),
//    every ban starts as a scenario overflow (cs_bucket_overflowed_total). mtail (Debian) would be a
//    second parser of the same lines, and it reads files, not the journal.
//  - 401/403/429: Caddy's HTTP metrics (responses by status code; one count per request, measured
//    against Caddy 2.11.9), on a metrics-only listener; the admin API stays off (citadel:gateway.adminApi).
//  - disk: the node exporter; TLS expiry: the blackbox exporter's TLS probe of each site.
//  - updates pending, reboot required, container restarts, drift: the node exporter's textfile
//    collector, written by Citadel's host timers (facts.ts METRIC names them).
import YAML from "yaml";
import type { ReceiverConfig, StackConfig } from "../config";
import { promDurationSeconds } from "../config/validators";
import {
    ALERTMANAGER_CONTAINER,
    ALERTMANAGER_PORT,
    BLACKBOX_CONTAINER,
    BLACKBOX_PORT,
    CROWDSEC_METRICS_PORT,
    GATEWAY_METRICS_PORT,
    HTTPS_PORT,
    METRIC,
    METRICS_TEXTFILE_DIR,
    MONITORING_BRIDGE,
    MONITORING_CONF_HOST_DIR,
    MONITORING_GATEWAY_IP,
    MONITORING_HOST_IP,
    MONITORING_UID,
    NODE_EXPORTER_CONTAINER,
    NODE_EXPORTER_PORT,
    PROMETHEUS_PORT,
    BACKUP_MAX_AGE_HOURS,
    BACKUP_SERVICE,
    BACKUP_STATUS_PATH,
} from "../posture/facts";
import { renderTemplate, hostLib } from "./template";
import type { HostFile, HostScript } from "./types";

/** Scrape job names (the `job` label of every series, and of CitadelScrapeTargetDown). */
export const JOBS = {
    prometheus: "prometheus",
    alertmanager: "alertmanager",
    node: "node",
    crowdsec: "crowdsec",
    gateway: "gateway",
    tls: "tls",
} as const;

/**
 * The CrowdSec scenario whose bucket receives every failed SSH connection: Citadel's own
 * (render/intrusion.ts citadelSshScenarios), in place of the hub's crowdsecurity/ssh-bf.
 */
export const SSH_BF_SCENARIO = "citadel/ssh-bf";
/** The suffix of the IPv6 twin of each Citadel SSH scenario, which counts and bans an IPv6 source by its /64. */
export const IPV6_SCENARIO_SUFFIX = "-ipv6";

/** The series each rule reads, as PromQL selectors. */
export const SELECTORS = {
    crowdsec: {
        // Both families: IPv6 sources pour into the -ipv6 twin (render/intrusion.ts).
        sshFailures: `cs_bucket_poured_total{name=~"${SSH_BF_SCENARIO}(${IPV6_SCENARIO_SUFFIX})?"}`,
        bans: "cs_bucket_overflowed_total",
    },
    gateway: {
        authFailures: `caddy_http_request_duration_seconds_count{code=~"401|403"}`,
        rateLimited: `caddy_http_request_duration_seconds_count{code="429"}`,
    },
    tls: { expiry: `probe_ssl_earliest_cert_expiry{job="${JOBS.tls}"}` },
    node: {
        // Real filesystems only: tmpfs, overlay (containers' roots) and the like are not the disk.
        diskAvail: `node_filesystem_avail_bytes{fstype!~"tmpfs|ramfs|overlay|squashfs|nsfs|fuse.lxcfs"}`,
        diskSize: `node_filesystem_size_bytes{fstype!~"tmpfs|ramfs|overlay|squashfs|nsfs|fuse.lxcfs"}`,
    },
} as const;

/** The drift audit counts as stale after three missed runs. */
export function driftStaleSeconds(c: StackConfig): number {
    return 3 * (promDurationSeconds(c.monitoring.driftInterval) ?? 900);
}

/**
 * How long a drifted verdict must stand before CitadelDrift fires: through the drift audit's next
 * run (one interval, its timer's 10 s accuracy and a minute for the run itself) and two scrapes. One
 * run that saw a converge half-way (the old drift script between the steps a converge changes, or a
 * step mid-change) is corrected by the next run and never pages anyone; real drift stays 0 and fires.
 */
export function driftForSeconds(c: StackConfig): number {
    return (promDurationSeconds(c.monitoring.driftInterval) ?? 900) + 2 * (promDurationSeconds(c.monitoring.scrapeInterval) ?? 30) + 70;
}

/** CrowdSec's metrics exist only with the CrowdSec engine (fail2ban has no Prometheus endpoint). */
const hasCrowdsec = (c: StackConfig) => c.intrusion.engine === "crowdsec";
/** Caddy's internal CA issues 12-hour certificates and renews them itself: nothing to warn about. */
export const watchesTls = (c: StackConfig) => c.gateway.acmeCa !== "internal" && c.sites.length > 0;

/** The rule file Prometheus loads (validated by `promtool check rules`). */
export function renderAlertRules(c: StackConfig): string {
    return renderTemplate("monitoring/rules.yml.hbs", {
        t: c.monitoring.thresholds,
        crowdsec: hasCrowdsec(c) ? SELECTORS.crowdsec : false,
        gateway: SELECTORS.gateway,
        tls: watchesTls(c) ? SELECTORS.tls : false,
        node: SELECTORS.node,
        metric: METRIC,
        driftStaleSeconds: driftStaleSeconds(c),
        driftForSeconds: driftForSeconds(c),
        backup: c.backup.enabled ? { maxAgeHours: BACKUP_MAX_AGE_HOURS, service: BACKUP_SERVICE, statusFile: BACKUP_STATUS_PATH } : false,
    });
}

export interface AlertRule {
    alert: string;
    group: string;
    expr: string;
    for?: string;
    severity: string;
    summary: string;
    runbook: string;
}

/** The rendered rules read back: what the posture, the README check and the audit know of them. */
export function alertRules(c: StackConfig): AlertRule[] {
    const doc = YAML.parse(renderAlertRules(c)) as { groups: { name: string; rules: { alert: string; expr: string; for?: string; labels: Record<string, string>; annotations: Record<string, string> }[] }[] };
    return doc.groups.flatMap((g) =>
        g.rules.map((r) => ({
            alert: r.alert,
            group: g.name,
            expr: r.expr.trim(),
            ...(r.for ? { for: r.for } : {}),
            severity: r.labels.severity,
            summary: r.annotations.summary,
            runbook: r.annotations.runbook,
        })),
    );
}

export interface ScrapeTarget {
    job: string;
    target: string;
}

/** Every target Prometheus scrapes (all reached on the monitoring network). */
export function scrapeTargets(c: StackConfig): ScrapeTarget[] {
    return [
        { job: JOBS.prometheus, target: `localhost:${PROMETHEUS_PORT}` },
        { job: JOBS.alertmanager, target: `${ALERTMANAGER_CONTAINER}:${ALERTMANAGER_PORT}` },
        { job: JOBS.node, target: `${NODE_EXPORTER_CONTAINER}:${NODE_EXPORTER_PORT}` },
        ...(hasCrowdsec(c) ? [{ job: JOBS.crowdsec, target: `${MONITORING_HOST_IP}:${CROWDSEC_METRICS_PORT}` }] : []),
        { job: JOBS.gateway, target: `${MONITORING_GATEWAY_IP}:${GATEWAY_METRICS_PORT}` },
        ...(watchesTls(c) ? c.sites.map((s) => ({ job: JOBS.tls, target: s.host })) : []),
    ];
}

/** MONITORING_CONF_HOST_DIR is mounted read-only here (Prometheus, blackbox exporter). */
export const MONITORING_CONF_CONTAINER_DIR = "/etc/prometheus";
/** Where the rule file is inside the Prometheus container. */
export const PROMETHEUS_RULES_PATH = `${MONITORING_CONF_CONTAINER_DIR}/citadel-rules.yml`;
export const PROMETHEUS_CONFIG_CONTAINER_PATH = `${MONITORING_CONF_CONTAINER_DIR}/prometheus.yml`;
export const BLACKBOX_CONF_CONTAINER_PATH = `${MONITORING_CONF_CONTAINER_DIR}/blackbox.yml`;

/** prometheus.yml, built as an object and serialized (validated by `promtool check config`). */
export function renderPrometheusConfig(c: StackConfig, rulesPath = PROMETHEUS_RULES_PATH): string {
    const interval = c.monitoring.scrapeInterval;
    const targets = scrapeTargets(c);
    const plain = targets.filter((t) => t.job !== JOBS.tls);
    const tls = targets.filter((t) => t.job === JOBS.tls);
    const config = {
        global: { scrape_interval: interval, evaluation_interval: interval },
        rule_files: [rulesPath],
        alerting: { alertmanagers: [{ static_configs: [{ targets: [`${ALERTMANAGER_CONTAINER}:${ALERTMANAGER_PORT}`] }] }] },
        scrape_configs: [
            ...plain.map((t) => ({ job_name: t.job, static_configs: [{ targets: [t.target] }] })),
            // The blackbox exporter opens TLS to the gateway (its address on the monitoring network)
            // with each site's name as SNI, one module per site (blackbox.yml).
            ...(tls.length
                ? [
                      {
                          job_name: JOBS.tls,
                          metrics_path: "/probe",
                          static_configs: tls.map((t, i) => ({ targets: [t.target], labels: { module: blackboxModule(i) } })),
                          relabel_configs: [
                              { source_labels: ["__address__"], target_label: "instance" },
                              { source_labels: ["module"], target_label: "__param_module" },
                              { target_label: "__param_target", replacement: `${MONITORING_GATEWAY_IP}:${HTTPS_PORT}` },
                              { target_label: "__address__", replacement: `${BLACKBOX_CONTAINER}:${BLACKBOX_PORT}` },
                          ],
                      },
                  ]
                : []),
        ],
    };
    return YAML.stringify(config);
}

const blackboxModule = (i: number) => `tls_site_${i}`;

/** blackbox.yml: a TLS connect per site (SNI = the site's name), for probe_ssl_earliest_cert_expiry. */
export function renderBlackboxConfig(c: StackConfig): string {
    const modules = Object.fromEntries(c.sites.map((s, i) => [blackboxModule(i), { prober: "tcp", timeout: "10s", tcp: { tls: true, tls_config: { server_name: s.host } } }]));
    return YAML.stringify({ modules });
}

/** A receiver's URL is a secret: the posture and the rendered preview carry this instead. */
export const RECEIVER_URL_PLACEHOLDER = "https://receiver.invalid/secret-delivered-as-file";

const ALERT_TITLE = "{{ .CommonLabels.alertname }} ({{ .Status }})";
const ALERT_TEXT = "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ .Annotations.runbook }}\n{{ end }}";

/**
 * An email receiver: the SMTP server, user and password come from its secret URL (smtp:// with
 * STARTTLS required, or smtps:// on 465, which Alertmanager speaks TLS on from the first byte).
 * Without the URL (posture, preview) the server is a placeholder and no credential is written.
 */
function emailConfig(r: ReceiverConfig, secretUrl: string | undefined): Record<string, unknown> {
    const u = secretUrl ? new URL(secretUrl) : undefined;
    const port = u?.port || (u?.protocol === "smtps:" ? "465" : "587");
    return {
        to: r.to,
        from: r.from,
        smarthost: `${u?.hostname ?? new URL(RECEIVER_URL_PLACEHOLDER).hostname}:${port}`,
        ...(u?.username ? { auth_username: decodeURIComponent(u.username) } : {}),
        ...(u?.password ? { auth_password: decodeURIComponent(u.password) } : {}),
        // Never in clear: on 465 Alertmanager speaks TLS from the first byte (and would still demand
        // STARTTLS, which a server on 465 does not offer, if require_tls were set); elsewhere STARTTLS
        // is required (Alertmanager refuses a server without it).
        require_tls: port !== "465",
        send_resolved: r.sendResolved,
        headers: { Subject: `[citadel] ${ALERT_TITLE}` },
        text: ALERT_TEXT,
    };
}

/**
 * alertmanager.yml. With the receivers' real URLs (`urls`, by receiver name) it is a secret file
 * (0400, Alertmanager's uid): Alertmanager 0.25 (Debian) has no url_file for webhooks, so the whole
 * configuration is the file the secret arrives in. Without, the URLs are placeholders (preview,
 * posture, tests).
 */
export function renderAlertmanagerConfig(c: StackConfig, urls: Record<string, string> = {}): string {
    const m = c.monitoring;
    const url = (name: string) => urls[name] ?? RECEIVER_URL_PLACEHOLDER;
    const receivers = m.receivers.map((r) => {
        switch (r.kind) {
            case "webhook":
                return { name: r.name, webhook_configs: [{ url: url(r.name), send_resolved: r.sendResolved }] };
            case "slack":
                return { name: r.name, slack_configs: [{ api_url: url(r.name), send_resolved: r.sendResolved, title: ALERT_TITLE, text: ALERT_TEXT }] };
            case "email":
                return { name: r.name, email_configs: [emailConfig(r, urls[r.name])] };
            default: {
                const never: never = r.kind;
                throw new Error(`unknown receiver kind ${String(never)}`);
            }
        }
    });
    // Without a receiver alerts stay visible in Alertmanager's UI only (and the audit says so).
    const fallback = "citadel-unrouted";
    const routeTo = m.route.receiver ?? m.receivers[0]?.name ?? fallback;
    const config = {
        route: {
            receiver: routeTo,
            group_by: ["alertname", "check", "container", "mountpoint"],
            group_wait: m.route.groupWait,
            group_interval: "1m",
            repeat_interval: m.route.repeatInterval,
        },
        receivers: receivers.length ? receivers : [{ name: fallback }],
    };
    return YAML.stringify(config);
}

/** CrowdSec's Prometheus listener: the monitoring bridge's host address (config.yaml.local). */
export function crowdsecPrometheusConfig(c: StackConfig): Record<string, unknown> | undefined {
    if (!c.monitoring.enabled || !hasCrowdsec(c)) return undefined;
    return { enabled: true, level: "full", listen_addr: MONITORING_HOST_IP, listen_port: CROWDSEC_METRICS_PORT };
}

export const METRICS_TIMER = "citadel-metrics.timer";
const METRICS_SERVICE = "citadel-metrics.service";
const METRICS_WRITER = "/usr/local/lib/citadel/host-metrics.sh";
export const METRICS_STATE_DIR = "/var/lib/citadel/state";
const CROWDSEC_DROPIN = "/etc/systemd/system/crowdsec.service.d/20-citadel-monitoring.conf";

/** The files of MONITORING_CONF_HOST_DIR: what Prometheus (and the blackbox exporter) read. */
export function monitoringFiles(c: StackConfig): HostFile[] {
    const file = (name: string, content: string): HostFile => ({ path: `${MONITORING_CONF_HOST_DIR}/${name}`, content, mode: "0644", owner: "root", group: "root" });
    return [
        file("prometheus.yml", renderPrometheusConfig(c)),
        file("citadel-rules.yml", renderAlertRules(c)),
        ...(watchesTls(c) ? [file("blackbox.yml", renderBlackboxConfig(c))] : []),
    ];
}

/** What the scheduled drift audit compares the host with (from the posture, as the audit reads it). */
export interface DriftDeclared {
    /** Exactly the lines `ufw show added` must print. */
    ufwRules: string[];
    /** The `sshd -T` lines that must be in effect. */
    sshdExpected: string[];
    /** Containers that must exist and run. */
    containers: string[];
    /** Secret files: 0400, owned by this uid. */
    secretFiles: { path: string; ownerUid: number }[];
}

export const DRIFT_TIMER = "citadel-drift.timer";
const DRIFT_SERVICE = "citadel-drift.service";
const DRIFT_SCRIPT = "/usr/local/lib/citadel/drift.sh";

/** Host step "monitoring-config" (runs once the monitoring network and the Prometheus image exist). */
export function renderMonitoringScript(c: StackConfig, image: string, declared: DriftDeclared): HostScript {
    const files = monitoringFiles(c);
    const drift = renderTemplate("monitoring/drift.sh.hbs", {
        timerName: DRIFT_TIMER,
        interval: c.monitoring.driftInterval,
        textfileDir: METRICS_TEXTFILE_DIR,
        metric: METRIC,
        adminUser: c.admin.user,
        ufwRules: declared.ufwRules.join("\n"),
        sshdExpected: declared.sshdExpected.join("\n"),
        containers: declared.containers,
        secretFiles: declared.secretFiles.map((f) => `${f.path} ${f.ownerUid}`).join("\n"),
    });
    const driftService = ["[Unit]", "Description=Citadel drift audit (in-host checks) for the node exporter", "", "[Service]", "Type=oneshot", `ExecStart=/bin/bash ${DRIFT_SCRIPT}`, "Nice=10", ""].join("\n");
    // The first run waits an interval after the step (the containers the audit expects come after it)
    // and five minutes after a boot (Docker starting them again), so it never reports a converge or
    // a reboot in progress as drift.
    const driftTimer = ["[Unit]", `Description=Citadel drift audit every ${c.monitoring.driftInterval}`, "", "[Timer]", "OnBootSec=5min", `OnActiveSec=${c.monitoring.driftInterval}`, `OnUnitActiveSec=${c.monitoring.driftInterval}`, "AccuracySec=10s", "", "[Install]", "WantedBy=timers.target", ""].join("\n");
    const writer = renderTemplate("monitoring/host-metrics.sh.hbs", { textfileDir: METRICS_TEXTFILE_DIR, stateDir: METRICS_STATE_DIR, timerName: METRICS_TIMER, metric: METRIC });
    const service = ["[Unit]", "Description=Citadel host metrics for the node exporter (textfile collector)", "", "[Service]", "Type=oneshot", `ExecStart=/bin/bash ${METRICS_WRITER}`, "Nice=10", ""].join("\n");
    const timer = ["[Unit]", "Description=Citadel host metrics every minute", "", "[Timer]", "OnBootSec=1min", "OnUnitActiveSec=1min", "AccuracySec=10s", "", "[Install]", "WantedBy=timers.target", ""].join("\n");
    const crowdsec = crowdsecPrometheusConfig(c)
        ? {
              address: `${MONITORING_HOST_IP}:${CROWDSEC_METRICS_PORT}`,
              host: MONITORING_HOST_IP,
              port: CROWDSEC_METRICS_PORT,
              bridge: MONITORING_BRIDGE,
              dropinPath: CROWDSEC_DROPIN,
              dropin: ["# Citadel: CrowdSec's metrics listen on a Docker bridge address, which exists once Docker is up.", "[Unit]", "After=docker.service", ""].join("\n"),
          }
        : false;
    const script = renderTemplate("monitoring/monitoring-config.sh.hbs", {
        lib: hostLib(),
        image,
        uid: MONITORING_UID,
        confDir: MONITORING_CONF_HOST_DIR,
        containerConfDir: MONITORING_CONF_CONTAINER_DIR,
        prometheusConfig: PROMETHEUS_CONFIG_CONTAINER_PATH,
        files: files.map((f) => ({ name: f.path.slice(MONITORING_CONF_HOST_DIR.length + 1), content: f.content })),
        textfileDir: METRICS_TEXTFILE_DIR,
        stateDir: METRICS_STATE_DIR,
        writer,
        writerPath: METRICS_WRITER,
        service,
        servicePath: `/etc/systemd/system/${METRICS_SERVICE}`,
        timer,
        timerPath: `/etc/systemd/system/${METRICS_TIMER}`,
        timerName: METRICS_TIMER,
        drift,
        driftPath: DRIFT_SCRIPT,
        driftService,
        driftServicePath: `/etc/systemd/system/${DRIFT_SERVICE}`,
        driftTimer,
        driftTimerPath: `/etc/systemd/system/${DRIFT_TIMER}`,
        driftTimerName: DRIFT_TIMER,
        crowdsec,
    });
    return {
        name: "monitoring-config",
        description: `monitoring: prometheus.yml and ${alertRules(c).length} alert rules under ${MONITORING_CONF_HOST_DIR} (validated with ${image}'s promtool), host metrics every minute (${METRICS_TIMER}), drift audit every ${c.monitoring.driftInterval} (${DRIFT_TIMER})${crowdsec ? `, CrowdSec metrics on ${crowdsec.address}` : ""}`,
        script,
        files: [
            ...files,
            { path: METRICS_WRITER, content: writer, mode: "0755", owner: "root", group: "root" },
            { path: DRIFT_SCRIPT, content: drift, mode: "0755", owner: "root", group: "root" },
        ],
    };
}
