// citadel:backup — encrypted off-site backups: what is backed up when, to whom it is readable
// (public age recipients only: the server can never decrypt its own backups), where it goes and how
// long it is kept. Pure: the schema piece, its value rules and the checks that span its keys.
import { bech32 } from "bech32";
import { z } from "zod";
import { bool, checked, hostKeyError, int, obj, show, short, sshPublicKeyError, str } from "./validators";
import { BACKUP_SSH_KEY } from "../posture/facts";

// ---------------------------------------------------------------------------------------------
// Recipients: age X25519 recipients (age1...) or ssh-ed25519 public keys, as `age -R` reads them.
// ---------------------------------------------------------------------------------------------

/**
 * age's own rule for an X25519 recipient (filippo.io/age ParseX25519Recipient): Bech32 with the
 * human-readable part "age" and exactly 32 bytes of key, lower case; age does not apply Bech32's
 * 90-character limit. Decoded by the `bech32` library, not by hand.
 */
export function ageRecipientError(v: string): string | undefined {
    const s = v.trim();
    const example = `an "age1..." line from age-keygen -y, or the line of ~/.ssh/id_ed25519.pub`;
    if (/^AGE-SECRET-KEY-1/i.test(s)) return `this is an age PRIVATE key: never put it in the stack (the server must not be able to decrypt its backups); give its public key (age-keygen -y KEYFILE)`;
    if (/-----BEGIN/.test(s)) return `this is a private key: give a public key instead (${example})`;
    if (s.startsWith("ssh-")) {
        const type = s.split(/\s+/)[0];
        if (type !== "ssh-ed25519") return `${show(type)} recipients are not accepted; use an ssh-ed25519 key or an age key (${example})`;
        return sshPublicKeyError(s);
    }
    if (!s.startsWith("age1")) return `${show(short(s))} is not an age recipient (${example})`;
    if (s !== s.toLowerCase()) return `${show(short(s))} is not an age recipient: age recipients are lower case`;
    let decoded: { prefix: string; words: number[] };
    try {
        decoded = bech32.decode(s, 1024);
    } catch (e) {
        return `${show(short(s))} is not an age recipient (${(e as Error).message}); copy the whole line age-keygen printed`;
    }
    if (decoded.prefix !== "age") return `${show(short(s))} is an age plugin recipient (${decoded.prefix}); the server has no plugins: use an X25519 age key or an ssh-ed25519 key`;
    const bytes = bech32.fromWords(decoded.words);
    if (bytes.length !== 32) return `${show(short(s))} carries ${bytes.length} bytes, an age X25519 recipient carries 32; copy the whole line age-keygen printed`;
    return undefined;
}

// ---------------------------------------------------------------------------------------------
// Target: an SFTP server, as a URL without credentials.
// ---------------------------------------------------------------------------------------------

/** Only SFTP for now (any SFTP server, a Hetzner Storage Box); S3-compatible targets are planned. */
export type BackupTargetUrl = { kind: "sftp"; user: string; host: string; port: number; path: string };

const HOST_RE = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)$/;
const PATH_RE = /^[A-Za-z0-9._/-]+$/;

