// The review as a pull-request comment (Markdown, always under MAX_MARKDOWN characters: GitHub refuses
// comments over 65,536) and as JSON for machines.
import { CATEGORIES, DIRECTIONS, type Category, type Direction, type Finding, type Review } from "./types";

export const MAX_MARKDOWN = 60_000;

const ICON: Record<Direction, string> = { weakens: "🔴", unclassified: "🟡", strengthens: "🟢", neutral: "⚪" };

/** Counts per category and direction. */
export function summarize(findings: Finding[]): { byCategory: Record<string, Record<Direction, number>>; total: Record<Direction, number>; unacknowledged: number } {
    const zero = (): Record<Direction, number> => ({ weakens: 0, unclassified: 0, strengthens: 0, neutral: 0 });
    const byCategory: Record<string, Record<Direction, number>> = {};
    const total = zero();
    for (const f of findings) {
        (byCategory[f.category] ??= zero())[f.direction]++;
        total[f.direction]++;
    }
    return { byCategory, total, unacknowledged: findings.filter((f) => f.direction === "weakens" && !f.acknowledged).length };
}

/** Plain text for Markdown: no raw HTML (an "<script>" in a reason must show, not vanish). */
function esc(s: string): string {
    return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/\r?\n/g, " ");
}

/** An inline code span that survives backticks in the value. */
function code(s: string, max = 240): string {
    let v = s.replace(/\r?\n/g, "⏎");
    if (v.length > max) v = `${v.slice(0, max - 1)}…`;
    const runs = v.match(/`+/g) ?? [];
    const fence = "`".repeat(Math.max(0, ...runs.map((r) => r.length)) + 1);
    const pad = v.startsWith("`") || v.endsWith("`") || runs.length ? " " : "";
    return `${fence}${pad}${v}${pad}${fence}`;
}

function fenced(body: string, lang: string): string {
    const runs = body.match(/`{3,}/g) ?? [];
    const fence = "`".repeat(Math.max(2, ...runs.map((r) => r.length)) + 1);
    return `${fence}${lang}\n${body.replace(/\n$/, "")}\n${fence}`;
}

function block(f: Finding, withDiff: boolean): string {
    const state = f.direction === "weakens" ? (f.acknowledged ? ` — ✅ acknowledged: ${esc(f.acknowledged)}` : " — **not acknowledged**") : "";
    const lines = [`- ${ICON[f.direction]} **${f.direction}**${state} — ${esc(f.what)}`, `  ${code(f.id)} · before ${code(f.before)} → after ${code(f.after)}`, `  ${esc(f.why)}`];
    let out = lines.join("  \n");
    if (f.diff) {
        out += withDiff ? `\n\n${fenced(f.diff, "diff").replace(/^/gm, "  ")}` : "\n  (diff cut to stay under the comment limit; `--json` has it)";
    }
    return out + "\n";
}

/**
 * The order findings get room in the comment: by priority (unacknowledged weakenings first), and
 * within one priority category by category in turn, so a large change still shows some of each.
 */
function fairOrder(findings: Finding[]): Finding[] {
    const out: Finding[] = [];
    for (let p = 0; p <= 4; p++) {
        const queues = CATEGORIES.map((c) => findings.filter((f) => f.category === c && PRIORITY(f) === p));
        for (let i = 0; queues.some((q) => i < q.length); i++) for (const q of queues) if (i < q.length) out.push(q[i]);
    }
    return out;
}

const PRIORITY = (f: Finding) => (f.direction === "weakens" && !f.acknowledged ? 0 : f.direction === "unclassified" ? 1 : f.direction === "weakens" ? 2 : f.direction === "strengthens" ? 3 : 4);

export function renderMarkdown(r: Review, limit = MAX_MARKDOWN): string {
    const s = summarize(r.findings);
    const t = s.total;
    const head: string[] = [`### Citadel security review — stack ${code(r.stack)}`, ""];
    head.push(`${code(r.base)} → ${code(r.head)}`, "");
    if (r.findings.length === 0) {
        head.push("No change to the declared security posture.");
        return head.join("\n") + "\n";
    }
    const verdict = s.unacknowledged
        ? `**${s.unacknowledged} unacknowledged weakening${s.unacknowledged > 1 ? "s" : ""}**: the review fails until each is fixed or acknowledged.`
        : t.weakens
          ? "Every weakening is acknowledged."
          : "Nothing weakens the posture.";
    head.push(`${verdict} ${t.weakens} weaken, ${t.unclassified} unclassified, ${t.strengthens} strengthen, ${t.neutral} neutral.`, "");
    head.push("| category | 🔴 weakens | 🟡 unclassified | 🟢 strengthens | ⚪ neutral |", "|---|---:|---:|---:|---:|");
    const cats = CATEGORIES.filter((c) => s.byCategory[c]);
    for (const c of cats) {
        const n = s.byCategory[c];
        head.push(`| ${c} | ${n.weakens || ""} | ${n.unclassified || ""} | ${n.strengthens || ""} | ${n.neutral || ""} |`);
    }
    head.push(`| **total** | **${t.weakens}** | **${t.unclassified}** | **${t.strengthens}** | **${t.neutral}** |`, "");

    const tail: string[] = ["", "Acknowledge a weakening with `--accept weakens:<id>` or an accept file of `{ id, reason }` entries (`--accept-file`)."];
    if (r.unusedAcknowledgements.length) tail.push("", `Acknowledgements that matched no weakening (stale?): ${r.unusedAcknowledgements.map((i) => code(i)).join(", ")}`);

    // Which findings fit: most important first, each with its diff when room is left.
    const reserve = 400 * cats.length + 1200;
    let budget = limit - head.join("\n").length - tail.join("\n").length - reserve;
    const shown = new Map<Finding, string>();
    const cut: Finding[] = [];
    for (const f of fairOrder(r.findings)) {
        let b = block(f, true);
        if (b.length > budget && f.diff) b = block(f, false);
        if (b.length + 1 > budget) {
            cut.push(f);
            continue;
        }
        budget -= b.length + 1;
        shown.set(f, b);
    }
    const body: string[] = [];
    const order = (c: Category) => {
        const n = s.byCategory[c];
        return n.weakens ? 0 : n.unclassified ? 1 : 2;
    };
    for (const c of [...cats].sort((a, b) => order(a) - order(b))) {
        const fs = r.findings.filter((f) => f.category === c);
        const n = s.byCategory[c];
        const counts = DIRECTIONS.filter((d) => n[d]).map((d) => `${n[d]} ${d}`).join(", ");
        const open = fs.some((f) => f.direction === "weakens" && !f.acknowledged) || n.unclassified ? " open" : "";
        body.push(`<details${open}><summary><b>${c}</b>: ${counts}</summary>`, "");
        const blocks = fs.filter((f) => shown.has(f)).sort((a, b) => PRIORITY(a) - PRIORITY(b)).map((f) => shown.get(f)!);
        body.push(...blocks);
        const missing = fs.filter((f) => !shown.has(f)).length;
        if (missing) body.push(`- ✂ ${missing} more in this category (cut to stay under ${limit.toLocaleString("en")} characters)`, "");
        body.push("</details>", "");
    }
    if (cut.length) {
        const byDir = DIRECTIONS.map((d) => [d, cut.filter((f) => f.direction === d).length] as const).filter(([, n]) => n);
        body.push(`✂ **${cut.length} finding${cut.length > 1 ? "s" : ""} not shown** (${byDir.map(([d, n]) => `${n} ${d}`).join(", ")}) to keep this comment under ${limit.toLocaleString("en")} characters; \`citadel review ... --json\` lists every finding.`);
    }
    let md = [...head, ...body, ...tail].join("\n") + "\n";
    // Defence in depth: the estimate above is generous, but never hand GitHub an oversize comment.
    if (md.length > limit) md = md.slice(0, limit - 120) + `\n\n✂ cut at ${limit.toLocaleString("en")} characters; \`--json\` lists every finding.\n`;
    return md;
}

export function renderJson(r: Review): string {
    const s = summarize(r.findings);
    return JSON.stringify({ stack: r.stack, base: r.base, head: r.head, summary: { ...s.total, unacknowledgedWeakenings: s.unacknowledged, byCategory: s.byCategory }, findings: r.findings, unusedAcknowledgements: r.unusedAcknowledgements }, null, 2) + "\n";
}
