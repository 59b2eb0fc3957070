// The one place that says how every Citadel container is hardened (gateway, data services, apps).
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { HostConfig, Resources, StackConfig } from "./config";
import type { HostConnection } from "./host-step";
import type { Networks } from "./networks";

/** What every layer that runs containers on the host (gateway, data, apps) is given. */
export interface ContainerLayerArgs {
    config: StackConfig;
    connection: HostConnection;
    networks: Networks;
    /** Docker over ssh:// with the pinned host key. */
    provider: docker.Provider;
    /** Host steps that must have run first (Docker engine installed, firewall and intrusion up). */
    after: pulumi.Resource[];
}

export interface HardeningSpec {
    /** Numeric "uid:gid", never root. */
    user: string;
    resources: Resources;
    /** Writable tmpfs mounts; everything else is read-only. */
    tmpfs: string[];
    /** Capabilities added back after dropping ALL (e.g. NET_BIND_SERVICE for the gateway). */
    capAdd?: string[];
    logs: HostConfig["docker"];
}

/** "256m" → 256, "1g" → 1024, "512k" → 1 (Docker's provider takes MB). */
export function memoryMb(size: string): number {
    const m = /^([1-9][0-9]*)([kmg])$/.exec(size);
    if (!m) throw new Error(`bad memory size ${size}`);
    const n = Number(m[1]);
    switch (m[2]) {
        case "k":
            return Math.max(1, Math.ceil(n / 1024));
        case "m":
            return n;
        default:
            return n * 1024;
    }
}

/** 1 → "1.0", 0.5 → "0.5": the form Docker reports back, so a second `pulumi up` sees no change. */
export function dockerCpus(n: number): string {
    return Number.isInteger(n) ? n.toFixed(1) : String(n);
}

export function uidOf(user: string): number {
    return Number(user.split(":")[0]);
}

/**
 * Non-root, read-only root filesystem with tmpfs scratch space, no-new-privileges, every capability
 * dropped, memory (no swap) and CPU limits, rotated json-file logs, restart unless stopped, and an
 * init process that reaps zombies. The pids limit is applied by the `container-limits` host step
 * (the Docker provider has no pids-limit argument).
 */
export function hardenedContainerArgs(spec: HardeningSpec): Partial<docker.ContainerArgs> {
    const mb = memoryMb(spec.resources.memory);
    return {
        user: spec.user,
        readOnly: true,
        securityOpts: ["no-new-privileges:true"],
        capabilities: { drops: ["ALL"], adds: spec.capAdd ?? [] },
        memory: mb,
        memorySwap: mb,
        cpus: dockerCpus(spec.resources.cpus),
        tmpfs: Object.fromEntries(spec.tmpfs.map((p) => [p, "rw,noexec,nosuid,nodev,size=64m"])),
        logDriver: "json-file",
        logOpts: { "max-size": spec.logs.logMaxSize, "max-file": String(spec.logs.logMaxFile) },
        restart: "unless-stopped",
        init: true,
        ipcMode: "private",
    };
}

/** jwtSecret → JWT_SECRET_FILE: the `*_FILE` convention apps read their secrets by. */
export function secretEnvName(secret: string): string {
    return secret.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase() + "_FILE";
}

export const SECRETS_MOUNT = "/run/secrets";
