// The policy pack under the real engine (lab/engine: upstream's CLI, our language host's RunPlugin):
// `pulumi preview --policy-pack policy` of the shipped prod example passes, and a throwaway program
// beside it fails the preview with the pack's message for each fault — a privileged container, a
// container publishing 0.0.0.0:8001, an hcloud firewall rule opening 3306, a remote command without
// a pinned host key — and passes once the fault is gone. Offline: a local file backend, passphrase
// secrets, placeholder credentials; previews create nothing, so no cloud and no Docker daemon.
// Each run has its own scratch directory and backend, so it never meets `npm run preview`'s.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { IN_CI, run, tmpDir } from "../tools";

const ROOT = path.resolve(__dirname, "..", "..");
const BIN = path.join(ROOT, ".cache", "engine", "bin");
const ENGINE = path.join(BIN, "pulumi");
const POLICY = path.join(ROOT, "policy");
const engineMissing = !fs.existsSync(ENGINE) || !fs.existsSync(path.join(BIN, "pulumi-language-nodejs"));
if (engineMissing && IN_CI) throw new Error("the Pulumi engine is not built: run bash lab/engine/build.sh (CI must not skip the policy preview)");
const skip = engineMissing ? "engine not built: run bash lab/engine/build.sh" : false;

/** lab/engine/env.sh, with this run's own backend. */
function engineEnv(backend: string): NodeJS.ProcessEnv {
    return {
        ...process.env,
        PATH: `${BIN}${path.delimiter}${process.env.PATH ?? ""}`,
        PULUMI_HOME: path.join(ROOT, ".cache", "engine", "pulumi-home"),
        PULUMI_SKIP_UPDATE_CHECK: "true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        PULUMI_IGNORE_AMBIENT_PLUGINS: "true",
        PULUMI_BACKEND_URL: `file://${backend}`,
        PULUMI_CONFIG_PASSPHRASE: "citadel-policy-test",
        PULUMI_CONFIG_PASSPHRASE_FILE: "",
        NO_COLOR: "1",
    };
}

interface Preview {
    code: number | null;
    out: string;
    seconds: number;
}

function pulumi(dir: string, env: NodeJS.ProcessEnv, ...args: string[]): void {
    const r = run(ENGINE, [...args, "--non-interactive"], { cwd: dir, env });
    assert.equal(r.code, 0, `pulumi ${args.join(" ")}: ${r.stdout}${r.stderr}`);
}

function preview(dir: string, env: NodeJS.ProcessEnv, stack: string): Promise<Preview> {
    const t0 = Date.now();
    return new Promise((resolve) => {
        const p = spawn(ENGINE, ["preview", "--non-interactive", "--stack", stack, "--policy-pack", POLICY], { cwd: dir, env });
        let out = "";
        p.stdout.on("data", (d) => (out += d));
        p.stderr.on("data", (d) => (out += d));
        const timer = setTimeout(() => p.kill("SIGTERM"), 300_000);
        p.on("close", (code) => {
            clearTimeout(timer);
            resolve({ code, out, seconds: (Date.now() - t0) / 1000 });
        });
    });
}

/** The Policies block of a preview (everything the pack reported). */
const policiesOf = (out: string) => out.slice(out.indexOf("Policies:"));

