// The real `pulumi preview` of the prod example, offline (lab/preview.sh): every expected
// resource under its component, secrets shown as [secret], no secret material in the JSON, and a bad
// config stopped with the same message the unit tests expect.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import { IN_CI, run } from "../tools";

const ROOT = path.resolve(__dirname, "..", "..");
const ENGINE = path.join(ROOT, ".cache", "engine", "bin", "pulumi");
const engineMissing = !fs.existsSync(ENGINE);
if (engineMissing && IN_CI) throw new Error("the Pulumi engine is not built: run bash lab/engine/build.sh (CI must not skip the real preview)");
const skip = engineMissing ? "engine not built: run bash lab/engine/build.sh" : false;

function preview(...args: string[]) {
    // Its own state and work directory (the test files run two at a time: engine-select.test.ts previews too).
    return run("bash", [path.join(ROOT, "lab", "preview.sh"), ...args], { timeout: 300_000, env: { ...process.env, PULUMI_CONFIG_PASSPHRASE: "citadel-test", CITADEL_STATE_SCOPE: "preview-test" } });
}

/** "urn:pulumi:prod::citadel::a$b$c::name" → ["a$b$c", "name"]. */
function typeChain(urn: string): [string, string] {
    const parts = urn.split("::");
    return [parts[2], parts.slice(3).join("::")];
}

describe("engine: real pulumi preview of the prod example", { skip }, () => {
    let json: any;
    let raw: string;
    before(() => {
        const r = preview("--json");
        assert.equal(r.code, 0, `preview failed:\n${r.stderr.slice(-3000)}`);
        raw = r.stdout;
        json = JSON.parse(raw);
    });

    it("plans every layer, each under its component", () => {
        const chains = json.steps.map((s: any) => typeChain(s.urn).join("::"));
        const expect = [
            "citadel:index:Citadel$citadel:server:Server$hcloud:index/firewall:Firewall::perimeter",
            "citadel:index:Citadel$citadel:server:Server$hcloud:index/server:Server::server",
            "citadel:index:Citadel$citadel:server:Server$hcloud:index/sshKey:SshKey::admin-0",
            "citadel:index:Citadel$citadel:server:Server$command:local:Command::host-key-scan",
            "citadel:index:Citadel$citadel:host:Firewall$command:remote:Command::firewall",
            "citadel:index:Citadel$citadel:host:Baseline$command:remote:Command::sshd",
            "citadel:index:Citadel$citadel:host:Baseline$command:remote:Command::docker",
            "citadel:index:Citadel$citadel:host:Intrusion$command:remote:Command::intrusion",
            "citadel:index:Citadel$command:remote:Command::postgres-roles",
            "citadel:index:Citadel$citadel:secrets:Secrets$random:index/randomPassword:RandomPassword::redisPassword-api",
            "citadel:index:Citadel$citadel:network:Networks$docker:index/network:Network::data-api",
            "citadel:index:Citadel$citadel:edge:Gateway$docker:index/container:Container::gateway",
            "citadel:index:Citadel$citadel:edge:Gateway$command:remote:Command::gateway-image",
            "citadel:index:Citadel$citadel:data:DataServices$docker:index/container:Container::postgres",
            "citadel:index:Citadel$citadel:data:DataServices$docker:index/container:Container::redis",
            "citadel:index:Citadel$citadel:app:Apps$docker:index/container:Container::api",
            "citadel:index:Citadel$citadel:app:Apps$command:remote:Command::secret-api-jwtSecret",
            "citadel:index:Citadel$pulumi:providers:docker::docker",
        ];
        for (const e of expect) assert.ok(chains.includes(e), `missing ${e}`);
        // Versioned secrets: one resource per generation, named by its epoch (which depends on today).
        const jwt = /^citadel:index:Citadel\$citadel:secrets:Secrets\$random:index\/randomBytes:RandomBytes::jwtSecret-e\d+$/;
        assert.ok(chains.some((c: string) => jwt.test(c)), "missing the JWT secret's current generation (jwtSecret-e<epoch>)");
        assert.ok(json.steps.every((s: any) => s.op === "create" || s.op === "same"), "a fresh preview only creates");
        const types = new Set(json.steps.map((s: any) => s.newState?.type));
        for (const t of ["hcloud:index/firewall:Firewall", "hcloud:index/server:Server", "command:remote:Command", "docker:index/container:Container", "docker:index/network:Network", "random:index/randomPassword:RandomPassword", "random:index/randomBytes:RandomBytes"]) {
            assert.ok(types.has(t), `no ${t}`);
        }
    });

    it("shows secrets as [secret]: the Hetzner token and every SSH connection", () => {
        assert.equal(json.config["hcloud:token"], "[secret]");
        const remotes = json.steps.filter((s: any) => s.newState?.type === "command:remote:Command");
        assert.ok(remotes.length >= 12);
        for (const s of remotes) assert.equal(s.newState.inputs.connection, "[secret]", `${s.urn}: connection (private key) not secret`);
    });

    it("leaks no key material or token into its JSON", () => {
        const key = fs.readFileSync(path.join(ROOT, ".cache", "preview", "operator_key-preview-test"), "utf8");
        const body = key.split("\n").filter((l) => l && !l.startsWith("-----"));
        for (const line of body) assert.ok(!raw.includes(line), "a line of the operator's private key is in the preview");
        assert.ok(!raw.includes("PRIVATE KEY"), "private key armour in the preview");
        assert.ok(!raw.includes("p".repeat(64)), "the Hetzner token is in the preview");
    });

    it("warns about images pinned by tag only, naming each key and the digest form (the app images of the example; the defaults are pinned)", () => {
        const warnings = (json.diagnostics ?? []).filter((d: any) => d.severity === "warning").map((d: any) => String(d.message));
        const w = warnings.find((m: string) => /pinned by tag only/.test(m));
        assert.ok(w, `no tag-only warning among: ${JSON.stringify(warnings)}`);
        assert.match(w, /citadel:apps\[0\]\.image \(ghcr\.io\/example\/web:1\.4\.2\)/);
        // The defaults are pinned by digest: Postgres (on in the prod example) is not in it.
        assert.doesNotMatch(w, /citadel:postgres\.image/);
        assert.match(w, /@sha256:<the digest you reviewed>/);
    });

    it("shows reviewers the host scripts as text", () => {
        const sshd = json.steps.find((s: any) => s.urn.endsWith("::sshd"));
        assert.match(sshd.newState.inputs.create, /PasswordAuthentication no/);
        assert.match(sshd.newState.inputs.create, /PermitRootLogin no/);
    });
});

describe("engine: a bad config fails the real preview with a clear message", { skip }, () => {
    it("names the key and the fix, without a stack trace, before any resource", () => {
        const r = preview("--set", "citadel:admin.sourceIps[1]=10.0.0.300/24");
        assert.notEqual(r.code, 0, "preview accepted a bad CIDR");
        const out = r.stdout + r.stderr;
        assert.match(out, /citadel:admin\.sourceIps\[1\]: "10\.0\.0\.300\/24" is not a CIDR/);
        assert.match(out, /nothing was changed/);
        assert.doesNotMatch(out, /\n\s+at .+\(.+:\d+:\d+\)/, "a stack trace was printed");
        // Pulumi always plans its own root Stack resource; nothing of ours may follow.
        assert.doesNotMatch(out, /\+ (?!pulumi:pulumi:Stack)[\w:/]+: \(create\)/, "resources were planned despite the bad config");
    });
});
