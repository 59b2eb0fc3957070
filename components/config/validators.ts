// Value validators and the small zod helpers the schema is built from.
//
// A validator takes one value and returns an error message, or undefined when the value is fine. Each
// message says what is wrong with the value and what a good one looks like; the loader prefixes the
// `citadel:<key>`. Renderers that re-check a value as defence in depth call the same function, so the
// schema and the renderer can never disagree about a rule.
import * as net from "node:net";
import { z } from "zod";
import { GENERATED_SECRETS } from "../posture/facts";

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

/** The generated secrets apps may list (citadel:apps[].secrets); the others are Citadel's own. */
export const BUILTIN_SECRETS: readonly string[] = GENERATED_SECRETS.filter((s) => s.apps).map((s) => s.name);
/** Generated secrets only Citadel reads: an API key may not take their names either. */
export const INTERNAL_SECRETS: readonly string[] = GENERATED_SECRETS.filter((s) => !s.apps).map((s) => s.name);
export const SECRET_NAME_RE = /^[a-z][a-zA-Z0-9]{1,40}$/;

// ---------------------------------------------------------------------------------------------
// Credentials in env values
// ---------------------------------------------------------------------------------------------

/** Token shapes issuers give their secrets: a match is a credential whatever its entropy. */
const TOKEN_SHAPES: [RegExp, string][] = [
    [/(?<![A-Za-z0-9])(sk|rk)_(live|test)_[A-Za-z0-9]{10,}/, "a Stripe secret key (sk_live_/rk_live_...)"],
    [/(?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{30,}/, "a GitHub token (ghp_/gho_/ghs_...)"],
    [/(?<![A-Za-z0-9])github_pat_[A-Za-z0-9_]{22,}/, "a GitHub fine-grained token (github_pat_...)"],
    [/(?<![A-Za-z0-9])glpat-[A-Za-z0-9_-]{20,}/, "a GitLab token (glpat-...)"],
    [/(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9-]{10,}/, "a Slack token (xoxb-/xoxp-...)"],
    [/(?<![A-Za-z0-9])(AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Z])/, "an AWS access key id (AKIA...)"],
    [/(?<![A-Za-z0-9])AIza[0-9A-Za-z_-]{35}/, "a Google API key (AIza...)"],
    [/(?<![A-Za-z0-9])sk-(proj-|ant-)?[A-Za-z0-9_-]{20,}/, "an OpenAI/Anthropic-style API key (sk-...)"],
    [/(?<![A-Za-z0-9])npm_[A-Za-z0-9]{36}/, "an npm token (npm_...)"],
    [/(?<![A-Za-z0-9])SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}/, "a SendGrid key (SG....)"],
    [/(?<![A-Za-z0-9])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/, "a JSON Web Token (eyJ....eyJ....)"],
];

/** Shannon entropy in bits per character. */
export function shannonEntropy(s: string): number {
    const counts = new Map<string, number>();
    for (const ch of s) counts.set(ch, (counts.get(ch) ?? 0) + 1);
    let h = 0;
    for (const n of counts.values()) h -= (n / s.length) * Math.log2(n / s.length);
    return h;
}

/**
 * The high-entropy rule. A word is a run of the base64/base64url alphabet (split at anything else:
 * spaces, `:`, `.`, `@`, `,`, `;`...). It is judged when it has at least 32 characters (128 bits as
 * hex, 192 as base64):
 *  - pure hex (one case): flagged from 3.0 bits/char. 32 random hex characters carry ~3.6-3.9; a run
 *    such as "0000...", "deadbeef" repeated or "abababab..." stays under 3. Hex named as a checksum
 *    (env name with SHA, CHECKSUM, DIGEST or HASH, as official images ship PG_SHA256 or
 *    REDIS_DOWNLOAD_SHA) and digests after `sha256:`/`sha512:` are a public artifact's hash, not a key.
 *  - base64: flagged from 4.0 bits/char, with upper case, lower case and a digit all present, and the
 *    character class changing between at least 45% of neighbours. 32 random base64 characters carry
 *    ~4.5-4.8 bits/char, lack a class with probability < 1% and change class ~65% of the time (measured
 *    miss rate ~2% of random 32-character words, ~0.5% at 43); paths, MIME types and identifiers
 *    ("/var/lib/app/uploads", "application/x-www-form-urlencoded") have no digit or stay under 4, and
 *    words such as "MyVeryLongCamelCaseIdentifierName2024" (4.3 bits/char) change class ~35%.
 *  - UUIDs (8-4-4-4-12 hex) are not flagged: they are identifiers (tenant, client, project ids) far
 *    more often than keys, and a UUID used as a key is better caught by its name.
 */
export const HIGH_ENTROPY_MIN_LENGTH = 32;
export const HEX_ENTROPY_THRESHOLD = 3.0;
export const BASE64_ENTROPY_THRESHOLD = 4.0;
export const BASE64_CLASS_CHANGES = 0.45;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const CHECKSUM_NAME_RE = /(SHA|CHECKSUM|DIGEST|HASH|MD5)/i;

