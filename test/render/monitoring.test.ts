// The alert rules and the monitoring configs, judged by their real consumers: `promtool check
// rules`, `promtool check config`, `amtool check-config`, and `promtool test rules` against synthetic
// series. Every rule has a case where it fires and a near miss where it stays silent, generated from
// the thresholds of the config under test (so a changed threshold moves the cases with it).
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import YAML from "yaml";
import { parseConfigOrThrow, promDurationSeconds, type StackConfig } from "../../components/config";
import { BACKUP_MAX_AGE_HOURS, METRIC, METRICS_TEXTFILE_DIR } from "../../components/posture/facts";
import { alertRules, METRICS_STATE_DIR, driftForSeconds, driftStaleSeconds, JOBS, renderAlertmanagerConfig, renderAlertRules, renderBlackboxConfig, renderPrometheusConfig, SSH_BF_SCENARIO } from "../../components/render/monitoring";
import { backupConfig, prodConfig, prodWith } from "../fixtures";
import { posture } from "../../components/posture";
import { IN_CI, requireRoot, requireTool, run, shellcheck, tmpDir } from "../tools";

const STEP = 30; // seconds between synthetic samples (promtool's `interval`)

interface Series {
    series: string;
    values: string;
}
interface Case {
    alert: string;
    what: string;
    fires: boolean;
    interval?: string;
    series: Series[];
    /** Seconds after the first sample. */
    at: number;
    /** The firing alert's labels besides alertname (severity and the series' own). */
    labels?: Record<string, string>[];
}

const sel = (name: string, labels: Record<string, string>) => `${name}{${Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(",")}}`;
/** 40 samples of `before` (0..19.5 min), then 41 of `after` from minute 20: the jump is at JUMP. */
const JUMP = 40 * STEP;
// promtool expands "vxN" to N+1 samples but "_xN" to N gaps.
const jump = (before: number | "_", after: number) => (before === "_" ? `_x40 ${after}x40` : `${before}x39 ${after}x40`);
const secs = (w: string) => {
    const s = promDurationSeconds(w);
    assert.ok(s !== undefined, w);
    return s;
};
const NODE = { job: JOBS.node, instance: "citadel-node-exporter:9100" };

/** A counter-in-a-window rule: fires on count+1 (also from a counter that did not exist before), silent on count. */
function windowCases(alert: string, severity: string, t: { count: number; window: string }, counted: Record<string, string>[], noise: Series[]): Case[] {
    const selOf = (l: Record<string, string>) => sel(l.__name__, Object.fromEntries(Object.entries(l).filter(([k]) => k !== "__name__")));
    // `total` events shared out over the series (the rule sums them).
    const split = (total: number): Series[] => counted.map((l, i) => ({ series: selOf(l), values: jump(0, Math.floor(total / counted.length) + (i < total % counted.length ? 1 : 0)) }));
    const over = t.count + 1;
    const half = Math.ceil(over / 2);
    const gap = Math.ceil(secs(t.window) / STEP) + 1;
    const firstSel = selOf(counted[0]);
    return [
        { alert, what: `${over} in ${t.window}, split over ${counted.length} series`, fires: true, series: split(over), at: JUMP, labels: [{ severity }] },
        { alert, what: `${over} from a counter that did not exist a window before (exporter restarted)`, fires: true, series: [{ series: firstSel, values: jump("_", over) }], at: JUMP, labels: [{ severity }] },
        { alert, what: `near miss: exactly ${t.count} in ${t.window}, with other series beside`, fires: false, series: [...split(t.count), ...noise], at: JUMP },
        // The same number of events, slower than the window: never more than `count` inside it.
        { alert, what: `near miss: ${over} spread over more than ${t.window}`, fires: false, series: [{ series: firstSel, values: `0x39 ${half}x${gap - 1} ${over}x40` }], at: JUMP + gap * STEP },
        { alert, what: "near miss: a counter reset (exporter restarted) is no burst", fires: false, series: [{ series: firstSel, values: jump(1000, 0) }], at: JUMP },
    ];
}

