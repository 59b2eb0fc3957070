// `npm run bench`: every figure of issue 14 as a ratio measured side by side in one run.
//   host floor      the same packages, files and containers on an identical fresh VPS by one plain
//                   script generated from the posture (lab/host-floor.ts), no Pulumi
//   first converge  `pulumi up` of the full posture on a fresh local VPS (target ≤ 1.3× the host floor)
//   no-op up        the second `pulumi up` (target ≤ 1.5× the engine floor)
//   engine floor    a no-op up of a program that loads the same plugins (lab/engine-floor.ts), and the
//                   same engine with as many trivial resources as the stack has
//   preview         the prod example's offline preview with 1 app and 50 (target ≤ 3×); the review
//                   of the last commit (target ≤ 5 s)
// with the SSH sessions each opens, where the converge's time goes (the engine's own events) and where a
// no-op's program time goes beside the floor's (a CPU profile of each, lab/noop-profile.ts); then
// the restore drill (issue 11: rows and a key written, the backup run, the data lost, `citadel
// restore` timed beside the backup) and Lynis' hardening index. A miss is a finding, not a failure.
import * as fs from "node:fs";
import * as path from "node:path";
import type { StackConfig } from "../components/config";
import { BACKUP_SERVICE, BACKUP_STATUS_PATH, POSTGRES_CONTAINER, REDIS_CONTAINER, postgresDatabaseOf, postgresRoleOf, redisKeyPrefixOf, redisUserOf, secretFilePath } from "../components/posture/facts";
import { renderCloudInit } from "../components/render/cloudinit";
import { shellQuote } from "../components/render/template";
import { runRestoreCli } from "../restore/cli";
import type { RestoreResult } from "../restore/restore";
import { engineFloor, type EngineFloor } from "./engine-floor";
import { CPU_PROFILE_HOOK, summarize, type ProgramProfile } from "./noop-profile";
import { runHostFloor, type HostFloor } from "./host-floor";
import { previewProd, previewScale, type PreviewRun } from "./preview-scale";
import { buildLocalImages } from "./images/build-local";
import { labRestoreHooks } from "./restore";
import { harnessKey, parseLabArgs, REPO_ROOT, run, runOk } from "./vps/common";
import { ensureDockerd } from "./vps/dockerd";
import { ensureVpsImage } from "./vps/image";
import { loadImages, startVps, stopVps, type VpsInfo } from "./vps/vps";
import { down, LOCAL_HTTP_PORT, LOCAL_HTTPS_PORT, LOCAL_SSH_PORT, LOCAL_VPS, localConfig, LOG_DIR, pulumiLocal, stackImages, startLabBackupTarget } from "./local";


/** sshd's count of accepted logins on the VPS so far (every remote step and Docker-over-SSH dial). */
function sshSessions(): number {
    const r = run("docker", ["exec", LOCAL_VPS, "journalctl", "-u", "ssh", "--no-pager", "-o", "cat"]);
    return r.stdout.split("\n").filter((l) => l.startsWith("Accepted publickey")).length;
}

function changes(log: string): string {
    const text = fs.readFileSync(path.join(LOG_DIR, log), "utf8");
    const m = /Resources:\n([\s\S]*?)\n\n/.exec(text);
    return m ? m[1].replace(/\s+/g, " ").trim() : "?";
}

/** One `pulumi up` of the local stack: the whole lab command, and the engine's command alone (pulumi-stack.sh's set-up left out). */
interface Up {
    code: number;
    /** lab/pulumi-stack.sh end to end (scratch copy, `config set`s, then `pulumi up`). */
    seconds: number;
    /** `pulumi up` alone: what a user's `pulumi up` costs, and what the engine floor measures. */
    engineSeconds: number;
    /** The engine's own events (`--event-log`): per resource, from its step's start to its outputs. */
    resources: { name: string; type: string; seconds: number; op: string }[];
}

