// The intrusion step, judged by the real tools: shellcheck, `crowdsec -t`, a CrowdSec replay of a
// synthetic sshd log that must end in a ban enforced by the firewall bouncer, `fail2ban-client -t`
// and `fail2ban-regex`.
//
// Isolation: the host script runs in private mount, network and PID namespaces with overlays over
// /etc, /var/lib/crowdsec and /var/log (writes land in a temp dir), so this machine's CrowdSec
// database, configuration and firewall are never touched; the PID namespace guarantees that every
// crowdsec / bouncer process started inside dies with it. The log lines are text only (TEST-NET
// addresses); no packet is sent anywhere.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import type { TestContext } from "node:test";
import YAML from "yaml";
import { parseConfigOrThrow, StackConfig } from "../../components/config";
import {
    BOUNCER_CHAINS,
    BOUNCER_IPSETS,
    bouncerBanRule,
    BOUNCER_KEY_FILE,
    BOUNCER_LOCAL,
    BOUNCER_NAME,
    CITADEL_SSH_REPLACES,
    CITADEL_CADDY_PARSER,
    CITADEL_IPV6_RANGE_POSTOVERFLOW,
    CITADEL_SSH_SCENARIOS,
    citadelIpv6RangePostoverflow,
    citadelSshScenarios,
    CROWDSEC_COLLECTIONS,
    CROWDSEC_PRIVATE_RANGES,
    crowdsecFiles,
    crowdsecHubItems,
    crowdsecHubItemsOff,
    crowdsecWhitelist,
    PRIVATE_RANGES_WHITELIST,
    CROWDSEC_WHITELIST,
    fail2banJail,
    goSeconds,
    FAIL2BAN_JAIL,
    hubLink,
    renderIntrusion,
} from "../../components/render/intrusion";
import { IPV6_SCENARIO_SUFFIX, SSH_BF_SCENARIO } from "../../components/render/monitoring";
import { prodConfig, prodWith } from "../fixtures";
import { describeSightings, watchProc } from "../proc-watch";
import { IN_CI, requireTool, run, RunResult, tmpDir, requireRoot as requireRootAs, requireTools, shellcheck } from "../tools";

const prod = prodConfig(); // engine crowdsec, ignoreIps 203.0.113.0/24
const withIntrusion = (over: Partial<StackConfig["intrusion"]>) => parseConfigOrThrow(prodWith({ intrusion: { ...prod.intrusion, ...over } }));
const fail2banConfig = withIntrusion({ engine: "fail2ban", ignoreIps: ["203.0.113.0/24", "2001:db8:1234::/48"] });
const noIgnoreConfig = withIntrusion({ ignoreIps: [] });
const privateBannable = withIntrusion({ whitelistPrivateRanges: false }); // ignoreIps 203.0.113.0/24 kept
const OFFLINE_HUB = "/usr/share/crowdsec/hub";

const ATTACKER = "192.0.2.10"; // TEST-NET-1: must be banned
const SECOND_ATTACKER = "198.51.100.7"; // TEST-NET-2: same lines as the ignored one, must be banned
const IGNORED = "203.0.113.50"; // inside intrusion.ignoreIps: must never be banned
const PRIVATE = "10.20.30.40"; // a private address: exempt by default, bannable with whitelistPrivateRanges false
const OPERATOR = "198.51.100.99"; // TEST-NET-2: an operator with too many keys in the agent: must not be banned
const RESETTER = "198.51.100.98"; // TEST-NET-2: a stranger who resets each connection before MaxAuthTries: must be banned
// IPv6 documentation prefix (2001:db8::/32): an attacker walking its /64, one failure per address, and an operator in another /64.
const ATTACKER6_NET = "2001:db8:a:b::/64";
/** A hub HTTP scenario that one request triggers (a path traversal of CVE-2021-41773). */
const HTTP_CVE_SCENARIO = "crowdsecurity/http-cve-2021-41773";
/** The /64 of an IPv6 address as CrowdSec's IpToRange prints it ("2001:db8:f:1::/64"); an IPv4 address unchanged. */
const net64 = (ip: string) => (ip.includes(":") ? `${ip.split(":").slice(0, 4).join(":")}::/64` : ip);
/**
 * One line of Caddy's JSON access log for a CVE-2021-41773 probe, field for field as the gateway's
 * Caddy writes it (copied from the lab VPS's access log; addresses, times and the agent replaced).
 */
function caddyLine(ip: string, at: Date, userAgent: string | string[] | null = "curl/7.88.1"): string {
    return JSON.stringify({
        level: "info",
        ts: at.getTime() / 1000,
        logger: "http.log.access.log0",
        msg: "handled request",
        request: {
            remote_ip: ip,
            remote_port: "41216",
            client_ip: ip,
            proto: "HTTP/1.1",
            method: "GET",
            host: "demo.citadel.test",
            uri: "/cgi-bin/.%2e/.%2e/.%2e/.%2e/etc/passwd",
            headers: { ...(userAgent === null ? {} : { "User-Agent": [userAgent].flat() }), Connection: ["keep-alive"] },
            tls: { resumed: false, version: 772, cipher_suite: 4865, proto: "", server_name: "demo.citadel.test", ech: false },
        },
        bytes_read: 0,
        user_id: "",
        duration: 0.000686247,
        size: 19,
        status: 404,
        resp_headers: {
            Date: [at.toUTCString()],
            "Strict-Transport-Security": ["max-age=31536000; includeSubDomains; preload"],
            "X-Frame-Options": ["DENY"],
            "Content-Length": ["19"],
            "Content-Type": ["text/plain; charset=utf-8"],
            "X-Content-Type-Options": ["nosniff"],
        },
    });
}
const attacker6 = (net: string, i: number) => net.replace("::/64", `::${(i + 1).toString(16)}`);
const OPERATOR6 = "2001:db8:c:d::99";

const requireRoot = (t: TestContext): boolean => requireRootAs(t, "mount, network and PID namespaces, iptables");
function out(r: RunResult): string {
    return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}
function sha512(s: string): string {
    return createHash("sha512").update(s).digest("hex");
}

