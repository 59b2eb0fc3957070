// A user's own Pulumi is used (issue 9): with a `pulumi` on PATH, the entry points run it and do not
// build the lab engine; without one (or with CITADEL_ENGINE=built) the lab build is the fallback.
// "The user's CLI" here is the lab-built CLI and language host placed in another directory (hard
// links) behind a wrapper that records every call, with a PULUMI_HOME of its own whose plugins were
// put there as a published CLI would install them. The real preview runs through it.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { IN_CI, reEscape, run, tmpDir } from "../tools";

const ROOT = path.resolve(__dirname, "..", "..");
const BUILT = path.join(ROOT, ".cache", "engine", "bin");
const BUILT_HOME = path.join(ROOT, ".cache", "engine", "pulumi-home");
const missing = !fs.existsSync(path.join(BUILT, "pulumi")) || !fs.existsSync(path.join(BUILT, "pulumi-language-nodejs"));
if (missing && IN_CI) throw new Error("the lab engine is not built: run bash lab/prereqs.sh (CI must not skip the engine switch)");
const skip = missing ? "the lab engine is not built (bash lab/prereqs.sh engine)" : false;

/** PATH without any directory that holds a `pulumi` (this machine's own, if any), so the test decides. */
function pathWithoutPulumi(): string {
    return (process.env.PATH ?? "")
        .split(":")
        .filter((d) => d && !fs.existsSync(path.join(d, "pulumi")))
        .join(":");
}

describe("the Pulumi CLI on PATH is used; the lab build is the fallback", { skip }, () => {
    let dir = "";
    let userBin = "";
    let calls = "";
    let env: NodeJS.ProcessEnv = {};
    const preview = (extra: NodeJS.ProcessEnv = {}) =>
        // Its own state and work directory (the test files run two at a time: preview.test.ts previews too).
        run("bash", [path.join(ROOT, "lab", "preview.sh"), "--json"], { env: { ...env, CITADEL_STATE_SCOPE: "engine-select", ...extra }, timeout: 300_000 });
    const select = (extra: NodeJS.ProcessEnv = {}) => run("bash", [path.join(ROOT, "lab", "engine", "select.sh")], { env: { ...env, ...extra } });

    before(() => {
        dir = tmpDir("citadel-user-pulumi-");
        // The CLI and its language host side by side, where a user's install would put them.
        const real = path.join(dir, "pulumi-install");
        fs.mkdirSync(real);
        for (const b of ["pulumi", "pulumi-language-nodejs"]) fs.linkSync(path.join(BUILT, b), path.join(real, b));
        userBin = path.join(dir, "bin");
        fs.mkdirSync(userBin);
        calls = path.join(dir, "calls.log");
        fs.writeFileSync(path.join(userBin, "pulumi"), `#!/bin/sh\nprintf '%s\\n' "$*" >>"${calls}"\nexec "${real}/pulumi" "$@"\n`, { mode: 0o755 });
        // The user's PULUMI_HOME, with the plugins the published CLI would have installed.
        const home = path.join(dir, "pulumi-home");
        fs.mkdirSync(home);
        fs.symlinkSync(path.join(BUILT_HOME, "plugins"), path.join(home, "plugins"));
        env = {
            ...process.env,
            PATH: `${userBin}:${pathWithoutPulumi()}`,
            PULUMI_HOME: home,
            // This machine is offline: the plugins are there, nothing may be fetched.
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
            PULUMI_CONFIG_PASSPHRASE: "citadel-engine-select",
        };
        delete env.CITADEL_ENGINE;
    });
    after(() => {
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it("select.sh: the pulumi on PATH by default; built when forced or when none is on PATH; bad values are errors", () => {
        assert.equal(select().stdout.trim(), `installed ${path.join(userBin, "pulumi")}`);
        assert.equal(select({ CITADEL_ENGINE: "built" }).stdout.trim(), `built ${path.join(BUILT, "pulumi")}`);
        // The lab build on PATH (env.sh puts it there) is not "a user's CLI".
        assert.equal(select({ PATH: `${BUILT}:${pathWithoutPulumi()}` }).stdout.trim(), `built ${path.join(BUILT, "pulumi")}`);
        const none = select({ PATH: pathWithoutPulumi(), CITADEL_ENGINE: "installed" });
        assert.notEqual(none.code, 0);
        assert.match(none.stderr, /CITADEL_ENGINE=installed but no pulumi is on PATH/);
        const bad = select({ CITADEL_ENGINE: "latest" });
        assert.notEqual(bad.code, 0);
        assert.match(bad.stderr, /CITADEL_ENGINE=latest is not known; use installed .* or built/);
    });

    it("npm run preview runs the user's CLI (every call through it), and prereqs builds nothing", () => {
        const r = preview();
        assert.equal(r.code, 0, r.stderr.slice(-3000));
        assert.match(r.stderr, /\[prereqs\] Pulumi CLI: .*\/bin\/pulumi \(installed; CITADEL_ENGINE=built builds the lab engine instead\)/);
        assert.doesNotMatch(r.stderr, /^engine: /m, "the lab engine's build did not run");
        assert.match(r.stderr, new RegExp(`citadel: Pulumi CLI: ${reEscape(userBin)}/pulumi \\(installed\\)`));
        const log = fs.readFileSync(calls, "utf8");
        assert.match(log, /^preview --non-interactive --diff --json --stack prod$/m, `the preview went through the user's CLI:\n${log}`);
        const steps = (JSON.parse(r.stdout) as { steps: { urn: string }[] }).steps;
        assert.ok(steps.some((s) => s.urn.includes("$hcloud:index/firewall:Firewall::perimeter")), `a real preview of the prod stack (${steps.length} steps)`);
    });

    it("CITADEL_ENGINE=built: the lab build runs although a pulumi is on PATH", () => {
        const before = fs.readFileSync(calls, "utf8");
        const r = preview({ CITADEL_ENGINE: "built" });
        assert.equal(r.code, 0, r.stderr.slice(-3000));
        assert.match(r.stderr, /citadel: Pulumi CLI: .*\.cache\/engine\/bin\/pulumi \(built\)/);
        assert.equal(fs.readFileSync(calls, "utf8"), before, "the user's CLI was not called");
    });
});
