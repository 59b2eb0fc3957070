// The schema of the stack's configuration: every `citadel:<key>`, what it is, its default and why.
//
// Every knob is named here, defaulted secure and documented once; the README's configuration
// reference mirrors this file (test/unit/readme.test.ts). Each default is written once: objects use
// `.prefault({})`, which parses `{}` through the object so its fields' own defaults apply.
import { z } from "zod";
import { BackupSchema } from "./backup";
import { DEFAULT_MONITORING_IMAGES, DEFAULT_POSTGRES_IMAGE, DEFAULT_REDIS_IMAGE } from "./default-images";
import { crossChecks } from "./checks";
import { SSH_PORT } from "../posture/facts";
import {
    DNS_LABEL_RE,
    ENV_NAME_RE,
    IP_FORWARD_KEY,
    RESERVED_APP_NAMES,
    SECRET_NAME_RE,
    SYSCTL_KEY_RE,
    UNIX_NAME_RE,
    acmeDirectoryError,
    addressError,
    bool,
    checked,
    cidr,
    cpus,
    dateError,
    days,
    driftIntervalError,
    duration,
    hostKeyError,
    hostname,
    httpHeaderValue,
    image,
    int,
    ipForwardError,
    maxStartupsError,
    memory,
    obj,
    postgresMemoryError,
    promDurationError,
    receiverUrlError,
    emailListError,
    goProxyError,
    redisMemory,
    show,
    sshPublicKeyError,
    str,
    uidGid,
} from "./validators";

// ---------------------------------------------------------------------------------------------
// Server: a new Hetzner Cloud server, or an existing host
// ---------------------------------------------------------------------------------------------

export const HCLOUD_LOCATIONS = ["fsn1", "nbg1", "hel1", "ash", "hil", "sin"] as const;

const HcloudSchema = obj({
    /** Hetzner location of the server. Default "fsn1" (Falkenstein, EU). */
    location: z.enum(HCLOUD_LOCATIONS, { error: (iss) => `${show(iss.input)} is not a Hetzner location (one of ${HCLOUD_LOCATIONS.join(", ")})` }).default("fsn1"),
    /** Hetzner server type. Default "cx22" (2 vCPU, 4 GB: enough for the gateway, data and a few apps). */
    serverType: checked(str(), (v) => (/^[a-z]{2,4}[0-9]{1,3}$/.test(v) ? undefined : `${show(v)} is not a Hetzner server type (e.g. cx22, cpx21, cax11)`)).default("cx22"),
    /** Base image. Only "debian-12" (the default): Citadel's host scripts are written and tested for it. */
    image: z.literal("debian-12", { error: (iss) => `${show(iss.input)} is not supported: Citadel's host scripts target "debian-12"` }).default("debian-12"),
    /** Server name in the Hetzner console. Default "citadel". */
    serverName: checked(str(), (v) => (DNS_LABEL_RE.test(v) ? undefined : `${show(v)} is not a valid server name (lower-case letters, digits, '-')`)).default("citadel"),
});

const ExistingSchema = obj({
    /** Address (IP or DNS name) of a Debian 12 host that already runs sshd. Required, no default. */
    address: checked(str(), addressError),
    /** SSH port of the host. Default 22. */
    port: int(1, 65535).default(SSH_PORT),
    /**
     * The host's public ed25519 SSH host key ("ssh-ed25519 AAAA..."), pinned for every connection.
     * Required, no default: get it out of band (the provider's console, or `ssh-keyscan` over a trusted
     * path) — never trust on first use silently.
     */
    hostKey: checked(str(), hostKeyError),
});

// ---------------------------------------------------------------------------------------------
// Admin access and sshd
// ---------------------------------------------------------------------------------------------

const AdminSchema = obj({
    /** The non-root deploy user that Citadel creates and connects as. Default "deploy"; never root (root login is disabled). */
    user: checked(str(), (v) =>
        v === "root" ? `root may not be the admin user: root login is disabled; use e.g. "deploy"` : UNIX_NAME_RE.test(v) ? undefined : `${show(v)} is not a valid Unix user name (e.g. "deploy")`,
    ).default("deploy"),
    /** Public keys allowed to log in as the admin user (key-only SSH). Required, at least one: there are no passwords. */
    sshPublicKeys: z
        .array(checked(str(), sshPublicKeyError), { error: "expected a list of public key lines" })
        .min(1, { error: "at least one public key is required, or nobody can log in (add the line of ~/.ssh/id_ed25519.pub)" }),
    /** The matching private key on the operator's machine, used by Pulumi's SSH connections. Default "~/.ssh/id_ed25519". */
    privateKeyPath: str().default("~/.ssh/id_ed25519"),
    /** CIDRs allowed to reach SSH. Default []: SSH open to all, but rate-limited (UFW `limit`) and watched by CrowdSec/fail2ban. */
    sourceIps: z.array(cidr(), { error: "expected a list of CIDRs" }).default([]),
});

const STRONG_KEX = ["sntrup761x25519-sha512@openssh.com", "curve25519-sha256", "curve25519-sha256@libssh.org"];
const STRONG_CIPHERS = ["chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com", "aes128-gcm@openssh.com", "aes256-ctr", "aes192-ctr", "aes128-ctr"];
const STRONG_MACS = ["hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com", "umac-128-etm@openssh.com"];
const STRONG_HOSTKEY_ALGS = ["ssh-ed25519", "sk-ssh-ed25519@openssh.com", "rsa-sha2-512", "rsa-sha2-256"];
/** A list drawn from `allowed` (the ssh-audit-clean set), defaulting to all of it. */
const algList = (allowed: string[], what: string) =>
    z
        .array(
            checked(str(), (v) => (allowed.includes(v) ? undefined : `${show(v)} is not an accepted ${what} (allowed: ${allowed.join(", ")})`)),
            { error: `expected a list of ${what}s` },
        )
        .min(1, { error: `at least one ${what} is required` })
        .default(allowed);

