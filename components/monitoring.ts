// Monitoring as the posture declares it (posture/monitoring.ts): Prometheus, Alertmanager, the node
// exporter and the blackbox exporter, hardened like every container, on the internal monitoring
// network; Prometheus' files from the monitoring-config step; alertmanager.yml (with the receivers'
// URLs) as a 0400 secret file written from stdin.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { ContainerLayerArgs, containerArgs, remoteImage, resourceNameOf } from "./container";
import { wireStep } from "./host-step";
import { containerRef } from "./posture";

export type MonitoringArgs = ContainerLayerArgs & {
    /** alertmanager.yml with the receivers' URLs: a secret. */
    alertmanagerConfig: pulumi.Output<string>;
};

export class Monitoring extends pulumi.ComponentResource {
    public readonly containers: Record<string, docker.Container> = {};

    constructor(name: string, args: MonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
        super("citadel:monitoring:Monitoring", name, {}, opts);
        const dockerOpts = { parent: this, provider: args.provider };
        for (const x of args.containers) {
            for (const f of args.secretFiles.filter((s) => s.readers.includes(x.name))) {
                const step = args.steps.find((s) => s.name === f.step);
                if (!step) throw new Error(`citadel: no step writes ${f.path}`);
                if (f.content !== "alertmanager-config") throw new Error(`citadel: ${f.path}: the monitoring layer writes only Alertmanager's configuration`);
                wireStep(step, args.connection, args.graph, { parent: this, secretValue: args.alertmanagerConfig });
            }
            const image = remoteImage(`${x.name}-image`, x, args, this);
            // The config step validates with the Prometheus image's promtool, so it waits for the image.
            for (const step of args.steps.filter((s) => s.kind === "script" && x.after.includes(s.name))) {
                if (!args.graph.has(step.name)) wireStep(step, args.connection, args.graph, { parent: this });
            }
            const volumes = Object.fromEntries(x.volumes.map((v) => [v.name, new docker.Volume(resourceNameOf(v.name), { name: v.name }, dockerOpts)]));
            this.containers[x.name] = new docker.Container(
                resourceNameOf(x.name),
                containerArgs(x, image.imageId, { network: (n) => args.networks.network(n), volume: (v) => volumes[v].name }, args.secrets.epochs),
                { ...dockerOpts, dependsOn: args.graph.get(x.after) },
            );
            args.graph.add(containerRef(x.name), this.containers[x.name]);
        }
        this.registerOutputs({ containers: Object.keys(this.containers) });
    }
}
