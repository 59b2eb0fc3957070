// Opt-in attacks (--attack): they throttle (and could ban) the probe's address, so never by default.
import * as net from "node:net";
import type { StackConfig } from "../components/config";
import { HTTPS_PORT, SSH_PORT } from "../components/posture/facts";
import { CROWDSEC_PRIVATE_RANGES, goSeconds } from "../components/render/intrusion";
import { tcpOpen } from "./outside";
import { PERIMETER_CHECKS } from "./perimeter";
import { Attacker, AuditTarget, CheckDef, Drift, fromDrift, Probe, probeJson, seconds, skip, waitUntil } from "./types";

const py = JSON.stringify;

/** N sequential HTTPS requests on one keep-alive connection; prints the status counts as JSON. */
function burstScript(address: string, port: number, host: string, caPem: string | undefined, n: number): string {
    return `
import http.client, ssl, socket, json, collections
ctx = ssl.create_default_context(${caPem ? `cadata=${py(caPem)}` : ""})
class C(http.client.HTTPSConnection):
    def connect(self):
        s = socket.create_connection((${py(address)}, ${port}), timeout=10)
        self.sock = ctx.wrap_socket(s, server_hostname=${py(host)})
counts = collections.Counter()
c = C(${py(host)}, ${port}, timeout=10, context=ctx)
for i in range(${n}):
    try:
        c.request("GET", "/", headers={"Host": ${py(host)}, "User-Agent": "citadel-audit-burst"})
        r = c.getresponse(); r.read(); counts[str(r.status)] += 1
    except Exception as e:
        counts["error:" + type(e).__name__] += 1
        c = C(${py(host)}, ${port}, timeout=10, context=ctx)
print(json.dumps(counts))`;
}

function burst(p: Probe, address: string, port: number, host: string, caPem: string | undefined, n: number): Record<string, number> {
    return probeJson(p, burstScript(address, port, host, caPem, n), 180_000);
}

const httpBurst: CheckDef = {
    id: "atk-http-burst",
    title: "HTTP burst beyond the site's rate limit meets 429 while another source is served",
    group: "attack",
    run(t: AuditTarget) {
        const site = t.config.sites[0];
        if (!site) return skip("no sites declared");
        const limit = site.rateLimit ?? t.config.gateway.rateLimit;
        if (!t.secondSource) return skip("no second source address available for this target (local VPS only)");
        // Past the declared events per window from one address: the tail of the burst must be refused.
        const n = limit.events + Math.max(20, Math.ceil(limit.events / 2));
        const first = burst(t.probe, t.address, HTTPS_PORT, site.host, t.siteCaPem, n);
        const second = burst(t.secondSource.probe, t.secondSource.address, t.secondSource.httpsPort, site.host, t.siteCaPem, 3);
        const drift = [];
        if (!first["429"]) drift.push({ what: `${n} requests from ${t.probe.describe}`, expected: `429 after ${limit.events} per ${limit.window}`, actual: JSON.stringify(first) });
        if ((second["200"] ?? 0) !== 3) drift.push({ what: `3 requests from ${t.secondSource.probe.describe}`, expected: "all 200 (a different client is not throttled)", actual: JSON.stringify(second) });
        return fromDrift(drift, `burst of ${n}: ${JSON.stringify(first)}; second source: ${JSON.stringify(second)}`);
    },
};

/** n SSH logins as users that do not exist (no key, no password): what a brute force looks like to sshd. */
function bruteScript(address: string, port: number, n: number): string {
    return `
import subprocess, json, time
t0 = time.monotonic(); denied = 0; other = []
for i in range(${n}):
    try:
        r = subprocess.run(["ssh", "-p", "${port}", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                            "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
                            f"citadel-audit-bf{i}@" + ${py(address)}, "true"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        # A slow host (or an early ban) is a result of the attempt, not a crash of the attack.
        other.append("no answer within 20 s"); continue
    if "Permission denied" in r.stderr: denied += 1
    else: other.append(r.stderr.strip()[-120:])
print(json.dumps({"attempts": ${n}, "denied": denied, "other": other[:3], "seconds": round(time.monotonic() - t0, 1)}))`;
}