const SshSchema = obj({
    /** sshd MaxAuthTries. Default 3 (1-6): few guesses per connection. */
    maxAuthTries: int(1, 6).default(3),
    /** sshd ClientAliveInterval in seconds. Default 300: idle sessions are probed every 5 minutes. */
    clientAliveInterval: int(30, 3600).default(300),
    /** sshd ClientAliveCountMax. Default 2: a dead session is dropped after 2 unanswered probes (10 minutes). */
    clientAliveCountMax: int(1, 10).default(2),
    /** sshd LoginGraceTime in seconds. Default 30: unauthenticated connections do not linger. */
    loginGraceTime: int(10, 120).default(30),
    /** sshd MaxSessions per connection. Default 4. */
    maxSessions: int(1, 20).default(4),
    /** sshd MaxStartups "start:rate:full". Default "10:30:60": unauthenticated floods are dropped early. */
    maxStartups: checked(str(), maxStartupsError).default("10:30:60"),
    /** Key exchange algorithms. Default: all of the post-quantum/curve25519 set (ssh-audit clean); only those are accepted. */
    kexAlgorithms: algList(STRONG_KEX, "key exchange algorithm"),
    /** Ciphers. Default: all of the AEAD/CTR set (ssh-audit clean); only those are accepted. */
    ciphers: algList(STRONG_CIPHERS, "cipher"),
    /** MACs. Default: all of the encrypt-then-MAC set (ssh-audit clean); only those are accepted. */
    macs: algList(STRONG_MACS, "MAC"),
    /** Host key algorithms. Default: ed25519 and RSA with SHA-2 (no ssh-rsa/SHA-1); only those are accepted. */
    hostKeyAlgorithms: algList(STRONG_HOSTKEY_ALGS, "host key algorithm"),
    /**
     * Confirm-or-revert window in seconds: after each sshd reload the host puts the previous drop-in
     * back unless a NEW SSH connection (the sshd-confirm step) confirms it within this time. Default
     * 90 (30-600): long enough for a new connection on a loaded host or a slow link, short enough that
     * an operator locked out by a bad value waits about a minute and a half.
     */
    rollbackSeconds: int(30, 600).default(90),
});

// ---------------------------------------------------------------------------------------------
// Firewall and intrusion prevention
// ---------------------------------------------------------------------------------------------

const FirewallSchema = obj({
    /** App ports explicitly denied from outside (they must only be reached through the gateway). Default 8001-8012. */
    denyPorts: obj({
        /** First port of the range. */
        from: int(1, 65535),
        /** Last port of the range (inclusive). */
        to: int(1, 65535),
    }).prefault({ from: 8001, to: 8012 }),
    /** UFW `limit` on SSH: 6 new connections in 30 s from one address are rejected. Default true. */
    sshRateLimit: bool().default(true),
});

const INTRUSION_ENGINES = ["crowdsec", "fail2ban"] as const;
const IntrusionSchema = obj({
    /** "crowdsec" (the default: behaviour scenarios + firewall bouncer) or "fail2ban" (sshd jail). */
    engine: z.enum(INTRUSION_ENGINES, { error: (iss) => `${show(iss.input)} is not an intrusion engine (one of ${INTRUSION_ENGINES.join(", ")})` }).default("crowdsec"),
    /** fail2ban: failures before a ban. Default 3. */
    maxRetry: int(1, 20).default(3),
    /** Ban length in seconds (fail2ban bantime, CrowdSec's ban duration). Default 3600 (1 hour). */
    banTime: int(60, 604800).default(3600),
    /** fail2ban: window in seconds in which failures are counted. Default 600 (10 minutes). */
    findTime: int(60, 86400).default(600),
    /** CIDRs never banned (your office, your monitoring). Default []: nobody is exempt. */
    ignoreIps: z.array(cidr()).default([]),
    /**
     * CrowdSec only: keep the hub's crowdsecurity/whitelists parser, which never bans loopback and the
     * private ranges (10/8, 172.16/12, 192.168/16 — Docker's bridges, a Hetzner private network).
     * Default true, as upstream ships it; the local stack turns it off so a lab address can be banned (audit).
     */
    whitelistPrivateRanges: bool().default(true),
    /**
     * CrowdSec only: how long after failed SSH connections from a source a login by key from it may
     * still come before they count as a stranger's and end in a ban (citadel/ssh-failed-no-login: 2 or
     * more failed connections). Default 300 (5 minutes: time for an operator whose agent offers the
     * wrong keys to fix the client). The local stack uses 30 so the audit sees the ban in its budget.
     */
    loginWindowSeconds: int(10, 3600).default(300),
});

// ---------------------------------------------------------------------------------------------
// Edge (Caddy), sites and apps
// ---------------------------------------------------------------------------------------------

const DEFAULT_CSP = "default-src 'self'; base-uri 'self'; object-src 'none'; frame-ancestors 'none'; form-action 'self'; upgrade-insecure-requests";
const DEFAULT_PERMISSIONS_POLICY = "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=(), interest-cohort=()";

