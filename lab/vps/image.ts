// Images of the local VPS, built without Docker Hub and cached under .cache/vps/:
//   citadel/debian:12  Debian 12 minbase rootfs from debootstrap (kept as a zstd tarball in the cache)
//   citadel/vps:12     FROM it: systemd, sshd, cloud-init, Docker (vps/image/Dockerfile; kept as a
//                      zstd-compressed `docker save` archive, so a fresh engine, e.g. in CI with a
//                      restored cache, loads it in seconds instead of rebuilding)
// Each is keyed by a hash of its inputs and rebuilt only when they change.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { CACHE_DIR, progress, removeCacheTree, run, runLogged, runOk, seconds, tailFile, withCacheLock } from "./common";

export const BASE_IMAGE = "citadel/debian:12";
export const VPS_IMAGE = "citadel/vps:12";
export const SUITE = "bookworm";
export const IMAGE_DIR = path.join(__dirname, "image");
export const BUILD_LOG = path.join(CACHE_DIR, "build.log");
const KEY_LABEL = "org.citadel.cache-key";
/** Bump to force a rebuild when the recipe in this file changes in a way the hashed inputs miss. */
const RECIPE_VERSION = "1";
const DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg";

export interface ImageResult {
    tag: string;
    key: string;
    /** present: already in the engine; loaded: from the cache archive; built: from scratch. */
    action: "present" | "loaded" | "built";
    seconds: number;
    /** For citadel/vps:12: how its base image was obtained. */
    base?: ImageResult;
}

// ---------------------------------------------------------------------------------------------
// The machine's Debian archive (never hard-coded: read from this machine's apt configuration)

export interface AptSource {
    uris: string[];
    suites: string[];
    components: string[];
    signedBy?: string;
}

