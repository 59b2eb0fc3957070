// Issue 12, "Survival": an SSH session killed in the middle of `pulumi up`. The operator changes the
// firewall (citadel:firewall.denyPorts) on a host that also drifted (a UFW rule deleted by hand), so
// the firewall step (the one whose half-done run could lock the operator out) runs; while its root
// script runs, its SSH session is killed from outside (SIGKILL to the deploy user's sshd session
// process inside the VPS, as a dropped connection ends it). That `pulumi up` fails; the operator can
// log in throughout; the next `pulumi up` (same config) completes, the change and the repair done.
//
// It changes the declared stack (an extra config value), so it keeps its own VPS; its last
// `pulumi up` puts the declared stack back.
import "./shared-vps"; // first: it may name the shared VPS before anything reads CITADEL_VPS_NAME
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { HARNESS_KEY } from "../../lab/vps/common";
import { IN_CI, run, RunResult, tmpDir, which, pulumiMissing } from "../tools";

process.env.CITADEL_VPS_NAME ??= "citadel-interrupted";
process.env.CITADEL_SSH_PORT ??= "3422";
process.env.CITADEL_HTTP_PORT ??= "9180";
process.env.CITADEL_HTTPS_PORT ??= "9643";

/** The operator's change: one more denied app port (the firewall step's script changes). */
const CHANGE = ["citadel:firewall.denyPorts.from=8001", "citadel:firewall.denyPorts.to=8013"];

// Inside the VPS: waits for a host step's root script (`sudo -n /bin/bash -s`, how every step runs),
// lets it get going, then SIGKILLs the sshd session process it runs under. Bounded.
const KILLER = `
end=$((SECONDS + 600))
while [ "$SECONDS" -lt "$end" ]; do
    sudo_pid=$(ps -eo pid=,args= | awk '$2 == "sudo" && $3 == "-n" && $4 == "/bin/bash" && $5 == "-s" { print $1; exit }')
    if [ -n "$sudo_pid" ]; then
        sleep 0.5
        shell=$(ps -o ppid= -p "$sudo_pid" | tr -d ' ')
        session=$(ps -o ppid= -p "$shell" | tr -d ' ')
        what=$(ps -o args= -p "$session")
        case $what in
        "sshd: "*) kill -KILL "$session" && echo "killed $session ($what), the session of sudo $sudo_pid" && exit 0 ;;
        esac
        echo "unexpected process tree: sudo $sudo_pid <- $shell <- $session ($what)"
        exit 1
    fi
    sleep 0.1
done
echo "no host step ran"
exit 2
`;

let skip: string | false = pulumiMissing();
if (skip) {
    // no engine: nothing else matters
} else if (!which("docker") || !which("dockerd") || !which("ssh")) skip = "docker or ssh not installed (bash lab/prereqs.sh)";
if (IN_CI && skip) throw new Error(skip);

