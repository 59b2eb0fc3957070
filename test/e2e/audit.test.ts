// `citadel audit` against the converged local VPS: every check passes, and each deliberate fault
// injected on the host makes the audit fail naming the right check, until the fault is undone.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { CHECKLIST } from "../../audit/checklist";
import { shellQuote } from "../../components/render/template";
import type { AuditReport } from "../../audit/run";
import type { AuditTarget } from "../../audit/types";
import { IN_CI, which } from "../tools";

// Our own VPS and ports, so the audit test never meets the demo's (or CI's) `citadel-local`.
process.env.CITADEL_VPS_NAME ??= "citadel-audit";
process.env.CITADEL_SSH_PORT ??= "2322";
process.env.CITADEL_HTTP_PORT ??= "8180";
process.env.CITADEL_HTTPS_PORT ??= "8543";

const ROOT = path.resolve(__dirname, "..", "..");
const POLICY_DIR = process.env.CITADEL_POLICY_DIR ?? path.resolve(ROOT, "..", "shared", "source-policies");

describe("audit/checklist.ts: the one table from check ids to policy lines", () => {
    it("names every check, and every check has at least one policy line", async () => {
        const { ALL_CHECKS } = await import("../../audit/run");
        const ids = ALL_CHECKS.map((c) => c.id).sort();
        assert.deepEqual(Object.keys(CHECKLIST).sort(), ids);
        for (const id of ids) assert.ok(CHECKLIST[id].length > 0, id);
    });
    it("quotes each line exactly as it stands in the source policy", (t) => {
        if (!fs.existsSync(POLICY_DIR)) {
            if (IN_CI) throw new Error(`source policies not found at ${POLICY_DIR} (set CITADEL_POLICY_DIR)`);
            t.skip(`source policies not found at ${POLICY_DIR} (set CITADEL_POLICY_DIR)`);
            return;
        }
        for (const [id, lines] of Object.entries(CHECKLIST)) {
            for (const { file, line } of lines) {
                const text = fs.readFileSync(path.join(POLICY_DIR, file), "utf8").split("\n").map((l) => l.trim());
                assert.ok(text.includes(line), `${id}: "${line}" is not a line of ${file}`);
            }
        }
    });
});

let skip: string | false = false;
if (!fs.existsSync(path.join(ROOT, ".cache", "engine", "bin", "pulumi"))) skip = "engine not built (bash lab/engine/build.sh)";
else if (!which("docker") || !which("dockerd")) skip = "docker not installed (bash lab/prereqs.sh)";
if (IN_CI && skip) throw new Error(skip);

