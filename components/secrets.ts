// Generated secrets: @pulumi/random values kept as Pulumi secrets, rotated on a per-secret period.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { StackConfig } from "./config";

export type SecretKind = "key256" | "key512" | "password";

export interface SecretSpec {
    name: string;
    kind: SecretKind;
    rotationDays: number;
}

/**
 * Which secrets the stack generates. JWT secret: 512 bit (policy asks ≥ 256). API encryption key and
 * API keys: 256 bit. Passwords: 40 characters from [A-Za-z0-9] (≈ 238 bit) — no symbols, so they
 * survive every connection-string and shell context unescaped.
 */
export function secretSpecs(c: StackConfig): SecretSpec[] {
    const r = c.secrets.rotationDays;
    const specs: SecretSpec[] = [
        { name: "jwtSecret", kind: "key512", rotationDays: r.jwtSecret },
        { name: "apiEncryptionKey", kind: "key256", rotationDays: r.apiEncryptionKey },
    ];
    if (c.postgres.enabled) {
        specs.push({ name: "postgresSuperuserPassword", kind: "password", rotationDays: r.postgresPassword });
        specs.push({ name: "postgresPassword", kind: "password", rotationDays: r.postgresPassword });
    }
    if (c.redis.enabled) specs.push({ name: "redisPassword", kind: "password", rotationDays: r.redisPassword });
    if (c.intrusion.engine === "crowdsec") specs.push({ name: "crowdsecBouncerKey", kind: "password", rotationDays: r.crowdsecBouncerKey });
    for (const [name, days] of Object.entries(c.secrets.apiKeys)) specs.push({ name, kind: "key256", rotationDays: days });
    return specs;
}

/**
 * The rotation keeper: the number of whole periods since the anchor date. It changes exactly once per
 * period, and a changed keeper makes @pulumi/random generate a new value on the next `pulumi up`.
 */
export function rotationEpoch(anchor: string, periodDays: number, now: Date): number {
    const start = Date.parse(`${anchor}T00:00:00Z`);
    const elapsedDays = Math.floor((now.getTime() - start) / 86_400_000);
    return Math.max(0, Math.floor(elapsedDays / periodDays));
}

/** "jwtSecret=3,redisPassword=1": when the secrets a container reads were last rotated (no values). */
export function epochLabel(secrets: Secrets, names: string[]): string {
    return names.map((n) => `${n}=${secrets.epochs[n] ?? 0}`).join(",");
}

export interface SecretsArgs {
    config: StackConfig;
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
        for (const spec of secretSpecs(args.config)) {
            const epoch = rotationEpoch(args.config.secrets.rotationAnchor, spec.rotationDays, now);
            const keepers = { rotationDays: String(spec.rotationDays), epoch: String(epoch) };
            this.epochs[spec.name] = epoch;
            const ro = { parent: this };
            switch (spec.kind) {
                case "key256":
                case "key512": {
                    const bytes = new random.RandomBytes(spec.name, { length: spec.kind === "key256" ? 32 : 64, keepers }, ro);
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
