// The pull-request workflow (.github/workflows/review.yml + review-comment.yml, scripts/pr-review.sh):
// - actionlint (built from Go modules by lab/tools/actionlint, with shellcheck on every `run:` block)
//   finds nothing in the workflows, and does find an undefined step, a bad `needs:` and an unquoted
//   expansion in a broken copy;
// - the fork-safety rules of the design hold in the files: no pull_request_target, top-level
//   `permissions: {}`, no write permission where PR code runs, every action pinned by commit SHA, no
//   untrusted ${{ }} inside a `run:`;
// - scripts/pr-review.sh end to end, called as the workflow calls it: on a throwaway repository with
//   this checkout's code, a weakening exits 1, the accept file in the PR makes it exit 0, a bad ref
//   exits 2, each comment carries the marker; then the comment half against a fake GitHub API on
//   127.0.0.1: the first run creates the comment (POST), the second edits it (PATCH), never two.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import YAML from "yaml";
import { requireTool, run, tmpDir } from "../tools";

const ROOT = path.resolve(__dirname, "..", "..");
const WORKFLOWS = path.join(ROOT, ".github", "workflows");
const SCRIPT = path.join(ROOT, "scripts", "pr-review.sh");
const MARKER = "<!-- citadel-review -->";
const workflowFiles = () => fs.readdirSync(WORKFLOWS).filter((f) => /\.ya?ml$/.test(f)).map((f) => path.join(WORKFLOWS, f));

type Job = { if?: string; permissions?: Record<string, string> | string; steps?: { uses?: string; run?: string; with?: Record<string, unknown> }[] };
type Workflow = { name: string; on: Record<string, unknown>; permissions?: unknown; jobs: Record<string, Job> };
const load = (file: string): Workflow => YAML.parse(fs.readFileSync(file, "utf8")) as Workflow;

