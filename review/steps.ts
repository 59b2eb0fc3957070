// Host steps: a changed script (or file it installs) is grouped under the structured findings when
// every changed line carries a value those findings changed; otherwise it is unclassified and the
// reviewer reads the lines no finding explains (a template edit that the model does not show).
import { diffWordsWithSpace, structuredPatch } from "diff";
import type { HostStepPosture, Posture } from "../components/posture/types";
import { Collector } from "./collect";
import { path } from "./flatten";

/** Cap of one step's diff in a finding (lines; characters). */
export const DIFF_MAX_LINES = 40;
export const DIFF_MAX_CHARS = 4000;

const STOP = new Set(["true", "false", "yes", "no", "on", "off", "null", "none", "(none)"]);

/**
 * Values that changed in the posture outside the host steps and that a classified finding explains:
 * the scalars on either side, the parts of multi-word values, and the identities of added or removed
 * entries. Lower case; at least two characters.
 */
export function explainedTokens(leaves: { path: string; before?: string; after?: string }[]): Set<string> {
    const out = new Set<string>();
    const add = (s: string) => {
        const t = s.trim().toLowerCase();
        if (t.length >= 2 && !STOP.has(t)) out.add(t);
    };
    const scalars = (json: string | undefined): string[] => {
        if (json === undefined) return [];
        const acc: string[] = [];
        const walk = (v: unknown) => {
            if (Array.isArray(v)) v.forEach(walk);
            else if (v && typeof v === "object") Object.values(v).forEach(walk);
            else if (v !== null && v !== undefined) acc.push(String(v));
        };
        try {
            walk(JSON.parse(json));
        } catch {
            acc.push(json);
        }
        return acc;
    };
    for (const l of leaves) {
        const b = scalars(l.before);
        const a = scalars(l.after);
        const changed = [...b.filter((x) => !a.includes(x)), ...a.filter((x) => !b.includes(x))];
        for (const v of changed) {
            add(v);
            const pb = new Set(b.flatMap((x) => x.split(/[\s,;]+/)));
            const pa = new Set(a.flatMap((x) => x.split(/[\s,;]+/)));
            // Parts of a multi-word value, when specific (an address, a port, an algorithm, a source
            // expression): plain words such as "allow" or "tcp" explain nothing.
            for (const part of v.split(/[\s,;]+/)) if (part.length >= 3 && /[^A-Za-z]/.test(part) && !(pb.has(part) && pa.has(part))) add(part);
        }
        // A short value ("0" → "1") explains nothing by itself: the setting's own name does.
        if (changed.some((v) => v.trim().length < 2)) {
            const id = /\[[a-zA-Z]+=([^\]]+)\](?:\.[A-Za-z]+)?$/.exec(l.path);
            if (id && /[^A-Za-z]/.test(id[1])) add(id[1]);
        }
        if (l.before === undefined || l.after === undefined) {
            for (const m of l.path.matchAll(/\[[a-zA-Z]+=([^\]]+)\]/g)) add(m[1]);
            const last = /(?:\.|\["?)([^.[\]"]+)"?\]?$/.exec(l.path);
            if (last) add(last[1]);
        }
    }
    return out;
}

const WORDCH = /[A-Za-z0-9_]/;

/**
 * Does the line contain a token as a whole word (where the token's own edges are word characters)?
 * A number may carry a unit ("3600s", "90d"); shell escapes are read through ("postgres\:16").
 */
export function explains(line: string, tokens: Set<string>): boolean {
    const l = line.toLowerCase().replace(/\\(.)/g, "$1");
    for (const t of tokens) {
        const numeric = /^\d+$/.test(t);
        let i = l.indexOf(t);
        while (i >= 0) {
            const before = i === 0 ? "" : l[i - 1];
            const after = l[i + t.length] ?? "";
            const okB = !WORDCH.test(t[0]) || !WORDCH.test(before);
            const okA = numeric ? !/[0-9.]/.test(after) : !WORDCH.test(t[t.length - 1]) || !WORDCH.test(after);
            if (okB && okA) return true;
            i = l.indexOf(t, i + 1);
        }
    }
    return false;
}

interface TextChange {
    label: string;
    before: string;
    after: string;
}

function changedTexts(o: HostStepPosture | undefined, s: HostStepPosture | undefined): TextChange[] {
    const out: TextChange[] = [];
    if ((o?.description ?? "") !== (s?.description ?? "")) out.push({ label: "description", before: o?.description ?? "", after: s?.description ?? "" });
    if ((o?.script ?? "") !== (s?.script ?? "")) out.push({ label: "script", before: o?.script ?? "", after: s?.script ?? "" });
    const fb = new Map((o?.files ?? []).map((f) => [f.path, f]));
    const fh = new Map((s?.files ?? []).map((f) => [f.path, f]));
    for (const p of new Set([...fb.keys(), ...fh.keys()])) {
        const x = fb.get(p)?.content ?? "";
        const y = fh.get(p)?.content ?? "";
        if (x !== y) out.push({ label: p, before: x, after: y });
    }
    return out;
}

