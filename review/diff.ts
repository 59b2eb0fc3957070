// The reviewer's security diff of two postures (base, head): the rules (rules.ts, steps.ts) say what
// each change means; a generic deep diff of the two JSON objects then makes sure that every differing
// leaf is explained by at least one finding — whatever no rule covers is reported as unclassified,
// never dropped. Pure: no Pulumi, no I/O.
import type { Posture } from "../components/posture/types";
import { Collector, sortFindings } from "./collect";
import { covers, differingLeaves, flatten, segments } from "./flatten";
import { RULES } from "./rules";
import { explainedTokens, hostStepsRule } from "./steps";
import type { Category, Finding } from "./types";

export class PostureVersionError extends Error {}

/** Where an unclassified leaf belongs, by its top-level key. */
function categoryOf(leaf: string): Category {
    const [top] = segments(leaf);
    switch (top) {
        case "server":
        case "target":
            return "server";
        case "exposure":
            return "exposure";
        case "hostSteps":
            return "host";
        case "host":
            return /^host\.sshdEffective/.test(leaf) ? "ssh" : "host";
        case "containers":
        case "volumes":
            return "containers";
        case "networks":
            return "network-isolation";
        case "secrets":
        case "secretFiles":
            return "secrets";
        case "sites":
            return /\.rateLimit/.test(leaf) ? "rate-limits" : "tls-headers";
        case "intrusion":
            return "intrusion";
        case "monitoring":
            return "monitoring";
        case "adminUser":
            return "ssh";
        default:
            return "other";
    }
}

const clip = (s: string, n = 300) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
const show = (json: string | undefined) => {
    if (json === undefined) return "(none)";
    try {
        const v = JSON.parse(json);
        return clip(typeof v === "string" ? v : json);
    } catch {
        return clip(json);
    }
};

/** Every finding of base → head. Throws PostureVersionError when the two shapes differ. */
export function diffPostures(base: Posture, head: Posture): Finding[] {
    if (base.version !== head.version) {
        throw new PostureVersionError(`the postures have different shapes (version ${String(base.version)} vs ${String(head.version)}): compare them with the review of the newer one`);
    }
    const out = new Collector();
    for (const [, rule] of RULES) {
        try {
            rule(base, head, out);
        } catch {
            // A slice the rule cannot read (a shape it does not expect): the generic diff reports it.
        }
    }
    const leaves = differingLeaves(base, head);
    const classified = out.all().filter((f) => f.direction !== "unclassified");
    const explainedLeaves = leaves.filter((l) => !l.path.startsWith("hostSteps") && classified.some((f) => f.covers.some((c) => covers(c, l.path))));
    try {
        hostStepsRule(base, head, out, explainedTokens(explainedLeaves));
    } catch {
        // as above
    }
    const findings = out.all();
    // The generic deep diff: leaves no finding covers become unclassified findings, grouped by the
    // first three segments of their path (one container's command, one site's header...).
    // A leaf whose whole subtree is new (or gone) is grouped at the top of that subtree.
    const prefixes = (m: Map<string, string>) => {
        const set = new Set<string>();
        for (const p of m.keys()) {
            let acc = "";
            for (const sg of segments(p)) set.add((acc += sg));
        }
        return set;
    };
    const inBase = prefixes(flatten(base));
    const inHead = prefixes(flatten(head));
    const groups = new Map<string, typeof leaves>();
    for (const l of leaves) {
        if (findings.some((f) => f.covers.some((c) => covers(c, l.path)))) continue;
        const segs = segments(l.path);
        let key = segs.slice(0, 3).join("");
        if (l.before === undefined || l.after === undefined) {
            const other = l.before === undefined ? inBase : inHead;
            let acc = "";
            for (const sg of segs) {
                acc += sg;
                if (!other.has(acc)) {
                    if (acc.length < key.length) key = acc;
                    break;
                }
            }
        }
        groups.set(key, [...(groups.get(key) ?? []), l]);
    }
    for (const [key, ls] of groups) {
        const one = ls.length === 1 && ls[0].path === key;
        const describe = (side: "before" | "after") =>
            one
                ? show(ls[0][side])
                : clip(
                      ls
                          .slice(0, 8)
                          .map((l) => `${l.path.slice(key.length) || "(all)"}: ${show(l[side])}`)
                          .join("; ") + (ls.length > 8 ? `; … ${ls.length - 8} more` : ""),
                      600,
                  );
        findings.push({
            id: `unclassified:${key}`,
            category: categoryOf(ls[0].path),
            direction: "unclassified",
            what: `${key} ${ls.every((l) => l.before === undefined) ? "added" : ls.every((l) => l.after === undefined) ? "removed" : "changed"}${one ? "" : ` (${ls.length} values)`}`,
            before: describe("before"),
            after: describe("after"),
            why: "no rule judges this change: read it",
            covers: ls.map((l) => l.path),
        });
    }
    return sortFindings(findings);
}

/** Leaves of the generic diff that no finding covers (always empty: the check the tests run). */
export function uncovered(base: Posture, head: Posture, findings: Finding[]): string[] {
    return differingLeaves(base, head)
        .map((l) => l.path)
        .filter((p) => !findings.some((f) => f.covers.some((c) => covers(c, p))));
}