function cases(c: StackConfig): Case[] {
    const t = c.monitoring.thresholds;
    const out: Case[] = [];
    const sshSource = { source: "journalctl-journalctl-_SYSTEMD_UNIT=ssh.service", type: "journalctl" };
    out.push(
        ...windowCases("CitadelFailedSshLogins", "critical", t.failedSshLogins, [{ __name__: "cs_bucket_poured_total", name: SSH_BF_SCENARIO, ...sshSource }, { __name__: "cs_bucket_poured_total", name: SSH_BF_SCENARIO, source: "file:/var/log/auth.log", type: "syslog" }], [
            // Other scenarios' buckets are not failed logins.
            { series: sel("cs_bucket_poured_total", { name: "crowdsecurity/ssh-slow-bf", ...sshSource }), values: jump(0, 500) },
            { series: sel("cs_bucket_poured_total", { name: "crowdsecurity/http-probing", source: "file:/var/log/citadel/caddy/access.log", type: "file" }), values: jump(0, 500) },
        ]),
    );
    out.push(...windowCases("CitadelBanStorm", "warning", t.bans, [{ __name__: "cs_bucket_overflowed_total", name: SSH_BF_SCENARIO }, { __name__: "cs_bucket_overflowed_total", name: "crowdsecurity/http-probing" }], []));
    const caddy = (code: string) => ({ __name__: "caddy_http_request_duration_seconds_count", code, handler: "subroute", method: "GET", server: "srv0" });
    const caddySel = (code: string) => sel("caddy_http_request_duration_seconds_count", { code, handler: "subroute", method: "GET", server: "srv0" });
    out.push(...windowCases("CitadelAuthFailureSpike", "warning", t.authFailures, [caddy("401"), caddy("403")], [{ series: caddySel("404"), values: jump(0, 5000) }, { series: caddySel("200"), values: jump(0, 5000) }, { series: caddySel("429"), values: jump(0, 5000) }]));
    out.push(...windowCases("CitadelRateLimitSurge", "warning", t.rateLimited, [caddy("429")], [{ series: caddySel("403"), values: jump(0, 5000) }, { series: caddySel("200"), values: jump(0, 5000) }]));

    // TLS: the probe's expiry timestamp, an hour inside or outside the threshold at minute 10.
    const at = 600;
    const day = 86400;
    const tlsLabels = { instance: c.sites[0]?.host ?? "www.example.com", job: JOBS.tls };
    const tls = (expiry: number): Series[] => [{ series: sel("probe_ssl_earliest_cert_expiry", tlsLabels), values: `${expiry}x20` }];
    out.push(
        { alert: "CitadelTlsCertificateExpiring", what: `expires in ${t.tlsExpiryDays} days minus an hour`, fires: true, series: tls(at + t.tlsExpiryDays * day - 3600), at, labels: [{ severity: "critical", ...tlsLabels }] },
        { alert: "CitadelTlsCertificateExpiring", what: `near miss: expires in ${t.tlsExpiryDays} days plus an hour`, fires: false, series: tls(at + t.tlsExpiryDays * day + 3600), at },
    );

    // Disk: a real filesystem one point above the threshold for 10 minutes (the rule waits 5).
    const root = { device: "/dev/sda1", fstype: "ext4", mountpoint: "/", ...NODE };
    const size = 1_000_000;
    const disk = (percentUsed: number, labels = root): Series[] => [
        { series: sel("node_filesystem_size_bytes", labels), values: `${size}x40` },
        { series: sel("node_filesystem_avail_bytes", labels), values: `${Math.round((size * (100 - percentUsed)) / 100)}x40` },
    ];
    const tmpfs = { device: "tmpfs", fstype: "tmpfs", mountpoint: "/run", ...NODE };
    out.push(
        { alert: "CitadelDiskFilling", what: `${t.diskPercent + 1}% used for 10 minutes`, fires: true, series: disk(t.diskPercent + 1), at: 600, labels: [{ severity: "warning", ...root }] },
        { alert: "CitadelDiskFilling", what: `near miss: ${t.diskPercent - 0.5}% used (and a full tmpfs)`, fires: false, series: [...disk(t.diskPercent - 0.5), ...disk(100, tmpfs)], at: 600 },
        { alert: "CitadelDiskFilling", what: `near miss: ${t.diskPercent + 1}% for only 4 minutes`, fires: false, series: disk(t.diskPercent + 1).map((s) => ({ ...s, values: s.values.replace("x40", "x8") })), at: 240 },
    );

    // Updates and reboot: "since" timestamps an hour beyond or short of the days.
    const since = (metric: string, days: number, alert: string) => {
        const s = (v: number): Series[] => [{ series: sel(metric, NODE), values: `${v}x20` }];
        out.push(
            { alert, what: `since ${days} days and an hour`, fires: true, series: s(at - days * day - 3600), at, labels: [{ severity: "warning", ...NODE }] },
            { alert, what: `near miss: since ${days} days less an hour`, fires: false, series: s(at - days * day + 3600), at },
        );
    };
    since(METRIC.securityUpdatesPendingSince, t.securityUpdatesDays, "CitadelSecurityUpdatesPending");
    since(METRIC.rebootRequiredSince, t.rebootRequiredDays, "CitadelRebootRequired");

    // Backups (rendered only with citadel:backup on): the last good one an hour beyond or short of
    // the limit, none ever (0), and the last run failed or not.
    const maxAge = BACKUP_MAX_AGE_HOURS * 3600;
    const lastGood = (v: number): Series[] => [{ series: sel(METRIC.backupLastSuccess, NODE), values: `${v}x20` }];
    const lastRunOk = (ok: number): Series[] => [{ series: sel(METRIC.backupLastRunOk, NODE), values: `${ok}x20` }];
    out.push(
        { alert: "CitadelBackupStale", what: `last good backup ${BACKUP_MAX_AGE_HOURS} h and an hour ago`, fires: true, series: lastGood(at - maxAge - 3600), at, labels: [{ severity: "critical", ...NODE }] },
        { alert: "CitadelBackupStale", what: "no good backup ever (0)", fires: true, series: lastGood(0), at, labels: [{ severity: "critical", ...NODE }] },
        { alert: "CitadelBackupStale", what: `near miss: last good backup ${BACKUP_MAX_AGE_HOURS} h less an hour ago`, fires: false, series: lastGood(at - maxAge + 3600), at },
        { alert: "CitadelBackupFailed", what: "the last run failed", fires: true, series: lastRunOk(0), at: 60, labels: [{ severity: "warning", ...NODE }] },
        { alert: "CitadelBackupFailed", what: "near miss: the last run succeeded", fires: false, series: lastRunOk(1), at: 60 },
    );

    // Restart loop: per container.
    const r = t.containerRestarts;
    out.push(
        { alert: "CitadelContainerRestartLoop", what: `${r.count + 1} restarts in ${r.window}`, fires: true, series: [{ series: sel(METRIC.containerRestarts, { container: "app-web", ...NODE }), values: jump(2, 2 + r.count + 1) }, { series: sel(METRIC.containerRestarts, { container: "postgres", ...NODE }), values: jump(0, r.count) }], at: JUMP, labels: [{ severity: "critical", container: "app-web", ...NODE }] },
        { alert: "CitadelContainerRestartLoop", what: `near miss: ${r.count} restarts in ${r.window} (one container), ${r.count} in another`, fires: false, series: [{ series: sel(METRIC.containerRestarts, { container: "app-web", ...NODE }), values: jump(2, 2 + r.count) }, { series: sel(METRIC.containerRestarts, { container: "postgres", ...NODE }), values: jump(7, 7 + r.count) }], at: JUMP },
        { alert: "CitadelContainerRestartLoop", what: "near miss: a re-created container starts counting from 0", fires: false, series: [{ series: sel(METRIC.containerRestarts, { container: "app-web", ...NODE }), values: jump(40, 0) }], at: JUMP },
        { alert: "CitadelContainerRestartLoop", what: `${r.count + 1} restarts spread over more than ${r.window}`, fires: false, series: [{ series: sel(METRIC.containerRestarts, { container: "app-web", ...NODE }), values: `0x39 ${Math.ceil((r.count + 1) / 2)}x${Math.ceil(secs(r.window) / STEP)} ${r.count + 1}x40` }], at: JUMP + (Math.ceil(secs(r.window) / STEP) + 1) * STEP },
    );

    // Drift: one check drifted among passing ones, through the next drift run (the rule's `for`); all
    // passing; a single run's verdict corrected by the next run (a converge caught half-way); and a
    // drift not yet confirmed by the next run.
    const holdFor = driftForSeconds(c);
    const driftEnd = holdFor + 4 * STEP;
    const samples = Math.ceil(driftEnd / STEP) + 2;
    const drift = (ufw: string): Series[] => ["in-sshd", "in-ufw", "in-docker-user"].map((check) => ({ series: sel(METRIC.driftCheckOk, { check, ...NODE }), values: check === "in-ufw" ? ufw : `1x${samples}` }));
    const zeroFor = (seconds: number) => `0x${Math.round(seconds / STEP) - 1} 1x${samples}`;
    const interval = secs(c.monitoring.driftInterval);
    out.push(
        { alert: "CitadelDrift", what: `in-ufw drifted for longer than ${holdFor} s, the others pass`, fires: true, series: drift(`0x${samples}`), at: holdFor + 2 * STEP, labels: [{ severity: "critical", check: "in-ufw", ...NODE }] },
        { alert: "CitadelDrift", what: "near miss: every check passes", fires: false, series: drift(`1x${samples}`), at: holdFor + 2 * STEP },
        { alert: "CitadelDrift", what: "near miss: one run's drift, corrected by the next run a minute late", fires: false, series: drift(zeroFor(interval + 60)), at: holdFor + 2 * STEP },
        { alert: "CitadelDrift", what: `near miss: drifted for ${holdFor - 2 * STEP} s (not yet confirmed by the next run)`, fires: false, series: drift(`0x${samples}`), at: holdFor - 2 * STEP },
    );
    const stale = driftStaleSeconds(c);
    const lastRun = (v: number): Series[] => [{ series: sel(METRIC.driftLastRun, NODE), values: `${v}x20` }];
    out.push(
        { alert: "CitadelDriftAuditStale", what: `last run ${stale + 60} s ago`, fires: true, series: lastRun(at - stale - 60), at, labels: [{ severity: "warning", ...NODE }] },
        { alert: "CitadelDriftAuditStale", what: `near miss: last run ${stale - 60} s ago`, fires: false, series: lastRun(at - stale + 60), at },
    );

    // A target down for 10 minutes fires (the rule waits 5); down for 3.5 minutes and back does not.
    const crowdsecUp = { instance: "172.29.250.1:6060", job: JOBS.crowdsec };
    out.push(
        { alert: "CitadelScrapeTargetDown", what: "crowdsec unreachable for 10 minutes", fires: true, series: [{ series: sel("up", crowdsecUp), values: "1x9 0x30" }, { series: sel("up", { instance: "citadel-node-exporter:9100", job: JOBS.node }), values: "1x40" }], at: 900, labels: [{ severity: "critical", ...crowdsecUp }] },
        { alert: "CitadelScrapeTargetDown", what: "near miss: unreachable for 3.5 minutes, then back", fires: false, series: [{ series: sel("up", crowdsecUp), values: "1x9 0x7 1x20" }], at: 570 },
    );
    return out;
}

