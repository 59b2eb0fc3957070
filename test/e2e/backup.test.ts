// The backup and restore drill on the local VPS (issue 11): rows in Postgres and a key in Redis →
// the backup service runs → on the lab's SFTP target the backup is unreadable without the operator's
// key (a wrong key fails, no plaintext COPY/INSERT or row text anywhere) → the audit's in-backup
// check fails on a stopped timer and on a failed run, passes again once undone → the VPS is thrown
// away entirely → `pulumi up` builds a new one → `citadel restore` with a wrong key changes nothing,
// with the operator's key brings the rows and the key back; the restore time is printed.
// One converge (plus the rebuild); the VPS and the target are removed at the end. Under `npm test` it
// shares the VPS of the files before it (test/e2e/shared-vps.ts) and its rebuild is what local, after
// it, converges onto.
import "./shared-vps"; // first: it may name the shared VPS before anything reads CITADEL_VPS_NAME
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { INSIDE_CHECKS } from "../../audit/inside";
import { sshInside } from "../../audit/target";
import type { AuditTarget } from "../../audit/types";
import { shellQuote } from "../../components/render/template";
import { HARNESS_KEY } from "../../lab/vps/common";
import { IN_CI, run, RunResult, tmpDir, which, pulumiMissing } from "../tools";

// Our own VPS and ports (set before lab/local is imported: it reads them when it loads).
process.env.CITADEL_VPS_NAME ??= "citadel-backup";
process.env.CITADEL_SSH_PORT ??= "2622";
process.env.CITADEL_HTTP_PORT ??= "8480";
process.env.CITADEL_HTTPS_PORT ??= "8843";

const MARK = `citadel-drill-${process.pid}-${Date.now()}`;

let skip: string | false = pulumiMissing();
if (skip) {
    // no engine: nothing else matters
} else if (!which("docker") || !which("dockerd")) skip = "docker not installed (bash lab/prereqs.sh)";
else if (!which("age") || !which("age-keygen")) skip = "age not installed (bash lab/prereqs.sh)";
if (IN_CI && skip) throw new Error(skip);

