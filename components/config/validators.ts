// Value validators and the small zod helpers the schema is built from.
//
// A validator takes one value and returns an error message, or undefined when the value is fine. Each
// message says what is wrong with the value and what a good one looks like; the loader prefixes the
// `citadel:<key>`. Renderers that re-check a value as defence in depth call the same function, so the
// schema and the renderer can never disagree about a rule.
import * as net from "node:net";
import { z } from "zod";

export const CONFIG_NAMESPACE = "citadel";

export const show = (v: unknown): string => JSON.stringify(v);

export function short(v: string): string {
    return v.length > 40 ? `${v.slice(0, 37)}...` : v;
}

/** A value check: returns an error message, or undefined when the value is fine. */
export type Check<T> = (v: T) => string | undefined;

/** The schema with a value check attached (the check's message becomes the issue). */
export function checked<S extends z.ZodType>(schema: S, check: Check<z.infer<S>>): S {
    return schema.superRefine((v, ctx) => {
        const msg = check(v);
        if (msg) ctx.addIssue({ code: "custom", message: msg });
    }) as unknown as S;
}

// ---------------------------------------------------------------------------------------------
// zod helpers: every type error says what was expected and what was given.
// ---------------------------------------------------------------------------------------------

export const str = () => z.string({ error: (iss) => (iss.input === undefined ? "is required" : `expected a string, got ${show(iss.input)}`) });
export const int = (min: number, max: number) =>
    z
        .number({ error: (iss) => `expected a whole number, got ${show(iss.input)}` })
        .int({ error: (iss) => `expected a whole number, got ${show(iss.input)}` })
        .min(min, { error: (iss) => `${show(iss.input)} is below the minimum ${min}` })
        .max(max, { error: (iss) => `${show(iss.input)} is above the maximum ${max}` });
export const bool = () => z.boolean({ error: (iss) => `expected true or false, got ${show(iss.input)}` });
/** Objects are strict: an unknown key is an error (with a "did you mean"), never silently ignored. */
export const obj = <T extends z.ZodRawShape>(shape: T) => z.strictObject(shape);

// ---------------------------------------------------------------------------------------------
// Addresses and names
// ---------------------------------------------------------------------------------------------

export function cidrError(v: string): string | undefined {
    const bad = `${show(v)} is not a CIDR (e.g. 203.0.113.7/32 or 2001:db8::/48)`;
    const m = /^([^/]+)\/(\d{1,3})$/.exec(v);
    if (!m) return bad;
    const family = net.isIP(m[1]);
    const prefix = Number(m[2]);
    if (family === 0) return bad;
    if (prefix > (family === 4 ? 32 : 128)) return bad;
    if (prefix === 0) return `${show(v)} allows the whole Internet; leave the list empty instead to allow SSH from anywhere`;
    return undefined;
}

const HOSTNAME_RE = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/;
export function hostnameError(v: string): string | undefined {
    if (v !== v.toLowerCase()) return `${show(v)} must be lower-case (e.g. ${show(v.toLowerCase())})`;
    if (v.startsWith("*.")) return `${show(v)}: wildcard names need a DNS-01 challenge, which Citadel does not configure; list each host`;
    if (!HOSTNAME_RE.test(v)) return `${show(v)} is not a fully qualified host name (e.g. app.example.com)`;
    return undefined;
}

/** An IP address or a host name (for citadel:existing.address). */
export function addressError(v: string): string | undefined {
    return net.isIP(v) !== 0 || hostnameError(v) === undefined || v === "localhost" ? undefined : `${show(v)} is not an IP address or host name`;
}

export const UNIX_NAME_RE = /^[a-z_][a-z0-9_-]{0,31}$/;
export const DNS_LABEL_RE = /^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$/;
export const ENV_NAME_RE = /^[A-Z_][A-Z0-9_]*$/;
/** Env names that look like secrets: refused as plain env here, flagged on live containers by the audit. */
export const SECRET_LOOKING_RE = /(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)/i;
export const RESERVED_APP_NAMES = ["caddy", "gateway", "postgres", "redis", "crowdsec"];

/** The secrets every stack can generate; apps list the ones they need (citadel:apps[].secrets). */
export const BUILTIN_SECRETS = ["jwtSecret", "apiEncryptionKey", "postgresPassword", "redisPassword"] as const;
export const SECRET_NAME_RE = /^[a-z][a-zA-Z0-9]{1,40}$/;

// ---------------------------------------------------------------------------------------------
// SSH keys
// ---------------------------------------------------------------------------------------------

const SSH_KEY_TYPES = [
    "ssh-ed25519",
    "sk-ssh-ed25519@openssh.com",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-rsa",
] as const;
export const MIN_RSA_BITS = 3072;

/**
 * Checks an OpenSSH public key line: one line, known type, a blob that decodes and names the same
 * type, RSA ≥ 3072 bit. (A line break would smuggle a second, unchecked key into authorized_keys.)
 */