/** The expected annotations: the rule's own, with {{ $labels.x }} filled in as Prometheus would. */
function annotations(c: StackConfig, alert: string, labels: Record<string, string>): Record<string, string> {
    const rule = alertRules(c).find((r) => r.alert === alert);
    assert.ok(rule, alert);
    const fill = (s: string) => s.replace(/\{\{ \$labels\.([a-z_]+) \}\}/g, (_, k: string) => labels[k] ?? "");
    return { summary: fill(rule.summary), runbook: fill(rule.runbook) };
}

/** A promtool unit-test file: one test group per case, so each reports on its own. */
function testFile(c: StackConfig, rulesFile: string, all: Case[]): string {
    return YAML.stringify({
        rule_files: [rulesFile],
        evaluation_interval: `${STEP}s`,
        tests: all.map((k) => ({
            name: `${k.alert}: ${k.what}`,
            interval: k.interval ?? `${STEP}s`,
            input_series: k.series,
            alert_rule_test: [
                {
                    eval_time: `${k.at}s`,
                    alertname: k.alert,
                    exp_alerts: k.fires ? (k.labels ?? []).map((l) => ({ exp_labels: l, exp_annotations: annotations(c, k.alert, l) })) : [],
                },
            ],
        })),
    });
}

/** Renders the rules of `rulesOf` and runs the cases of `casesOf` against them. */
function promtoolTest(promtool: string, rulesOf: StackConfig, casesOf: StackConfig = rulesOf) {
    const dir = tmpDir("citadel-rules-");
    fs.writeFileSync(path.join(dir, "rules.yml"), renderAlertRules(rulesOf));
    const rendered = new Set(alertRules(rulesOf).map((r) => r.alert));
    const all = cases(casesOf).filter((k) => rendered.has(k.alert));
    fs.writeFileSync(path.join(dir, "tests.yml"), testFile(rulesOf, "rules.yml", all));
    const r = run(promtool, ["test", "rules", "tests.yml"], { cwd: dir });
    fs.rmSync(dir, { recursive: true });
    return { ...r, all, rendered };
}

