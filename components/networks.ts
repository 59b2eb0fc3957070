// Isolated Docker networks. Only the gateway has a network with published ports; each app meets the
// gateway on its own internal network (apps cannot reach each other); data services live on one
// internal network that only apps with `data: true` join; outbound Internet is opt-in per app.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { StackConfig } from "./config";

export interface NetworksArgs {
    config: StackConfig;
}

export class Networks extends pulumi.ComponentResource {
    /** Gateway only: published 80/443 and egress for ACME. */
    public readonly public: docker.Network;
    /** One internal network per app, shared only with the gateway. */
    public readonly edge: Record<string, docker.Network> = {};
    /** Apps with data: true ↔ Postgres/Redis. Internal: no route out. */
    public readonly data?: docker.Network;
    /** Outbound Internet for apps that opt in. */
    public readonly egress?: docker.Network;

    constructor(name: string, args: NetworksArgs, opts?: pulumi.ComponentResourceOptions) {
        super("citadel:network:Networks", name, {}, opts);
        const c = args.config;
        const ro = { parent: this };
        this.public = new docker.Network("public", { name: "citadel-public", driver: "bridge", internal: false }, ro);
        for (const app of c.apps) {
            this.edge[app.name] = new docker.Network(`edge-${app.name}`, { name: `citadel-edge-${app.name}`, driver: "bridge", internal: true }, ro);
        }
        if (c.postgres.enabled || c.redis.enabled) {
            this.data = new docker.Network("data", { name: "citadel-data", driver: "bridge", internal: true }, ro);
        }
        if (c.apps.some((a) => a.egress)) {
            this.egress = new docker.Network("egress", { name: "citadel-egress", driver: "bridge", internal: false }, ro);
        }
        this.registerOutputs({ public: this.public.name, edge: Object.keys(this.edge), data: this.data?.name, egress: this.egress?.name });
    }
}
