// Issue 12, "Survival": a bad sshd value that slips past validation is rolled back on the live host.
//
// The value is a real one an operator can set: `citadel:ssh.hostKeyAlgorithms` without ssh-ed25519.
// The config schema accepts it (every entry is on the strong list), `sshd -t` and `sshd -T` accept it
// (the RSA host key exists), and it locks out everyone who pins the host's ed25519 key, Pulumi first
// (existing.hostKey must be ssh-ed25519). The sshd step arms a rollback timer before its reload; the
// sshd-confirm step, a new SSH connection, cannot log in, so `pulumi up` fails and the host restores
// the previous drop-in by itself. Control: the same kind of value with the timer stopped from outside
// (as if there were no rollback, or as a reboot inside the window loses it) leaves the host locked
// out; a reboot then restores the previous drop-in before sshd starts (the boot unit).
//
// Its ups add config (citadel:ssh.*) to the declared stack; its last `pulumi up` leaves the host as
// declared, so under `npm test` it runs on the shared VPS (test/e2e/shared-vps.ts).
import "./shared-vps"; // first: it may name the shared VPS before anything reads CITADEL_VPS_NAME
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { parseConfigOrThrow, rawFromObject } from "../../components/config";
import { SSHD_ROLLBACK_DIR, SSHD_ROLLBACK_UNIT } from "../../components/posture/facts";
import { SSHD_DROPIN_PATH } from "../../components/render/sshd";
import { rawStackConfig } from "../../components/stackfile";
import { HARNESS_KEY } from "../../lab/vps/common";
import { IN_CI, run, RunResult, tmpDir, which, pulumiMissing } from "../tools";

process.env.CITADEL_VPS_NAME ??= "citadel-sshd-rollback";
process.env.CITADEL_SSH_PORT ??= "3322";
process.env.CITADEL_HTTP_PORT ??= "9080";
process.env.CITADEL_HTTPS_PORT ??= "9543";

/** Passes every check before the reload; refuses every client that pins the ed25519 host key. */
const LOCKOUT = ["citadel:ssh.hostKeyAlgorithms[0]=rsa-sha2-512", "citadel:ssh.hostKeyAlgorithms[1]=rsa-sha2-256"];
/** The control's value: another one of the same kind (another hash, so the sshd step runs again). */
const LOCKOUT_CONTROL = ["citadel:ssh.hostKeyAlgorithms[0]=rsa-sha2-512"];
/**
 * The window these ups declare (citadel:ssh.rollbackSeconds; the stack's default is 90): half the
 * wait, and still room for the confirming connection on a loaded machine. The last up goes back to
 * the declared default.
 */
const SSHD_ROLLBACK_SECONDS = 45;
const WINDOW = [`citadel:ssh.rollbackSeconds=${SSHD_ROLLBACK_SECONDS}`];

let skip: string | false = pulumiMissing();
if (skip) {
    // no engine: nothing else matters
} else if (!which("docker") || !which("dockerd") || !which("ssh")) skip = "docker or ssh not installed (bash lab/prereqs.sh)";
if (IN_CI && skip) throw new Error(skip);

