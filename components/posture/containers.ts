// Containers, networks, volumes and secret files, as declared. The gateway, data and app components
// create exactly these; the audit judges the live host against them.
import { secretNeeded, type AppConfig, type Resources, type StackConfig } from "../config";
import { CADDYFILE_CONTAINER_PATH, CADDYFILE_HOST_PATH, GATEWAY_HEALTH_URL, renderCaddyfile } from "../render/caddy";
import { gatewayBuildArgs, gatewayBuildFilesSha256, gatewayBuildInputs } from "../render/gateway-image";
import {
    POSTGRES_CONF_CONTAINER_DIR,
    POSTGRES_CONF_HOST_DIR,
    POSTGRES_TLS_HOST_DIR,
    REDIS_ACL_CONTAINER_PATH,
    REDIS_CONF_CONTAINER_DIR,
    REDIS_CONF_HOST_DIR,
    redisClients,
    renderPostgresScript,
    renderRedisScript,
} from "../render/data";
import { sha256 } from "../render/script";
import {
    appContainerName,
    CADDY_CONFIG_VOLUME,
    CADDY_DATA_VOLUME,
    CADDY_LOG_DIR_CONTAINER,
    CADDY_LOG_DIR_HOST,
    appSecretValue,
    COMPANION_SECRETS,
    dataNetworkName,
    DATA_UID,
    edgeNetworkName,
    EGRESS_NETWORK,
    NO_ICC_OPTION,
    PER_APP_SECRETS,
    postgresClient,
    postgresDatabaseOf,
    postgresRoleOf,
    redisClient,
    redisKeyPrefixOf,
    redisUserOf,
    GATEWAY_CONTAINER,
    GATEWAY_PORTS,
    GATEWAY_UID,
    HOST_CONSUMER,
    POSTGRES_CA_CONTAINER_PATH,
    MONITORING_BRIDGE,
    MONITORING_DYNAMIC_RANGE,
    MONITORING_HOST_IP,
    MONITORING_GATEWAY_IP,
    MONITORING_NETWORK,
    MONITORING_SUBNET,
    POSTGRES_CONTAINER,
    POSTGRES_DATA_VOLUME,
    PUBLIC_NETWORK,
    PUBLIC_NETWORK_IPV6_SUBNET,
    PUBLIC_NETWORK_SUBNET,
    PUBLIC_NETWORK_GATEWAY,
    PUBLIC_NETWORK_IPV6_GATEWAY,
    ALL_IPV4,
    PUBLIC_NETWORK_IPV6_DYNAMIC_RANGE,
    GATEWAY_IPV6,
    REDIS_CONTAINER,
    REDIS_DATA_VOLUME,
    ROOT_UID,
    SECRET_FILE_MODE,
    secretEnvName,
    secretFilePath,
    secretMountPath,
    GENERATED_SECRETS,
} from "./facts";
import type { ContainerPosture, NetworkPosture, SecretFilePosture, SecretPosture } from "./types";

/** "256m" → 256, "1g" → 1024, "512k" → 1 (Docker's provider takes MB). The schema checks the shape. */
export function memoryMb(size: string): number {
    const m = /^([1-9][0-9]*)([kmg])$/.exec(size);
    if (!m) throw new Error(`bad memory size ${size}`);
    const n = Number(m[1]);
    switch (m[2]) {
        case "k":
            return Math.max(1, Math.ceil(n / 1024));
        case "m":
            return n;
        default:
            return n * 1024;
    }
}

/** 1 → "1.0", 0.5 → "0.5": the form Docker reports back, so a second `pulumi up` sees no change. */
export function dockerCpus(n: number): string {
    return Number.isInteger(n) ? n.toFixed(1) : String(n);
}

export function uidOf(user: string): number {
    return Number(user.split(":")[0]);
}

/** The secret files an app reads: each secret it lists, plus the derived ones that come with it (COMPANION_SECRETS). */
export function appSecretFiles(app: Pick<AppConfig, "secrets">): string[] {
    return app.secrets.flatMap((s) => [s, ...(COMPANION_SECRETS[s] ?? [])]);
}

