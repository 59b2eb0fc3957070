// Host perimeter: UFW (default deny in, allow out, deny routed; SSH from admin CIDRs or limited; the gateway ports open; app ports
// explicitly denied) and the same policy in Docker's DOCKER-USER chain.
//
// Source policies: RoboAgency "Firewall (UFW)" (deny incoming, allow outgoing, SSH and the web ports) and Story
// Portal "Firewall Rules" (block direct access to the application ports 8001-8012). Why DOCKER-USER:
// Docker publishes a container port with a DNAT rule in PREROUTING, so that traffic is FORWARDed and
// never meets UFW's INPUT rules — on the testbed `docker run -p 8001:8001` was reachable although UFW
// denied 8001. Docker jumps to DOCKER-USER before its own FORWARD rules; the block rendered here
// (the well-known ufw-docker approach) lives in /etc/ufw/after.rules and after6.rules, so UFW loads
// it at boot and on every reload. It filters every interface that is not a Docker bridge (a second
// NIC or a VPN too), and needs nothing of the host filled in.
//
// Day two: loading after.rules re-declares DOCKER-USER, which flushes the CrowdSec bouncer's ban rule
// there (an operator's `ufw reload`). A marked block in /etc/ufw/after.init, which UFW runs after
// loading its rules, puts the bouncer's rule back whenever its ipsets exist. `systemctl restart
// docker` keeps DOCKER-USER as it is (Docker creates the chain only when it is absent and appends a
// RETURN, unreachable behind the final DROP), and a restarted bouncer re-inserts its own rules.
import { crowdsecPrometheusConfig } from "./monitoring";
import { CROWDSEC_METRICS_PORT, MONITORING_BRIDGE, MONITORING_HOST_IP } from "../posture/facts";
import * as net from "node:net";
import type { StackConfig } from "../config";
import { BOUNCER_CHAINS, BOUNCER_IPSETS, bouncerBanRule } from "./intrusion";
import { ipv6UsableCheck, servedGateway6, SYSCTL_PATH } from "./host";
import { renderTemplate, hostLib } from "./template";
import type { HostFile, HostScript } from "./types";

import { AFTER_INIT_PATH, FORWARD6_CHAIN, GATEWAY_IPV6, IPV6_FORWARD_KEY, PUBLIC6_NAT_CHAIN, stepPackages, GATEWAY_PORTS, IPV6_SOURCE_PREFIX, SSH_KEYED_HOOK, SSH_KEYED_LIST, SSH_KEYED_SECONDS, SSH_KEYED_STATE_DIR, SSH_NET6_LIST, SSH_PORT } from "../posture/facts";
export { GATEWAY_PORTS, SSH_PORT };

export const AFTER_RULES_BEGIN = "# BEGIN CITADEL DOCKER-USER (managed by Citadel: edits inside this block are overwritten)";
export const AFTER_RULES_END = "# END CITADEL DOCKER-USER";
export const AFTER_RULES_PATH = { 4: "/etc/ufw/after.rules", 6: "/etc/ufw/after6.rules" } as const;
/** UFW's hook run after it loaded its rules (Debian copies it from /usr/share/ufw once; not a conffile). */
export { AFTER_INIT_PATH };
export const AFTER_INIT_BEGIN = "# BEGIN CITADEL BOUNCER RULES (managed by Citadel: edits inside this block are overwritten)";
export const AFTER_INIT_END = "# END CITADEL BOUNCER RULES";
/** Prefix of the (rate-limited) kernel log line for a new inbound connection dropped in DOCKER-USER. */
export const DOCKER_BLOCK_LOG_PREFIX = "[CITADEL DOCKER BLOCK] ";

export type IpFamily = 4 | 6;

// ---------------------------------------------------------------------------------------------
// Address normalisation. `ufw show added` prints addresses the way ufw normalised them (ufw/util.py
// normalize_address). The script converges by comparing those lines with the declared ones as
// strings, so the declared rules must already be in ufw's form, or every run would delete and re-add
// them. The render test checks this function against ufw's own Python code.
// ---------------------------------------------------------------------------------------------

/**
 * A CIDR in the form ufw prints: IPv4 with host bits cleared and /32 dropped; IPv6 as inet_ntop
 * prints it (ufw does not clear IPv6 host bits, we do, so what the rule says is what it matches),
 * /128 dropped.
 */