export function sshPublicKeyError(v: string): string | undefined {
    const example = "e.g. the one line of ~/.ssh/id_ed25519.pub";
    if (/[\r\n]/.test(v.trim())) return `${show(short(v))} spans several lines; give one key per list entry (${example})`;
    const parts = v.trim().split(/\s+/);
    if (parts.length < 2) return `${show(short(v))} is not an OpenSSH public key (${example})`;
    const [type, b64] = parts;
    if (type === "ssh-dss") return `DSA keys are broken and refused by modern sshd; use an ed25519 key (ssh-keygen -t ed25519)`;
    if (!(SSH_KEY_TYPES as readonly string[]).includes(type)) {
        return `${show(type)} is not a supported key type (${SSH_KEY_TYPES.join(", ")}); ${example}`;
    }
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return `the key data of ${show(short(v))} is not base64 (${example})`;
    const blob = Buffer.from(b64, "base64");
    const fields = readSshStrings(blob);
    const truncated = !fields || fields.length < 2 || (type === "ssh-ed25519" && fields[1].length !== 32);
    if (!fields || fields[0]?.toString("latin1") !== type || truncated) {
        return `the key data of ${show(short(v))} does not encode a ${type} key; copy the whole line of the .pub file`;
    }
    if (type === "ssh-rsa") {
        const n = fields[2];
        const bits = n ? bitLength(n) : 0;
        if (bits < MIN_RSA_BITS) return `this RSA key has ${bits} bits; at least ${MIN_RSA_BITS} are required (better: ssh-keygen -t ed25519)`;
    }
    return undefined;
}

/** A pinned host key: ed25519 only, because the sshd step removes ECDSA/DSA host keys. */
export function hostKeyError(v: string): string | undefined {
    if (!v.trim().startsWith("ssh-ed25519 ")) {
        return `pin the host's ed25519 key ("ssh-ed25519 AAAA..."; e.g. from /etc/ssh/ssh_host_ed25519_key.pub): Citadel removes ECDSA/DSA host keys`;
    }
    return sshPublicKeyError(v);
}

function readSshStrings(buf: Buffer): Buffer[] | undefined {
    const out: Buffer[] = [];
    let off = 0;
    while (off < buf.length) {
        if (off + 4 > buf.length) return undefined;
        const len = buf.readUInt32BE(off);
        off += 4;
        if (off + len > buf.length) return undefined;
        out.push(buf.subarray(off, off + len));
        off += len;
    }
    return out;
}

function bitLength(mpint: Buffer): number {
    let i = 0;
    while (i < mpint.length && mpint[i] === 0) i++;
    if (i === mpint.length) return 0;
    return (mpint.length - i - 1) * 8 + (32 - Math.clz32(mpint[i]));
}

/** sshd's MaxStartups "start:rate:full": sshd refuses rate outside 1..100 and start above full. */
export function maxStartupsError(v: string): string | undefined {
    const m = /^(\d+):(\d+):(\d+)$/.exec(v);
    if (!m) return `${show(v)} must look like "10:30:60" (start:rate:full)`;
    const [start, rate, full] = [Number(m[1]), Number(m[2]), Number(m[3])];
    if (rate < 1 || rate > 100) return `${show(v)}: the rate (${rate}) is a percentage from 1 to 100 (e.g. "10:30:60")`;
    if (start > full) return `${show(v)}: start (${start}) is above full (${full}); sshd refuses it (e.g. "10:30:60")`;
    return undefined;
}

// ---------------------------------------------------------------------------------------------
// Images, text, times
// ---------------------------------------------------------------------------------------------

