// The local stack on the local VPS: the whole posture converged onto a throwaway VPS on this machine,
// with the real Pulumi engine and no cloud account (`up`), and taken down again (`down`). The
// command line (`npm start`, `npm run local:down`) is lab/start.ts.
//
//   1. Docker engine (started if not running)     4. the stack's images loaded into the VPS's engine
//   2. VPS image and stack images (cached)        5. `pulumi up --stack local` (scratch copy of the project)
//   3. the VPS booted by cloud-init with the      6. what to try, and where the logs are
//      user-data the hcloud target renders
import * as fs from "node:fs";
import * as path from "node:path";
import { spawn } from "node:child_process";
import { parseConfigOrThrow, rawFromObject, StackConfig } from "../components/config";
import { posture } from "../components/posture";
import { renderCloudInit } from "../components/render/cloudinit";
import { rawStackConfig, REPO_ROOT } from "../components/stackfile";
import { backupStackArgs, startBackupTarget, stopBackupTarget, type BackupTarget } from "./backup-target";
import { buildLocalImages } from "./images/build-local";
import { ensureDockerd } from "./vps/dockerd";
import { ensureVpsImage } from "./vps/image";
import { harnessKey, HARNESS_KEY } from "./vps/common";
import { loadImages, startVps, stopVps, VpsInfo } from "./vps/vps";

// Overridable so two checkouts (or a test beside a demo) can each run their own VPS.
export const LOCAL_VPS = process.env.CITADEL_VPS_NAME ?? "citadel-local";
export const LOCAL_SSH_PORT = Number(process.env.CITADEL_SSH_PORT ?? 2222);
export const LOCAL_HTTP_PORT = Number(process.env.CITADEL_HTTP_PORT ?? 8080);
export const LOCAL_HTTPS_PORT = Number(process.env.CITADEL_HTTPS_PORT ?? 8443);
/** Another VPS name than the default gets its own state, scratch project and logs (see labStackEnv). */
const SCOPE = LOCAL_VPS === "citadel-local" ? "" : LOCAL_VPS;
export const LOG_DIR = path.join(REPO_ROOT, ".cache", SCOPE ? `local-${SCOPE}` : "local");

/** The environment lab/pulumi-stack.sh runs the local stack with: this VPS's own state. */
export function labStackEnv(): NodeJS.ProcessEnv {
    return { ...process.env, PULUMI_CONFIG_PASSPHRASE: process.env.PULUMI_CONFIG_PASSPHRASE ?? "citadel-local-only", CITADEL_STATE_SCOPE: SCOPE };
}

/** The lab's backup target of this VPS, as the last `up` started it (lab/backup-target.ts). */
const TARGET_FILE = path.join(LOG_DIR, "backup-target.json");
export const BACKUP_KEYS_DIR = path.join(LOG_DIR, "backup-keys");

export function labBackupTarget(): BackupTarget | undefined {
    return fs.existsSync(TARGET_FILE) ? (JSON.parse(fs.readFileSync(TARGET_FILE, "utf8")) as BackupTarget) : undefined;
}

/**
 * Starts this VPS's backup target and records it for pulumiLocal and `citadel restore`. `fresh`: the
 * target's old backups are thrown away first (the first converge then makes a first backup).
 */
export async function startLabBackupTarget(opts: { fresh?: boolean } = {}): Promise<BackupTarget> {
    if (opts.fresh) stopBackupTarget(LOCAL_VPS);
    const target = await startBackupTarget(LOCAL_VPS, BACKUP_KEYS_DIR);
    fs.mkdirSync(LOG_DIR, { recursive: true });
    fs.writeFileSync(TARGET_FILE, JSON.stringify(target, null, 2));
    return target;
}

export function say(msg: string): void {
    process.stderr.write(`[citadel] ${msg}\n`);
}

/** The local stack's config as `pulumi up` will see it, with the harness key swapped in. */
export function localConfig(publicKey: string): StackConfig {
    const raw = rawStackConfig("local");
    const admin = JSON.parse(raw["citadel:admin"]);
    return parseConfigOrThrow({ ...raw, ...rawFromObject({ admin: { ...admin, sshPublicKeys: [publicKey] } }) });
}

/**
 * The images a lab server needs in its engine: every container's, except one the stack builds on the
 * host (gateway.build), whose toolchain and base images (gateway.buildFrom) it needs instead.
 */
export function stackImages(c: StackConfig): string[] {
    const xs = posture(c).containers;
    const from = xs.flatMap((x) => (x.buildFrom ? [x.buildFrom.args.GO_IMAGE, x.buildFrom.args.BASE_IMAGE] : [])).filter((i): i is string => i !== undefined);
    return [...new Set([...xs.filter((x) => !x.build).map((x) => x.image), ...from])];
}