/** The verbatim repository files (HostScript.sources) whose content differs between the two sides. */
function changedSources(o: HostStepPosture, s: HostStepPosture): string[] {
    const before = new Map((o.sources ?? []).map((f) => [f.name, f.sha256]));
    const after = new Map((s.sources ?? []).map((f) => [f.name, f.sha256]));
    return [...new Set([...before.keys(), ...after.keys()])].filter((n) => before.get(n) !== after.get(n)).sort();
}

/** A fragment of a changed line is explained when it is only punctuation or carries a changed value. */
function fragmentExplained(fragment: string, tokens: Set<string>): boolean {
    return /^[\s\p{P}\p{S}]*$/u.test(fragment) || explains(fragment, tokens);
}

/** A replaced line is explained when every word that differs from its replacement is explained. */
function replacementExplained(a: string, b: string, tokens: Set<string>): boolean {
    return diffWordsWithSpace(a, b)
        .filter((p) => p.added || p.removed)
        .every((p) => fragmentExplained(p.value, tokens));
}

/**
 * The changed lines of one hunk that nothing explains. A line is explained when it carries a changed
 * value; or it replaces a line and differs from it only by changed values; or it sits in a run of
 * changed lines that carries a changed value (a block for a new site, app or secret) and is a copy of
 * a line the other side already has (boilerplate such as `tls {`).
 */
function unexplainedLines(hunk: string[], tokens: Set<string>, before: Set<string>, after: Set<string>): string[] {
    const out: string[] = [];
    let i = 0;
    while (i < hunk.length) {
        if (hunk[i][0] !== "-" && hunk[i][0] !== "+") {
            i++;
            continue;
        }
        const removed: string[] = [];
        const added: string[] = [];
        while (i < hunk.length && hunk[i][0] === "-") removed.push(hunk[i++].slice(1));
        while (i < hunk.length && hunk[i][0] === "+") added.push(hunk[i++].slice(1));
        const runHasToken = [...removed, ...added].some((l) => explains(l, tokens));
        const paired = removed.length === added.length;
        const judge = (l: string, k: number, other: string[], otherSide: Set<string>, sign: string) => {
            if (l.trim() === "" || explains(l, tokens)) return;
            if (paired && replacementExplained(l, other[k], tokens)) return;
            if (runHasToken && otherSide.has(l.trim())) return;
            out.push(sign + l);
        };
        removed.forEach((l, k) => judge(l, k, added, after, "-"));
        added.forEach((l, k) => judge(l, k, removed, before, "+"));
    }
    return out;
}

const lineSet = (t: string) => new Set(t.split("\n").map((l) => l.trim()));

/** A unified diff of the changes, capped; and the changed lines nothing explains. */
export function stepDiff(changes: TextChange[], tokens: Set<string>): { diff: string; unexplained: string[]; changed: number } {
    const lines: string[] = [];
    const unexplained: string[] = [];
    let changed = 0;
    for (const c of changes) {
        const [a, b] = c.label.startsWith("/") ? [`a${c.label}`, `b${c.label}`] : [`a/${c.label}`, `b/${c.label}`];
        const nl = (t: string) => (t.endsWith("\n") || t === "" ? t : t + "\n");
        const patch = structuredPatch(a, b, nl(c.before), nl(c.after), "", "", { context: 1 });
        lines.push(`--- ${a}`, `+++ ${b}`);
        const before = lineSet(c.before);
        const after = lineSet(c.after);
        for (const hunk of patch.hunks) {
            lines.push(`@@ -${hunk.oldStart},${hunk.oldLines} +${hunk.newStart},${hunk.newLines} @@`);
            const body = hunk.lines.filter((l) => !l.startsWith("\\"));
            lines.push(...body);
            changed += body.filter((l) => (l[0] === "+" || l[0] === "-") && l.slice(1).trim() !== "").length;
            // The description is the step's summary for people (logs, preview), never run: shown, not judged.
            if (c.label !== "description") unexplained.push(...unexplainedLines(body, tokens, before, after));
        }
    }
    let diff = "";
    let shown = 0;
    for (const l of lines) {
        const clipped = l.length > 200 ? l.slice(0, 199) + "…" : l;
        if (shown >= DIFF_MAX_LINES || diff.length + clipped.length + 1 > DIFF_MAX_CHARS) {
            diff += `… ${lines.length - shown} more diff lines (npm run render -- --stack <s> on both sides shows every step)\n`;
            break;
        }
        diff += clipped + "\n";
        shown++;
    }
    return { diff, unexplained, changed };
}

