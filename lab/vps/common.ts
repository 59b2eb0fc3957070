// Shared helpers of the local VPS harness: paths under the ignored cache dir, running programs,
// progress lines.
import { execFileSync, spawn, spawnSync, SpawnSyncOptions } from "node:child_process";
import { parseArgs, type ParseArgsConfig } from "node:util";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export const REPO_ROOT = path.resolve(__dirname, "..", "..");
/** Everything the harness builds or keeps (rootfs tarball, image archives, logs, per-VPS dirs). Gitignored. */
export const CACHE_DIR = path.join(REPO_ROOT, ".cache", "vps");
/**
 * This machine's cache, shared by every clone on it: only what is keyed by its content and checked
 * after use (the VPS image-store seeds, lab/vps/image-seed.ts), so that a fresh clone on a warm
 * machine (CI) does not redo minutes of work another clone already did.
 */
export const MACHINE_CACHE_DIR = process.env.CITADEL_LAB_MACHINE_CACHE ?? path.join(os.homedir(), ".cache", "citadel-lab");

export function ensureCacheDir(): string {
    fs.mkdirSync(CACHE_DIR, { recursive: true });
    return CACHE_DIR;
}

/** Progress line for humans (stderr, so stdout stays parseable). */
export function progress(msg: string): void {
    process.stderr.write(`[vps] ${msg}\n`);
}

export interface Result {
    code: number | null;
    stdout: string;
    stderr: string;
}

/** Runs a program to completion (bounded by `timeout`, default 2 min). */
export function run(cmd: string, args: string[], opts: SpawnSyncOptions = {}): Result {
    const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 120_000, maxBuffer: 64 << 20, ...opts });
    return {
        code: r.status,
        stdout: String(r.stdout ?? ""),
        stderr: String(r.stderr ?? "") + (r.error ? `\n${String(r.error)}` : ""),
    };
}

/** Runs a program and throws with its stderr when it fails. */
export function runOk(cmd: string, args: string[], opts: SpawnSyncOptions = {}): string {
    const r = run(cmd, args, opts);
    if (r.code !== 0) {
        throw new Error(`citadel: vps: \`${cmd} ${args.join(" ")}\` failed (exit ${r.code}): ${tail(r.stderr || r.stdout, 20)}`);
    }
    return r.stdout;
}

/**
 * Runs a long program asynchronously (so the event loop, timers and progress keep going), with its
 * output appended to a log file. Resolves with the exit code; kills it after `timeoutMs`.
 */
export function runLogged(cmd: string, args: string[], logFile: string, timeoutMs: number, opts: { cwd?: string } = {}): Promise<number | null> {
    return new Promise((resolve, reject) => {
        const fd = fs.openSync(logFile, "a");
        fs.writeSync(fd, `\n$ ${cmd} ${args.join(" ")}\n`);
        const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ["ignore", fd, fd] });
        fs.closeSync(fd);
        const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
        child.once("error", (e) => {
            clearTimeout(timer);
            reject(e);
        });
        child.once("exit", (code) => {
            clearTimeout(timer);
            resolve(code);
        });
    });
}

/** Last n lines of a text. */
export function tail(text: string, n: number): string {
    return text.trimEnd().split("\n").slice(-n).join("\n");
}

export function tailFile(file: string, n: number): string {
    try {
        return tail(fs.readFileSync(file, "utf8"), n);
    } catch {
        return "(no log)";
    }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every `everyMs` until it returns true or `ms` elapse (bounded). */
export async function waitUntil(check: () => boolean | Promise<boolean>, ms: number, everyMs = 250): Promise<boolean> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
        if (await check()) return true;
        await sleep(everyMs);
    }
    return false;
}

export const seconds = (startMs: number): number => Math.round((Date.now() - startMs) / 100) / 10;

/**
 * Removes a directory tree that must lie strictly inside CACHE_DIR and have nothing mounted under it
 * (an inner dockerd leaves root-owned overlay dirs; a live mount there would mean its container is
 * still running, and rm would reach into someone else's filesystem).
 */