const RateLimitSchema = obj({
    /** Requests one client address may make per window before getting 429. Default 100. */
    events: int(1, 1000000).default(100),
    /** The window. Default "1m". */
    window: duration().default("1m"),
});

/** Container limits. No field defaults: each container states its own limits (below), all three at once. */
const ResourcesSchema = obj({
    /** Memory limit, no swap (e.g. "256m", "1g"). */
    memory: memory(),
    /** CPU limit in CPUs (e.g. 0.5). */
    cpus: cpus(),
    /** Process limit (fork bombs). */
    pids: int(16, 32768),
});

const GATEWAY_ADMIN_MODES = ["off", "localhost"] as const;
const REFERRER_POLICIES = ["no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"] as const;
/** A request body size as Caddy reads it (decimal or binary units). */
const requestBodySize = () => checked(str(), (v) => (/^[1-9][0-9]*(KB|MB|GB|KiB|MiB|GiB)$/.test(v) ? undefined : `${show(v)} is not a size (e.g. 10MB, 512KB, 1GiB)`));

const GatewaySchema = obj({
    /** Caddy image with the rate-limit module (github.com/mholt/caddy-ratelimit). Default "citadel/caddy:2.11.9-ratelimit" (built from images/caddy). */
    image: image().default("citadel/caddy:2.11.9-ratelimit"),
    /** Build that image on the host from images/caddy (true, the default), or use `image` as it is (pre-loaded or pullable). */
    build: bool().default(true),
    /**
     * Where that build takes its toolchain and base from (with `build`): images/caddy/Dockerfile's
     * GO_IMAGE, BASE_IMAGE and GOPROXY build arguments. Default: unset, the Dockerfile's own
     * (Go's official image and Debian's slim image from Docker Hub, each pinned by digest; Go's
     * default module proxy). Set them for a host without Docker Hub (a mirror, images loaded beforehand).
     */
    buildFrom: obj({
        /** The Go toolchain image of the build stage (GO_IMAGE), e.g. "golang:1.26.8-bookworm@sha256:<digest>". */
        goImage: image().optional(),
        /** The runtime base image (BASE_IMAGE), a Debian 12, e.g. "debian:12.15-slim@sha256:<digest>". */
        baseImage: image().optional(),
        /** GOPROXY for the module download: "off" (the Go image carries the modules), or proxy URLs (https://) with "direct"/"off", comma-separated. */
        goProxy: checked(str(), goProxyError).optional(),
    }).prefault({}),
    /**
     * Caddy's admin API: "off" (the default: nothing in the stack uses it; a changed Caddyfile re-creates
     * the container instead of a reload), or "localhost" (inside the container's own network namespace
     * only). Never 0.0.0.0.
     */
    adminApi: z.enum(GATEWAY_ADMIN_MODES, { error: (iss) => `${show(iss.input)} is not allowed: use "off" or "localhost" (an admin API on 0.0.0.0:2019 lets anyone reconfigure the edge)` }).default("off"),
    /** Largest request body a site accepts (Caddy size: 10MB, 512KB, 1GiB); larger gets 413. Default "10MB". */
    maxRequestBody: requestBodySize().default("10MB"),
    /** ACME directory URL (https://), or "internal" for Caddy's local CA (local VPS and tests only). Default: unset, Let's Encrypt. */
    acmeCa: z.union([z.literal("internal"), checked(str(), acmeDirectoryError)]).optional(),
    /** Per-client rate limit of every site. Default 100 requests per minute. */
    rateLimit: RateLimitSchema.prefault({}),
    /** Content-Security-Policy. Default: same-origin only, no framing, no plugins, upgrade to HTTPS. */
    contentSecurityPolicy: httpHeaderValue().default(DEFAULT_CSP),
    /** Permissions-Policy. Default: every powerful feature off (camera, microphone, geolocation, ...). */
    permissionsPolicy: httpHeaderValue().default(DEFAULT_PERMISSIONS_POLICY),
    /** Referrer-Policy. Default "strict-origin-when-cross-origin": no paths leak to other sites. */
    referrerPolicy: z.enum(REFERRER_POLICIES, { error: (iss) => `${show(iss.input)} is not a Referrer-Policy (one of ${REFERRER_POLICIES.join(", ")})` }).default("strict-origin-when-cross-origin"),
    /** HSTS max-age in seconds, 1-2 years. Default 31536000 (1 year, the preload list's minimum). */
    hstsMaxAge: int(31536000, 63072000).default(31536000),
    /** The gateway container's limits. Default 256m, 1 CPU, 256 pids. */
    resources: ResourcesSchema.prefault({ memory: "256m", cpus: 1, pids: 256 }),
});

const SiteSchema = obj({
    /** Host name this site answers on (one Caddy site block, automatic HTTPS). Required. */
    host: hostname(),
    /** Name of the app (citadel:apps[].name) that serves it. Required. */
    app: str(),
    /** Per-site override of the gateway's rate limit. Default: citadel:gateway.rateLimit. */
    rateLimit: RateLimitSchema.optional(),
    /** Per-site override of the Content-Security-Policy. Default: citadel:gateway.contentSecurityPolicy. */
    contentSecurityPolicy: httpHeaderValue().optional(),
    /** Per-site override of the request body limit. Default: citadel:gateway.maxRequestBody. */
    maxRequestBody: requestBodySize().optional(),
});

