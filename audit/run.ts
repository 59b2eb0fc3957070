// Runs the checks against a target and renders the report (a table for people, JSON for machines).
import { policyLines } from "./checklist";
import { INSIDE_CHECKS, forgetContainers } from "./inside";
import { inMonitoring } from "./monitoring";
import { OUTSIDE_CHECKS } from "./outside";
import { ATTACK_CHECKS } from "./attacks";
import { AuditOptions, AuditTarget, CheckDef, CheckResult } from "./types";

export const ALL_CHECKS: CheckDef[] = [...OUTSIDE_CHECKS, ...INSIDE_CHECKS, inMonitoring, ...ATTACK_CHECKS];

export interface AuditReport {
    stack: string;
    address: string;
    startedAt: string;
    seconds: number;
    /** `fail` includes the crashed checks (also counted apart in `crashed`): both make the audit exit 1. */
    summary: { pass: number; fail: number; skip: number; crashed: number };
    checks: CheckResult[];
}

export async function runAudit(t: AuditTarget, opts: AuditOptions = {}): Promise<AuditReport> {
    const started = Date.now();
    forgetContainers(t);
    const selected = ALL_CHECKS.filter((c) => !opts.only || opts.only.some((p) => c.id.startsWith(p)));
    const checks: CheckResult[] = [];
    for (const def of selected) {
        const base = { id: def.id, title: def.title, group: def.group, policy: policyLines(def.id) };
        if (def.group === "attack" && !opts.attack) {
            checks.push({ ...base, result: "skip", evidence: "attacks run only with --attack", drift: [], skipped: [] });
            continue;
        }
        try {
            const v = await def.run(t);
            checks.push({ ...base, result: v.result, evidence: v.evidence, drift: v.drift ?? [], skipped: v.skipped ?? [] });
        } catch (e) {
            // A check that cannot even look is a failure: the audit never passes on missing evidence.
            // It is marked as crashed: a failure of the audit, not a finding about the host.
            checks.push({ ...base, result: "fail", crashed: true, evidence: `check crashed: ${(e as Error).message}`, drift: [], skipped: [] });
        }
    }
    const count = (r: string) => checks.filter((c) => c.result === r).length;
    return {
        stack: t.stack,
        address: t.address,
        startedAt: new Date(started).toISOString(),
        seconds: Math.round((Date.now() - started) / 100) / 10,
        summary: { pass: count("pass"), fail: count("fail"), skip: count("skip"), crashed: checks.filter((c) => c.crashed).length },
        checks,
    };
}

export function failedIds(r: AuditReport): string[] {
    return r.checks.filter((c) => c.result === "fail").map((c) => c.id);
}

/** The human table: id, result, title, evidence; drift as "expected → actual" lines under its check. */
export function formatReport(r: AuditReport, color = false): string {
    const paint = (s: string, code: number) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
    const mark = { pass: paint("PASS", 32), fail: paint("FAIL", 31), skip: paint("SKIP", 33), crashed: paint("CRSH", 35) };
    const idW = Math.max(...r.checks.map((c) => c.id.length), 2);
    const titleW = Math.min(Math.max(...r.checks.map((c) => c.title.length), 5), 70);
    const lines = [`citadel audit: stack ${r.stack}, host ${r.address} (${r.seconds} s)`, "", `${"id".padEnd(idW)}  result  ${"title".padEnd(titleW)}  evidence`];
    lines.push(`${"-".repeat(idW)}  ------  ${"-".repeat(titleW)}  --------`);
    for (const c of r.checks) {
        const title = c.title.length > titleW ? c.title.slice(0, titleW - 1) + "…" : c.title;
        lines.push(`${c.id.padEnd(idW)}  ${c.crashed ? mark.crashed : mark[c.result]}    ${title.padEnd(titleW)}  ${c.evidence}`);
        for (const d of c.drift) lines.push(`${" ".repeat(idW + 10)}drift ${d.what}: expected ${d.expected} | actual ${d.actual}`);
        for (const k of c.skipped ?? []) lines.push(`${" ".repeat(idW + 10)}skip  ${k.what}: ${k.reason}`);
    }
    const crashed = r.summary.crashed ? ` (${r.summary.crashed} crashed: CRSH = the check could not look, no verdict)` : "";
    lines.push("", `summary: ${r.summary.pass} pass, ${r.summary.fail} fail${crashed}, ${r.summary.skip} skip`);
    return lines.join("\n");
}