/** Polls `check` every second until it returns a value or `limitS` seconds pass (bounded); says how long it took. */
async function pollFor<T>(limitS: number, check: () => T | undefined): Promise<{ value?: T; waited: number }> {
    const t0 = Date.now();
    let value: T | undefined;
    await waitUntil(() => (value = check()) !== undefined, limitS * 1000, 1000);
    return { value, waited: seconds(t0) };
}

/** Why the declared posture would never ban `ip` (then the attack proves nothing), or undefined. */
export function exemptBecause(c: StackConfig, ip: string): string | undefined {
    const family = (a: string) => (net.isIPv6(a) ? "ipv6" : "ipv4");
    const inList = (cidrs: string[]) => {
        const list = new net.BlockList();
        for (const cidr of cidrs) {
            const [base, bits] = cidr.split("/");
            list.addSubnet(base, Number(bits ?? (family(base) === "ipv6" ? 128 : 32)), family(base));
        }
        return list.check(ip, family(ip));
    };
    if (inList(c.intrusion.ignoreIps)) return `${ip} is in citadel:intrusion.ignoreIps`;
    if (c.intrusion.engine === "crowdsec" && c.intrusion.whitelistPrivateRanges && inList(CROWDSEC_PRIVATE_RANGES))
        return `${ip} is a private address and citadel:intrusion.whitelistPrivateRanges is true (CrowdSec never bans it)`;
    return undefined;
}

/** The active ban on `ip` as the engine reports it: its remaining duration in seconds, or undefined. */
function activeBan(t: AuditTarget, ip: string): number | undefined {
    if (t.config.intrusion.engine === "fail2ban") {
        const st = t.inside.sh("sudo -n fail2ban-client status sshd").stdout;
        const banned = /Banned IP list:\s*(.*)/.exec(st)?.[1]?.split(/\s+/) ?? [];
        if (!banned.includes(ip)) return undefined;
        // fail2ban has no per-ban remaining time in its status: the jail's live bantime is what applies.
        const live = Number(t.inside.sh("sudo -n fail2ban-client get sshd bantime").stdout.trim());
        return Number.isFinite(live) ? live : -1;
    }
    const r = t.inside.sh(`sudo -n cscli decisions list -i ${ip} -o json`);
    if (r.code !== 0) return undefined;
    const alerts = (JSON.parse(r.stdout || "null") ?? []) as { decisions?: { value: string; type: string; duration: string }[] | null }[];
    const d = alerts.flatMap((a) => a.decisions ?? []).find((x) => x.value === ip && x.type === "ban");
    return d ? goSeconds(d.duration) : undefined;
}

function liftBan(t: AuditTarget, ip: string): void {
    t.inside.sh(t.config.intrusion.engine === "fail2ban" ? `sudo -n fail2ban-client set sshd unbanip ${ip}` : `sudo -n cscli decisions delete -i ${ip}`);
}

const reach = (p: Probe, address: string, port: number): boolean => tcpOpen(p, address, port).open;