/**
 * libpq's own variables for an app with its own Postgres role (pgx, psycopg, node-postgres... read
 * them): the server by its name, the app's role and database, and TLS that verifies the server
 * against its certificate. The app's own env wins where it sets the same name.
 */
export function postgresClientEnv(app: string): Record<string, string> {
    return { PGHOST: POSTGRES_CONTAINER, PGDATABASE: postgresDatabaseOf(app), PGUSER: postgresRoleOf(app), PGSSLMODE: "verify-full", PGSSLROOTCERT: POSTGRES_CA_CONTAINER_PATH };
}

/** The app's Redis ACL user and the prefix its keys and channels must carry (the ACL allows no other). */
export function redisClientEnv(app: string): Record<string, string> {
    return { REDIS_HOST: REDIS_CONTAINER, REDIS_USER: redisUserOf(app), REDIS_PREFIX: redisKeyPrefixOf(app) };
}


/** Plain env (with libpq's and Redis' for a data client) plus one NAME_FILE pointer per secret file; never a secret value. */
export function appEnv(app: AppConfig, c?: StackConfig): string[] {
    const client = { ...(c && postgresClient(c, app) ? postgresClientEnv(app.name) : {}), ...(c && redisClient(c, app) ? redisClientEnv(app.name) : {}) };
    const given = Object.entries(client).filter(([k]) => !(k in app.env));
    return [...given.map(([k, v]) => `${k}=${v}`), ...Object.entries(app.env).map(([k, v]) => `${k}=${v}`), ...appSecretFiles(app).map((s) => `${secretEnvName(s)}=${secretMountPath(s)}`)];
}

/** The secret spec names an app's containers rotate with: its own value of a per-app secret. */
export const appRotatesWith = (app: Pick<AppConfig, "name" | "secrets">): string[] => app.secrets.map((s) => appSecretValue(s, app.name));

/**
 * Which secrets the stack generates. JWT secret: 512 bit (policy asks ≥ 256). API encryption key and
 * API keys: 256 bit. Passwords: 40 characters from [A-Za-z0-9] (≈ 238 bit) — no symbols, so they
 * survive every connection-string and shell context unescaped.
 */
export function secretSpecs(c: StackConfig): SecretPosture[] {
    const r = c.secrets.rotationDays;
    const forcedEpochs = (name: string) => c.secrets.rotateNow[name] ?? 0;
    const key256 = (name: string, rotationDays: number): SecretPosture => ({ name, kind: "key256", bits: 256, rotationDays, forcedEpochs: forcedEpochs(name) });
    const keep: Record<string, number | undefined> = c.secrets.keepPrevious;
    const bits = { key256: 256, key512: 512, password: 238 } as const;
    // A per-app secret: one value per app that lists it (citadel:secrets.rotateNow.<secret> rotates them all).
    const specs: SecretPosture[] = GENERATED_SECRETS.filter((s) => secretNeeded(s, c)).flatMap((s) =>
        (PER_APP_SECRETS.includes(s.name) ? c.apps.filter((a) => a.secrets.includes(s.name)).map((a) => appSecretValue(s.name, a.name)) : [s.name]).map((name) => ({
            name,
            kind: s.kind,
            bits: bits[s.kind],
            rotationDays: r[s.rotation],
            forcedEpochs: forcedEpochs(s.name),
            ...(keep[s.name] !== undefined ? { previous: keep[s.name] } : {}),
        })),
    );
    for (const [name, days] of Object.entries(c.secrets.apiKeys)) specs.push(key256(name, days));
    return specs;
}

/** A data service's logs: to the journal (kept citadel:host.journald.maxRetentionDays days, within its budget). */
function journaldLogs(c: Pick<StackConfig, "host">): ContainerPosture["logs"] {
    return { driver: "journald", maxSize: c.host.docker.logMaxSize, maxFile: c.host.docker.logMaxFile };
}

/** The hardening every Citadel container shares; each role adds only what differs. */
export function hardened(c: Pick<StackConfig, "host">, user: string, resources: Resources, tmpfs: string[]) {
    return {
        user,
        uid: uidOf(user),
        readOnly: true,
        noNewPrivileges: true,
        privileged: false,
        capDrop: ["ALL"],
        capAdd: [] as string[],
        memoryMb: memoryMb(resources.memory),
        cpus: dockerCpus(resources.cpus),
        pids: resources.pids,
        tmpfs: [...tmpfs],
        logs: { driver: "json-file" as ContainerPosture["logs"]["driver"], maxSize: c.host.docker.logMaxSize, maxFile: c.host.docker.logMaxFile },
        // Filled in by posture/steps.ts, which knows the steps' names.
        imageAfter: [] as string[],
        after: [] as string[],
    };
}

