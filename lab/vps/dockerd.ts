// The host's Docker engine for the local VPS: use the running one, or start Debian's dockerd in the
// background (this machine has no systemd) and stop it later, but only if WE started it.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { CACHE_DIR, ensureCacheDir, progress, run, seconds, sleep, tailFile, waitUntil } from "./common";

export const DOCKERD_LOG = path.join(CACHE_DIR, "dockerd.log");
export const DOCKERD_PIDFILE = path.join(CACHE_DIR, "dockerd.pid");
/** dockerd's own pid file (default path); tells us whether someone else's dockerd is starting. */
const SYSTEM_PIDFILE = "/var/run/docker.pid";
const READY_TIMEOUT_MS = 60_000;

/** True when the docker CLI reaches an engine. */
export function dockerReady(): boolean {
    return run("docker", ["info", "--format", "{{.ServerVersion}}"], { timeout: 15_000 }).code === 0;
}

function alive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch {
        return false;
    }
}

/** The process's program name, or "" when it is gone (guards against PID reuse). */
function commOf(pid: number): string {
    try {
        return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    } catch {
        return "";
    }
}

function readPid(file: string): number | undefined {
    try {
        const pid = Number.parseInt(fs.readFileSync(file, "utf8").trim(), 10);
        return Number.isInteger(pid) && pid > 1 ? pid : undefined;
    } catch {
        return undefined;
    }
}

/** The PID of a dockerd that we started (from our pid file) and that is still running. */
export function ourDockerdPid(): number | undefined {
    const pid = readPid(DOCKERD_PIDFILE);
    return pid !== undefined && alive(pid) && commOf(pid) === "dockerd" ? pid : undefined;
}

function whichDockerd(): string | undefined {
    for (const p of ["/usr/sbin/dockerd", "/usr/bin/dockerd", "/usr/local/bin/dockerd"]) {
        if (fs.existsSync(p)) return p;
    }
    return undefined;
}

/**
 * Makes sure a Docker engine answers. `started` is true only when this call launched dockerd; the
 * caller then owns it and should `stopDockerd()` when done.
 */
export async function ensureDockerd(): Promise<{ started: boolean; pid?: number }> {
    if (run("docker", ["--version"], { timeout: 10_000 }).code !== 0) {
        throw new Error("citadel: vps: the docker CLI is not installed (run: bash scripts/prereqs.sh)");
    }
    if (dockerReady()) return { started: false, pid: ourDockerdPid() };
    // A local dockerd only serves the default socket; an engine chosen elsewhere is not ours to start.
    const host = process.env.DOCKER_HOST;
    if (host && host !== "unix:///var/run/docker.sock" && host !== "unix:///run/docker.sock") {
        throw new Error(`citadel: vps: DOCKER_HOST=${host} does not answer (\`docker info\` fails); start that engine or unset DOCKER_HOST`);
    }

    // A dockerd that is already starting (ours from an earlier run, or another one): wait for it
    // instead of launching a second engine on the same socket and data dir.
    const existing = ourDockerdPid() ?? (() => {
        const pid = readPid(SYSTEM_PIDFILE);
        return pid !== undefined && alive(pid) && commOf(pid) === "dockerd" ? pid : undefined;
    })();
    if (existing !== undefined) {
        progress(`dockerd (pid ${existing}) is running but not ready yet; waiting`);
        if (await waitUntil(dockerReady, READY_TIMEOUT_MS, 500)) return { started: false, pid: existing };
        throw new Error(`citadel: vps: dockerd (pid ${existing}) does not answer after ${READY_TIMEOUT_MS / 1000} s; see ${DOCKERD_LOG} or its own log`);
    }

    const bin = whichDockerd();
    if (!bin) throw new Error("citadel: vps: dockerd is not installed (Debian package docker.io; run: bash scripts/prereqs.sh)");
    ensureCacheDir();
    const t0 = Date.now();
    progress(`starting dockerd (log: ${DOCKERD_LOG})`);
    const fd = fs.openSync(DOCKERD_LOG, "a");
    fs.writeSync(fd, `\n=== ${new Date().toISOString()} citadel vps: starting ${bin}\n`);
    // Detached in its own session: it outlives this process (`vps up` returns, the engine stays)
    // and is stopped by PID from our pid file, never by name.
    const child = spawn(bin, [], { detached: true, stdio: ["ignore", fd, fd] });
    fs.closeSync(fd);
    let exited: number | null | undefined;
    child.once("exit", (code) => (exited = code));
    child.once("error", () => (exited = -1));
    child.unref();
    const pid = child.pid;
    if (pid === undefined) throw new Error(`citadel: vps: could not start ${bin}; see ${DOCKERD_LOG}`);
    fs.writeFileSync(DOCKERD_PIDFILE, `${pid}\n`);

    const ready = await waitUntil(() => exited !== undefined || dockerReady(), READY_TIMEOUT_MS, 500);
    if (!ready || exited !== undefined) {
        const why = exited !== undefined ? `exited with code ${exited}` : `did not answer within ${READY_TIMEOUT_MS / 1000} s (stopped it)`;
        if (exited === undefined) await stopDockerd();
        else fs.rmSync(DOCKERD_PIDFILE, { force: true });
        throw new Error(`citadel: vps: dockerd ${why}; see ${DOCKERD_LOG}. Last lines:\n${tailFile(DOCKERD_LOG, 15)}`);
    }
    progress(`dockerd ready (pid ${pid}, ${seconds(t0)} s)`);
    return { started: true, pid };
}

/**
 * Stops the dockerd that WE started (PID from our pid file); leaves any other engine alone. With
 * `onlyIfIdle`, it also stays up while containers run on it: another test or a `vps up` that found
 * it running is using it (e.g. two test files in parallel; the first to finish must not pull the
 * engine from under the other).
 */
export async function stopDockerd(opts: { onlyIfIdle?: boolean } = {}): Promise<boolean> {
    const pid = ourDockerdPid();
    if (pid === undefined) {
        fs.rmSync(DOCKERD_PIDFILE, { force: true });
        return false;
    }
    if (opts.onlyIfIdle) {
        const r = run("docker", ["ps", "--quiet"], { timeout: 30_000 });
        const running = r.stdout.split("\n").filter(Boolean).length;
        if (r.code === 0 && running > 0) {
            progress(`leaving dockerd (pid ${pid}) running: ${running} container(s) still run on it`);
            return false;
        }
    }
    progress(`stopping dockerd (pid ${pid})`);
    process.kill(pid, "SIGTERM");
    // dockerd stops its containers (10 s grace each, in parallel) and its managed containerd.
    if (!(await waitUntil(() => !alive(pid), 30_000, 200))) {
        process.kill(pid, "SIGKILL");
        await sleep(500);
    }
    fs.rmSync(DOCKERD_PIDFILE, { force: true });
    return true;
}
