// A throwaway Debian 12 "VPS" on this machine: a systemd container booted by cloud-init (NoCloud)
// with given user-data, reachable over real SSH on 127.0.0.1, with its own Docker engine.
// Flags and workarounds: /work/shared/TESTBED.md, "Docker and the local VPS".
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import YAML from "yaml";
import { CACHE_DIR, ensureCacheDir, progress, removeCacheTree, run, runOk, seconds, tail } from "./common";
import { VPS_IMAGE, imageKey } from "./image";
import { seedImageStore } from "./image-seed";

/** The user-defined network of the VPS; a second ("attacker") container on it reaches the VPS at `address`. */
export const LAB_NETWORK = "citadel-lab";
/**
 * A fixed subnet, so a stack can name it: SSH from the operator's machine reaches the VPS through
 * Docker's port proxy, i.e. from LAB_GATEWAY, which the local stack lists in citadel:admin.sourceIps.
 */
export const LAB_SUBNET = "172.30.99.0/24";
export const LAB_GATEWAY = "172.30.99.1";
/**
 * The lab network's IPv6 (a unique local /64): each VPS gets an address in it as a Hetzner server gets
 * its public IPv6, so the stack's IPv6 serving, filtering and bans are tested over IPv6 too. This
 * machine reaches it as LAB_GATEWAY6, straight over the bridge (no NAT).
 */
export const LAB_SUBNET6 = "fd17:c1ad:99::/64";
export const LAB_GATEWAY6 = "fd17:c1ad:99::1";
/**
 * /48s the Hetzner API double routes to its servers (server N gets its 4th group's /64, and holds
 * its ::1, as a Hetzner server holds its /64's): one per double, so two doubles never route the
 * same /64. Outside LAB_SUBNET6 and the stack's own ULA.
 */
export const LAB_SERVERS6 = { perimeter: "fd17:c1ad:9a::/48", e2e: "fd17:c1ad:9b::/48" } as const;
const VPS_LABEL = "org.citadel.vps";
const BOOT_TIMEOUT_MS = 90_000;

export interface VpsOptions {
    /** Container name and hostname (lowercase letters, digits, dashes). */
    name: string;
    /** cloud-init user-data (`#cloud-config` ...), e.g. what the hcloud target renders. */
    userData: string;
    /** Host port on 127.0.0.1 for the VPS's sshd (port 22 inside). Ignored with `address`. */
    sshPort: number;
    /** Host ports on 127.0.0.1 for 80/443 inside; a free port is picked when absent. */
    httpPort?: number;
    httpsPort?: number;
    /**
     * Namespaced kernel parameters (net.*, ...) set when the container is created (`--sysctl`).
     * /proc/sys is read-only inside the VPS, and must stay so: kernel.* is not namespaced, so a
     * writable /proc/sys (--security-opt systempaths=unconfined) would let the stack's sysctl step
     * retune THIS machine's kernel.
     */
    sysctls?: Record<string, string>;
    /**
     * A fixed address on LAB_NETWORK, reached there directly like a server at its public IPv4 (the
     * Hetzner API double's servers): nothing is published on 127.0.0.1, and sshd is checked from
     * inside, so a perimeter in front of the address (lab/hcloud-double) is never bypassed.
     */
    address?: string;
    /**
     * Images the VPS's engine should start with (its store copied from a seed, lab/vps/image-seed.ts):
     * a time saving only, so not part of what decides whether a running VPS is reused. loadImages
     * still checks each one.
     */
    seedImages?: string[];
}

export interface VpsInfo {
    name: string;
    containerId: string;
    /** Its IPv4 address on LAB_NETWORK. */
    address: string;
    /** Its IPv6 address on LAB_NETWORK (in LAB_SUBNET6). */
    address6: string;
    /** 127.0.0.1 (published ports), or the lab address of a VPS started with `address`. */
    sshHost: string;
    sshPort: number;
    httpPort: number;
    httpsPort: number;
    /** The VPS's sshd ed25519 host key ("ssh-ed25519 AAAA..."), read out of band via `docker exec`: pin it. */
    hostKey: string;
    /** From `docker run` to cloud-init done and sshd answering. */
    bootSeconds: number;
}

/** The known_hosts line that pins the VPS's host key for its published SSH port. */
export function knownHostsLine(info: Pick<VpsInfo, "sshHost" | "sshPort" | "hostKey">): string {
    return `[${info.sshHost}]:${info.sshPort} ${info.hostKey}`;
}

export const vpsDir = (name: string): string => path.join(CACHE_DIR, checkName(name));
const infoFile = (name: string) => path.join(vpsDir(name), "info.json");

