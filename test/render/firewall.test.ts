// The firewall step, judged by the real tools: shellcheck, ufw's own address normaliser,
// iptables-restore / ip6tables-restore, and the whole script run for real inside network namespaces.
//
// Isolation: the script runs in a network namespace of its own ("host") wired by veth pairs to a
// "client" namespace (the Internet, behind the host's default route on an interface called wan7, so
// nothing can pass by assuming eth0), a second client namespace behind priv9 (a second interface: a
// Hetzner private network, a VPN) and a "container" namespace behind br-0c17ade10000 (named like the
// bridge of a user-defined Docker network). It runs in a private mount namespace with an overlay over
// /etc, so ufw writes its config into a temp dir and its iptables rules into the test namespace: this
// machine's /etc/ufw and firewall are never touched. The CrowdSec firewall bouncer runs for real in
// the host namespace against a stand-in local API on the namespace's own loopback. Everything is
// torn down in `after`, also when a test fails.
//
// Issue 12 ("Survival"), each proven to fail without the fix: the rule set before it (only the
// default route's interface counted as outside) is loaded and a published port is reachable through
// the second interface; Debian's after.init without Citadel's block is put back and a `ufw reload`
// lets the banned address reach the gateway again.
import assert from "node:assert/strict";
import { ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import type { TestContext } from "node:test";
import { parseConfigOrThrow } from "../../components/config";
import YAML from "yaml";
import {
    AFTER_INIT_BEGIN,
    AFTER_INIT_END,
    AFTER_INIT_PATH,
    AFTER_RULES_BEGIN,
    AFTER_RULES_END,
    afterInitBlock,
    dockerUserBlock,
    dockerUserDrift,
    dockerUserRules,
    FORWARD6_CHAIN,
    FORWARD6_JUMP,
    forward6Rules,
    KEYED_BEGIN,
    PAM_SSHD_PATH,
    PUBLIC6_NAT_CHAIN,
    PUBLIC6_NAT_JUMP,
    PUBLIC6_NAT_OUTPUT_JUMP,
    public6Drift,
    public6NatRules,
    renderFirewall,
    sshKeyedRule,
    sshKeyedRules,
    sshNetLimitRules6,
    ufwAddress,
    ufwRules,
} from "../../components/render/firewall";
import { BOUNCER_CHAINS, BOUNCER_IPSETS, bouncerBanRule, bouncerLocalTemplate, bouncerStopPost } from "../../components/render/intrusion";
import { renderSysctlConf, SYSCTL_PATH } from "../../components/render/host";
import { GATEWAY_IPV6, SSH_KEYED_HOOK, SSH_KEYED_LIST, SSH_KEYED_STATE_DIR } from "../../components/posture/facts";
import { prodConfig, prodWith } from "../fixtures";
import { requireTool, run, RunResult, tmpDir, waitFor, which, requireRoot as requireRootAs, requireTools, shellcheck } from "../tools";

const prod = prodConfig();
const prodScript = renderFirewall(prod);
// SSH from anywhere, plain allow, a single denied port: the other branches of the renderer.
const openConfig = parseConfigOrThrow(
    prodWith({ admin: { ...prod.admin, sourceIps: [] }, firewall: { sshRateLimit: false, denyPorts: { from: 9000, to: 9000 } } }),
);
const openScript = renderFirewall(openConfig);
// The production default: SSH open to the world, rate-limited, key-authenticated sources exempt.
const limitedConfig = parseConfigOrThrow(prodWith({ admin: { ...prod.admin, sourceIps: [] } }));
const limitedScript = renderFirewall(limitedConfig);

const requireRoot = (t: TestContext): boolean => requireRootAs(t, "network and mount namespaces, iptables");


function writeTemp(dir: string, name: string, content: string): string {
    const p = path.join(dir, name);
    fs.writeFileSync(p, content);
    return p;
}

function out(r: RunResult): string {
    return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

describe("rendering", () => {
    it("declares SSH first (allowed per admin CIDR, limited when open to all), then 80/443 and the denied app ports", () => {
        const limited = parseConfigOrThrow(prodWith({ admin: { ...prod.admin, sourceIps: ["203.0.113.7/24", "2001:DB8:1234:0::/48"] } }));
        assert.deepEqual(
            ufwRules(limited).map((r) => r.join(" ")),
            [
                "allow from 203.0.113.0/24 to any port 22 proto tcp",
                "allow from 2001:db8:1234::/48 to any port 22 proto tcp",
                "allow 80/tcp",
                "allow 443/tcp",
                // IPv6 served (the default): what Citadel's DNAT sends to the gateway is routed to it.
                "route allow to fd17:c1ad:e1::10 port 80 proto tcp",
                "route allow to fd17:c1ad:e1::10 port 443 proto tcp",
                "deny 8001:8012/tcp",
                "deny 8001:8012/udp",
                // Monitoring (on by default): CrowdSec's metrics, from the monitoring bridge only.
                "allow in on br-citadel-mon to 172.29.250.1 port 6060 proto tcp",
            ],
        );
        assert.deepEqual(
            ufwRules(openConfig).map((r) => r.join(" ")).filter((r) => !r.includes("br-citadel-mon") && !r.startsWith("route ")),
            ["allow 22/tcp", "allow 80/tcp", "allow 443/tcp", "deny 9000/tcp", "deny 9000/udp"],
        );
        const v4only = parseConfigOrThrow(prodWith({ host: { docker: { ipv6: false } } }));
        assert.ok(!ufwRules(v4only).some((r) => r[0] === "route"), "IPv6 not served: no route rule");
        const f2b = parseConfigOrThrow(prodWith({ intrusion: { engine: "fail2ban" } }));
        assert.ok(!ufwRules(f2b).some((r) => r.includes("br-citadel-mon")), "no CrowdSec, no metrics rule");
        const openLimited = parseConfigOrThrow(prodWith({ admin: { ...prod.admin, sourceIps: [] } }));
        assert.equal(ufwRules(openLimited)[0].join(" "), "limit 22/tcp", "SSH open to all is rate-limited by default");
    });

    it("names only the Docker bridges as inside: every other interface is outside, nothing host-specific", () => {
        for (const family of [4, 6] as const) {
            const block = dockerUserBlock(family);
            assert.ok(block.startsWith(AFTER_RULES_BEGIN + "\n"));
            assert.ok(block.trimEnd().endsWith(AFTER_RULES_END));
            const rules = dockerUserRules(family);
            const withIf = rules.filter((r) => / -i /.test(r));
            assert.deepEqual(withIf, ["-A DOCKER-USER -i docker0 -j RETURN", "-A DOCKER-USER -i br-+ -j RETURN"]);
            assert.equal(rules.at(-1), "-A DOCKER-USER -j DROP", "the last rule drops whatever came from outside");
            assert.ok(!/\beth0\b|__CITADEL/.test(block), "no interface name of a particular host");
        }
    });

    it("dockerUserDrift (the audit's comparison): ban rule first, then the block in order; Docker's trailing RETURN is fine", () => {
        const rules = dockerUserRules(4);
        const ban = `-A DOCKER-USER ${bouncerBanRule(4)}`;
        const S = (...l: string[]) => ["-N DOCKER-USER", ...l].join("\n") + "\n";
        assert.deepEqual(dockerUserDrift(S(ban, ...rules, "-A DOCKER-USER -j RETURN"), 4, true), []);
        assert.deepEqual(dockerUserDrift(S(...rules), 4, false), [], "fail2ban: no ban rule required");
        assert.deepEqual(dockerUserDrift(S(ban, ...rules), 4, false), [], "a leftover ban rule is not drift");
        // After a `ufw reload` without the hook: the block is back, the ban rule is not.
        const lost = dockerUserDrift(S(...rules), 4, true);
        assert.equal(lost.length, 1);
        assert.match(lost[0].actual, /missing: banned addresses reach the containers/);
        assert.match(dockerUserDrift(S(...rules, ban), 4, true)[0].actual, /behind/);
        // A rule ahead of the block, a rule out of order, a flushed chain.
        const stray = dockerUserDrift(S(ban, "-A DOCKER-USER -i eth1 -j RETURN", ...rules), 4, true);
        assert.deepEqual(stray.map((d) => d.actual), ["-A DOCKER-USER -i eth1 -j RETURN"]);
        const swapped = [...rules];
        [swapped[1], swapped[2]] = [swapped[2], swapped[1]];
        assert.equal(dockerUserDrift(S(ban, ...swapped), 4, true).length, 2);
        assert.equal(dockerUserDrift(S(), 4, true).length, rules.length + 1);
    });

    it("dockerUserDrift on IPv6's mangle copy: the ban rule first, then the same rules under CITADEL-FORWARD6; a missing or foreign rule is drift", () => {
        const rules = forward6Rules();
        assert.deepEqual(rules.map((r) => r.replace(FORWARD6_CHAIN, "DOCKER-USER")), dockerUserRules(6), "one policy, two chains");
        const ban = `-A ${FORWARD6_CHAIN} ${bouncerBanRule(6)}`;
        const S = (...l: string[]) => [`-N ${FORWARD6_CHAIN}`, ...l].join("\n") + "\n";
        assert.deepEqual(dockerUserDrift(S(ban, ...rules), 6, true, FORWARD6_CHAIN), []);
        const noBan = dockerUserDrift(S(...rules), 6, true, FORWARD6_CHAIN);
        assert.deepEqual(noBan.map((d) => d.what), [`CrowdSec ban rule in ${FORWARD6_CHAIN}`]);
        const dropLost = dockerUserDrift(S(ban, ...rules.slice(0, -1)), 6, true, FORWARD6_CHAIN);
        assert.deepEqual(dropLost.map((d) => d.expected), [rules[rules.length - 1]], "the final DROP missing");
        // IPv4's DOCKER-USER lines are not the mangle copy.
        assert.equal(dockerUserDrift(S(ban, ...dockerUserRules(6)), 6, true, FORWARD6_CHAIN).length, rules.length);
    });

    it("public6Drift (the audit's comparison): served, exactly the DNAT rules, both jumps and forwarding; not served, no rule (a missing chain is fine)", () => {
        const chainS = ["-N CITADEL-PUBLIC6", ...public6NatRules()].join("\n");
        const pre = `-P PREROUTING ACCEPT\n${PUBLIC6_NAT_JUMP}`;
        const outp = `-P OUTPUT ACCEPT\n${PUBLIC6_NAT_OUTPUT_JUMP}`;
        assert.deepEqual(public6Drift(true, chainS, pre, outp, "1"), []);
        assert.deepEqual(public6Drift(true, chainS, "-P PREROUTING ACCEPT", outp, "1").map((d) => d.what), ["ip6tables nat PREROUTING"]);
        assert.deepEqual(public6Drift(true, chainS, pre, "-P OUTPUT ACCEPT", "1").map((d) => d.what), ["ip6tables nat OUTPUT"]);
        // A jump without the loopback exclusion is not the declared one.
        assert.deepEqual(public6Drift(true, chainS, pre, `-A OUTPUT -j ${PUBLIC6_NAT_CHAIN}`, "1").map((d) => d.what), ["ip6tables nat OUTPUT"]);
        assert.deepEqual(public6Drift(true, chainS, pre, outp, "0").map((d) => d.what), ["net.ipv6.conf.all.forwarding"]);
        assert.deepEqual(public6Drift(true, undefined, pre, outp, "1").map((d) => d.what), [`ip6tables nat ${PUBLIC6_NAT_CHAIN}`]);
        assert.deepEqual(public6Drift(true, `${chainS}\n-A CITADEL-PUBLIC6 -p tcp -m tcp --dport 8001 -j DNAT --to-destination [fd17:c1ad:e1::10]:8001`, pre, outp, "1").map((d) => d.what), [`${PUBLIC6_NAT_CHAIN} rule`]);
        assert.deepEqual(public6Drift(true, public6NatRules().slice(1).join("\n"), pre, outp, "1").length, 2, "a lost first rule shifts both");
        assert.deepEqual(public6Drift(false, "-N CITADEL-PUBLIC6", "", "", "0"), []);
        assert.deepEqual(public6Drift(false, undefined, "", "", "0"), []);
        assert.deepEqual(public6Drift(false, chainS, pre, outp, "1").map((d) => d.expected), public6NatRules().map(() => "(none: the sites are not served over IPv6)"));
    });

    it("after.init block: the bouncer's own rule for each of its sets and chains, on start only", () => {
        const block = afterInitBlock();
        assert.ok(block.startsWith(AFTER_INIT_BEGIN + "\n"));
        assert.ok(block.trimEnd().endsWith(AFTER_INIT_END));
        for (const family of [4, 6] as const) {
            assert.ok(block.includes(`citadel_set=${BOUNCER_IPSETS[family]}\n`));
            assert.ok(block.includes(`citadel_rule='${bouncerBanRule(family)}'\n`));
        }
        assert.ok(block.includes(`for citadel_chain in ${BOUNCER_CHAINS.join(" ")}; do`));
        assert.match(block, /^if \[ "\$\{1:-\}" = start \]/m);
        assert.ok(renderFirewall(prod).files.some((f) => f.path === AFTER_INIT_PATH && f.mode === "0750" && f.content === block));
    });
});

describe("shellcheck", () => {
    for (const [name, s] of [
        ["prod (SSH only from admin CIDRs)", prodScript],
        ["open SSH, allow, one denied port", openScript],
    ] as const) {
        it(`the ${name} script is clean`, (t) => {
            const sc = requireTool(t, "shellcheck");
            if (!sc) return;
            const r = shellcheck(sc, s.script);
            assert.equal(r.code, 0, out(r));
        });
    }
    it("Debian's after.init with Citadel's block appended is clean POSIX sh", (t) => {
        const sc = requireTool(t, "shellcheck");
        if (!sc || !requireTools(t, "ufw")) return;
        const hook = fs.readFileSync("/usr/share/ufw/after.init", "utf8") + afterInitBlock();
        const r = run(sc, ["-s", "sh", "-"], { input: hook });
        assert.equal(r.code, 0, out(r));
        const n = run("sh", ["-n"], { input: hook });
        assert.equal(n.code, 0, out(n));
    });
});

describe("ufw agrees with the renderer's address form (else every run would delete and re-add rules)", () => {
    const samples = [
        "203.0.113.7/24",
        "203.0.113.0/24",
        "198.51.100.7/32",
        "10.1.2.3/8",
        "2001:DB8:1234:0:0::/48",
        "2001:db8::1/128",
        "2001:db8:0:0:1:0:0:1/128",
        "1:0:0:1:0:0:0:1/128",
        "fe80::/64",
        "::ffff:192.0.2.1/128",
    ];
    it("ufw's normalize_address leaves every rendered address unchanged, and maps the raw IPv4 ones to it", (t) => {
        if (!requireTools(t, "ufw")) return;
        const py = "import json, sys, ufw.util as u\nprint(json.dumps([u.normalize_address(a, ':' in a)[0] for a in sys.argv[1:]]))";
        const ours = samples.map(ufwAddress);
        const r = run("/usr/bin/python3", ["-c", py, ...ours]);
        assert.equal(r.code, 0, out(r));
        assert.deepEqual(JSON.parse(r.stdout), ours);
        // ufw clears host bits of IPv4 networks itself (not of IPv6 ones; the renderer does that).
        const v4 = samples.filter((s) => !s.includes(":"));
        const r4 = run("/usr/bin/python3", ["-c", py, ...v4]);
        assert.equal(r4.code, 0, out(r4));
        assert.deepEqual(JSON.parse(r4.stdout), v4.map(ufwAddress));
    });
});

describe("iptables-restore judges the DOCKER-USER blocks", () => {
    // --test parses and checks against the kernel without committing; a private network namespace
    // makes sure nothing could reach this machine's rules even so.
    function restoreTest(bin: string, rules: string): RunResult {
        return run("unshare", ["-n", bin, "--test", "--noflush"], { input: rules });
    }
    it("accepts both families", (t) => {
        if (!requireRoot(t) || !requireTools(t, "unshare", "iptables-restore", "ip6tables-restore")) return;
        for (const [bin, family] of [
            ["iptables-restore", 4],
            ["ip6tables-restore", 6],
        ] as const) {
            const r = restoreTest(bin, dockerUserBlock(family));
            assert.equal(r.code, 0, `${bin}: ${out(r)}`);
        }
        // IPv6 with the sites served: the DNAT rules in the nat section too.
        const served = restoreTest("ip6tables-restore", dockerUserBlock(6, true));
        assert.equal(served.code, 0, `ip6tables-restore (served): ${out(served)}`);
        const bad = restoreTest("ip6tables-restore", dockerUserBlock(6, true).replace("--to-destination [", "--to-destination ["+"x"));
        assert.notEqual(bad.code, 0, "ip6tables-restore accepted a broken DNAT target");
    });
    it("rejects corrupted variants (bad port, over-long interface name, unknown match)", (t) => {
        if (!requireRoot(t) || !requireTools(t, "unshare", "iptables-restore", "ip6tables-restore")) return;
        const good = dockerUserBlock(4);
        const variants = {
            "bad port": good.replace("--ctorigdstport 443", "--ctorigdstport 4x3"),
            "interface name over 15 chars": good.replace("-i br-+", "-i br-interface-name-too-long"),
            "unknown match": good.replace("-m conntrack --ctstate RELATED", "-m conntrakk --ctstate RELATED"),
        };
        for (const [what, rules] of Object.entries(variants)) {
            assert.notEqual(rules, good);
            const r = restoreTest("iptables-restore", rules);
            assert.notEqual(r.code, 0, `iptables-restore accepted the ${what} variant`);
        }
        const r6 = restoreTest("ip6tables-restore", dockerUserBlock(6).replace("--ctorigdstport 80 ", "--ctorigdstport 8o "));
        assert.notEqual(r6.code, 0, "ip6tables-restore accepted a bad port");
    });
});

// ---------------------------------------------------------------------------------------------
// Behaviour: the real script, real ufw, real packets.
// ---------------------------------------------------------------------------------------------

// Mount an overlay over /etc (writes land in $1/up), then exec the command.
// /etc, the directory of the SSH limit's PAM hook and /var/lib (its records) overlaid: what the script writes stays in the test's temp dir.
const OVERLAY_SETUP =
    'set -e; mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1/up,workdir=$1/work" /etc; ' +
    'mount -t overlay overlay -o "lowerdir=$2,upperdir=$1/hook-up,workdir=$1/hook-work" "$2"; ' +
    'mount -t overlay overlay -o "lowerdir=/var/lib,upperdir=$1/varlib-up,workdir=$1/varlib-work" /var/lib; shift 2; exec "$@"';
// A tiny TCP server: answers "ok <port>" on every port given, exits by itself after 300 s at the latest.
const SERVER_JS = `const net = require("net");
for (const p of process.argv.slice(1)) net.createServer((s) => s.end("ok " + p + "\\n")).listen(Number(p), "0.0.0.0");
setTimeout(() => process.exit(0), 300000);`;
// The same on "::" (both families: IPv4 clients arrive as mapped addresses).
const DUAL_SERVER_JS = SERVER_JS.replace('"0.0.0.0"', '"::"');
// Connects to argv[1]:argv[2] from the local address argv[3]; prints what the server said, exits 1 when refused or after 2 s.
const PROBE_FROM_JS = `const [host, port, localAddress] = process.argv.slice(1);
const s = require("net").connect({ host, port: Number(port), localAddress });
s.setTimeout(2000, () => process.exit(1));
s.on("data", (d) => { process.stdout.write(d); s.destroy(); });
s.on("error", () => process.exit(1));`;
// A stand-in for CrowdSec's local API, enough for the firewall bouncer: one ban for argv[2] on its
// first (startup) pull, nothing new afterwards. Loopback of the host namespace only; exits by itself.
const LAPI_JS = `const http = require("http");
const [port, ...banned] = process.argv.slice(1);
http.createServer((req, res) => {
    res.setHeader("content-type", "application/json");
    if (!req.url.startsWith("/v1/decisions/stream")) return res.end("[]");
    const bans = banned.map((value, i) => ({ id: i + 1, origin: "cscli", type: "ban", scope: value.includes("/") ? "Range" : "Ip", value, duration: "9m59s", scenario: "citadel-test" }));
    res.end(JSON.stringify({ new: /startup=true/.test(req.url) ? bans : [], deleted: [] }));
}).listen(Number(port), "127.0.0.1");
setTimeout(() => process.exit(0), 300000);`;
const ALLOWED_SESSION = "203.0.113.5 50022 198.51.100.1 22"; // inside admin.sourceIps 203.0.113.0/24
const FOREIGN_SESSION = "198.51.100.99 50022 198.51.100.1 22"; // outside every admin CIDR
/** The host-side name of the container's link: what Docker calls the bridge of a user-defined network. */
const BRIDGE = "br-0c17ade10000";
const HOST = { wan: "198.51.100.1", priv: "10.0.0.1" };
const CLIENT = "198.51.100.2"; // behind wan7, the default route
const CLIENT2 = "10.0.0.2"; // behind priv9, the second interface
// IPv6 on priv9 (documentation prefix): the host, and client2's /64, from which it takes turns among addresses.
const HOST6_PRIV = "2001:db8:9::1";
const client2v6 = (i: number) => `2001:db8:9::${(0x10 + i).toString(16)}`;
const CLIENT2_V6_COUNT = 12;
// IPv6 on wan7 and behind the bridge: the client's /64 is what a CrowdSec ban of an IPv6 source covers.
const HOST6_WAN = "2001:db8:7::1";
const CLIENT6 = "2001:db8:7::2";
const CLIENT6_NET = "2001:db8:7::/64";
// The gateway's fixed IPv6 address: what Citadel's DNAT sends the host's 80/443 to.
const CTR6 = GATEWAY_IPV6;
/**
 * The IPv4 DOCKER-USER rules before issue 12 (the default route's interface, wan7 here, filled in at
 * run time): the only outside interface. Loaded by the test that shows the hole they leave.
 */
const OLD_RULES_WAN7 = [
    "*filter",
    ":DOCKER-USER - [0:0]",
    "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
    "-A DOCKER-USER ! -i wan7 -j RETURN",
    "-A DOCKER-USER -i wan7 -p tcp -m conntrack --ctstate NEW --ctorigdstport 80 -j RETURN",
    "-A DOCKER-USER -i wan7 -p tcp -m conntrack --ctstate NEW --ctorigdstport 443 -j RETURN",
    "-A DOCKER-USER -i wan7 -j DROP",
    "COMMIT",
    "",
].join("\n");

describe("the firewall script in network namespaces", { concurrency: false }, () => {
    const id = `${process.pid}`;
    const ns = { host: `citadel-test-fw-h-${id}`, client: `citadel-test-fw-c-${id}`, client2: `citadel-test-fw-p-${id}`, ctr: `citadel-test-fw-k-${id}` };
    const created: string[] = [];
    const children: ChildProcess[] = [];
    let bouncer: ChildProcess | undefined;
    let work = "";
    let ready = false;
    let scriptPath = "";
    let bouncerConfig = "";
    let lapiPort = 0;

    function ip(...args: string[]): void {
        const r = run("ip", args);
        if (r.code !== 0) throw new Error(`ip ${args.join(" ")}: ${out(r)}`);
    }
    function inNs(name: string, cmd: string[], opts: { env?: NodeJS.ProcessEnv; timeout?: number } = {}): RunResult {
        return run("ip", ["netns", "exec", name, ...cmd], { timeout: opts.timeout ?? 60_000, env: opts.env });
    }
    /** A command in the host namespace with the overlaid /etc (state persists in `work` between calls). */
    function onHost(cmd: string[], env: Record<string, string> = {}): RunResult {
        return inNs(ns.host, ["unshare", "-m", "--propagation", "private", "--", "/bin/sh", "-c", OVERLAY_SETUP, "sh", work, path.dirname(SSH_KEYED_HOOK), ...cmd], {
            env: { ...process.env, SSH_CONNECTION: "", ...env },
        });
    }
    function runScript(session: string): RunResult {
        return onHost(["env", `SSH_CONNECTION=${session}`, "/bin/bash", scriptPath]);
    }
    function ufwReload(): void {
        const r = onHost(["ufw", "reload"]);
        assert.equal(r.code, 0, out(r));
    }
    /** Connects from `from` to ip:port; returns what the server said, or "" when no connection was made in 2 s. */
    function probe(from: string, addr: string, port: number): string {
        const r = inNs(from, ["timeout", "2", "bash", "-c", 'exec 3<>"/dev/tcp/$0/$1" && head -c 32 <&3', addr, String(port)], { timeout: 10_000 });
        return r.code === 0 ? r.stdout.trim() : "";
    }
    function addedRules(): string[] {
        const r = onHost(["ufw", "show", "added"]);
        assert.equal(r.code, 0, out(r));
        return r.stdout
            .split("\n")
            .filter((l) => l.startsWith("ufw "))
            .map((l) => l.slice(4))
            .sort();
    }
    /** The live chain's rules as `-S` prints them ("-A DOCKER-USER ..."). */
    function chain(bin: "iptables" | "ip6tables", name = "DOCKER-USER", table = "filter"): string[] {
        const r = inNs(ns.host, [bin, "-t", table, "-S", name]);
        assert.equal(r.code, 0, out(r));
        return r.stdout.split("\n").filter((l) => l.startsWith("-A "));
    }
    const banRule = (family: 4 | 6, name = "DOCKER-USER") => `-A ${name} ${bouncerBanRule(family)}`;

    before(() => {
        if (process.getuid?.() !== 0) return;
        if (!["ip", "unshare", "ufw", "iptables", "node", "timeout"].every((b) => which(b))) return;
        work = tmpDir("citadel-fw-");
        fs.mkdirSync(path.join(work, "up"));
        fs.mkdirSync(path.join(work, "work"));
        for (const d of ["hook-up", "hook-work", "varlib-up", "varlib-work"]) fs.mkdirSync(path.join(work, d));
        scriptPath = writeTemp(work, "firewall.sh", prodScript.script);
        for (const name of Object.values(ns)) {
            ip("netns", "add", name);
            created.push(name);
        }
        // client (the Internet) <-> host: the host's default route leaves through wan7.
        ip("link", "add", "wan7", "netns", ns.host, "type", "veth", "peer", "name", "eth0", "netns", ns.client);
        // client2 <-> host on a second interface (a private network): no default route through it.
        ip("link", "add", "priv9", "netns", ns.host, "type", "veth", "peer", "name", "eth0", "netns", ns.client2);
        // host <-> "container" behind a Docker-named link (the part of Docker that matters here: a routed bridge).
        ip("link", "add", BRIDGE, "netns", ns.host, "type", "veth", "peer", "name", "eth0", "netns", ns.ctr);
        for (const n of Object.values(ns)) ip("-n", n, "link", "set", "lo", "up");
        ip("-n", ns.host, "addr", "add", `${HOST.wan}/24`, "dev", "wan7");
        ip("-n", ns.host, "addr", "add", `${HOST.priv}/24`, "dev", "priv9");
        ip("-n", ns.host, "addr", "add", "172.30.0.1/24", "dev", BRIDGE);
        ip("-n", ns.client, "addr", "add", `${CLIENT}/24`, "dev", "eth0");
        ip("-n", ns.client2, "addr", "add", `${CLIENT2}/24`, "dev", "eth0");
        ip("-n", ns.host, "addr", "add", `${HOST6_PRIV}/64`, "dev", "priv9", "nodad");
        ip("-n", ns.host, "addr", "add", `${HOST6_WAN}/64`, "dev", "wan7", "nodad");
        ip("-n", ns.client, "addr", "add", `${CLIENT6}/64`, "dev", "eth0", "nodad");
        ip("-n", ns.host, "addr", "add", "fd17:c1ad:e1::1/64", "dev", BRIDGE, "nodad");
        ip("-n", ns.ctr, "addr", "add", `${CTR6}/64`, "dev", "eth0", "nodad");
        for (let i = 0; i < CLIENT2_V6_COUNT; i++) ip("-n", ns.client2, "addr", "add", `${client2v6(i)}/64`, "dev", "eth0", "nodad");
        ip("-n", ns.ctr, "addr", "add", "172.30.0.2/24", "dev", "eth0");
        for (const [n, dev] of [
            [ns.host, "wan7"],
            [ns.host, "priv9"],
            [ns.host, BRIDGE],
            [ns.client, "eth0"],
            [ns.client2, "eth0"],
            [ns.ctr, "eth0"],
        ]) {
            ip("-n", n, "link", "set", dev, "up");
        }
        ip("-n", ns.host, "route", "add", "default", "via", CLIENT);
        ip("-n", ns.client, "route", "add", "default", "via", HOST.wan);
        ip("-n", ns.client2, "route", "add", "default", "via", HOST.priv);
        ip("-n", ns.ctr, "route", "add", "default", "via", "172.30.0.1");
        ip("-n", ns.ctr, "-6", "route", "add", "default", "via", "fd17:c1ad:e1::1");
        const fwd6 = inNs(ns.host, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
        if (fwd6.code !== 0) throw new Error(out(fwd6));
        const fwd = inNs(ns.host, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        if (fwd.code !== 0) throw new Error(out(fwd));
        // What Docker 20.10 sets up for `-p 443:8443 -p 8001:8001` (userland-proxy off): DNAT of every
        // local address from any interface but the container's bridge, a jump to DOCKER-USER first in
        // FORWARD (which ends in Docker's RETURN), then its ACCEPT rules for the bridge.
        const docker = [
            "*nat",
            ":DOCKER - [0:0]",
            "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
            `-A DOCKER -i ${BRIDGE} -j RETURN`,
            `-A DOCKER ! -i ${BRIDGE} -p tcp --dport 443 -j DNAT --to-destination 172.30.0.2:8443`,
            `-A DOCKER ! -i ${BRIDGE} -p tcp --dport 8001 -j DNAT --to-destination 172.30.0.2:8001`,
            "COMMIT",
            "*filter",
            ":DOCKER-USER - [0:0]",
            "-A DOCKER-USER -j RETURN",
            "-A FORWARD -j DOCKER-USER",
            `-A FORWARD -o ${BRIDGE} -j ACCEPT`,
            `-A FORWARD -i ${BRIDGE} -j ACCEPT`,
            "COMMIT",
            "",
        ].join("\n");
        const r = run("ip", ["netns", "exec", ns.host, "iptables-restore", "--noflush"], { input: docker });
        if (r.code !== 0) throw new Error(out(r));
        // Docker sets up nothing for IPv6 (its ip6tables is off): Citadel's DNAT in the step's after6.rules
        // is what reaches the gateway's fixed IPv6 address. The client also routes the ULA /64 through
        // the host, as an attacker on the same segment could.
        ip("-n", ns.client, "-6", "route", "add", "fd17:c1ad:e1::/64", "via", HOST6_WAN);
        children.push(spawn("ip", ["netns", "exec", ns.ctr, "node", "-e", DUAL_SERVER_JS, "8443", "8001", "9443", "443"], { stdio: "ignore" }));
        children.push(spawn("ip", ["netns", "exec", ns.client, "node", "-e", SERVER_JS, "7000"], { stdio: "ignore" }));
        // The bouncer's configuration: Citadel's .local (mode, chains, sets) pointed at the stand-in API.
        lapiPort = 18080;
        const cfg = YAML.parse(bouncerLocalTemplate()) as Record<string, unknown>;
        Object.assign(cfg, {
            api_url: `http://127.0.0.1:${lapiPort}/`,
            api_key: "citadelTestKeyNotASecret0123",
            update_frequency: "1s",
            daemonize: false,
            log_mode: "file",
            log_dir: work,
            log_level: "info",
            pid_dir: work,
            ipset_type: "nethash",
            prometheus: { enabled: false },
        });
        bouncerConfig = writeTemp(work, "bouncer.yaml", YAML.stringify(cfg));
        ready = true;
    });

    after(() => {
        for (const c of [...children, bouncer]) if (c?.pid && c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
        for (const name of created) run("ip", ["netns", "del", name]);
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    /**
     * Deletes one of the IPv6 DNAT's nat jumps (a fault): `from` no longer reaches the gateway over
     * IPv6 (`unaffected` still does); the step reloads UFW, and after a further `ufw reload` the
     * jump is there exactly once and `from` is served again.
     */
    function natJumpFaultRepaired(jump: string, from: string, unaffected?: string): void {
        const del = inNs(ns.host, ["ip6tables", "-t", "nat", ...jump.replace(/^-A /, "-D ").split(" ")]);
        assert.equal(del.code, 0, out(del));
        assert.equal(probe(from, HOST6_WAN, 443), "", `without ${jump}, IPv6 443 still reached the gateway from ${from} (so the jump is not what serves it)`);
        if (unaffected) assert.equal(probe(unaffected, HOST6_WAN, 443), "ok 443", `${unaffected}'s path must not depend on ${jump}`);
        const r = runScript(ALLOWED_SESSION);
        assert.equal(r.code, 0, out(r));
        assert.match(r.stdout, /reloaded UFW: the DOCKER-USER rules were missing/, out(r));
        ufwReload();
        assert.deepEqual(chain("ip6tables", jump.split(" ")[1], "nat"), [jump], "exactly one jump, however often UFW runs the hook");
        assert.equal(probe(from, HOST6_WAN, 443), "ok 443");
    }

    function requireReady(t: TestContext): boolean {
        if (!requireRoot(t) || !requireTools(t, "ip", "unshare", "ufw", "iptables", "node", "timeout")) return false;
        assert.ok(ready, "namespace setup failed");
        return true;
    }

    it("control: before the script, a published app port (8001) is reachable through both interfaces", async (t) => {
        if (!requireReady(t)) return;
        assert.ok(await waitFor(() => probe(ns.client, HOST.wan, 8001) === "ok 8001", 10_000), "the test topology does not forward 8001");
        assert.equal(probe(ns.client, HOST.wan, 443), "ok 8443");
        assert.equal(probe(ns.client2, HOST.priv, 8001), "ok 8001");
        // IPv6: the container's ports answer when routed straight to it, but nothing DNATs the host's
        // own IPv6 address yet (Docker does not, with its ip6tables off).
        assert.ok(await waitFor(() => probe(ns.client, CTR6, 8001) === "ok 8001", 10_000), "the test topology does not route IPv6 to the container");
        assert.equal(probe(ns.client, HOST6_WAN, 443), "", "before the script, the host's IPv6 443 must not reach the gateway");
    });

    it("refuses to run from an SSH session outside admin.sourceIps, and changes nothing", (t) => {
        if (!requireReady(t)) return;
        const afterRules = () => onHost(["cat", "/etc/ufw/after.rules", "/etc/ufw/ufw.conf", AFTER_INIT_PATH]).stdout;
        const before = { rules: addedRules(), files: afterRules() };
        const r = runScript(FOREIGN_SESSION);
        assert.notEqual(r.code, 0, out(r));
        assert.match(r.stderr, /^citadel: firewall: refusing .*198\.51\.100\.99.*lock you out/m);
        assert.deepEqual(addedRules(), before.rules);
        assert.equal(afterRules(), before.files);
    });

    it("first run: converges UFW, enables it, loads exactly the DOCKER-USER block and installs the after.init hook", (t) => {
        if (!requireReady(t)) return;
        // Start from a host whose UFW ignores IPv6 (IPV6=no would leave IPv6 unfiltered).
        const v6off = onHost(["sed", "-i", "s/^IPV6=.*/IPV6=no/", "/etc/default/ufw"]);
        assert.equal(v6off.code, 0, out(v6off));
        const r = runScript(ALLOWED_SESSION);
        assert.equal(r.code, 0, out(r));
        assert.match(r.stdout, /^citadel: firewall: changed$/m);
        assert.match(r.stdout, /^citadel: firewall: IPV6=yes in \/etc\/default\/ufw$/m);
        assert.match(r.stdout, /^citadel: firewall: CrowdSec ban-rule hook in \/etc\/ufw\/after\.init$/m);
        // The SSH rules are added before UFW is enabled (the order of the step's report).
        const lines = r.stdout.split("\n");
        const firstSsh = lines.findIndex((l) => l.includes("added: ufw allow from 203.0.113.0/24 to any port 22"));
        const enabled = lines.findIndex((l) => l.endsWith("enabled ufw"));
        assert.ok(firstSsh >= 0 && enabled > firstSsh, out(r));
        assert.deepEqual(addedRules(), ufwRules(prod).map((x) => x.join(" ")).sort());

        const status = onHost(["ufw", "status", "verbose"]);
        assert.match(status.stdout, /^Status: active$/m, out(status));
        assert.match(status.stdout, /^Default: deny \(incoming\), allow \(outgoing\), deny \(routed\)$/m, out(status));

        // The live chains are the block, rule for rule, as `-S` prints them (what the audit compares).
        assert.deepEqual(chain("iptables"), dockerUserRules(4));
        assert.deepEqual(chain("ip6tables"), dockerUserRules(6));
        const afterRules = onHost(["cat", "/etc/ufw/after.rules"]).stdout;
        assert.equal(afterRules.split("\n").filter((l) => l === AFTER_RULES_BEGIN).length, 1);
        assert.match(afterRules, /^# don't delete the 'COMMIT' line/m, "Debian's own after.rules content must be kept");
        // after.init: Debian's own file, Citadel's block appended, executable for ufw-init.
        const init = onHost(["stat", "-c", "%a %U", AFTER_INIT_PATH]);
        assert.equal(init.stdout.trim(), "750 root", out(init));
        const hook = onHost(["cat", AFTER_INIT_PATH]).stdout;
        assert.equal(hook, fs.readFileSync("/usr/share/ufw/after.init", "utf8") + afterInitBlock());
        // This machine's real UFW config was not touched (the overlay took every write).
        assert.doesNotMatch(fs.readFileSync("/etc/ufw/after.rules", "utf8"), /CITADEL DOCKER-USER/);
        assert.doesNotMatch(fs.readFileSync("/etc/ufw/after.init", "utf8"), /CITADEL/);
    });

    it("ufw reload re-applies Citadel's sysctl file, not Debian's (whose log_martians=0 undid the hardening)", (t) => {
        if (!requireReady(t)) return;
        const key = "net.ipv4.conf.all.log_martians";
        const read = () => onHost(["sysctl", "-n", key]).stdout.trim();
        // The sysctl step's file, as it lands on the host (net.* keys belong to this namespace).
        const conf = renderSysctlConf(prod);
        const put = run("ip", ["netns", "exec", ns.host, "unshare", "-m", "--propagation", "private", "--", "/bin/sh", "-c", OVERLAY_SETUP, "sh", work, path.dirname(SSH_KEYED_HOOK), "/bin/sh", "-c", `cat > ${SYSCTL_PATH}`], { input: conf });
        assert.equal(put.code, 0, out(put));
        assert.match(onHost(["grep", "-x", `IPT_SYSCTL=${SYSCTL_PATH}`, "/etc/default/ufw"]).stdout, /IPT_SYSCTL/);
        assert.equal(onHost(["sysctl", "-w", `${key}=0`]).code, 0);
        ufwReload();
        assert.equal(read(), "1", "ufw reload did not apply Citadel's declared value");
        // Control: with Debian's own IPT_SYSCTL the same reload sets it back to 0.
        const debian = onHost(["sed", "-i", "s|^IPT_SYSCTL=.*|IPT_SYSCTL=/etc/ufw/sysctl.conf|", "/etc/default/ufw"]);
        assert.equal(debian.code, 0, out(debian));
        ufwReload();
        assert.equal(read(), "0", "control: Debian's /etc/ufw/sysctl.conf should have reset log_martians");
        // The step converges it back and says so.
        const r = runScript(ALLOWED_SESSION);
        assert.equal(r.code, 0, out(r));
        assert.match(r.stdout, new RegExp(`^citadel: firewall: IPT_SYSCTL=${SYSCTL_PATH.replace(/\./g, "\\.")} in /etc/default/ufw$`, "m"));
        assert.equal(read(), "1");
    });

    it("after the script: new inbound to 8001 is dropped through either interface (and straight to a container port), 443 passes, egress works", (t) => {
        if (!requireReady(t)) return;
        const dropsBefore = dropCount();
        assert.equal(probe(ns.client, HOST.wan, 443), "ok 8443", "the gateway port must stay reachable");
        assert.equal(probe(ns.client2, HOST.priv, 443), "ok 8443", "the gateway port must stay reachable through the second interface");
        assert.equal(probe(ns.client, HOST.wan, 8001), "", "a published app port must not be reachable from outside");
        // IPv6: the host's 443 now reaches the gateway's fixed address through Citadel's DNAT (the same
        // port), and nothing else does: not 8001 on the host, not 8001 routed straight to the gateway.
        assert.equal(probe(ns.client, HOST6_WAN, 443), "ok 443", "the sites must be served over IPv6 (DNAT to the gateway)");
        assert.equal(probe(ns.client, HOST6_WAN, 8001), "", "a published app port must not be reachable over IPv6");
        assert.equal(probe(ns.client, CTR6, 8001), "", "an app port routed straight to the gateway's IPv6 address must be dropped");
        assert.deepEqual(chain("ip6tables", PUBLIC6_NAT_CHAIN, "nat"), public6NatRules());
        assert.deepEqual(chain("ip6tables", "PREROUTING", "nat"), [PUBLIC6_NAT_JUMP]);
        assert.deepEqual(chain("ip6tables", "OUTPUT", "nat"), [PUBLIC6_NAT_OUTPUT_JUMP]);
        // The host's own connection to its IPv6 address (the site asked for by its AAAA record from the host).
        assert.equal(probe(ns.host, HOST6_WAN, 443), "ok 443", "the host's own connection to its IPv6 443 must reach the gateway");
        assert.deepEqual(chain("ip6tables", FORWARD6_CHAIN, "mangle"), forward6Rules());
        assert.deepEqual(chain("ip6tables", "FORWARD", "mangle"), [FORWARD6_JUMP]);
        assert.equal(probe(ns.client2, HOST.priv, 8001), "", "nor through a second interface (a private network, a VPN)");
        // Routed straight to the container (an attacker on the same L2 segment): the port asked for is
        // 9443, not a gateway port, so it is dropped although nothing was DNATed.
        assert.equal(probe(ns.client, "172.30.0.2", 9443), "");
        assert.equal(probe(ns.client2, "172.30.0.2", 9443), "");
        // The container still reaches the outside, and the replies come back (ESTABLISHED).
        assert.equal(probe(ns.ctr, CLIENT, 7000), "ok 7000");
        assert.ok(dropCount() > dropsBefore, "the DROP rule's counter must have counted the refused SYNs");
    });

    it("IPv6: without either DNAT jump (a fault: PREROUTING, then OUTPUT) the sites are not served over IPv6 from outside, then from the host itself; the step reloads and each is back once; Docker's own IPv6 ACCEPT rules on top of filter's FORWARD open nothing, and without the mangle jump (a fault) they would", (t) => {
        if (!requireReady(t)) return;
        natJumpFaultRepaired(PUBLIC6_NAT_JUMP, ns.client);
        // The same for the host's own connections, through the OUTPUT jump; the Internet's path does not depend on it.
        natJumpFaultRepaired(PUBLIC6_NAT_OUTPUT_JUMP, ns.host, ns.client);
        // Docker's IPv6 rules if someone turned its ip6tables on: ACCEPT for the bridge inserted at the
        // top of filter's FORWARD, above UFW. The mangle copy of DOCKER-USER still drops 8001.
        const dockerRules = [`FORWARD 1 -o ${BRIDGE} -j ACCEPT`, `FORWARD 1 -i ${BRIDGE} -j ACCEPT`];
        for (const rule of dockerRules.map((x) => `-I ${x}`)) {
            const x = inNs(ns.host, ["ip6tables", ...rule.split(" ")]);
            assert.equal(x.code, 0, out(x));
        }
        try {
            assert.equal(probe(ns.client, CTR6, 8001), "", "Docker's ACCEPT rules must not open 8001 over IPv6");
            assert.equal(probe(ns.client, HOST6_WAN, 443), "ok 443");
            const m = inNs(ns.host, ["ip6tables", "-t", "mangle", "-D", "FORWARD", "-j", FORWARD6_CHAIN]);
            assert.equal(m.code, 0, out(m));
            assert.equal(probe(ns.client, CTR6, 8001), "ok 8001", "without the mangle jump, Docker's rules open 8001 (so the jump is what closes it)");
        } finally {
            for (const rule of dockerRules.map((x) => `-D ${x.replace(" 1 ", " ")}`)) inNs(ns.host, ["ip6tables", ...rule.split(" ")]);
        }
        const again = runScript(ALLOWED_SESSION);
        assert.equal(again.code, 0, out(again));
        assert.deepEqual(chain("ip6tables", "FORWARD", "mangle"), [FORWARD6_JUMP]);
        assert.equal(probe(ns.client, CTR6, 8001), "");
    });

    it("IPv6 serving turned off (citadel:host.docker.ipv6 false): the DNAT chain is emptied and the route rules go, so IPv6 no longer reaches the gateway; on again, it does", (t) => {
        if (!requireReady(t)) return;
        const offConfig = parseConfigOrThrow(prodWith({ host: { docker: { ipv6: false } } }));
        const offPath = writeTemp(work, "firewall-v4only.sh", renderFirewall(offConfig).script);
        const off = onHost(["env", `SSH_CONNECTION=${ALLOWED_SESSION}`, "/bin/bash", offPath]);
        assert.equal(off.code, 0, out(off));
        assert.match(off.stdout, /removed undeclared: ufw route allow to fd17:c1ad:e1::10 port 443 proto tcp/, out(off));
        assert.deepEqual(chain("ip6tables", PUBLIC6_NAT_CHAIN, "nat"), []);
        assert.deepEqual(addedRules(), ufwRules(offConfig).map((x) => x.join(" ")).sort());
        assert.equal(probe(ns.client, HOST6_WAN, 443), "", "not served, the host's IPv6 443 still reached the gateway");
        assert.equal(probe(ns.host, HOST6_WAN, 443), "", "not served, the host's own connection to its IPv6 443 still reached the gateway");
        assert.equal(probe(ns.client, HOST.wan, 443), "ok 8443", "IPv4 is served either way");
        const on = runScript(ALLOWED_SESSION);
        assert.equal(on.code, 0, out(on));
        assert.deepEqual(chain("ip6tables", PUBLIC6_NAT_CHAIN, "nat"), public6NatRules());
        assert.equal(probe(ns.client, HOST6_WAN, 443), "ok 443");
    });

    it("a kernel without IPv6 NAT (Debian's alternatives pointed at ip6tables that lose the nat table): IPv4-only converges with no DNAT chain in after6.rules and survives ufw reload; without that branch (a fault) the step refuses; IPv6 served stops before any change", (t) => {
        if (!requireReady(t)) return;
        // The kernel is the machine's own, so its missing nat table is the one thing imitated: in the host's
        // overlaid /etc, the alternatives through which UFW, the script and the hook reach ip6tables point
        // at wrappers that hand every call to the real binary, except one touching the nat table, refused
        // as such a kernel refuses it.
        const real = (name: string) => fs.readlinkSync(`/etc/alternatives/${name}`);
        const wrapper = (name: string, body: string) => {
            const p = writeTemp(work, `no-nat-${name}`, `#!/bin/sh\n${body}\n`);
            fs.chmodSync(p, 0o755);
            return p;
        };
        const ip6 = wrapper("ip6tables", `refuse() { echo "ip6tables: can't initialize ip6tables table \\\`nat': Table does not exist" >&2; exit 3; }
prev=
for a in "$@"; do
    case "$a" in -tnat|--table=nat) refuse ;; esac
    case "$prev" in -t|--table) [ "$a" = nat ] && refuse ;; esac
    prev=$a
done
exec ${real("ip6tables")} "$@"`);
        const restore = wrapper("ip6tables-restore", `in=$(mktemp); trap 'rm -f "$in"' EXIT; cat >"$in"
if grep -qx '[*]nat' "$in"; then echo "ip6tables-restore: unable to initialize table 'nat'" >&2; exit 1; fi
${real("ip6tables-restore")} "$@" <"$in"`);
        const alternatives = path.join(work, "up", "alternatives");
        fs.mkdirSync(alternatives, { recursive: true });
        const swapped = ["ip6tables", "ip6tables-restore"].map((n) => path.join(alternatives, n));
        const after6 = () => onHost(["cat", "/etc/ufw/after6.rules"]).stdout;
        let restored: RunResult;
        try {
            fs.symlinkSync(ip6, swapped[0]);
            fs.symlinkSync(restore, swapped[1]);
            assert.notEqual(onHost(["ip6tables", "-t", "nat", "-S"]).code, 0, "the imitation must hide the nat table");
            assert.equal(onHost(["ip6tables", "-S", "INPUT"]).code, 0, "and only the nat table");

            const offConfig = parseConfigOrThrow(prodWith({ host: { docker: { ipv6: false } } }));
            const offScript = renderFirewall(offConfig).script;
            // The fault: the branch that leaves the nat section out of after6.rules removed.
            const branch = `sed -i '/^\\*nat$/,/^COMMIT$/d' "$CITADEL_TMP/block6"`;
            assert.ok(offScript.includes(branch), "the script's no-NAT branch moved: update this test");
            const before = after6();
            const faulty = onHost(["env", `SSH_CONNECTION=${ALLOWED_SESSION}`, "/bin/bash", writeTemp(work, "firewall-no-nat-fault.sh", offScript.replace(branch, ":"))]);
            assert.notEqual(faulty.code, 0, out(faulty));
            assert.match(faulty.stderr, /ip6tables-restore rejects the DOCKER-USER block .*unable to initialize table 'nat'/, out(faulty));
            assert.equal(after6(), before, "a refused block must leave after6.rules as it was");

            const off = onHost(["env", `SSH_CONNECTION=${ALLOWED_SESSION}`, "/bin/bash", writeTemp(work, "firewall-no-nat.sh", offScript)]);
            assert.equal(off.code, 0, out(off));
            assert.match(off.stderr, /warning: this kernel has no IPv6 NAT table: after6\.rules carries no DNAT chain/, out(off));
            assert.ok(!after6().split("\n").includes("*nat"), `after6.rules still carries a nat section:\n${after6()}`);
            assert.ok(after6().includes(`:${FORWARD6_CHAIN}`), "the IPv6 filtering (the mangle copy of DOCKER-USER) stays");
            ufwReload();
            assert.equal(probe(ns.client, HOST.wan, 443), "ok 8443", "IPv4 is served");
            const again = onHost(["env", `SSH_CONNECTION=${ALLOWED_SESSION}`, "/bin/bash", path.join(work, "firewall-no-nat.sh")]);
            assert.equal(again.code, 0, out(again));
            assert.equal(again.stdout.trim(), "citadel: firewall: unchanged", `a second run must change nothing: ${out(again)}`);

            // Serving IPv6 needs the table: the step says which key to set, before any change.
            const served = after6();
            const rules = addedRules();
            const on = runScript(ALLOWED_SESSION);
            assert.notEqual(on.code, 0, out(on));
            assert.match(on.stderr, /no usable IPv6 \(ip6tables -t nat -S fails\).*citadel:host\.docker\.ipv6/, out(on));
            assert.equal(after6(), served, "nothing changed before the refusal: after6.rules");
            assert.deepEqual(addedRules(), rules, "nothing changed before the refusal: the UFW rules");
        } finally {
            for (const p of swapped) fs.rmSync(p, { force: true });
            // The real kernel again: IPv6 served (also when an assertion above failed, for the tests after this one).
            restored = runScript(ALLOWED_SESSION);
        }
        assert.equal(restored.code, 0, out(restored));
        assert.match(restored.stdout, /DOCKER-USER block in \/etc\/ufw\/after6\.rules/, out(restored));
        assert.match(restored.stdout, /added: ufw route allow to fd17:c1ad:e1::10 port 443/, out(restored));
        assert.ok(after6().split("\n").includes("*nat"), "after6.rules carries the DNAT chain again");
        assert.deepEqual(chain("ip6tables", PUBLIC6_NAT_CHAIN, "nat"), public6NatRules());
        assert.equal(probe(ns.client, HOST6_WAN, 443), "ok 443");
    });

    it("the rule set before issue 12 (outside = the default route's interface) leaves the second interface open", (t) => {
        if (!requireReady(t)) return;
        const old = run("ip", ["netns", "exec", ns.host, "iptables-restore", "--noflush"], { input: OLD_RULES_WAN7 });
        assert.equal(old.code, 0, out(old));
        try {
            assert.equal(probe(ns.client, HOST.wan, 8001), "", "the old rules did filter the default route's interface");
            assert.equal(probe(ns.client2, HOST.priv, 8001), "ok 8001", "the hole: 8001 through the second interface");
        } finally {
            ufwReload();
        }
        assert.deepEqual(chain("iptables"), dockerUserRules(4));
        assert.equal(probe(ns.client2, HOST.priv, 8001), "", "closed again with Citadel's block");
    });

    function dropCount(): number {
        const r = inNs(ns.host, ["iptables", "-L", "DOCKER-USER", "-v", "-x", "-n"]);
        const line = r.stdout.split("\n").find((l) => /\bDROP\b/.test(l) && !/match-set/.test(l));
        return line ? Number(line.trim().split(/\s+/)[0]) : -1;
    }

    it("second run reports unchanged", (t) => {
        if (!requireReady(t)) return;
        const r = runScript(ALLOWED_SESSION);
        assert.equal(r.code, 0, out(r));
        assert.equal(r.stdout.trim(), "citadel: firewall: unchanged", out(r));
    });

    it("removes an operator's stray rules (e.g. `ufw allow 8001`) and restores a tampered block", (t) => {
        if (!requireReady(t)) return;
        for (const cmd of [
            ["ufw", "allow", "8001"],
            ["ufw", "insert", "1", "deny", "from", "203.0.113.0/24", "comment", "stray rule"],
        ]) {
            const r = onHost(cmd);
            assert.equal(r.code, 0, out(r));
        }
        const tamper = onHost(["sed", "-i", "s/^-A DOCKER-USER -j DROP$/-A DOCKER-USER -j ACCEPT/", "/etc/ufw/after.rules"]);
        assert.equal(tamper.code, 0, out(tamper));
        const r = runScript(ALLOWED_SESSION);
        assert.equal(r.code, 0, out(r));
        assert.match(r.stdout, /removed undeclared: ufw allow 8001$/m);
        assert.match(r.stdout, /removed undeclared: ufw deny from 203\.0\.113\.0\/24 comment 'stray rule'$/m);
        assert.match(r.stdout, /DOCKER-USER block in \/etc\/ufw\/after\.rules/);
        assert.deepEqual(addedRules(), ufwRules(prod).map((x) => x.join(" ")).sort());
        assert.equal(probe(ns.client, HOST.wan, 8001), "");
        const again = runScript(ALLOWED_SESSION);
        assert.equal(again.stdout.trim(), "citadel: firewall: unchanged", out(again));
    });

    it("re-loads DOCKER-USER when the live chain was flushed behind UFW's back", (t) => {
        if (!requireReady(t)) return;
        const flush = inNs(ns.host, ["iptables", "-F", "DOCKER-USER"]);
        assert.equal(flush.code, 0, out(flush));
        assert.equal(probe(ns.client, HOST.wan, 8001), "ok 8001", "control: with DOCKER-USER empty, 8001 is open again");
        const r = runScript(ALLOWED_SESSION);
        assert.equal(r.code, 0, out(r));
        assert.match(r.stdout, /reloaded UFW: the DOCKER-USER rules were missing/);
        assert.equal(probe(ns.client, HOST.wan, 8001), "");
    });

    it("SSH open to all (the default): a stranger is limited, a source that logged in with a key is not; back to admin CIDRs removes the exemption", async (t) => {
        if (!requireReady(t)) return;
        // sshd stand-in on the host's port 22 (what matters here is whether a new connection gets through).
        children.push(spawn("ip", ["netns", "exec", ns.host, "node", "-e", DUAL_SERVER_JS, "22"], { stdio: "ignore" }));
        /** New connections from `from` in a row, each waited for: how many got through. */
        const burst = (from: string, to: string, n = 10): boolean[] => Array.from({ length: n }, () => probe(from, to, 22) === "ok 22");
        /** UFW's limit: from the 6th new connection in 30 s on, refused. */
        const limited = (got: boolean[]) => got.slice(6).every((ok) => !ok);
        const list = () => onHost(["cat", `/proc/net/xt_recent/${SSH_KEYED_LIST}`]).stdout;
        const hook = (env: Record<string, string>) => onHost(["env", ...Object.entries(env).map(([k, v]) => `${k}=${v}`), "/bin/sh", SSH_KEYED_HOOK]);

        // An operator's line in before.rules that would not load: the new file is tried in a scratch
        // namespace first, and nothing is changed (a failed `ufw reload` would leave UFW off at boot).
        const limitedPath = writeTemp(work, "firewall-limited.sh", limitedScript.script);
        const bad = onHost(["sed", "-i", "/^COMMIT$/i -A ufw-before-input -p tcp --dport 2 -m nosuchmatch -j ACCEPT", "/etc/ufw/before.rules"]);
        assert.equal(bad.code, 0, out(bad));
        const beforeRules = onHost(["cat", "/etc/ufw/before.rules"]).stdout;
        const refused = onHost(["env", `SSH_CONNECTION=${CLIENT} 50022 ${HOST.wan} 22`, "/bin/bash", limitedPath]);
        assert.notEqual(refused.code, 0, out(refused));
        assert.match(refused.stderr, /the new \/etc\/ufw\/before\.rules does not load \(\/etc\/ufw\/before\.rules left unchanged/, out(refused));
        assert.equal(onHost(["cat", "/etc/ufw/before.rules"]).stdout, beforeRules, "before.rules untouched");
        assert.ok(!addedRules().includes("limit 22/tcp"), "nothing of the new rule set applied");
        const fixed = onHost(["sed", "-i", "/nosuchmatch/d", "/etc/ufw/before.rules"]);
        assert.equal(fixed.code, 0, out(fixed));

        // The deploy runs the step from CLIENT: it must seed its own source (the steps after it, the Docker
        // provider's parallel dials, come from there before any new session could run the PAM hook).
        const r = onHost(["env", `SSH_CONNECTION=${CLIENT} 50022 ${HOST.wan} 22`, "/bin/bash", limitedPath]);
        assert.equal(r.code, 0, out(r));
        assert.ok(addedRules().includes("limit 22/tcp"), "SSH is rate-limited");
        assert.ok(await waitFor(() => onHost(["ss", "-Htln", "sport = :22"]).stdout.includes(":22"), 10_000), "no listener on the host's port 22");
        assert.ok(chain("iptables", "ufw-before-input").includes(sshKeyedRule(4)), "the exemption rule is loaded (IPv4)");
        assert.ok(chain("ip6tables", "ufw6-before-input").includes(sshKeyedRule(6)), "the exemption rule is loaded (IPv6)");
        assert.match(onHost(["cat", PAM_SSHD_PATH]).stdout, new RegExp(`^session optional pam_exec\\.so quiet ${SSH_KEYED_HOOK}$`, "m"));
        assert.match(list(), new RegExp(`^src=${CLIENT.replace(/\./g, "\\.")} `, "m"), "the deploying session's source is in the list");

        assert.deepEqual(burst(ns.client, HOST.wan), Array(10).fill(true), "the deploying source: every new connection gets through");
        const stranger = burst(ns.client2, HOST.priv);
        assert.ok(stranger[0] && limited(stranger), `a stranger gets in, then is limited (6 in 30 s): ${stranger}`);

        // IPv6: a stranger taking turns among the addresses of its /64, one new connection from each, is
        // limited as one source (UFW's own limit counts per address and would let every one through).
        assert.deepEqual(chain("ip6tables", "ufw6-before-input").filter((l) => sshKeyedRules(6).includes(l)), sshKeyedRules(6), "the exemption and the per-/64 limit are loaded, in order");
        const walk6 = (): boolean[] =>
            Array.from({ length: 10 }, (_, i) => inNs(ns.client2, ["node", "-e", PROBE_FROM_JS, HOST6_PRIV, "22", client2v6(i)], { timeout: 10_000 }).stdout.trim() === "ok 22");
        const walked = walk6();
        assert.ok(walked[0] && limited(walked), `an IPv6 /64 gets in, then is limited (6 in 30 s across its addresses): ${walked}`);
        // The fault: the per-/64 rules taken out of the live chain. The same walk (each address now at its
        // second connection, far below UFW's 6) gets through entirely; a reload puts the rules back.
        for (const rule of sshNetLimitRules6()) {
            const del = inNs(ns.host, ["ip6tables", ...rule.replace(/^-A /, "-D ").split(" ")]);
            assert.equal(del.code, 0, out(del));
        }
        assert.deepEqual(walk6(), Array(10).fill(true), "without the per-/64 rules, UFW's per-address limit lets the walking /64 through");
        ufwReload();
        assert.deepEqual(chain("ip6tables", "ufw6-before-input").filter((l) => sshKeyedRules(6).includes(l)), sshKeyedRules(6), "a reload loads them again");

        // The fault: the list emptied (as at a boot with nothing recorded) and no session since: the deployer is
        // throttled like anyone, which is what closed the Docker provider's dials.
        const flush = onHost(["/bin/sh", "-c", `echo / > /proc/net/xt_recent/${SSH_KEYED_LIST}`]);
        assert.equal(flush.code, 0, out(flush));
        const throttled = burst(ns.client, HOST.wan);
        assert.ok(throttled[0] && limited(throttled), `without the exemption the deployer is limited too: ${throttled}`);

        // The PAM hook (as pam_exec runs it) exempts a source on session open only, and only an address.
        const ignored: Record<string, string>[] = [{ PAM_TYPE: "auth", PAM_RHOST: CLIENT2 }, { PAM_TYPE: "open_session", PAM_RHOST: "client2.example" }, { PAM_TYPE: "open_session" }];
        for (const env of ignored) {
            const h = hook(env);
            assert.equal(h.code, 0, out(h));
        }
        assert.equal(list().trim(), "", "another PAM phase, a host name, no address: nothing added");
        const h = hook({ PAM_TYPE: "close_session", PAM_RHOST: CLIENT2 });
        assert.equal(h.code, 0, out(h));
        assert.deepEqual(burst(ns.client2, HOST.priv), Array(10).fill(true), "a source whose session closed (or opened) is exempt, although it was limited a moment ago");
        assert.ok(limited(burst(ns.client, HOST.wan)), "the other source is still limited");

        // A reload (or a boot) empties the kernel list; UFW's after.init puts back every source the hook
        // recorded within the window. A record older than the window is dropped instead.
        const record = (addr: string) => `${SSH_KEYED_STATE_DIR}/${addr}`;
        assert.equal(onHost(["stat", "-c", "%a %u", SSH_KEYED_STATE_DIR]).stdout.trim(), "700 0", "the records are root's alone");
        assert.equal(onHost(["test", "-f", record(CLIENT2)]).code, 0, "the hook recorded the source");
        const aged = onHost(["touch", "-d", "2 days ago", record(CLIENT)]);
        assert.equal(aged.code, 0, out(aged));
        ufwReload();
        assert.match(list(), new RegExp(`^src=${CLIENT2.replace(/\./g, "\\.")} `, "m"), "after a reload, after.init put the recorded source back");
        assert.doesNotMatch(list(), new RegExp(`^src=${CLIENT.replace(/\./g, "\\.")} `, "m"), "a record older than the window is not restored");
        assert.notEqual(onHost(["test", "-e", record(CLIENT)]).code, 0, "and it is removed");
        assert.deepEqual(burst(ns.client2, HOST.priv), Array(10).fill(true), "the restored source is exempt after the reload");

        // A second run changes nothing; admin CIDRs again: the exemption is gone (rules, PAM, hook).
        const again = onHost(["env", `SSH_CONNECTION=${CLIENT} 50022 ${HOST.wan} 22`, "/bin/bash", limitedPath]);
        assert.equal(again.code, 0, out(again));
        assert.match(again.stdout, /citadel: firewall: unchanged$/m, out(again));
        const back = runScript(ALLOWED_SESSION);
        assert.equal(back.code, 0, out(back));
        assert.ok(!chain("iptables", "ufw-before-input").some((l) => l.includes(SSH_KEYED_LIST)), "no exemption rule left");
        for (const f of ["/etc/ufw/before.rules", "/etc/ufw/before6.rules", PAM_SSHD_PATH]) assert.ok(!onHost(["cat", f]).stdout.includes(KEYED_BEGIN), `no Citadel block left in ${f}`);
        assert.notEqual(onHost(["test", "-e", SSH_KEYED_HOOK]).code, 0, "the hook is removed");
        assert.notEqual(onHost(["test", "-e", SSH_KEYED_STATE_DIR]).code, 0, "its records are removed");
        assert.ok(!addedRules().includes("limit 22/tcp"));
        assert.match(runScript(ALLOWED_SESSION).stdout, /citadel: firewall: unchanged$/m, "back to admin CIDRs, a second run changes nothing");
    });

    it("day two: a stale exemption rule is reloaded away; UFW off at boot (ENABLED=no after a failed reload) stops the step", (t) => {
        if (!requireReady(t)) return;
        // A run that removed the block from before.rules but stopped before the reload: the rule is still live.
        const stale = inNs(ns.host, ["sh", "-c", `iptables ${sshKeyedRule(4)}`]);
        assert.equal(stale.code, 0, out(stale));
        const r = runScript(ALLOWED_SESSION);
        assert.equal(r.code, 0, out(r));
        assert.match(r.stdout, /reloaded UFW: an SSH limit exemption rule was still loaded/, out(r));
        assert.ok(!chain("iptables", "ufw-before-input").includes(sshKeyedRule(4)), "the stale rule is gone");
        assert.match(runScript(ALLOWED_SESSION).stdout, /citadel: firewall: unchanged$/m);
        // ufw.conf without ENABLED=yes while `ufw status` still says active: no firewall after the next boot.
        const off = onHost(["sed", "-i", "s/^ENABLED=yes$/ENABLED=no/", "/etc/ufw/ufw.conf"]);
        assert.equal(off.code, 0, out(off));
        const refused = runScript(ALLOWED_SESSION);
        assert.notEqual(refused.code, 0, out(refused));
        assert.match(refused.stderr, /UFW is not enabled at boot \(ENABLED=yes missing from \/etc\/ufw\/ufw\.conf/, out(refused));
        const on = onHost(["sed", "-i", "s/^ENABLED=no$/ENABLED=yes/", "/etc/ufw/ufw.conf"]);
        assert.equal(on.code, 0, out(on));
        const again = runScript(ALLOWED_SESSION);
        assert.equal(again.code, 0, out(again));
        assert.match(again.stdout, /citadel: firewall: unchanged$/m, out(again));
    });

    it("the after.init hook is harmless without the bouncer's sets (boot: UFW starts first)", (t) => {
        if (!requireReady(t) || !requireTools(t, "ipset")) return;
        const sets = inNs(ns.host, ["ipset", "list", "-n"]);
        assert.equal(sets.stdout.trim(), "", "no ipset yet in the host namespace");
        const before = [chain("iptables", "INPUT"), chain("iptables")];
        const r = onHost(["/bin/sh", AFTER_INIT_PATH, "start"]);
        assert.equal(r.code, 0, out(r));
        assert.deepEqual([chain("iptables", "INPUT"), chain("iptables")], before);
    });

    // ----- bans: the real CrowdSec firewall bouncer, banning CLIENT; CLIENT2 is the address still served.

    const bouncerLog = () => {
        const f = path.join(work, "crowdsec-firewall-bouncer.log");
        return fs.existsSync(f) ? fs.readFileSync(f, "utf8") : "";
    };
    /** Starts the bouncer and waits until this start has set up its rules (its log says it pulls decisions) and enforces the ban. */
    async function startBouncer(): Promise<void> {
        const pulls = () => bouncerLog().split("Processing new and deleted decisions").length;
        const before = pulls();
        // nsenter execs the bouncer itself (`ip netns exec` forks and waits): the SIGTERM of stopBouncer
        // reaches the bouncer, as systemd's would, and it cleans up on the way out.
        bouncer = spawn("nsenter", [`--net=/var/run/netns/${ns.host}`, "crowdsec-firewall-bouncer", "-c", bouncerConfig], { stdio: "ignore" });
        const ok = await waitFor(() => {
            if (pulls() === before) return false;
            const set = inNs(ns.host, ["ipset", "list", BOUNCER_IPSETS[4]]);
            return set.code === 0 && set.stdout.split("\n").some((l) => l.startsWith(`${CLIENT} `)) && chain("iptables").includes(banRule(4));
        }, 30_000);
        assert.ok(ok, `the bouncer did not enforce the ban:\n${bouncerLog().slice(-3000)}`);
        // What the bouncer's unit does once it is ready (ExecStartPost, the drop-in): UFW's after.init again.
        const post = onHost([AFTER_INIT_PATH, "start"]);
        assert.equal(post.code, 0, out(post));
    }
    async function stopBouncer(post = true): Promise<void> {
        const b = bouncer;
        if (!b || b.exitCode !== null || b.signalCode !== null) return;
        const gone = new Promise((res) => b.once("exit", res));
        b.kill("SIGTERM");
        await Promise.race([gone, new Promise((res) => setTimeout(res, 10_000))]);
        if (b.exitCode === null && b.signalCode === null) b.kill("SIGKILL");
        // What the bouncer's unit does once it stopped (ExecStopPost, the drop-in).
        if (!post) return;
        const r = onHost(["/bin/sh", "-c", bouncerStopPost()]);
        assert.equal(r.code, 0, out(r));
    }
    /** How often the ban rule is in each of the bouncer's chains: [family 4 per chain..., family 6 per chain...]. */
    function banRuleCounts(): number[] {
        const mangle6 = chain("ip6tables", FORWARD6_CHAIN, "mangle").filter((l) => l === banRule(6, FORWARD6_CHAIN)).length;
        return [...([4, 6] as const).flatMap((f) => BOUNCER_CHAINS.map((c) => chain(f === 4 ? "iptables" : "ip6tables", c).filter((l) => l === banRule(f, c)).length)), mangle6];
    }
    /** Banned CLIENT gets nothing from the gateway port, CLIENT2 is served. */
    function bannedOnly(when: string): void {
        assert.equal(probe(ns.client, HOST.wan, 443), "", `${when}: the banned address reached the gateway`);
        assert.equal(probe(ns.client2, HOST.priv, 443), "ok 8443", `${when}: an address that is not banned must be served`);
        assert.equal(probe(ns.client, HOST6_WAN, 443), "", `${when}: an address of the banned IPv6 /64 reached the gateway`);
        assert.equal(inNs(ns.client2, ["node", "-e", PROBE_FROM_JS, HOST6_PRIV, "443", client2v6(0)], { timeout: 10_000 }).stdout.trim(), "ok 443", `${when}: an IPv6 address that is not banned must be served`);
    }

    it("bans survive `ufw reload`: after.init puts the bouncer's rule back in front of DOCKER-USER", async (t) => {
        if (!requireReady(t) || !requireTools(t, "ipset", "crowdsec-firewall-bouncer")) return;
        children.push(spawn("ip", ["netns", "exec", ns.host, "node", "-e", LAPI_JS, String(lapiPort), CLIENT, CLIENT6_NET], { stdio: "ignore" }));
        await startBouncer();
        bannedOnly("bouncer started");
        assert.equal(chain("iptables")[0], banRule(4), "the bouncer inserts its rule first");
        ufwReload();
        assert.equal(chain("iptables")[0], banRule(4), "after `ufw reload` the ban rule must be first in DOCKER-USER again");
        assert.deepEqual(chain("iptables").slice(1), dockerUserRules(4));
        assert.deepEqual(banRuleCounts(), [1, 1, 1, 1, 1], "exactly one ban rule per chain and family (ufw-init runs the hook more than once)");
        bannedOnly("after ufw reload");
    });

    it("without the hook (Debian's after.init) a `ufw reload` lets the banned address through; the script puts the hook back", (t) => {
        if (!requireReady(t) || !requireTools(t, "ipset", "crowdsec-firewall-bouncer")) return;
        const stock = onHost(["/bin/sh", "-c", `cp /usr/share/ufw/after.init ${AFTER_INIT_PATH} && chmod 0640 ${AFTER_INIT_PATH}`]);
        assert.equal(stock.code, 0, out(stock));
        ufwReload();
        assert.ok(!chain("iptables").includes(banRule(4)), "control: the reload flushed the bouncer's rule from DOCKER-USER");
        assert.ok(chain("iptables", "INPUT").includes(banRule(4, "INPUT")), "INPUT keeps it (UFW does not flush built-in chains)");
        assert.equal(probe(ns.client, HOST.wan, 443), "ok 8443", "the hole: a banned address reaches the gateway");
        const r = runScript(ALLOWED_SESSION);
        assert.equal(r.code, 0, out(r));
        assert.match(r.stdout, /^citadel: firewall: CrowdSec ban-rule hook in \/etc\/ufw\/after\.init$/m, out(r));
        assert.deepEqual(banRuleCounts(), [1, 1, 1, 1, 1]);
        bannedOnly("after the script");
        const again = runScript(ALLOWED_SESSION);
        assert.equal(again.stdout.trim(), "citadel: firewall: unchanged", out(again));
    });

    it("bans survive a bouncer restart and `ufw disable` + `ufw enable`, without duplicate rules", async (t) => {
        if (!requireReady(t) || !requireTools(t, "ipset", "crowdsec-firewall-bouncer")) return;
        // The bouncer re-makes its sets when it starts; Citadel's mangle rule must not keep the IPv6 one
        // in use then (lifted bans would stay in it). Without the unit's ExecStopPost (a fault) the
        // bouncer's start cannot destroy it; with it, it can.
        const logSince = (mark: number) => bouncerLog().slice(mark);
        const inUse = /cannot be destroyed|in use by a kernel component/;
        await stopBouncer(false);
        let mark = bouncerLog().length;
        await startBouncer();
        assert.match(logSince(mark), inUse, `control: with Citadel's rule still in mangle, the bouncer's start cannot destroy its IPv6 set:\n${logSince(mark).slice(-1500)}`);
        await stopBouncer();
        assert.deepEqual(chain("ip6tables", FORWARD6_CHAIN, "mangle"), forward6Rules(), "ExecStopPost took the ban rule out of the mangle copy");
        mark = bouncerLog().length;
        await startBouncer();
        assert.doesNotMatch(logSince(mark), inUse, `the bouncer's start could not destroy its IPv6 set:\n${logSince(mark).slice(-1500)}`);
        await stopBouncer();
        await startBouncer();
        assert.deepEqual(banRuleCounts(), [1, 1, 1, 1, 1]);
        bannedOnly("bouncer restarted");
        for (const cmd of [
            ["ufw", "disable"],
            ["ufw", "--force", "enable"],
        ]) {
            const r = onHost(cmd);
            assert.equal(r.code, 0, out(r));
        }
        assert.equal(chain("iptables")[0], banRule(4));
        assert.deepEqual(banRuleCounts(), [1, 1, 1, 1, 1]);
        bannedOnly("ufw disabled and enabled");
        ufwReload();
        await stopBouncer();
        await startBouncer();
        assert.deepEqual(banRuleCounts(), [1, 1, 1, 1, 1], "the bouncer's clean-up removes the hook's copy too");
        bannedOnly("reload, then bouncer restarted");
    });

    it("fails loudly when after.init never reaches Citadel's block (an operator's `exit` before it)", (t) => {
        if (!requireReady(t) || !requireTools(t, "ipset", "crowdsec-firewall-bouncer")) return;
        // The operator's hook ends with `exit 0`: the block the script appends is never run.
        const own = onHost(["/bin/sh", "-c", `printf '#!/bin/sh\\n# operator hook\\nexit 0\\n' > ${AFTER_INIT_PATH} && chmod 0750 ${AFTER_INIT_PATH}`]);
        assert.equal(own.code, 0, out(own));
        const r = runScript(ALLOWED_SESSION);
        assert.notEqual(r.code, 0, out(r));
        assert.match(r.stderr, /citadel: firewall: the CrowdSec ban rule is missing from iptables:DOCKER-USER ip6tables:DOCKER-USER ip6tables:mangle:CITADEL-FORWARD6 although UFW just ran \/etc\/ufw\/after\.init/, out(r));
        assert.match(onHost(["cat", AFTER_INIT_PATH]).stdout, /^# operator hook$/m, "the operator's own lines are kept");
        // Repaired (the exit removed): the next run converges, the ban is enforced again.
        const fix = onHost(["sed", "-i", "/^exit 0$/d", AFTER_INIT_PATH]);
        assert.equal(fix.code, 0, out(fix));
        const ok = runScript(ALLOWED_SESSION);
        assert.equal(ok.code, 0, out(ok));
        bannedOnly("after.init repaired");
    });
});
