// The rules: each reads one slice of the two postures and says what its changes mean for security.
// A rule covers exactly the paths it compared (flatten.ts syntax); whatever no rule covers is reported
// as unclassified by diff.ts, so a rule that is not sure simply does not cover.
import type { ContainerPosture, Posture, SitePosture } from "../components/posture/types";
import { ALL_IPV4, IPV6_SOURCE_PREFIX, DATA_NETWORK_PREFIX, GATEWAY_CONTAINER, POSTGRES_CONTAINER, REDIS_CONTAINER } from "../components/posture/facts";
import { SYSCTL_DEFAULTS } from "../components/render/host";
import { credentialInValue, SECRET_LOOKING_RE, StackConfigSchema } from "../components/config";
import { SECRETS_MOUNT } from "../components/posture/facts";
import { coveredBy } from "./cidr";
import { Collector, text } from "./collect";
import { path, type Part } from "./flatten";
import { compareCsp, compareHsts, comparePermissions, compareRanked, compareTls, durationSeconds, parseHsts, RANKED_HEADERS, type Judgement } from "./headers";
import type { Direction } from "./types";

export type Rule = (b: Posture, h: Posture, out: Collector) => void;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
const arr = <T>(x: T[] | undefined): T[] => (Array.isArray(x) ? x : []);

function byKey<T>(list: T[] | undefined, k: keyof T): Map<string, T> {
    return new Map(arr(list).map((x) => [String(x[k]), x]));
}

/** Added and removed elements of two lists compared as sets (by JSON identity). */
function setDiff<T>(b: T[] | undefined, h: T[] | undefined): { added: T[]; removed: T[]; reordered: boolean } {
    const bs = arr(b).map((x) => JSON.stringify(x));
    const hs = arr(h).map((x) => JSON.stringify(x));
    const added = arr(h).filter((_, i) => !bs.includes(hs[i]));
    const removed = arr(b).filter((_, i) => !hs.includes(bs[i]));
    return { added, removed, reordered: added.length === 0 && removed.length === 0 && !same(b, h) };
}

/** higher value = weaker (e.g. retries), or higher = stronger (e.g. ban time). */
function byNumber(b: number, h: number, higherIs: "weaker" | "stronger"): Direction {
    if (b === h) return "neutral";
    const up = h > b;
    return up === (higherIs === "weaker") ? "weakens" : "strengthens";
}

function bool(b: unknown, h: unknown, trueIs: "stronger" | "weaker"): Direction {
    if (b === h) return "neutral";
    if (typeof h !== "boolean") return "unclassified";
    return h === (trueIs === "stronger") ? "strengthens" : "weakens";
}

/** Runs one part of a rule on its own: a part that cannot read its slice leaves it to the generic diff. */
function section(f: () => void): void {
    try {
        f();
    } catch {
        // diff.ts reports the slice's leaves as unclassified
    }
}

const REPLACES_SERVER = "replaces the server: new host, data lost without a restore";
const RESIZES_SERVER = "resizes the server in place: it is powered off (downtime) and its disk grows, so it can never go back to a smaller type; data is kept";

// ---------------------------------------------------------------------------------------------
// server: where the host comes from
// ---------------------------------------------------------------------------------------------

export const serverRule: Rule = (b, h, out) => {
    const bs = b.server;
    const hs = h.server;
    if (b.target !== h.target) {
        out.emit(`server.target=${h.target}`, "server", "weakens", `target ${b.target} → ${h.target}`, b.target, h.target, `${REPLACES_SERVER}; the old host is no longer managed`, [
            "target",
            ...(bs && hs ? ["server"] : []),
        ]);
        return;
    }
    // A side without the server slice (a posture from before it existed): the generic diff shows it.
    if (!bs || !hs || bs.target !== hs.target) return;
    const hcloud = h.target === "hcloud";
    for (const k of ["serverType", "image", "location"] as const) {
        const bv = bs.hcloud?.[k];
        const hv = hs.hcloud?.[k];
        if (bv === undefined || hv === undefined || bv === hv) continue;
        // The hcloud provider (terraform-provider-hcloud's schema): image and location force a new
        // server; server_type is a resize in place (powered off; without keep_disk the disk grows,
        // so the server can never go back to a smaller type).
        const why = !hcloud ? "unused by target existing" : k === "serverType" ? RESIZES_SERVER : REPLACES_SERVER;
        out.emit(`server.hcloud.${k}=${hv}`, "server", hcloud ? "weakens" : "neutral", `Hetzner ${k} ${bv} → ${hv}`, bv, hv, why, [path("server", "hcloud", k)]);
    }
    if (bs.hcloud?.serverName !== undefined && hs.hcloud?.serverName !== undefined && bs.hcloud.serverName !== hs.hcloud.serverName) {
        out.emit(`server.hcloud.serverName=${hs.hcloud.serverName}`, "server", "neutral", "Hetzner server renamed", bs.hcloud.serverName, hs.hcloud.serverName, "renamed in place (Hetzner renames without a rebuild)", [path("server", "hcloud", "serverName")]);
    }
    for (const k of ["address", "port"] as const) {
        const bv = bs.existing?.[k];
        const hv = hs.existing?.[k];
        if (bv === undefined || hv === undefined || bv === hv) continue;
        out.emit(`server.existing.${k}=${hv}`, "server", "neutral", `existing host ${k} ${bv} → ${hv}`, bv, hv, k === "address" ? "Citadel converges another host; the previous one keeps its last state, unmanaged" : "SSH reaches the host on another port", [path("server", "existing", k)]);
    }
    if (bs.userDataSha256 !== hs.userDataSha256 && typeof hs.userDataSha256 === "string") {
        out.emit(`server.user-data=${hs.userDataSha256.slice(0, 12)}`, "server", hcloud ? "weakens" : "neutral", "cloud-init user-data changed", String(bs.userDataSha256).slice(0, 12), hs.userDataSha256.slice(0, 12), hcloud ? `${REPLACES_SERVER} (Hetzner applies user-data at creation only)` : "only a new server boots with user-data; the existing host is not re-provisioned", [
            path("server", "userDataSha256"),
        ]);
    }
};

// ---------------------------------------------------------------------------------------------
// exposure: cloud firewall, UFW, DOCKER-USER, SSH sources, open and published ports
// ---------------------------------------------------------------------------------------------

interface UfwRule {
    action: string;
    from: string;
    ports: [number, number];
    proto: string;
    /** A routed rule's destination (`ufw route ... to X`): forwarded there, not delivered to the host. */
    to?: string;
}

/**
 * `ufw allow from 203.0.113.0/24 to any port 22 proto tcp`, `ufw limit 22/tcp`, `ufw deny 8001:8012/udp`,
 * and the routed form `ufw route allow to <GATEWAY_IPV6> port <p> proto tcp` (`to`: where it is forwarded).
 */
export function parseUfw(line: string): UfwRule | undefined {
    const w = line.trim().split(/\s+/);
    if (w[0] === "ufw") w.shift();
    const route = w[0] === "route";
    if (route) w.shift();
    const action = w.shift();
    if (!action || !["allow", "deny", "reject", "limit"].includes(action)) return undefined;
    const range = (s: string): [number, number] | undefined => {
        const m = /^(\d+)(?::(\d+))?$/.exec(s);
        return m ? [Number(m[1]), Number(m[2] ?? m[1])] : undefined;
    };
    if (w.length === 1 && !route) {
        const [p, proto = "any"] = w[0].split("/");
        const ports = range(p);
        return ports ? { action, from: "any", ports, proto } : undefined;
    }
    const at = (k: string) => (w.indexOf(k) >= 0 ? w[w.indexOf(k) + 1] : undefined);
    const ports = range(at("port") ?? "");
    if (route) return ports && at("to") ? { action, from: at("from") ?? "any", ports, proto: at("proto") ?? "any", to: at("to") } : undefined;
    if (w[0] !== "from" || !ports || at("to") !== "any") return undefined;
    return { action, from: at("from") ?? "any", ports, proto: at("proto") ?? "any" };
}

const allows = (a: string) => a === "allow" || a === "limit";
const inside = (r: UfwRule, o: UfwRule) =>
    r.to === o.to &&
    (o.proto === "any" || o.proto === r.proto) && o.ports[0] <= r.ports[0] && r.ports[1] <= o.ports[1] && coveredBy(r.from, [o.from]);
const portText = (r: UfwRule) => `${r.ports[0] === r.ports[1] ? r.ports[0] : `${r.ports[0]}-${r.ports[1]}`}/${r.proto}${r.to ? ` (forwarded to ${r.to})` : ""}`;

function ufwRulesRule(b: string[], h: string[], out: Collector): void {
    const at = path("exposure", "ufw", "rules");
    const d = setDiff(b, h);
    const parsedB = b.map(parseUfw);
    const parsedH = h.map(parseUfw);
    for (const line of d.added) {
        const r = parseUfw(line);
        const id = `exposure.ufw.rule+:${line}`;
        if (!r) {
            out.emit(id, "exposure", "unclassified", "UFW rule added (not parsed)", undefined, line, "a rule form no rule reads", [at]);
        } else if (allows(r.action)) {
            const cover = parsedB.filter((o): o is UfwRule => !!o && allows(o.action) && inside(r, o));
            const dir: Direction = cover.length === 0 ? "weakens" : r.action === "limit" && cover.every((o) => o.action === "allow") ? "strengthens" : r.action === "allow" && cover.every((o) => o.action === "limit") ? "weakens" : "neutral";
            const why =
                dir === "weakens"
                    ? cover.length
                        ? `the rate limit on ${portText(r)} is gone`
                        : `${portText(r)} is reachable from ${r.from === "any" ? "anywhere" : r.from}${r.action === "limit" ? " (rate-limited)" : ""}`
                    : dir === "strengthens"
                      ? `${portText(r)} is now rate-limited (6 connections in 30 s per address)`
                      : "already allowed by a rule of the base";
            out.emit(id, "exposure", dir, `UFW rule added: ${line}`, undefined, line, why, [at]);
        } else {
            out.emit(id, "exposure", "strengthens", `UFW rule added: ${line}`, undefined, line, `${portText(r)} ${r.action === "reject" ? "rejected" : "denied"} from ${r.from}`, [at]);
        }
    }
    for (const line of d.removed) {
        const r = parseUfw(line);
        const id = `exposure.ufw.rule-:${line}`;
        if (!r) {
            out.emit(id, "exposure", "unclassified", "UFW rule removed (not parsed)", line, undefined, "a rule form no rule reads", [at]);
        } else if (allows(r.action)) {
            const still = parsedH.filter((o): o is UfwRule => !!o && allows(o.action) && inside(r, o));
            const dir: Direction = still.length === 0 ? "strengthens" : r.action === "limit" && still.every((o) => o.action === "allow") ? "weakens" : "neutral";
            out.emit(id, "exposure", dir, `UFW rule removed: ${line}`, line, undefined, dir === "strengthens" ? `${portText(r)} from ${r.from} no longer allowed` : dir === "weakens" ? `the rate limit on ${portText(r)} is gone` : "still allowed by a rule of the head", [at]);
        } else {
            const still = parsedH.some((o) => !!o && !allows(o.action) && inside(r, o));
            out.emit(id, "exposure", still ? "neutral" : "weakens", `UFW rule removed: ${line}`, line, undefined, still ? "still denied by a rule of the head" : `${portText(r)} no longer explicitly denied (only the default policy stands between it and the Internet)`, [at]);
        }
    }
    if (d.reordered) out.emit("exposure.ufw.rules.order", "exposure", "unclassified", "UFW rules reordered", b, h, "UFW applies the first matching rule: an earlier allow can override a deny", [at]);
}

function portsRule(proto: string, b: number[], h: number[], at: string, out: Collector): void {
    const d = setDiff(b, h);
    for (const p of d.added) out.emit(`exposure.open.${proto}+:${p}`, "exposure", "weakens", `${p}/${proto} open to the Internet`, undefined, p, "a new port the Internet can open on the host", [at]);
    for (const p of d.removed) out.emit(`exposure.open.${proto}-:${p}`, "exposure", "strengthens", `${p}/${proto} closed`, p, undefined, "one port fewer the Internet can reach", [at]);
    if (d.reordered) out.emit(`exposure.open.${proto}.order`, "exposure", "neutral", `open ${proto} ports listed in another order`, b, h, "the same ports", [at]);
}

type FwRule = Posture["exposure"]["cloudFirewall"][number];