const sshBruteForce: CheckDef = {
    id: "atk-ssh-bruteforce",
    title: "SSH brute force from a test address ends in a ban, enforced by the firewall, for banTime",
    group: "attack",
    async run(t: AuditTarget) {
        if (!t.attacker) return skip("no disposable attacker source for this target: from this machine the ban would lock the operator out (the local VPS has one)");
        const attacker = t.attacker();
        const ip = attacker.address;
        let attacked = false;
        let lifted: { value?: true; waited: number } | undefined;
        try {
            if (!net.isIP(ip)) throw new Error(`attacker address ${JSON.stringify(ip)} is not an IP`);
            const exempt = exemptBecause(t.config, ip);
            if (exempt) return skip(`the declared posture never bans this source: ${exempt}`);
            if (!reach(attacker.probe, t.address, SSH_PORT)) return { result: "fail", evidence: `${attacker.probe.describe} cannot reach ssh before the attack (banned already?)` };
            // Past any threshold: CrowdSec's ssh-bf (bucket of 5) and fail2ban's maxRetry (up to 20).
            const n = Math.max(12, t.config.intrusion.maxRetry + 3);
            attacked = true;
            const bf = probeJson<{ denied?: number; seconds?: number; other?: string[] }>(attacker.probe, bruteScript(t.address, SSH_PORT, n), 300_000);
            const ban = await pollFor(60, () => activeBan(t, ip));
            const drift: Drift[] = [];
            if (ban.value === undefined) {
                drift.push({ what: `${t.config.intrusion.engine} decision for ${ip} after ${n} failed logins (${bf.denied ?? 0} denied)`, expected: "ban", actual: `none within ${ban.waited} s` });
                return fromDrift(drift, "", `attempts: ${JSON.stringify(bf)}`);
            }
            if (Math.abs(ban.value - t.config.intrusion.banTime) > 120) drift.push({ what: `ban duration for ${ip}`, expected: `${t.config.intrusion.banTime} s (citadel:intrusion.banTime)`, actual: `${ban.value} s` });
            // Enforced: the attacker's packets are dropped, while another source still reaches sshd.
            const blocked = await pollFor(40, () => (reach(attacker.probe, t.address, SSH_PORT) ? undefined : true));
            if (!blocked.value) drift.push({ what: `ssh from ${ip} after the ban`, expected: "dropped by the firewall bouncer", actual: `still reachable after ${blocked.waited} s` });
            const others = reach(t.probe, t.address, SSH_PORT);
            if (!others) drift.push({ what: `ssh from ${t.probe.describe}`, expected: "reachable (only the attacker is banned)", actual: "unreachable" });
            // The audit lifts the ban it caused, and shows that lifting works.
            liftBan(t, ip);
            lifted = await pollFor(40, () => (reach(attacker.probe, t.address, SSH_PORT) ? true : undefined));
            if (!lifted.value) drift.push({ what: `ssh from ${ip} after the audit lifted its ban`, expected: "reachable again", actual: `still dropped after ${lifted.waited} s` });
            return fromDrift(
                drift,
                `${n} failed logins in ${bf.seconds ?? "?"} s → ${t.config.intrusion.engine} ban on ${ip} after ${ban.waited} s for ${ban.value} s; dropped after ${blocked.waited} s; ` +
                    `${t.probe.describe} still served; ban lifted by the audit ${lifted?.value ? `(reachable again after ${lifted.waited} s)` : "(NOT reachable again within 40 s)"}`,
            );
        } finally {
            // Never leave a ban behind on an address Docker may hand to the next container (a late ban,
            // a thrown error): lifting is harmless when there is none.
            if (attacked && !lifted) liftBan(t, ip);
            attacker.remove();
        }
    },
};

/** Where atk-ssh-agent-keys puts the admin's key in the operator's disposable source. */
const OPERATOR_KEY_PATH = "/root/citadel-audit-operator-key";

/**
 * An SSH agent holding six wrong keys (made on the spot), and the right one after them when
 * `rightKey` is given: two connections as `user`, each refused once MaxAuthTries keys were rejected,
 * then (with the right key) the login an operator makes after fixing the client: IdentitiesOnly.
 */
function agentKeysScript(address: string, port: number, user: string, rightKey: string | undefined): string {
    return `
import subprocess, os, json, tempfile
d = tempfile.mkdtemp(); env = dict(os.environ)
for part in subprocess.run(["ssh-agent", "-s"], capture_output=True, text=True, check=True).stdout.replace(";", "\\n").split("\\n"):
    part = part.strip()
    if part.startswith(("SSH_AUTH_SOCK=", "SSH_AGENT_PID=")):
        k, v = part.split("=", 1); env[k] = v
for i in range(6):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"wrong{i}", "-f", f"{d}/wrong{i}"], check=True)
    subprocess.run(["ssh-add", "-q", f"{d}/wrong{i}"], env=env, check=True, capture_output=True)
right = ${py(rightKey ?? "")}
if right: subprocess.run(["ssh-add", "-q", right], env=env, check=True, capture_output=True)
base = ["ssh", "-p", "${port}", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"]
failed = []
for n in range(2):
    r = subprocess.run(base + [${py(user)} + "@" + ${py(address)}, "true"], env=env, capture_output=True, text=True, timeout=30)
    failed.append({"rc": r.returncode, "err": r.stderr.strip()[-160:]})
login = None
if right:
    r = subprocess.run(base + ["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-i", right, ${py(user)} + "@" + ${py(address)}, "true"], capture_output=True, text=True, timeout=30)
    login = {"rc": r.returncode, "err": r.stderr.strip()[-160:]}
subprocess.run(["ssh-agent", "-k"], env=env, capture_output=True)
print(json.dumps({"failed": failed, "login": login}))`;
}