describe("audit of the local VPS", { skip, timeout: 20 * 60_000 }, () => {
    let target: AuditTarget;
    let startedDockerd = false;
    let audit: (only?: string[]) => Promise<AuditReport>;
    let show: (r: AuditReport) => string;
    /** Root on the VPS over the audit's own pinned SSH (sudo -n). */
    const root = (cmd: string) => {
        const r = target.inside.sh(`sudo -n bash -c ${shellQuote(cmd)}`, { timeoutMs: 120_000 });
        assert.equal(r.code, 0, `${cmd}: ${r.stderr}`);
        return r.stdout;
    };
    /** Check ids the last audit saw pass since the last repair (so a clean state is not re-proven twice). */
    let verifiedClean = new Set<string>();
    const passed = (r: AuditReport) => new Set(r.checks.filter((c) => c.result === "pass").map((c) => c.id));
    /** The fault makes the named checks fail (among `only`); undoing it makes them pass again. */
    const fault = async (o: { only: string[]; expect: string[]; inject: string; repair: string; settleMs?: number }) => {
        const unverified = (await import("../../audit/run")).ALL_CHECKS.filter((c) => o.only.some((p) => c.id.startsWith(p)) && !verifiedClean.has(c.id)).map((c) => c.id);
        if (unverified.length) {
            const clean = await audit(unverified);
            assert.equal(clean.summary.fail, 0, `not clean before the fault:\n${show(clean)}`);
        }
        root(o.inject);
        try {
            const r = await audit(o.only);
            const failed = r.checks.filter((c) => c.result === "fail").map((c) => c.id);
            for (const id of o.expect) assert.ok(failed.includes(id), `fault "${o.inject}" not caught by ${id}:\n${show(r)}`);
            // The fault's drift is shown with both values.
            assert.ok(r.checks.filter((c) => o.expect.includes(c.id)).some((c) => c.drift.length > 0 || /error/.test(c.evidence)), show(r));
        } finally {
            root(o.repair);
        }
        // Repaired: bounded wait for services to come back.
        const end = Date.now() + (o.settleMs ?? 0);
        let again = await audit(o.only);
        while (again.summary.fail > 0 && Date.now() < end) {
            await new Promise((res) => setTimeout(res, 3_000));
            again = await audit(o.only);
        }
        assert.equal(again.summary.fail, 0, `still failing after the repair "${o.repair}":\n${show(again)}`);
        verifiedClean = passed(again);
    };

    before(async () => {
        const { dockerReady, ensureDockerd } = await import("../../lab/vps/dockerd");
        startedDockerd = !dockerReady();
        await ensureDockerd();
        const prev = process.env.CITADEL_QUIET;
        process.env.CITADEL_QUIET = "1";
        const { up } = await import("../../lab/local");
        await up();
        process.env.CITADEL_QUIET = prev;
        const { localTarget, readLabStackOutputs: readStackOutputs } = await import("../../lab/audit");
        const { runAudit, formatReport } = await import("../../audit/run");
        const outputs = readStackOutputs("local");
        assert.ok(outputs?.exposure, "the local stack has no outputs after up");
        target = await localTarget(outputs);
        audit = (only) => runAudit(target, { only });
        show = (r) => formatReport(r);
    });

    after(async () => {
        const { removeProbe } = await import("../../lab/audit");
        removeProbe();
        if (process.env.CITADEL_AUDIT_KEEP === "1") return; // development only: keep the VPS for the next run
        const { down } = await import("../../lab/local");
        await down();
        if (startedDockerd) {
            const { stopDockerd } = await import("../../lab/vps/dockerd");
            await stopDockerd({ onlyIfIdle: true });
        }
    });

    it("passes on the converged host (skips only with a reason)", async () => {
        const r = await audit();
        process.stderr.write(show(r) + "\n");
        assert.equal(r.summary.fail, 0, show(r));
        verifiedClean = passed(r);
        for (const c of r.checks.filter((x) => x.result === "skip")) assert.ok(c.evidence.length > 10, `${c.id} skipped without a reason`);
        // The non-attack checks all ran.
        assert.deepEqual(r.checks.filter((c) => c.group !== "attack" && c.result !== "pass").map((c) => c.id), []);
    });

    it("fault: a port opened in UFW with a listener behind it → in-ufw and out-ports", () =>
        fault({
            only: ["in-ufw", "out-ports"],
            expect: ["in-ufw", "out-ports"],
            // Inserted first, so it wins over the declared deny of 8001-8012: the port really is open.
            inject: "ufw insert 1 allow 8001/tcp >/dev/null && systemd-run --unit citadel-audit-fault-listener python3 -m http.server 8001 >/dev/null && for i in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/8001) 2>/dev/null && break; sleep 0.1; done",
            repair: "ufw --force delete allow 8001/tcp >/dev/null; systemctl stop citadel-audit-fault-listener || true",
        }));

    it("fault: password authentication re-enabled by an earlier sshd drop-in → in-sshd", () =>
        fault({
            only: ["in-sshd", "out-ssh-auth"],
            expect: ["in-sshd"],
            inject: "printf 'PasswordAuthentication yes\\n' > /etc/ssh/sshd_config.d/00-audit-fault.conf && systemctl reload ssh",
            repair: "rm -f /etc/ssh/sshd_config.d/00-audit-fault.conf && systemctl reload ssh",
        }));

    it("fault: a security header removed from the Caddyfile → out-headers", () =>
        fault({
            only: ["out-headers"],
            expect: ["out-headers"],
            // HSTS: the demo app sends nosniff itself, so only the gateway's own headers prove the edge.
            // In place (cat >): the Caddyfile is a single-file bind mount, a new inode would not be seen.
            inject: "f=/etc/citadel/caddy/Caddyfile; cp -p $f /root/Caddyfile.audit && grep -v 'Strict-Transport-Security' /root/Caddyfile.audit > /root/Caddyfile.new && cat /root/Caddyfile.new > $f && docker restart citadel-gateway >/dev/null && sleep 2",
            repair: "cat /root/Caddyfile.audit > /etc/citadel/caddy/Caddyfile && rm -f /root/Caddyfile.audit /root/Caddyfile.new && docker restart citadel-gateway >/dev/null && sleep 2",
            settleMs: 30_000,
        }));

    it("fault: an extra container running as root → in-container-user and in-containers-inventory", () =>
        fault({
            only: ["in-container"],
            expect: ["in-container-user", "in-containers-inventory"],
            // The demo app refuses uid 0 itself; redis' image with `sleep` runs as root happily.
            inject: "docker run -d --name rogue --user 0 --entrypoint sleep citadel/redis:7-local 600 >/dev/null",
            repair: "docker rm -f rogue >/dev/null",
        }));

    it("fault: a Redis command re-enabled in the ACL → in-redis-commands", () =>
        fault({
            only: ["in-redis"],
            expect: ["in-redis-commands"],
            inject: "f=/etc/citadel/secrets/redis/users.acl; cp -p $f /root/users.acl.audit && sed 's/ -flushall//I' /root/users.acl.audit > /root/users.acl.new && cat /root/users.acl.new > $f && rm -f /root/users.acl.new && docker restart redis >/dev/null && sleep 2",
            repair: "cat /root/users.acl.audit > /etc/citadel/secrets/redis/users.acl && rm -f /root/users.acl.audit && docker restart redis >/dev/null && sleep 2",
            settleMs: 30_000,
        }));

    it("fault: a secret put in a container's env → in-container-env", () =>
        fault({
            only: ["in-container"],
            expect: ["in-container-env"],
            inject: "docker run -d --name audit-env-fault --user 10001:10001 -e API_KEY=sk-live-0123456789abcdef citadel/demo-app:1-local >/dev/null",
            repair: "docker rm -f audit-env-fault >/dev/null",
        }));

    it("fault: CrowdSec stopped → in-intrusion", () =>
        fault({
            only: ["in-intrusion"],
            expect: ["in-intrusion"],
            inject: "systemctl stop crowdsec",
            repair: "systemctl start crowdsec && systemctl restart crowdsec-firewall-bouncer",
            settleMs: 60_000,
        }));

    it("fault: DOCKER-USER flushed → in-docker-user", () =>
        fault({
            only: ["in-docker-user"],
            expect: ["in-docker-user"],
            inject: "iptables -F DOCKER-USER",
            // after.rules re-declares the chain; the bouncer re-adds its blocklist rule on restart.
            repair: "ufw reload >/dev/null && systemctl restart crowdsec-firewall-bouncer",
        }));

    it("the CLI exits 1 and its --json names the failing check (a container with a secret in its env)", () => {
        root("docker run -d --name audit-cli-fault --user 10001:10001 -e DB_PASSWORD=hunter2hunter2 citadel/demo-app:1-local >/dev/null");
        try {
            const r = spawnSync("npx", ["tsx", path.join(ROOT, "lab", "audit.ts"), "--stack", "local", "--json", "--keep-probe", "--only", "in-container-env"], { encoding: "utf8", timeout: 180_000, cwd: ROOT });
            assert.equal(r.status, 1, r.stderr);
            const report = JSON.parse(r.stdout) as AuditReport;
            const c = report.checks.find((x) => x.id === "in-container-env");
            assert.equal(c?.result, "fail");
            assert.ok(c?.drift.some((d) => d.what.startsWith("audit-cli-fault") && /DB_PASSWORD=<value hidden>/.test(d.actual)), JSON.stringify(c));
            assert.ok(!r.stdout.includes("hunter2hunter2"), "the audit printed the secret value");
            assert.ok(c?.policy.some((p) => /No secrets in docker-compose\.yml/.test(p.line)));
        } finally {
            root("docker rm -f audit-cli-fault >/dev/null");
        }
    });

    // Day two: a reboot must bring back the whole posture, not only sshd. Before the docker step enabled
    // docker.service, the VPS came back with SSH only: no container, the site refusing connections.
    it("reboot: every check passes again after the host restarts (no pulumi up in between)", async () => {
        const { rebootVps } = await import("../../lab/vps/vps");
        const { localTarget, readLabStackOutputs: readStackOutputs } = await import("../../lab/audit");
        const before = root("systemctl is-enabled docker.service crowdsec.service crowdsec-firewall-bouncer.service ufw.service || true");
        await rebootVps(process.env.CITADEL_VPS_NAME as string);
        target = await localTarget(readStackOutputs("local"));
        // Containers start with the engine and Caddy with its config: a bounded wait, then every
        // non-attack check must pass against the rebooted host.
        const end = Date.now() + 120_000;
        let r = await audit();
        while (r.summary.fail > 0 && Date.now() < end) {
            await new Promise((res) => setTimeout(res, 5_000));
            r = await audit();
        }
        assert.equal(r.summary.fail, 0, `after a reboot (units enabled before: ${before.replace(/\n/g, " ")}):\n${show(r)}`);
        assert.deepEqual(r.checks.filter((c) => c.group !== "attack" && c.result !== "pass").map((c) => c.id), []);
        verifiedClean = passed(r);
    });

    // Last: it leaves the probe's address throttled for one rate-limit window.
    it("attack: SSH brute force from a lab address ends in an enforced ban; an HTTP burst meets 429 while a second source is served", async () => {
        const { runAudit } = await import("../../audit/run");
        const r = await runAudit(target, { attack: true, only: ["atk-"] });
        process.stderr.write(show(r) + "\n");
        const ban = r.checks.find((c) => c.id === "atk-ssh-bruteforce");
        assert.equal(ban?.result, "pass", show(r));
        assert.match(ban?.evidence ?? "", /crowdsec ban on 172\.30\.99\.\d+ .* dropped after .* still served; ban lifted by the audit \(reachable again/);
        const burst = r.checks.find((c) => c.id === "atk-http-burst");
        assert.equal(burst?.result, "pass", show(r));
        // The ban was the attacker's alone, and the audit lifted it: no decision is left on the host.
        const left = target.inside.sh("sudo -n cscli decisions list -o json");
        assert.equal(left.code, 0, left.stderr);
        assert.equal(JSON.parse(left.stdout || "null"), null, `decisions left behind: ${left.stdout}`);
        const { ATTACKER_CONTAINER } = await import("../../lab/audit");
        assert.equal(spawnSync("docker", ["inspect", ATTACKER_CONTAINER]).status, 1, "the attacker container must be removed");
    });

    it("attack: a source the declared posture exempts is reported as skip with the reason, never as pass", async () => {
        const { exemptBecause } = await import("../../audit/attacks");
        const exempting = { ...target.config, intrusion: { ...target.config.intrusion, whitelistPrivateRanges: true } };
        assert.match(exemptBecause(exempting, "172.30.99.7") ?? "", /whitelistPrivateRanges is true/);
        assert.match(exemptBecause(target.config, "172.30.99.1") ?? "", /ignoreIps/);
        assert.equal(exemptBecause(target.config, "172.30.99.7"), undefined);
        const { runAudit } = await import("../../audit/run");
        const r = await runAudit({ ...target, config: exempting }, { attack: true, only: ["atk-ssh"] });
        const ban = r.checks.find((c) => c.id === "atk-ssh-bruteforce");
        assert.equal(ban?.result, "skip", show(r));
        assert.match(ban?.evidence ?? "", /never bans this source: 172\.30\.99\.\d+ is a private address/);
    });
});