describe("the workflows: actionlint (with shellcheck) and the fork-safety rules", () => {
    it("actionlint finds nothing in .github/workflows/*.yml", (t) => {
        const actionlint = requireTool(t, "actionlint", "build it: bash lab/tools/actionlint/build.sh, or bash lab/prereqs.sh");
        if (!actionlint || !requireTool(t, "shellcheck")) return;
        const files = workflowFiles();
        assert.ok(files.length >= 2, files.join(", "));
        const r = run(actionlint, ["-no-color", ...files], { cwd: ROOT });
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.equal(r.stdout.trim(), "");
    });

    it("actionlint fails a broken copy: undefined step output, bad needs:, unquoted expansion (shellcheck)", (t) => {
        const actionlint = requireTool(t, "actionlint", "build it: bash lab/tools/actionlint/build.sh, or bash lab/prereqs.sh");
        if (!actionlint || !requireTool(t, "shellcheck")) return;
        const dir = tmpDir("citadel-actionlint-");
        try {
            const good = fs.readFileSync(path.join(WORKFLOWS, "review-comment.yml"), "utf8");
            const broken = good
                .replace("if: steps.download.outputs.dir != ''", "if: steps.downlaod.outputs.dir != ''")
                .replace("    runs-on: ubuntu-24.04\n", "    runs-on: ubuntu-24.04\n    needs: [review]\n")
                .replace('dir="$RUNNER_TEMP/citadel-review"', 'dir=$RUNNER_TEMP/citadel-review\n          ls $dir');
            assert.notEqual(broken, good);
            fs.mkdirSync(path.join(dir, ".github", "workflows"), { recursive: true });
            const file = path.join(dir, ".github", "workflows", "review-comment.yml");
            fs.writeFileSync(file, broken);
            const r = run(actionlint, ["-no-color", file], { cwd: dir });
            assert.equal(r.code, 1, r.stdout + r.stderr);
            assert.match(r.stdout, /property "downlaod" is not defined/);
            assert.match(r.stdout, /job "comment" needs job "review" which does not exist/);
            assert.match(r.stdout, /shellcheck reported issue in this script: SC2086/);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("PR code runs read-only and without pull_request_target; the write permission is only in the workflow_run job", () => {
        const review = load(path.join(WORKFLOWS, "review.yml"));
        const comment = load(path.join(WORKFLOWS, "review-comment.yml"));
        for (const w of [review, comment]) {
            assert.ok(!("pull_request_target" in w.on), `${w.name}: pull_request_target`);
            assert.deepEqual(w.permissions, {}, `${w.name}: top-level permissions must be {}`);
        }
        assert.deepEqual(Object.keys(review.on), ["pull_request"]);
        for (const [name, job] of Object.entries(review.jobs)) {
            const perms = typeof job.permissions === "object" ? job.permissions : {};
            assert.equal(typeof job.permissions, "object", `review.yml ${name}: explicit permissions`);
            assert.ok(Object.values(perms).every((v) => v === "read"), `review.yml ${name}: ${JSON.stringify(perms)}`);
        }
        // The comment workflow: after "citadel review", the default branch's code, no PR checkout.
        assert.deepEqual((comment.on.workflow_run as { workflows: string[] }).workflows, [review.name]);
        assert.deepEqual(comment.jobs.comment.permissions, { actions: "read", contents: "read", "pull-requests": "write" });
        for (const step of comment.jobs.comment.steps ?? []) {
            if (step.uses?.startsWith("actions/checkout@")) {
                assert.equal(step.with?.ref, undefined, "the comment job checks out the default branch only");
                assert.equal(step.with?.repository, undefined);
                assert.equal(step.with?.["persist-credentials"], false);
            }
        }
    });

    it("every action is pinned by a full commit SHA; no ${{ }} of event data inside run:", () => {
        for (const file of workflowFiles()) {
            for (const [name, job] of Object.entries(load(file).jobs)) {
                for (const step of job.steps ?? []) {
                    if (step.uses) assert.match(step.uses, /^[\w.-]+\/[\w./-]+@[0-9a-f]{40}$/, `${path.basename(file)} ${name}: ${step.uses}`);
                    if (step.run) assert.doesNotMatch(step.run, /\$\{\{/, `${path.basename(file)} ${name}: pass values through env:, not into the script text`);
                }
            }
        }
    });

    it("scripts/pr-review.sh is shellcheck-clean", (t) => {
        const sc = requireTool(t, "shellcheck");
        if (!sc) return;
        const r = run(sc, ["-x", SCRIPT]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
    });
});

// --- scripts/pr-review.sh end to end ---------------------------------------------------------

/** What the review needs from a checkout: the renderer's inputs and the review itself. */
const NEEDED = ["components", "templates", "images", "scripts", "review", "Pulumi.yaml", "Pulumi.prod.yaml", "package.json", "tsconfig.json"];

interface Recorded {
    method: string;
    url: string;
    auth: string | undefined;
    body?: { body?: string };
}

/** A fake of the few GitHub REST endpoints the comment half uses, recording every request. */
class FakeGitHub {
    readonly requests: Recorded[] = [];
    readonly comments: { id: number; body: string; user: { login: string } }[] = [];
    headSha = "";
    private server = http.createServer((req, res) => this.handle(req, res));
    private nextId = 1000;
    url = "";

    async start(): Promise<void> {
        await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
        this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/api/v3`;
    }
    stop(): Promise<void> {
        return new Promise((resolve) => this.server.close(() => resolve()));
    }
    writes(): Recorded[] {
        return this.requests.filter((r) => r.method !== "GET");
    }
    addComment(body: string, login: string): void {
        this.comments.push({ id: this.nextId++, body, user: { login } });
    }

    private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
        let raw = "";
        req.on("data", (d) => (raw += String(d)));
        req.on("end", () => {
            const u = new URL(req.url ?? "/", "http://x");
            // The base URL's path (/api/v3, as on GitHub Enterprise) must prefix every request.
            const p = u.pathname.startsWith("/api/v3/") ? u.pathname.slice("/api/v3".length) : `(outside the base URL) ${u.pathname}`;
            const rec: Recorded = { method: req.method ?? "", url: p + u.search, auth: req.headers.authorization };
            if (raw) rec.body = JSON.parse(raw) as { body?: string };
            this.requests.push(rec);
            const send = (status: number, data: unknown) => {
                res.writeHead(status, { "content-type": "application/json" });
                res.end(JSON.stringify(data));
            };
            if (req.headers.authorization !== "Bearer test-token-123") return send(401, { message: "Bad credentials" });
            const html = (id: number) => `https://github.example/o/r/pull/7#issuecomment-${id}`;
            let m: RegExpExecArray | null;
            if (req.method === "GET" && p === "/repos/o/r/pulls/7") return send(200, { number: 7, head: { sha: this.headSha } });
            if (req.method === "GET" && p === "/repos/o/r/issues/7/comments") {
                const per = Number(u.searchParams.get("per_page") ?? 30);
                const page = Number(u.searchParams.get("page") ?? 1);
                return send(200, this.comments.slice((page - 1) * per, page * per));
            }
            if (req.method === "POST" && p === "/repos/o/r/issues/7/comments") {
                this.addComment(rec.body?.body ?? "", "github-actions[bot]");
                const c = this.comments[this.comments.length - 1];
                return send(201, { ...c, html_url: html(c.id) });
            }
            if (req.method === "PATCH" && (m = /^\/repos\/o\/r\/issues\/comments\/(\d+)$/.exec(p))) {
                const c = this.comments.find((x) => x.id === Number(m![1]));
                if (!c) return send(404, { message: "Not Found" });
                c.body = rec.body?.body ?? "";
                return send(200, { ...c, html_url: html(c.id) });
            }
            return send(404, { message: "Not Found" });
        });
    }
}

/** Runs the script asynchronously (the fake API lives in this process's event loop). */
function script(cwd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
        const child = spawn("bash", ["scripts/pr-review.sh", ...args], {
            cwd,
            env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
            stdio: ["ignore", "pipe", "pipe"],
        });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d) => (stdout += String(d)));
        child.stderr.on("data", (d) => (stderr += String(d)));
        const timer = setTimeout(() => child.kill("SIGKILL"), 240_000);
        child.on("close", (code) => {
            clearTimeout(timer);
            resolve({ code, stdout, stderr });
        });
    });
}

