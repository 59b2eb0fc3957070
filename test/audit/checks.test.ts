// The audit's judges, each shown failing on the fault and passing without it: the live header rules
// (framing judged from the response, never from the declared CSP; no Via), the kernel parameters
// (keys a host cannot set are skipped per key with the reason, never passed), a check that crashes
// (a failure of the audit, never a detection), and a missing tool (fail under CI, skip elsewhere).
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { expectedOver, headerDrift, expectedHeaders, frameAncestors, missingTool } from "../../audit/outside";
import { envDrift, journalBytes, judgeSysctl, parseSysctlReadings, projectedUse, sysctlReadScript, type SysctlReading } from "../../audit/inside";
import { formatReport, runAudit } from "../../audit/run";
import type { AuditTarget, CommandResult } from "../../audit/types";
import { sitePolicy } from "../../components/render/caddy";
import { sysctlEntries } from "../../components/render/host";
import { prodConfig } from "../fixtures";
import { run, tmpDir } from "../tools";

const c = prodConfig();
const host = c.sites[0].host;

/** The response the rendered Caddyfile gives (templates/caddy/Caddyfile.hbs), lower-cased names. */
function goodHeaders(): Record<string, string> {
    return {
        "strict-transport-security": `max-age=${c.gateway.hstsMaxAge}; includeSubDomains; preload`,
        "content-security-policy": sitePolicy(c, c.sites[0]),
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "referrer-policy": c.gateway.referrerPolicy,
        "permissions-policy": c.gateway.permissionsPolicy ?? "camera=()",
        "content-type": "text/plain",
    };
}
const driftNames = (live: Record<string, string>) => headerDrift(c, host, live).map((d) => d.what.split(" ")[1]).sort();

describe("out-headers: the rules judge the live response", () => {
    it("the declared site CSP has frame-ancestors (else the framing tests below prove nothing)", () => {
        assert.equal(frameAncestors(sitePolicy(c, c.sites[0])), "'none'");
        assert.equal(frameAncestors("default-src 'self'"), undefined);
        assert.equal(frameAncestors("default-src 'self';  FRAME-ANCESTORS   'self'  https://a.example ;"), "'self' https://a.example");
    });

    it("passes on the rendered response", () => {
        assert.deepEqual(headerDrift(c, host, goodHeaders()), []);
    });

    it("X-Frame-Options absent: passes only while the LIVE CSP carries the declared frame-ancestors", () => {
        const noXfo = goodHeaders();
        delete noXfo["x-frame-options"];
        assert.deepEqual(driftNames(noXfo), [], "a live CSP with frame-ancestors 'none' refuses framing");
        // The fault the old rule missed: neither header refuses framing, yet the declared CSP has frame-ancestors.
        const neither = { ...noXfo };
        delete neither["content-security-policy"];
        assert.deepEqual(driftNames(neither), ["content-security-policy", "x-frame-options"]);
        const xfo = headerDrift(c, host, neither).find((d) => d.what.endsWith("x-frame-options"));
        assert.equal(xfo?.actual, "(absent)");
        assert.match(xfo?.expected ?? "", /DENY\|SAMEORIGIN, or a CSP with frame-ancestors 'none'/);
        // A live CSP whose frame-ancestors is not the declared one does not count either.
        const loose = { ...noXfo, "content-security-policy": "default-src 'self'; frame-ancestors *" };
        assert.deepEqual(driftNames(loose), ["content-security-policy", "x-frame-options"]);
        // A live X-Frame-Options that allows framing counts for nothing: only the live CSP can then refuse it.
        assert.deepEqual(driftNames({ ...neither, "x-frame-options": "ALLOW-FROM https://evil.example" }), ["content-security-policy", "x-frame-options"]);
        assert.deepEqual(driftNames({ ...goodHeaders(), "x-frame-options": "ALLOW-FROM https://evil.example" }), [], "the live CSP's frame-ancestors 'none' wins in browsers");
        assert.deepEqual(driftNames({ ...noXfo, "x-frame-options": "SAMEORIGIN" }), []);
    });

    it("Via (the proxy's name) and Server must be absent", () => {
        assert.ok("via" in expectedHeaders(c, host));
        assert.deepEqual(driftNames({ ...goodHeaders(), via: "1.1 Caddy" }), ["via"]);
        assert.deepEqual(driftNames({ ...goodHeaders(), server: "Caddy" }), ["server"]);
        assert.equal(headerDrift(c, host, { ...goodHeaders(), via: "1.1 Caddy" })[0].actual, "1.1 Caddy");
    });
});

