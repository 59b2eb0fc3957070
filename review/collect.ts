// Findings as the rules emit them: merged by id (a change seen from two slices of the posture, e.g.
// the HSTS header and the declared tls.hsts, is one finding covering both), the weaker direction wins.
import { DIRECTIONS, type Category, type Direction, type Finding } from "./types";

/** Severity order for merging: a finding that both weakens and strengthens is shown as weakening. */
const RANK: Record<Direction, number> = { weakens: 0, unclassified: 1, strengthens: 2, neutral: 3 };

export class Collector {
    private readonly byId = new Map<string, Finding>();

    add(f: Finding): void {
        const old = this.byId.get(f.id);
        if (!old) {
            this.byId.set(f.id, { ...f, covers: [...new Set(f.covers)] });
            return;
        }
        old.covers = [...new Set([...old.covers, ...f.covers])];
        if (RANK[f.direction] < RANK[old.direction]) {
            old.direction = f.direction;
            old.why = f.why;
        }
        if (f.diff && !old.diff) old.diff = f.diff;
    }

    /** Shorthand for the common case. */
    emit(id: string, category: Category, direction: Direction, what: string, before: unknown, after: unknown, why: string, covers: string[]): void {
        this.add({ id, category, direction, what, before: text(before), after: text(after), why, covers });
    }

    all(): Finding[] {
        return sortFindings([...this.byId.values()]);
    }
}

export function sortFindings(fs: Finding[]): Finding[] {
    return fs.sort((a, b) => RANK[a.direction] - RANK[b.direction] || a.category.localeCompare(b.category) || a.id.localeCompare(b.id));
}

/** Values as reviewers read them: strings bare, absent as "(none)", the rest as compact JSON. */
export function text(v: unknown): string {
    if (v === undefined) return "(none)";
    if (typeof v === "string") return v;
    if (Array.isArray(v) && v.every((x) => typeof x === "string" || typeof x === "number")) return v.length ? v.join(", ") : "(empty)";
    return JSON.stringify(v) ?? String(v);
}

export { DIRECTIONS };
