// Someone is told (issue 12): on the converged local VPS, Prometheus scrapes every declared target
// and has every rule loaded, the UIs answer only through the documented SSH tunnel, and 12 failed SSH
// logins from a lab address reach the lab's webhook receiver (this process, on the lab network's
// gateway address, as the local stack's citadel:monitoring.receivers names it) within 2 minutes.
//
// One converge for the file. Everything it creates is removed in `after`: the attacker container,
// its ban, and the VPS (CITADEL_MONITORING_KEEP=1 keeps the VPS, development only).
import "./shared-vps"; // first: it may name the shared VPS before anything reads CITADEL_VPS_NAME
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { posture, type Posture } from "../../components/posture";
import { driftForSeconds } from "../../components/render/monitoring";
import { shellQuote } from "../../components/render/template";
import { HARNESS_KEY } from "../../lab/vps/common";
import { VPS_IMAGE } from "../../lab/vps/image";
import { LAB_NETWORK } from "../../lab/vps/vps";
import { freePort, IN_CI, run, RunResult, tmpDir, which, pulumiMissing } from "../tools";

process.env.CITADEL_VPS_NAME ??= "citadel-monitoring";
process.env.CITADEL_SSH_PORT ??= "2822";
process.env.CITADEL_HTTP_PORT ??= "8680";
process.env.CITADEL_HTTPS_PORT ??= "9043";

const ATTACKER = "citadel-monitoring-attacker";

interface Received {
    at: number;
    body: { status?: string; alerts?: { status: string; labels: Record<string, string>; annotations: Record<string, string> }[] };
}

let skip: string | false = pulumiMissing();
if (skip) {
    // no engine: nothing else matters
} else if (!which("docker") || !which("dockerd")) skip = "docker not installed (bash lab/prereqs.sh)";
if (IN_CI && skip) throw new Error(skip);

