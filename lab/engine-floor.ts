// The engine floor of issue 14: what a no-op `pulumi up` costs with nothing to do, measured by the
// same engine build, language host and backend kind as the lab stacks, so the bench can print the
// stack's no-op up as a ratio of it. The program (program() below) imports every Pulumi SDK the stack
// imports and loads each plugin the stack runs (random, command, docker) with one resource each, in a
// scratch project compiled with the stack's tsconfig; the first up creates the resources, the second
// is the no-op timed. With more RandomIds it shows what the engine alone costs per resource.
//
// Run alone: npx tsx lab/engine-floor.ts [RANDOM_IDS]   (prints the figures; bench.ts calls engineFloor()).
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { pulumiMissing } from "./engine/select";

const ROOT = path.resolve(__dirname, "..");
const WORK = path.join(ROOT, ".cache", "stacks", "engine-floor");
const STATE = path.join(ROOT, ".cache", "state-engine-floor");
const STACK = "floor";

/**
 * The floor's program: the stack's plugins loaded (random, command, docker), each by one resource,
 * and `randomIds` RandomIds in all (one for the floor; the bench also runs as many resources
 * as the stack has, to show what the engine alone costs per resource). The docker provider points at
 * an SSH host like the stack's; a no-op never dials it (the stack's no-op opens no SSH session either).
 */
function program(randomIds: number): string {
    return `import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as random from "@pulumi/random";
// Imported like the stack's program imports it (no resource: the stack creates none on target local).
import "@pulumi/hcloud";

export const ids = Array.from({ length: ${randomIds} }, (_, i) => new random.RandomId("floor" + i, { byteLength: 4 }).hex);
export const ran = new command.local.Command("floor", { create: "true" }).stdout;
export const provider = new docker.Provider("floor", { host: "ssh://floor@127.0.0.1:9" }).urn;
`;
}

/** Resources of the floor's program besides the stack: its RandomIds, the command, the docker provider. */
const EXTRA_RESOURCES = 2;

export interface EngineFloor {
    /** Resources in the program besides the stack (the providers of random and command are default ones, not counted by the engine either). */
    resources: number;
    /** The first up (creates the one resource), seconds. */
    firstS: number;
    /** The no-op up, seconds: the floor. */
    noopS: number;
}

function pulumi(args: string[], extraEnv: NodeJS.ProcessEnv = {}): { code: number; out: string; seconds: number } {
    const t = Date.now();
    const r = spawnSync("bash", ["-c", `source ${JSON.stringify(path.join(ROOT, "lab", "engine", "env.sh"))} && export PULUMI_BACKEND_URL=file://${STATE} && cd ${JSON.stringify(WORK)} && exec "$CITADEL_PULUMI" "$@"`, "pulumi", ...args], {
        encoding: "utf8",
        // The floor's state is thrown away after each bench: its passphrase protects nothing.
        env: { ...process.env, PULUMI_CONFIG_PASSPHRASE: "citadel-engine-floor", ...extraEnv },
        timeout: 600_000,
    });
    return { code: r.status ?? 1, out: `${r.stdout}${r.stderr}`, seconds: (Date.now() - t) / 1000 };
}

/**
 * Builds the scratch project afresh with `randomIds` RandomIds (plus the command and the docker
 * provider), runs `pulumi up` twice, and removes its state. With `profileEnv`, one more no-op after the
 * timed one, untimed, with these variables (lab/noop-profile.ts's CPU profile).
 */
export function engineFloor(randomIds = 1, profileEnv?: NodeJS.ProcessEnv): EngineFloor {
    const resources = randomIds + EXTRA_RESOURCES;
    const missing = pulumiMissing();
    if (missing) throw new Error(missing);
    for (const d of [WORK, STATE]) fs.rmSync(d, { recursive: true, force: true });
    fs.mkdirSync(WORK, { recursive: true });
    fs.mkdirSync(STATE, { recursive: true });
    for (const f of ["node_modules", "package.json", "tsconfig.json", "tsconfig.pulumi.json"]) fs.symlinkSync(path.join(ROOT, f), path.join(WORK, f));
    // The same runtime options as Citadel's Pulumi.yaml (the floor compiles the way the program does).
    fs.writeFileSync(path.join(WORK, "Pulumi.yaml"), "name: citadel-engine-floor\nruntime:\n  name: nodejs\n  options:\n    typescript: true\n    tsconfig: tsconfig.pulumi.json\n");
    fs.writeFileSync(path.join(WORK, "index.ts"), program(randomIds));
    try {
        const init = pulumi(["stack", "init", STACK, "--secrets-provider", "passphrase"]);
        if (init.code !== 0) throw new Error(`pulumi stack init: ${init.out.slice(-1500)}`);
        const up = ["up", "--yes", "--non-interactive", "--skip-preview", "--stack", STACK];
        const first = pulumi(up);
        if (first.code !== 0) throw new Error(`the floor's first pulumi up failed: ${first.out.slice(-1500)}`);
        const noop = pulumi(up);
        if (noop.code !== 0) throw new Error(`the floor's no-op pulumi up failed: ${noop.out.slice(-1500)}`);
        // A no-op is a no-op: every resource and the stack unchanged.
        if (!new RegExp(`\\b${resources + 1} unchanged\\b`).test(noop.out)) throw new Error(`the floor's second up was not a no-op:\n${noop.out.slice(-1500)}`);
        if (profileEnv) {
            const profiled = pulumi(up, profileEnv);
            if (profiled.code !== 0) throw new Error(`the floor's profiled no-op failed: ${profiled.out.slice(-1500)}`);
        }
        return { resources, firstS: first.seconds, noopS: noop.seconds };
    } finally {
        for (const d of [WORK, STATE]) fs.rmSync(d, { recursive: true, force: true });
    }
}

if (require.main === module) {
    try {
        const f = engineFloor(Number(process.argv[2] ?? 1));
        console.log(`engine floor: first up (${f.resources} resource(s)) ${f.firstS.toFixed(1)} s, no-op up ${f.noopS.toFixed(1)} s`);
    } catch (e) {
        console.error(`engine floor: ${(e as Error).message}`);
        process.exit(1);
    }
}