export function ufwAddress(cidr: string): string {
    const [addr, prefixText] = cidr.split("/");
    const family = net.isIP(addr);
    if (family === 0) throw new Error(`${JSON.stringify(cidr)} is not an IP address or CIDR`);
    const bits = family === 4 ? 32 : 128;
    const prefix = prefixText === undefined ? bits : Number(prefixText);
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits) throw new Error(`${JSON.stringify(cidr)} has a bad prefix length`);
    const text = family === 4 ? formatIpv4(maskBits(parseIpv4(addr), prefix)) : formatIpv6(maskBits(parseIpv6(addr), prefix));
    return prefix === bits ? text : `${text}/${prefix}`;
}

/** Clears the host bits of an address given as 16-bit (IPv6) or 8-bit (IPv4) groups. */
function maskBits(groups: number[], prefix: number): number[] {
    const width = groups.length === 4 ? 8 : 16;
    return groups.map((g, i) => {
        const keep = Math.max(0, Math.min(width, prefix - i * width));
        const mask = keep === 0 ? 0 : ((0xffff << (width - keep)) & ((1 << width) - 1));
        return g & mask;
    });
}

function parseIpv4(a: string): number[] {
    return a.split(".").map(Number);
}

function formatIpv4(octets: number[]): string {
    return octets.join(".");
}

function parseIpv6(a: string): number[] {
    let text = a.toLowerCase();
    const tail: number[] = [];
    // An embedded IPv4 tail ("::ffff:192.0.2.1") stands for the last two groups.
    const m = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
    if (m) {
        const o = parseIpv4(m[2]);
        tail.push((o[0] << 8) | o[1], (o[2] << 8) | o[3]);
        text = m[1].endsWith("::") ? m[1] : m[1].slice(0, -1);
    }
    const halves = text.split("::");
    const parse = (s: string) => (s === "" ? [] : s.split(":").map((x) => parseInt(x, 16)));
    let groups: number[];
    if (halves.length === 1) {
        groups = [...parse(halves[0]), ...tail];
    } else {
        const head = parse(halves[0]);
        const rest = parse(halves[1]);
        const zeros = Array<number>(8 - head.length - rest.length - tail.length).fill(0);
        groups = [...head, ...zeros, ...rest, ...tail];
    }
    if (groups.length !== 8 || groups.some((g) => !(g >= 0 && g <= 0xffff))) throw new Error(`cannot parse IPv6 address ${JSON.stringify(a)}`);
    return groups;
}

/** glibc's inet_ntop: longest run (≥ 2) of zero groups becomes "::" (first on a tie); v4-mapped/compat tails in dotted form. */
function formatIpv6(g: number[]): string {
    let bestStart = -1;
    let bestLen = 0;
    for (let i = 0; i < 8; ) {
        if (g[i] !== 0) {
            i++;
            continue;
        }
        let j = i;
        while (j < 8 && g[j] === 0) j++;
        if (j - i > bestLen) {
            bestStart = i;
            bestLen = j - i;
        }
        i = j;
    }
    if (bestLen < 2) bestStart = -1;
    const hex = (x: number) => x.toString(16);
    const dotted = (a: number, b: number) => `${a >> 8}.${a & 0xff}.${b >> 8}.${b & 0xff}`;
    if (bestStart === 0 && (bestLen === 6 || (bestLen === 5 && g[5] === 0xffff))) {
        return `::${bestLen === 5 ? "ffff:" : ""}${dotted(g[6], g[7])}`;
    }
    if (bestStart < 0) return g.map(hex).join(":");
    const left = g.slice(0, bestStart).map(hex).join(":");
    const right = g.slice(bestStart + bestLen).map(hex).join(":");
    return `${left}::${right}`;
}

// ---------------------------------------------------------------------------------------------
// The declared UFW rule set.
// ---------------------------------------------------------------------------------------------

/** One UFW rule, as its `ufw` arguments; joined by spaces it is exactly the line `ufw show added` prints (minus "ufw "). */
export type UfwRule = string[];

/**
 * SSH rules. Open to the world (no admin CIDRs): `limit` — 6 new connections in 30 s per address are
 * rejected — unless sshRateLimit is off. Restricted to admin CIDRs: plain `allow` from each, nothing
 * from anywhere else; a rate limit there would only throttle `pulumi up` itself, which opens a new SSH
 * connection per host step.
 */
