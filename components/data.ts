// Layer 4: Postgres (TLS only, scram-sha-256, a role and database per app) and Redis (an ACL user per
// app with a hashed password, confined to its key prefix, dangerous commands denied) on each data
// app's internal network, never published, never reachable from the gateway.
// Everything here is read off the posture: the containers, their config steps and secret files.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { ContainerLayerArgs, containerArgs, remoteImage, resourceNameOf } from "./container";
import { wireStep } from "./host-step";
import { containerRef, imageRef, type SecretFilePosture } from "./posture";
import { sha256 } from "./render/script";

/** A Redis ACL user with the SHA-256 of its password (never the password). */
export interface RedisAclUser {
    user: string;
    keyPrefix: string;
    passwordSha256Hex: string;
}

export type DataServicesArgs = ContainerLayerArgs & {
    /** Renders the Redis ACL from the app users' password hashes (needs the Redis config). */
    redisAcl: (users: RedisAclUser[]) => string;
};

/** The value a secret file carries: the secret itself, or a file derived from it. */
export function secretFileValue(f: SecretFilePosture, values: Record<string, pulumi.Output<string>>, redisAcl: (users: RedisAclUser[]) => string): pulumi.Output<string> {
    switch (f.content) {
        case "value":
            return values[f.secret];
        case "redis-acl": {
            const users = f.redisUsers ?? [];
            return pulumi.secret(pulumi.all(users.map((u) => values[u.secret])).apply((pws) => redisAcl(users.map((u, i) => ({ user: u.user, keyPrefix: u.keyPrefix, passwordSha256Hex: sha256(pws[i]) })))));
        }
        case "alertmanager-config":
            throw new Error(`citadel: ${f.path} is written by the monitoring layer (components/monitoring.ts)`);
        default: {
            const never: never = f.content;
            throw new Error(`unknown secret file content ${String(never)}`);
        }
    }
}

export class DataServices extends pulumi.ComponentResource {
    public readonly containers: Record<string, docker.Container> = {};

    constructor(name: string, args: DataServicesArgs, opts?: pulumi.ComponentResourceOptions) {
        super("citadel:data:DataServices", name, {}, opts);
        const dockerOpts = { parent: this, provider: args.provider };
        for (const x of args.containers) {
            for (const f of args.secretFiles.filter((s) => s.readers.includes(x.name))) {
                const step = args.steps.find((s) => s.name === f.step);
                if (!step) throw new Error(`citadel: no step writes ${f.path}`);
                wireStep(step, args.connection, args.graph, { parent: this, secretValue: secretFileValue(f, args.secrets.values, args.redisAcl) });
            }
            const image = remoteImage(`${x.name}-image`, x, args, this);
            // The config step validates by booting the image, so it waits for the image.
            for (const step of args.steps.filter((s) => s.kind === "script" && s.after.includes(imageRef(x.name)))) wireStep(step, args.connection, args.graph, { parent: this });
            const volumes = Object.fromEntries(x.volumes.map((v) => [v.name, new docker.Volume(resourceNameOf(v.name), { name: v.name }, dockerOpts)]));
            this.containers[x.name] = new docker.Container(
                x.name,
                containerArgs(x, image.imageId, { network: (n) => args.networks.network(n), volume: (v) => volumes[v].name }, args.secrets.epochs),
                { ...dockerOpts, dependsOn: args.graph.get(x.after) },
            );
            args.graph.add(containerRef(x.name), this.containers[x.name]);
        }
        this.registerOutputs({ containers: Object.keys(this.containers) });
    }
}

