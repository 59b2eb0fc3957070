// The local VPS for humans:  npx tsx lab/vps/cli.ts <up|down|status|build|load> [options]
// Progress goes to stderr ("[vps] ..."); `up` and `status` print the VPS info as JSON on stdout.
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { parseConfigOrThrow, rawFromObject } from "../../components/config";
import { renderCloudInit } from "../../components/render/cloudinit";
import { rawStackConfig } from "../../components/stackfile";
import { HARNESS_KEY, REPO_ROOT, ensureCacheDir, harnessKey, progress, run } from "./common";
import { DOCKERD_LOG, dockerReady, ensureDockerd, ourDockerdPid, stopDockerd } from "./dockerd";
import { BASE_IMAGE, VPS_IMAGE, baseKey, ensureVpsImage, imageKey, renderVpsSources, vpsKey } from "./image";
import { LAB_NETWORK, VpsInfo, knownHostsLine, loadImages, startVps, stopVps, vpsDir, vpsInfo } from "./vps";

const USAGE = `usage: npx tsx lab/vps/cli.ts <command> [options]
  up      build/load the images if needed and boot the VPS (cloud-init with the stack's user-data)
            --name NAME          container name (default citadel-vps)
            --ssh-port PORT      sshd on 127.0.0.1:PORT (default 2222)
            --stack STACK        render user-data from Pulumi.STACK.yaml (default: local if present, else prod)
            --public-key FILE    the admin's key (default: a harness key in .cache/vps/ssh/, created once)
            --user-data FILE     boot with this user-data instead of rendering one
  down    remove the VPS and its files; stop dockerd if this harness started it and nothing else runs on it
            --name NAME, --keep-dockerd
  status  dockerd, images and the VPS
  build   only build (or load from the cache) the images
  load    IMAGE...  copy images from this machine's engine into the VPS's engine (--name NAME)
  -h, --help        show this help`;

/** The user-data the hcloud target would render for this stack, with the admin key swapped in. */
function stackUserData(stack: string, publicKeyFile: string): { userData: string; adminUser: string } {
    const raw = rawStackConfig(stack);
    const admin = JSON.parse(raw["citadel:admin"] ?? "{}") as Record<string, unknown>;
    const key = fs.readFileSync(publicKeyFile, "utf8").trim();
    const config = parseConfigOrThrow({ ...raw, ...rawFromObject({ admin: { ...admin, sshPublicKeys: [key] } }) });
    return { userData: renderCloudInit(config), adminUser: config.admin.user };
}

function printInfo(info: VpsInfo, adminUser = "<admin>"): void {
    const kh = path.join(vpsDir(info.name), "known_hosts");
    fs.writeFileSync(kh, knownHostsLine(info) + "\n");
    process.stdout.write(JSON.stringify(info, null, 2) + "\n");
    const keyFlag = fs.existsSync(HARNESS_KEY) ? ` -i ${path.relative(process.cwd(), HARNESS_KEY)}` : "";
    progress(`try: ssh${keyFlag} -p ${info.sshPort} -o UserKnownHostsFile=${path.relative(process.cwd(), kh)} -o StrictHostKeyChecking=yes ${adminUser}@127.0.0.1`);
    progress(`http://127.0.0.1:${info.httpPort}  https://127.0.0.1:${info.httpsPort}  (ports 80/443 of the VPS)`);
}

function parseCli(args: string[]) {
    return parseArgs({
        args,
        allowPositionals: true,
        options: {
            name: { type: "string", default: "citadel-vps" },
            "ssh-port": { type: "string", default: "2222" },
            stack: { type: "string" },
            "public-key": { type: "string" },
            "user-data": { type: "string" },
            "keep-dockerd": { type: "boolean", default: false },
            help: { type: "boolean", short: "h", default: false },
        },
    });
}

async function main(): Promise<number> {
    let parsed: ReturnType<typeof parseCli>;
    try {
        parsed = parseCli(process.argv.slice(2));
    } catch (e) {
        process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
        return 2;
    }
    const { values, positionals } = parsed;
    const [command, ...rest] = positionals;
    if (values.help) {
        process.stdout.write(USAGE + "\n");
        return 0;
    }
    if (!command) {
        process.stderr.write(USAGE + "\n");
        return 2;
    }
    const name = values.name!;
    switch (command) {
        case "build": {
            await ensureDockerd();
            const r = await ensureVpsImage();
            progress(`${r.tag}: ${r.action} (${r.seconds} s)`);
            return 0;
        }
        case "up": {
            const sshPort = Number(values["ssh-port"]);
            if (!Number.isInteger(sshPort) || sshPort < 1 || sshPort > 65535) throw new Error(`--ssh-port: not a port: ${values["ssh-port"]}`);
            let userData: string;
            let adminUser: string | undefined;
            if (values["user-data"]) userData = fs.readFileSync(values["user-data"], "utf8");
            else {
                const stack = values.stack ?? (fs.existsSync(path.join(REPO_ROOT, "Pulumi.local.yaml")) ? "local" : "prod");
                progress(`user-data: rendered by the hcloud target's renderer from Pulumi.${stack}.yaml`);
                ({ userData, adminUser } = stackUserData(stack, values["public-key"] ?? harnessKey()));
            }
            await ensureDockerd();
            const img = await ensureVpsImage();
            progress(`${img.tag}: ${img.action}${img.action === "present" ? "" : ` (${img.seconds} s)`}`);
            printInfo(await startVps({ name, userData, sshPort }), adminUser);
            return 0;
        }
        case "down": {
            if (dockerReady()) await stopVps(name);
            else progress("no Docker engine answers; nothing to remove");
            if (dockerReady()) {
                // Only when nothing else is attached (later tests' containers may still use it).
                if (run("docker", ["network", "rm", LAB_NETWORK]).code === 0) progress(`removed network ${LAB_NETWORK}`);
            }
            if (!values["keep-dockerd"]) await stopDockerd({ onlyIfIdle: true });
            return 0;
        }
        case "status": {
            const ours = ourDockerdPid();
            if (!dockerReady()) {
                progress(`dockerd: not running${ours ? ` (ours, pid ${ours}, not answering; log ${DOCKERD_LOG})` : ""}`);
                return 1;
            }
            progress(`dockerd: running${ours ? ` (started by this harness, pid ${ours})` : " (not started by this harness)"}`);
            ensureCacheDir();
            const bk = baseKey();
            const vk = vpsKey(renderVpsSources(), bk);
            progress(`${BASE_IMAGE}: ${imageKey(BASE_IMAGE) === bk ? "current" : imageKey(BASE_IMAGE) ? "outdated" : "absent"}`);
            progress(`${VPS_IMAGE}: ${imageKey(VPS_IMAGE) === vk ? "current" : imageKey(VPS_IMAGE) ? "outdated" : "absent"}`);
            const info = vpsInfo(name);
            if (!info) {
                progress(`${name}: not running`);
                return 1;
            }
            progress(`${name}: running, ${info.address} on ${LAB_NETWORK}`);
            printInfo(info);
            return 0;
        }
        case "load": {
            if (rest.length === 0) throw new Error("load: name at least one image");
            await loadImages(name, rest);
            return 0;
        }
        default:
            process.stderr.write(`unknown command ${command}\n${USAGE}\n`);
            return 2;
    }
}

main().then(
    (code) => process.exit(code),
    (e: unknown) => {
        process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
        process.exit(1);
    },
);
