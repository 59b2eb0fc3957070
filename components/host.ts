// Layers 1 and 1b plus the host baseline: each component pushes its slice of the posture's host
// steps over SSH, each step only once what the posture says it waits for has succeeded.
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { HostConnection, StepGraph, wireStep } from "./host-step";
import type { HostStepPosture } from "./posture";

export interface HostLayerArgs {
    /** This layer's steps, in order (posture.hostSteps of the layer). */
    steps: HostStepPosture[];
    connection: HostConnection;
    graph: StepGraph;
    /** Values whose change must re-run the layer's steps although their scripts did not change. */
    extraTriggers?: pulumi.Input<string>[];
}

/** Shared wiring: runs the steps in the posture's order and exposes them for `dependsOn`. */
abstract class HostLayer extends pulumi.ComponentResource {
    public readonly steps: command.remote.Command[] = [];
    /** Resolves when every step of this layer has run. */
    public readonly done: pulumi.Resource[];

    protected constructor(type: string, name: string, args: HostLayerArgs, opts?: pulumi.ComponentResourceOptions) {
        super(type, name, {}, opts);
        for (const s of args.steps) this.steps.push(wireStep(s, args.connection, args.graph, { parent: this, extraTriggers: args.extraTriggers }));
        this.done = [...this.steps];
        this.registerOutputs({ steps: args.steps.map((s) => s.description) });
    }
}

/**
 * Layer 1, host perimeter: UFW (default deny in, SSH limited, the gateway ports, app ports denied) and the same
 * policy in Docker's DOCKER-USER chain. Runs first: SSH stays allowed before the firewall is enabled.
 */
export class HostFirewall extends HostLayer {
    constructor(name: string, args: HostLayerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("citadel:host:Firewall", name, args, opts);
    }
}

/** sshd hardening, then sysctl, unattended upgrades, journald retention and the Docker engine. */
export class HostBaseline extends HostLayer {
    constructor(name: string, args: HostLayerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("citadel:host:Baseline", name, args, opts);
    }
}

/** Layer 1b: CrowdSec with the firewall bouncer (default) or fail2ban. */
export class Intrusion extends HostLayer {
    constructor(name: string, args: HostLayerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("citadel:host:Intrusion", name, args, opts);
    }
}
