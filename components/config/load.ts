// Loading: raw Pulumi config (strings, objects as JSON) → typed config, or a list of clear errors,
// each naming the `citadel:<key>` (with a "did you mean" for unknown keys).
import type { z } from "zod";
import { StackConfigSchema, type StackConfig } from "./schema";
import { CONFIG_NAMESPACE, closest, show } from "./validators";
export { levenshtein } from "./validators";

export type ParseResult = { ok: true; config: StackConfig } | { ok: false; errors: string[] };

/** Formats a zod issue path as a Pulumi config key: ["admin","sourceIps",1] → citadel:admin.sourceIps[1]. */
export function configKey(path: readonly PropertyKey[]): string {
    let out = CONFIG_NAMESPACE + ":";
    path.forEach((p, i) => {
        if (typeof p === "number") out += `[${p}]`;
        else if (i === 0) out += String(p);
        else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(String(p))) out += `.${String(p)}`;
        else out += `[${JSON.stringify(String(p))}]`;
    });
    return out;
}

/** Settings earlier versions had, and what replaced them: an old stack file gets the way forward, not "unknown". */
const REMOVED_SETTINGS: Record<string, string> = {
    "postgres.user":
        "was removed: one role shared by every app let each read the others' rows. Each app with data: true that lists postgresPassword now has its own role and database, both named after the app (PGUSER and PGDATABASE in its env); remove this key. With one such app, the next pulumi up moves the shared role's database to it (the postgres-roles step); with more, that step stops and says how to move it by hand. Redis likewise: each app's user is named after it (REDIS_USER) and reaches only keys starting <app>: (REDIS_PREFIX)",
    "postgres.database":
        "was removed: each app with data: true that lists postgresPassword now has its own database, named after the app (PGDATABASE in its env); remove this key. With one such app, the next pulumi up renames the old database to the app's and gives it everything in it (the postgres-roles step); with more, that step stops and says how to move it by hand",
};

/** One line per problem: `citadel:<key>: <what is wrong and the fix>`. */
function issueLines(issue: z.core.$ZodIssue): string[] {
    const path = issue.path;
    if (issue.code === "unrecognized_keys") {
        return issue.keys.map((k) => `${configKey([...path, k])}: ${REMOVED_SETTINGS[[...path, k].join(".")] ?? `is not a known setting${suggest(k, path)}`}`);
    }
    const key = path.length ? configKey(path) : CONFIG_NAMESPACE;
    const message = issue.code === "invalid_type" && issue.input === undefined ? "is required" : issue.message;
    return [`${key}: ${message}`];
}

// ---------------------------------------------------------------------------------------------
// "did you mean": the closest allowed key at the same place in the schema.
// ---------------------------------------------------------------------------------------------

function suggest(key: string, path: readonly PropertyKey[]): string {
    const shape = shapeAt(path);
    if (!shape) return "";
    const best = closest(key, Object.keys(shape));
    return best ? `; did you mean ${show(best)}?` : "";
}

/** Walks the schema along an issue path to the object there, and returns its shape (the allowed keys). */
function shapeAt(path: readonly PropertyKey[]): Record<string, unknown> | undefined {
    let s: any = StackConfigSchema;
    for (const p of path) {
        s = unwrap(s);
        if (typeof p === "number") s = s?.element ?? s?._zod?.def?.element;
        else s = s?.shape?.[p as string];
    }
    s = unwrap(s);
    return s?.shape;
}

/** Through default/prefault/optional/pipe wrappers to the object or array inside. */
function unwrap(s: any): any {
    for (let i = 0; i < 10 && s; i++) {
        const def = s._zod?.def;
        if (!def) return s;
        if (def.type === "object" || def.type === "array") return s;
        s = def.innerType ?? def.in ?? def.schema ?? undefined;
    }
    return s;
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/**
 * Parses raw Pulumi config — the map of `citadel:key` → string that `pulumi.runtime.allConfig()` returns
 * (objects and lists arrive as JSON text) — into the typed stack config.
 * Keys of other namespaces (hcloud:, pulumi:) are ignored.
 */
export function parseConfig(raw: Record<string, string>): ParseResult {
    const input: Record<string, unknown> = {};
    for (const [fullKey, value] of Object.entries(raw)) {
        const idx = fullKey.indexOf(":");
        if (idx < 0 || fullKey.slice(0, idx) !== CONFIG_NAMESPACE) continue;
        input[fullKey.slice(idx + 1)] = decodeValue(value);
    }
    const result = StackConfigSchema.safeParse(input, { reportInput: true });
    if (!result.success) return { ok: false, errors: [...new Set(result.error.issues.flatMap(issueLines))] };
    return { ok: true, config: result.data };
}

function decodeValue(value: string): unknown {
    const t = value.trim();
    if (t.startsWith("{") || t.startsWith("[")) {
        try {
            return JSON.parse(t);
        } catch {
            return value;
        }
    }
    return value;
}

/** Thrown for bad configuration; its message lists every problem, one per line. */
export class ConfigError extends Error {
    constructor(readonly problems: string[]) {
        super(`Invalid Citadel configuration (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` + problems.map((p) => `  - ${p}`).join("\n"));
        this.name = "ConfigError";
    }
}

export function parseConfigOrThrow(raw: Record<string, string>): StackConfig {
    const r = parseConfig(raw);
    if (!r.ok) throw new ConfigError(r.errors);
    return r.config;
}

/** Reads a config object the way Pulumi would hand it over, from plain JS values (for scripts and tests). */
export function rawFromObject(values: Record<string, unknown>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(values)) {
        out[`${CONFIG_NAMESPACE}:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
    }
    return out;
}