describe("an SSH session killed in the middle of pulumi up", { skip, timeout: 40 * 60_000 }, () => {
    let session: import("./session").LabSession;
    let local: typeof import("../../lab/local");
    let vps = "";
    let sshPort = 0;
    let user = "";
    let known = "";
    let publicKey = "";

    const out = (r: RunResult) => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
    const login = (): Promise<boolean> =>
        new Promise((resolve) =>
            execFile("ssh", ["-i", HARNESS_KEY, "-p", String(sshPort), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${known}`, "-o", "ConnectTimeout=10", `${user}@127.0.0.1`, "sudo -n true"], { timeout: 30_000 }, (err) => resolve(!err)),
        );
    const consoleRoot = (cmd: string): RunResult => run("docker", ["exec", vps, "bash", "-c", cmd], { timeout: 60_000 });
    const ufwHas443 = () => /^443\/tcp\s+ALLOW/m.test(consoleRoot("ufw status").stdout);
    const pulumiUp = (sets: string[], log: string) => local.pulumiLocal(session.info, publicKey, ["up", "--yes", "--non-interactive", "--skip-preview"], log, false, sets);
    const logText = (name: string) => fs.readFileSync(path.join(local.LOG_DIR, name), "utf8");

    /** Runs fn while logging in every 2 s; the failed logins, with when. */
    async function watched<T>(fn: () => Promise<T>): Promise<{ result: T; refused: number[] }> {
        let done = false;
        const refused: number[] = [];
        const t0 = Date.now();
        const watcher = (async () => {
            while (!done) {
                if (!(await login())) refused.push(Math.round((Date.now() - t0) / 1000));
                await new Promise((res) => setTimeout(res, 2_000));
            }
        })();
        try {
            return { result: await fn(), refused };
        } finally {
            done = true;
            await watcher;
        }
    }

    before(async () => {
        const { convergeLabVps } = await import("./session");
        local = await import("../../lab/local");
        session = await convergeLabVps({ quiet: true });
        vps = local.LOCAL_VPS;
        sshPort = session.info.sshPort;
        user = session.config.admin.user;
        publicKey = fs.readFileSync(`${HARNESS_KEY}.pub`, "utf8").trim();
        known = path.join(tmpDir("citadel-interrupted-"), "known_hosts");
        fs.writeFileSync(known, `[127.0.0.1]:${sshPort} ${session.info.hostKey}\n`);
    });

    after(async () => {
        if (known) fs.rmSync(path.dirname(known), { recursive: true, force: true });
        await session?.release(process.env.CITADEL_INTERRUPTED_KEEP === "1");
    });

    it("the firewall step's session killed mid-run: that up fails, the operator logs in throughout, the next up completes and repairs the drift", async () => {
        assert.ok(await login(), "control: the operator cannot log in before the test");
        const del = consoleRoot("ufw --force delete allow 443/tcp");
        assert.equal(del.code, 0, out(del));
        assert.equal(ufwHas443(), false, "the drift is not there");

        const first = await watched(async () => {
            const killer = new Promise<RunResult>((resolve) =>
                execFile("docker", ["exec", vps, "bash", "-c", KILLER], { timeout: 660_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr })),
            );
            const code = await pulumiUp(CHANGE, "up-interrupted.log");
            return { code, killer: await killer };
        });
        process.stderr.write(`[interrupted] ${first.result.killer.stdout.trim()}\n`);
        assert.equal(first.result.killer.code, 0, `the killer did not kill a step's session: ${out(first.result.killer)}`);
        assert.match(first.result.killer.stdout, /^killed \d+ \(sshd: [a-z_][a-z0-9_-]*/);
        assert.notEqual(first.result.code, 0, `pulumi up passed although its firewall step's session was killed:\n${logText("up-interrupted.log").slice(-2000)}`);
        assert.deepEqual(first.refused, [], "the operator was refused while the interrupted up ran");

        const second = await watched(() => pulumiUp(CHANGE, "up-after-interrupt.log"));
        assert.equal(second.result, 0, `the next pulumi up failed:\n${logText("up-after-interrupt.log").slice(-3000)}`);
        assert.deepEqual(second.refused, [], "the operator was refused while the next up ran");
        process.stderr.write(`[interrupted] next up:\n${logText("up-after-interrupt.log").split("\n").filter((l) => / firewall /.test(l)).slice(-4).join("\n")}\n`);
        assert.ok(ufwHas443(), "the next up completed but the deleted 443 rule is not back");
        const status = consoleRoot("ufw status").stdout;
        assert.match(status, /^Status: active/m);
        assert.match(status, /^8001:8013\/tcp\s+DENY/m, "the operator's change is not in force");
        assert.ok(await login());
    });

    it("the declared stack again: pulumi up converges back (8001-8012)", async () => {
        const back = await watched(() => pulumiUp([], "up-declared.log"));
        assert.equal(back.result, 0, `pulumi up failed:\n${logText("up-declared.log").slice(-3000)}`);
        assert.deepEqual(back.refused, []);
        assert.match(consoleRoot("ufw status").stdout, /^8001:8012\/tcp\s+DENY/m);
    });
});
