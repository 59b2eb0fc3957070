// Reads a Pulumi.<stack>.yaml file into the raw `citadel:key` → string map that Pulumi hands the
// program, so scripts and tests see exactly what `pulumi up` would.
import * as fs from "node:fs";
import * as path from "node:path";
import YAML from "yaml";
import { parseConfigOrThrow, StackConfig } from "./config";

export const REPO_ROOT = path.resolve(__dirname, "..");

export function rawStackConfig(stack: string): Record<string, string> {
    const file = path.join(REPO_ROOT, `Pulumi.${stack}.yaml`);
    const doc = YAML.parse(fs.readFileSync(file, "utf8")) as { config?: Record<string, unknown> } | null;
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(doc?.config ?? {})) {
        if (v && typeof v === "object" && "secure" in (v as object)) continue; // encrypted values: not ours to read here
        out[k] = typeof v === "string" ? v : JSON.stringify(v);
    }
    return out;
}

export function loadStackConfig(stack: string): StackConfig {
    return parseConfigOrThrow(rawStackConfig(stack));
}
