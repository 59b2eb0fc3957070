// The perimeter (the Hetzner Cloud firewall, target hcloud) seen from outside: what it lets through
// is judged against the declared rules (components/posture `cloudFirewallRules`, via the exposure
// posture), never against a second list here. To see the perimeter itself and not the host's own
// firewall behind it, each check opens a hole in UFW for the port it tests (and, for a port nothing
// listens on, a listener) for the duration of the check, and undoes both: opt-in, like the attacks.
import * as net from "node:net";
import type { CloudFirewallRule } from "../components/posture";
import { posture, SSH_PORT } from "../components/posture";
import { tcpOpen } from "./outside";
import { Attacker, AuditTarget, CheckDef, Drift, fromDrift, Inside, Probe, skip, waitUntil } from "./types";

/** Whether `cidr` contains `ip` (IPv4 or IPv6; a bare address is a /32 or /128). */
export function cidrContains(cidr: string, ip: string): boolean {
    const family = (a: string) => (net.isIPv6(a) ? "ipv6" : "ipv4");
    const [base, bits] = cidr.split("/");
    if (family(base) !== family(ip)) return false;
    const list = new net.BlockList();
    list.addSubnet(base, Number(bits ?? (family(base) === "ipv6" ? 128 : 32)), family(base));
    return list.check(ip, family(ip));
}

/** Whether a rule's port spec ("22", "8000-8010", none = every port) covers `port`. */
function portCovered(spec: string | undefined, port: number): boolean {
    if (spec === undefined || spec === "" || spec === "any") return true;
    const [lo, hi] = spec.split("-").map(Number);
    return port >= lo && port <= (hi ?? lo);
}

/** Whether the declared cloud firewall lets `source` open tcp/`port` (Hetzner: inbound dropped unless a rule allows). */
export function perimeterAllows(rules: CloudFirewallRule[], source: string, port: number): boolean {
    return rules.some((r) => r.direction === "in" && r.protocol === "tcp" && portCovered(r.port, port) && r.sourceIps.some((c) => cidrContains(c, source)));
}

/** A port the declared cloud firewall opens to nobody: the lowest of citadel:firewall.denyPorts (the app ports). */
export function portClosedByPerimeter(rules: CloudFirewallRule[], deny: { from: number; to: number }): number | undefined {
    for (let p = deny.from; p <= deny.to; p++) {
        if (!rules.some((r) => r.direction === "in" && r.protocol === "tcp" && portCovered(r.port, p))) return p;
    }
    return undefined;
}

/** Reachability as seen from a source: open, dropped (no answer: what a cloud firewall does), or refused (the host answered). */
function reachOf(p: Probe, address: string, port: number): { state: "open" | "dropped" | "refused"; err: string } {
    const r = tcpOpen(p, address, port);
    if (r.open) return { state: "open", err: "" };
    return { state: r.err === "TimeoutError" || r.err === "timeout" ? "dropped" : "refused", err: r.err };
}

/**
 * Runs `fn` with UFW allowing tcp/`port` from anywhere (inserted first, so it wins over the declared
 * rules) and, with `listen`, a listener on the port; both undone afterwards. A rule the host already
 * has is left alone (not added, not removed).
 */
async function withUfwHole<T>(inside: Inside, port: number, listen: boolean, fn: () => Promise<T> | T): Promise<T> {
    const rule = `${port}/tcp`;
    const unit = `citadel-audit-perimeter-${port}`;
    const had = inside.sh("sudo -n ufw show added");
    if (had.code !== 0) throw new Error(`ufw show added failed: ${had.stderr.trim().slice(-200)}`);
    const addRule = !had.stdout.split("\n").some((l) => l.trim() === `ufw allow ${rule}`);
    let added = false;
    let started = false;
    try {
        if (addRule) {
            const r = inside.sh(`sudo -n ufw insert 1 allow ${rule}`);
            if (r.code !== 0) throw new Error(`ufw insert 1 allow ${rule} failed: ${r.stderr.trim().slice(-200)}`);
            added = true;
        }
        if (listen) {
            // A unit of that name left by an interrupted audit would make systemd-run refuse: cleared first.
            inside.sh(`sudo -n systemctl stop ${unit} 2>/dev/null; sudo -n systemctl reset-failed ${unit} 2>/dev/null; true`);
            const r = inside.sh(`sudo -n systemd-run --quiet --unit ${unit} python3 -m http.server --bind 0.0.0.0 ${port}`);
            if (r.code !== 0) throw new Error(`cannot start a listener on ${port} on the host: ${r.stderr.trim().slice(-200)}`);
            started = true;
            // Control: the port answers on the host itself, so a drop from outside is the network's doing.
            const up = await waitUntil(() => inside.sh(`(exec 3<>/dev/tcp/127.0.0.1/${port}) 2>/dev/null`).code === 0, 15_000, 500);
            if (!up) throw new Error(`the audit's listener on ${port} does not answer on the host`);
        }
        return await fn();
    } finally {
        const undo: string[] = [];
        if (started) undo.push(`sudo -n systemctl stop ${unit}`, `{ sudo -n systemctl reset-failed ${unit} 2>/dev/null; true; }`);
        if (added) undo.push(`sudo -n ufw delete allow ${rule}`);
        if (undo.length) {
            const r = inside.sh(undo.join(" && "));
            if (r.code !== 0) throw new Error(`the audit could not undo its change to the host (${undo.join("; ")}): ${r.stderr.trim().slice(-200)}`);
        }
    }
}

