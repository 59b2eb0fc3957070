// Layer 4: Postgres (TLS only, scram-sha-256) and Redis (ACL with a hashed password, dangerous
// commands denied) on the internal data network, never published, never reachable from the gateway.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { ContainerLayerArgs, hardenedContainerArgs, SECRETS_MOUNT } from "./container";
import { hostStep, secretFile, secretFilePath } from "./host-step";
import {
    DATA_UID,
    POSTGRES_APP_PASSWORD_CONTAINER_PATH,
    POSTGRES_CONF_CONTAINER_DIR,
    POSTGRES_CONF_HOST_DIR,
    POSTGRES_CONTAINER,
    POSTGRES_INITDB_CONTAINER_DIR,
    POSTGRES_INITDB_HOST_DIR,
    REDIS_CONTAINER,
    REDIS_ACL_CONTAINER_PATH,
    REDIS_CONF_CONTAINER_DIR,
    REDIS_CONF_HOST_DIR,
    renderPostgresScript,
    renderRedisAcl,
    renderRedisScript,
} from "./render/data";
import { sha256 } from "./render/script";
import { epochLabel, Secrets } from "./secrets";

export interface DataServicesArgs extends ContainerLayerArgs {
    secrets: Secrets;
}

export class DataServices extends pulumi.ComponentResource {
    public readonly postgres?: docker.Container;
    public readonly redis?: docker.Container;

