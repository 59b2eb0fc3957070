// Layer 2, the edge: the gateway container as the posture declares it (posture/containers.ts) —
// Caddy with the Caddyfile from templates/caddy (automatic HTTPS, security headers, per-client rate
// limits, host routing, JSON access logs), the only published ports.
import * as docker from "@pulumi/docker";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { ContainerLayerArgs, containerArgs, resourceNameOf } from "./container";
import { wireStep } from "./host-step";
import { containerRef, imageRef } from "./posture";

export type GatewayArgs = ContainerLayerArgs;

/** The product's Caddy image source (Caddy + the rate-limit module). */
const CADDY_IMAGE_DIR = path.resolve(__dirname, "..", "images", "caddy");

export class Gateway extends pulumi.ComponentResource {
    public readonly container: docker.Container;

    constructor(name: string, args: GatewayArgs, opts?: pulumi.ComponentResourceOptions) {
        super("citadel:edge:Gateway", name, {}, opts);
        const x = args.containers[0];
        if (!x || x.role !== "gateway") throw new Error("citadel: the gateway layer needs the gateway container");
        const dockerOpts = { parent: this, provider: args.provider };

        // The image: built on the host from images/caddy, or taken as it is (pre-loaded or pullable).
        const imageDeps = args.graph.get(x.imageAfter);
        let imageId: pulumi.Output<string>;
        if (x.build) {
            const built = new docker.Image(
                "caddy-image",
                { imageName: x.image, build: { context: CADDY_IMAGE_DIR, dockerfile: path.join(CADDY_IMAGE_DIR, "Dockerfile") }, skipPush: true, buildOnPreview: false },
                { ...dockerOpts, dependsOn: imageDeps },
            );
            args.graph.add(imageRef(x.name), built);
            imageId = built.imageName;
        } else {
            const remote = new docker.RemoteImage("caddy-image", { name: x.image, keepLocally: true }, { ...dockerOpts, dependsOn: imageDeps });
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
