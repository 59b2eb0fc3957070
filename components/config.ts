// The stack's whole configuration: one schema, secure defaults, and errors that name the key and the fix.
//
// Every `citadel:<key>` config value is parsed here before any resource is registered. A bad value
// stops the program with a message such as
//   citadel:admin.sourceIps[1]: "10.0.0.300/24" is not a CIDR (e.g. 203.0.113.7/32 or 2001:db8::/48)
// This module is pure (no Pulumi import) so the schema is testable and usable by scripts.
import * as net from "node:net";
import { z } from "zod";

export const CONFIG_NAMESPACE = "citadel";

// ---------------------------------------------------------------------------------------------
// Value validators. Each message says what is wrong with the value and what a good one looks like.
// ---------------------------------------------------------------------------------------------

const show = (v: unknown): string => JSON.stringify(v);

/** A value check: returns an error message, or undefined when the value is fine. */
type Check<T> = (v: T) => string | undefined;

function checked<S extends z.ZodType>(schema: S, check: Check<z.infer<S>>): S {
    return schema.superRefine((v, ctx) => {
        const msg = check(v);
        if (msg) ctx.addIssue({ code: "custom", message: msg });
    }) as unknown as S;
}

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

/** Checks an OpenSSH public key line: known type, a blob that decodes and names the same type, RSA ≥ 3072 bit. */
export function sshPublicKeyError(v: string): string | undefined {
    const example = "e.g. the one line of ~/.ssh/id_ed25519.pub";
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

function short(v: string): string {
    return v.length > 40 ? `${v.slice(0, 37)}...` : v;
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

const UNIX_NAME_RE = /^[a-z_][a-z0-9_-]{0,31}$/;
const DNS_LABEL_RE = /^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$/;
const ENV_NAME_RE = /^[A-Z_][A-Z0-9_]*$/;
/** Env names that look like secrets: refused as plain env here, flagged on live containers by the audit. */
export const SECRET_LOOKING_RE = /(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)/i;
const DURATION_RE = /^[1-9][0-9]*(ms|s|m|h)$/;
const MEMORY_RE = /^[1-9][0-9]*[kmg]$/;
const UID_GID_RE = /^([1-9][0-9]{0,9}):([1-9][0-9]{0,9})$/;
const RESERVED_APP_NAMES = ["caddy", "gateway", "postgres", "redis", "crowdsec"];

// Strings interpolated into text formats (Caddyfile, sshd_config) must not break out of their quotes.
const noQuoteOrNewline: Check<string> = (v) =>
    /["\\\n\r`{}]/.test(v) ? `${show(short(v))} may not contain quotes, backslashes, braces, back-ticks or line breaks` : undefined;

const str = () => z.string({ error: (iss) => (iss.input === undefined ? "is required" : `expected a string, got ${show(iss.input)}`) });
const int = (min: number, max: number) =>
    z
        .number({ error: (iss) => `expected a whole number, got ${show(iss.input)}` })
        .int({ error: (iss) => `expected a whole number, got ${show(iss.input)}` })
        .min(min, { error: (iss) => `${show(iss.input)} is below the minimum ${min}` })
        .max(max, { error: (iss) => `${show(iss.input)} is above the maximum ${max}` });
const bool = () => z.boolean({ error: (iss) => `expected true or false, got ${show(iss.input)}` });
const obj = <T extends z.ZodRawShape>(shape: T) => z.strictObject(shape);

const cidr = () => checked(str(), cidrError);
const hostname = () => checked(str(), hostnameError);
const image = () => checked(str(), imageError);
const duration = () => checked(str(), (v) => (DURATION_RE.test(v) ? undefined : `${show(v)} is not a duration (e.g. 30s, 1m, 2h)`));
const memory = () => checked(str(), (v) => (MEMORY_RE.test(v) ? undefined : `${show(v)} is not a memory size (e.g. 256m, 1g)`));
const cpus = () =>
    z
        .number({ error: (iss) => `expected a number of CPUs, got ${show(iss.input)}` })
        .positive({ error: (iss) => `${show(iss.input)} must be above 0 (e.g. 0.5)` })
        .max(64, { error: (iss) => `${show(iss.input)} CPUs is more than any VPS has` });
const uidGid = () =>
    checked(str(), (v) =>
        UID_GID_RE.test(v) ? undefined : `${show(v)} must be a non-root numeric "uid:gid" (e.g. "10001:10001"); root (0) is not allowed`,
    );
const httpHeaderValue = () => checked(str(), noQuoteOrNewline);

// ---------------------------------------------------------------------------------------------
// The schema. Every knob has a secure default; the README's config reference mirrors this file.
// ---------------------------------------------------------------------------------------------

export const HCLOUD_LOCATIONS = ["fsn1", "nbg1", "hel1", "ash", "hil", "sin"] as const;

const HcloudSchema = obj({
    /** Hetzner location of the server. */
    location: z.enum(HCLOUD_LOCATIONS, { error: (iss) => `${show(iss.input)} is not a Hetzner location (one of ${HCLOUD_LOCATIONS.join(", ")})` }).default("fsn1"),
    /** Hetzner server type, e.g. cx22 or cax11. */
    serverType: checked(str(), (v) => (/^[a-z]{2,4}[0-9]{1,3}$/.test(v) ? undefined : `${show(v)} is not a Hetzner server type (e.g. cx22, cpx21, cax11)`)).default("cx22"),
    /** Base image. Citadel's host scripts are written for Debian 12. */
    image: z.literal("debian-12", { error: (iss) => `${show(iss.input)} is not supported: Citadel's host scripts target "debian-12"` }).default("debian-12"),
    /** Server name in the Hetzner console. */
    serverName: checked(str(), (v) => (DNS_LABEL_RE.test(v) ? undefined : `${show(v)} is not a valid server name (lower-case letters, digits, '-')`)).default("citadel"),
});

const ExistingSchema = obj({
    /** Address (IP or DNS name) of a Debian 12 host that already runs sshd. */
    address: checked(str(), (v) => (net.isIP(v) !== 0 || hostnameError(v) === undefined || v === "localhost" ? undefined : `${show(v)} is not an IP address or host name`)),
    /** SSH port of the host. */
    port: int(1, 65535).default(22),
    /**
     * The host's public SSH host key ("ssh-ed25519 AAAA..."), pinned for every connection. Get it out of band
     * (e.g. the provider's console, or `ssh-keyscan` over a trusted path) — never trust on first use silently.
     */
    hostKey: checked(str(), (v) =>
        // The sshd step removes ECDSA/DSA host keys, so only an ed25519 pin survives hardening.
        !v.trim().startsWith("ssh-ed25519 ") ? `pin the host's ed25519 key ("ssh-ed25519 AAAA..."; e.g. from /etc/ssh/ssh_host_ed25519_key.pub): Citadel removes ECDSA/DSA host keys` : sshPublicKeyError(v),
    ),
});

const AdminSchema = obj({
    /** The non-root deploy user that Citadel creates and connects as (root login is disabled). */
    user: checked(str(), (v) =>
        v === "root" ? `root may not be the admin user: root login is disabled; use e.g. "deploy"` : UNIX_NAME_RE.test(v) ? undefined : `${show(v)} is not a valid Unix user name (e.g. "deploy")`,
    ).default("deploy"),
    /** Public keys allowed to log in as the admin user (key-only SSH). */
    sshPublicKeys: z
        .array(checked(str(), sshPublicKeyError), { error: "expected a list of public key lines" })
        .min(1, { error: "at least one public key is required, or nobody can log in (add the line of ~/.ssh/id_ed25519.pub)" }),
    /** The matching private key on the operator's machine, used by Pulumi's SSH connections. */
    privateKeyPath: str().default("~/.ssh/id_ed25519"),
    /** CIDRs allowed to reach SSH. Empty: SSH open to all, rate-limited (UFW `limit`) and watched by CrowdSec/fail2ban. */
    sourceIps: z.array(cidr(), { error: "expected a list of CIDRs" }).default([]),
});

const STRONG_KEX = ["sntrup761x25519-sha512@openssh.com", "curve25519-sha256", "curve25519-sha256@libssh.org"];
const STRONG_CIPHERS = ["chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com", "aes128-gcm@openssh.com", "aes256-ctr", "aes192-ctr", "aes128-ctr"];
const STRONG_MACS = ["hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com", "umac-128-etm@openssh.com"];
const STRONG_HOSTKEY_ALGS = ["ssh-ed25519", "sk-ssh-ed25519@openssh.com", "rsa-sha2-512", "rsa-sha2-256"];
const algList = (allowed: string[], what: string) =>
    z
        .array(
            checked(str(), (v) => (allowed.includes(v) ? undefined : `${show(v)} is not an accepted ${what} (allowed: ${allowed.join(", ")})`)),
            { error: `expected a list of ${what}s` },
        )
        .min(1, { error: `at least one ${what} is required` });

const SshSchema = obj({
    maxAuthTries: int(1, 6).default(3),
    clientAliveInterval: int(30, 3600).default(300),
    clientAliveCountMax: int(1, 10).default(2),
    loginGraceTime: int(10, 120).default(30),
    maxSessions: int(1, 20).default(4),
    maxStartups: checked(str(), (v) => (/^\d+:\d+:\d+$/.test(v) ? undefined : `${show(v)} must look like "10:30:60" (start:rate:full)`)).default("10:30:60"),
    kexAlgorithms: algList(STRONG_KEX, "key exchange algorithm").default(STRONG_KEX),
    ciphers: algList(STRONG_CIPHERS, "cipher").default(STRONG_CIPHERS),
    macs: algList(STRONG_MACS, "MAC").default(STRONG_MACS),
    hostKeyAlgorithms: algList(STRONG_HOSTKEY_ALGS, "host key algorithm").default(STRONG_HOSTKEY_ALGS),
});

const PortRangeSchema = obj({ from: int(1, 65535), to: int(1, 65535) });

const FirewallSchema = obj({
    /** Ports explicitly denied from outside (app ports that must only be reached through the gateway). */
    denyPorts: PortRangeSchema.default({ from: 8001, to: 8012 }),
    /** UFW `limit` on SSH: 6 new connections in 30 s from one address are rejected. */
    sshRateLimit: bool().default(true),
});

const INTRUSION_ENGINES = ["crowdsec", "fail2ban"] as const;
const IntrusionSchema = obj({
    /** CrowdSec (default: behaviour scenarios + firewall bouncer) or fail2ban (sshd jail). */
    engine: z.enum(INTRUSION_ENGINES, { error: (iss) => `${show(iss.input)} is not an intrusion engine (one of ${INTRUSION_ENGINES.join(", ")})` }).default("crowdsec"),
    /** fail2ban: failures before a ban. */
    maxRetry: int(1, 20).default(3),
    /** fail2ban: ban length in seconds (also CrowdSec's ban duration). */
    banTime: int(60, 604800).default(3600),
    /** fail2ban: window in seconds in which failures are counted. */
    findTime: int(60, 86400).default(600),
    /** CIDRs never banned (your office, your monitoring). */
    ignoreIps: z.array(cidr()).default([]),
    /**
     * CrowdSec only: keep the hub's crowdsecurity/whitelists parser, which never bans loopback and the
     * private ranges (10/8, 172.16/12, 192.168/16 — Docker's bridges, a Hetzner private network). On by
     * default as upstream ships it; the local stack turns it off so a lab address can be banned (audit).
     */
    whitelistPrivateRanges: bool().default(true),
});

const DEFAULT_CSP = "default-src 'self'; base-uri 'self'; object-src 'none'; frame-ancestors 'none'; form-action 'self'; upgrade-insecure-requests";
const DEFAULT_PERMISSIONS_POLICY = "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=(), interest-cohort=()";

const RateLimitSchema = obj({
    /** Requests one client address may make per window before getting 429. */
    events: int(1, 1000000).default(100),
    window: duration().default("1m"),
});

const ResourcesSchema = obj({
    memory: memory(),
    cpus: cpus(),
    pids: int(16, 32768),
});

const GATEWAY_ADMIN_MODES = ["off", "localhost"] as const;
const GatewaySchema = obj({
    /** Caddy image with the rate-limit module (github.com/mholt/caddy-ratelimit). */
    image: image().default("citadel/caddy:2.11.9-ratelimit"),
    /** Build that image on the host from images/caddy (true), or use `image` as it is (pre-loaded or pullable). */
    build: bool().default(true),
    /** Caddy's admin API: "off", or "localhost" (inside the container's own network namespace only). Never 0.0.0.0. */
    adminApi: z.enum(GATEWAY_ADMIN_MODES, { error: (iss) => `${show(iss.input)} is not allowed: use "off" or "localhost" (an admin API on 0.0.0.0:2019 lets anyone reconfigure the edge)` }).default("localhost"),
    /** ACME directory; "internal" uses Caddy's local CA (for the local VPS and tests only). */
    acmeCa: z.union([z.literal("internal"), checked(str(), (v) => (/^https:\/\/[^\s"]+$/.test(v) ? undefined : `${show(v)} is not an https:// ACME directory URL or "internal"`))]).optional(),
    rateLimit: RateLimitSchema.default({ events: 100, window: "1m" }),
    contentSecurityPolicy: httpHeaderValue().default(DEFAULT_CSP),
    permissionsPolicy: httpHeaderValue().default(DEFAULT_PERMISSIONS_POLICY),
    referrerPolicy: z.enum(["no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"]).default("strict-origin-when-cross-origin"),
    hstsMaxAge: int(31536000, 63072000).default(31536000),
    resources: ResourcesSchema.default({ memory: "256m", cpus: 1, pids: 256 }),
});

const SiteSchema = obj({
    /** Host name this site answers on (one Caddy site block, automatic HTTPS). */
    host: hostname(),
    /** Name of the app (citadel:apps[].name) that serves it. */
    app: str(),
    /** Per-site override of the gateway's rate limit. */
    rateLimit: RateLimitSchema.optional(),
    /** Per-site override of the Content-Security-Policy. */
    contentSecurityPolicy: httpHeaderValue().optional(),
});

const HealthcheckSchema = obj({
    /** Exec-form command, e.g. ["/app/healthcheck"]; it runs inside the (read-only) container. */
    test: z.array(str()).min(1),
    interval: duration().default("30s"),
    timeout: duration().default("5s"),
    retries: int(1, 10).default(3),
});

export const BUILTIN_SECRETS = ["jwtSecret", "apiEncryptionKey", "postgresPassword", "redisPassword"] as const;
const SECRET_NAME_RE = /^[a-z][a-zA-Z0-9]{1,40}$/;

const AppSchema = obj({
    /** Container and DNS name on the edge network. */
    name: checked(str(), (v) =>
        RESERVED_APP_NAMES.includes(v) ? `${show(v)} is reserved for Citadel's own containers` : DNS_LABEL_RE.test(v) ? undefined : `${show(v)} is not a valid app name (lower-case letters, digits, '-', starting with a letter)`,
    ),
    image: image(),
    /** Port the app listens on inside the container (never published on the host). */
    port: int(1, 65535),
    /** Non-root uid:gid the container runs as. */
    user: uidGid().default("10001:10001"),
    /** Plain, non-secret environment. Secrets go in `secrets` and arrive as files (NAME_FILE). */
    env: z
        .record(
            checked(str(), (v) => (ENV_NAME_RE.test(v) ? undefined : `${show(v)} is not an environment variable name (A-Z, 0-9, _)`)),
            str(),
        )
        .default({}),
    /** Generated secrets mounted as files under /run/secrets, announced as <NAME>_FILE. */
    secrets: z.array(str()).default([]),
    /** Writable tmpfs paths; the root filesystem is read-only. */
    tmpfs: z.array(checked(str(), (v) => (/^\/[A-Za-z0-9._/-]*$/.test(v) && !v.includes("..") ? undefined : `${show(v)} is not an absolute path`))).default(["/tmp"]),
    /** Join the internal data network (reach Postgres/Redis). */
    data: bool().default(false),
    /** Outbound Internet access (e.g. third-party APIs). Off: the app can reach only the gateway and data. */
    egress: bool().default(false),
    healthcheck: HealthcheckSchema.optional(),
    resources: ResourcesSchema.default({ memory: "256m", cpus: 0.5, pids: 128 }),
});

const PostgresSchema = obj({
    enabled: bool().default(false),
    image: image().default("postgres:16.6-bookworm"),
    database: checked(str(), (v) => (UNIX_NAME_RE.test(v) ? undefined : `${show(v)} is not a valid database name`)).default("app"),
    user: checked(str(), (v) => (v === "postgres" ? `use an application role, not the superuser "postgres"` : UNIX_NAME_RE.test(v) ? undefined : `${show(v)} is not a valid role name`)).default("app"),
    resources: ResourcesSchema.default({ memory: "512m", cpus: 1, pids: 256 }),
});

export const DEFAULT_REDIS_DISABLED = ["FLUSHALL", "FLUSHDB", "KEYS", "CONFIG", "DEBUG", "SHUTDOWN", "MONITOR", "MODULE"];
const RedisSchema = obj({
    enabled: bool().default(false),
    image: image().default("redis:7.4.1-bookworm"),
    /** Commands the application user may not run (denied in the ACL). */
    disabledCommands: z
        .array(checked(str(), (v) => (/^[A-Z][A-Z0-9_-]*$/.test(v) ? undefined : `${show(v)} is not a Redis command name in upper case (e.g. "FLUSHALL")`)))
        .default(DEFAULT_REDIS_DISABLED),
    maxMemory: checked(str(), (v) => (/^[1-9][0-9]*(kb|mb|gb)$/.test(v) ? undefined : `${show(v)} is not a Redis memory size (e.g. 128mb)`)).default("128mb"),
    resources: ResourcesSchema.default({ memory: "256m", cpus: 0.5, pids: 128 }),
});

const days = () => int(1, 3650);
const SecretsSchema = obj({
    /** Rotation periods are counted from this date (YYYY-MM-DD); the secret is regenerated at each boundary. */
    rotationAnchor: checked(str(), (v) => (/^\d{4}-\d{2}-\d{2}$/.test(v) && !Number.isNaN(Date.parse(`${v}T00:00:00Z`)) ? undefined : `${show(v)} is not a date (YYYY-MM-DD)`)).default("2026-01-01"),
    /** Rotation period in days per secret (source policy: JWT quarterly, database passwords twice a year, API keys yearly). */
    rotationDays: obj({
        jwtSecret: days().default(90),
        apiEncryptionKey: days().default(365),
        postgresPassword: days().default(182),
        redisPassword: days().default(182),
        crowdsecBouncerKey: days().default(365),
    }).default({ jwtSecret: 90, apiEncryptionKey: 365, postgresPassword: 182, redisPassword: 182, crowdsecBouncerKey: 365 }),
    /** Extra generated API keys (name → rotation days), e.g. { internalApiKey: 365 }. */
    apiKeys: z.record(checked(str(), (v) => (SECRET_NAME_RE.test(v) ? undefined : `${show(v)} is not a secret name (camelCase letters and digits)`)), days()).default({}),
});

const SYSCTL_KEY_RE = /^[a-z0-9_]+(\.[a-zA-Z0-9_-]+)+$/;
const HostSchema = obj({
    /** Unattended security upgrades (Debian-Security origin only). */
    unattendedUpgrades: obj({
        enabled: bool().default(true),
        autoReboot: bool().default(false),
        autoRebootTime: checked(str(), (v) => (/^([01][0-9]|2[0-3]):[0-5][0-9]$/.test(v) ? undefined : `${show(v)} is not a time (HH:MM)`)).default("04:00"),
    }).default({ enabled: true, autoReboot: false, autoRebootTime: "04:00" }),
    journald: obj({
        /** How long logs are kept (source policy: 90 days). */
        maxRetentionDays: int(1, 3650).default(90),
        systemMaxUse: checked(str(), (v) => (/^[1-9][0-9]*[KMG]$/.test(v) ? undefined : `${show(v)} is not a size (e.g. 1G, 500M)`)).default("1G"),
    }).default({ maxRetentionDays: 90, systemMaxUse: "1G" }),
    /** Extra or overriding kernel parameters, e.g. { "net.ipv4.tcp_syncookies": "1" }. */
    sysctl: z
        .record(
            checked(str(), (v) => (SYSCTL_KEY_RE.test(v) ? undefined : `${show(v)} is not a sysctl key (e.g. net.ipv4.tcp_syncookies)`)),
            checked(str(), (v) => (/^[A-Za-z0-9 ._:-]{1,64}$/.test(v) ? undefined : `${show(v)} is not a plain sysctl value`)),
        )
        .default({}),
    docker: obj({
        logMaxSize: checked(str(), (v) => (/^[1-9][0-9]*[kmg]$/.test(v) ? undefined : `${show(v)} is not a size (e.g. 10m)`)).default("10m"),
        logMaxFile: int(1, 20).default(3),
    }).default({ logMaxSize: "10m", logMaxFile: 3 }),
});

export const TARGETS = ["hcloud", "existing"] as const;

export const StackConfigSchema = obj({
    /** Where the server comes from: "hcloud" creates one, "existing" takes any Debian 12 host over SSH. */
    target: z.enum(TARGETS, { error: (iss) => `${show(iss.input)} is not a target (one of ${TARGETS.join(", ")})` }).default("hcloud"),
    /** The apex domain (used for the ACME account and defaults). */
    domain: hostname(),
    /** ACME account e-mail (certificate expiry notices). */
    acmeEmail: checked(str(), (v) => (z.email().safeParse(v).success ? undefined : `${show(v)} is not an e-mail address (e.g. ops@example.com)`)),
    hcloud: HcloudSchema.optional(),
    existing: ExistingSchema.optional(),
    admin: AdminSchema,
    ssh: SshSchema.default(SshSchema.parse({})),
    firewall: FirewallSchema.default(FirewallSchema.parse({})),
    intrusion: IntrusionSchema.default(IntrusionSchema.parse({})),
    gateway: GatewaySchema.default(GatewaySchema.parse({})),
    sites: z.array(SiteSchema).default([]),
    apps: z.array(AppSchema).default([]),
    postgres: PostgresSchema.default(PostgresSchema.parse({})),
    redis: RedisSchema.default(RedisSchema.parse({})),
    secrets: SecretsSchema.default(SecretsSchema.parse({})),
    host: HostSchema.default(HostSchema.parse({})),
}).superRefine(crossChecks);

export type StackConfig = z.infer<typeof StackConfigSchema>;
export type AppConfig = StackConfig["apps"][number];
export type SiteConfig = StackConfig["sites"][number];
export type RateLimit = z.infer<typeof RateLimitSchema>;
export type Resources = z.infer<typeof ResourcesSchema>;
export type SshConfig = StackConfig["ssh"];
export type FirewallConfig = StackConfig["firewall"];
export type IntrusionConfig = StackConfig["intrusion"];
export type GatewayConfig = StackConfig["gateway"];
export type PostgresConfig = StackConfig["postgres"];
export type RedisConfig = StackConfig["redis"];
export type HostConfig = StackConfig["host"];
export type AdminConfig = StackConfig["admin"];

/** All secret names a stack generates: the built-ins it needs plus the declared API keys. */
export function secretNames(c: Pick<StackConfig, "secrets">): string[] {
    return [...BUILTIN_SECRETS, ...Object.keys(c.secrets.apiKeys)];
}

type Ctx = z.RefinementCtx;
function crossChecks(c: z.output<z.ZodObject<any>>, ctx: Ctx): void {
    const cfg = c as StackConfig;
    const add = (path: (string | number)[], message: string) => ctx.addIssue({ code: "custom", path, message });

    if (cfg.target === "existing" && !cfg.existing) {
        add(["existing"], `is required when citadel:target is "existing": set address, port and hostKey (e.g. {"address": "203.0.113.10", "hostKey": "ssh-ed25519 AAAA..."})`);
    }
    if (cfg.target === "hcloud" && cfg.existing) {
        add(["existing"], `is only used with citadel:target "existing"; remove it or set citadel:target to "existing"`);
    }
    const r = cfg.firewall.denyPorts;
    if (r.from > r.to) add(["firewall", "denyPorts"], `from (${r.from}) is above to (${r.to}); swap them`);
    for (const p of [22, 80, 443]) {
        if (p >= r.from && p <= r.to) add(["firewall", "denyPorts"], `the range ${r.from}-${r.to} includes port ${p}, which must stay open; deny a range of app ports only (e.g. 8001-8012)`);
    }

    const appNames = new Map<string, number>();
    cfg.apps.forEach((a, i) => {
        if (appNames.has(a.name)) add(["apps", i, "name"], `${show(a.name)} is already used by citadel:apps[${appNames.get(a.name)}]; app names must be unique`);
        else appNames.set(a.name, i);
    });
    const known = new Set(secretNames(cfg));
    cfg.apps.forEach((a, i) => {
        for (const k of Object.keys(a.env)) {
            if (SECRET_LOOKING_RE.test(k) && !k.endsWith("_FILE")) {
                add(["apps", i, "env", k], `looks like a secret; secrets never go in the environment: list a generated secret in citadel:apps[${i}].secrets (it arrives as a file, announced by ${k}_FILE)`);
            }
        }
        a.secrets.forEach((s, j) => {
            if (!known.has(s)) add(["apps", i, "secrets", j], `${show(s)} is not a generated secret (known: ${[...known].join(", ")}); declare extra keys in citadel:secrets.apiKeys`);
            else if (s === "postgresPassword" && !cfg.postgres.enabled) add(["apps", i, "secrets", j], `postgresPassword is only generated when citadel:postgres.enabled is true`);
            else if (s === "redisPassword" && !cfg.redis.enabled) add(["apps", i, "secrets", j], `redisPassword is only generated when citadel:redis.enabled is true`);
        });
        if (new Set(a.secrets).size !== a.secrets.length) add(["apps", i, "secrets"], `lists a secret twice`);
    });
    for (const k of Object.keys(cfg.secrets.apiKeys)) {
        if ((BUILTIN_SECRETS as readonly string[]).includes(k) || k === "crowdsecBouncerKey" || k === "postgresSuperuserPassword") add(["secrets", "apiKeys", k], `${show(k)} is a built-in secret; choose another name`);
    }

    const hosts = new Map<string, number>();
    cfg.sites.forEach((s, i) => {
        if (hosts.has(s.host)) add(["sites", i, "host"], `${show(s.host)} is already served by citadel:sites[${hosts.get(s.host)}]`);
        else hosts.set(s.host, i);
        if (!appNames.has(s.app)) {
            const names = [...appNames.keys()];
            add(["sites", i, "app"], `${show(s.app)} is not an app (${names.length ? `known: ${names.join(", ")}` : "citadel:apps is empty"}); add it to citadel:apps or fix the name`);
        }
    });
    if ((cfg.postgres.enabled || cfg.redis.enabled) && !cfg.apps.some((a) => a.data)) {
        add(["apps"], `Postgres/Redis are enabled but no app has "data": true, so nothing could reach them; set data: true on the app that uses them`);
    }
    cfg.apps.forEach((a, i) => {
        if (a.data && !cfg.postgres.enabled && !cfg.redis.enabled) add(["apps", i, "data"], `is true but neither citadel:postgres nor citadel:redis is enabled`);
    });
    if (cfg.host.sysctl["net.ipv4.ip_forward"] === "0") {
        add(["host", "sysctl", "net.ipv4.ip_forward"], `Docker needs IPv4 forwarding; remove this override`);
    }
}

// ---------------------------------------------------------------------------------------------
// Loading: raw Pulumi config (strings, objects as JSON) → typed config, or a list of clear errors.
// ---------------------------------------------------------------------------------------------

export type ParseResult = { ok: true; config: StackConfig } | { ok: false; errors: string[] };

/** Formats a zod issue path as a Pulumi config key: ["admin","sourceIps",1] → citadel:admin.sourceIps[1]. */
export function configKey(path: readonly PropertyKey[]): string {
    let out = CONFIG_NAMESPACE + ":";
    path.forEach((p, i) => {
        if (typeof p === "number") out += `[${p}]`;
        else if (i === 0) out += String(p);
        else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(String(p))) out += `.${String(p)}`;
        else out += `[${JSON.stringify(String(p))}]`;
    });
    return out;
}

function issueMessage(issue: z.core.$ZodIssue): string {
    switch (issue.code) {
        case "unrecognized_keys": {
            return issue.keys.map((k) => `${show(k)} is not a known setting${suggest(k, issue.path)}`).join("; ");
        }
        case "invalid_type":
            if (issue.input === undefined) return "is required";
            return issue.message;
        default:
            return issue.message;
    }
}

function suggest(key: string, path: readonly PropertyKey[]): string {
    const shape = shapeAt(path);
    if (!shape) return "";
    const best = closest(key, Object.keys(shape));
    return best ? `; did you mean ${show(best)}?` : "";
}

function shapeAt(path: readonly PropertyKey[]): Record<string, unknown> | undefined {
    // Walk the schema along the issue path to list the keys that are allowed there.
    let s: any = StackConfigSchema;
    for (const p of path) {
        s = unwrap(s);
        if (typeof p === "number") s = s?.element ?? s?._zod?.def?.element;
        else s = s?.shape?.[p as string];
    }
    s = unwrap(s);
    return s?.shape;
}

function unwrap(s: any): any {
    for (let i = 0; i < 10 && s; i++) {
        const def = s._zod?.def;
        if (!def) return s;
        if (def.type === "object" || def.type === "array") return s;
        s = def.innerType ?? def.in ?? def.schema ?? undefined;
    }
    return s;
}

function closest(key: string, options: string[]): string | undefined {
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

function levenshtein(a: string, b: string): number {
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

/**
 * Parses raw Pulumi config — the map of `citadel:key` → string that `pulumi.runtime.allConfig()` returns
 * (objects and lists arrive as JSON text) — into the typed stack config.
 * Keys of other namespaces (hcloud:, pulumi:) are ignored.
 */
export function parseConfig(raw: Record<string, string>): ParseResult {
    const input: Record<string, unknown> = {};
    const errors: string[] = [];
    for (const [fullKey, value] of Object.entries(raw)) {
        const idx = fullKey.indexOf(":");
        if (idx < 0 || fullKey.slice(0, idx) !== CONFIG_NAMESPACE) continue;
        const key = fullKey.slice(idx + 1);
        input[key] = decodeValue(value);
    }
    const result = StackConfigSchema.safeParse(input, { reportInput: true });
    if (!result.success) {
        for (const issue of result.error.issues) {
            const path = issue.path;
            const key = path.length ? configKey(path) : CONFIG_NAMESPACE;
            if (issue.code === "unrecognized_keys") {
                for (const k of issue.keys) errors.push(`${configKey([...path, k])}: is not a known setting${suggest(k, path)}`);
                continue;
            }
            errors.push(`${key}: ${issueMessage(issue)}`);
        }
        return { ok: false, errors: dedupe(errors) };
    }
    return { ok: true, config: result.data };
}

function dedupe(xs: string[]): string[] {
    return [...new Set(xs)];
}

function decodeValue(value: string): unknown {
    const t = value.trim();
    if (t.startsWith("{") || t.startsWith("[")) {
        try {
            return JSON.parse(t);
        } catch {
            return value;
        }
    }
    return value;
}

/** Thrown for bad configuration; its message lists every problem, one per line. */
export class ConfigError extends Error {
    constructor(readonly problems: string[]) {
        super(`Invalid Citadel configuration (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` + problems.map((p) => `  - ${p}`).join("\n"));
        this.name = "ConfigError";
    }
}

export function parseConfigOrThrow(raw: Record<string, string>): StackConfig {
    const r = parseConfig(raw);
    if (!r.ok) throw new ConfigError(r.errors);
    return r.config;
}

/** Reads a config object the way Pulumi would hand it over, from plain JS values (for scripts and tests). */
export function rawFromObject(values: Record<string, unknown>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(values)) {
        out[`${CONFIG_NAMESPACE}:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
    }
    return out;
}