/** Alertmanager needs a way out to its receivers; the rest of monitoring stays internal. */
export function monitoringNeedsEgress(c: StackConfig): boolean {
    return c.monitoring.enabled && c.monitoring.receivers.length > 0;
}

const hasData = (c: StackConfig) => c.postgres.enabled || c.redis.enabled;
/** The apps on a data network of their own (with Postgres and Redis). */
export const dataApps = (c: StackConfig): AppConfig[] => (hasData(c) ? c.apps.filter((a) => a.data) : []);

/** A secret file's step name (also its Pulumi resource name). */
export const secretStepName = (consumer: string, name: string): string => `secret-${consumer}-${name}`;

export function secretFilesPosture(c: StackConfig): SecretFilePosture[] {
    const file = (secret: string, consumer: string, name: string, ownerUid: number, readers: string[], content: SecretFilePosture["content"] = "value"): SecretFilePosture => ({
        secret,
        content,
        consumer,
        name,
        path: secretFilePath(consumer, name),
        ownerUid,
        mode: SECRET_FILE_MODE,
        readers,
        step: secretStepName(consumer, name),
    });
    const out: SecretFilePosture[] = [];
    if (c.intrusion.engine === "crowdsec") out.push(file("crowdsecBouncerKey", HOST_CONSUMER, "crowdsecBouncerKey", ROOT_UID, ["host: crowdsec-firewall-bouncer"]));
    // The superuser's only: each app's role gets its password from the app's own file (postgres-roles step).
    if (c.postgres.enabled) out.push(file("postgresSuperuserPassword", POSTGRES_CONTAINER, "postgresSuperuserPassword", DATA_UID, [POSTGRES_CONTAINER]));
    // The ACL holds only the SHA-256 of each app user's password; it is still treated as a secret file.
    if (c.redis.enabled) {
        const users = redisClients(c).map((u) => ({ user: u.user, keyPrefix: u.keyPrefix, secret: u.secret }));
        out.push({ ...file("redisAcl", REDIS_CONTAINER, "users.acl", DATA_UID, [REDIS_CONTAINER], "redis-acl"), redisUsers: users });
    }
    for (const app of c.apps) for (const s of appSecretFiles(app)) out.push(file(appSecretValue(s, app.name), app.name, s, uidOf(app.user), [appContainerName(app.name)]));
    return out;
}

function gatewayContainer(c: StackConfig): ContainerPosture {
    return {
        name: GATEWAY_CONTAINER,
        role: "gateway",
        image: c.gateway.image,
        build: c.gateway.build,
        ...(c.gateway.build ? { buildFrom: { args: gatewayBuildArgs(c), inputsSha256: gatewayBuildInputs(c, c.gateway.image), filesSha256: gatewayBuildFilesSha256() } } : {}),
        ...hardened(c, `${GATEWAY_UID}:${GATEWAY_UID}`, c.gateway.resources, ["/tmp"]),
        // Binding the GATEWAY_PORTS (below 1024) as a non-root user needs this one capability back.
        capAdd: ["NET_BIND_SERVICE"],
        networks: [
            // With IPv6 served, a fixed address: the target of Citadel's DNAT (PUBLIC6_NAT_CHAIN).
            { network: PUBLIC_NETWORK, aliases: [], ...(c.host.docker.ipv6 ? { ipv6Address: GATEWAY_IPV6 } : {}) },
            ...c.apps.map((a) => ({ network: edgeNetworkName(a.name), aliases: [] })),
            // Prometheus scrapes the gateway's metrics listener at this fixed address (render/caddy.ts binds it).
            ...(c.monitoring.enabled ? [{ network: MONITORING_NETWORK, aliases: [], ipv4Address: MONITORING_GATEWAY_IP }] : []),
        ],
        // IPv4 only: IPv6 reaches the gateway through Citadel's DNAT, not Docker's (facts.ts, PUBLIC6_NAT_CHAIN).
        publishedPorts: GATEWAY_PORTS.map((p) => ({ internal: p, external: p, protocol: "tcp" as const, hostIp: ALL_IPV4 })),
        secretMounts: [],
        binds: [
            { source: CADDYFILE_HOST_PATH, target: CADDYFILE_CONTAINER_PATH, readOnly: true },
            { source: CADDY_LOG_DIR_HOST, target: CADDY_LOG_DIR_CONTAINER, readOnly: false },
        ],
        volumes: [
            { name: CADDY_DATA_VOLUME, target: "/data" },
            { name: CADDY_CONFIG_VOLUME, target: "/config" },
        ],
        env: [],
        healthcheck: { test: ["CMD", "curl", "-fsS", "-o", "/dev/null", GATEWAY_HEALTH_URL], interval: "30s", timeout: "5s", retries: 3 },
        // A changed Caddyfile replaces the container, so the new config is what runs.
        labels: { "citadel.caddyfile-sha256": sha256(renderCaddyfile(c)) },
        rotatesWith: [],
    };
}

