// The local images (images/build-local.ts) run the way the stack runs them: the hardening of
// components/container.ts, the mounts, env and commands of components/data.ts / apps.ts /
// gateway.ts, the configuration rendered by the repo's own renderers, secrets as 0400 files owned
// by the consumer's uid. Everything runs on a Docker network that this test creates as --internal
// (no route out), and every container, volume and the network are removed at the end, even on failure.
//
// Needs Docker and root (secret files owned by other uids). In CI (CI=true) a missing engine fails
// the test; elsewhere it is skipped with the reason.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { parseConfigOrThrow, rawFromObject, StackConfig } from "../../components/config";
import { containerArgs } from "../../components/container";
import { hardened } from "../../components/posture/containers";
import { SECRETS_MOUNT, secretEnvName, type ContainerPosture } from "../../components/posture";
import type { HostConfig, Resources } from "../../components/config";

interface HardeningSpec {
    user: string;
    resources: Resources;
    tmpfs: string[];
    capAdd?: string[];
    logs: HostConfig["docker"];
}
import { CADDY_VERSION, CADDYFILE_CONTAINER_PATH, CADDY_LOG_DIR_CONTAINER, GATEWAY_UID, renderCaddyfile } from "../../components/render/caddy";
import {
    DATA_UID,
    POSTGRES_CONF_CONTAINER_DIR,
    POSTGRES_TLS_CONTAINER_DIR,
    postgresApps,
    postgresTlsFunction,
    redisAclUsers,
    renderPgHba,
    renderPostgresConf,
    renderPostgresRolesScript,
    REDIS_ACL_CONTAINER_PATH,
    REDIS_CONF_CONTAINER_DIR,
    renderPostgresValidator,
    renderRedisAcl,
    renderRedisConf,
    renderRedisValidator,
} from "../../components/render/data";
import { POSTGRES_CONTAINER, secretFilePath } from "../../components/posture/facts";
import {
    buildLocalImages,
    SFTP_TARGET_IMAGE,
    CADDY_LOCAL_IMAGE,
    DEMO_APP_HEALTHCHECK,
    DEMO_APP_LOCAL_IMAGE,
    DEMO_APP_PORT,
    POSTGRES_LOCAL_IMAGE,
    REDIS_LOCAL_IMAGE,
} from "../../lab/images/build-local";
import { stackImages } from "../../lab/local";
import { stopDockerd } from "../../lab/vps/dockerd";
import { BASE_IMAGE } from "../../lab/vps/image";
import { existingRaw } from "../fixtures";
import { loadStackConfig } from "../../components/stackfile";
import { requireDocker, requireRoot, run, RunResult, tmpDir, waitFor } from "../tools";

const sha256hex = (s: string): string => createHash("sha256").update(s).digest("hex");
/** Generated passwords are [A-Za-z0-9] (the postgres-roles step refuses anything else in a password file). */
const password = (): string => randomBytes(60).toString("base64").replace(/[^A-Za-z0-9]/g, "").slice(0, 40);
const GREETING = "hello from citadel demo";

function docker(args: string[], timeout = 120_000): RunResult {
    return run("docker", args, { timeout });
}

function dockerOk(args: string[], timeout = 120_000): string {
    const r = docker(args, timeout);
    assert.equal(r.code, 0, `docker ${args.join(" ")} failed:\n${r.stdout}${r.stderr}`);
    return r.stdout;
}

/** The plain values containerArgs returns for a plain container (Pulumi's Input types widen them). */
interface PlainHardening {
    user: string;
    readOnly: boolean;
    securityOpts: string[];
    capabilities: { drops: string[]; adds: string[] };
    memory: number;
    memorySwap: number;
    cpus: string;
    tmpfs: Record<string, string>;
    logDriver: string;
    logOpts: Record<string, string>;
    init: boolean;
    ipcMode: string;
}

/**
 * `docker run` flags for the stack's hardening (posture/containers.ts `hardened`, wired by
 * components/container.ts `containerArgs`), so this test follows any
 * change there. Not carried over: `restart: unless-stopped` (a crash must surface here, not loop).
 * Added: the pids limit the stack sets in its `container-limits` host step.
 */
function hardenedFlags(spec: HardeningSpec): string[] {
    const x = {
        ...hardened({ host: { docker: spec.logs } } as Parameters<typeof hardened>[0], spec.user, spec.resources, spec.tmpfs),
        capAdd: spec.capAdd ?? [],
        networks: [],
        publishedPorts: [],
        secretMounts: [],
        binds: [],
        volumes: [],
        env: [],
        labels: {},
        rotatesWith: [],
    } as unknown as ContainerPosture;
    const a = containerArgs(x, "image", { network: (n) => n, volume: (v) => v }, {}) as unknown as PlainHardening;
    const flags = ["--user", a.user, "--memory", `${a.memory}m`, "--memory-swap", `${a.memorySwap}m`, "--cpus", a.cpus, "--ipc", a.ipcMode];
    if (a.readOnly) flags.push("--read-only");
    if (a.init) flags.push("--init");
    for (const o of a.securityOpts) flags.push("--security-opt", o);
    for (const c of a.capabilities.drops) flags.push("--cap-drop", c);
    for (const c of a.capabilities.adds) flags.push("--cap-add", c);
    for (const [p, o] of Object.entries(a.tmpfs)) flags.push("--tmpfs", `${p}:${o}`);
    flags.push("--log-driver", a.logDriver);
    for (const [k, v] of Object.entries(a.logOpts)) flags.push("--log-opt", `${k}=${v}`);
    flags.push("--pids-limit", String(spec.resources.pids));
    return flags;
}

/** A 0400 file owned by uid:uid (how the stack's secretFile step installs secrets). */
function secretFile(file: string, content: string, uid: number): string {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
    fs.writeFileSync(file, content, { mode: 0o400 });
    fs.chownSync(file, uid, uid);
    fs.chmodSync(file, 0o400);
    return file;
}

