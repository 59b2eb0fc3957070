// Layer 4 renderers: the Postgres and Redis configuration files and the host steps that install them.
//
// Both servers run from their official images as uid/gid 999 with a read-only root filesystem on
// each data app's internal network. Their configuration lives on the host under /etc/citadel/<service>/ and is
// bind-mounted read-only; secrets arrive as 0400 files. Pure functions: no Pulumi import.
import { StackConfig } from "../config";
import { POSTGRES_SUPERUSER_RESERVED, postgresConnectionShareError, postgresMaxConnections } from "../config/validators";
import { appSecretValue, DATA_UID, postgresClientApps, redisClient, POSTGRES_CONTAINER, postgresDatabaseOf, postgresRoleOf, REDIS_CONTAINER, redisKeyPrefixOf, redisUserOf, secretFilePath, secretMountPath, stepPackages } from "../posture/facts";
import { renderTemplate, hostLib } from "./template";
import { HostScript } from "./types";

export { DATA_UID, POSTGRES_CONTAINER, REDIS_CONTAINER };

// ---- Postgres paths: mount POSTGRES_CONF_HOST_DIR read-only at POSTGRES_CONF_CONTAINER_DIR. ----
export const POSTGRES_CONF_HOST_DIR = "/etc/citadel/postgres";
export const POSTGRES_CONF_CONTAINER_DIR = "/etc/citadel-pg";
/** The TLS key and certificate, inside the config dir so the one mount carries them. */
export const POSTGRES_TLS_HOST_DIR = `${POSTGRES_CONF_HOST_DIR}/tls`;
export const POSTGRES_TLS_CONTAINER_DIR = `${POSTGRES_CONF_CONTAINER_DIR}/tls`;
/** Where earlier versions kept a first-init script for one role shared by every app; postgres-config removes it. */
export const POSTGRES_LEGACY_INITDB_HOST_DIR = "/etc/citadel/postgres-initdb";
/** The comment postgres-roles puts on the roles it makes, so it knows which to close when an app goes. */
export const POSTGRES_APP_ROLE_COMMENT = "citadel: an app's role";

// ---- Redis paths: mount REDIS_CONF_HOST_DIR read-only at REDIS_CONF_CONTAINER_DIR. ----
export const REDIS_CONF_HOST_DIR = "/etc/citadel/redis";
export const REDIS_CONF_CONTAINER_DIR = "/etc/citadel-redis";
/**
 * The ACL file (secret-derived, 0400, owned by DATA_UID) is its own mount, outside the config dir: a
 * mount point inside a read-only bind mount could not be created.
 */
export const REDIS_ACL_CONTAINER_PATH = secretMountPath("users.acl");
/**
 * Commands every app user is denied whatever citadel:redis.disabledCommands says: with several apps on
 * one server, each reaches past its own key prefix. FLUSHALL, FLUSHDB and SWAPDB empty or swap every
 * app's keys; KEYS, SCAN and RANDOMKEY return every app's key names (which may be session ids); PUBSUB
 * lists every app's channels; MIGRATE opens connections out; the server's function libraries and
 * script cache are shared by every app, so FUNCTION's writers, DUMP and LIST (another app's code),
 * SCRIPT FLUSH, the KILLs (another app's running script) and FUNCTION STATS (another app's running
 * call, arguments included) are too. Left: DBSIZE and INFO keyspace tell the total number of keys, not whose.
 */
export const REDIS_ISOLATION_DENIED = [
    "FLUSHALL", "FLUSHDB", "SWAPDB", "KEYS", "SCAN", "RANDOMKEY", "PUBSUB", "MIGRATE",
    "FUNCTION|LOAD", "FUNCTION|DELETE", "FUNCTION|FLUSH", "FUNCTION|RESTORE", "FUNCTION|DUMP", "FUNCTION|LIST", "FUNCTION|KILL",
    "SCRIPT|FLUSH", "SCRIPT|KILL", "FUNCTION|STATS",
    // Client-side caching in broadcast mode pushes an invalidation for every key written, whoever's
    // (Redis up to 7.4 checks no ACL there): another app's key names, as they are written.
    "CLIENT|TRACKING", "CLIENT|CACHING", "CLIENT|GETREDIR", "CLIENT|TRACKINGINFO",
];

