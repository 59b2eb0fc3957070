// The Hetzner path in the lab: the stack `hcloud` (Pulumi.hcloud.yaml, target hcloud) converged by
// the real engine through the real hcloud provider against the lab's Hetzner Cloud API double
// (lab/hcloud-double/), which boots a local VPS for the server from the user_data Hetzner would get
// and enforces the cloud firewall in front of it. Everything here is scoped by the VPS prefix
// (CITADEL_HCLOUD_PREFIX, else CITADEL_VPS_NAME, default citadel-hcloud): the double's state, the
// stack's state, the logs. Runs side by side also need their own CITADEL_HCLOUD_POOL,
// CITADEL_HCLOUD_OUTSIDER_IP (lab addresses) and CITADEL_HCLOUD_IPV6_BASE (the /48 the double routes
// its servers' /64s from); the double listens on a free port of its own.
import * as fs from "node:fs";
import * as path from "node:path";
import { caddyLocalCa, exposureOf, sitesOf, sshInside, type StackOutputs } from "../audit/target";
import type { AuditTarget } from "../audit/types";
import { parseConfigOrThrow, rawFromObject, type StackConfig } from "../components/config";
import { SSH_PORT } from "../components/posture";
import { rawStackConfig, REPO_ROOT } from "../components/stackfile";
import { containerAttacker, containerProbe } from "./audit";
import { api, labRuleTables, startDouble, waitAction, type RunningDouble } from "./hcloud-double/run";
import { backupStackArgs, startBackupTarget, stopBackupTarget, type BackupTarget } from "./backup-target";
import { buildLocalImages } from "./images/build-local";
import { runStackScript, stackImages } from "./local";
import { harnessKey, HARNESS_KEY, run } from "./vps/common";
import { ensureDockerd } from "./vps/dockerd";
import { ensureVpsImage, VPS_IMAGE } from "./vps/image";
import { LAB_NETWORK, LAB_SERVERS6, stopVps } from "./vps/vps";

export const HCLOUD_STACK = "hcloud";
/** Servers the double creates are VPSes named PREFIX-<server id> (CITADEL_HCLOUD_PREFIX, else CITADEL_VPS_NAME). */
export const HCLOUD_PREFIX = process.env.CITADEL_HCLOUD_PREFIX ?? process.env.CITADEL_VPS_NAME ?? "citadel-hcloud";
/** Public IPv4s of the double's servers: the upper half of the lab subnet, outside the stack's admin sources. */
export const HCLOUD_POOL = process.env.CITADEL_HCLOUD_POOL ?? "172.30.99.200-172.30.99.209";
export const HCLOUD_LOG_DIR = path.join(REPO_ROOT, ".cache", `hcloud-${HCLOUD_PREFIX}`);
export const HCLOUD_PROBE = `${HCLOUD_PREFIX}-probe`;
/**
 * The audit's source outside admin.sourceIps (172.30.99.0/25): "the Internet" (perimeter checks).
 * Away from the servers' pool and from test/hcloud/perimeter.test.ts's 172.30.99.240-241, which
 * may run at the same time (a taken address makes the perimeter checks crash, so fail).
 */
export const HCLOUD_OUTSIDER = `${HCLOUD_PREFIX}-outsider`;
export const HCLOUD_OUTSIDER_IP = process.env.CITADEL_HCLOUD_OUTSIDER_IP ?? "172.30.99.250";
/** The /48 this run's double routes its servers' IPv6 /64s from (server N: its N-th /64). */
export const HCLOUD_IPV6_BASE = process.env.CITADEL_HCLOUD_IPV6_BASE ?? LAB_SERVERS6.e2e;
/** The lab backup target this run started (lab/backup-target.ts), for every engine run of the stack. */
const HCLOUD_BACKUP_TARGET_FILE = path.join(HCLOUD_LOG_DIR, "backup-target.json");

export function say(msg: string): void {
    process.stderr.write(`[citadel hcloud] ${msg}\n`);
}