describe("in-sysctl: declared kernel parameters vs the values in effect", () => {
    const entries = sysctlEntries(c);
    const allHeld = () => new Map<string, SysctlReading>(entries.map((e) => [e.key, { exists: true, writable: true, value: e.value }]));
    const optional = entries.find((e) => e.optional)!;
    const required = entries.find((e) => !e.optional && e.key !== "net.ipv4.ip_forward")!;

    it("passes when every key holds its declared value", () => {
        const v = judgeSysctl(entries, allHeld(), undefined);
        assert.equal(v.result, "pass", v.evidence);
        assert.deepEqual(v.skipped, []);
        assert.match(v.evidence, new RegExp(`${entries.length} of ${entries.length}`));
    });

    it("a settable key with another value is drift (both values shown)", () => {
        const live = allHeld();
        live.set("net.ipv4.tcp_syncookies", { exists: true, writable: true, value: "0" });
        const v = judgeSysctl(entries, live, "docker");
        assert.equal(v.result, "fail");
        assert.deepEqual(v.drift, [{ what: "net.ipv4.tcp_syncookies", expected: "1", actual: "0" }]);
        // Multi-value keys compare with whitespace collapsed (sysctl -n prints tabs).
        const spaced = allHeld();
        spaced.set(required.key, { exists: true, writable: true, value: ` ${required.value}\t` });
        assert.equal(judgeSysctl(entries, spaced, undefined).result, "pass");
    });

    it("a read-only key in a container is skipped per key with the reason, never passed", () => {
        const live = allHeld();
        live.set("kernel.kptr_restrict", { exists: true, writable: false, value: "1" });
        const v = judgeSysctl(entries, live, "docker");
        assert.equal(v.result, "pass", "the keys that could be judged hold");
        assert.equal(v.skipped?.length, 1);
        assert.equal(v.skipped?.[0].what, "kernel.kptr_restrict");
        assert.match(v.skipped?.[0].reason ?? "", /read-only in this docker container: .* has 1 \(declared 2\)/);
        assert.match(v.evidence, new RegExp(`${entries.length - 1} of ${entries.length} .*1 not settable here`));
        // Outside a container a read-only key with another value is drift: nothing excuses it.
        assert.equal(judgeSysctl(entries, live, undefined).result, "fail");
    });

    it("an optional key the kernel lacks is skipped; a required one is drift", () => {
        const live = allHeld();
        live.set(optional.key, { exists: false });
        const v = judgeSysctl(entries, live, undefined);
        assert.equal(v.result, "pass");
        assert.deepEqual(v.skipped?.map((s) => s.what), [optional.key]);
        assert.match(v.skipped?.[0].reason ?? "", /not in this kernel/);
        live.set(required.key, { exists: false });
        const w = judgeSysctl(entries, live, undefined);
        assert.equal(w.result, "fail");
        assert.deepEqual(w.drift, [{ what: required.key, expected: required.value, actual: "(no such key in this kernel)" }]);
    });

    it("nothing settable at all is a skip, not a pass", () => {
        const live = new Map<string, SysctlReading>(entries.map((e) => [e.key, { exists: true, writable: false, value: `${e.value}9` }]));
        const v = judgeSysctl(entries, live, "docker");
        assert.equal(v.result, "skip");
        assert.equal(v.skipped?.length, entries.length);
    });

    it("the read script reports existing, absent and unreadable keys as the parser expects (real bash, sysctl, /proc/sys)", (t) => {
        if (run("sh", ["-c", "command -v sysctl"]).code !== 0) return t.skip("sysctl not installed here");
        const r = run("bash", ["-s"], { input: sysctlReadScript(["kernel.randomize_va_space", "net.ipv4.tcp_syncookies", "kernel.citadel_no_such_key"]) });
        assert.equal(r.code, 0, r.stderr);
        const m = parseSysctlReadings(r.stdout);
        const aslr = m.get("kernel.randomize_va_space");
        assert.ok(aslr?.exists, r.stdout);
        assert.equal(aslr.value, fs.readFileSync("/proc/sys/kernel/randomize_va_space", "utf8").trim());
        assert.equal(aslr.writable, (() => { try { fs.accessSync("/proc/sys/kernel/randomize_va_space", fs.constants.W_OK); return true; } catch { return false; } })());
        assert.deepEqual(m.get("kernel.citadel_no_such_key"), { exists: false });
        assert.ok(m.get("net.ipv4.tcp_syncookies")?.exists);
    });
});

