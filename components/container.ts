// Turns a declared container (posture/containers.ts) into the Docker provider's arguments: the one
// place that says how a ContainerPosture becomes a running container (gateway, data services, apps).
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { imageRef, type ContainerPosture, type HostStepPosture, type SecretFilePosture } from "./posture";
import type { HostConnection, StepGraph } from "./host-step";
import type { Networks } from "./networks";
import type { Secrets } from "./secrets";

/** What every layer that runs containers on the host (gateway, data, apps) is given. */
export interface ContainerLayerArgs {
    /** This layer's containers, as declared. */
    containers: ContainerPosture[];
    /** The host steps this layer wires (its secret files and config steps). */
    steps: HostStepPosture[];
    secretFiles: SecretFilePosture[];
    connection: HostConnection;
    networks: Networks;
    /** Docker over ssh:// with the pinned host key. */
    provider: docker.Provider;
    secrets: Secrets;
    graph: StepGraph;
}

/** The Pulumi resource name of a Docker object named "citadel-x" ("x"), as the stack always named them. */
export const resourceNameOf = (dockerName: string): string => dockerName.replace(/^citadel-/, "");

/** "jwtSecret=3,redisPassword=1": when the secrets a container reads were last rotated (no values). */
export function epochLabel(epochs: Record<string, number>, names: string[]): string {
    return names.map((n) => `${n}=${epochs[n] ?? 0}`).join(",");
}

/**
 * Non-root, read-only root filesystem with tmpfs scratch space, no-new-privileges, every capability
 * dropped but the declared ones, memory (no swap) and CPU limits, rotated json-file logs (the journal for
 * data services), restart
 * unless stopped, and an init process that reaps zombies. The pids limit is applied by the
 * `container-limits` host step (the Docker provider has no pids-limit argument).
 */
export function containerArgs(
    x: ContainerPosture,
    image: pulumi.Input<string>,
    names: { network(name: string): pulumi.Input<string>; volume(name: string): pulumi.Input<string> },
    epochs: Record<string, number>,
): docker.ContainerArgs {
    const labels = Object.entries(x.labels).map(([label, value]) => ({ label, value }));
    if (x.rotatesWith.length) labels.push({ label: "citadel.secret-epochs", value: epochLabel(epochs, x.rotatesWith) });
    return {
        name: x.name,
        image,
        user: x.user,
        readOnly: x.readOnly,
        privileged: x.privileged,
        securityOpts: x.noNewPrivileges ? ["no-new-privileges:true"] : [],
        capabilities: { drops: x.capDrop, adds: x.capAdd },
        memory: x.memoryMb,
        memorySwap: x.memoryMb,
        cpus: x.cpus,
        tmpfs: Object.fromEntries(x.tmpfs.map((p) => [p, "rw,noexec,nosuid,nodev,size=64m"])),
        logDriver: x.logs.driver,
        // journald takes no size options (the journal's own limits apply); the tag names the container in it.
        logOpts: x.logs.driver === "journald" ? { tag: x.name } : { "max-size": x.logs.maxSize, "max-file": String(x.logs.maxFile) },
        restart: "unless-stopped",
        init: true,
        ipcMode: "private",
        command: x.command,
        envs: x.env.length ? x.env : undefined,
        ports: x.publishedPorts.length ? x.publishedPorts.map((p) => ({ internal: p.internal, external: p.external, protocol: p.protocol, ...(p.hostIp ? { ip: p.hostIp } : {}) })) : undefined,
        mounts: [
            ...x.binds.map((b) => ({ type: "bind", source: b.source, target: b.target, readOnly: b.readOnly })),
            ...x.secretMounts.map((m) => ({ type: "bind", source: m.source, target: m.target, readOnly: true })),
        ],
        volumes: x.volumes.length ? x.volumes.map((v) => ({ volumeName: names.volume(v.name), containerPath: v.target })) : undefined,
        networksAdvanced: x.networks.map((a) => ({ name: names.network(a.network), aliases: a.aliases.length ? a.aliases : undefined, ipv4Address: a.ipv4Address, ipv6Address: a.ipv6Address })),
        healthcheck: x.healthcheck ? { tests: x.healthcheck.test, interval: x.healthcheck.interval, timeout: x.healthcheck.timeout, retries: x.healthcheck.retries } : undefined,
        labels,
    };
}

/** The image of a declared container, pulled (or kept if present), after the model's `imageAfter`. */
export function remoteImage(resourceName: string, x: ContainerPosture, args: ContainerLayerArgs, parent: pulumi.Resource): docker.RemoteImage {
    const image = new docker.RemoteImage(resourceName, { name: x.image, keepLocally: true }, { parent, provider: args.provider, dependsOn: args.graph.get(x.imageAfter) });
    args.graph.add(imageRef(x.name), image);
    return image;
}

