// The generic part of the review: a posture (any JSON) flattened to leaf paths, so every difference
// between two postures is a set of differing leaves, and every leaf a finding must explain.
//
// Path syntax: `exposure.ufw.rules`, `sites[host=api.example.com].headers.Content-Security-Policy`,
// `containers[name=app-web].labels["citadel.config-sha256"]`.
//  - an object's key is `.key` (or `["key"]` when it is not a plain word);
//  - an array of objects that all carry a unique string identity is keyed by it, `[field=value]`:
//    inserting an element does not shift the others, and the order of such lists carries no meaning
//    in the posture. The posture's own lists have a fixed identity (KEYED below: the rules build the
//    same paths); any other list of objects takes the first of KEY_FIELDS that fits;
//  - any other array (strings, numbers, port objects) is one leaf: the rules compare it as a whole;
//  - an empty object or array is a leaf too ("{}", "[]").
// Leaf values are JSON text, so 1 and "1" differ.

export const KEY_FIELDS = ["name", "host", "key", "path", "network", "target", "description"] as const;

/** The identity of the posture's lists, by their place (keyed segments written `[]`). */
export const KEYED: Record<string, string> = {
    hostSteps: "name",
    "hostSteps[].files": "path",
    containers: "name",
    "containers[].networks": "network",
    "containers[].secretMounts": "target",
    "containers[].binds": "target",
    "containers[].volumes": "target",
    networks: "name",
    secrets: "name",
    secretFiles: "path",
    sites: "host",
    "host.sysctl": "key",
    "exposure.ufw.defaults": "key",
};

export type Part = string | readonly [field: string, value: string];

const WORD = /^[A-Za-z_][A-Za-z0-9_-]*$/;

function segment(p: Part, first: boolean): string {
    if (typeof p !== "string") return `[${p[0]}=${p[1]}]`;
    if (WORD.test(p)) return first ? p : `.${p}`;
    return `[${JSON.stringify(p)}]`;
}

/** path("containers", ["name", "app-web"], "capAdd") → `containers[name=app-web].capAdd`. */
export function path(...parts: Part[]): string {
    return parts.map((p, i) => segment(p, i === 0)).join("");
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

const identifies = (arr: unknown[], f: string) => {
    const vals = arr.map((x) => (x as Record<string, unknown>)[f]);
    return vals.every((v) => typeof v === "string") && new Set(vals).size === vals.length;
};

/**
 * The identity field of an array of objects at `place` (schema path), or undefined when the array is
 * one leaf: the fixed field of KEYED when every element has a unique one, else the first KEY_FIELDS.
 */
export function keyField(arr: unknown[], place = ""): string | undefined {
    if (arr.length === 0 || !arr.every(isObject)) return undefined;
    const fixed = KEYED[place];
    if (fixed) return identifies(arr, fixed) ? fixed : undefined;
    return KEY_FIELDS.find((f) => identifies(arr, f));
}

/** Every leaf of v: path → JSON text of the value there. */
export function flatten(v: unknown): Map<string, string> {
    const out = new Map<string, string>();
    // `place` is the path with keyed segments written `[]` (the key of KEYED).
    const walk = (x: unknown, at: string, place: string) => {
        if (Array.isArray(x)) {
            const k = keyField(x, place);
            if (!k) return void out.set(at, JSON.stringify(x));
            for (const el of x as Record<string, unknown>[]) walk(el, `${at}${segment([k, String(el[k])], false)}`, `${place}[]`);
            return;
        }
        if (isObject(x)) {
            const keys = Object.keys(x);
            if (keys.length === 0) return void out.set(at, "{}");
            for (const key of keys) if (x[key] !== undefined) walk(x[key], at === "" ? segment(key, true) : `${at}${segment(key, false)}`, place === "" ? key : `${place}.${key}`);
            return;
        }
        out.set(at, JSON.stringify(x) ?? "null");
    };
    walk(v, "", "");
    return out;
}

/** Paths whose leaf differs (present on one side only, or a different value). Sorted. */
export function differingLeaves(base: unknown, head: unknown): { path: string; before?: string; after?: string }[] {
    const b = flatten(base);
    const h = flatten(head);
    const out: { path: string; before?: string; after?: string }[] = [];
    for (const p of new Set([...b.keys(), ...h.keys()])) if (b.get(p) !== h.get(p)) out.push({ path: p, before: b.get(p), after: h.get(p) });
    return out.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
}

/** A cover explains a leaf when it is the leaf or one of its ancestors. */
export function covers(cover: string, leaf: string): boolean {
    return leaf === cover || leaf.startsWith(cover + ".") || leaf.startsWith(cover + "[");
}

/** The segments of a path, as written (`containers`, `[name=app-web]`, `.capAdd`). */
export function segments(p: string): string[] {
    const out: string[] = [];
    let i = 0;
    while (i < p.length) {
        if (p[i] === "[") {
            // `["quoted key"]` or `[field=value]` (a value may hold brackets: scan JSON strings carefully).
            if (p[i + 1] === '"') {
                let j = i + 2;
                while (j < p.length && !(p[j] === '"' && p[j - 1] !== "\\")) j++;
                out.push(p.slice(i, j + 2));
                i = j + 2;
            } else {
                let depth = 0;
                let j = i;
                for (; j < p.length; j++) {
                    if (p[j] === "[") depth++;
                    else if (p[j] === "]" && --depth === 0) break;
                }
                out.push(p.slice(i, j + 1));
                i = j + 1;
            }
        } else {
            let j = i + 1;
            while (j < p.length && p[j] !== "." && p[j] !== "[") j++;
            out.push(p.slice(i, j));
            i = j;
        }
    }
    return out;
}