export function sshRules(c: StackConfig): UfwRule[] {
    if (c.admin.sourceIps.length === 0) return [[c.firewall.sshRateLimit ? "limit" : "allow", `${SSH_PORT}/tcp`]];
    const sources = [...new Set(c.admin.sourceIps.map(ufwAddress))];
    return sources.map((src) => ["allow", "from", src, "to", "any", "port", String(SSH_PORT), "proto", "tcp"]);
}

/**
 * True when SSH is open to the world and rate-limited: a declared rule is `limit` (only SSH's ever is).
 * The firewall script decides the same way from its declared rules; key-authenticated sources are then exempt (below).
 */
export function sshLimited(c: StackConfig): boolean {
    return sshRules(c).some((r) => r[0] === "limit");
}

// ---------------------------------------------------------------------------------------------
// The SSH limit's exemption for key-authenticated sources. UFW's `limit` (6 new connections in 30 s
// per address) closed the Docker provider's parallel SSH dials during a converge (measured: 5 of 30
// container creations failed). A PAM session hook puts the address of every source that opens an SSH
// session (a valid key was needed) into a kernel `recent` list; a rule in before.rules, ahead of UFW's
// user rules, accepts new SSH connections from the sources in that list. Strangers stay limited.
// ---------------------------------------------------------------------------------------------

export const BEFORE_RULES_PATH = { 4: "/etc/ufw/before.rules", 6: "/etc/ufw/before6.rules" } as const;
/** The markers of the exemption's blocks, in before*.rules and in /etc/pam.d/sshd alike. */
export const KEYED_BEGIN = "# BEGIN CITADEL SSH LIMIT EXEMPTION (managed by Citadel: edits inside this block are overwritten)";
export const KEYED_END = "# END CITADEL SSH LIMIT EXEMPTION";
export const PAM_SSHD_PATH = "/etc/pam.d/sshd";

/** The exemption rule as `iptables -S` / `ip6tables -S` prints it once loaded (the audit compares it so). */
export function sshKeyedRule(family: IpFamily): string {
    const chain = family === 4 ? "ufw-before-input" : "ufw6-before-input";
    const mask = family === 4 ? "255.255.255.255" : "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    return (
        `-A ${chain} -p tcp -m tcp --dport ${SSH_PORT} -m conntrack --ctstate NEW ` +
        `-m recent --rcheck --seconds ${SSH_KEYED_SECONDS} --name ${SSH_KEYED_LIST} --mask ${mask} --rsource -j ACCEPT`
    );
}

/**
 * UFW's own `limit` (its iptables backend): the 6th new connection within 30 s is refused. Citadel's
 * IPv6 limit per network counts the same way.
 */
export const UFW_LIMIT = { seconds: 30, hitcount: 6 } as const;

/**
 * IPv6 only: UFW's `limit` counts per address, and an IPv6 client holds a whole /64 (2^64 addresses
 * to take turns with). These two rules count new SSH connections per /64 and refuse the 6th within
 * 30 s, as UFW would per address; sources in the exemption list were accepted just before. As
 * `ip6tables -S` prints them.
 */
export function sshNetLimitRules6(): string[] {
    const bits = "ffff:".repeat(IPV6_SOURCE_PREFIX / 16);
    const match = `-A ufw6-before-input -p tcp -m tcp --dport ${SSH_PORT} -m conntrack --ctstate NEW -m recent`;
    const list = `--name ${SSH_NET6_LIST} --mask ${bits}: --rsource`;
    return [`${match} --set ${list}`, `${match} --update --seconds ${UFW_LIMIT.seconds} --hitcount ${UFW_LIMIT.hitcount} ${list} -j REJECT --reject-with tcp-reset`];
}

/** The rules of the marked block per family, as `-S` prints them: the exemption, then (IPv6) the per-/64 limit. */
export function sshKeyedRules(family: IpFamily): string[] {
    return family === 4 ? [sshKeyedRule(4)] : [sshKeyedRule(6), ...sshNetLimitRules6()];
}

/**
 * The marked block for before.rules / before6.rules. Rendered whatever the config: the script installs it
 * only when a declared rule is `limit` and removes it otherwise, so the script's text changes with the
 * declared rules alone (the review explains a host step's changed lines by the posture values that changed).
 */
