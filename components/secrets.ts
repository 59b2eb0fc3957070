// Generated secrets: @pulumi/random values kept as Pulumi secrets, rotated on a per-secret period.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { SecretPosture } from "./posture";
import { API_ENCRYPTION_KEYRING, JWT_SECRET_PREVIOUS } from "./posture/facts";
export { secretSpecs } from "./posture";

/**
 * The rotation keeper: the number of whole periods since the anchor date. It changes exactly once per
 * period, and a changed keeper makes @pulumi/random generate a new value on the next `pulumi up`.
 */
export function rotationEpoch(anchor: string, periodDays: number, now: Date): number {
    const start = Date.parse(`${anchor}T00:00:00Z`);
    const elapsedDays = Math.floor((now.getTime() - start) / 86_400_000);
    return Math.max(0, Math.floor(elapsedDays / periodDays));
}

/** The generations a secret keeps at epoch `epoch`: the current one and up to `previous` older ones, newest first. */
export function generations(epoch: number, previous: number): number[] {
    const out: number[] = [];
    for (let e = epoch; e >= Math.max(0, epoch - previous); e--) out.push(e);
    return out;
}

/** The keyring file's JSON: the id new data is encrypted under, and every key still readable (base64, 256 bit). */
export function keyringJson(current: number, keys: Record<number, string>): string {
    return JSON.stringify({ current: String(current), keys: Object.fromEntries(Object.entries(keys).map(([id, k]) => [String(id), k])) });
}

export interface SecretsArgs {
    /** What to generate (posture.secrets). */
    specs: SecretPosture[];
    /** citadel:secrets.rotationAnchor: periods count from this date. */
    rotationAnchor: string;
    /** The clock used for rotation (tests pin it). */
    now?: Date;
}

export class Secrets extends pulumi.ComponentResource {
    /** Secret values by name (and the derived jwtSecretPrevious, apiEncryptionKeyring); every one is a Pulumi secret. */
    public readonly values: Record<string, pulumi.Output<string>> = {};
    /** Current rotation epoch per secret (not secret: it says when, not what). */
    public readonly epochs: Record<string, number> = {};

    constructor(name: string, args: SecretsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("citadel:secrets:Secrets", name, {}, opts);
        const now = args.now ?? new Date();
        for (const spec of args.specs) {
            // citadel:secrets.rotateNow adds to the period count: a forced rotation is just a later epoch.
            const epoch = rotationEpoch(args.rotationAnchor, spec.rotationDays, now) + spec.forcedEpochs;
            const keepers = (e: number) => ({ rotationDays: String(spec.rotationDays), epoch: String(e) });
            this.epochs[spec.name] = epoch;
            const ro = { parent: this };
            switch (spec.kind) {
                case "key256":
                case "key512": {
                    if (spec.previous === undefined) {
                        const bytes = new random.RandomBytes(spec.name, { length: spec.bits / 8, keepers: keepers(epoch) }, ro);
                        this.values[spec.name] = pulumi.secret(bytes.hex);
                        break;
                    }
                    // A secret with readable older generations: one resource per epoch, named by it, so
                    // a rotation adds the new one and leaves the older ones (their values) untouched;
                    // the one past `previous` is deleted. A generation never changes once made
                    // (ignoreChanges: a new rotationDays renumbers epochs, it does not regenerate keys).
                    // The current one adopts the state of the single resource earlier versions kept
                    // under the plain name (alias), so upgrading rotates nothing.
                    const gens = generations(epoch, spec.previous).map((e) => ({
                        epoch: e,
                        bytes: new random.RandomBytes(
                            `${spec.name}-e${e}`,
                            { length: spec.bits / 8, keepers: keepers(e) },
                            { ...ro, ignoreChanges: ["keepers"], aliases: e === epoch ? [{ name: spec.name }] : [] },
                        ),
                    }));
                    this.values[spec.name] = pulumi.secret(gens[0].bytes.hex);
                    // Derived files for the apps (posture/facts: JWT_SECRET_PREVIOUS, API_ENCRYPTION_KEYRING).
                    if (spec.name === "jwtSecret") {
                        // With keepPrevious 0, or at epoch 0, there is no previous secret: the file carries the current one.
                        this.values[JWT_SECRET_PREVIOUS] = pulumi.secret((gens[1] ?? gens[0]).bytes.hex);
                    } else if (spec.name === "apiEncryptionKey") {
                        this.values[API_ENCRYPTION_KEYRING] = pulumi.secret(
                            pulumi.all(gens.map((g) => g.bytes.base64)).apply((keys) => keyringJson(epoch, Object.fromEntries(gens.map((g, i) => [g.epoch, keys[i]])))),
                        );
                    }
                    break;
                }
                case "password": {
                    const pw = new random.RandomPassword(spec.name, { length: 40, special: false, keepers: keepers(epoch) }, ro);
                    this.values[spec.name] = pulumi.secret(pw.result);
                    break;
                }
                default: {
                    const unreachable: never = spec.kind;
                    throw new Error(`unknown secret kind ${String(unreachable)}`);
                }
            }
        }
        this.registerOutputs({ epochs: this.epochs });
    }
}