function postgresContainer(c: StackConfig): ContainerPosture {
    const superuser = secretMountPath("postgresSuperuserPassword");
    return {
        name: POSTGRES_CONTAINER,
        role: "postgres",
        image: c.postgres.image,
        build: false,
        ...hardened(c, `${DATA_UID}:${DATA_UID}`, c.postgres.resources, ["/tmp", "/var/run/postgresql"]),
        // Connections and failed authentications, kept the retention period (30 MB of json-file go in hours under attack).
        logs: journaldLogs(c),
        networks: dataApps(c).map((a) => ({ network: dataNetworkName(a.name), aliases: [POSTGRES_CONTAINER] })),
        publishedPorts: [],
        // One secret: the bootstrap superuser, reachable only over the container's own socket. The
        // apps' roles are made by the postgres-roles step, each with LOGIN on its own database only.
        secretMounts: [{ source: secretFilePath(POSTGRES_CONTAINER, "postgresSuperuserPassword"), target: superuser, env: "POSTGRES_PASSWORD_FILE" }],
        binds: [{ source: POSTGRES_CONF_HOST_DIR, target: POSTGRES_CONF_CONTAINER_DIR, readOnly: true }],
        volumes: [{ name: POSTGRES_DATA_VOLUME, target: "/var/lib/postgresql/data" }],
        env: [
            "POSTGRES_USER=postgres",
            `POSTGRES_PASSWORD_FILE=${superuser}`,
            "POSTGRES_INITDB_ARGS=--auth-host=scram-sha-256 --auth-local=scram-sha-256",
            "PGDATA=/var/lib/postgresql/data/pgdata",
        ],
        command: ["postgres", "-c", `config_file=${POSTGRES_CONF_CONTAINER_DIR}/postgresql.conf`],
        // Over the socket: a TCP probe would add a connection line to the audit log every 10 s.
        healthcheck: { test: ["CMD", "pg_isready", "-h", "/var/run/postgresql", "-U", "postgres"], interval: "10s", timeout: "5s", retries: 5 },
        labels: { "citadel.config-sha256": sha256(renderPostgresScript(c, c.postgres.image).script) },
        // Not re-created on rotation: the postgres-roles step sets the rotated passwords in the
        // running server (ALTER ROLE).
        rotatesWith: [],
    };
}

