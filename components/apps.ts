// Layer 3: the operator's containers, as the posture declares them: each hardened the same way,
// meeting the gateway on its own internal edge network, reading its secrets from files (*_FILE).
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { ContainerLayerArgs, containerArgs, remoteImage } from "./container";
import { wireStep } from "./host-step";
import { containerRef } from "./posture";

export type AppsArgs = ContainerLayerArgs & {
    /**
     * Called once every app's secret files are wired and before any app container: the steps that read
     * the apps' files and that the apps wait for (postgres-roles sets each role's password from its
     * app's file) are wired here.
     */
    betweenFilesAndContainers?: () => void;
};

export class Apps extends pulumi.ComponentResource {
    /** By app name. */
    public readonly containers: Record<string, docker.Container> = {};

    constructor(name: string, args: AppsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("citadel:app:Apps", name, {}, opts);
        const dockerOpts = { parent: this, provider: args.provider };
        for (const x of args.containers) {
            for (const f of args.secretFiles.filter((s) => s.readers.includes(x.name))) {
                const step = args.steps.find((s) => s.name === f.step);
                if (!step) throw new Error(`citadel: no step writes ${f.path}`);
                wireStep(step, args.connection, args.graph, { parent: this, secretValue: args.secrets.values[f.secret] });
            }
        }
        args.betweenFilesAndContainers?.();
        for (const x of args.containers) {
            const app = x.app as string;
            const image = remoteImage(`${app}-image`, x, args, this);
            this.containers[app] = new docker.Container(
                app,
                containerArgs(x, image.imageId, { network: (n) => args.networks.network(n), volume: () => { throw new Error(`citadel: app ${app} declares no volume`); } }, args.secrets.epochs),
                { ...dockerOpts, dependsOn: args.graph.get(x.after) },
            );
            args.graph.add(containerRef(x.name), this.containers[app]);
        }
        this.registerOutputs({ containers: Object.keys(this.containers) });
    }
}
