// Resource wiring for host steps: every rendered script and every secret file reaches the host
// through a `command.remote.Command` over a pinned SSH connection.
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { HostScript } from "./render/types";
import { sha256, sudoScript } from "./render/script";
import { shellQuote } from "./render/template";

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

export function connectionArgs(conn: HostConnection): command.types.input.remote.ConnectionArgs {
    return {
        host: conn.host,
        port: conn.port,
        user: conn.user,
        privateKey: conn.privateKey,
        hostKey: conn.hostKey,
        // A fresh server may still be booting: retry the dial for about two minutes, then fail.
        dialErrorLimit: 24,
        perDialTimeout: 5,
    };
}

/**
 * Runs a rendered script as root on the host. The whole script (with the files it embeds) is the
 * command, so `pulumi preview` shows reviewers the exact lines that change; the content hash is a
 * trigger so the step re-runs when, and only when, what it pushes changes.
 */
export function hostStep(
    step: HostScript,
    conn: HostConnection,
    opts: pulumi.CustomResourceOptions & { extraTriggers?: pulumi.Input<string>[] } = {},
): command.remote.Command {
    const { extraTriggers, ...resourceOpts } = opts;
    return new command.remote.Command(
        step.name,
        {
            connection: connectionArgs(conn),
            create: sudoScript(step.script),
            triggers: [sha256(step.script), ...(extraTriggers ?? [])],
        },
        resourceOpts,
    );
}

/** Where a generated secret lands on the host: one file per consumer, readable by that consumer only. */
export interface SecretFileSpec {
    /** Who reads it: a container name, or "host" for host daemons. */
    consumer: string;
    /** Secret name (file name). */
    name: string;
    /** Numeric uid that owns the file (the container's user; 0 for host daemons). */
    uid: number;
    /** The secret value (a Pulumi secret). */
    value: pulumi.Input<string>;
}

export const SECRETS_DIR = "/etc/citadel/secrets";

export function secretFilePath(consumer: string, name: string): string {
    return `${SECRETS_DIR}/${consumer}/${name}`;
}

/** The root script that writes stdin to the secret file (pure; tested on its own). */
export function secretFileScript(consumer: string, name: string, uid: number): string {
    const path = secretFilePath(consumer, name);
    const dir = `${SECRETS_DIR}/${consumer}`;
    return [
        "set -euo pipefail",
        "umask 077",
        `install -d -m 0700 -o root -g root ${shellQuote(SECRETS_DIR)} ${shellQuote(dir)}`,
        `tmp=$(mktemp ${shellQuote(dir + "/.tmp.XXXXXX")})`,
        // The value arrives on stdin and is written byte-exact.
        `cat > "$tmp"`,
        `chown ${uid}:0 "$tmp" && chmod 0400 "$tmp"`,
        `mv -f "$tmp" ${shellQuote(path)}`,
        `echo "citadel: secret file ${path} written (owner uid ${uid}, mode 0400)"`,
    ].join("\n");
}

/**
 * Delivers a secret as a 0400 file owned by its single reader. The value travels on the SSH
 * session's stdin — never in the command string, environment, or logs — and is stored in Pulumi
 * state encrypted. The directory tree is root-only (0700), so only root and the bind mount into the
 * consuming container can reach the file.
 */
export function secretFile(spec: SecretFileSpec, conn: HostConnection, opts: pulumi.CustomResourceOptions = {}): command.remote.Command {
    const path = secretFilePath(spec.consumer, spec.name);
    const script = secretFileScript(spec.consumer, spec.name, spec.uid);
    return new command.remote.Command(
        `secret-${spec.consumer}-${spec.name}`,
        {
            connection: connectionArgs(conn),
            create: `sudo -n /bin/bash -c ${shellQuote(script)}`,
            delete: `sudo -n rm -f ${shellQuote(path)}`,
            // Rotation changes stdin, which re-runs `create` as an in-place update. (No hash trigger
            // here: a trigger means replacement, whose delete would remove the freshly written file.)
            stdin: pulumi.secret(spec.value),
        },
        { ...opts, additionalSecretOutputs: ["stdin"] },
    );
}
