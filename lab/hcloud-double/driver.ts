// The machine driver of the Hetzner API double (machines.go): each server is a lab VPS (lab/vps/)
// booted by cloud-init from the server's own user_data, at the lab address the double gave it.
//
//   tsx lab/hcloud-double/driver.ts boot            {"name", "address", "network6"?, "userData"} on stdin
//   tsx lab/hcloud-double/driver.ts power NAME on|off|reboot [NETWORK6]
//   tsx lab/hcloud-double/driver.ts remove NAME [NETWORK6]
//
// NETWORK6 is the server's IPv6 /64: the VPS holds its ::1 on its lab interface (as a Hetzner server
// holds its /64's ::1 on eth0), and this machine, the lab's router, routes the /64 to the VPS's own
// lab address. Both are set again after every start: a restarted container has lost the address,
// and may have another lab address.
//
// CITADEL_HCLOUD_IMAGES (space-separated) are loaded into a new VPS's Docker engine after boot: the
// lab has no registry, so the stack's images come with the "image" the server is created from.
import { ensureDockerd } from "../vps/dockerd";
import { ensureVpsImage } from "../vps/image";
import { run, runOk } from "../vps/common";
import { LAB_NETWORK, labAddress6, loadImages, powerVps, rebootVps, startVps, stopVps } from "../vps/vps";

const must = (cmd: string, args: string[]): string => runOk(cmd, args, { timeout: 30_000 }).trim();

/** The server's /64 to the VPS: its ::1 on the VPS's lab interface, the route on this machine. */
function holdNetwork6(name: string, network6: string): void {
    const m = /^([0-9a-f:]+::)\/64$/.exec(network6);
    if (!m) throw new Error(`driver: ${network6} is not a /64 written as <prefix>::/64`);
    const lab6 = labAddress6(name);
    if (!lab6) throw new Error(`driver: ${name} has no IPv6 address on ${LAB_NETWORK}`);
    // The interface that holds the lab address (the container's side of the lab network).
    const dev = must("docker", ["exec", name, "ip", "-o", "-6", "addr", "show", "to", `${lab6}/128`]).split(/\s+/)[1];
    if (!dev) throw new Error(`driver: no interface of ${name} holds ${lab6}`);
    must("docker", ["exec", name, "ip", "-6", "addr", "replace", `${m[1]}1/64`, "dev", dev, "nodad"]);
    must("ip", ["-6", "route", "replace", network6, "via", lab6]);
}

/** The /64's route, only while it still goes to this VPS (another run's double may hold the /64 now). */
function dropNetwork6(network6: string, via: string): void {
    // Gone already is fine (a machine removed twice, a route never set).
    if (via) run("ip", ["-6", "route", "del", network6, "via", via], { timeout: 30_000 });
}

async function readStdin(): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8");
}

async function main(argv: string[]): Promise<void> {
    // power NAME OP [NETWORK6]; remove NAME [NETWORK6]
    const [cmd, name, ...rest] = argv;
    const [op, network6] = cmd === "remove" ? [undefined, rest[0]] : rest;
    switch (cmd) {
        case "boot": {
            const spec = JSON.parse(await readStdin()) as { name: string; address: string; network6?: string; userData: string };
            await ensureDockerd();
            await ensureVpsImage();
            // sshPort is unused with an address: nothing is published.
            const images = (process.env.CITADEL_HCLOUD_IMAGES ?? "").split(/\s+/).filter(Boolean);
            await startVps({ name: spec.name, userData: spec.userData, address: spec.address, sshPort: 0, seedImages: images });
            await loadImages(spec.name, images);
            if (spec.network6) holdNetwork6(spec.name, spec.network6);
            return;
        }
        case "power":
            if (op === "reboot") await rebootVps(name);
            else if (op === "on" || op === "off") await powerVps(name, op === "on");
            else throw new Error(`driver: power ${op}: want on, off or reboot`);
            if (network6 && op !== "off") holdNetwork6(name, network6);
            return;
        case "remove": {
            const via = network6 ? labAddress6(name) : "";
            try {
                await stopVps(name);
            } finally {
                if (network6) dropNetwork6(network6, via);
            }
            return;
        }
        default:
            throw new Error(`driver: unknown command ${cmd ?? "(none)"} (boot, power, remove)`);
    }
}

main(process.argv.slice(2)).then(
    () => process.exit(0),
    (e) => {
        process.stderr.write(`${(e as Error).message}\n`);
        process.exit(1);
    },
);
