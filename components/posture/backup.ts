// The backup slice of the posture: citadel:backup as plain data (no credential values), and the
// secret files that carry the target's credentials to the root-owned backup service.
import { parseTargetUrl, retentionDays, TARGET_CREDENTIALS, type StackConfig } from "../config";
import { secretStepName } from "./containers";
import {
    BACKUP_CONSUMER,
    BACKUP_MAX_AGE_HOURS,
    BACKUP_PROGRAM,
    BACKUP_SERVICE,
    BACKUP_STATUS_PATH,
    BACKUP_TIMER,
    POSTGRES_CONTAINER,
    REDIS_CONTAINER,
    ROOT_UID,
    SECRET_FILE_MODE,
    secretFilePath,
} from "./facts";
import type { BackupPosture, SecretFilePosture } from "./types";

/**
 * What protects retained backups from the server's own credentials. Citadel prunes with the server's
 * credentials (so they can delete); append-only storage or snapshots must come from the target.
 */
export const SFTP_IMMUTABILITY =
    "none from the server's side: its SFTP key can delete what it uploaded (it prunes with it). Protect retained backups on the target: a Hetzner Storage Box's automatic snapshots (not reachable with the sub-account's key), or a server-side snapshot/append-only copy. The lab's SFTP target has none.";

export function backupPosture(c: StackConfig): BackupPosture {
    const b = c.backup;
    const url = b.target ? parseTargetUrl(b.target.url) : undefined;
    return {
        enabled: b.enabled,
        schedule: b.schedule,
        randomizedDelay: b.randomizedDelay,
        recipients: [...b.recipients],
        sources: b.enabled
            ? [
                  ...(c.postgres.enabled ? [`${POSTGRES_CONTAINER}: every database, pg_dump -Fc over the container's socket`] : []),
                  ...(c.redis.enabled ? [`${REDIS_CONTAINER}: its data directory (append-only files), tar`] : []),
              ]
            : [],
        ...(b.enabled && b.target && url
            ? { target: { kind: url.kind, url: b.target.url, host: url.host, port: url.port, user: url.user, path: url.path, hostKey: b.target.hostKey ?? "", credentials: [...TARGET_CREDENTIALS[url.kind]] } }
            : {}),
        retention: { ...b.retention, days: retentionDays(b.retention) },
        service: BACKUP_SERVICE,
        timer: BACKUP_TIMER,
        program: BACKUP_PROGRAM,
        statusFile: BACKUP_STATUS_PATH,
        maxAgeHours: BACKUP_MAX_AGE_HOURS,
        immutability: SFTP_IMMUTABILITY,
    };
}

/** One 0400 root-owned file per credential of the target (the SFTP private key). */
export function backupSecretFiles(c: StackConfig): SecretFilePosture[] {
    const b = c.backup;
    const url = b.enabled && b.target ? parseTargetUrl(b.target.url) : undefined;
    if (!url) return [];
    return TARGET_CREDENTIALS[url.kind].map((name) => ({
        secret: `backup.target.${name}`,
        content: "value" as const,
        consumer: BACKUP_CONSUMER,
        name,
        path: secretFilePath(BACKUP_CONSUMER, name),
        ownerUid: ROOT_UID,
        mode: SECRET_FILE_MODE,
        readers: [`host: ${BACKUP_SERVICE}`],
        step: secretStepName(BACKUP_CONSUMER, name),
    }));
}
