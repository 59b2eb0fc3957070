// Nothing is dropped: random changes anywhere in the posture (any leaf, any list, keys added or
// removed) always come out as findings, and every leaf of the generic deep diff is covered by one.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Posture } from "../../components/posture";
import { diffPostures, uncovered } from "../../review/diff";
import { differingLeaves, flatten } from "../../review/flatten";
import { renderMarkdown, MAX_MARKDOWN } from "../../review/markdown";
import { CATEGORIES, DIRECTIONS } from "../../review/types";
import { prodPosture, rng } from "./helpers";

type Holder = Record<string | number, unknown>;
interface Spot {
    holder: Holder;
    key: string | number;
}

/** Every place in v that holds a value (object keys and array slots), depth first. */
function spots(v: unknown, out: Spot[] = []): Spot[] {
    if (Array.isArray(v)) v.forEach((x, i) => (out.push({ holder: v as unknown as Holder, key: i }), spots(x, out)));
    else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) out.push({ holder: v as Holder, key: k }), spots(x, out);
    return out;
}

function mutate(p: Posture, r: () => number): string {
    // The shape version is not a change to review: a different one is refused (diff.test.ts).
    const all = spots(p).filter((s) => !(s.holder === (p as unknown as Holder) && s.key === "version"));
    const { holder, key } = all[Math.floor(r() * all.length)];
    const v = holder[key];
    const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
    if (typeof v === "number") return void (holder[key] = pick([v + 1 + Math.floor(r() * 100), v * 2, -v, 0])), `number ${String(key)}`;
    if (typeof v === "boolean") return void (holder[key] = !v), `boolean ${String(key)}`;
    if (typeof v === "string") return void (holder[key] = pick([`${v}-x`, "", v.toUpperCase() + " changed", "*"])), `string ${String(key)}`;
    if (Array.isArray(v)) {
        const how = pick(["push", "pop", "reverse", "dup"]);
        if (how === "push") v.push(v.length && typeof v[0] === "object" ? { ...(v[0] as object), name: "new-one", host: "new.example.com", key: "new.key", path: "/new" } : "added-value");
        else if (how === "pop" && v.length) v.pop();
        else if (how === "dup" && v.length) v.push(structuredClone(v[0]));
        else v.reverse();
        return `array ${how} ${String(key)}`;
    }
    if (v && typeof v === "object") {
        const keys = Object.keys(v);
        if (keys.length && r() < 0.5) delete (v as Holder)[pick(keys)];
        else (v as Holder)[`extra${Math.floor(r() * 10)}`] = pick(["x", 1, true, ["a"]]);
        return `object ${String(key)}`;
    }
    holder[key] = "was-null";
    return `null ${String(key)}`;
}

describe("review: every change is covered (random mutations)", () => {
    const base = prodPosture();
    const leaves = flatten(base).size;

    it(`the prod posture flattens to many leaves (${leaves})`, () => assert.ok(leaves > 500));

    const N = 400;
    it(`${N} random mutations: each differing leaf is covered, nothing throws, the comment stays small`, () => {
        let changed = 0;
        for (let seed = 1; seed <= N; seed++) {
            const r = rng(seed);
            const head = structuredClone(base);
            const what: string[] = [];
            const n = 1 + Math.floor(r() * 3);
            for (let i = 0; i < n; i++) what.push(mutate(head, r));
            const diff = differingLeaves(base, head);
            const findings = diffPostures(base, head);
            const ctx = `seed ${seed} (${what.join("; ")})`;
            if (diff.length) changed++;
            if (diff.length) assert.ok(findings.length > 0, `${ctx}: a change without a finding`);
            // A keyed list in another order differs in no leaf: at most a neutral "reordered".
            else assert.ok(findings.every((f) => f.direction === "neutral"), `${ctx}: ${findings.map((f) => f.id).join(", ")}`);
            assert.deepEqual(uncovered(base, head, findings), [], `${ctx}: uncovered leaves`);
            for (const f of findings) {
                assert.ok(CATEGORIES.includes(f.category) && DIRECTIONS.includes(f.direction), `${ctx}: ${f.id}`);
                assert.ok(f.id && f.what && f.why, `${ctx}: ${f.id} explains itself`);
            }
            const md = renderMarkdown({ stack: "prod", base: "base", head: "head", findings, unusedAcknowledgements: [] });
            assert.ok(md.length <= MAX_MARKDOWN, `${ctx}: markdown ${md.length}`);
        }
        assert.ok(changed > N * 0.9, `most mutations change something (${changed}/${N})`);
    });

    it("a leaf changed by hand is covered by a finding that shows the change", () => {
        // A field no rule reads: the generic diff names it, unclassified, with both values.
        const head = structuredClone(base);
        (head.containers[0] as unknown as Holder).command = ["caddy", "run", "--debug"];
        const f = diffPostures(base, head);
        const hit = f.find((x) => x.covers.some((c) => c.startsWith("containers[name=citadel-gateway].command")));
        assert.equal(hit?.direction, "unclassified");
        assert.match(hit!.after, /--debug/);
    });
});
