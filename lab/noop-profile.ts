// Where a no-op `pulumi up` spends the program's time: a CPU profile of the program's process
// (lab/cpu-profile.cjs), summed by what the samples were running. The bench prints it after the
// timed no-op, from an untimed second no-op (profiling slows the program down).
import * as fs from "node:fs";
import * as path from "node:path";

export const CPU_PROFILE_HOOK = path.join(__dirname, "cpu-profile.cjs");

interface CpuProfile {
    nodes: { id: number; callFrame: { functionName: string; url: string }; children?: number[] }[];
    samples: number[];
    timeDeltas: number[];
}

export interface ProgramProfile {
    /** Sampled time in the program's process, idle included (it waits on the engine). */
    totalS: number;
    idleS: number;
    gcS: number;
    /** Inclusive: the SDK's `debuggablePromise`, which reads `new Error().stack` for every promise it makes (ts-node's source-map-support maps each frame) though only PULUMI_DEBUG_PROMISE_LEAKS prints it. */
    promiseStacksS: number;
    /** Self time compiling and loading modules: V8's compile of each file, swc's transpile of the TypeScript, reading and resolving files. */
    modulesS: number;
    /** Self time in this repo's own code (components/), and in Handlebars and zod. */
    programS: number;
}

/** The summary of the one profile in `dir`. */
export function summarize(dir: string): ProgramProfile {
    const files = fs.readdirSync(dir).filter((f) => f.endsWith(".cpuprofile")).map((f) => path.join(dir, f));
    if (files.length !== 1) throw new Error(`${files.length} CPU profiles in ${dir}, where one no-op's program leaves one (${CPU_PROFILE_HOOK})`);
    const p = JSON.parse(fs.readFileSync(files[0], "utf8")) as CpuProfile;
    const self = new Map<number, number>();
    p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + p.timeDeltas[i]));
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    /** Microseconds of samples with a frame matching `pred` on their stack. */
    const inclusive = (pred: (n: CpuProfile["nodes"][number]) => boolean) => {
        let us = 0;
        for (const [id, t] of self) {
            for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) {
                if (pred(byId.get(x)!)) {
                    us += t;
                    break;
                }
            }
        }
        return us;
    };
    const selfWhere = (pred: (n: CpuProfile["nodes"][number]) => boolean) => [...self].filter(([id]) => pred(byId.get(id)!)).reduce((a, [, t]) => a + t, 0);
    const s = (us: number) => us / 1e6;
    const fn = (name: RegExp) => (n: CpuProfile["nodes"][number]) => name.test(n.callFrame.functionName);
    return {
        totalS: s([...self.values()].reduce((a, b) => a + b, 0)),
        idleS: s(selfWhere(fn(/^\(idle\)$/))),
        gcS: s(selfWhere(fn(/^\(garbage collector\)$/))),
        promiseStacksS: s(inclusive((n) => n.callFrame.functionName === "debuggablePromise" && /debuggable\.js$/.test(n.callFrame.url))),
        modulesS: s(
            selfWhere(
                (n) =>
                    /^node:internal\/modules\//.test(n.callFrame.url) ||
                    (n.callFrame.functionName === "transformSync" && /@swc\/core/.test(n.callFrame.url)) ||
                    (!n.callFrame.url && /^(readFileUtf8|internalModuleStat|compileFunction)$/.test(n.callFrame.functionName)) ||
                    n.callFrame.functionName === "compileForInternalLoader",
            ),
        ),
        programS: s(selfWhere((n) => /\/components\/|\/handlebars\/|\/zod\//.test(n.callFrame.url) && !/node_modules\/@pulumi/.test(n.callFrame.url))),
    };
}