/** Runs the engine on the local stack; output goes to the terminal and to a log file. */
export function pulumiLocal(info: VpsInfo, publicKey: string, args: string[], logName: string, reset = false, extraSets: string[] = []): Promise<number> {
    fs.mkdirSync(LOG_DIR, { recursive: true });
    const log = path.join(LOG_DIR, logName);
    const sets = [
        `citadel:existing.port=${info.sshPort}`,
        `citadel:existing.hostKey=${info.hostKey}`,
        `citadel:admin.sshPublicKeys[0]=${publicKey}`,
        `citadel:admin.privateKeyPath=${HARNESS_KEY}`,
    ].flatMap((kv) => ["--set", kv]);
    // A test's own settings on top of Pulumi.local.yaml (e.g. the rotation e2e's forced epochs): `key=VALUE`
    // sets a value, a bare `key` removes it so that its default applies.
    for (const kv of extraSets) sets.push(...(kv.includes("=") ? ["--set", kv] : ["--unset", kv]));
    sets.push(...backupStackArgs(labBackupTarget()));
    return runStackScript([...(reset ? ["--reset"] : []), ...sets, "local", "--", ...args], labStackEnv(), log);
}

/** Runs lab/pulumi-stack.sh with `scriptArgs`, its output teed into `log` (and stderr unless CITADEL_QUIET); resolves to the exit code. */
export function runStackScript(scriptArgs: string[], env: NodeJS.ProcessEnv, log: string): Promise<number> {
    return new Promise((resolve) => {
        const out = fs.createWriteStream(log);
        const child = spawn("bash", [path.join(REPO_ROOT, "lab", "pulumi-stack.sh"), ...scriptArgs], { env, stdio: ["ignore", "pipe", "pipe"] });
        for (const s of [child.stdout, child.stderr]) {
            s.on("data", (d) => {
                out.write(d);
                if (!process.env.CITADEL_QUIET) process.stderr.write(d);
            });
        }
        child.on("close", (code) => {
            out.end();
            resolve(code ?? 1);
        });
    });
}

export async function up(extraSets: string[] = []): Promise<{ info: VpsInfo; config: StackConfig; seconds: Record<string, number> }> {
    const seconds: Record<string, number> = {};
    const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
        const t = Date.now();
        const r = await fn();
        seconds[name] = Math.round((Date.now() - t) / 100) / 10;
        return r;
    };
    say("1/5 Docker engine");
    await timed("docker", () => ensureDockerd());
    say("2/5 images: VPS (Debian 12 + systemd + cloud-init) and the stack's (Caddy + rate limit, Postgres, Redis, demo app)");
    await timed("vpsImage", () => ensureVpsImage());
    await timed("stackImages", () => buildLocalImages());
    const publicKey = fs.readFileSync(harnessKey(), "utf8").trim();
    const config = localConfig(publicKey);
    say("3/5 booting the VPS with the user-data the hcloud target renders");
    const info = await timed("boot", () =>
        startVps({ name: LOCAL_VPS, userData: renderCloudInit(config), sshPort: LOCAL_SSH_PORT, httpPort: LOCAL_HTTP_PORT, httpsPort: LOCAL_HTTPS_PORT, seedImages: stackImages(config) }),
    );
    // The off-site backup target beside the VPS (kept across VPS rebuilds: a restore reads it).
    await timed("backupTarget", () => startLabBackupTarget());
    say("4/5 loading the stack's images into the VPS's Docker engine");
    await timed("loadImages", () => loadImages(LOCAL_VPS, stackImages(config)));
    // A re-created VPS has a new host key: the stack's old state describes a host that is gone.
    fs.mkdirSync(LOG_DIR, { recursive: true });
    const keyFile = path.join(LOG_DIR, "host-key");
    const reset = !fs.existsSync(keyFile) || fs.readFileSync(keyFile, "utf8") !== info.hostKey;
    say(`5/5 pulumi up --stack local (the real engine${reset ? ", new VPS: fresh state" : ""}; log: ${path.relative(REPO_ROOT, LOG_DIR)}/up.log)`);
    const code = await timed("up", () => pulumiLocal(info, publicKey, ["up", "--yes", "--non-interactive", "--skip-preview"], "up.log", reset, extraSets));
    fs.writeFileSync(keyFile, info.hostKey);
    if (code !== 0) throw new Error(`pulumi up failed (exit ${code}); see ${path.relative(REPO_ROOT, LOG_DIR)}/up.log`);
    return { info, config, seconds };
}

export async function down(opts: { keepBackupTarget?: boolean } = {}): Promise<void> {
    const publicKey = fs.existsSync(`${HARNESS_KEY}.pub`) ? fs.readFileSync(`${HARNESS_KEY}.pub`, "utf8").trim() : "";
    const { vpsInfo } = await import("./vps/vps");
    const info = vpsInfo(LOCAL_VPS);
    if (info && publicKey) {
        say("pulumi destroy --stack local");
        const code = await pulumiLocal(info, publicKey, ["destroy", "--yes", "--non-interactive", "--skip-preview"], "destroy.log");
        if (code !== 0) say(`pulumi destroy failed (exit ${code}); see ${path.relative(REPO_ROOT, LOG_DIR)}/destroy.log — removing the VPS anyway`);
    }
    say(`removing the VPS ${LOCAL_VPS}`);
    await stopVps(LOCAL_VPS);
    if (!opts.keepBackupTarget) {
        stopBackupTarget(LOCAL_VPS);
        fs.rmSync(TARGET_FILE, { force: true });
    }
}

