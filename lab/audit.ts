// The audit of the lab's local VPS: the local stack's target (probe and attacker are containers on
// the lab network), the offline engine for stack outputs, and `npm run audit` / `npm start`'s summary.
// Product code (audit/) knows nothing of the lab: it gets this target through `runAuditCli`'s hooks.
import * as fs from "node:fs";
import * as path from "node:path";
import { runAuditCli } from "../audit/cli";
import { AuditReport, formatReport, runAudit } from "../audit/run";
import { caddyLocalCa, exec, exposureOf, localProbe, PulumiRunner, readStackOutputs, sitesOf, sshInside, StackOutputs } from "../audit/target";
import type { Attacker, AuditTarget, Probe } from "../audit/types";
import { labStackEnv, LOCAL_VPS, localConfig } from "./local";
import { HARNESS_KEY, REPO_ROOT } from "./vps/common";
import { VPS_IMAGE } from "./vps/image";
import { LAB_NETWORK, vpsInfo } from "./vps/vps";

export const PROBE_CONTAINER = "citadel-audit-probe";
/** The SSH brute force's source: its own container (and address), banned by the attack, removed after. */
export const ATTACKER_CONTAINER = "citadel-audit-attacker";

/** `pulumi` of the lab: the offline engine on a scratch copy of the project (lab/pulumi-stack.sh). */
export const labPulumi: PulumiRunner = (stack, args) => {
    // The local stack of this VPS has its own state (lab/local.ts labStackEnv); any other stack
    // brings its own passphrase (lab/pulumi-stack.sh refuses one without).
    const env = stack === "local" ? labStackEnv() : process.env;
    return exec("bash", [path.join(REPO_ROOT, "lab", "pulumi-stack.sh"), stack, "--", ...args], { timeoutMs: 180_000, env });
};

export function readLabStackOutputs(stack: string): StackOutputs | undefined {
    return readStackOutputs(stack, labPulumi);
}

/** `python3 -c` inside a running container: how a lab container probes. */
function execProbe(name: string, describe: string): Probe {
    return { describe, python: (script, timeoutMs) => exec("docker", ["exec", name, "python3", "-c", script], { timeoutMs }) };
}

/** (Re)starts a container that only sleeps (a lab client), on `network`. */
function startLabClient(name: string, network: string, image: string, seconds: number, ip?: string): void {
    exec("docker", ["rm", "-f", name]);
    const r = exec("docker", ["run", "-d", "--name", name, "--network", network, ...(ip ? ["--ip", ip] : []), "--entrypoint", "sleep", image, String(seconds)]);
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

/**
 * A fresh container on the lab network (a fresh address, never banned before) for the SSH brute
 * force; with `ip`, at that address (a source outside the admin CIDRs for the perimeter checks).
 */
export function containerAttacker(network: string, image: string, name = ATTACKER_CONTAINER, at?: string): Attacker {
    startLabClient(name, network, image, 900, at);
    const ip = exec("docker", ["inspect", "--format", `{{(index .NetworkSettings.Networks ${JSON.stringify(network)}).IPAddress}}`, name]).stdout.trim();
    if (!ip) {
        removeProbe(name);
        throw new Error(`audit: the attacker container ${name} has no address on ${network}`);
    }
    const putFile = (file: string, content: string) => {
        const r = exec("docker", ["exec", "-i", name, "sh", "-c", 'umask 077 && cat > "$1"', "put", file], { stdin: content });
        if (r.code !== 0) throw new Error(`audit: cannot write ${file} into ${name}: ${r.stderr.trim()}`);
    };
    return { address: ip, probe: execProbe(name, `container ${name} (${ip}) on ${network}`), putFile, remove: () => removeProbe(name) };
}

/**
 * The local VPS (lab/local.ts, env CITADEL_VPS_NAME etc.): probe from a lab container, `probeName`
 * (a test names its own, and removes it: no default probe is left behind on the engine).
 */
export async function localTarget(outputs?: StackOutputs, probeName = PROBE_CONTAINER): Promise<AuditTarget> {
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
        address6: info.address6,
        sshHost: "127.0.0.1",
        sshPort: info.sshPort,
        exposureTcp: exposureOf(config, outputs),
        sites: sitesOf(config, outputs),
        siteCaPem: caddyLocalCa(inside, config),
        probe: containerProbe(LAB_NETWORK, VPS_IMAGE, probeName),
        // This machine through Docker's port proxy: it arrives from the lab gateway, another address.
        secondSource: { probe: localProbe, address: "127.0.0.1", httpsPort: info.httpsPort },
        attacker: (name) => containerAttacker(LAB_NETWORK, VPS_IMAGE, name ? `${ATTACKER_CONTAINER}-${name}` : ATTACKER_CONTAINER),
        operatorKey: () => fs.readFileSync(HARNESS_KEY, "utf8"),
        inside,
    };
}


/** The audit of the local VPS as one call, for `npm start` to print its summary at the end. */
export async function auditLocal(opts: { attack?: boolean } = {}): Promise<{ report: AuditReport; text: string }> {
    try {
        const target = await localTarget(readLabStackOutputs("local"));
        const report = await runAudit(target, opts);
        return { report, text: formatReport(report, process.stdout.isTTY) };
    } finally {
        removeProbe();
    }
}

// `npm run audit -- --stack <name> ...`: the product CLI, with the lab's engine and the local target.
if (require.main === module) {
    runAuditCli(process.argv.slice(2), {
        readOutputs: readLabStackOutputs,
        target: (stack, outputs) => (stack === "local" ? localTarget(outputs) : undefined),
        cleanup: (stack, keepProbe) => {
            if (stack === "local" && !keepProbe) removeProbe();
        },
    }).then((code) => process.exit(code));
}
