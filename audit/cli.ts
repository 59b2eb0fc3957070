// `npm run audit -- --stack <name> [--json] [--attack] [--only id,prefix] [--no-outputs]`
// Audits a live host against the stack that declared it; exit 1 on any failed check.
import { localTarget, readStackOutputs, remoteTarget, removeProbe } from "./target";
import { formatReport, runAudit } from "./run";

function usage(): never {
    process.stderr.write("usage: npm run audit -- --stack <name> [--json] [--attack] [--only <id-prefix>[,...]] [--no-outputs] [--keep-probe]\n");
    process.exit(2);
}

async function main(): Promise<number> {
    const argv = process.argv.slice(2);
    const flag = (f: string) => argv.includes(f);
    const value = (f: string) => {
        const i = argv.indexOf(f);
        return i >= 0 ? argv[i + 1] : undefined;
    };
    const stack = value("--stack");
    if (!stack) usage();
    // The declared contract is the stack's outputs; without state (or with --no-outputs) the local
    // stack falls back to what its config declares.
    const outputs = flag("--no-outputs") ? undefined : readStackOutputs(stack);
    const target = stack === "local" ? await localTarget(outputs) : outputs ? remoteTarget(stack, outputs) : undefined;
    if (!target) throw new Error(`audit: stack ${stack} has no outputs (pulumi up first)`);
    try {
        const only = value("--only")?.split(",").filter(Boolean);
        const report = await runAudit(target, { attack: flag("--attack"), only });
        process.stdout.write(flag("--json") ? JSON.stringify(report, null, 2) + "\n" : formatReport(report, process.stdout.isTTY) + "\n");
        return report.summary.fail > 0 ? 1 : 0;
    } finally {
        if (stack === "local" && !flag("--keep-probe")) removeProbe();
    }
}

main().then(
    (code) => process.exit(code),
    (e) => {
        process.stderr.write(`citadel: audit: ${(e as Error).message}\n`);
        process.exit(2);
    },
);