/** The hcloud stack's config as `pulumi up` sees it, with the harness key swapped in. */
export function hcloudConfig(publicKey: string): StackConfig {
    const raw = rawStackConfig(HCLOUD_STACK);
    const admin = JSON.parse(raw["citadel:admin"]);
    return parseConfigOrThrow({ ...raw, ...rawFromObject({ admin: { ...admin, sshPublicKeys: [publicKey] } }) });
}

/** VPSes and nftables tables of this prefix that no double knows any more (a run that crashed). */
export async function removeLeftovers(): Promise<void> {
    const names = run("docker", ["ps", "-a", "--filter", "label=org.citadel.vps", "--format", "{{.Names}}"]).stdout.split("\n");
    for (const n of names.filter((x) => new RegExp(`^${HCLOUD_PREFIX}-[0-9]+$`).test(x))) await stopVps(n);
    stopBackupTarget(HCLOUD_PREFIX);
    run("docker", ["rm", "-f", HCLOUD_OUTSIDER]);
    for (const t of labRuleTables(HCLOUD_PREFIX).filter((x) => new RegExp(`^${HCLOUD_PREFIX.replace(/-/g, "_")}_[0-9]+$`).test(x))) run("nft", ["delete", "table", "inet", t]);
    // Routes of this run's /48 whose VPS is gone (a double that died before removing its servers).
    for (const r of routesWithin(HCLOUD_IPV6_BASE)) run("ip", ["-6", "route", "del", r]);
}

/** This machine's IPv6 routes inside base (their destinations). */
export function routesWithin(base: string): string[] {
    return run("ip", ["-6", "route", "show", "root", base]).stdout.split("\n").map((l) => l.trim().split(/\s+/)[0]).filter(Boolean);
}

/**
 * The lab around the stack: Docker, the VPS and stack images, and a running double (fresh state,
 * fresh token) that loads the stack's images into each server it boots.
 */
export async function startHcloudLab(): Promise<{ double: RunningDouble; config: StackConfig; publicKey: string }> {
    await ensureDockerd();
    await ensureVpsImage();
    await buildLocalImages();
    const publicKey = fs.readFileSync(harnessKey(), "utf8").trim();
    const config = hcloudConfig(publicKey);
    await removeLeftovers();
    // The stack declares backups (the audit's in-backup): an SFTP target on the lab network, like the local stack's.
    const target = await startBackupTarget(HCLOUD_PREFIX, path.join(HCLOUD_LOG_DIR, "backup-keys"));
    fs.mkdirSync(HCLOUD_LOG_DIR, { recursive: true });
    fs.writeFileSync(HCLOUD_BACKUP_TARGET_FILE, JSON.stringify(target, null, 2));
    const double = await startDouble({ scope: HCLOUD_PREFIX, pool: HCLOUD_POOL, vpsPrefix: HCLOUD_PREFIX, ipv6Base: HCLOUD_IPV6_BASE, images: stackImages(config), fresh: true });
    say(`Hetzner API double on ${double.endpoint} (pid ${double.pid}), servers at ${HCLOUD_POOL}`);
    return { double, config, publicKey };
}

/**
 * Runs the engine on the hcloud stack (lab/pulumi-stack.sh, its own state scope), with the double's
 * endpoint and the harness key set, and the token only in the provider's environment (HCLOUD_TOKEN).
 */