describe("engine: pulumi preview --policy-pack policy", { skip }, () => {
    let dir: string;
    before(() => {
        dir = tmpDir("citadel-policy-");
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("the shipped prod example passes every rule", async (t) => {
        // A scratch copy of the project, like lab/pulumi-stack.sh --fresh makes for `npm run preview`.
        const work = path.join(dir, "prod");
        fs.mkdirSync(work);
        for (const f of ["index.ts", "components", "templates", "images", "node_modules", "package.json", "tsconfig.json", "tsconfig.pulumi.json"]) fs.symlinkSync(path.join(ROOT, f), path.join(work, f));
        for (const f of ["Pulumi.yaml", "Pulumi.prod.yaml"]) fs.copyFileSync(path.join(ROOT, f), path.join(work, f));
        const key = path.join(dir, "operator_key");
        assert.equal(run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "citadel-policy-test", "-f", key]).code, 0);
        const env = engineEnv(path.join(dir, "state-prod"));
        fs.mkdirSync(path.join(dir, "state-prod"));
        pulumi(work, env, "stack", "init", "prod", "--secrets-provider", "passphrase");
        pulumi(work, env, "config", "set", "--secret", "hcloud:token", "p".repeat(64));
        pulumi(work, env, "config", "set", "--path", "citadel:admin.privateKeyPath", key);

        const r = await preview(work, env, "prod");
        t.diagnostic(`prod preview with the policy pack: ${r.seconds.toFixed(1)} s`);
        assert.equal(r.code, 0, `preview failed:\n${r.out.slice(-4000)}`);
        const policies = policiesOf(r.out);
        assert.match(policies, /citadel@v0\.1\.0 \(local: .*policy\)/, "the pack was loaded (through the language host's RunPlugin)");
        assert.doesNotMatch(policies, /\[(mandatory|advisory)\]/, `the prod example violates a rule:\n${policies}`);
        // The whole program ran: the summary counts every resource the preview listed, and every
        // container the posture declares (the `containers` output) is among them. Counted, not
        // hard-coded: a posture that gains a service (monitoring did) changes both sides together.
        // A row is printed again whenever its display changes, and what follows "create" depends on
        // timing: the stack's row carries the tag-only image warning, and on a loaded machine the
        // warning can arrive before the row is first printed (CI once saw one resource short). So a
        // row is matched whatever follows "create", and resources are counted by type and name.
        const listed = [...r.out.matchAll(/^ \+  (\S+) (\S+) create(?: .*)?$/gm)];
        const distinct = new Set(listed.map((m) => `${m[1]}::${m[2]}`));
        const tail = `\n--- the preview's last lines ---\n${r.out.slice(-3000)}`;
        const summary = /\+ (\d+) to create/.exec(r.out);
        assert.ok(summary, `no summary in the preview:${tail}`);
        assert.equal(Number(summary[1]), distinct.size, `the summary counts what the preview listed${tail}`);
        const containersOut = /containers\s*: \[\n([\s\S]*?)\n\s*\]/.exec(r.out);
        assert.ok(containersOut, `the containers output${tail}`);
        const declared = [...containersOut[1].matchAll(/\]: "([^"]+)"/g)].length;
        assert.ok(declared >= 5, `the containers output lists the gateway, data and apps: ${containersOut[1]}`);
        assert.equal([...distinct].filter((k) => k.startsWith("docker:index:Container::")).length, declared, `one docker container per declared container${tail}`);
    });

    describe("a program beside the stack, one fault at a time", () => {
        const cases: [string, string, RegExp][] = [
            ["privileged", "container-not-privileged", /container-not-privileged: docker container "probe" runs privileged .* — fix: remove privileged: true/],
            ["port", "container-published-ports", /container-published-ports: docker container "probe" publishes 0\.0\.0\.0:8001->8001\/tcp — fix: remove this ports entry/],
            ["firewall", "firewall-inbound-ports", /firewall-inbound-ports: hcloud firewall "perimeter" opens inbound TCP 3306 in rule 1 \(tcp 3306\) — fix: remove the rule/],
            ["hostkey", "command-host-key-pinned", /command-host-key-pinned: remote command "limits" connects over SSH without a pinned host key .* — fix: set connection\.hostKey/],
        ];
        const previews = new Map<string, Preview>();
        before(async () => {
            const prog = path.join(dir, "probe");
            fs.mkdirSync(prog);
            fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(prog, "node_modules"));
            fs.writeFileSync(path.join(prog, "Pulumi.yaml"), "name: policy-probe\nruntime: nodejs\n");
            fs.writeFileSync(path.join(prog, "package.json"), JSON.stringify({ name: "policy-probe", main: "index.ts" }));
            fs.writeFileSync(path.join(prog, "index.ts"), PROBE);
            const env = engineEnv(path.join(dir, "state-probe"));
            fs.mkdirSync(path.join(dir, "state-probe"));
            // One stack per case (config probe:fault): the cases share no state and preview side by side.
            const faults = ["none", ...cases.map(([f]) => f)];
            for (const fault of faults) {
                pulumi(prog, env, "stack", "init", fault, "--secrets-provider", "passphrase");
                pulumi(prog, env, "config", "set", "--stack", fault, "--secret", "hcloud:token", "p".repeat(64));
                pulumi(prog, env, "config", "set", "--stack", fault, "docker:host", "unix:///nonexistent/docker.sock");
                pulumi(prog, env, "config", "set", "--stack", fault, "probe:fault", fault);
            }
            const t0 = Date.now();
            const results = await Promise.all(faults.map((f) => preview(prog, env, f)));
            faults.forEach((f, i) => previews.set(f, results[i]));
            wallSeconds = (Date.now() - t0) / 1000;
        });
        let wallSeconds = 0;

        it("passes with every resource hardened", (t) => {
            const r = previews.get("none")!;
            t.diagnostic(`${previews.size} probe previews side by side: ${wallSeconds.toFixed(1)} s wall, each ${[...previews.values()].map((p) => p.seconds.toFixed(1)).join(" / ")} s`);
            assert.equal(r.code, 0, r.out.slice(-4000));
            assert.doesNotMatch(policiesOf(r.out), /\[(mandatory|advisory)\]/);
        });

        for (const [fault, policy, message] of cases) {
            it(`fails on ${fault}: ${policy}`, () => {
                const r = previews.get(fault)!;
                assert.notEqual(r.code, 0, `the preview passed despite ${fault}:\n${r.out.slice(-3000)}`);
                const policies = policiesOf(r.out);
                assert.match(policies, new RegExp(`\\[mandatory\\]\\s+${policy}\\s`), policies);
                assert.match(policies, message);
                assert.deepEqual([...policies.matchAll(/\[mandatory\]\s+(\S+)/g)].map((m) => m[1]), [policy], "exactly this violation");
                assert.match(r.out, /preview failed/);
            });
        }
    });
});