/** The share of neighbouring characters of different classes (lower, upper, digit, other). */
function classChanges(w: string): number {
    const cls = (c: string) => (/[a-z]/.test(c) ? 0 : /[A-Z]/.test(c) ? 1 : /[0-9]/.test(c) ? 2 : 3);
    let n = 0;
    for (let i = 1; i < w.length; i++) if (cls(w[i]) !== cls(w[i - 1])) n++;
    return n / (w.length - 1);
}

function highEntropyWord(value: string, name: string | undefined): string | undefined {
    const words = value.matchAll(/[A-Za-z0-9+/=_-]+/g);
    for (const m of words) {
        const w = m[0].replace(/=+$/, "");
        if (w.length < HIGH_ENTROPY_MIN_LENGTH || UUID_RE.test(w)) continue;
        const before = value.slice(0, m.index);
        const h = shannonEntropy(w);
        if (/^([0-9a-f]+|[0-9A-F]+)$/.test(w)) {
            if (/sha(1|224|256|384|512):$/i.test(before) || (name && CHECKSUM_NAME_RE.test(name))) continue;
            if (h >= HEX_ENTROPY_THRESHOLD) return `a random-looking hex token (${w.length} characters, ${h.toFixed(1)} bits/character)`;
        } else if (/[a-z]/.test(w) && /[A-Z]/.test(w) && /[0-9]/.test(w) && h >= BASE64_ENTROPY_THRESHOLD && classChanges(w) >= BASE64_CLASS_CHANGES) {
            return `a random-looking token (${w.length} characters, ${h.toFixed(1)} bits/character)`;
        }
    }
    return undefined;
}

/** What kind of credential a value carries: callers that word their own messages switch on it. */
export type CredentialKind = "pem" | "url" | "token" | "high-entropy";

