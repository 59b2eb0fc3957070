// Acknowledgements: a reviewer accepts a weakening by its id, with a reason (an accept file of
// `{ id, reason }` entries, YAML or JSON), or on the command line (`--accept weakens:<id>`).
import YAML from "yaml";
import type { Direction, Finding } from "./types";

export interface Acknowledgement {
    /** The finding id, optionally prefixed with its direction ("weakens:" or "unclassified:"). */
    id: string;
    reason: string;
}

export class AcceptFileError extends Error {}

/** Parses an accept file: a list of `{ id, reason }`, or `{ accept: [...] }`. Every entry needs a reason. */
export function parseAcceptFile(textIn: string, name = "accept file"): Acknowledgement[] {
    let doc: unknown;
    try {
        doc = YAML.parse(textIn);
    } catch (e) {
        throw new AcceptFileError(`${name}: not YAML or JSON (${(e as Error).message.split("\n")[0]})`);
    }
    if (doc === null || doc === undefined) return [];
    const list = Array.isArray(doc) ? doc : typeof doc === "object" && Array.isArray((doc as { accept?: unknown }).accept) ? (doc as { accept: unknown[] }).accept : undefined;
    if (!list) throw new AcceptFileError(`${name}: expected a list of { id, reason } (or { accept: [...] })`);
    return list.map((e, i) => {
        const entry = e as { id?: unknown; reason?: unknown };
        if (!entry || typeof entry !== "object" || typeof entry.id !== "string" || entry.id.trim() === "") throw new AcceptFileError(`${name}: entry ${i + 1} has no id`);
        if (typeof entry.reason !== "string" || entry.reason.trim() === "") throw new AcceptFileError(`${name}: entry ${i + 1} (${entry.id}): a reason is required`);
        return { id: entry.id.trim(), reason: entry.reason.trim() };
    });
}

/** `weakens:<id>` (or a bare id) from the command line. */
export function parseAcceptArg(arg: string): Acknowledgement {
    return { id: arg.trim(), reason: "accepted on the command line" };
}

const PREFIX = /^(weakens|unclassified):/;

/**
 * Marks acknowledged findings (weakenings; unclassified ones too when strict) and returns the
 * acknowledgements that matched nothing. A prefix must match the finding's direction.
 */
export function acknowledge(findings: Finding[], acks: Acknowledgement[], strict = false): string[] {
    const acceptable: Direction[] = strict ? ["weakens", "unclassified"] : ["weakens"];
    const unused: string[] = [];
    for (const a of acks) {
        const m = PREFIX.exec(a.id);
        const id = m ? a.id.slice(m[0].length) : a.id;
        const hits = findings.filter((f) => f.id === id && acceptable.includes(f.direction) && (!m || f.direction === m[1]));
        if (!hits.length) unused.push(a.id);
        for (const f of hits) f.acknowledged = a.reason;
    }
    return unused;
}

/** Findings that fail the review: unacknowledged weakenings (and unclassified changes when strict). */
export function blocking(findings: Finding[], strict = false): Finding[] {
    return findings.filter((f) => !f.acknowledged && (f.direction === "weakens" || (strict && f.direction === "unclassified")));
}