describe("backup and restore drill (local VPS, lab SFTP target)", { skip, timeout: 40 * 60_000 }, () => {
    let session: import("../e2e/session").LabSession;
    let local: typeof import("../../lab/local");
    let sshPort = 0;
    let known = "";
    const out = (r: RunResult) => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
    /** Root on the VPS over real SSH (pinned host key), `sudo -n`. */
    const root = (cmd: string, timeout = 300_000): RunResult =>
        run("ssh", ["-i", HARNESS_KEY, "-p", String(sshPort), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${known}`, "-o", "ConnectTimeout=20", `deploy@127.0.0.1`, `sudo -n bash -c ${shellQuote(cmd)}`], { timeout });
    const rootOk = (cmd: string, timeout?: number): string => {
        const r = root(cmd, timeout);
        assert.equal(r.code, 0, `${cmd}\n${out(r)}`);
        return r.stdout;
    };
    /** SQL on the app database as the superuser over the container's socket (pg_hba: local, peer). */
    const sql = (text: string): RunResult => {
        const r = run("ssh", ["-i", HARNESS_KEY, "-p", String(sshPort), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${known}`, `deploy@127.0.0.1`, "sudo -n docker exec -i -u postgres postgres psql -XAt -v ON_ERROR_STOP=1 -d demo"], { input: text, timeout: 60_000 });
        return r;
    };
    // AUTH as the first line on redis-cli's stdin (printf is bash's own: the password is in no argv or env).
    const redis = (args: string) => root(`{ printf 'AUTH demo %s\\n' "$(cat /etc/citadel/secrets/demo/redisPassword)"; echo ${shellQuote(args)}; } | docker exec -i redis redis-cli -h 127.0.0.1 --no-auth-warning`);
    const inBackup = async () => {
        const target = { config: session.config, inside: sshInside({ host: "127.0.0.1", port: sshPort, user: "deploy", keyPath: HARNESS_KEY, hostKey: session.info.hostKey }) } as unknown as AuditTarget;
        return INSIDE_CHECKS.find((c) => c.id === "in-backup")!.run(target);
    };
    const connect = () => {
        sshPort = session.info.sshPort;
        known = path.join(tmpDir("citadel-backup-e2e-"), "known_hosts");
        fs.writeFileSync(known, `[127.0.0.1]:${sshPort} ${session.info.hostKey}\n`);
    };

    before(async () => {
        const { convergeLabVps } = await import("./session");
        ({ siteClient } = await import("./session"));
        local = await import("../../lab/local");
        const t0 = Date.now();
        session = await convergeLabVps({ quiet: true });
        process.stderr.write(`[backup] VPS converged in ${Math.round((Date.now() - t0) / 1000)} s\n`);
        connect();
    });
    after(async () => {
        if (session) await session.release(process.env.CITADEL_BACKUP_KEEP === "1");
    });

    let backupId = "";
    let site: import("./session").SiteClient;
    let siteClient: typeof import("./session").siteClient;

    it("the first converge made a first backup (the target held none) and the timer runs on the declared calendar", async () => {
        const s = JSON.parse(rootOk("cat /var/lib/citadel/backup/status.json"));
        assert.equal(s.success, true, JSON.stringify(s));
        assert.match(rootOk("systemctl is-enabled citadel-backup.timer; systemctl is-active citadel-backup.timer"), /^enabled\nactive\n$/);
        const v = await inBackup();
        assert.equal(v.result, "pass", JSON.stringify(v));
    });

    it("rows in Postgres and a key in Redis → systemctl start citadel-backup → a complete, encrypted backup on the target", async () => {
        const w = sql(`set role demo; create table drill (id int primary key, note text); insert into drill select g, '${MARK}-' || g from generate_series(1, 500) g; select count(*) from drill;`);
        assert.equal(w.code, 0, out(w));
        assert.match(w.stdout, /^500$/m);
        assert.match(redis(`SET demo:drill:key ${MARK}`).stdout, /OK/);
        // And through the app itself (gateway → demo app → Redis as its ACL user), as a user would.
        site = siteClient(session);
        await site.ok("PUT", "/kv/drill-app", `${MARK}-app`);
        const t0 = Date.now();
        rootOk("systemctl start citadel-backup.service");
        const s = JSON.parse(rootOk("cat /var/lib/citadel/backup/status.json"));
        assert.equal(s.success, true, JSON.stringify(s));
        backupId = s.id;
        process.stderr.write(`[backup] backup ${s.id}: ${s.size} bytes in ${s.objects.length} objects, ${Math.round((Date.now() - t0) / 100) / 10} s\n`);
        assert.deepEqual(s.objects.map((o: { name: string }) => o.name).sort(), ["postgres-demo.dump.age", "postgres-notes.dump.age", "postgres-postgres.dump.age", "redis-data.tar.age"]);
    });

    it("on the target: only ciphertext (no COPY/INSERT or row text), a wrong key fails, the operator's key decrypts", () => {
        const t = local.labBackupTarget();
        assert.ok(t);
        const files = run("docker", ["exec", t.container, "find", "/srv/sftp/backups", "-type", "f", "-name", "*.age"]).stdout.trim().split("\n");
        assert.ok(files.some((f) => f.includes(`${backupId}/postgres-demo.dump.age`)), files.join("\n"));
        const grep = run("docker", ["exec", t.container, "grep", "-rlaF", "-e", MARK, "-e", "COPY public.", "-e", "INSERT INTO", "-e", "drill:key", "/srv/sftp/backups"]);
        assert.equal(grep.stdout.trim(), "", `plaintext on the target:\n${grep.stdout}`);
        const dir = tmpDir("citadel-backup-keys-");
        run("age-keygen", ["-o", path.join(dir, "wrong.key")]);
        const obj = `/srv/sftp/backups/${backupId}/postgres-demo.dump.age`;
        const wrong = run("bash", ["-c", `set -o pipefail; docker exec ${t.container} cat ${obj} | age -d -i ${path.join(dir, "wrong.key")} >/dev/null`]);
        assert.notEqual(wrong.code, 0);
        assert.match(wrong.stderr, /no identity matched any of the recipients/);
        const right = run("bash", ["-c", `set -o pipefail; docker exec ${t.container} cat ${obj} | age -d -i ${t.ageKeyPath} | head -c 5`]);
        assert.equal(right.stdout, "PGDMP", "the operator's key opens a pg_dump custom-format archive");
    });

    it("in-backup fails on a stopped timer and on a failed run, and passes once each is undone", async () => {
        rootOk("systemctl stop citadel-backup.timer");
        let v = await inBackup();
        assert.equal(v.result, "fail");
        assert.deepEqual(v.drift?.map((d) => `${d.what}: ${d.actual}`), ["citadel-backup.timer active: inactive"]);
        rootOk("systemctl start citadel-backup.timer");
        assert.equal((await inBackup()).result, "pass");
        // A run that cannot reach the target (its rclone config moved away) fails, and says what failed.
        rootOk("mv /etc/citadel/backup/rclone.conf /etc/citadel/backup/rclone.conf.away");
        assert.notEqual(root("systemctl start citadel-backup.service").code, 0);
        rootOk("mv /etc/citadel/backup/rclone.conf.away /etc/citadel/backup/rclone.conf");
        v = await inBackup();
        assert.equal(v.result, "fail");
        assert.match(v.drift?.[0].actual ?? "", /^failed: dumping database demo failed/);
        rootOk("systemctl start citadel-backup.service");
        assert.equal((await inBackup()).result, "pass");
        backupId = JSON.parse(rootOk("cat /var/lib/citadel/backup/status.json")).id;
    });

    it("the VPS is thrown away, `pulumi up` builds a new one; citadel restore: a wrong key changes nothing, the operator's key brings the data back", async () => {
        const { stopVps } = await import("../../lab/vps/vps");
        const { runRestoreCli } = await import("../../restore/cli");
        const { labRestoreHooks } = await import("../../lab/restore");
        await stopVps(local.LOCAL_VPS);
        const t0 = Date.now();
        const again = await local.up();
        process.stderr.write(`[backup] rebuilt VPS converged in ${Math.round((Date.now() - t0) / 1000)} s\n`);
        session.info = again.info;
        connect();
        assert.notEqual(sql("select count(*) from drill;").code, 0, "the new server starts empty");
        assert.match(rootOk("cat /var/lib/citadel/backup/status.json 2>/dev/null || echo none"), /^none$/m, "no backup of the empty server was made over the old ones");

        const t = local.labBackupTarget();
        assert.ok(t);
        const hooks = labRestoreHooks();
        const dir = tmpDir("citadel-restore-");
        run("age-keygen", ["-o", path.join(dir, "wrong.key")]);
        const errs: string[] = [];
        const write = process.stderr.write.bind(process.stderr);
        (process.stderr as unknown as { write: (s: string) => boolean }).write = (s: string) => (errs.push(String(s)), true);
        let code: number;
        try {
            code = await runRestoreCli(["--stack", "local", "--identity", path.join(dir, "wrong.key"), "--backup", backupId], hooks);
        } finally {
            (process.stderr as unknown as { write: typeof write }).write = write;
        }
        assert.equal(code, 1, errs.join(""));
        assert.match(errs.join(""), /cannot decrypt backup \S+ \(no identity in it matches the backup's recipients\).*Nothing was changed\./s);
        assert.match(rootOk("docker inspect --format '{{.State.Running}}' app-demo"), /^true$/m, "the app was not stopped");

        const t1 = Date.now();
        code = await runRestoreCli(["--stack", "local", "--identity", t.ageKeyPath, "--backup", backupId], hooks);
        const restoreSeconds = Math.round((Date.now() - t1) / 100) / 10;
        assert.equal(code, 0);
        process.stderr.write(`[backup] RESTORE TIME (recovery, citadel restore end to end): ${restoreSeconds} s\n`);
        assert.match(sql("select count(*), min(note) from drill;").stdout, new RegExp(`^500\\|${MARK}-1$`, "m"));
        assert.equal(redis("GET demo:drill:key").stdout.trim().split("\n").pop(), MARK);
        // The app serves what it stored before the server was thrown away.
        site = siteClient(session);
        assert.equal(await site.ok("GET", "/kv/drill-app"), `${MARK}-app`);
        assert.match(rootOk("docker inspect --format '{{.State.Running}}' app-demo"), /^true$/m, "the app runs again");

        // Restoring again over the now non-empty database is refused without --force.
        code = await runRestoreCli(["--stack", "local", "--identity", t.ageKeyPath, "--backup", backupId], hooks);
        assert.equal(code, 1);
    });
});
