// `npm run bench`: first converge vs no-op `pulumi up` on the local VPS, measured side by side in one
// run, plus the SSH sessions each opens; then the restore drill (issue 11): rows and a key written,
// the backup run, the data lost, `citadel restore` timed (the recovery time) beside the backup's time
// and size; the engine floor (lab/engine-floor.ts) beside the no-op. Prints its figures; targets (issue #4, 2 cores): first converge of the full posture
// ≤ 180 s, no-op up ≤ 15 s with 0 changes. A miss is a finding, not a failure.
import * as fs from "node:fs";
import * as path from "node:path";
import type { StackConfig } from "../components/config";
import { BACKUP_SERVICE, BACKUP_STATUS_PATH, POSTGRES_CONTAINER, REDIS_CONTAINER, postgresDatabaseOf, postgresRoleOf, redisKeyPrefixOf, redisUserOf, secretFilePath } from "../components/posture/facts";
import { renderCloudInit } from "../components/render/cloudinit";
import { shellQuote } from "../components/render/template";
import { runRestoreCli } from "../restore/cli";
import type { RestoreResult } from "../restore/restore";
import { engineFloor, type EngineFloor } from "./engine-floor";
import { buildLocalImages } from "./images/build-local";
import { labRestoreHooks } from "./restore";
import { harnessKey, parseLabArgs, run, runOk } from "./vps/common";
import { ensureDockerd } from "./vps/dockerd";
import { ensureVpsImage } from "./vps/image";
import { loadImages, startVps, stopVps } from "./vps/vps";
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
First converge vs no-op \`pulumi up\` of the local stack on a fresh local VPS, with the SSH sessions each opens;
then the restore drill: a backup of written rows and a key, the data lost, \`citadel restore\` timed.
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
    // A fresh VPS: the first converge starts from a just-booted server, images loaded (not counted).
    await stopVps(LOCAL_VPS);
    // And a fresh off-site target: the first converge makes the first backup, as on a new deployment.
    await startLabBackupTarget({ fresh: true });
    const t0 = Date.now();
    const info = await startVps({ name: LOCAL_VPS, userData: renderCloudInit(config), sshPort: LOCAL_SSH_PORT, httpPort: LOCAL_HTTP_PORT, httpsPort: LOCAL_HTTPS_PORT, seedImages: stackImages(config) });
    const boot = (Date.now() - t0) / 1000;
    await loadImages(LOCAL_VPS, stackImages(config));

    const s0 = sshSessions();
    let t = Date.now();
    const first = await pulumiLocal(info, publicKey, ["up", "--yes", "--non-interactive", "--skip-preview"], "bench-first.log", true);
    const firstS = (Date.now() - t) / 1000;
    const s1 = sshSessions();
    t = Date.now();
    const noop = await pulumiLocal(info, publicKey, ["up", "--yes", "--non-interactive", "--skip-preview"], "bench-noop.log");
    const noopS = (Date.now() - t) / 1000;
    const s2 = sshSessions();
    // Side by side: the engine's own no-op floor (issue 14), right after the stack's no-op.
    let floor: EngineFloor | undefined;
    let floorError = "";
    try {
        floor = engineFloor();
    } catch (e) {
        floorError = (e as Error).message;
    }
    fs.writeFileSync(path.join(LOG_DIR, "host-key"), info.hostKey);
    // A drill that breaks is reported with the other figures; the VPS still comes down (unless --keep).
    let drill: Drill | undefined;
    let drillError = "";
    try {
        drill = await restoreDrill(config);
    } catch (e) {
        drillError = (e as Error).message;
    }

    let lynis: LynisFigures | undefined;
    let lynisError = "";
    try {
        lynis = lynisFigures();
    } catch (e) {
        lynisError = (e as Error).message;
    }

    const row = (k: string, v: string) => console.log(`${k.padEnd(44)} ${v}`);
    console.log("\nCitadel bench (local VPS, real engine; one run, side by side)");
    row("VPS boot to SSH (not counted)", `${boot.toFixed(1)} s`);
    row("first converge, full posture (pulumi up)", `${firstS.toFixed(1)} s  exit ${first}  [${changes("bench-first.log")}]  target ≤ 180 s`);
    row("no-op pulumi up", `${noopS.toFixed(1)} s  exit ${noop}  [${changes("bench-noop.log")}]  target ≤ 15 s`);
    row("ratio first / no-op", `${(firstS / noopS).toFixed(1)}×`);
    if (floor) {
        row("engine floor: no-op up of a 1-resource program", `${floor.noopS.toFixed(1)} s  (same engine, language host, SDKs)`);
        row("ratio no-op / engine floor", `${(noopS / floor.noopS).toFixed(1)}×  target ≤ 1.5×`);
    } else row("engine floor", `FAILED: ${floorError}`);
    row("SSH sessions: first converge", String(s1 - s0));
    row("SSH sessions: no-op up", String(s2 - s1));
    const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
    if (drill) {
        row("backup run (systemctl start citadel-backup)", `${drill.backupS.toFixed(1)} s  ${mb(drill.backupBytes)} in ${drill.backupObjects} objects (age ciphertext, on the SFTP target)`);
        row("RESTORE TIME (recovery: citadel restore)", `${drill.restoreS.toFixed(1)} s  exit ${drill.restoreCode}  [${drill.result?.restored.join(", ") ?? "nothing restored"}]`);
        row("  of which apps stopped", drill.result ? `${drill.result.seconds.toFixed(1)} s` : "-");
        row("ratio restore / backup", `${(drill.restoreS / drill.backupS).toFixed(1)}×`);
        row("restore throughput", `${(drill.backupBytes / 1024 / drill.restoreS).toFixed(0)} KiB/s of ciphertext`);
        row("after restore", `${drill.rows}/${DRILL_ROWS} rows, Redis key ${drill.key}`);
        row("SSH sessions: restore", String(drill.sessions));
    } else row("restore drill", `FAILED: ${drillError}`);
    if (lynis) row("Lynis hardening index (converged VPS)", `${lynis.index}  ${lynis.warnings} warnings [${lynis.warningIds.join(", ")}], ${lynis.suggestions} suggestions`);
    else row("Lynis", `FAILED: ${lynisError}`);
    if (!drill || drill.restoreCode !== 0) process.exitCode = 1;
    if (!cli.keep) await down();
    if (cli.hcloud) await benchHcloud(row);
}

main().catch((e) => {
    console.error(`bench failed: ${(e as Error).message}`);
    process.exit(1);
});