function checkName(name: string): string {
    if (!/^[a-z0-9][a-z0-9-]{0,40}$/.test(name)) throw new Error(`citadel: vps: bad VPS name ${JSON.stringify(name)} (lowercase letters, digits, dashes)`);
    return name;
}

function dockerExec(name: string, args: string[], timeout = 30_000) {
    return run("docker", ["exec", name, ...args], { timeout });
}

/** The container's state ("running", "exited", ...) or undefined when there is none. */
export function containerState(name: string): string | undefined {
    const r = run("docker", ["inspect", "--format", "{{.State.Status}}", checkName(name)], { timeout: 30_000 });
    return r.code === 0 ? r.stdout.trim() : undefined;
}

export function ensureLabNetwork(): void {
    const have = run("docker", ["network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", LAB_NETWORK], { timeout: 30_000 });
    const wanted = [LAB_SUBNET, LAB_SUBNET6].sort().join(" ");
    if (have.code === 0 && have.stdout.trim().split(/\s+/).sort().join(" ") === wanted) return;
    // An older lab network with other subnets (before IPv6): replace it. Docker refuses while containers
    // use it: the lab's own VPSes (by label) are removed first; anything else on it stops the replacement.
    if (have.code === 0) {
        // Every container on it is the lab's (VPSes, probes, the backup target): each is made again
        // on the new network by whoever needs it next, so they go, not just their attachment.
        const attached = run("docker", ["network", "inspect", "--format", "{{range .Containers}}{{.Name}} {{end}}", LAB_NETWORK], { timeout: 30_000 }).stdout.trim().split(/\s+/).filter(Boolean);
        for (const c of attached) {
            progress(`removing ${c}: ${LAB_NETWORK} is replaced by one with subnets ${LAB_SUBNET} and ${LAB_SUBNET6}`);
            const gone = run("docker", ["rm", "-f", c], { timeout: 60_000 });
            if (gone.code !== 0) progress(`could not remove ${c}: ${gone.stderr.trim()}`);
        }
        const rm = run("docker", ["network", "rm", LAB_NETWORK], { timeout: 30_000 });
        if (rm.code !== 0) throw new Error(`citadel: vps: ${LAB_NETWORK} has subnet ${have.stdout.trim()}, not ${LAB_SUBNET}, and cannot be replaced while in use: ${rm.stderr.trim()}`);
    }
    const r = run("docker", ["network", "create", "--driver", "bridge", "--subnet", LAB_SUBNET, "--gateway", LAB_GATEWAY, "--ipv6", "--subnet", LAB_SUBNET6, "--gateway", LAB_GATEWAY6, "--label", `${VPS_LABEL}=1`, LAB_NETWORK], { timeout: 30_000 });
    // Another process may have created it in between.
    if (r.code !== 0 && run("docker", ["network", "inspect", LAB_NETWORK]).code !== 0) throw new Error(`citadel: vps: cannot create network ${LAB_NETWORK}: ${r.stderr}`);
}

/** True when something on 127.0.0.1:port speaks SSH (docker's port proxy accepts before sshd is up). */
export function sshBanner(port: number, host = "127.0.0.1", timeoutMs = 2_000): Promise<boolean> {
    return new Promise((resolve) => {
        const sock = net.connect({ host, port });
        let buf = "";
        const done = (ok: boolean) => {
            sock.destroy();
            resolve(ok);
        };
        sock.setTimeout(timeoutMs, () => done(false));
        sock.on("data", (d) => {
            buf += d.toString("latin1");
            if (buf.includes("\n")) done(buf.startsWith("SSH-2.0-"));
        });
        sock.on("error", () => done(false));
        sock.on("close", () => done(buf.startsWith("SSH-2.0-")));
    });
}

function hostPort(name: string, inner: number): number {
    const out = runOk("docker", ["port", name, `${inner}/tcp`]);
    const m = /^127\.0\.0\.1:(\d+)$/m.exec(out);
    if (!m) throw new Error(`citadel: vps: port ${inner} of ${name} is not published on 127.0.0.1 only: ${out.trim()}`);
    return Number(m[1]);
}

/** A container's settings on LAB_NETWORK, for `docker inspect --format`. */
const LAB_SETTINGS = `(index .NetworkSettings.Networks "${LAB_NETWORK}")`;

function inspectInfo(name: string): Pick<VpsInfo, "containerId" | "address" | "address6"> {
    const out = runOk("docker", ["inspect", "--format", `{{.Id}} {{${LAB_SETTINGS}.IPAddress}} {{${LAB_SETTINGS}.GlobalIPv6Address}}`, name]).trim();
    const [containerId, address, address6] = out.split(" ");
    if (!containerId || !address || !address6) throw new Error(`citadel: vps: ${name} has no IPv4 and IPv6 address on ${LAB_NETWORK}: ${out}`);
    return { containerId, address, address6 };
}

