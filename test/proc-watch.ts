// A watcher for secret values where every local user (or any root tool) can read them: the command
// lines and environments in /proc, and the env Docker shows in `docker inspect`. It runs as a child
// process (its own event loop: the tests drive the engine and SSH with blocking calls), sweeps /proc
// back to back and `docker inspect` every couple of seconds, and keeps every distinct text it saw in
// memory only. The values to look for are handed over at the end, on its stdin, so it can also watch
// a converge that only creates them; it answers with where each one was seen, never the value.
//
// On this machine /proc lists every process of the kernel: the local VPS's, and its inner containers'
// (PID namespaces hide the host from them, not them from the host), so one watcher here covers the
// VPS too. `docker` commands given in `dockers` cover the outer and the VPS's inner engine.
import { spawn } from "node:child_process";

export interface Sighting {
    /** The name of the secret that was seen. */
    secret: string;
    /** "pulumi-config": the PULUMI_CONFIG variable of a process environment (the Pulumi program's config). */
    where: "cmdline" | "environ" | "pulumi-config" | "docker inspect";
    /** The program (argv[0]'s base name) or the container; never the text that held the value. */
    holder: string;
}

export interface WatchReport {
    sightings: Sighting[];
    /** Full /proc sweeps done, and the longest gap between two (ms): how short a process it could miss. */
    sweeps: number;
    maxSweepMs: number;
    /** Distinct command lines / environments / inspect outputs kept. */
    texts: number;
    dockerRounds: number;
}

export interface ProcWatch {
    /** Resolves once the first sweep is done (a fault injected after this is in the window). */
    ready: Promise<void>;
    /** Ends the watch and looks for each value (name → value; values shorter than 12 characters are refused). */
    stop(secrets: Record<string, string>): Promise<WatchReport>;
}

// Plain JavaScript, run with `node -e` (no secret in it: the values arrive on stdin).
const CHILD = String.raw`
const fs = require("fs");
const { execFile } = require("child_process");
const dockers = JSON.parse(process.argv[1]);
const seen = new Map(); // text -> { where, holder }
const MAX_TEXTS = 200000;
const lastCmd = new Map(); // pid -> cmdline text (environ is read again when it changes: exec)
let sweeps = 0, maxSweepMs = 0, last = Date.now(), stopping = false, dockerRounds = 0, dockerBusy = false;
function keep(text, where, holder) {
    if (text && !seen.has(text) && seen.size < MAX_TEXTS) seen.set(text, { where, holder });
}
function read(p) { try { return fs.readFileSync(p); } catch { return null; } }
function sweep() {
    let pids;
    try { pids = fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d)); } catch { pids = []; }
    for (const pid of pids) {
        const cmd = read("/proc/" + pid + "/cmdline");
        if (!cmd || cmd.length === 0) continue;
        const text = cmd.toString("latin1");
        const holder = (text.split("\0")[0] || "?").split("/").pop();
        keep(text, "cmdline", holder);
        if (lastCmd.get(pid) === text) continue;
        lastCmd.set(pid, text);
        const env = read("/proc/" + pid + "/environ");
        if (env) {
            // PULUMI_CONFIG is how Pulumi's language host hands the program its config, secrets
            // decrypted: kept apart so a test can tell the stack's own config secrets there from a leak.
            const vars = env.toString("latin1").split("\0");
            keep(vars.filter((v) => !v.startsWith("PULUMI_CONFIG=")).join("\0"), "environ", holder);
            for (const v of vars.filter((x) => x.startsWith("PULUMI_CONFIG="))) keep(v, "pulumi-config", holder);
        }
    }
    const now = Date.now();
    maxSweepMs = Math.max(maxSweepMs, now - last);
    last = now;
    sweeps++;
    if (sweeps === 1) process.stdout.write("ready\n");
    if (!stopping) setImmediate(sweep);
}
function inspect() {
    if (stopping || dockerBusy || dockers.length === 0) return;
    dockerBusy = true;
    let left = dockers.length;
    for (const d of dockers) {
        execFile(d[0], [...d.slice(1), "ps", "-aq"], { timeout: 20000 }, (e, out) => {
            const ids = e ? [] : String(out).split(/\s+/).filter(Boolean);
            const done = () => { if (--left === 0) { dockerBusy = false; dockerRounds++; } };
            if (ids.length === 0) return done();
            execFile(d[0], [...d.slice(1), "inspect", ...ids], { timeout: 20000, maxBuffer: 64 << 20 }, (e2, json) => {
                if (!e2) {
                    try {
                        for (const c of JSON.parse(String(json))) keep(JSON.stringify(c), "docker inspect", String(c.Name || c.Id).replace(/^\//, ""));
                    } catch {}
                }
                done();
            });
        });
    }
}
const timer = setInterval(inspect, 2000);
inspect();
let input = "";
process.stdin.on("data", (d) => { input += d; });
process.stdin.on("end", () => {
    stopping = true;
    clearInterval(timer);
    const secrets = JSON.parse(input || "{}");
    const sightings = [];
    const found = new Set();
    for (const [text, at] of seen) {
        for (const [name, value] of Object.entries(secrets)) {
            if (!text.includes(value)) continue;
            const k = name + "|" + at.where + "|" + at.holder;
            if (!found.has(k)) { found.add(k); sightings.push({ secret: name, where: at.where, holder: at.holder }); }
        }
    }
    process.stdout.write(JSON.stringify({ sightings, sweeps, maxSweepMs, texts: seen.size, dockerRounds }) + "\n");
    process.exit(0);
});
sweep();
`;

/**
 * Starts watching. `dockers`: docker command prefixes whose containers are inspected, e.g.
 * [["docker"], ["docker", "exec", "citadel-local", "docker"]] for this machine's and a VPS's engine.
 */
export function watchProc(opts: { dockers?: string[][] } = {}): ProcWatch {
    const child = spawn(process.execPath, ["-e", CHILD, JSON.stringify(opts.dockers ?? [])], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    let resolveReady!: () => void;
    let rejectReady!: (e: Error) => void;
    const ready = new Promise<void>((res, rej) => {
        resolveReady = res;
        rejectReady = rej;
    });
    const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
    child.stdout.on("data", (d) => {
        out += d;
        if (out.startsWith("ready\n")) resolveReady();
    });
    child.stderr.on("data", (d) => (err += d));
    child.on("error", (e) => rejectReady(e));
    void exited.then((code) => rejectReady(new Error(`the /proc watcher exited early (${code}): ${err.slice(-300)}`)));
    return {
        ready,
        async stop(secrets) {
            for (const [name, value] of Object.entries(secrets)) {
                if (value.length < 12) throw new Error(`${name}: a value shorter than 12 characters would match by chance`);
            }
            child.stdin.end(JSON.stringify(secrets));
            const code = await exited;
            const line = out.split("\n").find((l) => l.startsWith("{"));
            if (code !== 0 || !line) throw new Error(`the /proc watcher failed (exit ${code}): ${err.slice(-300)}`);
            return JSON.parse(line) as WatchReport;
        },
    };
}

/** One line per sighting, for an assertion message (names and places only). */
export function describeSightings(r: WatchReport): string {
    return r.sightings.map((s) => `${s.secret} in the ${s.where} of ${s.holder}`).join("; ") || "none";
}
