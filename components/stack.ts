// Wires the layers together in the order that can never lock the operator out:
// server → host firewall (SSH kept open) → sshd + baseline (Docker) → intrusion → networks →
// secret files → gateway, data, apps → container limits.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { Apps, appContainerName } from "./apps";
import { StackConfig } from "./config";
import { DataServices } from "./data";
import { Gateway, GATEWAY_CONTAINER } from "./gateway";
import { HostBaseline, HostFirewall, Intrusion } from "./host";
import { hostStep, secretFile } from "./host-step";
import { Networks } from "./networks";
import { POSTGRES_CONTAINER, REDIS_CONTAINER } from "./render/data";
import { renderContainerLimits } from "./render/limits";
import { Secrets } from "./secrets";
import { Server } from "./server";
import { sha256 } from "./render/script";

export interface CitadelArgs {
    config: StackConfig;
    /** The operator's private key (secret) for host steps. */
    privateKey: pulumi.Input<string>;
    /** Path of that key on the operator's machine, for Docker's SSH transport. */
    privateKeyPath: string;
    /** Clock for secret rotation (tests pin it). */
    now?: Date;
}

/** SSH options for Docker's ssh:// transport: the pinned host key and nothing else is accepted. */
export function dockerSshOpts(privateKeyPath: string, hostKey: string): string[] {
    return [
        "-i", privateKeyPath,
        "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        // No known_hosts file to go stale or be edited: the key comes from the stack itself.
        "-o", "UserKnownHostsFile=/dev/null",
        "-o", `KnownHostsCommand=/bin/echo %H ${hostKey}`,
    ];
}

export class Citadel extends pulumi.ComponentResource {
    public readonly server: Server;
    public readonly outputs: Record<string, pulumi.Input<unknown>>;

    constructor(name: string, args: CitadelArgs, opts?: pulumi.ComponentResourceOptions) {
        super("citadel:index:Citadel", name, {}, opts);
        const c = args.config;
        const p = { parent: this };

        const secrets = new Secrets("secrets", { config: c, now: args.now }, p);
        this.server = new Server("server", { config: c, privateKey: args.privateKey }, p);
        const conn = this.server.connection;

        const firewall = new HostFirewall("firewall", { config: c, connection: conn }, p);
        const baseline = new HostBaseline("baseline", { config: c, connection: conn, after: firewall.done }, p);

        const hostSecrets = secrets.values.crowdsecBouncerKey
            ? [secretFile({ consumer: "host", name: "crowdsecBouncerKey", uid: 0, value: secrets.values.crowdsecBouncerKey }, conn, { parent: this, dependsOn: baseline.done })]
            : [];
        // The script reads the bouncer key from its file, so its text does not change on rotation: the
        // (secret) hash of the key is an extra trigger that re-runs it and re-registers the bouncer.
        const bouncerKeyHash = secrets.values.crowdsecBouncerKey
            ? [pulumi.secret(secrets.values.crowdsecBouncerKey.apply((k) => sha256(k)))]
            : [];
        const intrusion = new Intrusion("intrusion", { config: c, connection: conn, after: [...baseline.done, ...hostSecrets], extraTriggers: bouncerKeyHash }, p);

        const provider = new docker.Provider(
            "docker",
            {
                host: pulumi.interpolate`ssh://${conn.user}@${conn.host}:${conn.port}`,
                sshOpts: pulumi.output(conn.hostKey).apply((hk) => dockerSshOpts(args.privateKeyPath, hk)),
            },
            { parent: this, dependsOn: baseline.done },
        );
        const networks = new Networks("networks", { config: c }, { parent: this, providers: { docker: provider }, dependsOn: baseline.done });
        const after = [...baseline.done, ...intrusion.done];
        const dataServices = new DataServices("data", { config: c, connection: conn, networks, provider, secrets, after }, p);
        const apps = new Apps("apps", { config: c, connection: conn, networks, provider, secrets, after }, p);
        const gateway = new Gateway("gateway", { config: c, connection: conn, networks, provider, after }, { parent: this, dependsOn: [apps] });

        // The Docker provider cannot set a pids limit; this step does, and re-runs whenever a container is re-created.
        const containers = [
            { name: GATEWAY_CONTAINER, pids: c.gateway.resources.pids, res: gateway.container },
            ...(dataServices.postgres ? [{ name: POSTGRES_CONTAINER, pids: c.postgres.resources.pids, res: dataServices.postgres }] : []),
            ...(dataServices.redis ? [{ name: REDIS_CONTAINER, pids: c.redis.resources.pids, res: dataServices.redis }] : []),
            ...c.apps.map((a) => ({ name: appContainerName(a), pids: a.resources.pids, res: apps.containers[a.name] })),
        ];
        hostStep(renderContainerLimits(containers.map(({ name, pids }) => ({ name, pids }))), conn, {
            parent: this,
            dependsOn: containers.map((x) => x.res),
            extraTriggers: containers.map((x) => x.res.id),
        });

        this.outputs = {
            target: c.target,
            address: this.server.address,
            sshHostKey: this.server.hostKey,
            sshUser: c.admin.user,
            sites: c.sites.map((s) => `https://${s.host}`),
            exposure: { tcp: [22, 80, 443], sshSourceIps: c.admin.sourceIps.length ? c.admin.sourceIps : ["0.0.0.0/0", "::/0"] },
            intrusionEngine: c.intrusion.engine,
            containers: containers.map((x) => x.name),
            secretRotation: Object.fromEntries(Object.entries(secrets.epochs).map(([k, v]) => [k, { epoch: v }])),
            caddyfileSha256: gateway.caddyfileSha256,
        };
        this.registerOutputs(this.outputs);
    }
}
