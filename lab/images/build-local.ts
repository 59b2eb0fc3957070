// The container images the stack runs on the local VPS, built on this machine without Docker Hub:
//
//   citadel/postgres:15-local-2          images/postgres   Debian's postgresql-15, official-image entrypoint contract
//   citadel/redis:7-local              images/redis      Debian's redis-server 7.0, official-image entrypoint contract
//   citadel/demo-app:2-local           images/demo-app   the Go demo app (pgx, go-redis, golang-jwt) on scratch
//   citadel/caddy:2.11.9-ratelimit     images/caddy      Caddy + caddy-ratelimit from images/caddy/build.sh, lab/images/caddy.Dockerfile
//   citadel/sftp-target:1-local        images/sftp       the lab's backup target: Debian's OpenSSH, SFTP only, chrooted
//   citadel/prometheus:2.42-local, citadel/alertmanager:0.25-local, citadel/node-exporter:1.5-local,
//   citadel/blackbox-exporter:0.23-local     images/monitoring   Debian's prometheus* packages, the official images' entrypoints
//
// All but the demo app are FROM citadel/debian:12 (vps/image.ts, debootstrap; built here if missing)
// with packages from this machine's Debian archives (apt inside the build). Each image carries the
// hash of its inputs as the label org.citadel.inputs-sha256 and is rebuilt only when they change; a
// built image is also kept as a zstd `docker save` archive under .cache/images/ (gitignored), so a
// fresh engine (CI with a restored cache) loads it in seconds instead of rebuilding.
//
//   npx tsx lab/images/build-local.ts [--no-archive] [postgres|redis|demo-app|caddy ...]
//
// Progress goes to stderr ("[images] ..."), one line per image (tag, action, seconds, image ID) to stdout.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { CADDY_IMAGE_TAG } from "../../components/render/caddy";
import { REPO_ROOT, run, runLogged, seconds, tailFile, withCacheLock } from "../vps/common";
import { ensureDockerd } from "../vps/dockerd";
import { BASE_IMAGE, ensureBaseImage, renderVpsSources } from "../vps/image";

export const POSTGRES_LOCAL_IMAGE = "citadel/postgres:15-local-2";
export const REDIS_LOCAL_IMAGE = "citadel/redis:7-local";
export const DEMO_APP_LOCAL_IMAGE = "citadel/demo-app:2-local";
export const CADDY_LOCAL_IMAGE = CADDY_IMAGE_TAG;
/** The lab's off-site backup target (not loaded into the VPS: it runs beside it, lab/backup-target.ts). */
export const SFTP_TARGET_IMAGE = "citadel/sftp-target:1-local";
export const PROMETHEUS_LOCAL_IMAGE = "citadel/prometheus:2.42-local";
export const ALERTMANAGER_LOCAL_IMAGE = "citadel/alertmanager:0.25-local";
export const NODE_EXPORTER_LOCAL_IMAGE = "citadel/node-exporter:1.5-local";
export const BLACKBOX_LOCAL_IMAGE = "citadel/blackbox-exporter:0.23-local";
/** The Go toolchain the hcloud lab stack builds the gateway with on its server (gateway.buildFrom.goImage). */
export const GOLANG_LOCAL_IMAGE = "citadel/golang:1-lab";
/** The demo app's port and healthcheck, for the stack's app config (citadel:apps[]). */
export const DEMO_APP_PORT = 8080;
export const DEMO_APP_HEALTHCHECK = ["/app/demo-app", "healthcheck"];

export const IMAGES_DIR = __dirname;
/** The product's Caddy module (the image the gateway builds); the lab packs the binary it builds. */
const CADDY_SOURCE_DIR = path.join(REPO_ROOT, "images", "caddy");
/** The lab's Dockerfile for that binary on the local Debian base (no Go toolchain image needed). */
const LOCAL_CADDY_DOCKERFILE = path.join(__dirname, "caddy.Dockerfile");
/** Build contexts, archives and the build log. Gitignored (.cache/). */
export const IMAGES_CACHE_DIR = path.join(REPO_ROOT, ".cache", "images");
export const IMAGES_BUILD_LOG = path.join(IMAGES_CACHE_DIR, "build.log");
const BIN_DIR = path.join(REPO_ROOT, ".cache", "bin");
const INPUTS_LABEL = "org.citadel.inputs-sha256";
const BASE_KEY_LABEL = "org.citadel.cache-key";
/** Bump when this file changes how images are built in a way the hashed inputs do not show. */
const RECIPE_VERSION = "1";