/** sftp://user@host[:port]/path; undefined when it is not one. */
export function parseTargetUrl(v: string): BackupTargetUrl | undefined {
    const m = /^(sftp):\/\/(?:([a-z_][a-z0-9_-]{0,31})@)?([^/:@]+|\[[^\]]+\])(?::([0-9]{1,5}))?(\/[^?#]*)?$/.exec(v);
    if (!m) return undefined;
    const [, scheme, user, host, port, rawPath] = m;
    const path = (rawPath ?? "").replace(/\/+$/, "");
    if (!HOST_RE.test(host) || (port !== undefined && (Number(port) < 1 || Number(port) > 65535))) return undefined;
    if (path.split("/").some((p) => p === "..") || (path && !PATH_RE.test(path))) return undefined;
    if (scheme !== "sftp" || !user || !path) return undefined;
    return { kind: "sftp", user, host, port: port ? Number(port) : 22, path: path.replace(/^\//, "") };
}

export function targetUrlError(v: string): string | undefined {
    if (/^[a-z0-9]+:\/\/[^/@]*:[^/@]*@/.test(v)) return `the URL carries a password; credentials never go in a URL: set the key as a secret (citadel:backup.target.sshKey)`;
    if (v.startsWith("s3://")) return `S3 targets are not supported yet; use sftp://user@host[:port]/directory (an SFTP server or a Hetzner Storage Box)`;
    return parseTargetUrl(v) ? undefined : `${show(short(v))} is not a backup target: use sftp://user@host[:port]/directory (an SFTP server or a Hetzner Storage Box)`;
}

/** A credential: the value (Pulumi decrypts it for the program), or `{secure: ...}` read from a stack file without the key. */
const credential = () =>
    z.union([checked(str(), (v) => (v.trim() ? undefined : "is empty")), obj({ secure: str() })], {
        error: () => `expected a secret value (set it with pulumi config set --secret --path ...)`,
    });

/** The credential keys each kind of target needs (citadel:backup.target.<key>). */
export const TARGET_CREDENTIALS = { sftp: [BACKUP_SSH_KEY] } as const;

// ---------------------------------------------------------------------------------------------
// Schedule and retention
// ---------------------------------------------------------------------------------------------

/** systemd OnCalendar text: a conservative character set here; the host step checks it with `systemd-analyze calendar`. */
export const ON_CALENDAR_RE = /^[A-Za-z0-9 ,:*./~-]{1,64}$/;
/** RandomizedDelaySec as minutes or hours, at most 2 h: a daily run then always lands within the audit's 26 hours. */
export const RANDOMIZED_DELAY_RE = /^([0-9]{1,3})(min|h)$/;
export const MAX_RANDOMIZED_DELAY_MINUTES = 120;
export function randomizedDelayMinutes(v: string): number | undefined {
    const m = RANDOMIZED_DELAY_RE.exec(v);
    if (!m) return undefined;
    return Number(m[1]) * (m[2] === "h" ? 60 : 1);
}

/** Policy (source policy 000, data retention): backups are kept one year. */
export const MIN_RETENTION_DAYS = 365;

/** How far back the retention reaches, in days: the longest of its tiers (a month counted as 365/12 days). */
export function retentionDays(r: { daily: number; weekly: number; monthly: number }): number {
    return Math.floor(Math.max(r.daily, r.weekly * 7, (r.monthly * 365) / 12));
}

// ---------------------------------------------------------------------------------------------
// The schema piece
// ---------------------------------------------------------------------------------------------

export const BackupSchema = obj({
    /**
     * Back up Postgres (every database, pg_dump custom format) and Redis (its append-only files)
     * daily, encrypted to `recipients`, to `target`. Default false: it needs your target and your
     * public keys; the audit's in-backup check fails while a stack with data has no backups.
     */
    enabled: bool().default(false),
    /** When the backup runs: systemd OnCalendar (checked on the host by systemd-analyze; at least daily). Default "daily" (00:00 UTC). */
    schedule: checked(str(), (v) => (ON_CALENDAR_RE.test(v) ? undefined : `${show(v)} is not a systemd calendar expression (e.g. "daily", "*-*-* 03:30:00")`)).default("daily"),
    /** RandomizedDelaySec of the timer: many servers do not hit a target at the same second. Default "30min"; at most 2h. */
    randomizedDelay: checked(str(), (v) => {
        const m = randomizedDelayMinutes(v);
        if (m === undefined) return `${show(v)} is not a delay in minutes or hours (e.g. "30min", "1h")`;
        return m > MAX_RANDOMIZED_DELAY_MINUTES ? `${show(v)} is above 2h: a daily backup could then be more than 26 hours apart (the audit's limit)` : undefined;
    }).default("30min"),
    /**
     * Who can decrypt: age recipients ("age1...", from age-keygen) or ssh-ed25519 public keys. Public
     * keys only; the private keys stay with the operators (citadel restore streams the ciphertext to them).
     */
    recipients: z.array(checked(str(), ageRecipientError), { error: "expected a list of public keys" }).default([]),
    /** Where backups go. Required when enabled. */
    target: obj({
        /** sftp://user@host[:port]/directory: an SFTP server or a Hetzner Storage Box (S3 is planned). Required. */
        url: checked(str(), targetUrlError),
        /** SFTP: the server's ed25519 host key, pinned ("ssh-ed25519 AAAA..."). Required for sftp. */
        hostKey: checked(str(), hostKeyError).optional(),
        /** SFTP: the OpenSSH private key of the target's user. A secret: `pulumi config set --secret --path citadel:backup.target.sshKey < keyfile`. */
        sshKey: credential().optional(),
    }).optional(),
    /** How many backups are kept on the target: the newest of each of the last N days, ISO weeks and months. At least a year (policy). */
    retention: obj({
        /** Daily backups kept. Default 7. */
        daily: int(0, 3660).default(7),
        /** Weekly backups kept (the newest of each ISO week). Default 5. */
        weekly: int(0, 520).default(5),
        /** Monthly backups kept (the newest of each month). Default 12: one year, the policy's minimum. */
        monthly: int(0, 1200).default(12),
    }).prefault({}),
});

export type BackupConfig = z.infer<typeof BackupSchema>;

/** The checks spanning citadel:backup's keys (and the data services it backs up). */
export function backupChecks(cfg: { backup: BackupConfig; postgres: { enabled: boolean }; redis: { enabled: boolean } }, add: (path: (string | number)[], message: string) => void): void {
    const b = cfg.backup;
    const days = retentionDays(b.retention);
    if (days < MIN_RETENTION_DAYS) {
        add(["backup", "retention"], `keeps backups for about ${days} days; the policy asks for at least one year: keep at least 12 monthly (e.g. {"daily": 7, "weekly": 5, "monthly": 12})`);
    }
    if (!b.enabled) return;
    if (!cfg.postgres.enabled && !cfg.redis.enabled) add(["backup", "enabled"], `is true but neither citadel:postgres nor citadel:redis is enabled: there is nothing to back up; set it to false`);
    if (b.recipients.length === 0) add(["backup", "recipients"], `at least one public key is required to encrypt to (age-keygen -o backup.key; then the "age1..." line age-keygen -y backup.key prints)`);
    if (!b.target) {
        add(["backup", "target"], `is required when backups are enabled: set url (e.g. {"url": "sftp://backup@storage.example.com:23/citadel", "hostKey": "ssh-ed25519 AAAA..."}) and its credentials as secrets`);
        return;
    }
    const url = parseTargetUrl(b.target.url);
    if (url?.kind === "sftp" && !b.target.hostKey) add(["backup", "target", "hostKey"], `is required for an sftp target: pin the server's ed25519 host key (from its provider, or ssh-keyscan -t ed25519 over a trusted path)`);
}

/**
 * The target's credentials as the program receives them (decrypted by Pulumi), or the problems:
 * a missing one is named with the command that sets it. Run before any resource is registered;
 * rendering and the review never need credentials, so the schema does not require them.
 */
export function backupCredentials(b: BackupConfig): { ok: true; values: Record<string, string> } | { ok: false; errors: string[] } {
    if (!b.enabled || !b.target) return { ok: true, values: {} };
    const url = parseTargetUrl(b.target.url);
    if (!url) return { ok: true, values: {} };
    const values: Record<string, string> = {};
    const errors: string[] = [];
    for (const k of TARGET_CREDENTIALS[url.kind]) {
        const v = b.target[k];
        const fix = `pulumi config set --secret --path citadel:backup.target.${k} < ~/.ssh/citadel-backup (the private key of ${url.user}@${url.host})`;
        if (v === undefined) errors.push(`citadel:backup.target.${k}: the ${url.kind} target ${b.target.url} needs this credential; set it as a secret: ${fix}`);
        else if (typeof v !== "string") errors.push(`citadel:backup.target.${k}: is encrypted with a key this program does not have; run it through pulumi (${fix})`);
        else if (k === BACKUP_SSH_KEY && !/-----BEGIN OPENSSH PRIVATE KEY-----/.test(v)) errors.push(`citadel:backup.target.sshKey: is not an unencrypted OpenSSH private key (ssh-keygen -t ed25519 -N '' -f citadel-backup); ${fix}`);
        else values[k] = v.endsWith("\n") ? v : `${v}\n`;
    }
    return errors.length ? { ok: false, errors } : { ok: true, values };
}