function plainFile(file: string, content: string, mode = 0o644): string {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
    fs.writeFileSync(file, content);
    fs.chmodSync(file, mode);
    return file;
}

const bind = (src: string, dst: string, readOnly = true): string[] => ["--mount", `type=bind,source=${src},target=${dst}${readOnly ? ",readonly" : ""}`];

/**
 * The `docker` a host step finds first here (/usr/local/sbin leads the PATH of the host-script
 * library): the stack names its Postgres container `postgres`, this test names it otherwise, so
 * `exec ... postgres ...` goes to the real engine with that one argument swapped. Every argv is
 * logged; nothing but exec passes. (`\${` is bash's `${`.)
 */
const DOCKER_WRAPPER = `#!/bin/bash
set -euo pipefail
printf '%q ' "$@" >>"$WRAP_LOG"
echo >>"$WRAP_LOG"
[ "\${1:-}" = exec ] || { echo "docker-wrapper: only exec" >&2; exit 125; }
args=("$@")
i=1
while [ "$i" -lt "\${#args[@]}" ]; do
  case \${args[i]} in
  -u | --user) i=$((i + 2)) ;;
  -*) i=$((i + 1)) ;;
  *) break ;;
  esac
done
[ "\${args[i]:-}" = postgres ] || { echo "docker-wrapper: no such container \${args[i]:-}" >&2; exit 125; }
args[i]=$WRAP_CONTAINER
exec "$WRAP_DOCKER" "\${args[@]}"
`;

/**
 * Runs a rendered host step as `pulumi up` does (root, bash), in a mount namespace where /etc is an
 * overlay whose upper dir is base/etc (so the step reads the secret files this test put there, at the
 * stack's own paths, and writes nothing to this machine's /etc) and `docker` is DOCKER_WRAPPER.
 */
function runHostStep(base: string, script: string, container: string): RunResult & { argv: string } {
    for (const d of ["etc", "work", "bin"]) fs.mkdirSync(path.join(base, d), { recursive: true });
    fs.writeFileSync(path.join(base, "bin", "docker"), DOCKER_WRAPPER, { mode: 0o755 });
    const log = path.join(base, "docker.log");
    fs.writeFileSync(log, "");
    const file = path.join(base, "step.sh");
    fs.writeFileSync(file, script);
    const realDocker = run("bash", ["-c", "command -v docker"]).stdout.trim();
    assert.ok(realDocker, "no docker CLI");
    const setup =
        "set -e; mount --make-rprivate /; " +
        `mount -t overlay overlay -o lowerdir=/etc,upperdir=${base}/etc,workdir=${base}/work /etc; ` +
        `mount --bind ${base}/bin /usr/local/sbin; exec bash "$1"`;
    const r = run("unshare", ["--mount", "--fork", "--", "/bin/bash", "-c", setup, "host-step", file], {
        env: { ...process.env, WRAP_LOG: log, WRAP_CONTAINER: container, WRAP_DOCKER: realDocker },
        timeout: 180_000,
    });
    return { ...r, argv: fs.readFileSync(log, "utf8") };
}

/** The local stack's config with the gateway on its internal CA (nothing here can reach an ACME server). */
function localConfig(): StackConfig {
    const raw = existingRaw();
    const gateway = JSON.parse(raw["citadel:gateway"] ?? "{}") as Record<string, unknown>;
    return parseConfigOrThrow({ ...raw, ...rawFromObject({ gateway: { ...gateway, acmeCa: "internal" } }) });
}

/** Names and cleanup of everything this test creates in the engine. */
class Lab {
    readonly id = randomBytes(4).toString("hex");
    readonly network = `citadel-imgtest-${this.id}`;
    private readonly containers: string[] = [];
    private readonly volumes: string[] = [];

    name(what: string): string {
        const n = `citadel-imgtest-${this.id}-${what}`;
        this.containers.push(n);
        return n;
    }

    volume(what: string): string {
        const n = `citadel-imgtest-${this.id}-${what}`;
        dockerOk(["volume", "create", n]);
        this.volumes.push(n);
        return n;
    }

    createNetwork(): void {
        // --internal: no route out of the network (the test sends nothing beyond these containers).
        dockerOk(["network", "create", "--internal", this.network]);
    }

    cleanup(): string[] {
        const problems: string[] = [];
        for (const c of this.containers) {
            const r = docker(["rm", "--force", "--volumes", c], 60_000);
            if (r.code !== 0 && !/No such container/i.test(r.stderr)) problems.push(`container ${c}: ${r.stderr.trim()}`);
        }
        const net = docker(["network", "rm", this.network], 60_000);
        if (net.code !== 0 && !/not found|No such network/i.test(net.stderr)) problems.push(`network ${this.network}: ${net.stderr.trim()}`);
        for (const v of this.volumes) {
            const r = docker(["volume", "rm", v], 60_000);
            if (r.code !== 0 && !/No such volume/i.test(r.stderr)) problems.push(`volume ${v}: ${r.stderr.trim()}`);
        }
        return problems;
    }

    /** Runs a throwaway client container on the lab network (hardened like the stack's own). */
    client(image: string, spec: { user: string; resources?: Resources; mounts?: string[]; entrypoint?: string; env?: string[] }, cmd: string[], c: StackConfig): RunResult {
        const name = this.name(`client-${randomBytes(3).toString("hex")}`);
        const args = ["run", "--rm", "--name", name, "--network", this.network];
        args.push(...hardenedFlags({ user: spec.user, resources: spec.resources ?? { memory: "128m", cpus: 0.5, pids: 64 }, tmpfs: ["/tmp"], logs: c.host.docker }));
        for (const e of spec.env ?? []) args.push("--env", e);
        args.push(...(spec.mounts ?? []));
        if (spec.entrypoint) args.push("--entrypoint", spec.entrypoint);
        return docker([...args, image, ...cmd], 60_000);
    }
}

