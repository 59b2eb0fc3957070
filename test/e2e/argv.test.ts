// No secret value in a command line, an environment or `docker inspect`, while the real engine
// converges the local stack and `citadel audit` runs against it. A watcher (test/proc-watch.ts) sweeps
// this machine's /proc, which holds the VPS's processes and its containers' too (one kernel), and
// inspects every container of this machine's engine and of the VPS's. The values are the stack's own
// secrets, read from its state at the end (the converge creates them) and never printed. Faults
// injected at the end of the same watch (a value in a command line here, in an environment inside a
// data container, in a container's env) must each be found: the watcher can fail.
import "./shared-vps"; // first: it may name the shared VPS before anything reads CITADEL_VPS_NAME
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { after, before, describe, it } from "node:test";
import { CADDY_LOG_DIR_HOST, POSTGRES_CONTAINER } from "../../components/posture/facts";
import { CADDYFILE_HOST_PATH } from "../../components/render/caddy";
import { shellQuote } from "../../components/render/template";
import { describeSightings, watchProc, type Sighting, type WatchReport } from "../proc-watch";
import { IN_CI, which, pulumiMissing } from "../tools";

process.env.CITADEL_VPS_NAME ??= "citadel-argv";
process.env.CITADEL_SSH_PORT ??= "2722";
process.env.CITADEL_HTTP_PORT ??= "8580";
process.env.CITADEL_HTTPS_PORT ??= "8943";

const PROBE = "citadel-argv-e2e-probe";
/** Every fault's process or container carries this name, so the test tells them from a real leak. */
const FAULT = "citadel-argv-fault";
/** Pulumi's marker of a secret value in a state export (`--show-secrets` adds its plaintext). */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";

let skip: string | false = pulumiMissing();
if (skip) {
    // no engine: nothing else matters
} else if (!which("docker") || !which("dockerd")) skip = "docker not installed (bash lab/prereqs.sh)";
else if (!fs.existsSync("/proc/self/environ")) skip = "no /proc on this system";
if (IN_CI && skip) throw new Error(skip);

/**
 * Every secret value in a state export, by where it is (resource name and property path). Values of
 * 12+ characters; a PEM private key also by each of its base64 lines. Not the remote commands'
 * `connection.hostKey`: Pulumi keeps the whole connection secret, but that is the VPS's public host
 * key, which is plain config (citadel:existing.hostKey) and a stack output by design.
 */
export function secretValues(state: unknown): Record<string, string> {
    const out: Record<string, string> = {};
    const add = (name: string, v: unknown): void => {
        if (name.endsWith(".hostKey")) return;
        if (typeof v === "string") {
            if (v.length >= 12) out[name] = v;
            if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(v)) v.split("\n").forEach((l, i) => /^[A-Za-z0-9+/=]{40,}$/.test(l.trim()) && (out[`${name}#line${i}`] = l.trim()));
        } else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) add(`${name}.${k}`, x);
    };
    const walk = (name: string, node: unknown): void => {
        if (!node || typeof node !== "object") return;
        const o = node as Record<string, unknown>;
        if (o[SECRET_SIG] !== undefined && typeof o.plaintext === "string") {
            let v: unknown = o.plaintext;
            try {
                v = JSON.parse(o.plaintext);
            } catch {
                /* a plain string */
            }
            add(name, v);
            return;
        }
        for (const [k, x] of Object.entries(o)) walk(`${name}.${k}`, x);
    };
    const resources = (state as { deployment?: { resources?: { urn: string; outputs?: unknown }[] } }).deployment?.resources ?? [];
    for (const r of resources) walk(r.urn.split("::").pop() ?? r.urn, r.outputs);
    return out;
}

/** A command started without blocking this process (the faults must run while the test waits). */
function background(cmd: string, args: string[], input?: string): Promise<number | null> {
    return new Promise((resolve) => {
        const p = spawn(cmd, args, { stdio: ["pipe", "ignore", "ignore"] });
        p.on("error", () => resolve(null));
        p.on("exit", (code) => resolve(code));
        p.stdin.end(input ?? "");
    });
}