const HealthcheckSchema = obj({
    /** Exec-form command, e.g. ["/app/healthcheck"]; it runs inside the (read-only) container. Required. */
    test: z.array(str()).min(1, { error: `at least one word is required (e.g. ["/app/healthcheck"])` }),
    /** Time between checks. Default "30s". */
    interval: duration().default("30s"),
    /** Time a check may take. Default "5s". */
    timeout: duration().default("5s"),
    /** Failed checks before the container is unhealthy. Default 3. */
    retries: int(1, 10).default(3),
});

const AppSchema = obj({
    /** Container and DNS name on the edge network. Required; unique; not one of Citadel's own container names. */
    name: checked(str(), (v) =>
        RESERVED_APP_NAMES.includes(v) ? `${show(v)} is reserved for Citadel's own containers` : DNS_LABEL_RE.test(v) ? undefined : `${show(v)} is not a valid app name (lower-case letters, digits, '-', starting with a letter)`,
    ),
    /** Image reference with a version tag or digest (never "latest"). Required. */
    image: image(),
    /** Port the app listens on inside the container (never published on the host). Required. */
    port: int(1, 65535),
    /** Non-root numeric uid:gid the container runs as. Default "10001:10001". */
    user: uidGid().default("10001:10001"),
    /** Plain, non-secret environment. Default {}. Secrets go in `secrets` and arrive as files (NAME_FILE). */
    env: z
        .record(
            checked(str(), (v) => (ENV_NAME_RE.test(v) ? undefined : `${show(v)} is not an environment variable name (A-Z, 0-9, _)`)),
            str(),
        )
        .default({}),
    /** Generated secrets mounted as files under /run/secrets, announced as <NAME>_FILE. Default []. */
    secrets: z.array(str()).default([]),
    /** Writable tmpfs paths; the root filesystem is read-only. Default ["/tmp"]. */
    tmpfs: z.array(checked(str(), (v) => (/^\/[A-Za-z0-9._/-]*$/.test(v) && !v.includes("..") ? undefined : `${show(v)} is not an absolute path`))).default(["/tmp"]),
    /** Join the internal data network (reach Postgres/Redis). Default false. */
    data: bool().default(false),
    /** Outbound Internet access (e.g. third-party APIs). Default false: the app reaches only the gateway and data. */
    egress: bool().default(false),
    /** Container healthcheck. Default: none (the image's own HEALTHCHECK, if any). */
    healthcheck: HealthcheckSchema.optional(),
    /** The app container's limits. Default 256m, 0.5 CPU, 128 pids. */
    resources: ResourcesSchema.prefault({ memory: "256m", cpus: 0.5, pids: 128 }),
});

// ---------------------------------------------------------------------------------------------
// Data services
// ---------------------------------------------------------------------------------------------

const PostgresSchema = obj({
    /** Run Postgres on the internal data network. Default false. */
    enabled: bool().default(false),
    /** Postgres image (pinned). Default DEFAULT_POSTGRES_IMAGE (default-images.ts: Postgres 16 by digest). */
    image: image().default(DEFAULT_POSTGRES_IMAGE),
    /** The Postgres container's limits (its memory settings derive from them). Default 512m, 1 CPU, 256 pids; at least 128m. */
    resources: ResourcesSchema.superRefine((r, ctx) => {
        const msg = postgresMemoryError(r.memory);
        if (msg) ctx.addIssue({ code: "custom", path: ["memory"], message: msg });
    }).prefault({ memory: "512m", cpus: 1, pids: 256 }),
});

export const DEFAULT_REDIS_DISABLED = ["FLUSHALL", "FLUSHDB", "KEYS", "CONFIG", "DEBUG", "SHUTDOWN", "MONITOR", "MODULE"];
const RedisSchema = obj({
    /** Run Redis on the internal data network. Default false. */
    enabled: bool().default(false),
    /** Redis image (pinned). Default DEFAULT_REDIS_IMAGE (default-images.ts: Redis 7.4 by digest). */
    image: image().default(DEFAULT_REDIS_IMAGE),
    /** Commands the application user may not run (denied in the ACL). Default: FLUSHALL, FLUSHDB, KEYS, CONFIG, DEBUG, SHUTDOWN, MONITOR, MODULE. */
    disabledCommands: z
        .array(checked(str(), (v) => (/^[A-Z][A-Z0-9_-]*$/.test(v) ? undefined : `${show(v)} is not a Redis command name in upper case (e.g. "FLUSHALL")`)))
        .default(DEFAULT_REDIS_DISABLED),
    /** maxmemory (noeviction). Default "128mb"; at most 3/4 of resources.memory (the AOF rewrite forks). */
    maxMemory: redisMemory().default("128mb"),
    /** The Redis container's limits. Default 256m, 0.5 CPU, 128 pids. */
    resources: ResourcesSchema.prefault({ memory: "256m", cpus: 0.5, pids: 128 }),
});

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

