// `citadel restore --stack <name> --identity <age key> [--backup <id>] [--force]`
// Restores a backup of the stack's Postgres (and Redis) onto its live host; see restore.ts.
import * as os from "node:os";
import * as path from "node:path";
import type { StackConfig } from "../components/config";
import { SSH_PORT } from "../components/posture";
import { loadStackConfig, REPO_ROOT } from "../components/stackfile";
import { readStackOutputs, StackOutputs } from "../audit/target";
import { restore, RestoreError, type RestoreResult } from "./restore";

export const RESTORE_USAGE = `usage: citadel restore --stack <name> --identity <age-key-file> [--backup <id>] [--force]

  --stack NAME       the Pulumi stack whose host gets the data (its outputs say where the host is)
  --identity FILE    your age identity (private key; an age key or an ssh-ed25519 private key):
                     it stays on this machine, the ciphertext comes to it over SSH
  --backup ID        the backup to restore (default: the newest complete one on the target)
  --force            replace a database that already holds tables
  -h, --help         this text

The apps are stopped around the restore and started again. Exit status: 0 restored, 1 refused or
failed (the message says what was changed: with a wrong key, nothing), 2 usage or setup error.
`;

export interface RestoreCliHooks {
    readOutputs?: (stack: string) => StackOutputs | undefined;
    config?: (stack: string) => StackConfig;
    /** Called with what was restored (the bench prints its figures). */
    onResult?: (r: RestoreResult) => void;
}

export async function runRestoreCli(argv: string[], hooks: RestoreCliHooks = {}): Promise<number> {
    const value = (f: string) => {
        const i = argv.indexOf(f);
        return i >= 0 ? argv[i + 1] : undefined;
    };
    if (argv.includes("--help") || argv.includes("-h")) {
        process.stdout.write(RESTORE_USAGE);
        return 0;
    }
    const stack = value("--stack");
    const identity = value("--identity");
    if (!stack || !identity) {
        process.stderr.write(RESTORE_USAGE);
        return 2;
    }
    let c: StackConfig;
    let outputs: StackOutputs | undefined;
    try {
        c = (hooks.config ?? loadStackConfig)(stack);
        outputs = (hooks.readOutputs ?? readStackOutputs)(stack);
        if (!outputs?.address || !outputs.sshHostKey) throw new Error(`stack ${stack} has no address/sshHostKey outputs (pulumi up first)`);
    } catch (e) {
        process.stderr.write(`citadel: restore: ${(e as Error).message}\n`);
        return 2;
    }
    const port = c.target === "existing" && c.existing ? c.existing.port : SSH_PORT;
    const keyPath = path.resolve(REPO_ROOT, c.admin.privateKeyPath.replace(/^~(?=\/)/, os.homedir()));
    try {
        const r = await restore(c, { host: outputs.address, port, user: outputs.sshUser ?? c.admin.user, keyPath, hostKey: outputs.sshHostKey }, { identity, backup: value("--backup"), force: argv.includes("--force") });
        process.stdout.write(`restored backup ${r.backup} (${r.restored.join(", ")}) in ${r.seconds} s\n`);
        hooks.onResult?.(r);
        return 0;
    } catch (e) {
        process.stderr.write(`citadel: restore: ${(e as Error).message}\n`);
        return e instanceof RestoreError ? 1 : 2;
    }
}

if (require.main === module) runRestoreCli(process.argv.slice(2)).then((code) => process.exit(code));