/** A syslog timestamp as sshd's journal lines rendered in syslog format (local time). */
function syslogStamp(d: Date): string {
    const hms = [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
    return `${d.toLocaleString("en-US", { month: "short" })} ${String(d.getDate()).padStart(2, " ")} ${hms}`;
}

/**
 * An operator whose agent offers six keys before the right one, as sshd (LogLevel VERBOSE,
 * MaxAuthTries 3) logs it, one second apart: `before` connections each refused after three keys, a
 * login with the right key (IdentitiesOnly), then `after` more refused connections (the same agent,
 * another session). Six refused connections in ten seconds would fill citadel/ssh-bf; the login in
 * between must cancel it.
 */
function agentWithWrongKeys(ip: string, user: string, start: Date, before: number, after: number): string[] {
    const lines: string[] = [];
    let t = start.getTime();
    let pid = 17000;
    const at = (msg: string) => lines.push(`${syslogStamp(new Date(t))} citadel sshd[${pid}]: ${msg}`);
    const refused = (port: number) => {
        for (let k = 0; k < 3; k++) at(`Failed publickey for ${user} from ${ip} port ${port} ssh2: ED25519 SHA256:wrongkey${port}${k}`);
        at(`error: maximum authentication attempts exceeded for ${user} from ${ip} port ${port} ssh2 [preauth]`);
        at(`Disconnecting authenticating user ${user} ${ip} port ${port}: Too many authentication failures [preauth]`);
    };
    for (let c = 0; c < before + 1 + after; c++, t += 1000, pid += 40) {
        if (c === before) at(`Accepted publickey for ${user} from ${ip} port ${50000 + c} ssh2: ED25519 SHA256:rightkey`);
        else refused(50000 + c);
    }
    return lines;
}

/** A stranger who offers two keys per connection and resets it before MaxAuthTries: `n` connections. */
function resetAfterTwoKeys(ip: string, user: string, start: Date, n: number): string[] {
    const lines: string[] = [];
    for (let c = 0; c < n; c++) {
        const stamp = syslogStamp(new Date(start.getTime() + c * 1000));
        for (let k = 0; k < 2; k++) lines.push(`${stamp} citadel sshd[${18000 + c}]: Failed publickey for ${user} from ${ip} port ${51000 + c} ssh2: ED25519 SHA256:k${c}${k}`);
        lines.push(`${stamp} citadel sshd[${18000 + c}]: Connection reset by authenticating user ${user} ${ip} port ${51000 + c} [preauth]`);
    }
    return lines;
}

/** Syslog lines as sshd writes them: `count` failed passwords per address, one second apart, ending now. */
function sshdFailures(ips: string[], count: number, user = (ip: string) => (ip === ATTACKER ? "root" : "invalid user admin")): string {
    const lines: string[] = [];
    const start = Date.now() - (count + 5) * 1000;
    for (let i = 0; i < count; i++) {
        const d = new Date(start + i * 1000);
        // Local time, like sshd's journal lines rendered in syslog format.
        const hms = [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
        const stamp = `${d.toLocaleString("en-US", { month: "short" })} ${String(d.getDate()).padStart(2, " ")} ${hms}`;
        ips.forEach((ip, k) => lines.push(`${stamp} citadel sshd[${1000 + k * 100 + i}]: Failed password for ${user(ip)} from ${ip} port ${40000 + i} ssh2`));
    }
    return lines.join("\n") + "\n";
}

describe("rendering", () => {
    it("switches on the engine: crowdsec by default, fail2ban as the alternative, each stopping the other", () => {
        const cs = renderIntrusion(prod);
        const f2b = renderIntrusion(fail2banConfig);
        assert.equal(cs.name, "intrusion");
        assert.equal(f2b.name, "intrusion");
        assert.match(cs.script, /disable --now fail2ban\.service/);
        assert.match(f2b.script, /for unit in crowdsec-firewall-bouncer\.service crowdsec\.service/);
        assert.deepEqual(
            f2b.files.map((f) => f.path),
            [FAIL2BAN_JAIL],
        );
        assert.ok(cs.files.some((f) => f.path === BOUNCER_LOCAL && f.mode === "0600"));
    });

    it("never carries a bouncer key: the script reads it from the root-only file at run time", () => {
        const s = renderIntrusion(prod).script;
        assert.ok(s.includes(BOUNCER_KEY_FILE));
        assert.match(s, /^key=\$\(<"\$KEY_FILE"\)$/m);
        assert.doesNotMatch(s, /api_key: "(?!__CITADEL_BOUNCER_KEY__)/);
    });

    it("whitelists intrusion.ignoreIps only when there are some", () => {
        assert.ok(crowdsecFiles(prod).some((f) => f.path === CROWDSEC_WHITELIST));
        assert.ok(!crowdsecFiles(noIgnoreConfig).some((f) => f.path === CROWDSEC_WHITELIST));
        const jail = fail2banJail(fail2banConfig);
        assert.match(jail, /^ignoreip = 127\.0\.0\.1\/8 ::1 203\.0\.113\.0\/24 2001:db8:1234::\/48$/m);
        assert.match(jail, /^maxretry = 3$/m);
        assert.match(jail, /^bantime = 3600$/m);
    });

    it("whitelistPrivateRanges: on keeps the hub's private-range whitelist; off unlinks it and whitelists loopback itself", () => {
        const has = (c: StackConfig) => crowdsecHubItems(c).some((i) => i.id === PRIVATE_RANGES_WHITELIST.id);
        assert.equal(prod.intrusion.whitelistPrivateRanges, true, "the default must be upstream's behaviour");
        assert.ok(has(prod));
        assert.ok(!has(privateBannable));
        assert.deepEqual(crowdsecHubItemsOff(prod), CITADEL_SSH_REPLACES);
        const link = hubLink(PRIVATE_RANGES_WHITELIST).link;
        assert.equal(link, "/etc/crowdsec/parsers/s02-enrich/whitelists.yaml");
        const replaced = CITADEL_SSH_REPLACES.map((i) => ` ${hubLink(i).link}`).join("");
        assert.equal(replaced, " /etc/crowdsec/scenarios/ssh-bf.yaml /etc/crowdsec/scenarios/ssh-slow-bf.yaml");
        assert.ok(renderIntrusion(privateBannable).script.includes(`HUB_UNLINKS=(${replaced} ${link})`));
        assert.ok(renderIntrusion(prod).script.includes(`HUB_UNLINKS=(${replaced})`));
        const own = YAML.parse(crowdsecWhitelist(privateBannable) ?? "null") as { whitelist: { ip?: string[]; cidr?: string[] } };
        assert.deepEqual(own.whitelist, { reason: "citadel:intrusion.ignoreIps", ip: ["127.0.0.1", "::1"], cidr: ["203.0.113.0/24"] });
        assert.deepEqual((YAML.parse(crowdsecWhitelist(prod) ?? "null") as { whitelist: object }).whitelist, { reason: "citadel:intrusion.ignoreIps", cidr: ["203.0.113.0/24"] });
        assert.match(renderIntrusion(privateBannable).description, /private ranges bannable/);
    });

    it("CROWDSEC_PRIVATE_RANGES is exactly what the hub's whitelists parser exempts", (t) => {
        const file = path.join(OFFLINE_HUB, "parsers", "s02-enrich", "crowdsecurity", "whitelists.yaml");
        if (!fs.existsSync(file)) {
            if (IN_CI) throw new Error(`${file} missing (crowdsec not installed)`);
            t.skip("crowdsec's offline hub is not installed");
            return;
        }
        const w = (YAML.parse(fs.readFileSync(file, "utf8")) as { whitelist: { ip: string[]; cidr: string[] } }).whitelist;
        const fromHub = [...w.ip.map((ip) => `${ip}/${ip.includes(":") ? 128 : 32}`), ...w.cidr];
        assert.deepEqual([...fromHub].sort(), [...CROWDSEC_PRIVATE_RANGES].sort());
    });

    it("enables every item the chosen collections need, all present in Debian's offline hub", (t) => {
        if (!fs.existsSync(OFFLINE_HUB)) {
            if (IN_CI) throw new Error(`${OFFLINE_HUB} missing (crowdsec not installed)`);
            t.skip("crowdsec's offline hub is not installed");
            return;
        }
        // Walk the collections' own YAML (as cscli would), collecting kind/vendor/name.
        const needed = new Set<string>();
        const queue = [...CROWDSEC_COLLECTIONS];
        for (let i = 0; i < queue.length && i < 500; i++) {
            const id = queue[i];
            if (needed.has(`collections/${id}`)) continue;
            needed.add(`collections/${id}`);
            const doc = YAML.parse(fs.readFileSync(path.join(OFFLINE_HUB, "collections", `${id}.yaml`), "utf8")) as Record<string, string[] | undefined>;
            for (const kind of ["parsers", "scenarios", "postoverflows"]) for (const dep of doc[kind] ?? []) needed.add(`${kind}/${dep}`);
            queue.push(...(doc.collections ?? []));
        }
        const enabled = new Set(crowdsecHubItems().map((i) => `${i.kind}/${i.id}`));
        const missing = [...needed].filter((n) => !enabled.has(n));
        // Exactly the hub's SSH scenarios Citadel replaces with its own are left out, and they exist in
        // the hub (their links are removed from hosts that had them).
        assert.deepEqual(missing.sort(), CITADEL_SSH_REPLACES.map((i) => `${i.kind}/${i.id}`).sort(), "items the collections list but Citadel does not enable");
        for (const item of CITADEL_SSH_REPLACES) assert.ok(fs.existsSync(hubLink(item).target.replace("/var/lib/crowdsec/hub", OFFLINE_HUB)), `${item.id} is not in the offline hub`);
        for (const item of crowdsecHubItems()) {
            const { target } = hubLink(item);
            const offline = target.replace("/var/lib/crowdsec/hub", OFFLINE_HUB);
            assert.ok(fs.existsSync(offline), `${offline} is not in the offline hub`);
        }
    });
});

describe("shellcheck", () => {
    for (const [name, c] of [
        ["crowdsec (with ignoreIps)", prod],
        ["crowdsec (no ignoreIps)", noIgnoreConfig],
        ["crowdsec (private ranges bannable)", privateBannable],
        ["fail2ban", fail2banConfig],
    ] as const) {
        it(`the ${name} script is clean`, (t) => {
            const sc = requireTool(t, "shellcheck");
            if (!sc) return;
            const r = shellcheck(sc, renderIntrusion(c).script);
            assert.equal(r.code, 0, out(r));
        });
    }
});

describe("crowdsec -t on the rendered configuration", () => {
    /** A copy of /etc/crowdsec with the rendered files and hub links, config.yaml pointing at it. */
    function stagedConfig(dir: string, c: StackConfig, tweak?: (rel: string, text: string) => string): string {
        const etc = path.join(dir, "etc");
        fs.cpSync("/etc/crowdsec", etc, { recursive: true, verbatimSymlinks: true });
        const rel = (p: string) => path.join(etc, p.replace(/^\/etc\/crowdsec\//, ""));
        for (const f of crowdsecFiles(c)) {
            fs.mkdirSync(path.dirname(rel(f.path)), { recursive: true });
            fs.writeFileSync(rel(f.path), tweak ? tweak(f.path, f.content) : f.content);
        }
        for (const item of crowdsecHubItems(c)) {
            const { link, target } = hubLink(item);
            fs.mkdirSync(path.dirname(rel(link)), { recursive: true });
            fs.rmSync(rel(link), { force: true });
            fs.symlinkSync(target, rel(link));
        }
        for (const item of crowdsecHubItemsOff(c)) fs.rmSync(rel(hubLink(item).link), { force: true });
        // Everything that named /etc/crowdsec now names the copy; logs go to the temp dir too.
        const config = fs
            .readFileSync("/etc/crowdsec/config.yaml", "utf8")
            .replaceAll("/etc/crowdsec/", `${etc}/`)
            .replace(/^(\s*log_dir:).*$/m, `$1 ${dir}/`);
        fs.writeFileSync(path.join(etc, "config.yaml"), config);
        return path.join(etc, "config.yaml");
    }

    it("accepts the rendered acquisition, profiles, whitelist and config.yaml.local (private ranges exempt or bannable)", (t) => {
        if (!requireTools(t, "crowdsec")) return;
        for (const c of [prod, privateBannable]) {
            const dir = tmpDir("citadel-crowdsec-");
            try {
                const r = run("crowdsec", ["-c", stagedConfig(dir, c), "-t"], { timeout: 60_000 });
                assert.equal(r.code, 0, out(r));
            } finally {
                fs.rmSync(dir, { recursive: true, force: true });
            }
        }
    });

    it("rejects a broken profile and a broken whitelist (the test can fail)", (t) => {
        if (!requireTools(t, "crowdsec")) return;
        for (const [what, tweak] of [
            ["ban duration", (p: string, s: string) => (p.endsWith("profiles.yaml") ? s.replace("duration: 3600s", "duration: 1hour") : s)],
            ["whitelist CIDR", (p: string, s: string) => (p === CROWDSEC_WHITELIST ? s.replace("203.0.113.0/24", "203.0.113.300/24") : s)],
        ] as const) {
            const dir = tmpDir("citadel-crowdsec-");
            try {
                const r = run("crowdsec", ["-c", stagedConfig(dir, prod, tweak), "-t"], { timeout: 60_000 });
                assert.notEqual(r.code, 0, `crowdsec -t accepted a broken ${what}`);
            } finally {
                fs.rmSync(dir, { recursive: true, force: true });
            }
        }
    });
});

// ---------------------------------------------------------------------------------------------
// The real script, in namespaces
// ---------------------------------------------------------------------------------------------

// Overlays over the directories the step writes, loopback up, then exec the command. In a new PID
// namespace this shell is PID 1: when it ends, the kernel kills whatever it started.
const SANDBOX_SETUP = [
    "set -e",
    'ov=$1; shift',
    'for d in etc:/etc lib:/var/lib/crowdsec log:/var/log; do n=${d%%:*}; target=${d#*:}; mkdir -p "$ov/$n/up" "$ov/$n/work"; mount -t overlay overlay -o "lowerdir=$target,upperdir=$ov/$n/up,workdir=$ov/$n/work" "$target"; done',
    "ip link set lo up",
    '"$@"',
].join("\n");

function sandbox(ov: string, cmd: string[], timeout = 90_000, input?: string): RunResult {
    return run(
        "unshare",
        ["-m", "-n", "-p", "-f", "--kill-child", "--mount-proc", "--propagation", "private", "--", "/bin/bash", "-c", SANDBOX_SETUP, "sandbox", ov, ...cmd],
        { timeout, env: { ...process.env, SSH_CONNECTION: "" }, input },
    );
}

/** sandbox() without blocking this process, so a /proc watcher (a child) keeps sweeping meanwhile. */
function sandboxAsync(ov: string, cmd: string[], timeout = 90_000): Promise<RunResult> {
    return new Promise((resolve) => {
        const p = spawn("unshare", ["-m", "-n", "-p", "-f", "--kill-child", "--mount-proc", "--propagation", "private", "--", "/bin/bash", "-c", SANDBOX_SETUP, "sandbox", ov, ...cmd], {
            env: { ...process.env, SSH_CONNECTION: "" },
            stdio: ["ignore", "pipe", "pipe"],
            timeout,
        });
        let stdout = "";
        let stderr = "";
        p.stdout.on("data", (d) => (stdout += d));
        p.stderr.on("data", (d) => (stderr += d));
        p.on("error", (e) => resolve({ code: null, stdout, stderr: stderr + String(e) }));
        p.on("close", (code) => resolve({ code, stdout, stderr }));
    });
}

// Replays a log with crowdsec (local API on 127.0.0.1:8080 inside the namespace), waits for the ssh-bf
// alert on $ATTACKER, dumps alerts and active decisions, then starts the firewall bouncer with the
// installed config and key and waits until the ban is in its ipset. Bounded waits; PID 1 of the
// namespace takes every process down when this script ends.
const REPLAY = String.raw`
set -u
log=$1 attacker=$2 set4=$3 type=syslog scenario=citadel/ssh-bf
if [ $# -ge 5 ]; then type=$4 scenario=$5; fi
crowdsec -c /etc/crowdsec/config.yaml -dsn "file://$log" -type "$type" >"$TMPD/replay.log" 2>&1 &
for _ in $(seq 1 60); do
    out=$(cscli alerts list -o json 2>/dev/null) && grep -q "\"scenario\": \"$scenario\"" <<<"$out" && grep -q ""$attacker"" <<<"$out" && break
    sleep 0.5
done
printf '
=== alerts
'
cscli alerts list -o json 2>/dev/null
printf '
=== decisions
'
cscli decisions list -o json 2>/dev/null
iptables -N DOCKER-USER && ip6tables -N DOCKER-USER
crowdsec-firewall-bouncer -c /etc/crowdsec/bouncers/crowdsec-firewall-bouncer.yaml >"$TMPD/bouncer.log" 2>&1 &
for _ in $(seq 1 40); do
    ipset list "$set4" 2>/dev/null | grep -q "^$attacker " && break
    sleep 0.5
done
printf '
=== ipset
'
ipset list "$set4"
printf '
=== ipset6
'
ipset list "$set4" >/dev/null 2>&1 && ipset list crowdsec6-blacklists 2>&1
printf '
=== iptables
'
iptables -S
`;

/** The sections of REPLAY's output by name. */
function sections(stdout: string): Record<string, string> {
    const parts = stdout.split(/^=== (\w+)$/m);
    const outMap: Record<string, string> = {};
    for (let i = 1; i + 1 < parts.length; i += 2) outMap[parts[i]] = parts[i + 1].trim();
    return outMap;
}

interface Alert {
    scenario: string;
    source: { value: string; ip?: string; scope?: string };
    decisions?: Decision[] | null;
}

interface Decision {
    value: string;
    scope?: string;
    type: string;
    scenario: string;
    duration: string;
}

function decisionsFrom(json: string): Decision[] {
    const alerts = (JSON.parse(json) ?? []) as { decisions?: Decision[] }[];
    return alerts.flatMap((a) => a.decisions ?? []);
}

describe("the crowdsec script in namespaces", { concurrency: false }, () => {
    let ov = "";
    let dir = "";
    const key1 = "Kq3vN8sZ1xY7wT4rP0mL6jH2gF9dS5aBcitadelTest1";
    const key2 = "Zr5tQ1wE8yU3iO7pA2sD6fG0hJ4kL9xCcitadelTest2";

    before(() => {
        dir = tmpDir("citadel-intrusion-");
        ov = path.join(dir, "ov");
        fs.mkdirSync(ov);
        fs.writeFileSync(path.join(dir, "crowdsec.sh"), renderIntrusion(prod).script);
    });
    after(() => {
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    function ready(t: TestContext): boolean {
        return requireRoot(t) && requireTools(t, "unshare", "crowdsec", "cscli", "crowdsec-firewall-bouncer", "ipset", "iptables", "ip");
    }
    function putKey(key: string, mode = "0400"): void {
        // The key on stdin: never in a command line, where the watcher below would (rightly) see it.
        const cmd = `install -d -m 0700 /etc/citadel/secrets/host && IFS= read -r k && printf '%s' "$k" > ${BOUNCER_KEY_FILE} && chmod ${mode} ${BOUNCER_KEY_FILE}`;
        const r = sandbox(ov, ["/bin/bash", "-c", cmd], 90_000, `${key}\n`);
        assert.equal(r.code, 0, out(r));
    }
    const runScript = () => sandbox(ov, ["/bin/bash", path.join(dir, "crowdsec.sh")]);
    /** The script run while /proc is watched: the key must show up in no command line or environment. */
    async function runScriptWatched(key: string): Promise<RunResult> {
        const w = watchProc();
        await w.ready;
        const r = await sandboxAsync(ov, ["/bin/bash", path.join(dir, "crowdsec.sh")]);
        const seen = await w.stop({ bouncerKey: key });
        assert.deepEqual(seen.sightings, [], `the bouncer key was visible in /proc: ${describeSightings(seen)}`);
        return r;
    }
    const upper = (p: string) => path.join(ov, "etc", "up", p.replace(/^\/etc\//, ""));
    function bouncerHashes(): Record<string, string> {
        const r = sandbox(ov, ["cscli", "bouncers", "list", "-o", "json"]);
        assert.equal(r.code, 0, out(r));
        return Object.fromEntries(((JSON.parse(r.stdout) ?? []) as { name: string; api_key: string }[]).map((b) => [b.name, b.api_key]));
    }

    it("refuses a bouncer key file that others can read, before changing anything", (t) => {
        if (!ready(t)) return;
        putKey(key1, "0644");
        const r = runScript();
        assert.notEqual(r.code, 0, out(r));
        assert.match(r.stderr, /citadel: intrusion: .*crowdsecBouncerKey must be owned by root and readable by root only/);
        assert.equal(fs.existsSync(upper("/etc/crowdsec/acquis.yaml")), false, "nothing may change before the key check");
    });

    it("first run: installs the config, registers the bouncer with the key from the file (0600 .local), the key in no argv", async (t) => {
        if (!ready(t)) return;
        putKey(key1);
        const r = await runScriptWatched(key1);
        assert.equal(r.code, 0, out(r));
        assert.match(r.stdout, /^citadel: intrusion: bouncer citadel-firewall registered$/m);
        assert.match(r.stdout, /^citadel: intrusion: changed$/m);
        const local = upper(BOUNCER_LOCAL);
        const st = fs.statSync(local);
        assert.equal(st.mode & 0o777, 0o600);
        assert.equal(st.uid, 0);
        const doc = YAML.parse(fs.readFileSync(local, "utf8")) as { api_key: string; mode: string; iptables_chains: string[]; blacklists_ipv4: string; blacklists_ipv6: string };
        assert.equal(doc.api_key, key1);
        assert.equal(doc.mode, "iptables");
        assert.deepEqual(doc.iptables_chains, [...BOUNCER_CHAINS]);
        // The set names UFW's after.init hook (render/firewall.ts) looks for are declared, not defaulted.
        assert.deepEqual([doc.blacklists_ipv4, doc.blacklists_ipv6], [BOUNCER_IPSETS[4], BOUNCER_IPSETS[6]]);
        const hashes = bouncerHashes();
        assert.equal(hashes[BOUNCER_NAME], sha512(key1), "the local API must hold the key from the file");
        assert.deepEqual(Object.keys(hashes), [BOUNCER_NAME], "the package's own bouncer registration must be gone");
        for (const f of crowdsecFiles(prod)) assert.equal(fs.readFileSync(upper(f.path), "utf8"), f.content, f.path);
        assert.equal(fs.readlinkSync(upper("/etc/crowdsec/collections/caddy.yaml")), "/var/lib/crowdsec/hub/collections/crowdsecurity/caddy.yaml");
    });

    it("second run reports unchanged", (t) => {
        if (!ready(t)) return;
        const r = runScript();
        assert.equal(r.code, 0, out(r));
        assert.match(r.stdout, /^citadel: intrusion: unchanged$/m, out(r));
    });

    it("a rotated key file re-registers the bouncer and rewrites its config, the key in no argv", async (t) => {
        if (!ready(t)) return;
        putKey(key2);
        const r = await runScriptWatched(key2);
        assert.equal(r.code, 0, out(r));
        assert.match(r.stdout, /bouncer citadel-firewall re-registered \(its key changed\)/);
        assert.equal((YAML.parse(fs.readFileSync(upper(BOUNCER_LOCAL), "utf8")) as { api_key: string }).api_key, key2);
        assert.equal(bouncerHashes()[BOUNCER_NAME], sha512(key2));
        assert.doesNotMatch(r.stdout + r.stderr, new RegExp(key2), "the key must never be printed");
    });

    it("replay: ssh-bf bans the attackers for banTime, never an ignoreIps address; the bouncer enforces it in INPUT and DOCKER-USER", (t) => {
        if (!ready(t)) return;
        const log = path.join(dir, "auth.log");
        fs.writeFileSync(log, sshdFailures([ATTACKER, SECOND_ATTACKER, IGNORED, PRIVATE], 12));
        const r = sandbox(ov, ["/usr/bin/env", `TMPD=${dir}`, "/bin/bash", "-c", REPLAY, "replay", log, ATTACKER, BOUNCER_IPSETS[4]], 90_000);
        assert.equal(r.code, 0, out(r));
        const sec = sections(r.stdout);
        const logs = ["replay.log", "bouncer.log"].map((f) => (fs.existsSync(path.join(dir, f)) ? `--- ${f}\n${fs.readFileSync(path.join(dir, f), "utf8").slice(-3000)}` : "")).join("\n");
        const alerts = (JSON.parse(sec.alerts || "null") ?? []) as Alert[];
        const sshBf = alerts.filter((a) => a.scenario === SSH_BF_SCENARIO);
        assert.ok(
            sshBf.some((a) => a.source.value === ATTACKER && (a.decisions ?? []).some((d) => d.type === "ban" && d.value === ATTACKER)),
            `no ssh-bf alert with a ban for ${ATTACKER}:\n${sec.alerts}\n${logs}`,
        );
        assert.ok(
            sshBf.some((a) => a.source.value === SECOND_ATTACKER),
            `the same lines from ${SECOND_ATTACKER} must trigger ssh-bf (so the ignored address is spared by the whitelist, not by a parse failure)`,
        );
        assert.deepEqual(
            alerts.filter((a) => a.source.value === IGNORED),
            [],
            `${IGNORED} is in intrusion.ignoreIps: no alert, no ban`,
        );
        assert.deepEqual(
            alerts.filter((a) => a.source.value === PRIVATE),
            [],
            `${PRIVATE} is private and whitelistPrivateRanges defaults to true: no alert, no ban`,
        );
        // Active bans (cscli keeps one decision per address): banTime long, for both attackers only.
        const active = decisionsFrom(sec.decisions || "null").filter((d) => d.type === "ban");
        assert.deepEqual([...new Set(active.map((d) => d.value))].sort(), [ATTACKER, SECOND_ATTACKER].sort());
        for (const d of active) {
            const s = goSeconds(d.duration);
            assert.ok(s > prod.intrusion.banTime - 120 && s <= prod.intrusion.banTime, `ban duration ${d.duration} is not banTime (${prod.intrusion.banTime} s)`);
        }
        // The bouncer authenticated with the key from the file and put the ban into its ipset.
        const rest = `${sec.ipset ?? ""}\n${sec.iptables ?? ""}`;
        assert.match(rest, new RegExp(`^${ATTACKER.replaceAll(".", "\\.")} timeout \\d+`, "m"), `${out(r)}\n${logs}`);
        // The very rule UFW's after.init hook puts back after a reload (test/render/firewall.test.ts).
        for (const chain of BOUNCER_CHAINS) assert.ok(rest.split("\n").includes(`-A ${chain} ${bouncerBanRule(4)}`), `no ban rule in ${chain}:\n${rest}`);
    });

    it("replay: an operator whose agent offers six keys before the right one is not banned (its login cancels); without cancel_on or with the hub's ssh-bf back, it is; a stranger who resets before MaxAuthTries is banned", (t) => {
        if (!ready(t)) return;
        // The operator's lines and a resetting stranger's first, then a brute force from a marker
        // address of its own per replay, whose alert marks the end of the replay.
        const replay = (marker: string, before: string) => {
            const log = path.join(dir, `auth-operator-${marker}.log`);
            const start = new Date(Date.now() - 40_000);
            const lines = [...agentWithWrongKeys(OPERATOR, "deploy", start, 4, 2), ...resetAfterTwoKeys(RESETTER, "deploy", start, 7)];
            fs.writeFileSync(log, [...lines, ""].join("\n") + sshdFailures([marker], 12));
            const r = sandbox(ov, ["/usr/bin/env", `TMPD=${dir}`, "/bin/bash", "-c", `${before}\n${REPLAY}`, "replay", log, marker, BOUNCER_IPSETS[4]], 90_000);
            assert.equal(r.code, 0, out(r));
            const alerts = (JSON.parse(sections(r.stdout).alerts || "null") ?? []) as Alert[];
            assert.ok(alerts.some((a) => a.source.value === marker && a.scenario === SSH_BF_SCENARIO), `the replay must end in ${marker}'s ban:\n${JSON.stringify(alerts)}`);
            return alerts;
        };
        const ours = replay("192.0.2.21", "true");
        // Six refused connections in ten seconds, a login after the fourth: the login cancelled the bucket.
        assert.deepEqual(ours.filter((a) => a.source.value === OPERATOR).map((a) => a.scenario), [], "the operator must not be banned");
        // Connections reset before MaxAuthTries count, one each: seven in seven seconds are a brute force.
        assert.ok(ours.some((a) => a.source.value === RESETTER && a.scenario === SSH_BF_SCENARIO), `the resetting stranger must be banned:\n${JSON.stringify(ours.map((a) => [a.source.value, a.scenario]))}`);
        // A fault: Citadel's scenarios without cancel_on. The same lines now ban the operator (so it is
        // the login that spared it, not a count below capacity).
        const f = CITADEL_SSH_SCENARIOS;
        const noCancel = replay("192.0.2.23", `cp ${f} ${dir}/citadel-ssh.yaml.bak && sed -i '/^cancel_on:/d' ${f}`);
        sandbox(ov, ["/bin/cp", `${dir}/citadel-ssh.yaml.bak`, f]);
        assert.ok(
            noCancel.some((a) => a.source.value === OPERATOR && a.scenario === SSH_BF_SCENARIO),
            `without cancel_on the operator's six refused connections must end in a ban:\n${JSON.stringify(noCancel.map((a) => [a.source.value, a.scenario]))}`,
        );
        // The fault: the hub's ssh-bf (one event per rejected key) linked back, as before Citadel replaced it.
        const hub = hubLink(CITADEL_SSH_REPLACES[0]);
        const theirs = replay("192.0.2.22", `ln -sfn ${hub.target} ${hub.link}`);
        sandbox(ov, ["/bin/rm", "-f", hub.link]);
        assert.ok(
            theirs.some((a) => a.source.value === OPERATOR && a.scenario === "crowdsecurity/ssh-bf"),
            `with the hub's ssh-bf the same operator is banned (so the test can fail):\n${JSON.stringify(theirs.map((a) => [a.source.value, a.scenario]))}`,
        );
    });

    it("replay: an IPv6 attacker walking its /64 (one failure per address) is banned as the /64; an IPv6 operator's login cancels; per-address grouping (a fault) bans nothing", (t) => {
        if (!ready(t)) return;
        // Each replay walks a /64 of its own: the alerts of an earlier replay stay in the local API.
        const replay = (marker: string, net: string, before: string, more: string[] = []) => {
            const log = path.join(dir, `auth-ipv6-${marker}.log`);
            const start = new Date(Date.now() - 40_000);
            // Twelve failed passwords in twelve seconds, each from a new address of the same /64.
            const walk = Array.from({ length: 12 }, (_, i) => `${syslogStamp(new Date(start.getTime() + i * 1000))} citadel sshd[${19000 + i}]: Failed password for root from ${attacker6(net, i)} port ${52000 + i} ssh2`);
            const lines = [...walk, ...more, ...agentWithWrongKeys(OPERATOR6, "deploy", start, 4, 2)];
            fs.writeFileSync(log, [...lines, ""].join("\n") + sshdFailures([marker], 12));
            const r = sandbox(ov, ["/usr/bin/env", `TMPD=${dir}`, "/bin/bash", "-c", `${before}\n${REPLAY}`, "replay", log, marker, BOUNCER_IPSETS[4]], 90_000);
            assert.equal(r.code, 0, out(r));
            const sec = sections(r.stdout);
            const alerts = (JSON.parse(sec.alerts || "null") ?? []) as Alert[];
            assert.ok(alerts.some((a) => a.source.value === marker && a.scenario === SSH_BF_SCENARIO), `the replay must end in ${marker}'s ban:\n${JSON.stringify(alerts)}`);
            return { alerts, sec };
        };
        const ours = replay("192.0.2.31", ATTACKER6_NET, "true");
        const v6 = ours.alerts.filter((a) => a.scenario === `${SSH_BF_SCENARIO}${IPV6_SCENARIO_SUFFIX}`);
        assert.ok(
            v6.some((a) => a.source.value === ATTACKER6_NET && (a.decisions ?? []).some((d) => d.type === "ban" && d.value === ATTACKER6_NET)),
            `no ban of ${ATTACKER6_NET}:\n${JSON.stringify(ours.alerts.map((a) => [a.scenario, a.source.value]))}`,
        );
        assert.deepEqual(
            ours.alerts.filter((a) => a.source.value.startsWith("2001:db8:c:d:")).map((a) => a.scenario),
            [],
            "the IPv6 operator's login cancels its /64's buckets",
        );
        // The bouncer holds the /64 as one entry of its IPv6 set (what DROPs the whole range).
        assert.match(ours.sec.ipset6 ?? "", /^2001:db8:a:b::\/64 timeout \d+/m, ours.sec.ipset6);
        // The fault: IPv6 sources grouped per address, as the hub (and Citadel before) did. The same walk
        // now fills no bucket: nothing of the attacker's /64 is banned.
        const f = CITADEL_SSH_SCENARIOS;
        const FAULT_NET = "2001:db8:a:c::/64";
        const perAddress = replay("192.0.2.32", FAULT_NET, `cp ${f} ${dir}/citadel-ssh.yaml.bak && sed -i 's/^groupby: IpToRange.*/groupby: evt.Meta.source_ip/' ${f}`);
        sandbox(ov, ["/bin/cp", `${dir}/citadel-ssh.yaml.bak`, f]);
        assert.deepEqual(
            perAddress.alerts.filter((a) => a.source.value.startsWith("2001:db8:a:c:")).map((a) => [a.scenario, a.source.value]),
            [],
            "grouped per address, the walk must ban nothing (so the /64 grouping is what bans it)",
        );

        // A /64 that holds an intrusion.ignoreIps address: its neighbours walking it are counted per
        // address, so no ban of the /64 covers the address that must never be banned. The control is
        // the first replay: the same walk, scenarios without that entry, banned as its /64.
        const IGNORED6 = "2001:db8:a:e::99";
        const withIgnored6 = parseConfigOrThrow(prodWith({ intrusion: { ...prod.intrusion, ignoreIps: [...prod.intrusion.ignoreIps, `${IGNORED6}/128`] } }));
        fs.writeFileSync(path.join(dir, "citadel-ssh-ignored6.yaml"), citadelSshScenarios(withIgnored6));
        const walkD = Array.from({ length: 12 }, (_, i) => `${syslogStamp(new Date(Date.now() - 40_000 + i * 1000))} citadel sshd[${19100 + i}]: Failed password for root from ${attacker6("2001:db8:a:d::/64", i)} port ${52100 + i} ssh2`);
        const nearIgnored = replay("192.0.2.33", "2001:db8:a:e::/64", `cp ${f} ${dir}/citadel-ssh.yaml.bak && cp ${dir}/citadel-ssh-ignored6.yaml ${f}`, walkD);
        sandbox(ov, ["/bin/cp", `${dir}/citadel-ssh.yaml.bak`, f]);
        assert.deepEqual(
            nearIgnored.alerts.filter((a) => a.source.value.startsWith("2001:db8:a:e:")).map((a) => [a.scenario, a.source.value]),
            [],
            `no ban may cover ${IGNORED6} (intrusion.ignoreIps)`,
        );
        // A /64 next to it (no ignored address in it) is still banned as a whole by the same file.
        assert.ok(
            nearIgnored.alerts.some((a) => a.source.value === "2001:db8:a:d::/64"),
            `the same walk in a /64 without an ignored address must still be banned as the /64:\n${JSON.stringify(nearIgnored.alerts.map((a) => [a.scenario, a.source.value]))}`,
        );
    });

    it("replay: a hub HTTP scenario against an IPv6 client bans its /64 (an IPv4 client its address); without the postoverflow (a fault) only the address; never a /64 that holds an ignoreIps address; a probe whose User-Agent the hub cannot read (none, two, a quote) is banned too, not without Citadel's Caddy parser (a fault); bans last banTime", (t) => {
        if (!ready(t)) return;
        const marker = (n: number) => `192.0.2.${50 + n}`;
        const logTail = (f: string) => (fs.existsSync(path.join(dir, f)) ? `--- ${f}\n${fs.readFileSync(path.join(dir, f), "utf8").slice(-3000)}` : "");
        // One request each that the hub's crowdsecurity/http-cve-2021-41773 (a trigger) bans, as Caddy
        // logs it; the IPv4 marker comes last and ends the replay.
        /**
         * One replay; `swap` takes a file out of the overlay (or puts another in its place) for this
         * replay only, and puts it back even when the replay fails. `userAgent` null: none sent.
         */
        const replay = (n: number, sources: string[], opts: { swap?: { file: string; with?: string }; userAgent?: string | string[] | null } = {}) => {
            const log = path.join(dir, `caddy-${n}.log`);
            const at = (i: number) => new Date(Date.now() - 30_000 + i * 1000);
            fs.writeFileSync(log, [...sources.map((ip, i) => caddyLine(ip, at(i), opts.userAgent === undefined ? "curl/7.88.1" : opts.userAgent)), caddyLine(marker(n), at(sources.length))].join("\n") + "\n");
            const bak = path.join(dir, `swapped-${n}.bak`);
            const swap = opts.swap;
            const before = !swap ? "true" : swap.with ? `cp ${swap.file} ${bak} && cp ${swap.with} ${swap.file}` : `mv ${swap.file} ${bak}`;
            let r: RunResult;
            try {
                r = sandbox(ov, ["/usr/bin/env", `TMPD=${dir}`, "/bin/bash", "-c", `${before} || exit 1\n${REPLAY}`, "replay", log, marker(n), BOUNCER_IPSETS[4], "caddy", HTTP_CVE_SCENARIO], 90_000);
            } finally {
                if (swap) {
                    const back = sandbox(ov, ["/bin/mv", bak, swap.file]);
                    assert.equal(back.code, 0, `putting ${swap.file} back: ${out(back)}`);
                }
            }
            assert.equal(r.code, 0, out(r));
            const sec = sections(r.stdout);
            const alerts = (JSON.parse(sec.alerts || "null") ?? []) as Alert[];
            assert.ok(alerts.some((a) => a.source.value === marker(n) && a.scenario === HTTP_CVE_SCENARIO), `the replay must end in ${marker(n)}'s ban:\n${JSON.stringify(alerts)}\n${logTail("replay.log")}`);
            const decisions = decisionsFrom(sec.decisions || "null").filter((d) => d.type === "ban" && d.scenario === HTTP_CVE_SCENARIO);
            for (const d of decisions) {
                const secs = goSeconds(d.duration);
                assert.ok(secs > prod.intrusion.banTime - 120 && secs <= prod.intrusion.banTime, `ban of ${d.value} for ${d.duration}, not banTime (${prod.intrusion.banTime} s)`);
            }
            const bans = (ip: string) => decisions.filter((d) => d.value === ip || d.value === net64(ip)).map((d) => [d.scope, d.value]);
            return { sec, alerts, bans };
        };
        const ours = replay(1, ["2001:db8:f:1::5"]);
        assert.deepEqual(ours.bans("2001:db8:f:1::5"), [["Range", "2001:db8:f:1::/64"]], "the IPv6 client's ban must be its /64, as one Range decision");
        // The alert keeps the client's own address (what was seen), its value and scope are the range.
        const alert6 = ours.alerts.find((a) => a.source.ip === "2001:db8:f:1::5");
        assert.deepEqual([alert6?.source.scope, alert6?.source.value], ["Range", "2001:db8:f:1::/64"], JSON.stringify(ours.alerts.map((a) => a.source)));
        assert.deepEqual(ours.bans(marker(1)), [["Ip", marker(1)]], "an IPv4 client is banned alone, as before");
        // The bouncer holds the /64 as one entry of its IPv6 set: every address of it is dropped.
        assert.match(ours.sec.ipset6 ?? "", /^2001:db8:f:1::\/64 timeout \d+/m, ours.sec.ipset6);

        // The fault: the postoverflow gone, the hub's per-address ban is back.
        const f = CITADEL_IPV6_RANGE_POSTOVERFLOW;
        const without = replay(2, ["2001:db8:f:2::5"], { swap: { file: f } });
        assert.deepEqual(without.bans("2001:db8:f:2::5"), [["Ip", "2001:db8:f:2::5"]], "without the postoverflow the ban must be the address alone (so the postoverflow is what widens it)");

        // A /64 that holds an intrusion.ignoreIps address: its neighbour is banned alone; any other /64 as a whole.
        const IGNORED6 = "2001:db8:f:3::99";
        const withIgnored6 = parseConfigOrThrow(prodWith({ intrusion: { ...prod.intrusion, ignoreIps: [...prod.intrusion.ignoreIps, `${IGNORED6}/128`] } }));
        fs.writeFileSync(path.join(dir, "postoverflow-ignored6.yaml"), citadelIpv6RangePostoverflow(withIgnored6));
        const near = replay(3, ["2001:db8:f:3::7", "2001:db8:f:4::7"], { swap: { file: f, with: path.join(dir, "postoverflow-ignored6.yaml") } });
        assert.deepEqual(near.bans("2001:db8:f:3::7"), [["Ip", "2001:db8:f:3::7"]], `no ban may cover ${IGNORED6} (intrusion.ignoreIps)`);
        assert.deepEqual(near.bans("2001:db8:f:4::7"), [["Range", "2001:db8:f:4::/64"]], "a /64 without an ignored address is still banned whole");

        // A probe whose User-Agent the hub's caddy-logs cannot read (none, two values, one with a
        // quote): it leaves the line unparsed (the node that holds its fields takes the result of its
        // last child, the User-Agent's); Citadel's parser reads it, so the same scenario bans it. The
        // marker line of each replay has an ordinary one.
        const odd: [string, string | string[] | null][] = [
            ["192.0.2.74", null],
            ["192.0.2.78", ["scanner/1", "scanner/2"]],
            ["192.0.2.79", 'Mozilla/5.0 "x"'],
        ];
        for (const [i, [ip, ua]] of odd.entries()) {
            const seen = replay(10 + i, [ip], { userAgent: ua });
            assert.deepEqual(seen.bans(ip), [["Ip", ip]], `a probe with User-Agent ${JSON.stringify(ua)} must be banned`);
            // The fault: Citadel's parser gone, the same line from another address bans nothing.
            const other = `198.51.100.${70 + i}`;
            const hubOnly = replay(20 + i, [other], { swap: { file: CITADEL_CADDY_PARSER }, userAgent: ua });
            assert.deepEqual(hubOnly.bans(other), [], `without Citadel's Caddy parser a probe with User-Agent ${JSON.stringify(ua)} must go unseen (so the parser is what bans it)`);
        }
        const noUa6 = replay(5, ["2001:db8:f:5::5"], { userAgent: null });
        assert.deepEqual(noUa6.bans("2001:db8:f:5::5"), [["Range", "2001:db8:f:5::/64"]], "without a User-Agent over IPv6 too, as its /64");
        // The first value is the user agent the hub's scenarios read: a bad one first of two is still seen.
        // (A leaky bucket of capacity 1: two such requests.)
        const bad = replay(6, ["192.0.2.80", "192.0.2.80"], { userAgent: ["Sqlmap/1.7", "curl/7.88.1"] });
        assert.ok(
            bad.alerts.some((a) => a.source.value === "192.0.2.80" && a.scenario === "crowdsecurity/http-bad-user-agent"),
            `Sqlmap as the first of two User-Agents must be seen by http-bad-user-agent:\n${JSON.stringify(bad.alerts.map((a) => [a.scenario, a.source.value]))}`,
        );
    });

    it("whitelistPrivateRanges false: the script unlinks the hub whitelist, and the same private lines now end in a ban", (t) => {
        if (!ready(t)) return;
        const script = path.join(dir, "crowdsec-private.sh");
        fs.writeFileSync(script, renderIntrusion(privateBannable).script);
        const r1 = sandbox(ov, ["/bin/bash", script]);
        assert.equal(r1.code, 0, out(r1));
        assert.match(r1.stdout, /disabled parsers\/s02-enrich\/whitelists\.yaml/, out(r1));
        const gone = sandbox(ov, ["/bin/bash", "-c", "test ! -e /etc/crowdsec/parsers/s02-enrich/whitelists.yaml && test ! -L /etc/crowdsec/parsers/s02-enrich/whitelists.yaml"]);
        assert.equal(gone.code, 0, "the hub whitelist link must be gone");
        const again = sandbox(ov, ["/bin/bash", script]);
        assert.match(again.stdout, /^citadel: intrusion: unchanged$/m, out(again));
        const log = path.join(dir, "auth-private.log");
        fs.writeFileSync(log, sshdFailures([PRIVATE, IGNORED], 12));
        const r = sandbox(ov, ["/usr/bin/env", `TMPD=${dir}`, "/bin/bash", "-c", REPLAY, "replay", log, PRIVATE, BOUNCER_IPSETS[4]], 90_000);
        assert.equal(r.code, 0, out(r));
        const sec = sections(r.stdout);
        const alerts = (JSON.parse(sec.alerts || "null") ?? []) as Alert[];
        assert.ok(
            alerts.some((a) => a.scenario === SSH_BF_SCENARIO && a.source.value === PRIVATE && (a.decisions ?? []).some((d) => d.type === "ban")),
            `no ssh-bf ban for the private ${PRIVATE}:\n${sec.alerts}`,
        );
        assert.deepEqual(alerts.filter((a) => a.source.value === IGNORED), [], "ignoreIps must stay exempt");
        assert.match(sec.ipset ?? "", new RegExp(`^${PRIVATE.replaceAll(".", "\\.")} timeout \\d+`, "m"), out(r));
    });
});

// ---------------------------------------------------------------------------------------------
// fail2ban
// ---------------------------------------------------------------------------------------------

describe("fail2ban", () => {
    function stagedFail2ban(jail: string): string {
        const dir = tmpDir("citadel-f2b-");
        fs.cpSync("/etc/fail2ban", path.join(dir, "etc"), { recursive: true, verbatimSymlinks: true });
        fs.writeFileSync(path.join(dir, "etc", "jail.d", path.basename(FAIL2BAN_JAIL)), jail);
        return dir;
    }

    it("fail2ban-client -t accepts the rendered jail and rejects broken ones", (t) => {
        if (!requireTools(t, "fail2ban-client")) return;
        const jail = fail2banJail(fail2banConfig);
        const cases: [string, string, boolean][] = [
            ["rendered", jail, true],
            ["unknown filter", jail.replace("[sshd]\n", "[sshd]\nfilter = citadel-no-such-filter\n"), false],
            ["unknown ban action", jail.replace("banaction = iptables-multiport", "banaction = citadel-no-such-action"), false],
            ["broken section header", jail.replace("[sshd]", "[sshd"), false],
        ];
        for (const [what, text, ok] of cases) {
            const dir = stagedFail2ban(text);
            try {
                const r = run("fail2ban-client", ["-c", path.join(dir, "etc"), "-t"], { timeout: 60_000 });
                if (ok) assert.equal(r.code, 0, `${what}: ${out(r)}`);
                else assert.notEqual(r.code, 0, `fail2ban-client -t accepted the ${what} jail`);
            } finally {
                fs.rmSync(dir, { recursive: true, force: true });
            }
        }
    });

    it("the jail's settings are what fail2ban will run (fail2ban-client -d)", (t) => {
        if (!requireTools(t, "fail2ban-client")) return;
        const dir = stagedFail2ban(fail2banJail(fail2banConfig));
        try {
            const r = run("fail2ban-client", ["-c", path.join(dir, "etc"), "-d"], { timeout: 60_000 });
            assert.equal(r.code, 0, out(r));
            assert.match(r.stdout, /\['add', 'sshd', 'systemd'\]/);
            assert.match(r.stdout, /\['set', 'sshd', 'maxretry', 3\]/);
            assert.match(r.stdout, /\['set', 'sshd', 'bantime', '3600'\]/);
            assert.match(r.stdout, /\['set', 'sshd', 'findtime', '600'\]/);
            assert.match(r.stdout, /\['set', 'sshd', 'addignoreip', '127\.0\.0\.1\/8', '::1', '203\.0\.113\.0\/24', '2001:db8:1234::\/48'\]/);
            assert.match(r.stdout, /\['set', 'sshd', 'addaction', 'iptables-multiport'\]/);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("fail2ban-regex: the sshd filter finds every failed password in a synthetic log", (t) => {
        if (!requireTools(t, "fail2ban-regex")) return;
        const dir = stagedFail2ban(fail2banJail(fail2banConfig));
        try {
            const log = path.join(dir, "auth.log");
            fs.writeFileSync(log, sshdFailures([ATTACKER], 5) + "Nov 23 10:00:00 citadel sshd[99]: Accepted publickey for deploy from 203.0.113.9 port 50000 ssh2\n");
            const r = run("fail2ban-regex", ["--print-all-matched", log, path.join(dir, "etc", "filter.d", "sshd.conf") + "[mode=normal]"], { timeout: 60_000 });
            assert.equal(r.code, 0, out(r));
            // The accepted login is "ignored" (it ends a multi-line match), never a failure.
            assert.match(r.stdout, /^Lines: 6 lines, 1 ignored, 5 matched, 0 missed/m, out(r));
            assert.equal((r.stdout.match(new RegExp(`from ${ATTACKER.replaceAll(".", "\\.")} port`, "g")) ?? []).length, 5);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("the fail2ban script validates and installs the jail, then reports unchanged (in a sandbox)", (t) => {
        if (!requireRoot(t) || !requireTools(t, "unshare", "fail2ban-client")) return;
        const dir = tmpDir("citadel-f2b-script-");
        try {
            const ov = path.join(dir, "ov");
            fs.mkdirSync(ov);
            const script = path.join(dir, "fail2ban.sh");
            fs.writeFileSync(script, renderIntrusion(fail2banConfig).script);
            const first = sandbox(ov, ["/bin/bash", script]);
            assert.equal(first.code, 0, out(first));
            assert.match(first.stdout, new RegExp(`^citadel: intrusion: updated ${FAIL2BAN_JAIL.replaceAll(".", "\\.")}$`, "m"));
            assert.equal(fs.readFileSync(path.join(ov, "etc", "up", "fail2ban", "jail.d", path.basename(FAIL2BAN_JAIL)), "utf8"), fail2banJail(fail2banConfig));
            const second = sandbox(ov, ["/bin/bash", script]);
            assert.equal(second.code, 0, out(second));
            assert.match(second.stdout, /^citadel: intrusion: unchanged$/m, out(second));
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});
