// How the audit reaches a host: the stack's declared config and outputs, an Inside (SSH as the admin
// user, host key pinned) and a Probe (a second host for "outside" traffic). Only the local VPS is wired
// end to end here; a remote stack uses its outputs and probes from this machine.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { StackConfig } from "../components/config";
import { loadStackConfig, REPO_ROOT } from "../components/stackfile";
import { Attacker, AuditTarget, CommandResult, Inside, Probe } from "./types";

export const PROBE_CONTAINER = "citadel-audit-probe";
/** The SSH brute force's source: its own container (and address), banned by the attack, removed after. */
export const ATTACKER_CONTAINER = "citadel-audit-attacker";

function exec(cmd: string, args: string[], opts: { stdin?: string; timeoutMs?: number } = {}): CommandResult {
    const r = spawnSync(cmd, args, { encoding: "utf8", input: opts.stdin, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024 });
    return { code: r.status, stdout: r.stdout ?? "", stderr: (r.stderr ?? "") + (r.error ? String(r.error) : "") };
}

/** The non-secret stack outputs the audit reads (components/stack.ts). */
export interface StackOutputs {
    address?: string;
    sshHostKey?: string;
    sshUser?: string;
    sites?: string[];
    exposure?: { tcp: number[]; sshSourceIps: string[] };
    intrusionEngine?: string;
    containers?: string[];
}

/** `pulumi stack output --json` through scripts/pulumi-stack.sh; undefined when the stack has no state. */
export function readStackOutputs(stack: string): StackOutputs | undefined {
    const env = { ...process.env, PULUMI_CONFIG_PASSPHRASE: process.env.PULUMI_CONFIG_PASSPHRASE ?? "citadel-local-only" };
    const r = spawnSync("bash", [path.join(REPO_ROOT, "scripts", "pulumi-stack.sh"), stack, "--", "stack", "output", "--json"], { encoding: "utf8", env, timeout: 180_000 });
    if (r.status !== 0) return undefined;
    try {
        const o = JSON.parse(r.stdout) as StackOutputs;
        return Object.keys(o).length ? o : undefined;
    } catch {
        return undefined;
    }
}

