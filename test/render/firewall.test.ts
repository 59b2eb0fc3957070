// The firewall step, judged by the real tools: shellcheck, ufw's own address normaliser,
// iptables-restore / ip6tables-restore, and the whole script run for real inside network namespaces.
//
// Isolation: the script runs in a network namespace of its own ("host") wired by veth pairs to a
// "client" namespace (the Internet, behind the host's default route on an interface called wan7, so
// nothing can pass by assuming eth0) and a "container" namespace (behind dock0, like docker0). It
// runs in a private mount namespace with an overlay over /etc, so ufw writes its config into a temp
// dir and its iptables rules into the test namespace: this machine's /etc/ufw and firewall are never
// touched. Everything is torn down in `after`, also when a test fails.
import assert from "node:assert/strict";
import { ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import type { TestContext } from "node:test";
import { parseConfigOrThrow } from "../../components/config";
import {
    AFTER_RULES_BEGIN,
    AFTER_RULES_END,
    dockerUserBlock,
    EXT_IF_PLACEHOLDER,
    renderFirewall,
    ufwAddress,
    ufwRules,
} from "../../components/render/firewall";
import { prodConfig, prodWith } from "../fixtures";
import { requireTool, run, RunResult, tmpDir, waitFor, which, requireRoot as requireRootAs, requireTools, shellcheck } from "../tools";

const prod = prodConfig();
const prodScript = renderFirewall(prod);
// SSH from anywhere, plain allow, a single denied port: the other branches of the renderer.
const openConfig = parseConfigOrThrow(
    prodWith({ admin: { ...prod.admin, sourceIps: [] }, firewall: { sshRateLimit: false, denyPorts: { from: 9000, to: 9000 } } }),
);
const openScript = renderFirewall(openConfig);

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
                "deny 8001:8012/tcp",
                "deny 8001:8012/udp",
            ],
        );
        assert.deepEqual(
            ufwRules(openConfig).map((r) => r.join(" ")),
            ["allow 22/tcp", "allow 80/tcp", "allow 443/tcp", "deny 9000/tcp", "deny 9000/udp"],
        );
        const openLimited = parseConfigOrThrow(prodWith({ admin: { ...prod.admin, sourceIps: [] } }));
        assert.equal(ufwRules(openLimited)[0].join(" "), "limit 22/tcp", "SSH open to all is rate-limited by default");
    });

    it("puts no address or interface of this machine into the block, only the placeholder", () => {
        const block = dockerUserBlock(4);
        assert.ok(block.startsWith(AFTER_RULES_BEGIN + "\n"));
        assert.ok(block.trimEnd().endsWith(AFTER_RULES_END));
        assert.ok(block.includes(`! -i ${EXT_IF_PLACEHOLDER} -j RETURN`));
        assert.ok(!/\beth0\b/.test(block), "the external interface must come from the default route at run time");
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
    it("accepts both families with a real interface name", (t) => {
        if (!requireRoot(t) || !requireTools(t, "unshare", "iptables-restore", "ip6tables-restore")) return;
        for (const [bin, family] of [
            ["iptables-restore", 4],
            ["ip6tables-restore", 6],
        ] as const) {
            const r = restoreTest(bin, dockerUserBlock(family, "wan7"));
            assert.equal(r.code, 0, `${bin}: ${out(r)}`);
        }
    });
    it("rejects corrupted variants (bad port, over-long interface name, the unfilled placeholder)", (t) => {
        if (!requireRoot(t) || !requireTools(t, "unshare", "iptables-restore", "ip6tables-restore")) return;
        const good = dockerUserBlock(4, "wan7");
        const variants = {
            "bad port": good.replace("--ctorigdstport 443", "--ctorigdstport 4x3"),
            "interface name over 15 chars": dockerUserBlock(4, "interface-name-too-long"),
            "placeholder left in": dockerUserBlock(4),
        };
        for (const [what, rules] of Object.entries(variants)) {
            assert.notEqual(rules, good);
            const r = restoreTest("iptables-restore", rules);
            assert.notEqual(r.code, 0, `iptables-restore accepted the ${what} variant`);
        }
        const r6 = restoreTest("ip6tables-restore", dockerUserBlock(6, "wan7").replace("--ctorigdstport 80 ", "--ctorigdstport 8o "));
        assert.notEqual(r6.code, 0, "ip6tables-restore accepted a bad port");
    });
});

// ---------------------------------------------------------------------------------------------
// Behaviour: the real script, real ufw, real packets.
// ---------------------------------------------------------------------------------------------

