// The Hetzner Cloud API double's own tests (lab/hcloud-double/*_test.go): every endpoint the hcloud
// provider calls, with its error answers, driven by hcloud-go's client, and the cloud firewall
// rendered to nftables and checked by the real nft in a network namespace of the test's own.
//
// Run: npx tsx --test test/hcloud/double.test.ts   (Go needed; without it the test skips, CI=true fails)
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { test } from "node:test";

const dir = path.resolve(__dirname, "..", "..", "lab", "hcloud-double");

test("hcloud-double: go test (endpoints, errors, pagination, actions, nftables perimeter)", (t) => {
    if (spawnSync("go", ["version"]).status !== 0) {
        if (process.env.CI === "true") assert.fail("Go is not installed");
        t.skip("Go is not installed");
        return;
    }
    const r = spawnSync("go", ["test", "-count=1", "-v", "./..."], {
        cwd: dir,
        encoding: "utf8",
        timeout: 5 * 60_000,
        // Every module pinned by the committed go.sum; never another toolchain.
        env: { ...process.env, GOFLAGS: "-mod=readonly", GOTOOLCHAIN: "local" },
    });
    const out = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.status, 0, out);
    // Each endpoint group ran (a skipped perimeter test would not print PASS).
    for (const name of ["TestWrongTokenIsUnauthorized", "TestCatalog", "TestSSHKeys", "TestPagination", "TestFirewallRulesAreValidated", "TestServerLifecycle", "TestFailedBootFailsTheAction", "TestStateSurvivesARestart"]) {
        assert.match(out, new RegExp(`--- PASS: ${name} `), `${name} did not pass:\n${out}`);
    }
});