/** `events`: with the engine's event log (the first converge's breakdown); the no-op runs without, like the floor. */
async function timedUp(info: VpsInfo, publicKey: string, log: string, opts: { reset?: boolean; events?: boolean } = {}): Promise<Up> {
    const secondsFile = path.join(LOG_DIR, `${log}.engine-seconds`);
    const events = path.join(LOG_DIR, `${log}.events.json`);
    for (const f of [secondsFile, events]) fs.rmSync(f, { force: true });
    process.env.CITADEL_ENGINE_SECONDS_FILE = secondsFile;
    // --event-log is one of the engine's debug flags (PULUMI_DEBUG_COMMANDS); it changes nothing else.
    if (opts.events) process.env.PULUMI_DEBUG_COMMANDS = "true";
    const t = Date.now();
    try {
        const code = await pulumiLocal(info, publicKey, ["up", "--yes", "--non-interactive", "--skip-preview", ...(opts.events ? ["--event-log", events] : [])], log, opts.reset === true);
        const seconds = (Date.now() - t) / 1000;
        // No file: the lab's set-up failed before `pulumi up` ran (its log says why).
        const engineSeconds = fs.existsSync(secondsFile) ? Number(fs.readFileSync(secondsFile, "utf8")) : NaN;
        return { code, seconds, engineSeconds, resources: resourceTimes(events) };
    } finally {
        delete process.env.CITADEL_ENGINE_SECONDS_FILE;
        delete process.env.PULUMI_DEBUG_COMMANDS;
    }
}

/** Per resource: from the engine's pre-event to its outputs event (the events carry whole seconds). */
function resourceTimes(file: string): Up["resources"] {
    if (!fs.existsSync(file)) return [];
    const started = new Map<string, number>();
    const out: Up["resources"] = [];
    for (const line of fs.readFileSync(file, "utf8").split("\n")) {
        if (!line.trim()) continue;
        const e = JSON.parse(line) as { timestamp: number; resourcePreEvent?: { metadata: { urn: string; op: string } }; resOutputsEvent?: { metadata: { urn: string; op: string; type: string } } };
        if (e.resourcePreEvent) started.set(e.resourcePreEvent.metadata.urn, e.timestamp);
        const o = e.resOutputsEvent?.metadata;
        if (o && started.has(o.urn)) out.push({ name: o.urn.split("::").pop() ?? o.urn, type: o.type, seconds: e.timestamp - (started.get(o.urn) ?? e.timestamp), op: o.op });
    }
    return out.sort((a, b) => b.seconds - a.seconds);
}

/** Rows the restore drill writes before the backup and counts after the restore (enough that the dump is more than its overhead). */
const DRILL_ROWS = 200_000;

/** Root on the VPS through the lab's side door (docker exec): the drill's data and the backup run, as an operator on the host. */
function onVps(cmd: string, input?: string): string {
    return runOk("docker", ["exec", "-i", LOCAL_VPS, "bash", "-c", cmd], { input: input ?? "", timeout: 1_800_000 });
}

interface LynisFigures {
    index: number;
    warnings: number;
    suggestions: number;
    /** Test ids of the warnings (what is still open). */
    warningIds: string[];
}

/**
 * Lynis (Debian's package) on the converged VPS: its hardening index, warnings and suggestions.
 * Installed for the measurement only, after every other figure (the VPS is thrown away after the
 * bench); its report file is parsed rather than its screen output.
 */
function lynisFigures(): LynisFigures {
    onVps("DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=120 install --no-install-recommends lynis >/dev/null");
    onVps("lynis audit system --quick --no-colors --report-file /root/lynis-report.dat >/dev/null 2>&1 || true");
    const report = onVps("cat /root/lynis-report.dat");
    const values = (key: string) => [...report.matchAll(new RegExp(`^${key}=(.*)$`, "gm"))].map((m) => m[1]);
    const index = Number(values("hardening_index")[0]);
    if (!Number.isFinite(index)) throw new Error("lynis wrote no hardening_index");
    const warnings = values("warning\\[\\]");
    return { index, warnings: warnings.length, suggestions: values("suggestion\\[\\]").length, warningIds: warnings.map((w) => w.split("|")[0]) };
}

interface Drill {
    backupS: number;
    backupBytes: number;
    backupObjects: number;
    restoreS: number;
    restoreCode: number;
    result?: RestoreResult;
    rows: string;
    key: string;
    sessions: number;
}

/**
 * The restore drill: DRILL_ROWS rows in Postgres (as the app's role) and a key in Redis → the backup
 * service run and timed → the data lost (table dropped, key deleted) → `citadel restore --force` with
 * the lab operator's age key, timed end to end (the path the e2e takes) → the rows and the key counted.
 */