const PG = {
    conf: `${POSTGRES_CONF_CONTAINER_DIR}/postgresql.conf`,
    hba: `${POSTGRES_CONF_CONTAINER_DIR}/pg_hba.conf`,
    cert: `${POSTGRES_TLS_CONTAINER_DIR}/server.crt`,
    key: `${POSTGRES_TLS_CONTAINER_DIR}/server.key`,
};
const REDIS_CONF_PATH = `${REDIS_CONF_CONTAINER_DIR}/redis.conf`;

// ---------------------------------------------------------------------------------------------
// Postgres
// ---------------------------------------------------------------------------------------------

/** "512m" → 524288 (kB). The schema already guarantees the shape. */
function memoryKb(size: string): number {
    const m = /^([1-9][0-9]*)([kmg])$/.exec(size);
    if (!m) throw new Error(`bad memory size ${JSON.stringify(size)}`);
    return Number(m[1]) * { k: 1, m: 1024, g: 1024 * 1024 }[m[2] as "k" | "m" | "g"];
}

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));

export const POSTGRES_MIN_MEMORY_MB = 128;

export { POSTGRES_SUPERUSER_RESERVED };

/**
 * Each app role's CONNECTION LIMIT: an equal share of what the superuser's reserve leaves, so one app
 * (a leak, a flood of requests) can use up its own connections only, never another app's. The config
 * check (postgresConnectionShareError) refuses more apps than connections before anything renders.
 */
export function postgresAppConnectionLimit(c: StackConfig): number {
    const apps = postgresClientApps(c).length;
    const error = postgresConnectionShareError(c.postgres.resources.pids, apps);
    if (error) throw new Error(`citadel:postgres.resources.pids: ${error}`);
    return Math.floor((postgresTuning(c).maxConnections - POSTGRES_SUPERUSER_RESERVED) / Math.max(1, apps));
}

/** Memory and connection settings derived from the container's limits (all in MB). */
export function postgresTuning(c: StackConfig) {
    const r = c.postgres.resources;
    const mb = Math.floor(memoryKb(r.memory) / 1024);
    if (mb < POSTGRES_MIN_MEMORY_MB) {
        throw new Error(`citadel:postgres.resources.memory: ${JSON.stringify(r.memory)} is too little for Postgres; give it at least ${POSTGRES_MIN_MEMORY_MB}m (e.g. 512m)`);
    }
    const maxConnections = postgresMaxConnections(r.pids);
    return {
        maxConnections,
        sharedBuffersMb: Math.floor(mb / 4),
        // One sort/hash per connection at a time: all connections together stay under a quarter.
        workMemMb: Math.max(1, Math.floor(mb / 4 / maxConnections)),
        maintenanceWorkMemMb: clamp(Math.floor(mb / 16), 8, 256),
        effectiveCacheSizeMb: Math.floor(mb / 2),
    };
}

/** postgresql.conf for the postgres container (TLS on, SCRAM, audit logging, memory from the limit). */
export function renderPostgresConf(c: StackConfig): string {
    return renderTemplate("data/postgresql.conf.hbs", {
        confPath: PG.conf,
        hbaPath: PG.hba,
        certPath: PG.cert,
        keyPath: PG.key,
        memory: c.postgres.resources.memory,
        pids: c.postgres.resources.pids,
        superuserReserved: POSTGRES_SUPERUSER_RESERVED,
        ...postgresTuning(c),
    });
}

/**
 * Each app with its own role: the role, its database, the generated secret its password is and the
 * file on the host it is set from. The step, pg_hba.conf, the wiring and the audit read this one list.
 */
export function postgresApps(c: StackConfig): { app: string; role: string; database: string; secret: string; passwordFile: string; connectionLimit: number }[] {
    const connectionLimit = postgresAppConnectionLimit(c);
    return postgresClientApps(c).map((a) => ({ app: a.name, role: postgresRoleOf(a.name), database: postgresDatabaseOf(a.name), secret: appSecretValue("postgresPassword", a.name), passwordFile: secretFilePath(a.name, "postgresPassword"), connectionLimit }));
}

