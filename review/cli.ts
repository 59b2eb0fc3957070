// `citadel review --base <git-ref|dir> --head <git-ref|dir> --stack <name>`: the security diff of a
// change, stateless (no Pulumi state, no secrets, no cloud: safe for pull requests from forks).
// Each side's posture is computed with that side's own code: a git ref is materialized with
// `git archive` into a temporary directory and its own `scripts/render.ts` writes posture.json.
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import type { Posture } from "../components/posture/types";
import { acknowledge, AcceptFileError, blocking, parseAcceptArg, parseAcceptFile, type Acknowledgement } from "./accept";
import { sortFindings } from "./collect";
import { diffPostures, PostureVersionError } from "./diff";
import { renderJson, renderMarkdown } from "./markdown";
import { previewFindings, type PreviewDigest } from "./preview";
import type { Review } from "./types";

export const REVIEW_USAGE = `usage: citadel review --base <git-ref|dir> --head <git-ref|dir> --stack <name> [options]

The security diff of a change: what it weakens, strengthens, or changes without a rule to judge it,
computed from the declared posture of Pulumi.<name>.yaml on both sides. Stateless: no Pulumi state,
no secrets, no cloud account. A git ref is rendered with that ref's own code (git archive into a
temporary directory); a directory is a checkout already on disk.

  --base <ref|dir>        the side the change starts from (e.g. origin/main)
  --head <ref|dir>        the changed side (e.g. HEAD, or the PR's merge ref)
  --stack <name>          the stack whose Pulumi.<name>.yaml both sides render
  --repo <dir>            the git repository refs are read from (default: the current directory)
  --json                  print the review as JSON (default: Markdown)
  --markdown <file>       also write the Markdown comment (under 60,000 characters) to <file>
  --accept weakens:<id>   acknowledge one weakening (repeatable)
  --accept-file <file>    acknowledge weakenings from a YAML/JSON list of { id, reason }
  --preview-json <file>   add what only the engine knows, from \`pulumi preview --json\`: replaced or
                          deleted servers and volumes (data loss), secrets that rotate (names only)
  --strict                unclassified changes fail too (acknowledge them as unclassified:<id>)
  -h, --help              show this help

Exit 0: nothing weakens, or every weakening is acknowledged. 1: an unacknowledged weakening.
2: a usage or setup error (unknown ref, invalid stack config, no renderer on a side).
`;

export class SetupError extends Error {}

/** The checkout this review code lives in: its node_modules serve the rendered refs. */
const TOOL_ROOT = path.resolve(__dirname, "..");