export function pulumiHcloud(double: Pick<RunningDouble, "endpoint" | "token">, publicKey: string, args: string[], logName: string, opts: { reset?: boolean; sets?: string[] } = {}): Promise<number> {
    fs.mkdirSync(HCLOUD_LOG_DIR, { recursive: true });
    const log = path.join(HCLOUD_LOG_DIR, logName);
    const target = fs.existsSync(HCLOUD_BACKUP_TARGET_FILE) ? (JSON.parse(fs.readFileSync(HCLOUD_BACKUP_TARGET_FILE, "utf8")) as BackupTarget) : undefined;
    const sets = [
        ...[`hcloud:endpoint=${double.endpoint}`, `citadel:admin.sshPublicKeys[0]=${publicKey}`, `citadel:admin.privateKeyPath=${HARNESS_KEY}`, ...(opts.sets ?? [])].flatMap((kv) => ["--set", kv]),
        ...backupStackArgs(target),
    ];
    // A lab stack: lab/pulumi-stack.sh gives it the lab passphrase unless the caller set one.
    const env = { ...process.env, CITADEL_STATE_SCOPE: HCLOUD_PREFIX, HCLOUD_TOKEN: double.token };
    return runStackScript([...(opts.reset ? ["--reset"] : []), ...sets, HCLOUD_STACK, "--", ...args], env, log);
}

/** `pulumi stack output --json` of the hcloud stack. */
export async function hcloudOutputs(double: RunningDouble, publicKey: string): Promise<StackOutputs> {
    const code = await pulumiHcloud(double, publicKey, ["stack", "output", "--json"], "outputs.json");
    const text = fs.readFileSync(path.join(HCLOUD_LOG_DIR, "outputs.json"), "utf8");
    if (code !== 0) throw new Error(`pulumi stack output failed: ${text.slice(-400)}`);
    return JSON.parse(text.slice(text.indexOf("{"))) as StackOutputs;
}

/**
 * The audit's view of the converged server: reached at its public address (the VPS's lab address)
 * from this machine (SSH, inside the admin sources), from a probe container on the lab network
 * (inside them too) and, for the perimeter checks, from a container outside them.
 */
export function hcloudTarget(config: StackConfig, outputs: StackOutputs): AuditTarget {
    if (!outputs.address || !outputs.sshHostKey) throw new Error("hcloud: the stack has no address/sshHostKey outputs (pulumi up first)");
    const inside = sshInside({ host: outputs.address, port: SSH_PORT, user: outputs.sshUser ?? config.admin.user, keyPath: HARNESS_KEY, hostKey: outputs.sshHostKey });
    return {
        stack: HCLOUD_STACK,
        config,
        address: outputs.address,
        // The server's /64 is routed to its VPS by the double (LAB_SERVERS6): scanned like a Hetzner server's.
        address6: outputs.address6,
        sshHost: outputs.address,
        sshPort: SSH_PORT,
        exposureTcp: exposureOf(config, outputs),
        sites: sitesOf(config, outputs),
        siteCaPem: caddyLocalCa(inside, config),
        probe: containerProbe(LAB_NETWORK, VPS_IMAGE, HCLOUD_PROBE),
        outsider: () => containerAttacker(LAB_NETWORK, VPS_IMAGE, HCLOUD_OUTSIDER, HCLOUD_OUTSIDER_IP),
        inside,
    };
}

/** What the double still holds: servers, firewalls and SSH keys by name. */
export async function doubleResources(double: RunningDouble): Promise<Record<string, string[]>> {
    const out: Record<string, string[]> = {};
    for (const kind of ["servers", "firewalls", "ssh_keys"]) {
        const r = await api(double, "GET", `/${kind}`);
        out[kind] = (r.json[kind] as { name: string }[]).map((x) => x.name);
    }
    return out;
}

/** Deletes whatever the double still holds (after a failed run): servers first, then firewalls and keys. */
export async function deleteAll(double: RunningDouble): Promise<void> {
    const servers = (await api(double, "GET", "/servers")).json.servers as { id: number }[];
    for (const s of servers) {
        const del = await api(double, "DELETE", `/servers/${s.id}`);
        if (del.json?.action) await waitAction(double, del.json.action.id);
    }
    for (const kind of ["firewalls", "ssh_keys"]) {
        for (const x of (await api(double, "GET", `/${kind}`)).json[kind] as { id: number }[]) await api(double, "DELETE", `/${kind}/${x.id}`);
    }
}
