// The hcloud target's trust-on-first-use scan (components/server.ts hostKeyScanScript), run for real
// on loopback: it returns the ed25519 key of a real sshd, even one that starts after the scan began,
// and gives up, bounded, with a message naming the address, the port and what the scan saw, when
// the port is closed or silent. Loopback only; every listener is this test's and is stopped.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { hostKeyScanScript } from "../../components/server";
import { freePort, requireRoot, requireTool, requireTools, run, tmpDir } from "../tools";

const children: ChildProcess[] = [];
const servers: net.Server[] = [];
const dirs: string[] = [];
after(() => {
    for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
    for (const s of servers) s.close();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function scan(port: number, tries: number, pause: number): Promise<{ code: number | null; stdout: string; stderr: string; seconds: number }> {
    const t0 = Date.now();
    return new Promise((resolve) => {
        const child = spawn("bash", ["-c", hostKeyScanScript("127.0.0.1", port, tries, pause)], { stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d) => (stdout += String(d)));
        child.stderr.on("data", (d) => (stderr += String(d)));
        child.on("close", (code) => resolve({ code, stdout, stderr, seconds: (Date.now() - t0) / 1000 }));
    });
}

/** A real sshd on loopback with its own fresh ed25519 host key; resolves to the key's "type base64". */
function startSshd(sshd: string, port: number): string {
    const dir = tmpDir("citadel-keyscan-");
    dirs.push(dir);
    const key = path.join(dir, "hostkey");
    assert.equal(run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]).code, 0);
    fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
    const child = spawn(sshd, ["-D", "-e", "-f", "/dev/null", "-o", "ListenAddress=127.0.0.1", "-p", String(port), "-h", key, "-o", "PidFile=none"], { stdio: "ignore" });
    children.push(child);
    return fs.readFileSync(`${key}.pub`, "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
}

describe("host-key scan (hcloud TOFU)", () => {
    it("pins the ed25519 key of an sshd that comes up while the scan retries", async (t) => {
        if (!requireRoot(t, "sshd needs root") || !requireTools(t, "ssh-keyscan")) return;
        const sshd = requireTool(t, "sshd", "apt-get install openssh-server");
        if (!sshd) return;
        const port = await freePort();
        const pending = scan(port, 10, 1);
        await new Promise((r) => setTimeout(r, 2500)); // a server still booting: the first tries find nothing
        const key = startSshd(sshd, port);
        const r = await pending;
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.trim(), key);
    });

    it("gives up, bounded, naming the address, port and last status, when nothing answers", async (t) => {
        if (!requireTools(t, "ssh-keyscan")) return;
        const closed = await freePort();
        const r = await scan(closed, 3, 1);
        assert.equal(r.code, 1);
        assert.equal(r.stdout, "");
        assert.match(r.stderr, new RegExp(`citadel: server: no ed25519 host key from 127\\.0\\.0\\.1:${closed} after 3 tries 1 s apart \\(ssh-keyscan's last exit status: [1-9]`));
        assert.ok(r.seconds < 30, `took ${r.seconds} s`);

        // A port that accepts and never speaks (a half-booted host, a tarpit): each try is cut at 5 s.
        const silent = net.createServer(() => undefined);
        servers.push(silent);
        const port = await freePort();
        await new Promise<void>((res) => silent.listen(port, "127.0.0.1", res));
        const s = await scan(port, 2, 1);
        assert.equal(s.code, 1);
        assert.match(s.stderr, new RegExp(`from 127\\.0\\.0\\.1:${port} after 2 tries`));
        assert.ok(s.seconds < 30, `took ${s.seconds} s`);
    });
});
