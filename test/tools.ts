// Helpers for tests that drive real programs (sshd, caddy, shellcheck, ...).
import { spawnSync, SpawnSyncOptions } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { TestContext } from "node:test";
import { ensureDockerd } from "../lab/vps/dockerd";

export const IN_CI = process.env.CI === "true";

/** Absolute path of a program, or undefined. Looks in PATH plus the sbin dirs and the repo's .cache/bin. */
export function which(bin: string): string | undefined {
    const dirs = [path.resolve(__dirname, "..", ".cache", "bin"), ...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/sbin", "/usr/local/sbin"];
    for (const d of dirs) {
        const p = path.join(d, bin);
        try {
            fs.accessSync(p, fs.constants.X_OK);
            return p;
        } catch {
            /* next */
        }
    }
    return undefined;
}

/**
 * Returns the tool's path. When it is missing: in CI the test fails (CI installs everything via
 * lab/prereqs.sh); elsewhere the test is skipped with a reason printed in the output.
 */
export function requireTool(t: TestContext, bin: string, hint = "run: bash lab/prereqs.sh"): string | undefined {
    const p = which(bin);
    if (p) return p;
    const msg = `${bin} not installed (${hint})`;
    if (IN_CI) throw new Error(msg);
    t.skip(msg);
    return undefined;
}

export interface RunResult {
    code: number | null;
    stdout: string;
    stderr: string;
}

export function run(cmd: string, args: string[], opts: SpawnSyncOptions = {}): RunResult {
    const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 120_000, ...opts });
    return { code: r.status, stdout: String(r.stdout ?? ""), stderr: String(r.stderr ?? "") + (r.error ? String(r.error) : "") };
}

export function tmpDir(prefix = "citadel-test-"): string {
    return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
    const net = await import("node:net");
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.once("error", reject);
        srv.listen(0, "127.0.0.1", () => {
            const port = (srv.address() as import("node:net").AddressInfo).port;
            srv.close(() => resolve(port));
        });
    });
}

/** Polls `check` every 100 ms until it returns true or `ms` elapse (bounded). */
export async function waitFor(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<boolean> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
        if (await check()) return true;
        await new Promise((r) => setTimeout(r, 100));
    }
    return false;
}

/** Tests that use namespaces, other users or iptables need root: fail in CI, skip (with why) elsewhere. */
export function requireRoot(t: TestContext, why: string): boolean {
    if (process.getuid?.() === 0) return true;
    const msg = `needs root (${why})`;
    if (IN_CI) throw new Error(msg);
    t.skip(msg);
    return false;
}

/** requireTool for several programs at once. */
export function requireTools(t: TestContext, ...bins: string[]): boolean {
    return bins.every((b) => requireTool(t, b) !== undefined);
}

/**
 * shellcheck of a script given as text (bash dialect, read from stdin). Extra flags such as
 * ["-e", "SC1001"] or ["-S", "style"] pass through. Returns the result for the caller's assertion.
 */
export function shellcheck(bin: string, script: string, flags: string[] = []): RunResult {
    return run(bin, ["-s", "bash", ...flags, "-"], { input: script });
}


export { pulumiMissing } from "../lab/engine/select";

/** Docker is a precondition: without an engine the test cannot run (fails in CI, skips elsewhere). */
export async function requireDocker(t: TestContext): Promise<{ started: boolean } | undefined> {
    try {
        return await ensureDockerd();
    } catch (e) {
        const msg = `no Docker engine: ${e instanceof Error ? e.message : String(e)}`;
        if (IN_CI) throw new Error(msg);
        t.skip(msg);
        return undefined;
    }
}

/** `x` as a regular expression that matches exactly it (for values read from constants). */
export const reEscape = (x: string): string => x.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
