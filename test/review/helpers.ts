// Postures for the review tests: the prod example, variants of its config, and direct mutations
// (for what the schema refuses, e.g. a root container: legitimate for a diff unit test).
import { parseConfigOrThrow } from "../../components/config";
import { posture, type Posture } from "../../components/posture";
import { prodRaw, prodWith } from "../fixtures";

export const prodPosture = (): Posture => posture(parseConfigOrThrow(prodRaw()));

/** The prod example with `overrides` (whole keys replaced), as a posture. */
export const postureWith = (overrides: Record<string, unknown>): Posture => posture(parseConfigOrThrow(prodWith(overrides)));

/** An object key of the prod example, parsed (to change one of its fields). */
export function prodKey(key: string): Record<string, unknown> {
    return JSON.parse(prodRaw()[`citadel:${key}`]) as Record<string, unknown>;
}

/** A list key of the prod example, parsed. */
export function prodList(key: string): Record<string, unknown>[] {
    return JSON.parse(prodRaw()[`citadel:${key}`]) as Record<string, unknown>[];
}

/** A deep copy of `p` changed by `fn`. */
export function mutated(p: Posture, fn: (p: Posture) => void): Posture {
    const c = structuredClone(p);
    fn(c);
    return c;
}

/** A small deterministic PRNG (mulberry32), so a failing mutation can be replayed by its seed. */
export function rng(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}