// Mount an overlay over /etc (writes land in $1/up), then exec the command.
const OVERLAY_SETUP = 'set -e; mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1/up,workdir=$1/work" /etc; shift; exec "$@"';
// A tiny TCP server: answers "ok <port>" on every port given, exits by itself after 50 s at the latest.
const SERVER_JS = `const net = require("net");
for (const p of process.argv.slice(1)) net.createServer((s) => s.end("ok " + p + "\\n")).listen(Number(p), "0.0.0.0");
setTimeout(() => process.exit(0), 50000);`;
const ALLOWED_SESSION = "203.0.113.5 50022 198.51.100.1 22"; // inside admin.sourceIps 203.0.113.0/24
const FOREIGN_SESSION = "198.51.100.99 50022 198.51.100.1 22"; // outside every admin CIDR

describe("the firewall script in network namespaces", { concurrency: false }, () => {
    const id = `${process.pid}`;
    const ns = { host: `citadel-test-fw-h-${id}`, client: `citadel-test-fw-c-${id}`, ctr: `citadel-test-fw-k-${id}` };
    const created: string[] = [];
    const servers: ChildProcess[] = [];
    let work = "";
    let ready = false;
    let scriptPath = "";

    function ip(...args: string[]): void {
        const r = run("ip", args);
        if (r.code !== 0) throw new Error(`ip ${args.join(" ")}: ${out(r)}`);
    }
    function inNs(name: string, cmd: string[], opts: { env?: NodeJS.ProcessEnv; timeout?: number } = {}): RunResult {
        return run("ip", ["netns", "exec", name, ...cmd], { timeout: opts.timeout ?? 60_000, env: opts.env });
    }
    /** A command in the host namespace with the overlaid /etc (state persists in `work` between calls). */
    function onHost(cmd: string[], env: Record<string, string> = {}): RunResult {
        return inNs(ns.host, ["unshare", "-m", "--propagation", "private", "--", "/bin/sh", "-c", OVERLAY_SETUP, "sh", work, ...cmd], {
            env: { ...process.env, SSH_CONNECTION: "", ...env },
        });
    }
    function runScript(session: string): RunResult {
        return onHost(["env", `SSH_CONNECTION=${session}`, "/bin/bash", scriptPath]);
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

    before(() => {
        if (process.getuid?.() !== 0) return;
        if (!["ip", "unshare", "ufw", "iptables", "node", "timeout"].every((b) => which(b))) return;
        work = tmpDir("citadel-fw-");
        fs.mkdirSync(path.join(work, "up"));
        fs.mkdirSync(path.join(work, "work"));
        scriptPath = writeTemp(work, "firewall.sh", prodScript.script);
        for (const name of Object.values(ns)) {
            ip("netns", "add", name);
            created.push(name);
        }
        // client (the Internet) <-> host: the host's default route leaves through wan7.
        ip("link", "add", "wan7", "netns", ns.host, "type", "veth", "peer", "name", "eth0", "netns", ns.client);
        // host <-> "container" behind dock0 (the part of Docker that matters here: a routed bridge).
        ip("link", "add", "dock0", "netns", ns.host, "type", "veth", "peer", "name", "eth0", "netns", ns.ctr);
        for (const n of Object.values(ns)) ip("-n", n, "link", "set", "lo", "up");
        ip("-n", ns.host, "addr", "add", "198.51.100.1/24", "dev", "wan7");
        ip("-n", ns.host, "addr", "add", "172.30.0.1/24", "dev", "dock0");
        ip("-n", ns.client, "addr", "add", "198.51.100.2/24", "dev", "eth0");
        ip("-n", ns.ctr, "addr", "add", "172.30.0.2/24", "dev", "eth0");
        for (const [n, dev] of [
            [ns.host, "wan7"],
            [ns.host, "dock0"],
            [ns.client, "eth0"],
            [ns.ctr, "eth0"],
        ]) {
            ip("-n", n, "link", "set", dev, "up");
        }
        ip("-n", ns.host, "route", "add", "default", "via", "198.51.100.2");
        ip("-n", ns.client, "route", "add", "default", "via", "198.51.100.1");
        ip("-n", ns.ctr, "route", "add", "default", "via", "172.30.0.1");
        const fwd = inNs(ns.host, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        if (fwd.code !== 0) throw new Error(out(fwd));
        // What Docker sets up for `-p 443:8443 -p 8001:8001` (userland-proxy off): DNAT, a jump to
        // DOCKER-USER first in FORWARD, then its ACCEPT rules for the bridge. DOCKER-USER starts empty.
        const docker = [
            "*nat",
            "-A PREROUTING -i wan7 -p tcp --dport 443 -j DNAT --to-destination 172.30.0.2:8443",
            "-A PREROUTING -i wan7 -p tcp --dport 8001 -j DNAT --to-destination 172.30.0.2:8001",
            "COMMIT",
            "*filter",
            ":DOCKER-USER - [0:0]",
            "-A FORWARD -j DOCKER-USER",
            "-A FORWARD -o dock0 -j ACCEPT",
            "-A FORWARD -i dock0 -j ACCEPT",
            "COMMIT",
            "",
        ].join("\n");
        const r = run("ip", ["netns", "exec", ns.host, "iptables-restore", "--noflush"], { input: docker });
        if (r.code !== 0) throw new Error(out(r));
        servers.push(spawn("ip", ["netns", "exec", ns.ctr, "node", "-e", SERVER_JS, "8443", "8001", "9443"], { stdio: "ignore" }));
        servers.push(spawn("ip", ["netns", "exec", ns.client, "node", "-e", SERVER_JS, "7000"], { stdio: "ignore" }));
        ready = true;
    });

    after(() => {
        for (const s of servers) if (s.pid && s.exitCode === null) s.kill("SIGKILL");
        for (const name of created) run("ip", ["netns", "del", name]);
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    function requireReady(t: TestContext): boolean {
        if (!requireRoot(t) || !requireTools(t, "ip", "unshare", "ufw", "iptables", "node", "timeout")) return false;
        assert.ok(ready, "namespace setup failed");
        return true;
    }

    it("control: before the script, a published app port (8001) is reachable from outside", async (t) => {
        if (!requireReady(t)) return;
        assert.ok(await waitFor(() => probe(ns.client, "198.51.100.1", 8001) === "ok 8001", 10_000), "the test topology does not forward 8001");
        assert.equal(probe(ns.client, "198.51.100.1", 443), "ok 8443");
    });

    it("refuses to run from an SSH session outside admin.sourceIps, and changes nothing", (t) => {
        if (!requireReady(t)) return;
        const afterRules = () => onHost(["cat", "/etc/ufw/after.rules", "/etc/ufw/ufw.conf"]).stdout;
        const before = { rules: addedRules(), files: afterRules() };
        const r = runScript(FOREIGN_SESSION);
        assert.notEqual(r.code, 0, out(r));
        assert.match(r.stderr, /^citadel: firewall: refusing .*198\.51\.100\.99.*lock you out/m);
        assert.deepEqual(addedRules(), before.rules);
        assert.equal(afterRules(), before.files);
    });

    it("first run: converges UFW, enables it, and loads DOCKER-USER for the default-route interface", (t) => {
        if (!requireReady(t)) return;
        // Start from a host whose UFW ignores IPv6 (IPV6=no would leave IPv6 unfiltered).
        const v6off = onHost(["sed", "-i", "s/^IPV6=.*/IPV6=no/", "/etc/default/ufw"]);
        assert.equal(v6off.code, 0, out(v6off));
        const r = runScript(ALLOWED_SESSION);
        assert.equal(r.code, 0, out(r));
        assert.match(r.stdout, /^citadel: firewall: changed$/m);
        assert.match(r.stdout, /^citadel: firewall: IPV6=yes in \/etc\/default\/ufw$/m);
        // The SSH rules are added before UFW is enabled (the order of the step's report).
        const lines = r.stdout.split("\n");
        const firstSsh = lines.findIndex((l) => l.includes("added: ufw allow from 203.0.113.0/24 to any port 22"));
        const enabled = lines.findIndex((l) => l.endsWith("enabled ufw"));
        assert.ok(firstSsh >= 0 && enabled > firstSsh, out(r));
        assert.deepEqual(addedRules(), ufwRules(prod).map((x) => x.join(" ")).sort());

        const status = onHost(["ufw", "status", "verbose"]);
        assert.match(status.stdout, /^Status: active$/m, out(status));
        assert.match(status.stdout, /^Default: deny \(incoming\), allow \(outgoing\), deny \(routed\)$/m, out(status));

        const chain = inNs(ns.host, ["iptables", "-S", "DOCKER-USER"]);
        assert.match(chain.stdout, /^-A DOCKER-USER -i wan7 -j DROP$/m, out(chain));
        assert.match(chain.stdout, /^-A DOCKER-USER ! -i wan7 -j RETURN$/m, out(chain));
        const chain6 = inNs(ns.host, ["ip6tables", "-S", "DOCKER-USER"]);
        assert.match(chain6.stdout, /^-A DOCKER-USER -i wan7 -j DROP$/m, out(chain6));
        const afterRules = onHost(["cat", "/etc/ufw/after.rules"]).stdout;
        assert.equal(afterRules.split("\n").filter((l) => l === AFTER_RULES_BEGIN).length, 1);
        assert.match(afterRules, /^# don't delete the 'COMMIT' line/m, "Debian's own after.rules content must be kept");
        // This machine's real UFW config was not touched (the overlay took every write).
        assert.doesNotMatch(fs.readFileSync("/etc/ufw/after.rules", "utf8"), /CITADEL DOCKER-USER/);
    });

    it("after the script: new inbound to 8001 (and straight to a container port) is dropped, 443 passes, egress works", (t) => {
        if (!requireReady(t)) return;
        const dropsBefore = dropCount();
        assert.equal(probe(ns.client, "198.51.100.1", 443), "ok 8443", "the gateway port must stay reachable");
        assert.equal(probe(ns.client, "198.51.100.1", 8001), "", "a published app port must not be reachable from outside");
        // Routed straight to the container (an attacker on the same L2 segment): the port asked for is
        // 9443, not a gateway port, so it is dropped although nothing was DNATed.
        assert.equal(probe(ns.client, "172.30.0.2", 9443), "");
        // The container still reaches the outside, and the replies come back (ESTABLISHED).
        assert.equal(probe(ns.ctr, "198.51.100.2", 7000), "ok 7000");
        assert.ok(dropCount() > dropsBefore, "the DROP rule's counter must have counted the refused SYNs");
    });

    function dropCount(): number {
        const r = inNs(ns.host, ["iptables", "-L", "DOCKER-USER", "-v", "-x", "-n"]);
        const line = r.stdout.split("\n").find((l) => /\bDROP\b/.test(l));
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
        const tamper = onHost(["sed", "-i", "s/-i wan7 -j DROP/-i wan7 -j ACCEPT/", "/etc/ufw/after.rules"]);
        assert.equal(tamper.code, 0, out(tamper));
        const r = runScript(ALLOWED_SESSION);
        assert.equal(r.code, 0, out(r));
        assert.match(r.stdout, /removed undeclared: ufw allow 8001$/m);
        assert.match(r.stdout, /removed undeclared: ufw deny from 203\.0\.113\.0\/24 comment 'stray rule'$/m);
        assert.match(r.stdout, /DOCKER-USER block in \/etc\/ufw\/after\.rules/);
        assert.deepEqual(addedRules(), ufwRules(prod).map((x) => x.join(" ")).sort());
        assert.equal(probe(ns.client, "198.51.100.1", 8001), "");
        const again = runScript(ALLOWED_SESSION);
        assert.equal(again.stdout.trim(), "citadel: firewall: unchanged", out(again));
    });

    it("re-loads DOCKER-USER when the live chain was flushed behind UFW's back", (t) => {
        if (!requireReady(t)) return;
        const flush = inNs(ns.host, ["iptables", "-F", "DOCKER-USER"]);
        assert.equal(flush.code, 0, out(flush));
        assert.equal(probe(ns.client, "198.51.100.1", 8001), "ok 8001", "control: with DOCKER-USER empty, 8001 is open again");
        const r = runScript(ALLOWED_SESSION);
        assert.equal(r.code, 0, out(r));
        assert.match(r.stdout, /reloaded UFW: the DOCKER-USER rules were missing/);
        assert.equal(probe(ns.client, "198.51.100.1", 8001), "");
    });

    it("fails closed without a default route (no external interface to protect)", (t) => {
        if (!requireReady(t)) return;
        const dir = tmpDir("citadel-fw-noroute-");
        try {
            fs.mkdirSync(path.join(dir, "up"));
            fs.mkdirSync(path.join(dir, "work"));
            const r = run("unshare", ["-n", "-m", "--propagation", "private", "--", "/bin/sh", "-c", OVERLAY_SETUP, "sh", dir, "env", `SSH_CONNECTION=${ALLOWED_SESSION}`, "/bin/bash", scriptPath]);
            assert.notEqual(r.code, 0, out(r));
            assert.match(r.stderr, /citadel: firewall: no default route/);
            assert.equal(fs.existsSync(path.join(dir, "up", "ufw", "user.rules")), false, "nothing may be written before the check");
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});