/** pg_hba.conf: socket with SCRAM; each app's role to its own database over TLS with SCRAM; all else rejected. */
export function renderPgHba(c: StackConfig): string {
    return renderTemplate("data/pg_hba.conf.hbs", { apps: postgresApps(c) });
}

/**
 * The bash function `citadel_pg_tls DIR UID:GID` that creates the server's TLS key and certificate.
 * The host step embeds exactly this text; tests run it to make the key and certificate they start
 * Postgres with.
 */
export function postgresTlsFunction(): string {
    return renderTemplate("data/pg-tls.sh.hbs", { cn: POSTGRES_CONTAINER });
}

/** The check that runs inside a throwaway container of the image: boots a scratch cluster with the config. */
export function renderPostgresValidator(): string {
    return renderTemplate("data/pg-validate.sh.hbs", { confPath: PG.conf });
}

/** Host step "postgres-config": TLS key/cert (if absent), the config files, checked by the real image. */
export function renderPostgresScript(c: StackConfig, image: string): HostScript {
    const conf = renderPostgresConf(c);
    const hba = renderPgHba(c);
    const packages = stepPackages("postgres-config");
    const script = renderTemplate("data/postgres-config.sh.hbs", {
        lib: hostLib(),
        packages,
        tlsFunction: postgresTlsFunction(),
        hostDir: POSTGRES_CONF_HOST_DIR,
        tlsHostDir: POSTGRES_TLS_HOST_DIR,
        tlsContainerDir: POSTGRES_TLS_CONTAINER_DIR,
        initdbHostDir: POSTGRES_LEGACY_INITDB_HOST_DIR,
        confPath: PG.conf,
        hbaPath: PG.hba,
        image,
        uid: DATA_UID,
        container: POSTGRES_CONTAINER,
        conf,
        hba,
        validate: renderPostgresValidator(),
    });
    return {
        name: "postgres-config",
        description: `Postgres config, TLS key and certificate under ${POSTGRES_CONF_HOST_DIR}, checked by booting ${image}`,
        script,
        files: [
            { path: `${POSTGRES_CONF_HOST_DIR}/postgresql.conf`, content: conf, mode: "0644", owner: "root", group: "root" },
            { path: `${POSTGRES_CONF_HOST_DIR}/pg_hba.conf`, content: hba, mode: "0644", owner: "root", group: "root" },
        ],
        packages,
    };
}

/**
 * Host step "postgres-roles": each app's role (LOGIN only) owning its own database, closed to every
 * other role, and every password (the apps' roles and the superuser) set to the value of its secret
 * file, over the container's socket (superuser by peer), passwords on psql's stdin. Reads the host's
 * files, not the container's mounts: the step must see what was just written.
 */
export function renderPostgresRolesScript(c: StackConfig): HostScript {
    const superuserPasswordFile = secretFilePath(POSTGRES_CONTAINER, "postgresSuperuserPassword");
    const apps = postgresApps(c);
    return {
        name: "postgres-roles",
        description: `a role and database per app (${apps.map((a) => a.role).join(", ") || "none"}${apps.length ? `, each at most ${apps[0].connectionLimit} connections` : ""}), each password and the superuser's from its secret file (rotation), before the apps start`,
        script: renderTemplate("data/pg-roles.sh.hbs", {
            lib: hostLib(),
            container: POSTGRES_CONTAINER,
            apps,
            superuserPasswordFile,
            roleComment: POSTGRES_APP_ROLE_COMMENT,
        }),
        files: [],
    };
}

// ---------------------------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------------------------

function redisBytes(size: string): number {
    const m = /^([1-9][0-9]*)(kb|mb|gb)$/.exec(size);
    if (!m) throw new Error(`bad Redis memory size ${JSON.stringify(size)}`);
    return Number(m[1]) * { kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }[m[2] as "kb" | "mb" | "gb"];
}