async function restoreDrill(c: StackConfig): Promise<Drill> {
    const mark = `citadel-bench-${Date.now()}`;
    const app = c.apps.find((a) => a.secrets.includes("redisPassword"))?.name ?? "demo";
    const psql = (sql: string) => onVps(`docker exec -i -u postgres ${POSTGRES_CONTAINER} psql -XAt -v ON_ERROR_STOP=1 -d ${postgresDatabaseOf(app)}`, sql).trim();
    // AUTH on redis-cli's stdin (printf is bash's own: the password is in no argv or env).
    const redis = (cmd: string) => onVps(`{ printf 'AUTH %s %s\\n' ${redisUserOf(app)} "$(cat ${secretFilePath(app, "redisPassword")})"; echo ${shellQuote(cmd)}; } | docker exec -i ${REDIS_CONTAINER} redis-cli -h 127.0.0.1 --no-auth-warning`).trim().split("\n").pop() ?? "";
    psql(`set role ${postgresRoleOf(app)}; drop table if exists bench_drill; create table bench_drill (id int primary key, note text); insert into bench_drill select g, '${mark}-' || md5(g::text) from generate_series(1, ${DRILL_ROWS}) g;`);
    redis(`SET ${redisKeyPrefixOf(app)}bench:drill ${mark}`);

    let t = Date.now();
    onVps(`systemctl start ${BACKUP_SERVICE}`);
    const backupS = (Date.now() - t) / 1000;
    const status = JSON.parse(onVps(`cat ${BACKUP_STATUS_PATH}`)) as { success: boolean; id: string; size: number; objects: unknown[]; error?: string };
    if (!status.success) throw new Error(`the backup run failed: ${status.error}`);

    psql("drop table bench_drill;");
    redis(`DEL ${redisKeyPrefixOf(app)}bench:drill`);
    const identity = JSON.parse(fs.readFileSync(path.join(LOG_DIR, "backup-target.json"), "utf8")).ageKeyPath as string;
    let result: RestoreResult | undefined;
    const s0 = sshSessions();
    t = Date.now();
    // --force: the app's database still holds the demo app's tables (the drill restores over a live server).
    const restoreCode = await runRestoreCli(["--stack", "local", "--identity", identity, "--backup", status.id, "--force"], { ...labRestoreHooks(), onResult: (r) => (result = r) });
    const restoreS = (Date.now() - t) / 1000;
    const sessions = sshSessions() - s0;
    const rows = restoreCode === 0 ? psql(`select count(*) from bench_drill where note like '${mark}-%';`) : "-";
    const key = restoreCode === 0 ? redis(`GET ${redisKeyPrefixOf(app)}bench:drill`) : "";
    return { backupS, backupBytes: status.size, backupObjects: status.objects.length, restoreS, restoreCode, result, rows, key: key === mark ? "back" : `missing (${key})`, sessions };
}

const USAGE = `usage: npm run bench [-- --keep] [-- --hcloud]   (or: npx tsx lab/bench.ts [--keep] [--hcloud])
The host floor (a plain script on a fresh VPS), then the first converge and a no-op \`pulumi up\` of the local
stack on a fresh local VPS, the engine floor, the prod preview with 1 and 50 apps and the review, each as a
ratio; then the restore drill (a backup of written rows and a key, the data lost, \`citadel restore\` timed)
and Lynis' hardening index.
  --keep       leave the stack and the VPS up afterwards (default: npm run local:down at the end)
  --hcloud     then the same through the Hetzner path (target hcloud, the lab's API double): the first
               converge counts creating the server (VPS boot, images loaded) too; destroyed at the end
  -h, --help   show this help`;

/** The command line, or an exit code after --help or a usage error. */
function parseCli(args: string[]): { keep: boolean; hcloud: boolean } | { exit: number } {
    const parsed = parseLabArgs(args, { keep: { type: "boolean", default: false }, hcloud: { type: "boolean", default: false } }, USAGE);
    return "exit" in parsed ? { exit: parsed.exit } : { keep: parsed.values.keep === true, hcloud: parsed.values.hcloud === true };
}

