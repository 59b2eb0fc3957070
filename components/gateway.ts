// Layer 2, the edge: a Caddy container rendered from templates/caddy — automatic HTTPS, security
// headers, per-client rate limits, host routing, JSON access logs — and the only published ports.
import * as docker from "@pulumi/docker";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { ContainerLayerArgs, hardenedContainerArgs } from "./container";
import { hostStep } from "./host-step";
import { CADDY_LOG_DIR_HOST, CADDYFILE_HOST_PATH, GATEWAY_HEALTH_URL, GATEWAY_UID, renderCaddyfile, renderGatewayScript } from "./render/caddy";
import { sha256 } from "./render/script";

export type GatewayArgs = ContainerLayerArgs;

export const GATEWAY_CONTAINER = "citadel-gateway";

export class Gateway extends pulumi.ComponentResource {
    public readonly container: docker.Container;
    public readonly caddyfileSha256: string;

    constructor(name: string, args: GatewayArgs, opts?: pulumi.ComponentResourceOptions) {
        super("citadel:edge:Gateway", name, {}, opts);
        const c = args.config;
        const caddyfile = renderCaddyfile(c);
        this.caddyfileSha256 = sha256(caddyfile);
        const dockerOpts = { parent: this, provider: args.provider };

        // The image: built on the host from images/caddy (Caddy + the rate-limit module), or taken as it is.
        const image: docker.Image | docker.RemoteImage = c.gateway.build
            ? new docker.Image(
                  "caddy-image",
                  {
                      imageName: c.gateway.image,
                      build: { context: path.resolve(__dirname, "..", "images", "caddy"), dockerfile: path.resolve(__dirname, "..", "images", "caddy", "Dockerfile") },
                      skipPush: true,
                      buildOnPreview: false,
                  },
                  { ...dockerOpts, dependsOn: args.after },
              )
            : new docker.RemoteImage("caddy-image", { name: c.gateway.image, keepLocally: true }, { ...dockerOpts, dependsOn: args.after });
        const imageRef = c.gateway.build ? (image as docker.Image).imageName : (image as docker.RemoteImage).imageId;

        // Validates the Caddyfile with the image's own Caddy before it is switched in.
        const config = hostStep(renderGatewayScript(c, c.gateway.image), args.connection, { parent: this, dependsOn: [image] });

        const volumes = {
            data: new docker.Volume("caddy-data", { name: "citadel-caddy-data" }, dockerOpts),
            config: new docker.Volume("caddy-config", { name: "citadel-caddy-config" }, dockerOpts),
        };

        this.container = new docker.Container(
            "gateway",
            {
                name: GATEWAY_CONTAINER,
                image: imageRef,
                ...hardenedContainerArgs({
                    user: `${GATEWAY_UID}:${GATEWAY_UID}`,
                    resources: c.gateway.resources,
                    tmpfs: ["/tmp"],
                    // Binding 80/443 as a non-root user needs this one capability back.
                    capAdd: ["NET_BIND_SERVICE"],
                    logs: c.host.docker,
                }),
                ports: [
                    { internal: 80, external: 80, protocol: "tcp" },
                    { internal: 443, external: 443, protocol: "tcp" },
                ],
                mounts: [
                    { type: "bind", source: CADDYFILE_HOST_PATH, target: "/etc/caddy/Caddyfile", readOnly: true },
                    { type: "bind", source: CADDY_LOG_DIR_HOST, target: "/var/log/caddy", readOnly: false },
                ],
                volumes: [
                    { volumeName: volumes.data.name, containerPath: "/data" },
                    { volumeName: volumes.config.name, containerPath: "/config" },
                ],
                networksAdvanced: [{ name: args.networks.public.name }, ...Object.values(args.networks.edge).map((n) => ({ name: n.name }))],
                healthcheck: { tests: ["CMD", "curl", "-fsS", "-o", "/dev/null", GATEWAY_HEALTH_URL], interval: "30s", timeout: "5s", retries: 3 },
                // A changed Caddyfile replaces the container, so the new config is what runs.
                labels: [{ label: "citadel.caddyfile-sha256", value: this.caddyfileSha256 }],
            },
            { ...dockerOpts, dependsOn: [config] },
        );
        this.registerOutputs({ container: this.container.name, caddyfileSha256: this.caddyfileSha256 });
    }
}