/** redis.conf: ACL file, protected configs/DEBUG/MODULE off, maxmemory with noeviction, AOF. */
export function renderRedisConf(c: StackConfig): string {
    const r = c.redis;
    // The AOF rewrite forks; copy-on-write pages and allocator overhead need room above maxmemory,
    // or the container's memory limit kills Redis mid-rewrite.
    const limit = memoryKb(r.resources.memory) * 1024;
    if (redisBytes(r.maxMemory) > limit * 0.75) {
        throw new Error(
            `citadel:redis.maxMemory: ${JSON.stringify(r.maxMemory)} leaves too little headroom in the container's ${r.resources.memory}; keep it at most 3/4 of citadel:redis.resources.memory`,
        );
    }
    return renderTemplate("data/redis.conf.hbs", {
        confPath: REDIS_CONF_PATH,
        aclPath: REDIS_ACL_CONTAINER_PATH,
        maxMemory: r.maxMemory,
        memory: r.resources.memory,
    });
}

/**
 * users.acl: the default user off; one user per app with the SHA-256 of its password (never the
 * password), its keys and channels confined to its prefix, every command but the admin ones, the
 * ones that reach past a prefix (REDIS_ISOLATION_DENIED) and the configured disabled ones.
 * `-@admin` is added beyond c.redis.disabledCommands: +@all alone includes ACL SETUSER, with which
 * an app user could grant itself back everything denied here.
 */
export function renderRedisAcl(c: StackConfig, users: { user: string; keyPrefix: string; passwordSha256Hex: string }[]): string {
    for (const u of users) {
        if (!/^[0-9a-f]{64}$/.test(u.passwordSha256Hex)) throw new Error("renderRedisAcl: expected each password's SHA-256 as 64 lower-case hex digits (never the password itself)");
    }
    return renderTemplate("data/users.acl.hbs", {
        users,
        denied: [...new Set([...REDIS_ISOLATION_DENIED, ...c.redis.disabledCommands].map((x) => x.toLowerCase()))],
    });
}

/** The check that runs inside a throwaway container of the image: starts Redis with the config. */
export function renderRedisValidator(): string {
    return renderTemplate("data/redis-validate.sh.hbs", { confPath: REDIS_CONF_PATH });
}

/**
 * Each app's Redis user: its key prefix and the generated secret its password is (without the
 * password). The ACL file, the container's rotation and the audit read this one list.
 */
export function redisClients(c: StackConfig): { app: string; user: string; keyPrefix: string; secret: string }[] {
    return c.apps.filter((a) => redisClient(c, a)).map((a) => ({ app: a.name, user: redisUserOf(a.name), keyPrefix: redisKeyPrefixOf(a.name), secret: appSecretValue("redisPassword", a.name) }));
}

/** The ACL's users as the ACL file names them: user and key prefix. */
export function redisAclUsers(c: StackConfig): { user: string; keyPrefix: string }[] {
    return redisClients(c).map((u) => ({ user: u.user, keyPrefix: u.keyPrefix }));
}

/** A hash no password has in practice: the validation server gets the live ACL's rules, not its secret. */
const PLACEHOLDER_SHA256 = "0".repeat(64);

/** Host step "redis-config": redis.conf, checked by starting the real image with it. */
export function renderRedisScript(c: StackConfig, image: string): HostScript {
    const conf = renderRedisConf(c);
    const script = renderTemplate("data/redis-config.sh.hbs", {
        lib: hostLib(),
        hostDir: REDIS_CONF_HOST_DIR,
        confPath: REDIS_CONF_PATH,
        aclPath: REDIS_ACL_CONTAINER_PATH,
        image,
        uid: DATA_UID,
        container: REDIS_CONTAINER,
        conf,
        placeholderAcl: renderRedisAcl(c, redisAclUsers(c).map((u) => ({ ...u, passwordSha256Hex: PLACEHOLDER_SHA256 }))),
        validate: renderRedisValidator(),
    });
    return {
        name: "redis-config",
        description: `Redis config under ${REDIS_CONF_HOST_DIR}, checked by starting ${image}`,
        script,
        files: [{ path: `${REDIS_CONF_HOST_DIR}/redis.conf`, content: conf, mode: "0644", owner: "root", group: "root" }],
    };
}