const SecretsSchema = obj({
    /** Rotation periods are counted from this date (YYYY-MM-DD); a secret is regenerated at each boundary. Default "2026-01-01". */
    rotationAnchor: checked(str(), dateError).default("2026-01-01"),
    /** Rotation period in days per secret (source policy: JWT quarterly, database passwords twice a year, API keys yearly). */
    rotationDays: obj({
        /** JWT signing secret. Default 90 days. */
        jwtSecret: days().default(90),
        /** API encryption key. Default 365 days. */
        apiEncryptionKey: days().default(365),
        /** Postgres application role password. Default 182 days. */
        postgresPassword: days().default(182),
        /** Redis application user password. Default 182 days. */
        redisPassword: days().default(182),
        /** CrowdSec firewall bouncer's API key. Default 365 days. */
        crowdsecBouncerKey: days().default(365),
    }).prefault({}),
    /** Extra generated API keys (name → rotation days), e.g. { internalApiKey: 365 }. Default {}. */
    apiKeys: z.record(checked(str(), (v) => (SECRET_NAME_RE.test(v) ? undefined : `${show(v)} is not a secret name (camelCase letters and digits)`)), days()).default({}),
    /**
     * Forced rotation (incident response): per generated secret, a number added to its computed epoch.
     * Raise it by one (`citadel rotate <secret>`) and the next `pulumi up` rotates that secret now.
     * Never lower it: the epoch would go back and regenerate, not restore, an older value. Default {}.
     */
    rotateNow: z.record(checked(str(), (v) => (SECRET_NAME_RE.test(v) ? undefined : `${show(v)} is not a secret name (e.g. "jwtSecret")`)), int(0, 1000)).default({}),
    /** How many previous generations of a secret stay readable by the apps after a rotation. */
    keepPrevious: obj({
        /**
         * JWT secret: 1 keeps the previous secret (JWT_SECRET_PREVIOUS_FILE) for one period, so tokens
         * signed before a rotation validate until they expire; 0 after a leak (the previous file then
         * carries the current secret). Default 1.
         */
        jwtSecret: int(0, 1).default(1),
        /**
         * API encryption keyring: old keys kept for decryption (API_ENCRYPTION_KEYRING_FILE). Data still
         * under a key older than that becomes unreadable: re-encrypt it with the current key within
         * (keepPrevious + 1) periods. Default 2 (with the yearly period: two years to re-encrypt).
         */
        apiEncryptionKey: int(0, 10).default(2),
    }).prefault({}),
});

// ---------------------------------------------------------------------------------------------
// Host baseline
// ---------------------------------------------------------------------------------------------

/** The default notice before login (citadel:host.os.banner): the terms Lynis looks for, in plain words. */
export const DEFAULT_BANNER =
    "Authorized access only. This system is private property; its use is restricted to authorized users and is monitored and logged. Unauthorized access is prohibited and may be reported to law enforcement.";
/**
 * Modules nobody on a Citadel host needs (citadel:host.os.disabledModules): network protocols (Lynis
 * NETW-3200, CIS 3.5), filesystems (CIS 1.1.1) and removable storage (Lynis USB-1000, STRG-1846).
 * Not udf, vfat or iso9660: cloud-init may read its seed from such a disk.
 */
export const DEFAULT_DISABLED_MODULES = ["dccp", "sctp", "rds", "tipc", "cramfs", "freevxfs", "hfs", "hfsplus", "jffs2", "usb-storage", "firewire-core"] as const;

