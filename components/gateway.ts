// Layer 2, the edge: the gateway container as the posture declares it (posture/containers.ts) —
// Caddy with the Caddyfile from templates/caddy (automatic HTTPS, security headers, per-client rate
// limits, host routing, JSON access logs), the only published ports.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { ContainerLayerArgs, containerArgs, resourceNameOf } from "./container";
import { wireStep } from "./host-step";
import { containerRef, imageRef, type HostStepPosture } from "./posture";
import { GATEWAY_IMAGE_STEP } from "./posture/facts";
import { builtImageId } from "./render/gateway-image";

export interface GatewayArgs extends ContainerLayerArgs {
    /** The gateway-image step (posture/steps.ts), when the posture builds the image on the host. */
    buildStep?: HostStepPosture;
}

export class Gateway extends pulumi.ComponentResource {
    public readonly container: docker.Container;

    constructor(name: string, args: GatewayArgs, opts?: pulumi.ComponentResourceOptions) {
        super("citadel:edge:Gateway", name, {}, opts);
        const x = args.containers[0];
        if (!x || x.role !== "gateway") throw new Error("citadel: the gateway layer needs the gateway container");
        const dockerOpts = { parent: this, provider: args.provider };

        // The image: built on the host by the gateway-image step (images/caddy), whose printed image
        // ID the container runs (a rebuild re-creates the container; nothing is ever pulled under the
        // tag, which a registry namespace could answer for); or taken as it is (pre-loaded or pullable).
        let imageId: pulumi.Output<string>;
        if (x.build) {
            const build = args.buildStep;
            if (!build) throw new Error(`citadel: the gateway is built on the host but the ${GATEWAY_IMAGE_STEP} step is missing`);
            const step = wireStep(build, args.connection, args.graph, { parent: this });
            args.graph.add(imageRef(x.name), step);
            imageId = step.stdout.apply(builtImageId);
        } else {
            const remote = new docker.RemoteImage("caddy-image", { name: x.image, keepLocally: true }, { ...dockerOpts, dependsOn: args.graph.get(x.imageAfter) });
            args.graph.add(imageRef(x.name), remote);
            imageId = remote.imageId;
        }

        // Validates the Caddyfile with the image's own Caddy before it is switched in.
        for (const step of args.steps) wireStep(step, args.connection, args.graph, { parent: this });

        const volumes = Object.fromEntries(x.volumes.map((v) => [v.name, new docker.Volume(resourceNameOf(v.name), { name: v.name }, dockerOpts)]));
        this.container = new docker.Container(
            "gateway",
            containerArgs(x, imageId, { network: (n) => args.networks.network(n), volume: (v) => volumes[v].name }, args.secrets.epochs),
            { ...dockerOpts, dependsOn: args.graph.get(x.after) },
        );
        args.graph.add(containerRef(x.name), this.container);
        this.registerOutputs({ container: this.container.name });
    }
}
