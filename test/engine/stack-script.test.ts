// lab/pulumi-stack.sh guards the stacks that are not the lab's own: no default passphrase and no
// silent `stack init` (a typo in a real stack's name must be an error, not a new empty stack).
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { IN_CI, run } from "../tools";

const ROOT = path.resolve(__dirname, "..", "..");
const SCRIPT = path.join(ROOT, "lab", "pulumi-stack.sh");
const ENGINE = path.join(ROOT, ".cache", "engine", "bin", "pulumi");

/** The caller's environment without any passphrase, and a state scope of this test's own. */
function env(scope: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    const e: NodeJS.ProcessEnv = { ...process.env, CITADEL_STATE_SCOPE: scope, ...extra };
    if (!("PULUMI_CONFIG_PASSPHRASE" in extra)) delete e.PULUMI_CONFIG_PASSPHRASE;
    delete e.PULUMI_CONFIG_PASSPHRASE_FILE;
    return e;
}

function stackScript(args: string[], e: NodeJS.ProcessEnv) {
    return run("bash", [SCRIPT, ...args], { env: e, timeout: 180_000 });
}

const scope = `stack-script-test-${process.pid}`;
const cleanup = () => {
    for (const d of [`state-${scope}`, `stacks/prod-${scope}`, `stacks/local-${scope}`]) fs.rmSync(path.join(ROOT, ".cache", d), { recursive: true, force: true });
};

test("a stack that is not the lab's gets no default passphrase: the script stops before Pulumi runs", () => {
    const r = stackScript(["prod", "--", "stack", "ls"], env(scope));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /stack prod needs its passphrase: set PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE/);
    assert.ok(!fs.existsSync(path.join(ROOT, ".cache", `state-${scope}`)), "nothing created before the refusal");
});

test("an unknown stack name lists the stacks that exist", () => {
    const r = stackScript(["prdo", "--", "stack", "ls"], env(scope, { PULUMI_CONFIG_PASSPHRASE: "x" }));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /no stack file Pulumi\.prdo\.yaml .*stacks here: .*\bprod\b/);
});

test("a missing stack is an error with the command that creates it; --init creates it; the lab stack creates itself", (t) => {
    if (!fs.existsSync(ENGINE)) {
        if (IN_CI) assert.fail("engine not built (lab/engine/build.sh)");
        t.skip("engine not built: run bash lab/engine/build.sh");
        return;
    }
    t.after(cleanup);
    const withPass = env(scope, { PULUMI_CONFIG_PASSPHRASE: "stack-script-test" });
    const missing = stackScript(["prod", "--", "stack", "ls"], withPass);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /stack prod does not exist .*create it with: bash lab\/pulumi-stack\.sh --init prod -- stack ls/);

    const init = stackScript(["--init", "prod", "--", "stack", "ls"], withPass);
    assert.equal(init.code, 0, init.stderr);
    assert.match(init.stdout, /^prod\*?\s/m);
    const again = stackScript(["prod", "--", "stack", "ls"], withPass);
    assert.equal(again.code, 0, again.stderr);

    // The lab's own stack: default passphrase, created on first use.
    const local = stackScript(["local", "--", "stack", "ls"], env(scope));
    assert.equal(local.code, 0, local.stderr);
    assert.match(local.stdout, /^local\*?\s/m);
});