const HostSchema = obj({
    /** Unattended security upgrades (Debian-Security origin only). */
    unattendedUpgrades: obj({
        /** Install security updates daily. Default true. */
        enabled: bool().default(true),
        /**
         * Reboot at autoRebootTime when an update needs it (/var/run/reboot-required: a new kernel).
         * Default true: a kernel fix only protects once it runs (source policy: patches within 7 days).
         */
        autoReboot: bool().default(true),
        /**
         * After each upgrade, services still using replaced libraries (libc, OpenSSL...): "auto" restarts
         * them (needrestart), "list" only reports them in the journal. Default "auto".
         */
        restartServices: z.enum(["auto", "list"]).default("auto"),
        /** When an automatic reboot happens (HH:MM, the host's time zone): the reboot window. Default "04:00". */
        autoRebootTime: checked(str(), (v) => (/^([01][0-9]|2[0-3]):[0-5][0-9]$/.test(v) ? undefined : `${show(v)} is not a time (HH:MM)`)).default("04:00"),
        /**
         * Install the pending Debian-Security updates during the converge itself (first converge, and
         * whenever this step changes), before any container publishes a port, instead of at the first
         * nightly run: a fresh server image lags the security archive by its age. Default true.
         */
        applyAtConverge: bool().default(true),
        /** Upper bound for that run (apt-get update, then unattended-upgrade), in seconds. Default 900. */
        applyTimeoutSeconds: int(60, 3600).default(900),
    }).prefault({}),
    /** The systemd journal (and the retention of every security log: sshd, Postgres, Redis, CrowdSec, Caddy's access log). */
    journald: obj({
        /**
         * How long logs are kept, in days, then deleted: the journal (which also receives the Postgres and
         * Redis containers' logs) and Caddy's access log. Default 90 (source policy).
         */
        maxRetentionDays: int(1, 3650).default(90),
        /** Disk the journal may use (e.g. 1G, 500M). Default "1G". */
        systemMaxUse: checked(str(), (v) => (/^[1-9][0-9]*[KMG]$/.test(v) ? undefined : `${show(v)} is not a size (e.g. 1G, 500M)`)).default("1G"),
    }).prefault({}),
    /**
     * Extra or overriding kernel parameters, e.g. { "net.ipv4.tcp_syncookies": "1" }. Default {}: the
     * dev-sec/KSPP baseline of components/render/host.ts. net.ipv4.ip_forward must stay "1" (Docker).
     */
    sysctl: z
        .record(
            checked(str(), (v) => (SYSCTL_KEY_RE.test(v) ? undefined : `${show(v)} is not a sysctl key (e.g. net.ipv4.tcp_syncookies)`)),
            checked(str(), (v) => (/^[A-Za-z0-9 ._:-]{1,64}$/.test(v) ? undefined : `${show(v)} is not a plain sysctl value`)),
        )
        .superRefine((sysctl, ctx) => {
            const forward = sysctl[IP_FORWARD_KEY];
            const msg = forward === undefined ? undefined : ipForwardError(forward);
            if (msg) ctx.addIssue({ code: "custom", path: [IP_FORWARD_KEY], message: msg });
        })
        .default({}),
    /**
     * The rest of the OS baseline (dev-sec os-hardening and Lynis suggestions that fit a Docker host):
     * a legal notice before login, no core dumps, kernel modules nobody on this host needs.
     */
    os: obj({
        /**
         * The notice in /etc/issue (the provider's console) and /etc/issue.net (telnet-style network
         * logins; sshd shows no pre-login banner here, since every SSH client, Pulumi's included, would
         * receive it): who may use the host and that it is monitored. Plain text, no backslashes
         * (agetty reads them as escapes).
         */
        banner: checked(str(), (v) =>
            v.trim() === ""
                ? "is empty: write the notice shown before login (e.g. who may use this host and that activity is logged)"
                : v.includes("\\")
                  ? `${show(v)} has a backslash, which agetty reads as an escape in /etc/issue: remove it`
                  : v.length > 2000 || /[^\t\n\x20-\x7e]/.test(v)
                    ? `${show(v.slice(0, 60))} must be printable ASCII text of at most 2000 characters`
                    : undefined,
        ).default(DEFAULT_BANNER),
        /**
         * Core dumps (which can hold secrets from a process's memory): false turns them off for logins
         * (limits.d hard limit 0) and for services (systemd-coredump stores nothing); setuid programs
         * never dump (sysctl fs.suid_dumpable 0). Default false.
         */
        coreDumps: bool().default(false),
        /**
         * Kernel modules that are never loaded (modprobe.d `install <module> /bin/false` plus
         * `blacklist`): rarely used network protocols with a history of remote bugs, old filesystems,
         * and removable storage a server in a data centre does not use. [] loads whatever is asked for.
         */
        disabledModules: z
            .array(checked(str(), (v) => (/^[a-z0-9][a-z0-9_-]{0,63}$/.test(v) ? undefined : `${show(v)} is not a kernel module name (e.g. dccp)`)))
            .default([...DEFAULT_DISABLED_MODULES]),
        /**
         * UMASK in /etc/login.defs: the default umask of new home directories (useradd) and of login
         * sessions where pam_umask reads it. "027": files an account creates are not readable by other
         * accounts. Citadel's own steps set their umask themselves.
         */
        umask: checked(str(), (v) =>
            !/^0?[0-7]{3}$/.test(v)
                ? `${show(v)} is not an octal umask (e.g. 027)`
                : (parseInt(v, 8) & 0o002) === 0
                  ? `${show(v)} lets every account write the files others create: use 027 (or 022)`
                  : undefined,
        ).default("027"),
        /**
         * SHA_CRYPT_MIN_ROUNDS and SHA_CRYPT_MAX_ROUNDS in /etc/login.defs (ENCRYPT_METHOD SHA512, Debian's
         * own): the cost of the SHA-512 hashes the shadow tools make from login.defs (chpasswd -c,
         * newusers, chgpasswd). A password set through PAM (passwd) is hashed by pam_unix with yescrypt,
         * Debian 12's stronger default, which this does not change. Citadel's admin logs in by key only.
         * Default 65536 (glibc's default is 5000).
         */
        passwordHashRounds: int(5000, 10_000_000).default(65536),
        /**
         * libpam-tmpdir: each login session gets its own TMPDIR (/tmp/user/<uid>, mode 0700), so one
         * account's temporary files are not in a directory every account can list. Default true.
         */
        pamTmpdir: bool().default(true),
        /**
         * debsums: the audit (`in-packages-intact`) compares every installed package's files with the
         * checksums dpkg recorded, so a replaced binary is found. Default true.
         */
        packageVerification: bool().default(true),
        /**
         * auditd with the CIS Docker Benchmark's watches (1.1.3-1.1.18) on the Docker daemon, its
         * configuration and binaries (components/render/auditd.ts), key citadel-docker. Default true.
         * false removes Citadel's rules (auditd stays installed).
         */
        auditDocker: bool().default(true),
    }).prefault({}),
    /** Caddy's access log (a file per day, kept citadel:host.journald.maxRetentionDays days). */
    accessLog: obj({
        /**
         * Disk budget for the access log and its rolled files (e.g. 2G, 500M). The audit fails when, at
         * the current rate, the retention period would need more. Default "2G".
         */
        maxUse: checked(str(), (v) => (/^[1-9][0-9]*[KMG]$/.test(v) ? undefined : `${show(v)} is not a size (e.g. 2G, 500M)`)).default("2G"),
    }).prefault({}),
    /** The Docker engine's json-file log rotation (daemon.json); Postgres and Redis log to the journal instead. */
    docker: obj({
        /** Size of one container log file. Default "10m". */
        logMaxSize: checked(str(), (v) => (/^[1-9][0-9]*[kmg]$/.test(v) ? undefined : `${show(v)} is not a size (e.g. 10m)`)).default("10m"),
        /** Rotated files kept per container. Default 3. */
        logMaxFile: int(1, 20).default(3),
        /**
         * Serve the sites over IPv6 too. The gateway's network gets a fixed ULA /64 beside its IPv4
         * subnet and the gateway a fixed address in it; Citadel's own DNAT (ip6tables nat, declared in
         * /etc/ufw/after6.rules) sends the host's gateway ports (GATEWAY_PORTS) there, so Caddy and CrowdSec see the client's
         * real IPv6 address; a UFW route rule lets exactly that through, and IPv6 traffic to containers
         * is filtered and banned (per /64) like IPv4. Docker's own IPv6 NAT stays off (no `ip6tables`,
         * no `experimental`). Default true: Hetzner servers have IPv6. On a host without IPv6 the
         * firewall step stops before any change and names this key: set it to false there.
         */
        ipv6: bool().default(true),
    }).prefault({}),
});