export function hostStepsRule(b: Posture, h: Posture, out: Collector, tokens: Set<string>): void {
    const sb = new Map((b.hostSteps ?? []).map((s) => [s.name, s]));
    const sh = new Map((h.hostSteps ?? []).map((s) => [s.name, s]));
    for (const name of new Set([...sb.keys(), ...sh.keys()])) {
        const o = sb.get(name);
        const s = sh.get(name);
        const at = (...p: string[]) => path("hostSteps", ["name", name], ...p);
        const id = `host.step:${name}`;
        if (!o || !s) {
            const step = (s ?? o)!;
            const known = explains(`${step.name} ${step.description}`, tokens);
            const { diff } = stepDiff(changedTexts(o, s), tokens);
            out.add({
                id: `${id}${s ? "+" : "-"}`,
                category: "host",
                direction: known ? "neutral" : "unclassified",
                what: `host step ${name} ${s ? "added" : "removed"}: ${step.description}`,
                before: o ? o.layer : "(none)",
                after: s ? s.layer : "(none)",
                why: known ? "follows from the findings above (a step for what they add or remove)" : "a host step no structured finding accounts for: read its script",
                covers: [at()],
                diff,
            });
            continue;
        }
        const changes = changedTexts(o, s);
        if (changes.length) {
            const { diff, unexplained, changed } = stepDiff(changes, tokens);
            // A repository file the step carries verbatim (images/caddy's Dockerfile, go.sum) is not
            // rendered from the config: no config change explains its lines, whatever words they share.
            unexplained.push(...changedSources(o, s).map((n) => `${n} changed (a repository file the step carries verbatim)`));
            const covers = [at("description"), at("script"), ...((o.files ?? []).length === 0 || (s.files ?? []).length === 0 ? [at("files")] : changes.filter((c) => c.label !== "description" && c.label !== "script").map((c) => `${at("files")}[path=${c.label}]`))];
            // A file added to or removed from a step is covered whole (its mode and owner come with it).
            const fb = new Set((o.files ?? []).map((f) => f.path));
            const fh = new Set((s.files ?? []).map((f) => f.path));
            const fileCovers = covers.map((c) => {
                const m = /\[path=(.*)\]$/.exec(c);
                return m && fb.has(m[1]) && fh.has(m[1]) ? `${c}.content` : c;
            });
            out.add({
                id,
                category: "host",
                direction: unexplained.length ? "unclassified" : "neutral",
                what: `host step ${name}: ${changes.map((c) => c.label).join(", ")} changed (${changed} lines)`,
                before: `${changes.length} text(s)`,
                after: unexplained.length ? `${unexplained.length} line(s) no finding explains` : "every changed line carries a changed value",
                why: unexplained.length
                    ? `lines no structured finding explains (a template or renderer change?): ${unexplained.slice(0, 5).map((l) => l.trim().slice(0, 120)).join(" | ")}${unexplained.length > 5 ? ` | … ${unexplained.length - 5} more` : ""}`
                    : "follows from the findings above: the step renders what they change",
                covers: fileCovers,
                diff,
            });
        }
        for (const k of ["after", "rerunWith"] as const) {
            if (JSON.stringify(o[k]) !== JSON.stringify(s[k])) out.emit(`${id}.${k}`, "host", "neutral", `host step ${name}: ${k} changed`, o[k], s[k], "ordering of pulumi up", [at(k)]);
        }
        // What the step installs is named in the model (and in its script, whose lines are judged
        // above): a package the step no longer lists stays installed on hosts that have it.
        const pb = (o.packages ?? []).flat();
        const ph = (s.packages ?? []).flat();
        if (JSON.stringify(o.packages ?? []) !== JSON.stringify(s.packages ?? [])) {
            const added = ph.filter((p) => !pb.includes(p));
            const removed = pb.filter((p) => !ph.includes(p));
            const what = [added.length ? `installs ${added.join(", ")}` : "", removed.length ? `no longer installs ${removed.join(", ")} (left installed where it is)` : ""].filter(Boolean).join("; ") || "install order changed";
            out.emit(`${id}.packages`, "host", "neutral", `host step ${name}: ${what}`, pb.join(" ") || "(none)", ph.join(" ") || "(none)", "the Debian packages the step installs; its script's change is judged with the step", [at("packages")]);
        }
    }
}