    constructor(name: string, args: DataServicesArgs, opts?: pulumi.ComponentResourceOptions) {
        super("citadel:data:DataServices", name, {}, opts);
        const c = args.config;
        const dockerOpts = { parent: this, provider: args.provider };
        const network = args.networks.data;
        if (!network) {
            this.registerOutputs({});
            return;
        }
        const user = `${DATA_UID}:${DATA_UID}`;

        if (c.postgres.enabled) {
            // Two secrets: the bootstrap superuser (reachable only over the container's own socket)
            // and the application role, which the init script creates with LOGIN and nothing else.
            const files = [
                secretFile({ consumer: "postgres", name: "postgresSuperuserPassword", uid: DATA_UID, value: args.secrets.values.postgresSuperuserPassword }, args.connection, {
                    parent: this,
                    dependsOn: args.after,
                }),
                secretFile({ consumer: "postgres", name: "postgresPassword", uid: DATA_UID, value: args.secrets.values.postgresPassword }, args.connection, {
                    parent: this,
                    dependsOn: args.after,
                }),
            ];
            const image = new docker.RemoteImage("postgres-image", { name: c.postgres.image, keepLocally: true }, { ...dockerOpts, dependsOn: args.after });
            const step = renderPostgresScript(c, c.postgres.image);
            // The step validates the config by booting the image, so the image must be there first.
            const conf = hostStep(step, args.connection, { parent: this, dependsOn: [...args.after, image] });
            const volume = new docker.Volume("postgres-data", { name: "citadel-postgres-data" }, dockerOpts);
            this.postgres = new docker.Container(
                "postgres",
                {
                    name: POSTGRES_CONTAINER,
                    image: image.imageId,
                    ...hardenedContainerArgs({ user, resources: c.postgres.resources, tmpfs: ["/tmp", "/var/run/postgresql"], logs: c.host.docker }),
                    command: ["postgres", "-c", `config_file=${POSTGRES_CONF_CONTAINER_DIR}/postgresql.conf`],
                    envs: [
                        "POSTGRES_USER=postgres",
                        `POSTGRES_PASSWORD_FILE=${SECRETS_MOUNT}/postgresSuperuserPassword`,
                        "POSTGRES_INITDB_ARGS=--auth-host=scram-sha-256 --auth-local=scram-sha-256",
                        "PGDATA=/var/lib/postgresql/data/pgdata",
                    ],
                    mounts: [
                        { type: "bind", source: POSTGRES_CONF_HOST_DIR, target: POSTGRES_CONF_CONTAINER_DIR, readOnly: true },
                        { type: "bind", source: POSTGRES_INITDB_HOST_DIR, target: POSTGRES_INITDB_CONTAINER_DIR, readOnly: true },
                        { type: "bind", source: secretFilePath("postgres", "postgresSuperuserPassword"), target: `${SECRETS_MOUNT}/postgresSuperuserPassword`, readOnly: true },
                        { type: "bind", source: secretFilePath("postgres", "postgresPassword"), target: POSTGRES_APP_PASSWORD_CONTAINER_PATH, readOnly: true },
                    ],
                    volumes: [{ volumeName: volume.name, containerPath: "/var/lib/postgresql/data" }],
                    networksAdvanced: [{ name: network.name, aliases: ["postgres"] }],
                    // Over the socket: a TCP probe would add a connection line to the audit log every 10 s.
                    healthcheck: { tests: ["CMD", "pg_isready", "-h", "/var/run/postgresql", "-U", "postgres"], interval: "10s", timeout: "5s", retries: 5 },
                    labels: [
                        { label: "citadel.config-sha256", value: sha256(step.script) },
                        // The app role's password is set at first init (and by re-running the init script
                        // after a rotation, see README); the epoch records which generation is current.
                        { label: "citadel.secret-epochs", value: epochLabel(args.secrets, ["postgresSuperuserPassword", "postgresPassword"]) },
                    ],
                },
                { ...dockerOpts, dependsOn: [conf, ...files] },
            );
        }

        if (c.redis.enabled) {
            const password = args.secrets.values.redisPassword;
            // The ACL holds only the SHA-256 of the password; it is still treated as a secret file.
            const acl = secretFile(
                { consumer: "redis", name: "users.acl", uid: DATA_UID, value: pulumi.secret(password.apply((p) => renderRedisAcl(c, sha256(p)))) },
                args.connection,
                { parent: this, dependsOn: args.after },
            );
            const image = new docker.RemoteImage("redis-image", { name: c.redis.image, keepLocally: true }, { ...dockerOpts, dependsOn: args.after });
            const step = renderRedisScript(c, c.redis.image);
            const conf = hostStep(step, args.connection, { parent: this, dependsOn: [...args.after, image] });
            const volume = new docker.Volume("redis-data", { name: "citadel-redis-data" }, dockerOpts);
            this.redis = new docker.Container(
                "redis",
                {
                    name: REDIS_CONTAINER,
                    image: image.imageId,
                    ...hardenedContainerArgs({ user, resources: c.redis.resources, tmpfs: ["/tmp"], logs: c.host.docker }),
                    command: ["redis-server", `${REDIS_CONF_CONTAINER_DIR}/redis.conf`],
                    mounts: [
                        { type: "bind", source: REDIS_CONF_HOST_DIR, target: REDIS_CONF_CONTAINER_DIR, readOnly: true },
                        { type: "bind", source: secretFilePath("redis", "users.acl"), target: REDIS_ACL_CONTAINER_PATH, readOnly: true },
                    ],
                    volumes: [{ volumeName: volume.name, containerPath: "/data" }],
                    networksAdvanced: [{ name: network.name, aliases: ["redis"] }],
                    // Unauthenticated clients get NOAUTH: that answer alone proves the server is up.
                    healthcheck: { tests: ["CMD-SHELL", "redis-cli -h 127.0.0.1 ping 2>&1 | grep -qE 'PONG|NOAUTH'"], interval: "10s", timeout: "5s", retries: 5 },
                    labels: [
                        { label: "citadel.config-sha256", value: sha256(step.script) },
                        // A rotated password rewrites the ACL file; the changed epoch re-creates the container so Redis loads it.
                        { label: "citadel.secret-epochs", value: epochLabel(args.secrets, ["redisPassword"]) },
                    ],
                },
                { ...dockerOpts, dependsOn: [conf, acl] },
            );
        }
        this.registerOutputs({ postgres: this.postgres?.name, redis: this.redis?.name });
    }
}