function state(container: string): { status: string; health: string } {
    const r = docker(["inspect", "--format", "{{.State.Status}}|{{if .State.Health}}{{.State.Health.Status}}{{end}}", container], 30_000);
    const [status = "", health = ""] = r.stdout.trim().split("|");
    return { status, health };
}

/** Waits (bounded) until Docker reports the container healthy; fails with its log when it exits or never gets there. */
async function waitHealthy(container: string, ms = 90_000): Promise<void> {
    let last = { status: "", health: "" };
    const ok = await waitFor(() => {
        last = state(container);
        return last.health === "healthy" || (last.status !== "running" && last.status !== "created");
    }, ms);
    if (!ok || last.health !== "healthy") {
        const logs = docker(["logs", "--tail", "60", container], 30_000);
        assert.fail(`${container} is ${last.status}/${last.health || "no health"} after ${ms / 1000} s:\n${logs.stdout}${logs.stderr}`);
    }
}

test("local images run the way the stack runs them", { timeout: 30 * 60_000 }, async (t) => {
    if (!requireRoot(t, "secret files owned by the containers' uids, a Docker engine")) return;
    const engine = await requireDocker(t);
    if (!engine) return;
    const built = await buildLocalImages();
    t.diagnostic(built.map((r) => `${r.tag}: ${r.action} in ${r.seconds} s (${r.imageId.slice(7, 19)})`).join("; "));
    // Every image the lab stacks' postures run (gateway, data, apps, monitoring), and the lab's SFTP
    // backup target (it runs beside the VPS: test/render/backup.test.ts uses it). Read from the
    // posture, so a service added to the stack without a local image fails here, not at `npm start`.
    // The hcloud stack builds its gateway on the server: it needs the build's toolchain image instead
    // (its base, citadel/debian:12, is the VPS image's own base: lab/vps/image.ts).
    const labImages = ["local", "hcloud"].flatMap((stack) => stackImages(loadStackConfig(stack))).filter((i) => i !== BASE_IMAGE);
    const blackbox = loadStackConfig("local").monitoring?.images.blackboxExporter; // runs only with sites on a public CA
    const wanted = [...new Set([...labImages, ...(blackbox ? [blackbox] : []), SFTP_TARGET_IMAGE])].sort();
    const c = localConfig();
    assert.deepEqual(built.map((r) => r.tag).sort(), wanted);
    for (const tag of [CADDY_LOCAL_IMAGE, DEMO_APP_LOCAL_IMAGE, POSTGRES_LOCAL_IMAGE, REDIS_LOCAL_IMAGE]) assert.ok(wanted.includes(tag), `${tag} is what the local stack runs`);

    const lab = new Lab();
    const dir = tmpDir("citadel-images-");
    t.after(async () => {
        const problems = lab.cleanup();
        fs.rmSync(dir, { recursive: true, force: true });
        // Only an engine this test started is stopped again, after its own containers are gone, and
        // only when nothing else runs on it.
        if (engine.started) await stopDockerd({ onlyIfIdle: true });
        assert.deepEqual(problems, [], "cleanup left something behind");
    });
    lab.createNetwork();

    await t.test("a second build with unchanged inputs rebuilds nothing", async () => {
        const again = await buildLocalImages({ archive: false });
        for (const r of again) assert.equal(r.action, "present", `${r.tag} was ${r.action} again`);
        for (const r of again) assert.equal(r.imageId, built.find((b) => b.tag === r.tag)?.imageId);
    });

    await t.test("image metadata: users, entrypoints, commands, working dirs", () => {
        const meta = (tag: string) => JSON.parse(dockerOk(["image", "inspect", "--format", "{{json .Config}}", tag])) as { User: string; Entrypoint: string[] | null; Cmd: string[] | null; WorkingDir: string; Env: string[] };
        const pg = meta(POSTGRES_LOCAL_IMAGE);
        assert.equal(pg.User, "999:999");
        assert.deepEqual(pg.Entrypoint, ["docker-entrypoint.sh"]);
        assert.deepEqual(pg.Cmd, ["postgres"]);
        assert.ok(pg.Env.includes("PGDATA=/var/lib/postgresql/data"));
        const redis = meta(REDIS_LOCAL_IMAGE);
        assert.equal(redis.User, "999:999");
        assert.equal(redis.WorkingDir, "/data");
        assert.deepEqual(redis.Cmd, ["redis-server"]);
        const app = meta(DEMO_APP_LOCAL_IMAGE);
        assert.equal(app.User, "10001:10001");
        const caddy = meta(CADDY_LOCAL_IMAGE);
        assert.equal(caddy.User, "10001:10001");
        assert.deepEqual(caddy.Entrypoint, ["caddy", "run", "--config", CADDYFILE_CONTAINER_PATH, "--adapter", "caddyfile"]);
        // The names behind uid 999 in the images, and the tools the stack calls in exec form.
        assert.match(dockerOk(["run", "--rm", "--network", "none", POSTGRES_LOCAL_IMAGE, "id"]), /^uid=999\(postgres\) gid=999\(postgres\)/);
        assert.match(dockerOk(["run", "--rm", "--network", "none", REDIS_LOCAL_IMAGE, "id"]), /^uid=999\(redis\) gid=999\(redis\)/);
        const tools = dockerOk(["run", "--rm", "--network", "none", "--entrypoint", "bash", POSTGRES_LOCAL_IMAGE, "-c", "command -v pg_isready psql initdb pg_ctl postgres"]);
        assert.equal(tools.trim().split("\n").length, 5, tools);
        assert.match(dockerOk(["run", "--rm", "--network", "none", "--entrypoint", "postgres", POSTGRES_LOCAL_IMAGE, "--version"]), /\(PostgreSQL\) 15\./);
        assert.match(dockerOk(["run", "--rm", "--network", "none", "--entrypoint", "redis-server", REDIS_LOCAL_IMAGE, "--version"]), /v=7\./);
    });

    // ---------------------------------------------------------------------------------------------
    // Postgres
    // ---------------------------------------------------------------------------------------------
    // The local stack's one app with its own role and database (postgres-roles makes them).
    const [pgApp, ...morePgApps] = postgresApps(c);
    assert.ok(pgApp && !morePgApps.length, "the local stack has one app with its own Postgres role");
    const pg = { name: lab.name("postgres"), superPw: password(), appPw: password() };
    const psqlClient = (conninfo: string, pw: string, sql: string): RunResult => {
        // The password reaches libpq through a 0400 passfile owned by the client's uid, never argv or env.
        const passfile = secretFile(path.join(dir, "client", `pgpass-${randomBytes(3).toString("hex")}`), `*:*:*:*:${pw}\n`, DATA_UID);
        return lab.client(POSTGRES_LOCAL_IMAGE, { user: `${DATA_UID}:${DATA_UID}`, entrypoint: "psql", mounts: bind(passfile, "/run/secrets/pgpass") }, [
            `${conninfo} passfile=/run/secrets/pgpass connect_timeout=10`, "--no-psqlrc", "--no-align", "--tuples-only", "--command", sql,
        ], c);
    };
    const appConn = `host=postgres port=5432 dbname=${pgApp.database} user=${pgApp.role}`;
    const superSql = (sql: string): string => dockerOk(["exec", "-u", "postgres", pg.name, "psql", "-h", "/var/run/postgresql", "-U", "postgres", "-d", "postgres", "-X", "-Atc", sql]).trim();

    await t.test("postgres: first start initialises the cluster with the superuser only, becomes healthy", async () => {
        const conf = path.join(dir, "pg", "conf");
        plainFile(path.join(conf, "postgresql.conf"), renderPostgresConf(c));
        plainFile(path.join(conf, "pg_hba.conf"), renderPgHba(c));
        fs.chmodSync(conf, 0o755);
        // The TLS key and certificate from the very function the host step embeds.
        const tls = run("bash", ["-c", `set -euo pipefail\n${postgresTlsFunction()}\ncitadel_pg_tls "$1" "$2"`, "pg-tls", path.join(conf, "tls"), `${DATA_UID}:${DATA_UID}`]);
        assert.equal(tls.code, 0, tls.stderr);
        const superFile = secretFile(path.join(dir, "pg", "secrets", "postgresSuperuserPassword"), pg.superPw, DATA_UID);
        const volume = lab.volume("pgdata");

        // As components/data.ts creates the postgres container: one secret (the superuser's), no init scripts.
        dockerOk([
            "run", "--detach", "--name", pg.name, "--network", lab.network, "--network-alias", "postgres",
            ...hardenedFlags({ user: `${DATA_UID}:${DATA_UID}`, resources: c.postgres.resources, tmpfs: ["/tmp", "/var/run/postgresql"], logs: c.host.docker }),
            "--env", "POSTGRES_USER=postgres",
            "--env", `POSTGRES_PASSWORD_FILE=${SECRETS_MOUNT}/postgresSuperuserPassword`,
            "--env", "POSTGRES_INITDB_ARGS=--auth-host=scram-sha-256 --auth-local=scram-sha-256",
            "--env", "PGDATA=/var/lib/postgresql/data/pgdata",
            ...bind(conf, POSTGRES_CONF_CONTAINER_DIR),
            ...bind(superFile, `${SECRETS_MOUNT}/postgresSuperuserPassword`),
            "--volume", `${volume}:/var/lib/postgresql/data`,
            // The stack's probe (exec form there; docker run only takes the shell form).
            "--health-cmd", "pg_isready -h /var/run/postgresql -U postgres", "--health-interval", "1s", "--health-timeout", "5s", "--health-retries", "60",
            POSTGRES_LOCAL_IMAGE,
            "postgres", "-c", `config_file=${POSTGRES_CONF_CONTAINER_DIR}/postgresql.conf`,
        ]);
        // The temporary init server answers pg_isready too: wait for the end of the init phase first.
        const initDone = await waitFor(() => /PostgreSQL init process complete/.test(docker(["logs", pg.name], 30_000).stdout) || state(pg.name).status !== "running", 90_000);
        const logs = () => {
            const r = docker(["logs", pg.name], 30_000);
            return r.stdout + r.stderr;
        };
        assert.ok(initDone && state(pg.name).status === "running", `postgres init did not complete:\n${logs()}`);
        assert.doesNotMatch(logs(), /running \/docker-entrypoint-initdb\.d\//, "an init script ran");
        await waitHealthy(pg.name);
        // Exec form, no shell: what the stack's healthcheck runs.
        assert.ok(await waitFor(() => docker(["exec", pg.name, "pg_isready", "-h", "/var/run/postgresql", "-U", "postgres"], 30_000).code === 0, 30_000), logs());
        // No app role yet: the app cannot log in until the postgres-roles step has run.
        assert.equal(superSql(`SELECT count(*) FROM pg_roles WHERE rolname = '${pgApp.role}'`), "0");
        const early = psqlClient(`${appConn} sslmode=require`, pg.appPw, "SELECT 1");
        assert.notEqual(early.code, 0, "the app logged in before its role was made");
        assert.match(early.stderr, new RegExp(`password authentication failed for user "${pgApp.role}"`));
    });

    await t.test("postgres: the postgres-roles host step makes the app's role and database in the running container", () => {
        const step = renderPostgresRolesScript(c);
        const base = path.join(dir, "pg", "host-step");
        // The secret files where the stack writes them (the step reads the host's files, not the mounts).
        const put = (file: string, value: string) => secretFile(path.join(base, "etc", file.replace(/^\/etc\//, "")), value, DATA_UID);
        put(secretFilePath(POSTGRES_CONTAINER, "postgresSuperuserPassword"), pg.superPw);
        put(pgApp.passwordFile, pg.appPw);
        for (let i = 0; i < 2; i++) {
            const r = runHostStep(base, step.script, pg.name);
            assert.equal(r.code, 0, `run ${i + 1}:\n${r.stdout}${r.stderr}`);
            assert.match(r.stdout, new RegExp(`citadel: postgres: roles ${pgApp.role}: LOGIN, each owning its own database`));
            // Through the engine as the stack does it: psql as the postgres user, passwords on stdin only.
            assert.match(r.argv, /^exec -i -u postgres postgres psql /m);
            for (const v of [pg.superPw, pg.appPw]) assert.ok(!r.argv.includes(v) && !r.stdout.includes(v) && !r.stderr.includes(v), "a password reached docker's argv or the step's output");
        }
        // LOGIN and nothing else; the database is the role's and PUBLIC cannot connect to it.
        assert.equal(
            superSql(`SELECT r.rolcanlogin, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls, pg_get_userbyid(d.datdba), has_database_privilege('public', d.datname, 'CONNECT') FROM pg_roles r, pg_database d WHERE r.rolname = '${pgApp.role}' AND d.datname = '${pgApp.database}'`),
            `t|f|f|f|f|f|${pgApp.role}|f`,
        );
        assert.doesNotMatch(docker(["logs", pg.name], 30_000).stderr, new RegExp(pg.appPw), "the password reached the server log");
    });

    await t.test("postgres: the app role connects over TLS from another container, and only as itself", () => {
        const ok = psqlClient(`${appConn} sslmode=require`, pg.appPw, "SELECT current_user, current_database(), s.ssl, s.version, r.rolsuper, r.rolcreaterole, r.rolcreatedb FROM pg_stat_ssl s, pg_roles r WHERE s.pid = pg_backend_pid() AND r.rolname = current_user");
        assert.equal(ok.code, 0, ok.stderr);
        const [user, db, ssl, version, superuser, createrole, createdb] = ok.stdout.trim().split("|");
        assert.deepEqual({ user, db, ssl, superuser, createrole, createdb }, { user: pgApp.role, db: pgApp.database, ssl: "t", superuser: "f", createrole: "f", createdb: "f" });
        assert.match(version, /^TLSv1\.[23]$/);

        const plain = psqlClient(`${appConn} sslmode=disable`, pg.appPw, "SELECT 1");
        assert.notEqual(plain.code, 0, "a non-TLS connection was accepted");
        assert.match(plain.stderr, /pg_hba\.conf rejects connection .*no encryption/);

        const wrong = psqlClient(`${appConn} sslmode=require`, password(), "SELECT 1");
        assert.notEqual(wrong.code, 0, "a wrong password was accepted");
        assert.match(wrong.stderr, new RegExp(`password authentication failed for user "${pgApp.role}"`));

        // The app's role to a database not its own: refused by pg_hba.conf.
        const otherDb = psqlClient(`host=postgres port=5432 dbname=postgres user=${pgApp.role} sslmode=require`, pg.appPw, "SELECT 1");
        assert.notEqual(otherDb.code, 0, "the app's role reached another database");
        assert.match(otherDb.stderr, new RegExp(`pg_hba\\.conf rejects connection .*user "${pgApp.role}", database "postgres"`));

        // The superuser exists (its password came from POSTGRES_PASSWORD_FILE) but never over the network.
        const su = psqlClient("host=postgres port=5432 dbname=postgres user=postgres sslmode=require", pg.superPw, "SELECT 1");
        assert.notEqual(su.code, 0, "the superuser got in over TCP");
        assert.match(su.stderr, /pg_hba\.conf rejects connection .*user "postgres"/);
    });

    await t.test("postgres: superuser over the socket with its file password; the server keeps no password in its environment", () => {
        const pwFile = `${SECRETS_MOUNT}/postgresSuperuserPassword`;
        const r = dockerOk(["exec", pg.name, "bash", "-c", `PGPASSWORD=$(cat ${pwFile}) psql -h /var/run/postgresql -U postgres -d postgres -Atc 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user'`]);
        assert.equal(r.trim(), "t");
        const env = dockerOk(["exec", pg.name, "bash", "-c", 'tr "\\0" "\\n" </proc/"$(head -n1 "$PGDATA/postmaster.pid")"/environ']);
        assert.ok(env.includes("PGDATA="), "read the postmaster's environment");
        assert.ok(!env.includes(pg.superPw) && !/^POSTGRES_PASSWORD=/m.test(env), "the postmaster's environment holds the superuser password");
        assert.match(dockerOk(["exec", pg.name, "id", "-u"]).trim(), /^999$/);
        assert.notEqual(docker(["exec", pg.name, "touch", "/etc/citadel-probe"]).code, 0, "the root filesystem is writable");
    });

    await t.test("postgres: a restart reuses the cluster (no second init)", async () => {
        dockerOk(["restart", pg.name]);
        await waitFor(() => /appears to contain a database; Skipping initialization/.test(docker(["logs", pg.name], 30_000).stdout), 60_000);
        assert.match(docker(["logs", pg.name], 30_000).stdout, /appears to contain a database; Skipping initialization/);
        assert.ok(await waitFor(() => docker(["exec", pg.name, "pg_isready", "-h", "/var/run/postgresql", "-U", "postgres"], 30_000).code === 0, 60_000));
        const ok = psqlClient(`${appConn} sslmode=require`, pg.appPw, "SELECT 1");
        assert.equal(ok.stdout.trim(), "1", ok.stderr);
    });

    await t.test("postgres: the postgres-config host step's check boots this image, and refuses a broken config", () => {
        const conf = path.join(dir, "pg", "conf");
        const validator = plainFile(path.join(dir, "pg", "validate.sh"), renderPostgresValidator());
        const broken = plainFile(path.join(dir, "pg", "broken.conf"), `${renderPostgresConf(c)}\nshared_buffers = lots\n`);
        // The flags of templates/data/postgres-config.sh.hbs.
        const check = (confFile: string) =>
            docker([
                "run", "--rm", "--network", "none", "--user", `${DATA_UID}:${DATA_UID}`, "--read-only", "--tmpfs", "/tmp:rw,size=256m",
                "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                "-v", `${confFile}:${POSTGRES_CONF_CONTAINER_DIR}/postgresql.conf:ro`,
                "-v", `${path.join(conf, "pg_hba.conf")}:${POSTGRES_CONF_CONTAINER_DIR}/pg_hba.conf:ro`,
                "-v", `${path.join(conf, "tls")}:${POSTGRES_TLS_CONTAINER_DIR}:ro`,
                "-v", `${validator}:/citadel-validate.sh:ro`,
                "--entrypoint", "bash", POSTGRES_LOCAL_IMAGE, "/citadel-validate.sh",
            ]);
        const good = check(path.join(conf, "postgresql.conf"));
        assert.equal(good.code, 0, good.stdout + good.stderr);
        assert.match(good.stdout, /citadel: postgres: configuration boots postgres \(PostgreSQL\) 15\./);
        const bad = check(broken);
        assert.notEqual(bad.code, 0, "the check accepted shared_buffers = lots");
        assert.match(bad.stderr, /shared_buffers/);
    });

    // ---------------------------------------------------------------------------------------------
    // Redis
    // ---------------------------------------------------------------------------------------------
    // The local stack's one app with its own Redis user, confined to its key prefix.
    const [redisUser, ...moreRedisUsers] = redisAclUsers(c);
    assert.ok(redisUser && !moreRedisUsers.length, "the local stack has one app with its own Redis user");
    const redis = { name: lab.name("redis"), pw: password() };
    await t.test("redis: starts with the stack's redis.conf and ACL, data in /data", async () => {
        const conf = path.join(dir, "redis", "conf");
        plainFile(path.join(conf, "redis.conf"), renderRedisConf(c));
        fs.chmodSync(conf, 0o755);
        const acl = secretFile(path.join(dir, "redis", "secrets", "users.acl"), renderRedisAcl(c, [{ ...redisUser, passwordSha256Hex: sha256hex(redis.pw) }]), DATA_UID);
        const volume = lab.volume("redisdata");
        dockerOk([
            "run", "--detach", "--name", redis.name, "--network", lab.network, "--network-alias", "redis",
            ...hardenedFlags({ user: `${DATA_UID}:${DATA_UID}`, resources: c.redis.resources, tmpfs: ["/tmp"], logs: c.host.docker }),
            ...bind(conf, REDIS_CONF_CONTAINER_DIR),
            ...bind(acl, REDIS_ACL_CONTAINER_PATH),
            "--volume", `${volume}:/data`,
            "--health-cmd", "redis-cli -h 127.0.0.1 ping 2>&1 | grep -qE 'PONG|NOAUTH'", "--health-interval", "1s", "--health-timeout", "5s", "--health-retries", "30",
            REDIS_LOCAL_IMAGE,
            "redis-server", `${REDIS_CONF_CONTAINER_DIR}/redis.conf`,
        ]);
        await waitHealthy(redis.name, 60_000);
        // AOF in the working directory = the volume, private to the server (the entrypoint's umask).
        assert.ok(await waitFor(() => docker(["exec", redis.name, "test", "-d", "/data/appendonlydir"], 30_000).code === 0, 15_000), "no AOF directory in /data");
        assert.equal(dockerOk(["exec", redis.name, "stat", "-c", "%u %a", "/data/appendonlydir"]).trim(), "999 700");
    });

    await t.test("redis: refuses unauthenticated clients and denied commands, serves the app's user on its own keys only", () => {
        const pwFile = secretFile(path.join(dir, "client", "redisPassword"), redis.pw, DATA_UID);
        const cli = (script: string) =>
            lab.client(REDIS_LOCAL_IMAGE, { user: `${DATA_UID}:${DATA_UID}`, entrypoint: "sh", mounts: bind(pwFile, "/run/secrets/redisPassword") }, ["-c", script], c);
        const anon = cli("redis-cli -h redis SET citadel:probe anon; redis-cli -h redis PING");
        assert.match(anon.stdout + anon.stderr, /NOAUTH Authentication required/);
        assert.doesNotMatch(anon.stdout, /^(OK|PONG)$/m);
        // REDISCLI_AUTH: the password never appears on a command line.
        const auth = `REDISCLI_AUTH=$(cat /run/secrets/redisPassword) redis-cli --no-auth-warning --user ${redisUser.user} -h redis`;
        const key = `${redisUser.keyPrefix}probe`;
        const app = cli(`${auth} SET ${key} ok && ${auth} GET ${key} && ${auth} FLUSHALL; ${auth} CONFIG GET dir; ${auth} ACL SETUSER ${redisUser.user} +@all`);
        const lines = app.stdout.trim().split("\n");
        assert.deepEqual(lines.slice(0, 2), ["OK", "ok"], app.stdout + app.stderr);
        assert.equal(lines.filter((l) => /^NOPERM/.test(l)).length, 3, `FLUSHALL, CONFIG and ACL must be denied:\n${app.stdout}${app.stderr}`);
        // Keys and channels outside the app's prefix, and SCAN (every app's key names): NOPERM, one line each.
        const outside = cli(`${auth} SET citadel:probe x; ${auth} GET other:probe; ${auth} PUBLISH other:events x; ${auth} SCAN 0; ${auth} GET ${key}`);
        const out = outside.stdout.split("\n").filter((l) => l.trim());
        assert.equal(out.length, 5, outside.stdout + outside.stderr);
        assert.match(out[0], /^NOPERM .*keys/, "SET outside the prefix");
        assert.match(out[1], /^NOPERM .*keys/, "GET outside the prefix");
        assert.match(out[2], /^NOPERM .*channels/, "PUBLISH outside the prefix");
        assert.match(out[3], /^NOPERM .*'scan'/, "SCAN lists every app's keys");
        assert.equal(out[4], "ok");
        const wrong = cli(`REDISCLI_AUTH=wrong-${randomBytes(4).toString("hex")} redis-cli --no-auth-warning --user ${redisUser.user} -h redis PING`);
        assert.match(wrong.stdout + wrong.stderr, /WRONGPASS|invalid username-password/);
    });

    await t.test("redis: the redis-config host step's check starts this image, and refuses a broken config", () => {
        const conf = path.join(dir, "redis", "conf");
        const validator = plainFile(path.join(dir, "redis", "validate.sh"), renderRedisValidator());
        // The host step validates with the live ACL's rules and a placeholder hash.
        const acl = plainFile(path.join(dir, "redis", "placeholder.acl"), renderRedisAcl(c, redisAclUsers(c).map((u) => ({ ...u, passwordSha256Hex: "0".repeat(64) }))));
        const broken = plainFile(path.join(dir, "redis", "broken.conf"), `${renderRedisConf(c)}\nmaxmemory-policy sometimes\n`);
        // The flags of templates/data/redis-config.sh.hbs.
        const check = (confFile: string) =>
            docker([
                "run", "--rm", "--network", "none", "--user", `${DATA_UID}:${DATA_UID}`, "--read-only", "--tmpfs", "/tmp:rw,size=64m",
                "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                "-v", `${confFile}:${REDIS_CONF_CONTAINER_DIR}/redis.conf:ro`,
                "-v", `${acl}:${REDIS_ACL_CONTAINER_PATH}:ro`,
                "-v", `${validator}:/citadel-validate.sh:ro`,
                "--entrypoint", "bash", REDIS_LOCAL_IMAGE, "/citadel-validate.sh",
            ]);
        const good = check(path.join(conf, "redis.conf"));
        assert.equal(good.code, 0, good.stdout + good.stderr);
        assert.match(good.stdout, /citadel: redis: configuration starts Redis server v=7\./);
        const bad = check(broken);
        assert.notEqual(bad.code, 0, "the check accepted maxmemory-policy sometimes");
    });

    // ---------------------------------------------------------------------------------------------
    // Demo app
    // ---------------------------------------------------------------------------------------------
    const demo = { name: lab.name("demo"), secrets: { jwtSecret: password(), postgresPassword: password() } };
    await t.test("demo app: non-root, read-only, healthy by its own healthcheck", async () => {
        const appUid = 10001;
        const mounts: string[] = [];
        const env: string[] = [];
        for (const [name, value] of Object.entries(demo.secrets)) {
            mounts.push(...bind(secretFile(path.join(dir, "app", "secrets", name), value, appUid), `${SECRETS_MOUNT}/${name}`));
            env.push(`${secretEnvName(name)}=${SECRETS_MOUNT}/${name}`);
        }
        // Two that must be reported as not readable: owned by root (0400), and absent.
        mounts.push(...bind(secretFile(path.join(dir, "app", "secrets", "rootOnly"), "x", 0), `${SECRETS_MOUNT}/rootOnly`));
        env.push(`${secretEnvName("rootOnly")}=${SECRETS_MOUNT}/rootOnly`, `${secretEnvName("missing")}=${SECRETS_MOUNT}/missing`, "LOG_LEVEL=info");
        dockerOk([
            "run", "--detach", "--name", demo.name, "--network", lab.network, "--network-alias", "demo",
            ...hardenedFlags({ user: `${appUid}:${appUid}`, resources: { memory: "256m", cpus: 0.5, pids: 128 }, tmpfs: ["/tmp"], logs: c.host.docker }),
            ...env.flatMap((e) => ["--env", e]),
            ...mounts,
            // The image's own HEALTHCHECK (exec form, no shell in the image), polled faster.
            "--health-interval", "1s", "--health-retries", "30",
            DEMO_APP_LOCAL_IMAGE,
        ]);
        await waitHealthy(demo.name, 60_000);
        const hc = JSON.parse(dockerOk(["inspect", "--format", "{{json .Config.Healthcheck.Test}}", demo.name])) as string[];
        assert.deepEqual(hc, ["CMD", ...DEMO_APP_HEALTHCHECK]);
        // The app process (docker-init's child) runs as the app's uid, seen from the host.
        const pid = dockerOk(["inspect", "--format", "{{.State.Pid}}", demo.name]).trim();
        const child = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/)[0];
        assert.match(fs.readFileSync(`/proc/${child}/status`, "utf8"), /^Uid:\s+10001\s+10001\s+10001\s+10001$/m);
    });

    const curl = (args: string[], mounts: string[] = []) =>
        lab.client(CADDY_LOCAL_IMAGE, { user: `${GATEWAY_UID}:${GATEWAY_UID}`, entrypoint: "curl", mounts }, ["-sS", "--max-time", "10", ...args], c);

    await t.test("demo app: answers /, /healthz and /secrets (files readable, no values)", () => {
        const base = `http://demo:${DEMO_APP_PORT}`;
        assert.equal(curl(["-f", `${base}/`]).stdout.trim(), GREETING);
        assert.equal(curl(["-f", `${base}/healthz`]).stdout.trim(), "ok");
        assert.equal(curl(["-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", `${base}/`]).stdout, "405");
        const r = curl(["-f", `${base}/secrets`]);
        assert.equal(r.code, 0, r.stderr);
        for (const v of Object.values(demo.secrets)) assert.ok(!r.stdout.includes(v), "/secrets shows a secret value");
        const body = JSON.parse(r.stdout) as { secrets: { env: string; path: string; readable: boolean; nonEmpty: boolean; error?: string }[] };
        const by = Object.fromEntries(body.secrets.map((s) => [s.env, s]));
        for (const name of Object.keys(demo.secrets)) {
            assert.deepEqual({ ...by[secretEnvName(name)] }, { env: secretEnvName(name), path: `${SECRETS_MOUNT}/${name}`, readable: true, nonEmpty: true });
        }
        assert.equal(by.ROOT_ONLY_FILE?.readable, false);
        assert.match(by.ROOT_ONLY_FILE?.error ?? "", /permission denied/);
        assert.equal(by.MISSING_FILE?.readable, false);
        assert.equal(body.secrets.length, 4, "only *_FILE variables are listed");
    });

    // ---------------------------------------------------------------------------------------------
    // Caddy
    // ---------------------------------------------------------------------------------------------
    await t.test("caddy: version, the rate-limit module, and `caddy validate` of the production Caddyfile as the host step runs it", () => {
        const version = dockerOk(["run", "--rm", "--network", "none", "--entrypoint", "caddy", CADDY_LOCAL_IMAGE, "version"]);
        assert.match(version, new RegExp(`^v${CADDY_VERSION.replace(/\./g, "\\.")}\\b`));
        assert.match(dockerOk(["run", "--rm", "--network", "none", "--entrypoint", "caddy", CADDY_LOCAL_IMAGE, "list-modules"]), /^http\.handlers\.rate_limit$/m);
        for (const [label, config] of [["production", parseConfigOrThrow(existingRaw())], ["local", c]] as const) {
            const file = plainFile(path.join(dir, "caddy", `Caddyfile.${label}`), renderCaddyfile(config));
            // The flags of templates/caddy/gateway-config.sh.hbs.
            const r = docker([
                "run", "--rm", "--pull", "never", "--network", "none", "--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE", "--security-opt", "no-new-privileges",
                "-v", `${file}:${CADDYFILE_CONTAINER_PATH}:ro`, "--entrypoint", "caddy", CADDY_LOCAL_IMAGE, "validate", "--config", CADDYFILE_CONTAINER_PATH, "--adapter", "caddyfile",
            ]);
            assert.equal(r.code, 0, `${label} Caddyfile:\n${r.stdout}${r.stderr}`);
            assert.match(r.stdout + r.stderr, /Valid configuration/);
        }
        const broken = plainFile(path.join(dir, "caddy", "Caddyfile.broken"), "example.com {\n  no_such_directive\n}\n");
        const bad = docker(["run", "--rm", "--network", "none", "-v", `${broken}:${CADDYFILE_CONTAINER_PATH}:ro`, "--entrypoint", "caddy", CADDY_LOCAL_IMAGE, "validate", "--config", CADDYFILE_CONTAINER_PATH, "--adapter", "caddyfile"]);
        assert.notEqual(bad.code, 0, "caddy validate accepted a broken Caddyfile");
    });

    await t.test("caddy: the gateway runs as the stack runs it and serves the demo app over HTTPS", async () => {
        const gw = lab.name("gateway");
        const caddyfile = plainFile(path.join(dir, "caddy", "Caddyfile"), renderCaddyfile(c, { upstreamOverride: `demo:${DEMO_APP_PORT}`, metricsHost: "127.0.0.1" }));
        const logDir = path.join(dir, "caddy", "log");
        fs.mkdirSync(logDir, { mode: 0o750 });
        fs.chownSync(logDir, GATEWAY_UID, GATEWAY_UID);
        const data = lab.volume("caddy-data");
        const config = lab.volume("caddy-config");
        dockerOk([
            "run", "--detach", "--name", gw, "--network", lab.network, "--network-alias", "gateway",
            ...hardenedFlags({ user: `${GATEWAY_UID}:${GATEWAY_UID}`, resources: c.gateway.resources, tmpfs: ["/tmp"], capAdd: ["NET_BIND_SERVICE"], logs: c.host.docker }),
            ...bind(caddyfile, CADDYFILE_CONTAINER_PATH),
            ...bind(logDir, CADDY_LOG_DIR_CONTAINER, false),
            "--volume", `${data}:/data`, "--volume", `${config}:/config`,
            // The image's HEALTHCHECK (curl on the loopback health site), polled faster.
            "--health-interval", "1s", "--health-retries", "30",
            CADDY_LOCAL_IMAGE,
        ]);
        await waitHealthy(gw, 60_000);
        const host = c.sites[0].host;
        // The internal CA's root from the gateway's data volume, read-only, by the same uid.
        const ca = "/caddy-data/caddy/pki/authorities/local/root.crt";
        const get = () => curl(["-f", "-D", "-", "--cacert", ca, "--connect-to", `${host}:443:gateway:443`, `https://${host}/`], ["--volume", `${data}:/caddy-data:ro`]);
        let r = get();
        // The site certificate is issued right after start: retry briefly.
        if (r.code !== 0) {
            await waitFor(() => (r = get()).code === 0, 20_000);
        }
        assert.equal(r.code, 0, `${r.stderr}\n${docker(["logs", "--tail", "30", gw]).stderr}`);
        assert.match(r.stdout, /^strict-transport-security: max-age=\d+/im);
        assert.match(r.stdout, /^x-content-type-options: nosniff/im);
        assert.ok(r.stdout.trimEnd().endsWith(GREETING), r.stdout);
        // The access log went to the bind-mounted directory, written by uid 10001.
        assert.ok(await waitFor(() => fs.existsSync(path.join(logDir, "access.log")) && fs.statSync(path.join(logDir, "access.log")).size > 0, 10_000), "no access log");
        assert.equal(fs.statSync(path.join(logDir, "access.log")).uid, GATEWAY_UID);
    });
});
