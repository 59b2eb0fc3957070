// The VPS's own Docker engine starts with the stack's images already in its store: a new VPS's
// /var/lib/docker (a directory on this machine, see startVps) is a copy of a seed store made once per
// set of image IDs, instead of a `docker save | docker load` of every image on every boot (68 s on a
// quiet 2-core machine, 3 minutes under load, paid by every e2e file and the bench). loadImages still
// compares every image ID afterwards and loads whatever differs: the seed only saves time, it never
// decides what the VPS runs.
//
// The seed is made by the VPS image's own dockerd (same version, same overlay2 driver) in a
// throwaway container with no network, its store on this machine; dockerd is stopped cleanly before
// the store is copied. Seeds live in MACHINE_CACHE_DIR, keyed by the image IDs: a fresh clone on a
// warm machine (CI) reuses the one another clone made (77 s for the Hetzner lab's set).
//
// A VPS's copy hard-links the image layers' files (overlay2/<layer>/diff: overlayfs only ever reads
// them as lower layers; a container's writes go to its own upper dir) and copies everything else
// (dockerd's metadata and bolt databases, which it rewrites in place). 18 s of copying per VPS
// becomes about one. Removing the VPS unlinks its names only; the seed keeps its own. Should a
// future daemon setting rewrite layer files in place (userns-remap chowns a *separate* store, so not
// that one), copy those with cp -a too.
//
// Lab harness only: a real server pulls its images from a registry.
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { CACHE_DIR, MACHINE_CACHE_DIR, progress, removeCacheTree, run, runOk, seconds, sleep, withCacheLock } from "./common";
import { imageKey, VPS_IMAGE } from "./image";

const SEEDS_DIR = path.join(MACHINE_CACHE_DIR, "image-seeds");
/** Where seeds were kept before they moved to MACHINE_CACHE_DIR: removed on sight (gigabytes). */
const OLD_SEEDS_DIR = path.join(CACHE_DIR, "image-seeds");
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
 * Copies seed $1 into the empty store $2. cp -a keeps what overlay2 relies on (owners, modes, hard
 * links, whiteout devices, xattrs); -l makes every file a hard link, and then every file outside
 * the layers' diff trees gets a copy of its own (see the top of this file). A machine where the two
 * are on different filesystems gets a plain copy.
 */
const COPY_SEED = String.raw`set -euo pipefail
seed=$1 dst=$2
if ! cp -al -- "$seed/." "$dst" 2>/dev/null; then
  find "$dst" -mindepth 1 -delete
  exec cp -a -- "$seed/." "$dst"
fi
find "$dst" -path "$dst/overlay2/*/diff" -prune -o -type f -links +1 -print0 |
  while IFS= read -r -d '' f; do
    # A copy that fails must fail the whole copy: left hard-linked, dockerd's in-place writes to this
    # file would change the seed every later VPS starts from.
    cp -a -- "$f" "$f.citadel-copy" || exit 1
    mv -f -- "$f.citadel-copy" "$f" || exit 1
  done`;

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
    fs.mkdirSync(SEEDS_DIR, { recursive: true });
    if (fs.existsSync(OLD_SEEDS_DIR)) removeCacheTree(OLD_SEEDS_DIR);
    const drop = (dir: string) => removeCacheTree(dir, MACHINE_CACHE_DIR);
    // Built if missing and copied under the seed's own lock, so that another clone pruning it (below)
    // never removes it half-way through a copy.
    await withCacheLock(
        `image-seed-${key}`,
        async () => {
            if (!fs.existsSync(path.join(seed, COMPLETE))) {
                const tmp = `${seed}.tmp`;
                if (fs.existsSync(tmp)) drop(tmp);
                fs.mkdirSync(tmp);
                try {
                    await buildSeed(tmp, images);
                    fs.writeFileSync(path.join(tmp, COMPLETE), ids.join("\n") + "\n");
                    if (fs.existsSync(seed)) drop(seed);
                    fs.renameSync(tmp, seed);
                } catch (e) {
                    drop(tmp);
                    throw e;
                }
            }
            const t0 = Date.now();
            fs.mkdirSync(dockerDir, { recursive: true });
            runOk("bash", ["-c", COPY_SEED, "copy-seed", seed, dockerDir], { timeout: 10 * 60_000 });
            fs.rmSync(path.join(dockerDir, COMPLETE), { force: true });
            progress(`VPS image store copied from the seed (${seconds(t0)} s)`);
        },
        undefined,
        MACHINE_CACHE_DIR,
    );
    // Seeds of the same tags with older builds are dead weight: one per set of tags is kept. A seed
    // another process holds (a clone at another commit, copying from it) is left for a later run.
    for (const old of fs.readdirSync(SEEDS_DIR)) {
        if (old === key || !old.startsWith(`${tags}-`) || old.endsWith(".tmp") || old.endsWith(".lock")) continue;
        await withCacheLock(`image-seed-${old}`, async () => drop(path.join(SEEDS_DIR, old)), 0, MACHINE_CACHE_DIR).catch(() => undefined);
    }
    return true;
}
