// The audit of the local VPS as one call, for `npm start` to print its summary at the end.
import { localTarget, readStackOutputs, removeProbe } from "./target";
import { AuditReport, formatReport, runAudit } from "./run";

export async function auditLocal(opts: { attack?: boolean } = {}): Promise<{ report: AuditReport; text: string }> {
    try {
        const target = await localTarget(readStackOutputs("local"));
        const report = await runAudit(target, opts);
        return { report, text: formatReport(report, process.stdout.isTTY) };
    } finally {
        removeProbe();
    }
}