/** A target whose every inside command fails and whose probe is never used. */
function brokenTarget(): AuditTarget {
    const failing: CommandResult = { code: 255, stdout: "", stderr: "ssh: connect to host 127.0.0.1 port 1: Connection refused" };
    return {
        stack: "test",
        config: c,
        address: "127.0.0.1",
        sshHost: "127.0.0.1",
        sshPort: 1,
        exposureTcp: [22, 80, 443],
        sites: [],
        probe: { describe: "nowhere", python: () => failing },
        inside: { sh: () => failing },
    };
}

describe("run.ts: a crashed check is a failure of the audit, marked apart from a finding", () => {
    it("a check that throws: result fail, crashed, counted in summary.fail and summary.crashed, shown as CRSH", async () => {
        const r = await runAudit(brokenTarget(), { only: ["in-sshd", "out-headers"] });
        const sshd = r.checks.find((x) => x.id === "in-sshd")!;
        assert.equal(sshd.result, "fail");
        assert.equal(sshd.crashed, true);
        assert.deepEqual(sshd.drift, []);
        assert.match(sshd.evidence, /^check crashed: `sudo -n sshd -T.*Connection refused/);
        assert.deepEqual(r.summary, { pass: 0, fail: 1, skip: 1, crashed: 1 });
        // out-headers with no sites is a skip with its reason, not a crash.
        assert.equal(r.checks.find((x) => x.id === "out-headers")?.crashed, undefined);
        const text = formatReport(r);
        assert.match(text, /in-sshd\s+CRSH\s/);
        assert.match(text, /1 fail \(1 crashed: CRSH = the check could not look, no verdict\)/);
    });
});

describe("a tool the audit needs is missing: fail under CI=true, skip with the reason elsewhere", () => {
    it("missingTool", () => {
        assert.deepEqual(missingTool("ssh-audit", "lab/prereqs.sh installs it", true).result, "fail");
        assert.match(missingTool("ssh-audit", "lab/prereqs.sh installs it", true).evidence, /ssh-audit not installed on this machine \(lab\/prereqs\.sh installs it\); CI=true/);
        const v = missingTool("ssh-audit", "lab/prereqs.sh installs it", false);
        assert.equal(v.result, "skip");
        assert.match(v.evidence, /ssh-audit not installed on this machine .*did not run/);
    });

    it("out-ssh-audit with no ssh-audit on PATH, under CI and not", async () => {
        // A PATH holding only sh: `command -v ssh-audit` finds nothing (/bin may be /usr/bin here).
        const dir = tmpDir("citadel-audit-path-");
        fs.symlinkSync(run("sh", ["-c", "command -v sh"]).stdout.trim(), path.join(dir, "sh"));
        const saved = { PATH: process.env.PATH, CI: process.env.CI };
        try {
            process.env.PATH = dir;
            process.env.CI = "true";
            const ci = (await runAudit(brokenTarget(), { only: ["out-ssh-audit"] })).checks[0];
            process.env.CI = "false";
            const dev = (await runAudit(brokenTarget(), { only: ["out-ssh-audit"] })).checks[0];
            assert.equal(ci.result, "fail", ci.evidence);
            assert.notEqual(ci.crashed, true);
            assert.match(ci.evidence, /ssh-audit not installed/);
            assert.equal(dev.result, "skip", dev.evidence);
            assert.match(dev.evidence, /ssh-audit not installed/);
        } finally {
            process.env.PATH = saved.PATH;
            if (saved.CI === undefined) delete process.env.CI;
            else process.env.CI = saved.CI;
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});

/** A host whose `docker ps -aq` / `docker inspect` answer with the given containers' env (the fields the checks read). */
function envTarget(envs: Record<string, string[]>): AuditTarget {
    const inspect = Object.entries(envs).map(([name, env]) => ({
        Name: `/${name}`,
        State: { Running: true, Status: "running" },
        Config: { User: "10001:10001", Env: env },
        HostConfig: { ReadonlyRootfs: true, CapDrop: ["ALL"], CapAdd: null, SecurityOpt: ["no-new-privileges"], Memory: 0, NanoCpus: 0, PidsLimit: 128, Privileged: false },
        NetworkSettings: { Networks: {} },
    }));
    const sh = (cmd: string): CommandResult =>
        cmd === "sudo -n docker ps -aq"
            ? { code: 0, stdout: Object.keys(envs).join("\n") + "\n", stderr: "" }
            : cmd.startsWith("sudo -n docker inspect ")
              ? { code: 0, stdout: JSON.stringify(inspect), stderr: "" }
              : { code: 1, stdout: "", stderr: `unexpected command: ${cmd}` };
    return { ...brokenTarget(), inside: { sh } };
}

describe("in-container-env: live env values are judged too, never shown", () => {
    const clean = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NODE_ENV=production", "DATABASE_HOST=postgres", "POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password", "DATABASE_URL=postgres://app@postgres:5432/app", "PG_SHA256=d51787df979f012d5d1c222793f64f733d85d5567952528c87c0a5c249c825f3"];

    it("a clean env passes", async () => {
        assert.deepEqual(envDrift(clean), []);
        const v = (await runAudit(envTarget({ api: clean, web: ["NODE_ENV=production"] }), { only: ["in-container-env"] })).checks[0];
        assert.equal(v.result, "pass", v.evidence);
        assert.notEqual(v.crashed, true);
    });

    it("a value-only leak under an innocuous name fails, with the reason and without the value", async () => {
        const leaky = [...clean.filter((e) => !e.startsWith("DATABASE_URL=")), "DATABASE_URL=postgres://app:hunter2@db/app"];
        assert.deepEqual(envDrift(leaky), [{ what: "env", expected: "DATABASE_URL without a credential (a secret file read from its *_FILE)", actual: "DATABASE_URL=<value hidden: a URL with a password in it (postgres://user:<password>@host)>" }]);
        const r = await runAudit(envTarget({ api: leaky, web: ["NODE_ENV=production"] }), { only: ["in-container-env"] });
        const v = r.checks[0];
        assert.equal(v.result, "fail", v.evidence);
        assert.notEqual(v.crashed, true);
        assert.deepEqual(v.drift.map((d) => d.what), ["api: env"]);
        assert.match(v.drift[0].actual, /^DATABASE_URL=<value hidden: a URL with a password/);
        for (const text of [formatReport(r), JSON.stringify(r)]) assert.ok(!text.includes("hunter2"), "the report never contains the value");
    });

    it("the name rule still holds (a secret-looking name with a value)", () => {
        assert.deepEqual(envDrift(["API_KEY=hunter2"]), [{ what: "env", expected: "API_KEY_FILE (a path to a secret file)", actual: "API_KEY=<value hidden>" }]);
    });
});

describe("in-log-retention: the budget projection", () => {
    it("extrapolates the rate seen so far over the retention period, and waits for a day of history", () => {
        assert.equal(projectedUse(100, 3_600, 90), undefined, "an hour of history is no rate");
        assert.equal(projectedUse(10 * 2 ** 20, 10 * 86_400, 90), 90 * 2 ** 20);
        assert.equal(projectedUse(2 ** 30, 180 * 86_400, 90), 2 ** 29, "older entries than the period: the rate still counts");
    });
    it("reads journalctl --disk-usage", () => {
        assert.equal(journalBytes("Archived and active journals take up 24.0M in the file system."), 24 * 2 ** 20);
        assert.equal(journalBytes("Archived and active journals take up 1.5G in the file system."), 1.5 * 2 ** 30);
        assert.equal(journalBytes("Archived and active journals take up 512B in the file system."), 512);
        assert.equal(journalBytes("No journal files were found."), undefined);
    });
});

describe("out-ports: a scan that could not see is never a pass", () => {
    const scanned = (over: Record<string, unknown>): AuditTarget => {
        const result = { address: "127.0.0.1", open: [22, 80, 443], lateOpen: [], passes: 1, unreliable: false, refused: 0, timedOut: 65532, faults: {}, seconds: 40, ...over };
        return { ...brokenTarget(), probe: { describe: "a recorded scan", python: () => ({ code: 0, stdout: JSON.stringify([result]), stderr: "" }) } };
    };
    it("over IPv6 (a target with address6, citadel:host.docker.ipv6), SSH must be closed when admin.sourceIps is IPv4 only, and open to IPv6 sources", async () => {
        const base = brokenTarget();
        const served = { ...base.config, host: { ...base.config.host, docker: { ...base.config.host.docker, ipv6: true } } };
        const notServed = { ...base, exposureTcp: [22, 80, 443], config: { ...base.config, host: { ...base.config.host, docker: { ...base.config.host.docker, ipv6: false } }, admin: { ...base.config.admin, sourceIps: ["203.0.113.0/24"] } } };
        assert.deepEqual(expectedOver(notServed, "IPv6"), [], "IPv6 not served, SSH for IPv4 sources: nothing may answer over IPv6");
        const ipv4Only = { ...base, config: { ...served, admin: { ...served.admin, sourceIps: ["203.0.113.0/24"] } } };
        assert.deepEqual(expectedOver(ipv4Only, "IPv6"), [80, 443].filter((p) => base.exposureTcp.includes(p)));
        assert.deepEqual(expectedOver(ipv4Only, "IPv4"), [...base.exposureTcp].sort((a, b) => a - b));
        const withV6 = { ...base, config: { ...served, admin: { ...served.admin, sourceIps: ["203.0.113.0/24", "2001:db8::/48"] } } };
        assert.ok(expectedOver(withV6, "IPv6").includes(22));
        // A recorded pair of scans where IPv6 answers on 22 although only IPv4 sources may: a drift.
        const v4 = { address: "192.0.2.1", open: [22, 80, 443], lateOpen: [], passes: 1, unreliable: false, refused: 0, timedOut: 65532, faults: {}, seconds: 40 };
        const v6 = { ...v4, address: "2001:db8::1" };
        const target = { ...ipv4Only, exposureTcp: [22, 80, 443], address6: "2001:db8::1", probe: { describe: "recorded scans", python: () => ({ code: 0, stdout: JSON.stringify([v4, v6]), stderr: "" }) } };
        const r = await runAudit(target, { only: ["out-ports"] });
        assert.equal(r.checks[0].result, "fail", JSON.stringify(r.checks[0]));
        assert.ok(r.checks[0].drift?.some((d) => d.what === "tcp6/22" && d.expected === "closed"), JSON.stringify(r.checks[0].drift));
        const fine = { ...target, probe: { describe: "recorded scans", python: () => ({ code: 0, stdout: JSON.stringify([v4, { ...v6, open: [80, 443] }]), stderr: "" }) } };
        assert.equal((await runAudit(fine, { only: ["out-ports"] })).checks[0].result, "pass");
        // An operator's machine with no IPv6 route: IPv6 is said to be unscanned, not judged; no route
        // to the host's main address fails.
        const noRoute = (results: unknown[]) => ({ ...target, probe: { describe: "recorded scans", python: () => ({ code: 0, stdout: JSON.stringify(results), stderr: "" }) } });
        const no6fine = (await runAudit(noRoute([v4, { address: "2001:db8::1", noRoute: "ENETUNREACH" }]), { only: ["out-ports"] })).checks[0];
        assert.equal(no6fine.result, "pass", JSON.stringify(no6fine));
        assert.match(no6fine.evidence, /IPv6 not scanned: no route from recorded scans to 2001:db8::1 \(ENETUNREACH\)/, JSON.stringify(no6fine));
        const no4 = (await runAudit(noRoute([{ address: "192.0.2.1", noRoute: "ENETUNREACH" }, { ...v6, open: [80, 443] }]), { only: ["out-ports"] })).checks[0];
        assert.equal(no4.result, "fail");
        assert.match(no4.evidence, /no route from recorded scans to /);
    });
    it("passes on a reliable scan of exactly the declared ports, even one that needed a second pass", async () => {
        for (const over of [{}, { lateOpen: [443], passes: 2 }]) {
            const r = await runAudit(scanned(over), { only: ["out-ports"] });
            assert.equal(r.checks[0].result, "pass", JSON.stringify(r.checks[0]));
        }
    });
    it("fails when even the last pass missed a declared port that then answered (load), naming it", async () => {
        const r = await runAudit(scanned({ lateOpen: [22, 80, 443], passes: 3, unreliable: true }), { only: ["out-ports"] });
        assert.equal(r.checks[0].result, "fail");
        assert.match(r.checks[0].evidence, /scan unreliable: 3 full passes .*22,80,443/);
    });
});