function git(repo: string, args: string[]): { ok: boolean; out: string; err: string } {
    const r = spawnSync("git", ["-C", repo, ...args], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
    return { ok: r.status === 0, out: (r.stdout ?? "").trim(), err: (r.stderr ?? "").trim() };
}

/** A side as a directory on disk: itself, or the ref's tree extracted into `scratch`. */
export function materialize(spec: string, repo: string, scratch: string): { dir: string; label: string } {
    if (fs.existsSync(spec) && fs.statSync(spec).isDirectory()) return { dir: path.resolve(spec), label: spec };
    const rev = git(repo, ["rev-parse", "--verify", "--quiet", `${spec}^{commit}`]);
    if (!rev.ok || !rev.out) throw new SetupError(`${spec} is neither a directory nor a commit of the git repository ${repo}`);
    const dir = path.join(scratch, "tree");
    fs.mkdirSync(dir, { recursive: true });
    const r = spawnSync("sh", ["-c", 'git -C "$1" archive --format=tar "$2" | tar -x -C "$3"', "sh", repo, rev.out, dir], { encoding: "utf8" });
    if (r.status !== 0) throw new SetupError(`cannot extract ${spec}: ${(r.stderr ?? "").trim()}`);
    // The ref's own code runs with this checkout's dependencies (a ref's tree has no node_modules).
    fs.symlinkSync(path.join(TOOL_ROOT, "node_modules"), path.join(dir, "node_modules"), "dir");
    return { dir, label: `${spec} (${rev.out.slice(0, 12)})` };
}

/** Runs the side's own renderer (its scripts/render.ts) and reads the posture.json it writes. */
export function renderSide(dir: string, stack: string, scratch: string, label: string): Promise<Posture> {
    const renderer = path.join(dir, "scripts", "render.ts");
    if (!fs.existsSync(renderer)) return Promise.reject(new SetupError(`${label}: no scripts/render.ts (Citadel before \`npm run render\`)`));
    if (!fs.existsSync(path.join(dir, `Pulumi.${stack}.yaml`))) return Promise.reject(new SetupError(`${label}: no Pulumi.${stack}.yaml`));
    const out = path.join(scratch, "render");
    const tsx = path.join(TOOL_ROOT, "node_modules", ".bin", "tsx");
    // The renderer of a pull request is the PR's code: it gets no secret of this environment.
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: scratch, TMPDIR: scratch, NODE_PATH: path.join(TOOL_ROOT, "node_modules"), NO_COLOR: "1" };
    return new Promise((resolve, reject) => {
        const child = spawn(tsx, [renderer, "--stack", stack, "--out", out], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
        let stderr = "";
        child.stderr.on("data", (d) => (stderr += String(d)));
        child.stdout.resume();
        const timer = setTimeout(() => child.kill("SIGKILL"), 180_000);
        child.on("error", (e) => reject(new SetupError(`${label}: cannot run its renderer (${e.message})`)));
        child.on("close", (code) => {
            clearTimeout(timer);
            if (code !== 0) return reject(new SetupError(`${label}: the renderer failed (exit ${code})${stderr.trim() ? `:\n${stderr.trim().split("\n").slice(0, 20).join("\n")}` : ""}`));
            try {
                resolve(JSON.parse(fs.readFileSync(path.join(out, "posture.json"), "utf8")) as Posture);
            } catch (e) {
                reject(new SetupError(`${label}: the renderer wrote no readable posture.json (${(e as Error).message})`));
            }
        });
    });
}

async function postureOf(spec: string, repo: string, stack: string, scratch: string): Promise<{ posture: Posture; label: string }> {
    const { dir, label } = materialize(spec, repo, scratch);
    return { posture: await renderSide(dir, stack, scratch, label), label };
}

function readText(file: string, what: string): string {
    try {
        return fs.readFileSync(file, "utf8");
    } catch (e) {
        throw new SetupError(`cannot read ${what} ${file} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
}

export async function main(argv: string[]): Promise<number> {
    let args;
    try {
        args = parseArgs({
            args: argv,
            options: {
                base: { type: "string" },
                head: { type: "string" },
                stack: { type: "string" },
                repo: { type: "string" },
                json: { type: "boolean" },
                markdown: { type: "string" },
                accept: { type: "string", multiple: true },
                "accept-file": { type: "string" },
                "preview-json": { type: "string" },
                strict: { type: "boolean" },
                help: { type: "boolean", short: "h" },
            },
            strict: true,
            allowPositionals: false,
        }).values;
    } catch (e) {
        process.stderr.write(`citadel review: ${(e as Error).message}\n${REVIEW_USAGE}`);
        return 2;
    }
    if (args.help) {
        process.stdout.write(REVIEW_USAGE);
        return 0;
    }
    const missing = (["base", "head", "stack"] as const).filter((k) => !args[k]);
    if (missing.length) {
        process.stderr.write(`citadel review: missing ${missing.map((m) => `--${m}`).join(", ")}\n${REVIEW_USAGE}`);
        return 2;
    }
    const stack = args.stack!;
    if (!/^[A-Za-z0-9_.-]+$/.test(stack)) {
        process.stderr.write(`citadel review: ${JSON.stringify(stack)} is not a stack name\n`);
        return 2;
    }
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "citadel-review-"));
    try {
        const acks: Acknowledgement[] = (args.accept ?? []).map(parseAcceptArg);
        if (args["accept-file"]) acks.push(...parseAcceptFile(readText(args["accept-file"], "accept file"), args["accept-file"]));
        let preview: PreviewDigest | undefined;
        if (args["preview-json"]) {
            try {
                preview = JSON.parse(readText(args["preview-json"], "preview JSON")) as PreviewDigest;
            } catch (e) {
                if (e instanceof SetupError) throw e;
                throw new SetupError(`${args["preview-json"]}: not the JSON of \`pulumi preview --json\` (${(e as Error).message})`);
            }
        }
        const repo = path.resolve(args.repo ?? process.cwd());
        // Both sides finish before anything is reported: a renderer still running would write into
        // the scratch directory after it is removed.
        const sides = await Promise.allSettled([
            postureOf(args.base!, repo, stack, fs.mkdtempSync(path.join(scratch, "base-"))),
            postureOf(args.head!, repo, stack, fs.mkdtempSync(path.join(scratch, "head-"))),
        ]);
        const failed = sides.find((r): r is PromiseRejectedResult => r.status === "rejected");
        if (failed) throw failed.reason;
        const [base, head] = sides.map((r) => (r as PromiseFulfilledResult<{ posture: Posture; label: string }>).value);
        const findings = sortFindings([...diffPostures(base.posture, head.posture), ...(preview ? previewFindings(preview) : [])]);
        const unused = acknowledge(findings, acks, !!args.strict);
        const review: Review = { stack, base: base.label, head: head.label, findings, unusedAcknowledgements: unused };
        const md = renderMarkdown(review);
        if (args.markdown) fs.writeFileSync(args.markdown, md);
        process.stdout.write(args.json ? renderJson(review) : md);
        const fails = blocking(findings, !!args.strict);
        if (fails.length) process.stderr.write(`citadel review: ${fails.length} unacknowledged ${args.strict ? "weakening or unclassified change" : "weakening"}${fails.length > 1 ? "s" : ""}: ${fails.map((f) => f.id).join(", ")}\n`);
        return fails.length ? 1 : 0;
    } catch (e) {
        if (e instanceof SetupError || e instanceof AcceptFileError || e instanceof PostureVersionError) {
            process.stderr.write(`citadel review: ${e.message}\n`);
            return 2;
        }
        throw e;
    } finally {
        fs.rmSync(scratch, { recursive: true, force: true });
    }
}

if (require.main === module) {
    main(process.argv.slice(2)).then(
        (code) => process.exit(code),
        (e) => {
            process.stderr.write(`citadel review: ${(e as Error).stack ?? String(e)}\n`);
            process.exit(2);
        },
    );
}
