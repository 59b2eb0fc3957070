// Example configurations for tests: the real prod example, and a local (existing-target) variant.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { parseConfigOrThrow, rawFromObject, StackConfig } from "../components/config";
import { rawStackConfig, loadStackConfig } from "../components/stackfile";

export const prodRaw = (): Record<string, string> => rawStackConfig("prod");
export const prodConfig = (): StackConfig => loadStackConfig("prod");

/** The prod example moved to the `existing` target (the shape the local VPS uses). */
export function existingRaw(): Record<string, string> {
    const raw = prodRaw();
    raw["citadel:target"] = "existing";
    raw["citadel:existing"] = JSON.stringify({ address: "127.0.0.1", port: 2222, hostKey: TEST_HOST_KEY });
    delete raw["citadel:hcloud"];
    return raw;
}
export const existingConfig = (): StackConfig => parseConfigOrThrow(existingRaw());

export const TEST_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMmWBSQBsZWnMjy8RjysXvzAuJKHcUNHWzwio6RClj/n host@test";

/** The prod example with overrides applied to its raw values (objects replace whole keys). */
export function prodWith(overrides: Record<string, unknown>): Record<string, string> {
    return { ...prodRaw(), ...rawFromObject(overrides) };
}

/** A fresh ed25519 key pair in dir (private key path, public key line). */
export function makeKeyPair(dir: string, name = "id_ed25519"): { privateKeyPath: string; publicKey: string } {
    const p = path.join(dir, name);
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "citadel-test", "-f", p]);
    return { privateKeyPath: p, publicKey: fs.readFileSync(p + ".pub", "utf8").trim() };
}

/** A public age recipient (its private key was thrown away: nothing can decrypt to it). */
export const TEST_AGE_RECIPIENT = "age1sqp08csppaczr2n2enylgvhpkccdd2ny9fq920uvnen89cwluy8su7c093";

/** citadel:backup of the prod example, enabled, to an SFTP target (credentials are not config: see backupCredentials). */
export const TEST_BACKUP = {
    enabled: true,
    recipients: [TEST_AGE_RECIPIENT, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMmWBSQBsZWnMjy8RjysXvzAuJKHcUNHWzwio6RClj/n ops@test"],
    target: { url: "sftp://u123456@u123456.your-storagebox.de:23/citadel", hostKey: TEST_HOST_KEY },
};
export const backupConfig = (backup: Record<string, unknown> = {}): StackConfig => parseConfigOrThrow(prodWith({ backup: { ...TEST_BACKUP, ...backup } }));
