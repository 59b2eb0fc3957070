// How the preview scales (issue 14): the real offline `pulumi preview` of the prod example with 1 app
// and 1 site, then with N apps and N sites (default 50), generated from Pulumi.prod.yaml, side by side
// in one run: the ratio is the figure (target ≤ 3×). Each preview is `npm run preview` (lab/preview.sh:
// fresh backend, placeholder token, throwaway operator key) on the generated settings.
//
// Run: npx tsx lab/preview-scale.ts [N]   (bench.ts calls previewScale()).
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import YAML from "yaml";

const ROOT = path.resolve(__dirname, "..");
const DIR = path.join(ROOT, ".cache", "preview");

interface StackFile {
    config: Record<string, unknown>;
}

/** Pulumi.prod.yaml with `n` apps (web0..) and `n` sites (www0.example.com → web0 ...); app 0 uses the data services. */
export function scaledStackFile(n: number): string {
    const doc = YAML.parse(fs.readFileSync(path.join(ROOT, "Pulumi.prod.yaml"), "utf8")) as StackFile;
    const apps = Array.from({ length: n }, (_, i) => ({ name: `web${i}`, image: "ghcr.io/example/web:1.4.2", port: 3000, env: { NODE_ENV: "production" }, ...(i === 0 ? { data: true } : {}) }));
    const sites = Array.from({ length: n }, (_, i) => ({ host: `www${i}.example.com`, app: `web${i}` }));
    doc.config["citadel:apps"] = apps;
    doc.config["citadel:sites"] = sites;
    // The example's API key belongs to its `api` app, which the generated apps replace.
    const secrets = doc.config["citadel:secrets"] as Record<string, unknown> | undefined;
    if (secrets) delete secrets.apiKeys;
    // Every string quoted: Pulumi's YAML reader would take a bare 2026-01-01 for a timestamp.
    return YAML.stringify(doc, { defaultStringType: "QUOTE_DOUBLE", defaultKeyType: "PLAIN" });
}

export interface PreviewRun {
    seconds: number;
    /** Resources the preview lists to create. */
    creates: number;
}

/** `npm run preview` (lab/preview.sh) on Pulumi.prod.yaml itself, or on a generated stack file. */
function runPreview(what: string, args: string[]): PreviewRun {
    const t = Date.now();
    const r = spawnSync("bash", [path.join(ROOT, "lab", "preview.sh"), ...args], { encoding: "utf8", timeout: 900_000 });
    const seconds = (Date.now() - t) / 1000;
    const out = `${r.stdout}${r.stderr}`;
    if (r.status !== 0) throw new Error(`preview of ${what} failed:\n${out.slice(-2000)}`);
    const creates = Number(/\+ (\d+) to create/.exec(out)?.[1] ?? NaN);
    return { seconds, creates };
}

function preview(n: number): PreviewRun {
    fs.mkdirSync(DIR, { recursive: true });
    const file = path.join(DIR, `Pulumi.scale${n}.yaml`);
    fs.writeFileSync(file, scaledStackFile(n));
    // The same offline preview as `npm run preview`, on the generated settings.
    return runPreview(`${n} app(s)`, ["--stack-file", file]);
}

/** The real preview of the prod example as it stands (what a reviewer's CI runs). */
export function previewProd(): PreviewRun {
    return runPreview("the prod example", []);
}

/** The preview with 1 app and site, then with `n`: seconds and resources of each. */
export function previewScale(n = 50): { one: PreviewRun; many: PreviewRun; n: number } {
    // A first, uncounted preview warms what every run shares (the program's compile, the plugins'
    // start): measured cold, the 1-app run came out slower than the 50-app one.
    preview(1);
    return { one: preview(1), many: preview(n), n };
}

if (require.main === module) {
    const n = Number(process.argv[2] ?? 50);
    try {
        const { one, many } = previewScale(n);
        console.log(`preview, 1 app and 1 site: ${one.seconds.toFixed(1)} s (${one.creates} to create)`);
        console.log(`preview, ${n} apps and ${n} sites: ${many.seconds.toFixed(1)} s (${many.creates} to create)`);
        console.log(`ratio ${n} / 1: ${(many.seconds / one.seconds).toFixed(1)}×  target ≤ 3×`);
    } catch (e) {
        console.error(`preview-scale: ${(e as Error).message}`);
        process.exit(1);
    }
}
