// `citadel review` end to end: a throwaway git repository with this checkout's renderer, two commits
// (the second opens SSH to the world and weakens a CSP), each side rendered by its own code.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

const ROOT = path.resolve(__dirname, "..", "..");
const TSX = path.join(ROOT, "node_modules", ".bin", "tsx");
const CLI = path.join(ROOT, "review", "cli.ts");
/** What `npm run render` needs from a checkout. */
const NEEDED = ["components", "templates", "images", "scripts", "Pulumi.yaml", "Pulumi.prod.yaml", "package.json", "tsconfig.json"];

let repo: string;

function sh(cmd: string, args: string[], cwd = repo): string {
    const r = spawnSync(cmd, args, { cwd, encoding: "utf8" });
    assert.equal(r.status, 0, `${cmd} ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
}

const gitc = (...args: string[]) => sh("git", ["-c", "user.name=Citadel Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false", ...args]);

function review(...args: string[]): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync(TSX, [CLI, ...args], { cwd: repo, encoding: "utf8", timeout: 240_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The change: SSH open to the world, and the API's CSP allowing inline and eval'd scripts. */
function weaken(yaml: string): string {
    const out = yaml
        .replace(/    sourceIps:\n      - 203\.0\.113\.0\/24\n      - 2001:db8:1234::\/48\n/, "")
        .replace(`contentSecurityPolicy: "default-src 'none'; frame-ancestors 'none'"`, `contentSecurityPolicy: "default-src 'none'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; frame-ancestors 'none'"`);
    assert.notEqual(out, yaml);
    return out;
}

describe("citadel review: two git refs of a throwaway repository", () => {
    before(() => {
        repo = fs.mkdtempSync(path.join(os.tmpdir(), "citadel-review-e2e-"));
        for (const f of NEEDED) fs.cpSync(path.join(ROOT, f), path.join(repo, f), { recursive: true });
        gitc("init", "-q", "-b", "main");
        gitc("add", ".");
        gitc("commit", "-q", "-m", "base");
        const stack = path.join(repo, "Pulumi.prod.yaml");
        fs.writeFileSync(stack, weaken(fs.readFileSync(stack, "utf8")));
        gitc("commit", "-q", "-am", "open SSH, loosen the API's CSP");
    });
    after(() => fs.rmSync(repo, { recursive: true, force: true }));

    it("--help exits 0 with the usage; a missing option exits 2", () => {
        const h = review("--help");
        assert.equal(h.code, 0);
        assert.match(h.stdout, /usage: citadel review --base/);
        const m = review("--base", "HEAD");
        assert.equal(m.code, 2);
        assert.match(m.stderr, /missing --head, --stack/);
    });

    it("the same ref on both sides: an empty review, exit 0", () => {
        const r = review("--base", "HEAD", "--head", "HEAD", "--stack", "prod");
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /No change to the declared security posture/);
    });

    it("the weakening change fails the review (exit 1) and names each weakening", () => {
        const r = review("--base", "HEAD~1", "--head", "HEAD", "--stack", "prod", "--json");
        assert.equal(r.code, 1, r.stderr);
        const j = JSON.parse(r.stdout);
        const ids = j.findings.filter((f: { direction: string }) => f.direction === "weakens").map((f: { id: string }) => f.id);
        assert.ok(ids.includes("exposure.ssh.sources:anywhere"), ids.join(", "));
        assert.ok(ids.includes("tls-headers.api.example.com.csp.script-src+'self','unsafe-inline','unsafe-eval'"), ids.join(", "));
        assert.match(r.stderr, /unacknowledged weakening/);
    });

    it("--accept for every weakening passes (exit 0); an accept file needs a reason", () => {
        const j = JSON.parse(review("--base", "HEAD~1", "--head", "HEAD", "--stack", "prod", "--json").stdout);
        const weak: string[] = j.findings.filter((f: { direction: string }) => f.direction === "weakens").map((f: { id: string }) => f.id);
        const accepted = review("--base", "HEAD~1", "--head", "HEAD", "--stack", "prod", ...weak.flatMap((id) => ["--accept", `weakens:${id}`]));
        assert.equal(accepted.code, 0, accepted.stderr);
        assert.match(accepted.stdout, /Every weakening is acknowledged/);

        const file = path.join(repo, "..", `${path.basename(repo)}-accept.yaml`);
        fs.writeFileSync(file, weak.map((id) => `- id: ${JSON.stringify(id)}\n  reason: "bastion decommissioned, see #42"\n`).join(""));
        const md = path.join(repo, "..", `${path.basename(repo)}-comment.md`);
        const viaFile = review("--base", "HEAD~1", "--head", "HEAD", "--stack", "prod", "--accept-file", file, "--markdown", md);
        assert.equal(viaFile.code, 0, viaFile.stderr);
        assert.match(fs.readFileSync(md, "utf8"), /✅ acknowledged: bastion decommissioned, see #42/);

        fs.writeFileSync(file, `- id: ${JSON.stringify(weak[0])}\n`);
        const noReason = review("--base", "HEAD~1", "--head", "HEAD", "--stack", "prod", "--accept-file", file);
        assert.equal(noReason.code, 2);
        assert.match(noReason.stderr, /a reason is required/);
        fs.rmSync(file);
        fs.rmSync(md);
    });

    it("a directory is a checkout on disk; a bad ref or stack is a setup error (exit 2)", () => {
        const dir = review("--base", "HEAD~1", "--head", repo, "--stack", "prod");
        assert.equal(dir.code, 1, dir.stderr);
        assert.match(dir.stdout, /SSH open to the whole Internet/);
        const bad = review("--base", "no-such-ref", "--head", "HEAD", "--stack", "prod");
        assert.equal(bad.code, 2);
        assert.match(bad.stderr, /neither a directory nor a commit/);
        const noStack = review("--base", "HEAD", "--head", "HEAD", "--stack", "staging");
        assert.equal(noStack.code, 2);
        assert.match(noStack.stderr, /no Pulumi\.staging\.yaml/);
    });

    it("an invalid config on the head side is a setup error naming the key", () => {
        const stack = path.join(repo, "Pulumi.prod.yaml");
        const good = fs.readFileSync(stack, "utf8");
        fs.writeFileSync(stack, good.replace("serverType: cx22", "serverType: CX 22"));
        try {
            const r = review("--base", "HEAD", "--head", repo, "--stack", "prod");
            assert.equal(r.code, 2);
            assert.match(r.stderr, /citadel:hcloud\.serverType/);
        } finally {
            fs.writeFileSync(stack, good);
        }
    });

    it("--preview-json adds the engine's replacements and rotations", () => {
        const r = review("--base", "HEAD", "--head", "HEAD", "--stack", "prod", "--json", "--preview-json", path.join(__dirname, "fixtures", "preview-replace.json"));
        assert.equal(r.code, 1, r.stderr);
        const ids = JSON.parse(r.stdout).findings.map((f: { id: string; direction: string }) => `${f.direction} ${f.id}`);
        assert.ok(ids.includes("weakens preview.replace:hcloud:index/server:Server::server"), ids.join("\n"));
        assert.ok(ids.includes("neutral preview.replace:random:index/randomBytes:RandomBytes::jwtSecret"), ids.join("\n"));
    });
});