export function sshKeyedBlock(family: IpFamily): string {
    return renderTemplate("firewall/ssh-keyed.rules.hbs", {
        begin: KEYED_BEGIN,
        end: KEYED_END,
        family,
        rules: sshKeyedRules(family),
        list: SSH_KEYED_LIST,
        net6: family === 6 ? { list: SSH_NET6_LIST, prefix: IPV6_SOURCE_PREFIX } : undefined,
        hook: SSH_KEYED_HOOK,
        seconds: SSH_KEYED_SECONDS,
    });
}

/** The marked block for /etc/pam.d/sshd (installed, like the rules, only while SSH is limited). */
export function pamSshdBlock(): string {
    return renderTemplate("firewall/pam-sshd.hbs", { begin: KEYED_BEGIN, end: KEYED_END, list: SSH_KEYED_LIST, seconds: SSH_KEYED_SECONDS, hook: SSH_KEYED_HOOK });
}

/** The PAM hook program (POSIX sh, run by pam_exec as root). */
export function sshKeyedHook(): string {
    return renderTemplate("firewall/ssh-keyed-hook.sh.hbs", { list: SSH_KEYED_LIST, seconds: SSH_KEYED_SECONDS, stateDir: SSH_KEYED_STATE_DIR });
}

/** The whole declared rule set, SSH first (added first, so SSH stays reachable while converging). */
export function ufwRules(c: StackConfig): UfwRule[] {
    const { from, to } = c.firewall.denyPorts;
    const range = from === to ? String(from) : `${from}:${to}`;
    return [
        ...sshRules(c),
        ...GATEWAY_PORTS.map((p) => ["allow", `${p}/tcp`]),
        // IPv6 served (citadel:host.docker.ipv6): what Citadel's DNAT (PUBLIC6_NAT_CHAIN) sends to the
        // gateway's fixed address is forwarded, nothing else ("deny routed" stays the default). Docker's
        // own IPv6 rules, which would accept it, are off.
        ...(c.host.docker.ipv6 ? GATEWAY_PORTS.map((p) => ["route", "allow", "to", GATEWAY_IPV6, "port", String(p), "proto", "tcp"]) : []),
        // Redundant with "default deny incoming", but explicit as the Story Portal policy asks: the app
        // ports are reached through the gateway only. tcp and udp, so nothing on them answers directly.
        ["deny", `${range}/tcp`],
        ["deny", `${range}/udp`],
        // Prometheus (on the internal monitoring network) reads CrowdSec's metrics on the bridge's
        // host address: that port, from that interface, to that address only.
        ...(crowdsecPrometheusConfig(c) ? [["allow", "in", "on", MONITORING_BRIDGE, "to", MONITORING_HOST_IP, "port", String(CROWDSEC_METRICS_PORT), "proto", "tcp"]] : []),
    ];
}

/** The `ufw default` policies, as /etc/default/ufw spells them and as `ufw default` sets them. */
export const UFW_DEFAULTS = [
    { key: "DEFAULT_INPUT_POLICY", value: "DROP", command: ["deny", "incoming"] },
    { key: "DEFAULT_OUTPUT_POLICY", value: "ACCEPT", command: ["allow", "outgoing"] },
    // Routed traffic is denied by UFW; Docker's own FORWARD rules (after DOCKER-USER) still accept
    // what it publishes and container egress, so the gateway keeps working.
    { key: "DEFAULT_FORWARD_POLICY", value: "DROP", command: ["deny", "routed"] },
] as const;

// ---------------------------------------------------------------------------------------------
// The DOCKER-USER block for after.rules / after6.rules.
// ---------------------------------------------------------------------------------------------

export { FORWARD6_CHAIN };
/** The jump into it from mangle's FORWARD, as `ip6tables -t mangle -S FORWARD` prints it. */
export const FORWARD6_JUMP = `-A FORWARD -j ${FORWARD6_CHAIN}`;

/** The jump into PUBLIC6_NAT_CHAIN from nat's PREROUTING, as `ip6tables -t nat -S PREROUTING` prints it. */
export const PUBLIC6_NAT_JUMP = `-A PREROUTING -j ${PUBLIC6_NAT_CHAIN}`;
/**
 * What the jump from nat's OUTPUT matches: the host's own connections to its own addresses (a cron job
 * or a health check asking for the site by its AAAA record), loopback left out as Docker's own IPv6
 * OUTPUT rule leaves it out: a packet from ::1 cannot leave the host, so DNAT of it to the gateway
 * would only hang the connection.
 */