/** Image references must be reproducible: a tag other than `latest`, or a digest. */
export function imageError(v: string): string | undefined {
    const re = /^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$/;
    if (!re.test(v)) return `${show(v)} is not an image reference (e.g. registry.example.com/app:1.4.2 or app@sha256:<64 hex>)`;
    const hasDigest = v.includes("@sha256:");
    const tag = /:([A-Za-z0-9_][A-Za-z0-9_.-]*)(@|$)/.exec(v.replace(/^[^/]*:[0-9]+\//, "host/"))?.[1];
    if (!hasDigest && !tag) return `${show(v)} has no tag: pin a version tag or a digest (e.g. ${v}:1.2.3)`;
    if (!hasDigest && tag === "latest") return `${show(v)} uses "latest", which changes under you: pin a version tag or a digest`;
    return undefined;
}

/**
 * Strings interpolated into text formats (Caddyfile, sshd_config) must not break out of their quotes:
 * the same characters the Caddy renderer refuses (quotes end tokens, braces open blocks or `{$ENV}`
 * placeholders, backslash escapes, back-ticks quote, line breaks end directives).
 */
export const noQuoteOrNewline: Check<string> = (v) =>
    /["\\\n\r`{}]/.test(v) ? `${show(short(v))} may not contain quotes, backslashes, braces, back-ticks or line breaks` : undefined;

/** An ACME directory: https:// and nothing the Caddyfile would read as syntax. */
export function acmeDirectoryError(v: string): string | undefined {
    if (!/^https:\/\/[^\s"]+$/.test(v)) return `${show(v)} is not an https:// ACME directory URL or "internal"`;
    return noQuoteOrNewline(v);
}

/** A calendar date YYYY-MM-DD that exists (2026-02-31 does not). */
export function dateError(v: string): string | undefined {
    const t = /^\d{4}-\d{2}-\d{2}$/.test(v) ? Date.parse(`${v}T00:00:00Z`) : NaN;
    return !Number.isNaN(t) && new Date(t).toISOString().slice(0, 10) === v ? undefined : `${show(v)} is not a date (YYYY-MM-DD)`;
}

// ---------------------------------------------------------------------------------------------
// Sizes: container memory ("256m"), Redis memory ("128mb"), and the rules the data renderers enforce.
// ---------------------------------------------------------------------------------------------

const DURATION_RE = /^[1-9][0-9]*(ms|s|m|h)$/;
const MEMORY_RE = /^([1-9][0-9]*)([kmg])$/;
const REDIS_MEMORY_RE = /^([1-9][0-9]*)(kb|mb|gb)$/;
const UID_GID_RE = /^([1-9][0-9]{0,9}):([1-9][0-9]{0,9})$/;

/** Container memory "512m" → bytes (Docker's units: k, m, g are powers of 1024); undefined if malformed. */
export function memoryBytes(size: string): number | undefined {
    const m = MEMORY_RE.exec(size);
    return m ? Number(m[1]) * { k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2] as "k" | "m" | "g"] : undefined;
}

/** Redis memory "128mb" → bytes (Redis' units: kb, mb, gb are powers of 1024); undefined if malformed. */
export function redisMemoryBytes(size: string): number | undefined {
    const m = REDIS_MEMORY_RE.exec(size);
    return m ? Number(m[1]) * { kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }[m[2] as "kb" | "mb" | "gb"] : undefined;
}

/** Below this, Postgres' derived settings (shared_buffers, work_mem) do not fit (components/render/data.ts). */
export const POSTGRES_MIN_MEMORY_MB = 128;

/** citadel:postgres.resources.memory: enough for Postgres. */
export function postgresMemoryError(memory: string): string | undefined {
    const bytes = memoryBytes(memory);
    if (bytes === undefined || bytes >= POSTGRES_MIN_MEMORY_MB * 1024 ** 2) return undefined;
    return `${show(memory)} is too little for Postgres; give it at least ${POSTGRES_MIN_MEMORY_MB}m (e.g. 512m)`;
}

/**
 * citadel:redis.maxMemory within 3/4 of the container's memory: the AOF rewrite forks, and copy-on-write
 * pages need room above maxmemory, or the memory limit kills Redis mid-rewrite.
 */
export function redisHeadroomError(maxMemory: string, memory: string): string | undefined {
    const max = redisMemoryBytes(maxMemory);
    const limit = memoryBytes(memory);
    if (max === undefined || limit === undefined || max <= limit * 0.75) return undefined;
    return `${show(maxMemory)} leaves too little headroom in the container's ${memory}; keep it at most 3/4 of citadel:redis.resources.memory (or raise that)`;
}

// ---------------------------------------------------------------------------------------------
// Kernel parameters
// ---------------------------------------------------------------------------------------------

export const IP_FORWARD_KEY = "net.ipv4.ip_forward";

/**
 * The one rule for an override of net.ipv4.ip_forward, used by the schema and by the sysctl renderer:
 * the value, trimmed, must be "1". (The kernel reads any non-zero number as on, but the audit and
 * `sysctl` read back the literal value, and Docker's bridges and published ports need it on.)
 */
export function ipForwardError(value: string): string | undefined {
    return value.trim() === "1" ? undefined : `must stay 1 (not ${show(value)}): Docker routes every container's traffic through the host; remove this override`;
}

export const SYSCTL_KEY_RE = /^[a-z0-9_]+(\.[a-zA-Z0-9_-]+)+$/;

// ---------------------------------------------------------------------------------------------
// Value schemas
// ---------------------------------------------------------------------------------------------

export const cidr = () => checked(str(), cidrError);
export const hostname = () => checked(str(), hostnameError);
export const image = () => checked(str(), imageError);
export const duration = () => checked(str(), (v) => (DURATION_RE.test(v) ? undefined : `${show(v)} is not a duration (e.g. 30s, 1m, 2h)`));
export const memory = () => checked(str(), (v) => (MEMORY_RE.test(v) ? undefined : `${show(v)} is not a memory size (e.g. 256m, 1g)`));
export const redisMemory = () => checked(str(), (v) => (REDIS_MEMORY_RE.test(v) ? undefined : `${show(v)} is not a Redis memory size (e.g. 128mb)`));
export const cpus = () =>
    z
        .number({ error: (iss) => `expected a number of CPUs, got ${show(iss.input)}` })
        .positive({ error: (iss) => `${show(iss.input)} must be above 0 (e.g. 0.5)` })
        .max(64, { error: (iss) => `${show(iss.input)} CPUs is more than any VPS has` });
export const uidGid = () =>
    checked(str(), (v) =>
        UID_GID_RE.test(v) ? undefined : `${show(v)} must be a non-root numeric "uid:gid" (e.g. "10001:10001"); root (0) is not allowed`,
    );
export const httpHeaderValue = () => checked(str(), noQuoteOrNewline);
export const days = () => int(1, 3650);
