// `citadel rotate <secret> --stack <s>` with the real Pulumi CLI on a scratch project: it raises
// citadel:secrets.rotateNow.<secret> by one each time, as a number the config loader accepts (and
// whose name the loader checks), and refuses a bad invocation without touching the config.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parseConfig } from "../../components/config";
import { parse as parseYaml } from "yaml";
import { prodRaw } from "../fixtures";
import { IN_CI, run, tmpDir } from "../tools";

const ROOT = path.resolve(__dirname, "..", "..");
const ENGINE = path.join(ROOT, ".cache", "engine", "bin");
let skip: string | false = false;
if (!fs.existsSync(path.join(ENGINE, "pulumi"))) skip = "engine not built (bash lab/engine/build.sh)";
if (IN_CI && skip) throw new Error(skip);

describe("citadel rotate: a forced rotation by config", { skip }, () => {
    it("raises citadel:secrets.rotateNow.<secret> by one per call; the loader reads it as a number", () => {
        const dir = tmpDir("citadel-rotate-");
        try {
            const env = {
                ...process.env,
                PATH: `${ENGINE}:${process.env.PATH}`,
                PULUMI_HOME: path.join(ROOT, ".cache", "engine", "pulumi-home"),
                PULUMI_BACKEND_URL: `file://${path.join(dir, "state")}`,
                PULUMI_CONFIG_PASSPHRASE: "test-only",
                PULUMI_SKIP_UPDATE_CHECK: "true",
            };
            fs.mkdirSync(path.join(dir, "state"));
            fs.writeFileSync(path.join(dir, "Pulumi.yaml"), "name: citadel\nruntime: nodejs\n");
            const sh = (args: string[]) => run("bash", args, { cwd: dir, env, timeout: 60_000 });
            assert.equal(sh(["-c", "pulumi stack init t --secrets-provider passphrase >/dev/null"]).code, 0);
            const cli = path.join(ROOT, "scripts", "citadel.sh");
            for (let i = 1; i <= 2; i++) {
                const r = sh([cli, "rotate", "jwtSecret", "--stack", "t"]);
                assert.equal(r.code, 0, r.stderr);
                assert.match(r.stdout, new RegExp(`citadel:secrets\\.rotateNow\\.jwtSecret = ${i}; run \`pulumi up --stack t\``));
            }
            const file = parseYaml(fs.readFileSync(path.join(dir, "Pulumi.t.yaml"), "utf8")) as { config: Record<string, unknown> };
            assert.deepEqual(file.config["citadel:secrets"], { rotateNow: { jwtSecret: 2 } }, "stored as a number under the secret's name");
            // What `pulumi up` would load: the number passes the schema; a name the stack does not generate does not.
            const raw = { ...prodRaw(), "citadel:secrets": JSON.stringify({ ...JSON.parse(prodRaw()["citadel:secrets"] ?? "{}"), ...(file.config["citadel:secrets"] as object) }) };
            const ok = parseConfig(raw);
            assert.ok(ok.ok, ok.ok ? "" : ok.errors.join("\n"));
            assert.equal(ok.config.secrets.rotateNow.jwtSecret, 2);

            // Refused before anything changes: no secret, a name that is not one, no stack.
            for (const args of [["rotate"], ["rotate", "jwt-secret", "--stack", "t"], ["rotate", "jwtSecret"], ["rotate", "jwtSecret", "--stak", "t"]]) {
                const r = sh([cli, ...args]);
                assert.equal(r.code, 2, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
                assert.match(r.stderr, /citadel: rotate: /);
            }
            assert.deepEqual((parseYaml(fs.readFileSync(path.join(dir, "Pulumi.t.yaml"), "utf8")) as typeof file).config["citadel:secrets"], { rotateNow: { jwtSecret: 2 } });
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});