/** URLs in the value: a password in the userinfo, or a secret-looking query parameter. */
function urlCredential(value: string): string | undefined {
    for (const m of value.matchAll(/[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s"'<>,;]+/g)) {
        let u: URL;
        try {
            u = new URL(m[0]);
        } catch {
            continue;
        }
        if (u.password) return `a URL with a password in it (${u.protocol}//user:<password>@host)`;
        for (const k of u.searchParams.keys()) {
            if (SECRET_LOOKING_RE.test(k) && u.searchParams.get(k)) return `a URL with a secret in its query (${u.protocol}//host?${k}=<secret>)`;
        }
    }
    return undefined;
}

/**
 * The one rule for credentials in an env value, with its kind and a reason that never contains the
 * value (it ends up in CI logs, audit reports and review comments). `name` (the env variable's) only
 * excuses hex checksums (e.g. PG_SHA256). The config schema (citadel:apps[].env), the audit (every
 * live container), the policy pack and the review all judge values with it.
 */
export function credentialFinding(value: string, name?: string): { kind: CredentialKind; reason: string } | undefined {
    const pem = /-----BEGIN ([A-Z0-9 ]{1,40})-----/.exec(value);
    if (pem) return { kind: "pem", reason: `a PEM block (-----BEGIN ${pem[1]}-----)` };
    const url = urlCredential(value);
    if (url) return { kind: "url", reason: url };
    for (const [re, what] of TOKEN_SHAPES) if (re.test(value)) return { kind: "token", reason: what };
    const word = highEntropyWord(value, name);
    return word ? { kind: "high-entropy", reason: word } : undefined;
}

/** Why an env value carries a credential (credentialFinding's reason), or undefined. */
export function credentialInValue(value: string, name?: string): string | undefined {
    return credentialFinding(value, name)?.reason;
}

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

/** GOPROXY as Go reads it: entries separated by "," or "|", each an https:// URL, "direct" or "off". */
export function goProxyError(v: string): string | undefined {
    const bad = v.split(/[,|]/).find((e) => !(e === "direct" || e === "off" || /^https:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?(\/[A-Za-z0-9._~\/-]*)?$/.test(e)));
    return bad === undefined ? undefined : `${show(bad)} is not a module proxy: use https:// URLs, "direct" or "off", separated by commas`;
}

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
 * Connections Postgres keeps for its superuser (superuser_reserved_connections): the roles step,
 * backups and an operator's `docker exec psql` still get in when the apps have used up theirs.
 */
export const POSTGRES_SUPERUSER_RESERVED = 3;
/** The most connections Citadel gives Postgres, whatever its pids (memory per connection stays sane). */
export const POSTGRES_MAX_CONNECTIONS_CAP = 50;

/** Pids kept for the postmaster, its background workers, the entrypoint and healthchecks. */
const POSTGRES_PIDS_OVERHEAD = 30;

/** max_connections from the container's pids: every connection is a process. */
export function postgresMaxConnections(pids: number): number {
    return Math.min(POSTGRES_MAX_CONNECTIONS_CAP, Math.max(10, pids - POSTGRES_PIDS_OVERHEAD));
}

/** citadel:postgres.resources.pids: at least one connection for each app that uses Postgres, beside the superuser's reserve. */
export function postgresConnectionShareError(pids: number, apps: number): string | undefined {
    const max = postgresMaxConnections(pids);
    const shared = max - POSTGRES_SUPERUSER_RESERVED;
    if (apps <= shared) return undefined;
    if (apps > POSTGRES_MAX_CONNECTIONS_CAP - POSTGRES_SUPERUSER_RESERVED) {
        return `${apps} apps use Postgres, and it gets at most ${POSTGRES_MAX_CONNECTIONS_CAP} connections here (${POSTGRES_MAX_CONNECTIONS_CAP - POSTGRES_SUPERUSER_RESERVED} for apps): not one for each; take postgresPassword off the apps that do not need it`;
    }
    return `${pids} pids give Postgres ${max} connections, ${shared} for apps: fewer than one for each of the ${apps} apps that use it; raise it to at least ${apps + POSTGRES_SUPERUSER_RESERVED + POSTGRES_PIDS_OVERHEAD}`;
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
// Monitoring
// ---------------------------------------------------------------------------------------------

/** A Prometheus duration of one unit (30s, 5m, 4h, 1d), as rules, scrape intervals and Alertmanager take it. */
const PROM_DURATION_RE = /^([1-9][0-9]*)(s|m|h|d)$/;
const PROM_UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** "5m" → 300; undefined when it is not a Prometheus duration. */
export function promDurationSeconds(v: string): number | undefined {
    const m = PROM_DURATION_RE.exec(v);
    return m ? Number(m[1]) * PROM_UNIT_SECONDS[m[2]] : undefined;
}

export function promDurationError(v: string): string | undefined {
    return promDurationSeconds(v) === undefined ? `${show(v)} is not a duration (a whole number and one of s, m, h, d: e.g. 30s, 5m)` : undefined;
}

/** The drift audit runs at least every 15 minutes (issue 12) and at most every minute. */
export const DRIFT_INTERVAL_MAX_SECONDS = 15 * 60;
export function driftIntervalError(v: string): string | undefined {
    const s = promDurationSeconds(v);
    if (s === undefined) return promDurationError(v);
    if (s > DRIFT_INTERVAL_MAX_SECONDS) return `${show(v)} is too long: drift must be found within 15 minutes; use at most 15m`;
    if (s < 60) return `${show(v)} is too short: the audit takes seconds of CPU each run; use at least 1m`;
    return undefined;
}

/**
 * Where a receiver URL points, without its path, query or user info (they carry the token): what
 * error messages may show.
 */
/** The URL, or undefined when it does not parse. */
export function parsedUrl(v: string): URL | undefined {
    try {
        return new URL(v);
    } catch {
        return undefined;
    }
}

export function urlOrigin(v: string): string {
    const u = parsedUrl(v);
    return u ? `${u.protocol}//${u.host}` : "(not a URL)";
}

/** A receiver URL: http(s), a host, no line breaks. Whether http:// is allowed is a cross check (target). */
export function receiverUrlError(v: string): string | undefined {
    const u = parsedUrl(v);
    if (!u) {
        return `is not a URL (value not shown); give the receiver's full https:// URL (e.g. https://hooks.example.com/alerts/...)`;
    }
    if (!["https:", "http:", "smtp:", "smtps:"].includes(u.protocol)) return `${show(u.protocol)} URLs cannot receive alerts; use an https:// URL (smtp:// or smtps:// for an email receiver)`;
    if (!u.hostname) return `has no host; give the receiver's full https:// URL`;
    if (/[\s"'\\]/.test(v)) return `may not contain spaces, quotes or backslashes (value not shown)`;
    return undefined;
}

const EMAIL_RE = /^[A-Za-z0-9._%+-]+@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$/;
/** An e-mail address, or with `many` a comma-separated list of them (Alertmanager's `to`). */
export function emailListError(v: string, what: string, many = true): string | undefined {
    const parts = many ? v.split(",").map((p) => p.trim()) : [v];
    const bad = parts.find((p) => !EMAIL_RE.test(p));
    if (bad === undefined) return undefined;
    return `${show(bad)} is not an e-mail address; give the ${what} as name@example.com${many ? " (several: comma-separated)" : ""}`;
}

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

/** The option nearest to a mistyped key (a "did you mean"), if any is near enough. */
export function closest(key: string, options: string[]): string | undefined {
    let best: string | undefined;
    let bestD = Infinity;
    for (const o of options) {
        const d = levenshtein(key.toLowerCase(), o.toLowerCase());
        if (d < bestD) {
            bestD = d;
            best = o;
        }
    }
    return bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

/** Edit distance (insert, delete, substitute), one row of the table at a time. */
export function levenshtein(a: string, b: string): number {
    const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
        let prev = dp[0];
        dp[0] = i;
        for (let j = 1; j <= b.length; j++) {
            const tmp = dp[j];
            dp[j] = Math.min(dp[j] + 1, dp[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
            prev = tmp;
        }
    }
    return dp[b.length];
}
