// Builds and runs the Hetzner Cloud API double (this folder's Go program) for the lab: a fresh fake
// token per run (64 hex characters, in a 0600 file, handed to the provider as HCLOUD_TOKEN), the
// machine driver (driver.ts), and a stop by PID.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { REPO_ROOT, runOk } from "../vps/common";

const SRC = path.join(REPO_ROOT, "lab", "hcloud-double");
const BIN = path.join(REPO_ROOT, ".cache", "hcloud-double", "hcloud-double");

/** `go build` of the double (Go's build cache makes a second build a no-op); returns the binary. */
export function buildDouble(): string {
    fs.mkdirSync(path.dirname(BIN), { recursive: true });
    runOk("go", ["build", "-o", BIN, "."], { cwd: SRC, timeout: 10 * 60_000, env: { ...process.env, GOFLAGS: "-mod=readonly", GOTOOLCHAIN: "local" } });
    return BIN;
}

export interface DoubleOptions {
    /** Keeps this double's token, state and log apart (e.g. the e2e file's VPS prefix). */
    scope: string;
    /** Lab addresses for servers, "FIRST-LAST" (inside LAB_SUBNET, away from Docker's own allocations). */
    pool: string;
    /** VPS names are PREFIX-<server id>. */
    vpsPrefix: string;
    /** A /48 routed to the servers (lab/vps LAB_SERVERS6: one per double): server N's IPv6 /64 is its N-th. */
    ipv6Base: string;
    /** Images to load into each new VPS's engine (the stack's; the lab has no registry). */
    images?: string[];
    /** 127.0.0.1 port to serve on (0: any free one). */
    port?: number;
    /** Forget what an earlier double of this scope kept (an empty project). */
    fresh?: boolean;
}

export interface RunningDouble {
    /** What hcloud:endpoint / HCLOUD_ENDPOINT takes: http://127.0.0.1:PORT/v1 */
    endpoint: string;
    token: string;
    pid: number;
    dir: string;
    /** SIGTERM by PID; waits (bounded) for the machine operations under way to finish. */
    stop(): Promise<void>;
}

export async function startDouble(opts: DoubleOptions): Promise<RunningDouble> {
    const bin = buildDouble();
    const dir = path.join(REPO_ROOT, ".cache", "hcloud-double", opts.scope);
    fs.mkdirSync(dir, { recursive: true });
    if (opts.fresh) fs.rmSync(path.join(dir, "state.json"), { force: true });
    const token = randomBytes(32).toString("hex");
    const tokenFile = path.join(dir, "token");
    fs.writeFileSync(tokenFile, token + "\n", { mode: 0o600 });
    const log = fs.openSync(path.join(dir, "double.log"), "a");
    const tsx = path.join(REPO_ROOT, "node_modules", ".bin", "tsx");
    const child: ChildProcess = spawn(
        bin,
        [
            "-listen", `127.0.0.1:${opts.port ?? 0}`,
            "-token-file", tokenFile,
            "-pool", opts.pool,
            "-vps-prefix", opts.vpsPrefix,
            "-ipv6-base", opts.ipv6Base,
            "-driver", `${tsx} ${path.join(SRC, "driver.ts")}`,
            "-state", path.join(dir, "state.json"),
        ],
        { cwd: REPO_ROOT, stdio: ["ignore", "pipe", log], env: { ...process.env, CITADEL_HCLOUD_IMAGES: (opts.images ?? []).join(" ") } },
    );
    fs.closeSync(log);
    const endpoint = await new Promise<string>((resolve, reject) => {
        let buf = "";
        const timer = setTimeout(() => reject(new Error(`hcloud-double did not start in 30 s; see ${dir}/double.log`)), 30_000);
        child.stdout!.on("data", (d) => {
            buf += String(d);
            const m = /listening on (http:\/\/\S+)/.exec(buf);
            if (m) {
                clearTimeout(timer);
                resolve(m[1]);
            }
        });
        child.once("exit", (code) => {
            clearTimeout(timer);
            reject(new Error(`hcloud-double exited (${code}); see ${dir}/double.log`));
        });
    });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    return {
        endpoint,
        token,
        pid: child.pid!,
        dir,
        async stop() {
            if (child.exitCode !== null) return;
            process.kill(child.pid!, "SIGTERM");
            const timeout = new Promise<void>((resolve) => setTimeout(resolve, 30 * 60_000).unref());
            await Promise.race([exited, timeout]);
        },
    };
}

/** A call to the double's API: the parsed JSON answer and the status. */
export async function api(d: Pick<RunningDouble, "endpoint" | "token">, method: string, route: string, body?: unknown): Promise<{ status: number; json: any }> {
    const r = await fetch(`${d.endpoint}${route}`, {
        method,
        headers: { Authorization: `Bearer ${d.token}`, ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, json: text ? JSON.parse(text) : undefined };
}

/** Polls an action until it is no longer running (bounded). */
export async function waitAction(d: Pick<RunningDouble, "endpoint" | "token">, id: number, ms = 10 * 60_000): Promise<{ status: string; error?: { message: string } }> {
    const end = Date.now() + ms;
    for (;;) {
        const { json } = await api(d, "GET", `/actions/${id}`);
        if (json.action.status !== "running") return json.action;
        if (Date.now() > end) throw new Error(`action ${id} still running after ${ms} ms`);
        await new Promise((r) => setTimeout(r, 500));
    }
}

/** The nftables tables of this machine whose names start with prefix (the double's perimeters). */
export function labRuleTables(prefix: string): string[] {
    const out = runOk("nft", ["list", "tables"]);
    const want = prefix.replace(/-/g, "_");
    return out.split("\n").map((l) => l.trim().split(/\s+/)[2]).filter((t): t is string => !!t && (t === want || t.startsWith(want + "_")));
}
