// Layer 4 renderers: the Postgres and Redis configuration files and the host steps that install them.
//
// Both servers run from their official images as uid/gid 999 with a read-only root filesystem on the
// internal data network. Their configuration lives on the host under /etc/citadel/<service>/ and is
// bind-mounted read-only; secrets arrive as 0400 files. Pure functions: no Pulumi import.
import { StackConfig } from "../config";
import { DATA_UID, POSTGRES_CONTAINER, REDIS_CONTAINER, secretFilePath, secretMountPath } from "../posture/facts";
import { renderTemplate } from "./template";
import { HostScript } from "./types";

export { DATA_UID, POSTGRES_CONTAINER, REDIS_CONTAINER };

// ---- Postgres paths: mount POSTGRES_CONF_HOST_DIR read-only at POSTGRES_CONF_CONTAINER_DIR. ----
export const POSTGRES_CONF_HOST_DIR = "/etc/citadel/postgres";
export const POSTGRES_CONF_CONTAINER_DIR = "/etc/citadel-pg";
/** The TLS key and certificate, inside the config dir so the one mount carries them. */
export const POSTGRES_TLS_HOST_DIR = `${POSTGRES_CONF_HOST_DIR}/tls`;
export const POSTGRES_TLS_CONTAINER_DIR = `${POSTGRES_CONF_CONTAINER_DIR}/tls`;
/** The first-init role script: mount this dir read-only at /docker-entrypoint-initdb.d. */
export const POSTGRES_INITDB_HOST_DIR = "/etc/citadel/postgres-initdb";
export const POSTGRES_INITDB_CONTAINER_DIR = "/docker-entrypoint-initdb.d";
export const POSTGRES_INITDB_SCRIPT = "10-citadel-app-role.sh";
/** Where the app role's password file is mounted in the postgres container. */
export const POSTGRES_APP_PASSWORD_CONTAINER_PATH = secretMountPath("postgresPassword");

// ---- Redis paths: mount REDIS_CONF_HOST_DIR read-only at REDIS_CONF_CONTAINER_DIR. ----
export const REDIS_CONF_HOST_DIR = "/etc/citadel/redis";
export const REDIS_CONF_CONTAINER_DIR = "/etc/citadel-redis";
/**
 * The ACL file (secret-derived, 0400, owned by DATA_UID) is its own mount, outside the config dir: a
 * mount point inside a read-only bind mount could not be created.
 */
export const REDIS_ACL_CONTAINER_PATH = secretMountPath("users.acl");
/** The one Redis user the apps authenticate as (AUTH app <redisPassword>). */
export const REDIS_APP_USER = "app";

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

/** Memory and connection settings derived from the container's limits (all in MB). */
export function postgresTuning(c: StackConfig) {
    const r = c.postgres.resources;
    const mb = Math.floor(memoryKb(r.memory) / 1024);
    if (mb < POSTGRES_MIN_MEMORY_MB) {
        throw new Error(`citadel:postgres.resources.memory: ${JSON.stringify(r.memory)} is too little for Postgres; give it at least ${POSTGRES_MIN_MEMORY_MB}m (e.g. 512m)`);
    }
    // Every connection is a process; leave ~30 pids for the postmaster, its background workers,
    // the entrypoint and healthchecks.
    const maxConnections = clamp(r.pids - 30, 10, 50);
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
        ...postgresTuning(c),
    });
}

