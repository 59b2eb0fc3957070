// Encrypted off-site backups: the target's credentials as 0400 root-owned files (from stdin, never
// in a command line), then the backup step (program, service, timer, recipients, rclone config),
// once the data services it backs up run. Everything is read off the posture's backup slice.
import * as pulumi from "@pulumi/pulumi";
import { HostConnection, StepGraph, wireStep } from "./host-step";
import type { HostStepPosture, SecretFilePosture } from "./posture";
import { BACKUP_CONSUMER } from "./posture/facts";

export interface BackupArgs {
    /** The backup layer's step (posture.hostSteps of layer "backup"). */
    steps: HostStepPosture[];
    /** Every secret-file step of the posture; the backup consumer's are wired here. */
    secretSteps: HostStepPosture[];
    secretFiles: SecretFilePosture[];
    /** The target's credentials by key name (citadel:backup.target.<key>), decrypted by Pulumi. */
    credentials: Record<string, string>;
    connection: HostConnection;
    graph: StepGraph;
}

export class Backup extends pulumi.ComponentResource {
    constructor(name: string, args: BackupArgs, opts?: pulumi.ComponentResourceOptions) {
        super("citadel:backup:Backup", name, {}, opts);
        for (const f of args.secretFiles.filter((x) => x.consumer === BACKUP_CONSUMER)) {
            const step = args.secretSteps.find((s) => s.name === f.step);
            const value = args.credentials[f.name];
            if (!step) throw new Error(`citadel: no step writes ${f.path}`);
            if (value === undefined) throw new Error(`citadel:backup.target.${f.name}: is required (pulumi config set --secret --path citadel:backup.target.${f.name} ...)`);
            wireStep(step, args.connection, args.graph, { parent: this, secretValue: pulumi.secret(value) });
        }
        for (const s of args.steps) wireStep(s, args.connection, args.graph, { parent: this });
        this.registerOutputs({ steps: args.steps.map((s) => s.description) });
    }
}