/** The Hetzner path: first converge (server created through the API double, booted, converged) and a no-op. */
async function benchHcloud(row: (k: string, v: string) => void): Promise<void> {
    const lab = await import("./hcloud");
    const { double, publicKey } = await lab.startHcloudLab();
    const changesOf = (log: string) => {
        const m = /Resources:\n([\s\S]*?)\n\n/.exec(fs.readFileSync(path.join(lab.HCLOUD_LOG_DIR, log), "utf8"));
        return m ? m[1].replace(/\s+/g, " ").trim() : "?";
    };
    try {
        let t = Date.now();
        const first = await lab.pulumiHcloud(double, publicKey, ["up", "--yes", "--non-interactive", "--skip-preview"], "bench-first.log", { reset: true });
        const firstS = (Date.now() - t) / 1000;
        t = Date.now();
        const noop = await lab.pulumiHcloud(double, publicKey, ["up", "--yes", "--non-interactive", "--skip-preview"], "bench-noop.log");
        const noopS = (Date.now() - t) / 1000;
        console.log("\nCitadel bench, the Hetzner path (target hcloud, the lab's API double; server creation counted)");
        row("first converge incl. server create + boot", `${firstS.toFixed(1)} s  exit ${first}  [${changesOf("bench-first.log")}]`);
        row("no-op pulumi up", `${noopS.toFixed(1)} s  exit ${noop}  [${changesOf("bench-noop.log")}]`);
    } finally {
        await lab.pulumiHcloud(double, publicKey, ["destroy", "--yes", "--non-interactive", "--skip-preview"], "bench-destroy.log");
        await lab.deleteAll(double);
        await double.stop();
        await lab.removeLeftovers();
    }
}

