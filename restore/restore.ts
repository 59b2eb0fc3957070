// `citadel restore`: the restore drill, run from the operator's machine. The server fetches the
// ciphertext from the target (it holds the target's credentials, not a key that decrypts), streams it
// to the operator over SSH; the operator's `age -d -i KEY` decrypts it here; the plaintext streams back
// over SSH into `docker exec -i postgres pg_restore` (or Redis' data volume). The private key never
// leaves this machine, and no plaintext is written to a disk on either side.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { StackConfig } from "../components/config";
import { appContainerName, BACKUP_MANIFEST, BACKUP_RCLONE_CONF, DATA_UID, POSTGRES_CONTAINER, REDIS_CONTAINER, REDIS_DATA_VOLUME, SSH_PORT } from "../components/posture";
import { backupRemote, REDIS_DATA_DIR } from "../components/render/backup";
import { shellQuote } from "../components/render/template";

export interface RestoreHost {
    host: string;
    port: number;
    user: string;
    keyPath: string;
    hostKey: string;
    /** The argv that runs one shell command on the host (default: ssh, pinned host key, the admin's key); tests run it here. */
    shell?: string[];
}

export interface RestoreOptions {
    /** The backup id (default: the newest complete one). */
    backup?: string;
    /** The operator's age identity file (private key). */
    identity: string;
    /** Restore over a database that holds tables. */
    force?: boolean;
    log?: (line: string) => void;
}

export interface RestoreResult {
    backup: string;
    restored: string[];
    seconds: number;
}

export class RestoreError extends Error {}

interface Manifest {
    id: string;
    objects: { name: string; size: number; sha256: string }[];
    recipients: string[];
}