/** pg_hba.conf: socket with SCRAM; the app role to its database over TLS with SCRAM; all else rejected. */
export function renderPgHba(c: StackConfig): string {
    return renderTemplate("data/pg_hba.conf.hbs", { database: c.postgres.database, user: c.postgres.user });
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

/**
 * /docker-entrypoint-initdb.d script: creates the application role (LOGIN, nothing else) with the
 * password from its secret file and makes it the owner of the application database.
 */
export function renderPostgresInitScript(c: StackConfig): string {
    return renderTemplate("data/pg-initdb.sh.hbs", {
        user: c.postgres.user,
        database: c.postgres.database,
        passwordFile: POSTGRES_APP_PASSWORD_CONTAINER_PATH,
    });
}

/** Host step "postgres-config": TLS key/cert (if absent), the config files, checked by the real image. */
export function renderPostgresScript(c: StackConfig, image: string): HostScript {
    const conf = renderPostgresConf(c);
    const hba = renderPgHba(c);
    const initdb = renderPostgresInitScript(c);
    const script = renderTemplate("data/postgres-config.sh.hbs", {
        lib: renderTemplate("host/lib.sh.hbs", {}),
        tlsFunction: postgresTlsFunction(),
        hostDir: POSTGRES_CONF_HOST_DIR,
        tlsHostDir: POSTGRES_TLS_HOST_DIR,
        tlsContainerDir: POSTGRES_TLS_CONTAINER_DIR,
        initdbHostDir: POSTGRES_INITDB_HOST_DIR,
        initdbName: POSTGRES_INITDB_SCRIPT,
        confPath: PG.conf,
        hbaPath: PG.hba,
        image,
        uid: DATA_UID,
        container: POSTGRES_CONTAINER,
        conf,
        hba,
        initdb,
        validate: renderPostgresValidator(),
    });
    return {
        name: "postgres-config",
        description: `Postgres config, TLS key and certificate under ${POSTGRES_CONF_HOST_DIR}, checked by booting ${image}`,
        script,
        files: [
            { path: `${POSTGRES_CONF_HOST_DIR}/postgresql.conf`, content: conf, mode: "0644", owner: "root", group: "root" },
            { path: `${POSTGRES_CONF_HOST_DIR}/pg_hba.conf`, content: hba, mode: "0644", owner: "root", group: "root" },
            { path: `${POSTGRES_INITDB_HOST_DIR}/${POSTGRES_INITDB_SCRIPT}`, content: initdb, mode: "0755", owner: "root", group: "root" },
        ],
    };
}

/**
 * Host step "postgres-passwords": ALTER ROLE of the application role and the superuser to the values
 * of their secret files, over the container's socket (superuser by peer), passwords on psql's stdin.
 * Reads the host's files, not the container's mounts: the step must see what was just written.
 */
export function renderPostgresPasswordsScript(c: StackConfig): HostScript {
    const appPasswordFile = secretFilePath(POSTGRES_CONTAINER, "postgresPassword");
    const superuserPasswordFile = secretFilePath(POSTGRES_CONTAINER, "postgresSuperuserPassword");
    return {
        name: "postgres-passwords",
        description: `ALTER ROLE ${c.postgres.user} and postgres to the passwords in ${appPasswordFile} and ${superuserPasswordFile} (rotation), before the apps restart`,
        script: renderTemplate("data/pg-passwords.sh.hbs", {
            lib: renderTemplate("host/lib.sh.hbs", {}),
            container: POSTGRES_CONTAINER,
            user: c.postgres.user,
            appPasswordFile,
            superuserPasswordFile,
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
 * users.acl: the default user off; the app user with the SHA-256 of its password (never the
 * password), every command but the admin ones and the configured disabled ones.
 * `-@admin` is added beyond c.redis.disabledCommands: +@all alone includes ACL SETUSER, with which
 * the app user could grant itself back everything denied here.
 */
export function renderRedisAcl(c: StackConfig, passwordSha256Hex: string): string {
    if (!/^[0-9a-f]{64}$/.test(passwordSha256Hex)) {
        throw new Error("renderRedisAcl: expected the password's SHA-256 as 64 lower-case hex digits (never the password itself)");
    }
    return renderTemplate("data/users.acl.hbs", {
        user: REDIS_APP_USER,
        passwordSha256Hex,
        denied: [...new Set(c.redis.disabledCommands.map((x) => x.toLowerCase()))],
    });
}

/** The check that runs inside a throwaway container of the image: starts Redis with the config. */
export function renderRedisValidator(): string {
    return renderTemplate("data/redis-validate.sh.hbs", { confPath: REDIS_CONF_PATH });
}

/** A hash no password has in practice: the validation server gets the live ACL's rules, not its secret. */
const PLACEHOLDER_SHA256 = "0".repeat(64);

/** Host step "redis-config": redis.conf, checked by starting the real image with it. */
export function renderRedisScript(c: StackConfig, image: string): HostScript {
    const conf = renderRedisConf(c);
    const script = renderTemplate("data/redis-config.sh.hbs", {
        lib: renderTemplate("host/lib.sh.hbs", {}),
        hostDir: REDIS_CONF_HOST_DIR,
        confPath: REDIS_CONF_PATH,
        aclPath: REDIS_ACL_CONTAINER_PATH,
        image,
        uid: DATA_UID,
        container: REDIS_CONTAINER,
        conf,
        placeholderAcl: renderRedisAcl(c, PLACEHOLDER_SHA256),
        validate: renderRedisValidator(),
    });
    return {
        name: "redis-config",
        description: `Redis config under ${REDIS_CONF_HOST_DIR}, checked by starting ${image}`,
        script,
        files: [{ path: `${REDIS_CONF_HOST_DIR}/redis.conf`, content: conf, mode: "0644", owner: "root", group: "root" }],
    };
}
