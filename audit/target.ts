// How the audit reaches a host: the stack's declared config and outputs, an Inside (SSH as the admin
// user, host key pinned) and a Probe (a second host for "outside" traffic). Only the local VPS is wired
// end to end here; a remote stack uses its outputs and probes from this machine.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { StackConfig } from "../components/config";
import { GATEWAY_CONTAINER, posture, SSH_PORT } from "../components/posture";
import { loadStackConfig, REPO_ROOT } from "../components/stackfile";
import { AuditTarget, CommandResult, Inside, Probe } from "./types";


export function exec(cmd: string, args: string[], opts: { stdin?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): CommandResult {
    const r = spawnSync(cmd, args, { encoding: "utf8", input: opts.stdin, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024, env: opts.env });
    return { code: r.status, stdout: r.stdout ?? "", stderr: (r.stderr ?? "") + (r.error ? String(r.error) : "") };
}

/** The non-secret stack outputs the audit reads (components/stack.ts). */
export interface StackOutputs {
    address?: string;
    address6?: string;
    sshHostKey?: string;
    sshUser?: string;
    sites?: string[];
    exposure?: { tcp: number[]; sshSourceIps: string[] };
    intrusionEngine?: string;
    containers?: string[];
}

/** Runs `pulumi <args>` for a stack and returns its result: the operator's own pulumi by default. */
export type PulumiRunner = (stack: string, args: string[]) => CommandResult;

export const plainPulumi: PulumiRunner = (stack, args) => exec("pulumi", [...args, "--stack", stack], { timeoutMs: 180_000 });

/** `pulumi stack output --json`; undefined when the stack has no state. */
export function readStackOutputs(stack: string, pulumi: PulumiRunner = plainPulumi): StackOutputs | undefined {
    const r = pulumi(stack, ["stack", "output", "--json"]);
    if (r.code !== 0) return undefined;
    try {
        const o = JSON.parse(r.stdout) as StackOutputs;
        return Object.keys(o).length ? o : undefined;
    } catch {
        return undefined;
    }
}

/** The audit's own known_hosts directories, removed when the process exits (one per SSH target). */
const knownHostsDirs = new Set<string>();
process.once("exit", () => {
    for (const d of knownHostsDirs) fs.rmSync(d, { recursive: true, force: true });
});

/** SSH as the admin user; the host key is the pinned one (no known_hosts to trust-on-first-use). */
export function sshInside(opts: { host: string; port: number; user: string; keyPath: string; hostKey: string }): Inside {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "citadel-audit-kh-"));
    knownHostsDirs.add(dir);
    const kh = path.join(dir, "known_hosts");
    const hostPattern = opts.port === SSH_PORT ? opts.host : `[${opts.host}]:${opts.port}`;
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

/** The site CA when Caddy issues from its own local CA (citadel:gateway.acmeCa internal). */
export function caddyLocalCa(inside: Inside, c: StackConfig): string | undefined {
    if (c.gateway.acmeCa !== "internal") return undefined;
    const r = inside.sh(`sudo -n docker exec ${GATEWAY_CONTAINER} cat /data/caddy/pki/authorities/local/root.crt`);
    return r.code === 0 && r.stdout.includes("BEGIN CERTIFICATE") ? r.stdout : undefined;
}

/** The declared exposure: the stack output when there is one, else the posture the config declares. */
export function exposureOf(c: StackConfig, outputs?: StackOutputs): number[] {
    return outputs?.exposure?.tcp ?? posture(c).exposure.openTcp;
}

export function sitesOf(c: StackConfig, outputs?: StackOutputs): string[] {
    return outputs?.sites?.map((s) => s.replace(/^https:\/\//, "")) ?? c.sites.map((s) => s.host);
}

/** Any other stack: its outputs say where the host is; this machine is the outside. */
export function remoteTarget(stack: string, outputs: StackOutputs): AuditTarget {
    const config = loadStackConfig(stack);
    if (!outputs.address || !outputs.sshHostKey) throw new Error(`audit: stack ${stack} has no address/sshHostKey outputs (pulumi up first)`);
    const port = config.target === "existing" && config.existing ? config.existing.port : SSH_PORT;
    const keyPath = config.admin.privateKeyPath.replace(/^~(?=\/)/, os.homedir());
    const inside = sshInside({ host: outputs.address, port, user: outputs.sshUser ?? config.admin.user, keyPath: path.resolve(REPO_ROOT, keyPath), hostKey: outputs.sshHostKey });
    return {
        stack,
        config,
        address: outputs.address,
        address6: outputs.address6,
        sshHost: outputs.address,
        sshPort: port,
        exposureTcp: exposureOf(config, outputs),
        sites: sitesOf(config, outputs),
        siteCaPem: caddyLocalCa(inside, config),
        probe: localProbe,
        inside,
    };
}