/** The throwaway program: hardened resources of every kind the pack judges; probe:fault breaks one. */
const PROBE = `import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";

const fault = new pulumi.Config("probe").get("fault") ?? "none";
const conn = {
    host: "203.0.113.10",
    user: "deploy",
    privateKey: pulumi.secret("placeholder"),
    hostKey: fault === "hostkey" ? undefined : "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMmWBSQBsZWnMjy8RjysXvzAuJKHcUNHWzwio6RClj/n",
};
new docker.Container("probe", {
    name: "probe",
    image: "busybox:1.36",
    user: "10001:10001",
    readOnly: true,
    privileged: fault === "privileged",
    securityOpts: ["no-new-privileges:true"],
    capabilities: { drops: ["ALL"] },
    memory: 64,
    memorySwap: 64,
    cpus: "0.5",
    envs: ["PROBE_TOKEN_FILE=/run/secrets/probeToken"],
    ports: fault === "port" ? [{ internal: 8001, external: 8001, ip: "0.0.0.0" }] : undefined,
});
new hcloud.Firewall("perimeter", {
    rules: [
        { direction: "in", protocol: "tcp", port: "443", sourceIps: ["0.0.0.0/0", "::/0"] },
        ...(fault === "firewall" ? [{ direction: "in", protocol: "tcp", port: "3306", sourceIps: ["0.0.0.0/0"] }] : []),
    ],
});
new command.remote.Command("limits", { connection: conn, create: "docker update --pids-limit 64 probe" });
`;
