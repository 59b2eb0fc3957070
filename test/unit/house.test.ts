// The house shows its architecture: product code never imports the development harness (lab/) or
// test code, and no module imports itself back through a cycle. Read from the sources themselves
// (TypeScript's own parser), so a new import is judged the day it is written.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import ts from "typescript";

const ROOT = path.resolve(__dirname, "..", "..");
const PRODUCT = ["index.ts", "components", "audit", "alerts", "review", "policy", "scripts"];
const ALL = [...PRODUCT, "lab", "test"];

function tsFiles(rel: string): string[] {
    const abs = path.join(ROOT, rel);
    if (fs.statSync(abs).isFile()) return rel.endsWith(".ts") ? [rel] : [];
    return fs.readdirSync(abs).flatMap((f) => (f === "node_modules" ? [] : tsFiles(path.join(rel, f))));
}

/** Relative imports of a file (static, dynamic and re-exports), resolved to repo-relative .ts paths. */
function importsOf(rel: string): string[] {
    const src = ts.createSourceFile(rel, fs.readFileSync(path.join(ROOT, rel), "utf8"), ts.ScriptTarget.ES2022, true);
    const specs: string[] = [];
    const visit = (n: ts.Node) => {
        // Type-only imports are erased at compile time: they cannot form a load-time cycle.
        const typeOnly = (ts.isImportDeclaration(n) && n.importClause?.isTypeOnly) || (ts.isExportDeclaration(n) && n.isTypeOnly);
        if ((ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) && !typeOnly && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) specs.push(n.moduleSpecifier.text);
        if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword && n.arguments[0] && ts.isStringLiteral(n.arguments[0])) specs.push(n.arguments[0].text);
        ts.forEachChild(n, visit);
    };
    visit(src);
    return specs
        .filter((s) => s.startsWith("."))
        .map((s) => {
            const base = path.join(path.dirname(rel), s);
            for (const cand of [`${base}.ts`, path.join(base, "index.ts")]) if (fs.existsSync(path.join(ROOT, cand))) return path.normalize(cand);
            return path.normalize(base);
        });
}

const isProduct = (f: string) => PRODUCT.some((p) => f === p || f.startsWith(p + path.sep));

describe("house: product apart from the harness, no import cycles", () => {
    const files = ALL.flatMap(tsFiles);
    const graph = new Map(files.map((f) => [f, importsOf(f)]));

    it("product code (index.ts, components, audit, scripts) imports neither lab/ nor test/", () => {
        const bad = files.filter(isProduct).flatMap((f) => graph.get(f)!.filter((i) => !isProduct(i)).map((i) => `${f} → ${i}`));
        assert.deepEqual(bad, []);
    });

    it("no module reaches itself through its imports", () => {
        const cycles: string[] = [];
        const state = new Map<string, "open" | "done">();
        const walk = (f: string, trail: string[]) => {
            if (state.get(f) === "done") return;
            if (state.get(f) === "open") {
                cycles.push([...trail.slice(trail.indexOf(f)), f].join(" → "));
                return;
            }
            state.set(f, "open");
            for (const i of graph.get(f) ?? []) walk(i, [...trail, f]);
            state.set(f, "done");
        };
        for (const f of files) walk(f, []);
        assert.deepEqual(cycles, []);
    });

    it("the checker sees a cycle and a product → lab import when there is one (fixture graph)", () => {
        // The same walk over a made-up graph: proves the test above can fail.
        const g = new Map([["audit/a.ts", ["lab/b.ts"]], ["lab/b.ts", ["audit/a.ts"]]]);
        const bad = [...g].filter(([f]) => isProduct(f)).flatMap(([f, is]) => is.filter((i) => !isProduct(i)));
        assert.deepEqual(bad, ["lab/b.ts"]);
        const seen = new Set<string>();
        let cycle = false;
        const walk = (f: string, open: Set<string>) => {
            if (open.has(f)) return void (cycle = true);
            if (seen.has(f)) return;
            seen.add(f);
            for (const i of g.get(f) ?? []) walk(i, new Set([...open, f]));
        };
        walk("audit/a.ts", new Set());
        assert.ok(cycle);
    });
});