// ---------------------------------------------------------------------------------------------
// Monitoring and alerts (issue 12): Prometheus, Alertmanager, exporters, rules, receivers
// ---------------------------------------------------------------------------------------------

/** A count threshold: at least 1 (a threshold of 0 fires on every evaluation, so it is refused). */
const threshold = (max: number) =>
    z
        .number({ error: (iss) => `expected a whole number, got ${show(iss.input)}` })
        .int({ error: (iss) => `expected a whole number, got ${show(iss.input)}` })
        .min(1, { error: (iss) => `${show(iss.input)} would alert on every evaluation (or never); use at least 1 (e.g. 10)` })
        .max(max, { error: (iss) => `${show(iss.input)} is above the maximum ${max}` });

/** "more than `count` events in `window`" (the rules compare the counter with its value `window` ago). */
const windowThreshold = (count: number, window: string) =>
    obj({
        /** Fire when more than this many events happen in the window. At least 1. */
        count: threshold(1000000).default(count),
        /** The window, a Prometheus duration (e.g. 5m). */
        window: checked(str(), promDurationError).default(window),
    }).prefault({});

const ThresholdsSchema = obj({
    /** Failed SSH logins (CrowdSec's sshd parser, every source) — the seed policy: more than 10 in 5 minutes. */
    failedSshLogins: windowThreshold(10, "5m"),
    /** Ban storm: more than 20 new CrowdSec bans (scenario overflows) in 10 minutes. */
    bans: windowThreshold(20, "10m"),
    /** 401/403 answers of the gateway: more than 50 in 5 minutes (credential stuffing, a scanner). */
    authFailures: windowThreshold(50, "5m"),
    /** 429 answers of the gateway's rate limit: more than 100 in 5 minutes (a flood or a misbehaving client). */
    rateLimited: windowThreshold(100, "5m"),
    /** Restarts of one container (Docker's restart policy): more than 3 in 15 minutes is a loop. */
    containerRestarts: windowThreshold(3, "15m"),
    /** Alert when the served TLS certificate expires within this many days. Default 14. */
    tlsExpiryDays: threshold(365).default(14),
    /** Alert when a filesystem is fuller than this (percent). Default 85. */
    diskPercent: threshold(99).default(85),
    /** Alert when security updates have been pending for more than this many days. Default 7. */
    securityUpdatesDays: threshold(365).default(7),
    /** Alert when a reboot has been required for more than this many days. Default 7. */
    rebootRequiredDays: threshold(365).default(7),
});

export const RECEIVER_KINDS = ["webhook", "slack", "email"] as const;
const ReceiverSchema = obj({
    /** Name the route refers to (citadel:monitoring.route.receiver). Required. */
    name: checked(str(), (v) => (DNS_LABEL_RE.test(v) ? undefined : `${show(v)} is not a receiver name (lower-case letters, digits, '-')`)),
    /**
     * "webhook": Alertmanager's generic JSON POST (any HTTPS endpoint; ntfy topics take it as is);
     * "slack": a Slack incoming-webhook URL (Slack's message format); "email": mail through an SMTP
     * server (`url` smtp://user:password@host:587 with STARTTLS required, or smtps://...:465). Default "webhook".
     */
    kind: z.enum(RECEIVER_KINDS, { error: (iss) => `${show(iss.input)} is not a receiver kind (one of ${RECEIVER_KINDS.join(", ")})` }).default("webhook"),
    /**
     * The endpoint URL, https:// (it usually carries a token: set it with `pulumi config set --secret
     * --path`). It reaches the host only inside Alertmanager's configuration file, a 0400 secret file;
     * never in the posture, an output or a log. Required.
     */
    url: checked(str(), receiverUrlError),
    /** "email" only: the recipients, comma-separated (e.g. "ops@example.com"). Required for "email". */
    to: checked(str(), (v) => emailListError(v, "recipient")).optional(),
    /** "email" only: the sender address (e.g. "citadel@example.com"). Required for "email". */
    from: checked(str(), (v) => emailListError(v, "sender", false)).optional(),
    /** Also send a message when an alert is resolved. Default true. */
    sendResolved: bool().default(true),
});