export const PUBLIC6_OUTPUT_MATCH = ["!", "-d", "::1/128"] as const;
/** The jump into PUBLIC6_NAT_CHAIN from nat's OUTPUT, as `ip6tables -t nat -S OUTPUT` prints it. */
export const PUBLIC6_NAT_OUTPUT_JUMP = `-A OUTPUT ${PUBLIC6_OUTPUT_MATCH.join(" ")} -j ${PUBLIC6_NAT_CHAIN}`;
export { PUBLIC6_NAT_CHAIN };

/**
 * IPv6 to the sites: the host's own addresses' GATEWAY_PORTS sent to the gateway's fixed IPv6 address, the
 * same port, as `ip6tables -t nat -S` prints the rules. DNAT, not a proxy: Caddy and CrowdSec see the
 * client's address.
 */
export function public6NatRules(): string[] {
    return GATEWAY_PORTS.map((p) => `-A ${PUBLIC6_NAT_CHAIN} -p tcp -m addrtype --dst-type LOCAL -m tcp --dport ${p} -j DNAT --to-destination [${GATEWAY_IPV6}]:${p}`);
}

function renderDockerUserBlock(family: IpFamily, forward6?: { chain: string; jump: string; rules: string[] }, public6?: { chain: string; jump: string; rules: string[] }): string {
    return renderTemplate("firewall/docker-user.rules.hbs", {
        begin: AFTER_RULES_BEGIN,
        end: AFTER_RULES_END,
        family,
        gatewayPorts: GATEWAY_PORTS,
        logPrefix: DOCKER_BLOCK_LOG_PREFIX,
        forward6,
        public6,
    });
}

/**
 * The marked block for one family: outside is any interface that is not a Docker bridge. IPv6's also
 * carries the mangle copy and the nat chain, with its DNAT rules where the sites are served over IPv6 (`served6`).
 */
export function dockerUserBlock(family: IpFamily, served6 = false): string {
    return renderDockerUserBlock(
        family,
        family === 6 ? { chain: FORWARD6_CHAIN, jump: FORWARD6_JUMP, rules: forward6Rules() } : undefined,
        family === 6 ? { chain: PUBLIC6_NAT_CHAIN, jump: PUBLIC6_NAT_JUMP, rules: served6 ? public6NatRules() : [] } : undefined,
    );
}

/** The `-A DOCKER-USER ...` lines of the block, as `iptables -S DOCKER-USER` prints them once loaded. */
export function dockerUserRules(family: IpFamily): string[] {
    return renderDockerUserBlock(family)
        .split("\n")
        .filter((l) => l.startsWith("-A DOCKER-USER "));
}

/** The IPv6 DOCKER-USER rules in FORWARD6_CHAIN, as `ip6tables -t mangle -S` prints them (one policy, written once). */
export function forward6Rules(): string[] {
    return dockerUserRules(6).map((l) => l.replace(/^-A DOCKER-USER /, `-A ${FORWARD6_CHAIN} `));
}

/** One difference between the live DOCKER-USER chain and the declared one (the audit's Drift shape). */
export interface DockerUserDrift {
    what: string;
    expected: string;
    actual: string;
}

/**
 * Compares the live chain (`iptables -S DOCKER-USER` / `ip6tables -S DOCKER-USER`) with what must be
 * there: the CrowdSec bouncer's ban rule ahead of everything (when `bans`: a `ufw reload` used to lose
 * it), then the block, rule for rule and in order. Also allowed: the ban rule when bans are not
 * required (a bouncer's leftover set), and anything after the block's final DROP, which no packet
 * reaches (Docker appends its own `-j RETURN` whenever the daemon starts).
 */