function redisContainer(c: StackConfig): ContainerPosture {
    return {
        name: REDIS_CONTAINER,
        role: "redis",
        image: c.redis.image,
        build: false,
        ...hardened(c, `${DATA_UID}:${DATA_UID}`, c.redis.resources, ["/tmp"]),
        logs: journaldLogs(c),
        networks: dataApps(c).map((a) => ({ network: dataNetworkName(a.name), aliases: [REDIS_CONTAINER] })),
        publishedPorts: [],
        secretMounts: [{ source: secretFilePath(REDIS_CONTAINER, "users.acl"), target: REDIS_ACL_CONTAINER_PATH }],
        binds: [{ source: REDIS_CONF_HOST_DIR, target: REDIS_CONF_CONTAINER_DIR, readOnly: true }],
        volumes: [{ name: REDIS_DATA_VOLUME, target: "/data" }],
        env: [],
        command: ["redis-server", `${REDIS_CONF_CONTAINER_DIR}/redis.conf`],
        // Unauthenticated clients get NOAUTH: that answer alone proves the server is up.
        healthcheck: { test: ["CMD-SHELL", "redis-cli -h 127.0.0.1 ping 2>&1 | grep -qE 'PONG|NOAUTH'"], interval: "10s", timeout: "5s", retries: 5 },
        labels: { "citadel.config-sha256": sha256(renderRedisScript(c, c.redis.image).script) },
        // A rotated password rewrites the ACL file; the changed epoch re-creates the container so Redis loads it.
        rotatesWith: redisClients(c).map((u) => u.secret),
    };
}

function appContainer(c: StackConfig, app: AppConfig): ContainerPosture {
    return {
        name: appContainerName(app.name),
        role: "app",
        app: app.name,
        image: app.image,
        build: false,
        ...hardened(c, app.user, app.resources, app.tmpfs),
        networks: [
            // The gateway reaches the app by its name on the app's own edge network.
            { network: edgeNetworkName(app.name), aliases: [app.name] },
            ...(app.data && hasData(c) ? [{ network: dataNetworkName(app.name), aliases: [] }] : []),
            ...(app.egress ? [{ network: EGRESS_NETWORK, aliases: [] }] : []),
        ],
        publishedPorts: [],
        secretMounts: appSecretFiles(app).map((s) => ({ source: secretFilePath(app.name, s), target: secretMountPath(s), env: secretEnvName(s) })),
        binds: postgresClient(c, app) ? [{ source: `${POSTGRES_TLS_HOST_DIR}/server.crt`, target: POSTGRES_CA_CONTAINER_PATH, readOnly: true }] : [],
        volumes: [],
        env: appEnv(app, c),
        healthcheck: app.healthcheck ? { test: ["CMD", ...app.healthcheck.test], interval: app.healthcheck.interval, timeout: app.healthcheck.timeout, retries: app.healthcheck.retries } : undefined,
        labels: {},
        // Rotated secrets re-create the container so the app reads the new files.
        rotatesWith: appRotatesWith(app),
    };
}

/** Every container: the gateway, the data services, the apps. */
export function containersPosture(c: StackConfig): ContainerPosture[] {
    return [
        gatewayContainer(c),
        ...(c.postgres.enabled ? [postgresContainer(c)] : []),
        ...(c.redis.enabled ? [redisContainer(c)] : []),
        ...c.apps.map((a) => appContainer(c, a)),
    ];
}

/** Networks with their members, read off the containers (so the two can never disagree). */
export function networksPosture(c: StackConfig, containers: ContainerPosture[]): NetworkPosture[] {
    const declared: Omit<NetworkPosture, "members">[] = [
        { name: PUBLIC_NETWORK, internal: false, ...(c.host.docker.ipv6 ? { subnet: PUBLIC_NETWORK_SUBNET, gateway: PUBLIC_NETWORK_GATEWAY, ipv6Subnet: PUBLIC_NETWORK_IPV6_SUBNET, ipv6Gateway: PUBLIC_NETWORK_IPV6_GATEWAY, ipv6IpRange: PUBLIC_NETWORK_IPV6_DYNAMIC_RANGE } : {}) },
        ...c.apps.map((a) => ({ name: edgeNetworkName(a.name), internal: true })),
        ...dataApps(c).map((a) => ({ name: dataNetworkName(a.name), internal: true })),
        ...(c.apps.some((a) => a.egress) || monitoringNeedsEgress(c) ? [{ name: EGRESS_NETWORK, internal: false, options: { [NO_ICC_OPTION]: "false" } }] : []),
        ...(c.monitoring.enabled ? [{ name: MONITORING_NETWORK, internal: true, subnet: MONITORING_SUBNET, ipRange: MONITORING_DYNAMIC_RANGE, gateway: MONITORING_HOST_IP, bridge: MONITORING_BRIDGE }] : []),
    ];
    return declared.map((n) => ({ ...n, members: containers.filter((x) => x.networks.some((a) => a.network === n.name)).map((x) => x.name) }));
}