/** Thresholds unlike the defaults (the local lab's kind): the cases must follow them. */
const custom = () =>
    parseConfigOrThrow(
        prodWith({
            monitoring: {
                scrapeInterval: "15s",
                driftInterval: "2m",
                thresholds: {
                    failedSshLogins: { count: 3, window: "2m" },
                    bans: { count: 1, window: "1m" },
                    authFailures: { count: 7, window: "90s" },
                    rateLimited: { count: 1, window: "30s" },
                    containerRestarts: { count: 1, window: "5m" },
                    tlsExpiryDays: 30,
                    diskPercent: 50,
                    securityUpdatesDays: 1,
                    rebootRequiredDays: 2,
                },
            },
        }),
    );

describe("monitoring: alert rules", () => {
    it("promtool check rules accepts the rule file of the prod example and of other thresholds", (t) => {
        const promtool = requireTool(t, "promtool");
        if (!promtool) return;
        for (const c of [prodConfig(), custom()]) {
            const dir = tmpDir("citadel-rules-");
            fs.writeFileSync(path.join(dir, "rules.yml"), renderAlertRules(c));
            const r = run(promtool, ["check", "rules", "rules.yml"], { cwd: dir });
            fs.rmSync(dir, { recursive: true });
            assert.equal(r.code, 0, r.stdout + r.stderr);
            assert.match(r.stdout, new RegExp(`SUCCESS: ${alertRules(c).length} rules found`));
        }
    });

    it("every rule of the prod example fires on its case and stays silent on each near miss (promtool test rules)", (t) => {
        const promtool = requireTool(t, "promtool");
        if (!promtool) return;
        // The prod example with backups on: every rule Citadel can render.
        const r = promtoolTest(promtool, backupConfig());
        assert.equal(r.code, 0, r.stdout + r.stderr);
        for (const alert of r.rendered) {
            assert.ok(r.all.some((k) => k.alert === alert && k.fires), `${alert} has no case where it fires`);
            assert.ok(r.all.some((k) => k.alert === alert && !k.fires), `${alert} has no near miss`);
        }
        assert.equal(r.rendered.size, 14, [...r.rendered].join(", "));
        assert.equal(alertRules(prodConfig()).length, 12, "without backups, no backup rule");
        console.log(`promtool test rules: ${r.all.length} cases over ${r.rendered.size} rules, all as expected`);
    });

    it("the cases follow other thresholds (3 failed logins in 2m, 50% disk, a 2m drift audit...)", (t) => {
        const promtool = requireTool(t, "promtool");
        if (!promtool) return;
        const r = promtoolTest(promtool, custom());
        assert.equal(r.code, 0, r.stdout + r.stderr);
    });

    it("the cases can fail: rules off by one (every count and percent +1) miss each case that should fire", (t) => {
        const promtool = requireTool(t, "promtool");
        if (!promtool) return;
        const c = prodConfig();
        const th = c.monitoring.thresholds;
        const bump = (w: { count: number; window: string }) => ({ ...w, count: w.count + 1 });
        const off: StackConfig = {
            ...c,
            monitoring: {
                ...c.monitoring,
                thresholds: { ...th, failedSshLogins: bump(th.failedSshLogins), bans: bump(th.bans), authFailures: bump(th.authFailures), rateLimited: bump(th.rateLimited), containerRestarts: bump(th.containerRestarts), diskPercent: th.diskPercent + 1 },
            },
        };
        const r = promtoolTest(promtool, off, c);
        assert.notEqual(r.code, 0, "promtool passed rules whose thresholds are off by one");
        for (const alert of ["CitadelFailedSshLogins", "CitadelBanStorm", "CitadelAuthFailureSpike", "CitadelRateLimitSurge", "CitadelContainerRestartLoop", "CitadelDiskFilling"]) {
            assert.match(r.stdout + r.stderr, new RegExp(`FAILED:[\\s\\S]*${alert}`), `${alert} did not fail`);
        }
    });

    it("with fail2ban there are no CrowdSec rules; with Caddy's internal CA no TLS-expiry rule", () => {
        const f2b = alertRules(parseConfigOrThrow(prodWith({ intrusion: { engine: "fail2ban" } }))).map((r) => r.alert);
        assert.ok(!f2b.includes("CitadelFailedSshLogins") && !f2b.includes("CitadelBanStorm"), f2b.join(" "));
        const internal = alertRules(parseConfigOrThrow(prodWith({ gateway: { acmeCa: "internal" } }))).map((r) => r.alert);
        assert.ok(!internal.includes("CitadelTlsCertificateExpiring"));
        assert.ok(internal.includes("CitadelFailedSshLogins"));
    });

    it("every rule carries a severity, a summary and a runbook line", () => {
        for (const r of alertRules(prodConfig())) {
            assert.match(r.severity, /^(critical|warning)$/, r.alert);
            assert.ok(r.summary.length > 10 && r.runbook.length > 30, r.alert);
        }
    });
});