function cloudFirewallRule(b: FwRule[], h: FwRule[], out: Collector): void {
    const at = path("exposure", "cloudFirewall");
    if (same(b, h)) return;
    // No firewall at all is not "fewer allow rules": nothing filters in front of the host.
    if (b.length && !h.length) {
        out.emit("exposure.cloud-firewall:none", "exposure", "weakens", "no cloud firewall in front of the host", b.map((r) => r.description), undefined, "layer 0 is gone: only the host's own firewall (UFW, DOCKER-USER) filters; with target existing, check the provider's firewall yourself", [at]);
        return;
    }
    if (!b.length && h.length) {
        out.emit("exposure.cloud-firewall:added", "exposure", "strengthens", "a cloud firewall in front of the host", undefined, h.map((r) => r.description), "layer 0: everything but these rules is dropped before it reaches the host", [at]);
        return;
    }
    const reach = (rules: FwRule[]) => {
        const m = new Map<string, string[]>();
        for (const r of rules) {
            const k = `${r.direction === "in" ? "" : `${r.direction}:`}${r.protocol}${r.port ? `/${r.port}` : ""}`;
            m.set(k, [...(m.get(k) ?? []), ...arr(r.sourceIps)]);
        }
        return m;
    };
    const rb = reach(b);
    const rh = reach(h);
    let n = 0;
    for (const k of new Set([...rb.keys(), ...rh.keys()])) {
        const sb = rb.get(k) ?? [];
        const sh = rh.get(k) ?? [];
        for (const s of sh.filter((x) => !sb.includes(x))) {
            const wider = !coveredBy(s, sb);
            n++;
            out.emit(`exposure.cloud-firewall+:${k}:${s}`, "exposure", wider ? "weakens" : "neutral", `Hetzner firewall lets ${k} in from ${s}`, sb, sh, wider ? `the cloud perimeter opens ${k} to ${s === "0.0.0.0/0" || s === "::/0" ? "the whole Internet" : s}` : "inside a source the base already allowed", [at]);
        }
        for (const s of sb.filter((x) => !sh.includes(x))) {
            const narrower = !coveredBy(s, sh);
            n++;
            out.emit(`exposure.cloud-firewall-:${k}:${s}`, "exposure", narrower ? "strengthens" : "neutral", `Hetzner firewall no longer lets ${k} in from ${s}`, sb, sh, narrower ? `${s} is dropped at the cloud perimeter` : "still inside a source the head allows", [at]);
        }
    }
    if (n === 0) out.emit("exposure.cloud-firewall.text", "exposure", "neutral", "Hetzner firewall rules reworded or reordered", b.map((r) => r.description), h.map((r) => r.description), "the same protocols, ports and sources", [at]);
}

export const exposureRule: Rule = (b, h, out) => {
    const be = b.exposure;
    const he = h.exposure;
    section(() => exposurePorts(be, he, out));
    section(() => exposureSsh(be, he, out));
    section(() => cloudFirewallRule(arr(be.cloudFirewall), arr(he.cloudFirewall), out));
    section(() => exposureUfw(be, he, out));
    section(() => exposureDockerUser(be, he, out));
    section(() => exposureIpv6(b, h, out));
};

type Exposure = Posture["exposure"];

function exposurePorts(be: Exposure, he: Exposure, out: Collector): void {
    if (!same(be.openTcp, he.openTcp)) portsRule("tcp", be.openTcp, he.openTcp, path("exposure", "openTcp"), out);
    if (!same(be.openUdp, he.openUdp)) portsRule("udp", be.openUdp, he.openUdp, path("exposure", "openUdp"), out);
}

function exposureSsh(be: Exposure, he: Exposure, out: Collector): void {

    // SSH sources: [] is anywhere.
    const sb = arr(be.ssh.sources);
    const sh = arr(he.ssh.sources);
    const src = path("exposure", "ssh", "sources");
    if (!same(sb, sh)) {
        if (sb.length && !sh.length) out.emit("exposure.ssh.sources:anywhere", "exposure", "weakens", "SSH open to the whole Internet", sb, "anywhere", "anyone can try to log in (only keys, the rate limit and intrusion detection remain)", [src]);
        else if (!sb.length && sh.length) out.emit("exposure.ssh.sources:restricted", "exposure", "strengthens", "SSH restricted to admin sources", "anywhere", sh, "only these sources can reach sshd", [src]);
        else {
            const d = setDiff(sb, sh);
            for (const c of d.added) {
                const wider = !coveredBy(c, sb);
                out.emit(`exposure.ssh.source+:${c}`, "exposure", wider ? "weakens" : "neutral", `SSH allowed from ${c}`, sb, sh, wider ? `${c} can reach sshd` : "inside a source the base already allowed", [src]);
            }
            for (const c of d.removed) {
                const narrower = !coveredBy(c, sh);
                out.emit(`exposure.ssh.source-:${c}`, "exposure", narrower ? "strengthens" : "neutral", `SSH no longer allowed from ${c}`, sb, sh, narrower ? `${c} can no longer reach sshd` : "still inside a source the head allows", [src]);
            }
            if (d.reordered) out.emit("exposure.ssh.sources.order", "exposure", "neutral", "SSH sources reordered", sb, sh, "the same sources", [src]);
        }
    }
    if (be.ssh.port !== he.ssh.port) out.emit(`exposure.ssh.port=${he.ssh.port}`, "exposure", "neutral", "SSH port changed", be.ssh.port, he.ssh.port, "another port, the same exposure (scanners find it)", [path("exposure", "ssh", "port")]);
    if (be.ssh.rateLimited !== he.ssh.rateLimited) {
        // The limit only exists while SSH is open to anywhere: it comes and goes with the sources.
        const wasOpen = sb.length === 0;
        const open = sh.length === 0;
        const dir: Direction = !wasOpen || !open ? "neutral" : he.ssh.rateLimited === true ? "strengthens" : "weakens";
        const why =
            dir === "weakens"
                ? "SSH is open to anywhere without a connection rate limit: brute force runs at full speed"
                : dir === "strengthens"
                  ? "6 new connections in 30 s per address"
                  : open
                    ? "the limit comes with SSH open to anywhere (see the sources finding)"
                    : "no limit needed: the head restricts SSH to the admin sources";
        out.emit(`exposure.ssh.rate-limit=${he.ssh.rateLimited}`, "exposure", dir, `UFW rate limit on SSH ${he.ssh.rateLimited ? "on" : "off"}`, be.ssh.rateLimited, he.ssh.rateLimited, why, [
            path("exposure", "ssh", "rateLimited"),
        ]);
    }
}

function exposureUfw(be: Exposure, he: Exposure, out: Collector): void {
    const db = byKey(be.ufw.defaults, "key");
    const dh = byKey(he.ufw.defaults, "key");
    for (const [k, v] of dh) {
        const old = db.get(k);
        if (!old || old.value === v.value) continue;
        const dir: Direction = v.value === "ACCEPT" ? "weakens" : old.value === "ACCEPT" ? "strengthens" : "neutral";
        out.emit(`exposure.ufw.default.${k}=${v.value}`, "exposure", dir, `UFW ${k} ${old.value} → ${v.value}`, old.value, v.value, dir === "weakens" ? "everything not explicitly denied is accepted" : dir === "strengthens" ? "only what is explicitly allowed passes" : "both refuse", [
            path("exposure", "ufw", "defaults", ["key", k], "value"),
        ]);
    }
    if (!same(be.ufw.rules, he.ufw.rules)) ufwRulesRule(arr(be.ufw.rules), arr(he.ufw.rules), out);
}

/**
 * Whether a posture serves the sites over IPv6 (citadel:host.docker.ipv6). A posture from before
 * `exposure.ipv6` did so exactly when the gateway published a port on "::" (Docker's own IPv6 NAT).
 */
function servedOverIpv6(p: Posture): boolean {
    const e = p.exposure as Exposure & { ipv6?: { served?: boolean } };
    if (e.ipv6 && typeof e.ipv6.served === "boolean") return e.ipv6.served;
    return arr(p.containers).some((c) => arr(c.publishedPorts).some((x) => x.hostIp && x.hostIp !== ALL_IPV4));
}

/** Sites served over IPv6: on or off weakens or strengthens; how (the DNAT's target, or the field first recorded) is neutral. */
function exposureIpv6(b: Posture, h: Posture, out: Collector): void {
    const be = b.exposure as Exposure & { ipv6?: { served?: boolean; gateway?: string } };
    const he = h.exposure as Exposure & { ipv6?: { served?: boolean; gateway?: string } };
    if (same(be.ipv6, he.ipv6)) return;
    const bs = servedOverIpv6(b);
    const hs = servedOverIpv6(h);
    const at = [path("exposure", "ipv6")];
    const ports = arr(he.openTcp).filter((p) => p !== he.ssh?.port).join("/");
    if (bs !== hs) {
        out.emit(`exposure.ipv6.served=${hs}`, "exposure", hs ? "weakens" : "strengthens", `sites ${hs ? "now" : "no longer"} served over IPv6`, bs, hs, hs ? `${ports} reachable on the host's IPv6 addresses too (DNAT to the gateway's ${he.ipv6?.gateway}), filtered like IPv4 and banned per /${IPV6_SOURCE_PREFIX}` : "only IPv4 reaches the gateway", at);
    } else if (hs) {
        out.emit("exposure.ipv6.gateway", "exposure", "neutral", be.ipv6 ? "the gateway's IPv6 address changed" : "IPv6 reaches the gateway through Citadel's DNAT (was Docker's IPv6 NAT)", be.ipv6?.gateway ?? "(Docker's NAT)", he.ipv6?.gateway, "served over IPv6 before and after: the same ports, to a fixed address", at);
    } else {
        out.emit("exposure.ipv6.recorded", "exposure", "neutral", "IPv6 serving recorded in the posture (off)", be.ipv6 ?? "(not recorded)", he.ipv6, "not served over IPv6 before or after", at);
    }
}

function exposureDockerUser(be: Exposure, he: Exposure, out: Collector): void {

    if (!same(be.dockerUser.allowedTcp, he.dockerUser.allowedTcp)) {
        const at = path("exposure", "dockerUser", "allowedTcp");
        const d = setDiff(be.dockerUser.allowedTcp, he.dockerUser.allowedTcp);
        for (const p of d.added) out.emit(`exposure.docker-user+:${p}`, "exposure", "weakens", `DOCKER-USER lets new inbound connections reach published port ${p}`, undefined, p, "a published container port on it is reachable from the Internet, past UFW", [at]);
        for (const p of d.removed) out.emit(`exposure.docker-user-:${p}`, "exposure", "strengthens", `DOCKER-USER no longer lets inbound reach ${p}`, p, undefined, "containers publishing it are cut off from the Internet", [at]);
        if (d.reordered) out.emit("exposure.docker-user.order", "exposure", "neutral", "DOCKER-USER ports reordered", be.dockerUser.allowedTcp, he.dockerUser.allowedTcp, "the same ports", [at]);
    }
    if (be.dockerUser.logPrefix !== he.dockerUser.logPrefix) out.emit("exposure.docker-user.log-prefix", "exposure", "neutral", "DOCKER-USER log prefix changed", be.dockerUser.logPrefix, he.dockerUser.logPrefix, "log text only (alerts matching the old prefix need the new one)", [path("exposure", "dockerUser", "logPrefix")]);

    const rb = be.deniedPorts;
    const rh = he.deniedPorts;
    if (!same(rb, rh) && typeof rh?.from === "number" && typeof rh?.to === "number" && typeof rb?.from === "number" && typeof rb?.to === "number") {
        const leaving = rb.from < rh.from || rb.to > rh.to;
        out.emit(`exposure.denied-ports=${rh.from}-${rh.to}`, "exposure", leaving ? "weakens" : "strengthens", `explicitly denied app ports ${rb.from}-${rb.to} → ${rh.from}-${rh.to}`, `${rb.from}-${rb.to}`, `${rh.from}-${rh.to}`, leaving ? "ports of the old range are no longer explicitly denied (tcp and udp)" : "more app ports explicitly denied", [
            path("exposure", "deniedPorts", "from"),
            path("exposure", "deniedPorts", "to"),
        ]);
    }
}

// ---------------------------------------------------------------------------------------------
// ssh: sshd's effective settings (`sshd -T` lines)
// ---------------------------------------------------------------------------------------------

