// `citadel audit --stack <name> [--json] [--attack] [--only id,prefix] [--no-outputs] [--keep-probe]`
// Audits a live host against the stack that declared it; exit 1 on any failed check, 2 on a usage or
// setup error, 0 when every check passed (or skipped with its reason).
import { readStackOutputs, remoteTarget, StackOutputs } from "./target";
import { formatReport, runAudit } from "./run";
import type { AuditTarget } from "./types";

export const AUDIT_USAGE = `usage: citadel audit --stack <name> [--json] [--attack] [--only <id-prefix>[,...]] [--no-outputs] [--keep-probe]

  --stack NAME     the Pulumi stack whose host is audited (its outputs say where the host is)
  --json           the report as JSON (check ids, results, evidence, drift, policy lines)
  --attack         also run the attack checks (SSH brute force, HTTP burst): staging and the lab only
  --only LIST      run only the checks whose id starts with one of these prefixes (e.g. in-ssh,out-)
  --no-outputs     ignore the stack's outputs and audit against its config alone
  --keep-probe     keep the lab's probe container for the next run
  -h, --help       this text

Exit status: 0 every check passed or skipped with a reason, 1 a check failed, 2 usage or setup error.
`;

/** How a caller (the lab) adds what the product does not know: its own engine and its own targets. */
export interface AuditCliHooks {
    readOutputs?: (stack: string) => StackOutputs | undefined;
    target?: (stack: string, outputs: StackOutputs | undefined) => Promise<AuditTarget> | undefined;
    cleanup?: (stack: string, keepProbe: boolean) => void;
}

export async function runAuditCli(argv: string[], hooks: AuditCliHooks = {}): Promise<number> {
    const flag = (f: string) => argv.includes(f);
    const value = (f: string) => {
        const i = argv.indexOf(f);
        return i >= 0 ? argv[i + 1] : undefined;
    };
    if (flag("--help") || flag("-h")) {
        process.stdout.write(AUDIT_USAGE);
        return 0;
    }
    const stack = value("--stack");
    if (!stack) {
        process.stderr.write(AUDIT_USAGE);
        return 2;
    }
    try {
        // The declared contract is the stack's outputs; without state (or with --no-outputs) a lab
        // stack falls back to what its config declares.
        const outputs = flag("--no-outputs") ? undefined : (hooks.readOutputs ?? readStackOutputs)(stack);
        const target = (await hooks.target?.(stack, outputs)) ?? (outputs ? remoteTarget(stack, outputs) : undefined);
        if (!target) throw new Error(`stack ${stack} has no outputs (pulumi up first)`);
        try {
            const only = value("--only")?.split(",").filter(Boolean);
            const report = await runAudit(target, { attack: flag("--attack"), only });
            process.stdout.write(flag("--json") ? JSON.stringify(report, null, 2) + "\n" : formatReport(report, process.stdout.isTTY) + "\n");
            return report.summary.fail > 0 ? 1 : 0;
        } finally {
            hooks.cleanup?.(stack, flag("--keep-probe"));
        }
    } catch (e) {
        process.stderr.write(`citadel: audit: ${(e as Error).message}\n`);
        return 2;
    }
}

if (require.main === module) runAuditCli(process.argv.slice(2)).then((code) => process.exit(code));
