// The backup host step: the backup program, its systemd service and timer, the recipients and the
// rclone configuration of the target (templates/backup/). Pure: config in, script and files out.
import { parseTargetUrl, type StackConfig } from "../config";
import {
    BACKUP_CONF_DIR,
    BACKUP_KNOWN_HOSTS,
    BACKUP_MANIFEST,
    BACKUP_PROGRAM,
    BACKUP_RCLONE_CONF,
    BACKUP_REMOTE,
    BACKUP_SERVICE,
    BACKUP_SSH_KEY_PATH,
    BACKUP_STATE_DIR,
    BACKUP_STATUS_PATH,
    BACKUP_TIMER,
    POSTGRES_CONTAINER,
    REDIS_CONTAINER,
    SSH_PORT,
    BACKUP_METRICS_FILE,
    METRIC,
    stepPackages,
} from "../posture/facts";
import { renderTemplate, hostLib } from "./template";
import type { HostFile, HostScript } from "./types";

/** The Redis data directory inside its container (where the data volume is mounted). */
export const REDIS_DATA_DIR = "/data";

/** rclone's "remote:path" of the backups. */
export function backupRemote(c: StackConfig): string {
    const url = c.backup.target ? parseTargetUrl(c.backup.target.url) : undefined;
    if (!url) throw new Error("citadel:backup.target.url: not an sftp URL");
    return `${BACKUP_REMOTE}:${url.path}`;
}

/** The backup program run by the service (also run by tests against a real Postgres and SFTP server). */
export function renderBackupProgram(c: StackConfig, over: Partial<{ confDir: string; stateDir: string; statusFile: string; metricsFile: string }> = {}): string {
    return renderTemplate("backup/citadel-backup.sh.hbs", {
        service: BACKUP_SERVICE,
        confDir: over.confDir ?? BACKUP_CONF_DIR,
        stateDir: over.stateDir ?? BACKUP_STATE_DIR,
        statusFile: over.statusFile ?? BACKUP_STATUS_PATH,
        remote: backupRemote(c),
        targetUrl: c.backup.target?.url ?? "",
        manifest: BACKUP_MANIFEST,
        retention: c.backup.retention,
        postgres: c.postgres.enabled ? POSTGRES_CONTAINER : "",
        redis: c.redis.enabled ? REDIS_CONTAINER : "",
        redisDir: REDIS_DATA_DIR,
        // For the backup alerts (monitoring's node exporter reads it); none without monitoring.
        metricsFile: c.monitoring.enabled ? (over.metricsFile ?? BACKUP_METRICS_FILE) : "",
        metric: METRIC,
    });
}

/** rclone.conf of the target: the key is a file, the host key pinned; no secret in it. */
export function renderRcloneConf(c: StackConfig, over: Partial<{ keyFile: string; knownHosts: string }> = {}): string {
    const url = parseTargetUrl(c.backup.target?.url ?? "");
    if (!url) throw new Error("citadel:backup.target.url: not an sftp URL");
    return renderTemplate("backup/rclone.conf.hbs", {
        remote: BACKUP_REMOTE,
        host: url.host,
        port: url.port,
        user: url.user,
        keyFile: over.keyFile ?? BACKUP_SSH_KEY_PATH,
        knownHosts: over.knownHosts ?? BACKUP_KNOWN_HOSTS,
    });
}

/** known_hosts with the target's pinned host key (OpenSSH spells a non-22 port as [host]:port). */
export function renderKnownHosts(c: StackConfig): string {
    const url = parseTargetUrl(c.backup.target?.url ?? "");
    if (!url || !c.backup.target?.hostKey) throw new Error("citadel:backup.target.hostKey: required for an sftp target");
    const key = c.backup.target.hostKey.trim().split(/\s+/).slice(0, 2).join(" ");
    return `${url.port === SSH_PORT ? url.host : `[${url.host}]:${url.port}`} ${key}\n`;
}

export function renderRecipients(c: StackConfig): string {
    return c.backup.recipients.map((r) => r.trim()).join("\n") + "\n";
}

export function renderBackupService(c: StackConfig): string {
    return renderTemplate("backup/citadel-backup.service.hbs", { timer: BACKUP_TIMER, service: BACKUP_SERVICE, program: BACKUP_PROGRAM, targetUrl: c.backup.target?.url ?? "" });
}

export function renderBackupTimer(c: StackConfig): string {
    return renderTemplate("backup/citadel-backup.timer.hbs", { schedule: c.backup.schedule, randomizedDelay: c.backup.randomizedDelay, service: BACKUP_SERVICE });
}

/** The host step; undefined when backups are off. */
export function renderBackup(c: StackConfig): HostScript | undefined {
    if (!c.backup.enabled || !c.backup.target) return undefined;
    const files: HostFile[] = [
        { path: BACKUP_PROGRAM, content: renderBackupProgram(c), mode: "0755" },
        { path: `/etc/systemd/system/${BACKUP_SERVICE}`, content: renderBackupService(c), mode: "0644" },
        { path: `/etc/systemd/system/${BACKUP_TIMER}`, content: renderBackupTimer(c), mode: "0644" },
        { path: `${BACKUP_CONF_DIR}/recipients`, content: renderRecipients(c), mode: "0644" },
        { path: BACKUP_KNOWN_HOSTS, content: renderKnownHosts(c), mode: "0644" },
        { path: BACKUP_RCLONE_CONF, content: renderRcloneConf(c), mode: "0600" },
    ];
    const packages = stepPackages("backup");
    const script = renderTemplate("backup/backup-step.sh.hbs", {
        lib: hostLib(),
        packages,
        confDir: BACKUP_CONF_DIR,
        stateDir: BACKUP_STATE_DIR,
        statusFile: BACKUP_STATUS_PATH,
        program: BACKUP_PROGRAM,
        service: BACKUP_SERVICE,
        timer: BACKUP_TIMER,
        remote: backupRemote(c),
        targetUrl: c.backup.target.url,
        schedule: c.backup.schedule,
        randomizedDelay: c.backup.randomizedDelay,
        keyFile: BACKUP_SSH_KEY_PATH,
        manifest: BACKUP_MANIFEST,
        programText: files[0].content,
        serviceText: files[1].content,
        timerText: files[2].content,
        recipientsText: files[3].content,
        knownHostsText: files[4].content,
        rcloneText: files[5].content,
    });
    const r = c.backup.retention;
    return {
        name: "backup",
        description: `backups: ${c.backup.schedule} (+≤${c.backup.randomizedDelay}), pg_dump/Redis through age to ${c.backup.recipients.length} recipient(s), rclone to ${c.backup.target.url}; keep ${r.daily} daily, ${r.weekly} weekly, ${r.monthly} monthly`,
        script,
        files,
        packages,
    };
}
