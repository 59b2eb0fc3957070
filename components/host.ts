// Layers 1 and 1b plus the host baseline: each is a component that pushes its rendered scripts over
// SSH, one after the other, each step only once the previous one succeeded.
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { StackConfig } from "./config";
import { HostConnection, hostStep } from "./host-step";
import { renderFirewall } from "./render/firewall";
import { renderHostBaseline } from "./render/host";
import { renderIntrusion } from "./render/intrusion";
import { renderSshd } from "./render/sshd";
import { HostScript } from "./render/types";

export interface HostLayerArgs {
    config: StackConfig;
    connection: HostConnection;
    /** Resources that must be in place before the first step runs (explicit: a component's own
     * dependsOn does not hold back its children). */
    after?: pulumi.Resource[];
    /** Values whose change must re-run the layer's steps although their scripts did not change. */
    extraTriggers?: pulumi.Input<string>[];
}

/** Shared wiring: runs the steps in order and exposes the last one for `dependsOn`. */
abstract class HostLayer extends pulumi.ComponentResource {
    public readonly steps: command.remote.Command[] = [];
    /** Resolves when every step of this layer has run. */
    public readonly done: pulumi.Resource[];

    protected constructor(type: string, name: string, scripts: HostScript[], args: HostLayerArgs, opts?: pulumi.ComponentResourceOptions) {
        super(type, name, {}, opts);
        let previous: pulumi.Resource[] = args.after ?? [];
        for (const s of scripts) {
            const step = hostStep(s, args.connection, { parent: this, dependsOn: previous, extraTriggers: args.extraTriggers });
            this.steps.push(step);
            previous = [step];
        }
        this.done = [...this.steps];
        this.registerOutputs({ steps: scripts.map((s) => s.description) });
    }
}

/**
 * Layer 1, host perimeter: UFW (default deny in, SSH limited, 80/443, app ports denied) and the same
 * policy in Docker's DOCKER-USER chain. Runs first: SSH stays allowed before the firewall is enabled.
 */
export class HostFirewall extends HostLayer {
    constructor(name: string, args: HostLayerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("citadel:host:Firewall", name, [renderFirewall(args.config)], args, opts);
    }
}

/** sshd hardening, then sysctl, unattended upgrades, journald retention and the Docker engine. */
export class HostBaseline extends HostLayer {
    constructor(name: string, args: HostLayerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("citadel:host:Baseline", name, [renderSshd(args.config), ...renderHostBaseline(args.config)], args, opts);
    }
}

/** Layer 1b: CrowdSec with the firewall bouncer (default) or fail2ban. */
export class Intrusion extends HostLayer {
    constructor(name: string, args: HostLayerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("citadel:host:Intrusion", name, [renderIntrusion(args.config)], args, opts);
    }
}
