// cloud-init user-data: valid for cloud-init's own schema, minimal, and free of secrets.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import type { TestContext } from "node:test";
import YAML from "yaml";
import { parseConfigOrThrow } from "../../components/config";
import { renderCloudInit } from "../../components/render/cloudinit";
import { makeKeyPair, prodConfig, prodWith } from "../fixtures";
import { requireTool, run, RunResult, tmpDir } from "../tools";

function schema(t: TestContext, text: string): RunResult | undefined {
    if (!requireTool(t, "cloud-init")) return undefined;
    const dir = tmpDir("citadel-cloudinit-");
    try {
        const f = path.join(dir, "user-data");
        fs.writeFileSync(f, text);
        return run("cloud-init", ["schema", "--config-file", f], { timeout: 60_000 });
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/** Every scalar (keys and values) in a parsed YAML tree, with its path. */
function scalars(v: unknown, at = "$"): Array<{ at: string; value: string }> {
    if (Array.isArray(v)) return v.flatMap((x, i) => scalars(x, `${at}[${i}]`));
    if (v && typeof v === "object") {
        return Object.entries(v).flatMap(([k, x]) => [{ at: `${at}.${k}`, value: k }, ...scalars(x, `${at}.${k}`)]);
    }
    return [{ at, value: String(v) }];
}

describe("cloud-init user-data", () => {
    const c = prodConfig();
    const text = renderCloudInit(c);

    it("passes `cloud-init schema`", (t) => {
        const r = schema(t, text);
        if (!r) return;
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.match(r.stdout, /Valid cloud-config/);
    });

    it("starts with the #cloud-config header, without which cloud-init ignores it", (t) => {
        assert.equal(text.split("\n")[0], "#cloud-config");
        const r = schema(t, text.split("\n").slice(1).join("\n"));
        if (!r) return;
        assert.notEqual(r.code, 0, "cloud-init accepted user-data without its header");
    });

    it("creates only the admin user, key-only, with non-interactive sudo; no root, no passwords", () => {
        const doc = YAML.parse(text);
        assert.deepEqual(Object.keys(doc).sort(), ["disable_root", "package_update", "packages", "ssh_pwauth", "users"]);
        assert.equal(doc.users.length, 1, "exactly one user (no distribution default user)");
        const u = doc.users[0];
        assert.equal(u.name, c.admin.user);
        assert.equal(u.name, "deploy");
        assert.equal(u.shell, "/bin/bash");
        assert.deepEqual(u.groups, ["sudo"]);
        assert.equal(u.sudo, "ALL=(ALL) NOPASSWD:ALL");
        assert.equal(u.lock_passwd, true);
        assert.deepEqual(u.ssh_authorized_keys, c.admin.sshPublicKeys);
        assert.equal(doc.ssh_pwauth, false);
        assert.equal(doc.disable_root, true);
        assert.equal(doc.package_update, true);
        assert.deepEqual(doc.packages, ["sudo", "openssh-server"]);
        // The reason for passwordless sudo is written next to it.
        assert.match(text, /# Passwordless sudo: Pulumi's remote steps run `sudo -n`[^\n]*\n[^\n]*\n\s+sudo: ALL=\(ALL\) NOPASSWD:ALL/);
    });

    it("carries several keys and contains nothing secret-looking", (t) => {
        const dir = tmpDir();
        t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
        const a = makeKeyPair(dir, "a");
        const b = makeKeyPair(dir, "b");
        const cfg = parseConfigOrThrow(prodWith({ admin: { user: "ops", sshPublicKeys: [a.publicKey, b.publicKey] } }));
        const out = renderCloudInit(cfg);
        const doc = YAML.parse(out);
        assert.deepEqual(doc.users[0].ssh_authorized_keys, [a.publicKey, b.publicKey]);
        for (const { at, value } of scalars(doc)) {
            assert.doesNotMatch(value, /PRIVATE KEY|^passwd$|^hashed_passwd$|^plain_text_passwd$|password|secret|token|api_?key/i, `${at} looks secret: ${value}`);
        }
        // The private key never appears, not even its base64 body.
        const priv = fs.readFileSync(a.privateKeyPath, "utf8").split("\n").filter((l) => l && !l.startsWith("-----"));
        for (const line of priv) assert.ok(!out.includes(line), "private key material in user-data");
    });

    it("is read by cloud-init's own YAML parser (PyYAML, YAML 1.1) as written: a user named \"on\" stays a string", (t) => {
        if (!requireTool(t, "python3")) return;
        const cfg = parseConfigOrThrow(prodWith({ admin: { user: "on", sshPublicKeys: c.admin.sshPublicKeys } }));
        const out = renderCloudInit(cfg);
        const r = run("python3", ["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"], { input: out });
        assert.equal(r.code, 0, r.stderr);
        const py = JSON.parse(r.stdout);
        assert.equal(py.users[0].name, "on");
        assert.deepEqual(py, YAML.parse(out));
        const s = schema(t, out);
        assert.ok(s && s.code === 0, s ? s.stdout + s.stderr : "");
    });

    it("schema check has teeth: a users entry with a wrong type is flagged", (t) => {
        const bad = YAML.parse(text);
        bad.users[0].lock_passwd = "sometimes";
        const r = schema(t, `#cloud-config\n${YAML.stringify(bad)}`);
        if (!r) return;
        assert.notEqual(r.code, 0, "cloud-init schema accepted lock_passwd: sometimes");
        assert.match(r.stdout + r.stderr, /users\.0: .* is not valid under any of the given schemas/);
        const bad2 = YAML.parse(text);
        bad2.disable_root = "sometimes";
        const r2 = schema(t, `#cloud-config\n${YAML.stringify(bad2)}`);
        assert.ok(r2 && r2.code !== 0);
        assert.match(r2!.stdout + r2!.stderr, /disable_root: 'sometimes' is not of type 'boolean'/);
    });
});
