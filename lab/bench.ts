// `npm run bench`: first converge vs no-op `pulumi up` on the local VPS, measured side by side in one
// run, plus the SSH sessions each opens. Prints its figures; targets (issue #4, 2 cores): first
// converge of the full posture ≤ 180 s, no-op up ≤ 15 s with 0 changes. A miss is a finding, not a failure.
import * as fs from "node:fs";
import * as path from "node:path";
import { renderCloudInit } from "../components/render/cloudinit";
import { buildLocalImages } from "./images/build-local";
import { harnessKey, parseLabArgs, run } from "./vps/common";
import { ensureDockerd } from "./vps/dockerd";
import { ensureVpsImage } from "./vps/image";
import { loadImages, startVps, stopVps } from "./vps/vps";
import { down, LOCAL_HTTP_PORT, LOCAL_HTTPS_PORT, LOCAL_SSH_PORT, LOCAL_VPS, LOG_DIR, localConfig, pulumiLocal, stackImages } from "./local";


/** sshd's count of accepted logins on the VPS so far (every remote step and Docker-over-SSH dial). */
function sshSessions(): number {
    const r = run("docker", ["exec", LOCAL_VPS, "journalctl", "-u", "ssh", "--no-pager", "-o", "cat"]);
    return r.stdout.split("\n").filter((l) => l.startsWith("Accepted publickey")).length;
}

function changes(log: string): string {
    const text = fs.readFileSync(path.join(LOG_DIR, log), "utf8");
    const m = /Resources:\n([\s\S]*?)\n\n/.exec(text);
    return m ? m[1].replace(/\s+/g, " ").trim() : "?";
}

const USAGE = `usage: npm run bench [-- --keep] [-- --hcloud]   (or: npx tsx lab/bench.ts [--keep] [--hcloud])
First converge vs no-op \`pulumi up\` of the local stack on a fresh local VPS, with the SSH sessions each opens.
  --keep       leave the stack and the VPS up afterwards (default: npm run local:down at the end)
  --hcloud     then the same through the Hetzner path (target hcloud, the lab's API double): the first
               converge counts creating the server (VPS boot, images loaded) too; destroyed at the end
  -h, --help   show this help`;

/** The command line, or an exit code after --help or a usage error. */
function parseCli(args: string[]): { keep: boolean; hcloud: boolean } | { exit: number } {
    const parsed = parseLabArgs(args, { keep: { type: "boolean", default: false }, hcloud: { type: "boolean", default: false } }, USAGE);
    return "exit" in parsed ? { exit: parsed.exit } : { keep: parsed.values.keep === true, hcloud: parsed.values.hcloud === true };
}

/** The Hetzner path: first converge (server created through the API double, booted, converged) and a no-op. */
async function benchHcloud(row: (k: string, v: string) => void): Promise<void> {
    const lab = await import("./hcloud");
    const { double, publicKey } = await lab.startHcloudLab();
    const changesOf = (log: string) => {
        const m = /Resources:\n([\s\S]*?)\n\n/.exec(fs.readFileSync(path.join(lab.HCLOUD_LOG_DIR, log), "utf8"));
        return m ? m[1].replace(/\s+/g, " ").trim() : "?";
    };
    try {
        let t = Date.now();
        const first = await lab.pulumiHcloud(double, publicKey, ["up", "--yes", "--non-interactive", "--skip-preview"], "bench-first.log", { reset: true });
        const firstS = (Date.now() - t) / 1000;
        t = Date.now();
        const noop = await lab.pulumiHcloud(double, publicKey, ["up", "--yes", "--non-interactive", "--skip-preview"], "bench-noop.log");
        const noopS = (Date.now() - t) / 1000;
        console.log("\nCitadel bench, the Hetzner path (target hcloud, the lab's API double; server creation counted)");
        row("first converge incl. server create + boot", `${firstS.toFixed(1)} s  exit ${first}  [${changesOf("bench-first.log")}]`);
        row("no-op pulumi up", `${noopS.toFixed(1)} s  exit ${noop}  [${changesOf("bench-noop.log")}]`);
    } finally {
        await lab.pulumiHcloud(double, publicKey, ["destroy", "--yes", "--non-interactive", "--skip-preview"], "bench-destroy.log");
        await lab.deleteAll(double);
        await double.stop();
        await lab.removeLeftovers();
    }
}

async function main(): Promise<void> {
    const cli = parseCli(process.argv.slice(2));
    if ("exit" in cli) {
        process.exitCode = cli.exit;
        return;
    }
    process.env.CITADEL_QUIET = "1";
    await ensureDockerd();
    await ensureVpsImage();
    await buildLocalImages();
    const publicKey = fs.readFileSync(harnessKey(), "utf8").trim();
    const config = localConfig(publicKey);
    // A fresh VPS: the first converge starts from a just-booted server, images loaded (not counted).
    await stopVps(LOCAL_VPS);
    const t0 = Date.now();
    const info = await startVps({ name: LOCAL_VPS, userData: renderCloudInit(config), sshPort: LOCAL_SSH_PORT, httpPort: LOCAL_HTTP_PORT, httpsPort: LOCAL_HTTPS_PORT });
    const boot = (Date.now() - t0) / 1000;
    await loadImages(LOCAL_VPS, stackImages(config));

    const s0 = sshSessions();
    let t = Date.now();
    const first = await pulumiLocal(info, publicKey, ["up", "--yes", "--non-interactive", "--skip-preview"], "bench-first.log", true);
    const firstS = (Date.now() - t) / 1000;
    const s1 = sshSessions();
    t = Date.now();
    const noop = await pulumiLocal(info, publicKey, ["up", "--yes", "--non-interactive", "--skip-preview"], "bench-noop.log");
    const noopS = (Date.now() - t) / 1000;
    const s2 = sshSessions();
    fs.writeFileSync(path.join(LOG_DIR, "host-key"), info.hostKey);

    const row = (k: string, v: string) => console.log(`${k.padEnd(44)} ${v}`);
    console.log("\nCitadel bench (local VPS, real engine; one run, side by side)");
    row("VPS boot to SSH (not counted)", `${boot.toFixed(1)} s`);
    row("first converge, full posture (pulumi up)", `${firstS.toFixed(1)} s  exit ${first}  [${changes("bench-first.log")}]  target ≤ 180 s`);
    row("no-op pulumi up", `${noopS.toFixed(1)} s  exit ${noop}  [${changes("bench-noop.log")}]  target ≤ 15 s`);
    row("ratio first / no-op", `${(firstS / noopS).toFixed(1)}×`);
    row("SSH sessions: first converge", String(s1 - s0));
    row("SSH sessions: no-op up", String(s2 - s1));
    if (!cli.keep) await down();
    if (cli.hcloud) await benchHcloud(row);
}

main().catch((e) => {
    console.error(`bench failed: ${(e as Error).message}`);
    process.exit(1);
});