/** SSH as the admin user; the host key is the pinned one (no known_hosts to trust-on-first-use). */
export function sshInside(opts: { host: string; port: number; user: string; keyPath: string; hostKey: string }): Inside {
    const kh = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "citadel-audit-kh-")), "known_hosts");
    const hostPattern = opts.port === 22 ? opts.host : `[${opts.host}]:${opts.port}`;
    fs.writeFileSync(kh, `${hostPattern} ${opts.hostKey}\n`);
    return {
        sh(command, o = {}) {
            return exec(
                "ssh",
                ["-i", opts.keyPath, "-p", String(opts.port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${kh}`, "-o", "ConnectTimeout=15", `${opts.user}@${opts.host}`, command],
                { stdin: o.stdin ?? "", timeoutMs: o.timeoutMs ?? 120_000 },
            );
        },
    };
}

/** Outside traffic from this machine (a remote target: the operator's machine IS outside). */
export const localProbe: Probe = {
    describe: "this machine",
    python: (script, timeoutMs) => exec("python3", ["-c", script], { timeoutMs }),
};

/** `python3 -c` inside a running container: how a lab container probes. */
function execProbe(name: string, describe: string): Probe {
    return { describe, python: (script, timeoutMs) => exec("docker", ["exec", name, "python3", "-c", script], { timeoutMs }) };
}

/** (Re)starts a container that only sleeps (a lab client), on `network`. */
function startLabClient(name: string, network: string, image: string, seconds: number): void {
    exec("docker", ["rm", "-f", name]);
    const r = exec("docker", ["run", "-d", "--name", name, "--network", network, "--entrypoint", "sleep", image, String(seconds)]);
    if (r.code !== 0) throw new Error(`audit: cannot start the lab container ${name}: ${r.stderr.trim()}`);
}

/**
 * Outside traffic from a second container on the lab network (the local VPS: this machine reaches
 * it only through Docker's port proxy on 127.0.0.1, which is not what the Internet sees).
 */
export function containerProbe(network: string, image: string, name = PROBE_CONTAINER): Probe {
    const state = exec("docker", ["inspect", "--format", "{{.State.Running}}", name]);
    if (state.stdout.trim() !== "true") startLabClient(name, network, image, 3600);
    return execProbe(name, `container ${name} on ${network}`);
}

export function removeProbe(name = PROBE_CONTAINER): void {
    exec("docker", ["rm", "-f", name]);
}

/** A fresh container on the lab network (a fresh address, never banned before) for the SSH brute force. */
export function containerAttacker(network: string, image: string, name = ATTACKER_CONTAINER): Attacker {
    startLabClient(name, network, image, 900);
    const ip = exec("docker", ["inspect", "--format", `{{(index .NetworkSettings.Networks ${JSON.stringify(network)}).IPAddress}}`, name]).stdout.trim();
    if (!ip) {
        removeProbe(name);
        throw new Error(`audit: the attacker container ${name} has no address on ${network}`);
    }
    return { address: ip, probe: execProbe(name, `container ${name} (${ip}) on ${network}`), remove: () => removeProbe(name) };
}

/** The site CA when Caddy issues from its own local CA (citadel:gateway.acmeCa internal). */
function caddyLocalCa(inside: Inside, c: StackConfig): string | undefined {
    if (c.gateway.acmeCa !== "internal") return undefined;
    const r = inside.sh("sudo -n docker exec citadel-gateway cat /data/caddy/pki/authorities/local/root.crt");
    return r.code === 0 && r.stdout.includes("BEGIN CERTIFICATE") ? r.stdout : undefined;
}

/** The declared exposure: the stack output when there is one, else what components/stack.ts would output. */
function exposureOf(c: StackConfig, outputs?: StackOutputs): number[] {
    return outputs?.exposure?.tcp ?? [22, 80, 443];
}

function sitesOf(c: StackConfig, outputs?: StackOutputs): string[] {
    return outputs?.sites?.map((s) => s.replace(/^https:\/\//, "")) ?? c.sites.map((s) => s.host);
}

/** The local VPS (scripts/local.ts, env CITADEL_VPS_NAME etc.): probe from a lab container. */
export async function localTarget(outputs?: StackOutputs): Promise<AuditTarget> {
    const { LOCAL_VPS, localConfig } = await import("../scripts/local");
    const { vpsInfo, LAB_NETWORK } = await import("../vps/vps");
    const { HARNESS_KEY } = await import("../vps/common");
    const { VPS_IMAGE } = await import("../vps/image");
    const info = vpsInfo(LOCAL_VPS);
    if (!info) throw new Error(`audit: the local VPS ${LOCAL_VPS} is not running (npm start)`);
    const config = localConfig(fs.readFileSync(`${HARNESS_KEY}.pub`, "utf8").trim());
    // Outputs, when given, must describe this VPS (a stale state would audit against another host key).
    if (outputs?.sshHostKey && outputs.sshHostKey.trim() !== info.hostKey.trim()) throw new Error("audit: the stack's sshHostKey output is not this VPS's host key (stale state: re-run npm start)");
    const inside = sshInside({ host: "127.0.0.1", port: info.sshPort, user: outputs?.sshUser ?? config.admin.user, keyPath: HARNESS_KEY, hostKey: info.hostKey });
    return {
        stack: "local",
        config,
        address: info.address,
        sshHost: "127.0.0.1",
        sshPort: info.sshPort,
        exposureTcp: exposureOf(config, outputs),
        sites: sitesOf(config, outputs),
        siteCaPem: caddyLocalCa(inside, config),
        probe: containerProbe(LAB_NETWORK, VPS_IMAGE),
        // This machine through Docker's port proxy: it arrives from the lab gateway, another address.
        secondSource: { probe: localProbe, address: "127.0.0.1", httpsPort: info.httpsPort },
        attacker: () => containerAttacker(LAB_NETWORK, VPS_IMAGE),
        inside,
    };
}

/** Any other stack: its outputs say where the host is; this machine is the outside. */
export function remoteTarget(stack: string, outputs: StackOutputs): AuditTarget {
    const config = loadStackConfig(stack);
    if (!outputs.address || !outputs.sshHostKey) throw new Error(`audit: stack ${stack} has no address/sshHostKey outputs (pulumi up first)`);
    const port = config.target === "existing" && config.existing ? config.existing.port : 22;
    const keyPath = config.admin.privateKeyPath.replace(/^~(?=\/)/, os.homedir());
    const inside = sshInside({ host: outputs.address, port, user: outputs.sshUser ?? config.admin.user, keyPath: path.resolve(REPO_ROOT, keyPath), hostKey: outputs.sshHostKey });
    return {
        stack,
        config,
        address: outputs.address,
        sshHost: outputs.address,
        sshPort: port,
        exposureTcp: exposureOf(config, outputs),
        sites: sitesOf(config, outputs),
        siteCaPem: caddyLocalCa(inside, config),
        probe: localProbe,
        inside,
    };
}
