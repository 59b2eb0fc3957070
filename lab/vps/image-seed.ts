// The VPS's own Docker engine starts with the stack's images already in its store: a new VPS's
// /var/lib/docker (a directory on this machine, see startVps) is a copy of a seed store made once per
// set of image IDs, instead of a `docker save | docker load` of every image on every boot (68 s on a
// quiet 2-core machine, 3 minutes under load, paid by every e2e file and the bench). loadImages still
// compares every image ID afterwards and loads whatever differs: the seed only saves time, it never
// decides what the VPS runs.
//
// The seed is made by the VPS image's own dockerd (same version, same overlay2 driver) in a
// throwaway container with no network, its store on this machine; dockerd is stopped cleanly before
// the store is copied. Lab harness only: a real server pulls its images from a registry.
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { CACHE_DIR, ensureCacheDir, progress, removeCacheTree, run, runOk, seconds, sleep, withCacheLock } from "./common";
import { imageKey, VPS_IMAGE } from "./image";

const SEEDS_DIR = path.join(CACHE_DIR, "image-seeds");
/** Written last: a seed without it is an interrupted build and is never copied. */
const COMPLETE = ".citadel-seed-complete";

/** The image IDs on this machine's engine, or undefined when one is missing (then no seed). */
function imageIds(images: string[]): string[] | undefined {
    const ids: string[] = [];
    for (const img of [...images].sort()) {
        const r = run("docker", ["image", "inspect", "--format", "{{.Id}}", img], { timeout: 30_000 });
        if (r.code !== 0 || !r.stdout.trim()) return undefined;
        ids.push(`${img}@${r.stdout.trim()}`);
    }
    return ids;
}

/** Builds the seed store for these images in `dir` (a temp dir, renamed into place by the caller). */
async function buildSeed(dir: string, images: string[]): Promise<void> {
    const name = `citadel-image-seed-${randomBytes(4).toString("hex")}`;
    const t0 = Date.now();
    progress(`seeding an image store for new VPSes (${images.length} images, once per set of image IDs)`);
    runOk("docker", [
        "run", "--detach", "--name", name, "--network", "none",
        // What the VPS itself gets (startVps): enough for dockerd, never --privileged.
        "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
        "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
        "--cgroupns=host", "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
        "--tmpfs", "/run", "--volume", `${dir}:/var/lib/docker`,
        "--entrypoint", "dockerd", VPS_IMAGE, "--storage-driver", "overlay2", "--bridge", "none", "--iptables=false",
    ], { timeout: 60_000 });
    try {
        const end = Date.now() + 60_000;
        while (run("docker", ["exec", name, "docker", "info", "--format", "{{.Driver}}"], { timeout: 20_000 }).stdout.trim() !== "overlay2") {
            if (Date.now() > end) throw new Error(`citadel: vps: the seed's dockerd does not answer: ${run("docker", ["logs", "--tail", "20", name]).stderr}`);
            await sleep(500);
        }
        runOk("bash", ["-c", 'set -euo pipefail; c=$1; shift; docker save -- "$@" | docker exec -i "$c" docker load -q', "seed", name, ...images], { timeout: 15 * 60_000 });
        // A clean stop: dockerd flushes its metadata before the store is copied. SIGTERM itself: the
        // VPS image's stop signal is systemd's (SIGRTMIN+3), which dockerd ignores.
        runOk("docker", ["kill", "--signal", "TERM", name], { timeout: 30_000 });
        const exit = runOk("docker", ["wait", name], { timeout: 60_000 }).trim();
        if (exit !== "0") throw new Error(`citadel: vps: the seed's dockerd exited with ${exit}: ${run("docker", ["logs", "--tail", "20", name]).stderr}`);
        // Images only: each VPS's engine makes its own networks and its own engine ID.
        for (const own of ["network", "engine-id"]) run("rm", ["-rf", "--", path.join(dir, own)]);
    } finally {
        run("docker", ["rm", "--force", name], { timeout: 60_000 });
    }
    progress(`image store seeded (${seconds(t0)} s)`);
}

/**
 * Fills an empty `dockerDir` (a new VPS's /var/lib/docker) from the seed for `images`, building the
 * seed first when there is none. Returns false (and leaves dockerDir as it is) when it cannot help:
 * an image missing on this machine, or dockerDir not empty.
 */
export async function seedImageStore(dockerDir: string, images: string[]): Promise<boolean> {
    if (images.length === 0 || (fs.existsSync(dockerDir) && fs.readdirSync(dockerDir).length > 0)) return false;
    const ids = imageIds(images);
    if (!ids) return false;
    const hash = (v: unknown) => createHash("sha256").update(JSON.stringify(v)).digest("hex").slice(0, 12);
    // <which tags>-<which builds>: a rebuilt image replaces the seed of the same tags, never another set's.
    const tags = hash([...images].sort());
    const key = `${tags}-${hash({ vps: imageKey(VPS_IMAGE) ?? VPS_IMAGE, ids })}`;
    const seed = path.join(SEEDS_DIR, key);
    ensureCacheDir();
    fs.mkdirSync(SEEDS_DIR, { recursive: true });
    await withCacheLock(`image-seed-${key}`, async () => {
        if (fs.existsSync(path.join(seed, COMPLETE))) return;
        // Seeds of the same tags with older builds are dead weight: one per set of tags is kept.
        for (const old of fs.readdirSync(SEEDS_DIR)) if (old !== key && old.startsWith(`${tags}-`) && !old.endsWith(".tmp")) removeCacheTree(path.join(SEEDS_DIR, old));
        const tmp = `${seed}.tmp`;
        if (fs.existsSync(tmp)) removeCacheTree(tmp);
        fs.mkdirSync(tmp);
        try {
            await buildSeed(tmp, images);
            fs.writeFileSync(path.join(tmp, COMPLETE), ids.join("\n") + "\n");
            if (fs.existsSync(seed)) removeCacheTree(seed);
            fs.renameSync(tmp, seed);
        } catch (e) {
            removeCacheTree(tmp);
            throw e;
        }
    });
    const t0 = Date.now();
    fs.mkdirSync(dockerDir, { recursive: true });
    // cp -a keeps what overlay2 relies on: owners, modes, hard links, whiteout devices, xattrs.
    runOk("cp", ["-a", "--", `${seed}/.`, dockerDir], { timeout: 10 * 60_000 });
    fs.rmSync(path.join(dockerDir, COMPLETE), { force: true });
    progress(`VPS image store copied from the seed (${seconds(t0)} s)`);
    return true;
}
