// The README's configuration reference must name every key the schema accepts.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { it } from "node:test";
import { StackConfigSchema } from "../../components/config";

function unwrap(s: any): any {
    for (let i = 0; i < 10 && s?._zod?.def; i++) {
        const def = s._zod.def;
        if (def.type === "object" || def.type === "array" || def.type === "record") return s;
        const inner = def.innerType ?? def.in ?? def.schema;
        if (!inner) return s;
        s = inner;
    }
    return s;
}

/** Every key path: citadel:admin.sourceIps, citadel:apps[].resources.memory, ... */
function keyPaths(schema: any, prefix: string, out: string[]): string[] {
    const s = unwrap(schema);
    const def = s?._zod?.def;
    if (def?.type === "object") {
        for (const [k, v] of Object.entries(s.shape)) {
            const p = prefix.endsWith(":") ? `${prefix}${k}` : `${prefix}.${k}`;
            out.push(p);
            keyPaths(v, p, out);
        }
    } else if (def?.type === "array") {
        const el = unwrap(def.element);
        if (el?._zod?.def?.type === "object") keyPaths(el, `${prefix}[]`, out);
    }
    return out;
}

it("README documents every config key (a key or its parent object)", () => {
    const readme = fs.readFileSync(path.join(__dirname, "..", "..", "README.md"), "utf8");
    const paths = keyPaths(StackConfigSchema, "citadel:", []);
    assert.ok(paths.length > 60, `only ${paths.length} keys found: the walker is broken`);
    const documented = (p: string) => readme.includes(`\`${p}\``);
    const childrenDocumented = (p: string) => readme.includes(`\`${p}.`) || readme.includes(`\`${p}[].`);
    const missing = paths.filter((p) => {
        if (documented(p) || childrenDocumented(p)) return false;
        // A leaf inside an object documented as a whole (e.g. `citadel:gateway.resources`).
        const parent = p.replace(/(\[\])?\.[A-Za-z]+$/, "");
        return !(parent !== p && documented(parent));
    });
    assert.deepEqual(missing, [], `README lacks: ${missing.join(", ")}`);
});