describe("monitoring: Prometheus, Alertmanager and blackbox configuration", () => {
    it("promtool check config accepts prometheus.yml (with its rule file)", (t) => {
        const promtool = requireTool(t, "promtool");
        if (!promtool) return;
        for (const c of [prodConfig(), parseConfigOrThrow(prodWith({ intrusion: { engine: "fail2ban" }, gateway: { acmeCa: "internal" } }))]) {
            const dir = tmpDir("citadel-prom-");
            fs.writeFileSync(path.join(dir, "rules.yml"), renderAlertRules(c));
            fs.writeFileSync(path.join(dir, "prometheus.yml"), renderPrometheusConfig(c, path.join(dir, "rules.yml")));
            const r = run(promtool, ["check", "config", "prometheus.yml"], { cwd: dir });
            fs.rmSync(dir, { recursive: true });
            assert.equal(r.code, 0, r.stdout + r.stderr);
        }
        const jobs = (YAML.parse(renderPrometheusConfig(prodConfig())) as { scrape_configs: { job_name: string }[] }).scrape_configs.map((s) => s.job_name);
        assert.deepEqual(jobs, [JOBS.prometheus, JOBS.alertmanager, JOBS.node, JOBS.crowdsec, JOBS.gateway, JOBS.tls]);
    });

    it("amtool check-config accepts alertmanager.yml for webhook and Slack receivers, and with none", (t) => {
        const amtool = requireTool(t, "amtool");
        if (!amtool) return;
        const receivers = [
            { name: "ops", url: "https://ntfy.example.com/citadel-alerts" },
            { name: "chat", kind: "slack", url: "https://hooks.slack.com/services/T000/B000/XXXX" },
            { name: "mail", kind: "email", to: "ops@example.com", from: "citadel@example.com", url: "smtp://alerts:Pa55word-for-amtool@smtp.example.com:587" },
        ];
        const withUrls = parseConfigOrThrow(prodWith({ monitoring: { receivers, route: { receiver: "chat" } } }));
        for (const [c, urls] of [
            [withUrls, Object.fromEntries(receivers.map((r) => [r.name, r.url]))],
            [withUrls, {}],
            [prodConfig(), {}],
        ] as [StackConfig, Record<string, string>][]) {
            const dir = tmpDir("citadel-am-");
            const text = renderAlertmanagerConfig(c, urls);
            fs.writeFileSync(path.join(dir, "alertmanager.yml"), text);
            const r = run(amtool, ["check-config", "alertmanager.yml"], { cwd: dir });
            fs.rmSync(dir, { recursive: true });
            assert.equal(r.code, 0, r.stdout + r.stderr);
            // The web receivers' URLs as they are; the email receiver's server, user and password from its URL.
            for (const [name, u] of Object.entries(urls)) {
                const want = name === "mail" ? ["smarthost: smtp.example.com:587", "auth_username: alerts", "auth_password: Pa55word-for-amtool", "require_tls: true"] : [u];
                for (const w of want) assert.ok(text.includes(w), `${name}: ${w} is not in alertmanager.yml`);
            }
        }
        // Without the URLs (the posture, a preview) no receiver URL is in the text.
        const placeholder = renderAlertmanagerConfig(withUrls);
        for (const r of receivers) assert.ok(!placeholder.includes(r.url), r.url);
        assert.ok(!placeholder.includes("Pa55word-for-amtool"), "the email receiver's password is in the placeholder configuration");
        assert.match(renderAlertmanagerConfig(withUrls), /receiver: chat/);
    });

    // E-mail delivery end to end on loopback: Debian's Alertmanager with the rendered configuration,
    // and an SMTP server (aiosmtpd, Debian's python3-aiosmtpd) with a certificate of a test CA (given to
    // Alertmanager as its system roots, SSL_CERT_FILE), STARTTLS required on one port and TLS from the
    // first byte on 465, refusing AUTH outside TLS and any password but the one in the receiver's URL. It offers PLAIN only: its LOGIN
    // challenge ("User Name") is not the "Username:" Alertmanager's LOGIN client expects.
    it("an email receiver: a posted alert reaches the SMTP server over STARTTLS (smtp://) and over TLS on 465 (smtps://), with the URL's user and password", async (t) => {
        for (const bin of ["prometheus-alertmanager", "openssl", "curl"]) if (!requireTool(t, bin)) return;
        if (run("/usr/bin/python3", ["-c", "import aiosmtpd"]).code !== 0) {
            if (IN_CI) assert.fail("python3-aiosmtpd is needed (bash lab/prereqs.sh)");
            return t.skip("python3-aiosmtpd is not installed (bash lab/prereqs.sh)");
        }
        const { freePort } = await import("../tools");
        const { spawn } = await import("node:child_process");
        const dir = tmpDir("citadel-am-mail-");
        const password = "s3cret/with:odd@chars";
        // A CA and the server's certificate for 127.0.0.1.
        const ssl = (args: string[]) => assert.equal(run("openssl", args, { cwd: dir }).code, 0, args.join(" "));
        ssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=citadel test CA"]);
        ssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "smtp.key", "-out", "smtp.csr", "-subj", "/CN=127.0.0.1"]);
        fs.writeFileSync(path.join(dir, "san.ext"), "subjectAltName=IP:127.0.0.1\n");
        ssl(["x509", "-req", "-in", "smtp.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "smtp.pem", "-days", "1", "-extfile", "san.ext"]);
        // mode "starttls": plain first, STARTTLS required before AUTH; "implicit": TLS from the first byte (465).
        fs.writeFileSync(
            path.join(dir, "smtp.py"),
            [
                "import asyncio, ssl, sys",
                "from aiosmtpd.controller import Controller",
                "from aiosmtpd.smtp import AuthResult",
                "d, out, port, mode, want = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5].encode()",
                "ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)",
                "ctx.load_cert_chain(d + '/smtp.pem', d + '/smtp.key')",
                "def auth(server, session, envelope, mechanism, data):",
                "    ok = data.login == b'alerts' and data.password == want",
                "    tls = server.transport.get_extra_info('ssl_object') is not None",
                "    open(out + '/auth.log', 'a').write(f'{mechanism} {data.login.decode()} {ok} tls={tls}\\n')",
                "    return AuthResult(success=ok)",
                "class Sink:",
                "    async def handle_DATA(self, server, session, envelope):",
                "        open(out + '/mail.eml', 'ab').write(envelope.content + b'\\n.\\n')",
                "        return '250 OK'",
                // aiosmtpd's auth_require_tls looks at STARTTLS only: on an implicit-TLS port it would never
                // offer AUTH, so there the transport itself is the proof (auth.log's tls=).
                "tls = {'ssl_context': ctx, 'auth_require_tls': False} if mode == 'implicit' else {'tls_context': ctx, 'require_starttls': True, 'auth_require_tls': True}",
                "c = Controller(Sink(), hostname='127.0.0.1', port=port, authenticator=auth, auth_required=True, auth_exclude_mechanism=['LOGIN'], **tls)",
                "c.start()",
                "open(out + '/smtp.ready', 'w').close()",
                "try:",
                "    asyncio.get_event_loop().run_until_complete(asyncio.sleep(120))",
                "finally:",
                "    c.stop()",
            ].join("\n"),
        );
        const children: import("node:child_process").ChildProcess[] = [];
        /** One receiver URL → Alertmanager with the rendered config → a posted alert → the mail the server got. */
        const deliver = async (scheme: "smtp" | "smtps", smtpPort: number) => {
            const out = path.join(dir, scheme);
            fs.mkdirSync(out);
            const amPort = await freePort();
            const url = `${scheme}://alerts:${encodeURIComponent(password)}@127.0.0.1:${smtpPort}`;
            const c = parseConfigOrThrow(prodWith({ monitoring: { receivers: [{ name: "mail", kind: "email", to: "ops@example.com", from: "citadel@example.com", url }], route: { groupWait: "1s" } } }));
            fs.writeFileSync(path.join(out, "alertmanager.yml"), renderAlertmanagerConfig(c, { mail: url }));
            children.push(spawn("/usr/bin/python3", [path.join(dir, "smtp.py"), dir, out, String(smtpPort), scheme === "smtps" ? "implicit" : "starttls", password], { stdio: ["ignore", "ignore", fs.openSync(path.join(out, "smtp.log"), "w")] }));
            children.push(
                spawn("prometheus-alertmanager", [`--config.file=${path.join(out, "alertmanager.yml")}`, `--storage.path=${path.join(out, "data")}`, `--web.listen-address=127.0.0.1:${amPort}`, "--cluster.listen-address="], {
                    env: { ...process.env, SSL_CERT_FILE: path.join(dir, "ca.pem") },
                    stdio: ["ignore", "ignore", fs.openSync(path.join(out, "am.log"), "w")],
                }),
            );
            const until = async (what: string, ok: () => boolean, ms: number) => {
                for (const end = Date.now() + ms; !ok(); ) {
                    if (Date.now() > end) assert.fail(`${scheme}: ${what}\n${["am.log", "smtp.log"].map((f) => fs.readFileSync(path.join(out, f), "utf8").slice(-2000)).join("\n")}`);
                    await new Promise((res) => setTimeout(res, 200));
                }
            };
            await until("the SMTP server did not start", () => fs.existsSync(path.join(out, "smtp.ready")), 20_000);
            await until("Alertmanager did not start", () => run("curl", ["-fsS", `http://127.0.0.1:${amPort}/api/v2/status`]).code === 0, 20_000);
            const alert = [{ labels: { alertname: "CitadelMailTest", severity: "warning" }, annotations: { summary: "a test alert for the email receiver", runbook: "nothing to do" } }];
            const post = run("curl", ["-fsS", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", "@-", `http://127.0.0.1:${amPort}/api/v2/alerts`], { input: JSON.stringify(alert) });
            assert.equal(post.code, 0, post.stderr);
            await until("no e-mail reached the SMTP server within 30 s", () => fs.existsSync(path.join(out, "mail.eml")), 30_000);
            const mail = fs.readFileSync(path.join(out, "mail.eml"), "utf8");
            assert.match(mail, /^Subject: \[citadel\] CitadelMailTest \(firing\)/m);
            assert.match(mail, /^To: ops@example\.com/m);
            assert.match(mail, /^From: citadel@example\.com/m);
            assert.match(mail, /a test alert for the email receiver/);
            // Authenticated with the URL's user and (decoded) password, over TLS.
            assert.match(fs.readFileSync(path.join(out, "auth.log"), "utf8"), /^PLAIN alerts True tls=True$/m);
        };
        try {
            await deliver("smtp", await freePort());
            // smtps:// is TLS from the first byte, which Alertmanager speaks on port 465 only.
            await deliver("smtps", 465);
        } finally {
            // Both gone before their directories are removed (Alertmanager writes its data on the way out).
            await Promise.all(children.map((child) => new Promise((res) => (child.exitCode !== null || child.signalCode !== null ? res(null) : (child.once("exit", res), child.kill())))));
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("blackbox.yml has one TLS module per site with the site's name as SNI", () => {
        const c = prodConfig();
        const doc = YAML.parse(renderBlackboxConfig(c)) as { modules: Record<string, { tcp: { tls: boolean; tls_config: { server_name: string } } }> };
        assert.deepEqual(
            Object.values(doc.modules).map((m) => m.tcp.tls_config.server_name),
            c.sites.map((s) => s.host),
        );
    });
});

describe("monitoring: the host scripts the monitoring-config step installs", () => {
    it("the metrics writer and the drift audit are shellcheck-clean, and the drift audit carries the declared posture", (t) => {
        const bin = requireTool(t, "shellcheck");
        if (!bin) return;
        const c = prodConfig();
        const m = posture(c);
        const step = m.hostSteps.find((s) => s.name === "monitoring-config");
        assert.ok(step, "no monitoring-config step");
        for (const name of ["host-metrics.sh", "drift.sh"]) {
            const f = step.files.find((x) => x.path.endsWith(`/${name}`));
            assert.ok(f, name);
            const r = shellcheck(bin, f.content);
            assert.equal(r.code, 0, `${name}:\n${r.stdout}${r.stderr}`);
        }
        const drift = step.files.find((x) => x.path.endsWith("/drift.sh"))!.content;
        for (const rule of m.exposure.ufw.rules) assert.ok(drift.includes(rule), rule);
        for (const x of m.containers) assert.ok(drift.includes(x.name), x.name);
        for (const f of m.secretFiles) assert.ok(drift.includes(`${f.path} ${f.ownerUid}`), f.path);
    });

    it("the metrics writer survives a container that goes between `docker ps` and `docker inspect` (a step's throw-away container)", (t) => {
        if (!requireRoot(t, "a private mount namespace over /usr/local/sbin")) return;
        const writer = posture(prodConfig()).hostSteps.find((s) => s.name === "monitoring-config")!.files.find((x) => x.path.endsWith("/host-metrics.sh"))!.content;
        const dir = tmpDir("citadel-metrics-writer-");
        t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
        const sbin = path.join(dir, "sbin");
        const out = path.join(dir, "metrics");
        const state = path.join(dir, "state");
        for (const d of [sbin, out, state]) fs.mkdirSync(d);
        // The writer puts /usr/local/sbin first on its PATH: the stubs shadow the real tools there.
        fs.writeFileSync(path.join(sbin, "apt-get"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
        const docker = (vanish: boolean) =>
            ["#!/bin/sh", 'case "$1" in', "ps) printf 'aaa\\nbbb\\n' ;;", `inspect) echo "/citadel-gateway 2"; ${vanish ? 'echo "Error: No such object: bbb" >&2; exit 1' : 'echo "/postgres 0"'} ;;`, "esac", ""].join("\n");
        const run1 = (vanish: boolean) => {
            fs.writeFileSync(path.join(sbin, "docker"), docker(vanish), { mode: 0o755 });
            const script = writer.replaceAll(METRICS_TEXTFILE_DIR, out).replaceAll(METRICS_STATE_DIR, state);
            return run("unshare", ["--mount", "--propagation", "private", "bash", "-c", 'mount --bind "$1" /usr/local/sbin && bash -c "$2"', "x", sbin, script]);
        };
        const ok = run1(false);
        assert.equal(ok.code, 0, ok.stderr);
        assert.match(fs.readFileSync(path.join(out, "containers.prom"), "utf8"), /container="postgres"\} 0/);
        const gone = run1(true);
        assert.equal(gone.code, 0, `a vanished container failed the writer: ${gone.stderr}`);
        assert.match(fs.readFileSync(path.join(out, "containers.prom"), "utf8"), /container="citadel-gateway"\} 2/);
    });
});