const sshDefaults = (StackConfigSchema as unknown as { shape: { ssh: { parse(v: unknown): Record<string, string[]> } } }).shape.ssh.parse(undefined);
/** The ssh-audit-clean algorithms the config schema accepts (its defaults): adding one of them is not weaker. */
export const STRONG_ALGORITHMS: Record<string, string[]> = {
    kexalgorithms: sshDefaults.kexAlgorithms,
    ciphers: sshDefaults.ciphers,
    macs: sshDefaults.macs,
    hostkeyalgorithms: sshDefaults.hostKeyAlgorithms,
};
const ALG_KEYWORDS = [...Object.keys(STRONG_ALGORITHMS), "pubkeyacceptedalgorithms", "casignaturealgorithms", "hostbasedacceptedalgorithms"];

/** The hardened value; anything else (or sshd's default, when the line goes) is weaker. */
const SSH_SECURE: Record<string, string> = {
    permitrootlogin: "no",
    pubkeyauthentication: "yes",
    passwordauthentication: "no",
    kbdinteractiveauthentication: "no",
    challengeresponseauthentication: "no",
    permitemptypasswords: "no",
    hostbasedauthentication: "no",
    ignorerhosts: "yes",
    ignoreuserknownhosts: "yes",
    gssapiauthentication: "no",
    kerberosauthentication: "no",
    strictmodes: "yes",
    x11forwarding: "no",
    allowagentforwarding: "no",
    allowtcpforwarding: "no",
    allowstreamlocalforwarding: "no",
    gatewayports: "no",
    permittunnel: "no",
    permituserenvironment: "no",
    permituserrc: "no",
    compression: "no",
    usedns: "no",
    printlastlog: "yes",
    authenticationmethods: "publickey",
};
/** Numbers where more is weaker (0 means unlimited for LoginGraceTime and MaxSessions). */
const SSH_MORE_IS_WEAKER = ["maxauthtries", "logingracetime", "maxsessions", "clientaliveinterval", "clientalivecountmax"];
const SSH_NEUTRAL = ["tcpkeepalive", "rekeylimit", "syslogfacility"];
const LOG_LEVELS = ["quiet", "fatal", "error", "info", "verbose", "debug", "debug1", "debug2", "debug3"];

function sshdMap(lines: string[]): Map<string, string[]> {
    const m = new Map<string, string[]>();
    for (const l of arr(lines)) {
        const [k, ...rest] = String(l).trim().split(/\s+/);
        const key = k.toLowerCase();
        m.set(key, [...(m.get(key) ?? []), rest.join(" ")]);
    }
    return m;
}

export const sshRule: Rule = (b, h, out) => {
    const at = path("host", "sshdEffective");
    if (same(b.host.sshdEffective, h.host.sshdEffective)) return;
    const mb = sshdMap(b.host.sshdEffective);
    const mh = sshdMap(h.host.sshdEffective);
    let n = 0;
    const emit = (kw: string, dir: Direction, what: string, why: string, idSuffix = "") => {
        n++;
        const bv = mb.get(kw);
        const hv = mh.get(kw);
        out.emit(`ssh.${kw}${idSuffix || `=${hv ? hv.join("|") : "(default)"}`}`, "ssh", dir, what, bv ? bv.join(" | ") : "(sshd default)", hv ? hv.join(" | ") : "(sshd default)", why, [at]);
    };
    for (const kw of new Set([...mb.keys(), ...mh.keys()])) {
        const bv = mb.get(kw);
        const hv = mh.get(kw);
        if (bv && hv && bv.join("\n") === hv.join("\n")) continue;
        if (ALG_KEYWORDS.includes(kw)) {
            const lb = (bv ?? []).join(",").split(",").filter(Boolean);
            const lh = (hv ?? []).join(",").split(",").filter(Boolean);
            const strong = STRONG_ALGORITHMS[kw];
            const added = lh.filter((a) => !lb.includes(a));
            const removed = lb.filter((a) => !lh.includes(a));
            const weakAdded = strong ? added.filter((a) => !strong.includes(a)) : added;
            const weakRemoved = strong ? removed.filter((a) => !strong.includes(a)) : [];
            const dir: Direction = !hv ? (strong ? "weakens" : "unclassified") : weakAdded.length ? (strong ? "weakens" : "unclassified") : weakRemoved.length ? "strengthens" : "neutral";
            const why = !hv
                ? "the line is gone: sshd's compiled-in defaults (including legacy algorithms) apply"
                : dir === "weakens"
                  ? `not in the ssh-audit-clean set: ${weakAdded.join(", ")}`
                  : dir === "unclassified"
                    ? `no strong list for ${kw}`
                    : dir === "strengthens"
                      ? `weak algorithms removed: ${weakRemoved.join(", ")}`
                      : added.length
                        ? `added from the strong set: ${added.join(", ")}`
                        : removed.length
                          ? `a strong algorithm fewer (${removed.join(", ")}): no weaker, clients need one of the rest`
                          : "preference order only";
            emit(kw, dir, `sshd ${kw}${added.length ? ` + ${added.join(",")}` : ""}${removed.length ? ` − ${removed.join(",")}` : ""}`, why, `${added.length ? `+${added.join(",")}` : ""}${removed.length ? `-${removed.join(",")}` : ""}` || ".order");
        } else if (kw in SSH_SECURE) {
            const good = SSH_SECURE[kw];
            const isGood = (v?: string[]) => !!v && v.length === 1 && v[0].toLowerCase() === good;
            const dir: Direction = isGood(hv) ? "strengthens" : isGood(bv) ? "weakens" : "unclassified";
            emit(kw, dir, `sshd ${kw} ${bv?.join(" ") ?? "(default)"} → ${hv?.join(" ") ?? "(default)"}`, dir === "weakens" ? `the hardened value is "${kw} ${good}"${hv ? "" : "; without the line sshd's default applies"}` : dir === "strengthens" ? `now "${kw} ${good}"` : "neither side is the hardened value");
        } else if (SSH_MORE_IS_WEAKER.includes(kw)) {
            const num = (v?: string[]) => {
                const x = Number(v?.[0]);
                return v === undefined || !Number.isFinite(x) ? NaN : x === 0 && kw !== "clientaliveinterval" ? Infinity : x;
            };
            const nb = num(bv);
            const nh = num(hv);
            const dir: Direction = Number.isNaN(nb) || Number.isNaN(nh) ? "unclassified" : byNumber(nb, nh, "weaker");
            emit(kw, dir, `sshd ${kw} ${bv?.join(" ") ?? "(default)"} → ${hv?.join(" ") ?? "(default)"}`, dir === "weakens" ? "more room for guessing or idle sessions" : dir === "strengthens" ? "less room for guessing or idle sessions" : "no number to compare");
        } else if (kw === "maxstartups") {
            const parts = (v?: string[]) => (v?.[0] ?? "").split(":").map(Number);
            const pb = parts(bv);
            const ph = parts(hv);
            const ok = bv && hv && [...pb, ...ph].every(Number.isFinite);
            const up = ok && (ph[0] > pb[0] || (ph[2] ?? ph[0]) > (pb[2] ?? pb[0]));
            const down = ok && (ph[0] < pb[0] || (ph[2] ?? ph[0]) < (pb[2] ?? pb[0]));
            const dir: Direction = !ok ? "unclassified" : up ? "weakens" : down ? "strengthens" : "neutral";
            emit(kw, dir, `sshd MaxStartups ${bv?.[0] ?? "(default)"} → ${hv?.[0] ?? "(default)"}`, dir === "weakens" ? "more unauthenticated connections before sshd drops new ones" : dir === "strengthens" ? "fewer unauthenticated connections accepted" : "no number to compare");
        } else if (kw === "allowusers" || kw === "allowgroups" || kw === "denyusers" || kw === "denygroups") {
            const words = (v?: string[]) => (v ?? []).join(" ").split(/\s+/).filter(Boolean);
            const added = words(hv).filter((u) => !words(bv).includes(u));
            const removed = words(bv).filter((u) => !words(hv).includes(u));
            const allow = kw.startsWith("allow");
            const dir: Direction = !hv ? (allow ? "weakens" : "weakens") : added.length ? (allow ? "weakens" : "strengthens") : removed.length ? (allow ? "strengthens" : "weakens") : "neutral";
            emit(kw, dir, `sshd ${kw}${added.length ? ` + ${added.join(" ")}` : ""}${removed.length ? ` − ${removed.join(" ")}` : ""}${hv ? "" : " removed"}`, !hv ? "the line is gone: every account may try to log in" : dir === "weakens" ? "more accounts may log in" : dir === "strengthens" ? "fewer accounts may log in" : "the same accounts");
        } else if (kw === "loglevel") {
            const r = (v?: string[]) => LOG_LEVELS.indexOf((v?.[0] ?? "info").toLowerCase());
            const cap = LOG_LEVELS.indexOf("verbose");
            const rb = Math.min(r(bv), cap);
            const rh = Math.min(r(hv), cap);
            const dir: Direction = r(bv) < 0 || r(hv) < 0 ? "unclassified" : byNumber(rb, rh, "stronger");
            emit(kw, dir, `sshd LogLevel ${bv?.[0] ?? "(default INFO)"} → ${hv?.[0] ?? "(default INFO)"}`, dir === "weakens" ? "key fingerprints of logins are no longer logged (VERBOSE)" : dir === "strengthens" ? "logins are logged with their key fingerprint" : "the same audit trail");
        } else if (kw === "hostkey") {
            const added = (hv ?? []).filter((k) => !(bv ?? []).includes(k));
            const weak = added.filter((k) => /(^|_)(dsa|ecdsa)_key$|_dsa_|_ecdsa_/.test(k));
            emit(kw, weak.length ? "weakens" : "neutral", `sshd host keys: ${(hv ?? []).join(", ") || "(default)"}`, weak.length ? `weaker host key types offered: ${weak.join(", ")}` : "host key files changed (clients pinning the old key will refuse)", `=${(hv ?? []).join(",")}`);
        } else if (SSH_NEUTRAL.includes(kw)) {
            emit(kw, "neutral", `sshd ${kw} ${bv?.join(" ") ?? "(default)"} → ${hv?.join(" ") ?? "(default)"}`, "no effect on who can log in or how");
        } else {
            emit(kw, "unclassified", `sshd ${kw} ${bv?.join(" ") ?? "(default)"} → ${hv?.join(" ") ?? "(default)"}`, "a setting no rule judges");
        }
    }
    if (n === 0) out.emit("ssh.order", "ssh", "neutral", "sshd settings listed in another order", undefined, undefined, "the same settings", [at]);
    if (b.adminUser !== h.adminUser) out.emit(`ssh.admin-user=${h.adminUser}`, "ssh", "neutral", "admin user renamed", b.adminUser, h.adminUser, "a new deploy account; see AllowUsers for who may log in", ["adminUser"]);
};

// ---------------------------------------------------------------------------------------------
// tls-headers and rate-limits, per site
// ---------------------------------------------------------------------------------------------

function judge(out: Collector, host: string, js: Judgement[], covers: string[]): void {
    for (const j of js) out.emit(`tls-headers.${host}.${j.key}`, "tls-headers", j.direction, `${host}: ${j.what}`, j.before, j.after, j.why, covers);
}

function rateOf(rl: SitePosture["rateLimit"] | undefined): number {
    if (!rl) return Infinity;
    return Number(rl.events) / durationSeconds(rl.window);
}