describe("e2e: no secret in argv, environ or docker inspect during a converge and an audit", { skip, timeout: 40 * 60_000 }, () => {
    let session: import("./session").LabSession | undefined;
    let report: WatchReport;
    let secrets: Record<string, string> = {};
    /** The stack's config secrets (what the lab sets with --secret-file), never printed. */
    let configSecrets: string[] = [];
    const fromConfig = (s: Sighting) => s.where === "pulumi-config" && configSecrets.some((v) => v.includes(secrets[s.secret] ?? "\0"));
    let auditFailures: string[] = [];
    let target: import("../../audit/types").AuditTarget;

    before(async () => {
        const { LOCAL_VPS } = await import("../../lab/local");
        const watch = watchProc({ dockers: [["docker"], ["docker", "exec", LOCAL_VPS, "docker"]] });
        await watch.ready;
        let failure: unknown;
        try {
            const { convergeLabVps } = await import("./session");
            session = await convergeLabVps({ quiet: true });
            const lab = await import("../../lab/audit");
            const { runAudit } = await import("../../audit/run");
            target = await lab.localTarget(lab.readLabStackOutputs("local"), PROBE);
            const audit = await runAudit(target);
            auditFailures = audit.checks.filter((c) => c.result === "fail").map((c) => c.id);

            // The stack's secrets, from its state (kept in this process, never printed).
            const exported = lab.labPulumi("local", ["stack", "export", "--show-secrets"]);
            assert.equal(exported.code, 0, exported.stderr);
            secrets = secretValues(JSON.parse(exported.stdout));
            // The config secrets the lab sets on every run (lab/backup-target.ts backupStackArgs: the
            // backup target's key, from its file on stdin); the stack file itself holds none.
            const { labBackupTarget } = await import("../../lab/local");
            const backupTarget = labBackupTarget();
            configSecrets = backupTarget ? [fs.readFileSync(backupTarget.keyPath, "utf8")] : [];

            // The faults, each with a value from the state: a command line on this machine, an
            // environment inside the VPS's Postgres container, the env of a container the VPS's engine has.
            const [faultName, faultValue] = Object.entries(secrets).find(([n]) => n.includes("postgresPassword")) ?? [];
            assert.ok(faultName && faultValue, `no postgresPassword among the state's secrets: ${Object.keys(secrets).join(", ")}`);
            const inVps = ["exec", "-i", LOCAL_VPS, "docker"];
            await Promise.all([
                background("bash", ["-c", `exec -a ${FAULT} sh -c 'sleep 1.5; exit 0' sh "$(cat)"`], faultValue),
                // A generated secret in a PULUMI_CONFIG variable is no config secret: still a leak.
                background("bash", ["-c", `IFS= read -r v; PULUMI_CONFIG="$v" exec -a ${FAULT}-config sleep 1.5`], `${faultValue}\n`),
                background("docker", [...inVps, "exec", "-i", POSTGRES_CONTAINER, "bash", "-c", `IFS= read -r v; export CITADEL_FAULT="$v"; exec -a ${FAULT}-env sleep 1.5`], `${faultValue}\n`),
                background("docker", [...inVps, "create", "--name", `${FAULT}-inspect`, "--env-file", "/dev/stdin", "--entrypoint", "true", session.config.postgres.image], `CITADEL_FAULT=${faultValue}\n`),
            ]);
            await new Promise((r) => setTimeout(r, 5_000)); // two docker inspect rounds
            await background("docker", [...inVps, "rm", "-f", `${FAULT}-inspect`]);
        } catch (e) {
            failure = e;
        } finally {
            report = await watch.stop(secrets);
        }
        if (failure) throw failure;
    });

    after(async () => {
        const { removeProbe } = await import("../../lab/audit");
        removeProbe(PROBE);
        await session?.release(process.env.CITADEL_ARGV_KEEP === "1");
    });

    it("reads the stack's secrets from its state, and the audit passes", () => {
        const names = Object.keys(secrets);
        for (const want of ["postgresPassword", "redisPassword", "crowdsecBouncerKey"]) assert.ok(names.some((n) => n.includes(want)), `${want} not among ${names.join(", ")}`);
        assert.deepEqual(auditFailures, [], "the audit failed on the converged host");
        process.stderr.write(
            `watch: ${Object.keys(secrets).length} secret values; ${report.sweeps} /proc sweeps (longest gap ${report.maxSweepMs} ms), ${report.dockerRounds} docker inspect rounds, ${report.texts} distinct texts\n`,
        );
    });

    it("no secret value in any command line, environment or docker inspect (the faults aside)", () => {
        // Pulumi hands the program its config in PULUMI_CONFIG, secrets decrypted (upstream's language
        // host does the same): a config secret (citadel:backup.target.sshKey here) is there by design,
        // in the operator's own process on the operator's machine. Only those values are let through.
        const leaks = report.sightings.filter((s) => !s.holder.startsWith(FAULT) && !fromConfig(s));
        assert.deepEqual(leaks, [], `secrets seen: ${describeSightings({ ...report, sightings: leaks })}`);
    });

    it("the faults injected in the same watch are each caught (cmdline here, environ in a container, docker inspect)", () => {
        const faults = report.sightings.filter((s) => s.holder.startsWith(FAULT)).map((s) => `${s.where} ${s.holder}`);
        assert.ok(faults.includes(`cmdline ${FAULT}`), describeSightings(report));
        assert.ok(faults.includes(`environ ${FAULT}-env`), describeSightings(report));
        assert.ok(faults.includes(`docker inspect ${FAULT}-inspect`), describeSightings(report));
        const configFault = report.sightings.filter((x) => x.holder === `${FAULT}-config`);
        assert.ok(configFault.some((x) => x.where === "pulumi-config"), describeSightings(report));
        assert.ok(configFault.every((x) => !fromConfig(x)), "a generated secret in PULUMI_CONFIG must not pass as a config secret");
    });

    // Finding 5 on the same host: the audit's retention check, and the faults it must catch.
    const root = (cmd: string) => {
        const r = target.inside.sh(`sudo -n bash -c ${shellQuote(cmd)}`, { timeoutMs: 120_000 });
        assert.equal(r.code, 0, `${cmd}: ${r.stderr}`);
        return r.stdout;
    };
    const retention = async () => {
        const { runAudit } = await import("../../audit/run");
        const r = await runAudit(target, { only: ["in-log-retention"] });
        const c = r.checks.find((x) => x.id === "in-log-retention");
        assert.ok(c && !c.crashed, JSON.stringify(c));
        return c;
    };

    it("Postgres's refused connections are in the journal (its logs go there, kept the retention period)", () => {
        // The audit's in-postgres-tls made a plain connection, which pg_hba refused.
        const lines = root(`journalctl -q CONTAINER_NAME=${POSTGRES_CONTAINER} --no-pager | grep -c 'no encryption' || true`);
        assert.ok(Number(lines.trim()) >= 1, "no refused connection of Postgres in the journal");
    });

    it("in-log-retention passes, and fails on a Caddyfile rolled by size only and on an access log that outgrows its budget", async () => {
        const clean = await retention();
        assert.equal(clean.result, "pass", JSON.stringify(clean));
        const f = CADDYFILE_HOST_PATH;
        // The Caddyfile is bind-mounted as a file: rewritten in place (same inode) so the container sees it.
        root(`cp ${f} /root/Caddyfile.argv && sed '/roll_interval/d' /root/Caddyfile.argv > /root/Caddyfile.new && cat /root/Caddyfile.new > ${f}`);
        try {
            const c = await retention();
            assert.equal(c.result, "fail");
            assert.ok(c.drift.some((d) => /roll_interval/.test(d.what) && /size only/.test(d.actual)), JSON.stringify(c.drift));
        } finally {
            root(`cat /root/Caddyfile.argv > ${f} && rm -f /root/Caddyfile.argv /root/Caddyfile.new`);
        }
        // 40 GiB (sparse: no disk used) written over 10 days: 360 GiB for 90 days, over the 2G budget.
        const big = `${CADDY_LOG_DIR_HOST}/access-argv-fault.log`;
        root(`truncate -s 40G ${big} && touch -d '10 days ago' ${big}`);
        try {
            const c = await retention();
            assert.equal(c.result, "fail");
            assert.ok(c.drift.some((d) => /^access log budget/.test(d.what) && /for \d+ days at the rate of the last 10 days/.test(d.expected)), JSON.stringify(c.drift));
        } finally {
            root(`rm -f ${big}`);
        }
        assert.equal((await retention()).result, "pass");
    });

    // Finding 7 on the same host: needrestart's mode and the reboot window, as the audit reads them.
    it("in-upgrades passes, and fails when needrestart would only ask or the reboot window is switched off", async () => {
        const { runAudit } = await import("../../audit/run");
        const upgrades = async () => {
            const r = await runAudit(target, { only: ["in-upgrades"] });
            const c = r.checks.find((x) => x.id === "in-upgrades");
            assert.ok(c && !c.crashed, JSON.stringify(c));
            return c;
        };
        assert.equal((await upgrades()).result, "pass");
        const faults = [
            { file: "/etc/needrestart/conf.d/zz-argv-fault.conf", text: "$nrconf{restart} = 'i';", drift: /^needrestart restart mode: expected a .* \| actual i$/ },
            { file: "/etc/apt/apt.conf.d/99argv-fault", text: 'Unattended-Upgrade::Automatic-Reboot "false";', drift: /^Unattended-Upgrade::Automatic-Reboot: expected true \| actual false$/ },
        ];
        for (const f of faults) {
            root(`printf '%s\\n' ${shellQuote(f.text)} > ${f.file}`);
            try {
                const c = await upgrades();
                assert.equal(c.result, "fail", f.file);
                assert.ok(c.drift.map((d) => `${d.what}: expected ${d.expected} | actual ${d.actual}`).some((l) => f.drift.test(l)), JSON.stringify(c.drift));
            } finally {
                root(`rm -f ${f.file}`);
            }
        }
        assert.equal((await upgrades()).result, "pass");
    });
});
