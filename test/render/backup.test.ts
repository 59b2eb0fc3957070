// The backup program and its files, checked by the real tools: shellcheck, age (the recipients file
// and decryption), bash+date (retention), and a whole run against the lab's real SFTP target
// (OpenSSH, chrooted) with the rendered rclone.conf and pinned host key. Only `docker exec redis tar`
// is replaced (by a `docker` on PATH that runs tar here): the stack's containers are not on this machine.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { ageRecipientError, parseConfigOrThrow } from "../../components/config";
import { posture } from "../../components/posture";
import { METRIC } from "../../components/posture/facts";
import { renderBackupProgram, renderKnownHosts, renderRcloneConf, renderRecipients } from "../../components/render/backup";
import { backupConfig, prodWith, TEST_BACKUP } from "../fixtures";
import { ensureDockerd, stopDockerd } from "../../lab/vps/dockerd";
import { IN_CI, requireTool, run, shellcheck, tmpDir, which } from "../tools";

describe("backup program: static checks with the real tools", () => {
    it("the program embedded in the backup step is shellcheck-clean", (t) => {
        const sc = requireTool(t, "shellcheck");
        if (!sc) return;
        const step = posture(backupConfig()).hostSteps.find((s) => s.name === "backup");
        const program = step?.files.find((f) => f.path === "/usr/local/sbin/citadel-backup");
        assert.ok(program && step?.script.includes(program.content.split("\n")[5]), "the step embeds the program");
        const r = shellcheck(sc, program.content, ["-e", "SC1001"]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
    });

    it("age reads the recipients file the schema accepted; a key the schema refuses, age refuses too", (t) => {
        const age = requireTool(t, "age");
        if (!age) return;
        const dir = tmpDir();
        try {
            fs.writeFileSync(path.join(dir, "ok"), renderRecipients(backupConfig()));
            assert.equal(run(age, ["-R", path.join(dir, "ok"), "-o", "/dev/null"], { input: "x" }).code, 0);
            const bad = TEST_BACKUP.recipients[0].slice(0, -1) + (TEST_BACKUP.recipients[0].endsWith("3") ? "4" : "3");
            assert.ok(ageRecipientError(bad));
            fs.writeFileSync(path.join(dir, "bad"), bad + "\n");
            const r = run(age, ["-R", path.join(dir, "bad"), "-o", "/dev/null"], { input: "x" });
            assert.notEqual(r.code, 0);
            assert.match(r.stderr, /malformed recipient|unknown recipient type|invalid/i);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("retention keeps the newest of each of the last 7 days, 5 ISO weeks and 12 months (bash and date)", () => {
        const dir = tmpDir();
        try {
            const prog = path.join(dir, "citadel-backup");
            fs.writeFileSync(prog, renderBackupProgram(backupConfig()), { mode: 0o755 });
            // Two runs a day for 400 days back from 2026-12-02, plus a junk line.
            const ids: string[] = ["not-an-id"];
            for (let d = 0; d < 400; d++) {
                const day = new Date(Date.UTC(2026, 11, 2) - d * 86_400_000).toISOString().slice(0, 10).replace(/-/g, "");
                ids.push(`${day}T001500Z`, `${day}T131500Z`);
            }
            const r = run("bash", [prog, "--keep-ids"], { input: ids.join("\n") + "\n" });
            assert.equal(r.code, 0, r.stderr);
            const kept = r.stdout.trim().split("\n");
            // 7 days (2 Dec back to 26 Nov), + the Sundays of 3 older ISO weeks (the 2 newest weeks are
            // already kept by days), + the month ends from October back to January (Dec and Nov already kept).
            assert.deepEqual(kept.slice(0, 7), ["20261202T131500Z", "20261201T131500Z", "20261130T131500Z", "20261129T131500Z", "20261128T131500Z", "20261127T131500Z", "20261126T131500Z"]);
            assert.deepEqual(kept.slice(7, 10), ["20261122T131500Z", "20261115T131500Z", "20261108T131500Z"]);
            assert.ok(kept.includes("20261031T131500Z") && kept.includes("20260131T131500Z"), kept.join(" "));
            assert.ok(!kept.includes("20251231T131500Z"), "the 13th month back is not kept");
            assert.equal(new Set(kept).size, kept.length);
            assert.equal(kept.length, 7 + 3 + 10, kept.join(" "));
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});

// ---------------------------------------------------------------------------------------------
// A whole run against the real SFTP target of the lab
// ---------------------------------------------------------------------------------------------

// The SFTP target is a container: the file starts the Docker engine as the other lab files do (the
// files before it in `npm test` may have stopped it: CI failed here when images.test.ts had), and
// stops it at the end when it started it and nothing else runs on it.
let skip: string | false = false;
if (!which("dockerd") || !which("docker")) skip = "Docker is not installed (bash lab/prereqs.sh)";
else if (!requireToolQuiet("rclone") || !requireToolQuiet("age")) skip = "age or rclone not installed (bash lab/prereqs.sh)";
if (IN_CI && skip) throw new Error(skip);

function requireToolQuiet(bin: string): boolean {
    return run("bash", ["-c", `command -v ${bin}`]).code === 0;
}

describe("backup program: a run against the lab's SFTP target (OpenSSH, chrooted, key only)", { skip, timeout: 10 * 60_000 }, () => {
    const vps = `citadel-render-test-${process.pid}`;
    const dir = tmpDir();
    let engine: { started: boolean } = { started: false };
    before(async () => {
        engine = await ensureDockerd();
    });
    after(async () => {
        const { stopBackupTarget } = await import("../../lab/backup-target");
        stopBackupTarget(vps);
        fs.rmSync(dir, { recursive: true, force: true });
        if (engine.started) await stopDockerd({ onlyIfIdle: true });
    });

    // What the backup run left for the restore below: the target, the config, the backup and Redis' data.
    let target: import("../../lab/backup-target").BackupTarget;
    let c: ReturnType<typeof parseConfigOrThrow>;
    let backupId = "";
    const conf = path.join(dir, "conf");
    const data = path.join(dir, "redis-data");

    it("streams Redis' data through age to the target, prunes by retention, writes the status; only the recipient's key decrypts", async () => {
        const { startBackupTarget, SFTP_CHROOT } = await import("../../lab/backup-target");
        target = await startBackupTarget(vps, path.join(dir, "keys"));
        c = parseConfigOrThrow(prodWith({ backup: { ...TEST_BACKUP, recipients: [target.ageRecipient], target: { url: target.url, hostKey: target.hostKey }, retention: { daily: 2, weekly: 0, monthly: 12 } } }));
        // Redis only: Postgres is the e2e's (test/e2e/backup.test.ts), against the stack's real container.
        c.postgres.enabled = false;
        const bin = path.join(dir, "bin");
        for (const d of [conf, data, bin]) fs.mkdirSync(d, { recursive: true });
        fs.writeFileSync(path.join(data, "appendonly.aof.1.incr.aof"), "*3\r\n$3\r\nSET\r\n$6\r\nsecret\r\n$14\r\nplaintext-mark\r\n");
        fs.writeFileSync(path.join(conf, "recipients"), renderRecipients(c));
        fs.writeFileSync(path.join(conf, "known_hosts"), renderKnownHosts(c));
        fs.writeFileSync(path.join(conf, "rclone.conf"), renderRcloneConf(c, { keyFile: target.keyPath, knownHosts: path.join(conf, "known_hosts") }));
        const status = path.join(dir, "state", "status.json");
        const metrics = path.join(dir, "metrics", "citadel-backup.prom");
        fs.mkdirSync(path.dirname(metrics));
        fs.writeFileSync(path.join(dir, "citadel-backup"), renderBackupProgram(c, { confDir: conf, stateDir: path.dirname(status), statusFile: status, metricsFile: metrics }), { mode: 0o755 });
        /** The textfile the node exporter reads (the backup alerts), as metric → value. */
        const metricValues = (): Record<string, number> => {
            assert.equal(fs.statSync(metrics).mode & 0o777, 0o644, "world-readable: the exporter runs as nobody");
            return Object.fromEntries(fs.readFileSync(metrics, "utf8").split("\n").filter((l) => l && !l.startsWith("#")).map((l) => [l.split(" ")[0], Number(l.split(" ")[1])]));
        };
        // `docker exec redis tar -C /data -cf - .` → tar of the test's data directory.
        fs.writeFileSync(path.join(bin, "docker"), `#!/bin/sh\n[ "$1 $2 $3" = "exec redis tar" ] || exit 99\nexec tar -C ${JSON.stringify(data)} -cf - .\n`, { mode: 0o755 });
        const rc = (args: string[]) => run("rclone", ["--config", path.join(conf, "rclone.conf"), ...args]);
        // Older backups on the target: two complete ones from last year's months, one incomplete.
        for (const old of ["20251103T001500Z", "20251203T001500Z", "20261201T001500Z"]) assert.equal(rc(["rcat", `target:backups/${old}/manifest.json`]).code, 0);
        assert.equal(rc(["rcat", "target:backups/20261130T001500Z/redis-data.tar.age"]).code, 0, "an incomplete run's leftovers");

        const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
        const r = run("bash", [path.join(dir, "citadel-backup")], { env });
        assert.equal(r.code, 0, r.stdout + r.stderr);
        const s = JSON.parse(fs.readFileSync(status, "utf8"));
        assert.equal(s.success, true);
        assert.equal(s.lastSuccess.id, s.id);
        assert.equal(s.objects.length, 1);
        assert.equal(s.objects[0].name, "redis-data.tar.age");
        backupId = s.id;
        assert.deepEqual(metricValues(), { [METRIC.backupLastRunOk]: 1, [METRIC.backupLastSuccess]: Math.floor(Date.parse(s.lastSuccess.time) / 1000) });

        // On the target: the new backup, the one of yesterday (daily 2) and the month tiers; the 13-month-old and the incomplete one pruned.
        const listing = run("docker", ["exec", target.container, "find", `${SFTP_CHROOT}/backups`, "-type", "f"]).stdout;
        assert.match(listing, new RegExp(`${s.id}/redis-data\\.tar\\.age`));
        assert.match(listing, new RegExp(`${s.id}/manifest\\.json`));
        assert.match(listing, /20261201T001500Z\/manifest\.json/);
        assert.doesNotMatch(listing, /20261130T001500Z/);
        const bytes = spawnSync("docker", ["exec", target.container, "cat", `${SFTP_CHROOT}/backups/${s.id}/redis-data.tar.age`]).stdout;
        assert.equal(bytes.length, s.objects[0].size);
        assert.equal((await import("node:crypto")).createHash("sha256").update(bytes).digest("hex"), s.objects[0].sha256);
        assert.ok(!bytes.includes(Buffer.from("plaintext-mark")), "no plaintext on the target");
        fs.writeFileSync(path.join(dir, "c.age"), bytes);
        // The recipient's key decrypts it; another key does not.
        const ok = run("bash", ["-c", `age -d -i ${JSON.stringify(target.ageKeyPath)} ${JSON.stringify(path.join(dir, "c.age"))} | tar -xO`]);
        assert.match(ok.stdout, /plaintext-mark/);
        run("age-keygen", ["-o", path.join(dir, "wrong.key")]);
        const wrong = run("age", ["-d", "-i", path.join(dir, "wrong.key"), path.join(dir, "c.age")]);
        assert.notEqual(wrong.code, 0);
        assert.match(wrong.stderr, /no identity matched any of the recipients/);

        // A failing run leaves a failed status that keeps the last good backup.
        fs.writeFileSync(path.join(bin, "docker"), "#!/bin/sh\nexit 1\n", { mode: 0o755 });
        const bad = run("bash", [path.join(dir, "citadel-backup")], { env });
        assert.notEqual(bad.code, 0);
        const s2 = JSON.parse(fs.readFileSync(status, "utf8"));
        assert.equal(s2.success, false);
        assert.match(s2.error, /archiving the data of redis failed/);
        assert.equal(s2.lastSuccess.id, s.id);
        // The alerts see the failure, and the last good backup's time is kept.
        assert.deepEqual(metricValues(), { [METRIC.backupLastRunOk]: 0, [METRIC.backupLastSuccess]: Math.floor(Date.parse(s.lastSuccess.time) / 1000) });
    });
    it("citadel restore checks every part's sha256 first: one byte changed on the target → refused, nothing stopped or replaced; undone → restored", async (t) => {
        if (!backupId) return t.skip("the backup run above failed");
        const { restore, RestoreError } = await import("../../restore/restore");
        const { SFTP_CHROOT } = await import("../../lab/backup-target");
        // The host is this machine: `bash -c` instead of ssh, `sudo -n` dropped, rclone given the test's
        // config, and `docker` recording what restore asks of it (Redis' volume is the test's directory).
        const bin = path.join(dir, "restore-bin");
        const calls = path.join(dir, "docker-calls");
        fs.mkdirSync(bin, { recursive: true });
        fs.writeFileSync(path.join(bin, "sudo"), `#!/bin/bash\n[ "$1" = -n ] && shift\n[ "$1" = rclone ] && { shift; exec rclone "$@" --config ${JSON.stringify(path.join(conf, "rclone.conf"))}; }\nexec "$@"\n`, { mode: 0o755 });
        fs.writeFileSync(
            path.join(bin, "docker"),
            `#!/bin/bash\necho "$1" >>${JSON.stringify(calls)}\ncase "$1" in\n  stop|start) exit 0 ;;\n  run) find ${JSON.stringify(data)} -mindepth 1 -delete && exec tar -x -C ${JSON.stringify(data)} ;;\n  *) exit 99 ;;\nesac\n`,
            { mode: 0o755 },
        );
        const host = { host: "127.0.0.1", port: 22, user: "test", keyPath: "/dev/null", hostKey: "unused", shell: ["env", `PATH=${bin}:${process.env.PATH}`, "bash", "-c"] };
        const opts = { identity: target.ageKeyPath, backup: backupId, log: () => {} };
        // Redis' data changed since the backup: a refused restore must leave it as it is.
        fs.writeFileSync(path.join(data, "after-the-backup"), "written later");
        const snapshot = () => run("bash", ["-c", `cd ${JSON.stringify(data)} && find . -type f | sort | xargs sha256sum`]).stdout;
        const before = snapshot();

        const onTarget = (name: string) => `${SFTP_CHROOT}/backups/${backupId}/${name}`;
        const put = (name: string, bytes: Buffer | string) => assert.equal(spawnSync("docker", ["exec", "-i", target.container, "sh", "-c", `cat > ${onTarget(name)}`], { input: bytes }).status, 0);
        // A second, smaller part (as the dump of an empty database is): the key check decrypts the
        // smallest part, so without the sums the damaged one would surface only while Redis' data was replaced.
        const extra = spawnSync("age", ["-r", target.ageRecipient], { input: "a smaller part" }).stdout;
        const manifest = JSON.parse(spawnSync("docker", ["exec", target.container, "cat", onTarget("manifest.json")], { encoding: "utf8" }).stdout);
        manifest.objects.push({ name: "extra.age", size: extra.length, sha256: createHash("sha256").update(extra).digest("hex") });
        put("extra.age", extra);
        put("manifest.json", JSON.stringify(manifest));

        const original = spawnSync("docker", ["exec", target.container, "cat", onTarget("redis-data.tar.age")]).stdout;
        const damaged = Buffer.from(original);
        damaged[Math.floor(damaged.length / 2)] ^= 0x01;
        put("redis-data.tar.age", damaged);
        let refused: unknown;
        try {
            await restore(c, host, opts);
        } catch (e) {
            refused = e;
        }
        assert.ok(refused instanceof RestoreError, String(refused));
        assert.match((refused as Error).message, new RegExp(`backup ${backupId} on the target does not match its manifest: redis-data\\.tar\\.age \\(sha256 [0-9a-f]{64}, the manifest says [0-9a-f]{64}\\).*Nothing was changed\\.$`));
        assert.ok(!fs.existsSync(calls), `docker was called: ${fs.existsSync(calls) ? fs.readFileSync(calls, "utf8") : ""}`);
        assert.equal(snapshot(), before, "Redis' data untouched");

        put("redis-data.tar.age", original);
        const r = await restore(c, host, opts);
        assert.deepEqual(r.restored, ["redis"]);
        assert.match(fs.readFileSync(calls, "utf8"), /^stop\n(stop\n)?run\nstart\n(start\n)?$/);
        assert.ok(!fs.existsSync(path.join(data, "after-the-backup")), "the data is the backup's again");
        assert.match(fs.readFileSync(path.join(data, "appendonly.aof.1.incr.aof"), "utf8"), /plaintext-mark/);
    });
});