export const sitesRule: Rule = (b, h, out) => {
    const sb = byKey(b.sites, "host");
    const sh = byKey(h.sites, "host");
    for (const [host, s] of sh) {
        const at = (...p: Part[]) => path("sites", ["host", host], ...p);
        const old = sb.get(host);
        if (!old) {
            out.emit(`tls-headers.${host}+`, "tls-headers", "weakens", `new public site https://${host} → ${s.upstream}`, undefined, `${s.upstream}, ${s.rateLimit?.events}/${s.rateLimit?.window}`, "a new Internet-facing endpoint (the gateway's headers, TLS and rate limit apply; review the app behind it)", [at()]);
            continue;
        }
        const p = `tls-headers.${host}`;
        for (const k of ["url", "app", "upstream"] as const) {
            if (old[k] !== s[k]) out.emit(`${p}.${k}=${s[k]}`, "tls-headers", "neutral", `${host}: ${k} changed`, old[k], s[k], k === "url" ? "the address of the site" : "the site is served by another app (its own findings say how it runs)", [at(k)]);
        }
        const hb = old.headers ?? {};
        const hh = s.headers ?? {};
        const HSTS = "Strict-Transport-Security";
        if (hb[HSTS] !== hh[HSTS]) {
            const js = compareHsts(parseHsts(hb[HSTS]), parseHsts(hh[HSTS]));
            judge(out, host, js.length ? js : [{ key: "hsts.text", direction: "neutral", what: "HSTS header rewritten", before: hb[HSTS] ?? "(none)", after: hh[HSTS] ?? "(none)", why: "the same max-age and flags" }], [at("headers", HSTS)]);
        }
        if (!same(old.tls?.hsts, s.tls?.hsts)) {
            const js = compareHsts(old.tls?.hsts, s.tls?.hsts);
            judge(out, host, js.length ? js : [{ key: "hsts.text", direction: "neutral", what: "declared HSTS rewritten", before: text(old.tls?.hsts), after: text(s.tls?.hsts), why: "the same max-age and flags" }], [at("tls", "hsts")]);
        }
        const CSP = "Content-Security-Policy";
        if (hb[CSP] !== hh[CSP]) {
            const js = compareCsp(hb[CSP], hh[CSP]);
            judge(out, host, js.length ? js : [{ key: "csp.text", direction: "neutral", what: "CSP rewritten", before: hb[CSP] ?? "(none)", after: hh[CSP] ?? "(none)", why: "the same directives" }], [at("headers", CSP)]);
        }
        const PP = "Permissions-Policy";
        if (hb[PP] !== hh[PP]) judge(out, host, comparePermissions(hb[PP], hh[PP]), [at("headers", PP)]);
        for (const hd of RANKED_HEADERS) {
            const j = compareRanked(hd, hb[hd], hh[hd]);
            if (j) judge(out, host, [j], [at("headers", hd)]);
        }
        if (!same(old.removedHeaders, s.removedHeaders)) {
            const d = setDiff(old.removedHeaders, s.removedHeaders);
            for (const x of d.removed) out.emit(`${p}.removed-headers-:${x}`, "tls-headers", "weakens", `${host}: ${x} header no longer stripped`, old.removedHeaders, s.removedHeaders, `${x} tells attackers which software (and version) answers`, [at("removedHeaders")]);
            for (const x of d.added) out.emit(`${p}.removed-headers+:${x}`, "tls-headers", "strengthens", `${host}: ${x} header stripped`, old.removedHeaders, s.removedHeaders, "less about the software behind the site leaks", [at("removedHeaders")]);
            if (d.reordered) out.emit(`${p}.removed-headers.order`, "tls-headers", "neutral", `${host}: stripped headers reordered`, old.removedHeaders, s.removedHeaders, "the same headers", [at("removedHeaders")]);
        }
        if (!same(old.tls?.protocols, s.tls?.protocols)) {
            const j = compareTls(arr(old.tls?.protocols), arr(s.tls?.protocols));
            if (j) judge(out, host, [j], [at("tls", "protocols")]);
        }
        if (old.redirectHttp !== s.redirectHttp) {
            const dir = bool(old.redirectHttp, s.redirectHttp, "stronger");
            out.emit(`${p}.redirect-http=${s.redirectHttp}`, "tls-headers", dir, `${host}: HTTP → HTTPS redirect ${s.redirectHttp ? "on" : "off"}`, old.redirectHttp, s.redirectHttp, dir === "weakens" ? "plain-HTTP requests are answered instead of redirected" : "plain HTTP is redirected to HTTPS", [at("redirectHttp")]);
        }
        // Rate limits: the permitted request rate per client address.
        const rb = old.rateLimit;
        const rh = s.rateLimit;
        if (!same(rb, rh)) {
            if (rb?.events !== rh?.events || rb?.window !== rh?.window) {
                const fb = rateOf(rb);
                const fh = rateOf(rh);
                const dir: Direction = Number.isNaN(fb) || Number.isNaN(fh) ? "unclassified" : byNumber(fb, fh, "weaker");
                const show = (r?: SitePosture["rateLimit"]) => (r ? `${r.events} per ${r.window}` : "no limit");
                out.emit(`rate-limits.${host}=${rh ? `${rh.events}/${rh.window}` : "none"}`, "rate-limits", dir, `${host}: rate limit ${show(rb)} → ${show(rh)}`, show(rb), show(rh), dir === "weakens" ? `one client may send ${Number.isFinite(fb) && fb > 0 ? `${(fh / fb).toFixed(fh / fb >= 10 ? 0 : 1)}×` : "more"} as many requests before a 429` : dir === "strengthens" ? "one client gets a 429 sooner" : dir === "neutral" ? "the same rate" : "a window no rule reads", rb && rh ? [at("rateLimit", "events"), at("rateLimit", "window")] : [at("rateLimit")]);
            }
            if (rb && rh && rb.zone !== rh.zone) out.emit(`rate-limits.${host}.zone=${rh.zone}`, "rate-limits", "neutral", `${host}: rate-limit zone renamed`, rb.zone, rh.zone, "counters start from zero once", [at("rateLimit", "zone")]);
        }
    }
    for (const [host, s] of sb) {
        if (!sh.has(host)) out.emit(`tls-headers.${host}-`, "tls-headers", "strengthens", `site https://${host} removed`, s.upstream, undefined, "one Internet-facing endpoint fewer", [path("sites", ["host", host])]);
    }
};

// ---------------------------------------------------------------------------------------------
// containers
// ---------------------------------------------------------------------------------------------

/**
 * Names the review also redacts, beyond the config schema's rule: showing a reviewer less is always
 * safe, refusing such names in the config would not be (OAUTH_ISSUER_URL is configuration).
 */
const REDACT_NAME_EXTRA = /(ACCESS_?KEY|AUTH|DSN|CONNECTION_?STRING)/i;

/** An env entry that carries a secret value (never a *_FILE pointer to the secrets mount). */
export function secretLooking(entry: string): boolean {
    const i = entry.indexOf("=");
    const name = i < 0 ? entry : entry.slice(0, i);
    const value = i < 0 ? "" : entry.slice(i + 1);
    if (/_FILE$/.test(name) || value === "" || value.startsWith(`${SECRETS_MOUNT}/`)) return false;
    if (SECRET_LOOKING_RE.test(name) || REDACT_NAME_EXTRA.test(name)) return true;
    // The config's own rule for values: URLs with a password, PEM blocks, token shapes, random words.
    return credentialInValue(value, name) !== undefined;
}

/** Never show a secret-looking value: its name and length only. */
export function redactEnv(entry: string): string {
    if (!secretLooking(entry)) return entry;
    const i = entry.indexOf("=");
    return `${entry.slice(0, i)}=<redacted, ${entry.length - i - 1} characters>`;
}

const SENSITIVE_BINDS = [/^\/$/, /^\/etc(\/|$)/, /^\/root(\/|$)/, /^\/home(\/|$)/, /^\/proc(\/|$)/, /^\/sys(\/|$)/, /^\/dev(\/|$)/, /^\/boot(\/|$)/, /docker\.sock$/, /^\/var\/run(\/|$)/, /^\/run(\/|$)/, /^\/var\/lib\/docker(\/|$)/];
/** Host paths a container should not see; Citadel's own config and secrets trees are expected. */
const sensitiveBind = (src: string) => !/^\/etc\/citadel\//.test(src) && SENSITIVE_BINDS.some((r) => r.test(src));

function hardeningGaps(c: ContainerPosture): string[] {
    const gaps: string[] = [];
    if (c.uid === 0 || /^0(:|$)|^root/.test(String(c.user))) gaps.push("runs as root");
    if (c.privileged) gaps.push("privileged");
    if (!c.readOnly) gaps.push("writable root filesystem");
    if (!c.noNewPrivileges) gaps.push("no-new-privileges off");
    if (!arr(c.capDrop).includes("ALL")) gaps.push("capabilities not dropped (cap_drop ALL)");
    if (arr(c.capAdd).length) gaps.push(`adds ${c.capAdd.join(", ")}`);
    if (arr(c.publishedPorts).length) gaps.push(`publishes ${c.publishedPorts.map((p) => `${p.external}/${p.protocol}`).join(", ")}`);
    if (!(c.memoryMb > 0) || !(Number(c.cpus) > 0) || !(c.pids > 0)) gaps.push("missing memory/CPU/pids limit");
    for (const e of arr(c.env)) if (secretLooking(e)) gaps.push(`secret-looking env ${e.split("=")[0]}`);
    for (const m of arr(c.binds)) if (!m.readOnly || sensitiveBind(m.source)) gaps.push(`bind ${m.source}${m.readOnly ? "" : " (writable)"}`);
    return gaps;
}

const cpuNum = (v: unknown) => {
    const n = Number(v);
    return Number.isFinite(n) && n > 0 ? n : Infinity;
};
const limitNum = (v: unknown) => (typeof v === "number" && v > 0 ? v : Infinity);
const showLimit = (n: number, unit = "") => (Number.isFinite(n) ? `${n}${unit}` : "unlimited");

