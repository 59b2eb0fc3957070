// Generated secrets: @pulumi/random values kept as Pulumi secrets, rotated on a per-secret period.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { SecretPosture } from "./posture";
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

export interface SecretsArgs {
    /** What to generate (posture.secrets). */
    specs: SecretPosture[];
    /** citadel:secrets.rotationAnchor: periods count from this date. */
    rotationAnchor: string;
    /** The clock used for rotation (tests pin it). */
    now?: Date;
}

export class Secrets extends pulumi.ComponentResource {
    /** Secret values by name; every one is a Pulumi secret. */
    public readonly values: Record<string, pulumi.Output<string>> = {};
    /** Current rotation epoch per secret (not secret: it says when, not what). */
    public readonly epochs: Record<string, number> = {};

    constructor(name: string, args: SecretsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("citadel:secrets:Secrets", name, {}, opts);
        const now = args.now ?? new Date();
        for (const spec of args.specs) {
            const epoch = rotationEpoch(args.rotationAnchor, spec.rotationDays, now);
            const keepers = { rotationDays: String(spec.rotationDays), epoch: String(epoch) };
            this.epochs[spec.name] = epoch;
            const ro = { parent: this };
            switch (spec.kind) {
                case "key256":
                case "key512": {
                    const bytes = new random.RandomBytes(spec.name, { length: spec.bits / 8, keepers }, ro);
                    this.values[spec.name] = pulumi.secret(bytes.hex);
                    break;
                }
                case "password": {
                    const pw = new random.RandomPassword(spec.name, { length: 40, special: false, keepers }, ro);
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