export function removeCacheTree(dir: string, cacheRoot = CACHE_DIR): void {
    const abs = path.resolve(dir);
    const root = path.resolve(cacheRoot) + path.sep;
    if (!abs.startsWith(root) || abs.length <= root.length) throw new Error(`citadel: vps: refusing to remove ${abs}: not under ${root}`);
    if (!fs.existsSync(abs)) return;
    const real = fs.realpathSync(abs);
    if (!real.startsWith(fs.realpathSync(cacheRoot) + path.sep)) throw new Error(`citadel: vps: refusing to remove ${abs}: resolves to ${real}`);
    const mounts = fs
        .readFileSync("/proc/self/mountinfo", "utf8")
        .split("\n")
        .map((l) => l.split(" ")[4])
        .filter((m): m is string => !!m && (m === real || m.startsWith(real + path.sep)));
    if (mounts.length > 0) throw new Error(`citadel: vps: refusing to remove ${abs}: still mounted: ${mounts.join(", ")}`);
    // rm(1), not fs.rmSync: several times faster on the inner engine's many small files, and
    // --one-file-system never crosses into a filesystem mounted below (belt and braces).
    runOk("rm", ["-rf", "--one-file-system", "--", abs], { timeout: 5 * 60_000 });
}

/**
 * Runs fn while holding a lock directory under `cacheRoot`, so two processes (parallel test files,
 * a test next to `vps up`, two clones sharing MACHINE_CACHE_DIR) never build into the same temp
 * dirs. A lock whose owner PID is gone is taken over; waiting is bounded.
 */
export async function withCacheLock<T>(name: string, fn: () => Promise<T>, waitMs = 30 * 60_000, cacheRoot = CACHE_DIR): Promise<T> {
    fs.mkdirSync(cacheRoot, { recursive: true });
    const dir = path.join(cacheRoot, `${name}.lock`);
    const owner = path.join(dir, "pid");
    const end = Date.now() + waitMs;
    let announced = false;
    for (;;) {
        try {
            fs.mkdirSync(dir);
            fs.writeFileSync(owner, `${process.pid}\n`);
            break;
        } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
            const pid = Number.parseInt((() => {
                try {
                    return fs.readFileSync(owner, "utf8");
                } catch {
                    return "";
                }
            })(), 10);
            let ownerAlive = false;
            if (Number.isInteger(pid) && pid > 0) {
                try {
                    process.kill(pid, 0);
                    ownerAlive = true;
                } catch {
                    ownerAlive = false;
                }
            }
            // No pid yet may mean the owner is between mkdir and writeFile: give it a moment.
            const stale = Number.isInteger(pid) ? !ownerAlive : Date.now() - fs.statSync(dir).mtimeMs > 10_000;
            if (stale) {
                fs.rmSync(dir, { recursive: true, force: true });
                continue;
            }
            if (Date.now() > end) throw new Error(`citadel: vps: ${dir} is held by pid ${pid} for too long`);
            if (!announced) progress(`waiting for pid ${pid} (${name} lock)`);
            announced = true;
            await sleep(1_000);
        }
    }
    try {
        return await fn();
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/** The harness's own admin key (never a key of the operator's), created once. */
export const HARNESS_KEY = path.join(CACHE_DIR, "ssh", "id_ed25519");

/** Creates the harness key pair if needed; returns the public key file. */
export function harnessKey(): string {
    if (!fs.existsSync(HARNESS_KEY)) {
        fs.mkdirSync(path.dirname(HARNESS_KEY), { recursive: true, mode: 0o700 });
        execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "citadel-local-vps", "-f", HARNESS_KEY]);
        progress(`created the harness SSH key ${HARNESS_KEY}`);
    }
    return `${HARNESS_KEY}.pub`;
}

/**
 * A lab command line with node's own parser: the parsed values, or the exit code after `--help`
 * (usage on stdout, 0) or a usage error (message and usage on stderr, 2). `-h/--help` is added.
 */
export type LabArgs = { exit: number } | { values: Record<string, unknown>; positionals: string[] };

export function parseLabArgs(args: string[], options: ParseArgsConfig["options"], usage: string, allowPositionals = false): LabArgs {
    let parsed;
    try {
        parsed = parseArgs({ args, allowPositionals, options: { ...options, help: { type: "boolean", short: "h" } } });
    } catch (e) {
        process.stderr.write(`${(e as Error).message}\n${usage}\n`);
        return { exit: 2 };
    }
    if (parsed.values.help) {
        process.stdout.write(usage + "\n");
        return { exit: 0 };
    }
    return { values: parsed.values as Record<string, unknown>, positionals: parsed.positionals };
}