export const containersRule: Rule = (b, h, out) => {
    const cb = byKey(b.containers, "name");
    const ch = byKey(h.containers, "name");
    for (const [name, c] of ch) {
        const at = (...p: Part[]) => path("containers", ["name", name], ...p);
        const p = `containers.${name}`;
        const o = cb.get(name);
        if (!o) {
            const gaps = hardeningGaps(c);
            out.emit(`${p}+`, "containers", gaps.length ? "weakens" : "neutral", `new container ${name} (${c.image}, uid ${c.uid})`, undefined, `${c.image}; networks ${arr(c.networks).map((n) => n.network).join(", ") || "none"}`, gaps.length ? gaps.join("; ") : "hardened like the others: non-root, read-only, no capabilities, limited", [at()]);
            continue;
        }
        if (o.user !== c.user || o.uid !== c.uid) {
            const root = (x: ContainerPosture) => x.uid === 0 || /^0(:|$)|^root/.test(String(x.user));
            const dir: Direction = root(c) && !root(o) ? "weakens" : root(o) && !root(c) ? "strengthens" : "neutral";
            out.emit(`${p}.user=${c.user}`, "containers", dir, `${name} runs as ${c.user}`, o.user, c.user, dir === "weakens" ? "root in the container: a breakout or a writable mount is root's" : dir === "strengthens" ? "no longer root" : "another non-root uid (secret files must belong to it)", [at("user"), at("uid")]);
        }
        const flags: [keyof ContainerPosture, "stronger" | "weaker", string, string][] = [
            ["readOnly", "stronger", "read-only root filesystem", "an intruder can write binaries and config inside the container"],
            ["noNewPrivileges", "stronger", "no-new-privileges", "setuid binaries can raise privileges again"],
            ["privileged", "weaker", "privileged mode", "privileged: every capability and device, no isolation left"],
        ];
        for (const [k, trueIs, label, weakWhy] of flags) {
            if (o[k] === c[k]) continue;
            const dir = bool(o[k], c[k], trueIs);
            out.emit(`${p}.${k}=${String(c[k])}`, "containers", dir, `${name}: ${label} ${String(o[k])} → ${String(c[k])}`, o[k], c[k], dir === "weakens" ? weakWhy : dir === "strengthens" ? `${label} restored` : "a value no rule reads", [at(k)]);
        }
        if (!same(o.capAdd, c.capAdd)) {
            const d = setDiff(o.capAdd, c.capAdd);
            for (const cap of d.added) out.emit(`${p}.cap-add+:${cap}`, "containers", "weakens", `${name} gains capability ${cap}`, o.capAdd, c.capAdd, `${cap} lets the process do what root could (${cap === "SYS_ADMIN" ? "nearly everything" : "its part of it"})`, [at("capAdd")]);
            for (const cap of d.removed) out.emit(`${p}.cap-add-:${cap}`, "containers", "strengthens", `${name} drops capability ${cap}`, o.capAdd, c.capAdd, "one privilege fewer", [at("capAdd")]);
            if (d.reordered) out.emit(`${p}.cap-add.order`, "containers", "neutral", `${name}: capabilities reordered`, o.capAdd, c.capAdd, "the same capabilities", [at("capAdd")]);
        }
        if (!same(o.capDrop, c.capDrop)) {
            const d = setDiff(o.capDrop, c.capDrop);
            for (const cap of d.removed) out.emit(`${p}.cap-drop-:${cap}`, "containers", "weakens", `${name} no longer drops ${cap}`, o.capDrop, c.capDrop, cap === "ALL" ? "Docker's default capabilities come back (NET_RAW, CHOWN, SETUID...)" : `${cap} is kept`, [at("capDrop")]);
            for (const cap of d.added) out.emit(`${p}.cap-drop+:${cap}`, "containers", "strengthens", `${name} drops ${cap}`, o.capDrop, c.capDrop, "one privilege fewer", [at("capDrop")]);
            if (d.reordered) out.emit(`${p}.cap-drop.order`, "containers", "neutral", `${name}: dropped capabilities reordered`, o.capDrop, c.capDrop, "the same", [at("capDrop")]);
        }
        const limits: [keyof ContainerPosture, string, (v: unknown) => number, string][] = [
            ["memoryMb", "memory", limitNum, " MB"],
            ["cpus", "cpus", cpuNum, ""],
            ["pids", "pids", limitNum, ""],
        ];
        for (const [k, label, num, unit] of limits) {
            if (o[k] === c[k]) continue;
            const nb = num(o[k]);
            const nh = num(c[k]);
            const dir = nb === nh ? "neutral" : byNumber(nb, nh, "weaker");
            out.emit(`${p}.${label}=${showLimit(nh)}`, "containers", dir, `${name}: ${label} limit ${showLimit(nb, unit)} → ${showLimit(nh, unit)}`, showLimit(nb, unit), showLimit(nh, unit), dir === "weakens" ? (Number.isFinite(nh) ? "a runaway or compromised container can take more of the host" : "no limit: one container can starve the host") : dir === "strengthens" ? "less of the host for one container" : "the same limit", [at(k)]);
        }
        if (!same(o.tmpfs, c.tmpfs)) {
            const d = setDiff(o.tmpfs, c.tmpfs);
            out.emit(`${p}.tmpfs=${arr(c.tmpfs).join(",")}`, "containers", "neutral", `${name}: writable tmpfs ${d.added.length ? `+ ${d.added.join(" ")}` : ""}${d.removed.length ? ` − ${d.removed.join(" ")}` : ""}`.trim(), o.tmpfs, c.tmpfs, "in-memory paths (Docker mounts them noexec, nosuid); the root filesystem stays as declared", [at("tmpfs")]);
        }
        if (!same(o.publishedPorts, c.publishedPorts)) {
            const fmt = (x: ContainerPosture["publishedPorts"][number]) => `${x.hostIp && x.hostIp !== ALL_IPV4 ? `[${x.hostIp}]:` : ""}${x.external}→${x.internal}/${x.protocol}`;
            const d = setDiff(arr(o.publishedPorts).map(fmt), arr(c.publishedPorts).map(fmt));
            // An IPv6 binding ("[::]:443") of a stack that serves IPv6 on both sides only changes how (Docker's
            // NAT or Citadel's DNAT): exposure.ipv6 says so; the ports reached stay the same.
            const ipv6Both = servedOverIpv6(b) && servedOverIpv6(h);
            const v6 = (x: string) => ipv6Both && x.startsWith("[") && !x.startsWith(`[${ALL_IPV4}]`);
            for (const x of d.added) out.emit(`exposure.published+:${name}:${x}`, "exposure", v6(x) ? "neutral" : "weakens", `${name} publishes ${x} on the host`, arr(o.publishedPorts).map(fmt), arr(c.publishedPorts).map(fmt), v6(x) ? "IPv6 is served before and after (exposure.ipv6): Docker's IPv6 NAT instead of Citadel's DNAT, the same ports" : "a published port skips UFW's INPUT chain; only DOCKER-USER stands between it and the Internet", [at("publishedPorts")]);
            for (const x of d.removed) out.emit(`exposure.published-:${name}:${x}`, "exposure", v6(x) ? "neutral" : "strengthens", `${name} no longer publishes ${x}`, arr(o.publishedPorts).map(fmt), arr(c.publishedPorts).map(fmt), v6(x) ? "still served over IPv6 (exposure.ipv6): through Citadel's DNAT to the gateway instead of Docker's NAT" : "one host port fewer", [at("publishedPorts")]);
            if (!d.added.length && !d.removed.length) out.emit(`exposure.published.order:${name}`, "exposure", "neutral", `${name}: published ports reordered`, arr(o.publishedPorts).map(fmt), arr(c.publishedPorts).map(fmt), "the same ports", [at("publishedPorts")]);
        }
        if (!same(o.env, c.env)) {
            const kv = (l: string[]) => new Map(arr(l).map((e) => [e.split("=")[0], e]));
            const eb = kv(o.env);
            const eh = kv(c.env);
            let n = 0;
            for (const [k, e] of eh) {
                if (eb.get(k) === e) continue;
                n++;
                const secret = secretLooking(e);
                out.emit(`${p}.env${secret ? ".secret" : ""}:${k}`, "containers", secret ? "weakens" : "neutral", `${name}: env ${k} ${eb.has(k) ? "changed" : "added"}`, eb.has(k) ? redactEnv(eb.get(k)!) : undefined, redactEnv(e), secret ? "a secret in the environment shows in `docker inspect`, crash dumps and child processes; use `secrets` (a 0400 file)" : "plain configuration", [at("env")]);
            }
            for (const [k, e] of eb) {
                if (eh.has(k)) continue;
                n++;
                const secret = secretLooking(e);
                out.emit(`${p}.env-:${k}`, "containers", secret ? "strengthens" : "neutral", `${name}: env ${k} removed`, redactEnv(e), undefined, secret ? "a secret-looking value leaves the environment" : "plain configuration", [at("env")]);
            }
            if (n === 0) out.emit(`${p}.env.order`, "containers", "neutral", `${name}: env reordered`, arr(o.env).map(redactEnv), arr(c.env).map(redactEnv), "the same variables", [at("env")]);
        }
        if (o.image !== c.image) {
            const unpinned = !/[:@]/.test(String(c.image).split("/").pop() ?? "") || /:latest$/.test(String(c.image));
            const digest = (x: unknown) => String(x).includes("@sha256:");
            // A digest pin dropped lets the registry decide what runs; one added takes that away from it.
            const [dir, why] = unpinned
                ? (["weakens", "unpinned image: what runs can change without a review"] as const)
                : digest(o.image) && !digest(c.image)
                  ? (["weakens", "the digest pin is gone: whoever controls the registry can move the tag, and the host never refreshes it"] as const)
                  : !digest(o.image) && digest(c.image)
                    ? (["strengthens", "pinned by digest: exactly the image reviewed runs, and the next update is a reviewed change"] as const)
                    : (["neutral", "a new version of the software (review its own changes)"] as const);
            out.emit(`${p}.image=${c.image}`, "containers", dir, `${name}: image ${o.image} → ${c.image}`, o.image, c.image, why, [at("image")]);
        }
        if (c.buildFrom && o.buildFrom) {
            if (!same(o.buildFrom.args, c.buildFrom.args)) {
                out.emit(`${p}.buildFrom.args`, "containers", "neutral", `${name}: built from ${Object.entries(c.buildFrom.args).map(([k, v]) => `${k}=${v}`).join(", ") || "the Dockerfile's defaults"}`, o.buildFrom.args, c.buildFrom.args, "another toolchain, base image or module proxy for the build (review where they come from)", [at("buildFrom", "args")]);
            }
            if (o.buildFrom.filesSha256 !== c.buildFrom.filesSha256) {
                out.emit(`${p}.buildFrom.files`, "containers", "neutral", `${name}: rebuilt from changed images/caddy files`, o.buildFrom.filesSha256, c.buildFrom.filesSha256, "a new build of the gateway: the gateway-image step's diff shows the changed Dockerfile, go.mod, go.sum or main.go lines, which no config change explains", [at("buildFrom", "filesSha256")]);
            }
            if (o.buildFrom.inputsSha256 !== c.buildFrom.inputsSha256) {
                out.emit(`${p}.buildFrom.inputs`, "containers", "neutral", `${name}: image rebuilt on the host`, o.buildFrom.inputsSha256, c.buildFrom.inputsSha256, "its inputs changed (images/caddy files, tag, build arguments or the build step); the container runs the new build", [at("buildFrom", "inputsSha256")]);
            }
        } else if (c.buildFrom || o.buildFrom) {
            out.emit(`${p}.buildFrom`, "containers", "neutral", `${name}: ${c.buildFrom ? "built on the host" : "no longer built on the host"}`, o.buildFrom, c.buildFrom, "where the image comes from", [at("buildFrom")]);
        }
        if (o.build !== c.build) out.emit(`${p}.build=${String(c.build)}`, "containers", "neutral", `${name}: image ${c.build ? "built on the host" : "used as it is"}`, o.build, c.build, "where the image comes from", [at("build")]);
        if (!same(o.healthcheck, c.healthcheck)) {
            const dir: Direction = !c.healthcheck ? "weakens" : !o.healthcheck ? "strengthens" : "neutral";
            out.emit(`${p}.healthcheck${dir === "weakens" ? "-" : dir === "strengthens" ? "+" : ""}`, "containers", dir, `${name}: healthcheck ${dir === "weakens" ? "removed" : dir === "strengthens" ? "added" : "changed"}`, o.healthcheck, c.healthcheck, dir === "weakens" ? "a hung container is no longer noticed" : dir === "strengthens" ? "a hung container is noticed" : "another check", [at("healthcheck")]);
        }
        for (const k of ["labels", "rotatesWith", "after", "imageAfter"] as const) {
            if (same(o[k], c[k])) continue;
            out.emit(`${p}.${k}`, "containers", "neutral", `${name}: ${k} changed`, o[k], c[k], k === "labels" ? "configuration hashes: the container is re-created with its new configuration" : k === "rotatesWith" ? "which secret rotations re-create the container" : "ordering of pulumi up", [at(k)]);
        }
        if (o.logs?.maxSize !== c.logs?.maxSize || o.logs?.maxFile !== c.logs?.maxFile) {
            out.emit(`${p}.logs=${c.logs?.maxSize}x${c.logs?.maxFile}`, "containers", "neutral", `${name}: log rotation ${o.logs?.maxSize}×${o.logs?.maxFile} → ${c.logs?.maxSize}×${c.logs?.maxFile}`, o.logs, c.logs, "how much container log the host keeps", [at("logs", "maxSize"), at("logs", "maxFile")]);
        }
        // Secret mounts, binds, volumes: keyed by target inside the container.
        keyedChanges(o.secretMounts, c.secretMounts, "target", at("secretMounts"), (t, x, y, cov) => {
            out.emit(`${p}.secret-mount${!x ? "+" : !y ? "-" : ""}:${t}`, "secrets", "neutral", `${name}: secret file at ${t} ${!x ? "mounted" : !y ? "unmounted" : "changed"}`, x?.source, y?.source, "secrets arrive as read-only 0400 files", cov);
        }, (cov) => out.emit(`${p}.secret-mount.order`, "secrets", "neutral", `${name}: secret mounts reordered`, undefined, undefined, "the same mounts", cov));
        keyedChanges(o.binds, c.binds, "target", at("binds"), (t, x, y, cov) => {
            const risky = (m?: ContainerPosture["binds"][number]) => !!m && (!m.readOnly || sensitiveBind(m.source));
            const dir: Direction = y && risky(y) && (!x || !risky(x) || x.source !== y.source || (x.readOnly && !y.readOnly)) ? "weakens" : risky(x) && !risky(y) ? "strengthens" : "neutral";
            out.emit(`${p}.bind${!x ? "+" : !y ? "-" : ""}:${t}`, "containers", dir, `${name}: host path ${y?.source ?? x?.source} at ${t}${y ? (y.readOnly ? " (read-only)" : " (writable)") : " removed"}`, x, y, dir === "weakens" ? (y && !y.readOnly ? "the container can write to the host" : "the container sees a sensitive host path") : dir === "strengthens" ? "less of the host reachable from the container" : "configuration or logs", cov);
        }, (cov) => out.emit(`${p}.bind.order`, "containers", "neutral", `${name}: binds reordered`, undefined, undefined, "the same mounts", cov));
        keyedChanges(o.volumes, c.volumes, "target", at("volumes"), (t, x, y, cov) => {
            out.emit(`${p}.volume${!x ? "+" : !y ? "-" : ""}:${t}`, "containers", "neutral", `${name}: volume ${y?.name ?? x?.name} at ${t} ${!x ? "mounted" : !y ? "unmounted" : "changed"}`, x?.name, y?.name, "where the container keeps its data", cov);
        }, (cov) => out.emit(`${p}.volume.order`, "containers", "neutral", `${name}: volumes reordered`, undefined, undefined, "the same volumes", cov));
    }
    for (const [name, c] of cb) {
        if (!ch.has(name)) out.emit(`containers.${name}-`, "containers", "neutral", `container ${name} removed`, c.image, undefined, "the container is deleted (its volumes: see the volume findings)", [path("containers", ["name", name])]);
    }
    const vd = setDiff(b.volumes, h.volumes);
    for (const v of vd.removed) out.emit(`containers.volume-:${v}`, "containers", "weakens", `volume ${v} deleted`, v, undefined, "pulumi up deletes the volume: its data is lost without a restore", [path("volumes")]);
    for (const v of vd.added) out.emit(`containers.volume+:${v}`, "containers", "neutral", `volume ${v} created`, undefined, v, "new persistent data to back up", [path("volumes")]);
    if (vd.reordered) out.emit("containers.volumes.order", "containers", "neutral", "volumes reordered", b.volumes, h.volumes, "the same volumes", [path("volumes")]);
};