/** The ssh command (pinned host key, the admin's key, batch mode) as argv. */
function sshArgv(h: RestoreHost, kh: string): string[] {
    return ["ssh", "-i", h.keyPath, "-p", String(h.port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${kh}`, "-o", "ConnectTimeout=15", `${h.user}@${h.host}`];
}

export async function restore(c: StackConfig, h: RestoreHost, o: RestoreOptions): Promise<RestoreResult> {
    const log = o.log ?? ((l: string) => process.stderr.write(`citadel: restore: ${l}\n`));
    if (!c.backup.enabled || !c.backup.target) throw new RestoreError(`citadel:backup is not enabled on this stack: there is nothing to restore from`);
    if (!fs.existsSync(o.identity)) throw new RestoreError(`--identity ${o.identity}: no such file (the age identity whose public key is in citadel:backup.recipients)`);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "citadel-restore-"));
    const kh = path.join(tmp, "known_hosts");
    fs.writeFileSync(kh, `${h.port === SSH_PORT ? h.host : `[${h.host}]:${h.port}`} ${h.hostKey}\n`);
    const ssh = h.shell ?? sshArgv(h, kh);
    const sshLine = ssh.map(shellQuote).join(" ");
    const remote = backupRemote(c);
    const rclone = `sudo -n rclone --config ${BACKUP_RCLONE_CONF} --contimeout 30s --timeout 10m`;
    const onHost = (cmd: string, input?: string) => {
        const r = spawnSync(ssh[0], [...ssh.slice(1), cmd], { encoding: "utf8", input: input ?? "", timeout: 600_000, maxBuffer: 64 * 1024 * 1024 });
        return { code: r.status, stdout: r.stdout ?? "", stderr: (r.stderr ?? "") + (r.error ? String(r.error) : "") };
    };
    const must = (cmd: string, what: string) => {
        const r = onHost(cmd);
        if (r.code !== 0) throw new RestoreError(`${what} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-400)}`);
        return r.stdout;
    };
    /** ciphertext of OBJECT from the target | age -d here | COMMAND on the host; bash's pipefail decides. */
    const stream = (object: string, command: string) =>
        spawnSync(
            "bash",
            ["-c", `set -o pipefail; ${sshLine} ${shellQuote(`${rclone} cat ${shellQuote(`${remote}/${object}`)}`)} | age -d -i "$1" | ${sshLine} ${shellQuote(command)}`, "restore", o.identity],
            { encoding: "utf8", timeout: 6 * 3600_000, maxBuffer: 64 * 1024 * 1024 },
        );

    try {
        // Which backup.
        const ids = must(`${rclone} lsf -R --files-only --include ${shellQuote(`/*/${BACKUP_MANIFEST}`)} ${shellQuote(remote)}`, "listing the backups on the target")
            .split("\n")
            .map((l) => l.replace(`/${BACKUP_MANIFEST}`, "").trim())
            .filter((l) => /^[0-9]{8}T[0-9]{6}Z$/.test(l))
            .sort();
        if (!ids.length) throw new RestoreError(`the target ${c.backup.target.url} holds no complete backup`);
        const id = o.backup ?? ids[ids.length - 1];
        if (!ids.includes(id)) throw new RestoreError(`--backup ${id}: not on the target (complete backups: ${ids.join(", ")})`);
        const manifest = JSON.parse(must(`${rclone} cat ${shellQuote(`${remote}/${id}/${BACKUP_MANIFEST}`)}`, "reading the manifest")) as Manifest;
        log(`backup ${id}: ${manifest.objects.map((x) => `${x.name} (${x.size} bytes)`).join(", ")}`);

        // Every part checked against the manifest before anything is stopped or replaced: the ciphertext
        // as stored, streamed from the target through sha256sum on the host (nothing written to a disk,
        // nothing decrypted); only the sums come back. A damaged or altered part stops the restore here.
        const sums = onHost(`bash -c ${shellQuote(["set -eo pipefail", ...manifest.objects.map((x) => `${rclone} cat ${shellQuote(`${remote}/${id}/${x.name}`)} | sha256sum`)].join("; "))}`);
        if (sums.code !== 0) throw new RestoreError(`reading backup ${id} from the target to verify it failed (exit ${sums.code}): ${(sums.stderr || sums.stdout).trim().slice(-400)}. Nothing was changed.`);
        const got = sums.stdout.trim().split("\n").map((l) => l.split(/\s+/)[0]);
        const bad = manifest.objects.filter((x, i) => got[i] !== x.sha256);
        if (bad.length)
            throw new RestoreError(
                `backup ${id} on the target does not match its manifest: ${bad.map((x) => `${x.name} (sha256 ${got[manifest.objects.indexOf(x)] ?? "none"}, the manifest says ${x.sha256})`).join(", ")}; it was damaged or altered after the backup. Nothing was changed.`,
            );
        log(`backup ${id}: ${manifest.objects.length} parts match the manifest's sha256`);

        // The key next: a wrong identity stops here, before anything is stopped or changed.
        const probe = manifest.objects.slice().sort((a, b) => a.size - b.size)[0];
        const check = stream(`${id}/${probe.name}`, "cat >/dev/null");
        if (check.status !== 0) {
            const why = /no identity matched/.test(check.stderr) ? "no identity in it matches the backup's recipients" : check.stderr.trim().slice(-300);
            throw new RestoreError(`the identity ${o.identity} cannot decrypt backup ${id} (${why}); its recipients: ${manifest.recipients.join(", ")}. Nothing was changed.`);
        }

        // Refuse to overwrite data unless told to.
        const dumps = manifest.objects.filter((x) => /^postgres-[A-Za-z0-9_-]+\.dump\.age$/.test(x.name));
        const psql = (db: string, sql: string) => onHost(`sudo -n docker exec -u postgres ${POSTGRES_CONTAINER} psql -XAt -d ${shellQuote(db)} -c ${shellQuote(sql)}`);
        const existing = dumps.length ? must(`sudo -n docker exec -u postgres ${POSTGRES_CONTAINER} psql -XAt -d postgres -c 'select datname from pg_database'`, "listing the server's databases").split("\n").map((l) => l.trim()) : [];
        for (const d of dumps) {
            const db = d.name.replace(/^postgres-/, "").replace(/\.dump\.age$/, "");
            if (!existing.includes(db)) continue;
            const n = psql(db, "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.relkind in ('r','p') and n.nspname not in ('pg_catalog','information_schema') and n.nspname not like 'pg_toast%'");
            if (Number(n.stdout.trim()) > 0 && !o.force) throw new RestoreError(`database ${db} on the server holds ${n.stdout.trim()} tables; restoring would replace them: pass --force to overwrite. Nothing was changed.`);
        }

        // Apps stopped around it: nothing writes while the data is replaced.
        const start = Date.now();
        const apps = c.apps.map((a) => appContainerName(a.name));
        if (apps.length) must(`sudo -n docker stop ${apps.join(" ")}`, "stopping the apps");
        const restored: string[] = [];
        try {
            for (const d of dumps) {
                const db = d.name.replace(/^postgres-/, "").replace(/\.dump\.age$/, "");
                // An existing database is restored in one transaction (all or nothing); a missing one is created.
                const cmd = existing.includes(db)
                    ? `sudo -n docker exec -i -u postgres ${POSTGRES_CONTAINER} pg_restore --clean --if-exists --single-transaction --exit-on-error -d ${shellQuote(db)}`
                    : `sudo -n docker exec -i -u postgres ${POSTGRES_CONTAINER} pg_restore --create --exit-on-error -d postgres`;
                const r = stream(`${id}/${d.name}`, cmd);
                if (r.status !== 0) throw new RestoreError(`restoring database ${db} failed (exit ${r.status}): ${r.stderr.trim().slice(-400)}`);
                restored.push(`postgres:${db}`);
                log(`database ${db} restored`);
            }
            const redis = manifest.objects.find((x) => x.name === "redis-data.tar.age");
            if (redis && c.redis.enabled) {
                must(`sudo -n docker stop ${REDIS_CONTAINER}`, "stopping redis");
                const cmd = `sudo -n docker run --rm -i --network none --user ${DATA_UID}:${DATA_UID} -v ${REDIS_DATA_VOLUME}:${REDIS_DATA_DIR} --entrypoint sh ${shellQuote(c.redis.image)} -c ${shellQuote(`find ${REDIS_DATA_DIR} -mindepth 1 -delete && tar -x -C ${REDIS_DATA_DIR}`)}`;
                const r = stream(`${id}/${redis.name}`, cmd);
                must(`sudo -n docker start ${REDIS_CONTAINER}`, "starting redis");
                if (r.status !== 0) throw new RestoreError(`restoring Redis failed (exit ${r.status}): ${r.stderr.trim().slice(-400)}`);
                restored.push("redis");
                log("redis data restored");
            }
        } finally {
            if (apps.length) must(`sudo -n docker start ${apps.join(" ")}`, "starting the apps");
        }
        const seconds = Math.round((Date.now() - start) / 100) / 10;
        log(`backup ${id} restored in ${seconds} s (apps stopped and started again): ${restored.join(", ")}`);
        return { backup: id, restored, seconds };
    } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
    }
}
