// Isolated Docker networks, exactly as the posture declares them (posture/containers.ts): only the
// gateway has a network with published ports; each app meets the gateway on its own internal
// network (apps cannot reach each other); each app with `data: true` meets Postgres and Redis on a
// data network of its own; outbound Internet is opt-in per app, on a bridge with no traffic between
// its containers.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { NetworkPosture } from "./posture";
import { resourceNameOf } from "./container";

export interface NetworksArgs {
    networks: NetworkPosture[];
}

export class Networks extends pulumi.ComponentResource {
    /** By Docker name (e.g. "citadel-public"). */
    public readonly byName: Record<string, docker.Network> = {};

    constructor(name: string, args: NetworksArgs, opts?: pulumi.ComponentResourceOptions) {
        super("citadel:network:Networks", name, {}, opts);
        for (const n of args.networks) {
            this.byName[n.name] = new docker.Network(
                resourceNameOf(n.name),
                {
                    name: n.name,
                    driver: "bridge",
                    internal: n.internal,
                    // Every subnet declared (a dual-stack network declares both families): a subnet Docker
                    // picked by itself would read back as a change and re-create the network.
                    ...(n.subnet || n.ipv6Subnet
                        ? {
                              ipamConfigs: [
                                  ...(n.subnet ? [{ subnet: n.subnet, ...(n.ipRange ? { ipRange: n.ipRange } : {}), ...(n.gateway ? { gateway: n.gateway } : {}) }] : []),
                                  ...(n.ipv6Subnet ? [{ subnet: n.ipv6Subnet, ...(n.ipv6IpRange ? { ipRange: n.ipv6IpRange } : {}), ...(n.ipv6Gateway ? { gateway: n.ipv6Gateway } : {}) }] : []),
                              ],
                          }
                        : {}),
                    ...(n.ipv6Subnet ? { ipv6: true } : {}),
                    ...(n.bridge || n.options ? { options: { ...(n.bridge ? { "com.docker.network.bridge.name": n.bridge } : {}), ...n.options } } : {}),
                },
                // A network has a fixed name: a replacement must remove the old one before it creates the new.
                { parent: this, deleteBeforeReplace: true },
            );
        }
        this.registerOutputs({ networks: args.networks.map((n) => n.name) });
    }

    /** The network's Docker name as an output (so a container waits for the network to exist). */
    network(name: string): pulumi.Output<string> {
        const n = this.byName[name];
        if (!n) throw new Error(`citadel: network ${name} is not declared`);
        return n.name;
    }
}