/**
 * Changes of a list keyed by `field`: added, removed or changed entries go to `each` with what they
 * cover; when only the order differs, `reordered`. An empty list is one leaf in flatten.ts ("[]"), so
 * when one side is empty the whole list is covered too.
 */
function keyedChanges<T extends object>(
    b: T[] | undefined,
    h: T[] | undefined,
    field: keyof T,
    whole: string,
    each: (key: string, before: T | undefined, after: T | undefined, covers: string[]) => void,
    reordered: (covers: string[]) => void,
): void {
    if (same(b, h)) return;
    const mb = byKey(b, field);
    const mh = byKey(h, field);
    const extra = arr(b).length === 0 || arr(h).length === 0 ? [whole] : [];
    let n = 0;
    for (const k of new Set([...mb.keys(), ...mh.keys()])) {
        if (same(mb.get(k), mh.get(k))) continue;
        n++;
        each(k, mb.get(k), mh.get(k), [`${whole}[${String(field)}=${k}]`, ...extra]);
    }
    if (n === 0) reordered([whole]);
}

// ---------------------------------------------------------------------------------------------
// network-isolation
// ---------------------------------------------------------------------------------------------

export const networksRule: Rule = (b, h, out) => {
    const nb = byKey(b.networks, "name");
    const nh = byKey(h.networks, "name");
    const cb = byKey(b.containers, "name");
    const ch = byKey(h.containers, "name");
    const attached = (c: ContainerPosture | undefined, net: string) => arr(c?.networks).some((a) => a.network === net);
    for (const name of new Set([...nb.keys(), ...nh.keys()])) {
        const o = nb.get(name);
        const n = nh.get(name);
        const at = (...p: Part[]) => path("networks", ["name", name], ...p);
        if (!o && n) {
            out.emit(`network-isolation.${name}+`, "network-isolation", n.internal ? "neutral" : "weakens", `new network ${name}${n.internal ? " (internal)" : " (routes out of the host)"}`, undefined, arr(n.members).join(", "), n.internal ? "internal: no route out; see who joins it" : "its members can reach the Internet", [at("name"), at("internal")]);
        } else if (o && !n) {
            out.emit(`network-isolation.${name}-`, "network-isolation", "neutral", `network ${name} removed`, arr(o.members).join(", "), undefined, "its members leave it (see the leave findings)", [at("name"), at("internal")]);
        } else if (o && n) {
            // Addressing: who reaches whom is the members' and the published ports' business.
            const keys = (["subnet", "gateway", "ipRange", "bridge", "ipv6Subnet", "ipv6Gateway", "ipv6IpRange"] as const).filter((k) => o[k] !== n[k]);
            if (keys.length && o.ipv6Subnet !== n.ipv6Subnet) {
                out.emit(`network-isolation.${name}.ipv6=${n.ipv6Subnet ?? "none"}`, "network-isolation", "neutral", `${name} ${n.ipv6Subnet ? `dual-stack (IPv6 ${n.ipv6Subnet})` : "IPv4 only"}`, o.ipv6Subnet ?? "(none)", n.ipv6Subnet ?? "(none)", `${arr(n.members).join(", ")} ${n.ipv6Subnet ? "also addressed and routed over IPv6: what reaches them from outside is the exposure findings' business (exposure.ipv6)" : "no longer reached over IPv6"}`, keys.map((k) => at(k)));
            } else if (keys.length) {
                out.emit(`network-isolation.${name}.addressing`, "network-isolation", "neutral", `${name}: ${keys.join(", ")} changed`, keys.map((k) => o[k] ?? "(none)").join(" "), keys.map((k) => n[k] ?? "(none)").join(" "), "addresses only; who reaches whom is unchanged", keys.map((k) => at(k)));
            }
        }
        if (o && n && o.internal !== n.internal) {
            const dir = bool(o.internal, n.internal, "stronger");
            out.emit(`network-isolation.${name}.internal=${String(n.internal)}`, "network-isolation", dir, `${name} ${n.internal ? "internal" : "no longer internal"}`, o.internal, n.internal, dir === "weakens" ? `${arr(n.members).join(", ")} get a route out of the host (exfiltration, callbacks)` : "no route out of the host", [at("internal")]);
        }
        // Membership, from the network's list; the container's own attachment is covered when it agrees.
        const mb = arr(o?.members);
        const mh = arr(n?.members);
        if (same(mb, mh)) continue;
        const d = setDiff(mb, mh);
        for (const c of d.added) {
            // On an app's data network, Postgres and Redis are expected company; another app is not.
            const dataNet = name.startsWith(DATA_NETWORK_PREFIX);
            const others = mb.filter((m) => m !== c && m !== GATEWAY_CONTAINER && !(dataNet && (m === POSTGRES_CONTAINER || m === REDIS_CONTAINER)));
            const why = n && !n.internal ? `${c} gets a route out of the host through ${name}` : others.length ? `${c} can reach ${others.join(", ")}` : dataNet ? `${c} can reach Postgres and Redis` : undefined;
            const covers = [at("members")];
            if (cb.has(c) && ch.has(c) && !attached(cb.get(c), name) && attached(ch.get(c), name)) covers.push(path("containers", ["name", c], "networks", ["network", name]));
            out.emit(`network-isolation.${name}.join:${c}`, "network-isolation", why ? "weakens" : "neutral", `${c} joins ${name}`, mb, mh, why ?? "a network of its own with the gateway (how an app is reached)", covers);
        }
        for (const c of d.removed) {
            const covers = [at("members")];
            if (cb.has(c) && ch.has(c) && attached(cb.get(c), name) && !attached(ch.get(c), name)) covers.push(path("containers", ["name", c], "networks", ["network", name]));
            out.emit(`network-isolation.${name}.leave:${c}`, "network-isolation", "strengthens", `${c} leaves ${name}`, mb, mh, `${c} no longer reaches ${name}'s members`, covers);
        }
        if (d.reordered) out.emit(`network-isolation.${name}.members.order`, "network-isolation", "neutral", `${name}: members reordered`, mb, mh, "the same members", [at("members")]);
    }
    // Aliases of an attachment that exists on both sides.
    for (const [name, c] of ch) {
        const o = cb.get(name);
        if (!o) continue;
        const ab = byKey(o.networks, "network");
        for (const a of arr(c.networks)) {
            const x = ab.get(a.network);
            if (x && !same(x.aliases, a.aliases)) out.emit(`network-isolation.${a.network}.aliases:${name}`, "network-isolation", "neutral", `${name}'s DNS names on ${a.network}`, x.aliases, a.aliases, "names only; who reaches whom is unchanged", [path("containers", ["name", name], "networks", ["network", a.network], "aliases")]);
            // A fixed address (the monitoring network's members, the gateway's IPv6 DNAT target): what
            // reaches it is the exposure findings' business (exposure.ipv6 for the gateway's).
            for (const k of ["ipv4Address", "ipv6Address"] as const) {
                if (x && x[k] !== a[k]) out.emit(`network-isolation.${a.network}.${k}:${name}`, "network-isolation", "neutral", `${name}'s fixed ${k === "ipv4Address" ? "IPv4" : "IPv6"} address on ${a.network}`, x[k] ?? "(picked by Docker)", a[k] ?? "(picked by Docker)", "an address only; who reaches it is decided by the firewall (see the exposure findings)", [path("containers", ["name", name], "networks", ["network", a.network], k)]);
            }
        }
    }
};

// ---------------------------------------------------------------------------------------------
// secrets and secret files
// ---------------------------------------------------------------------------------------------

export const secretsRule: Rule = (b, h, out) => {
    const sb = byKey(b.secrets, "name");
    const sh = byKey(h.secrets, "name");
    for (const [name, s] of sh) {
        const o = sb.get(name);
        const at = (...p: Part[]) => path("secrets", ["name", name], ...p);
        if (!o) {
            const weak = !(s.bits >= 128);
            out.emit(`secrets.${name}+`, "secrets", weak ? "weakens" : "neutral", `new secret ${name} (${s.kind}, ${s.bits} bit, rotated every ${s.rotationDays} days)`, undefined, `${s.bits} bit / ${s.rotationDays} d`, weak ? "under 128 bits: guessable" : "generated by Pulumi, delivered as a 0400 file", [at()]);
            continue;
        }
        if (o.rotationDays !== s.rotationDays) {
            const dir = byNumber(o.rotationDays, s.rotationDays, "weaker");
            out.emit(`secrets.${name}.rotation=${s.rotationDays}`, "secrets", dir, `${name} rotated every ${o.rotationDays} → ${s.rotationDays} days`, o.rotationDays, s.rotationDays, dir === "weakens" ? "a leaked value stays valid longer" : "a leaked value expires sooner", [at("rotationDays")]);
        }
        if ((o.forcedEpochs ?? 0) !== (s.forcedEpochs ?? 0)) {
            const raised = (s.forcedEpochs ?? 0) > (o.forcedEpochs ?? 0);
            out.emit(`secrets.${name}.rotateNow=${s.forcedEpochs ?? 0}`, "secrets", raised ? "strengthens" : "neutral", `${name}: forced rotation ${o.forcedEpochs ?? 0} → ${s.forcedEpochs ?? 0}`, o.forcedEpochs ?? 0, s.forcedEpochs ?? 0, raised ? "rotated now: a value that may have leaked is replaced at this pulumi up" : "lowering regenerates the value again, it never restores an older one", [at("forcedEpochs")]);
        }
        if ((o.previous ?? 0) !== (s.previous ?? 0)) {
            const dir = byNumber(o.previous ?? 0, s.previous ?? 0, "weaker");
            out.emit(`secrets.${name}.keepPrevious=${s.previous ?? 0}`, "secrets", dir, `${name}: previous generations kept ${o.previous ?? 0} → ${s.previous ?? 0}`, o.previous ?? 0, s.previous ?? 0, dir === "weakens" ? "older values stay usable longer after a rotation" : "older values stop being usable sooner (data or tokens under them become unreadable or invalid)", [at("previous")]);
        }
        if (o.bits !== s.bits || o.kind !== s.kind) {
            const dir: Direction = o.bits === s.bits ? "neutral" : byNumber(o.bits, s.bits, "stronger");
            out.emit(`secrets.${name}.bits=${s.bits}`, "secrets", dir, `${name}: ${o.kind} ${o.bits} bit → ${s.kind} ${s.bits} bit`, `${o.kind} ${o.bits}`, `${s.kind} ${s.bits}`, dir === "weakens" ? "less entropy: easier to guess" : dir === "strengthens" ? "more entropy" : "the same strength", [at("bits"), at("kind")]);
        }
    }
    for (const [name] of sb) if (!sh.has(name)) out.emit(`secrets.${name}-`, "secrets", "neutral", `secret ${name} removed`, name, undefined, "no longer generated (its files go with it)", [path("secrets", ["name", name])]);

    const fb = byKey(b.secretFiles, "path");
    const fh = byKey(h.secretFiles, "path");
    const perm = (m: string) => parseInt(String(m), 8);
    for (const [p, f] of fh) {
        const o = fb.get(p);
        const at = (...x: Part[]) => path("secretFiles", ["path", p], ...x);
        if (!o) {
            const loose = (perm(f.mode) & 0o077) !== 0;
            out.emit(`secrets.file+:${p}`, "secrets", loose ? "weakens" : "neutral", `new secret file ${p} (${f.mode}, uid ${f.ownerUid})`, undefined, `${f.secret} for ${arr(f.readers).join(", ")}`, loose ? "readable by more than its owner" : "one reader, mode 0400", [at()]);
            continue;
        }
        if (o.mode !== f.mode) {
            const more = (perm(f.mode) & ~perm(o.mode)) !== 0;
            const less = (perm(o.mode) & ~perm(f.mode)) !== 0;
            const dir: Direction = Number.isNaN(perm(f.mode)) ? "unclassified" : more ? "weakens" : less ? "strengthens" : "neutral";
            out.emit(`secrets.file.mode:${p}=${f.mode}`, "secrets", dir, `${p}: mode ${o.mode} → ${f.mode}`, o.mode, f.mode, dir === "weakens" ? "more users or processes may read or write the secret" : "fewer permissions", [at("mode")]);
        }
        if (!same(o.readers, f.readers)) {
            const d = setDiff(o.readers, f.readers);
            for (const r of d.added) out.emit(`secrets.file.reader+:${p}:${r}`, "secrets", "weakens", `${r} reads ${f.secret}`, o.readers, f.readers, "one more place the secret lives", [at("readers")]);
            for (const r of d.removed) out.emit(`secrets.file.reader-:${p}:${r}`, "secrets", "strengthens", `${r} no longer reads ${o.secret}`, o.readers, f.readers, "one place fewer", [at("readers")]);
            if (d.reordered) out.emit(`secrets.file.readers.order:${p}`, "secrets", "neutral", `${p}: readers reordered`, o.readers, f.readers, "the same readers", [at("readers")]);
        }
        if (o.step !== f.step) out.emit(`secrets.file.step:${p}`, "secrets", "neutral", `${p}: written by another step`, o.step, f.step, "a step name", [at("step")]);
    }
    for (const [p, f] of fb) if (!fh.has(p)) out.emit(`secrets.file-:${p}`, "secrets", "neutral", `secret file ${p} removed`, f.secret, undefined, "the file leaves the host", [path("secretFiles", ["path", p])]);
};