describe("monitoring: metrics, rules and alerts delivered (local VPS)", { skip, timeout: 30 * 60_000 }, () => {
    let session: import("./session").LabSession;
    let m: Posture;
    let sshPort = 0;
    let user = "";
    let known = "";
    let vpsAddress = "";
    let attackerIp = "";
    let tunnel: ChildProcess | undefined;
    let uiPort = 0;
    const received: Received[] = [];
    let receiver: http.Server | undefined;

    const out = (r: RunResult) => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
    const sshArgs = () => ["-i", HARNESS_KEY, "-p", String(sshPort), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${known}`, "-o", "ConnectTimeout=20"];
    const root = (cmd: string, timeout = 180_000): RunResult => run("ssh", [...sshArgs(), `${user}@127.0.0.1`, `sudo -n bash -c ${shellQuote(cmd)}`], { timeout });
    async function until<T>(what: string, check: () => T | undefined | Promise<T | undefined>, ms: number, everyMs = 2_000): Promise<T> {
        const end = Date.now() + ms;
        while (Date.now() < end) {
            const v = await check();
            if (v !== undefined && v !== false) return v;
            await new Promise((res) => setTimeout(res, everyMs));
        }
        assert.fail(`${what} (waited ${ms / 1000} s)`);
    }
    /** Prometheus' HTTP API through the SSH tunnel (the README's command). */
    async function api<T>(p: string): Promise<T> {
        const r = await fetch(`http://127.0.0.1:${uiPort}${p}`);
        assert.equal(r.status, 200, p);
        return ((await r.json()) as { data: T }).data;
    }

    before(async () => {
        const { convergeLabVps } = await import("./session");
        const t0 = Date.now();
        session = await convergeLabVps({ quiet: true });
        process.stderr.write(`[monitoring] VPS converged in ${Math.round((Date.now() - t0) / 1000)} s\n`);
        const { info, config } = session;
        m = posture(config);
        sshPort = info.sshPort;
        vpsAddress = info.address;
        user = config.admin.user;
        known = path.join(tmpDir("citadel-monitoring-"), "known_hosts");
        fs.writeFileSync(known, `[127.0.0.1]:${sshPort} ${info.hostKey}\n`);

        // The lab's webhook receiver: the URL of the local stack's receiver, served by this process.
        const url = new URL(config.monitoring.receivers[0].url);
        receiver = http.createServer((req, res) => {
            let body = "";
            req.on("data", (d) => (body += d));
            req.on("end", () => {
                try {
                    received.push({ at: Date.now(), body: JSON.parse(body) });
                } catch {
                    received.push({ at: Date.now(), body: {} });
                }
                res.writeHead(200).end("ok");
            });
        });
        await new Promise<void>((res, rej) => receiver!.once("error", rej).listen(Number(url.port), url.hostname, () => res()));

        // The one tunnel command of the README, to Prometheus (a free local port instead of 9090).
        if (!m.monitoring.enabled) throw new Error("the local stack has monitoring off");
        uiPort = await freePort();
        const [, prometheusUi] = m.monitoring.ui.tunnel.match(/-L \d+:(\S+)/) ?? [];
        tunnel = spawn("ssh", [...sshArgs(), "-N", "-L", `${uiPort}:${prometheusUi}`, `${user}@127.0.0.1`], { stdio: "ignore" });
    });

    after(async () => {
        const steps: [string, () => unknown][] = [
            ["tunnel", () => tunnel?.pid && tunnel.kill()],
            ["receiver", () => receiver?.close()],
            ["decision", () => attackerIp && sshPort && root(`cscli decisions delete --ip ${attackerIp}`)],
            ["attacker", () => run("docker", ["rm", "-f", ATTACKER])],
            ["known_hosts", () => known && fs.rmSync(path.dirname(known), { recursive: true, force: true })],
        ];
        for (const [what, step] of steps) {
            try {
                step();
            } catch (e) {
                process.stderr.write(`[monitoring] cleanup of ${what} failed: ${String(e)}\n`);
            }
        }
        await session?.release(process.env.CITADEL_MONITORING_KEEP === "1");
    });

    it("Prometheus (through the SSH tunnel) scrapes every declared target and has every declared rule loaded", async () => {
        if (!m.monitoring.enabled) return;
        const declared = m.monitoring.targets.map((t) => `${t.job} ${t.target}`).sort();
        const targets = await until(
            "not every declared target is up",
            async () => {
                try {
                    const d = await api<{ activeTargets: { labels: { job: string; instance: string }; health: string; lastError: string }[] }>("/api/v1/targets");
                    const up = d.activeTargets.filter((t) => t.health === "up").map((t) => `${t.labels.job} ${t.labels.instance}`).sort();
                    if (JSON.stringify(up) === JSON.stringify(declared)) return d.activeTargets;
                    process.stderr.write(`[monitoring] targets: ${d.activeTargets.map((t) => `${t.labels.job}=${t.health}${t.lastError ? ` (${t.lastError})` : ""}`).join(", ")}\n`);
                } catch (e) {
                    process.stderr.write(`[monitoring] Prometheus not reachable yet: ${String(e)}\n`);
                }
                return undefined;
            },
            120_000,
            5_000,
        );
        assert.equal(targets.length, declared.length);
        const rules = await api<{ groups: { rules: { name: string; type: string }[] }[] }>("/api/v1/rules");
        const loaded = rules.groups.flatMap((g) => g.rules.map((r) => r.name)).sort();
        assert.deepEqual(loaded, m.monitoring.rules.map((r) => r.alert).sort());
    });

    it("the SSH tunnel reaches the UIs and nothing else (PermitOpen): a forward to the host's own sshd is refused", () => {
        const r = run("ssh", [...sshArgs(), "-W", "127.0.0.1:22", `${user}@127.0.0.1`], { timeout: 30_000, input: "" });
        assert.notEqual(r.code, 0, out(r));
        assert.match(r.stderr, /administratively prohibited|open failed/i, out(r));
    });

    it("12 failed SSH logins from a lab address: CitadelFailedSshLogins reaches the lab webhook within 2 minutes", async () => {
        run("docker", ["rm", "-f", ATTACKER]);
        const started = run("docker", ["run", "-d", "--name", ATTACKER, "--network", LAB_NETWORK, "--entrypoint", "sleep", VPS_IMAGE, "900"]);
        assert.equal(started.code, 0, out(started));
        attackerIp = run("docker", ["inspect", "--format", `{{(index .NetworkSettings.Networks ${JSON.stringify(LAB_NETWORK)}).IPAddress}}`, ATTACKER]).stdout.trim();
        // 12 logins as users that do not exist, 6 at a time: quick enough to finish before the ban they
        // cause is enforced (the bouncer pulls decisions every 10 s), and under sshd's MaxStartups (10),
        // which would drop a 12th unauthenticated connection at random.
        const script = `
import subprocess, concurrent.futures, json
def attempt(i):
    r = subprocess.run(["ssh", "-p", "22", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                        "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", f"citadel-e2e-bf{i}@${vpsAddress}", "true"], capture_output=True, text=True, timeout=30)
    return "Permission denied" in r.stderr
with concurrent.futures.ThreadPoolExecutor(6) as ex:
    print(json.dumps(sum(ex.map(attempt, range(12)))))`;
        const r = run("docker", ["exec", ATTACKER, "python3", "-c", script], { timeout: 120_000 });
        assert.equal(r.code, 0, out(r));
        const t0 = Date.now();
        assert.equal(Number(r.stdout.trim()), 12, `every login must be refused by sshd: ${r.stdout}`);
        const hit = await until(
            "no CitadelFailedSshLogins alert reached the webhook",
            () => received.find((x) => x.at >= t0 && x.body.alerts?.some((a) => a.labels.alertname === "CitadelFailedSshLogins" && a.status === "firing")),
            150_000,
            1_000,
        );
        const delay = Math.round((hit.at - t0) / 100) / 10;
        process.stderr.write(`[monitoring] CitadelFailedSshLogins delivered ${delay} s after the 12th failed login\n`);
        assert.ok(delay <= 120, `delivered after ${delay} s (budget 120 s)`);
        const alert = hit.body.alerts!.find((a) => a.labels.alertname === "CitadelFailedSshLogins")!;
        assert.equal(alert.labels.severity, "critical");
        assert.match(alert.annotations.summary, /More than 10 failed SSH logins in 5m/);
        assert.ok(alert.annotations.runbook.length > 20);
    });

    it("citadel alerts test: the test alert reaches the lab webhook, and Alertmanager reports it delivered", async () => {
        const { sendTestAlert, TEST_ALERT } = await import("../../alerts/cli");
        const { sshInside } = await import("../../audit/target");
        const inside = sshInside({ host: "127.0.0.1", port: sshPort, user, keyPath: HARNESS_KEY, hostKey: fs.readFileSync(known, "utf8").split(" ").slice(1).join(" ").trim() });
        const stamp = `e2e-${Date.now()}`;
        const r = sendTestAlert({ config: session.config, inside }, stamp);
        assert.ok(r.delivered, JSON.stringify(r));
        process.stderr.write(`[monitoring] ${TEST_ALERT} delivered in ${r.seconds} s (Alertmanager's count)\n`);
        // The send above ran synchronously: the receiver (this process) answers Alertmanager's POST now.
        await until("the lab webhook did not receive the test alert", () => received.find((x) => x.body.alerts?.some((a) => a.labels.alertname === TEST_ALERT && a.labels.stamp === stamp)), 30_000, 500);
    });

    it("a UFW rule deleted by hand: CitadelDrift naming in-ufw reaches the webhook without anyone running the audit", async () => {
        const rule = "deny 8001:8012/udp";
        assert.ok(m.exposure.ufw.rules.includes(`ufw ${rule}`), "the local stack declares the rule this test deletes");
        const r = root(`ufw delete ${rule}`);
        assert.equal(r.code, 0, out(r));
        const t0 = Date.now();
        try {
            const hit = await until(
                "no CitadelDrift alert for in-ufw reached the webhook",
                () => received.find((x) => x.at >= t0 && x.body.alerts?.some((a) => a.labels.alertname === "CitadelDrift" && a.labels.check === "in-ufw" && a.status === "firing")),
                // The drift timer's interval, the rule's `for` (through the next run), a scrape, an
                // evaluation and Alertmanager's group wait, with room.
                ((m.monitoring.enabled ? m.monitoring.driftIntervalSeconds : 60) + driftForSeconds(session.config) + 120) * 1000,
                1_000,
            );
            process.stderr.write(`[monitoring] CitadelDrift (in-ufw) delivered ${Math.round((hit.at - t0) / 100) / 10} s after the rule was deleted\n`);
            const alert = hit.body.alerts!.find((a) => a.labels.alertname === "CitadelDrift")!;
            assert.match(alert.annotations.summary, /in-ufw/);
        } finally {
            const back = root(`ufw ${rule}`);
            assert.equal(back.code, 0, out(back));
        }
    });

    it("in-monitoring passes on the converged host, fails with Alertmanager stopped (naming it), passes again once started", async () => {
        const { inMonitoring } = await import("../../audit/monitoring");
        const { sshInside } = await import("../../audit/target");
        const info = { port: sshPort };
        const target = { config: session.config, inside: sshInside({ host: "127.0.0.1", port: info.port, user, keyPath: HARNESS_KEY, hostKey: fs.readFileSync(known, "utf8").split(" ").slice(1).join(" ").trim() }) } as unknown as import("../../audit/types").AuditTarget;
        const verdict = async () => inMonitoring.run(target);
        const first = await verdict();
        assert.equal(first.result, "pass", JSON.stringify(first));
        const stop = root("docker stop citadel-alertmanager");
        assert.equal(stop.code, 0, out(stop));
        try {
            const down = await verdict();
            assert.equal(down.result, "fail", JSON.stringify(down));
            assert.ok(down.drift?.some((d) => d.what === "Alertmanager" || d.what === "target alertmanager"), JSON.stringify(down.drift));
        } finally {
            const start = root("docker start citadel-alertmanager");
            assert.equal(start.code, 0, out(start));
        }
        const again = await until("in-monitoring did not pass again after Alertmanager started", async () => {
            const v = await verdict();
            return v.result === "pass" ? v : undefined;
        }, 90_000, 5_000);
        assert.equal(again.result, "pass");
    });
});
