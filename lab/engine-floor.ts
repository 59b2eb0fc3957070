// The engine floor of issue 14: what a no-op `pulumi up` costs with nothing to do, measured by the
// same engine build, language host and backend kind as the lab stacks, so the bench can print the
// stack's no-op up as a ratio of it. The program is one resource (a random.RandomId) in a scratch
// project that imports every Pulumi SDK the stack imports (the language host loads and compiles them
// as it does for the stack); the first up creates the resource, the second is the no-op timed.
//
// Run alone: npx tsx lab/engine-floor.ts   (prints the figures; bench.ts calls engineFloor()).
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { pulumiMissing } from "./engine/select";

const ROOT = path.resolve(__dirname, "..");
const WORK = path.join(ROOT, ".cache", "stacks", "engine-floor");
const STATE = path.join(ROOT, ".cache", "state-engine-floor");
const STACK = "floor";

const PROGRAM = `import * as random from "@pulumi/random";
// Imported like the stack's program imports them; only the random provider has a resource.
import "@pulumi/command";
import "@pulumi/docker";
import "@pulumi/hcloud";

export const id = new random.RandomId("floor", { byteLength: 4 }).hex;
`;

export interface EngineFloor {
    /** The first up (creates the one resource), seconds. */
    firstS: number;
    /** The no-op up, seconds: the floor. */
    noopS: number;
}

function pulumi(args: string[]): { code: number; out: string; seconds: number } {
    const t = Date.now();
    const r = spawnSync("bash", ["-c", `source ${JSON.stringify(path.join(ROOT, "lab", "engine", "env.sh"))} && export PULUMI_BACKEND_URL=file://${STATE} && cd ${JSON.stringify(WORK)} && exec "$CITADEL_PULUMI" "$@"`, "pulumi", ...args], {
        encoding: "utf8",
        // The floor's state is thrown away after each bench: its passphrase protects nothing.
        env: { ...process.env, PULUMI_CONFIG_PASSPHRASE: "citadel-engine-floor" },
        timeout: 600_000,
    });
    return { code: r.status ?? 1, out: `${r.stdout}${r.stderr}`, seconds: (Date.now() - t) / 1000 };
}

/** Builds the scratch project afresh, runs `pulumi up` twice, and removes its state. */
export function engineFloor(): EngineFloor {
    const missing = pulumiMissing();
    if (missing) throw new Error(missing);
    for (const d of [WORK, STATE]) fs.rmSync(d, { recursive: true, force: true });
    fs.mkdirSync(WORK, { recursive: true });
    fs.mkdirSync(STATE, { recursive: true });
    for (const f of ["node_modules", "package.json", "tsconfig.json", "tsconfig.pulumi.json"]) fs.symlinkSync(path.join(ROOT, f), path.join(WORK, f));
    // The same runtime options as Citadel's Pulumi.yaml (the floor compiles the way the program does).
    fs.writeFileSync(path.join(WORK, "Pulumi.yaml"), "name: citadel-engine-floor\nruntime:\n  name: nodejs\n  options:\n    typescript: true\n    tsconfig: tsconfig.pulumi.json\n");
    fs.writeFileSync(path.join(WORK, "index.ts"), PROGRAM);
    try {
        const init = pulumi(["stack", "init", STACK, "--secrets-provider", "passphrase"]);
        if (init.code !== 0) throw new Error(`pulumi stack init: ${init.out.slice(-1500)}`);
        const up = ["up", "--yes", "--non-interactive", "--skip-preview", "--stack", STACK];
        const first = pulumi(up);
        if (first.code !== 0) throw new Error(`the floor's first pulumi up failed: ${first.out.slice(-1500)}`);
        const noop = pulumi(up);
        if (noop.code !== 0) throw new Error(`the floor's no-op pulumi up failed: ${noop.out.slice(-1500)}`);
        // A no-op is a no-op: one unchanged resource besides the stack.
        if (!/\b2 unchanged\b/.test(noop.out)) throw new Error(`the floor's second up was not a no-op:\n${noop.out.slice(-1500)}`);
        return { firstS: first.seconds, noopS: noop.seconds };
    } finally {
        for (const d of [WORK, STATE]) fs.rmSync(d, { recursive: true, force: true });
    }
}

if (require.main === module) {
    try {
        const f = engineFloor();
        console.log(`engine floor: first up (1 resource) ${f.firstS.toFixed(1)} s, no-op up ${f.noopS.toFixed(1)} s`);
    } catch (e) {
        console.error(`engine floor: ${(e as Error).message}`);
        process.exit(1);
    }
}