describe("scripts/pr-review.sh as the workflow runs it: a throwaway repository, a fake GitHub API", () => {
    let repo: string;
    let outs: string;
    const sha: Record<"base" | "weak" | "acked", string> = { base: "", weak: "", acked: "" };
    const api = new FakeGitHub();
    const git = (...args: string[]) => {
        const r = spawnSync("git", ["-c", "user.name=Citadel Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false", ...args], { cwd: repo, encoding: "utf8" });
        assert.equal(r.status, 0, `git ${args.join(" ")}: ${r.stderr}`);
        return r.stdout.trim();
    };
    /** The arguments review.yml passes, with this test's refs and output directory. */
    const reviewArgs = (base: string, head: string, out: string) => ["review", "--base", base, "--head", head, "--stack", "prod", "--out", out, "--accept-file", ".citadel/accepted.yaml", "--pr", "7"];
    const commentArgs = (out: string, headSha: string) => ["comment", "--repo", "o/r", "--dir", out, "--head-sha", headSha, "--run-url", "https://github.example/o/r/actions/runs/1"];
    const commentEnv = () => ({ GITHUB_API_URL: api.url, GITHUB_TOKEN: "test-token-123" });

    before(async () => {
        repo = tmpDir("citadel-pr-review-");
        outs = tmpDir("citadel-pr-review-out-");
        for (const f of NEEDED) fs.cpSync(path.join(ROOT, f), path.join(repo, f), { recursive: true });
        // This checkout's dependencies, as `npm ci` provides them in the workflow.
        fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(repo, "node_modules"), "dir");
        fs.writeFileSync(path.join(repo, ".gitignore"), "node_modules\n");
        git("init", "-q", "-b", "main");
        git("add", ".");
        git("commit", "-q", "-m", "base");
        sha.base = git("rev-parse", "HEAD");
        const stack = path.join(repo, "Pulumi.prod.yaml");
        const yaml = fs.readFileSync(stack, "utf8");
        const weakened = yaml.replace(/    sourceIps:\n      - 203\.0\.113\.0\/24\n      - 2001:db8:1234::\/48\n/, "");
        assert.notEqual(weakened, yaml);
        fs.writeFileSync(stack, weakened);
        git("commit", "-q", "-am", "open SSH to the world");
        sha.weak = git("rev-parse", "HEAD");
        await api.start();
    });
    after(async () => {
        await api.stop();
        fs.rmSync(repo, { recursive: true, force: true });
        fs.rmSync(outs, { recursive: true, force: true });
    });

    it("an unacknowledged weakening: exit 1, the comment has the marker and says so", async () => {
        const out = path.join(outs, "weak");
        const r = await script(repo, reviewArgs(sha.base, sha.weak, out));
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /no accept file \.citadel\/accepted\.yaml/);
        const md = fs.readFileSync(path.join(out, "comment.md"), "utf8");
        assert.ok(md.startsWith(`${MARKER}\n### Citadel security review — stack \`prod\``), md.slice(0, 200));
        assert.match(md, /unacknowledged weakening/);
        assert.match(md, /SSH open to the whole Internet/);
        assert.equal(fs.readFileSync(path.join(out, "exit-code"), "utf8"), "1\n");
        assert.equal(fs.readFileSync(path.join(out, "pr"), "utf8"), "7\n");
        const j = JSON.parse(fs.readFileSync(path.join(out, "review.json"), "utf8"));
        assert.ok(j.summary.unacknowledgedWeakenings > 0);
    });

    it("the PR acknowledges each weakening in .citadel/accepted.yaml: exit 0, reasons in the comment", async () => {
        const j = JSON.parse(fs.readFileSync(path.join(outs, "weak", "review.json"), "utf8"));
        const ids: string[] = j.findings.filter((f: { direction: string }) => f.direction === "weakens").map((f: { id: string }) => f.id);
        fs.mkdirSync(path.join(repo, ".citadel"), { recursive: true });
        fs.writeFileSync(path.join(repo, ".citadel", "accepted.yaml"), ids.map((id) => `- id: ${JSON.stringify(id)}\n  reason: "bastion retired, see #42"\n`).join(""));
        git("add", ".citadel/accepted.yaml");
        git("commit", "-q", "-m", "acknowledge");
        sha.acked = git("rev-parse", "HEAD");
        const out = path.join(outs, "acked");
        const r = await script(repo, reviewArgs(sha.base, sha.acked, out));
        assert.equal(r.code, 0, r.stderr);
        const md = fs.readFileSync(path.join(out, "comment.md"), "utf8");
        assert.ok(md.startsWith(MARKER));
        assert.match(md, /✅ acknowledged: bastion retired, see #42/);
        assert.equal(fs.readFileSync(path.join(out, "exit-code"), "utf8"), "0\n");
    });

    it("a setup error: exit 2, and the comment says the review could not run", async () => {
        const out = path.join(outs, "bad");
        const r = await script(repo, reviewArgs("no-such-ref", sha.weak, out));
        assert.equal(r.code, 2, r.stderr);
        const md = fs.readFileSync(path.join(out, "comment.md"), "utf8");
        assert.ok(md.startsWith(MARKER));
        assert.match(md, /The review could not run\*\* \(exit 2\)/);
        assert.match(md, /no-such-ref is neither a directory nor a commit/);
        assert.ok(!fs.existsSync(path.join(out, "review.json")));
    });

    it("comment: the first run creates one comment (POST), the next push's run edits it (PATCH)", async () => {
        // 120 earlier comments (one a user's quoting the marker): ours is found on page 2 later.
        for (let i = 0; i < 120; i++) api.addComment(i === 5 ? `${MARKER} quoted by a user` : `comment ${i}`, i === 5 ? "someone" : "reviewer");
        api.headSha = sha.weak;
        const first = await script(repo, commentArgs(path.join(outs, "weak"), sha.weak), commentEnv());
        assert.equal(first.code, 0, first.stderr);
        assert.match(first.stderr, /created the review comment on PR #7/);
        assert.deepEqual(api.writes().map((w) => `${w.method} ${w.url}`), ["POST /repos/o/r/issues/7/comments"]);

        api.headSha = sha.acked; // a new push
        const second = await script(repo, commentArgs(path.join(outs, "acked"), sha.acked), commentEnv());
        assert.equal(second.code, 0, second.stderr);
        assert.match(second.stderr, /edited the review comment on PR #7/);
        const writes = api.writes();
        assert.equal(writes.length, 2, JSON.stringify(writes.map((w) => w.url)));
        const ours = api.comments.filter((c) => c.body.startsWith(MARKER) && c.user.login === "github-actions[bot]");
        assert.equal(ours.length, 1, "exactly one review comment");
        assert.equal(writes[1].method, "PATCH");
        assert.equal(writes[1].url, `/repos/o/r/issues/comments/${ours[0].id}`);
        assert.match(ours[0].body, /✅ acknowledged: bastion retired/);
        assert.match(ours[0].body, new RegExp(`for ${sha.acked.slice(0, 12)} · \\[workflow run\\]`));
        assert.equal(ours[0].body.split(MARKER).length, 2, "the marker once");
        assert.equal(api.comments.find((c) => c.user.login === "someone")?.body, `${MARKER} quoted by a user`);
        assert.ok(api.requests.every((r) => r.auth === "Bearer test-token-123"));
        assert.ok(api.requests.some((r) => r.url === "/repos/o/r/issues/7/comments?per_page=100&page=2"), "paginated");
    });

    it("comment: a PR whose head is not the run's commit (newer push, forged number), a bad pr file or a symlink: no write", async () => {
        const before = api.writes().length;
        api.headSha = sha.acked;
        const r = await script(repo, commentArgs(path.join(outs, "weak"), sha.weak), commentEnv());
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /::notice title=citadel review::no comment/);
        assert.equal(api.writes().length, before);
        // A pr file that is not a number is refused before any request.
        const forged = path.join(outs, "forged");
        fs.cpSync(path.join(outs, "weak"), forged, { recursive: true });
        fs.writeFileSync(path.join(forged, "pr"), "7/../../../orgs/x\n");
        const requests = api.requests.length;
        const bad = await script(repo, commentArgs(forged, sha.acked), commentEnv());
        assert.equal(bad.code, 2);
        assert.match(bad.stderr, /not a pull-request number/);
        // comment.md as a symlink (to a file of the privileged job, e.g. its environment) is refused.
        fs.writeFileSync(path.join(forged, "pr"), "7\n");
        fs.rmSync(path.join(forged, "comment.md"));
        fs.symlinkSync("/proc/self/environ", path.join(forged, "comment.md"));
        const link = await script(repo, commentArgs(forged, sha.acked), commentEnv());
        assert.equal(link.code, 2);
        assert.match(link.stderr, /comment\.md: not a regular file/);
        assert.equal(api.requests.length, requests);
    });
});