/** Parses one-line (`deb [opts] URI SUITE COMPONENTS...`) sources. */
export function parseOneLineSources(text: string): AptSource[] {
    const out: AptSource[] = [];
    for (const raw of text.split("\n")) {
        const line = raw.replace(/#.*/, "").trim();
        const m = /^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
        if (!m) continue;
        const signed = /signed-by=(\S+)/.exec(m[1] ?? "")?.[1];
        out.push({ uris: [m[2]], suites: [m[3]], components: m[4].split(/\s+/).filter(Boolean), signedBy: signed });
    }
    return out;
}

/** Parses deb822 (`Types: deb` / `URIs:` / `Suites:` ...) stanzas; skips `Enabled: no` and non-deb ones. */
export function parseDeb822Sources(text: string): AptSource[] {
    const out: AptSource[] = [];
    const lines = text.split("\n").filter((l) => !l.startsWith("#"));
    for (const stanza of lines.join("\n").split(/\n\s*\n/)) {
        const fields: Record<string, string> = {};
        let last = "";
        for (const l of stanza.split("\n")) {
            if (/^\s/.test(l) && last) fields[last] += " " + l.trim();
            else {
                const m = /^([A-Za-z-]+):\s*(.*)$/.exec(l);
                if (m) fields[(last = m[1].toLowerCase())] = m[2].trim();
            }
        }
        const words = (k: string) => (fields[k] ?? "").split(/\s+/).filter(Boolean);
        if (!words("types").includes("deb") || (fields.enabled ?? "yes").toLowerCase() === "no") continue;
        out.push({ uris: words("uris"), suites: words("suites"), components: words("components"), signedBy: fields["signed-by"] });
    }
    return out;
}

/** All apt sources of this machine (sources.list and sources.list.d/*.list|*.sources). */
export function hostAptSources(etcApt = "/etc/apt"): AptSource[] {
    const out: AptSource[] = [];
    const main = path.join(etcApt, "sources.list");
    if (fs.existsSync(main)) out.push(...parseOneLineSources(fs.readFileSync(main, "utf8")));
    const dir = path.join(etcApt, "sources.list.d");
    const names = fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
    for (const n of names) {
        const text = fs.readFileSync(path.join(dir, n), "utf8");
        if (n.endsWith(".list")) out.push(...parseOneLineSources(text));
        else if (n.endsWith(".sources")) out.push(...parseDeb822Sources(text));
    }
    return out;
}

/** Debian's own archives among them (signed by Debian's keyring, or unsigned-by and suite bookworm*). */
export function debianSources(all: AptSource[] = hostAptSources()): AptSource[] {
    return all.filter(
        (s) =>
            s.suites.length > 0 &&
            s.suites.every((x) => x === SUITE || x.startsWith(`${SUITE}-`) || x.startsWith(`${SUITE}/`)) &&
            (s.signedBy === undefined || s.signedBy === DEBIAN_KEYRING) &&
            s.uris.every((u) => /^https?:\/\//.test(u)),
    );
}

/** The mirror debootstrap uses: the first Debian source carrying `bookworm main`. */
export function debianMirror(sources: AptSource[] = debianSources()): string {
    const s = sources.find((x) => x.suites.includes(SUITE) && x.components.includes("main"));
    if (!s) throw new Error(`citadel: vps: no "${SUITE} main" Debian source in /etc/apt/sources.list{,.d/*}; cannot pick a mirror for debootstrap`);
    return s.uris[0];
}

/** The VPS's apt sources (deb822): the same Debian archives and suites as this machine. */
export function renderVpsSources(sources: AptSource[] = debianSources()): string {
    const stanzas = sources.map((s) =>
        [`Types: deb`, `URIs: ${s.uris.join(" ")}`, `Suites: ${s.suites.join(" ")}`, `Components: ${s.components.join(" ")}`, `Signed-By: ${DEBIAN_KEYRING}`].join("\n"),
    );
    return `# Written by the Citadel local VPS image build: this build machine's Debian archives.\n${stanzas.join("\n\n")}\n`;
}

// ---------------------------------------------------------------------------------------------
// Cache keys

const sha256 = (s: string | Buffer): string => createHash("sha256").update(s).digest("hex");

export function baseKey(mirror = debianMirror()): string {
    return sha256(JSON.stringify({ RECIPE_VERSION, suite: SUITE, variant: "minbase", mirror })).slice(0, 16);
}

/** Hash of every file in vps/image/ (Dockerfile and the files it copies), the sources and the base. */
export function vpsKey(sources = renderVpsSources(), base = baseKey()): string {
    const h = createHash("sha256").update(JSON.stringify({ RECIPE_VERSION, base, sources }));
    for (const n of fs.readdirSync(IMAGE_DIR).sort()) h.update(`\0${n}\0`).update(fs.readFileSync(path.join(IMAGE_DIR, n)));
    return h.digest("hex").slice(0, 16);
}

const baseTarball = (key: string) => path.join(CACHE_DIR, `debian-12-rootfs-${key}.tar.zst`);
const vpsArchive = (key: string) => path.join(CACHE_DIR, `vps-12-image-${key}.tar.zst`);

/** The cache-key label of a local image, or undefined when the image is absent. */
export function imageKey(tag: string): string | undefined {
    const r = run("docker", ["image", "inspect", "--format", `{{index .Config.Labels "${KEY_LABEL}"}}`, tag], { timeout: 30_000 });
    return r.code === 0 ? r.stdout.trim() : undefined;
}

/** Deletes older cache files of one kind (a changed key makes them garbage). */
function pruneCache(prefix: string, keep: string): void {
    for (const n of fs.readdirSync(CACHE_DIR)) {
        if (n.startsWith(prefix) && path.join(CACHE_DIR, n) !== keep) fs.rmSync(path.join(CACHE_DIR, n), { force: true });
    }
}

// ---------------------------------------------------------------------------------------------
// citadel/debian:12

export async function ensureBaseImage(): Promise<ImageResult> {
    return withCacheLock("base-image", buildOrLoadBase);
}

async function buildOrLoadBase(): Promise<ImageResult> {
    const mirror = debianMirror();
    const key = baseKey(mirror);
    const t0 = Date.now();
    if (imageKey(BASE_IMAGE) === key) return { tag: BASE_IMAGE, key, action: "present", seconds: 0 };

    const tarball = baseTarball(key);
    let action: ImageResult["action"] = "loaded";
    if (!fs.existsSync(tarball)) {
        action = "built";
        const rootfs = path.join(CACHE_DIR, "rootfs.tmp");
        removeCacheTree(rootfs);
        progress(`debootstrap --variant=minbase ${SUITE} from ${mirror} (log: ${BUILD_LOG}; ~1 min)`);
        const code = await runLogged("nice", ["-n", "10", "debootstrap", "--variant=minbase", SUITE, rootfs, mirror], BUILD_LOG, 15 * 60_000);
        if (code !== 0) throw new Error(`citadel: vps: debootstrap failed (exit ${code}); see ${BUILD_LOG}. Last lines:\n${tailFile(BUILD_LOG, 15)}`);
        // The downloaded .debs and package lists are not part of a base image.
        for (const d of ["var/cache/apt/archives", "var/lib/apt/lists"]) {
            for (const n of fs.readdirSync(path.join(rootfs, d))) {
                if (n !== "partial" && n !== "lock") fs.rmSync(path.join(rootfs, d, n), { recursive: true, force: true });
            }
        }
        const tmp = `${tarball}.tmp`;
        runOk("bash", ["-c", 'set -o pipefail; tar --numeric-owner --xattrs -C "$1" -cf - . | zstd -q -T0 -3 -o "$2"', "tar", rootfs, tmp], { timeout: 10 * 60_000 });
        fs.renameSync(tmp, tarball);
        removeCacheTree(rootfs);
        pruneCache("debian-12-rootfs-", tarball);
        progress(`debootstrap done (${seconds(t0)} s), rootfs cached at ${tarball}`);
    }
    const t1 = Date.now();
    runOk(
        "bash",
        ["-c", 'set -o pipefail; zstd -dc -- "$1" | docker import --change "LABEL $2" --change \'CMD ["/bin/bash"]\' - "$3"', "import", tarball, `${KEY_LABEL}=${key}`, BASE_IMAGE],
        { timeout: 10 * 60_000 },
    );
    progress(`imported ${BASE_IMAGE} (${seconds(t1)} s)`);
    return { tag: BASE_IMAGE, key, action, seconds: seconds(t0) };
}

// ---------------------------------------------------------------------------------------------
// citadel/vps:12

/** citadel/vps:12 (and its base) in the engine: present, loaded from the cache, or built. */
export async function ensureVpsImage(): Promise<ImageResult> {
    const t0 = Date.now();
    // The base first, always: other local images (the stack's) build FROM it too, and in a fresh
    // engine it is a quick import from the cached tarball.
    const base = await ensureBaseImage();
    return withCacheLock("vps-image", () => buildOrLoadVps(t0, base));
}

async function buildOrLoadVps(t0: number, base: ImageResult): Promise<ImageResult> {
    const sources = renderVpsSources();
    const key = vpsKey(sources, base.key);
    if (imageKey(VPS_IMAGE) === key) return { tag: VPS_IMAGE, key, action: "present", seconds: seconds(t0), base };

    const archive = vpsArchive(key);
    if (fs.existsSync(archive)) {
        progress(`loading ${VPS_IMAGE} from ${archive}`);
        const code = await runLogged("bash", ["-c", 'set -o pipefail; zstd -dc -- "$1" | docker load', "load", archive], BUILD_LOG, 10 * 60_000);
        if (code === 0 && imageKey(VPS_IMAGE) === key) {
            progress(`loaded ${VPS_IMAGE} (${seconds(t0)} s)`);
            return { tag: VPS_IMAGE, key, action: "loaded", seconds: seconds(t0), base };
        }
        progress(`the cached archive did not load (see ${BUILD_LOG}); rebuilding`);
        fs.rmSync(archive, { force: true });
    }

    const ctx = path.join(CACHE_DIR, "build-context");
    removeCacheTree(ctx);
    fs.mkdirSync(ctx, { recursive: true });
    for (const n of fs.readdirSync(IMAGE_DIR)) fs.copyFileSync(path.join(IMAGE_DIR, n), path.join(ctx, n));
    fs.writeFileSync(path.join(ctx, "debian.sources"), sources);

    const t1 = Date.now();
    progress(`building ${VPS_IMAGE} (apt inside the build; log: ${BUILD_LOG}; ~2 min cold)`);
    // The classic builder: this docker CLI has no buildx plugin, and the build needs nothing more.
    const code = await runLogged(
        "nice",
        ["-n", "10", "env", "DOCKER_BUILDKIT=0", "docker", "build", "--label", `${KEY_LABEL}=${key}`, "-t", VPS_IMAGE, ctx],
        BUILD_LOG,
        20 * 60_000,
    );
    removeCacheTree(ctx);
    if (code !== 0) throw new Error(`citadel: vps: docker build of ${VPS_IMAGE} failed (exit ${code}); see ${BUILD_LOG}. Last lines:\n${tailFile(BUILD_LOG, 20)}`);
    const buildSeconds = seconds(t1);
    progress(`built ${VPS_IMAGE} (${buildSeconds} s)`);

    const t2 = Date.now();
    const tmp = `${archive}.tmp`;
    const saved = await runLogged("bash", ["-c", 'set -o pipefail; docker save "$1" | zstd -q -T0 -3 -o "$2"', "save", VPS_IMAGE, tmp], BUILD_LOG, 10 * 60_000);
    if (saved === 0) {
        fs.renameSync(tmp, archive);
        pruneCache("vps-12-image-", archive);
        progress(`cached ${VPS_IMAGE} at ${archive} (${Math.round(fs.statSync(archive).size / 2 ** 20)} MiB, ${seconds(t2)} s)`);
    } else {
        fs.rmSync(tmp, { force: true });
        progress(`warning: could not cache ${VPS_IMAGE} as an archive (see ${BUILD_LOG}); the engine still has it`);
    }
    return { tag: VPS_IMAGE, key, action: "built", seconds: seconds(t0), base };
}
