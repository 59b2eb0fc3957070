// The machine driver of the Hetzner API double (machines.go): each server is a lab VPS (lab/vps/)
// booted by cloud-init from the server's own user_data, at the lab address the double gave it.
//
//   tsx lab/hcloud-double/driver.ts boot            {"name", "address", "userData"} on stdin
//   tsx lab/hcloud-double/driver.ts power NAME on|off|reboot
//   tsx lab/hcloud-double/driver.ts remove NAME
//
// CITADEL_HCLOUD_IMAGES (space-separated) are loaded into a new VPS's Docker engine after boot: the
// lab has no registry, so the stack's images come with the "image" the server is created from.
import { ensureDockerd } from "../vps/dockerd";
import { ensureVpsImage } from "../vps/image";
import { loadImages, powerVps, rebootVps, startVps, stopVps } from "../vps/vps";

async function readStdin(): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8");
}

async function main(argv: string[]): Promise<void> {
    const [cmd, name, op] = argv;
    switch (cmd) {
        case "boot": {
            const spec = JSON.parse(await readStdin()) as { name: string; address: string; userData: string };
            await ensureDockerd();
            await ensureVpsImage();
            // sshPort is unused with an address: nothing is published.
            const images = (process.env.CITADEL_HCLOUD_IMAGES ?? "").split(/\s+/).filter(Boolean);
            await startVps({ name: spec.name, userData: spec.userData, address: spec.address, sshPort: 0, seedImages: images });
            await loadImages(spec.name, images);
            return;
        }
        case "power":
            if (op === "reboot") await rebootVps(name);
            else if (op === "on" || op === "off") await powerVps(name, op === "on");
            else throw new Error(`driver: power ${op}: want on, off or reboot`);
            return;
        case "remove":
            await stopVps(name);
            return;
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