export type LocalImageName = "postgres" | "redis" | "demo-app" | "caddy" | "golang" | "sftp" | "prometheus" | "alertmanager" | "node-exporter" | "blackbox-exporter";

interface ContextFile {
    /** Where the file comes from (repo file, or a binary under .cache/bin). */
    source: string;
    /** Its name in the build context. */
    name: string;
    mode: number;
}

interface ImageSpec {
    name: LocalImageName;
    tag: string;
    /** The files whose content decides the image (hashed; repo sources, never built binaries). */
    inputs: string[];
    /** Compiles what the build context needs from the host (e.g. a Go binary) and lists the context. */
    prepare: () => Promise<ContextFile[]>;
    /** FROM citadel/debian:12 with apt inside the build (the base and the apt sources are inputs). */
    debianBased: boolean;
    /** Extra --build-arg values (hashed with the inputs). */
    buildArgs?: Record<string, string>;
}

const rel = (...p: string[]) => path.join(IMAGES_DIR, ...p);

/** Go sources of the demo app, built static (CGO off) and path-free into .cache/bin/demo-app. */
async function buildDemoApp(): Promise<string> {
    const out = path.join(BIN_DIR, "demo-app");
    fs.mkdirSync(BIN_DIR, { recursive: true });
    const tmp = `${out}.tmp-${process.pid}`;
    const code = await runLogged(
        "nice",
        ["-n", "10", "env", "CGO_ENABLED=0", "go", "build", "-mod=readonly", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", tmp, "."],
        IMAGES_BUILD_LOG,
        10 * 60_000,
        { cwd: rel("demo-app") },
    );
    if (code !== 0) {
        fs.rmSync(tmp, { force: true });
        throw new Error(`citadel: images: go build of the demo app failed (exit ${code}; is Go installed?); see ${IMAGES_BUILD_LOG}. Last lines:\n${tailFile(IMAGES_BUILD_LOG, 15)}`);
    }
    fs.renameSync(tmp, out);
    return out;
}

/** This machine's Go version (the golang image's toolchain). */
function goVersion(): string {
    const r = run("go", ["env", "GOVERSION"], { timeout: 30_000 });
    if (r.code !== 0) throw new Error("citadel: images: go is not installed (the golang image packs this machine's Go)");
    return r.stdout.trim();
}

/**
 * The golang image's two archives under .cache/bin, packed by lab/images/golang/pack.sh: this
 * machine's GOROOT, and a module cache pruned to what the Caddy build compiles.
 */
async function packGolang(): Promise<{ goTar: string; modTar: string }> {
    fs.mkdirSync(BIN_DIR, { recursive: true });
    const goTar = path.join(BIN_DIR, "go.tar");
    const modTar = path.join(BIN_DIR, "gomodcache.tar");
    const code = await runLogged("bash", [rel("golang", "pack.sh"), goTar, modTar], IMAGES_BUILD_LOG, 20 * 60_000, { cwd: CADDY_SOURCE_DIR });
    if (code !== 0) throw new Error(`citadel: images: packing Go for the golang image failed (exit ${code}); see ${IMAGES_BUILD_LOG}. Last lines:\n${tailFile(IMAGES_BUILD_LOG, 15)}`);
    return { goTar, modTar };
}

/** images/caddy/build.sh: builds (or finds up to date) .cache/bin/caddy with the rate-limit module. */
async function buildCaddy(): Promise<string> {
    const code = await runLogged("bash", [path.join(CADDY_SOURCE_DIR, "build.sh")], IMAGES_BUILD_LOG, 30 * 60_000);
    if (code !== 0) throw new Error(`citadel: images: images/caddy/build.sh failed (exit ${code}); see ${IMAGES_BUILD_LOG}. Last lines:\n${tailFile(IMAGES_BUILD_LOG, 15)}`);
    return path.join(BIN_DIR, "caddy");
}

export const IMAGE_SPECS: readonly ImageSpec[] = [
    {
        name: "postgres",
        tag: POSTGRES_LOCAL_IMAGE,
        inputs: [rel("postgres", "Dockerfile"), rel("postgres", "docker-entrypoint.sh")],
        debianBased: true,
        prepare: async () => [
            { source: rel("postgres", "Dockerfile"), name: "Dockerfile", mode: 0o644 },
            { source: rel("postgres", "docker-entrypoint.sh"), name: "docker-entrypoint.sh", mode: 0o755 },
        ],
    },
    {
        name: "redis",
        tag: REDIS_LOCAL_IMAGE,
        inputs: [rel("redis", "Dockerfile"), rel("redis", "docker-entrypoint.sh")],
        debianBased: true,
        prepare: async () => [
            { source: rel("redis", "Dockerfile"), name: "Dockerfile", mode: 0o644 },
            { source: rel("redis", "docker-entrypoint.sh"), name: "docker-entrypoint.sh", mode: 0o755 },
        ],
    },
    {
        name: "demo-app",
        tag: DEMO_APP_LOCAL_IMAGE,
        inputs: [rel("demo-app", "Dockerfile"), rel("demo-app", "go.mod"), rel("demo-app", "go.sum"), rel("demo-app", "main.go")],
        debianBased: false,
        prepare: async () => [
            { source: rel("demo-app", "Dockerfile"), name: "Dockerfile", mode: 0o644 },
            { source: await buildDemoApp(), name: "demo-app", mode: 0o755 },
        ],
    },
    {
        name: "sftp",
        tag: SFTP_TARGET_IMAGE,
        inputs: [rel("sftp", "Dockerfile"), rel("sftp", "sshd_config"), rel("sftp", "entrypoint.sh")],
        debianBased: true,
        prepare: async () => [
            { source: rel("sftp", "Dockerfile"), name: "Dockerfile", mode: 0o644 },
            { source: rel("sftp", "sshd_config"), name: "sshd_config", mode: 0o644 },
            { source: rel("sftp", "entrypoint.sh"), name: "entrypoint.sh", mode: 0o755 },
        ],
    },
    {
        name: "caddy",
        tag: CADDY_LOCAL_IMAGE,
        inputs: [LOCAL_CADDY_DOCKERFILE, ...["go.mod", "go.sum", "main.go"].map((f) => path.join(CADDY_SOURCE_DIR, f))],
        debianBased: true,
        prepare: async () => [
            { source: LOCAL_CADDY_DOCKERFILE, name: "Dockerfile", mode: 0o644 },
            { source: await buildCaddy(), name: "caddy", mode: 0o755 },
        ],
    },
    {
        name: "golang",
        tag: GOLANG_LOCAL_IMAGE,
        inputs: [rel("golang", "Dockerfile"), rel("golang", "pack.sh"), ...["go.mod", "go.sum", "main.go"].map((f) => path.join(CADDY_SOURCE_DIR, f))],
        debianBased: true,
        get buildArgs() {
            return { GO_VERSION: goVersion() };
        },
        prepare: async () => {
            const { goTar, modTar } = await packGolang();
            return [
                { source: rel("golang", "Dockerfile"), name: "Dockerfile", mode: 0o644 },
                { source: goTar, name: "go.tar", mode: 0o644 },
                { source: modTar, name: "gomodcache.tar", mode: 0o644 },
                ...["go.mod", "go.sum", "main.go"].map((f) => ({ source: path.join(CADDY_SOURCE_DIR, f), name: `caddy-src/${f}`, mode: 0o644 })),
            ];
        },
    },
    ...(
        [
            ["prometheus", PROMETHEUS_LOCAL_IMAGE, "prometheus", "/usr/bin/prometheus", "/bin/prometheus"],
            ["alertmanager", ALERTMANAGER_LOCAL_IMAGE, "prometheus-alertmanager", "/usr/bin/prometheus-alertmanager", "/bin/alertmanager"],
            ["node-exporter", NODE_EXPORTER_LOCAL_IMAGE, "prometheus-node-exporter", "/usr/bin/prometheus-node-exporter", "/bin/node_exporter"],
            ["blackbox-exporter", BLACKBOX_LOCAL_IMAGE, "prometheus-blackbox-exporter", "/usr/bin/prometheus-blackbox-exporter", "/bin/blackbox_exporter"],
        ] as const
    ).map(
        ([name, tag, PACKAGE, BINARY, LINK]): ImageSpec => ({
            name,
            tag,
            inputs: [rel("monitoring", "Dockerfile")],
            debianBased: true,
            buildArgs: { PACKAGE, BINARY, LINK },
            prepare: async () => [{ source: rel("monitoring", "Dockerfile"), name: "Dockerfile", mode: 0o644 }],
        }),
    ),
];

export interface LocalImageResult {
    name: LocalImageName;
    tag: string;
    /** present: already in the engine with these inputs; loaded: from the cache archive; built: from scratch. */
    action: "present" | "loaded" | "built";
    seconds: number;
    imageId: string;
    inputsSha256: string;
}

function progress(msg: string): void {
    process.stderr.write(`[images] ${msg}\n`);
}

const sha256 = (data: string | Buffer): string => createHash("sha256").update(data).digest("hex");

function inspect(tag: string, format: string): string | undefined {
    const r = run("docker", ["image", "inspect", "--format", format, tag], { timeout: 30_000 });
    return r.code === 0 ? r.stdout.trim() : undefined;
}

/**
 * The base's identity: its cache key (vps/image.ts labels it with the debootstrap recipe), which
 * stays the same when the same rootfs is re-imported into a fresh engine; its image ID otherwise.
 */
function baseIdentity(): string {
    const key = inspect(BASE_IMAGE, `{{index .Config.Labels "${BASE_KEY_LABEL}"}}`);
    if (key) return `key:${key}`;
    const id = inspect(BASE_IMAGE, "{{.Id}}");
    if (!id) throw new Error(`citadel: images: ${BASE_IMAGE} is not in the engine`);
    return `id:${id}`;
}

/** Hash of everything that decides the image: recipe, its source files, and for Debian-based ones the base and the apt sources. */
export function inputsHash(spec: ImageSpec, base: string, aptSources: string): string {
    const h = createHash("sha256").update(JSON.stringify({ RECIPE_VERSION, tag: spec.tag, ...(spec.buildArgs ? { buildArgs: spec.buildArgs } : {}) }));
    if (spec.debianBased) h.update(JSON.stringify({ base, aptSources }));
    for (const f of spec.inputs) h.update(`\0${path.relative(IMAGES_DIR, f)}\0${sha256(fs.readFileSync(f))}`);
    return h.digest("hex");
}

const archivePath = (spec: ImageSpec, key: string) => path.join(IMAGES_CACHE_DIR, `${spec.name}-${key.slice(0, 16)}.tar.zst`);

function pruneArchives(spec: ImageSpec, keep: string): void {
    for (const n of fs.readdirSync(IMAGES_CACHE_DIR)) {
        if (n.startsWith(`${spec.name}-`) && n.endsWith(".tar.zst") && path.join(IMAGES_CACHE_DIR, n) !== keep) fs.rmSync(path.join(IMAGES_CACHE_DIR, n), { force: true });
    }
}

async function loadArchive(spec: ImageSpec, key: string): Promise<boolean> {
    const archive = archivePath(spec, key);
    if (!fs.existsSync(archive)) return false;
    progress(`${spec.tag}: loading ${path.relative(REPO_ROOT, archive)}`);
    const code = await runLogged("bash", ["-c", 'set -o pipefail; zstd -dc -- "$1" | docker load', "load", archive], IMAGES_BUILD_LOG, 10 * 60_000);
    if (code === 0 && inspect(spec.tag, `{{index .Config.Labels "${INPUTS_LABEL}"}}`) === key) return true;
    progress(`${spec.tag}: the archive did not load (see ${IMAGES_BUILD_LOG}); rebuilding`);
    fs.rmSync(archive, { force: true });
    return false;
}

async function saveArchive(spec: ImageSpec, key: string): Promise<void> {
    const archive = archivePath(spec, key);
    const tmp = `${archive}.tmp-${process.pid}`;
    const t0 = Date.now();
    const code = await runLogged("bash", ["-c", 'set -o pipefail; docker save "$1" | zstd -q -T0 -3 -o "$2"', "save", spec.tag, tmp], IMAGES_BUILD_LOG, 10 * 60_000);
    if (code !== 0) {
        fs.rmSync(tmp, { force: true });
        progress(`${spec.tag}: warning: could not cache the image as an archive (see ${IMAGES_BUILD_LOG}); the engine still has it`);
        return;
    }
    fs.renameSync(tmp, archive);
    pruneArchives(spec, archive);
    progress(`${spec.tag}: cached as ${path.relative(REPO_ROOT, archive)} (${Math.round(fs.statSync(archive).size / 2 ** 20)} MiB, ${seconds(t0)} s)`);
}

/** Deletes a build context of ours (plain files, strictly inside IMAGES_CACHE_DIR). */
function removeContext(dir: string): void {
    if (!path.resolve(dir).startsWith(path.resolve(IMAGES_CACHE_DIR) + path.sep)) throw new Error(`citadel: images: refusing to remove ${dir}`);
    fs.rmSync(dir, { recursive: true, force: true });
}

async function build(spec: ImageSpec, key: string, aptSources: string): Promise<void> {
    const ctx = path.join(IMAGES_CACHE_DIR, `ctx-${spec.name}-${process.pid}`);
    removeContext(ctx);
    fs.mkdirSync(ctx, { recursive: true });
    try {
        for (const f of await spec.prepare()) {
            const dest = path.join(ctx, f.name);
            fs.mkdirSync(path.dirname(dest), { recursive: true });
            fs.copyFileSync(f.source, dest);
            fs.chmodSync(dest, f.mode);
        }
        const args = ["-n", "10", "env", "DOCKER_BUILDKIT=0", "docker", "build", "--label", `${INPUTS_LABEL}=${key}`, "-t", spec.tag];
        if (spec.debianBased) args.push("--build-arg", `BASE=${BASE_IMAGE}`, "--build-arg", `APT_SOURCES=${aptSources}`);
        for (const [k, v] of Object.entries(spec.buildArgs ?? {})) args.push("--build-arg", `${k}=${v}`);
        // The classic builder: this machine's docker CLI has no buildx plugin, and nothing here needs BuildKit.
        const code = await runLogged("nice", [...args, ctx], IMAGES_BUILD_LOG, 30 * 60_000);
        if (code !== 0) throw new Error(`citadel: images: docker build of ${spec.tag} failed (exit ${code}); see ${IMAGES_BUILD_LOG}. Last lines:\n${tailFile(IMAGES_BUILD_LOG, 20)}`);
    } finally {
        removeContext(ctx);
    }
}

/** Removes an image the tag no longer points at, unless something still uses it (then Docker refuses: fine). */
function removeIfDangling(oldId: string | undefined, tag: string): void {
    if (!oldId || inspect(tag, "{{.Id}}") === oldId) return;
    run("docker", ["image", "rm", oldId], { timeout: 60_000 });
}

async function ensureImage(spec: ImageSpec, base: string, aptSources: string, archive: boolean): Promise<LocalImageResult> {
    const t0 = Date.now();
    const key = inputsHash(spec, base, aptSources);
    const done = (action: LocalImageResult["action"]): LocalImageResult => ({
        name: spec.name,
        tag: spec.tag,
        action,
        seconds: seconds(t0),
        imageId: inspect(spec.tag, "{{.Id}}") ?? "",
        inputsSha256: key,
    });
    if (inspect(spec.tag, `{{index .Config.Labels "${INPUTS_LABEL}"}}`) === key) return done("present");
    const oldId = inspect(spec.tag, "{{.Id}}");
    if (await loadArchive(spec, key)) {
        removeIfDangling(oldId, spec.tag);
        return done("loaded");
    }
    progress(`${spec.tag}: building (log: ${path.relative(REPO_ROOT, IMAGES_BUILD_LOG)})`);
    await build(spec, key, aptSources);
    removeIfDangling(oldId, spec.tag);
    const result = done("built");
    progress(`${spec.tag}: built in ${result.seconds} s`);
    if (archive) await saveArchive(spec, key);
    return result;
}

export interface BuildOptions {
    /** Only these images (default: all). */
    only?: LocalImageName[];
    /** Keep built images as archives under .cache/images/ (default true). */
    archive?: boolean;
}

/**
 * Makes sure the local images are in the engine with their current inputs: present, loaded from the
 * cache archive, or built. Needs a running Docker engine (see vps/dockerd.ts `ensureDockerd`); builds
 * citadel/debian:12 first if it is missing.
 */
export async function buildLocalImages(opts: BuildOptions = {}): Promise<LocalImageResult[]> {
    const specs = IMAGE_SPECS.filter((s) => !opts.only || opts.only.includes(s.name));
    fs.mkdirSync(IMAGES_CACHE_DIR, { recursive: true });
    return withCacheLock("local-images", async () => {
        if (specs.some((s) => s.debianBased)) await ensureBaseImage();
        const base = specs.some((s) => s.debianBased) ? baseIdentity() : "";
        // This machine's Debian archives (with -updates and -security), as the VPS image uses them.
        const aptSources = renderVpsSources();
        const results: LocalImageResult[] = [];
        for (const spec of specs) results.push(await ensureImage(spec, base, aptSources, opts.archive ?? true));
        return results;
    });
}

async function main(): Promise<number> {
    const names = IMAGE_SPECS.map((s) => s.name);
    const usage = [
        `usage: npm run images:build -- [--no-archive] [${names.join("|")} ...]   (or: npx tsx lab/images/build-local.ts ...)`,
        "Builds the lab's stack images (all, or the named ones) into this machine's Docker engine, cached by their inputs.",
        "  --no-archive  do not save the built images as archives in the cache",
        "  -h, --help    show this help",
    ].join("\n");
    let parsed;
    try {
        parsed = parseArgs({ allowPositionals: true, options: { "no-archive": { type: "boolean" }, help: { type: "boolean", short: "h" } } });
    } catch (e) {
        process.stderr.write(`citadel: images: ${(e as Error).message}\n${usage}\n`);
        return 2;
    }
    const { values, positionals } = parsed;
    if (values.help) {
        process.stdout.write(`${usage}\n`);
        return 0;
    }
    const unknown = positionals.filter((p) => !names.includes(p as LocalImageName));
    if (unknown.length) {
        process.stderr.write(`citadel: images: unknown image ${unknown.join(", ")} (known: ${names.join(", ")})\n${usage}\n`);
        return 2;
    }
    const t0 = Date.now();
    const engine = await ensureDockerd();
    if (engine.started) progress(`started dockerd (pid ${engine.pid}); it keeps running (stop it with: npm run vps:down)`);
    const results = await buildLocalImages({ only: positionals.length ? (positionals as LocalImageName[]) : undefined, archive: !values["no-archive"] });
    for (const r of results) process.stdout.write(`${r.tag.padEnd(34)} ${r.action.padEnd(8)} ${String(r.seconds).padStart(6)} s  ${r.imageId}\n`);
    progress(`done in ${seconds(t0)} s`);
    return 0;
}

if (require.main === module) {
    main().then(
        (code) => process.exit(code),
        (e: unknown) => {
            process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
            process.exit(1);
        },
    );
}