// ---------------------------------------------------------------------------------------------
// intrusion
// ---------------------------------------------------------------------------------------------

export const intrusionRule: Rule = (b, h, out) => {
    const ib = b.intrusion;
    const ih = h.intrusion;
    const at = (k: string) => path("intrusion", k);
    if (ib.engine !== ih.engine) out.emit(`intrusion.engine=${ih.engine}`, "intrusion", "neutral", `intrusion engine ${ib.engine} → ${ih.engine}`, ib.engine, ih.engine, "what is watched and where bans bite: see the sources and enforcement findings", [at("engine")]);
    const lists: [keyof typeof ib, string, "weakens" | "strengthens", string, string][] = [
        ["sources", "source", "weakens", "no longer watched: attacks there are not banned", "watched: attacks there end in a ban"],
        ["enforcedIn", "enforced-in", "weakens", "bans no longer enforced there", "bans enforced there too"],
    ];
    for (const [k, label, removedDir, removedWhy, addedWhy] of lists) {
        if (same(ib[k], ih[k])) continue;
        const d = setDiff(ib[k] as string[], ih[k] as string[]);
        for (const x of d.removed) out.emit(`intrusion.${label}-:${x}`, "intrusion", removedDir, `intrusion ${label} removed: ${x}`, ib[k], ih[k], removedWhy, [at(k)]);
        for (const x of d.added) out.emit(`intrusion.${label}+:${x}`, "intrusion", "strengthens", `intrusion ${label} added: ${x}`, ib[k], ih[k], addedWhy, [at(k)]);
        if (d.reordered) out.emit(`intrusion.${label}.order`, "intrusion", "neutral", `intrusion ${label}s reordered`, ib[k], ih[k], "the same", [at(k)]);
    }
    const nums: [keyof typeof ib, string, "weaker" | "stronger", string, string][] = [
        ["banTimeSeconds", "ban-time", "stronger", "a banned attacker is back sooner", "a banned attacker stays out longer"],
        ["maxRetry", "max-retry", "weaker", "more failures before a ban", "fewer failures before a ban"],
        ["findTimeSeconds", "find-time", "stronger", "failures are forgotten sooner: slow attacks are not banned", "failures are counted over a longer window"],
    ];
    for (const [k, label, higherIs, weakWhy, strongWhy] of nums) {
        if (ib[k] === ih[k]) continue;
        const dir = typeof ib[k] === "number" && typeof ih[k] === "number" ? byNumber(ib[k] as number, ih[k] as number, higherIs) : "unclassified";
        out.emit(`intrusion.${label}=${String(ih[k])}`, "intrusion", dir, `intrusion ${label} ${String(ib[k])} → ${String(ih[k])}`, ib[k], ih[k], dir === "weakens" ? weakWhy : dir === "strengthens" ? strongWhy : "not a number", [at(k)]);
    }
    if (!same(ib.exempt, ih.exempt)) {
        const d = setDiff(ib.exempt, ih.exempt);
        for (const c of d.added) {
            const wider = !coveredBy(c, ib.exempt);
            out.emit(`intrusion.exempt+:${c}`, "intrusion", wider ? "weakens" : "neutral", `${c} never banned`, ib.exempt, ih.exempt, wider ? `attacks from ${c} are never banned (a compromised host there brute-forces freely)` : "inside a range already exempt", [at("exempt")]);
        }
        for (const c of d.removed) {
            const narrower = !coveredBy(c, ih.exempt);
            out.emit(`intrusion.exempt-:${c}`, "intrusion", narrower ? "strengthens" : "neutral", `${c} can be banned again`, ib.exempt, ih.exempt, narrower ? `attacks from ${c} end in a ban` : "still inside an exempt range", [at("exempt")]);
        }
        if (d.reordered) out.emit("intrusion.exempt.order", "intrusion", "neutral", "exempt ranges reordered", ib.exempt, ih.exempt, "the same ranges", [at("exempt")]);
    }
};

// ---------------------------------------------------------------------------------------------
// host baseline: sysctl, journald, upgrades, Docker daemon
// ---------------------------------------------------------------------------------------------

const HARDENED_SYSCTL = new Map(SYSCTL_DEFAULTS.map((e) => [e.key, e.value]));
/** daemon.json keys: the hardened value and dockerd's default when the key is absent. */
const DAEMON: Record<string, { good: unknown; absent: unknown; why: string }> = {
    icc: { good: false, absent: true, why: "containers on the default bridge can talk to each other" },
    "no-new-privileges": { good: true, absent: false, why: "setuid binaries in containers can raise privileges" },
    "userland-proxy": { good: false, absent: true, why: "docker-proxy hides client addresses from the rate limit and intrusion detection" },
    iptables: { good: true, absent: true, why: "Docker stops managing its rules: DOCKER-USER and published ports behave unpredictably" },
};
const DAEMON_NEUTRAL = ["live-restore", "log-driver", "log-opts", "ip-forward"];
/** daemon.json keys of citadel:host.docker.ipv6: what they do, judged by the exposure findings they come with. */
const DAEMON_IPV6: Record<string, string> = {
    ip6tables: "Docker's own IPv6 NAT to containers with an IPv6 address; Citadel serves IPv6 with its own DNAT to the gateway instead (exposure.ipv6 says whether), and its mangle copy of DOCKER-USER filters IPv6 to containers either way",
    experimental: "Debian 12's docker.io (20.10) accepts ip6tables only with experimental on; Citadel uses no experimental feature",
};

function sizeBytes(s: string): number {
    const m = /^(\d+)([KMGT]?)$/i.exec(String(s));
    if (!m) return NaN;
    return Number(m[1]) * 1024 ** " KMGT".indexOf((m[2] || " ").toUpperCase());
}

export const hostRule: Rule = (b, h, out) => {
    section(() => sysctlRule(b, h, out));
    section(() => journaldRule(b, h, out));
    section(() => upgradesRule(b, h, out));
    section(() => daemonRule(b, h, out));
    section(() => osRule(b, h, out));
};

/** The OS baseline (citadel:host.os): each knob judged on its own. */
function osRule(b: Posture, h: Posture, out: Collector): void {
    const ob = b.host.os;
    const oh = h.host.os;
    const at = (k: string) => path("host", "os", k);
    if (ob.banner !== oh.banner) out.emit("host.os.banner", "host", "neutral", "login notice text changed", ob.banner, oh.banner, "what /etc/issue and /etc/issue.net say: no control changes", [at("banner")]);
    if (ob.coreDumps !== oh.coreDumps) {
        const dir = bool(ob.coreDumps, oh.coreDumps, "weaker");
        out.emit(`host.os.core-dumps=${String(oh.coreDumps)}`, "host", dir, `core dumps ${oh.coreDumps ? "allowed" : "off"}`, ob.coreDumps, oh.coreDumps, dir === "weakens" ? "a crashing process (Postgres, an app) can write its memory, secrets included, to disk" : "no process memory written to disk", [at("coreDumps")]);
    }
    const mods = setDiff(ob.disabledModules, oh.disabledModules);
    for (const m of mods.removed) out.emit(`host.os.module+${m}`, "host", "weakens", `kernel module ${m} may load again`, "disabled", "loadable", "a module nobody on this host needs is attack surface again (network protocols with a history of remote bugs, removable storage)", [at("disabledModules")]);
    for (const m of mods.added) out.emit(`host.os.module-${m}`, "host", "strengthens", `kernel module ${m} never loaded`, "loadable", "disabled", "less kernel attack surface", [at("disabledModules")]);
    // Older postures (before these knobs) read as Debian's values: umask 022, 5000 rounds, neither package.
    const umaskB = parseInt(ob.umask ?? "022", 8);
    const umaskH = parseInt(oh.umask ?? "022", 8);
    if (umaskB !== umaskH) {
        const dir: Direction = (umaskH & ~umaskB) !== 0 && (umaskB & ~umaskH) === 0 ? "strengthens" : (umaskB & ~umaskH) !== 0 && (umaskH & ~umaskB) === 0 ? "weakens" : "unclassified";
        out.emit(`host.os.umask=${oh.umask}`, "host", dir, `login.defs UMASK ${ob.umask ?? "022 (Debian's)"} → ${oh.umask}`, ob.umask, oh.umask, dir === "weakens" ? "new files of an account are open to more accounts" : dir === "strengthens" ? "new files of an account are open to fewer accounts" : "some permissions open up while others close: read both", [at("umask")]);
    }
    if ((ob.passwordHashRounds ?? 5000) !== (oh.passwordHashRounds ?? 5000)) {
        const dir = byNumber(ob.passwordHashRounds ?? 5000, oh.passwordHashRounds ?? 5000, "stronger");
        out.emit(`host.os.hash-rounds=${oh.passwordHashRounds}`, "host", dir, `SHA-512 password hash rounds ${ob.passwordHashRounds ?? 5000} → ${oh.passwordHashRounds}`, ob.passwordHashRounds, oh.passwordHashRounds, dir === "weakens" ? "a stolen /etc/shadow is cheaper to crack (for hashes the shadow tools make)" : "a stolen /etc/shadow is costlier to crack", [at("passwordHashRounds")]);
    }
    // Turning one off leaves its package on existing hosts: what weakens is new servers and the audit.
    const knobs = [
        ["pamTmpdir", "a private TMPDIR per login (libpam-tmpdir)", "a new server's accounts share /tmp for their temporary files; existing hosts keep pam_tmpdir, no longer checked", "each login gets its own TMPDIR"],
        ["packageVerification", "debsums and the audit's package check", "a binary replaced behind dpkg's back goes unnoticed by the audit", "the audit compares every package's files with dpkg's checksums"],
        ["auditDocker", "auditd's watches on the Docker daemon, its configuration and binaries", "Citadel's rules are removed: a change to Docker's binaries or configuration leaves no audit record", "changes to Docker's binaries and configuration are recorded (ausearch -k citadel-docker)"],
    ] as const;
    for (const [k, what, weaker, stronger] of knobs) {
        if ((ob[k] ?? false) === (oh[k] ?? false)) continue;
        const dir = bool(ob[k] ?? false, oh[k] ?? false, "stronger");
        out.emit(`host.os.${k}=${String(oh[k])}`, "host", dir, `${what} ${oh[k] ? "on" : "off"}`, ob[k], oh[k], dir === "weakens" ? weaker : stronger, [at(k)]);
    }
}