/** A container's IPv6 address on LAB_NETWORK ("" when it has none, or is gone). */
export function labAddress6(name: string): string {
    return run("docker", ["inspect", "--format", `{{${LAB_SETTINGS}.GlobalIPv6Address}}`, name], { timeout: 30_000 }).stdout.trim();
}

function readHostKey(name: string): string | undefined {
    const r = dockerExec(name, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]);
    const m = /^(ssh-ed25519 [A-Za-z0-9+/=]+)/.exec(r.stdout.trim());
    return r.code === 0 && m ? m[1] : undefined;
}

function bootDiagnostics(name: string): string {
    const parts = [
        `--- cloud-init status --long\n${dockerExec(name, ["cloud-init", "status", "--long"]).stdout}`,
        `--- failed units\n${dockerExec(name, ["systemctl", "--failed", "--no-legend", "--plain"]).stdout}`,
        `--- /var/log/cloud-init-output.log (tail)\n${tail(dockerExec(name, ["cat", "/var/log/cloud-init-output.log"]).stdout, 25)}`,
        `--- ssh.service\n${tail(dockerExec(name, ["journalctl", "-u", "ssh.service", "--no-pager", "-n", "15"]).stdout, 15)}`,
    ];
    return parts.join("\n");
}

/** The info of a running VPS (written by startVps), or undefined. */
export function vpsInfo(name: string): VpsInfo | undefined {
    if (containerState(name) !== "running") return undefined;
    try {
        const info = JSON.parse(fs.readFileSync(infoFile(name), "utf8")) as VpsInfo;
        return info.containerId === inspectInfo(name).containerId ? info : undefined;
    } catch {
        return undefined;
    }
}

/**
 * Starts the VPS and waits (bounded) until cloud-init is done and sshd answers with its host key.
 * Idempotent: a running VPS of that name booted from the same user-data and ports is reused;
 * anything else of that name is replaced.
 */
export async function startVps(opts: VpsOptions): Promise<VpsInfo> {
    const name = checkName(opts.name);
    const dir = vpsDir(name);
    const seedDir = path.join(dir, "seed");
    // Everything that shapes the VPS: a running one is reused only when all of it is the same.
    const wanted = JSON.stringify({ image: imageKey(VPS_IMAGE), network: [LAB_SUBNET, LAB_SUBNET6], userData: opts.userData, sshPort: opts.sshPort, httpPort: opts.httpPort, httpsPort: opts.httpsPort, sysctls: opts.sysctls ?? {}, ...(opts.address ? { address: opts.address } : {}) });
    const existing = vpsInfo(name);
    let previous = "";
    try {
        previous = fs.readFileSync(path.join(dir, "options.json"), "utf8");
    } catch {
        /* none */
    }
    if (existing && previous === wanted) {
        progress(`${name} is already running (ssh 127.0.0.1:${existing.sshPort}, ${existing.address} on ${LAB_NETWORK})`);
        return existing;
    }
    await stopVps(name);

    ensureCacheDir();
    ensureLabNetwork();
    const dockerDir = path.join(dir, "docker");
    fs.mkdirSync(seedDir, { recursive: true });
    if (opts.seedImages) await seedImageStore(dockerDir, opts.seedImages);
    fs.mkdirSync(dockerDir, { recursive: true });
    fs.writeFileSync(path.join(seedDir, "user-data"), opts.userData);
    // A fresh instance-id per start: cloud-init runs its per-instance modules (users, keys) again.
    const metaData = { "instance-id": `citadel-${name}-${randomBytes(4).toString("hex")}`, "local-hostname": name };
    fs.writeFileSync(path.join(seedDir, "meta-data"), YAML.stringify(metaData));
    fs.writeFileSync(path.join(dir, "options.json"), wanted);

    const port = (p: number | undefined) => (p === undefined ? "" : String(p));
    const args = [
        "run", "--detach", "--name", name, "--hostname", name,
        "--label", `${VPS_LABEL}=1`,
        "--network", LAB_NETWORK,
        // systemd as PID 1 without --privileged, which fails on these machines (no CAP_SYS_RESOURCE).
        "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
        "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
        "--cgroupns=host", "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
        "--tmpfs", "/run", "--tmpfs", "/run/lock",
        ...Object.entries(opts.sysctls ?? {}).flatMap(([k, v]) => ["--sysctl", `${k}=${v}`]),
        // The inner engine's storage on the host's filesystem: overlay2 on the container's overlay fails.
        "--volume", `${dockerDir}:/var/lib/docker`,
        "--volume", `${seedDir}:/var/lib/cloud/seed/nocloud:ro`,
        ...(opts.address
            ? ["--ip", opts.address]
            : [
                  // Loopback only: nothing of the VPS is exposed beyond this machine.
                  "--publish", `127.0.0.1:${opts.sshPort}:22`,
                  "--publish", `127.0.0.1:${port(opts.httpPort)}:80`,
                  "--publish", `127.0.0.1:${port(opts.httpsPort)}:443`,
              ]),
        VPS_IMAGE, "/sbin/init",
    ];
    const t0 = Date.now();
    progress(`starting ${name} from ${VPS_IMAGE} (ssh on ${opts.address ? `${opts.address}:22` : `127.0.0.1:${opts.sshPort}`})`);
    runOk("docker", args, { timeout: 60_000 });

    const info = await waitBooted(name, t0);
    fs.writeFileSync(infoFile(name), JSON.stringify(info, null, 2) + "\n");
    progress(`${name} is up: cloud-init done, sshd answering (${info.bootSeconds} s); address ${info.address} on ${LAB_NETWORK}`);
    return info;
}

