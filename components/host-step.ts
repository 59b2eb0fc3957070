// Resource wiring for host steps: every step of the posture (a rendered script, or a secret file
// written from stdin) reaches the host through a `command.remote.Command` over a pinned SSH
// connection, and waits for exactly what the posture says it waits for.
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import type { HostStepPosture } from "./posture";
import { secretFilePath } from "./posture/facts";
import { HostScript } from "./render/types";
import { sha256, sudoScript } from "./render/script";
import { shellQuote } from "./render/template";
export { secretFileScript } from "./render/secret-file";

/** How every host step reaches the server. */
export interface HostConnection {
    host: pulumi.Input<string>;
    port: pulumi.Input<number>;
    user: pulumi.Input<string>;
    /** The operator's private key (a Pulumi secret). */
    privateKey: pulumi.Input<string>;
    /** The server's public host key ("ssh-ed25519 AAAA..."), pinned: a different key aborts the connection. */
    hostKey: pulumi.Input<string>;
}

/** Dials of a step before it fails: a fresh server may still be booting, so about two minutes. */
export const HOST_DIAL_TRIES = 24;

export function connectionArgs(conn: HostConnection, dialTries = HOST_DIAL_TRIES): command.types.input.remote.ConnectionArgs {
    return {
        host: conn.host,
        port: conn.port,
        user: conn.user,
        privateKey: conn.privateKey,
        hostKey: conn.hostKey,
        dialErrorLimit: dialTries,
        perDialTimeout: 5,
    };
}

/**
 * What the posture's `after` names (steps, `image:<container>`, `container:<container>`) resolved to
 * resources. Components register what they create; a step's dependencies are looked up here, so the
 * order `pulumi up` runs is the model's, and a name the wiring forgot is an error, not a race.
 */
export class StepGraph {
    private readonly byName = new Map<string, pulumi.Resource>();

    add(name: string, r: pulumi.Resource): void {
        if (this.byName.has(name)) throw new Error(`citadel: ${name} is wired twice`);
        this.byName.set(name, r);
    }

    has(name: string): boolean {
        return this.byName.has(name);
    }

    get(names: readonly string[]): pulumi.Resource[] {
        return names.map((n) => {
            const r = this.byName.get(n);
            if (!r) throw new Error(`citadel: ${n} is needed before it is wired (posture/steps.ts order)`);
            return r;
        });
    }
}

/**
 * Runs a rendered script as root on the host. The whole script (with the files it embeds) is the
 * command, so `pulumi preview` shows reviewers the exact lines that change; the content hash is a
 * trigger so the step re-runs when, and only when, what it pushes changes.
 */
export function hostStep(
    step: Pick<HostScript, "name" | "script" | "dialTries">,
    conn: HostConnection,
    opts: pulumi.CustomResourceOptions & { extraTriggers?: pulumi.Input<string>[] } = {},
): command.remote.Command {
    const { extraTriggers, ...resourceOpts } = opts;
    return new command.remote.Command(
        step.name,
        {
            connection: connectionArgs(conn, step.dialTries),
            create: sudoScript(step.script),
            triggers: [sha256(step.script), ...(extraTriggers ?? [])],
        },
        resourceOpts,
    );
}

/**
 * Delivers a secret as a 0400 file owned by its single reader. The value travels on the SSH
 * session's stdin — never in the command string, environment, or logs — and is stored in Pulumi
 * state encrypted. The directory tree is root-only (0700), so only root and the bind mount into the
 * consuming container can reach the file.
 */
export function secretFile(step: HostStepPosture, value: pulumi.Input<string>, conn: HostConnection, opts: pulumi.CustomResourceOptions = {}): command.remote.Command {
    if (step.kind !== "secret-file" || !step.secretFile) throw new Error(`citadel: ${step.name} is not a secret-file step`);
    return new command.remote.Command(
        step.name,
        {
            connection: connectionArgs(conn),
            create: `sudo -n /bin/bash -c ${shellQuote(step.script)}`,
            delete: `sudo -n rm -f ${shellQuote(step.secretFile)}`,
            // Rotation changes stdin, which re-runs `create` as an in-place update. (No hash trigger
            // here: a trigger means replacement, whose delete would remove the freshly written file.)
            stdin: pulumi.secret(value),
        },
        { ...opts, additionalSecretOutputs: ["stdin"] },
    );
}

/** Wires one step of the posture: its dependencies from the graph, then registers it there. */
export function wireStep(
    step: HostStepPosture,
    conn: HostConnection,
    graph: StepGraph,
    opts: { parent: pulumi.Resource; extraTriggers?: pulumi.Input<string>[]; secretValue?: pulumi.Input<string> },
): command.remote.Command {
    const dependsOn = graph.get(step.after);
    let r: command.remote.Command;
    switch (step.kind) {
        case "script":
            r = hostStep(step, conn, { parent: opts.parent, dependsOn, extraTriggers: opts.extraTriggers });
            break;
        case "secret-file":
            if (opts.secretValue === undefined) throw new Error(`citadel: ${step.name} needs its secret value`);
            r = secretFile(step, opts.secretValue, conn, { parent: opts.parent, dependsOn });
            break;
        default: {
            const never: never = step.kind;
            throw new Error(`unknown step kind ${String(never)}`);
        }
    }
    graph.add(step.name, r);
    return r;
}

export { secretFilePath };