/** The declared rules, or why this target has no perimeter to check. */
function declaredRules(t: AuditTarget): CloudFirewallRule[] | string {
    const rules = posture(t.config).exposure.cloudFirewall;
    return rules.length ? rules : `the posture declares no cloud firewall for target ${t.config.target}`;
}

const perimeterSsh: CheckDef = {
    id: "atk-perimeter-ssh",
    title: "perimeter: SSH from a source outside admin.sourceIps is as the cloud firewall declares (dropped), even with UFW open",
    group: "attack",
    async run(t: AuditTarget) {
        const rules = declaredRules(t);
        if (typeof rules === "string") return skip(rules);
        if (!t.outsider) return skip("no source outside citadel:admin.sourceIps for this target (this machine is inside them): the perimeter's drop cannot be seen from here");
        const outsider: Attacker = t.outsider();
        try {
            const inAdmin = t.config.admin.sourceIps.filter((c) => cidrContains(c, outsider.address));
            if (inAdmin.length) throw new Error(`the outside source ${outsider.address} is inside citadel:admin.sourceIps (${inAdmin.join(", ")})`);
            const allowed = perimeterAllows(rules, outsider.address, SSH_PORT);
            const declared = allowed ? "open (the cloud firewall lets SSH in from anywhere: admin.sourceIps is empty)" : "dropped by the cloud firewall";
            return await withUfwHole(t.inside, SSH_PORT, false, () => {
                // Control: an admin source reaches sshd through the same perimeter, so a drop is the perimeter's.
                const control = reachOf(t.probe, t.address, SSH_PORT);
                if (control.state !== "open") throw new Error(`control: ${t.probe.describe} (an admin source) cannot reach ${t.address}:${SSH_PORT} (${control.err})`);
                const got = reachOf(outsider.probe, t.address, SSH_PORT);
                const drift: Drift[] = [];
                if ((got.state === "open") !== allowed || (!allowed && got.state !== "dropped"))
                    drift.push({ what: `tcp/${SSH_PORT} from ${outsider.address} (outside admin.sourceIps), UFW open`, expected: declared, actual: got.state === "refused" ? `refused (${got.err}): it reached the host` : got.state });
                return fromDrift(drift, `tcp/${SSH_PORT} from ${outsider.address} with UFW open: ${got.state}${got.err ? ` (${got.err})` : ""}, as declared; from ${t.probe.describe}: open`);
            });
        } finally {
            outsider.remove();
        }
    },
};

const perimeterPort: CheckDef = {
    id: "atk-perimeter-port",
    title: "perimeter: an app port the cloud firewall does not open stays dropped, even when UFW opens it and the host listens",
    group: "attack",
    async run(t: AuditTarget) {
        const rules = declaredRules(t);
        if (typeof rules === "string") return skip(rules);
        const port = portClosedByPerimeter(rules, t.config.firewall.denyPorts);
        if (port === undefined) return skip(`every port of citadel:firewall.denyPorts (${t.config.firewall.denyPorts.from}-${t.config.firewall.denyPorts.to}) is opened by a cloud firewall rule`);
        const outsider = t.outsider?.();
        try {
            const sources: { probe: Probe; name: string }[] = [{ probe: t.probe, name: t.probe.describe }, ...(outsider ? [{ probe: outsider.probe, name: `${outsider.address} (outside admin.sourceIps)` }] : [])];
            return await withUfwHole(t.inside, port, true, () => {
                const drift: Drift[] = [];
                const seen: string[] = [];
                for (const s of sources) {
                    const got = reachOf(s.probe, t.address, port);
                    seen.push(`${s.name}: ${got.state}`);
                    if (got.state !== "dropped") drift.push({ what: `tcp/${port} from ${s.name}, UFW open and the host listening`, expected: "dropped by the cloud firewall", actual: got.state === "refused" ? `refused (${got.err}): it reached the host` : got.state });
                }
                return fromDrift(drift, `tcp/${port} (listening on the host, UFW open) ${seen.join("; ")}`);
            });
        } finally {
            outsider?.remove();
        }
    },
};

export const PERIMETER_CHECKS: CheckDef[] = [perimeterSsh, perimeterPort];
