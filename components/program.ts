// The program's inputs, checked before any resource exists: the typed config and the operator's key.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { backupCredentials, parseConfig, tagOnlyWarning } from "./config";
import type { CitadelArgs } from "./stack";

export function expandHome(p: string): string {
    return p === "~" ? os.homedir() : p.startsWith("~/") ? path.join(os.homedir(), p.slice(2)) : p;
}

/**
 * Parses `citadel:*` config and reads the admin private key. Any problem becomes a RunError: Pulumi
 * prints its message alone (no stack trace) and registers nothing.
 */
export function loadProgramInputs(raw: Record<string, string>, readFile: (p: string) => string = (p) => fs.readFileSync(p, "utf8")): CitadelArgs {
    const parsed = parseConfig(raw);
    if (!parsed.ok) {
        throw new pulumi.RunError(
            `Invalid Citadel configuration (${parsed.errors.length} problem${parsed.errors.length === 1 ? "" : "s"}):\n` +
                parsed.errors.map((e) => `  - ${e}`).join("\n") +
                `\nFix with \`pulumi config set --path <key> <value>\` or edit Pulumi.<stack>.yaml; nothing was changed.`,
        );
    }
    const config = parsed.config;
    // The backup target's credentials: Pulumi secrets, needed only here (rendering never reads them).
    const creds = backupCredentials(config.backup);
    if (!creds.ok) {
        throw new pulumi.RunError(
            `Invalid Citadel configuration (${creds.errors.length} problem${creds.errors.length === 1 ? "" : "s"}):\n` + creds.errors.map((e) => `  - ${e}`).join("\n") + `\nNothing was changed.`,
        );
    }
    const keyPath = expandHome(config.admin.privateKeyPath);
    let privateKey: string;
    try {
        privateKey = readFile(keyPath);
    } catch (e) {
        throw new pulumi.RunError(
            `citadel:admin.privateKeyPath: cannot read ${JSON.stringify(keyPath)} (${(e as NodeJS.ErrnoException).code ?? String(e)}); ` +
                `point it at the private key matching one of citadel:admin.sshPublicKeys; nothing was changed.`,
        );
    }
    if (!/-----BEGIN (OPENSSH|RSA|EC) PRIVATE KEY-----/.test(privateKey)) {
        throw new pulumi.RunError(`citadel:admin.privateKeyPath: ${JSON.stringify(keyPath)} is not an unencrypted OpenSSH private key; nothing was changed.`);
    }
    // Not an error: a tag-pinned image works; the warning says what a digest would add (every preview shows it).
    const tags = tagOnlyWarning(config);
    if (tags) void pulumi.log.warn(tags);
    return { config, privateKey: pulumi.secret(privateKey), privateKeyPath: keyPath, backupCredentials: creds.values };
}
