// The /proc watcher (test/proc-watch.ts) that the argv tests rely on: it must see a short-lived
// process that carries a value in its command line or its environment, name where, and see nothing
// when the same value travels on stdin or in a file.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { describeSightings, watchProc } from "../proc-watch";
import { tmpDir } from "../tools";

const linux = fs.existsSync("/proc/self/cmdline") ? false : "no /proc on this system";

/** Runs a command (asynchronously, so the watcher's sweeps are not blocked) and waits for it. */
function runAsync(cmd: string, args: string[], o: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<number | null> {
    return new Promise((resolve, reject) => {
        const p = spawn(cmd, args, { env: o.env ?? process.env, stdio: ["pipe", "ignore", "ignore"] });
        p.on("error", reject);
        p.on("exit", (code) => resolve(code));
        p.stdin.end(o.input ?? "");
    });
}

describe("the /proc watcher", { skip: linux }, () => {
    it("sees a value in a 100 ms process's command line and another in its environment, naming the program", async (t) => {
        const inArgv = randomBytes(24).toString("base64url");
        const inEnv = randomBytes(24).toString("base64url");
        const w = watchProc();
        await w.ready;
        assert.equal(await runAsync("sh", ["-c", "sleep 0.1", "fault", inArgv]), 0);
        assert.equal(await runAsync("sleep", ["0.1"], { env: { ...process.env, CITADEL_FAULT: inEnv } }), 0);
        const r = await w.stop({ argvValue: inArgv, envValue: inEnv });
        const seen = r.sightings.map((s) => `${s.secret} ${s.where} ${s.holder}`).sort();
        assert.ok(seen.includes("argvValue cmdline sh"), describeSightings(r));
        assert.ok(seen.includes("envValue environ sleep"), describeSightings(r));
        // The sightings above are the proof; the gap is a figure (it grows with the machine's load).
        assert.ok(r.sweeps > 5, `sweeps ${r.sweeps}`);
        t.diagnostic(`${r.sweeps} sweeps, longest gap ${r.maxSweepMs} ms`);
    });

    it("sees nothing when the value goes on stdin or through a 0400 file", async () => {
        const value = randomBytes(24).toString("base64url");
        const dir = tmpDir("citadel-watch-");
        try {
            const w = watchProc();
            await w.ready;
            assert.equal(await runAsync("sh", ["-c", 'read -r v; sleep 0.2; [ -n "$v" ]'], { input: `${value}\n` }), 0);
            const file = path.join(dir, "secret");
            fs.writeFileSync(file, value, { mode: 0o400 });
            assert.equal(await runAsync("sh", ["-c", 'v=$(cat "$1"); sleep 0.2; [ -n "$v" ]', "reader", file]), 0);
            const r = await w.stop({ value });
            assert.deepEqual(r.sightings, [], describeSightings(r));
            assert.ok(r.texts > 0, "the watcher kept nothing at all");
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("refuses values short enough to match by chance", async () => {
        const w = watchProc();
        await w.ready;
        await assert.rejects(w.stop({ short: "abc" }), /shorter than 12/);
        await w.stop({});
    });
});
