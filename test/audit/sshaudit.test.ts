// out-ssh-audit judged on ssh-audit 2.5.0's real output, recorded from the lab VPS (OpenSSH 9.2p1) as
// captured in test/audit/fixtures/ssh-audit/: the converged server, the same server with a drop-in
// offering diffie-hellman-group14-sha1, 3des-cbc and hmac-sha1, and with `HostKeyAlgorithms ssh-ed25519`
// (no RSA host key). test/e2e/audit.test.ts injects the weak drop-in live; these fixtures pin the parsing
// (the RSA size, the policy's Expected/Actual pairs, the [fail] lines) without a VPS.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { judgeSshAudit, parseSshAuditScan, policyErrors, sshAuditPolicy } from "../../audit/outside";
import { prodConfig } from "../fixtures";

const FX = path.join(__dirname, "fixtures", "ssh-audit");
const fx = (name: string) => fs.readFileSync(path.join(FX, name), "utf8");
const t = { stack: "local", config: prodConfig() };

/** A policy run that replays a recorded ssh-audit -P output and keeps the policy it was given. */
function replay(file: string, code: number) {
    const seen: string[] = [];
    return { seen, run: (policy: string) => (seen.push(policy), { code, stdout: fx(file) }) };
}

describe("out-ssh-audit on recorded ssh-audit output", () => {
    it("the converged server: strict kex and RSA 3072 read from the scan; the policy from citadel:ssh passes", () => {
        const scan = parseSshAuditScan(fx("scan-clean.txt"));
        assert.deepEqual(scan, { strict: true, rsaBits: 3072, fails: [] });
        const p = replay("policy-clean.txt", 0);
        const v = judgeSshAudit(t, { code: 2, stdout: fx("scan-clean.txt") }, p.run);
        assert.equal(v.result, "pass", JSON.stringify(v));
        assert.match(v.evidence, /RSA 3072 bit/);
        // The policy handed to ssh-audit is the one the fixture was recorded with (name line aside).
        const body = (s: string) => s.split("\n").filter((l) => !l.startsWith("name ="));
        assert.deepEqual(body(p.seen[0]), body(fx("policy.txt")));
        assert.deepEqual(body(sshAuditPolicy(t, true, 3072)), body(fx("policy.txt")));
    });

    it("weak kex, cipher and MAC offered: every policy mismatch as expected|actual, and the [fail] line", () => {
        const p = replay("policy-weak.txt", 3);
        const v = judgeSshAudit(t, { code: 3, stdout: fx("scan-weak.txt") }, p.run);
        assert.equal(v.result, "fail");
        const byWhat = new Map((v.drift ?? []).map((d) => [d.what, d]));
        assert.match(byWhat.get("ssh-audit policy: Key exchanges did not match")?.actual ?? "", /diffie-hellman-group14-sha1/);
        assert.match(byWhat.get("ssh-audit policy: Key exchanges did not match")?.expected ?? "", /^sntrup761x25519-sha512@openssh\.com, curve25519-sha256/);
        assert.match(byWhat.get("ssh-audit policy: Ciphers did not match")?.actual ?? "", /3des-cbc/);
        assert.match(byWhat.get("ssh-audit policy: MACs did not match")?.actual ?? "", /hmac-sha1/);
        assert.ok((v.drift ?? []).some((d) => d.what === "ssh-audit" && /3des-cbc .*\[fail\]/.test(d.actual)), JSON.stringify(v.drift));
        assert.equal(policyErrors(fx("policy-clean.txt")).length, 0);
    });

    it("no RSA host key offered although rsa-sha2-* is declared: fail, and no size is assumed", () => {
        const p = replay("policy-clean.txt", 0);
        const v = judgeSshAudit(t, { code: 2, stdout: fx("scan-no-rsa.txt") }, p.run);
        assert.equal(v.result, "fail");
        assert.deepEqual(v.drift, [{ what: "RSA host key (rsa-sha2-512, rsa-sha2-256 declared)", expected: ">= 3072 bit", actual: "no RSA key size in ssh-audit's output" }]);
        assert.equal(p.seen.length, 0, "the policy must not run with a guessed RSA size");
    });

    it("an RSA key whose size the scan does not print (another ssh-audit format): fail, never a guessed 4096", () => {
        // The recorded clean scan with the size annotations gone: the old check took 4096 bit here.
        const unsized = fx("scan-clean.txt").replace(/ \(3072-bit\)/g, "");
        assert.equal(parseSshAuditScan(unsized).rsaBits, undefined);
        const p = replay("policy-clean.txt", 0);
        const v = judgeSshAudit(t, { code: 2, stdout: unsized }, p.run);
        assert.equal(v.result, "fail");
        assert.equal(p.seen.length, 0);
    });

    it("an RSA key below the 3072-bit floor: fail with both sizes", () => {
        const small = fx("scan-clean.txt").replace(/\(3072-bit\)/g, "(2048-bit)");
        const v = judgeSshAudit(t, { code: 2, stdout: small }, replay("policy-clean.txt", 0).run);
        assert.deepEqual(v.drift, [{ what: "RSA host key", expected: ">= 3072 bit", actual: "2048 bit" }]);
    });

    it("ssh-audit could not connect (no algorithms listed): fail with its output", () => {
        const v = judgeSshAudit(t, { code: 1, stdout: "[exception] [Errno 111] Connection refused\n" }, replay("policy-clean.txt", 0).run);
        assert.equal(v.result, "fail");
        assert.match(v.evidence, /listed no algorithms \(exit 1\): \[exception\] .*Connection refused/);
    });
});