export function dockerUserDrift(liveS: string, family: IpFamily, bans: boolean, chain = "DOCKER-USER"): DockerUserDrift[] {
    const live = liveS
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l.startsWith(`-A ${chain} `));
    const declared = chain === FORWARD6_CHAIN ? forward6Rules() : dockerUserRules(family);
    const ban = `-A ${chain} ${bouncerBanRule(family)}`;
    const drift: DockerUserDrift[] = [];
    const start = live.indexOf(declared[0]);
    const ahead = start >= 0 ? live.slice(0, start) : live.filter((l) => !declared.includes(l));
    if (bans && !ahead.includes(ban)) {
        drift.push({
            what: `CrowdSec ban rule in ${chain}`,
            expected: `${ban} (ahead of the block)`,
            actual: live.includes(ban) ? "behind the block's first rule" : "(missing: banned addresses reach the containers)",
        });
    }
    for (const l of ahead) if (l !== ban) drift.push({ what: `${chain} rule ahead of the block`, expected: "(not declared)", actual: l });
    declared.forEach((d, i) => {
        const got = start >= 0 ? live[start + i] : undefined;
        if (got !== d) drift.push({ what: `${chain} block rule ${i + 1}/${declared.length}`, expected: d, actual: got ?? "(missing)" });
    });
    return drift;
}

/**
 * Compares the host's IPv6 DNAT to the gateway with what citadel:host.docker.ipv6 declares (the audit's
 * check): `liveChain` is `ip6tables -t nat -S PUBLIC6_NAT_CHAIN` (undefined when the chain does not
 * exist), `livePrerouting` and `liveOutput` are `ip6tables -t nat -S PREROUTING` and `… -S OUTPUT`,
 * `forwarding` the value of IPV6_FORWARD_KEY. Served: the rules exactly, both jumps, forwarding on.
 * Not served: no rule in the chain where it exists (a kernel without IPv6 NAT has none).
 */
export function public6Drift(served: boolean, liveChain: string | undefined, livePrerouting: string, liveOutput: string, forwarding: string): DockerUserDrift[] {
    const drift: DockerUserDrift[] = [];
    const declared = served ? public6NatRules() : [];
    if (liveChain === undefined) {
        // Not served, no chain: a kernel without IPv6 NAT, where the firewall step leaves it out.
        if (served) drift.push({ what: `ip6tables nat ${PUBLIC6_NAT_CHAIN}`, expected: `${declared.length} rules`, actual: "(missing: the sites are not reached over IPv6)" });
        return drift;
    }
    const live = liveChain.split("\n").map((l) => l.trim()).filter((l) => l.startsWith(`-A ${PUBLIC6_NAT_CHAIN} `));
    declared.forEach((d, i) => {
        if (live[i] !== d) drift.push({ what: `${PUBLIC6_NAT_CHAIN} rule ${i + 1}/${declared.length}`, expected: d, actual: live[i] ?? "(missing)" });
    });
    for (const l of live.slice(declared.length)) drift.push({ what: `${PUBLIC6_NAT_CHAIN} rule`, expected: served ? "(not declared)" : "(none: the sites are not served over IPv6)", actual: l });
    const jumps: [string, string, string, string][] = [
        ["PREROUTING", livePrerouting, PUBLIC6_NAT_JUMP, "the sites are not reached over IPv6"],
        ["OUTPUT", liveOutput, PUBLIC6_NAT_OUTPUT_JUMP, "the host's own connections to its IPv6 address do not reach the sites"],
    ];
    for (const [chain, live, jump, why] of jumps) {
        if (served && !live.split("\n").map((l) => l.trim()).includes(jump)) drift.push({ what: `ip6tables nat ${chain}`, expected: jump, actual: `(missing: ${why})` });
    }
    if (served && forwarding !== "1") drift.push({ what: IPV6_FORWARD_KEY, expected: "1", actual: forwarding || "(unreadable)" });
    return drift;
}

/**
 * The marked block for /etc/ufw/after.init (POSIX sh, appended to the host's own file): on "start",
 * the CrowdSec bouncer's ban rule back into each of its chains where its ipset exists, and the SSH
 * limit's exempt sources back into their kernel list.
 */
export function afterInitBlock(): string {
    return renderTemplate("firewall/after-init.sh.hbs", {
        begin: AFTER_INIT_BEGIN,
        end: AFTER_INIT_END,
        set4: BOUNCER_IPSETS[4],
        set6: BOUNCER_IPSETS[6],
        rule4: bouncerBanRule(4),
        rule6: bouncerBanRule(6),
        chains: BOUNCER_CHAINS,
        keyedList: SSH_KEYED_LIST,
        keyedDir: SSH_KEYED_STATE_DIR,
        keyedMinutes: Math.ceil(SSH_KEYED_SECONDS / 60),
        forward6Chain: FORWARD6_CHAIN,
        public6Chain: PUBLIC6_NAT_CHAIN,
        public6OutputMatch: PUBLIC6_OUTPUT_MATCH,
    });
}