describe("sshd confirm-or-revert: a lockout that passes validation is rolled back by the host", { skip, timeout: 45 * 60_000 }, () => {
    let session: import("./session").LabSession;
    let up: typeof import("../../lab/local").up;
    let logDir = "";
    let vps = "";
    let sshPort = 0;
    let user = "";
    let known = "";

    const out = (r: RunResult) => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
    const sshArgs = (cmd: string) => ["-i", HARNESS_KEY, "-p", String(sshPort), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${known}`, "-o", "ConnectTimeout=10", `${user}@127.0.0.1`, cmd];
    /** The operator's login (OpenSSH, the ed25519 host key pinned), without blocking the event loop. */
    const login = (): Promise<boolean> =>
        new Promise((resolve) => execFile("ssh", sshArgs("true"), { timeout: 30_000 }, (err) => resolve(!err)));
    /** A login within `ms` (a reload re-executes sshd: a client arriving in that instant is closed). */
    const loginWithin = async (ms: number): Promise<boolean> => {
        const end = Date.now() + ms;
        do {
            if (await login()) return true;
            await new Promise((res) => setTimeout(res, 2_000));
        } while (Date.now() < end);
        return false;
    };
    /** Root inside the VPS out of band (`docker exec`: the provider's console), not over SSH. */
    const consoleRoot = (cmd: string): RunResult => run("docker", ["exec", vps, "bash", "-c", cmd], { timeout: 60_000 });
    const liveHostKeyAlgs = () => consoleRoot("sshd -T -C user=x,host=x,addr=127.0.0.1 | awk '$1 == \"hostkeyalgorithms\" { print $2 }'").stdout.trim();
    const timerActive = () => consoleRoot(`systemctl is-active ${SSHD_ROLLBACK_UNIT}.timer`).stdout.trim() === "active";

    /**
     * Runs `pulumi up` with `sets` while logging in every 2 s: when the operator was locked out, and
     * for how long. `during` runs once the rollback is armed (the control stops it there).
     */
    async function upWatched(sets: string[], during?: () => void): Promise<{ ok: boolean; error: string; lockedFrom?: number; lockedUntil?: number; t0: number }> {
        const t0 = Date.now();
        let done = false;
        let lockedFrom: number | undefined;
        let lockedUntil: number | undefined;
        let armedSeen = false;
        let failedAt: number | undefined;
        const watcher = (async () => {
            while (!done) {
                if (!armedSeen && during && timerActive()) {
                    armedSeen = true;
                    during();
                }
                // Locked out = two failed logins in a row (one can meet the instant sshd re-executes on a reload).
                const at = Date.now();
                const ok = await login();
                if (!ok && failedAt === undefined) failedAt = at;
                else if (!ok && lockedFrom === undefined) lockedFrom = failedAt;
                else if (ok) failedAt = undefined;
                if (ok && lockedFrom !== undefined && lockedUntil === undefined) lockedUntil = Date.now();
                await new Promise((res) => setTimeout(res, 2_000));
            }
        })();
        let error = "";
        try {
            await up(sets);
        } catch (e) {
            error = (e as Error).message;
        }
        done = true;
        await watcher;
        return { ok: error === "", error, lockedFrom, lockedUntil, t0 };
    }
    const upLog = () => fs.readFileSync(path.join(logDir, "up.log"), "utf8");

    before(async () => {
        const { convergeLabVps } = await import("./session");
        const local = await import("../../lab/local");
        up = local.up;
        logDir = local.LOG_DIR;
        const t0 = Date.now();
        session = await convergeLabVps({ quiet: true });
        process.stderr.write(`[sshd-rollback] VPS ${local.LOCAL_VPS} converged in ${Math.round((Date.now() - t0) / 1000)} s\n`);
        vps = local.LOCAL_VPS;
        sshPort = session.info.sshPort;
        user = session.config.admin.user;
        known = path.join(tmpDir("citadel-sshd-rollback-"), "known_hosts");
        fs.writeFileSync(known, `[127.0.0.1]:${sshPort} ${session.info.hostKey}\n`);
    });

    after(async () => {
        if (known) fs.rmSync(path.dirname(known), { recursive: true, force: true });
        await session?.release(process.env.CITADEL_SSHD_ROLLBACK_KEEP === "1");
    });

    it("the converge confirmed its drop-in: no rollback armed, ed25519 offered, the operator logs in", async () => {
        assert.equal(timerActive(), false, "a rollback timer is still armed after a successful up");
        assert.equal(consoleRoot(`test -e ${SSHD_ROLLBACK_DIR}/armed`).code, 1, "the rollback is still armed");
        assert.match(liveHostKeyAlgs(), /(^|,)ssh-ed25519(,|$)/);
        assert.ok(await loginWithin(30_000), "the operator cannot log in after a good converge");
    });

    it("a good change is confirmed: the step arms the rollback, reloads, and the new connection disarms it", async () => {
        const r = await upWatched(["citadel:ssh.maxSessions=5", ...WINDOW]);
        assert.equal(r.ok, true, `${r.error}\n${upLog().slice(-3000)}`);
        assert.equal(r.lockedFrom, undefined, "the operator was locked out by a good change");
        const log = upLog();
        assert.match(log, new RegExp(`citadel: sshd: reloaded ssh; the previous drop-in comes back in ${SSHD_ROLLBACK_SECONDS} s unless`));
        assert.match(log, /citadel: sshd-confirm: a new SSH connection logged in after the reload: configuration confirmed, rollback disarmed/);
        assert.equal(timerActive(), false, "the rollback timer is still armed after the confirmation");
        assert.match(consoleRoot("sshd -T -C user=x,host=x,addr=127.0.0.1").stdout, /^maxsessions 5$/m);
    });

    it("the injected value passes the config validation (a real path, not a test hook)", () => {
        const raw = rawStackConfig("local");
        const c = parseConfigOrThrow({ ...raw, ...rawFromObject({ ssh: { hostKeyAlgorithms: ["rsa-sha2-512", "rsa-sha2-256"] } }) });
        assert.deepEqual(c.ssh.hostKeyAlgorithms, ["rsa-sha2-512", "rsa-sha2-256"]);
        assert.match(c.existing?.hostKey ?? "", /^ssh-ed25519 /, "the pinned host key is ed25519: the value above cannot match it");
    });

    // The control is also the reboot case: a reboot inside the window loses the transient timer just as
    // stopping it does, and the boot unit (citadel-sshd-rollback-boot.service) must then restore the
    // previous drop-in before sshd starts. Without it the host stays locked out after the reboot too.
    it("control, no rollback timer: with the timer stopped from outside, the same kind of value leaves the host locked out; a reboot restores the previous drop-in at boot", async () => {
        const r = await upWatched([...LOCKOUT_CONTROL, ...WINDOW], () => {
            consoleRoot(`systemctl stop ${SSHD_ROLLBACK_UNIT}.timer`);
        });
        assert.equal(r.ok, false, "pulumi up passed with a configuration that refuses its own connection");
        assert.ok(r.lockedFrom !== undefined, "the control never saw the operator locked out");
        // Well past the rollback's deadline (counted from the end of the failed up, which is later).
        await new Promise((res) => setTimeout(res, (SSHD_ROLLBACK_SECONDS + 20) * 1000));
        assert.equal(await login(), false, "without the rollback the operator got back in: the control cannot tell");
        assert.equal(liveHostKeyAlgs(), "rsa-sha2-512");
        assert.equal(consoleRoot(`test -e ${SSHD_ROLLBACK_DIR}/armed`).code, 0, "the rollback is no longer armed: the reboot below would prove nothing");
        // The repair from the provider's console: a reboot (a power cycle, as an unattended-upgrades reboot would be).
        const { rebootVps } = await import("../../lab/vps/vps");
        const info = await rebootVps(vps);
        assert.equal(info.sshPort, sshPort, "the reboot moved the SSH port");
        assert.ok(await loginWithin(60_000), "still locked out after a reboot: the unconfirmed drop-in survived it (no boot-time rollback)");
        assert.match(liveHostKeyAlgs(), /(^|,)ssh-ed25519(,|$)/, "the previous drop-in is not back after the reboot");
        assert.match(consoleRoot(`tail -n 1 ${SSHD_ROLLBACK_DIR}/fired`).stdout, /rolled back .* at boot: the host went down before the drop-in with sha256 [0-9a-f]{64} was confirmed/);
        assert.equal(consoleRoot(`test -e ${SSHD_ROLLBACK_DIR}/armed`).code, 1, "still armed after the boot-time rollback");
        process.stderr.write(`[sshd-rollback] control: locked out for ${Math.round((Date.now() - (r.lockedFrom ?? 0)) / 1000)} s until the reboot restored the previous drop-in\n`);
    });

    it("a lockout value: pulumi up fails at sshd-confirm, the host restores the previous drop-in within the rollback time", async () => {
        const r = await upWatched([...LOCKOUT, ...WINDOW]);
        assert.equal(r.ok, false, "pulumi up passed with a configuration that refuses its own connection");
        const log = upLog();
        assert.match(log, /citadel: sshd: reloaded ssh; the previous drop-in comes back in \d+ s unless/);
        assert.match(log, /sshd-confirm/);
        assert.ok(r.lockedFrom !== undefined, "the operator was never locked out: the injected value does not lock anyone out");
        // Back in without anyone touching the host: bounded by the rollback time (plus one probe round).
        const end = Date.now() + (SSHD_ROLLBACK_SECONDS + 30) * 1000;
        while (r.lockedUntil === undefined && Date.now() < end) {
            if (await login()) r.lockedUntil = Date.now();
            else await new Promise((res) => setTimeout(res, 2_000));
        }
        assert.ok(r.lockedUntil !== undefined, `the operator is still locked out ${SSHD_ROLLBACK_SECONDS + 30} s after up failed`);
        const locked = Math.round(((r.lockedUntil ?? 0) - (r.lockedFrom ?? 0)) / 1000);
        process.stderr.write(`[sshd-rollback] locked out for ${locked} s (rollback armed for ${SSHD_ROLLBACK_SECONDS} s); up failed after ${Math.round((Date.now() - r.t0) / 1000)} s\n`);
        assert.ok(locked <= SSHD_ROLLBACK_SECONDS + 15, `locked out ${locked} s, more than the rollback time`);
        assert.match(liveHostKeyAlgs(), /(^|,)ssh-ed25519(,|$)/, "the previous drop-in is not back");
        assert.match(consoleRoot("sshd -T -C user=x,host=x,addr=127.0.0.1").stdout, /^maxsessions 5$/m, "the previous drop-in (maxSessions 5) is not the one in force");
        assert.match(consoleRoot(`cat ${SSHD_ROLLBACK_DIR}/fired`).stdout, new RegExp(`rolled back .* was not confirmed within ${SSHD_ROLLBACK_SECONDS} s`));
        // The up failed at the confirmation, naming the rollback (or, if its dial gave up first, the dial).
        assert.match(r.error + log, /sshd-confirm|the host rolled back the new sshd drop-in|dialing/);
    });

    it("the next pulumi up with the value fixed converges (the drop-in back to as declared, confirmed), and the operator logs in", async () => {
        const r = await upWatched([]);
        assert.equal(r.ok, true, `pulumi up with the fixed config failed: ${r.error}\n${upLog().slice(-3000)}`);
        assert.match(upLog(), /citadel: sshd-confirm: a new SSH connection logged in after the reload: configuration confirmed, rollback disarmed/);
        assert.equal(r.lockedFrom, undefined, "the operator was locked out during the fixing up");
        assert.equal(timerActive(), false);
        assert.match(liveHostKeyAlgs(), /(^|,)ssh-ed25519(,|$)/);
        const dropin = consoleRoot(`sha256sum ${SSHD_DROPIN_PATH}`);
        assert.equal(dropin.code, 0, out(dropin));
    });
});