const MonitoringSchema = obj({
    /** Prometheus, Alertmanager and the exporters on the host, with the alert rules below. Default true. */
    enabled: bool().default(true),
    /** How often Prometheus scrapes every target and evaluates the rules. Default "30s". */
    scrapeInterval: checked(str(), promDurationError).default("30s"),
    /** How often the in-host drift audit runs (systemd timer); at most 15m. Default "15m". */
    driftInterval: checked(str(), driftIntervalError).default("15m"),
    /** How long Prometheus keeps metrics. Default "15d". */
    retention: checked(str(), (v) => (/^[1-9][0-9]*[hdw]$/.test(v) ? undefined : `${show(v)} is not a retention (e.g. 15d, 2w)`)).default("15d"),
    /** When each alert fires. */
    thresholds: ThresholdsSchema.prefault({}),
    /** Where alerts go. Default []: alerts are only in Alertmanager's UI (through the SSH tunnel) and the audit fails in-monitoring. */
    receivers: z.array(ReceiverSchema, { error: "expected a list of receivers ({name, kind, url})" }).default([]),
    /** Alertmanager's route. */
    route: obj({
        /** The receiver every alert goes to (a citadel:monitoring.receivers[].name). Default: the first receiver. */
        receiver: str().optional(),
        /** How long a new group waits for more alerts before it is sent. Default "30s". */
        groupWait: checked(str(), promDurationError).default("30s"),
        /** How often a still-firing alert is sent again. Default "4h". */
        repeatInterval: checked(str(), promDurationError).default("4h"),
    }).prefault({}),
    /**
     * Accept http:// receiver URLs. Only with citadel:target "existing" (the local lab's receiver has
     * no certificate); refused on hcloud, where alerts would cross the Internet in clear. Default false.
     */
    allowPlainHttpReceivers: bool().default(false),
    /** Images. Defaults: the Prometheus project's own, pinned by digest (default-images.ts). */
    images: obj({
        prometheus: image().default(DEFAULT_MONITORING_IMAGES.prometheus),
        alertmanager: image().default(DEFAULT_MONITORING_IMAGES.alertmanager),
        nodeExporter: image().default(DEFAULT_MONITORING_IMAGES.nodeExporter),
        blackboxExporter: image().default(DEFAULT_MONITORING_IMAGES.blackboxExporter),
    }).prefault({}),
    /** Prometheus' container limits. Default 512m, 1 CPU, 256 pids. */
    prometheusResources: ResourcesSchema.prefault({ memory: "512m", cpus: 1, pids: 256 }),
    /** Limits of Alertmanager and of each exporter. Default 128m, 0.25 CPU, 64 pids. */
    exporterResources: ResourcesSchema.prefault({ memory: "128m", cpus: 0.25, pids: 64 }),
});

// ---------------------------------------------------------------------------------------------
// The stack
// ---------------------------------------------------------------------------------------------

export const TARGETS = ["hcloud", "existing"] as const;

/** The stack's keys without the cross-field checks (its output type is StackConfig). */
const StackConfigObject = obj({
    /** Where the server comes from: "hcloud" (the default) creates one, "existing" takes any Debian 12 host over SSH. */
    target: z.enum(TARGETS, { error: (iss) => `${show(iss.input)} is not a target (one of ${TARGETS.join(", ")})` }).default("hcloud"),
    /** The apex domain (used for the ACME account and defaults). Required. */
    domain: hostname(),
    /** ACME account e-mail (certificate expiry notices). Required. */
    acmeEmail: checked(str(), (v) => (z.email().safeParse(v).success ? undefined : `${show(v)} is not an e-mail address (e.g. ops@example.com)`)),
    /** The Hetzner server (target "hcloud"). Always present after parsing, with its defaults; unused by target "existing". */
    hcloud: HcloudSchema.prefault({}),
    /** The existing host (target "existing"): required there, refused otherwise. */
    existing: ExistingSchema.optional(),
    /** The deploy user and who may log in. Required (its public keys). */
    admin: AdminSchema,
    /** sshd hardening (drop-in). */
    ssh: SshSchema.prefault({}),
    /** UFW and the DOCKER-USER chain. */
    firewall: FirewallSchema.prefault({}),
    /** CrowdSec or fail2ban. */
    intrusion: IntrusionSchema.prefault({}),
    /** The Caddy edge: HTTPS, headers, rate limits, admin API. */
    gateway: GatewaySchema.prefault({}),
    /** Host names served by the gateway, each routed to one app. Default []. */
    sites: z.array(SiteSchema).default([]),
    /** The operator's containers. Default []. */
    apps: z.array(AppSchema).default([]),
    /** Postgres on the internal data network. Default: off. */
    postgres: PostgresSchema.prefault({}),
    /** Redis on the internal data network. Default: off. */
    redis: RedisSchema.prefault({}),
    /** Generated secrets and their rotation. */
    secrets: SecretsSchema.prefault({}),
    /** Host baseline: upgrades, journald, sysctl, Docker logs. */
    host: HostSchema.prefault({}),
    /** Encrypted off-site backups of Postgres and Redis (./backup.ts). Default: off. */
    backup: BackupSchema.prefault({}),
    /** Metrics, alert rules and where alerts go. Default: on, the seed policy's thresholds, no receiver. */
    monitoring: MonitoringSchema.prefault({}),
});

export type StackConfig = z.infer<typeof StackConfigObject>;

/** The whole schema: the keys above, then the checks that span several keys (./checks.ts). */
export const StackConfigSchema = StackConfigObject.superRefine(crossChecks);

export type AppConfig = StackConfig["apps"][number];
export type SiteConfig = StackConfig["sites"][number];
export type RateLimit = z.infer<typeof RateLimitSchema>;
export type Resources = z.infer<typeof ResourcesSchema>;
export type HcloudConfig = StackConfig["hcloud"];
export type ExistingConfig = NonNullable<StackConfig["existing"]>;
export type SshConfig = StackConfig["ssh"];
export type FirewallConfig = StackConfig["firewall"];
export type IntrusionConfig = StackConfig["intrusion"];
export type GatewayConfig = StackConfig["gateway"];
export type PostgresConfig = StackConfig["postgres"];
export type RedisConfig = StackConfig["redis"];
export type SecretsConfig = StackConfig["secrets"];
export type HostConfig = StackConfig["host"];
export type AdminConfig = StackConfig["admin"];
export type { BackupConfig } from "./backup";
export type MonitoringConfig = StackConfig["monitoring"];
export type ReceiverConfig = MonitoringConfig["receivers"][number];