export function renderFirewall(c: StackConfig): HostScript {
    const rules = ufwRules(c).map((r) => r.join(" "));
    const block4 = dockerUserBlock(4);
    const block6 = dockerUserBlock(6, c.host.docker.ipv6);
    const initBlock = afterInitBlock();
    const packages = stepPackages("firewall");
    const script = renderTemplate("firewall/firewall.sh.hbs", {
        packages,
        ufwSysctl: SYSCTL_PATH,
        lib: hostLib(),
        rules,
        sshSources: c.admin.sourceIps.map(ufwAddress).join("\n"),
        defaults: UFW_DEFAULTS.map((d) => ({ key: d.key, value: d.value, verb: d.command[0], direction: d.command[1], label: `default ${d.command.join(" ")}` })),
        begin: AFTER_RULES_BEGIN,
        end: AFTER_RULES_END,
        after4: AFTER_RULES_PATH[4],
        after6: AFTER_RULES_PATH[6],
        block4,
        block6,
        afterInit: AFTER_INIT_PATH,
        initBegin: AFTER_INIT_BEGIN,
        initEnd: AFTER_INIT_END,
        initBlock,
        banChains: BOUNCER_CHAINS,
        set4: BOUNCER_IPSETS[4],
        set6: BOUNCER_IPSETS[6],
        rule4: bouncerBanRule(4),
        rule6: bouncerBanRule(6),
        keyedBegin: KEYED_BEGIN,
        keyedEnd: KEYED_END,
        before4: BEFORE_RULES_PATH[4],
        before6: BEFORE_RULES_PATH[6],
        keyed4: sshKeyedBlock(4),
        keyed6: sshKeyedBlock(6),
        forward6Chain: FORWARD6_CHAIN,
        public6Chain: PUBLIC6_NAT_CHAIN,
        public6OutputMatch: PUBLIC6_OUTPUT_MATCH,
        gateway6: servedGateway6(c),
        ipv6Usable: ipv6UsableCheck(),
        keyedRules4: sshKeyedRules(4),
        keyedRules6: sshKeyedRules(6),
        net6List: SSH_NET6_LIST,
        pamSshd: PAM_SSHD_PATH,
        pamBlock: pamSshdBlock(),
        keyedHook: SSH_KEYED_HOOK,
        keyedHookScript: sshKeyedHook(),
        keyedList: SSH_KEYED_LIST,
        keyedDir: SSH_KEYED_STATE_DIR,
    });
    // The files are the Citadel blocks only: the script splices each into the host's existing
    // after*.rules and after.init (between the markers).
    const files: HostFile[] = [
        { path: AFTER_RULES_PATH[4], content: block4, mode: "0640", owner: "root", group: "root" },
        { path: AFTER_RULES_PATH[6], content: block6, mode: "0640", owner: "root", group: "root" },
        { path: AFTER_INIT_PATH, content: initBlock, mode: "0750", owner: "root", group: "root" },
    ];
    // Derived from the declared rules, so the summary can never disagree with them.
    const ssh = [...new Set(sshRules(c).map((r) => (r.length > 2 ? `${r[0]} from ${r[2]}` : `${r[0]} from anywhere`)))].join(", ");
    const gateway = GATEWAY_PORTS.join("/");
    return {
        name: "firewall",
        description:
            `UFW: deny in/routed, allow out; SSH ${ssh}; ${gateway} open; ` +
            `deny ${c.firewall.denyPorts.from}-${c.firewall.denyPorts.to} tcp+udp; DOCKER-USER: from any non-Docker interface only new inbound to ${gateway} reaches containers (block in after.rules/after6.rules); after.init puts the CrowdSec ban rules back after every UFW reload${c.host.docker.ipv6 ? `; IPv6: ${gateway} DNATed to the gateway's [${GATEWAY_IPV6}] (nat ${PUBLIC6_NAT_CHAIN}) and routed to it only` : "; the sites are not served over IPv6"}`,
        script,
        files,
        packages,
    };
}