async function waitBooted(name: string, t0: number): Promise<VpsInfo> {
    const deadline = t0 + BOOT_TIMEOUT_MS;
    const left = () => Math.max(1_000, deadline - Date.now());
    const fail = (why: string) => new Error(`citadel: vps: ${name}: ${why}\n${bootDiagnostics(name)}`);

    // cloud-init's units only exist once systemd runs them; `status --wait` waits through "not run"
    // and "running" and returns when it finished (or at once when cloud-init is disabled).
    let status = "";
    while (Date.now() < deadline) {
        if (containerState(name) !== "running") throw new Error(`citadel: vps: ${name} stopped while booting: ${tail(run("docker", ["logs", name]).stderr, 20)}`);
        const r = dockerExec(name, ["cloud-init", "status", "--wait"], left());
        status = (/status:\s*(\S+)/.exec(r.stdout)?.[1] ?? "").trim();
        if (status && status !== "running" && status !== "not") break;
        await new Promise((res) => setTimeout(res, 500));
    }
    if (status !== "done") throw fail(`cloud-init did not finish cleanly (status: ${status || "timeout"})`);

    let hostKey: string | undefined;
    const published = runOk("docker", ["port", name]).trim() !== "";
    while (Date.now() < deadline) {
        hostKey ??= readHostKey(name);
        if (hostKey && !published) {
            // Reached at its lab address only: sshd is asked from inside (bash's /dev/tcp).
            const r = dockerExec(name, ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/22 && timeout 2 head -c 8 <&3"], 10_000);
            if (r.stdout.startsWith("SSH-2.0-")) {
                const { address } = inspectInfo(name);
                return { name, ...inspectInfo(name), sshHost: address, sshPort: 22, httpPort: 80, httpsPort: 443, hostKey, bootSeconds: seconds(t0) };
            }
        } else if (hostKey) {
            const sshPort = hostPort(name, 22);
            if (await sshBanner(sshPort)) {
                return {
                    name,
                    ...inspectInfo(name),
                    sshHost: "127.0.0.1",
                    sshPort,
                    httpPort: hostPort(name, 80),
                    httpsPort: hostPort(name, 443),
                    hostKey,
                    bootSeconds: seconds(t0),
                };
            }
        }
        await new Promise((res) => setTimeout(res, 250));
    }
    throw fail(hostKey ? "sshd does not answer on its published port" : "no sshd ed25519 host key after cloud-init");
}

/**
 * Reboots the VPS as a power cycle would: `docker restart` stops every process (systemd, sshd, the
 * inner Docker engine and its containers) and boots /sbin/init again from the same disk. /run is a
 * fresh tmpfs, so only what the host enables at boot comes back. Waits (bounded) for sshd again.
 */
export async function rebootVps(name: string): Promise<VpsInfo> {
    checkName(name);
    const t0 = Date.now();
    progress(`rebooting ${name}`);
    runOk("docker", ["restart", "--time", "20", name], { timeout: 90_000 });
    const info = await waitBooted(name, t0);
    fs.writeFileSync(infoFile(name), JSON.stringify(info, null, 2) + "\n");
    progress(`${name} is back (${info.bootSeconds} s); address ${info.address} on ${LAB_NETWORK}`);
    return info;
}

/** Powers the VPS off (`docker stop`: systemd shuts down) or on again (boots from the same disk, waits for sshd). */
export async function powerVps(name: string, on: boolean): Promise<void> {
    checkName(name);
    const t0 = Date.now();
    progress(`powering ${name} ${on ? "on" : "off"}`);
    if (!on) {
        runOk("docker", ["stop", "--time", "20", name], { timeout: 90_000 });
        return;
    }
    runOk("docker", ["start", name], { timeout: 60_000 });
    fs.writeFileSync(infoFile(name), JSON.stringify(await waitBooted(name, t0), null, 2) + "\n");
}

/** Removes the VPS container and its directory (seed, inner Docker storage). No-op when absent. */
export async function stopVps(name: string): Promise<void> {
    checkName(name);
    if (containerState(name) !== undefined) {
        const inner = innerContainerIds(name);
        progress(`removing ${name}`);
        runOk("docker", ["rm", "--force", "--volumes", name], { timeout: 120_000 });
        removeInnerCgroups(inner);
    }
    // The inner dockerd's files are root-owned; removeCacheTree only deletes under .cache/vps/ and
    // refuses while anything is mounted there.
    removeCacheTree(vpsDir(name));
}

/** Full IDs of the containers of the VPS's own engine (none when it is not running). */
function innerContainerIds(name: string): string[] {
    if (containerState(name) !== "running") return [];
    const r = dockerExec(name, ["sh", "-c", "systemctl is-active --quiet docker.service && docker ps --all --quiet --no-trunc"], 20_000);
    return r.code === 0 ? r.stdout.split("\n").filter((id) => /^[0-9a-f]{64}$/.test(id)) : [];
}

/**
 * With --cgroupns=host the inner engine creates its containers' cgroups in the HOST hierarchy
 * (/sys/fs/cgroup/<controller>/docker/<id>, beside this machine's own containers). Killing the VPS
 * kills their processes (its PID namespace ends) but nobody removes those cgroups: rmdir them.
 * Only the IDs the inner engine reported, and rmdir only removes an empty cgroup.
 */
function removeInnerCgroups(ids: string[]): void {
    if (ids.length === 0 || !fs.existsSync("/sys/fs/cgroup")) return;
    const roots = ["/sys/fs/cgroup", ...fs.readdirSync("/sys/fs/cgroup").map((c) => path.join("/sys/fs/cgroup", c))];
    for (const root of roots) {
        for (const id of ids) {
            for (const dir of [path.join(root, "docker", id), path.join(root, "system.slice", `docker-${id}.scope`)]) {
                try {
                    fs.rmdirSync(dir);
                } catch {
                    /* absent, or not empty: leave it */
                }
            }
        }
    }
}

/** Starts the VPS's own Docker engine (installed, not started at boot) and waits until it answers. */
export async function startInnerDocker(name: string): Promise<void> {
    const r = dockerExec(name, ["systemctl", "start", "docker.service"], 90_000);
    if (r.code !== 0) throw new Error(`citadel: vps: docker.service does not start in ${name}: ${r.stderr}\n${dockerExec(name, ["journalctl", "-u", "docker.service", "--no-pager", "-n", "20"]).stdout}`);
    const end = Date.now() + 60_000;
    while (Date.now() < end) {
        if (dockerExec(name, ["docker", "info", "--format", "{{.ServerVersion}}"]).code === 0) return;
        await new Promise((res) => setTimeout(res, 500));
    }
    throw new Error(`citadel: vps: the Docker engine in ${name} does not answer`);
}

/** Copies images from this machine's engine into the VPS's engine (`docker save | docker exec -i VPS docker load`). */
export async function loadImages(name: string, images: string[]): Promise<void> {
    checkName(name);
    if (images.length === 0) return;
    await startInnerDocker(name);
    const t0 = Date.now();
    // Only what the VPS lacks or has in another build (same tag, different image ID).
    const missing = images.filter((img) => {
        const local = run("docker", ["image", "inspect", "--format", "{{.Id}}", img], { timeout: 30_000 }).stdout.trim();
        const inVps = run("docker", ["exec", name, "docker", "image", "inspect", "--format", "{{.Id}}", img], { timeout: 30_000 }).stdout.trim();
        return !local || local !== inVps;
    });
    if (missing.length === 0) {
        progress(`${name} already has ${images.join(", ")}`);
        return;
    }
    progress(`loading ${missing.length} image(s) into ${name}: ${missing.join(", ")}`);
    runOk("bash", ["-c", 'set -euo pipefail; vps=$1; shift; docker save -- "$@" | docker exec -i "$vps" docker load', "load", name, ...missing], { timeout: 15 * 60_000 });
    progress(`loaded into ${name} (${seconds(t0)} s)`);
}