function sysctlRule(b: Posture, h: Posture, out: Collector): void {
    const kb = byKey(b.host.sysctl, "key");
    const kh = byKey(h.host.sysctl, "key");
    for (const key of new Set([...kb.keys(), ...kh.keys()])) {
        const o = kb.get(key);
        const n = kh.get(key);
        const hard = HARDENED_SYSCTL.get(key);
        const at = (...p: Part[]) => path("host", "sysctl", ["key", key], ...p);
        if (o && n && o.value !== n.value) {
            const dir: Direction = hard === undefined ? "unclassified" : n.value === hard ? "strengthens" : o.value === hard ? "weakens" : "unclassified";
            out.emit(`host.sysctl.${key}=${n.value}`, "host", dir, `sysctl ${key} ${o.value} → ${n.value}`, o.value, n.value, dir === "weakens" ? `the hardened value is ${hard}${o.why ? ` (${o.why})` : ""}` : dir === "strengthens" ? "back to the hardened value" : "no hardened value to compare with", [at("value")]);
        } else if (!o && n) {
            const dir: Direction = hard !== undefined && n.value === hard ? "strengthens" : "unclassified";
            out.emit(`host.sysctl.${key}+=${n.value}`, "host", dir, `sysctl ${key} = ${n.value} set`, undefined, n.value, dir === "strengthens" ? "a hardened value" : "a kernel setting no rule judges", [at()]);
        } else if (o && !n) {
            const dir: Direction = hard !== undefined && o.value === hard ? "weakens" : "neutral";
            out.emit(`host.sysctl.${key}-`, "host", dir, `sysctl ${key} no longer set`, o.value, undefined, dir === "weakens" ? "the kernel's default applies (not the hardened value)" : "no longer overridden", [at()]);
        }
        if (o && n && (o.optional !== n.optional || o.why !== n.why)) out.emit(`host.sysctl.${key}.note`, "host", "neutral", `sysctl ${key}: note or optional flag changed`, { optional: o.optional, why: o.why }, { optional: n.optional, why: n.why }, "documentation and whether a container may skip it", [at("optional"), at("why")]);
    }
}

function journaldRule(b: Posture, h: Posture, out: Collector): void {
    const jb = b.host.journald;
    const jh = h.host.journald;
    if (jb.maxRetentionDays !== jh.maxRetentionDays) {
        const dir = byNumber(jb.maxRetentionDays, jh.maxRetentionDays, "stronger");
        out.emit(`host.journald.retention=${jh.maxRetentionDays}`, "host", dir, `journald keeps logs ${jb.maxRetentionDays} → ${jh.maxRetentionDays} days`, jb.maxRetentionDays, jh.maxRetentionDays, dir === "weakens" ? "less history to investigate an incident (policy: 90 days)" : "more history for investigations", [path("host", "journald", "maxRetentionDays")]);
    }
    if (jb.systemMaxUse !== jh.systemMaxUse) {
        const sb = sizeBytes(jb.systemMaxUse);
        const sh = sizeBytes(jh.systemMaxUse);
        const dir: Direction = Number.isNaN(sb) || Number.isNaN(sh) ? "unclassified" : byNumber(sb, sh, "stronger");
        out.emit(`host.journald.max-use=${jh.systemMaxUse}`, "host", dir, `journald disk cap ${jb.systemMaxUse} → ${jh.systemMaxUse}`, jb.systemMaxUse, jh.systemMaxUse, dir === "weakens" ? "old logs are dropped sooner" : "room for more logs", [path("host", "journald", "systemMaxUse")]);
    }
}

function upgradesRule(b: Posture, h: Posture, out: Collector): void {
    const ub = b.host.unattendedUpgrades;
    const uh = h.host.unattendedUpgrades;
    if (ub.enabled !== uh.enabled) {
        const dir = bool(ub.enabled, uh.enabled, "stronger");
        out.emit(`host.unattended-upgrades=${String(uh.enabled)}`, "host", dir, `unattended security upgrades ${uh.enabled ? "on" : "off"}`, ub.enabled, uh.enabled, dir === "weakens" ? "security updates wait for someone to install them" : "security updates install daily", [path("host", "unattendedUpgrades", "enabled")]);
    }
    if (ub.applyAtConverge !== uh.applyAtConverge) {
        const dir = bool(ub.applyAtConverge, uh.applyAtConverge, "stronger");
        out.emit(`host.unattended-upgrades.apply-at-converge=${String(uh.applyAtConverge)}`, "host", dir, `pending security updates ${uh.applyAtConverge ? "installed by the converge" : "left to the nightly run"}`, ub.applyAtConverge, uh.applyAtConverge, dir === "weakens" ? "a fresh server serves on its image's packages until the first nightly run" : "a fresh server is patched before it serves", [path("host", "unattendedUpgrades", "applyAtConverge")]);
    }
    if (ub.autoReboot !== uh.autoReboot || ub.autoRebootTime !== uh.autoRebootTime) {
        out.emit(`host.unattended-upgrades.reboot=${String(uh.autoReboot)}@${uh.autoRebootTime}`, "host", "neutral", `automatic reboot ${uh.autoReboot ? `on at ${uh.autoRebootTime}` : "off"}`, `${ub.autoReboot} ${ub.autoRebootTime}`, `${uh.autoReboot} ${uh.autoRebootTime}`, "availability versus a patched kernel running sooner: the operator's call", [path("host", "unattendedUpgrades", "autoReboot"), path("host", "unattendedUpgrades", "autoRebootTime")]);
    }
}

function daemonRule(b: Posture, h: Posture, out: Collector): void {
    const db = (b.host.dockerDaemon ?? {}) as Record<string, unknown>;
    const dh = (h.host.dockerDaemon ?? {}) as Record<string, unknown>;
    for (const k of new Set([...Object.keys(db), ...Object.keys(dh)])) {
        if (same(db[k], dh[k])) continue;
        const at = path("host", "dockerDaemon", k);
        const rule = DAEMON[k];
        if (rule) {
            const vb = k in db ? db[k] : rule.absent;
            const vh = k in dh ? dh[k] : rule.absent;
            const dir: Direction = same(vb, vh) ? "neutral" : same(vh, rule.good) ? "strengthens" : same(vb, rule.good) ? "weakens" : "unclassified";
            out.emit(`host.docker.${k}=${JSON.stringify(dh[k] ?? "(default)")}`, "host", dir, `daemon.json ${k}: ${JSON.stringify(db[k] ?? "(default)")} → ${JSON.stringify(dh[k] ?? "(default)")}`, db[k], dh[k], dir === "weakens" ? rule.why : dir === "strengthens" ? "back to the hardened value" : dir === "neutral" ? "the same effective value" : "a value no rule judges", [at]);
        } else if (DAEMON_NEUTRAL.includes(k)) {
            out.emit(`host.docker.${k}`, "host", "neutral", `daemon.json ${k} changed`, db[k], dh[k], "logging and restarts: no effect on isolation", [at]);
        } else if (DAEMON_IPV6[k]) {
            out.emit(`host.docker.${k}=${JSON.stringify(dh[k] ?? "(default)")}`, "host", "neutral", `daemon.json ${k}: ${JSON.stringify(db[k] ?? "(default)")} → ${JSON.stringify(dh[k] ?? "(default)")}`, db[k], dh[k], DAEMON_IPV6[k], [at]);
        }
    }
}

export const otherRule: Rule = (b, h, out) => {
    if (b.domain !== h.domain) out.emit(`other.domain=${h.domain}`, "other", "neutral", "apex domain changed", b.domain, h.domain, "the ACME account's domain; each site names its own host", ["domain"]);
};

// ---------------------------------------------------------------------------------------------
// monitoring: who is told, and when
// ---------------------------------------------------------------------------------------------

export const monitoringRule: Rule = (b, h, out) => {
    const mb = b.monitoring;
    const mh = h.monitoring;
    if (same(mb, mh)) return;
    if (mb.enabled !== mh.enabled) {
        const on = mh.enabled;
        out.emit(`monitoring.enabled=${on}`, "monitoring", on ? "strengthens" : "weakens", on ? "monitoring and alerts on" : "monitoring and alerts off", String(mb.enabled), String(mh.enabled), on ? "brute force, drift, a full disk or a failing certificate now reach a receiver" : "nobody is told of brute force, drift, a full disk or a failing certificate", ["monitoring"]);
        return;
    }
    if (!mb.enabled || !mh.enabled) return;
    // Thresholds: a higher count, percent or number of days alerts later (weaker); a longer window counts more events (stronger).
    const tb = mb.thresholds as Record<string, unknown>;
    const th = mh.thresholds as Record<string, unknown>;
    for (const k of new Set([...Object.keys(tb), ...Object.keys(th)])) {
        const x = tb[k];
        const y = th[k];
        if (same(x, y)) continue;
        const at = path("monitoring", "thresholds", k);
        if (typeof x === "number" && typeof y === "number") {
            const dir = byNumber(x, y, "weaker");
            out.emit(`monitoring.threshold.${k}=${y}`, "monitoring", dir, `alert threshold ${k} ${x} → ${y}`, String(x), String(y), dir === "weakens" ? "the alert fires later, or not at all" : "the alert fires sooner", [at]);
        } else if (typeof x === "object" && typeof y === "object" && x && y) {
            const cx = (x as { count: number }).count;
            const cy = (y as { count: number }).count;
            const wx = (x as { window: string }).window;
            const wy = (y as { window: string }).window;
            if (cx !== cy) {
                const dir = byNumber(cx, cy, "weaker");
                out.emit(`monitoring.threshold.${k}.count=${cy}`, "monitoring", dir, `alert ${k}: more than ${cx} → ${cy}`, String(cx), String(cy), dir === "weakens" ? "more events before anyone is told" : "fewer events before anyone is told", [path("monitoring", "thresholds", k, "count")]);
            }
            if (wx !== wy) out.emit(`monitoring.threshold.${k}.window=${wy}`, "monitoring", "unclassified", `alert ${k}: window ${wx} → ${wy}`, wx, wy, "a longer window counts slower attacks, a shorter one only bursts: judge with the count", [path("monitoring", "thresholds", k, "window")]);
        } else out.emit(`monitoring.threshold.${k}`, "monitoring", "unclassified", `alert threshold ${k} changed`, JSON.stringify(x), JSON.stringify(y), "not a known shape", [at]);
    }
    if (mb.routeReceiver !== mh.routeReceiver) {
        const dir = !mh.routeReceiver ? "weakens" : !mb.routeReceiver ? "strengthens" : "neutral";
        out.emit(`monitoring.route=${mh.routeReceiver ?? "(none)"}`, "monitoring", dir, `alerts go to ${mh.routeReceiver ?? "nobody"}`, mb.routeReceiver ?? "(none)", mh.routeReceiver ?? "(none)", dir === "weakens" ? "alerts stay in Alertmanager's UI: nobody is told" : dir === "strengthens" ? "alerts now reach a receiver" : "another receiver (its URL is a secret, not shown)", [path("monitoring", "routeReceiver")]);
    }
    if (mb.driftIntervalSeconds !== mh.driftIntervalSeconds) {
        const dir = byNumber(mb.driftIntervalSeconds, mh.driftIntervalSeconds, "weaker");
        out.emit(`monitoring.drift-interval=${mh.driftIntervalSeconds}`, "monitoring", dir, `drift audit every ${mb.driftIntervalSeconds} s → ${mh.driftIntervalSeconds} s`, String(mb.driftIntervalSeconds), String(mh.driftIntervalSeconds), dir === "weakens" ? "drift is found later" : "drift is found sooner", [path("monitoring", "driftIntervalSeconds")]);
    }
    if (!same(mb.rules.map((r) => r.alert), mh.rules.map((r) => r.alert))) {
        const d = setDiff(mb.rules.map((r) => r.alert), mh.rules.map((r) => r.alert));
        for (const r of d.removed) out.emit(`monitoring.rule-:${r}`, "monitoring", "weakens", `alert rule ${r} removed`, r, "(none)", "what it watched is no longer told", [path("monitoring", "rules")]);
        for (const r of d.added) out.emit(`monitoring.rule+:${r}`, "monitoring", "strengthens", `alert rule ${r} added`, "(none)", r, "one more thing someone is told about", [path("monitoring", "rules")]);
    }
};

export const RULES: [string, Rule][] = [
    ["server", serverRule],
    ["exposure", exposureRule],
    ["ssh", sshRule],
    ["sites", sitesRule],
    ["containers", containersRule],
    ["networks", networksRule],
    ["secrets", secretsRule],
    ["intrusion", intrusionRule],
    ["monitoring", monitoringRule],
    ["host", hostRule],
    ["other", otherRule],
];
