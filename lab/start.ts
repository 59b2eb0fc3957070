// `npm start` and `npm run local:down`: the whole posture converged onto a throwaway VPS on this
// machine (lab/local.ts), the audit's summary (lab/audit.ts), and how to reach the result.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { GATEWAY_CONTAINER } from "../components/posture";
import { auditLocal } from "./audit";
import { down, LOCAL_HTTPS_PORT, LOCAL_VPS, LOG_DIR, say, up } from "./local";
import { HARNESS_KEY, parseLabArgs } from "./vps/common";

const USAGE = `usage: npm start              converge the whole posture onto a throwaway local VPS (tsx lab/start.ts [up])
       npm run local:down     destroy the local stack and remove the VPS (tsx lab/start.ts down)
options:
  -h, --help   show this help
environment: CITADEL_VPS_NAME (default citadel-local), CITADEL_SSH_PORT (2222), CITADEL_HTTP_PORT (8080), CITADEL_HTTPS_PORT (8443)`;

/** The command line: "up" (default) or "down", or an exit code after --help or a usage error. */
function parseCli(args: string[]): { command: "up" | "down" } | { exit: number } {
    const parsed = parseLabArgs(args, {}, USAGE, true);
    if ("exit" in parsed) return { exit: parsed.exit };
    const [command = "up", ...extra] = parsed.positionals;
    if ((command !== "up" && command !== "down") || extra.length) {
        process.stderr.write(`unknown command ${[command, ...extra].join(" ")}\n${USAGE}\n`);
        return { exit: 2 };
    }
    return { command };
}

async function main(): Promise<void> {
    const cli = parseCli(process.argv.slice(2));
    if ("exit" in cli) {
        process.exitCode = cli.exit;
        return;
    }
    if (cli.command === "down") {
        await down();
        return;
    }
    const { info, config, seconds } = await up();
    say("audit: the source policies' checklists against the live VPS (npm run audit -- --stack local)");
        const { text } = await auditLocal();
    console.log(text);
    const host = config.sites[0]?.host;
    // For the hints below: Caddy's local CA (to verify the site) and the pinned host key (for ssh).
    const ca = spawnSync("docker", ["exec", LOCAL_VPS, "docker", "exec", GATEWAY_CONTAINER, "cat", "/data/caddy/pki/authorities/local/root.crt"], { encoding: "utf8" });
    if (ca.status === 0) fs.writeFileSync(path.join(LOG_DIR, "root.crt"), ca.stdout);
    fs.writeFileSync(path.join(LOG_DIR, "known_hosts"), `[127.0.0.1]:${info.sshPort} ${info.hostKey}\n`);
    console.log(`
Citadel converged onto the local VPS ${LOCAL_VPS} in ${Object.values(seconds).reduce((a, b) => a + b, 0).toFixed(1)} s (${Object.entries(seconds).map(([k, v]) => `${k} ${v}s`).join(", ")}).

  ssh      ssh -i ${path.relative(process.cwd(), HARNESS_KEY)} -p ${info.sshPort} -o StrictHostKeyChecking=yes -o UserKnownHostsFile=.cache/local/known_hosts ${config.admin.user}@127.0.0.1
  site     curl --cacert .cache/local/root.crt --resolve ${host}:${LOCAL_HTTPS_PORT}:127.0.0.1 https://${host}:${LOCAL_HTTPS_PORT}/
  stack    bash lab/pulumi-stack.sh local -- stack output   (state in .cache/state)
  down     npm run local:down
`);
}

if (require.main === module) {
    main().catch((e) => {
        say(`failed: ${(e as Error).message}`);
        process.exit(1);
    });
}