async function main(): Promise<void> {
    const cli = parseCli(process.argv.slice(2));
    if ("exit" in cli) {
        process.exitCode = cli.exit;
        return;
    }
    process.env.CITADEL_QUIET = "1";
    await ensureDockerd();
    await ensureVpsImage();
    await buildLocalImages();
    const publicKey = fs.readFileSync(harnessKey(), "utf8").trim();
    const config = localConfig(publicKey);
    // Each figure is caught and printed as FAILED beside the others: the VPS still comes down.
    const attempt = async <T>(fn: () => T | Promise<T>): Promise<{ value?: T; error: string }> => {
        try {
            return { value: await fn(), error: "" };
        } catch (e) {
            return { error: (e as Error).message };
        }
    };
    // Nothing else running (a local VPS left by --keep would share the cores), then the host floor,
    // on its own fresh VPS booted the same way (removed afterwards).
    await stopVps(LOCAL_VPS);
    const hostFloor = await attempt<HostFloor>(() => runHostFloor(config));

    // A fresh VPS: the first converge starts from a just-booted server, images loaded (not counted).
    // And a fresh off-site target: the first converge makes the first backup, as on a new deployment.
    await startLabBackupTarget({ fresh: true });
    const t0 = Date.now();
    const info = await startVps({ name: LOCAL_VPS, userData: renderCloudInit(config), sshPort: LOCAL_SSH_PORT, httpPort: LOCAL_HTTP_PORT, httpsPort: LOCAL_HTTPS_PORT, seedImages: stackImages(config) });
    const boot = (Date.now() - t0) / 1000;
    await loadImages(LOCAL_VPS, stackImages(config));

    const s0 = sshSessions();
    const first = await timedUp(info, publicKey, "bench-first.log", { reset: true, events: true });
    const s1 = sshSessions();
    const noop = await timedUp(info, publicKey, "bench-noop.log");
    const s2 = sshSessions();
    // Side by side, right after the stack's no-op: the engine floor, and the same engine with as
    // many trivial resources as the stack registers (what the engine alone costs per resource).
    const stackResources = Number(/(\d+) unchanged/.exec(changes("bench-noop.log"))?.[1] ?? 0) - 1;
    const floor = await attempt<EngineFloor>(() => engineFloor());
    const floorN = await attempt<EngineFloor>(() => engineFloor(Math.max(1, stackResources - 2)));
    // Where the no-op's program time goes, the stack's beside the floor's: one more no-op of each,
    // untimed, with the program's process under a CPU profile (lab/cpu-profile.cjs).
    const profiles = await attempt(async (): Promise<{ stack: ProgramProfile; floor: ProgramProfile }> => {
        const dirs = { stack: path.join(LOG_DIR, "cpu-profile-stack"), floor: path.join(LOG_DIR, "cpu-profile-floor") };
        for (const d of Object.values(dirs)) fs.rmSync(d, { recursive: true, force: true });
        const profileEnv = (dir: string) => ({ NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --require ${CPU_PROFILE_HOOK}`.trim(), CITADEL_CPU_PROFILE_DIR: dir });
        const saved = { NODE_OPTIONS: process.env.NODE_OPTIONS, CITADEL_CPU_PROFILE_DIR: process.env.CITADEL_CPU_PROFILE_DIR };
        Object.assign(process.env, profileEnv(dirs.stack));
        try {
            const code = await pulumiLocal(info, publicKey, ["up", "--yes", "--non-interactive", "--skip-preview"], "bench-noop-profiled.log");
            if (code !== 0) throw new Error(`the profiled no-op exited ${code} (${path.join(LOG_DIR, "bench-noop-profiled.log")})`);
        } finally {
            for (const [k, v] of Object.entries(saved)) v === undefined ? delete process.env[k] : (process.env[k] = v);
        }
        engineFloor(1, profileEnv(dirs.floor));
        return { stack: summarize(dirs.stack), floor: summarize(dirs.floor) };
    });
    // The reviewer's figures: the prod example's preview with 1 app and 50, the review of the last commit.
    const previews = await attempt(() => previewScale(50));
    const prodPreview = await attempt(previewProd);
    const review = await attempt(() => {
        const t = Date.now();
        const r = run(path.join(REPO_ROOT, "node_modules", ".bin", "tsx"), [path.join(REPO_ROOT, "review", "cli.ts"), "--base", "HEAD~1", "--head", "HEAD", "--stack", "prod", "--repo", REPO_ROOT], { cwd: REPO_ROOT, timeout: 300_000 });
        if (r.code !== 0 && r.code !== 1) throw new Error(`citadel review exited ${r.code}: ${r.stderr.slice(-500)}`);
        return (Date.now() - t) / 1000;
    });
    fs.writeFileSync(path.join(LOG_DIR, "host-key"), info.hostKey);
    // A drill that breaks is reported with the other figures; the VPS still comes down (unless --keep).
    const drillRun = await attempt(() => restoreDrill(config));
    const drill = drillRun.value;
    const lynisRun = await attempt(lynisFigures);
    const lynis = lynisRun.value;

    const row = (k: string, v: string) => console.log(`${k.padEnd(46)} ${v}`);
    const ratio = (a: number, b: number, target: number) => `${(a / b).toFixed(2)}×  target ≤ ${target}× ${a / b <= target ? "(met)" : "(MISSED)"}`;
    console.log("\nCitadel bench (local VPS, real engine; one run, side by side)");
    row("VPS boot to SSH (not counted)", `${boot.toFixed(1)} s`);
    if (hostFloor.value) row("host floor: one plain script, no Pulumi", `${hostFloor.value.seconds.toFixed(1)} s  (${hostFloor.value.summary})`);
    else row("host floor", `FAILED: ${hostFloor.error}`);
    row("first converge, full posture (pulumi up)", `${first.engineSeconds.toFixed(1)} s  exit ${first.code}  [${changes("bench-first.log")}]`);
    if (hostFloor.value) row("  ratio first converge / host floor", ratio(first.engineSeconds, hostFloor.value.seconds, 1.3));
    row("no-op pulumi up", `${noop.engineSeconds.toFixed(1)} s  exit ${noop.code}  [${changes("bench-noop.log")}]`);
    if (floor.value) {
        row("engine floor: no-op up, same plugins loaded", `${floor.value.noopS.toFixed(1)} s  (${floor.value.resources} resources: a RandomId, a local Command, a docker Provider)`);
        row("  ratio no-op / engine floor", ratio(noop.engineSeconds, floor.value.noopS, 1.5));
    } else row("engine floor", `FAILED: ${floor.error}`);
    if (floorN.value) row(`  the engine alone with ${floorN.value.resources} resources`, `${floorN.value.noopS.toFixed(1)} s no-op  (the stack's no-op is ${(noop.engineSeconds / floorN.value.noopS).toFixed(2)}× it)`);
    else row("engine with the stack's resource count", `FAILED: ${floorN.error}`);
    row("lab set-up around each pulumi up (not counted)", `${(first.seconds - first.engineSeconds).toFixed(1)} s / ${(noop.seconds - noop.engineSeconds).toFixed(1)} s  (scratch copy, config set)`);
    row("SSH sessions: first converge / no-op", `${s1 - s0} / ${s2 - s1}`);
    if (profiles.value) {
        const { stack: a, floor: b } = profiles.value;
        const pair = (x: number, y: number) => `${x.toFixed(2)} s / ${y.toFixed(2)} s`;
        row("no-op program, CPU profile: stack / floor", "(one more untimed no-op each)");
        row("  the program's process, sampled", pair(a.totalS, b.totalS));
        row("  compiling and loading modules", pair(a.modulesS, b.modulesS));
        row("  the SDK's stack trace per promise", pair(a.promiseStacksS, b.promiseStacksS));
        row("  garbage collection", pair(a.gcS, b.gcS));
        row("  Citadel's own code, Handlebars, zod", pair(a.programS, b.programS));
        row("  waiting on the engine", pair(a.idleS, b.idleS));
    } else row("no-op program, CPU profile", `FAILED: ${profiles.error}`);
    if (previews.value) {
        const { one, many, n } = previews.value;
        const pv = (p: PreviewRun) => `${p.seconds.toFixed(1)} s (${p.creates} to create)`;
        row("preview of the prod example, 1 app + 1 site", pv(one));
        row(`preview, ${n} apps + ${n} sites`, pv(many));
        row(`  ratio ${n} / 1`, ratio(many.seconds, one.seconds, 3));
    } else row("preview", `FAILED: ${previews.error}`);
    if (prodPreview.value) row("preview of Pulumi.prod.yaml as it stands", `${prodPreview.value.seconds.toFixed(1)} s (${prodPreview.value.creates} to create)`);
    else row("preview of Pulumi.prod.yaml", `FAILED: ${prodPreview.error}`);
    if (review.value !== undefined) row("citadel review of the last commit (prod)", `${review.value.toFixed(1)} s  target ≤ 5 s ${review.value <= 5 ? "(met)" : "(MISSED)"}`);
    else row("citadel review", `FAILED: ${review.error}`);
    // Resources that do work (host steps, images, containers, networks), not the components that group them.
    const leaves = first.resources.filter((r) => /^(command|docker|random):/.test(r.type));
    console.log(`\nWhere the first converge's time goes (the engine's events, whole seconds; ${leaves.length} resources, which overlap where they do not wait on each other):`);
    for (const r of leaves.slice(0, 12)) row(`  ${r.name}`, `${r.seconds} s  ${r.type}`);
    const byKind = new Map<string, number>();
    for (const r of leaves) byKind.set(r.type, (byKind.get(r.type) ?? 0) + r.seconds);
    row("  sum by type", [...byKind].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k.replace(/^.*:/, "")} ${v} s`).join(", "));
    const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
    console.log("");
    if (drill) {
        row("backup run (systemctl start citadel-backup)", `${drill.backupS.toFixed(1)} s  ${mb(drill.backupBytes)} in ${drill.backupObjects} objects (age ciphertext, on the SFTP target)`);
        row("RESTORE TIME (recovery: citadel restore)", `${drill.restoreS.toFixed(1)} s  exit ${drill.restoreCode}  [${drill.result?.restored.join(", ") ?? "nothing restored"}]`);
        row("  of which apps stopped", drill.result ? `${drill.result.seconds.toFixed(1)} s` : "-");
        row("ratio restore / backup", `${(drill.restoreS / drill.backupS).toFixed(1)}×`);
        row("restore throughput", `${(drill.backupBytes / 1024 / drill.restoreS).toFixed(0)} KiB/s of ciphertext`);
        row("after restore", `${drill.rows}/${DRILL_ROWS} rows, Redis key ${drill.key}`);
        row("SSH sessions: restore", String(drill.sessions));
    } else row("restore drill", `FAILED: ${drillRun.error}`);
    if (lynis) row("Lynis hardening index (converged VPS)", `${lynis.index}  ${lynis.warnings} warnings [${lynis.warningIds.join(", ")}], ${lynis.suggestions} suggestions`);
    else row("Lynis", `FAILED: ${lynisRun.error}`);
    if (first.code !== 0 || noop.code !== 0) process.exitCode = 1;
    if (!drill || drill.restoreCode !== 0) process.exitCode = 1;
    if (!cli.keep) await down();
    if (cli.hcloud) await benchHcloud(row);
}

main().catch((e) => {
    console.error(`bench failed: ${(e as Error).message}`);
    process.exit(1);
});
