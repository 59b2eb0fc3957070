// Layer 3: the operator's containers. Each is hardened the same way (components/container.ts), meets
// the gateway on its own internal edge network, and reads its secrets from files (*_FILE).
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { AppConfig } from "./config";
import { ContainerLayerArgs, hardenedContainerArgs, SECRETS_MOUNT, secretEnvName, uidOf } from "./container";
import { secretFile, secretFilePath } from "./host-step";
import { epochLabel, Secrets } from "./secrets";

export interface AppsArgs extends ContainerLayerArgs {
    secrets: Secrets;
}

export function appContainerName(app: AppConfig): string {
    return `app-${app.name}`;
}

/** Plain env plus one NAME_FILE pointer per secret; never a secret value. */
export function appEnv(app: AppConfig): string[] {
    return [
        ...Object.entries(app.env).map(([k, v]) => `${k}=${v}`),
        ...app.secrets.map((s) => `${secretEnvName(s)}=${SECRETS_MOUNT}/${s}`),
    ];
}

export class Apps extends pulumi.ComponentResource {
    public readonly containers: Record<string, docker.Container> = {};

    constructor(name: string, args: AppsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("citadel:app:Apps", name, {}, opts);
        const c = args.config;
        const dockerOpts = { parent: this, provider: args.provider };
        for (const app of c.apps) {
            const files = app.secrets.map((s) =>
                secretFile({ consumer: app.name, name: s, uid: uidOf(app.user), value: args.secrets.values[s] }, args.connection, {
                    parent: this,
                    dependsOn: args.after,
                }),
            );
            const image = new docker.RemoteImage(`${app.name}-image`, { name: app.image, keepLocally: true }, { ...dockerOpts, dependsOn: args.after });
            const networks: docker.types.input.ContainerNetworksAdvanced[] = [{ name: args.networks.edge[app.name].name, aliases: [app.name] }];
            if (app.data && args.networks.data) networks.push({ name: args.networks.data.name });
            if (app.egress && args.networks.egress) networks.push({ name: args.networks.egress.name });
            this.containers[app.name] = new docker.Container(
                app.name,
                {
                    name: appContainerName(app),
                    image: image.imageId,
                    ...hardenedContainerArgs({ user: app.user, resources: app.resources, tmpfs: app.tmpfs, logs: c.host.docker }),
                    envs: appEnv(app),
                    mounts: app.secrets.map((s) => ({ type: "bind", source: secretFilePath(app.name, s), target: `${SECRETS_MOUNT}/${s}`, readOnly: true })),
                    networksAdvanced: networks,
                    healthcheck: app.healthcheck
                        ? { tests: ["CMD", ...app.healthcheck.test], interval: app.healthcheck.interval, timeout: app.healthcheck.timeout, retries: app.healthcheck.retries }
                        : undefined,
                    // Rotated secrets re-create the container so the app reads the new files.
                    labels: [{ label: "citadel.secret-epochs", value: epochLabel(args.secrets, app.secrets) }],
                },
                { ...dockerOpts, dependsOn: files },
            );
        }
        this.registerOutputs({ containers: Object.keys(this.containers) });
    }
}