const sshAgentKeys: CheckDef = {
    id: "atk-ssh-agent-keys",
    title: "an operator whose SSH agent offers six wrong keys before the right one is not banned; a stranger with the same failures is",
    group: "attack",
    async run(t: AuditTarget) {
        if (t.config.intrusion.engine !== "crowdsec") return skip("CrowdSec only: fail2ban's sshd jail has no notion of a login that cancels earlier failures");
        if (!t.attacker || !t.operatorKey) return skip("no disposable sources that may hold the admin's key for this target (the local VPS has them)");
        const started: Attacker[] = [];
        const ips: string[] = [];
        try {
            const op = t.attacker("operator");
            started.push(op);
            const stranger = t.attacker("stranger");
            started.push(stranger);
            for (const a of started) {
                const exempt = exemptBecause(t.config, a.address);
                if (exempt) return skip(`the declared posture never bans this source: ${exempt}`);
                if (!reach(a.probe, t.address, SSH_PORT)) return { result: "fail", evidence: `${a.probe.describe} cannot reach ssh before the attack (banned already?)` };
            }
            if (!op.putFile) return skip("this target's sources cannot receive a file");
            op.putFile(OPERATOR_KEY_PATH, t.operatorKey());
            ips.push(op.address, stranger.address);
            type Run = { failed: { rc: number; err: string }[]; login: { rc: number; err: string } | null };
            const user = t.config.admin.user;
            const ran = probeJson<Run>(op.probe, agentKeysScript(t.address, SSH_PORT, user, OPERATOR_KEY_PATH), 180_000);
            const other = probeJson<Run>(stranger.probe, agentKeysScript(t.address, SSH_PORT, user, undefined), 180_000);
            const drift: Drift[] = [];
            for (const [who, r] of [["operator", ran], ["stranger", other]] as const) {
                r.failed.forEach((f, i) => {
                    if (f.rc === 0 || !/Too many authentication failures/.test(f.err)) drift.push({ what: `${who}'s connection ${i + 1} (six wrong keys first)`, expected: "refused after MaxAuthTries keys", actual: f.rc === 0 ? "logged in" : f.err });
                });
            }
            if (!ran.login || ran.login.rc !== 0) drift.push({ what: "the operator's login with the right key", expected: "logged in", actual: ran.login?.err ?? "(not tried)" });
            // The stranger: its failed connections, with no login after them, end in a ban once the window passed.
            const ban = await pollFor(t.config.intrusion.loginWindowSeconds + 45, () => activeBan(t, stranger.address));
            if (ban.value === undefined) drift.push({ what: `decision for the stranger ${stranger.address}`, expected: "ban", actual: `none within ${ban.waited} s` });
            // The operator: by now its own failures' window has passed too; no ban, and sshd still answers it.
            const opBan = activeBan(t, op.address);
            if (opBan !== undefined) drift.push({ what: `decision for the operator ${op.address}`, expected: "none", actual: `ban for ${opBan} s` });
            if (!reach(op.probe, t.address, SSH_PORT)) drift.push({ what: `ssh from the operator ${op.address}`, expected: "reachable", actual: "dropped" });
            return fromDrift(
                drift,
                `two connections refused after MaxAuthTries each from both; the operator logged in with the right key and is not banned; the stranger was banned after ${ban.waited} s`,
            );
        } finally {
            for (const ip of ips) liftBan(t, ip);
            for (const a of started) a.remove();
        }
    },
};

export const ATTACK_CHECKS: CheckDef[] = [sshBruteForce, sshAgentKeys, httpBurst, ...PERIMETER_CHECKS];
